// Pass-throughs that check a digest while bytes stream. DigestCheck hashes what passes (on the hash
// worker, offthread-hash.ts; a worker that is behind holds up the next chunk, not the thread) and
// fails at the end unless the digest is the expected one; VerifyStream adds a blob's size, failing
// as soon as more bytes than promised arrive. A consumer that waits for 'finish' before trusting
// its output never trusts unverified bytes.
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../errors.ts';
import { hashAlgorithmOf, parseDigest } from './digest.ts';
import { streamHash, type StreamHash } from './offthread-hash.ts';
import type { Descriptor } from './descriptor.ts';

export class DigestCheck extends Transform {
  private readonly hash: StreamHash;
  private readonly digest: string;
  private readonly mismatch: (actual: string) => Error;

  /**
   * `mismatch` makes the error for a stream whose digest turned out to be `actual`; `size`, when
   * known, lets a small stream be hashed here rather than on the hash worker.
   */
  constructor(digest: string, mismatch: (actual: string) => Error, size = -1) {
    super();
    parseDigest(digest);
    this.digest = digest;
    this.mismatch = mismatch;
    this.hash = streamHash(hashAlgorithmOf(digest), size);
  }

  /** A reason to stop at this chunk, before it is hashed (none here). */
  protected admit(_chunk: Buffer): Error | undefined {
    return undefined;
  }

  /** A reason to fail at the end, before the digest is compared (none here). */
  protected atEnd(): Error | undefined {
    return undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let taking: Promise<void> | undefined;
    try {
      const refused = this.admit(chunk);
      if (refused) return cb(refused);
      taking = this.hash.update(chunk);
    } catch (e) {
      return cb(e as Error);
    }
    if (!taking) return cb(null, chunk);
    // The hash is behind: pass the chunk on now, take the next one once this one is in.
    this.push(chunk);
    taking.then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    const refused = this.atEnd();
    if (refused) return cb(refused);
    this.hash.digest().then((hex) => {
      const actual = `${parseDigest(this.digest).algorithm}:${hex}`;
      cb(actual === this.digest ? null : this.mismatch(actual));
    }, cb);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.writableFinished) this.hash.abort();
    cb(err);
  }
}

export class VerifyStream extends DigestCheck {
  readonly expected: Pick<Descriptor, 'digest' | 'size'>;
  private seen = 0;
  private readonly what: string;

  constructor(expected: Pick<Descriptor, 'digest' | 'size'>, what = expected.digest) {
    // More bytes than the size fail in admit(), so a small declared size bounds the hashing too.
    super(expected.digest, (actual) => new IntegrityError('IMGX_DIGEST_MISMATCH', `${what}: digest mismatch: expected ${expected.digest}, got ${actual}`), expected.size);
    this.expected = expected;
    this.what = what;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.seen;
  }

  protected override admit(chunk: Buffer): Error | undefined {
    this.seen += chunk.length;
    if (this.expected.size >= 0 && this.seen > this.expected.size) {
      return new IntegrityError('IMGX_SIZE_MISMATCH', `${this.what}: more than the ${this.expected.size} bytes its descriptor declares`);
    }
    return undefined;
  }

  protected override atEnd(): Error | undefined {
    if (this.expected.size >= 0 && this.seen !== this.expected.size) {
      return new IntegrityError('IMGX_SIZE_MISMATCH', `${this.what}: ${this.seen} bytes, its descriptor declares ${this.expected.size}`);
    }
    return undefined;
  }
}
