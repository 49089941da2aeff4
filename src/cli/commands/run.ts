// `imgx run REF [-- CMD ARG…]`: run an image for verification through runc or the native core; the
// container's exit status becomes imgx's. Options follow `docker run`.
import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.ts';
import type { PullPolicy } from '../../image/caching-source.ts';
import { runImage } from '../../run/run-image.ts';
import type { RuntimeName } from '../../run/runtime-choice.ts';
import { parseVolume } from '../../run/volumes.ts';
import { Warnings } from '../../warnings.ts';
import { IMAGE_ARG_HELP } from '../image-tree-command.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface Args extends Omit<GlobalArgs, 'pull'> {
  image: string;
  command?: string[];
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

/** `words`: the command after the image, cut off before yargs (see run-argv.ts). */
export const runCommand = (words: string[] | undefined): CommandModule<GlobalArgs, Args> => ({
  command: 'run <image> [command..]',
  describe: 'run an image (runc, or the native namespace core) and exit with its status',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .positional('command', { type: 'string', array: true, describe: "command and arguments, replacing the image's Cmd (after --)" })
      .option('entrypoint', { type: 'string', describe: "replace the image's Entrypoint ('' clears it)" })
      .option('env', { alias: 'e', type: 'string', requiresArg: true, describe: 'KEY=VALUE, or KEY to pass the caller’s value' })
      .option('workdir', { alias: 'w', type: 'string', describe: 'working directory inside the container' })
      .option('user', { alias: 'u', type: 'string', describe: 'USER[:GROUP], names or numbers, from the image’s /etc/passwd and /etc/group' })
      .option('volume', { alias: 'v', type: 'string', requiresArg: true, describe: 'bind mount SRC:DST[:ro|rw] (SRC a host path)' })
      .option('net', { alias: 'network', type: 'string', default: 'host', choices: ['host', 'none'], describe: "host: the host's network; none: own namespace, loopback only" })
      .option('hostname', { type: 'string', describe: 'hostname inside (default: the run id)' })
      .option('tty', { alias: 't', type: 'boolean', describe: 'give the container a terminal' })
      .option('interactive', { alias: 'i', type: 'boolean', describe: 'accepted for Docker users: stdin is always passed through' })
      .option('rm', { type: 'boolean', describe: 'accepted for Docker users: runs are always removed unless --keep' })
      .option('keep', { type: 'boolean', describe: 'keep the run directory (bundle and writable layer) and print where' })
      .option('read-only', { type: 'boolean', describe: 'mount the root filesystem read-only' })
      .option('runtime', { type: 'string', default: 'auto', choices: ['auto', 'runc', 'native'], describe: 'auto: runc when on PATH and root, else the native core' })
      .option('init', { type: 'boolean', describe: 'native runtime: a minimal init as pid 1 reaps zombies and forwards signals' })
      .option('pull', { type: 'string', default: 'missing', choices: ['missing', 'always', 'never'], describe: 'when to ask the registry for the tag' }),
  handler: async (argv) => {
    if (argv.rm && argv.keep) throw new UsageError('--rm and --keep contradict each other');
    const ctx = makeContext({ ...argv, pull: argv.pull as PullPolicy });
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    const volumes = await Promise.all((strings(argv.volume) ?? []).map((v) => parseVolume(v)));
    const command = words;
    const env = strings(argv.env);
    const result = await runImage(ctx, {
      image: argv.image,
      ...(command && command.length ? { command } : {}),
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
    });
    if (ctx.debug) process.stderr.write(`debug: run ${result.id} (${result.runtime}) exited with status ${result.status}\n`);
    process.exitCode = result.status;
  },
});
