// Names from layers are bytes, not text: tar stores whatever the writer's filesystem had, and
// Linux allows any byte but NUL and `/` in a name. imgx keeps them as JS strings (the whole
// flatten stage works on strings) with a lossless mapping, Python's "surrogateescape": valid
// UTF-8 decodes as usual, and each byte that is not part of a valid UTF-8 sequence becomes the
// lone low surrogate U+DC80–U+DCFF (0x80–0xFF → U+DC80+byte−0x80). A valid UTF-8 string never
// holds a lone surrogate, so the mapping is one to one: two different names never decode to one
// string (a U+FFFD replacement would merge them), and encodeName gives back the exact bytes.
// Every place that turns a name back into bytes (a file system call, a tar header, an ext4
// directory entry, a terminal line) goes through this module.
import { isUtf8 } from 'node:buffer';

const ESCAPE_BASE = 0xdc00;

/** The string for a name's bytes (valid UTF-8 as is; other bytes as lone surrogates). */
export function decodeName(bytes: Uint8Array, start = 0, end = bytes.length): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let ascii = true;
  for (let i = start; i < end; i++) {
    if (buf[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return buf.toString('latin1', start, end);
  const sub = buf.subarray(start, end);
  if (isUtf8(sub)) return buf.toString('utf8', start, end);
  return decodeMixed(sub);
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0 (the rules of `isUtf8`: no overlongs, no surrogates, ≤ U+10FFFF). */
function sequenceAt(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number) => i + k < b.length && (b[i + k]! & 0xc0) === 0x80;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    const c1 = b[i + 1]!;
    if (c === 0xe0 && c1 < 0xa0) return 0; // overlong
    if (c === 0xed && c1 >= 0xa0) return 0; // a surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const c1 = b[i + 1]!;
    if (c === 0xf0 && c1 < 0x90) return 0; // overlong
    if (c === 0xf4 && c1 >= 0x90) return 0; // past U+10FFFF
    return 4;
  }
  return 0;
}

function decodeMixed(b: Buffer): string {
  let out = '';
  let run = 0;
  let i = 0;
  while (i < b.length) {
    const n = sequenceAt(b, i);
    if (n > 0) {
      i += n;
      continue;
    }
    if (i > run) out += b.toString('utf8', run, i);
    out += String.fromCharCode(ESCAPE_BASE + b[i]!);
    i++;
    run = i;
  }
  if (run < b.length) out += b.toString('utf8', run, b.length);
  return out;
}

/** True when `s` holds an escaped byte (so Buffer.from(s, 'utf8') would not give its bytes back). */
export function hasRawBytes(s: string): boolean {
  return !s.isWellFormed();
}

/** The bytes of a name: the inverse of decodeName. */
export function encodeName(s: string): Buffer {
  if (s.isWellFormed()) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++; // a pair: valid text
        continue;
      }
    }
    if (c < 0xd800 || c > 0xdfff) continue;
    // A lone surrogate: an escaped byte, or (not made by decodeName) U+FFFD as Node would write it.
    if (i > run) parts.push(Buffer.from(s.slice(run, i), 'utf8'));
    parts.push(c >= 0xdc80 && c <= 0xdcff ? Buffer.of(c - ESCAPE_BASE) : Buffer.from('\ufffd', 'utf8'));
    run = i + 1;
  }
  if (run < s.length) parts.push(Buffer.from(s.slice(run), 'utf8'));
  return Buffer.concat(parts);
}

/** Bytes a name takes (what a file system or a tar field counts). */
export function nameByteLength(s: string): number {
  return s.isWellFormed() ? Buffer.byteLength(s, 'utf8') : encodeName(s).length;
}

/**
 * A path for node:fs: the string itself when it is valid text (Node encodes it as UTF-8), else
 * its exact bytes as a Buffer (which every node:fs call takes as a path).
 */
export function fsPath(s: string): string | Buffer {
  return s.isWellFormed() ? s : encodeName(s);
}

/** The bytes of `s`, each escaped byte and each control character as `\xNN`: a name for a terminal line. */
export function printableName(s: string): string {
  let out = '';
  let run = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc: string | undefined;
    if (c < 0x20 || c === 0x7f || (c >= 0x80 && c < 0xa0)) esc = `\\x${c.toString(16).padStart(2, '0')}`;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      i++;
      continue;
    } else if (c >= 0xdc80 && c <= 0xdcff) esc = `\\x${(c - ESCAPE_BASE).toString(16)}`;
    else if (c >= 0xd800 && c <= 0xdfff) esc = '\ufffd';
    if (esc === undefined) continue;
    out += s.slice(run, i) + esc;
    run = i + 1;
  }
  return run === 0 ? s : out + s.slice(run);
}

/**
 * The inverse of printableName for what a user types: each run of `\xNN` escapes becomes those
 * bytes (decoded as a name), so a name `ls` printed as `caf\xe9` can be given back to `ls` or
 * `cat`. Everything else is kept as it is.
 */
export function parsePrintableName(s: string): string {
  if (!s.includes('\\x')) return s;
  return s.replace(/(?:\\x[0-9a-fA-F]{2})+/g, (run) => {
    const bytes = Buffer.from(run.replace(/\\x/g, ''), 'hex');
    return decodeName(bytes);
  });
}
