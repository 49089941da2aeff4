// Compares two directory trees the way a container runtime would see them: paths, types, modes
// (with setuid/setgid/sticky), owners, sizes and sha256 of contents, symlink targets, device
// numbers, extended attributes (byte for byte, via getfattr) and hardlink groups. mtimes are
// reported on their own list, because whether a peer restores them is a property of the peer.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { devMajor, devMinor } from '../../src/disk/dev-number.ts';

export type NodeType = 'file' | 'directory' | 'symlink' | 'char-device' | 'block-device' | 'fifo' | 'socket';

export interface TreeNode {
  /** Relative to the root, `/`-separated; the root itself is `.`. */
  path: string;
  type: NodeType;
  /** mode & 0o7777 */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files only (0 otherwise: directory sizes depend on the filesystem). */
  size: number;
  /** sha256 hex of the contents, regular files only. */
  sha256?: string;
  /** Symlink target. */
  target?: string;
  /** Devices: `major,minor`. */
  rdev?: string;
  /** Whole seconds: tar headers carry seconds unless PAX adds more, and peers differ there. */
  mtime: number;
  nlink: number;
  /** `dev:ino`, to build hardlink groups. */
  inode: string;
  /** name → value (base64), as getfattr gives them. */
  xattrs: Record<string, string>;
}

export interface Tree {
  root: string;
  nodes: Map<string, TreeNode>;
  /** path → the sorted paths sharing its inode, for every non-directory with nlink > 1. */
  hardlinks: Map<string, string[]>;
}

export interface SnapshotOptions {
  /** Paths (relative, e.g. `proc` or `etc/hostname`) to leave out, with everything below them. */
  ignore?: string[];
  /** Read extended attributes (needs getfattr, package `attr`); default true. */
  xattrs?: boolean;
}

export interface CompareOptions extends SnapshotOptions {
  /** Compare the root directory's own mode, owner and xattrs; default true. */
  root?: boolean;
  /** Append mtime differences of non-directories to the result of compareTrees; default false. */
  mtimes?: boolean;
  /** Stop listing after this many differences of one kind; default 200. */
  limit?: number;
}

export interface TreeDiff {
  /** Every difference except timestamps; empty when the trees are the same. */
  differences: string[];
  /** mtime differences (whole seconds) of files, symlinks, devices and fifos. */
  mtimes: string[];
  /** mtime differences of directories. */
  dirMtimes: string[];
  /** Node counts, root included. */
  counts: { a: number; b: number };
}

function typeOf(st: Stats): NodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}


const hashBuf = Buffer.alloc(1 << 20);

