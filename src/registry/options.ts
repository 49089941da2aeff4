// Options of the registry source, as the CLI fills them from its global flags.

export interface RegistryOptions {
  /** Use http:// for every registry (loopback registries use it anyway). */
  plainHttp?: boolean;
  /** Skip TLS certificate verification. */
  insecure?: boolean;
  /** Path of the Docker config.json to use; overrides REGISTRY_AUTH_FILE / DOCKER_CONFIG / ~/.docker. */
  dockerConfig?: string;
  /** Connect, response-headers and idle-body timeout, in ms (default 30 000). */
  timeoutMs?: number;
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
  retries: number;
  backoffMs: number;
  maxDelayMs: number;
  userAgent: string;
  debug: (msg: string) => void;
}

export function resolveOptions(o: RegistryOptions = {}): ResolvedOptions {
  return {
    plainHttp: o.plainHttp ?? false,
    insecure: o.insecure ?? false,
    dockerConfig: o.dockerConfig,
    timeoutMs: o.timeoutMs ?? 30_000,
    retries: Math.max(0, o.retries ?? 3),
    backoffMs: o.backoffMs ?? 500,
    maxDelayMs: o.maxDelayMs ?? 30_000,
    userAgent: o.userAgent ?? 'imgx',
    debug: o.debug ?? (() => {}),
  };
}
