// The image configuration (OCI image-spec config.md; Docker's is a superset we read the same way).
import { IntegrityError } from '../errors.ts';

export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, object>;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: Record<string, object>;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
    Healthcheck?: unknown;
    Shell?: string[];
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: { created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }[];
}

export function parseImageConfig(bytes: Buffer, what: string): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: image config is not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: image config is not a JSON object`);
  }
  const c = doc as ImageConfig;
  if (c.rootfs && !Array.isArray(c.rootfs.diff_ids)) {
    throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: image config rootfs.diff_ids is not a list`);
  }
  return c;
}
