// Verification of local blob reads: whole small blobs (size, cap, digest) and streams of big ones.
import { addAbortSignal, PassThrough, pipeline, type Readable } from 'node:stream';
import { IntegrityError } from '../errors.ts';
import type { Descriptor } from './descriptor.ts';
import { verifyBytes } from './digest.ts';
import type { BlobOpenOptions } from './source.ts';
import { VerifyStream } from './verify-stream.ts';

export function tooLarge(what: string, size: number, cap: number): IntegrityError {
  return new IntegrityError('IMGX_MANIFEST_TOO_LARGE', `${what}: ${size} bytes, more than the ${cap}-byte cap`);
}

/** Throws unless `bytes` has the descriptor's size (when it gives one) and digest. */
export function checkBytes(bytes: Uint8Array, desc: Pick<Descriptor, 'digest'> & { size?: number }, what: string): void {
  if (desc.size !== undefined && bytes.length !== desc.size) {
    throw new IntegrityError('IMGX_SIZE_MISMATCH', `${what}: ${bytes.length} bytes, its descriptor declares ${desc.size}`);
  }
  verifyBytes(bytes, desc.digest, what);
}

/**
 * `source` through a VerifyStream: the returned stream errors before 'end' when the bytes do not
 * match. Destroying it (or aborting `signal`) destroys the source too.
 */
export function verifiedStream(source: Readable, desc: Pick<Descriptor, 'digest' | 'size'>, what: string, options: BlobOpenOptions = {}): Readable {
  const verify = options.trustContent ? new PassThrough({ highWaterMark: 1 << 20 }) : new VerifyStream(desc, what);
  pipeline(source, verify, () => {
    // Errors reach the consumer through `verify`, which pipeline destroys with them.
  });
  const onProgress = options.onProgress;
  if (onProgress) source.on('data', (chunk: Buffer) => onProgress(chunk.length));
  if (options.signal) addAbortSignal(options.signal, verify);
  return verify;
}
