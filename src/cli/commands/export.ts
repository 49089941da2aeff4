// `imgx export REF [-o FILE]`: the image's flattened root filesystem as one tar, like `docker
// export` of a container made from it. To stdout (never a terminal), or atomically to FILE
// (FILE.imgx-tmp-* → fsync → rename, removed on failure or interrupt).
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { ImgxError, UsageError } from '../../errors.ts';
import { ioError } from '../../io-errors.ts';
import { onInterrupt } from '../../export/interrupt.ts';
import { exportTar } from '../../export/tar-export.ts';
import { emitTree } from '../../layers/emit.ts';
import type { FlatEntry } from '../../layers/fs-entry.ts';
import { Warnings } from '../../warnings.ts';
import { IMAGE_ARG_HELP, withImageTrees } from '../image-tree-command.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface Args extends GlobalArgs {
  image: string;
  output?: string;
}

export const exportCommand: CommandModule<GlobalArgs, Args> = {
  command: 'export <image>',
  describe: 'write the flattened root filesystem of an image as one tar (stdout by default)',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .option('output', { alias: 'o', type: 'string', describe: 'write the tar to FILE (- for stdout, the default)' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const toStdout = argv.output === undefined || argv.output === '-';
    if (toStdout && process.stdout.isTTY) throw new UsageError('refusing to write a tar archive to a terminal: redirect stdout or use -o FILE');
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    await withImageTrees(ctx, [argv.image], { warnings, spool: true }, async ([it]) => {
      const entries = emitTree(it.tree, it.layers);
      if (toStdout) await toStream(entries);
      else await toFile(entries, resolve(argv.output!));
    });
  },
};

async function toStream(entries: AsyncIterable<FlatEntry>): Promise<void> {
  try {
    await exportTar(entries, process.stdout, { end: false });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') throw new ImgxError('IMGX_IO', 'stdout was closed before the archive was complete');
    // e.g. stdout redirected to a file on a full disk: what was written there cannot be taken back.
    if ((e as NodeJS.ErrnoException).syscall === 'write') throw ioError(e, 'cannot write the archive to stdout');
    throw e;
  }
}

async function toFile(entries: AsyncIterable<FlatEntry>, target: string): Promise<void> {
  const tmp = join(dirname(target), `${basename(target)}.imgx-tmp-${randomBytes(6).toString('hex')}`);
  const unhook = onInterrupt(() => rm(tmp, { force: true }));
  try {
    // flush: fsync before the close, so the rename never publishes a file whose data is not on disk.
    await exportTar(entries, createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: true, highWaterMark: 1 << 20 }));
    await rename(tmp, target);
  } catch (e) {
    // Nothing partial stays (removal works on a full disk; should it fail, this error is still the one).
    await rm(tmp, { force: true }).catch(() => {});
    throw ioError(e, `cannot write ${target}`);
  } finally {
    unhook();
  }
}
