// The streaming tar writer, for `imgx export` and tests. ustar headers when an entry fits them;
// a PAX header before it when not: names and link names too long for ustar's prefix/name split or
// not ASCII, numbers beyond octal range, fractional or negative mtimes, long or non-ASCII owner
// names, and every xattr as SCHILY.xattr.NAME with the value's raw bytes. Records are sorted, so the
// same entries always give the same bytes. Names keep their bytes (raw-name.ts). A sparse file is
// written in GNU's PAX format 1.0 (what GNU tar writes, and Go and libarchive read): the map at the
// start of the data, then the stored data only, so its holes take no room in the archive.
import { Readable } from 'node:stream';
import { ImgxError } from '../errors.ts';
import type { FsEntry } from './fs-entry.ts';
import { BLOCK_SIZE, encodeHeader, encodePax, paddingFor, splitUstarName, type TarHeaderInput } from './tar-header.ts';

const OCTAL_MAX_8 = 8 ** 7 - 1;
const OCTAL_MAX_12 = 8 ** 11 - 1;
/** Bodies up to this size go out in one chunk with their header and padding. */
const SMALL_BODY = 1 << 16;

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7e || s.charCodeAt(i) < 0x20) return false;
  return true;
}

/** What a reader without PAX sees: printable ASCII only (as Go's archive/tar does). */
function toAscii(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) out += s[i];
  }
  return out;
}

/** A ustar-safe stand-in for a name carried by a PAX `path` record. */
function fallbackName(name: string): string {
  const ascii = toAscii(name);
  if (ascii && splitUstarName(ascii)) return ascii;
  const tail = ascii.slice(-100).replace(/^\/+/, '');
  return tail || '_';
}

function tarName(entry: FsEntry): string {
  if (entry.type !== 'directory') return entry.path;
  return entry.path === '.' ? './' : `${entry.path}/`;
}