/** sha256 of a file, read in 1 MiB chunks so memory stays flat whatever the file size. */
export function hashFile(file: string): string {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    for (;;) {
      const n = readSync(fd, hashBuf, 0, hashBuf.length, null);
      if (n === 0) break;
      h.update(hashBuf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Undoes getfattr's quoting of file names: `\\` and `\ooo` octal escapes. */
function unquote(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i++;
    } else if (c === 0x5c && /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString('latin1'))) {
      bytes.push(parseInt(raw.subarray(i + 1, i + 4).toString('latin1'), 8));
      i += 3;
    } else {
      bytes.push(c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * Every extended attribute under `root`, by relative path, from one `getfattr -R` run: physical
 * walk, symlinks not followed, all namespaces (`-m -`), values in base64 so binary ones
 * (security.capability) compare byte for byte.
 */
export function readXattrs(root: string): Map<string, Record<string, string>> {
  const out = execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '--absolute-names', root], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const result = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      const abs = unquote(line.slice(8));
      const rel = abs === root ? '.' : abs.startsWith(root + '/') ? abs.slice(root.length + 1) : undefined;
      if (rel === undefined) throw new Error(`getfattr named a path outside ${root}: ${abs}`);
      current = {};
      result.set(rel, current);
      continue;
    }
    if (!line || !current) continue;
    const eq = line.indexOf('=');
    // `name` alone means an empty value; values come as 0sBASE64.
    const name = eq < 0 ? line : line.slice(0, eq);
    const value = eq < 0 ? '' : line.slice(eq + 1).replace(/^0s/, '');
    current[name] = value;
  }
  return result;
}

/** Reads a whole tree's metadata and content hashes. */
export function snapshotTree(root: string, opts: SnapshotOptions = {}): Tree {
  const ignore = new Set(opts.ignore ?? []);
  const nodes = new Map<string, TreeNode>();
  const visit = (rel: string) => {
    const abs = rel === '.' ? root : join(root, rel);
    const st = lstatSync(abs);
    const type = typeOf(st);
    const node: TreeNode = {
      path: rel,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: type === 'file' ? st.size : 0,
      mtime: Math.floor(st.mtimeMs / 1000),
      nlink: st.nlink,
      inode: `${st.dev}:${st.ino}`,
      xattrs: {},
    };
    if (type === 'file') node.sha256 = hashFile(abs);
    if (type === 'symlink') node.target = readlinkSync(abs);
    if (type === 'char-device' || type === 'block-device') node.rdev = `${devMajor(st.rdev)},${devMinor(st.rdev)}`;
    nodes.set(rel, node);
    if (type === 'directory') {
      for (const name of readdirSync(abs).sort()) {
        const child = rel === '.' ? name : `${rel}/${name}`;
        if (!ignore.has(child)) visit(child);
      }
    }
  };
  visit('.');

  if (opts.xattrs !== false) {
    for (const [rel, attrs] of readXattrs(root)) {
      const n = nodes.get(rel);
      if (n) n.xattrs = attrs;
    }
  }

  const byInode = new Map<string, string[]>();
  for (const n of nodes.values()) {
    if (n.type === 'directory' || n.nlink < 2) continue;
    const group = byInode.get(n.inode);
    if (group) group.push(n.path);
    else byInode.set(n.inode, [n.path]);
  }
  const hardlinks = new Map<string, string[]>();
  for (const group of byInode.values()) {
    group.sort();
    for (const p of group) hardlinks.set(p, group);
  }
  return { root, nodes, hardlinks };
}

const octal = (m: number) => m.toString(8).padStart(4, '0');
const showXattrs = (x: Record<string, string>) =>
  Object.keys(x).length === 0
    ? '{}'
    : `{${Object.keys(x)
        .sort()
        .map((k) => `${k}=${x[k]}`)
        .join(', ')}}`;

/** The differences between two snapshots; see TreeDiff. */
export function diffSnapshots(a: Tree, b: Tree, opts: CompareOptions = {}): TreeDiff {
  const limit = opts.limit ?? 200;
  const differences: string[] = [];
  const mtimes: string[] = [];
  const dirMtimes: string[] = [];
  let dropped = 0;
  const add = (list: string[], line: string) => {
    if (list.length < limit) list.push(line);
    else if (list === differences) dropped++;
  };

  const paths = [...new Set([...a.nodes.keys(), ...b.nodes.keys()])].sort();
  const seenGroups = new Set<string>();
  for (const p of paths) {
    const x = a.nodes.get(p);
    const y = b.nodes.get(p);
    if (!x || !y) {
      const n = (x ?? y)!;
      add(differences, `only in ${x ? 'a' : 'b'}: ${p} (${n.type}${n.type === 'symlink' ? ` → ${n.target}` : ''})`);
      continue;
    }
    if (x.type !== y.type) {
      add(differences, `type: ${p}: a=${x.type} b=${y.type}`);
      continue;
    }
    const checkMeta = p !== '.' || opts.root !== false;
    if (checkMeta && x.mode !== y.mode) add(differences, `mode: ${p}: a=${octal(x.mode)} b=${octal(y.mode)}`);
    if (checkMeta && (x.uid !== y.uid || x.gid !== y.gid)) add(differences, `owner: ${p}: a=${x.uid}:${x.gid} b=${y.uid}:${y.gid}`);
    if (x.type === 'file') {
      if (x.size !== y.size) add(differences, `size: ${p}: a=${x.size} b=${y.size}`);
      else if (x.sha256 !== y.sha256) add(differences, `content: ${p}: sha256 a=${x.sha256} b=${y.sha256}`);
    }
    if (x.target !== y.target) add(differences, `symlink: ${p}: a→${x.target} b→${y.target}`);
    if (x.rdev !== y.rdev) add(differences, `device: ${p}: a=${x.rdev} b=${y.rdev}`);
    if (checkMeta && showXattrs(x.xattrs) !== showXattrs(y.xattrs)) add(differences, `xattrs: ${p}: a=${showXattrs(x.xattrs)} b=${showXattrs(y.xattrs)}`);
    const ga = a.hardlinks.get(p)?.join(' ') ?? '';
    const gb = b.hardlinks.get(p)?.join(' ') ?? '';
    if (ga !== gb && !seenGroups.has(`${ga}|${gb}`)) {
      seenGroups.add(`${ga}|${gb}`);
      add(differences, `hardlinks: ${p}: a=[${ga}] b=[${gb}]`);
    }
    if (x.mtime !== y.mtime) {
      const line = `mtime: ${p}: a=${new Date(x.mtime * 1000).toISOString()} b=${new Date(y.mtime * 1000).toISOString()}`;
      add(x.type === 'directory' ? dirMtimes : mtimes, line);
    }
  }
  if (dropped) differences.push(`… and ${dropped} more differences`);
  return { differences, mtimes, dirMtimes, counts: { a: a.nodes.size, b: b.nodes.size } };
}

/** Snapshots both trees and diffs them. */
export function diffTrees(a: string, b: string, opts: CompareOptions = {}): TreeDiff {
  return diffSnapshots(snapshotTree(a, opts), snapshotTree(b, opts), opts);
}

/**
 * Every difference between the trees at `a` and `b` (empty: identical), one line each. mtimes of
 * non-directories are included only with `opts.mtimes`; use diffTrees to see them separately.
 */
export function compareTrees(a: string, b: string, opts: CompareOptions = {}): string[] {
  const d = diffTrees(a, b, opts);
  return opts.mtimes ? [...d.differences, ...d.mtimes] : d.differences;
}
