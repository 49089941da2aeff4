// Registry answers and network failures → the typed errors of src/errors.ts, with one-line
// messages that name the registry and repository (`docker://host/repo:tag: manifest unknown (…)`).
// A registry's error codes and messages are untrusted text: they pass through safeText
// (src/util/terminal-text.ts) before they become part of a message.
import { ImgxError, NetworkError, NotFoundError, RegistryError } from '../errors.ts';
import { safeText } from '../util/terminal-text.ts';

/** What a request was for: decides what a bare 404 means. */
export type RequestKind = 'manifest' | 'blob' | 'tags' | 'ping' | 'token';

export interface ErrorContext {
  /** The object as shown to a person, e.g. `docker://127.0.0.1:5000/app:v1`. */
  what: string;
  kind: RequestKind;
  /** The manifest was asked for by digest (a 404 then means "no such manifest", not "no such tag"). */
  byDigest?: boolean;
  /** Why authentication failed, when we know more than the status says. */
  authHint?: string;
}

/** Longest registry error code and message quoted in a message, in characters. */
export const ERROR_CODE_MAX = 64;
export const ERROR_MESSAGE_MAX = 200;

/**
 * The first entry of a distribution error body (`{"errors":[{"code":…,"message":…}]}`), shape
 * checked: anything else (not JSON, another shape, fields of other types) gives nothing, and the
 * HTTP status speaks alone.
 */
export function firstError(body: string): { code?: string; message?: string } {
  let j: unknown;
  try {
    j = JSON.parse(body);
  } catch {
    return {};
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) return {};
  const errors = (j as { errors?: unknown }).errors;
  const e: unknown = Array.isArray(errors) ? errors[0] : undefined;
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return {};
  const { code, message } = e as { code?: unknown; message?: unknown };
  const out: { code?: string; message?: string } = {};
  if (typeof code === 'string') {
    const c = safeText(code, ERROR_CODE_MAX);
    if (c) out.code = c;
  }
  if (typeof message === 'string') {
    const m = safeText(message, ERROR_MESSAGE_MAX);
    if (m) out.message = m;
  }
  return out;
}

/** The error for a registry answer that is not a success. `body` is the (capped) response text. */
export function errorFromResponse(status: number, body: string, ctx: ErrorContext): ImgxError {
  const { code, message: detail } = firstError(body);
  const w = ctx.what;
  const auth = (what: string) => `${w}: ${what}${ctx.authHint ? ` (${ctx.authHint})` : detail ? ` (${detail})` : ''}`;
  switch (code) {
    case 'MANIFEST_UNKNOWN':
      return manifestUnknown(ctx);
    case 'NAME_UNKNOWN':
      return new NotFoundError('IMGX_NAME_UNKNOWN', `${w}: name unknown (the registry has no such repository)`);
    case 'BLOB_UNKNOWN':
      return new NotFoundError('IMGX_BLOB_UNKNOWN', `${w}: blob unknown (the registry does not have this blob)`);
    case 'UNAUTHORIZED':
      return new RegistryError('IMGX_UNAUTHORIZED', auth('unauthorized'), status, code);
    case 'DENIED':
      return new RegistryError('IMGX_DENIED', auth('denied'), status, code);
    case 'TOOMANYREQUESTS':
      return new RegistryError('IMGX_TOOMANYREQUESTS', `${w}: too many requests (the registry's rate limit; try again later)`, status, code);
  }
  if (code === undefined) {
    if (status === 404) {
      if (ctx.kind === 'manifest') return manifestUnknown(ctx);
      if (ctx.kind === 'blob') return new NotFoundError('IMGX_BLOB_UNKNOWN', `${w}: blob unknown (the registry does not have this blob)`);
      if (ctx.kind === 'tags') return new NotFoundError('IMGX_NAME_UNKNOWN', `${w}: name unknown (the registry has no such repository)`);
    }
    if (status === 401) return new RegistryError('IMGX_UNAUTHORIZED', auth('unauthorized'), status);
    if (status === 403) return new RegistryError('IMGX_DENIED', auth('denied'), status);
    if (status === 429) return new RegistryError('IMGX_TOOMANYREQUESTS', `${w}: too many requests (the registry's rate limit; try again later)`, status);
  }
  const what = ctx.kind === 'ping' && status === 404 ? 'no registry API at /v2/' : `HTTP ${status}`;
  const extra = [code, detail].filter(Boolean).join(': ');
  return new RegistryError('IMGX_REGISTRY_ERROR', `${w}: registry error: ${what}${extra ? ` (${extra})` : ''}`, status, code);
}

