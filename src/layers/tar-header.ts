// One tar header block: decode and encode. Covers ustar (POSIX), old GNU and v7 headers, octal and
// base-256 numbers, both checksum conventions, and the extension entries that change the entry
// after them: PAX `x` (the next entry), `g` (checked, then ignored), GNU `L` (long name) and `K`
// (long link name), read as Go's archive/tar reads them. PAX values stay raw bytes, because xattrs
// such as security.capability are binary; names keep their exact bytes (raw-name.ts).
// Pure functions and one small state object; reading blocks from a file or a stream is the caller's.
import { BadArchiveError } from '../errors.ts';
import { decodeName, encodeName, nameByteLength } from '../util/raw-name.ts';

export const BLOCK_SIZE = 512;
/** Longest body accepted for an extension entry (PAX records, GNU long names). */
export const MAX_EXTENSION_SIZE = 1 << 20;

export type EntryType =
  | 'file'
  | 'hardlink'
  | 'symlink'
  | 'char-device'
  | 'block-device'
  | 'directory'
  | 'fifo'
  | 'pax-header'
  | 'pax-global-header'
  | 'gnu-long-name'
  | 'gnu-long-link'
  | 'unknown';

const TYPE_OF_FLAG: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file', // contiguous file: POSIX says to treat it as a regular file
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
  x: 'pax-header',
  g: 'pax-global-header',
  L: 'gnu-long-name',
  K: 'gnu-long-link',
};

const FLAG_OF_TYPE: Record<Exclude<EntryType, 'unknown'>, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  'char-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
  'pax-header': 'x',
  'pax-global-header': 'g',
  'gnu-long-name': 'L',
  'gnu-long-link': 'K',
};

export type HeaderFormat = 'ustar' | 'gnu' | 'star' | 'v7';

export interface TarHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header (before padding). */
  size: number;
  /** Seconds since the epoch; fractional when a PAX record gave sub-second precision. */
  mtime: number;
  /** The raw typeflag character; `type` is what it means. */
  typeflag: string;
  type: EntryType;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  format: HeaderFormat;
  /** The entry's own PAX records (its last `x` header), values as raw bytes. */
  pax?: Map<string, Buffer>;
}

/** Bytes of padding after `size` bytes of data, up to the next block boundary. */
export function paddingFor(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}

/** Types whose data size is always zero whatever the size field says (as GNU tar and Go read them). */
export function isHeaderOnly(type: EntryType): boolean {
  return type === 'hardlink' || type === 'symlink' || type === 'char-device' || type === 'block-device' || type === 'directory' || type === 'fifo';
}

/** Extension entries describe the entry after them instead of being entries of their own. */
export function isExtension(type: EntryType): boolean {
  return type === 'pax-header' || type === 'pax-global-header' || type === 'gnu-long-name' || type === 'gnu-long-link';
}

export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK_SIZE; i++) if (block[i] !== 0) return false;
  return true;
}

// ---- decoding ---------------------------------------------------------------------------------
// The rules are Go's archive/tar (the reader inside Docker, containerd and BuildKit), so that imgx
// sees the entries those tools see: see reader.go and strconv.go there.

function bad(why: string): never {
  throw new BadArchiveError(`invalid tar header: ${why}`);
}

/** A NUL-terminated string field, bytes kept exactly (raw-name.ts; no copy per field). */
function readString(block: Buffer, offset: number, length: number): string {
  let end = offset;
  const limit = offset + length;
  while (end < limit && block[end] !== 0) end++;
  return end === offset ? '' : decodeName(block, offset, end);
}

/**
 * A numeric field: GNU base-256 when the top bit of the first byte is set (two's complement, so
 * negative times survive), else octal text. Octal is read as Go reads it: spaces and NULs trimmed
 * at both ends, then up to the first NUL, then nothing but octal digits (empty is 0).
 */
export function decodeNumber(field: Uint8Array, what = 'number'): number {
  if (field.length > 0 && (field[0]! & 0x80) !== 0) {
    const negative = (field[0]! & 0x40) !== 0;
    let v = 0n;
    for (let i = 0; i < field.length; i++) {
      let b = negative ? ~field[i]! & 0xff : field[i]!;
      if (i === 0) b &= 0x7f;
      v = (v << 8n) | BigInt(b);
    }
    if (negative) v = -v - 1n;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) bad(`${what} out of range`);
    return Number(v);
  }
  return decodeOctal(field, what);
}

