// The distribution API of one registry host: manifests, blobs, tags, /v2/. Every request goes
// through the authenticator (401 → challenge → retry once) and the transport (retries, redirects).
import type { Readable } from 'node:stream';
import { BadReferenceError, IntegrityError, RegistryError, type ImgxError } from '../errors.ts';
import type { Descriptor } from '../image/descriptor.ts';
import { digestWithAlgorithmOf, isValidDigest, parseDigest, sha256, verifyBytes } from '../image/digest.ts';
import { ACCEPT_MANIFESTS } from '../image/media-types.ts';
import { MANIFEST_CAP, type BlobOpenOptions, type ManifestBlob } from '../image/source.ts';
import { Authenticator } from './auth.ts';
import { resumableBlob } from './blob-stream.ts';
import { getCredentials, type Credentials } from './credentials.ts';
import { registryBaseUrl } from './endpoint.ts';
import { errorFromResponse, type ErrorContext, type RequestKind } from './errors.ts';
import { resolveOptions, type RegistryOptions, type ResolvedOptions } from './options.ts';
import { RetryBudget } from './retry.ts';
import { discard, header, readCapped, Transport, type HttpResponse } from './transport.ts';

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

// Repository path components and tags as the distribution spec allows them; checked before they
// become URL paths.
const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

function checkRepo(repo: string): void {
  if (!REPO.test(repo) || repo.length > 255) throw new BadReferenceError(`invalid repository name ${JSON.stringify(repo.slice(0, 120))}`);
}

/** A tag or a digest; digests are validated strictly. True for a digest. */
function checkTagOrDigest(ref: string): boolean {
  if (ref.includes(':')) {
    parseDigest(ref);
    return true;
  }
  if (!TAG.test(ref)) throw new BadReferenceError(`invalid tag ${JSON.stringify(ref.slice(0, 140))}`);
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
  signal?: AbortSignal;
  budget?: RetryBudget;
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

  /** GET or HEAD of /v2/REPO/manifests/REF, with every manifest type accepted; a non-200 answer throws. */
  private async manifestRequest(method: 'GET' | 'HEAD', repo: string, reference: string, signal?: AbortSignal) {
    checkRepo(repo);
    const byDigest = checkTagOrDigest(reference);
    const what = this.display(repo, reference);
    const ctx = this.ctx('manifest', what, byDigest);
    const res = await this.call({
      method,
      url: this.url(`/v2/${repo}/manifests/${reference}`),
      scope: pullScope(repo),
      headers: { accept: ACCEPT_MANIFESTS.join(', ') },
      ctx,
      signal,
    });
    if (res.status !== 200) throw await this.fail(res, ctx);
    return { res, byDigest, what };
  }

  /** A manifest or index by tag or digest: capped, and verified when asked for by digest. */
  async getManifest(repo: string, reference: string, signal?: AbortSignal): Promise<ManifestBlob> {
    const { res, byDigest, what } = await this.manifestRequest('GET', repo, reference, signal);
    const bytes = await readManifestBody(res, what);

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
  }

  /** Digest, media type and size of a manifest, without its body. */
  async headManifest(repo: string, reference: string, signal?: AbortSignal): Promise<ManifestHead> {
    const { res } = await this.manifestRequest('HEAD', repo, reference, signal);
    await discard(res.body);
    const d = header(res.headers, 'docker-content-digest');
    const len = header(res.headers, 'content-length');
    return {
      digest: d && isValidDigest(d) ? d : undefined,
      mediaType: header(res.headers, 'content-type')?.split(';')[0]?.trim() || undefined,
      size: len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined,
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
      throw new IntegrityError('IMGX_SIZE_MISMATCH', `${what}: the registry sends ${len} bytes, the descriptor declares ${desc.size}`);
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
    });
  }

  /** A small blob (a config) read whole, verified, refused above `cap`. */
  async readBlob(repo: string, desc: Descriptor, cap = MANIFEST_CAP, signal?: AbortSignal): Promise<Buffer> {
    if (desc.size > cap) {
      throw new IntegrityError('IMGX_MANIFEST_TOO_LARGE', `${this.display(repo, desc.digest)}: ${desc.size} bytes, more than the ${cap}-byte limit`);
    }
    const stream = await this.openBlob(repo, desc, { signal });
    const parts: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
    return Buffer.concat(parts);
  }

  /** Every tag of a repository, following `Link: <…>; rel="next"` pages. */
  async listTags(repo: string, signal?: AbortSignal): Promise<string[]> {
    checkRepo(repo);
    const what = this.display(repo);
    const ctx = this.ctx('tags', what);
    const tags: string[] = [];
    let url = this.url(`/v2/${repo}/tags/list`);
    for (let page = 0; page < MAX_TAG_PAGES; page++) {
      const res = await this.call({ method: 'GET', url, scope: pullScope(repo), ctx, signal });
      if (res.status !== 200) throw await this.fail(res, ctx);
      const body = await readManifestBody(res, `${what} (tag list)`);
      let j: { tags?: unknown };
      try {
        j = JSON.parse(body.toString('utf8')) as typeof j;
      } catch {
        throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: the tag list is not JSON`, res.status);
      }
      if (Array.isArray(j.tags)) for (const t of j.tags) if (typeof t === 'string') tags.push(t);
      const next = nextLink(res.headers.link);
      if (!next) return tags;
      url = new URL(next, res.url);
    }
    throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: more than ${MAX_TAG_PAGES} pages of tags`);
  }

  /** GET /v2/: is this a registry, and do our credentials open it? */
  async ping(signal?: AbortSignal): Promise<void> {
    const ctx = this.ctx('ping', `docker://${this.host}`);
    const res = await this.call({ method: 'GET', url: this.url('/v2/'), scope: undefined, ctx, signal });
    if (res.status !== 200) throw await this.fail(res, ctx);
    await discard(res.body);
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}

/** A manifest-sized body: refused early on Content-Length, and while reading. */
async function readManifestBody(res: HttpResponse, what: string): Promise<Buffer> {
  const tooLarge = () => new IntegrityError('IMGX_MANIFEST_TOO_LARGE', `${what}: larger than the ${MANIFEST_CAP}-byte limit for manifests`);
  const len = header(res.headers, 'content-length');
  if (len !== undefined && /^\d+$/.test(len) && Number(len) > MANIFEST_CAP) {
    res.body.destroy();
    throw tooLarge();
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MANIFEST_CAP) {
      res.body.destroy();
      throw tooLarge();
    }
    parts.push(c);
  }
  return Buffer.concat(parts);
}

/** The body's own mediaType wins; Content-Type is the fallback (old Docker manifests omit the field). */
function manifestMediaType(bytes: Buffer, contentType: string | undefined, what: string): string {
  let j: unknown;
  try {
    j = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: the manifest is not JSON`);
  }
  const mt = j && typeof j === 'object' ? (j as { mediaType?: unknown }).mediaType : undefined;
  if (typeof mt === 'string' && mt !== '') return mt;
  const ct = contentType?.split(';')[0]?.trim();
  if (ct) return ct;
  throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: the manifest declares no media type`);
}
