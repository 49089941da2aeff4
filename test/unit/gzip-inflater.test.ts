// The helper thread's gzip inflater (raw deflate through node:zlib's handle, the gzip framing read
// in JavaScript): for every stream, fed in pieces of any size into an output of any size, the
// bytes and the failures must be Gunzip's, except that the CRC-32 is not checked (the layer's
// diff_id covers every byte; the length in the trailer still is).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32, deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import { gzipInflater } from '../../src/offthread/gzip-inflater.js';

interface Member {
  data: Buffer;
  name?: string;
  comment?: string;
  extra?: Buffer;
  headerCrc?: boolean;
  /** Overrides of the header and trailer fields, to make bad streams. */
  flags?: number;
  method?: number;
  crc?: number;
  isize?: number;
}

function le(n: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (n >>> (8 * i)) & 0xff;
  return b;
}

/** One gzip member, with the optional header fields asked for (RFC 1952). */
function member(m: Member): Buffer {
  const flags = m.flags ?? ((m.headerCrc ? 0x02 : 0) | (m.extra ? 0x04 : 0) | (m.name !== undefined ? 0x08 : 0) | (m.comment !== undefined ? 0x10 : 0));
  const parts: Buffer[] = [Buffer.from([0x1f, 0x8b, m.method ?? 8, flags, 1, 2, 3, 4, 0, 3])];
  if (m.extra) parts.push(le(m.extra.length, 2), m.extra);
  if (m.name !== undefined) parts.push(Buffer.from(m.name + '\0', 'latin1'));
  if (m.comment !== undefined) parts.push(Buffer.from(m.comment + '\0', 'latin1'));
  if (m.headerCrc) parts.push(le(crc32(Buffer.concat(parts)) & 0xffff, 2));
  parts.push(deflateRawSync(m.data), le(m.crc ?? crc32(m.data), 4), le(m.isize ?? m.data.length, 4));
  return Buffer.concat(parts);
}

/** Compressible bytes with some noise in them. */
function sample(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 7919 + 1;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = i % 5 === 0 ? x >>> 24 : 97 + (i % 13);
  }
  return b;
}

type Outcome = { out: Buffer; error?: undefined } | { error: { code: string; message: string }; out?: undefined };

/** Feeds `blob` in pieces of `piece` bytes into an output of `outSize` bytes, as the worker does. */
function inflate(blob: Buffer, piece: number, outSize: number): Outcome {
  const z = gzipInflater();
  assert.ok(z, 'this Node has the raw-deflate handle');
  const parts: Buffer[] = [];
  const out = Buffer.alloc(outSize);
  try {
    for (let pos = 0; ; ) {
      const end = Math.min(blob.length, pos + piece);
      const finish = end === blob.length;
      let inOff = pos;
      let inLen = end - pos;
      for (let calls = 0; ; calls++) {
        assert.ok(calls < 100_000, 'the inflater keeps being called without an end');
        const r = z!.write(finish, blob, inOff, inLen, out, 0, out.length);
        if (r.error) return { error: r.error };
        parts.push(Buffer.from(out.subarray(0, out.length - r.availOut)));
        inOff += inLen - r.availIn;
        inLen = r.availIn;
        if (r.ended) return { out: Buffer.concat(parts) };
        // More input wanted (the output had room and the piece is used up).
        if (inLen === 0 && r.availOut > 0) {
          assert.not.ok(finish, 'the input ended and the inflater neither ended nor failed');
          break;
        }
      }
      pos = end;
    }
  } finally {
    z!.close();
  }
}

/** Every piece size and output size here gives `expected` (bytes, or an error matching a pattern). */
function check(blob: Buffer, expected: Buffer | RegExp, label: string): void {
  for (const piece of [1, 2, 3, 7, 10, 64, 1000, blob.length]) {
    for (const outSize of [1, 5, 4096, 1 << 20]) {
      if (piece < 10 && outSize > 5 && blob.length > 20_000) continue; // enough of the slow pairs
      const r = inflate(blob, piece, outSize);
      const where = `${label}, pieces of ${piece}, output of ${outSize}`;
      if (expected instanceof RegExp) {
        assert.ok(r.error, `${where}: no error`);
        assert.match(`${r.error!.code}: ${r.error!.message}`, expected, where);
      } else {
        assert.ok(!r.error, `${where}: ${r.error?.message}`);
        assert.ok(r.out!.equals(expected), `${where}: other bytes`);
      }
    }
  }
}