function decodeOctal(field: Uint8Array, what: string): number {
  let i = 0;
  let j = field.length;
  while (i < j && (field[i] === 0x20 || field[i] === 0)) i++;
  while (j > i && (field[j - 1] === 0x20 || field[j - 1] === 0)) j--;
  for (let k = i; k < j; k++) {
    if (field[k] === 0) {
      j = k;
      break;
    }
  }
  let v = 0;
  for (let k = i; k < j; k++) {
    const d = field[k]! - 0x30;
    if (d < 0 || d > 7) {
      const text = Buffer.from(field.buffer, field.byteOffset + i, j - i).toString('latin1');
      bad(`${what} is not octal: ${JSON.stringify(text.slice(0, 40))}`);
    }
    v = v * 8 + d;
  }
  if (!Number.isSafeInteger(v)) bad(`${what} out of range`);
  return v;
}

function num(block: Uint8Array, offset: number, length: number, what: string): number {
  // Fast path for the common case, plain octal digits ending in a NUL or spaces; anything else
  // (base-256, blanks first, garbage) goes through decodeNumber for its checks and messages.
  let v = 0;
  let i = offset;
  const end = offset + length;
  for (; i < end; i++) {
    const d = block[i]! - 0x30;
    if (d < 0 || d > 7) break;
    v = v * 8 + d;
  }
  if (i > offset && (i === end || block[i] === 0 || block[i] === 0x20)) {
    let j = i;
    while (j < end && (block[j] === 0 || block[j] === 0x20)) j++;
    if (j === end || block[i] === 0) return v;
  }
  return decodeNumber(block.subarray(offset, end), what);
}

/** Sums of the block with the checksum field read as spaces: bytes unsigned and (old tars) signed. */
export function checksums(block: Uint8Array): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  return { unsigned, signed };
}

/**
 * The unsigned checksum, four bytes at a time when the block is aligned: two 16-bit lanes per
 * word add up bytes 0 and 2, 1 and 3 (128 words × 510 fits a lane). This runs for every header.
 */
function unsignedChecksum(block: Uint8Array): number {
  if (block.byteOffset % 4 !== 0) {
    // Unaligned (decompressor output is sliced at any offset): byte by byte.
    let sum = 8 * 0x20;
    for (let i = 0; i < 148; i++) sum += block[i]!;
    for (let i = 156; i < BLOCK_SIZE; i++) sum += block[i]!;
    return sum;
  }
  const words = new Uint32Array(block.buffer, block.byteOffset, BLOCK_SIZE / 4);
  let lanes = 0;
  for (let i = 0; i < 128; i++) {
    // Words 37 and 38 are the checksum field (bytes 148–155), counted as spaces below.
    if (i === 37 || i === 38) continue;
    const w = words[i]!;
    lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
  }
  return (lanes & 0xffff) + Math.floor(lanes / 0x10000) % 0x10000 + 8 * 0x20;
}

function detectFormat(block: Uint8Array): HeaderFormat {
  // "ustar" at 257, then "\0" (POSIX, version "00" after it) or "  \0" (old GNU).
  if (block[257] !== 0x75 || block[258] !== 0x73 || block[259] !== 0x74 || block[260] !== 0x61 || block[261] !== 0x72) return 'v7';
  if (block[262] === 0x20 && block[263] === 0x20 && block[264] === 0) return 'gnu';
  if (block[262] !== 0) return 'v7';
  // star keeps atime/ctime in the tail of the prefix field and marks it with "tar\0" at 508.
  return block[508] === 0x74 && block[509] === 0x61 && block[510] === 0x72 && block[511] === 0 ? 'star' : 'ustar';
}

/** Ids beyond 32 bits (or negative) name no owner a file can have. */
function checkId(v: number, what: string): number {
  if (v < 0 || v > 0xffffffff) bad(`${what} ${v} out of range`);
  return v;
}

/**
 * Old GNU headers have atime and ctime where ustar has its prefix. Go's writer before 1.8 put a
 * ustar prefix there anyway: when those fields do not read as numbers and the bytes are ASCII, they
 * are that prefix (Go's reader does the same; golang.org/issue/12594).
 */
