// A layer as the flatten stage sees it: something that opens to its uncompressed tar stream, any
// number of times (pass 1 scans every layer, pass 2 re-reads those that provide content). The
// compressed bytes come verified from the source; the uncompressed ones are checked against the
// config's diff_id as they stream.
import { Readable } from 'node:stream';
import { ImgxError, UnsupportedError } from '../errors.ts';
import type { Descriptor } from '../image/descriptor.ts';
import { parseDigest, sha256 } from '../image/digest.ts';
import { DigestCheck } from '../image/verify-stream.ts';
import { OCI_LAYER, layerCompression } from '../image/media-types.ts';
import type { ResolvedImage } from '../image/resolve.ts';
import type { ImageSource } from '../image/source.ts';
import { decompress } from './decompress.ts';
import type { RecycledChunks } from './offthread-decode.ts';

export interface LayerOpenOptions {
  /** Default true: the stream errors at its end with IMGX_DIFFID_MISMATCH unless its sha256 equals diffId. */
  verifyDiffId?: boolean;
  signal?: AbortSignal;
}

export interface LayerReader {
  /** 0 = bottom layer. */
  index: number;
  /** The manifest's layer descriptor. */
  desc: Descriptor;
  /** From the config's rootfs.diff_ids. */
  diffId: string | undefined;
  /** The uncompressed tar stream. */
  open(opts?: LayerOpenOptions): Promise<Readable>;
  /**
   * The uncompressed stream as recycled chunks (offthread-decode.ts), the diff_id checked; for
   * readers that copy what they keep. Undefined (or resolving to undefined) when this layer cannot
   * be read that way: use `open`.
   */
  openChunks?(opts: { signal?: AbortSignal }): Promise<RecycledChunks | undefined>;
}

/** How a layer is named in messages: `layer 2 (sha256:abcdef123456)`. */
export function layerName(index: number, digest: string): string {
  return `layer ${index} (${digest.slice(0, 19)})`;
}

/** The error for a layer whose uncompressed content hashed to `actual` instead of its diff_id. */
export function diffIdMismatch(what: string, diffId: string, actual: string): ImgxError {
  return new ImgxError('IMGX_DIFFID_MISMATCH', `${what}: uncompressed content does not match the config's diff_id: expected ${diffId}, got ${actual}`);
}

/** A pass-through that hashes what it passes and fails at the end unless the hash is `diffId`. */
export class DiffIdCheck extends DigestCheck {
  constructor(diffId: string, what: string) {
    super(diffId, (actual) => diffIdMismatch(what, diffId, actual));
  }
}

/** `stream` followed by a diff_id check; destroying either end tears down both. */
function withDiffIdCheck(stream: Readable, diffId: string, what: string): Readable {
  const check = new DiffIdCheck(diffId, what);
  stream.on('error', (e) => check.destroy(e));
  check.on('close', () => {
    if (!check.readableEnded) stream.destroy();
  });
  return stream.pipe(check);
}

function onAbort(stream: Readable, signal: AbortSignal | undefined): Readable {
  if (!signal) return stream;
  const abort = () => stream.destroy(new ImgxError('IMGX_INTERRUPTED', 'interrupted', { cause: signal.reason }));
  if (signal.aborted) abort();
  else {
    signal.addEventListener('abort', abort, { once: true });
    stream.on('close', () => signal.removeEventListener('abort', abort));
  }
  return stream;
}

/** A layer's uncompressed stream from its compressed bytes (`compressed`), checked as LayerReader.open says. */
export function openLayerStream(compressed: () => Promise<Readable>, desc: Descriptor, diffId: string | undefined, what: string, opts: LayerOpenOptions): Promise<Readable> {
  const compression = layerCompression(desc.mediaType);
  if (!compression) return Promise.reject(new UnsupportedError(`${what}: unsupported layer media type ${desc.mediaType}`));
  // Check the diff_id's form before reading anything.
  if (diffId !== undefined) parseDigest(diffId);
  return compressed().then((raw) => {
    let s = decompress(raw, compression, what);
    if (opts.verifyDiffId !== false && diffId !== undefined) s = withDiffIdCheck(s, diffId, what);
    return onAbort(s, opts.signal);
  });
}

/** One reader per layer of the image, bottom first. */
export function layerReaders(source: ImageSource, image: ResolvedImage): LayerReader[] {
  const diffIds = image.config.rootfs?.diff_ids;
  return image.parsed.layers.map((desc, index): LayerReader => {
    const diffId = diffIds?.[index];
    const what = layerName(index, desc.digest);
    return {
      index,
      desc,
      diffId,
      // The compressed bytes need no hash of their own when the diff_id is checked (it proves
      // the content), or when the caller reads without checking (pass 2 stops early anyway).
      open: (opts = {}) => {
        const trustContent = opts.verifyDiffId === false || diffId !== undefined;
        return openLayerStream(() => source.openBlob(desc, { ...(opts.signal ? { signal: opts.signal } : {}), trustContent }), desc, diffId, what, opts);
      },
    };
  });
}

/** Streams a buffer in 64 KiB slices, as a file or a socket would. */
function bufferStream(buf: Buffer): Readable {
  let pos = 0;
  return new Readable({
    read() {
      if (pos >= buf.length) {
        this.push(null);
        return;
      }
      const end = Math.min(buf.length, pos + (1 << 16));
      const chunk = buf.subarray(pos, end);
      pos = end;
      this.push(chunk);
    },
  });
}

/** For tests: layers from uncompressed tars, their digests and diff_ids computed. */
export function layerReadersFromBuffers(tars: Buffer[]): LayerReader[] {
  return tars.map((tar, index): LayerReader => {
    const digest = sha256(tar);
    const desc: Descriptor = { mediaType: OCI_LAYER, digest, size: tar.length };
    const what = layerName(index, digest);
    return { index, desc, diffId: digest, open: (opts = {}) => openLayerStream(async () => bufferStream(tar), desc, digest, what, opts) };
  });
}
