// The one table from error codes to exit statuses. Documented in README.md ("Exit statuses");
// keep the two in step. Statuses are grouped by what a script would do about them.
import type { ErrorCode } from '../errors.ts';

export const EXIT_OK = 0;
/** An unexpected failure: a bug, reported with a stack trace under --debug. */
export const EXIT_INTERNAL = 1;

export const EXIT_STATUS: Record<ErrorCode, number> = {
  IMGX_USAGE: 2,
  IMGX_BAD_REFERENCE: 3,
  IMGX_MANIFEST_UNKNOWN: 4,
  IMGX_NAME_UNKNOWN: 4,
  IMGX_BLOB_UNKNOWN: 4,
  IMGX_NOT_FOUND: 4,
  IMGX_UNAUTHORIZED: 5,
  IMGX_DENIED: 5,
  IMGX_CREDENTIALS: 5,
  IMGX_UNREACHABLE: 6,
  IMGX_TIMEOUT: 6,
  IMGX_TLS: 6,
  IMGX_TOOMANYREQUESTS: 7,
  IMGX_REGISTRY_ERROR: 7,
  IMGX_DIGEST_MISMATCH: 8,
  IMGX_SIZE_MISMATCH: 8,
  IMGX_BAD_DIGEST: 8,
  IMGX_MANIFEST_TOO_LARGE: 8,
  IMGX_BAD_MANIFEST: 8,
  IMGX_BAD_ARCHIVE: 8,
  IMGX_BAD_LAYER: 8,
  IMGX_BAD_WHITEOUT: 8,
  IMGX_DIFFID_MISMATCH: 8,
  IMGX_NO_MATCHING_PLATFORM: 9,
  IMGX_UNSUPPORTED: 10,
  // Local I/O: full disk (ENOSPC), quota (EDQUOT), read-only filesystem (EROFS), I/O error (EIO),
  // permissions on DEST or the cache; partial outputs are removed (src/io-errors.ts). main.ts maps
  // such a system error that escaped a command here too, never to 1.
  IMGX_IO: 11,
  IMGX_UNSAFE_PATH: 12,
  IMGX_STRICT: 13,
  IMGX_DEST_EXISTS: 14,
  // `imgx run`: before the container's process starts. 126 and 127 are what shells and Docker use.
  IMGX_RUNTIME_UNAVAILABLE: 15,
  IMGX_USER_UNKNOWN: 16,
  IMGX_RUN_SETUP: 17,
  // `imgx to-disk` and `imgx boot`.
  IMGX_TOOL_MISSING: 18,
  IMGX_TOOL_FAILED: 19,
  IMGX_PROVISION_FAILED: 20,
  IMGX_BOOT_FAILED: 21,
  IMGX_EXEC_DENIED: 126,
  IMGX_EXEC_NOT_FOUND: 127,
  IMGX_INTERRUPTED: 130,
};
