// GNU sparse files on read. A sparse entry stores only its data segments; the map says where each
// goes in the logical file, and everything between is a hole (zeros). Three encodings exist:
// - old GNU: typeflag 'S', 4 map slots in the header, more in extension blocks after it;
// - PAX 0.0 (repeated GNU.sparse.offset/numbytes records) and 0.1 (GNU.sparse.map "o,n,o,n");
// - PAX 1.0: the map is text at the start of the entry's data, padded to a block.
// Pure parsing; the tar reader owns the stream.
import { BLOCK_SIZE, decodeNumber } from './tar-header.ts';

export interface SparseSegment {
  /** Where the data goes in the logical file. */
  offset: number;
  /** Bytes of data stored in the archive for this segment. */
  size: number;
}

/** A map longer than this is refused (GNU tar writes one entry per hole). */
export const MAX_SPARSE_ENTRIES = 1 << 20;

export class SparseError extends Error {}

function fail(why: string): never {
  throw new SparseError(why);
}

/** Offsets of the old GNU header fields. */
const OLD_GNU_SPARSE = 386;
const OLD_GNU_IS_EXTENDED = 482;
const OLD_GNU_REAL_SIZE = 483;
const EXT_IS_EXTENDED = 504;

/** Reads up to `count` 24-byte slots at `at`; an empty slot (first byte NUL) ends the list. */
function readSlots(block: Uint8Array, at: number, count: number, out: SparseSegment[]): void {
  for (let i = 0; i < count; i++) {
    const p = at + i * 24;
    if (block[p] === 0) return;
    out.push({ offset: decodeNumber(block.subarray(p, p + 12), 'sparse offset'), size: decodeNumber(block.subarray(p + 12, p + 24), 'sparse size') });
    if (out.length > MAX_SPARSE_ENTRIES) fail('sparse map too long');
  }
}

/** The map slots and sizes of an old GNU 'S' header; `extended` says extension blocks follow. */
export function oldGnuSparseHeader(block: Uint8Array): { segments: SparseSegment[]; realSize: number; extended: boolean } {
  const segments: SparseSegment[] = [];
  readSlots(block, OLD_GNU_SPARSE, 4, segments);
  return {
    segments,
    realSize: decodeNumber(block.subarray(OLD_GNU_REAL_SIZE, OLD_GNU_REAL_SIZE + 12), 'sparse real size'),
    extended: block[OLD_GNU_IS_EXTENDED] !== 0,
  };
}

/** Adds the slots of one old GNU extension block; returns whether another block follows. */
export function oldGnuSparseExtension(block: Uint8Array, segments: SparseSegment[]): boolean {
  readSlots(block, 0, 21, segments);
  return block[EXT_IS_EXTENDED] !== 0;
}

function paxNumber(key: string, v: Buffer | string): number {
  const text = typeof v === 'string' ? v : v.toString('latin1');
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) fail(`${key}=${JSON.stringify(text.slice(0, 40))}`);
  return Number(text);
}

export type PaxSparse =
  | { version: '0'; segments: SparseSegment[]; realSize: number; name: string | undefined }
  | { version: '1.0'; realSize: number; name: string | undefined };

/**
 * Sparse information from an entry's PAX records, or undefined when it is not a sparse entry.
 * `ordered` is the entry's local records in order (needed for format 0.0's repeated keys).
 */