function buggyGnuPrefix(block: Buffer): string {
  for (const at of [345, 357]) {
    if (block[at] === 0) continue;
    try {
      decodeNumber(block.subarray(at, at + 12));
    } catch {
      const prefix = readString(block, 345, 155);
      for (let i = 0; i < prefix.length; i++) if (prefix.charCodeAt(i) >= 0x80) return '';
      return prefix;
    }
  }
  return '';
}

/**
 * Decodes one 512-byte header block. Returns null for an all-zero block (the end-of-archive marker).
 * Throws IMGX_BAD_ARCHIVE when the checksum or a field is wrong. Extensions are not applied here:
 * see `TarExtensions` (which also turns a v7 name ending in `/` into a directory, once the name is
 * final).
 */
export function decodeHeader(input: Uint8Array): TarHeader | null {
  if (input.length < BLOCK_SIZE) bad(`short block (${input.length} bytes)`);
  const block = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.length);
  if (isZeroBlock(block)) return null;
  // The checksum is octal only (Go reads it with parseOctal, never base-256).
  const stored = decodeOctal(block.subarray(148, 156), 'checksum');
  // The signed sum (very old tars) only matters when the common unsigned one does not match.
  if (stored !== unsignedChecksum(block)) {
    const sums = checksums(block);
    if (stored !== sums.signed) bad(`checksum mismatch (stored ${stored}, computed ${sums.unsigned})`);
  }

  const format = detectFormat(block);
  let name = readString(block, 0, 100);
  let prefix = '';
  if (format === 'ustar' || format === 'star') prefix = readString(block, 345, format === 'star' ? 131 : 155);
  else if (format === 'gnu') prefix = buggyGnuPrefix(block);
  if (prefix) name = `${prefix}/${name}`;
  const typeflag = String.fromCharCode(block[156]!);
  const hasUstarFields = format !== 'v7';
  return {
    name,
    mode: num(block, 100, 8, 'mode'),
    uid: checkId(num(block, 108, 8, 'uid'), 'uid'),
    gid: checkId(num(block, 116, 8, 'gid'), 'gid'),
    size: num(block, 124, 12, 'size'),
    mtime: num(block, 136, 12, 'mtime'),
    typeflag,
    type: TYPE_OF_FLAG[typeflag] ?? 'unknown',
    linkname: readString(block, 157, 100),
    uname: hasUstarFields ? readString(block, 265, 32) : '',
    gname: hasUstarFields ? readString(block, 297, 32) : '',
    devmajor: hasUstarFields ? num(block, 329, 8, 'devmajor') : 0,
    devminor: hasUstarFields ? num(block, 337, 8, 'devminor') : 0,
    format,
  };
}

/**
 * A decimal integer as Go's strconv.ParseInt(s, 10, 64) takes it: an optional sign, then digits
 * (leading zeros allowed, any number of them); beyond what a JS number holds exactly is refused.
 */
export function parseDecimal(text: string, what: string): number {
  if (!/^[+-]?[0-9]+$/.test(text)) bad(`${what}=${JSON.stringify(text.slice(0, 40))}`);
  const v = Number(text);
  if (!Number.isSafeInteger(v)) bad(`${what}=${JSON.stringify(text.slice(0, 40))} out of range`);
  return v === 0 ? 0 : v; // no -0
}

/** A PAX time: seconds, optionally a fraction (Go's parsePAXTime; digits past nanoseconds ignored). */
function parsePaxTime(key: string, value: Buffer): number {
  const text = value.toString('latin1');
  const m = /^([+-]?[0-9]+)(?:\.([0-9]*))?$/.exec(text);
  if (!m) bad(`PAX ${key}=${JSON.stringify(text.slice(0, 40))}`);
  const secs = parseDecimal(m[1]!, `PAX ${key}`);
  const frac = m[2] ? Number(`0.${m[2].slice(0, 9)}`) : 0;
  return m[1]!.startsWith('-') ? secs - frac : secs + frac;
}

function paxInteger(key: string, value: Buffer): number {
  return parseDecimal(value.toString('latin1'), `PAX ${key}`);
}

/** Keys whose values are names and may hold no NUL (Go's validPAXRecord). */
const NAME_KEYS: ReadonlySet<string> = new Set(['path', 'linkpath', 'uname', 'gname']);

/** GNU sparse format 0.0 repeats these keys; they are folded into one GNU.sparse.map, as Go does. */
const SPARSE_OFFSET = 'GNU.sparse.offset';
const SPARSE_NUMBYTES = 'GNU.sparse.numbytes';
export const SPARSE_MAP = 'GNU.sparse.map';

