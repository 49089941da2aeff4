// The distribution API of one registry host: manifests, blobs, tags, /v2/. Every request goes
// through the authenticator (401 → challenge → retry once) and the transport (retries, redirects).
// Manifests, configs, tag lists and /v2/ are operations (operation.ts): a total deadline over all
// their tries, and a retry when the body is cut. Blob downloads resume instead, with a floor on
// their throughput (blob-stream.ts).
import type { Readable } from 'node:stream';
import { BadReferenceError, IntegrityError, RegistryError, type ImgxError } from '../errors.ts';
import { quotedText, safeText } from '../util/terminal-text.ts';
import type { Descriptor } from '../image/descriptor.ts';
import { digestWithAlgorithmOf, isValidDigest, parseDigest, sha256, verifyBytes } from '../image/digest.ts';
import { ACCEPT_MANIFESTS, mediaTypeOf } from '../image/media-types.ts';
import { kindOf } from '../image/shape.ts';
import { MANIFEST_CAP, type BlobOpenOptions, type ManifestBlob } from '../image/source.ts';
import { Authenticator } from './auth.ts';
import { resumableBlob } from './blob-stream.ts';
import { getCredentials, type Credentials } from './credentials.ts';
import { registryBaseUrl } from './endpoint.ts';
import { abortError, errorFromResponse, type ErrorContext, type RequestKind } from './errors.ts';
import { runOperation, type Attempt } from './operation.ts';
import { resolveOptions, type RegistryOptions, type ResolvedOptions } from './options.ts';
import { RetryBudget } from './retry.ts';
import { discard, header, readCapped, readLimited, Transport, type HttpResponse } from './transport.ts';

export interface ClientInit {
  /** Use these instead of the Docker config (login checks them). */
  credentials?: Credentials;
  /** Fail rather than fall back to anonymous access when the credentials cannot be used. */
  requireCredentials?: boolean;
}

export interface ManifestHead {
  digest: string | undefined;
  mediaType: string | undefined;
  size: number | undefined;
}

const ERROR_BODY_CAP = 64 * 1024;
const MAX_TAG_PAGES = 1000;
/** All pages of a tag list together (each page is capped like a manifest). */
const MAX_TAG_LIST_BYTES = 64 * 1024 * 1024;

// Repository path components and tags as the distribution spec allows them; checked before they
// become URL paths.
const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

function checkRepo(repo: string): void {
  if (!REPO.test(repo) || repo.length > 255) throw new BadReferenceError(`invalid repository name ${quotedText(repo, 120)}`);
}

/** A tag or a digest; digests are validated strictly. True for a digest. */
function checkTagOrDigest(ref: string): boolean {
  if (ref.includes(':')) {
    parseDigest(ref);
    return true;
  }
  if (!TAG.test(ref)) throw new BadReferenceError(`invalid tag ${quotedText(ref, 140)}`);
  return false;
}

function pullScope(repo: string): string {
  return `repository:${repo}:pull`;
}

/** The `rel="next"` target of a Link header. */
export function nextLink(link: string | string[] | undefined): string | undefined {
  const all = Array.isArray(link) ? link.join(', ') : link;
  if (!all) return undefined;
  for (const m of all.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]*)*)/g)) {
    if (/;\s*rel\s*=\s*"?(?:[^";,]*\s)?next(?:\s[^";,]*)?"?/i.test(m[2] ?? '')) return m[1];
  }
  return undefined;
}

interface Call {
  method: 'GET' | 'HEAD';
  url: URL;
  scope: string | undefined;
  headers?: Record<string, string>;
  ctx: ErrorContext;
  signal?: AbortSignal | undefined;
  budget?: RetryBudget;
  /** The operation's deadline, when it has one. */
  deadline?: number;
}

export class RegistryClient {
  /** The registry as the user names it: `docker.io`, `127.0.0.1:5000`. */
  readonly host: string;
  readonly baseUrl: URL;
  readonly options: ResolvedOptions;
  readonly auth: Authenticator;
  private readonly transport: Transport;

