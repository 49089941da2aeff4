// Pass 1 of flatten: read every layer's headers (bodies skipped, never buffered; layers in
// parallel, bounded; the diff_id checked on the way), then apply the layers' entry lists in order
// to an in-memory model of the tree. The result is the FlatTree that pass 2 (emit.ts) and the
// browse commands use. Pure: no filesystem access; the layers come in as LayerReaders.
//
// Rules (sequential, umoci-like; OCI image-spec layer.md):
// - Per layer, its whiteouts and opaque whiteouts go first, against what the lower layers left,
//   wherever they sit in the tar, so a whiteout never removes what its own layer adds. Then its
//   other entries in tar order; a later duplicate wins.
// - A directory over a directory replaces the metadata (xattrs included) and keeps the children;
//   anything else over anything else replaces it, a directory with its whole subtree.
// - A missing parent is created as an implicit directory (0755, root:root, mtime 0). A parent that
//   is a file or a symlink is replaced by such a directory (IMGX_PARENT_REPLACED): symlinks are
//   never resolved, so one planted by a lower layer cannot redirect a later entry.
// - A hardlink joins the inode at its target path at that moment (target not resolved through
//   symlinks; missing or a directory: IMGX_BAD_HARDLINK, skipped). Like tar's link(2) and umoci,
//   the link entry's own metadata is ignored: the inode keeps its own.
import { ImgxError } from '../errors.ts';
import type { Warnings } from '../warnings.ts';
import type { FsEntryType } from './fs-entry.ts';
import { FlatTree, TYPE_CHAR, encodeLayerChange, type ChangeKind, type LayerChange, type SerialisedLayerChange, type TreeColumns } from './flat-tree.ts';
import { layerName, type LayerReader } from './layer-reader.ts';
import { ROOT, baseName, joinPath, normalisePath, splitPath } from './normalise-path.ts';
import type { TarHeader } from './tar-header.ts';
import { readTar, type TarInput } from './tar-reader.ts';
import { classifyWhiteout } from './whiteout.ts';

export interface ScanOptions {
  warnings: Warnings;
  /** Layers read at once (default 4). Application is always in layer order. */
  concurrency?: number;
  signal?: AbortSignal;
  /** Keep the per-layer list of changed paths in `layerChanges` (default true). */
  recordPaths?: boolean;
  /**
   * Receives the content of every regular file as pass 1 reads past it, so that a sink can keep it
   * (the directory writer stages it) and pass 2 need not read the layer again.
   */
  contents?: ContentSink;
  /** Called once every layer is read and applied, before the tree is built from the model. */
  layersApplied?: () => void;
}

/**
 * Where pass 1 hands file contents. `file` is called for every non-empty regular file of a layer
 * (whiteouts excluded), with the layer index and the entry's header offset, which name its content
 * in the FlatTree; it must read the whole body (through `readBody`) before it resolves. Whatever
 * the layers hold, the names it is given are numbers: the entry's path is only for messages.
 */
export interface ContentSink {
  file(layer: number, offset: number, entry: ScanEntry, readBody: (sink: (chunk: Buffer) => void) => Promise<void>): Promise<void>;
}

// ---- what pass 1 keeps of a layer -------------------------------------------------------------

type NodeType = Exclude<FsEntryType, 'hardlink'>;

/** One entry of a layer, as much as flatten needs: metadata and where its header is. */
export interface ScanEntry {
  path: string;
  type: FsEntryType;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  size: number;
  /** Symlink target as given; hardlink target normalised. */
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer> | undefined;
  offset: number;
}

export interface LayerEntries {
  whiteouts: string[];
  opaques: string[];
  entries: ScanEntry[];
}

const SCHILY_XATTR = 'SCHILY.xattr.';
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';

/**
 * Extended attributes of an entry. SCHILY.xattr.NAME carries the value byte for byte (GNU tar, Go,
 * BuildKit). LIBARCHIVE.xattr.NAME (bsdtar) has a URL-encoded name and a base64 value; it is read
 * too, and SCHILY wins when both name one attribute.
 */