function manifestUnknown(ctx: ErrorContext): NotFoundError {
  const why = ctx.byDigest ? 'the registry has no manifest with this digest' : 'the registry has no such tag';
  return new NotFoundError('IMGX_MANIFEST_UNKNOWN', `${ctx.what}: manifest unknown (${why})`);
}

// --- network failures -------------------------------------------------------------------------

/** Error codes of `err`, its causes and the members of an AggregateError (happy eyeballs). */
function codesOf(err: unknown, depth = 0): string[] {
  if (!err || typeof err !== 'object' || depth > 4) return [];
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown };
  const out: string[] = [];
  if (typeof e.code === 'string') out.push(e.code);
  if (e.cause) out.push(...codesOf(e.cause, depth + 1));
  if (Array.isArray(e.errors)) for (const x of e.errors) out.push(...codesOf(x, depth + 1));
  return out;
}

/** The code of SlowBodyError (blob-stream.ts: a download below the throughput floor). */
export const SLOW_BODY = 'IMGX_SLOW_BODY';

/** A body that arrives more slowly than the floor allows: ends the attempt, which is retried. */
export class SlowBodyError extends Error {
  readonly code = SLOW_BODY;
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT', SLOW_BODY]);
const RETRYABLE_CODES = new Set([
  SLOW_BODY,
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

function isTlsCode(c: string): boolean {
  return (
    c.startsWith('ERR_TLS_') ||
    c.startsWith('ERR_SSL_') ||
    c.startsWith('CERT_') ||
    c.includes('SELF_SIGNED') ||
    c.startsWith('UNABLE_TO_') ||
    c === 'HOSTNAME_MISMATCH'
  );
}

export function isAbortError(err: unknown): boolean {
  const e = err as { name?: unknown } | undefined;
  return e?.name === 'AbortError' || codesOf(err).some((c) => c === 'ABORT_ERR' || c === 'UND_ERR_ABORTED' || c === 'UND_ERR_ABORT');
}

/** An error with a code (of Node, undici, or the system): a failure of I/O, not a bug. */
export function isNetworkFailure(err: unknown): boolean {
  return !(err instanceof ImgxError) && codesOf(err).length > 0;
}

/** A failure of the connection that another try may cure (not TLS, not DNS "no such host"). */
export function isRetryableNetworkError(err: unknown): boolean {
  if (err instanceof ImgxError || isAbortError(err)) return false;
  const codes = codesOf(err);
  if (codes.some(isTlsCode)) return false;
  return codes.some((c) => RETRYABLE_CODES.has(c));
}

/** A network failure as the typed error: IMGX_TLS, IMGX_TIMEOUT or IMGX_UNREACHABLE. */
export function networkError(err: unknown, host: string, what: string): ImgxError {
  if (err instanceof ImgxError) return err;
  const codes = codesOf(err);
  // Node's messages may quote the far end (a certificate's names): untrusted text too.
  const msg = safeText(err instanceof Error ? err.message : String(err), ERROR_MESSAGE_MAX);
  if (codes.some(isTlsCode) || /SSL routines|wrong version number|certificate/i.test(msg)) {
    return new NetworkError(
      'IMGX_TLS',
      `${what}: TLS error with ${host}: ${msg} (--insecure skips certificate checks; --plain-http if it serves plain HTTP)`,
      { cause: err },
    );
  }
  if (codes.some((c) => TIMEOUT_CODES.has(c))) {
    return new NetworkError('IMGX_TIMEOUT', `${what}: ${host} timed out (${msg})`, { cause: err });
  }
  const why = codes.includes('ECONNREFUSED')
    ? 'connection refused'
    : codes.includes('ENOTFOUND')
      ? 'no such host'
      : codes.includes('ECONNRESET')
        ? 'connection reset'
        : msg;
  return new NetworkError('IMGX_UNREACHABLE', `${what}: cannot reach ${host} (${why})`, { cause: err });
}

/** What an aborted operation throws: the signal's reason when it is an error. */
export function abortError(signal: AbortSignal | undefined, what: string): Error {
  const r = signal?.reason;
  if (r instanceof Error && r.name !== 'AbortError') return r;
  return new ImgxError('IMGX_INTERRUPTED', `${what}: interrupted`);
}
