// The registry client against small loopback servers that misbehave on purpose: bad bytes,
// rate limits, cut connections, huge manifests, cross-origin redirects, auth flows, pagination.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { RegistryClient } from '../../src/registry/client.ts';
import { checkLogin } from '../../src/registry/login.ts';
import type { RegistryOptions } from '../../src/registry/options.ts';
import { RegistrySource } from '../../src/registry/registry-source.ts';
import { OCI_MANIFEST } from '../../src/image/media-types.ts';
import type { Descriptor } from '../../src/image/descriptor.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  server: Server;
  port: number;
  host: string;
  requests: IncomingMessage[];
  close(): Promise<void>;
}

const servers: TestServer[] = [];

async function serve(handler: Handler, bind = '127.0.0.1'): Promise<TestServer> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, bind, resolve));
  const port = (server.address() as AddressInfo).port;
  const s: TestServer = {
    server,
    port,
    host: `${bind}:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

const tmp = mkdtempSync(join(tmpdir(), 'imgx-reg-'));
/** Options for tests: no real Docker config, short backoff. */
function opts(extra: RegistryOptions = {}): RegistryOptions {
  return { dockerConfig: join(tmp, 'none.json'), retries: 3, backoffMs: 5, timeoutMs: 5000, ...extra };
}

function sha(b: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { code: string };
    assert.is(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.unreachable(`expected rejection with ${code}`);
  throw new Error('unreachable');
}

const blob = Buffer.alloc(300_000);
for (let i = 0; i < blob.length; i++) blob[i] = (i * 7 + (i >> 8)) & 0xff;
const blobDesc: Descriptor = { mediaType: 'application/octet-stream', digest: sha(blob), size: blob.length };
const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: blobDesc, layers: [] }));

test.after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  rmSync(tmp, { recursive: true, force: true });
});

test('a blob whose bytes do not match its digest → IMGX_DIGEST_MISMATCH', async () => {
  const bad = Buffer.from(blob);
  bad[1000] = bad[1000]! ^ 1;
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': bad.length });
    res.end(bad);
  });
  const c = new RegistryClient(s.host, opts());
  const stream = await c.openBlob('app', blobDesc);
  await rejectsWith(collect(stream), 'IMGX_DIGEST_MISMATCH');
  await c.close();
});

test('429 with Retry-After: 1, then success', async () => {
  let n = 0;
  const s = await serve((_req, res) => {
    if (n++ === 0) {
      res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
      return;
    }
    res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': sha(manifest) });
    res.end(manifest);
  });
  const c = new RegistryClient(s.host, opts());
  const m = await c.getManifest('app', 'v1');
  assert.is(m.digest, sha(manifest));
  assert.is(m.mediaType, OCI_MANIFEST);
  assert.is(s.requests.length, 2);
  await c.close();
});

test('429 forever → IMGX_TOOMANYREQUESTS once the budget is spent', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
  });
  const c = new RegistryClient(s.host, opts({ retries: 2 }));
  await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_TOOMANYREQUESTS');
  assert.is(s.requests.length, 3);
  await c.close();
});

test('a connection cut mid-blob is resumed with Range', async () => {
  const half = 123_457;
  const ranges: string[] = [];
  const s = await serve((req, res) => {
    if (req.headers.range) {
      ranges.push(req.headers.range);
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range)![1]);
      res.writeHead(206, { 'content-length': blob.length - start, 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` });
      res.end(blob.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': blob.length });
    res.write(blob.subarray(0, half), () => setTimeout(() => res.socket?.destroy(), 20));
  });
  const c = new RegistryClient(s.host, opts());
  let progress = 0;
  const stream = await c.openBlob('app', blobDesc, { onProgress: (n) => (progress += n) });
  const got = await collect(stream);
  assert.is(ranges.length, 1);
  assert.ok(/^bytes=\d+-$/.test(ranges[0]!), ranges[0]);
  assert.ok(Number(/\d+/.exec(ranges[0]!)![0]) > 0);
  assert.ok(got.equals(blob));
  assert.is(progress, blob.length);
  await c.close();
});

