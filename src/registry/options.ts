// Options of the registry source, as the CLI fills them from its global flags.
import { safeText } from '../util/terminal-text.ts';

/** The minimum throughput of a blob download: fewer than `bytes` in any `windowMs` fails the attempt. */
export interface ThroughputFloor {
  bytes: number;
  windowMs: number;
}

export interface RegistryOptions {
  /** Use http:// for every registry (loopback registries use it anyway). */
  plainHttp?: boolean;
  /** Skip TLS certificate verification. */
  insecure?: boolean;
  /** Path of the Docker config.json to use; overrides REGISTRY_AUTH_FILE / DOCKER_CONFIG / ~/.docker. */
  dockerConfig?: string;
  /** Idle timeout: connect, response headers, and the longest pause inside a body, in ms (default 30 000). */
  timeoutMs?: number;
  /**
   * Total deadline of one manifest, config, tag-list page or token request, retries included, in
   * ms (default 60 000; the CLI's --timeout). Blob downloads have the throughput floor instead.
   */
  deadlineMs?: number;
  /** Minimum throughput of blob downloads (default 64 KiB in 30 s, or $IMGX_BLOB_FLOOR). */
  blobFloor?: ThroughputFloor;
  /** Extra tries after the first for one operation: retries, and resumes of a cut blob (default 3). */
  retries?: number;
  /** First backoff delay in ms, doubled on each retry, with jitter (default 500). */
  backoffMs?: number;
  /** Cap on any delay between tries, including a server's Retry-After, in ms (default 30 000). */
  maxDelayMs?: number;
  userAgent?: string;
  debug?: (msg: string) => void;
}

/** The options with every default filled in. */
export interface ResolvedOptions {
  plainHttp: boolean;
  insecure: boolean;
  dockerConfig: string | undefined;
  timeoutMs: number;
  deadlineMs: number;
  blobFloor: ThroughputFloor;
  retries: number;
  backoffMs: number;
  maxDelayMs: number;
  userAgent: string;
  debug: (msg: string) => void;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_DEADLINE_MS = 60_000;
export const DEFAULT_BLOB_FLOOR: ThroughputFloor = { bytes: 64 * 1024, windowMs: 30_000 };

/**
 * `IMGX_BLOB_FLOOR=KIB/SECONDS` (e.g. `64/30`, the default): the blob throughput floor. Mostly for
 * tests, which make it trip in seconds; `0/1` turns the floor off. Undefined when unset or malformed.
 */
export function blobFloorFromEnv(value = process.env.IMGX_BLOB_FLOOR): ThroughputFloor | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)\s*$/.exec(value ?? '');
  if (!m) return undefined;
  const bytes = Math.round(Number(m[1]) * 1024);
  const windowMs = Math.round(Number(m[2]) * 1000);
  return windowMs > 0 ? { bytes, windowMs } : undefined;
}

export function resolveOptions(o: RegistryOptions = {}): ResolvedOptions {
  const debug = o.debug;
  return {
    plainHttp: o.plainHttp ?? false,
    insecure: o.insecure ?? false,
    dockerConfig: o.dockerConfig,
    timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    deadlineMs: o.deadlineMs ?? DEFAULT_DEADLINE_MS,
    blobFloor: o.blobFloor ?? blobFloorFromEnv() ?? DEFAULT_BLOB_FLOOR,
    retries: Math.max(0, o.retries ?? 3),
    backoffMs: o.backoffMs ?? 500,
    maxDelayMs: o.maxDelayMs ?? 30_000,
    userAgent: o.userAgent ?? 'imgx',
    // Debug lines quote registries (error text, redirect targets): made safe like any other text.
    debug: debug ? (m: string) => debug(safeText(m, 1000)) : () => {},
  };
}
