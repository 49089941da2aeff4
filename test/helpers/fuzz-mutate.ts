// Mutations for the fuzz test (issue 16), as fast-check arbitraries plus pure functions that apply
// them. An input is a seed and a list of operations; fast-check generates the list from its seed
// (so a run is reproducible from the printed seed) and shrinks it towards fewer, smaller operations
// when one fails. Applying never throws: positions are taken modulo the current length, and an
// operation that finds nothing to work on leaves the bytes as they are.
//
// Byte level: bit flips, byte sets, truncation at any offset, insertions, deletions, splices from
// another seed. Tar level (512-byte blocks): duplicate, swap, drop or zero a block; overwrite a
// header's numeric or string field (huge octal, base-256 with the high bit, negative, garbage,
// blanks, NUL inside) or typeflag, the checksum recomputed when the operation says so (half of
// them), so that mutations get past it; edit a PAX header's records (lengths, keys, values, NULs,
// duplicates) or the slots of an old GNU sparse map. JSON level: change a value's type, drop,
// duplicate or rename a field, nest deeply, huge strings, numbers and lists.
import fc from 'fast-check';
import { BLOCK_SIZE, checksums, decodeHeader, isHeaderOnly, paddingFor } from '../../src/layers/tar-header.ts';

/** Inputs never grow past this (a mutation that would is cut there). */
export const MAX_INPUT = 4 * 1024 * 1024;

// ---- byte and tar operations --------------------------------------------------------------------

export type PaxEdit =
  | { kind: 'len'; rec: number; delta: number }
  | { kind: 'lenText'; rec: number; text: number }
  | { kind: 'dup'; rec: number }
  | { kind: 'drop'; rec: number }
  | { kind: 'key'; rec: number; key: number }
  | { kind: 'value'; rec: number; value: number }
  | { kind: 'add'; key: number; value: number }
  | { kind: 'nul'; at: number }
  | { kind: 'tail'; value: number };

export type ByteOp =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: number[] }
  | { op: 'delete'; at: number; len: number }
  | { op: 'splice'; at: number; from: number; start: number; len: number }
  | { op: 'append'; from: number }
  | { op: 'dupBlock'; block: number; to: number }
  | { op: 'swapBlocks'; a: number; b: number }
  | { op: 'dropBlock'; block: number }
  | { op: 'zeroBlock'; block: number }
  | { op: 'field'; header: number; field: number; value: number; extra: number; fix: boolean }
  | { op: 'typeflag'; header: number; flag: number; fix: boolean }
  | { op: 'pax'; header: number; edit: PaxEdit; fix: boolean }
  | { op: 'sparseSlot'; header: number; slot: number; half: number; value: number; extra: number; fix: boolean };

/** Header fields: [offset, length, numeric]. */
const FIELDS: [string, number, number, boolean][] = [
  ['name', 0, 100, false],
  ['mode', 100, 8, true],
  ['uid', 108, 8, true],
  ['gid', 116, 8, true],
  ['size', 124, 12, true],
  ['mtime', 136, 12, true],
  ['chksum', 148, 8, true],
  ['linkname', 157, 100, false],
  ['magic', 257, 6, false],
  ['version', 263, 2, false],
  ['uname', 265, 32, false],
  ['gname', 297, 32, false],
  ['devmajor', 329, 8, true],
  ['devminor', 337, 8, true],
  ['prefix', 345, 155, false],
  ['gnu.isextended', 482, 1, true],
  ['gnu.realsize', 483, 12, true],
  ['gnu.atime', 345, 12, true],
  ['star.tail', 508, 4, false],
];

/** Numbers worth writing into a field: block and extension limits, id and integer limits. */
const INTERESTING = [0, 1, 7, 511, 512, 513, 1023, 1024, 1 << 20, (1 << 20) + 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 33 - 1, 8 ** 11 - 1, 2 ** 53 - 1, 2 ** 53 + 2, 1e15];

const NUMERIC_VALUES = 17;

function octal(v: number, width: number, terminated = true): Buffer {
  const text = Math.max(0, Math.floor(v)).toString(8);
  const digits = terminated ? width - 1 : width;
  const b = Buffer.alloc(width);
  b.write(text.length > digits ? text.slice(-digits) : text.padStart(digits, '0'), 0, 'latin1');
  return b;
}

