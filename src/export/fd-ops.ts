// File-descriptor operations for the directory writer, as synchronous system calls on raw fds.
// Synchronous on purpose: a file's create-write-chown-chmod-utimes-close is a handful of calls of a
// few microseconds each, and handing each to the libuv thread pool costs more than the call (a
// queue, a thread wake-up, an event-loop completion). On a 2-vCPU VM, 20,000 small files took
// 0.8 s this way and 2.4–4.2 s through the pool. Meanwhile the layer stream keeps inflating on the
// pool, so the writes still overlap with decompression.
import fs, { constants } from 'node:fs';
import { fsPath } from '../util/raw-name.ts';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
/** Create a new file, never through a symlink, never over an existing entry. */
export const CREATE_FILE = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

/** Writes all of `buf` (a short write is continued), at `position` when given. */
export function writeAll(fd: number, buf: Buffer, position?: number): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, position === undefined ? null : position + off);
}

export interface FileMeta {
  mode: number;
  /** Set when ownership must be applied (chown before chmod: chown clears setuid/setgid). */
  owner?: { uid: number; gid: number };
  /** Set when the mode given to open() (minus the umask) is not already the final mode. */
  chmod: boolean;
  mtime: number;
}

/** Who writes: whether ownership is applied, this process's ids, and the umask new files get. */
export interface WriterIdentity {
  asRoot: boolean;
  uid: number;
  gid: number;
  umask: number;
}

export function writerIdentity(asRoot?: boolean): WriterIdentity {
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  const umask = process.umask(0o022);
  process.umask(umask);
  return { asRoot: asRoot ?? uid === 0, uid, gid, umask };
}

/** What to apply to a file just created (by createFile, with the entry's mode) for entry `e`. */
export function fileMetaFor(e: { mode: number; uid: number; gid: number; mtime: number }, who: WriterIdentity): FileMeta {
  const meta: FileMeta = { mode: e.mode & 0o7777, chmod: (e.mode & 0o7000) !== 0 || (e.mode & who.umask) !== 0, mtime: e.mtime };
  if (who.asRoot && (e.uid !== who.uid || e.gid !== who.gid)) meta.owner = { uid: e.uid, gid: e.gid };
  return meta;
}

/** Ownership, mode and times through the fd, in that order. */
export function applyFileMeta(fd: number, meta: FileMeta): void {
  if (meta.owner) fs.fchownSync(fd, meta.owner.uid, meta.owner.gid);
  if (meta.chmod) fs.fchmodSync(fd, meta.mode & 0o7777);
  fs.futimesSync(fd, meta.mtime, meta.mtime);
}

/**
 * Creates `path` (O_CREAT|O_EXCL|O_NOFOLLOW) and returns its fd. When something already has the
 * name, `onExists` may clear it (it must not be a directory) and the create is tried once more.
 * `path` keeps a layer's name bytes (raw-name.ts).
 */
export function createFile(path: string, mode: number, onExists: () => void): number {
  const p = fsPath(path);
  try {
    return fs.openSync(p, CREATE_FILE, mode & 0o777);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    onExists();
    return fs.openSync(p, CREATE_FILE, mode & 0o777);
  }
}

/**
 * Writes a file's content as `readData` gives it, each piece at its offset, and makes the file
 * `size` bytes long: the holes of a sparse file are never written (the file system leaves them
 * unallocated). Returns the bytes written.
 */
export async function writeData(fd: number, size: number, readData: (sink: (chunk: Buffer, offset: number) => void) => Promise<void>, sparse: boolean): Promise<number> {
  let n = 0;
  await readData((chunk, offset) => {
    writeAll(fd, chunk, sparse ? offset : undefined);
    n += chunk.length;
  });
  if (sparse) fs.ftruncateSync(fd, size);
  return n;
}

/** The bytes of a sparse file's data: its segments' sizes added up. */
export function storedBytes(size: number, sparse: { size: number }[] | undefined): number {
  if (!sparse) return size;
  let n = 0;
  for (const s of sparse) n += s.size;
  return n;
}
