// The root filesystem straight from the layers: the flattened tree's entries (with to-disk's extras
// merged in) plan the native ext4 writer, then the flatten stage's second pass streams each file's
// content from its layer to its blocks in the image. No tree is extracted and nothing is read back,
// and owners come from the tar headers, so this needs no root.
import type { FlatTree } from '../layers/flat-tree.ts';
import { emitTree } from '../layers/emit.ts';
import type { LayerReader } from '../layers/layer-reader.ts';
import { applyExtras, type SourcedEntry } from './ext4/tree-source.ts';
import { Ext4Writer, type Ext4Entry } from './ext4/writer.ts';
import type { TreeUsage } from './fs-size.ts';
import { EXT4_BLOCK_SIZE } from './mke2fs-builder.ts';
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
  const groups = new Map<string, string[]>();
  const firstOfInode = new Map<number, string>();
  const first = tree.rootExplicit ? 0 : 1;
  for (const [k, node] of tree.list().entries()) {
    const ino = tree.inodeAt(k + first);
    const { path, type, mode, uid, gid, mtime, size, xattrs, linkname, devmajor, devminor } = node;
    // A symlink is 0777 on Linux whatever its tar header says (what extract, then mke2fs -d, gives).
    const entry: Ext4Entry = { path, type, mode: type === 'symlink' ? 0o777 : mode, uid, gid, mtime, size, xattrs };
    if (linkname !== undefined) entry.linkname = linkname;
    if (devmajor !== undefined) entry.devmajor = devmajor;
    if (devminor !== undefined) entry.devminor = devminor;
    const primary = ino === 0 || type === 'directory' ? undefined : firstOfInode.get(ino);
    if (primary !== undefined) {
      entries.set(path, { entry: { ...entry, type: 'hardlink', size: 0, linkname: primary, xattrs: new Map() } });
      groups.get(primary)!.push(path);
      continue;
    }
    if (ino !== 0 && type !== 'directory') {
      firstOfInode.set(ino, path);
      groups.set(path, [path]);
    }
    entries.set(path, { entry });
  }
  for (const [p, g] of groups) if (g.length === 1) groups.delete(p);
  return { entries, groups };
}

const blocksOf = (bytes: number) => Math.ceil(bytes / EXT4_BLOCK_SIZE);

/** What fs-size.ts's measureTree gives for a directory, from the entries instead. */
export function usageOfEntries(entries: Map<string, SourcedEntry>): TreeUsage {
  const usage: TreeUsage = { inodes: 1, blocks: 0, bytes: 0 };
  const dirBytes = new Map<string, number>([['.', 24]]);
  for (const [path, { entry }] of entries) {
    if (path === '.') continue;
    const slash = path.lastIndexOf('/');
    const parent = slash < 0 ? '.' : path.slice(0, slash);
    dirBytes.set(parent, (dirBytes.get(parent) ?? 24) + 8 + Math.ceil(Buffer.byteLength(path.slice(slash + 1)) / 4) * 4);
    if (entry.type === 'hardlink') continue;
    usage.inodes++;
    if (entry.type === 'directory') dirBytes.set(path, dirBytes.get(path) ?? 24);
    else if (entry.type === 'file') {
      usage.bytes += entry.size;
      usage.blocks += blocksOf(entry.size);
    } else if (entry.type === 'symlink' && Buffer.byteLength(entry.linkname ?? '') > 59) usage.blocks += 1;
  }
  for (const b of dirBytes.values()) usage.blocks += Math.max(1, blocksOf(b));
  return usage;
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
}

/** Plans the filesystem from the entries and extras, streams the contents in, writes the metadata. */
export async function writeLayerRootFs(req: LayerRootFsRequest): Promise<void> {
  const time = Math.floor(Date.now() / 1000);
  const entries = req.planned.entries;
  applyExtras(entries, req.extras, time);
  const w = await Ext4Writer.open(req.image, req.offset, req.size, [...entries.values()].map((e) => e.entry), { uuid: req.uuid, label: req.label, inodes: req.inodes, time });
  try {
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
      if (name !== undefined) await w.writeFile(name, e.body);
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