/** The bytes of a numeric field of `width` for value kind `value` (`extra` picks within a kind). */
export function numericValue(value: number, extra: number, width: number): Buffer {
  const b = Buffer.alloc(width);
  switch (value % NUMERIC_VALUES) {
    case 0:
      return octal(INTERESTING[extra % INTERESTING.length]!, width);
    case 1:
      b.fill(0x37, 0, width - 1); // the largest octal the field holds
      return b;
    case 2:
      return b.fill(0x37); // all digits, no terminator
    case 3: {
      // base-256, positive, the value from `extra` in the low bytes
      let v = BigInt(extra) * 0x1_0000_0001n;
      for (let i = width - 1; i > 0; i--) {
        b[i] = Number(v & 0xffn);
        v >>= 8n;
      }
      b[0] = 0x80;
      return b;
    }
    case 4:
      b.fill(0xff);
      b[0] = 0x80; // base-256 far beyond any safe integer
      return b;
    case 5:
      b.fill(0xff);
      b[width - 1] = 0xff - (extra & 0x7f); // base-256, small negative
      return b;
    case 6:
      return b.fill(0xff); // base-256 -1
    case 7:
      for (let i = 0; i < width; i++) b[i] = (extra * (i + 13) * 2654435761) >>> 24;
      return b;
    case 8:
      return b.fill(0x20);
    case 9:
      return b; // all NUL: empty, reads as 0
    case 10:
      b.fill(0x20);
      b.write('12', Math.max(0, width - 4), 'latin1');
      return b;
    case 11:
      b.write('12\u00003', 0, 'latin1');
      return b;
    case 12:
      b.write('-1', 0, 'latin1');
      return b;
    case 13:
      b.write('+7', 0, 'latin1');
      return b;
    case 14:
      b.write('9'.repeat(width - 1), 0, 'latin1');
      return b;
    case 15:
      b.write('0x10', 0, 'latin1');
      return b;
    default:
      return octal(extra, width);
  }
}

const STRINGS: (string | number[])[] = [
  '',
  '..',
  '/',
  '../../x',
  'A'.repeat(200),
  [0x6e, 0xff, 0xfe, 0xc3, 0x28],
  '.wh..wh..opq',
  '.wh.x',
  './',
  'a/../..',
  'ustar\u0000',
  'ustar  \u0000',
  'GNUSparseFile.0/x',
  '\n',
  '././@LongLink',
  '/etc',
  'a\u0000b',
  '.wh.',
  '.wh..',
  'a/.wh.b/c',
  '.wh..wh.plnk/1',
];

export function stringValue(value: number, width: number): Buffer {
  const v = STRINGS[value % STRINGS.length]!;
  const bytes = typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.from(v);
  const b = Buffer.alloc(width);
  bytes.copy(b, 0, 0, Math.min(width, bytes.length));
  return b;
}

const FLAGS = ['0', '1', '2', '3', '4', '5', '6', '7', '\u0000', 'x', 'g', 'L', 'K', 'S', 'V', 'M', 'N', 'D', 'A', 'Z', '\u00ff'];

const PAX_KEYS = [
  'path',
  'linkpath',
  'size',
  'uid',
  'gid',
  'mtime',
  'atime',
  'ctime',
  'uname',
  'gname',
  'comment',
  'GNU.sparse.map',
  'GNU.sparse.size',
  'GNU.sparse.realsize',
  'GNU.sparse.numblocks',
  'GNU.sparse.major',
  'GNU.sparse.minor',
  'GNU.sparse.name',
  'GNU.sparse.offset',
  'GNU.sparse.numbytes',
  'SCHILY.xattr.user.x',
  'SCHILY.xattr.security.capability',
  'SCHILY.xattr.trusted.overlay.opaque',
  'SCHILY.xattr.',
  'LIBARCHIVE.xattr.user.%ff%00',
  'a\u0000b',
  'k',
];

const PAX_VALUES: (string | number[])[] = [
  '',
  '-1',
  '0',
  '1',
  '9'.repeat(30),
  '1e9',
  '1.5',
  '-1.5',
  '99999999999999999999.999',
  '\u0000',
  'a\u0000b',
  '../../x',
  '/',
  '1,2,3',
  '0,1,2,3,4,5',
  '1,',
  '0,5,100,5,3,5',
  '1',
  '0',
  'A'.repeat(5000),
  '18446744073709551616',
  '+0012',
  [0xff, 0xfe, 0x80],
  '1.0',
  'GNUSparseFile.0/../../x',
  '.wh...',
  'd/.wh.x/y',
];

