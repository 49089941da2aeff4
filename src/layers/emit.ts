// Pass 2 of flatten: the final filesystem as one stream of entries, the same for every sink.
//
// Order: the directories (tree order: parents first, `.` only if a layer had it); then, layer by
// layer, the regular files whose content that layer holds, in the layer's tar order (each inode
// once: its first path in tree order as a file with its body, its other paths right after it as
// hardlinks to that path); then symlinks, devices and fifos in tree order (hardlinked ones the
// same way). Only layers that hold a non-empty surviving file are read again; empty files need no
// read, and neither do contents the sink staged in pass 1 (`staged`: such files come out with a
// handle on the staged copy instead of a body). Names, types and metadata come from the tree,
// never from the re-read headers.
//
// Bodies are the layer's own stream, so a consumer must finish one body before it asks for the
// next entry; asking for the next entry drains whatever is left of the previous body. A sparse
// file's body is its stored data only (see FlatEntry): no sink ever sees its holes as zeros.
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { ImgxError } from '../errors.ts';
import type { FlatEntry, StagedContent, StagedContents } from './fs-entry.ts';
import type { FlatTree, TreeNode } from './flat-tree.ts';
import { layerName, type LayerReader } from './layer-reader.ts';
import { readTar } from './tar-reader.ts';

export interface EmitOptions {
  signal?: AbortSignal;
  /** Contents the sink staged in pass 1: files found there are emitted with `staged`, unread. */
  staged?: StagedContents;
}

/** A sink's copy of a tree node, without the tree's bookkeeping. */
function entryOf(n: TreeNode): FlatEntry {
  const e: FlatEntry = { path: n.path, type: n.type, mode: n.mode, uid: n.uid, gid: n.gid, mtime: n.mtime, size: n.size, xattrs: n.xattrs };
  if (n.uname !== undefined) e.uname = n.uname;
  if (n.gname !== undefined) e.gname = n.gname;
  if (n.linkname !== undefined) e.linkname = n.linkname;
  if (n.devmajor !== undefined) e.devmajor = n.devmajor;
  if (n.devminor !== undefined) e.devminor = n.devminor;
  if (n.sparse !== undefined) e.sparse = n.sparse;
  return e;
}

function hardlinkTo(n: TreeNode, primary: string): FlatEntry {
  const e = entryOf(n);
  e.type = 'hardlink';
  e.size = 0;
  e.linkname = primary;
  delete e.devmajor;
  delete e.devminor;
  delete e.sparse;
  return e;
}

/** Drains what a consumer left of a body before the stream moves on. */
async function settle(body: Readable): Promise<void> {
  if (body.readableEnded || body.destroyed) return;
  body.resume();
  await finished(body);
}

/** One inode whose content a layer holds: where its entry is, and its paths (node indices). */
interface Pending {
  offset: number;
  nodes: number[];
}

export function emitTree(tree: FlatTree, layers: LayerReader[], opts: EmitOptions = {}): AsyncIterable<FlatEntry> {
  return { [Symbol.asyncIterator]: () => emit(tree, layers, opts) };
}

