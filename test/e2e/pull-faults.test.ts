// `imgx pull` end to end against a loopback registry that misbehaves on purpose: what reaches the
// cache, what the user sees, and the exit status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { writeOciLayout, type WrittenImage } from '../fixtures/oci-layout.ts';
import { makeTar } from '../fixtures/tar.ts';
import { runImgx } from '../helpers/imgx.ts';
import { tempDir } from '../helpers/tempdir.ts';

interface Behaviour {
  /** Called for every request first; returns true when it answered. */
  intercept?: (req: IncomingMessage, res: ServerResponse, count: number) => boolean;
  /** Bearer auth: the registry wants `Bearer good`, which its token service at /token hands out. */
  bearer?: boolean;
}

const layerData = randomBytes(3_000_000); // incompressible, so the blob is large enough to cut
const image: WrittenImage = writeOciLayout(tempDir(), {
  layers: [makeTar([{ name: 'big.bin', content: layerData }]), makeTar([{ name: 'etc/hello', content: Buffer.from('hi\n') }])],
  tag: 'v1',
});
const bigLayer = image.manifests[0]!.layers[0]!;

async function fakeRegistry(b: Behaviour) {
  const seen: { method: string; url: string; range?: string }[] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, ...(req.headers.range ? { range: req.headers.range } : {}) });
    if (b.intercept?.(req, res, seen.length)) return;
    if (b.bearer) {
      if (req.url!.startsWith('/token')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"good","expires_in":300}');
      if (req.headers.authorization !== 'Bearer good') {
        return void res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="test"` }).end();
      }
    }
    serveImage(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    host,
    seen,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

function serveImage(req: IncomingMessage, res: ServerResponse) {
  const url = req.url!;
  if (url === '/v2/' || url === '/v2') return void res.writeHead(200).end('{}');
  const m = /^\/v2\/test\/app\/(manifests|blobs)\/(.+)$/.exec(url);
  if (!m) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}');
  const [, kind, ref] = m;
  const digest = kind === 'manifests' && ref === 'v1' ? image.root.digest : ref!;
  const bytes = image.blobs.get(digest);
  if (!bytes) return void res.writeHead(404, { 'content-type': 'application/json' }).end(`{"errors":[{"code":"${kind === 'manifests' ? 'MANIFEST_UNKNOWN' : 'BLOB_UNKNOWN'}","message":"no"}]}`);
  const headers: Record<string, string> = { 'docker-content-digest': digest };
  if (kind === 'manifests') headers['content-type'] = image.root.mediaType;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (range && kind === 'blobs') {
    const start = Number(range[1]);
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}`, 'content-length': String(bytes.length - start) });
    return void res.end(bytes.subarray(start));
  }
  res.writeHead(200, { ...headers, 'content-length': String(bytes.length) });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

function cacheState(cacheDir: string) {
  const blobDir = join(cacheDir, 'blobs', 'sha256');
  const names = existsSync(blobDir) ? readdirSync(blobDir) : [];
  const index = existsSync(join(cacheDir, 'index.json')) ? JSON.parse(readFileSync(join(cacheDir, 'index.json'), 'utf8')) : { manifests: [] };
  return { names, temps: names.filter((n) => n.startsWith('.')), refs: index.manifests.length as number };
}

test('a layer whose bytes do not match its digest: exit 8, one line, nothing of it in the cache', async () => {
  const reg = await fakeRegistry({
    intercept(req, res) {
      if (req.url !== `/v2/test/app/blobs/${bigLayer.digest}`) return false;
      const bad = Buffer.from(image.blobs.get(bigLayer.digest)!);
      bad[1000] = bad[1000]! ^ 0xff;
      res.writeHead(200, { 'content-length': String(bad.length) }).end(bad);
      return true;
    },
  });
  try {
    const r = await runImgx(['pull', `${reg.host}/test/app:v1`]);
    assert.is(r.code, 8, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, 'digest mismatch');
    const s = cacheState(r.cacheDir);
    assert.not.ok(s.names.includes(bigLayer.digest.slice(7)), 'the bad blob is not in the cache');
    assert.equal(s.temps, [], 'no temp files left');
    assert.is(s.refs, 0, 'the image is not recorded');
  } finally {
    await reg.close();
  }
});

