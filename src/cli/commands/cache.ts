import type { CommandModule } from 'yargs';
import { reachableBlobs, pruneCache } from '../../image/cache-gc.ts';
import { REF_ANNOTATION, PULLED_ANNOTATION } from '../../image/blob-cache.ts';
import { cacheIoError } from '../../io-errors.ts';
import { makeContext, type CliContext, type GlobalArgs } from '../context.ts';
import { humanSize, shortDigest, table } from '../format.ts';

interface PruneArgs extends GlobalArgs {
  all?: boolean;
}

const lsCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'ls',
  describe: 'list the images in the cache',
  handler: async (argv) => {
    const ctx = makeContext(argv);
    await listCache(ctx).catch((e: unknown) => {
      throw cacheIoError(e, ctx.cache.root);
    });
  },
};

/** `imgx cache ls`: the images recorded in the cache, with their sizes. */
async function listCache(ctx: CliContext): Promise<void> {
  const entries = await ctx.cache.entries();
  const rows = [];
  for (const e of entries) {
    const blobs = await reachableBlobs(ctx.cache, [e]);
    rows.push({
      reference: e.annotations[REF_ANNOTATION] ?? '',
      digest: e.digest,
      mediaType: e.mediaType,
      pulled: e.annotations[PULLED_ANNOTATION] ?? '',
      size: [...blobs.values()].reduce((a, b) => a + b, 0),
    });
  }
  const blobs = await ctx.cache.listBlobs();
  const total = blobs.reduce((a, b) => a + b.size, 0);
  if (ctx.json) {
    ctx.out(JSON.stringify({ cacheDir: ctx.cache.root, images: rows, blobs: blobs.length, totalSize: total }, null, 2));
    return;
  }
  if (rows.length) ctx.out(table([['REFERENCE', 'DIGEST', 'SIZE', 'PULLED'], ...rows.map((r) => [r.reference, shortDigest(r.digest), humanSize(r.size), r.pulled])]));
  ctx.out(`${ctx.cache.root}: ${rows.length} images, ${blobs.length} blobs, ${humanSize(total)}`);
}

const pruneCommand: CommandModule<GlobalArgs, PruneArgs> = {
  command: 'prune',
  describe: 'remove blobs that no cached image needs (--all: empty the cache)',
  builder: (y) => y.option('all', { type: 'boolean', describe: 'forget every image and remove every blob' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    // A read-only cache (or one on a failing disk) cannot be pruned: IMGX_IO naming it.
    const r = await pruneCache(ctx.cache, { all: argv.all === true }).catch((e: unknown) => {
      throw cacheIoError(e, ctx.cache.root);
    });
    if (ctx.json) ctx.out(JSON.stringify(r));
    else if (!ctx.quiet) ctx.out(`removed ${r.removedBlobs} blobs (${humanSize(r.freedBytes)})${r.removedEntries ? `, ${r.removedEntries} images` : ''}${r.removedTemps ? `, ${r.removedTemps} stale temp files` : ''}${r.removedRootfs ? `, ${r.removedRootfs} extracted root filesystems` : ''}`);
  },
};

export const cacheCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'cache <command>',
  describe: 'the blob cache: ls, prune',
  builder: (y) => y.command(lsCommand).command(pruneCommand).demandCommand(1),
  handler: () => {},
};
