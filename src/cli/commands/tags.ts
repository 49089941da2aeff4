import type { CommandModule } from 'yargs';
import { UnsupportedError } from '../../errors.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface Args extends GlobalArgs {
  repo: string;
}

export const tagsCommand: CommandModule<GlobalArgs, Args> = {
  command: 'tags <repo>',
  describe: 'list the tags of a repository (or the ref names of an OCI layout)',
  builder: (y) => y.positional('repo', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const { source } = await ctx.open(argv.repo);
    try {
      if (!source.listTags) throw new UnsupportedError(`${source.displayName}: this source has no tags`);
      const tags = await source.listTags();
      ctx.out(ctx.json ? JSON.stringify(tags) : tags.join('\n'));
    } finally {
      await source.close();
    }
  },
};
