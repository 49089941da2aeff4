// `imgx ls REF [PATH] [-l] [-R]`: list the image's final filesystem without extracting it, from the
// browse index (built by scanning the layers once per image, then read from the cache).
import type { CommandModule } from 'yargs';
import { listPath, listRecord, longRow, renderLong } from '../../export/browse.ts';
import { openImageTree } from '../../layers/image-tree.ts';
import { Warnings } from '../../warnings.ts';
import { makeContext, type CliContext, type GlobalArgs } from '../context.ts';

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
      .positional('image', { type: 'string', demandOption: true, describe: 'image (docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF])' })
      .positional('path', { type: 'string', default: '/', describe: 'a path in the image (symlinks are followed inside the image)' })
      .option('long', { alias: 'l', type: 'boolean', describe: 'long format: mode, uid, gid, size, mtime (UTC), link target' })
      .option('recursive', { alias: 'R', type: 'boolean', describe: 'the whole subtree, paths relative to PATH' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    const it = await openImageTree(ctx, argv.image, { warnings });
    try {
      debugTreeOrigin(ctx, it);
      const listed = listPath(it.tree, argv.path, { long: argv.long === true, recursive: argv.recursive === true });
      if (ctx.json) ctx.out(JSON.stringify(listed.map((l) => listRecord(it.tree, l)), null, 2));
      else if (listed.length === 0) return;
      else if (argv.long) ctx.out(renderLong(listed.map((l) => longRow(it.tree, l))));
      else ctx.out(listed.map((l) => l.name).join('\n'));
    } finally {
      await it.close();
      warnings.flush();
    }
  },
};

/**
 * Under --debug, whether the browse index came from the cache or from scanning the layers: the
 * tests read this line to check that a second ls/cat/diff scans nothing.
 */
export function debugTreeOrigin(ctx: CliContext, it: { image: { manifest: { digest: string } }; layers: readonly unknown[]; fromIndex: boolean }): void {
  if (!ctx.debug) return;
  const how = it.fromIndex ? 'loaded from the cache, no layer scanned' : `built by scanning ${it.layers.length} layers`;
  process.stderr.write(`debug: browse index for ${it.image.manifest.digest}: ${how}\n`);
}
