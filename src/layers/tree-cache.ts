// The browse index: an image's FlatTree saved in the cache under its manifest digest
// (<cacheRoot>/imgx-index/<alg>/<hex>.json.gz), so ls, cat, layers, diff and a second extract skip
// pass 1. Written atomically; a missing, unreadable, corrupt or older-format file reads as absent,
// and the caller simply scans again.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzip, gzip, constants } from 'node:zlib';
import { writeFileAtomic } from '../image/atomic-file.ts';
import { parseDigest } from '../image/digest.ts';
import { FlatTree, FORMAT_VERSION } from './flat-tree.ts';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Tells this file apart from any other JSON that might sit there. */
const FORMAT = 'imgx-flat-tree';

export function treeIndexPath(cacheRoot: string, manifestDigest: string): string {
  const { algorithm, hex } = parseDigest(manifestDigest);
  return join(cacheRoot, 'imgx-index', algorithm, `${hex}.json.gz`);
}

export async function loadTree(cacheRoot: string, manifestDigest: string): Promise<FlatTree | undefined> {
  const path = treeIndexPath(cacheRoot, manifestDigest);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch {
    return undefined;
  }
  try {
    const j = JSON.parse((await gunzipAsync(data)).toString('utf8')) as { format?: unknown; version?: unknown; digest?: unknown; tree?: unknown };
    if (j.format !== FORMAT || j.version !== FORMAT_VERSION || j.digest !== manifestDigest) return undefined;
    return FlatTree.fromJSON(j.tree);
  } catch {
    return undefined;
  }
}

export async function saveTree(cacheRoot: string, manifestDigest: string, tree: FlatTree): Promise<void> {
  const path = treeIndexPath(cacheRoot, manifestDigest);
  const json = JSON.stringify({ format: FORMAT, version: FORMAT_VERSION, digest: manifestDigest, tree: tree.toJSON() });
  // Level 3: most of level 9's ratio on this repetitive JSON at a fraction of the time.
  await writeFileAtomic(path, await gzipAsync(json, { level: 3, strategy: constants.Z_DEFAULT_STRATEGY }));
}