/** A PAX length prefix to put instead of the right one. */
const LEN_TEXTS = ['0', '-5', '+012', '00000000000000000000000099', '99999999999999999999', '', '4', '5', '1e3', ' 9'];

// ---- arbitraries --------------------------------------------------------------------------------

const pos = fc.nat({ max: 0x7fffffff });
const small = fc.nat({ max: 64 });

const paxEdit: fc.Arbitrary<PaxEdit> = fc.oneof(
  fc.record({ kind: fc.constant('len' as const), rec: small, delta: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ kind: fc.constant('lenText' as const), rec: small, text: fc.nat({ max: LEN_TEXTS.length - 1 }) }),
  fc.record({ kind: fc.constant('dup' as const), rec: small }),
  fc.record({ kind: fc.constant('drop' as const), rec: small }),
  fc.record({ kind: fc.constant('key' as const), rec: small, key: fc.nat({ max: PAX_KEYS.length - 1 }) }),
  fc.record({ kind: fc.constant('value' as const), rec: small, value: fc.nat({ max: PAX_VALUES.length - 1 }) }),
  fc.record({ kind: fc.constant('add' as const), key: fc.nat({ max: PAX_KEYS.length - 1 }), value: fc.nat({ max: PAX_VALUES.length - 1 }) }),
  fc.record({ kind: fc.constant('nul' as const), at: pos }),
  fc.record({ kind: fc.constant('tail' as const), value: fc.nat({ max: 3 }) }),
);

/** One byte-level or tar-level operation; tar-aware ones weigh more (they get further). */
export const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('flip' as const), at: pos, bit: fc.nat({ max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('set' as const), at: pos, value: fc.oneof(fc.constantFrom(0, 0xff, 0x80, 0x7f, 0x30, 0x37, 0x38, 0x20, 0x2f, 0x2e, 0x0a, 0x3d), fc.nat({ max: 255 })) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: pos }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('insert' as const), at: pos, bytes: fc.array(fc.nat({ max: 255 }), { minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), at: pos, len: fc.integer({ min: 1, max: 1024 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('splice' as const), at: pos, from: small, start: pos, len: fc.integer({ min: 1, max: 4096 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('append' as const), from: small }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('dupBlock' as const), block: pos, to: pos }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('swapBlocks' as const), a: pos, b: pos }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('dropBlock' as const), block: pos }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('zeroBlock' as const), block: pos }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('field' as const), header: small, field: fc.nat({ max: FIELDS.length - 1 }), value: fc.nat({ max: 40 }), extra: pos, fix: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('typeflag' as const), header: small, flag: fc.nat({ max: FLAGS.length - 1 }), fix: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('pax' as const), header: small, edit: paxEdit, fix: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('sparseSlot' as const), header: small, slot: fc.nat({ max: 3 }), half: fc.nat({ max: 1 }), value: fc.nat({ max: 40 }), extra: pos, fix: fc.boolean() }) },
);

/** 1–8 operations (shrinks towards fewer). */
export const byteOps = fc.array(byteOp, { minLength: 1, maxLength: 8 });

// ---- applying -----------------------------------------------------------------------------------

export function fixChecksumAt(buf: Buffer, at: number): void {
  if (at + BLOCK_SIZE > buf.length) return;
  const b = buf.subarray(at, at + BLOCK_SIZE);
  b.fill(0x20, 148, 156);
  b.write(checksums(b).unsigned.toString(8).padStart(6, '0') + '\u0000 ', 148, 'latin1');
}

/**
 * Offsets of the blocks that read as headers (checksum right), found leniently: after a header, its
 * data is skipped when the size is sane, else the walk goes on block by block.
 */
export function headerOffsets(buf: Buffer): number[] {
  const out: number[] = [];
  let at = 0;
  while (at + BLOCK_SIZE <= buf.length && out.length < 4096) {
    let h: ReturnType<typeof decodeHeader> = null;
    try {
      h = decodeHeader(buf.subarray(at, at + BLOCK_SIZE));
    } catch {
      at += BLOCK_SIZE;
      continue;
    }
    if (!h) {
      at += BLOCK_SIZE;
      continue;
    }
    out.push(at);
    const size = isHeaderOnly(h.type) || h.typeflag === 'S' ? 0 : h.size;
    at += BLOCK_SIZE + (size >= 0 && size <= buf.length - at ? size + paddingFor(size) : 0);
  }
  return out;
}

