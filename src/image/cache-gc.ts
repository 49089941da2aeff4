// Reachability in the cache: which blobs the recorded images still need, and pruning the rest.
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobCache, CacheEntry } from './blob-cache.ts';
import { parseManifestBlob } from './manifest.ts';

/** Every blob reachable from the given entries, walking indexes and manifests the cache holds. */
export async function reachableBlobs(cache: BlobCache, entries: CacheEntry[]): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const walk = async (digest: string, mediaType: string, size: number, depth: number): Promise<void> => {
    if (seen.has(digest) || depth > 8) return;
    if (!(await cache.has({ digest, size: -1 }))) return;
    seen.set(digest, size);
    if (!/manifest|index/.test(mediaType)) return;
    let parsed;
    try {
      parsed = parseManifestBlob({ bytes: await cache.readBytes({ digest }), digest, mediaType });
    } catch {
      return; // a blob that is not a manifest after all
    }
    if (parsed.kind === 'index') {
      for (const m of parsed.manifests) await walk(m.digest, m.mediaType, m.size, depth + 1);
    } else {
      await walk(parsed.config.digest, parsed.config.mediaType, parsed.config.size, depth + 1);
      for (const l of parsed.layers) await walk(l.digest, l.mediaType, l.size, depth + 1);
    }
  };
  for (const e of entries) await walk(e.digest, e.mediaType, e.size, 0);
  return seen;
}

export interface PruneResult {
  removedBlobs: number;
  freedBytes: number;
  removedTemps: number;
  removedEntries: number;
  /** Root filesystems extracted for `imgx run`. */
  removedRootfs: number;
}

/** The file in a run directory that names the cached tree the run stands on (see src/run/run-dir.ts). */
export const RUN_LOWER_FILE = 'lower';

/** Cached trees that a run directory (running, or kept with --keep) stands on. */
async function rootfsInUse(cacheRoot: string): Promise<Set<string>> {
  const runs = join(cacheRoot, 'imgx-runs');
  const used = new Set<string>();
  for (const id of await readdir(runs).catch(() => [] as string[])) {
    const lower = await readFile(join(runs, id, RUN_LOWER_FILE), 'utf8').catch(() => '');
    if (lower) used.add(lower.trim());
  }
  return used;
}

/**
 * Removes the trees `imgx run` extracted (`imgx-rootfs/<alg>/<hex>[.rootless]`) whose image is no
 * longer recorded (all with `all`), and staging directories an interrupted extract left; never one a
 * run directory stands on.
 */
async function pruneRootfs(cacheRoot: string, keep: Map<string, number>, all: boolean, now: number): Promise<number> {
  const base = join(cacheRoot, 'imgx-rootfs');
  const inUse = await rootfsInUse(cacheRoot);
  const { removeTree } = await import('../export/remove-tree.ts');
  let removed = 0;
  for (const alg of await readdir(base).catch(() => [] as string[])) {
    for (const name of await readdir(join(base, alg)).catch(() => [] as string[])) {
      const path = join(base, alg, name);
      if (inUse.has(path)) continue;
      if (name.startsWith('.')) {
        const st = await stat(path).catch(() => undefined);
        if (!all && st && now - st.mtimeMs < 60 * 60_000) continue;
      } else if (!all && keep.has(`${alg}:${name.replace(/\.rootless$/, '')}`)) continue;
      await removeTree(path);
      removed++;
    }
  }
  return removed;
}

/**
 * Removes blobs no recorded image needs. Blobs touched within `graceMs` are kept: a pull running
 * at the same time writes its blobs before it records its image.
 */
export async function pruneCache(cache: BlobCache, opts: { all?: boolean; graceMs?: number; now?: number }): Promise<PruneResult> {
  const now = opts.now ?? Date.now();
  const grace = opts.graceMs ?? 10 * 60_000;
  const removedEntries = opts.all ? (await cache.removeEntries(() => true)).length : 0;
  const keep = await reachableBlobs(cache, await cache.entries());
  let removedBlobs = 0;
  let freedBytes = 0;
  for (const b of await cache.listBlobs()) {
    if (keep.has(b.digest)) continue;
    if (!opts.all && now - b.mtimeMs < grace) continue;
    await cache.removeBlob(b.digest);
    removedBlobs++;
    freedBytes += b.size;
  }
  let removedTemps = 0;
  for (const t of await cache.listTemps()) {
    // A temp file younger than an hour may belong to a pull still running.
    if (now - t.mtimeMs < 60 * 60_000 && !opts.all) continue;
    await rm(t.path, { recursive: true, force: true });
    removedTemps++;
  }
  const removedRootfs = await pruneRootfs(cache.root, keep, opts.all === true, now);
  return { removedBlobs, freedBytes, removedTemps, removedEntries, removedRootfs };
}
