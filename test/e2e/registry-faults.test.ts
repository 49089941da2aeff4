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

test.run();