function cut(b: Buffer): Buffer {
  return b.length > MAX_INPUT ? b.subarray(0, MAX_INPUT) : b;
}

interface PaxRecord {
  key: Buffer;
  value: Buffer;
  len?: string;
}

function parseRecords(body: Buffer): { records: PaxRecord[]; tail: Buffer } {
  const records: PaxRecord[] = [];
  let p = 0;
  while (p < body.length) {
    const sp = body.indexOf(0x20, p);
    if (sp < 0) break;
    const len = Number(body.toString('latin1', p, sp));
    if (!Number.isSafeInteger(len) || len < 5 || p + len > body.length || body[p + len - 1] !== 0x0a) break;
    const eq = body.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= p + len) break;
    records.push({ key: body.subarray(sp + 1, eq), value: body.subarray(eq + 1, p + len - 1) });
    p += len;
  }
  return { records, tail: body.subarray(p) };
}

function serialiseRecords(records: PaxRecord[], tail: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const r of records) {
    const payload = Buffer.concat([Buffer.from(' '), r.key, Buffer.from('='), r.value, Buffer.from('\n')]);
    let len = payload.length + 1;
    while (String(len).length + payload.length !== len) len = String(len).length + payload.length;
    parts.push(Buffer.from(r.len ?? String(len), 'latin1'), payload);
  }
  parts.push(tail);
  return Buffer.concat(parts);
}

const text = (v: string | number[]) => (typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.from(v));

function editPax(body: Buffer, e: PaxEdit): Buffer {
  const { records, tail } = parseRecords(body);
  const pick = (i: number) => (records.length ? i % records.length : -1);
  switch (e.kind) {
    case 'len': {
      const i = pick(e.rec);
      if (i < 0) return body;
      const before = serialiseRecords([records[i]!], Buffer.alloc(0));
      const right = Number(before.toString('latin1', 0, before.indexOf(0x20)));
      records[i] = { ...records[i]!, len: String(right + e.delta) };
      break;
    }
    case 'lenText': {
      const i = pick(e.rec);
      if (i < 0) return body;
      records[i] = { ...records[i]!, len: LEN_TEXTS[e.text % LEN_TEXTS.length]! };
      break;
    }
    case 'dup': {
      const i = pick(e.rec);
      if (i < 0) return body;
      records.splice(i, 0, { ...records[i]! });
      break;
    }
    case 'drop': {
      const i = pick(e.rec);
      if (i < 0) return body;
      records.splice(i, 1);
      break;
    }
    case 'key': {
      const i = pick(e.rec);
      if (i < 0) return body;
      records[i] = { ...records[i]!, key: text(PAX_KEYS[e.key % PAX_KEYS.length]!) };
      break;
    }
    case 'value': {
      const i = pick(e.rec);
      if (i < 0) return body;
      records[i] = { ...records[i]!, value: text(PAX_VALUES[e.value % PAX_VALUES.length]!) };
      break;
    }
    case 'add':
      records.push({ key: text(PAX_KEYS[e.key % PAX_KEYS.length]!), value: text(PAX_VALUES[e.value % PAX_VALUES.length]!) });
      break;
    case 'nul': {
      const out = serialiseRecords(records, tail);
      if (out.length === 0) return Buffer.from([0]);
      const b = Buffer.from(out);
      b[e.at % b.length] = 0;
      return b;
    }
    case 'tail':
      return Buffer.concat([serialiseRecords(records, tail), [Buffer.alloc(1), Buffer.alloc(100), Buffer.from('garbage'), Buffer.from('\n')][e.value % 4]!]);
  }
  return serialiseRecords(records, tail);
}

/** A PAX `x` header block for a body of `size` bytes. */
function paxHeaderBlock(size: number): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  b.write('PaxHeaders/fuzz', 0, 'latin1');
  b.write('0000644\u0000', 100, 'latin1');
  b.write('0000000\u0000', 108, 'latin1');
  b.write('0000000\u0000', 116, 'latin1');
  b.write(size.toString(8).padStart(11, '0') + '\u0000', 124, 'latin1');
  b.write('00000000000\u0000', 136, 'latin1');
  b.write('x', 156, 'latin1');
  b.write('ustar\u000000', 257, 'latin1');
  fixChecksumAt(b, 0);
  return b;
}

