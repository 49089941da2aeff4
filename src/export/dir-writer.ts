// The safe directory writer: the flattened filesystem (a stream of FlatEntry) into a directory.
//
// Safety: the tree is built in a 0700 staging directory beside DEST and renamed into place at the
// end. Every entry name is checked (safe-path.ts) and every ancestor must be a real directory
// inside the root (confined-root.ts): a symlink is never followed, whatever an earlier entry
// planted. Files are created O_CREAT|O_EXCL|O_NOFOLLOW; metadata goes through the open fd (files,
// directories opened O_NOFOLLOW|O_DIRECTORY) or l* calls (symlinks); nothing is chmod'ed through a
// symlink. Hardlink targets must be non-directories reached the same way.
//
// Speed: the system calls are synchronous (fd-ops.ts says why): a file is created, written chunk by
// chunk as its body arrives, given its owner, mode and times and closed, while the layer stream
// inflates the next bytes on the thread pool. Verified directories are cached; chmod is skipped
// when the created mode is already right; nothing is stat'ed that this writer did not need to look
// at. Device nodes, fifos and xattrs need external tools and go in batches.
import fs, { constants } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { ImgxError } from '../errors.ts';
import { ioError } from '../io-errors.ts';
import type { FlatEntry, StagedContent } from '../layers/fs-entry.ts';
import { SparseCursor } from '../layers/sparse.ts';
import { fsPath, hasRawBytes } from '../util/raw-name.ts';
import type { Warnings } from '../warnings.ts';
import { ConfinedRoot } from './confined-root.ts';
import { applyFileMeta, createFile, fileMetaFor, storedBytes, writeAll, writerIdentity, type WriterIdentity } from './fd-ops.ts';
import { onInterrupt } from './interrupt.ts';
import { removeTree } from './remove-tree.ts';
import { pathComponents, unsafePath } from './safe-path.ts';
import { makeSpecialFiles, type SpecialNode } from './special-files.ts';
import { StagingDir, checkDestination } from './staging-dir.ts';
import { XattrBatch } from './xattr.ts';

export interface WriteDirectoryOptions {
  warnings: Warnings;
  /** Apply ownership, make device nodes, set every xattr namespace. Default: effective uid is 0. */
  asRoot?: boolean;
  /**
   * The staging directory, made by the caller beforehand (extractImage makes it before pass 1, to
   * stage contents beside it); DEST was checked then. Default: made here.
   */
  staging?: StagingDir;
  /**
   * Directories already made in the staging directory (by extract's content stage), every one of
   * them a directory of the tree being written: they are taken as made here.
   */
  made?: ReadonlySet<string>;
}

export interface WriteDirectoryResult {
  files: number;
  dirs: number;
  /** Symlinks and hardlinks. */
  links: number;
  /** Bytes of file content written. */
  bytes: number;
  /** Device nodes and fifos made. */
  special: number;
}

const { O_NOFOLLOW, O_RDONLY, O_DIRECTORY } = constants;
const OPEN_DIR = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

const SPECIAL_BATCH = 500;

interface Meta {
  mode: number;
  uid: number;
  gid: number;
  /** Undefined: leave as created (implicit parent directories). */
  mtime: number | undefined;
}

interface PendingSpecial extends SpecialNode {
  meta: Meta;
}

function metaOf(e: FlatEntry): Meta {
  return { mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, mtime: e.mtime };
}

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException)?.code;
}

function interrupted(): ImgxError {
  return new ImgxError('IMGX_INTERRUPTED', 'interrupted');
}

function depth(rel: string): number {
  let n = 0;
  for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) n++;
  return n;
}

export async function writeDirectory(entries: AsyncIterable<FlatEntry>, dest: string, opts: WriteDirectoryOptions): Promise<WriteDirectoryResult> {
  const target = resolve(dest);
  let staging = opts.staging;
  if (!staging) {
    await checkDestination(target);
    staging = await StagingDir.create(target);
  }
  const writer = new DirWriter(staging.path, opts);
  const abandon = async () => {
    writer.interrupt();
    await writer.idle();
    await writer.discard();
    await staging.discard();
  };
  // With a staging directory given, this runs before the first await: no moment without a handler.
  const unhook = onInterrupt(abandon);
  try {
    for await (const e of entries) await writer.add(e);
    await writer.finish();
    await staging.commit();
    return { ...writer.stats };
  } catch (e) {
    await abandon().catch(() => {});
    // System call failures (ENOSPC, EACCES on DEST's parent …) are local I/O errors; others pass.
    throw ioError(e, `cannot write ${target}`);
  } finally {
    unhook();
  }
}

