// The root filesystem straight from the layers: the flattened tree's entries (with to-disk's extras
// merged in) plan the native ext4 writer, then the flatten stage's second pass streams each file's
// content from its layer to its blocks in the image. No tree is extracted and nothing is read back,
// and owners come from the tar headers, so this needs no root. A sparse file's stored data goes to
// the blocks its map gives; its holes take no block (and no room in the size estimate).
import type { FlatTree } from '../layers/flat-tree.ts';
import { emitTree } from '../layers/emit.ts';
import type { SparseSegment } from '../layers/sparse.ts';
import type { LayerReader } from '../layers/layer-reader.ts';
import { printableName } from '../util/raw-name.ts';
import type { Warnings } from '../warnings.ts';
import { applyExtras, type SourcedEntry } from './ext4/tree-source.ts';
import { Ext4Writer, type Ext4Entry } from './ext4/writer.ts';
import type { ExtraEntry } from './rootfs-builder.ts';

export interface LayerEntries {
  /** By path, tree order (parents first); every name but an inode's first is a hardlink to it. */
  entries: Map<string, SourcedEntry>;
  /** Each hardlinked inode's names, the first (where the flatten stage emits the body) first. */
  groups: Map<string, string[]>;
}

/** The flattened tree as writer entries. */
export function layerEntries(tree: FlatTree): LayerEntries {
  const entries = new Map<string, SourcedEntry>();
  // The flat tree's own hardlink groups, in tree order: the first name is where emit puts the body.
  const groups = new Map<string, string[]>();
  const primaryOf = new Map<string, string>();
  for (const g of tree.hardlinkGroups()) {
    groups.set(g[0]!, g);
    for (const p of g.slice(1)) primaryOf.set(p, g[0]!);
  }
  for (const node of tree.list()) {
    const { path, type, mode, uid, gid, mtime, size, xattrs, linkname, devmajor, devminor, sparse } = node;
    const primary = primaryOf.get(path);
    if (primary !== undefined) {
      entries.set(path, { entry: { path, type: 'hardlink', mode, uid, gid, mtime, size: 0, linkname: primary, xattrs: new Map() } });
      continue;
    }
    // A symlink is 0777 on Linux whatever its tar header says (what extract, then mke2fs -d, gives).
    const entry: Ext4Entry = { path, type, mode: type === 'symlink' ? 0o777 : mode, uid, gid, mtime, size, xattrs };
    if (linkname !== undefined) entry.linkname = linkname;
    if (devmajor !== undefined) entry.devmajor = devmajor;
    if (devminor !== undefined) entry.devminor = devminor;
    if (type === 'file' && sparse !== undefined) entry.sparse = sparse;
    entries.set(path, { entry });
  }
  return { entries, groups };
}

export interface LayerRootFsRequest {
  image: string;
  offset: number;
  size: number;
  tree: FlatTree;
  layers: LayerReader[];
  planned: LayerEntries;
  extras: ExtraEntry[];
  uuid: string;
  label: string;
  inodes: number;
  signal?: AbortSignal;
  /** Where what ext4 leaves out is said (xattrs in no namespace it has, symlinks without a target). */
  warnings?: Warnings;
}

const sameMap = (a: readonly SparseSegment[] | undefined, b: readonly SparseSegment[] | undefined) =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((s, i) => s.offset === b[i]!.offset && s.size === b[i]!.size));

/** Plans the filesystem from the entries and extras, streams the contents in, writes the metadata. */
export async function writeLayerRootFs(req: LayerRootFsRequest): Promise<void> {
  const time = Math.floor(Date.now() / 1000);
  const entries = req.planned.entries;
  applyExtras(entries, req.extras, time);
  const w = await Ext4Writer.open(req.image, req.offset, req.size, [...entries.values()].map((e) => e.entry), { uuid: req.uuid, label: req.label, inodes: req.inodes, time });
  try {
    for (const note of w.notes) req.warnings?.warn(note.code, note.message);
    // An inode's content goes under any of its names still planned: an extra may have replaced the first.
    const plannedName = (path: string) =>
      (req.planned.groups.get(path) ?? [path]).find((p) => {
        const s = entries.get(p);
        return s !== undefined && s.source === undefined && (s.entry.type === 'file' || s.entry.type === 'hardlink');
      });
    for await (const e of emitTree(req.tree, req.layers, req.signal ? { signal: req.signal } : {})) {
      if (e.type !== 'file' || !e.body) continue;
      const name = plannedName(e.path);
      // Replaced by an extra: the flatten stage drains the body when the next entry is asked for.
      if (name === undefined) continue;
      // The body of a sparse file is its stored data, which the writer places by the planned map.
      const planned = w.tree.byPath.get(name)?.entry;
      if (!sameMap(e.sparse, planned?.sparse) || e.size !== planned?.size) throw new Error(`internal: /${printableName(e.path)} is emitted with another size or sparse map than the tree planned`);
      await w.writeFile(name, e.body);
    }
    for (const [path, s] of entries) if (Buffer.isBuffer(s.source)) await w.writeFile(path, s.source);
    // Whatever is left is empty (a non-empty file without content is the writer's error).
    for (const p of w.pendingFiles()) await w.writeFile(p, Buffer.alloc(0));
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.finish();
}