function writeSize(buf: Buffer, at: number, size: number): void {
  buf.write(size.toString(8).padStart(11, '0') + '\u0000', at + 124, 'latin1');
}

function applyOne(buf: Buffer, op: ByteOp, pool: readonly Buffer[]): Buffer {
  const len = buf.length;
  const blocks = Math.floor(len / BLOCK_SIZE);
  switch (op.op) {
    case 'flip': {
      if (!len) return buf;
      const b = Buffer.from(buf);
      const i = op.at % len;
      b[i] = b[i]! ^ (1 << op.bit);
      return b;
    }
    case 'set': {
      if (!len) return buf;
      const b = Buffer.from(buf);
      b[op.at % len] = op.value;
      return b;
    }
    case 'truncate':
      return buf.subarray(0, op.at % (len + 1));
    case 'insert': {
      const at = op.at % (len + 1);
      return Buffer.concat([buf.subarray(0, at), Buffer.from(op.bytes), buf.subarray(at)]);
    }
    case 'delete': {
      if (!len) return buf;
      const at = op.at % len;
      return Buffer.concat([buf.subarray(0, at), buf.subarray(at + op.len)]);
    }
    case 'splice': {
      const src = pool.length ? pool[op.from % pool.length]! : buf;
      if (!src.length) return buf;
      const start = op.start % src.length;
      const at = op.at % (len + 1);
      return Buffer.concat([buf.subarray(0, at), src.subarray(start, start + op.len), buf.subarray(at)]);
    }
    case 'append': {
      const src = pool.length ? pool[op.from % pool.length]! : buf;
      return Buffer.concat([buf, src]);
    }
    case 'dupBlock': {
      if (!blocks) return buf;
      const i = op.block % blocks;
      const to = (op.to % (blocks + 1)) * BLOCK_SIZE;
      return Buffer.concat([buf.subarray(0, to), buf.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE), buf.subarray(to)]);
    }
    case 'swapBlocks': {
      if (blocks < 2) return buf;
      const a = op.a % blocks;
      const c = op.b % blocks;
      const b = Buffer.from(buf);
      buf.copy(b, a * BLOCK_SIZE, c * BLOCK_SIZE, (c + 1) * BLOCK_SIZE);
      buf.copy(b, c * BLOCK_SIZE, a * BLOCK_SIZE, (a + 1) * BLOCK_SIZE);
      return b;
    }
    case 'dropBlock': {
      if (!blocks) return buf;
      const i = op.block % blocks;
      return Buffer.concat([buf.subarray(0, i * BLOCK_SIZE), buf.subarray((i + 1) * BLOCK_SIZE)]);
    }
    case 'zeroBlock': {
      if (!blocks) return buf;
      const b = Buffer.from(buf);
      b.fill(0, (op.block % blocks) * BLOCK_SIZE, (op.block % blocks + 1) * BLOCK_SIZE);
      return b;
    }
    case 'field': {
      const headers = headerOffsets(buf);
      if (!headers.length) return buf;
      const at = headers[op.header % headers.length]!;
      const [, off, width, numeric] = FIELDS[op.field % FIELDS.length]!;
      const b = Buffer.from(buf);
      (numeric ? numericValue(op.value, op.extra, width) : stringValue(op.value, width)).copy(b, at + off);
      if (op.fix && off !== 148) fixChecksumAt(b, at);
      return b;
    }
    case 'typeflag': {
      const headers = headerOffsets(buf);
      if (!headers.length) return buf;
      const at = headers[op.header % headers.length]!;
      const b = Buffer.from(buf);
      b[at + 156] = FLAGS[op.flag % FLAGS.length]!.charCodeAt(0);
      if (op.fix) fixChecksumAt(b, at);
      return b;
    }
    case 'pax': {
      const headers = headerOffsets(buf);
      const pax = headers.filter((h) => buf[h + 156] === 0x78 || buf[h + 156] === 0x67);
      if (!pax.length) {
        // No PAX header to edit: put one with the new records before a header.
        if (!headers.length) return buf;
        const at = headers[op.header % headers.length]!;
        const body = editPax(Buffer.alloc(0), op.edit.kind === 'add' ? op.edit : { kind: 'add', key: op.header, value: op.header >> 1 });
        return Buffer.concat([buf.subarray(0, at), paxHeaderBlock(body.length), body, Buffer.alloc(paddingFor(body.length)), buf.subarray(at)]);
      }
      const at = pax[op.header % pax.length]!;
      let size: number;
      try {
        size = decodeHeader(buf.subarray(at, at + BLOCK_SIZE))!.size;
      } catch {
        return buf;
      }
      if (size < 0 || at + BLOCK_SIZE + size > len) return buf;
      const body = editPax(buf.subarray(at + BLOCK_SIZE, at + BLOCK_SIZE + size), op.edit);
      const header = Buffer.from(buf.subarray(at, at + BLOCK_SIZE));
      if (op.fix) {
        writeSize(header, 0, body.length);
        fixChecksumAt(header, 0);
      }
      const rest = buf.subarray(at + BLOCK_SIZE + size + paddingFor(size));
      return Buffer.concat([buf.subarray(0, at), header, body, Buffer.alloc(paddingFor(body.length)), rest]);
    }
    case 'sparseSlot': {
      const headers = headerOffsets(buf).filter((h) => buf[h + 156] === 0x53);
      if (!headers.length) return buf;
      const at = headers[op.header % headers.length]!;
      const b = Buffer.from(buf);
      numericValue(op.value, op.extra, 12).copy(b, at + 386 + op.slot * 24 + op.half * 12);
      if (op.fix) fixChecksumAt(b, at);
      return b;
    }
  }
}

