// From an image argument to its flattened tree and readable layers: the orchestration that every
// flatten command (extract, export, ls, cat, layers, diff) starts with.
//
// Registry images are pulled into the blob cache, and the layers are read from there. The pull
// starts only when a layer is needed (a scan, or content), so `ls` on an image whose browse index
// is cached does not fetch anything; and a layer is handed to the scan as soon as it is in the cache,
// so downloads and the scan overlap. Local sources (oci:, oci-archive:, docker-archive:) are read in
// place, never copied into the cache. The tree comes from the browse index in the cache (keyed by
// the manifest digest) or from scanning the layers, and is then saved there.
import { pullImage, type PullProgress } from '../image/pull.ts';
import { resolveImage, type ResolvedImage } from '../image/resolve.ts';
import type { ImageSource, ManifestBlob } from '../image/source.ts';
import { parseImageArg } from '../image/transport.ts';
import type { CliContext } from '../cli/context.ts';
import { pullProgressFor } from '../cli/progress.ts';
import { Warnings } from '../warnings.ts';
import type { FlatTree } from './flat-tree.ts';
import { diffIdMismatch, layerName, layerReaders, openLayerStream, type LayerReader } from './layer-reader.ts';
import { canDecodeOffThread, decodeOffThread } from './offthread-decode.ts';
import { layerCompression } from '../image/media-types.ts';
import { BlobFollower, type BlobWriting } from '../image/growing-blob.ts';
import { scanLayers, type ContentSink } from './scan.ts';
import { spoolLayers, type LayerSpool } from './spooled-layers.ts';
import { join } from 'node:path';
import { loadTreeAndWarnings, saveTree, type RecordedWarning } from './tree-cache.ts';
import { retireIdleHelperThreads, warmHelperThreads } from '../offthread/pool.ts';

export interface ImageTree {
  image: ResolvedImage;
  layers: LayerReader[];
  tree: FlatTree;
  /** True when the tree came from the browse index in the cache (no layer was scanned). */
  fromIndex: boolean;
}

export interface OpenImageTreeOptions {
  warnings: Warnings;
  /**
   * The caller will read file contents (extract, export): when the layers must be scanned, spool
   * their uncompressed streams so that reading the contents does not inflate them a second time.
   */
  spool?: boolean;
  /**
   * When the layers must be scanned, their file contents go here as they are read (the extract
   * path stages them); no spool is needed then.
   */
  contents?: ContentSink;
}

/** The root manifest read once, however many times it is asked for (pull resolves the image again). */
function memoRoot(s: ImageSource): ImageSource {
  let root: Promise<ManifestBlob> | undefined;
  return {
    get displayName() {
      return s.displayName;
    },
    getRootManifest: () => (root ??= s.getRootManifest()),
    getManifest: (d) => s.getManifest(d),
    openBlob: (d, o) => s.openBlob(d, o),
    readBlob: (d, c) => s.readBlob(d, c),
    close: () => s.close(),
  };
}

/**
 * Per layer digest: resolves when the pull has put that blob in the cache, or has started writing
 * it (then with the writing, which a reader can follow).
 */
class LayerArrivals {
  private readonly waiting = new Map<string, { promise: Promise<BlobWriting | undefined>; resolve: (w: BlobWriting | undefined) => void; reject: (e: unknown) => void }>();
  private failure: { error: unknown } | undefined;

  private slot(digest: string) {
    let s = this.waiting.get(digest);
    if (!s) {
      let resolve!: (w: BlobWriting | undefined) => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<BlobWriting | undefined>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(() => {});
      s = { promise, resolve, reject };
      this.waiting.set(digest, s);
      if (this.failure) reject(this.failure.error);
    }
    return s;
  }

  /** The writing of the blob if it is under way, undefined once it is in the cache. */
  wait(digest: string): Promise<BlobWriting | undefined> {
    return this.slot(digest).promise;
  }

  arrived(digest: string): void {
    this.slot(digest).resolve(undefined);
  }

  writing(digest: string, w: BlobWriting): void {
    this.slot(digest).resolve(w);
  }

  failed(error: unknown): void {
    this.failure ??= { error };
    for (const s of this.waiting.values()) s.reject(error);
  }

  /** Chains the display's progress with the arrivals. */
  progress(display: PullProgress | undefined): PullProgress {
    return {
      begin: (layers) => display?.begin?.(layers),
      bytes: (layer, n) => display?.bytes?.(layer, n),
      done: (layer, fromCache) => {
        display?.done?.(layer, fromCache);
        this.arrived(layer.digest);
      },
      writing: (layer, w) => this.writing(layer.digest, w),
      end: () => display?.end?.(),
    };
  }
}

/** How long warm helper threads wait for work: the image's manifest and config come first. */
const WARM_MS = 1000;

/**
 * Pass 1's reads are over and the tree is about to be built: the moment extract's memory peaks (the
 * model, the tree and its index all exist). The helper threads are idle then, and the scan left
 * tens of MB of garbage that V8 would only collect once the heap reached its limit, so both go
 * first. `gc` exists when Node runs with --expose-gc, as bin/imgx.js starts it.
 */
function releasePassOneMemory(): void {
  retireIdleHelperThreads();
  (globalThis as { gc?: () => void }).gc?.();
}

/**
 * Pull what is missing into the cache (registry images; with the context's progress display),
 * then load the tree index for the manifest digest, or scan the layers and save it.
 */
