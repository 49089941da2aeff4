// GUIDs as GPT stores them. The text form is the usual 8-4-4-4-12 hex; on disk the first three
// fields are little-endian and the last two are bytes in order (UEFI spec, Appendix A "mixed endian"):
// C12A7328-F81F-11D2-BA4B-00A0C93EC93B → 28 73 2A C1 1F F8 D2 11 BA 4B 00 A0 C9 3E C9 3B.
import { createHash, randomUUID } from 'node:crypto';
import { UsageError } from '../errors.ts';

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isGuid(s: string): boolean {
  return GUID_RE.test(s);
}

/** The 16 on-disk bytes of a GUID. */
export function encodeGuid(guid: string): Buffer {
  if (!GUID_RE.test(guid)) throw new UsageError(`not a GUID: ${guid}`);
  const hex = guid.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  // Swap the first three fields (4, 2, 2 bytes) to little-endian; the last 8 bytes stay as written.
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** The text form (upper case) of 16 on-disk GUID bytes. */
export function decodeGuid(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError('a GUID is 16 bytes');
  const b = Buffer.from(bytes);
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  const h = b.toString('hex').toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A GUID for `label` (e.g. "disk", "partition:root"). With a seed it is derived from
 * SHA-256(seed, label) as an RFC 9562 version-8 (custom) UUID, so images built twice with the same
 * seed carry the same GUIDs; without one it is random (version 4).
 */
export function makeGuid(label: string, seed?: string): string {
  if (seed === undefined) return randomUUID().toUpperCase();
  const h = createHash('sha256').update(`imgx-guid\0${seed}\0${label}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x80; // version 8
  h[8] = (h[8]! & 0x3f) | 0x80; // RFC variant
  const s = h.subarray(0, 16).toString('hex').toUpperCase();
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

/** A non-zero 32-bit MBR disk signature, from the seed or random. */
export function makeDiskSignature(seed?: string): number {
  const h = seed === undefined
    ? createHash('sha256').update(randomUUID()).digest()
    : createHash('sha256').update(`imgx-mbr-signature\0${seed}`).digest();
  const v = h.readUInt32LE(0);
  return v === 0 ? 1 : v;
}