/** `seed` with `ops` applied in order; `pool` is what splices and appends take from. */
export function applyByteOps(seed: Buffer, ops: readonly ByteOp[], pool: readonly Buffer[]): Buffer {
  let b = seed;
  for (const op of ops) b = cut(applyOne(b, op, pool));
  return b;
}

// ---- JSON -----------------------------------------------------------------------------------------

/** A JSON value with objects as entry lists (so keys can repeat) and raw number texts. */
type J = null | boolean | number | string | { raw: string } | J[] | { entries: [string, J][] };

export type JsonOp =
  | { op: 'retype'; node: number; to: number }
  | { op: 'drop'; node: number }
  | { op: 'dupKey'; node: number }
  | { op: 'rename'; node: number; key: number }
  | { op: 'add'; node: number; key: number; value: number }
  | { op: 'copy'; node: number; from: number }
  | { op: 'repeat'; node: number; times: number };

const KEYS = [
  '__proto__',
  'constructor',
  'mediaType',
  'schemaVersion',
  'manifests',
  'layers',
  'config',
  'digest',
  'size',
  'platform',
  'architecture',
  'os',
  'variant',
  'os.features',
  'annotations',
  'urls',
  'rootfs',
  'diff_ids',
  'history',
  'Env',
  'Cmd',
  'Entrypoint',
  'Labels',
  'User',
  'ExposedPorts',
  'Volumes',
  'WorkingDir',
  'Healthcheck',
  'Shell',
  'token',
  'access_token',
  'expires_in',
  'tags',
  'errors',
  'code',
  'message',
  'Config',
  'Layers',
  'RepoTags',
  'imageLayoutVersion',
  'org.opencontainers.image.ref.name',
  'io.containerd.image.name',
  '',
  'artifactType',
  'empty_layer',
];

function deepList(n: number): J {
  let v: J = [];
  for (let i = 0; i < n; i++) v = [v];
  return v;
}

function deepObject(n: number): J {
  let v: J = { entries: [] };
  for (let i = 0; i < n; i++) v = { entries: [['a', v]] };
  return v;
}