async function* emit(tree: FlatTree, layers: LayerReader[], opts: EmitOptions): AsyncGenerator<FlatEntry> {
  const { signal } = opts;
  const first = tree.rootExplicit ? 0 : 1;
  const n = tree.size;
  // Nodes of each inode, by node index (a typed array for the common single path, a list for
  // hardlink groups), so that memory stays small and TreeNodes are made only as they go out.
  const firstOf = new Int32Array(tree.inodeCount + 1).fill(-1);
  const groups = new Map<number, number[]>();
  for (let i = first; i < n; i++) {
    const ino = tree.inodeAt(i);
    if (ino === 0) continue;
    if (firstOf[ino] === -1) firstOf[ino] = i;
    else {
      const g = groups.get(ino);
      if (g) g.push(i);
      else groups.set(ino, [firstOf[ino]!, i]);
    }
  }
  const nodesOf = (ino: number) => groups.get(ino) ?? [firstOf[ino]!];

  for (let i = first; i < n; i++) if (tree.typeAt(i) === 'directory') yield entryOf(tree.at(i));

  const perLayer = new Map<number, Pending[]>();
  for (let ino = 1; ino < firstOf.length; ino++) {
    const i = firstOf[ino]!;
    if (i < 0 || tree.typeAt(i) !== 'file') continue;
    const src = tree.sourceOfInode(ino);
    if (!src) throw new ImgxError('IMGX_BAD_LAYER', `no content source for ${JSON.stringify(tree.at(i).path)}`);
    let list = perLayer.get(src.layer);
    if (!list) perLayer.set(src.layer, (list = []));
    list.push({ offset: src.offset, nodes: nodesOf(ino) });
  }
  const readers = new Map(layers.map((l) => [l.index, l]));
  for (const index of [...perLayer.keys()].sort((a, b) => a - b)) {
    let list = perLayer.get(index)!.sort((a, b) => a.offset - b.offset);
    perLayer.delete(index);
    if (opts.staged) {
      const unstaged: Pending[] = [];
      for (const p of list) {
        const staged = tree.at(p.nodes[0]!).size > 0 ? opts.staged.take(index, p.offset) : undefined;
        if (staged) yield* fileWithLinks(tree, p.nodes, { staged });
        else unstaged.push(p);
      }
      list = unstaged;
      if (list.length === 0) continue;
    }
    const layer = readers.get(index);
    if (!layer) throw new ImgxError('IMGX_BAD_LAYER', `no reader for layer ${index}`);
    if (list.every((p) => tree.at(p.nodes[0]!).size === 0)) {
      for (const p of list) yield* fileWithLinks(tree, p.nodes, { body: Readable.from([]) });
      continue;
    }
    yield* fromLayer(tree, layer, list, signal);
  }

  for (let i = first; i < n; i++) {
    const type = tree.typeAt(i);
    if (type === 'directory' || type === 'file') continue;
    const ino = tree.inodeAt(i);
    const nodes = ino === 0 ? undefined : nodesOf(ino);
    if (nodes && nodes[0] !== i) continue; // emitted after its first path
    const node = tree.at(i);
    yield entryOf(node);
    if (nodes) for (const other of nodes.slice(1)) yield hardlinkTo(tree.at(other), node.path);
  }
}

/** The file at the first of `nodes` with its content (a body, or the sink's staged copy), then its hardlinks. */
async function* fileWithLinks(tree: FlatTree, nodes: number[], content: { body: Readable } | { staged: StagedContent }): AsyncGenerator<FlatEntry> {
  const first = tree.at(nodes[0]!);
  const e = entryOf(first);
  if ('body' in content) e.body = content.body;
  else e.staged = content.staged;
  yield e;
  if ('body' in content) await settle(content.body);
  for (const other of nodes.slice(1)) yield hardlinkTo(tree.at(other), first.path);
}

/** Re-reads one layer up to the last entry needed, emitting each wanted file at its header offset. */
async function* fromLayer(tree: FlatTree, layer: LayerReader, list: Pending[], signal: AbortSignal | undefined): AsyncGenerator<FlatEntry> {
  const what = layerName(layer.index, layer.desc.digest);
  // The diff_id was checked in pass 1; this read stops early, so it cannot be checked again. The
  // entries found are checked against the tree instead (type and size at each offset).
  const input = await layer.open({ verifyDiffId: false, signal });
  let k = 0;
  try {
    for await (const e of readTar(input, { what })) {
      signal?.throwIfAborted();
      const want = list[k]!;
      if (e.offset < want.offset) continue;
      const size = tree.at(want.nodes[0]!).size;
      if (e.offset > want.offset || e.header.type !== 'file' || e.header.size !== size) {
        throw new ImgxError('IMGX_BAD_LAYER', `${what} changed since it was scanned: no ${size}-byte file at offset ${want.offset} (for ${JSON.stringify(tree.at(want.nodes[0]!).path)})`);
      }
      // A sparse file's body is its stored data only (FlatEntry.sparse says where it goes).
      yield* fileWithLinks(tree, want.nodes, { body: e.sparse ? e.data : e.body });
      if (++k === list.length) break;
    }
    if (k < list.length) {
      throw new ImgxError('IMGX_BAD_LAYER', `${what} ended before offset ${list[k]!.offset} (for ${JSON.stringify(tree.at(list[k]!.nodes[0]!).path)})`);
    }
  } finally {
    if (!input.destroyed) input.destroy();
  }
}
