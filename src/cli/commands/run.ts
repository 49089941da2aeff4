// `imgx run REF [-- CMD ARG…]`: run an image for verification through runc or the native core; the
// container's exit status becomes imgx's. Options follow `docker run` (declared in run-options.ts).
import type { Argv, CommandModule, Options } from 'yargs';
import { UsageError } from '../../errors.ts';
import { cacheIoError } from '../../io-errors.ts';
import type { PullPolicy } from '../../image/caching-source.ts';
import type { RuntimeName } from '../../run/runtime-choice.ts';
import { Warnings } from '../../warnings.ts';
import { makeContext, type GlobalArgs } from '../context.ts';
import { IMAGE_ARG_HELP } from '../help-texts.ts';
import { RUN_OPTIONS } from '../run-options.ts';

export interface RunArgs extends Omit<GlobalArgs, 'pull'> {
  image: string;
  entrypoint?: string;
  env?: string | string[];
  workdir?: string;
  user?: string;
  volume?: string | string[];
  net: string;
  hostname?: string;
  tty?: boolean;
  interactive?: boolean;
  rm?: boolean;
  keep?: boolean;
  readOnly?: boolean;
  runtime: string;
  init?: boolean;
  pull: string;
}

const strings = (v: unknown): string[] | undefined => (v === undefined ? undefined : (Array.isArray(v) ? v : [v]).map(String));

/** `words`: the command after the image, cut off before parsing (see run-argv.ts). */
export const runCommand = (words: string[] | undefined): CommandModule<GlobalArgs, RunArgs> => ({
  command: 'run <image> [command..]',
  describe: 'run an image (runc, or the native namespace core) and exit with its status',
  builder: (y) => {
    // The options come from a table, which yargs' typings cannot follow: the handler's RunArgs says what they hold.
    let b: Argv = y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .positional('command', { type: 'string', array: true, describe: "command and arguments, replacing the image's Cmd (`--` before it is optional)" });
    for (const o of RUN_OPTIONS) {
      const opt: Options = { type: o.type, describe: o.describe, ...(o.alias ? { alias: o.alias } : {}), ...(o.default !== undefined ? { default: o.default } : {}) };
      if (o.choices) opt.choices = [...o.choices];
      if (o.type === 'string') opt.requiresArg = true;
      b = b.option(o.name, opt);
    }
    return b as unknown as Argv<RunArgs>;
  },
  handler: (argv) => runHandler(argv, words),
});

export async function runHandler(argv: RunArgs, words: string[] | undefined): Promise<void> {
  if (argv.rm && argv.keep) throw new UsageError('--rm and --keep contradict each other');
  const [{ runImage }, { parseVolume }] = await Promise.all([import('../../run/run-image.ts'), import('../../run/volumes.ts')]);
  const ctx = makeContext({ ...argv, pull: argv.pull as PullPolicy });
  const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
  const volumes = await Promise.all((strings(argv.volume) ?? []).map((v) => parseVolume(v)));
  const env = strings(argv.env);
  // What a run writes goes to the cache (the image's tree, layer spools, the run directory): a
  // full or read-only one is IMGX_IO naming it (the paths that name themselves are mapped already).
  const result = await runImage(ctx, {
    image: argv.image,
    ...(words && words.length ? { command: words } : {}),
    ...(argv.entrypoint !== undefined ? { entrypoint: argv.entrypoint } : {}),
    ...(env ? { env } : {}),
    ...(argv.workdir !== undefined ? { workdir: argv.workdir } : {}),
    ...(argv.user !== undefined ? { user: argv.user } : {}),
    volumes,
    net: argv.net as 'host' | 'none',
    ...(argv.hostname ? { hostname: argv.hostname } : {}),
    tty: argv.tty === true,
    readOnly: argv.readOnly === true,
    runtime: argv.runtime as RuntimeName,
    init: argv.init === true,
    keep: argv.keep === true,
    warnings,
    notice: (m) => process.stderr.write(`imgx: ${m}\n`),
  }).catch((e: unknown) => {
    throw cacheIoError(e, ctx.cache.root);
  });
  if (ctx.debug) process.stderr.write(`debug: run ${result.id} (${result.runtime}) exited with status ${result.status}\n`);
  process.exitCode = result.status;
}
