// A pass-through that checks size and digest while bytes stream. It fails as soon as more bytes
// than promised arrive, and at the end when the digest or the size is wrong, so a consumer that
// waits for 'finish' before trusting its output never trusts unverified bytes.
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors.ts';
import { hashAlgorithmOf, parseDigest } from './digest.ts';
import { streamHash, type StreamHash } from './offthread-hash.ts';
import type { Descriptor } from './descriptor.ts';

export class VerifyStream extends Transform {
  readonly expected: Pick<Descriptor, 'digest' | 'size'>;
  private readonly hash: StreamHash;
  private seen = 0;
  private readonly what: string;

  constructor(expected: Pick<Descriptor, 'digest' | 'size'>, what = expected.digest) {
    super();
    parseDigest(expected.digest);
    this.expected = expected;
    this.hash = streamHash(hashAlgorithmOf(expected.digest));
    this.what = what;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.seen;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.expected.size >= 0 && this.seen > this.expected.size) {
      cb(new IntegrityError('IMGX_SIZE_MISMATCH', `${this.what}: more than the ${this.expected.size} bytes its descriptor declares`));
      return;
    }
    try {
      this.hash.update(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expected.size >= 0 && this.seen !== this.expected.size) {
      cb(new IntegrityError('IMGX_SIZE_MISMATCH', `${this.what}: ${this.seen} bytes, its descriptor declares ${this.expected.size}`));
      return;
    }
    const { algorithm } = parseDigest(this.expected.digest);
    this.hash.digest().then((hex) => {
      const actual = `${algorithm}:${hex}`;
      if (actual !== this.expected.digest) {
        cb(new IntegrityError('IMGX_DIGEST_MISMATCH', `${this.what}: digest mismatch: expected ${this.expected.digest}, got ${actual}`));
        return;
      }
      cb();
    }, cb);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.writableFinished) this.hash.abort();
    cb(err);
  }
}