export function xattrsOf(pax: Map<string, Buffer> | undefined): Map<string, Buffer> | undefined {
  if (!pax) return undefined;
  let out: Map<string, Buffer> | undefined;
  for (const [k, v] of pax) {
    if (k.startsWith(LIBARCHIVE_XATTR)) {
      let name: string;
      try {
        name = decodeURIComponent(k.slice(LIBARCHIVE_XATTR.length));
      } catch {
        continue;
      }
      if (!name || out?.has(name)) continue;
      (out ??= new Map()).set(name, Buffer.from(v.toString('latin1'), 'base64'));
    }
  }
  for (const [k, v] of pax) {
    if (k.startsWith(SCHILY_XATTR) && k.length > SCHILY_XATTR.length) (out ??= new Map()).set(k.slice(SCHILY_XATTR.length), v);
  }
  return out;
}

const KNOWN: ReadonlySet<string> = new Set(['file', 'directory', 'symlink', 'hardlink', 'char-device', 'block-device', 'fifo']);

/**
 * Turns one tar header into what flatten keeps, or records a whiteout. Throws on names that can
 * never be applied (NUL bytes, a non-directory named as the root, malformed whiteouts).
 */
export function collectEntry(out: LayerEntries, h: TarHeader, offset: number, warnings: Warnings, where: string): ScanEntry | undefined {
  const n = normalisePath(h.name);
  // A whiteout is its name alone, whatever its type (as umoci and containerd read them).
  const wh = classifyWhiteout(n.path);
  if (n.clamped) warnings.warn('IMGX_PATH_CLAMPED', `${where}: ${JSON.stringify(h.name)} confined to ${JSON.stringify(n.path)}`);
  switch (wh.kind) {
    case 'whiteout':
      out.whiteouts.push(wh.target);
      return;
    case 'opaque':
      out.opaques.push(wh.dir);
      return;
    case 'meta':
      return;
  }
  if (!KNOWN.has(h.type)) {
    warnings.warn('IMGX_UNKNOWN_ENTRY', `${where}: skipped ${JSON.stringify(h.name)} of unknown type ${JSON.stringify(h.typeflag)}`);
    return;
  }
  if (n.path === ROOT && h.type !== 'directory') {
    throw new ImgxError('IMGX_UNSAFE_PATH', `${where}: a ${h.type} entry ${JSON.stringify(h.name)} names the root directory`);
  }
  let linkname = h.linkname;
  if (h.type === 'hardlink') {
    const l = normalisePath(h.linkname);
    if (l.clamped) warnings.warn('IMGX_PATH_CLAMPED', `${where}: hardlink target ${JSON.stringify(h.linkname)} confined to ${JSON.stringify(l.path)}`);
    linkname = l.path;
  }
  const dev = h.type === 'char-device' || h.type === 'block-device';
  const entry: ScanEntry = {
    path: n.path,
    type: h.type as FsEntryType,
    mode: h.mode & 0o7777,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname,
    gname: h.gname,
    mtime: h.mtime,
    size: h.type === 'file' ? h.size : 0,
    linkname: h.type === 'symlink' || h.type === 'hardlink' ? linkname : '',
    devmajor: dev ? h.devmajor : 0,
    devminor: dev ? h.devminor : 0,
    xattrs: xattrsOf(h.pax),
    offset,
  };
  out.entries.push(entry);
  return entry;
}

/**
 * Reads one layer's headers to the end of its stream (the diff_id checked). Bodies are skipped,
 * or handed to `contents` when given.
 */