test('a server that ignores Range on resume: the bytes already read are skipped', async () => {
  let n = 0;
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': blob.length });
    if (n++ === 0) res.write(blob.subarray(0, 70_000), () => setTimeout(() => res.socket?.destroy(), 20));
    else res.end(blob);
  });
  const c = new RegistryClient(s.host, opts());
  const got = await collect(await c.openBlob('app', blobDesc));
  assert.ok(got.equals(blob));
  assert.is(s.requests.length, 2);
  assert.ok(s.requests[1]!.headers.range);
  await c.close();
});

test('an abort signal stops a blob mid-stream', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': blob.length });
    res.write(blob.subarray(0, 1000)); // and then nothing
  });
  const c = new RegistryClient(s.host, opts());
  const ac = new AbortController();
  const stream = await c.openBlob('app', blobDesc, { signal: ac.signal, onProgress: () => ac.abort() });
  await rejectsWith(collect(stream), 'IMGX_INTERRUPTED');
  assert.is(s.requests.length, 1, 'no resume after an abort');
  await c.close();
});

test('a manifest over 4 MiB → IMGX_MANIFEST_TOO_LARGE (with and without Content-Length)', async () => {
  const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
  const s = await serve((req, res) => {
    if (req.url!.includes('chunked')) {
      res.writeHead(200, { 'content-type': OCI_MANIFEST });
      res.write(big.subarray(0, 3 * 1024 * 1024));
      res.end(big.subarray(3 * 1024 * 1024));
    } else {
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': big.length });
      res.end(big);
    }
  });
  const c = new RegistryClient(s.host, opts());
  await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_MANIFEST_TOO_LARGE');
  await rejectsWith(c.getManifest('chunked', 'v1'), 'IMGX_MANIFEST_TOO_LARGE');
  await c.close();
});

test('a manifest fetched by digest is verified', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': OCI_MANIFEST });
    res.end(manifest);
  });
  const c = new RegistryClient(s.host, opts());
  assert.is((await c.getManifest('app', sha(manifest))).digest, sha(manifest));
  await rejectsWith(c.getManifest('app', sha('other')), 'IMGX_DIGEST_MISMATCH');
  await c.close();
});

test('a blob redirect to another origin does not carry Authorization; a relative one does', async () => {
  const cdn = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': blob.length });
    res.end(blob);
  });
  const auth = 'Basic ' + Buffer.from('alice:secret').toString('base64');
  const seen: (string | undefined)[] = [];
  const s = await serve((req, res) => {
    if (req.headers.authorization !== auth) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="test"' });
      res.end();
      return;
    }
    seen.push(req.url);
    if (req.url!.startsWith('/v2/app/blobs/')) {
      res.writeHead(307, { location: `http://127.0.0.1:${cdn.port}/data/x?sig=1` });
      res.end();
    } else if (req.url!.startsWith('/v2/rel/blobs/')) {
      res.writeHead(302, { location: '/storage/blob' });
      res.end();
    } else if (req.url === '/storage/blob') {
      res.writeHead(200, { 'content-length': blob.length });
      res.end(blob);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  const config = join(tmp, 'redirect.json');
  writeFileSync(config, JSON.stringify({ auths: { [s.host]: { auth: Buffer.from('alice:secret').toString('base64') } } }));
  const c = new RegistryClient(s.host, opts({ dockerConfig: config }));
  assert.ok((await collect(await c.openBlob('app', blobDesc))).equals(blob));
  assert.is(cdn.requests.length, 1);
  assert.is(cdn.requests[0]!.headers.authorization, undefined);
  assert.is(cdn.requests[0]!.url, '/data/x?sig=1');
  assert.ok((await collect(await c.openBlob('rel', blobDesc))).equals(blob));
  assert.ok(seen.includes('/storage/blob'), 'relative redirect followed with credentials');
  await c.close();
});

test('too many redirects → IMGX_REGISTRY_ERROR', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(302, { location: '/again' });
    res.end();
  });
  const c = new RegistryClient(s.host, opts());
  await rejectsWith(c.openBlob('app', blobDesc), 'IMGX_REGISTRY_ERROR');
  assert.is(s.requests.length, 6);
  await c.close();
});