/** What a value may become. Built lazily: some are big. */
const REPLACEMENTS: (() => J)[] = [
  () => null,
  () => true,
  () => false,
  () => 0,
  () => -1,
  () => 1.5,
  () => ({ raw: '-0' }),
  () => ({ raw: '1e400' }),
  () => ({ raw: '-1e400' }),
  () => ({ raw: '9007199254740993' }),
  () => ({ raw: '1' + '0'.repeat(400) }),
  () => 2 ** 53,
  () => 4294967296,
  () => '',
  () => 'x',
  () => `sha256:${'a'.repeat(64)}`,
  () => 'sha256:../../etc/passwd',
  () => `sha512:${'b'.repeat(128)}`,
  () => 'application/vnd.oci.image.manifest.v1+json',
  () => 'application/vnd.oci.image.index.v1+json',
  () => 'application/vnd.docker.distribution.manifest.list.v2+json',
  () => 'application/vnd.oci.image.layer.v1.tar+zstd',
  () => 'linux',
  () => 'arm',
  () => 'v7',
  () => 'x86_64',
  () => 'aarch64',
  () => 'armhf',
  () => 'i386',
  () => 'AMD64',
  () => 'v8',
  () => 'unknown',
  () => '\u0000',
  () => '\u001b[31mred\u001b]0;title\u0007',
  () => ({ raw: '"\\ud800"' }),
  () => 'A'.repeat(1 << 20),
  () => [],
  () => ({ entries: [] }),
  () => [null],
  () => ['a', 1, { entries: [] }],
  () => ({ entries: [['a', 1]] }),
  () => deepList(20_000),
  () => deepObject(5_000),
  () => Array.from({ length: 100_000 }, () => 0),
  () => ({ entries: Array.from({ length: 20_000 }, (_, i): [string, J] => [`k${i}`, i]) }),
  () => ({ entries: [['__proto__', { entries: [['polluted', 1]] }], ['constructor', { entries: [['prototype', 1]] }]] }),
  () => Array.from({ length: 1000 }, () => ({ entries: [['os', 'linux'], ['architecture', 'amd64']] })),
];

/** A value of the document: the root and its first fields often (they are what parsers look at first), any other one too. */
const node = fc.oneof(fc.nat({ max: 3 }), pos);

export const jsonOp: fc.Arbitrary<JsonOp> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('retype' as const), node, to: fc.nat({ max: REPLACEMENTS.length - 1 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('drop' as const), node }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('dupKey' as const), node }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('rename' as const), node, key: fc.nat({ max: KEYS.length - 1 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('add' as const), node, key: fc.nat({ max: KEYS.length - 1 }), value: fc.nat({ max: REPLACEMENTS.length - 1 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('copy' as const), node, from: pos }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('repeat' as const), node, times: fc.integer({ min: 2, max: 300 }) }) },
);

export const jsonOps = fc.array(jsonOp, { minLength: 1, maxLength: 6 });

function toJ(v: unknown): J {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(toJ);
  if (typeof v === 'object') return { entries: Object.entries(v as Record<string, unknown>).map(([k, x]): [string, J] => [k, toJ(x)]) };
  return null;
}

const isEntries = (v: J): v is { entries: [string, J][] } => typeof v === 'object' && v !== null && !Array.isArray(v) && 'entries' in v;

/** Values copied per document, at most: past it, copies share their parts with the original. */
const CLONE_BUDGET = 200_000;

/** A copy of `v` that later edits of the original do not reach; deep or huge parts (and all, once the budget is spent) are shared. */
function cloneJ(v: J, budget: { left: number }, depth = 0): J {
  if (depth > 200 || budget.left <= 0) return v;
  budget.left--;
  if (Array.isArray(v)) return v.length > 1000 ? v : v.map((x) => cloneJ(x, budget, depth + 1));
  if (isEntries(v)) return v.entries.length > 1000 ? v : { entries: v.entries.map(([k, x]): [string, J] => [k, cloneJ(x, budget, depth + 1)]) };
  return v;
}

/** A place in the document: its value, and what can be done to it there. */
interface Slot {
  get(): J;
  set(v: J): void;
  /** Removes the value (and its key), in a list or an object. */
  drop?(): void;
  /** Repeats its key (objects): JSON.parse keeps the last, other readers the first. */
  dupKey?(): void;
  rename?(k: string): void;
}

/** Every value of the document with a way to replace it, depth first (the root first). */
function slots(root: { v: J }, budget: { left: number }): Slot[] {
  const out: Slot[] = [{ get: () => root.v, set: (v) => (root.v = v) }];
  const walk = (v: J, depth: number) => {
    if (depth > 64 || out.length > 5000) return;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length && i < 200; i++) {
        const idx = i;
        out.push({ get: () => v[idx]!, set: (x) => (v[idx] = x), drop: () => void v.splice(idx, 1) });
        walk(v[i]!, depth + 1);
      }
    } else if (isEntries(v)) {
      for (let i = 0; i < v.entries.length && i < 200; i++) {
        const e = v.entries[i]!;
        out.push({
          get: () => e[1],
          set: (x) => (e[1] = x),
          drop: () => void v.entries.splice(v.entries.indexOf(e), 1),
          dupKey: () => void v.entries.splice(v.entries.indexOf(e) + 1, 0, [e[0], cloneJ(e[1], budget)]),
          rename: (k) => (e[0] = k),
        });
        walk(e[1], depth + 1);
      }
    }
  };
  walk(root.v, 0);
  return out;
}

