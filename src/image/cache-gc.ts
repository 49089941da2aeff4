// Reachability in the cache: which blobs the recorded images still need, and pruning the rest.
import { rm } from 'node:fs/promises';
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
  return { removedBlobs, freedBytes, removedTemps, removedEntries };
}
