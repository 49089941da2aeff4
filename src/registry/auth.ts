// Registry authentication: answer a 401's challenge with a Bearer token (token service, cached per
// scope until it expires) or Basic credentials, and remember the scheme so later requests carry
// it from the start.
//
// Safety rule (DESIGN.md): the registry's credentials go to a token realm only when the realm is on
// the registry's own host, or on a subdomain of the registry name the credentials are stored under
// (docker.io's realm is auth.docker.io while its API is on registry-1.docker.io), and never
// downgraded from https to http. A realm elsewhere gets an anonymous token request; if the registry
// then refuses, the error says why the credentials were held back.
import { RegistryError } from '../errors.ts';
import { isObject, kindOf } from '../image/shape.ts';
import { safeText } from '../util/terminal-text.ts';
import { parseChallenges, pickChallenge, type Challenge } from './challenge.ts';
import type { Credentials } from './credentials.ts';
import { errorFromResponse } from './errors.ts';
import { runOperation, type Attempt } from './operation.ts';
import type { ResolvedOptions } from './options.ts';
import { readCapped, readLimited, type HttpResponse, type Transport } from './transport.ts';

export interface AuthenticatorInit {
  /** The registry as the user names it (`docker.io`, `127.0.0.1:5000`): messages, credentials. */
  host: string;
  /** Where its API lives. */
  baseUrl: URL;
  transport: Transport;
  options: ResolvedOptions;
  /** Looked up once, on the first challenge. */
  credentials: () => Promise<Credentials | undefined>;
  /** For login: fail instead of falling back to an anonymous token when the credentials cannot be used. */
  requireCredentials?: boolean;
}

interface Token {
  token: string;
  expiresAt: number;
}

interface CacheEntry {
  promise: Promise<Token>;
  /** Infinity while the request is in flight, so concurrent callers share it. */
  expiresAt: number;
}

/** Tokens without expires_in live this long (distribution token spec). */
const DEFAULT_EXPIRES_S = 60;
/** Tokens are kept at most this long, whatever expires_in says. */
const MAX_EXPIRES_S = 24 * 3600;
/** A token answer larger than this is refused (while it streams). */
const TOKEN_BODY_CAP = 1024 * 1024;
/** Error answers of the token service are read this far (for their text). */
const ERROR_BODY_CAP = 64 * 1024;
/** A token goes into an Authorization header: visible ASCII only (RFC 6750's b64token is stricter). */
const TOKEN_TEXT = /^[\x21-\x7e]+$/;

/**
 * The token of a token service's answer (`{"token": …}` or OAuth2's `{"access_token": …}`) and
 * its lifetime, shape checked: a token of the wrong type, or with characters a header cannot
 * carry, is refused; an expires_in of the wrong type falls back to the default (it only decides
 * when to ask again).
 */
export function parseTokenResponse(body: Buffer, where: string, what: string): { token: string; expiresIn: number } {
  const bad = (why: string) => new RegistryError('IMGX_REGISTRY_ERROR', `${what}: the token service at ${where} ${why}`);
  let j: unknown;
  const text = body.toString('utf8');
  try {
    j = JSON.parse(text);
  } catch {
    throw bad(`answered something that is not JSON: ${safeText(text, 80)}`);
  }
  if (!isObject(j)) throw bad(`answered ${kindOf(j)}, not a JSON object`);
  let token: string | undefined;
  for (const key of ['token', 'access_token'] as const) {
    const v = j[key];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string') throw bad(`answered a ${key} that is ${kindOf(v)}, not a string`);
    if (!TOKEN_TEXT.test(v)) throw bad(`answered a ${key} with characters a token cannot have`);
    token ??= v;
  }
  if (!token) throw bad('returned no token');
  const e = j.expires_in;
  const expiresIn = typeof e === 'number' && Number.isFinite(e) && e > 0 ? Math.min(e, MAX_EXPIRES_S) : DEFAULT_EXPIRES_S;
  return { token, expiresIn };
}

function basic(c: Credentials): string | undefined {
  if (c.password === undefined) return undefined;
  return 'Basic ' + Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64');
}

export class Authenticator {
  readonly host: string;
  readonly baseUrl: URL;
  private readonly transport: Transport;
  private readonly options: ResolvedOptions;
  private readonly lookup: () => Promise<Credentials | undefined>;
  private readonly requireCredentials: boolean;
  private challenge: Challenge | undefined;
  private creds: Promise<Credentials | undefined> | undefined;
  private readonly tokens = new Map<string, CacheEntry>();
  /** Why the credentials were held back from a token realm (for the message of a later 401). */
  private withheld: string | undefined;
  private sentCredentials = false;
  /** Token requests made (for tests and --debug). */
  tokenRequests = 0;

  constructor(init: AuthenticatorInit) {
    this.host = init.host;
    this.baseUrl = init.baseUrl;
    this.transport = init.transport;
    this.options = init.options;
    this.lookup = init.credentials;
    this.requireCredentials = init.requireCredentials ?? false;
  }

  private credentials(): Promise<Credentials | undefined> {
    this.creds ??= this.lookup();
    return this.creds;
  }

