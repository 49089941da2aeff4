// `imgx cat REF PATH`: one file of the image on stdout, read from the one layer entry that holds
// it (the browse index says which), without extracting anything.
import type { CommandModule } from 'yargs';
import { copyContent, locateFile } from '../../export/cat.ts';
import { openImageTree } from '../../layers/image-tree.ts';
import { Warnings } from '../../warnings.ts';
import { makeContext, type GlobalArgs } from '../context.ts';
import { debugTreeOrigin } from './ls.ts';

interface Args extends GlobalArgs {
  image: string;
  path: string;
}

export const catCommand: CommandModule<GlobalArgs, Args> = {
  command: 'cat <image> <path>',
  describe: 'print a file of the image (symlinks followed inside the image), without extracting it',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: 'image (docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF])' })
      .positional('path', { type: 'string', demandOption: true, describe: 'a regular file in the image' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    const it = await openImageTree(ctx, argv.image, { warnings });
    try {
      debugTreeOrigin(ctx, it);
      const file = locateFile(it.tree, argv.path);
      try {
        await copyContent(it.layers, file.source, process.stdout);
      } catch (e) {
        // `imgx cat … | head`: the reader leaving early is not our failure.
        if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
      }
    } finally {
      await it.close();
      warnings.flush();
    }
  },
};
