// The read-only root filesystem every run of an image starts from: extracted once per manifest
// digest into the cache (`<cache>/imgx-rootfs/sha256/<hex>`), through the same safe directory writer
// as `imgx extract`, and never written again: each run gets its own writable layer on top.
// Extracted as root it has the image's owners and device nodes; without root it cannot, so that
// tree is kept apart (`<hex>.rootless`) and a later run as root does not take it for the real one.
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CliContext } from '../cli/context.ts';
import { isImgxError } from '../errors.ts';
import { parseDigest } from '../image/digest.ts';
import { resolveImage, type ResolvedImage } from '../image/resolve.ts';
import type { Warnings } from '../warnings.ts';

export interface ImageRootfs {
  image: ResolvedImage;
  /** The extracted tree (read-only by convention: runs never write to it). */
  dir: string;
  /** False when this run found it in the cache. */
  extracted: boolean;
}

export function rootfsCachePath(cacheRoot: string, manifestDigest: string, asRoot: boolean): string {
  const { algorithm, hex } = parseDigest(manifestDigest);
  return join(cacheRoot, 'imgx-rootfs', algorithm, asRoot ? hex : `${hex}.rootless`);
}

async function isDir(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => undefined))?.isDirectory() === true;
}

export async function imageRootfs(ctx: CliContext, image: string, warnings: Warnings, asRoot: boolean): Promise<ImageRootfs> {
  const opened = await ctx.open(image);
  let resolved: ResolvedImage;
  try {
    resolved = await resolveImage(opened.source, ctx.platform, ctx.platformExplicit);
  } finally {
    await opened.source.close();
  }
  const dir = rootfsCachePath(ctx.cache.root, resolved.manifest.digest, asRoot);
  if (await isDir(dir)) return { image: resolved, dir, extracted: false };

  // The flatten stage and the writer are loaded only when there is something to extract: a run of a
  // cached image starts without them.
  const [{ debugTreeOrigin }, { writeDirectory }, { emitTree }, { openImageTree }] = await Promise.all([
    import('../cli/image-tree-command.ts'),
    import('../export/dir-writer.ts'),
    import('../layers/emit.ts'),
    import('../layers/image-tree.ts'),
  ]);
  const it = await openImageTree(ctx, image, { warnings, spool: true });
  // The tag may have moved since it was resolved above: the tree is the one to key by.
  const target = rootfsCachePath(ctx.cache.root, it.image.manifest.digest, asRoot);
  try {
    debugTreeOrigin(ctx, it);
    await writeDirectory(emitTree(it.tree, it.layers), target, { warnings, asRoot });
  } catch (e) {
    // Another imgx extracted the same image at the same time and renamed its tree into place first.
    if (!(isImgxError(e) && e.code === 'IMGX_DEST_EXISTS' && (await isDir(target)))) throw e;
  } finally {
    await it.close();
  }
  return { image: it.image, dir: target, extracted: true };
}
