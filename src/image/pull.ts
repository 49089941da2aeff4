// Pull: resolve the image for a platform and bring every blob into the cache, verified. Layers
// download in parallel (bounded); blobs the cache already holds are not fetched again.
import type { Descriptor } from './descriptor.ts';
import type { BlobCache } from './blob-cache.ts';
import type { BlobWriting } from './growing-blob.ts';
import type { ImageSource } from './source.ts';
import type { PlatformSpec } from './platform.ts';
import { descriptorOf, resolveImage, type ResolvedImage } from './resolve.ts';

export interface PullProgress {
  begin?(layers: Descriptor[]): void;
  bytes?(layer: Descriptor, n: number): void;
  done?(layer: Descriptor, fromCache: boolean): void;
  /** A layer's download is being written into the cache (a reader may follow it: growing-blob.ts). */
  writing?(layer: Descriptor, w: BlobWriting): void;
  end?(): void;
}

export interface PullOptions {
  platform: PlatformSpec;
  /** The platform was asked for explicitly (see resolveImage). */
  strictPlatform?: boolean;
  /** Recorded in the cache's index.json so `cache ls` and offline use know the image. */
  refKey?: string;
  concurrency?: number;
  progress?: PullProgress;
  signal?: AbortSignal;
}

export interface PullResult {
  image: ResolvedImage;
  /** Layers fetched now, and layers the cache already had. */
  fetched: Descriptor[];
  reused: Descriptor[];
  bytesFetched: number;
}

export async function pullImage(source: ImageSource, cache: BlobCache, opts: PullOptions): Promise<PullResult> {
  await cache.init();
  const image = await resolveImage(source, opts.platform, opts.strictPlatform === true);
  const layers = image.parsed.layers;
  const fetched: Descriptor[] = [];
  const reused: Descriptor[] = [];
  let bytesFetched = 0;
  opts.progress?.begin?.(layers);

  // Distinct layers only: an image may list the same blob twice.
  const unique = [...new Map(layers.map((l) => [l.digest, l])).values()];
  let next = 0;
  // The first failure stops the other workers and aborts their downloads.
  const abort = new AbortController();
  opts.signal?.addEventListener('abort', () => abort.abort(opts.signal!.reason), { once: true });
  const worker = async () => {
    while (next < unique.length && !abort.signal.aborted) {
      const layer = unique[next++]!;
      if (await cache.has(layer)) {
        await cache.touch(layer.digest);
        reused.push(layer);
        opts.progress?.done?.(layer, true);
        continue;
      }
      const stream = await source.openBlob(layer, {
        onProgress: (n) => {
          bytesFetched += n;
          opts.progress?.bytes?.(layer, n);
        },
        signal: abort.signal,
      });
      // Every ImageSource verifies its blob streams; the cache need not hash the bytes again.
      try {
        await cache.ingest(layer, stream, { verified: true, onWriting: (w) => opts.progress?.writing?.(layer, w) });
      } catch (e) {
        abort.abort(e);
        throw e;
      }
      fetched.push(layer);
      opts.progress?.done?.(layer, false);
    }
  };
  const n = Math.max(1, Math.min(opts.concurrency ?? 4, unique.length));
  const results = await Promise.allSettled(Array.from({ length: n }, worker));
  opts.progress?.end?.();
  const failure = results.find((r) => r.status === 'rejected');
  if (failure) throw (failure as PromiseRejectedResult).reason;

  if (opts.refKey) {
    await cache.recordRef(opts.refKey, descriptorOf(image.root), { 'dev.imgx.manifest': image.manifest.digest });
  }
  return { image, fetched, reused, bytesFetched };
}