export async function readLayerEntries(layer: LayerReader, warnings: Warnings, signal?: AbortSignal, contents?: ContentSink): Promise<LayerEntries> {
  const where = layerName(layer.index, layer.desc.digest);
  // Recycled chunks when the layer offers them: pass 1 copies what it keeps (headers become
  // strings, contents go to the sink synchronously).
  const chunks = await layer.openChunks?.({ ...(signal ? { signal } : {}) });
  const input: TarInput = chunks ?? (await layer.open({ verifyDiffId: true, signal }));
  const out: LayerEntries = { whiteouts: [], opaques: [], entries: [] };
  try {
    for await (const e of readTar(input, { what: where, skipBodies: !contents, recycled: chunks !== undefined })) {
      signal?.throwIfAborted();
      let entry: ScanEntry | undefined;
      try {
        entry = collectEntry(out, e.header, e.offset, warnings, where);
      } catch (err) {
        // The same error, with the layer named.
        if (err instanceof ImgxError && !err.message.startsWith(where)) throw new ImgxError(err.code, `${where}: ${err.message}`);
        throw err;
      }
      if (contents && entry?.type === 'file' && entry.size > 0) await contents.file(layer.index, e.offset, entry, (sink) => e.readBody(sink));
    }
    // readTar reads past the end-of-archive blocks to the end of the input, so the diff_id check
    // (which covers every byte, the trailing padding included) has run once it returns.
  } finally {
    if (!input.destroyed) input.destroy();
  }
  return out;
}

// ---- the model --------------------------------------------------------------------------------

/** A node's metadata: a ScanEntry of any type but hardlink (or an implicit directory's). */
type Meta = Omit<ScanEntry, 'type' | 'path' | 'offset'> & { type: NodeType };

/** A non-directory's identity: paths that share one are hardlinks of each other. */
interface Inode {
  meta: Meta;
  /** Content source of a regular file: layer index and header offset (-1 for other types). */
  layer: number;
  offset: number;
}

interface MNode {
  /** Directories only. */
  children?: Map<string, MNode>;
  /** Directories: their own metadata. */
  meta?: Meta;
  /** Non-directories. */
  inode?: Inode;
  /** Removed from the tree (nodes are never put back: a path that comes again gets a new node). */
  dead?: boolean;
}

const IMPLICIT_DIR: Readonly<Meta> = Object.freeze({
  type: 'directory',
  mode: 0o755,
  uid: 0,
  gid: 0,
  uname: '',
  gname: '',
  mtime: 0,
  size: 0,
  linkname: '',
  devmajor: 0,
  devminor: 0,
  xattrs: undefined,
});

function newDir(meta: Meta = { ...IMPLICIT_DIR }): MNode {
  return { children: new Map(), meta };
}

/** The entry itself serves as the metadata (one object less per entry; nothing mutates it). */
function metaOf(e: ScanEntry): Meta {
  return e as Meta;
}

/** How a path looked before the layer first touched it. */
interface Before {
  type: NodeType;
  size: number;
}

/** A path the current layer touched: how it was before the layer, and the node there now. */
interface Touch {
  before: Before | null;
  node: MNode | undefined;
}

function describe(n: MNode): Before {
  return n.children ? { type: 'directory', size: 0 } : { type: n.inode!.meta.type, size: n.inode!.meta.type === 'file' ? n.inode!.meta.size : 0 };
}

/** The mutable tree that layers are applied to, one after the other. */
export class TreeBuilder {
  private readonly root = newDir();
  private rootExplicit = false;
  private readonly warnings: Warnings;
  private readonly recordPaths: boolean;
  /** Per layer applied, what it changed (front-coded). */
  private readonly changes: SerialisedLayerChange[] = [];
  /** Paths the current layer touched. */
  private touched = new Map<string, Touch>();
  private layer = -1;
  private where = '';
  /** The directory the last entry went into: tars list a directory's entries together. */
  private lastDirPath = '';
  private lastDir: MNode | undefined;

  constructor(opts: { warnings: Warnings; recordPaths?: boolean }) {
    this.warnings = opts.warnings;
    this.recordPaths = opts.recordPaths !== false;
  }

