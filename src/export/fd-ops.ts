// File-descriptor operations for the directory writer, on raw fds through node:fs callbacks:
// measurably cheaper per call than FileHandle (no handle object, no close tracking), which counts
// when an image has hundreds of thousands of small files. A whole small file (create, write,
// ownership, mode, times, close) is one call, so the writer can run it as one background job.
import fs, { constants } from 'node:fs';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
/** Create a new file, never through a symlink, never over an existing entry. */
export const CREATE_FILE = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

type Cb<T> = (err: NodeJS.ErrnoException | null, value: T) => void;

function call<T>(fn: (cb: Cb<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
}

export const openFd = (path: string, flags: number, mode?: number) => call<number>((cb) => fs.open(path, flags, mode, cb));
export const closeFd = (fd: number) => call<void>((cb) => fs.close(fd, (e) => cb(e, undefined)));
export const fchown = (fd: number, uid: number, gid: number) => call<void>((cb) => fs.fchown(fd, uid, gid, (e) => cb(e, undefined)));
export const fchmod = (fd: number, mode: number) => call<void>((cb) => fs.fchmod(fd, mode, (e) => cb(e, undefined)));
export const futimes = (fd: number, t: number) => call<void>((cb) => fs.futimes(fd, t, t, (e) => cb(e, undefined)));

/** Writes all of `buf` (a short write is continued). */
export async function writeAll(fd: number, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    off += await call<number>((cb) => fs.write(fd, buf, off, buf.length - off, null, cb));
  }
}

/** Writes the chunks in order, in one writev when it takes them whole. */
export async function writevAll(fd: number, chunks: Buffer[], size: number): Promise<void> {
  if (chunks.length === 0) return;
  if (chunks.length === 1) return writeAll(fd, chunks[0]!);
  const n = await call<number>((cb) => fs.writev(fd, chunks, null, cb));
  if (n < size) await writeAll(fd, Buffer.concat(chunks).subarray(n));
}

export interface FileMeta {
  mode: number;
  /** Set when ownership must be applied (chown before chmod: chown clears setuid/setgid). */
  owner?: { uid: number; gid: number };
  /** Set when the mode given to open() (minus the umask) is not already the final mode. */
  chmod: boolean;
  mtime: number;
}

/** Ownership, mode and times through the fd, in that order. */
export async function applyFileMeta(fd: number, meta: FileMeta): Promise<void> {
  if (meta.owner) await fchown(fd, meta.owner.uid, meta.owner.gid);
  if (meta.chmod) await fchmod(fd, meta.mode & 0o7777);
  await futimes(fd, meta.mtime);
}

/**
 * Creates `path` (O_CREAT|O_EXCL|O_NOFOLLOW) with its content and metadata and closes it. When
 * something already has the name, `onExists` may clear it (it must not be a directory) and the
 * create is tried once more.
 */
export async function writeNewFile(path: string, chunks: Buffer[], size: number, meta: FileMeta, onExists: () => Promise<void>): Promise<void> {
  let fd: number;
  try {
    fd = await openFd(path, CREATE_FILE, meta.mode & 0o777);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    await onExists();
    fd = await openFd(path, CREATE_FILE, meta.mode & 0o777);
  }
  try {
    await writevAll(fd, chunks, size);
    await applyFileMeta(fd, meta);
  } finally {
    await closeFd(fd);
  }
}