test('a 429 with Retry-After and a connection cut mid-blob are retried and the pull completes', async () => {
  let cut = false;
  let limited = false;
  const reg = await fakeRegistry({
    intercept(req, res) {
      if (!limited && req.url?.includes('/manifests/')) {
        limited = true;
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
        return true;
      }
      if (!cut && req.url === `/v2/test/app/blobs/${bigLayer.digest}`) {
        cut = true;
        const bytes = image.blobs.get(bigLayer.digest)!;
        res.writeHead(200, { 'content-length': String(bytes.length) });
        res.write(bytes.subarray(0, 1_000_000), () => res.destroy());
        return true;
      }
      return false;
    },
  });
  try {
    const r = await runImgx(['pull', '--json', `${reg.host}/test/app:v1`]);
    assert.is(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.is(out.digest, image.root.digest);
    const ranges = reg.seen.filter((s) => s.range);
    assert.is(ranges.length, 1, 'one resumed request');
    assert.match(ranges[0]!.range!, /^bytes=\d+-$/);
    const s = cacheState(r.cacheDir);
    for (const d of image.blobs.keys()) assert.ok(s.names.includes(d.slice(7)), `${d} cached`);
    assert.equal(readFileSync(join(r.cacheDir, 'blobs', 'sha256', bigLayer.digest.slice(7))), image.blobs.get(bigLayer.digest));
    assert.is(s.refs, 1);
  } finally {
    await reg.close();
  }
});

test('a manifest over the 4 MiB cap is refused: exit 8, nothing recorded', async () => {
  const reg = await fakeRegistry({
    intercept(req, res) {
      if (!req.url?.includes('/manifests/')) return false;
      const huge = Buffer.alloc(5 * 1024 * 1024, 0x20);
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(huge.length) }).end(huge);
      return true;
    },
  });
  try {
    const r = await runImgx(['pull', `${reg.host}/test/app:v1`]);
    assert.is(r.code, 8, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1);
    assert.is(cacheState(r.cacheDir).refs, 0);
  } finally {
    await reg.close();
  }
});

// ---- issue 16: untrusted registries never crash imgx --------------------------------------------

/** Control characters other than the newline that ends each line. */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

/** stderr of a failed run: exactly one printable `imgx: …` line, not too long. */
function oneCleanLine(stderr: string, max = 600): string {
  const lines = stderr.split('\n').filter(Boolean);
  assert.is(lines.length, 1, stderr);
  assert.not.match(stderr, CONTROL, JSON.stringify(stderr));
  assert.ok(lines[0]!.startsWith('imgx: '), stderr);
  assert.ok(lines[0]!.length <= max, `${lines[0]!.length} characters: ${stderr.slice(0, 200)}`);
  return lines[0]!;
}

/** Headers, then `n` bytes of `bytes` (all of them announced), then the connection drops. */
function cut(res: ServerResponse, bytes: Buffer, n: number, headers: Record<string, string> = {}): void {
  res.writeHead(200, { ...headers, 'content-length': String(bytes.length) });
  res.write(bytes.subarray(0, n), () => setTimeout(() => res.destroy(), 10));
}

const manifestDesc = image.manifests[0]!;

test('a registry error code with ESC [31m and BEL: stderr is one line without control characters, cut short', async () => {
  const reg = await fakeRegistry({
    intercept(req, res) {
      if (!req.url?.includes('/manifests/')) return false;
      const code = '\x1b[31mEVIL\x07\x1b]0;pwned\x07' + 'E'.repeat(2000);
      const message = 'first\nsecond\r\x1b[2K\x9b1mthird ' + 'm'.repeat(5000);
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code, message }] }));
      return true;
    },
  });
  try {
    const r = await runImgx(['pull', `${reg.host}/test/app:v1`]);
    assert.is(r.code, 7, r.stderr);
    const line = oneCleanLine(r.stderr);
    assert.match(line, /registry error: HTTP 400 \(EVIL E+…: first second third m+…\)$/);
  } finally {
    await reg.close();
  }
});