  constructor(host: string, options: RegistryOptions = {}, init: ClientInit = {}) {
    this.host = host;
    this.options = resolveOptions(options);
    this.baseUrl = registryBaseUrl(host, this.options);
    this.transport = new Transport(this.options);
    const given = init.credentials;
    this.auth = new Authenticator({
      host,
      baseUrl: this.baseUrl,
      transport: this.transport,
      options: this.options,
      credentials: given
        ? () => Promise.resolve(given)
        : () => getCredentials(host, { dockerConfig: this.options.dockerConfig, debug: this.options.debug }),
      requireCredentials: init.requireCredentials,
    });
  }

  /** How an object of this registry is shown: `docker://host/repo:tag`, `docker://host/repo@sha256:…`. */
  display(repo: string, ref?: string): string {
    const base = `docker://${this.host}/${repo}`;
    if (!ref) return base;
    return ref.includes(':') ? `${base}@${ref}` : `${base}:${ref}`;
  }

  private url(path: string): URL {
    return new URL(path, this.baseUrl);
  }

  /** One request with authentication: a 401 is answered once; a final 401 throws with a hint. */
  private async call(c: Call): Promise<HttpResponse> {
    const send = (authorization: string | undefined) =>
      this.transport.send({
        method: c.method,
        url: c.url,
        headers: c.headers,
        // Credentials and tokens are for the registry's own origin only (a Link could point elsewhere).
        authorization: c.url.origin === this.baseUrl.origin ? authorization : undefined,
        signal: c.signal,
        budget: c.budget,
        ...(c.deadline !== undefined ? { deadline: c.deadline } : {}),
        what: c.ctx.what,
      });
    let used = await this.auth.authorization(c.scope, c.ctx.what);
    let res = await send(used);
    if (res.status !== 401) return res;
    const www = res.headers['www-authenticate'];
    let body = (await readCapped(res.body, ERROR_BODY_CAP)).toString('utf8');
    if (await this.auth.onChallenge(www, c.scope, used, c.ctx.what)) {
      used = await this.auth.authorization(c.scope, c.ctx.what);
      res = await send(used);
      if (res.status !== 401) return res;
      body = (await readCapped(res.body, ERROR_BODY_CAP)).toString('utf8');
    }
    throw errorFromResponse(401, body, { ...c.ctx, authHint: await this.auth.failureHint() });
  }

  /** The error for an answer that is not the success we wanted. */
  private async fail(res: HttpResponse, ctx: ErrorContext): Promise<ImgxError> {
    const body = (await readCapped(res.body, ERROR_BODY_CAP)).toString('utf8');
    const hint = res.status === 403 ? await this.auth.failureHint() : undefined;
    return errorFromResponse(res.status, body, hint ? { ...ctx, authHint: hint } : ctx);
  }

  private ctx(kind: RequestKind, what: string, byDigest?: boolean): ErrorContext {
    return { kind, what, byDigest };
  }

  /** One operation (operation.ts) of this registry: a total deadline, and retries of a cut body. */
  private operation<T>(what: string, signal: AbortSignal | undefined, op: (a: Attempt) => Promise<T>): Promise<T> {
    return runOperation({ options: this.options, what, host: this.host, signal }, op);
  }

  /** GET or HEAD of /v2/REPO/manifests/REF, with every manifest type accepted; a non-200 answer throws. */
  private async manifestRequest(method: 'GET' | 'HEAD', repo: string, reference: string, ctx: ErrorContext, a: Attempt): Promise<HttpResponse> {
    const res = await this.call({
      method,
      url: this.url(`/v2/${repo}/manifests/${reference}`),
      scope: pullScope(repo),
      headers: { accept: ACCEPT_MANIFESTS.join(', ') },
      ctx,
      signal: a.signal,
      budget: a.budget,
      deadline: a.deadline,
    });
    if (res.status !== 200) throw await this.fail(res, ctx);
    return res;
  }

