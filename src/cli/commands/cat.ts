// `imgx cat REF PATH`: one file of the image on stdout, read from the one layer entry that holds
// it (the browse index says which), without extracting anything.
import type { CommandModule } from 'yargs';
import { copyContent, locateFile } from '../../export/cat.ts';
import { Warnings } from '../../warnings.ts';
import { IMAGE_ARG_HELP, withImageTrees } from '../image-tree-command.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface Args extends GlobalArgs {
  image: string;
  path: string;
}

export const catCommand: CommandModule<GlobalArgs, Args> = {
  command: 'cat <image> <path>',
  describe: 'print a file of the image (symlinks followed inside the image), without extracting it',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .positional('path', { type: 'string', demandOption: true, describe: 'a regular file in the image' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    await withImageTrees(ctx, [argv.image], { warnings }, async ([it]) => {
      const file = locateFile(it.tree, argv.path);
      try {
        await copyContent(it.layers, file.source, process.stdout);
      } catch (e) {
        // `imgx cat … | head`: the reader leaving early is not our failure.
        if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
      }
    });
  },
};
