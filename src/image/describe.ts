// What `imgx inspect` says about an image, as one plain object. Its field names are the stable
// `inspect --json` format documented in README.md.
import type { ResolvedImage } from './resolve.ts';
import { normalisePlatform } from './platform.ts';

export interface ImageDescription {
  reference: string;
  source: string;
  digest: string;
  mediaType: string;
  platforms?: { os: string; architecture: string; variant?: string; digest: string }[];
  manifest: { digest: string; mediaType: string; size: number };
  platform: { os: string; architecture: string; variant?: string };
  config: {
    digest: string;
    mediaType: string;
    size: number;
    created?: string;
    author?: string;
    entrypoint: string[];
    cmd: string[];
    env: string[];
    user: string;
    workingDir: string;
    exposedPorts: string[];
    volumes: string[];
    labels: Record<string, string>;
    stopSignal?: string;
  };
  layers: { digest: string; mediaType: string; size: number; diffId: string | null }[];
  history: { created?: string; createdBy?: string; comment?: string; emptyLayer: boolean }[];
  totalSize: number;
}

export function describeImage(image: ResolvedImage, reference: string, source: string): ImageDescription {
  const c = image.config;
  const cc = c.config ?? {};
  const diffIds = c.rootfs?.diff_ids ?? [];
  const layers = image.parsed.layers.map((l, i) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size, diffId: diffIds[i] ?? null }));
  const platform = normalisePlatform({ os: c.os ?? 'unknown', architecture: c.architecture ?? 'unknown', variant: c.variant });
  return {
    reference,
    source,
    digest: image.root.digest,
    mediaType: image.root.mediaType,
    ...(image.platforms.length
      ? {
          platforms: image.platforms.map((d) => ({
            ...normalisePlatform(d.platform!),
            ...(d.platform!.os === 'unknown' ? { os: 'unknown', architecture: 'unknown' } : {}),
            digest: d.digest,
          })),
        }
      : {}),
    manifest: { digest: image.manifest.digest, mediaType: image.manifest.mediaType, size: image.manifest.bytes.length },
    platform,
    config: {
      digest: image.parsed.config.digest,
      mediaType: image.parsed.config.mediaType,
      size: image.parsed.config.size,
      ...(c.created ? { created: c.created } : {}),
      ...(c.author ? { author: c.author } : {}),
      entrypoint: cc.Entrypoint ?? [],
      cmd: cc.Cmd ?? [],
      env: cc.Env ?? [],
      user: cc.User ?? '',
      workingDir: cc.WorkingDir ?? '',
      exposedPorts: Object.keys(cc.ExposedPorts ?? {}).sort(),
      volumes: Object.keys(cc.Volumes ?? {}).sort(),
      labels: cc.Labels ?? {},
      ...(cc.StopSignal ? { stopSignal: cc.StopSignal } : {}),
    },
    layers,
    history: (c.history ?? []).map((h) => ({
      ...(h.created ? { created: h.created } : {}),
      ...(h.created_by ? { createdBy: h.created_by } : {}),
      ...(h.comment ? { comment: h.comment } : {}),
      emptyLayer: h.empty_layer === true,
    })),
    totalSize: image.parsed.config.size + layers.reduce((a, l) => a + l.size, 0),
  };
}