  /** A manifest or index by tag or digest: capped, and verified when asked for by digest. */
  async getManifest(repo: string, reference: string, signal?: AbortSignal): Promise<ManifestBlob> {
    checkRepo(repo);
    const byDigest = checkTagOrDigest(reference);
    const what = this.display(repo, reference);
    const ctx = this.ctx('manifest', what, byDigest);
    return this.operation(what, signal, async (a) => {
      const res = await this.manifestRequest('GET', repo, reference, ctx, a);
      const bytes = await readLimited(res, MANIFEST_CAP, () => manifestTooLarge(what));

      let digest: string;
      if (byDigest) {
        verifyBytes(bytes, reference, what);
        digest = reference;
      } else {
        digest = sha256(bytes);
        // A registry that names a different digest for these bytes is serving something inconsistent.
        const claimed = header(res.headers, 'docker-content-digest');
        if (claimed && isValidDigest(claimed) && digestWithAlgorithmOf(claimed, bytes) !== claimed) {
          throw new IntegrityError('IMGX_DIGEST_MISMATCH', `${what}: manifest bytes do not match the registry's Docker-Content-Digest ${claimed}`);
        }
      }
      return { bytes, mediaType: manifestMediaType(bytes, header(res.headers, 'content-type'), what), digest };
    });
  }

  /** Digest, media type and size of a manifest, without its body. */
  async headManifest(repo: string, reference: string, signal?: AbortSignal): Promise<ManifestHead> {
    checkRepo(repo);
    const byDigest = checkTagOrDigest(reference);
    const what = this.display(repo, reference);
    const ctx = this.ctx('manifest', what, byDigest);
    const res = await this.operation(what, signal, (a) => this.manifestRequest('HEAD', repo, reference, ctx, a));
    await discard(res.body);
    const d = header(res.headers, 'docker-content-digest');
    const len = header(res.headers, 'content-length');
    return {
      digest: d && isValidDigest(d) ? d : undefined,
      mediaType: mediaTypeOf(header(res.headers, 'content-type')),
      size: len !== undefined && /^\d{1,15}$/.test(len) ? Number(len) : undefined,
    };
  }

  /** A blob's bytes, verified while they stream; a cut connection is resumed with Range. */
  async openBlob(repo: string, desc: Descriptor, options: BlobOpenOptions = {}): Promise<Readable> {
    checkRepo(repo);
    parseDigest(desc.digest);
    const what = this.display(repo, desc.digest);
    const ctx = this.ctx('blob', what, true);
    const budget = new RetryBudget(this.options);
    const url = this.url(`/v2/${repo}/blobs/${desc.digest}`);
    const fetchFrom = async (offset: number): Promise<HttpResponse> => {
      const res = await this.call({
        method: 'GET',
        url,
        scope: pullScope(repo),
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        ctx,
        signal: options.signal,
        budget,
      });
      if (res.status === 200 || (offset > 0 && res.status === 206)) return res;
      throw await this.fail(res, ctx);
    };
    const first = await fetchFrom(0);
    const len = header(first.headers, 'content-length');
    if (len !== undefined && /^\d+$/.test(len) && Number(len) !== desc.size) {
      first.body.destroy();
      // A header of thousands of digits is shown cut like any other text from outside.
      throw new IntegrityError('IMGX_SIZE_MISMATCH', `${what}: the registry sends ${safeText(len, 40)} bytes, the descriptor declares ${desc.size}`);
    }
    return resumableBlob({
      desc,
      first,
      refetch: fetchFrom,
      budget,
      what,
      onProgress: options.onProgress,
      signal: options.signal,
      debug: this.options.debug,
      floor: this.options.blobFloor,
    });
  }

  /**
   * A small blob (a config) read whole, verified, refused above `cap`, under the total deadline
   * of manifests (a cut body is resumed as any blob is).
   */
  async readBlob(repo: string, desc: Descriptor, cap = MANIFEST_CAP, signal?: AbortSignal): Promise<Buffer> {
    const what = this.display(repo, desc.digest);
    if (desc.size > cap) {
      throw new IntegrityError('IMGX_MANIFEST_TOO_LARGE', `${what}: ${desc.size} bytes, more than the ${cap}-byte limit`);
    }
    return this.operation(what, signal, async (a) => {
      try {
        const stream = await this.openBlob(repo, desc, { signal: a.signal });
        const parts: Buffer[] = [];
        for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
        return Buffer.concat(parts);
      } catch (e) {
        // The stream's own error for an abort may be the bare AbortError of the pipe.
        if (a.signal.aborted) throw abortError(a.signal, what);
        throw e;
      }
    });
  }

