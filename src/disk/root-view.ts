// Read access to an image's root filesystem for to-disk's decisions (which kernel, which
// distribution, what /etc/shadow holds, which systemd units exist), the same over an extracted
// directory and over the flattened tree of the layers, so the native writer can build a disk
// without extracting anything. Paths are absolute in the image; symlinks resolve inside it.
import { Writable } from 'node:stream';
import { lstat, readdir } from 'node:fs/promises';
import { isImgxError } from '../errors.ts';
import { contentKey, copyContent, locateFile, readContents } from '../export/cat.ts';
import { lookup } from '../export/browse.ts';
import type { FlatTree } from '../layers/flat-tree.ts';
import type { LayerReader } from '../layers/layer-reader.ts';
import { readFileInRoot, resolveInRoot } from '../run/root-path.ts';
import { decodeName, fsPath } from '../util/raw-name.ts';

export interface ViewStat {
  type: 'file' | 'directory' | 'symlink' | 'other';
  /** mode & 0o7777 */
  mode: number;
  uid: number;
  gid: number;
}

export interface RootView {
  /** Where `path` leads, every symlink on the way followed inside the root; undefined if nowhere. */
  resolve(path: string): Promise<string | undefined>;
  /** The entry at a resolved path itself (a final symlink is not followed). */
  lstat(path: string): Promise<ViewStat | undefined>;
  /** Names in a resolved directory. */
  readdir(path: string): Promise<string[]>;
  /** A regular file's text (symlinks followed), or undefined. */
  readFile(path: string): Promise<string | undefined>;
  /** Reads these files ahead, together (a view over layers reads each layer once for all of them). */
  prefetch?(paths: string[]): Promise<void>;
}

const statOf = (type: string, mode: number, uid: number, gid: number): ViewStat => ({
  type: type === 'file' || type === 'directory' || type === 'symlink' ? type : 'other',
  // Linux gives every symlink 0777, whatever a tar header said.
  mode: type === 'symlink' ? 0o777 : mode & 0o7777,
  uid,
  gid,
});

/** A view of an extracted tree on the host. */
export function dirRootView(root: string): RootView {
  // Even a caller that passes an unresolved path stays inside the root: the parents are resolved
  // there, and only the last name is looked at on the host.
  const host = async (path: string): Promise<string | undefined> => {
    const slash = path.replace(/\/+$/, '').lastIndexOf('/');
    const name = path.replace(/\/+$/, '').slice(slash + 1);
    if (name === '..') return undefined;
    const parent = await resolveInRoot(root, path.slice(0, Math.max(slash, 0)) || '/');
    if (parent === undefined) return undefined;
    return name === '' || name === '.' ? parent : `${parent}/${name}`;
  };
  return {
    async resolve(path) {
      const h = await resolveInRoot(root, path);
      return h === undefined ? undefined : `/${h.slice(root.length).replace(/^\/+/, '')}`;
    },
    async lstat(path) {
      const h = await host(path);
      const st = h === undefined ? undefined : await lstat(fsPath(h)).catch(() => undefined);
      if (!st) return undefined;
      return statOf(st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other', st.mode, st.uid, st.gid);
    },
    async readdir(path) {
      const h = await resolveInRoot(root, path);
      // Names as their bytes decode (raw-name.ts), never with replacement characters.
      return h === undefined ? [] : readdir(fsPath(h), { encoding: 'buffer' }).then((names) => names.map((b) => decodeName(b)), () => [] as string[]);
    },
    readFile: (path) => readFileInRoot(root, path),
  };
}

/** A view of the flattened tree; file contents are read from the layers (like `imgx cat`). */
export function treeRootView(tree: FlatTree, layers: readonly LayerReader[]): RootView {
  const key = (path: string) => path.replace(/^\/+|\/+$/g, '') || '.';
  const notFound = (e: unknown) => {
    if (isImgxError(e) && e.code === 'IMGX_NOT_FOUND') return undefined;
    throw e;
  };
  const cache = new Map<string, string | undefined>();
  const locate = (path: string) => {
    try {
      return locateFile(tree, path);
    } catch (e) {
      return notFound(e);
    }
  };
  return {
    async prefetch(paths) {
      const wanted = paths.map((p) => [p, locate(p)] as const);
      const requests = wanted.flatMap(([, l]) => (l?.source ? [{ layers, source: l.source }] : []));
      const bytes = await readContents(requests);
      for (const [p, l] of wanted) {
        if (!l) cache.set(p, undefined);
        else if (!l.source) cache.set(p, '');
        else {
          const layer = layers.find((x) => x.index === l.source!.layer) ?? layers[l.source.layer]!;
          cache.set(p, bytes.get(contentKey(layer, l.source.offset))?.toString('utf8'));
        }
      }
    },
    async resolve(path) {
      try {
        const { path: p } = lookup(tree, path, { followFinal: true });
        return p === '.' ? '/' : `/${p}`;
      } catch (e) {
        return notFound(e);
      }
    },
    async lstat(path) {
      const n = tree.get(key(path));
      return n ? statOf(n.type === 'hardlink' ? 'file' : n.type, n.mode, n.uid, n.gid) : undefined;
    },
    async readdir(path) {
      return tree.children(key(path)).map((n) => n.path.split('/').pop()!);
    },
    async readFile(path) {
      if (cache.has(path)) return cache.get(path);
      const located = locate(path);
      if (!located) return undefined;
      const chunks: Buffer[] = [];
      await copyContent(layers, located.source, new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}

/** A view from either a directory path or a view. */
export const asView = (root: string | RootView): RootView => (typeof root === 'string' ? dirRootView(root) : root);

/** Whether `path` exists, its parents resolved inside the root and the last name not followed. */
export async function existsInView(view: RootView, path: string): Promise<boolean> {
  const slash = path.lastIndexOf('/');
  const parent = await view.resolve(path.slice(0, slash) || '/');
  if (parent === undefined) return false;
  return (await view.lstat(`${parent === '/' ? '' : parent}/${path.slice(slash + 1)}`)) !== undefined;
}
