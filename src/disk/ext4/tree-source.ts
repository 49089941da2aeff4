// Entries for the ext4 writer from a directory tree, walked with lstat like `mke2fs -d` (owners,
// modes, nanosecond mtimes, hardlinks, devices, fifos; xattrs through one `getfattr` run when the
// host has it), and the to-disk extras merged in last.
import { execFile } from 'node:child_process';
import type { BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { devMajor, devMinor } from '../dev-number.ts';
import { checkExtraPath, type ExtraEntry } from '../rootfs-builder.ts';
import type { Ext4Entry } from './layout.ts';

const execFileP = promisify(execFile);

/** An entry and where its content comes from: a host path, or bytes. */
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

/** getfattr's escapes in file names: `\ooo` octal and `\\`. */
function unescapeName(s: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i++;
    } else if (raw[i] === 0x5c && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Every xattr under `root` (absolute path → name → value), or undefined without getfattr. */
export async function readTreeXattrs(root: string): Promise<Map<string, Map<string, Buffer>> | undefined> {
  let stdout: string;
  try {
    const r = await execFileP('getfattr', ['-R', '-P', '-d', '-m', '-', '-e', 'base64', '--absolute-names', root], { maxBuffer: 1 << 30, encoding: 'utf8' });
    stdout = r.stdout;
  } catch (e) {
    const err = e as { code?: string | number; stdout?: string };
    if (err.code === 'ENOENT') return undefined;
    // getfattr exits 1 when one file could not be read; what it printed is still good.
    if (typeof err.stdout !== 'string') throw e;
    stdout = err.stdout;
  }
  const out = new Map<string, Map<string, Buffer>>();
  let cur: Map<string, Buffer> | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      cur = new Map();
      out.set(unescapeName(line.slice(8)), cur);
    } else if (cur && line.length > 0) {
      const eq = line.indexOf('=');
      const name = eq < 0 ? line : line.slice(0, eq);
      const v = eq < 0 ? '' : line.slice(eq + 1);
      let value: Buffer;
      if (v.startsWith('0s')) value = Buffer.from(v.slice(2), 'base64');
      else if (v.startsWith('0x')) value = Buffer.from(v.slice(2), 'hex');
      else if (v.startsWith('"')) value = Buffer.from(JSON.parse(v) as string, 'utf8');
      else value = Buffer.from(v, 'utf8');
      cur.set(name, value);
    }
  }
  return out;
}


/** Walks `root` with lstat (no symlink followed); paths relative, the root as `.`. */
export async function treeEntries(root: string, opts: { xattrs?: boolean } = {}): Promise<TreeSource> {
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
      return (await readdir(abs)).sort();
    }
    if (st.isFile()) entries.set(rel, { entry: { ...base, size: Number(st.size) }, source: abs });
    else if (st.isSymbolicLink()) entries.set(rel, { entry: { ...base, type: 'symlink', linkname: await readlink(abs) } });
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
    for (const n of names) if (n.includes('\ufffd')) throw new Error(`${join(abs, n)}: the name is not UTF-8, which this writer cannot keep`);
    const stats = await Promise.all(names.map((n) => lstat(join(abs, n), { bigint: true })));
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