/** A registry behind a Bearer token service on the same host; `users` are accepted for tokens. */
async function bearerRegistry(users: Record<string, string> = {}, anonymous = true) {
  const tokenRequests: IncomingMessage[] = [];
  let port = 0;
  const s = await serve((req, res) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname === '/token') {
      tokenRequests.push(req);
      const a = req.headers.authorization;
      let who = 'anonymous';
      if (a) {
        const [user, pass] = Buffer.from(a.replace(/^Basic /, ''), 'base64').toString().split(':');
        if (users[user!] !== pass) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end('{"details":"bad credentials"}');
          return;
        }
        who = user!;
      } else if (!anonymous) {
        res.writeHead(401);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `tok-${who}`, expires_in: 300 }));
      return;
    }
    if (!req.headers.authorization?.startsWith('Bearer tok-')) {
      const scope = u.pathname.startsWith('/v2/app/') ? ',scope="repository:app:pull"' : '';
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="test-registry"${scope}`,
        'content-type': 'application/json',
      });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    if (u.pathname === '/v2/') {
      res.writeHead(200);
      res.end('{}');
    } else if (u.pathname.startsWith('/v2/app/manifests/')) {
      res.writeHead(200, { 'content-type': OCI_MANIFEST });
      res.end(manifest);
    } else if (u.pathname.startsWith('/v2/app/blobs/')) {
      res.writeHead(200, { 'content-length': blob.length });
      res.end(blob);
    } else if (u.pathname === '/v2/app/tags/list') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: 'app', tags: ['v1'] }));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  port = s.port;
  return { s, tokenRequests };
}

test('Bearer token flow: one token request serves several calls', async () => {
  const { s, tokenRequests } = await bearerRegistry();
  const src = new RegistrySource({ domain: s.host, path: 'app', tag: 'v1' }, opts());
  assert.is(src.displayName, `docker://${s.host}/app:v1`);
  const m = await src.getRootManifest();
  assert.is(m.digest, sha(manifest));
  const blobs = await Promise.all([src.readBlob(blobDesc), src.readBlob(blobDesc), collect(await src.openBlob(blobDesc))]);
  for (const b of blobs) assert.ok(b.equals(blob));
  assert.equal(await src.listTags(), ['v1']);
  assert.is(tokenRequests.length, 1);
  const q = new URL(tokenRequests[0]!.url!, 'http://x').searchParams;
  assert.is(q.get('service'), 'test-registry');
  assert.equal(q.getAll('scope'), ['repository:app:pull']);
  assert.is(tokenRequests[0]!.headers.authorization, undefined);
  await src.close();
});

test('Bearer with credentials on the same host: the token request carries them', async () => {
  const { s, tokenRequests } = await bearerRegistry({ alice: 'pw' }, false);
  const config = join(tmp, 'bearer.json');
  writeFileSync(config, JSON.stringify({ auths: { [`http://${s.host}/v2/`]: { username: 'alice', password: 'pw' } } }));
  const c = new RegistryClient(s.host, opts({ dockerConfig: config }));
  await c.getManifest('app', 'v1');
  assert.is(tokenRequests.length, 1);
  assert.is(tokenRequests[0]!.headers.authorization, 'Basic ' + Buffer.from('alice:pw').toString('base64'));
  await c.close();
});

test('a token realm on another host does not receive the registry credentials', async () => {
  const realmRequests: IncomingMessage[] = [];
  const realm = await serve((req, res) => {
    realmRequests.push(req);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: 'anon' }));
  }, 'localhost');
  const s = await serve((req, res) => {
    if (req.headers.authorization !== 'Bearer good') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://localhost:${realm.port}/token",service="svc"` });
      res.end();
      return;
    }
    res.writeHead(200);
    res.end(manifest);
  });
  const config = join(tmp, 'cross.json');
  writeFileSync(config, JSON.stringify({ auths: { [s.host]: { auth: Buffer.from('alice:secret').toString('base64') } } }));
  const c = new RegistryClient(s.host, opts({ dockerConfig: config }));
  const err = await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_UNAUTHORIZED');
  assert.is(realmRequests.length, 1);
  assert.is(realmRequests[0]!.headers.authorization, undefined);
  assert.match(err.message, /not sent to its token service/);
  await c.close();
  await rejectsWith(checkLogin(s.host, 'alice', 'secret', opts()), 'IMGX_UNAUTHORIZED');
});

