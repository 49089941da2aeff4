// `imgx diff`: the comparison of two flattened trees. Pure: metadata is compared here; file
// contents are compared without reading when both come from the same entry of the same layer
// (same diff_id and offset), and otherwise handed back as content checks, which the caller settles
// by hashing both sides (src/export/cat.ts hashContents) and passes to `settleDiff`.
import type { FsEntryType } from '../layers/fs-entry.ts';
import type { ContentSource, FlatTree, TreeNode } from '../layers/flat-tree.ts';
import { printableName } from '../util/raw-name.ts';
import { displayPath, sizeOf } from './browse.ts';

export type ChangeKind = 'added' | 'removed' | 'modified';
/** What differs in a modified path. mtimes are not compared: rebuilt images differ in all of them. */
export type ChangedField = 'type' | 'mode' | 'uid' | 'gid' | 'linkname' | 'device' | 'size' | 'content' | 'xattrs';

/** The stable `diff --json` summary of one side of a path. */
export interface NodeSummary {
  type: FsEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

export interface PathChange {
  /** Absolute in the image: `/etc/passwd`. */
  path: string;
  change: ChangeKind;
  /** The type after the change (before it, for a removal). */
  type: FsEntryType;
  /** For modifications, what differs, in a fixed order. */
  fields?: ChangedField[];
  before?: NodeSummary;
  after?: NodeSummary;
}

/** Two files of equal size and different origins: equal only if their contents hash the same. */
export interface ContentCheck {
  path: string;
  a: ContentSource;
  b: ContentSource;
}

export interface TreeDiff {
  changes: PathChange[];
  contentChecks: ContentCheck[];
}

export interface DiffOptions {
  /** Each image's diff_ids by layer index: content sources name layers by index. */
  diffIdsA: readonly (string | undefined)[];
  diffIdsB: readonly (string | undefined)[];
}

/** Path order with `/` lowest, so that a directory's subtree follows it without interruption. */
export function comparePaths(x: string, y: string): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const cx = x.charCodeAt(i);
    const cy = y.charCodeAt(i);
    if (cx === cy) continue;
    if (cx === 0x2f) return -1;
    if (cy === 0x2f) return 1;
    return cx - cy;
  }
  return x.length - y.length;
}

function plainType(t: FsEntryType): FsEntryType {
  return t === 'hardlink' ? 'file' : t;
}

function isDevice(t: FsEntryType): boolean {
  return t === 'char-device' || t === 'block-device';
}

export function summarise(tree: FlatTree, n: TreeNode): NodeSummary {
  const type = plainType(n.type);
  return {
    type,
    mode: n.mode & 0o7777,
    uid: n.uid,
    gid: n.gid,
    size: sizeOf(tree, n),
    ...(type === 'symlink' ? { linkname: n.linkname ?? '' } : {}),
    ...(isDevice(type) ? { devmajor: n.devmajor ?? 0, devminor: n.devminor ?? 0 } : {}),
  };
}

function sameXattrs(a: Map<string, Buffer> | undefined, b: Map<string, Buffer> | undefined): boolean {
  const x = a ?? new Map<string, Buffer>();
  const y = b ?? new Map<string, Buffer>();
  if (x.size !== y.size) return false;
  for (const [k, v] of x) {
    const w = y.get(k);
    if (!w || !Buffer.from(v).equals(Buffer.from(w))) return false;
  }
  return true;
}

function fieldsOf(sa: NodeSummary, sb: NodeSummary, na: TreeNode, nb: TreeNode): ChangedField[] {
  const f: ChangedField[] = [];
  if (sa.type !== sb.type) f.push('type');
  // Linux ignores a symlink's permission bits (they are always shown as 0777): not a change.
  if (sa.mode !== sb.mode && sa.type !== 'symlink' && sb.type !== 'symlink') f.push('mode');
  if (sa.uid !== sb.uid) f.push('uid');
  if (sa.gid !== sb.gid) f.push('gid');
  if (sa.type === sb.type) {
    if (sa.type === 'symlink' && sa.linkname !== sb.linkname) f.push('linkname');
    if (isDevice(sa.type) && (sa.devmajor !== sb.devmajor || sa.devminor !== sb.devminor)) f.push('device');
    if (sa.type === 'file' && sa.size !== sb.size) f.push('size');
  }
  if (!sameXattrs(na.xattrs, nb.xattrs)) f.push('xattrs');
  return f;
}

/** Every path of a tree except an implicit root, by path. */
function nodesOf(tree: FlatTree): Map<string, TreeNode> {
  const m = new Map<string, TreeNode>();
  for (const n of tree.list()) m.set(n.path, n);
  return m;
}

