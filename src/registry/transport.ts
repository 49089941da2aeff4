// HTTP for the registry: undici with pooled connections (through HTTPS_PROXY/HTTP_PROXY/NO_PROXY when
// set), timeouts, bounded retries with backoff, and redirects followed by hand so that
// Authorization never reaches another origin (scheme + host + port).
import type { Agent, Dispatcher } from 'undici';
import { RegistryError } from '../errors.ts';
import { isLoopbackHost } from './endpoint.ts';
import { abortError, isAbortError, isRetryableNetworkError, networkError } from './errors.ts';
import type { ResolvedOptions } from './options.ts';
import { safeText } from '../util/terminal-text.ts';
import { isRetryableStatus, RetryBudget, sleep } from './retry.ts';
import { undiciAgent, undiciEnvHttpProxyAgent } from './undici-parts.ts';

export type ResponseBody = Dispatcher.ResponseData['body'];
export type Headers = Dispatcher.ResponseData['headers'];

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST';
  url: URL;
  headers?: Record<string, string>;
  body?: string;
  /** Sent to the origin of `url` only: dropped on a redirect to any other origin. */
  authorization?: string;
  /** Follow 301/302/303/307/308 (default: yes). */
  followRedirects?: boolean;
  signal?: AbortSignal;
  /** Shared by the tries of one operation; a fresh one per request when absent. */
  budget?: RetryBudget;
  /** The operation's deadline (Date.now() ms): no retry waits past it. */
  deadline?: number;
  /** The object as shown in messages. */
  what: string;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: ResponseBody;
  /** The URL that answered, after redirects. */
  url: URL;
}

export const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** A URL for debug output: signed redirect targets carry secrets in their query. */
function shown(url: URL): string {
  return url.origin + url.pathname + (url.search ? '?…' : '');
}

/** The first value of a response header. */
export function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Throws away a body we do not need, so its connection goes back to the pool. */
export async function discard(body: ResponseBody): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024 });
  } catch {
    // a body that fails while being thrown away changes nothing
  }
}

/**
 * The text of an error answer: read up to `cap` bytes, the rest cut off. Best effort: a body that
 * fails midway gives what arrived (an error body only adds detail to the status).
 */
export async function readCapped(body: ResponseBody, cap: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const room = cap - n;
      parts.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      n += Math.min(room, chunk.length);
      if (n >= cap) {
        body.destroy();
        break;
      }
    }
  } catch {
    // cut, reset or timed out: the status speaks alone
  }
  return Buffer.concat(parts);
}

/**
 * A body that must arrive whole (a manifest, a token response, a tag list): refused with
 * `tooLarge()` as soon as its Content-Length or the bytes read so far pass `cap`, so a huge body
 * is never held in memory. A body cut midway throws the network error (the caller retries it).
 */
export async function readLimited(res: HttpResponse, cap: number, tooLarge: () => Error): Promise<Buffer> {
  const len = header(res.headers, 'content-length');
  if (len !== undefined && /^\d+$/.test(len) && Number(len) > cap) {
    res.body.destroy();
    throw tooLarge();
  }
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > cap) {
      res.body.destroy();
      throw tooLarge();
    }
    parts.push(c);
  }
  return Buffer.concat(parts);
}

function hasProxyEnv(): boolean {
  const e = process.env;
  return Boolean(e.HTTPS_PROXY || e.https_proxy || e.HTTP_PROXY || e.http_proxy);
}

export class Transport {
  readonly options: ResolvedOptions;
  private readonly direct: Agent;
  private readonly proxied: Dispatcher | undefined;

  constructor(options: ResolvedOptions) {
    this.options = options;
    const tls = { rejectUnauthorized: !options.insecure };
    const common = {
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect: { ...tls, timeout: options.timeoutMs },
    };
    this.direct = new (undiciAgent())(common);
    // ProxyAgent takes the TLS options for the far end as requestTls.
    this.proxied = hasProxyEnv() ? new (undiciEnvHttpProxyAgent())({ ...common, requestTls: tls }) : undefined;
  }

  /** Loopback never goes through a proxy (as Go's ProxyFromEnvironment). */
  private dispatcherFor(url: URL): Dispatcher {
    return this.proxied && !isLoopbackHost(url.host) ? this.proxied : this.direct;
  }

  async send(req: HttpRequest): Promise<HttpResponse> {
    const o = this.options;
    const budget = req.budget ?? new RetryBudget(o);
    const follow = req.followRedirects ?? true;
    const authOrigin = req.url.origin;
    let url = req.url;
    let method = req.method;
    let body = req.body;
    let redirects = 0;
    // A retry whose wait would end past the operation's deadline is not made.
    const fits = (ms: number) => req.deadline === undefined || Date.now() + ms < req.deadline;
    for (;;) {
      if (req.signal?.aborted) throw abortError(req.signal, req.what);
      const headers: Record<string, string> = { 'user-agent': o.userAgent, ...req.headers };
      if (req.authorization && url.origin === authOrigin) headers.authorization = req.authorization;
      if (body === undefined) delete headers['content-type'];
      let res: Dispatcher.ResponseData;
      try {
        res = await this.dispatcherFor(url).request({
          origin: url.origin,
          path: url.pathname + url.search,
          method,
          headers,
          body,
          signal: req.signal,
          headersTimeout: o.timeoutMs,
          bodyTimeout: o.timeoutMs,
        });
      } catch (err) {
        if (req.signal?.aborted || isAbortError(err)) throw abortError(req.signal, req.what);
        if (isRetryableNetworkError(err) && budget.take()) {
          const wait = budget.backoff();
          if (fits(wait)) {
            o.debug(`${method} ${shown(url)}: ${(err as Error).message}; retry in ${wait} ms (${budget.remaining} left)`);
            await sleep(wait, req.signal, req.what);
            continue;
          }
        }
        throw networkError(err, url.host, req.what);
      }
      const status = res.statusCode;
      o.debug(`${method} ${shown(url)} → ${status}`);

      const location = header(res.headers, 'location');
      if (follow && REDIRECTS.has(status) && location) {
        await discard(res.body);
        if (++redirects > MAX_REDIRECTS) {
          throw new RegistryError('IMGX_REGISTRY_ERROR', `${req.what}: more than ${MAX_REDIRECTS} redirects`, status);
        }
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new RegistryError('IMGX_REGISTRY_ERROR', `${req.what}: redirect to a malformed location`, status);
        }
        if (next.protocol !== 'https:' && next.protocol !== 'http:') {
          throw new RegistryError('IMGX_REGISTRY_ERROR', `${req.what}: redirect to an unsupported scheme ${safeText(next.protocol, 40)}`, status);
        }
        if (status === 303 && method === 'POST') {
          method = 'GET';
          body = undefined;
        }
        url = next;
        continue;
      }

      if (isRetryableStatus(status) && budget.remaining > 0) {
        budget.take();
        const wait = budget.delayFor(header(res.headers, 'retry-after'));
        // Past the deadline the answer stands: a 429 then says "rate limit", not "timed out".
        if (fits(wait)) {
          await discard(res.body);
          o.debug(`${method} ${shown(url)}: HTTP ${status}; retry in ${wait} ms (${budget.remaining} left)`);
          await sleep(wait, req.signal, req.what);
          continue;
        }
      }
      return { status, headers: res.headers, body: res.body, url };
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.direct.close(), this.proxied?.close()]);
  }
}
