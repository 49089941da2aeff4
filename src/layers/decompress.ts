// Layer decompression: gzip (concatenated members too), zstd (concatenated and skippable frames
// too), or none. The media type chooses; the first bytes must agree. node:zlib does the work on
// the thread pool in 1 MiB chunks, so several layers inflate in parallel without blocking.
// Errors of the data are IMGX_BAD_LAYER; errors of the input (a digest check) come through as they are.
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { ImgxError } from '../errors.ts';
import type { Compression } from '../image/media-types.ts';

export type { Compression };

const CHUNK = 1 << 20;

export function detectCompression(firstBytes: Buffer): Compression {
  const b = firstBytes;
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 4 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd && b[0] === 0x28) return 'zstd';
  // A zstd stream may start with a skippable frame (magic 0x184D2A5?).
  if (b.length >= 4 && (b[0]! & 0xf0) === 0x50 && b[1] === 0x2a && b[2] === 0x4d && b[3] === 0x18) return 'zstd';
  return 'none';
}

function badLayer(message: string, cause?: unknown): ImgxError {
  return new ImgxError('IMGX_BAD_LAYER', message, cause === undefined ? undefined : { cause });
}

function describe(c: Compression): string {
  return c === 'none' ? 'uncompressed' : `${c}-compressed`;
}

/**
 * Why a layer's first bytes (at least four, or all of a shorter stream) disagree with the
 * compression its media type declares, or undefined when they agree.
 */
export function magicMismatch(bytes: Uint8Array, declared: Compression, what: string): ImgxError | undefined {
  if (bytes.length === 0) {
    return declared === 'none' ? undefined : badLayer(`${what}: empty, but its media type says ${declared}`);
  }
  const head = Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(bytes.length, 4));
  const actual = detectCompression(head);
  if (actual === declared) return undefined;
  return badLayer(`${what}: its media type says ${describe(declared)} but the data is ${describe(actual)} (starts with ${head.toString('hex')})`);
}

/** Passes bytes through once the first four agree with the declared compression. */
class MagicCheck extends Transform {
  private readonly declared: Compression;
  private readonly what: string;
  private head: Buffer[] | undefined = [];
  private headLength = 0;

  constructor(declared: Compression, what: string) {
    super();
    this.declared = declared;
    this.what = what;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.head) return cb(null, chunk);
    this.head.push(chunk);
    this.headLength += chunk.length;
    if (this.headLength < 4) return cb();
    const all = this.head.length === 1 ? chunk : Buffer.concat(this.head);
    this.head = undefined;
    cb(magicMismatch(all, this.declared, this.what), all);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.head) return cb();
    const all = Buffer.concat(this.head);
    this.head = undefined;
    const err = magicMismatch(all, this.declared, this.what);
    if (err) return cb(err);
    if (all.length) this.push(all);
    cb();
  }
}

const ZSTD_MAGIC = 0xfd2fb528;
const FCS_SIZES = [0, 2, 4, 8];
const DID_SIZES = [0, 1, 2, 4];

/**
 * Cuts a zstd stream at frame boundaries. Node's zstd decompressor ends its output at the end of
 * the first frame when more input follows in the same write, silently dropping later frames
 * (zstd:chunked layers have thousands); fed one frame per write, it goes on frame after frame.
 * Walking the frame and block headers costs nothing next to decompression, and also catches
 * truncation and trailing garbage.
 */
class ZstdFrames extends Transform {
  private readonly what: string;
  private phase: 'magic' | 'descriptor' | 'frameHeader' | 'blockHeader' | 'blockData' | 'checksum' | 'skipSize' | 'skipData' = 'magic';
  /** Bytes wanted by the current phase, and the small ones gathered so far. */
  private need = 4;
  private small = Buffer.alloc(4);
  private have = 0;
  private checksum = false;
  private lastBlock = false;
  private offset = 0;
  private frames = 0;

  constructor(what: string) {
    super();
    this.what = what;
  }