/**
 * Parses a PAX extended header body (`<len> <key>=<value>\n` records) as Go does: the length is
 * a decimal (sign and leading zeros allowed) of at least 5 that covers its record exactly, the
 * record ends in a newline, the key is everything up to the first `=` and is not empty; a NUL in a
 * key, or in the value of path, linkpath, uname or gname, is refused; nothing may follow the last
 * record (not even NUL padding). A later record of a key replaces an earlier one. Values stay raw
 * bytes (xattrs are binary); keys are names (raw-name.ts). GNU sparse 0.0's repeated offset and
 * numbytes records become one `GNU.sparse.map` of format 0.1.
 */
export function parsePax(body: Uint8Array): Map<string, Buffer> {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.length);
  const out = new Map<string, Buffer>();
  const sparse: string[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const space = buf.indexOf(0x20, pos);
    if (space < 0) bad('PAX record without a length');
    const lenText = buf.toString('latin1', pos, space);
    if (!/^[+-]?[0-9]+$/.test(lenText)) bad(`PAX record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = pos + len;
    if (!(len >= 5) || len > buf.length - pos || end - 1 <= space || buf[end - 1] !== 0x0a) bad('PAX record length does not match its record');
    let eq = -1;
    for (let i = space + 1; i < end - 1; i++) {
      if (buf[i] === 0x3d) {
        eq = i;
        break;
      }
    }
    if (eq < 0) bad('PAX record without a key=value');
    if (eq === space + 1) bad('PAX record with an empty key');
    const key = decodeName(buf, space + 1, eq);
    const value = Buffer.from(buf.subarray(eq + 1, end - 1));
    if (NAME_KEYS.has(key) ? value.includes(0) : key.includes('\0')) bad(`PAX record ${JSON.stringify(key.slice(0, 60))} with a NUL byte`);
    if (key === SPARSE_OFFSET || key === SPARSE_NUMBYTES) {
      if (key !== (sparse.length % 2 === 0 ? SPARSE_OFFSET : SPARSE_NUMBYTES) || value.includes(0x2c)) bad(`PAX ${key} out of order`);
      sparse.push(value.toString('latin1'));
    } else out.set(key, value);
    pos = end;
  }
  if (sparse.length > 0) out.set(SPARSE_MAP, Buffer.from(sparse.join(','), 'latin1'));
  return out;
}

/** The string content of a GNU long-name body (NUL-terminated). */
function longNameOf(body: Uint8Array): string {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.length);
  const nul = buf.indexOf(0);
  return decodeName(buf, 0, nul < 0 ? buf.length : nul);
}

/**
 * Applies PAX records to a header as Go's mergePAX does: an empty value leaves the header's field;
 * numbers and times must parse. Atime and ctime are checked and dropped (no sink uses them).
 */
function mergePax(h: TarHeader, records: Map<string, Buffer>): void {
  for (const [k, v] of records) {
    if (v.length === 0) continue;
    switch (k) {
      case 'path':
        h.name = decodeName(v);
        break;
      case 'linkpath':
        h.linkname = decodeName(v);
        break;
      case 'uname':
        h.uname = decodeName(v);
        break;
      case 'gname':
        h.gname = decodeName(v);
        break;
      case 'uid':
        h.uid = checkId(paxInteger(k, v), 'PAX uid');
        break;
      case 'gid':
        h.gid = checkId(paxInteger(k, v), 'PAX gid');
        break;
      case 'size':
        h.size = paxInteger(k, v);
        break;
      case 'mtime':
        h.mtime = parsePaxTime(k, v);
        break;
      case 'atime':
      case 'ctime':
        parsePaxTime(k, v);
        break;
    }
  }
}

/** A v7 regular file whose final name ends in `/` is a directory (Go, GNU tar). */
function withLegacyType(h: TarHeader): TarHeader {
  return h.typeflag === '\0' && h.name.endsWith('/') ? { ...h, type: 'directory' } : h;
}

/**
 * What extension entries have said so far, with Go's rules. Feed it each extension entry with its
 * body (`absorb`), and every other header through `apply`, which returns the header as the
 * archive means it:
 * - of several PAX `x` headers in a row, the last one alone applies (it replaces the others);
 * - a GNU long name or long link (`L`, `K`; the last of each) wins over PAX `path`/`linkpath`;
 * - a PAX global header (`g`) is checked, then ignored: it never renames or changes any entry, as
 *   in containerd and Docker (which skip it), and it drops any extension waiting for an entry
 *   (Go returns it as an entry of its own, which ends the pending one).
 */
export class TarExtensions {
  private local: Map<string, Buffer> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;

  /** True when an extension entry is waiting for the entry it describes. */
  get pending(): boolean {
    return this.local !== undefined || this.longName !== undefined || this.longLink !== undefined;
  }

  absorb(header: TarHeader, body: Uint8Array): void {
    if (body.length > MAX_EXTENSION_SIZE) bad(`${header.type} entry of ${body.length} bytes`);
    switch (header.type) {
      case 'pax-header':
        this.local = parsePax(body);
        return;
      case 'pax-global-header': {
        // Checked as Go checks it (malformed records or numbers are errors), then dropped.
        mergePax({ ...header }, parsePax(body));
        this.reset();
        return;
      }
      case 'gnu-long-name':
        this.longName = longNameOf(body);
        return;
      case 'gnu-long-link':
        this.longLink = longNameOf(body);
        return;
      default:
        throw new Error(`not an extension entry: ${header.type}`);
    }
  }

  private reset(): void {
    this.local = undefined;
    this.longName = undefined;
    this.longLink = undefined;
  }

  apply(header: TarHeader): TarHeader {
    // Most entries have no extension at all: hand the header back as it is (no copy, no maps).
    if (!this.pending) return withLegacyType(header);
    const h: TarHeader = { ...header };
    if (this.local) {
      mergePax(h, this.local);
      if (this.local.size > 0) h.pax = this.local;
    }
    if (this.longName) h.name = this.longName;
    if (this.longLink) h.linkname = this.longLink;
    this.reset();
    return withLegacyType(h);
  }
}

// ---- encoding ---------------------------------------------------------------------------------

export interface TarHeaderInput {
  name: string;
  /** Defaults to 'file'. */
  type?: Exclude<EntryType, 'unknown'>;
  /** A raw typeflag, when `type` cannot say it (e.g. GNU 'S'); wins over `type`. */
  typeflag?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
}

function writeString(block: Buffer, offset: number, length: number, value: string, what: string): void {
  const bytes = encodeName(value);
  if (bytes.length > length) throw new RangeError(`tar header: ${what} is ${bytes.length} bytes, the field holds ${length}`);
  bytes.copy(block, offset);
}

/** Octal when it fits (digits + NUL), otherwise GNU base-256. */
export function encodeNumber(value: number, length: number): Buffer {
  if (!Number.isSafeInteger(value)) throw new RangeError(`tar header: ${value} is not an integer`);
  const field = Buffer.alloc(length);
  if (value >= 0 && value < 8 ** (length - 1)) {
    field.write(value.toString(8).padStart(length - 1, '0'), 0, 'latin1');
    return field;
  }
  let v = BigInt(value);
  for (let i = length - 1; i >= 0; i--) {
    field[i] = Number(v & 0xffn);
    v >>= 8n; // arithmetic shift: negative values fill with 1 bits (two's complement)
  }
  field[0] = (field[0]! & 0x7f) | 0x80;
  if (value < 0) field[0] |= 0x40;
  return field;
}

/** Splits a long name into ustar prefix and name at a slash, or undefined when it cannot fit. */
export function splitUstarName(name: string): { prefix: string; name: string } | undefined {
  if (nameByteLength(name) <= 100) return { prefix: '', name };
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (nameByteLength(prefix) > 155) return undefined;
    if (rest && nameByteLength(rest) <= 100) return { prefix, name: rest };
  }
  return undefined;
}

/**
 * Encodes one header block (ustar, or old GNU with `format: 'gnu'`). Throws RangeError when the
 * name or link name does not fit; `encodeEntryHeaders` adds a PAX header in that case.
 */
export function encodeHeader(h: TarHeaderInput, options: { format?: 'ustar' | 'gnu' } = {}): Buffer {
  const block = Buffer.alloc(BLOCK_SIZE);
  const gnu = options.format === 'gnu';
  const split = gnu ? (nameByteLength(h.name) <= 100 ? { prefix: '', name: h.name } : undefined) : splitUstarName(h.name);
  if (!split) throw new RangeError(`tar header: name too long for a ${gnu ? 'GNU' : 'ustar'} header: ${h.name}`);
  const type = h.type ?? 'file';
  writeString(block, 0, 100, split.name, 'name');
  encodeNumber(h.mode ?? (type === 'directory' ? 0o755 : 0o644), 8).copy(block, 100);
  encodeNumber(h.uid ?? 0, 8).copy(block, 108);
  encodeNumber(h.gid ?? 0, 8).copy(block, 116);
  encodeNumber(h.size ?? 0, 12).copy(block, 124);
  encodeNumber(Math.floor(h.mtime ?? 0), 12).copy(block, 136);
  const flag = h.typeflag ?? FLAG_OF_TYPE[type];
  if (flag.length !== 1) throw new RangeError(`tar header: typeflag must be one character`);
  block.write(flag, 156, 'latin1');
  writeString(block, 157, 100, h.linkname ?? '', 'linkname');
  block.write(gnu ? 'ustar  \0' : 'ustar\x0000', 257, 'latin1');
  writeString(block, 265, 32, h.uname ?? '', 'uname');
  writeString(block, 297, 32, h.gname ?? '', 'gname');
  encodeNumber(h.devmajor ?? 0, 8).copy(block, 329);
  encodeNumber(h.devminor ?? 0, 8).copy(block, 337);
  if (split.prefix) writeString(block, 345, 155, split.prefix, 'prefix');
  // Checksum: six octal digits, NUL, space (what every tar writes).
  block.write(checksums(block).unsigned.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return block;
}

/** A PAX extended header body from records; each record's length counts its own digits. */
export function encodePax(records: Iterable<[string, string | Uint8Array]> | Record<string, string | Uint8Array>): Buffer {
  const entries = Symbol.iterator in records ? [...(records as Iterable<[string, string | Uint8Array]>)] : Object.entries(records);
  const parts: Buffer[] = [];
  for (const [key, value] of entries) {
    if (!key || key.includes('=')) throw new RangeError(`PAX key ${JSON.stringify(key)}`);
    const payload = Buffer.concat([Buffer.from(' '), encodeName(key), Buffer.from('='), typeof value === 'string' ? encodeName(value) : value, Buffer.from('\n')]);
    let len = payload.length + 1;
    while (String(len).length + payload.length !== len) len = String(len).length + payload.length;
    parts.push(Buffer.from(String(len), 'latin1'), payload);
  }
  return Buffer.concat(parts);
}

function padded(data: Buffer): Buffer {
  const pad = paddingFor(data.length);
  return pad ? Buffer.concat([data, Buffer.alloc(pad)]) : data;
}

/**
 * The header blocks for one entry: a PAX `x` header (with its padded body) when the entry needs
 * one — a name or link name that ustar cannot hold, a number out of octal range or fractional, or explicit
 * `pax` records such as `SCHILY.xattr.*` — followed by the ustar header.
 */
export function encodeEntryHeaders(h: TarHeaderInput & { pax?: Record<string, string | Uint8Array> }): Buffer {
  const records = new Map<string, string | Uint8Array>(Object.entries(h.pax ?? {}));
  const base: TarHeaderInput = { ...h };
  delete (base as { pax?: unknown }).pax;
  if (!splitUstarName(h.name)) {
    records.set('path', h.name);
    base.name = h.name.slice(-100).replace(/^\/+/, '') || 'pax-long-name';
    while (nameByteLength(base.name) > 100) base.name = base.name.slice(1);
  }
  if (h.linkname && nameByteLength(h.linkname) > 100) {
    records.set('linkpath', h.linkname);
    base.linkname = '';
  }
  // Numbers beyond octal range are written base-256 in the header too, for readers without PAX.
  const octalMax = (len: number) => 8 ** (len - 1) - 1;
  for (const [key, len] of [['size', 12], ['uid', 8], ['gid', 8]] as const) {
    const v = h[key];
    if (v !== undefined && v > octalMax(len)) records.set(key, String(v));
  }
  if (h.mtime !== undefined && (!Number.isInteger(h.mtime) || h.mtime < 0 || h.mtime > octalMax(12))) {
    records.set('mtime', String(h.mtime));
  }
  const header = encodeHeader(base);
  if (records.size === 0) return header;
  const body = encodePax(records);
  const paxHeader = encodeHeader({ name: 'PaxHeader', type: 'pax-header', size: body.length, mode: 0o644 });
  return Buffer.concat([paxHeader, padded(body), header]);
}
