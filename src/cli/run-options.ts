// The options of `imgx run` (and the global ones), declared once: the yargs command is built from
// this table (help, validation), and so is the start-up fast path, which parses a well-formed run
// line with node:util's parseArgs and never loads yargs. A run check in CI pays start-up on every
// call, and yargs alone costs more than the rest of a cached run (it renders the whole help text
// before each command).
import { parseArgs } from 'node:util';

export interface OptionSpec {
  name: string;
  /** One-letter alias (`-e`), or another long name (`--network`). */
  alias?: string;
  type: 'string' | 'boolean';
  /** Strings that may be given more than once (`-e A -e B`). */
  repeat?: boolean;
  default?: string;
  choices?: readonly string[];
  describe: string;
}

/** The global options as main.ts declares them to yargs; here for the fast path. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'platform', type: 'string', describe: 'os/arch[/variant] to pick from an index (default: the host)' },
  { name: 'plain-http', type: 'boolean', describe: 'talk HTTP, not HTTPS, to the registry' },
  { name: 'insecure', type: 'boolean', describe: 'do not verify the registry TLS certificate' },
  { name: 'timeout', type: 'string', describe: 'seconds each manifest, config or token request may take in all (default: $IMGX_TIMEOUT or 60)' },
  { name: 'cache-dir', type: 'string', describe: 'blob cache (default: $IMGX_CACHE or ~/.cache/imgx)' },
  { name: 'json', type: 'boolean', describe: 'machine-readable output on stdout' },
  { name: 'quiet', alias: 'q', type: 'boolean', describe: 'no progress or informational output' },
  { name: 'debug', type: 'boolean', describe: 'log requests; stack traces on errors' },
  { name: 'strict', type: 'boolean', describe: 'treat warnings about layer contents as errors' },
];

export const RUN_OPTIONS: readonly OptionSpec[] = [
  { name: 'entrypoint', type: 'string', describe: "replace the image's Entrypoint ('' clears it)" },
  { name: 'env', alias: 'e', type: 'string', repeat: true, describe: 'KEY=VALUE, or KEY to pass the caller’s value (repeatable)' },
  { name: 'workdir', alias: 'w', type: 'string', describe: 'working directory inside the container' },
  { name: 'user', alias: 'u', type: 'string', describe: 'USER[:GROUP], names or numbers, from the image’s /etc/passwd and /etc/group' },
  { name: 'volume', alias: 'v', type: 'string', repeat: true, describe: 'bind mount SRC:DST[:ro|rw] (SRC a host path; repeatable)' },
  { name: 'net', alias: 'network', type: 'string', default: 'host', choices: ['host', 'none'], describe: "host: the host's network; none: own namespace, loopback only" },
  { name: 'hostname', type: 'string', describe: 'hostname inside (default: the run id)' },
  { name: 'tty', alias: 't', type: 'boolean', describe: 'give the container a terminal' },
  { name: 'interactive', alias: 'i', type: 'boolean', describe: 'accepted for Docker users: stdin is always passed through' },
  { name: 'rm', type: 'boolean', describe: 'accepted for Docker users: runs are always removed unless --keep' },
  { name: 'keep', type: 'boolean', describe: 'keep the run directory (bundle and writable layer) and print where' },
  { name: 'read-only', type: 'boolean', describe: 'mount the root filesystem read-only' },
  { name: 'runtime', type: 'string', default: 'auto', choices: ['auto', 'runc', 'native'], describe: 'auto: runc when on PATH and root, else the native core' },
  { name: 'init', type: 'boolean', describe: 'native runtime: a minimal init as pid 1 reaps zombies and forwards signals' },
  { name: 'pull', type: 'string', default: 'missing', choices: ['missing', 'always', 'never'], describe: 'when to ask the registry for the tag' },
];

const ALL = [...GLOBAL_OPTIONS, ...RUN_OPTIONS];

/** `--opt` / `-o` words that take the next word as their value (when written without `=`). */
export const VALUE_FLAGS: ReadonlySet<string> = new Set(
  ALL.filter((o) => o.type === 'string').flatMap((o) => [`--${o.name}`, ...(o.alias ? [o.alias.length === 1 ? `-${o.alias}` : `--${o.alias}`] : [])]),
);

const camel = (s: string) => s.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

/**
 * `argv` (up to the image, as split by run-argv.ts) parsed without yargs, or undefined whenever it is
 * anything but a plain, valid run line (help, version, an unknown option, a bad choice…): yargs then
 * parses it and says what is wrong, exactly as for every other command.
 */
export function parseRunFast(argv: readonly string[]): Record<string, unknown> | undefined {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const o of ALL) {
    options[o.name] = { type: o.type, ...(o.alias?.length === 1 ? { short: o.alias } : {}), ...(o.repeat ? { multiple: true } : {}) };
    if (o.alias && o.alias.length > 1) options[o.alias] = { type: o.type };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch {
    return undefined;
  }
  if (parsed.positionals.length !== 2 || parsed.positionals[0] !== 'run') return undefined;
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const out: Record<string, unknown> = { image: parsed.positionals[1] };
  for (const o of ALL) {
    const long = values[o.name];
    const alias = o.alias && o.alias.length > 1 ? values[o.alias] : undefined;
    if (long !== undefined && alias !== undefined) return undefined;
    let v = long ?? alias;
    // yargs takes the last of a repeated single-valued option; parseArgs does too.
    if (v === undefined) v = o.default;
    if (v === undefined) continue;
    if (o.choices && !o.choices.includes(String(v))) return undefined;
    // An option given twice that yargs would turn into an array: let yargs decide.
    out[camel(o.name)] = v;
  }
  return out;
}