/** A registry that takes Basic credentials alice:secret. */
async function basicRegistry() {
  const good = 'Basic ' + Buffer.from('alice:secret').toString('base64');
  return serve((req, res) => {
    if (req.headers.authorization !== good) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"', 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    if (req.url === '/v2/') {
      res.writeHead(200);
      res.end('{}');
      return;
    }
    if (req.url === '/v2/app/manifests/v1') {
      res.writeHead(200, { 'content-type': OCI_MANIFEST });
      res.end(manifest);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
  });
}

test('Basic auth with credentials from the Docker config', async () => {
  const s = await basicRegistry();
  const config = join(tmp, 'basic.json');
  writeFileSync(config, JSON.stringify({ auths: { [s.host]: { auth: Buffer.from('alice:secret').toString('base64') } } }));
  const c = new RegistryClient(s.host, opts({ dockerConfig: config }));
  assert.is((await c.getManifest('app', 'v1')).digest, sha(manifest));
  // Known scheme: the next request carries Basic from the start.
  const before = s.requests.length;
  const err = await rejectsWith(c.getManifest('app', 'v2'), 'IMGX_MANIFEST_UNKNOWN');
  assert.is(s.requests.length, before + 1);
  assert.is(err.message, `docker://${s.host}/app:v2: manifest unknown (the registry has no such tag)`);
  await c.close();
});

test('401 with wrong credentials → IMGX_UNAUTHORIZED (Basic, Bearer, and checkLogin)', async () => {
  const s = await basicRegistry();
  const config = join(tmp, 'wrong.json');
  writeFileSync(config, JSON.stringify({ auths: { [s.host]: { username: 'alice', password: 'nope' } } }));
  const c = new RegistryClient(s.host, opts({ dockerConfig: config }));
  const err = await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_UNAUTHORIZED');
  assert.match(err.message, /did not accept the credentials/);
  await c.close();
  const anon = new RegistryClient(s.host, opts());
  const e2 = await rejectsWith(anon.getManifest('app', 'v1'), 'IMGX_UNAUTHORIZED');
  assert.match(e2.message, /imgx login/);
  await anon.close();

  await checkLogin(s.host, 'alice', 'secret', opts());
  await rejectsWith(checkLogin(s.host, 'alice', 'nope', opts()), 'IMGX_UNAUTHORIZED');

  const { s: b } = await bearerRegistry({ alice: 'pw' });
  await checkLogin(b.host, 'alice', 'pw', opts());
  await rejectsWith(checkLogin(b.host, 'alice', 'wrong', opts()), 'IMGX_UNAUTHORIZED');
});

test('an unreachable port → IMGX_UNREACHABLE quickly', async () => {
  const s = await serve(() => {});
  const host = s.host;
  await s.close();
  const c = new RegistryClient(host, opts({ retries: 2, backoffMs: 1 }));
  const err = await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_UNREACHABLE');
  assert.match(err.message, new RegExp(`^docker://${host}/app:v1: cannot reach ${host} \\(connection refused\\)$`));
  await c.close();
});

test('a server that never answers → IMGX_TIMEOUT', async () => {
  const s = await serve(() => {});
  const c = new RegistryClient(s.host, opts({ retries: 0, timeoutMs: 200 }));
  await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_TIMEOUT');
  await c.close();
});

test('tags pagination follows Link rel="next"', async () => {
  const s = await serve((req, res) => {
    const u = new URL(req.url!, 'http://x');
    const last = u.searchParams.get('last');
    const pages: Record<string, [string[], string | undefined]> = {
      '': [['a', 'b'], '</v2/app/tags/list?n=2&last=b>; rel="next"'],
      b: [['c', 'd'], `<http://${s.host}/v2/app/tags/list?n=2&last=d>; rel="next"`],
      d: [['e'], undefined],
    };
    const [tags, link] = pages[last ?? '']!;
    res.writeHead(200, { 'content-type': 'application/json', ...(link ? { link } : {}) });
    res.end(JSON.stringify({ name: 'app', tags }));
  });
  const c = new RegistryClient(s.host, opts());
  assert.equal(await c.listTags('app'), ['a', 'b', 'c', 'd', 'e']);
  await c.close();
});