test("one member with each optional header field, and all of them: Gunzip's bytes", () => {
  const data = sample(30_000, 1);
  const variants: Member[] = [
    { data },
    { data, name: 'layer.tar' },
    { data, comment: 'a comment' },
    { data, extra: Buffer.from('AB\x04\x00wxyz', 'latin1') },
    { data, extra: Buffer.alloc(0) },
    { data, headerCrc: true },
    { data, name: 'n', comment: '', extra: sample(300, 2), headerCrc: true },
  ];
  for (const [i, v] of variants.entries()) {
    const blob = member(v);
    assert.ok(gunzipSync(blob).equals(data), `variant ${i}: Gunzip agrees with the test's encoder`);
    check(blob, data, `variant ${i}`);
  }
});

test('several members, empty ones and zero padding after the last: one stream, as Gunzip reads it', () => {
  const a = sample(20_000, 3);
  const b = sample(7, 4);
  const blob = Buffer.concat([member({ data: a, name: 'a' }), member({ data: Buffer.alloc(0) }), gzipSync(b), member({ data: a, comment: 'c', headerCrc: true }), Buffer.alloc(1000)]);
  const expected = Buffer.concat([a, b, a]);
  assert.ok(gunzipSync(blob).equals(expected));
  check(blob, expected, 'members');
  // Whatever follows a zero byte is ignored, as by Gunzip.
  const padded = Buffer.concat([gzipSync(b), Buffer.from([0]), Buffer.from('garbage')]);
  assert.ok(gunzipSync(padded).equals(b));
  check(padded, b, 'zero then garbage');
});

test('bad headers, a wrong length, trailing garbage and truncation fail with zlib codes and messages', () => {
  const data = sample(5000, 5);
  const good = member({ data, name: 'x', comment: 'y', extra: Buffer.from('e'), headerCrc: true });
  const cases: [Buffer, RegExp][] = [
    [Buffer.concat([Buffer.from([0x1f, 0x8c]), good.subarray(2)]), /^Z_DATA_ERROR: incorrect header check$/],
    [member({ data, method: 7 }), /^Z_DATA_ERROR: unknown compression method$/],
    [member({ data, flags: 0x20 }), /^Z_DATA_ERROR: unknown header flags set$/],
    [member({ data, isize: data.length + 1 }), /^Z_DATA_ERROR: incorrect length check$/],
    // Not a zero byte after a member: the start of another one, which is not gzip.
    [Buffer.concat([good, Buffer.from('garbage after')]), /^Z_DATA_ERROR: incorrect header check$/],
  ];
  for (const [i, [blob, error]] of cases.entries()) {
    assert.throws(() => gunzipSync(blob), undefined, `case ${i}: Gunzip fails too`);
    check(blob, error, `case ${i}`);
  }
  // Cut anywhere: in the header's fixed part, a field, the data or the trailer.
  for (const cut of [1, 5, 11, 13, 15, 17, 19, 40, good.length - 8, good.length - 3, good.length - 1]) {
    check(good.subarray(0, cut), /^Z_BUF_ERROR: unexpected end of file$/, `cut at ${cut}`);
  }
  check(Buffer.alloc(0), /^Z_BUF_ERROR: unexpected end of file$/, 'empty');
  // Corrupt deflate data (a reserved block type) is zlib's own error.
  const bad = gzipSync(data);
  bad[10] = bad[10]! | 0x06;
  check(bad, /^Z_DATA_ERROR: invalid block type$/, 'reserved block type');
});

test('a wrong CRC-32 alone is not an error here: the diff_id checks the content', () => {
  const data = sample(10_000, 6);
  const blob = member({ data, crc: crc32(data) ^ 1 });
  assert.throws(() => gunzipSync(blob), /incorrect data check/);
  check(blob, data, 'wrong crc');
});

test.run();
