// Local I/O failures (a full disk, a quota, a read-only or failing filesystem, permissions) as one
// coded error: IMGX_IO, exit 11, with one line that says what could not be written and why
// ("cannot write /srv/rootfs: no space left on device (ENOSPC)"). Each write path maps its own
// failures here, after removing what it had written; main.ts maps any that escaped as a last resort.
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import { getSystemErrorMessage } from 'node:util';
import { ImgxError, isImgxError } from './errors.ts';

/** What Node's fs (and net, child_process) calls throw: a code, the errno, the system call, often a path. */
export interface SystemError extends Error {
  code: string;
  errno?: number;
  syscall: string;
  path?: string;
  dest?: string;
}

export function isSystemError(e: unknown): e is SystemError {
  const s = e as Partial<SystemError> | null;
  return typeof s === 'object' && s !== null && typeof s.code === 'string' && typeof s.syscall === 'string';
}

/**
 * Codes that mean the local filesystem refused or failed. ENOENT is not one: a file that vanished
 * under imgx is a bug or a bad argument, each with its own status.
 */
export const LOCAL_IO_CODES: ReadonlySet<string> = new Set([
  'ENOSPC',
  'EDQUOT',
  'EROFS',
  'EIO',
  'EACCES',
  'EPERM',
  'ENOTDIR',
  'EISDIR',
  'EMFILE',
  'ENFILE',
  'ENAMETOOLONG',
  'EFBIG',
  'EEXIST',
  'ENOTEMPTY',
  'ELOOP',
  'EXDEV',
  'EMLINK',
  'EBUSY',
  'ETXTBSY',
  'ESTALE',
  'ENXIO',
  'ENODEV',
]);

/** Wording for the common ones (libuv has none for EDQUOT, and says "i/o error"). */
const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EIO: 'input/output error',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EFBIG: 'file too large',
};

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/**
 * The error's errno name. libuv knows no EDQUOT: Node reports it as code 'UNKNOWN' with errno
 * -122 (Linux), which is named here from the errno.
 */
export function errnoName(e: SystemError): string {
  if (e.code !== 'UNKNOWN' || typeof e.errno !== 'number') return e.code;
  return ERRNO_NAMES.get(Math.abs(e.errno)) ?? e.code;
}

/** "no space left on device (ENOSPC)" */
export function ioReason(e: SystemError): string {
  const code = errnoName(e);
  let text = REASONS[code];
  if (!text && typeof e.errno === 'number') {
    try {
      text = getSystemErrorMessage(e.errno);
    } catch {
      // not an errno libuv can describe
    }
  }
  if (!text || text.startsWith('Unknown system error')) text = /^[A-Z0-9_]+: ([^,]*)/.exec(e.message)?.[1] ?? e.message;
  return `${text} (${code})`;
}

/**
 * Node's recursive mkdir (`mkdir -p`) reports ENOENT when a directory it had to make could not be
 * made for another reason (a read-only filesystem, no permission, no space): the real error comes
 * from making the first missing directory alone, here, once the recursive call failed. Should that
 * succeed after all (a race), it is removed again and the ENOENT stands.
 */
export function unmaskMkdirError(e: unknown): unknown {
  if (!isSystemError(e) || e.code !== 'ENOENT' || e.syscall !== 'mkdir' || e.path === undefined) return e;
  let missing = e.path;
  for (let up = dirname(missing); up !== missing; missing = up, up = dirname(up)) {
    if (existsSync(up)) break;
  }
  try {
    mkdirSync(missing);
  } catch (real) {
    return isSystemError(real) && real.code !== 'ENOENT' && real.code !== 'EEXIST' ? real : e;
  }
  try {
    rmdirSync(missing);
  } catch {
    // someone else's now
  }
  return e;
}

/** A system error whose code says the local filesystem refused or failed (EDQUOT included). */
export function isLocalIoError(e: unknown): e is SystemError {
  return isSystemError(e) && LOCAL_IO_CODES.has(errnoName(e));
}

/**
 * `e` as IMGX_IO with the message `${doing}: ${reason}` (`doing`: e.g. "cannot write /srv/rootfs"),
 * when it is a system error; anything else (an ImgxError, a bug) is returned as it is. Meant for
 * the catch block of a write path, which knows what it was writing: `throw ioError(e, …)`.
 */
export function ioError(e: unknown, doing: string): unknown {
  e = unmaskMkdirError(e);
  if (isImgxError(e) || !isSystemError(e)) return e;
  return new ImgxError('IMGX_IO', `${doing}: ${ioReason(e)}`, { cause: e });
}

/** Syscalls that only read: their failure in the cache is "cannot read". */
const READ_CALLS = new Set(['read', 'readdir', 'scandir', 'readlink', 'stat', 'lstat', 'fstat', 'statfs', 'access', 'realpath']);

/**
 * A system error met where the only local writes go to the cache at `root` (blobs, the layer
 * spools, index.json, run directories): "cannot write to the cache ROOT: …" for a write, or for a
 * call on a path in the cache. Anything else (a read with no path, which may have been of the
 * image's source; a path elsewhere; a code that is not a filesystem's, such as a socket's EPIPE)
 * is returned as it is.
 */
export function cacheIoError(e: unknown, root: string): unknown {
  e = unmaskMkdirError(e);
  if (isImgxError(e) || !isLocalIoError(e)) return e;
  const dir = root.replace(/\/+$/, '');
  if (e.path === undefined) return READ_CALLS.has(e.syscall) ? e : ioError(e, `cannot write to the cache ${dir}`);
  if (e.path !== dir && !e.path.startsWith(`${dir}/`)) return e;
  return ioError(e, READ_CALLS.has(e.syscall) ? `cannot read the cache ${dir}` : `cannot write to the cache ${dir}`);
}

/**
 * The last resort of the CLI (main.ts): a local I/O error that no write path mapped, as IMGX_IO
 * with the system call and the path it names. Undefined for anything else.
 */
export function escapedIoError(e: unknown): ImgxError | undefined {
  e = unmaskMkdirError(e);
  if (isImgxError(e) || !isLocalIoError(e)) return undefined;
  const where = e.path !== undefined ? ` ${e.path}${e.dest !== undefined ? ` -> ${e.dest}` : ''}` : '';
  return new ImgxError('IMGX_IO', `${e.syscall}${where}: ${ioReason(e)}`, { cause: e });
}
