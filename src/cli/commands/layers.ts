// `imgx layers REF`: what each layer adds, changes and removes in the final filesystem, with
// sizes and the history step that made it. The counts come from the browse index.
import type { CommandModule } from 'yargs';
import type { ImageConfig } from '../../image/config.ts';
import { safeText } from '../../util/terminal-text.ts';
import { printableName } from '../../util/raw-name.ts';
import { Warnings } from '../../warnings.ts';
import { IMAGE_ARG_HELP, withImageTrees } from '../image-tree-command.ts';
import { makeContext, type GlobalArgs } from '../context.ts';
import { humanSize, shortDigest, table } from '../format.ts';

interface Args extends GlobalArgs {
  image: string;
  paths?: boolean;
}

/** The stable `layers --json` record of one layer. */
export interface LayerRecord {
  index: number;
  digest: string;
  mediaType: string;
  size: number;
  diffId: string | null;
  createdBy: string | null;
  created: string | null;
  added: number;
  modified: number;
  removed: number;
  addedBytes: number;
  modifiedBytes: number;
  paths?: { path: string; change: 'added' | 'modified' | 'removed'; type: string; size: number }[];
}

/** The history steps that made layers (empty_layer steps made none), in layer order. */
export function layerHistory(config: ImageConfig): { created?: string; created_by?: string; comment?: string }[] {
  return (config.history ?? []).filter((h) => h.empty_layer !== true);
}

export const layersCommand: CommandModule<GlobalArgs, Args> = {
  command: 'layers <image>',
  describe: 'what each layer adds, modifies and removes, with sizes and the step that made it',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .option('paths', { alias: 'v', type: 'boolean', describe: 'also list the paths each layer adds, modifies and removes' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    await withImageTrees(ctx, [argv.image], { warnings }, async ([it]) => {
      const history = layerHistory(it.image.config);
      const diffIds = it.image.config.rootfs?.diff_ids ?? [];
      const records: LayerRecord[] = it.image.parsed.layers.map((desc, i) => {
        const ch = it.tree.layerChanges.find((c) => c.layer === i);
        const h = history[i];
        return {
          index: i,
          digest: desc.digest,
          mediaType: desc.mediaType,
          size: desc.size,
          diffId: diffIds[i] ?? null,
          createdBy: h?.created_by ?? h?.comment ?? null,
          created: h?.created ?? null,
          added: ch?.added ?? 0,
          modified: ch?.modified ?? 0,
          removed: ch?.removed ?? 0,
          addedBytes: ch?.addedBytes ?? 0,
          modifiedBytes: ch?.modifiedBytes ?? 0,
          ...(argv.paths ? { paths: (ch?.paths ?? []).map((p) => ({ path: shown(p.path), change: p.change, type: p.type, size: p.size })) } : {}),
        };
      });
      if (ctx.json) {
        ctx.out(JSON.stringify({ reference: argv.image, manifest: it.image.manifest.digest, layers: records, fileCount: it.tree.fileCount, totalSize: it.tree.totalSize }, null, 2));
        return;
      }
      const rows = [['#', 'DIGEST', 'SIZE', 'ADDED', 'MODIFIED', 'REMOVED', 'CREATED BY']];
      for (const r of records) {
        rows.push([
          String(r.index),
          shortDigest(r.digest),
          humanSize(r.size),
          `${r.added} (${humanSize(r.addedBytes)})`,
          `${r.modified} (${humanSize(r.modifiedBytes)})`,
          String(r.removed),
          oneLine(r.createdBy ?? '', 80),
        ]);
      }
      const lines = [table(rows)];
      if (argv.paths) {
        for (const r of records) {
          lines.push('', `layer ${r.index} ${shortDigest(r.digest)}:`);
          for (const p of r.paths ?? []) {
            const mark = p.change === 'added' ? 'A' : p.change === 'removed' ? 'D' : 'M';
            const size = p.type === 'file' && p.change !== 'removed' ? ` (${humanSize(p.size)})` : '';
            lines.push(`  ${mark} ${printableName(p.path)}${p.type === 'directory' && p.path !== '/' ? '/' : ''}${size}`);
          }
        }
      }
      lines.push('', `${records.length} layers, ${humanSize(records.reduce((a, r) => a + r.size, 0))} compressed; final tree: ${it.tree.fileCount} files, ${humanSize(it.tree.totalSize)}`);
      ctx.out(lines.join('\n'));
    });
  },
};

function shown(path: string): string {
  return path === '.' ? '/' : `/${path.replace(/^\/+/, '')}`;
}

/** The image's own text (created_by comes from its config): printable, one line, cut. */
function oneLine(s: string, max: number): string {
  return safeText(s, max);
}
