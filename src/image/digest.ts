// Digests: validation before a digest becomes a URL or a path, and hashing.
import { createHash } from 'node:crypto';
import { IntegrityError } from '../errors.ts';

const ALGORITHMS: Record<string, { hex: number; node: string }> = {
  sha256: { hex: 64, node: 'sha256' },
  sha512: { hex: 128, node: 'sha512' },
};

export interface ParsedDigest {
  algorithm: string;
  hex: string;
}

/** Strict check of `algo:hex`: only algorithms we can verify, lower-case hex of the right length. */
export function parseDigest(digest: string): ParsedDigest {
  const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(digest);
  const algo = m?.[1];
  const hex = m?.[2];
  const spec = algo ? ALGORITHMS[algo] : undefined;
  if (!m || !algo || !hex || !spec || hex.length !== spec.hex) {
    throw new IntegrityError('IMGX_BAD_DIGEST', `invalid digest ${JSON.stringify(digest.slice(0, 160))}`);
  }
  return { algorithm: algo, hex };
}

export function isValidDigest(digest: string): boolean {
  try {
    parseDigest(digest);
    return true;
  } catch {
    return false;
  }
}

export function sha256(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** node:crypto's name for the digest's algorithm. */
export function hashAlgorithmOf(digest: string): string {
  return ALGORITHMS[parseDigest(digest).algorithm]!.node;
}

/** Digest of `data` with the same algorithm as `expected`. */
export function digestWithAlgorithmOf(expected: string, data: Uint8Array): string {
  const { algorithm } = parseDigest(expected);
  return `${algorithm}:` + createHash(ALGORITHMS[algorithm]!.node).update(data).digest('hex');
}

/** Throws IMGX_DIGEST_MISMATCH unless `data` hashes to `expected`. */
export function verifyBytes(data: Uint8Array, expected: string, what: string): void {
  const actual = digestWithAlgorithmOf(expected, data);
  if (actual !== expected) {
    throw new IntegrityError('IMGX_DIGEST_MISMATCH', `${what}: digest mismatch: expected ${expected}, got ${actual}`);
  }
}