export async function openImageTree(ctx: CliContext, image: string, opts?: OpenImageTreeOptions): Promise<ImageTree & { close(): Promise<void> }> {
  const warnings = opts?.warnings ?? new Warnings({ strict: ctx.strict });
  const arg = parseImageArg(image);
  // Extract reads layers on the helper threads (and hashes downloads there): start them while
  // the image is resolved, not when its first layer arrives.
  if (opts?.contents && arg.transport === 'docker' && canDecodeOffThread('gzip')) warmHelperThreads(WARM_MS);
  const opened = await ctx.open(image);
  const source = memoRoot(opened.source);
  const abort = new AbortController();
  let pulling: Promise<unknown> | undefined;
  let spool: LayerSpool | undefined;
  let saving: Promise<void> | undefined;
  const close = async () => {
    abort.abort(new Error('closed'));
    await pulling?.catch(() => {});
    await saving;
    await spool?.dispose().catch(() => {});
    await opened.source.close();
  };
  // The index keeps pass 1's warnings: a run from the index repeats them (and --strict fails on them).
  const indexed = async (digest: string) => {
    const hit = await loadTreeAndWarnings(ctx.cache.root, digest);
    if (!hit) return undefined;
    for (const w of hit.warnings) warnings.warn(w.code, w.message);
    return hit.tree;
  };
  try {
    const resolved = await resolveImage(source, ctx.platform);
    let layers = layerReaders(source, resolved);
    if (arg.transport === 'docker') {
      const arrivals = new LayerArrivals();
      const startPull = () => {
        pulling ??= pullImage(source, ctx.cache, {
          platform: ctx.platform,
          refKey: opened.refKey,
          progress: arrivals.progress(pullProgressFor(process.stderr, !ctx.quiet && !ctx.json)),
          signal: abort.signal,
        }).catch((e: unknown) => {
          arrivals.failed(e);
          throw e;
        });
        pulling.catch(() => {});
      };
      const largest = Math.max(...layers.map((l) => l.desc.size));
      layers = layers.map((l) => ({
        ...l,
        open: async (o = {}) => {
          startPull();
          const w = await arrivals.wait(l.desc.digest);
          // A reader that checks the diff_id may follow the download (the first writing wins;
          // a blob already complete is read from the cache as usual).
          if (w && o.verifyDiffId !== false && l.diffId !== undefined) {
            return openLayerStream(async () => new BlobFollower(w), l.desc, l.diffId, layerName(l.index, l.desc.digest), o);
          }
          return l.open(o);
        },
        // Pass 1 decodes on a worker, from the cache file or behind the download.
        openChunks: async (o) => {
          const compression = layerCompression(l.desc.mediaType);
          if (l.diffId === undefined || !compression || !canDecodeOffThread(compression)) return undefined;
          startPull();
          const w = await arrivals.wait(l.desc.digest);
          const what = layerName(l.index, l.desc.digest);
          const diffId = l.diffId;
          return decodeOffThread(w ? { writing: w } : { path: ctx.cache.blobPath(l.desc.digest), size: l.desc.size }, {
            compression,
            diffId,
            mismatch: (actual) => diffIdMismatch(what, diffId, actual),
            what,
            // The largest layer ends last: its hash goes to the other thread.
            hashOnOtherThread: l.desc.size === largest,
            ...(o.signal ? { signal: o.signal } : {}),
          });
        },
      }));
      // A pull started for content is waited for on close; one for the index is started below.
      const cached = await indexed(resolved.manifest.digest);
      if (cached) return { image: resolved, layers, tree: cached, fromIndex: true, close };
      startPull();
    } else {
      const cached = await indexed(resolved.manifest.digest);
      if (cached) return { image: resolved, layers, tree: cached, fromIndex: true, close };
    }
    if (opts?.spool && !opts.contents) {
      spool = await spoolLayers(layers, join(ctx.cache.root, 'tmp'));
      layers = spool.layers;
    }
    const recorded: RecordedWarning[] = [];
    const untap = warnings.tap((code, message) => recorded.push({ code, message }));
    let tree: FlatTree;
    try {
      tree = await scanLayers(layers, { warnings, signal: abort.signal, layersApplied: releasePassOneMemory, ...(opts?.contents ? { contents: opts.contents } : {}) });
    } catch (e) {
      // A scan that followed a download read its bytes before their digest was checked: garbage
      // from the registry fails the inflate or the tar before it fails the digest. The download's
      // own verdict is the one to report, so wait for it when the content looked bad.
      const code = (e as { code?: string }).code;
      if (pulling && (code === 'IMGX_BAD_LAYER' || code === 'IMGX_BAD_ARCHIVE' || code === 'IMGX_DIFFID_MISMATCH')) {
        const pullError = await pulling.then(
          () => undefined,
          (pe: unknown) => pe,
        );
        if (pullError !== undefined) throw pullError;
      }
      throw e;
    } finally {
      untap();
    }
    // The pull also records the reference in the cache; let it finish before the tree is used.
    await pulling;
    // The index is only a speed-up for later commands: it is compressed and written while the
    // caller goes on (extract's end is single-threaded, and this is ~40 ms of it), and close()
    // waits for it. A read-only cache still lets the command run.
    saving = saveTree(ctx.cache.root, resolved.manifest.digest, tree, recorded).catch((e: unknown) => {
      if (ctx.debug) ctx.warn(`browse index not saved: ${(e as Error).message}`);
    });
    return { image: resolved, layers, tree, fromIndex: false, close };
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
}
