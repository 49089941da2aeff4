import type { CommandModule } from 'yargs';
import { describeImage, type ImageDescription } from '../../image/describe.ts';
import { resolveImage } from '../../image/resolve.ts';
import { formatPlatform } from '../../image/platform.ts';
import { safeText } from '../../util/terminal-text.ts';
import { makeContext, type GlobalArgs } from '../context.ts';
import { humanSize, table } from '../format.ts';

interface Args extends GlobalArgs {
  image: string;
}

export const inspectCommand: CommandModule<GlobalArgs, Args> = {
  command: 'inspect <image>',
  describe: 'describe an image: digest, platforms, config, layers, history, size',
  builder: (y) => y.positional('image', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const { source, refKey } = await ctx.open(argv.image);
    try {
      const image = await resolveImage(source, ctx.platform, ctx.platformExplicit);
      const d = describeImage(image, refKey, source.displayName);
      ctx.out(ctx.json ? JSON.stringify(d, null, 2) : renderHuman(d));
    } finally {
      await source.close();
    }
  },
};

/** Text from the image's config, on a terminal line: printable and bounded (safeText). */
function t(s: string, max = 1000): string {
  return safeText(s, max);
}

function renderHuman(d: ImageDescription): string {
  const lines: string[] = [];
  const kv: string[][] = [
    ['Reference', d.reference],
    ['Digest', d.digest],
    ['Media type', d.mediaType],
  ];
  if (d.platforms) kv.push(['Platforms', d.platforms.map((p) => formatPlatform(p)).join(', ')]);
  kv.push(['Manifest', `${d.manifest.digest} (${d.manifest.mediaType})`]);
  kv.push(['Platform', formatPlatform(d.platform)]);
  kv.push(['Config', d.config.digest]);
  if (d.config.created) kv.push(['Created', t(d.config.created)]);
  if (d.config.author) kv.push(['Author', t(d.config.author)]);
  kv.push(['Entrypoint', t(JSON.stringify(d.config.entrypoint))]);
  kv.push(['Cmd', t(JSON.stringify(d.config.cmd))]);
  kv.push(['User', t(d.config.user) || '(root)']);
  kv.push(['Working dir', t(d.config.workingDir) || '/']);
  if (d.config.exposedPorts.length) kv.push(['Exposed ports', t(d.config.exposedPorts.join(', '))]);
  if (d.config.volumes.length) kv.push(['Volumes', t(d.config.volumes.join(', '))]);
  if (d.config.stopSignal) kv.push(['Stop signal', t(d.config.stopSignal)]);
  kv.push(['Total size', `${humanSize(d.totalSize)} (${d.totalSize} bytes)`]);
  lines.push(table(kv.map(([k, v]) => [`${k}:`, v!])));
  if (d.config.env.length) lines.push('Env:', ...d.config.env.map((e) => `  ${t(e)}`));
  const labels = Object.entries(d.config.labels);
  if (labels.length) lines.push('Labels:', ...labels.map(([k, v]) => `  ${t(k, 200)}=${t(v)}`));
  lines.push(`Layers (${d.layers.length}):`);
  if (d.layers.length) lines.push(table(d.layers.map((l) => ['  ' + l.digest, humanSize(l.size), l.mediaType])));
  if (d.history.length) {
    lines.push('History:');
    for (const h of d.history) lines.push(`  ${t(h.created ?? '', 40)}  ${h.emptyLayer ? '(empty) ' : ''}${t(h.createdBy ?? h.comment ?? '', 120)}`);
  }
  return lines.join('\n');
}
