// Entries for the ext4 writer from a directory tree, walked with lstat like `mke2fs -d` (owners,
// modes, nanosecond mtimes, hardlinks, devices, fifos; xattrs through one `getfattr` run when the
// host has it), and the to-disk extras merged in last. Names are read as bytes and kept in
// raw-name.ts's form (decodeName), so a name that is not UTF-8 reaches ext4 byte for byte; host
// paths go to node:fs through fsPath. A file with holes on the host (fewer blocks than its size)
// becomes a sparse entry: its blocks of zeros are holes in ext4 too, as `mke2fs -d` makes them.
import { execFile } from 'node:child_process';
import type { BigIntStats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { SparseSegment } from '../../layers/sparse.ts';
import { decodeName, fsPath } from '../../util/raw-name.ts';
import { devMajor, devMinor } from '../dev-number.ts';
import { checkExtraPath, type ExtraEntry } from '../rootfs-builder.ts';
import type { Ext4Entry } from './layout.ts';

const execFileP = promisify(execFile);

/**
 * An entry and where its content comes from: a host path (decodeName form: give it to node:fs
 * through fsPath), or bytes. For a sparse entry from a host path, only its segments are read
 * (readStoredData).
 */
export interface SourcedEntry {
  entry: Ext4Entry;
  source?: string | Buffer;
}

export interface TreeSource {
  /** By path, in walk order (parents first). */
  entries: Map<string, SourcedEntry>;
  /** Said once each: things the walk left out (sockets, xattrs without getfattr). */
  notes: string[];
}

/** getfattr's escapes in file and attribute names (`\ooo` octal, `\\`; other bytes as they are): the name's bytes, decoded (decodeName). */
export function unescapeName(raw: Buffer): string {
  const bytes: number[] = [];
  const octal = (i: number) => i + 3 < raw.length && [1, 2, 3].every((k) => raw[i + k]! >= 0x30 && raw[i + k]! <= 0x37);
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i++;
    } else if (raw[i] === 0x5c && octal(i)) {
      bytes.push(((raw[i + 1]! - 0x30) * 64 + (raw[i + 2]! - 0x30) * 8 + (raw[i + 3]! - 0x30)) & 0xff);
      i += 3;
    } else bytes.push(raw[i]!);
  }
  return decodeName(Buffer.from(bytes));
}

/** Splits `buf` at newlines. */
function lines(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a, start)) {
    out.push(buf.subarray(start, nl));
    start = nl + 1;
  }
  if (start < buf.length) out.push(buf.subarray(start));
  return out;
}

const FILE_LINE = Buffer.from('# file: ');