test('manifest, config and token bodies cut mid-transfer: retried, and the pull completes', async () => {
  const cuts = { token: 0, manifest: 0, config: 0 };
  const reg = await fakeRegistry({
    bearer: true,
    intercept(req, res) {
      const url = req.url!;
      if (url.startsWith('/token') && cuts.token < 2) {
        cuts.token++;
        cut(res, Buffer.from('{"token":"good","expires_in":300}'), 8, { 'content-type': 'application/json' });
        return true;
      }
      if (req.headers.authorization !== 'Bearer good') return false;
      if (url.includes('/manifests/') && cuts.manifest < 2) {
        cuts.manifest++;
        cut(res, image.rootBytes, 30, { 'content-type': image.root.mediaType });
        return true;
      }
      if (url === `/v2/test/app/blobs/${manifestDesc.config.digest}` && cuts.config < 2) {
        // The first answer and the first resume (a 206) both stop after 20 bytes.
        cuts.config++;
        const bytes = manifestDesc.configBytes;
        const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
        const rest = bytes.subarray(start);
        res.writeHead(start ? 206 : 200, { 'content-length': String(rest.length), ...(start ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}) });
        res.write(rest.subarray(0, 20), () => setTimeout(() => res.destroy(), 10));
        return true;
      }
      return false;
    },
  });
  try {
    const r = await runImgx(['pull', '--json', `${reg.host}/test/app:v1`]);
    assert.is(r.code, 0, r.stderr);
    assert.equal(cuts, { token: 2, manifest: 2, config: 2 });
    assert.ok(reg.seen.some((x) => x.url === `/v2/test/app/blobs/${manifestDesc.config.digest}` && x.range), 'the config was resumed with Range');
    assert.is(JSON.parse(r.stdout).digest, image.root.digest);
    assert.is(cacheState(r.cacheDir).refs, 1);
  } finally {
    await reg.close();
  }
});

test('a manifest, config or token body always cut: exit 6 once the retries are spent, never exit 1', async () => {
  for (const what of ['token', 'manifest', 'config'] as const) {
    const reg = await fakeRegistry({
      bearer: true,
      intercept(req, res) {
        const url = req.url!;
        if (what === 'token' && url.startsWith('/token')) return void cut(res, Buffer.from('{"token":"good"}'), 4), true;
        if (req.headers.authorization !== 'Bearer good') return false;
        if (what === 'manifest' && url.includes('/manifests/')) return void cut(res, image.rootBytes, 30, { 'content-type': image.root.mediaType }), true;
        if (what === 'config' && url === `/v2/test/app/blobs/${manifestDesc.config.digest}`) {
          // Every answer, resumes included, stops 10 bytes short.
          const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
          const rest = manifestDesc.configBytes.subarray(start);
          res.writeHead(start ? 206 : 200, { 'content-length': String(rest.length), ...(start ? { 'content-range': `bytes ${start}-${manifestDesc.configBytes.length - 1}/${manifestDesc.configBytes.length}` } : {}) });
          res.write(rest.subarray(0, Math.max(1, rest.length - 10)), () => setTimeout(() => res.destroy(), 10));
          return true;
        }
        return false;
      },
    });
    try {
      const r = await runImgx(['pull', `${reg.host}/test/app:v1`]);
      assert.is(r.code, 6, `${what}: ${r.stderr}`);
      const line = oneCleanLine(r.stderr);
      assert.not.match(line, /internal error/);
      assert.match(line, /cannot reach|timed out/, line);
      assert.is(cacheState(r.cacheDir).refs, 0);
    } finally {
      await reg.close();
    }
  }
});

test('a registry that drips one byte every 2 s, with --timeout 3: exit 6 (IMGX_TIMEOUT) in bounded time', async () => {
  const reg = await fakeRegistry({
    intercept(req, res) {
      if (!req.url?.includes('/manifests/')) return false;
      res.writeHead(200, { 'content-type': image.root.mediaType, 'content-length': String(image.rootBytes.length) });
      let i = 0;
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(image.rootBytes.subarray(i, ++i))), 2000);
      res.on('close', () => clearInterval(t));
      return true;
    },
  });
  try {
    const t0 = Date.now();
    const r = await runImgx(['pull', '--timeout', '3', `${reg.host}/test/app:v1`], { timeoutMs: 90_000 });
    assert.is(r.code, 6, r.stderr);
    assert.ok(Date.now() - t0 < 60_000, 'bounded');
    assert.match(oneCleanLine(r.stderr), /timed out: no complete answer within 3 s .*--timeout/);
    // The same through the environment.
    const e = await runImgx(['pull', `${reg.host}/test/app:v1`], { env: { IMGX_TIMEOUT: '2' }, timeoutMs: 90_000 });
    assert.is(e.code, 6, e.stderr);
    assert.match(e.stderr, /within 2 s/);
  } finally {
    await reg.close();
  }
});