  /** Applies one layer: whiteouts against the lower layers first, then its entries in order. */
  applyLayer(index: number, layer: { digest: string; diffId?: string }, entries: LayerEntries): void {
    this.layer = index;
    this.where = layerName(index, layer.digest);
    this.touched = new Map();
    for (const dir of entries.opaques) this.opaque(dir);
    for (const target of entries.whiteouts) this.whiteout(target);
    for (const e of entries.entries) this.apply(e);
    this.changes.push(encodeLayerChange(this.account(index, layer)));
  }

  // -- lookups and removal --

  /** The node at a normalised path, never resolving symlinks (a non-directory ancestor: none). */
  private lookup(path: string): MNode | undefined {
    let cur: MNode = this.root;
    for (const part of splitPath(path)) {
      const next = cur.children?.get(part);
      if (!next) return undefined;
      cur = next;
    }
    return cur;
  }

  /** The layer's record of `path`; `current` is what is there before this change. */
  private touch(path: string, current: MNode | undefined): Touch {
    let t = this.touched.get(path);
    if (!t) {
      t = { before: current ? describe(current) : null, node: current };
      this.touched.set(path, t);
    }
    return t;
  }

  /** Puts `node` at `path` in `dir` (whatever was there must already be gone or replaced). */
  private place(dir: MNode, name: string, path: string, current: MNode | undefined, node: MNode): void {
    this.touch(path, current).node = node;
    dir.children!.set(name, node);
  }

  /** Marks `node` and every descendant removed, recording each path (the caller detaches it). */
  private kill(path: string, node: MNode): void {
    const stack: [string, MNode][] = [[path, node]];
    while (stack.length) {
      const [p, n] = stack.pop()!;
      this.touch(p, n);
      n.dead = true;
      if (n.children) for (const [name, c] of n.children) stack.push([joinPath(p, name), c]);
    }
  }

  private whiteout(target: string): void {
    const i = target.lastIndexOf('/');
    const parent = this.lookup(i < 0 ? ROOT : target.slice(0, i));
    const name = i < 0 ? target : target.slice(i + 1);
    const node = parent?.children?.get(name);
    // Whiting out what no lower layer has is common (and harmless): nothing to do, no warning.
    if (!node) return;
    this.kill(target, node);
    parent!.children!.delete(name);
  }

  private opaque(dir: string): void {
    const node = this.lookup(dir);
    if (!node?.children) return;
    for (const [name, c] of node.children) this.kill(joinPath(dir, name), c);
    node.children.clear();
  }

  /**
   * The directory that will hold `path`, created as needed. A file or symlink in the way becomes a
   * directory: never follow it.
   */
  private parentFor(path: string): MNode {
    const slash = path.lastIndexOf('/');
    if (slash < 0) return this.root;
    const dirPath = path.slice(0, slash);
    if (dirPath === this.lastDirPath && this.lastDir && !this.lastDir.dead) return this.lastDir;
    let cur = this.root;
    const parts = dirPath.split('/');
    let p = ROOT;
    for (const part of parts) {
      p = joinPath(p, part);
      let next = cur.children!.get(part);
      if (!next) {
        next = newDir();
        this.place(cur, part, p, undefined, next);
      } else if (!next.children) {
        this.warnings.warn('IMGX_PARENT_REPLACED', `${this.where}: ${JSON.stringify(p)} is a ${next.inode!.meta.type}, replaced by a directory to hold ${JSON.stringify(path)}`);
        next.dead = true;
        const old = next;
        next = newDir();
        this.place(cur, part, p, old, next);
      }
      cur = next;
    }
    this.lastDirPath = dirPath;
    this.lastDir = cur;
    return cur;
  }

  // -- entries --