test('registry errors map to typed errors', async () => {
  const s = await serve((req, res) => {
    if (req.url!.startsWith('/v2/nope/')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] }));
    } else if (req.url!.startsWith('/v2/app/blobs/')) {
      res.writeHead(404);
      res.end();
    } else if (req.url!.startsWith('/v2/app/manifests/')) {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }));
    } else {
      res.writeHead(500);
      res.end('boom');
    }
  });
  const c = new RegistryClient(s.host, opts({ retries: 0 }));
  await rejectsWith(c.listTags('nope'), 'IMGX_NAME_UNKNOWN');
  await rejectsWith(c.openBlob('app', blobDesc), 'IMGX_BLOB_UNKNOWN');
  await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_DENIED');
  await rejectsWith(c.listTags('other'), 'IMGX_REGISTRY_ERROR');
  await rejectsWith(c.getManifest('app', 'sha256:abc'), 'IMGX_BAD_DIGEST');
  await c.close();
});

// ---- issue 16: cut bodies, deadlines, the blob throughput floor, untrusted text ---------------

/** Sends the headers and the first `n` bytes of `body` (announcing all of it), then drops the connection. */
function cutAfter(res: ServerResponse, body: Buffer, n: number, headers: Record<string, string | number> = {}): void {
  res.writeHead(200, { 'content-length': body.length, ...headers });
  res.write(body.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 10));
}

/** Writes `body` one byte every `ms` (announcing all of it) until the client goes away. */
function drip(res: ServerResponse, body: Buffer, ms: number, headers: Record<string, string | number> = {}): void {
  res.writeHead(200, { 'content-length': body.length, ...headers });
  let i = 0;
  const t = setInterval(() => {
    if (res.destroyed || i >= body.length) return clearInterval(t);
    res.write(body.subarray(i, ++i));
  }, ms);
  res.on('close', () => clearInterval(t));
}

test('a manifest body cut mid-transfer is asked for again; always cut → IMGX_UNREACHABLE, never a raw error', async () => {
  let n = 0;
  const s = await serve((req, res) => {
    if (req.url!.startsWith('/v2/always/') || n++ < 2) return cutAfter(res, manifest, 40, { 'content-type': OCI_MANIFEST });
    res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': manifest.length });
    res.end(manifest);
  });
  const c = new RegistryClient(s.host, opts());
  const m = await c.getManifest('app', 'v1');
  assert.is(m.digest, sha(manifest));
  assert.is(s.requests.length, 3, 'two cut answers, then the whole one');
  const before = s.requests.length;
  const err = await rejectsWith(c.getManifest('always', 'v1'), 'IMGX_UNREACHABLE');
  assert.match(err.message, /^docker:\/\/127\.0\.0\.1:\d+\/always:v1: cannot reach 127\.0\.0\.1:\d+ \(/);
  assert.is(s.requests.length - before, 4, 'the first try and the three retries of the budget');
  await c.close();
});

test('a body that stops short of its Content-Length and then stalls: retried on the idle timeout, then IMGX_TIMEOUT', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': manifest.length });
    res.write(manifest.subarray(0, 10)); // and nothing more, connection kept open
  });
  const c = new RegistryClient(s.host, opts({ retries: 1, timeoutMs: 300 }));
  await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_TIMEOUT');
  assert.is(s.requests.length, 2);
  await c.close();
});

test('a config (small blob) cut mid-transfer is resumed and verified', async () => {
  let n = 0;
  const s = await serve((req, res) => {
    if (n++ === 0) return cutAfter(res, blob, 1000);
    const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    res.writeHead(start ? 206 : 200, { 'content-length': blob.length - start, ...(start ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}) });
    res.end(blob.subarray(start));
  });
  const c = new RegistryClient(s.host, opts());
  assert.ok((await c.readBlob('app', blobDesc)).equals(blob));
  assert.is(s.requests.length, 2);
  await c.close();
});