function paxTime(t: number): string {
  // Fixed notation, never an exponent; at most nanoseconds.
  if (Number.isInteger(t)) return String(t);
  const s = t.toFixed(9).replace(/0+$/, '');
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

/** The map of a PAX 1.0 sparse file: decimal lines (count, then offset and size of each segment), padded to a block. */
export function sparseMapBlocks(segments: readonly { offset: number; size: number }[]): Buffer {
  const text = Buffer.from([segments.length, ...segments.flatMap((s) => [s.offset, s.size])].map((n) => `${n}\n`).join(''), 'latin1');
  return Buffer.concat([text, Buffer.alloc(paddingFor(text.length))]);
}

/** The name GNU tar gives a sparse file's header (`DIR/GNUSparseFile.0/BASE`); its real name is a PAX record. */
function sparseHeaderName(name: string): string {
  const slash = name.lastIndexOf('/');
  return slash < 0 ? `GNUSparseFile.0/${name}` : `${name.slice(0, slash)}/GNUSparseFile.0/${name.slice(slash + 1)}`;
}

/** The bytes of data an entry carries in the archive (a sparse file's map included). */
function dataSize(entry: FsEntry): number {
  if (entry.type !== 'file') return 0;
  if (!entry.sparse) return entry.size;
  let stored = 0;
  for (const s of entry.sparse) stored += s.size;
  return sparseMapBlocks(entry.sparse).length + stored;
}

/** The header blocks (PAX header and body, then the ustar header) of one entry. */
export function encodeFsEntryHeaders(entry: FsEntry): Buffer {
  const sparse = entry.type === 'file' && entry.sparse !== undefined;
  const name = sparse ? sparseHeaderName(entry.path) : tarName(entry);
  if (!entry.path) throw new RangeError('tar entry with an empty path');
  const records = new Map<string, string | Buffer>();
  if (sparse) {
    records.set('GNU.sparse.major', '1');
    records.set('GNU.sparse.minor', '0');
    records.set('GNU.sparse.name', entry.path);
    records.set('GNU.sparse.realsize', String(entry.size));
  }
  const h: TarHeaderInput = {
    name,
    type: entry.type,
    mode: entry.mode & 0o7777,
    uid: entry.uid,
    gid: entry.gid,
    size: dataSize(entry),
    mtime: Math.floor(entry.mtime),
    linkname: entry.type === 'symlink' || entry.type === 'hardlink' ? (entry.linkname ?? '') : '',
    uname: entry.uname ?? '',
    gname: entry.gname ?? '',
    devmajor: entry.type === 'char-device' || entry.type === 'block-device' ? (entry.devmajor ?? 0) : 0,
    devminor: entry.type === 'char-device' || entry.type === 'block-device' ? (entry.devminor ?? 0) : 0,
  };
  if (!isAscii(name) || !splitUstarName(name)) {
    records.set('path', name);
    h.name = fallbackName(name);
  }
  const link = h.linkname!;
  if (link && (!isAscii(link) || link.length > 100)) {
    records.set('linkpath', link);
    h.linkname = toAscii(link).slice(0, 100);
  }
  for (const key of ['uid', 'gid'] as const) {
    const v = h[key]!;
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`tar entry ${entry.path}: ${key} ${v}`);
    // The header still gets the number (base-256), for readers without PAX.
    if (v > OCTAL_MAX_8) records.set(key, String(v));
  }
  if (!Number.isSafeInteger(h.size) || h.size! < 0) throw new RangeError(`tar entry ${entry.path}: size ${h.size}`);
  if (h.size! > OCTAL_MAX_12) records.set('size', String(h.size));
  if (!Number.isFinite(entry.mtime)) throw new RangeError(`tar entry ${entry.path}: mtime ${entry.mtime}`);
  if (!Number.isInteger(entry.mtime) || entry.mtime < 0 || entry.mtime > OCTAL_MAX_12) records.set('mtime', paxTime(entry.mtime));
  for (const key of ['uname', 'gname'] as const) {
    const v = h[key]!;
    if (!isAscii(v) || v.length > 32) {
      records.set(key, v);
      h[key] = '';
    }
  }
  for (const [k, v] of entry.xattrs) {
    if (!k || k.includes('=') || k.includes('\n')) throw new RangeError(`tar entry ${entry.path}: xattr name ${JSON.stringify(k)} cannot be written`);
    records.set(`SCHILY.xattr.${k}`, v);
  }
  const header = encodeHeader(h);
  if (records.size === 0) return header;
  const sorted = [...records.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const body = encodePax(sorted);
  const slash = name.replace(/\/$/, '').lastIndexOf('/');
  const dir = slash >= 0 ? name.slice(0, slash) : '.';
  const base = name.replace(/\/$/, '').slice(slash + 1);
  let paxName = toAscii(`${dir}/PaxHeaders/${base}`);
  if (!splitUstarName(paxName)) paxName = `PaxHeaders/${toAscii(base)}`.slice(0, 100);
  const paxHeader = encodeHeader({
    name: paxName,
    type: 'pax-header',
    size: body.length,
    mode: 0o644,
    mtime: Math.min(Math.max(h.mtime!, 0), OCTAL_MAX_12),
  });
  return Buffer.concat([paxHeader, body, Buffer.alloc(paddingFor(body.length)), header]);
}

export class TarWriter {
  readonly stream: Readable;
  #queue: Promise<void> = Promise.resolve();
  #wake: ((err?: Error) => void) | undefined;
  #error: Error | undefined;
  #finished = false;

  constructor(out: { highWaterMark?: number } = {}) {
    this.stream = new Readable({
      highWaterMark: out.highWaterMark ?? 1 << 20,
      read: () => this.#resume(),
      destroy: (err, cb) => {
        this.#error ??= err ?? new ImgxError('IMGX_IO', 'tar output closed before the archive was finished');
        this.#resume(this.#error);
        cb(err);
      },
    });
  }

  #resume(err?: Error): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.(err);
  }

  /** Pushes a chunk; waits while the consumer is behind. */
  async #push(chunk: Buffer): Promise<void> {
    if (this.#error) throw this.#error;
    if (chunk.length === 0) return;
    if (this.stream.push(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      this.#wake = (err) => (err ? reject(err) : resolve());
    });
  }

  /** Runs write steps one at a time, in call order. */
  #serial(fn: () => Promise<void>): Promise<void> {
    const p = this.#queue.then(() => {
      if (this.#error) throw this.#error;
      return fn();
    });
    this.#queue = p.catch(() => {});
    return p;
  }

  /**
   * Writes an entry and, for files, its body of exactly `entry.size` bytes. Resolves when the body
   * is fully written. A body of the wrong length breaks the archive: the stream is destroyed.
   */
  add(entry: FsEntry, body?: Readable | Buffer): Promise<void> {
    return this.#serial(async () => {
      if (this.#finished) throw new Error('TarWriter: add after finish');
      let headers: Buffer;
      try {
        headers = encodeFsEntryHeaders(entry);
      } catch (e) {
        if (body && !Buffer.isBuffer(body)) body.destroy();
        throw e;
      }
      const sparse = entry.type === 'file' ? entry.sparse : undefined;
      if (sparse) headers = Buffer.concat([headers, sparseMapBlocks(sparse)]);
      // A sparse file's body is its stored data only (FlatEntry.body), after the map.
      const size = entry.type !== 'file' ? 0 : sparse ? sparse.reduce((n, s) => n + s.size, 0) : entry.size;
      try {
        if (body === undefined || Buffer.isBuffer(body)) {
          const data = body ?? Buffer.alloc(0);
          if (data.length !== size) throw new ImgxError('IMGX_IO', `${entry.path}: body of ${data.length} bytes for an entry of ${size}`);
          const pad = Buffer.alloc(paddingFor(size));
          if (size <= SMALL_BODY) await this.#push(Buffer.concat([headers, data, pad]));
          else {
            await this.#push(headers);
            await this.#push(data);
            await this.#push(pad);
          }
          return;
        }
        await this.#push(headers);
        let seen = 0;
        for await (const chunk of body) {
          const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
          seen += buf.length;
          if (seen > size) throw new ImgxError('IMGX_IO', `${entry.path}: body longer than the ${size} bytes of its entry`);
          await this.#push(buf);
        }
        if (seen !== size) throw new ImgxError('IMGX_IO', `${entry.path}: body of ${seen} bytes for an entry of ${size}`);
        await this.#push(Buffer.alloc(paddingFor(size)));
      } catch (e) {
        if (!Buffer.isBuffer(body)) body?.destroy();
        if (!this.stream.destroyed) this.stream.destroy(e as Error);
        throw e;
      }
    });
  }

  /** Writes the end-of-archive marker (two zero blocks) and ends the stream. */
  finish(): Promise<void> {
    return this.#serial(async () => {
      if (this.#finished) return;
      this.#finished = true;
      await this.#push(Buffer.alloc(2 * BLOCK_SIZE));
      this.stream.push(null);
    });
  }
}