  private apply(e: ScanEntry): void {
    if (e.path === ROOT) {
      // collectEntry let only directories through for the root.
      this.rootExplicit = true;
      this.touch(ROOT, this.root);
      this.root.meta = metaOf(e);
      return;
    }
    const parent = this.parentFor(e.path);
    const name = baseName(e.path);
    const existing = parent.children!.get(name);
    if (e.type === 'directory') {
      if (existing?.children) {
        this.touch(e.path, existing);
        existing.meta = metaOf(e);
        return;
      }
      if (existing) this.kill(e.path, existing);
      this.place(parent, name, e.path, existing, newDir(metaOf(e)));
      return;
    }
    let inode: Inode;
    if (e.type === 'hardlink') {
      const target = this.lookup(e.linkname);
      if (!target || target.children) {
        this.warnings.warn('IMGX_BAD_HARDLINK', `${this.where}: hardlink ${JSON.stringify(e.path)} to ${target ? 'the directory ' : 'missing '}${JSON.stringify(e.linkname)} skipped`);
        return;
      }
      if (existing === target || (existing?.inode !== undefined && existing.inode === target.inode)) return;
      inode = target.inode!;
    } else {
      inode = { meta: metaOf(e), layer: e.type === 'file' ? this.layer : -1, offset: e.type === 'file' ? e.offset : -1 };
    }
    if (existing) this.kill(e.path, existing);
    this.place(parent, name, e.path, existing, { inode });
  }

  // -- accounting --

  private account(index: number, layer: { digest: string; diffId?: string }): LayerChange {
    const c: LayerChange = { layer: index, digest: layer.digest, added: 0, modified: 0, removed: 0, addedBytes: 0, modifiedBytes: 0 };
    if (layer.diffId !== undefined) c.diffId = layer.diffId;
    const paths: NonNullable<LayerChange['paths']> = [];
    const counted = new Set<Inode>();
    const sorted = [...this.touched.keys()].sort();
    for (const path of sorted) {
      const { before, node } = this.touched.get(path)!;
      const now = node && !node.dead ? node : undefined;
      let change: ChangeKind;
      let type: NodeType;
      let size = 0;
      if (!now) {
        if (!before) continue; // came and went within the layer
        change = 'removed';
        type = before.type;
        size = before.size;
        c.removed++;
      } else {
        change = before ? 'modified' : 'added';
        type = now.children ? 'directory' : now.inode!.meta.type;
        if (type === 'file') {
          size = now.inode!.meta.size;
          // Bytes the layer carries: a file whose content is in this layer, each inode once.
          if (now.inode!.layer === index && !counted.has(now.inode!)) {
            counted.add(now.inode!);
            if (before) c.modifiedBytes += size;
            else c.addedBytes += size;
          }
        }
        if (before) c.modified++;
        else c.added++;
      }
      if (this.recordPaths) paths.push({ path, change, size, type });
    }
    if (this.recordPaths) c.paths = paths;
    this.touched = new Map();
    return c;
  }

  // -- the result --