  /** Called with the gathered bytes when a small phase is complete; sets the next phase. */
  private advance(): void {
    const b = this.small;
    switch (this.phase) {
      case 'magic': {
        const magic = b.readUInt32LE(0);
        if (magic === ZSTD_MAGIC) return this.go('descriptor', 1);
        if ((magic & 0xfffffff0) === 0x184d2a50) return this.go('skipSize', 4);
        throw badLayer(`${this.what}: ${this.frames ? 'unexpected data after the last zstd frame' : 'not a zstd frame'} at compressed offset ${this.offset - 4}`);
      }
      case 'descriptor': {
        const fhd = b[0]!;
        if (fhd & 0x08) throw badLayer(`${this.what}: corrupt zstd frame header at compressed offset ${this.offset - 1}`);
        const single = (fhd >> 5) & 1;
        this.checksum = ((fhd >> 2) & 1) === 1;
        const fcs = fhd >> 6;
        const rest = (single ? 0 : 1) + DID_SIZES[fhd & 3]! + (fcs === 0 ? single : FCS_SIZES[fcs]!);
        return rest ? this.go('frameHeader', rest) : this.go('blockHeader', 3);
      }
      case 'blockHeader': {
        const v = b[0]! | (b[1]! << 8) | (b[2]! << 16);
        this.lastBlock = (v & 1) === 1;
        const type = (v >> 1) & 3;
        if (type === 3) throw badLayer(`${this.what}: corrupt zstd block at compressed offset ${this.offset - 3}`);
        const size = type === 1 ? 1 : v >>> 3;
        if (size > 0) return this.go('blockData', size);
        return this.afterBlock();
      }
      case 'skipSize':
        return this.go('skipData', b.readUInt32LE(0));
      default:
        throw new Error(`unexpected phase ${this.phase}`);
    }
  }

  private go(phase: ZstdFrames['phase'], need: number): void {
    this.phase = phase;
    this.need = need;
    this.have = 0;
    if (need === 0) this.endOfPayload();
  }

  private afterBlock(): void {
    if (!this.lastBlock) return this.go('blockHeader', 3);
    if (this.checksum) return this.go('checksum', 4);
    this.endFrame();
  }

  /** A phase whose bytes are passed without a look (frame header rest, block data, checksum, skippable payload) is complete. */
  private endOfPayload(): void {
    if (this.phase === 'frameHeader') return this.go('blockHeader', 3);
    if (this.phase === 'blockData') return this.afterBlock();
    this.endFrame();
  }

  private frameEnded = false;
  private endFrame(): void {
    this.frames++;
    this.frameEnded = true;
    this.phase = 'magic';
    this.need = 4;
    this.have = 0;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      let pos = 0;
      let start = 0;
      while (pos < chunk.length) {
        const small = this.phase === 'magic' || this.phase === 'descriptor' || this.phase === 'blockHeader' || this.phase === 'skipSize';
        const n = Math.min(this.need - this.have, chunk.length - pos);
        if (small) chunk.copy(this.small, this.have, pos, pos + n);
        pos += n;
        this.offset += n;
        this.have += n;
        if (this.have < this.need) break;
        this.frameEnded = false;
        if (small) this.advance();
        else this.endOfPayload();
        if (this.frameEnded) {
          this.push(chunk.subarray(start, pos));
          start = pos;
        }
      }
      if (start < chunk.length) this.push(chunk.subarray(start));
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.phase !== 'magic' || this.have !== 0) return cb(badLayer(`${this.what}: truncated zstd stream (it ends inside a frame, at compressed offset ${this.offset})`));
    cb();
  }
}

/** The IMGX_BAD_LAYER for a decompressor's error (`code` as node:zlib names it, e.g. Z_DATA_ERROR). */
export function inflateFailure(code: string | undefined, message: string, compression: Compression, what: string, cause?: unknown): ImgxError {
  if (code === 'Z_BUF_ERROR') return badLayer(`${what}: truncated ${compression} stream (unexpected end of file)`, cause);
  return badLayer(`${what}: corrupt ${compression} data: ${message}`, cause);
}

/**
 * The uncompressed stream of a layer. The data must start as `compression` says (gzip 1f 8b,
 * zstd 28 b5 2f fd), else IMGX_BAD_LAYER; corrupt or truncated data is IMGX_BAD_LAYER too.
 * Destroying the result destroys the input.
 */
export function decompress(input: Readable, compression: Compression, what: string): Readable {
  const stages: (Transform | PassThrough)[] = [new MagicCheck(compression, what)];
  if (compression === 'zstd') stages.push(new ZstdFrames(what));
  let engine: Transform | undefined;
  if (compression === 'gzip') engine = createGunzip({ chunkSize: CHUNK });
  else if (compression === 'zstd') engine = createZstdDecompress({ chunkSize: CHUNK });
  if (engine) stages.push(engine);
  const out = new PassThrough({ highWaterMark: CHUNK });

  let failed = false;
  const fail = (e: Error) => {
    if (failed) return;
    failed = true;
    out.destroy(e);
    input.destroy();
    for (const s of stages) s.destroy();
  };
  input.on('error', fail);
  for (const s of stages) s.on('error', (e: Error & { code?: string }) => fail(s === engine && !(e instanceof ImgxError) ? inflateFailure(e.code, e.message, compression, what, e) : e));
  out.on('close', () => {
    // The consumer stopped early: stop reading and inflating.
    if (!out.readableEnded && !failed) {
      failed = true;
      input.destroy();
      for (const s of stages) s.destroy();
    }
  });
  let tail: Readable = input;
  for (const s of stages) tail = tail.pipe(s);
  tail.pipe(out);
  return out;
}