  /** The Authorization for a request under `scope`, once the registry has told us its scheme. */
  async authorization(scope: string | undefined, what: string): Promise<string | undefined> {
    const ch = this.challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const c = await this.credentials();
      const a = c ? basic(c) : undefined;
      if (a) this.sentCredentials = true;
      return a;
    }
    return 'Bearer ' + (await this.token(ch, scope, [], what)).token;
  }

  /**
   * Learns from a 401's WWW-Authenticate. True when a retry with the new Authorization makes sense
   * (it differs from `used`, the Authorization the refused request carried).
   */
  async onChallenge(wwwAuthenticate: string | string[] | undefined, scope: string | undefined, used: string | undefined, what: string): Promise<boolean> {
    const ch = pickChallenge(parseChallenges(wwwAuthenticate));
    if (!ch) return false;
    this.challenge = ch;
    if (ch.scheme === 'bearer') {
      const key = scope ?? '';
      const entry = this.tokens.get(key);
      // Drop the cached token only if it is the one just refused; a newer one from a concurrent request is kept.
      if (entry && used !== undefined) {
        const t = await entry.promise.catch(() => undefined);
        if (!t || `Bearer ${t.token}` === used) this.tokens.delete(key);
      }
      const extra = ch.params.scope ? ch.params.scope.split(' ').filter((s) => s && s !== scope) : [];
      const next = 'Bearer ' + (await this.token(ch, scope, extra, what)).token;
      return next !== used;
    }
    const next = await this.authorization(scope, what);
    return next !== undefined && next !== used;
  }

  /** A one-clause explanation for a final 401/403. */
  async failureHint(): Promise<string> {
    if (this.withheld) return this.withheld;
    const c = await this.credentials();
    if (c && this.sentCredentials) return `the registry did not accept the credentials for ${this.host}`;
    return `no credentials for ${this.host}: run imgx login ${this.host}, or check the repository name`;
  }

  private token(ch: Challenge, scope: string | undefined, extra: string[], what: string): Promise<Token> {
    const key = scope ?? '';
    const hit = this.tokens.get(key);
    if (hit && Date.now() < hit.expiresAt) return hit.promise;
    const scopes = [...(scope ? [scope] : []), ...extra];
    const entry: CacheEntry = { promise: this.fetchToken(ch, scopes, what), expiresAt: Infinity };
    this.tokens.set(key, entry);
    entry.promise.then(
      (t) => (entry.expiresAt = t.expiresAt),
      () => {
        if (this.tokens.get(key) === entry) this.tokens.delete(key);
      },
    );
    return entry.promise;
  }

  /** Whether the registry's credentials may go to `realm` (the design's same-host rule, see above). */
  private mayReceiveCredentials(realm: URL): boolean {
    if (realm.protocol !== 'https:' && this.baseUrl.protocol !== 'http:') return false;
    const registryName = this.host.replace(/:\d+$/, '').toLowerCase();
    return realm.hostname === this.baseUrl.hostname || realm.hostname === registryName || realm.hostname.endsWith('.' + registryName);
  }

  private async fetchToken(ch: Challenge, scopes: string[], what: string): Promise<Token> {
    const realmText = ch.params.realm;
    let realm: URL;
    try {
      realm = new URL(realmText ?? '');
    } catch {
      throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: the registry's Bearer challenge has no valid realm`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') {
      throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: token realm with unsupported scheme ${safeText(realm.protocol, 40)}`);
    }
    const creds = await this.credentials();
    const allowed = creds !== undefined && this.mayReceiveCredentials(realm);
    if (creds && !allowed) {
      this.withheld =
        `the credentials for ${this.host} were not sent to its token service at ${safeText(realm.host, 100)}: ` +
        `imgx sends registry credentials only to a token service on the registry's own host over https`;
      this.options.debug(`auth: ${this.withheld}`);
    }
    if (this.requireCredentials && !allowed) {
      throw new RegistryError('IMGX_UNAUTHORIZED', `${what}: cannot check the credentials (${this.withheld ?? 'none given'})`, 401);
    }

    const where = safeText(realm.host, 100);
    const { token, expiresIn: expires } = await runOperation({ options: this.options, what, host: where }, async (a: Attempt) => {
      this.tokenRequests++;
      let sent = false;
      let res: HttpResponse;
      const common = { signal: a.signal, budget: a.budget, deadline: a.deadline, what };
      if (allowed && creds.identityToken) {
        // OAuth2 refresh-token grant: the identity token replaces the password.
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'imgx' });
        if (ch.params.service) form.set('service', ch.params.service);
        if (scopes.length) form.set('scope', scopes.join(' '));
        sent = true;
        res = await this.transport.send({
          method: 'POST',
          url: realm,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form.toString(),
          ...common,
        });
      } else {
        const url = new URL(realm);
        if (ch.params.service) url.searchParams.set('service', ch.params.service);
        for (const s of scopes) url.searchParams.append('scope', s);
        let authorization: string | undefined;
        if (allowed) {
          authorization = basic(creds);
          if (authorization) {
            url.searchParams.set('account', creds.username);
            sent = true;
          }
        }
        res = await this.transport.send({ method: 'GET', url, authorization, ...common });
      }

      this.sentCredentials ||= sent;
      if (res.status === 401 || res.status === 403) {
        await readCapped(res.body, ERROR_BODY_CAP);
        const why = sent
          ? `the token service at ${where} rejected the credentials for ${this.host}`
          : `the token service at ${where} refused an anonymous token${this.withheld ? ` (${this.withheld})` : ''}`;
        throw new RegistryError('IMGX_UNAUTHORIZED', `${what}: unauthorized (${why})`, res.status);
      }
      if (res.status !== 200) {
        const text = (await readCapped(res.body, ERROR_BODY_CAP)).toString('utf8');
        throw errorFromResponse(res.status, text, { what, kind: 'token' });
      }
      const tooLarge = () => new RegistryError('IMGX_REGISTRY_ERROR', `${what}: the token service at ${where} answered more than ${TOKEN_BODY_CAP} bytes`, res.status);
      return parseTokenResponse(await readLimited(res, TOKEN_BODY_CAP, tooLarge), where, what);
    });
    // Renew a little early so a token does not expire between our check and the registry's.
    const margin = Math.min(30, expires / 4);
    return { token, expiresAt: Date.now() + (expires - margin) * 1000 };
  }
}
