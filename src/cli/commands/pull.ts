import type { CommandModule } from 'yargs';
import { pullImage } from '../../image/pull.ts';
import { cacheIoError } from '../../io-errors.ts';
import { IMAGE_ARG_HELP } from '../image-tree-command.ts';
import { makeContext, type GlobalArgs } from '../context.ts';
import { humanSize } from '../format.ts';
import { pullProgressFor } from '../progress.ts';

interface Args extends GlobalArgs {
  image: string;
  jobs: number;
}

export const pullCommand: CommandModule<GlobalArgs, Args> = {
  command: 'pull <image>',
  describe: 'fetch and verify every blob of an image into the cache',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .option('jobs', { type: 'number', default: 4, describe: 'layers downloaded at once' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const { source, refKey } = await ctx.open(argv.image);
    try {
      const progress = pullProgressFor(process.stderr, !ctx.quiet && !ctx.json);
      // A full or read-only cache: IMGX_IO naming it; a failed pull leaves no temporary file (blob-cache.ts).
      const r = await pullImage(source, ctx.cache, { platform: ctx.platform, strictPlatform: ctx.platformExplicit, refKey, concurrency: Math.max(1, argv.jobs), ...(progress ? { progress } : {}) }).catch((e: unknown) => {
        throw cacheIoError(e, ctx.cache.root);
      });
      const layers = r.image.parsed.layers;
      if (ctx.json) {
        ctx.out(
          JSON.stringify(
            {
              reference: refKey,
              digest: r.image.root.digest,
              manifest: r.image.manifest.digest,
              config: r.image.parsed.config.digest,
              layers: layers.map((l) => ({ digest: l.digest, size: l.size, cached: r.reused.some((x) => x.digest === l.digest) })),
              bytesFetched: r.bytesFetched,
              cacheDir: ctx.cache.root,
            },
            null,
            2,
          ),
        );
      } else if (!ctx.quiet) {
        const total = layers.reduce((a, l) => a + l.size, 0);
        ctx.out(`${refKey}@${r.image.root.digest}`);
        ctx.out(`  ${layers.length} layers, ${humanSize(total)} (${r.fetched.length} fetched, ${r.reused.length} already cached)`);
      }
    } finally {
      await source.close();
    }
  },
};