/** Every xattr under `root` (absolute path → name → value, names in decodeName form), or undefined without getfattr. */
export async function readTreeXattrs(root: string): Promise<Map<string, Map<string, Buffer>> | undefined> {
  let stdout: Buffer;
  try {
    const r = await execFileP('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'base64', '--absolute-names', root], { maxBuffer: 1 << 30, encoding: 'buffer' });
    stdout = r.stdout;
  } catch (e) {
    const err = e as { code?: string | number; stdout?: Buffer };
    if (err.code === 'ENOENT') return undefined;
    // getfattr exits 1 when one file could not be read; what it printed is still good.
    if (!Buffer.isBuffer(err.stdout)) throw e;
    stdout = err.stdout;
  }
  const out = new Map<string, Map<string, Buffer>>();
  let cur: Map<string, Buffer> | undefined;
  for (const line of lines(stdout)) {
    if (line.subarray(0, FILE_LINE.length).equals(FILE_LINE)) {
      cur = new Map();
      out.set(unescapeName(line.subarray(FILE_LINE.length)), cur);
    } else if (cur && line.length > 0) {
      // An `=` in a name is escaped: the first one ends the name.
      const eq = line.indexOf(0x3d);
      const name = unescapeName(eq < 0 ? line : line.subarray(0, eq));
      const v = eq < 0 ? '' : line.subarray(eq + 1).toString('latin1');
      let value: Buffer;
      if (v.startsWith('0s')) value = Buffer.from(v.slice(2), 'base64');
      else if (v.startsWith('0x')) value = Buffer.from(v.slice(2), 'hex');
      else if (v.startsWith('"')) value = Buffer.from(JSON.parse(Buffer.from(v, 'latin1').toString('utf8')) as string, 'utf8');
      else value = Buffer.from(v, 'latin1');
      cur.set(name, value);
    }
  }
  return out;
}

/** The zero scan's block (ext4's) and read size. */
const MAP_BLOCK = 4096;
const MAP_CHUNK = 1 << 20;
const ZERO_CHUNK = Buffer.alloc(MAP_CHUNK);

/**
 * The data of a host file with holes, as a sparse map in whole 4 KiB blocks: every block that is
 * not all zeros is data (what `mke2fs -d` keeps), the others holes. Reads the whole file once.
 */
export async function zeroBlockMap(path: string, size: number): Promise<SparseSegment[]> {
  const segments: SparseSegment[] = [];
  const fh = await open(fsPath(path), 'r');
  try {
    const buf = Buffer.allocUnsafe(MAP_CHUNK);
    let runStart = -1;
    let pos = 0;
    while (pos < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(MAP_CHUNK, size - pos), pos);
      if (bytesRead === 0) break; // shrunk under us: the rest is a hole
      if (buf.subarray(0, bytesRead).equals(ZERO_CHUNK.subarray(0, bytesRead))) {
        if (runStart >= 0) segments.push({ offset: runStart, size: pos - runStart });
        runStart = -1;
        pos += bytesRead;
        continue;
      }
      for (let at = 0; at < bytesRead; at += MAP_BLOCK) {
        const end = Math.min(at + MAP_BLOCK, bytesRead);
        const zero = buf.subarray(at, end).equals(ZERO_CHUNK.subarray(0, end - at));
        if (!zero && runStart < 0) runStart = pos + at;
        else if (zero && runStart >= 0) {
          segments.push({ offset: runStart, size: pos + at - runStart });
          runStart = -1;
        }
      }
      pos += bytesRead;
    }
    if (runStart >= 0) segments.push({ offset: runStart, size: Math.min(pos, size) - runStart });
  } finally {
    await fh.close();
  }
  return segments;
}