class Lit {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** JSON text, iteratively (the deep replacements are deeper than the stack), cut at MAX_INPUT. */
function serialise(v: J): string {
  const parts: string[] = [];
  let size = 0;
  const put = (t: string) => {
    parts.push(t);
    size += t.length;
  };
  const stack: (J | Lit)[] = [v];
  // Shared parts can make a small document print huge: stop at MAX_INPUT, or after as many steps.
  for (let steps = 0; stack.length && size < MAX_INPUT && steps < MAX_INPUT && stack.length < MAX_INPUT; steps++) {
    const x = stack.pop()!;
    if (x instanceof Lit) put(x.text);
    else if (x === null || typeof x !== 'object') put(JSON.stringify(x));
    else if (Array.isArray(x)) {
      stack.push(new Lit(']'));
      for (let i = x.length - 1; i >= 0; i--) {
        stack.push(x[i]!);
        if (i > 0) stack.push(new Lit(','));
      }
      put('[');
    } else if ('raw' in x) put(x.raw);
    else {
      stack.push(new Lit('}'));
      for (let i = x.entries.length - 1; i >= 0; i--) {
        stack.push(x.entries[i]![1]);
        stack.push(new Lit(`${JSON.stringify(x.entries[i]![0])}:`));
        if (i > 0) stack.push(new Lit(','));
      }
      put('{');
    }
  }
  return parts.join('').slice(0, MAX_INPUT);
}

/** The document with `ops` applied, as JSON text (keys may repeat; numbers may be out of range). */
export function applyJsonOps(doc: unknown, ops: readonly JsonOp[]): Buffer {
  const root = { v: toJ(doc) };
  const budget = { left: CLONE_BUDGET };
  for (const op of ops) {
    const all = slots(root, budget);
    const s = all[op.node % all.length]!;
    switch (op.op) {
      case 'retype':
        s.set(REPLACEMENTS[op.to % REPLACEMENTS.length]!());
        break;
      case 'drop':
        s.drop?.();
        break;
      case 'dupKey':
        s.dupKey?.();
        break;
      case 'rename':
        s.rename?.(KEYS[op.key % KEYS.length]!);
        break;
      case 'add': {
        const v = s.get();
        const value = REPLACEMENTS[op.value % REPLACEMENTS.length]!();
        if (isEntries(v)) v.entries.push([KEYS[op.key % KEYS.length]!, value]);
        else if (Array.isArray(v)) v.push(value);
        break;
      }
      case 'copy':
        s.set(cloneJ(all[op.from % all.length]!.get(), budget));
        break;
      case 'repeat': {
        const v = s.get();
        if (Array.isArray(v) && v.length && v.length < 10_000) for (let i = 1; i < op.times; i++) v.push(cloneJ(v[0]!, budget));
        break;
      }
    }
  }
  return Buffer.from(serialise(root.v), 'utf8');
}

/** Byte-level damage to a document's text (after the JSON operations): fewer kinds, same rules. */
export const textOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: pos, bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: pos, value: fc.constantFrom(0, 0xff, 0xc3, 0x22, 0x5c, 0x7b, 0x5b, 0x2c, 0x3a, 0x30, 0x2d, 0x65, 0x3d, 0x20, 0x09, 0x0a, 0x23) }),
  fc.record({ op: fc.constant('truncate' as const), at: pos }),
  fc.record({ op: fc.constant('insert' as const), at: pos, bytes: fc.constantFrom<number[]>([0xef, 0xbb, 0xbf], [0xff, 0xfe], [0x5c, 0x75, 0x64, 0x38, 0x30, 0x30], [0x2c], [0x7d], [0x5d, 0x5d], [0x31, 0x65, 0x39, 0x39, 0x39]) }),
  fc.record({ op: fc.constant('delete' as const), at: pos, len: fc.integer({ min: 1, max: 64 }) }),
);