test('a layer dripping below the throughput floor (IMGX_BLOB_FLOOR=64/1): resumed, then exit 6, nothing cached', async () => {
  const reg = await fakeRegistry({
    intercept(req, res) {
      if (req.url !== `/v2/test/app/blobs/${bigLayer.digest}`) return false;
      const bytes = image.blobs.get(bigLayer.digest)!;
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
      const rest = bytes.subarray(start);
      res.writeHead(start ? 206 : 200, { 'content-length': String(rest.length), ...(start ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}) });
      let i = 0;
      const t = setInterval(() => (res.destroyed ? clearInterval(t) : res.write(rest.subarray(i, (i += 100)))), 100);
      res.on('close', () => clearInterval(t));
      return true;
    },
  });
  try {
    const t0 = Date.now();
    const r = await runImgx(['pull', `${reg.host}/test/app:v1`], { env: { IMGX_BLOB_FLOOR: '64/1' }, timeoutMs: 90_000 });
    assert.is(r.code, 6, r.stderr);
    assert.ok(Date.now() - t0 < 60_000, 'bounded');
    assert.match(oneCleanLine(r.stderr), /timed out \(fewer than 64 KiB in 1 s, the minimum throughput for blobs\)/);
    const resumes = reg.seen.filter((x) => x.url === `/v2/test/app/blobs/${bigLayer.digest}` && x.range);
    assert.is(resumes.length, 3, 'each of the 3 retries resumed where the last attempt stopped');
    const s = cacheState(r.cacheDir);
    assert.not.ok(s.names.includes(bigLayer.digest.slice(7)));
    assert.equal(s.temps, []);
  } finally {
    await reg.close();
  }
});

/** A registry that serves `root` for the tag and `blobs` by digest. */
async function documentRegistry(root: Buffer, rootType: string, blobs: Map<string, Buffer> = new Map()) {
  return fakeRegistry({
    intercept(req, res) {
      const url = req.url!;
      if (url === '/v2/test/app/manifests/v1') {
        res.writeHead(200, { 'content-type': rootType, 'content-length': String(root.length) }).end(root);
        return true;
      }
      const m = /^\/v2\/test\/app\/(?:blobs|manifests)\/(sha256:[0-9a-f]{64})$/.exec(url);
      const b = m && blobs.get(m[1]!);
      if (!b) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(b.length) }).end(b);
      return true;
    },
  });
}

const OCI_INDEX_TYPE = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const shaOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function indexOf(entry: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX_TYPE, manifests: [{ mediaType: OCI_MANIFEST_TYPE, digest: manifestDesc.descriptor.digest, size: manifestDesc.bytes.length, ...entry }] }));
}

/**
 * The image's manifest with `change` applied to its JSON, and a config with `config` merged in
 * (JSON text: a later duplicate key wins, so `,"config":…` before the closing brace replaces it).
 */
function alteredImage(change: (m: Record<string, unknown>) => void, config?: Record<string, unknown> | string) {
  const blobs = new Map(image.blobs);
  const m = JSON.parse(manifestDesc.bytes.toString('utf8')) as Record<string, unknown>;
  if (config) {
    const text = typeof config === 'string' ? manifestDesc.configBytes.toString('utf8').replace(/}\s*$/, `,${config}}`) : JSON.stringify({ ...JSON.parse(manifestDesc.configBytes.toString('utf8')), ...config });
    const c = Buffer.from(text);
    blobs.set(shaOf(c), c);
    m.config = { ...manifestDesc.config, digest: shaOf(c), size: c.length };
  }
  change(m);
  return { root: Buffer.from(JSON.stringify(m)), blobs };
}

const deepArrays = (n: number) => '['.repeat(n) + ']'.repeat(n);

