// `imgx ls REF [PATH] [-l] [-R]`: list the image's final filesystem without extracting it, from the
// browse index (built by scanning the layers once per image, then read from the cache).
import type { CommandModule } from 'yargs';
import { listPath, listRecord, longRow, renderLong } from '../../export/browse.ts';
import { printableName } from '../../util/raw-name.ts';
import { Warnings } from '../../warnings.ts';
import { IMAGE_ARG_HELP, withImageTrees } from '../image-tree-command.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface Args extends GlobalArgs {
  image: string;
  path: string;
  long?: boolean;
  recursive?: boolean;
}

export const lsCommand: CommandModule<GlobalArgs, Args> = {
  command: 'ls <image> [path]',
  describe: "list a directory of the image's filesystem, without extracting it",
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .positional('path', { type: 'string', default: '/', describe: 'a path in the image (symlinks are followed inside the image)' })
      .option('long', { alias: 'l', type: 'boolean', describe: 'long format: mode, uid, gid, size, mtime (UTC), link target' })
      .option('recursive', { alias: 'R', type: 'boolean', describe: 'the whole subtree, paths relative to PATH' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    await withImageTrees(ctx, [argv.image], { warnings }, async ([it]) => {
      const listed = listPath(it.tree, argv.path, { long: argv.long === true, recursive: argv.recursive === true });
      if (ctx.json) ctx.out(JSON.stringify(listed.map((l) => listRecord(it.tree, l)), null, 2));
      else if (listed.length === 0) return;
      else if (argv.long) ctx.out(renderLong(listed.map((l) => longRow(it.tree, l))));
      // Names as bytes allow, control characters and bytes that are not UTF-8 as \xNN (--json:
      // such bytes are the lone surrogates U+DC80–U+DCFF, written \udcNN).
      else ctx.out(listed.map((l) => printableName(l.name)).join('\n'));
    });
  },
};