  /** The final tree: nodes depth first, children sorted, inodes numbered from 1 in tree order. */
  finish(): FlatTree {
    // Inodes of non-files get an id only when shared: count paths per inode first.
    const refs = new Map<Inode, number>();
    const countStack: MNode[] = [this.root];
    while (countStack.length) {
      const n = countStack.pop()!;
      if (n.children) for (const c of n.children.values()) countStack.push(c);
      else refs.set(n.inode!, (refs.get(n.inode!) ?? 0) + 1);
    }
    const c: TreeColumns = {
      names: [],
      parents: [],
      types: '',
      modes: [],
      uids: [],
      gids: [],
      mtimes: [],
      sizes: [],
      inodes: [],
      strings: [''],
      unames: [],
      gnames: [],
      links: new Map(),
      devs: new Map(),
      xattrs: new Map(),
      srcLayers: [-1],
      srcOffsets: [-1],
      rootExplicit: this.rootExplicit,
    };
    const types: string[] = [];
    const stringIds = new Map<string, number>([['', 0]]);
    const str = (s: string) => {
      let id = stringIds.get(s);
      if (id === undefined) {
        id = c.strings.length;
        c.strings.push(s);
        stringIds.set(s, id);
      }
      return id;
    };
    const ids = new Map<Inode, number>();
    const stack: [string, MNode, number][] = [['', this.root, -1]];
    while (stack.length) {
      const [name, n, parent] = stack.pop()!;
      const idx = c.names.length;
      const m = n.children ? n.meta! : n.inode!.meta;
      c.names.push(name);
      (c.parents as number[]).push(parent);
      types.push(TYPE_CHAR[m.type]);
      c.modes.push(m.mode);
      c.uids.push(m.uid);
      c.gids.push(m.gid);
      c.mtimes.push(m.mtime);
      c.sizes.push(m.type === 'file' ? m.size : 0);
      c.unames.push(str(m.uname));
      c.gnames.push(str(m.gname));
      if (m.type === 'symlink') c.links.set(idx, m.linkname);
      if (m.type === 'char-device' || m.type === 'block-device') c.devs.set(idx, [m.devmajor, m.devminor]);
      if (m.xattrs && m.xattrs.size > 0) c.xattrs.set(idx, m.xattrs);
      let id = 0;
      if (n.children) {
        const names = [...n.children.keys()].sort();
        for (let k = names.length - 1; k >= 0; k--) stack.push([names[k]!, n.children.get(names[k]!)!, idx]);
      } else {
        const ino = n.inode!;
        if (ino.meta.type === 'file' || refs.get(ino)! > 1) {
          id = ids.get(ino) ?? 0;
          if (id === 0) {
            id = ids.size + 1;
            ids.set(ino, id);
            c.srcLayers.push(ino.meta.type === 'file' ? ino.layer : -1);
            c.srcOffsets.push(ino.meta.type === 'file' ? ino.offset : -1);
          }
        }
      }
      c.inodes.push(id);
    }
    c.types = types.join('');
    return new FlatTree(c, { encoded: this.changes });
  }
}

// ---- pass 1 -----------------------------------------------------------------------------------

/**
 * Reads the layers (up to `concurrency` at once, each verified against its diff_id) and applies
 * them in order. The first failure aborts the other reads and is thrown.
 */
export async function scanLayers(layers: LayerReader[], opts: ScanOptions): Promise<FlatTree> {
  // As many as the pull downloads at once: a layer's scan follows its download (growing-blob.ts),
  // and a slot held by a slow download must not keep a finished layer waiting.
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal?.reason);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const pending: Promise<LayerEntries>[] = [];
  let failed: { error: unknown } | undefined;
  let active = 0;
  const waiting: (() => void)[] = [];
  const slot = async () => {
    if (active >= concurrency) await new Promise<void>((r) => waiting.push(r));
    active++;
  };
  const release = () => {
    active--;
    waiting.shift()?.();
  };
  for (const layer of layers) {
    const p = (async () => {
      await slot();
      try {
        ac.signal.throwIfAborted();
        return await readLayerEntries(layer, opts.warnings, ac.signal, opts.contents);
      } finally {
        release();
      }
    })();
    // The first failure is the one to report: the others may be the abort it caused.
    p.catch((e: unknown) => {
      if (!failed) failed = { error: e };
      ac.abort(e);
    });
    pending.push(p);
  }
  try {
    const builder = new TreeBuilder({ warnings: opts.warnings, recordPaths: opts.recordPaths });
    for (let i = 0; i < layers.length; i++) {
      const entries = await pending[i]!;
      // Let go of the entry list as soon as it is applied.
      pending[i] = Promise.resolve({ whiteouts: [], opaques: [], entries: [] });
      opts.signal?.throwIfAborted();
      const layer = layers[i]!;
      const info: { digest: string; diffId?: string } = { digest: layer.desc.digest };
      if (layer.diffId !== undefined) info.diffId = layer.diffId;
      // Content sources and layer changes name the layer by its LayerReader index.
      builder.applyLayer(layer.index, info, entries);
    }
    opts.layersApplied?.();
    return builder.finish();
  } catch (e) {
    if (!failed) failed = { error: e };
    ac.abort(e);
    await Promise.allSettled(pending);
    throw failed.error;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