/** A sparse entry's stored data from a host file: its segments' bytes one after the other. */
export async function* readStoredData(path: string, segments: readonly SparseSegment[]): AsyncGenerator<Buffer> {
  const fh = await open(fsPath(path), 'r');
  try {
    for (const s of segments) {
      for (let done = 0; done < s.size; ) {
        const buf = Buffer.allocUnsafe(Math.min(MAP_CHUNK, s.size - done));
        const { bytesRead } = await fh.read(buf, 0, buf.length, s.offset + done);
        if (bytesRead === 0) throw new Error(`${path}: shorter than its sparse map says`);
        done += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    }
  } finally {
    await fh.close();
  }
}

/**
 * Walks `root` with lstat (no symlink followed); paths relative, the root as `.`. `sparse: false`
 * takes files with holes whole (no read for their map).
 */
export async function treeEntries(root: string, opts: { xattrs?: boolean; sparse?: boolean } = {}): Promise<TreeSource> {
  const sparse = opts.sparse !== false;
  const notes: string[] = [];
  const xattrs = opts.xattrs === false ? undefined : await readTreeXattrs(root);
  if (opts.xattrs !== false && !xattrs) notes.push('getfattr is missing: extended attributes were not copied');
  const entries = new Map<string, SourcedEntry>();
  const seen = new Map<string, string>();
  let sockets = 0;
  const visit = async (abs: string, rel: string, st: BigIntStats): Promise<string[]> => {
    let sec = st.mtimeNs / 1_000_000_000n;
    let ns = st.mtimeNs % 1_000_000_000n;
    if (ns < 0n) {
      ns += 1_000_000_000n;
      sec -= 1n;
    }
    const base: Ext4Entry = {
      path: rel,
      type: 'file',
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(sec),
      nsec: Number(ns),
      size: 0,
      xattrs: xattrs?.get(abs) ?? new Map(),
    };
    if (!st.isDirectory() && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = seen.get(key);
      if (first !== undefined) {
        entries.set(rel, { entry: { ...base, type: 'hardlink', linkname: first, xattrs: new Map() } });
        return [];
      }
      seen.set(key, rel);
    }
    if (st.isDirectory()) {
      entries.set(rel, { entry: { ...base, type: 'directory' } });
      // Sorted by bytes (as mke2fs -d walks), each name kept as its bytes decode.
      return (await readdir(fsPath(abs), { encoding: 'buffer' })).sort(Buffer.compare).map((b) => decodeName(b));
    }
    if (st.isFile()) {
      const size = Number(st.size);
      const entry: Ext4Entry = { ...base, size };
      // Fewer blocks than the size needs: it has holes, which stay holes.
      if (sparse && st.blocks * 512n < st.size) entry.sparse = await zeroBlockMap(abs, size);
      entries.set(rel, { entry, source: abs });
    } else if (st.isSymbolicLink()) entries.set(rel, { entry: { ...base, type: 'symlink', linkname: decodeName(await readlink(fsPath(abs), { encoding: 'buffer' })) } });
    else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const rdev = Number(st.rdev);
      entries.set(rel, { entry: { ...base, type: st.isCharacterDevice() ? 'char-device' : 'block-device', devmajor: devMajor(rdev), devminor: devMinor(rdev) } });
    } else if (st.isFIFO()) entries.set(rel, { entry: { ...base, type: 'fifo' } });
    else sockets++;
    return [];
  };
  // lstat of a directory's names at once (in order of the results), then its subdirectories.
  const walk = async (abs: string, rel: string, st: BigIntStats): Promise<void> => {
    const names = await visit(abs, rel, st);
    const stats = await Promise.all(names.map((n) => lstat(fsPath(join(abs, n)), { bigint: true })));
    const subs: [string, string, BigIntStats][] = [];
    for (const [i, n] of names.entries()) {
      const child = [join(abs, n), rel === '.' ? n : `${rel}/${n}`, stats[i]!] as [string, string, BigIntStats];
      if (stats[i]!.isDirectory()) subs.push(child);
      else await visit(...child);
    }
    for (const s of subs) await walk(...s);
  };
  await walk(root, '.', await lstat(root, { bigint: true }));
  if (sockets > 0) notes.push(`${sockets} socket(s) left out`);
  return { entries, notes };
}

/** Removes `path` (and what is under it), keeping the other names of a hardlinked inode. */
function remove(entries: Map<string, SourcedEntry>, path: string): void {
  const have = entries.get(path);
  if (!have) return;
  if (have.entry.type === 'directory') {
    for (const p of [...entries.keys()]) if (p.startsWith(`${path}/`)) remove(entries, p);
  }
  entries.delete(path);
  // Names linked to this one: the first becomes the inode's entry, the others point to it.
  let heir: string | undefined;
  for (const [p, s] of entries) {
    if (s.entry.type !== 'hardlink' || s.entry.linkname !== path) continue;
    if (heir === undefined) {
      heir = p;
      entries.set(p, { entry: { ...have.entry, path: p }, ...(have.source !== undefined ? { source: have.source } : {}) });
    } else s.entry.linkname = heir;
  }
}

/** Applies to-disk's extras: a directory is made or gets the extra's owner and mode; a file or symlink replaces what was there. */
export function applyExtras(entries: Map<string, SourcedEntry>, extras: ExtraEntry[], time: number): void {
  for (const x of extras) {
    checkExtraPath(x.path);
    const path = x.path.slice(1);
    const base = { path, mode: 0, uid: x.uid, gid: x.gid, mtime: time, size: 0, xattrs: new Map<string, Buffer>() };
    if (x.type === 'dir') {
      const have = entries.get(path);
      if (have?.entry.type === 'directory') Object.assign(have.entry, { mode: x.mode, uid: x.uid, gid: x.gid });
      else {
        remove(entries, path);
        entries.set(path, { entry: { ...base, type: 'directory', mode: x.mode } });
      }
    } else {
      remove(entries, path);
      if (x.type === 'file') {
        const content = Buffer.from(x.content);
        entries.set(path, { entry: { ...base, type: 'file', mode: x.mode, size: content.length }, source: content });
      } else entries.set(path, { entry: { ...base, type: 'symlink', mode: 0o777, linkname: x.target } });
    }
  }
}
