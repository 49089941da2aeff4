// `imgx diff REF1 REF2`: paths added, removed and modified from the first image's filesystem to the
// second's, from the two browse indexes. File contents are read only where the indexes cannot
// tell: same size, different layer entries; then both sides are hashed, each layer read once.
import type { CommandModule } from 'yargs';
import { contentKey, hashContents } from '../../export/cat.ts';
import { countChanges, describeChange, diffTrees, settleDiff, type ContentCheck } from '../../export/diff.ts';
import type { LayerReader } from '../../layers/layer-reader.ts';
import { Warnings } from '../../warnings.ts';
import { withImageTrees } from '../image-tree-command.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface Args extends GlobalArgs {
  image1: string;
  image2: string;
}

function layerOf(layers: readonly LayerReader[], index: number): LayerReader {
  return layers.find((l) => l.index === index) ?? layers[index]!;
}

export const diffCommand: CommandModule<GlobalArgs, Args> = {
  command: 'diff <image1> <image2>',
  describe: "paths added (A), removed (D) and modified (M) from the first image's filesystem to the second's",
  builder: (y) =>
    y
      .positional('image1', { type: 'string', demandOption: true, describe: 'the image to compare from' })
      .positional('image2', { type: 'string', demandOption: true, describe: 'the image to compare to' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    // One after the other: two pulls would fight over the progress display.
    await withImageTrees(ctx, [argv.image1, argv.image2], { warnings }, async ([a, b]) => {
      const diffIds = (layers: readonly LayerReader[], n: number) => Array.from({ length: n }, (_, i) => layerOf(layers, i)?.diffId);
      const raw = diffTrees(a.tree, b.tree, {
        diffIdsA: diffIds(a.layers, a.layers.length),
        diffIdsB: diffIds(b.layers, b.layers.length),
      });
      let hashes = new Map<string, string>();
      if (raw.contentChecks.length > 0) {
        if (ctx.debug) process.stderr.write(`debug: diff: hashing ${raw.contentChecks.length} files of equal size on both sides\n`);
        hashes = await hashContents(raw.contentChecks.flatMap((c) => [{ layers: a.layers, source: c.a }, { layers: b.layers, source: c.b }]));
      }
      const differs = (c: ContentCheck) =>
        hashes.get(contentKey(layerOf(a.layers, c.a.layer), c.a.offset)) !== hashes.get(contentKey(layerOf(b.layers, c.b.layer), c.b.offset));
      const changes = settleDiff(a.tree, b.tree, raw, differs);
      if (ctx.json) {
        const side = (it: typeof a, ref: string) => ({ reference: ref, digest: it.image.root.digest, manifest: it.image.manifest.digest });
        ctx.out(JSON.stringify({ from: side(a, argv.image1), to: side(b, argv.image2), summary: countChanges(changes), changes }, null, 2));
      } else if (changes.length > 0) {
        ctx.out(changes.map(describeChange).join('\n'));
      }
    });
  },
};