/**
 * Added, removed and modified paths from `a` to `b`, in path order (every path of an added or
 * removed subtree is listed). Files of equal size whose sameness cannot be told from their
 * origin come back in `contentChecks`, not yet in `changes` unless something else differs.
 */
export function diffTrees(a: FlatTree, b: FlatTree, opts: DiffOptions): TreeDiff {
  const na = nodesOf(a);
  const nb = nodesOf(b);
  const paths = new Set([...na.keys(), ...nb.keys()]);
  const changes: PathChange[] = [];
  const contentChecks: ContentCheck[] = [];
  for (const p of [...paths].sort(comparePaths)) {
    const x = na.get(p);
    const y = nb.get(p);
    if (!x || !y) {
      // A root that only one image spelled out is the same root: not a change.
      if (p === '.') continue;
      const n = (x ?? y)!;
      const s = summarise(x ? a : b, n);
      changes.push(x ? { path: displayPath(p), change: 'removed', type: s.type, before: s } : { path: displayPath(p), change: 'added', type: s.type, after: s });
      continue;
    }
    const sa = summarise(a, x);
    const sb = summarise(b, y);
    const fields = fieldsOf(sa, sb, x, y);
    if (sa.type === 'file' && sb.type === 'file' && sa.size === sb.size && sa.size > 0) {
      const ca = a.contentSource(p);
      const cb = b.contentSource(p);
      // When something else differs too, the check only adds `content` to the fields.
      if (ca && cb && !sameOrigin(ca, cb, opts)) contentChecks.push({ path: p, a: ca, b: cb });
    }
    if (fields.length > 0) changes.push({ path: displayPath(p), change: 'modified', type: sb.type, fields, before: sa, after: sb });
  }
  return { changes, contentChecks };
}

function sameOrigin(ca: ContentSource, cb: ContentSource, opts: DiffOptions): boolean {
  const da = opts.diffIdsA[ca.layer];
  const db = opts.diffIdsB[cb.layer];
  return da !== undefined && da === db && ca.offset === cb.offset;
}

/**
 * The final changes, given which content checks found different contents: a path whose only
 * difference is its content becomes a modification; one already modified gains `content`.
 */
export function settleDiff(a: FlatTree, b: FlatTree, diff: TreeDiff, differs: (check: ContentCheck) => boolean): PathChange[] {
  const byPath = new Map(diff.changes.map((c) => [c.path, c]));
  const out = [...diff.changes];
  for (const check of diff.contentChecks) {
    if (!differs(check)) continue;
    const shown = displayPath(check.path);
    const existing = byPath.get(shown);
    if (existing) {
      existing.fields = orderFields([...(existing.fields ?? []), 'content']);
    } else {
      const x = a.get(check.path)!;
      const y = b.get(check.path)!;
      const c: PathChange = { path: shown, change: 'modified', type: 'file', fields: ['content'], before: summarise(a, x), after: summarise(b, y) };
      out.push(c);
      byPath.set(shown, c);
    }
  }
  return out.sort((p, q) => comparePaths(p.path, q.path));
}

const FIELD_ORDER: ChangedField[] = ['type', 'mode', 'uid', 'gid', 'linkname', 'device', 'size', 'content', 'xattrs'];

function orderFields(f: ChangedField[]): ChangedField[] {
  return FIELD_ORDER.filter((x) => f.includes(x));
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

/** `M /path (mode 0644→0755, content)`: what changed, with before→after values where short. */
export function describeChange(c: PathChange): string {
  const mark = c.change === 'added' ? 'A' : c.change === 'removed' ? 'D' : 'M';
  if (c.change !== 'modified' || !c.before || !c.after) return `${mark} ${printableName(c.path)}`;
  const s = c.before;
  const t = c.after;
  const parts = (c.fields ?? []).map((f) => {
    switch (f) {
      case 'type':
        return `type ${s.type}→${t.type}`;
      case 'mode':
        return `mode ${octal(s.mode)}→${octal(t.mode)}`;
      case 'uid':
        return `uid ${s.uid}→${t.uid}`;
      case 'gid':
        return `gid ${s.gid}→${t.gid}`;
      case 'linkname':
        return `target ${printableName(s.linkname ?? '')}→${printableName(t.linkname ?? '')}`;
      case 'device':
        return `device ${s.devmajor},${s.devminor}→${t.devmajor},${t.devminor}`;
      case 'size':
        return `size ${s.size}→${t.size}`;
      default:
        return f;
    }
  });
  return `${mark} ${printableName(c.path)} (${parts.join(', ')})`;
}

export function countChanges(changes: PathChange[]): Record<ChangeKind, number> {
  const n = { added: 0, removed: 0, modified: 0 };
  for (const c of changes) n[c.change]++;
  return n;
}