  /** Every tag of a repository, following `Link: <…>; rel="next"` pages (each page one operation). */
  async listTags(repo: string, signal?: AbortSignal): Promise<string[]> {
    checkRepo(repo);
    const what = this.display(repo);
    const ctx = this.ctx('tags', what);
    const tags: string[] = [];
    let total = 0;
    let url = this.url(`/v2/${repo}/tags/list`);
    for (let page = 0; page < MAX_TAG_PAGES; page++) {
      const from = url;
      const { res, body } = await this.operation(`${what} (tag list)`, signal, async (a) => {
        const res = await this.call({ method: 'GET', url: from, scope: pullScope(repo), ctx, signal: a.signal, budget: a.budget, deadline: a.deadline });
        if (res.status !== 200) throw await this.fail(res, ctx);
        const tooLarge = () => new RegistryError('IMGX_REGISTRY_ERROR', `${what}: a page of the tag list is larger than ${MANIFEST_CAP} bytes`, res.status);
        return { res, body: await readLimited(res, MANIFEST_CAP, tooLarge) };
      });
      total += body.length;
      if (total > MAX_TAG_LIST_BYTES) throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: the tag list is larger than ${MAX_TAG_LIST_BYTES} bytes`);
      tags.push(...parseTagList(body, what));
      const next = nextLink(res.headers.link);
      if (!next) return tags;
      try {
        url = new URL(next, res.url);
      } catch {
        throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: the tag list's next page has a malformed address`);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: the tag list's next page is not an http(s) address`);
      }
    }
    throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: more than ${MAX_TAG_PAGES} pages of tags`);
  }

  /** GET /v2/: is this a registry, and do our credentials open it? */
  async ping(signal?: AbortSignal): Promise<void> {
    const ctx = this.ctx('ping', `docker://${this.host}`);
    await this.operation(ctx.what, signal, async (a) => {
      const res = await this.call({ method: 'GET', url: this.url('/v2/'), scope: undefined, ctx, signal: a.signal, budget: a.budget, deadline: a.deadline });
      if (res.status !== 200) throw await this.fail(res, ctx);
      await discard(res.body);
    });
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}

function manifestTooLarge(what: string): IntegrityError {
  return new IntegrityError('IMGX_MANIFEST_TOO_LARGE', `${what}: larger than the ${MANIFEST_CAP}-byte limit for manifests`);
}

/** Longest tag the distribution spec allows. */
const TAG_MAX = 128;

/** `{"name": …, "tags": [string, …] | null}`: the tags, each a valid tag; anything else is refused. */
export function parseTagList(body: Buffer, what: string): string[] {
  const bad = (why: string) => new RegistryError('IMGX_REGISTRY_ERROR', `${what}: the tag list ${why}`, 200);
  let j: unknown;
  try {
    j = JSON.parse(body.toString('utf8'));
  } catch {
    throw bad('is not JSON');
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw bad(`is ${kindOf(j)}, not an object`);
  const list = (j as { tags?: unknown }).tags;
  // A repository without tags: distribution answers `"tags": null`.
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw bad(`has tags that are ${kindOf(list)}, not a list`);
  const out: string[] = [];
  for (let i = 0; i < list.length; i++) {
    const t: unknown = list[i];
    if (typeof t !== 'string') throw bad(`has tags[${i}] that is ${kindOf(t)}, not a string`);
    if (t.length > TAG_MAX || !TAG.test(t)) throw bad(`has an invalid tag ${quotedText(t)}`);
    out.push(t);
  }
  return out;
}

/**
 * The body's own mediaType wins; Content-Type is the fallback (old Docker manifests omit the
 * field). Both are checked to be media types (type/subtype) before they are used or shown.
 */
function manifestMediaType(bytes: Buffer, contentType: string | undefined, what: string): string {
  let j: unknown;
  try {
    j = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: the manifest is not JSON`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) {
    throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: the manifest is ${kindOf(j)}, not a JSON object`);
  }
  const mt: unknown = (j as { mediaType?: unknown }).mediaType;
  if (mt !== undefined && mt !== null && typeof mt !== 'string') {
    throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: mediaType is ${kindOf(mt)}, not a string`);
  }
  if (typeof mt === 'string' && mt !== '') {
    if (mediaTypeOf(mt) !== mt) throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: mediaType ${quotedText(mt)} is not a media type`);
    return mt;
  }
  const ct = mediaTypeOf(contentType);
  if (ct) return ct;
  throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: the manifest declares no media type`);
}
