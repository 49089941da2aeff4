// GNU sparse files on read. A sparse entry stores only its data segments; the map says where each
// goes in the logical file, and everything between is a hole (zeros). Three encodings exist:
// - old GNU: typeflag 'S', 4 map slots in the header, more in extension blocks after it;
// - PAX 0.0 (repeated GNU.sparse.offset/numbytes records) and 0.1 (GNU.sparse.map "o,n,o,n");
// - PAX 1.0: the map is text at the start of the entry's data, padded to a block.
// Pure parsing; the tar reader owns the stream.
import { decodeName } from '../util/raw-name.ts';
import { BLOCK_SIZE, SPARSE_MAP, decodeNumber, parseDecimal } from './tar-header.ts';

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

function number(key: string, text: string): number {
  try {
    return parseDecimal(text, key);
  } catch {
    fail(`${key}=${JSON.stringify(text.slice(0, 40))}`);
  }
}

export type PaxSparse =
  | { version: '0'; segments: SparseSegment[]; realSize: number; name: string | undefined }
  | { version: '1.0'; realSize: number; name: string | undefined };

/** A record's value, or undefined when absent or empty (Go treats both alike). */
function record(records: Map<string, Buffer>, key: string): Buffer | undefined {
  const v = records.get(key);
  return v && v.length > 0 ? v : undefined;
}

/**
 * Sparse information from an entry's PAX records, or undefined when it is not a sparse entry, as
 * Go reads them: version 0.0/0.1 (GNU.sparse.map with GNU.sparse.numblocks; parsePax folds 0.0's
 * repeated records into a map) or 1.0 (the map at the start of the data); an unknown version is a
 * regular file. The logical size is GNU.sparse.size, else GNU.sparse.realsize, else `size` (what
 * the header and the PAX size record said).
 */
export function paxSparse(records: Map<string, Buffer>, size: number): PaxSparse | undefined {
  const major = record(records, 'GNU.sparse.major')?.toString('latin1');
  const minor = record(records, 'GNU.sparse.minor')?.toString('latin1');
  const map = record(records, SPARSE_MAP);
  let version: '0' | '1.0';
  if (major === '0' && (minor === '0' || minor === '1')) version = '0';
  else if (major === '1' && minor === '0') version = '1.0';
  else if (major !== undefined || minor !== undefined) return undefined;
  else if (map) version = '0';
  else return undefined;
  const nameRec = record(records, 'GNU.sparse.name');
  const name = nameRec ? decodeName(nameRec) : undefined;
  const sizeRec = record(records, 'GNU.sparse.size') ?? record(records, 'GNU.sparse.realsize');
  const realSize = sizeRec ? number('GNU.sparse.size', sizeRec.toString('latin1')) : size;
  if (version === '1.0') return { version, realSize, name };
  const count = number('GNU.sparse.numblocks', record(records, 'GNU.sparse.numblocks')?.toString('latin1') ?? '');
  if (count < 0 || count > MAX_SPARSE_ENTRIES) fail('GNU.sparse.numblocks out of range');
  const text = map?.toString('latin1') ?? '';
  const parts = text === '' ? [] : text.split(',');
  if (parts.length !== 2 * count) fail('GNU.sparse.map does not hold GNU.sparse.numblocks entries');
  const segments: SparseSegment[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    segments.push({ offset: number(SPARSE_MAP, parts[i]!), size: number(SPARSE_MAP, parts[i + 1]!) });
  }
  return { version, segments, realSize, name };
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
        this.numbers.push(number('sparse map', this.digits));
        this.digits = '';
        if (this.count === undefined) {
          this.count = this.numbers.pop()!;
          if (this.count < 0 || this.count > MAX_SPARSE_ENTRIES) fail('sparse map entry count out of range');
        } else if (this.numbers.length === 2) {
          this.segments.push({ offset: this.numbers[0]!, size: this.numbers[1]! });
          this.numbers = [];
        }
        if (this.count !== undefined && this.segments.length === this.count) this.done = true;
      } else {
        // Any other byte goes into the number, which must then parse (Go's ParseInt of the token).
        if (this.digits.length >= 1024) fail('number too long in the sparse map');
        this.digits += String.fromCharCode(b);
      }
    }
  }
}

/**
 * Checks a map against the logical and stored sizes as Go (and BSD tar) do: no negative numbers,
 * segments in order and not overlapping, inside the file; and, as Go finds when the body is read,
 * their sizes adding up to the data stored.
 */
export function validateSparse(segments: SparseSegment[], realSize: number, storedSize: number): void {
  if (realSize < 0) fail(`negative size ${realSize}`);
  let end = 0;
  let total = 0;
  for (const s of segments) {
    if (s.offset < 0 || s.size < 0) fail('negative number in the sparse map');
    if (s.offset < end) fail('sparse map segments overlap or are out of order');
    end = s.offset + s.size;
    if (end > realSize) fail(`sparse map segment ends at ${end}, past the file size ${realSize}`);
    total += s.size;
  }
  if (total !== storedSize) fail(`sparse map holds ${total} bytes of data, the entry stores ${storedSize}`);
}

/**
 * Walks a sparse file's stored data (the segments' bytes one after the other, as a FlatEntry's
 * body carries them) and says where each piece goes in the file.
 */
export class SparseCursor {
  private readonly segments: readonly SparseSegment[];
  private i = 0;
  private inSegment = 0;
  /** Bytes placed so far. */
  placed = 0;
  /** Bytes of data the map holds. */
  readonly stored: number;

  constructor(segments: readonly SparseSegment[]) {
    this.segments = segments;
    let n = 0;
    for (const s of segments) n += s.size;
    this.stored = n;
  }

  /** Calls `put` for each piece of `chunk` with its offset in the file; SparseError past the map's data. */
  place(chunk: Uint8Array, put: (piece: Uint8Array, offset: number) => void): void {
    let off = 0;
    while (off < chunk.length) {
      while (this.i < this.segments.length && this.inSegment === this.segments[this.i]!.size) {
        this.i++;
        this.inSegment = 0;
      }
      const seg = this.segments[this.i];
      if (!seg) fail(`more data than the sparse map holds (${this.stored} bytes)`);
      const take = Math.min(chunk.length - off, seg.size - this.inSegment);
      put(chunk.subarray(off, off + take), seg.offset + this.inSegment);
      this.inSegment += take;
      this.placed += take;
      off += take;
    }
  }
}

const ZERO_PIECE = 1 << 16;

/** A sparse file's whole content from its stored data: the holes as zeros (for consumers that want every byte). */
export async function* expandSparse(data: AsyncIterable<Uint8Array>, segments: readonly SparseSegment[], size: number): AsyncGenerator<Buffer> {
  const cursor = new SparseCursor(segments);
  let at = 0;
  const zeros = function* (upTo: number): Generator<Buffer> {
    while (at < upTo) {
      const n = Math.min(ZERO_PIECE, upTo - at);
      at += n;
      yield Buffer.alloc(n);
    }
  };
  for await (const chunk of data) {
    const pieces: [Uint8Array, number][] = [];
    cursor.place(chunk, (piece, offset) => pieces.push([piece, offset]));
    for (const [piece, offset] of pieces) {
      yield* zeros(offset);
      at += piece.length;
      yield Buffer.from(piece.buffer, piece.byteOffset, piece.length);
    }
  }
  if (cursor.placed !== cursor.stored) fail(`the sparse file's data is ${cursor.placed} bytes, its map holds ${cursor.stored}`);
  yield* zeros(size);
}
