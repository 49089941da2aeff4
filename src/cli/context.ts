// What every command gets from the global options: the cache, registry options, the platform,
// output switches, and one way to open any image argument.
import { BlobCache, defaultCacheDir } from '../image/blob-cache.ts';
import type { PullPolicy } from '../image/caching-source.ts';
import { openImageSource, type OpenedSource } from '../image/open-source.ts';
import { hostPlatform, parsePlatform, type PlatformSpec } from '../image/platform.ts';
import { parseImageArg } from '../image/transport.ts';
import type { RegistryOptions } from '../registry/options.ts';
import { safeText } from '../util/terminal-text.ts';
import { UsageError } from '../errors.ts';

export interface GlobalArgs {
  platform?: string;
  plainHttp?: boolean;
  insecure?: boolean;
  cacheDir?: string;
  json?: boolean;
  quiet?: boolean;
  debug?: boolean;
  strict?: boolean;
  /** --timeout SECONDS: the registry's total deadline per manifest, config or token request (`boot` has its own, a number). */
  timeout?: string | number;
  /** Only on commands that take --pull (run): when to ask the registry for a tag. */
  pull?: PullPolicy;
}

export interface CliContext {
  cache: BlobCache;
  registry: RegistryOptions;
  platform: PlatformSpec;
  /** --platform was given: a single-platform image of another platform is an error. */
  platformExplicit: boolean;
  json: boolean;
  quiet: boolean;
  debug: boolean;
  strict: boolean;
  out(text: string): void;
  warn(message: string): void;
  open(image: string): Promise<OpenedSource>;
}

/**
 * --timeout, else $IMGX_TIMEOUT: seconds (a positive number) → ms for the registry options;
 * undefined when neither is given (the registry's default, 60 s).
 */
export function deadlineMs(flag: string | number | undefined, env = process.env.IMGX_TIMEOUT): number | undefined {
  const [text, name] = flag !== undefined ? [String(flag), '--timeout'] : env !== undefined && env !== '' ? [env, 'IMGX_TIMEOUT'] : [undefined, ''];
  if (text === undefined) return undefined;
  const n = /^\s*\d+(?:\.\d+)?\s*$/.test(text) ? Number(text) : NaN;
  if (!(n > 0) || n > 86_400) throw new UsageError(`${name} must be a number of seconds above 0 and at most 86400, not ${JSON.stringify(text.slice(0, 40))}`);
  return Math.round(n * 1000);
}

export function makeContext(args: GlobalArgs): CliContext {
  const cache = new BlobCache(args.cacheDir || defaultCacheDir());
  const debug = args.debug === true;
  const quiet = args.quiet === true;
  const deadline = deadlineMs(args.timeout);
  const registry: RegistryOptions = {
    ...(deadline !== undefined ? { deadlineMs: deadline } : {}),
    ...(args.plainHttp ? { plainHttp: true } : {}),
    ...(args.insecure ? { insecure: true } : {}),
    ...(debug ? { debug: (m: string) => process.stderr.write(`debug: ${m}\n`) } : {}),
  };
  // Warnings are not progress: --quiet does not hide them.
  // Warnings quote names from layers and text from registries: the last net before the terminal.
  const warn = (m: string) => {
    process.stderr.write(`imgx: warning: ${safeText(m, 2000)}\n`);
  };
  return {
    cache,
    registry,
    platform: args.platform ? parsePlatform(args.platform) : hostPlatform(),
    platformExplicit: Boolean(args.platform),
    json: args.json === true,
    quiet,
    debug,
    strict: args.strict === true,
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
    warn,
    open: (image) => openImageSource(parseImageArg(image), { cache, registry, warn, ...(args.pull ? { pull: args.pull } : {}) }),
  };
}
