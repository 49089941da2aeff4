// What every command that reads an image's filesystem shares: the image argument's help text, and
// opening the tree(s) — pulling and scanning as needed — with the debug line, the closing and the
// warnings summary done once, here.
import { cacheIoError } from '../io-errors.ts';
import { openImageTree, type ImageTree } from '../layers/image-tree.ts';
import type { Warnings } from '../warnings.ts';
import type { CliContext } from './context.ts';

export { IMAGE_ARG_HELP } from './help-texts.ts';

export function debugTreeOrigin(ctx: CliContext, it: { image: { manifest: { digest: string } }; layers: readonly unknown[]; fromIndex: boolean }): void {
  if (!ctx.debug) return;
  const how = it.fromIndex ? 'loaded from the cache, no layer scanned' : `built by scanning ${it.layers.length} layers`;
  process.stderr.write(`debug: browse index for ${it.image.manifest.digest}: ${how}\n`);
}

/** Opens the trees of `images` in order, runs `fn`, then closes them and prints the warnings. */
export async function withImageTrees<const I extends readonly string[], T>(
  ctx: CliContext,
  images: I,
  opts: { warnings: Warnings; spool?: boolean },
  fn: (trees: { [K in keyof I]: ImageTree }) => Promise<T>,
): Promise<T> {
  const opened: (ImageTree & { close(): Promise<void> })[] = [];
  let failed = false;
  try {
    for (const image of images) {
      try {
        opened.push(await openImageTree(ctx, image, opts));
      } catch (e) {
        // Opening writes only to the cache (pulled blobs, layer spools): a full or read-only one
        // is IMGX_IO naming it.
        throw cacheIoError(e, ctx.cache.root);
      }
    }
    for (const it of opened) debugTreeOrigin(ctx, it);
    return await fn(opened as unknown as { [K in keyof I]: ImageTree });
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // After a failure, closing must not replace its error.
    for (const it of opened.reverse()) {
      if (failed) await it.close().catch(() => {});
      else await it.close();
    }
    opts.warnings.flush();
  }
}