export function paxSparse(records: Map<string, Buffer>, ordered: [string, Buffer][] | undefined): PaxSparse | undefined {
  const major = records.get('GNU.sparse.major')?.toString('latin1');
  const minor = records.get('GNU.sparse.minor')?.toString('latin1');
  const name = records.get('GNU.sparse.name')?.toString('utf8');
  if (major === '1' && minor === '0') {
    const real = records.get('GNU.sparse.realsize');
    if (!real) fail('GNU.sparse.realsize missing');
    return { version: '1.0', realSize: paxNumber('GNU.sparse.realsize', real), name };
  }
  if (major !== undefined && major !== '0') fail(`unsupported GNU sparse format ${major}.${minor ?? '?'}`);
  const map = records.get('GNU.sparse.map');
  const numBlocks = records.get('GNU.sparse.numblocks');
  if (!map && !numBlocks) return undefined;
  const sizeRec = records.get('GNU.sparse.size') ?? records.get('GNU.sparse.realsize');
  if (!sizeRec) fail('GNU.sparse.size missing');
  const realSize = paxNumber('GNU.sparse.size', sizeRec);
  const segments: SparseSegment[] = [];
  if (map) {
    // 0.1: "offset,size,offset,size…"
    const text = map.toString('latin1');
    const parts = text === '' ? [] : text.split(',');
    if (parts.length % 2 !== 0) fail('GNU.sparse.map has an odd count of numbers');
    if (parts.length / 2 > MAX_SPARSE_ENTRIES) fail('sparse map too long');
    for (let i = 0; i < parts.length; i += 2) {
      segments.push({ offset: paxNumber('GNU.sparse.map', parts[i]!), size: paxNumber('GNU.sparse.map', parts[i + 1]!) });
    }
  } else {
    // 0.0: GNU.sparse.offset and GNU.sparse.numbytes repeated, in pairs.
    let offset: number | undefined;
    for (const [k, v] of ordered ?? []) {
      if (k === 'GNU.sparse.offset') {
        if (offset !== undefined) fail('GNU.sparse.offset without its numbytes');
        offset = paxNumber(k, v);
      } else if (k === 'GNU.sparse.numbytes') {
        if (offset === undefined) fail('GNU.sparse.numbytes without its offset');
        segments.push({ offset, size: paxNumber(k, v) });
        offset = undefined;
        if (segments.length > MAX_SPARSE_ENTRIES) fail('sparse map too long');
      }
    }
    if (offset !== undefined) fail('GNU.sparse.offset without its numbytes');
  }
  if (numBlocks && paxNumber('GNU.sparse.numblocks', numBlocks) !== segments.length) fail('GNU.sparse.numblocks does not match the map');
  return { version: '0', segments, realSize, name };
}

/**
 * Incremental parser of a PAX 1.0 map: newline-terminated decimal numbers (count, then offset/size
 * pairs) at the start of the data, padded to a whole block. Feed it blocks until `done`.
 */
export class SparseMapText {
  private numbers: number[] = [];
  private digits = '';
  private count: number | undefined;
  readonly segments: SparseSegment[] = [];
  done = false;
  /** Bytes of data taken by the map (whole blocks). */
  consumed = 0;

  addBlock(block: Uint8Array): void {
    if (block.length !== BLOCK_SIZE) fail('short sparse map block');
    this.consumed += BLOCK_SIZE;
    for (let i = 0; i < BLOCK_SIZE && !this.done; i++) {
      const b = block[i]!;
      if (b === 0x0a) {
        if (this.digits === '') fail('empty number in the sparse map');
        this.numbers.push(paxNumber('sparse map', this.digits));
        this.digits = '';
        if (this.count === undefined) {
          this.count = this.numbers.pop()!;
          if (this.count > MAX_SPARSE_ENTRIES) fail('sparse map too long');
        } else if (this.numbers.length === 2) {
          this.segments.push({ offset: this.numbers[0]!, size: this.numbers[1]! });
          this.numbers = [];
        }
        if (this.count !== undefined && this.segments.length === this.count) this.done = true;
      } else if (b >= 0x30 && b <= 0x39) {
        if (this.digits.length >= 16) fail('number too long in the sparse map');
        this.digits += String.fromCharCode(b);
      } else fail('unexpected byte in the sparse map');
    }
  }
}

/**
 * Checks a map against the logical and stored sizes: segments in order, not overlapping, inside
 * the file, and their sizes adding up to the data stored.
 */
export function validateSparse(segments: SparseSegment[], realSize: number, storedSize: number): void {
  let end = 0;
  let total = 0;
  for (const s of segments) {
    if (s.offset < end) fail('sparse map segments overlap or are out of order');
    end = s.offset + s.size;
    if (end > realSize) fail(`sparse map segment ends at ${end}, past the file size ${realSize}`);
    total += s.size;
  }
  if (total !== storedSize) fail(`sparse map holds ${total} bytes of data, the entry stores ${storedSize}`);
}
