// `imgx pull` end to end against a loopback registry that misbehaves on purpose: what reaches the
// cache, what the user sees, and the exit status.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeOciLayout, type WrittenImage } from '../fixtures/oci-layout.ts';
import { makeTar } from '../fixtures/tar.ts';
import { runImgx } from '../helpers/imgx.ts';
import { tempDir } from '../helpers/tempdir.ts';

interface Behaviour {
  /** Called for every request first; returns true when it answered. */
  intercept?: (req: IncomingMessage, res: ServerResponse, count: number) => boolean;
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

test.run();
