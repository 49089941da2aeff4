// One error base class with a stable code per condition. The CLI maps codes to exit statuses
// and one-line messages in src/cli/exit-codes.ts; everything else only throws.

export type ErrorCode =
  | 'IMGX_USAGE'
  | 'IMGX_BAD_REFERENCE'
  | 'IMGX_BAD_DIGEST'
  | 'IMGX_MANIFEST_UNKNOWN'
  | 'IMGX_NAME_UNKNOWN'
  | 'IMGX_BLOB_UNKNOWN'
  | 'IMGX_NOT_FOUND'
  | 'IMGX_UNAUTHORIZED'
  | 'IMGX_DENIED'
  | 'IMGX_UNREACHABLE'
  | 'IMGX_TIMEOUT'
  | 'IMGX_TLS'
  | 'IMGX_TOOMANYREQUESTS'
  | 'IMGX_REGISTRY_ERROR'
  | 'IMGX_DIGEST_MISMATCH'
  | 'IMGX_SIZE_MISMATCH'
  | 'IMGX_MANIFEST_TOO_LARGE'
  | 'IMGX_BAD_MANIFEST'
  | 'IMGX_NO_MATCHING_PLATFORM'
  | 'IMGX_UNSUPPORTED'
  | 'IMGX_CREDENTIALS'
  | 'IMGX_IO'
  | 'IMGX_UNSAFE_PATH'
  | 'IMGX_BAD_ARCHIVE'
  | 'IMGX_BAD_LAYER'
  | 'IMGX_BAD_WHITEOUT'
  | 'IMGX_DIFFID_MISMATCH'
  | 'IMGX_STRICT'
  | 'IMGX_DEST_EXISTS'
  | 'IMGX_RUNTIME_UNAVAILABLE'
  | 'IMGX_USER_UNKNOWN'
  | 'IMGX_RUN_SETUP'
  | 'IMGX_EXEC_DENIED'
  | 'IMGX_EXEC_NOT_FOUND'
  | 'IMGX_TOOL_MISSING'
  | 'IMGX_TOOL_FAILED'
  | 'IMGX_PROVISION_FAILED'
  | 'IMGX_BOOT_FAILED'
  | 'IMGX_INTERRUPTED';

export class ImgxError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The command line or an option is wrong. */
export class UsageError extends ImgxError {
  constructor(message: string) {
    super('IMGX_USAGE', message);
  }
}

/** An image reference or transport string that cannot be parsed. */
export class BadReferenceError extends ImgxError {
  constructor(message: string) {
    super('IMGX_BAD_REFERENCE', message);
  }
}

/** Bytes that do not match what their descriptor promised. */
export class IntegrityError extends ImgxError {
  constructor(code: 'IMGX_DIGEST_MISMATCH' | 'IMGX_SIZE_MISMATCH' | 'IMGX_BAD_DIGEST' | 'IMGX_MANIFEST_TOO_LARGE' | 'IMGX_BAD_MANIFEST', message: string) {
    super(code, message);
  }
}

/** Something the source does not have. */
export class NotFoundError extends ImgxError {
  constructor(code: 'IMGX_MANIFEST_UNKNOWN' | 'IMGX_NAME_UNKNOWN' | 'IMGX_BLOB_UNKNOWN' | 'IMGX_NOT_FOUND', message: string) {
    super(code, message);
  }
}

/** An error answered by a registry, with its HTTP status and registry error code when it gave one. */
export class RegistryError extends ImgxError {
  readonly status: number | undefined;
  readonly registryCode: string | undefined;
  constructor(code: ErrorCode, message: string, status?: number, registryCode?: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
    this.registryCode = registryCode;
  }
}

/** The network failed before a registry answered: refused, reset, DNS, TLS, timeout. */
export class NetworkError extends ImgxError {
  constructor(code: 'IMGX_UNREACHABLE' | 'IMGX_TIMEOUT' | 'IMGX_TLS', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export class PlatformError extends ImgxError {
  readonly available: string[];
  constructor(message: string, available: string[]) {
    super('IMGX_NO_MATCHING_PLATFORM', message);
    this.available = available;
  }
}

/** A tar archive (an image archive or a layer) that is truncated or not a valid tar. */
export class BadArchiveError extends ImgxError {
  constructor(message: string) {
    super('IMGX_BAD_ARCHIVE', message);
  }
}

export class UnsupportedError extends ImgxError {
  constructor(message: string) {
    super('IMGX_UNSUPPORTED', message);
  }
}

/** `imgx run` could not start the container's process (runtime missing, setup failed, no such command). */
export class RunError extends ImgxError {
  constructor(code: 'IMGX_RUNTIME_UNAVAILABLE' | 'IMGX_USER_UNKNOWN' | 'IMGX_RUN_SETUP' | 'IMGX_EXEC_DENIED' | 'IMGX_EXEC_NOT_FOUND', message: string) {
    super(code, message);
  }
}

export function isImgxError(e: unknown): e is ImgxError {
  return e instanceof ImgxError;
}

/** `to-disk` and `boot`: a host tool missing or failing, provisioning, a boot that did not get there. */
export class DiskError extends ImgxError {
  constructor(code: 'IMGX_TOOL_MISSING' | 'IMGX_TOOL_FAILED' | 'IMGX_PROVISION_FAILED' | 'IMGX_BOOT_FAILED', message: string) {
    super(code, message);
  }
}
