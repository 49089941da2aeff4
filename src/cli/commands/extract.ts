// `imgx extract REF DIR`: the image's flattened root filesystem into DIR, through the safe
// directory writer (src/export/dir-writer.ts). DIR must not exist or be empty.
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { extractImage } from '../../export/extract-image.ts';
import { Warnings } from '../../warnings.ts';
import { IMAGE_ARG_HELP, debugTreeOrigin } from '../image-tree-command.ts';
import { makeContext, type GlobalArgs } from '../context.ts';
import { humanSize } from '../format.ts';

interface Args extends GlobalArgs {
  image: string;
  dir: string;
}

export const extractCommand: CommandModule<GlobalArgs, Args> = {
  command: 'extract <image> <dir>',
  describe: 'write the flattened root filesystem of an image into a directory',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .positional('dir', { type: 'string', demandOption: true, describe: 'destination: must not exist, or be an empty directory' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const dest = resolve(argv.dir);
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    const t0 = performance.now();
    try {
      // Under --debug: seconds since the process started, per phase.
      const phase = (what: string) => ctx.debug && process.stderr.write(`debug: extract: ${what} at ${(performance.now() / 1000).toFixed(2)} s\n`);
      const { tree: it, result: r } = await extractImage(ctx, argv.image, dest, { warnings, phase, opened: (it) => debugTreeOrigin(ctx, it) });
      const seconds = (performance.now() - t0) / 1000;
      if (ctx.json) {
        ctx.out(
          JSON.stringify(
            {
              reference: argv.image,
              manifest: it.image.manifest.digest,
              dir: dest,
              files: r.files,
              dirs: r.dirs,
              links: r.links,
              special: r.special,
              bytes: r.bytes,
              seconds: Math.round(seconds * 1000) / 1000,
              warnings: warnings.summary(),
            },
            null,
            2,
          ),
        );
      } else if (!ctx.quiet) {
        const special = r.special ? `, ${r.special} devices and fifos` : '';
        ctx.out(`${argv.dir}: ${r.files} files, ${r.dirs} directories, ${r.links} links${special}, ${humanSize(r.bytes)} in ${seconds.toFixed(1)} s`);
      }
    } finally {
      warnings.flush();
    }
  },
};