/** A registry whose token service misbehaves as `token` says; manifests need `Bearer good`. */
async function tokenRegistry(token: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
  let port = 0;
  let tokens = 0;
  const s = await serve((req, res) => {
    if (req.url!.startsWith('/token')) return token(req, res, tokens++);
    if (req.headers.authorization !== 'Bearer good') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="svc"` });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': manifest.length });
    res.end(manifest);
  });
  port = s.port;
  return { s, tokens: () => tokens };
}

test('a token answer cut mid-transfer is retried; always cut → IMGX_UNREACHABLE', async () => {
  const good = Buffer.from(JSON.stringify({ token: 'good', expires_in: 300 }));
  const { s, tokens } = await tokenRegistry((_req, res, n) => {
    if (n < 2) return cutAfter(res, good, 5, { 'content-type': 'application/json' });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(good);
  });
  const c = new RegistryClient(s.host, opts());
  assert.is((await c.getManifest('app', 'v1')).digest, sha(manifest));
  assert.is(tokens(), 3);
  await c.close();

  const { s: s2 } = await tokenRegistry((_req, res) => cutAfter(res, good, 5));
  const c2 = new RegistryClient(s2.host, opts());
  await rejectsWith(c2.getManifest('app', 'v1'), 'IMGX_UNREACHABLE');
  await c2.close();
});

test('a token answer over the 1 MiB cap is refused while it streams', async () => {
  let written = 0;
  let closedEarly = false;
  const { s } = await tokenRegistry((_req, res) => {
    // 50 MB of a JSON string, written as the client takes it.
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    res.write('{"token":"');
    const more = () => {
      while (written < 50 * 1024 * 1024) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end('"}');
    };
    res.on('close', () => (closedEarly = !res.writableFinished));
    more();
  });
  const c = new RegistryClient(s.host, opts());
  const err = await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_REGISTRY_ERROR');
  assert.match(err.message, /answered more than 1048576 bytes/);
  for (let i = 0; i < 200 && !closedEarly; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(closedEarly && written < 50 * 1024 * 1024, `the client hung up (${written} bytes written)`);
  await c.close();
});

test('a manifest that drips one byte at a time fails at the total deadline: IMGX_TIMEOUT', async () => {
  const s = await serve((_req, res) => drip(res, manifest, 200, { 'content-type': OCI_MANIFEST }));
  const c = new RegistryClient(s.host, opts({ deadlineMs: 1500 }));
  const t0 = Date.now();
  const err = await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_TIMEOUT');
  assert.ok(Date.now() - t0 < 30_000, 'bounded');
  assert.match(err.message, /no complete answer within 1\.5 s .*--timeout/);
  assert.is(s.requests.length, 1, 'the deadline is the whole operation: no retry after it');
  await c.close();
});

test('a token service that drips fails at the deadline too; so does a config', async () => {
  const { s } = await tokenRegistry((_req, res) => drip(res, Buffer.from('{"token":"good"}'), 200));
  const c = new RegistryClient(s.host, opts({ deadlineMs: 1000 }));
  const err = await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_TIMEOUT');
  assert.match(err.message, /within 1 s/);
  await c.close();

  const b = await serve((_req, res) => drip(res, blob, 50));
  const c2 = new RegistryClient(b.host, opts({ deadlineMs: 1000 }));
  await rejectsWith(c2.readBlob('app', blobDesc), 'IMGX_TIMEOUT');
  await c2.close();
});

test('a Retry-After longer than the deadline: the 429 stands at once', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(429, { 'retry-after': '120', 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] }));
  });
  const c = new RegistryClient(s.host, opts({ deadlineMs: 2000, maxDelayMs: 120_000 }));
  const t0 = Date.now();
  await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_TOOMANYREQUESTS');
  assert.ok(Date.now() - t0 < 60_000, 'no two-minute sleep');
  assert.is(s.requests.length, 1);
  await c.close();
});

test('a blob below the throughput floor: each attempt fails, is resumed with Range, then IMGX_TIMEOUT', async () => {
  const s = await serve((req, res) => {
    const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    const rest = blob.subarray(start);
    if (start) res.writeHead(206, { 'content-length': rest.length, 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` });
    else res.writeHead(200, { 'content-length': rest.length });
    let i = 0;
    const t = setInterval(() => {
      if (res.destroyed) return clearInterval(t);
      res.write(rest.subarray(i, (i += 16)));
    }, 50);
    res.on('close', () => clearInterval(t));
  });
  const c = new RegistryClient(s.host, opts({ retries: 2, blobFloor: { bytes: 4096, windowMs: 500 } }));
  const err = await rejectsWith(collect(await c.openBlob('app', blobDesc)), 'IMGX_TIMEOUT');
  assert.match(err.message, /fewer than 4 KiB in 0\.5 s, the minimum throughput for blobs/);
  assert.is(s.requests.length, 3);
  assert.ok(s.requests.slice(1).every((r) => /^bytes=\d+-$/.test(r.headers.range ?? '')), 'resumed where it stopped');
  await c.close();
});