class DirWriter {
  readonly stats: WriteDirectoryResult = { files: 0, dirs: 0, links: 0, bytes: 0, special: 0 };
  private readonly root: ConfinedRoot;
  private readonly warnings: Warnings;
  private readonly who: WriterIdentity;
  private readonly xattrs: XattrBatch;

  /** Final metadata of every directory, applied deepest first at the end. */
  private readonly dirMeta = new Map<string, Meta>();
  private rootMeta: Meta | undefined;

  private specials: PendingSpecial[] = [];
  private readonly specialAt = new Set<string>();

  /**
   * Asynchronous operations that create or remove entries (tree removals, device batches, the
   * xattr run): an interrupt waits for them before removing the tree. The synchronous calls need
   * no such count: an interrupt handler only runs between them, and every create is preceded by
   * a check of `stopped`.
   */
  private creatingNow = 0;
  private idleWaiters: (() => void)[] = [];
  private stopped = false;

  private noChown = 0;
  private noDevice = 0;
  /** Device nodes not made (not root), so that hardlinks to them count as such, not as broken. */
  private readonly skippedDevices = new Set<string>();

  /** Made before this writer started (WriteDirectoryOptions.made). */
  private readonly made: ReadonlySet<string> | undefined;

  constructor(rootPath: string, opts: WriteDirectoryOptions) {
    this.made = opts.made;
    this.warnings = opts.warnings;
    this.who = writerIdentity(opts.asRoot);
    this.xattrs = new XattrBatch(`${rootPath}.xattrs`, this.who.asRoot, this.warnings);
    this.root = new ConfinedRoot(rootPath, (rel) => this.makeImplicitDir(rel));
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  interrupt(): void {
    this.stopped = true;
  }

  /** Resolves when no asynchronous entry-creating operation is running (after interrupt(), none will start). */
  idle(): Promise<void> {
    if (this.creatingNow === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  async discard(): Promise<void> {
    await this.xattrs.discard();
  }

  private async creating<T>(fn: () => Promise<T>): Promise<T> {
    this.check();
    this.creatingNow++;
    try {
      return await fn();
    } finally {
      if (--this.creatingNow === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private check(): void {
    if (this.stopped) throw interrupted();
  }

  // ---- entries --------------------------------------------------------------------------------

  async add(e: FlatEntry): Promise<void> {
    this.check();
    const rel = e.path;
    if (pathComponents(rel).length === 0) {
      if (e.type !== 'directory') throw unsafePath(rel, 'the root must be a directory');
      this.rootMeta = metaOf(e);
      this.noteOwner(e);
      if (e.xattrs.size > 0) this.xattrs.add('.', e.xattrs, false);
      return;
    }
    this.root.parentReady(rel, true);
    if (this.specialAt.has(rel)) await this.flushSpecials();
    switch (e.type) {
      case 'directory':
        await this.addDirectory(rel, e);
        break;
      case 'file':
        await this.addFile(rel, e);
        break;
      case 'hardlink':
        if (!(await this.addHardlink(rel, e))) return;
        break;
      case 'symlink':
        if (!(await this.addSymlink(rel, e))) return;
        break;
      case 'char-device':
      case 'block-device':
      case 'fifo':
        if (!(await this.addSpecial(rel, e))) return;
        break;
      default:
        throw new ImgxError('IMGX_BAD_LAYER', `${rel}: unknown entry type ${String((e as FlatEntry).type)}`);
    }
    if (e.type !== 'hardlink') this.noteOwner(e);
    if (e.xattrs.size > 0) this.xattrs.add(rel, e.xattrs, e.type === 'symlink');
  }

  private async addDirectory(rel: string, e: FlatEntry): Promise<void> {
    const abs = this.root.abs(rel);
    // Counted once, whoever made it: this writer, or the content stage of pass 1.
    const counted = this.dirMeta.has(rel);
    if (!this.made?.has(rel)) {
      try {
        fs.mkdirSync(fsPath(abs), 0o700);
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
        // A duplicate: the later entry's metadata wins.
        if (!fs.lstatSync(fsPath(abs)).isDirectory()) {
          await this.removeExisting(rel);
          this.check();
          fs.mkdirSync(fsPath(abs), 0o700);
        }
      }
    }
    this.root.markDir(rel);
    this.dirMeta.set(rel, metaOf(e));
    if (!counted) this.stats.dirs++;
  }

  private makeImplicitDir(rel: string): void {
    this.check();
    fs.mkdirSync(fsPath(this.root.abs(rel)), 0o700);
    this.dirMeta.set(rel, { mode: 0o755, uid: 0, gid: 0, mtime: undefined });
    this.stats.dirs++;
  }

  private async addFile(rel: string, e: FlatEntry): Promise<void> {
    const size = e.size;
    const body = e.body;
    if (size > 0 && !body && !e.staged) throw new ImgxError('IMGX_BAD_LAYER', `${rel}: no content for a ${size}-byte file`);
    // Every directory here was made by this writer, so dirMeta says whether one is in the way.
    // Anything else in the way is cleared by the create itself (onExists), or replaced by rename.
    if (this.dirMeta.has(rel)) {
      await this.removeExisting(rel);
      this.check();
    }
    if (e.staged) this.placeStaged(rel, e, e.staged);
    else {
      const fd = createFile(this.root.abs(rel), e.mode, () => this.clearNonDirectory(rel));
      try {
        if (body && e.sparse) await this.writeSparseBody(fd, body, e, rel);
        else if (body) await this.writeBody(fd, body, size, rel);
        applyFileMeta(fd, fileMetaFor(e, this.who));
      } finally {
        fs.closeSync(fd);
      }
    }
    this.stats.files++;
    this.stats.bytes += size;
  }

  /**
   * A content staged in pass 1 (content-stage.ts) is already in place, or moves there with one
   * rename: its parent was verified above, and rename(2) replaces a non-directory at the name
   * without following it.
   */
  private placeStaged(rel: string, e: FlatEntry, staged: StagedContent): void {
    const abs = this.root.abs(rel);
    const p = fsPath(abs);
    if (staged.path !== abs) fs.renameSync(fsPath(staged.path), p);
    // The staged copy got the metadata of its own tar entry, which is the tree's for that content;
    // should they ever differ, the tree's wins (l* calls: `abs` is the regular file just moved).
    if (staged.mode === (e.mode & 0o7777) && staged.uid === e.uid && staged.gid === e.gid && staged.mtime === e.mtime) return;
    const meta = fileMetaFor(e, this.who);
    if (meta.owner) fs.lchownSync(p, meta.owner.uid, meta.owner.gid);
    fs.chmodSync(p, meta.mode);
    fs.lutimesSync(p, e.mtime, e.mtime);
  }

  /** What an earlier entry left at `rel` (never a directory, see addFile) is unlinked. */
  private clearNonDirectory(rel: string): void {
    const abs = fsPath(this.root.abs(rel));
    if (fs.lstatSync(abs).isDirectory()) throw new ImgxError('IMGX_BAD_LAYER', `${rel}: a directory appeared where a file was to be written`);
    fs.unlinkSync(abs);
  }

  private async writeBody(fd: number, body: Readable, size: number, rel: string): Promise<void> {
    let n = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      this.check();
      n += chunk.length;
      if (n > size) throw badBody(rel, size, n);
      writeAll(fd, chunk);
    }
    if (n !== size) throw badBody(rel, size, n);
  }

  /** A sparse file: the body is the stored data, each piece written at its place; holes stay holes. */
  private async writeSparseBody(fd: number, body: Readable, e: FlatEntry, rel: string): Promise<void> {
    const cursor = new SparseCursor(e.sparse!);
    for await (const chunk of body as AsyncIterable<Buffer>) {
      this.check();
      if (cursor.placed + chunk.length > cursor.stored) throw badBody(rel, cursor.stored, cursor.placed + chunk.length);
      cursor.place(chunk, (piece, offset) => writeAll(fd, piece as Buffer, offset));
    }
    if (cursor.placed !== storedBytes(e.size, e.sparse)) throw badBody(rel, cursor.stored, cursor.placed);
    fs.ftruncateSync(fd, e.size);
  }

  private async addHardlink(rel: string, e: FlatEntry): Promise<boolean> {
    const target = e.linkname ?? '';
    if (pathComponents(target).length === 0) throw unsafePath(rel, 'hardlink to the root');
    if (target === rel) return false;
    // A fifo or device node waiting in the batch is made first, so that the link has its target.
    if (this.specialAt.has(target)) await this.flushSpecials();
    const targetAbs = fsPath(this.root.abs(target));
    const st = this.root.parentReady(target, false) ? fs.lstatSync(targetAbs, { throwIfNoEntry: false }) : undefined;
    if (!st) {
      if (this.skippedDevices.has(target)) this.noDevice++;
      else this.warnings.warn('IMGX_BAD_HARDLINK', `hardlink ${rel} to ${target}: no such file; skipped`);
      return false;
    }
    // A hardlinked symlink, fifo or device is legitimate (emit makes such groups) and harmless:
    // link(2) never follows a symlink on Linux, and the target was reached without following any.
    if (st.isDirectory()) throw unsafePath(rel, `hardlink to ${target}, a directory`);
    const abs = fsPath(this.root.abs(rel));
    try {
      fs.linkSync(targetAbs, abs);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
      await this.removeExisting(rel);
      this.check();
      fs.linkSync(targetAbs, abs);
    }
    this.stats.links++;
    return true;
  }

  private async addSymlink(rel: string, e: FlatEntry): Promise<boolean> {
    const target = e.linkname ?? '';
    if (!target) {
      this.warnings.warn('IMGX_WARNING', `symlink ${rel} has an empty target; skipped`);
      return false;
    }
    const abs = fsPath(this.root.abs(rel));
    try {
      fs.symlinkSync(fsPath(target), abs);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw err;
      await this.removeExisting(rel);
      this.check();
      fs.symlinkSync(fsPath(target), abs);
    }
    // l* calls: never through the link.
    if (this.who.asRoot && (e.uid !== this.who.uid || e.gid !== this.who.gid)) fs.lchownSync(abs, e.uid, e.gid);
    fs.lutimesSync(abs, e.mtime, e.mtime);
    this.stats.links++;
    return true;
  }

  private async addSpecial(rel: string, e: FlatEntry): Promise<boolean> {
    const type = e.type as SpecialNode['type'];
    if (type !== 'fifo' && !this.who.asRoot) {
      this.noDevice++;
      this.skippedDevices.add(rel);
      if (this.warnings.strict) this.warnings.warn('IMGX_NO_DEVICE', `device node ${rel} not created (not root)`);
      return false;
    }
    this.specials.push({ rel, type, mode: e.mode & 0o7777, major: e.devmajor ?? 0, minor: e.devminor ?? 0, meta: metaOf(e) });
    this.specialAt.add(rel);
    if (this.specials.length >= SPECIAL_BATCH) await this.flushSpecials();
    return true;
  }

  private async flushSpecials(): Promise<void> {
    const nodes = this.specials;
    if (nodes.length === 0) return;
    this.specials = [];
    this.specialAt.clear();
    // mknod and mkfifo take names as arguments, which cannot carry bytes that are not UTF-8: such
    // nodes are made under a plain name at the root (this writer's private staging directory) and
    // renamed to theirs (rename(2) does not follow a symlink; the parent was verified).
    const plain = nodes.map((n, i) => (hasRawBytes(n.rel) ? { ...n, rel: `.imgx-node-${i}` } : n));
    const made = await this.creating(() => makeSpecialFiles(this.root.root, plain));
    this.check();
    const firstError = made.firstError;
    const failedPlain = new Set(made.failed);
    for (let i = 0; i < nodes.length; i++) {
      if (plain[i] !== nodes[i] && !failedPlain.has(plain[i]!)) fs.renameSync(this.root.abs(plain[i]!.rel), fsPath(this.root.abs(nodes[i]!.rel)));
    }
    const failed = nodes.filter((_, i) => failedPlain.has(plain[i]!));
    const bad = new Set(failed);
    for (const n of failed) {
      if (n.type === 'fifo') throw new ImgxError('IMGX_IO', `cannot make fifo ${n.rel}: ${firstError ?? 'mkfifo failed'}`);
      this.noDevice++; // e.g. root without CAP_MKNOD in a container
      if (this.warnings.strict) this.warnings.warn('IMGX_NO_DEVICE', `device node ${n.rel} not created: ${firstError ?? 'mknod failed'}`);
    }
    for (const n of nodes) {
      if (bad.has(n)) continue;
      const abs = fsPath(this.root.abs(n.rel));
      if (this.who.asRoot && (n.meta.uid !== this.who.uid || n.meta.gid !== this.who.gid)) {
        fs.lchownSync(abs, n.meta.uid, n.meta.gid);
        // chown may clear setuid/setgid: restore, on what lstat shows is not a symlink.
        if ((n.mode & 0o6000) !== 0 && !fs.lstatSync(abs).isSymbolicLink()) fs.chmodSync(abs, n.mode);
      }
      fs.lutimesSync(abs, n.meta.mtime ?? 0, n.meta.mtime ?? 0);
      this.stats.special++;
    }
  }

  /** Removes what is at `rel` so a later entry can take its place (duplicates: the last wins). */
  private async removeExisting(rel: string): Promise<void> {
    const abs = fsPath(this.root.abs(rel));
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (!st) return;
    if (!st.isDirectory()) {
      fs.unlinkSync(abs);
      return;
    }
    await this.creating(() => removeTree(abs));
    this.root.forget(rel);
    const prefix = `${rel}/`;
    for (const k of this.dirMeta.keys()) if (k === rel || k.startsWith(prefix)) this.dirMeta.delete(k);
  }

  private noteOwner(e: FlatEntry): void {
    if (this.who.asRoot || (e.uid === this.who.uid && e.gid === this.who.gid)) return;
    this.noChown++;
    if (this.warnings.strict) this.warnings.warn('IMGX_NO_CHOWN', `ownership of ${e.path} (${e.uid}:${e.gid}) not applied (not root)`);
  }

  // ---- the end --------------------------------------------------------------------------------

  async finish(): Promise<void> {
    this.check();
    await this.flushSpecials();
    // xattrs before directory modes, so that a 0000 directory does not stop an unprivileged run.
    await this.xattrs.apply(this.root.root, (fn) => this.creating(fn));
    this.check();
    this.applyDirectoryMeta();
    if (this.who.asRoot) {
      if (this.noDevice > 0) this.warnings.warn('IMGX_NO_DEVICE', `${this.noDevice} device nodes not created (mknod refused)`);
      return;
    }
    // Not root: one summary line for everything that needs privilege.
    const missed = [
      this.noChown > 0 ? `ownership of ${this.noChown} entries not applied` : '',
      this.noDevice > 0 ? `${this.noDevice} device nodes not created` : '',
      this.xattrs.skippedCount > 0 ? `${this.xattrs.skippedCount} security.*/trusted.* extended attributes not set` : '',
    ].filter(Boolean);
    if (missed.length) this.warnings.warn('IMGX_UNPRIVILEGED', `not root: ${missed.join(', ')} (run as root for an exact copy)`);
  }

  /** Deepest first: a parent's mode (e.g. 0000) is set after its children. */
  private applyDirectoryMeta(): void {
    const list = [...this.dirMeta].map(([rel, meta]) => ({ rel, meta, depth: depth(rel) }));
    list.sort((a, b) => b.depth - a.depth);
    for (const { rel, meta } of list) this.dirMetaAt(this.root.abs(rel), meta);
    this.dirMetaAt(this.root.root, this.rootMeta ?? { mode: 0o755, uid: this.who.uid, gid: this.who.gid, mtime: undefined });
  }

  private dirMetaAt(abs: string, meta: Meta): void {
    const fd = fs.openSync(fsPath(abs), OPEN_DIR);
    try {
      if (this.who.asRoot && (meta.uid !== this.who.uid || meta.gid !== this.who.gid)) fs.fchownSync(fd, meta.uid, meta.gid);
      if (meta.mode !== 0o700) fs.fchmodSync(fd, meta.mode);
      if (meta.mtime !== undefined) fs.futimesSync(fd, meta.mtime, meta.mtime);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function badBody(rel: string, size: number, got: number): ImgxError {
  return new ImgxError('IMGX_BAD_LAYER', `${rel}: the content is ${got > size ? 'longer' : 'shorter'} than its ${size} bytes`);
}