test('malformed documents from a registry end in exit 8 with one line naming the field, never exit 1', async () => {
  const cases: { name: string; root: Buffer; type: string; blobs?: Map<string, Buffer>; want: RegExp }[] = [
    { name: 'index entry without architecture', root: indexOf({ platform: { os: 'linux' } }), type: OCI_INDEX_TYPE, want: /manifests\[0\]\.platform\.architecture is missing$/ },
    { name: 'index platform os a number', root: indexOf({ platform: { os: 7, architecture: 'amd64' } }), type: OCI_INDEX_TYPE, want: /manifests\[0\]\.platform\.os is a number, not a string$/ },
    { name: 'index entry digest not a digest', root: indexOf({ digest: 'sha256:1234', platform: { os: 'linux', architecture: 'amd64' } }), type: OCI_INDEX_TYPE, want: /manifests\[0\]\.digest "sha256:1234" is not a valid digest$/ },
    { name: 'index entry size negative', root: indexOf({ size: -5, platform: { os: 'linux', architecture: 'amd64' } }), type: OCI_INDEX_TYPE, want: /manifests\[0\]\.size is -5, not a size/ },
    { ...alteredImage((m) => ((m.layers as Record<string, unknown>[])[0]!.mediaType = 5)), name: 'layer mediaType a number', type: OCI_MANIFEST_TYPE, want: /layers\[0\]\.mediaType is a number, not a string$/ },
    { ...alteredImage((m) => ((m.layers as Record<string, unknown>[])[1]!.size = '12')), name: 'layer size a string', type: OCI_MANIFEST_TYPE, want: /layers\[1\]\.size is a string, not a size$/ },
    { ...alteredImage(() => {}, { config: { Env: ['PATH=/bin', 42] } }), name: 'config Env entry a number', type: OCI_MANIFEST_TYPE, want: /image config config\.Env\[1\] is a number, not a string$/ },
    { ...alteredImage(() => {}, { config: { Labels: { version: 1.5 } } }), name: 'config label a number', type: OCI_MANIFEST_TYPE, want: /config\.Labels\["version"\] is a number, not a string$/ },
    { ...alteredImage(() => {}, { architecture: 64 }), name: 'config architecture a number', type: OCI_MANIFEST_TYPE, want: /image config architecture is a number, not a string$/ },
    {
      name: '100,000 nested arrays as the config descriptor',
      root: Buffer.from(`{"schemaVersion":2,"mediaType":"${OCI_MANIFEST_TYPE}","config":${deepArrays(100_000)},"layers":[]}`),
      type: OCI_MANIFEST_TYPE,
      want: /: config is a list, not an object$/,
    },
    { ...alteredImage(() => {}, `"config":{"Cmd":${deepArrays(100_000)}}`), name: '100,000 nested arrays as Cmd', type: OCI_MANIFEST_TYPE, want: /config\.Cmd\[0\] is a list, not a string$/ },
    { ...alteredImage((m) => ((m.layers as Record<string, unknown>[])[0]!.digest = 'sha256:' + 'f'.repeat(3 * 1024 * 1024))), name: 'a 3 MiB digest string', type: OCI_MANIFEST_TYPE, want: /layers\[0\]\.digest "sha256:f+…" is not a valid digest$/ },
  ];
  for (const c of cases) {
    const reg = await documentRegistry(c.root, c.type, c.blobs);
    try {
      const r = await runImgx(['pull', '--platform', 'linux/amd64', `${reg.host}/test/app:v1`]);
      assert.is(r.code, 8, `${c.name}: ${r.stderr}`);
      assert.match(oneCleanLine(r.stderr), c.want, c.name);
      assert.is(cacheState(r.cacheDir).refs, 0, c.name);
    } finally {
      await reg.close();
    }
  }
});

test('a 50 MB token answer is refused while it streams: exit 7, one line', async () => {
  let written = 0;
  const reg = await fakeRegistry({
    bearer: true,
    intercept(req, res) {
      if (!req.url!.startsWith('/token')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"token":"');
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      const more = () => {
        while (written < 50 * 1024 * 1024 && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end('"}');
      };
      more();
      return true;
    },
  });
  try {
    const r = await runImgx(['pull', `${reg.host}/test/app:v1`]);
    assert.is(r.code, 7, r.stderr);
    assert.match(oneCleanLine(r.stderr), /token service at 127\.0\.0\.1:\d+ answered more than 1048576 bytes$/);
    assert.ok(written < 50 * 1024 * 1024, `the client stopped reading (${written} bytes written)`);
  } finally {
    await reg.close();
  }
});

test.run();