test('a blob above the floor, and a consumer that takes its time, are not cut', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': blob.length });
    let i = 0;
    const t = setInterval(() => {
      if (res.destroyed || i >= blob.length) return clearInterval(t);
      const part = blob.subarray(i, (i += 32 * 1024));
      if (i >= blob.length) res.end(part);
      else res.write(part);
    }, 50);
    res.on('close', () => clearInterval(t));
  });
  // A window wide enough that a busy machine pausing this process does not trip it.
  const c = new RegistryClient(s.host, opts({ retries: 0, blobFloor: { bytes: 4096, windowMs: 2000 } }));
  const stream = await c.openBlob('app', blobDesc);
  const parts: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    parts.push(chunk);
    // A slow consumer: 3 s with the first chunk, longer than the window.
    if (parts.length === 1) await new Promise((r) => setTimeout(r, 3000));
  }
  assert.ok(Buffer.concat(parts).equals(blob));
  assert.is(s.requests.length, 1);
  await c.close();
});

test('registry error codes and messages with escape sequences reach the error stripped and cut', async () => {
  const s = await serve((_req, res) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: '\x1b[31mEVIL_CODE\x07\x1b]0;owned\x07' + 'X'.repeat(5000), message: 'line1\nline2\x1b[2J\x9b1m' + 'y'.repeat(5000) }] }));
  });
  const c = new RegistryClient(s.host, opts());
  const err = await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_REGISTRY_ERROR');
  assert.not.match(err.message, /[\u0000-\u001f\u007f-\u009f]/);
  assert.match(err.message, /registry error: HTTP 400 \(EVIL_CODE X+…: line1 line2y+…\)$/, err.message);
  assert.ok(err.message.length < 400, `${err.message.length} characters`);
  await c.close();
});

test('an error answer cut mid-body, or malformed, falls back to its HTTP status', async () => {
  const s = await serve((req, res) => {
    const body = Buffer.from(JSON.stringify({ errors: [{ code: 'DENIED', message: 'x'.repeat(1000) }] }));
    if (req.url!.includes('/cut/')) {
      res.writeHead(403, { 'content-type': 'application/json', 'content-length': body.length });
      res.write(body.subarray(0, 20), () => setTimeout(() => res.socket?.destroy(), 10));
    } else {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":[' + '['.repeat(50_000) + ']'.repeat(50_000) + ']}]}');
    }
  });
  const c = new RegistryClient(s.host, opts());
  await rejectsWith(c.getManifest('cut', 'v1'), 'IMGX_DENIED');
  const err = await rejectsWith(c.getManifest('nested', 'v1'), 'IMGX_REGISTRY_ERROR');
  assert.match(err.message, /registry error: HTTP 400$/);
  await c.close();
});

test('tag lists of the wrong shape → IMGX_REGISTRY_ERROR; a Content-Type that is no media type is not used', async () => {
  const s = await serve((req, res) => {
    if (req.url!.includes('/tags/')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name: 'app', tags: ['ok', 7] }));
      return;
    }
    const noType = Buffer.from(JSON.stringify({ schemaVersion: 2, config: blobDesc, layers: [] }));
    // Node's server refuses C0 in a header; C1 (as latin1 bytes) and spaces go through.
    res.writeHead(200, { 'content-type': 'application/\x9b31mevil x', 'content-length': noType.length });
    res.end(noType);
  });
  const c = new RegistryClient(s.host, opts());
  await rejectsWith(c.listTags('app'), 'IMGX_REGISTRY_ERROR');
  await rejectsWith(c.getManifest('app', 'v1'), 'IMGX_BAD_MANIFEST');
  await c.close();
});

test.run();
