import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { openOciLayout } from '../../src/image/oci-layout-source.ts';
import { OCI_INDEX, OCI_MANIFEST, OCI_LAYER_GZIP } from '../../src/image/media-types.ts';
import { MANIFEST_CAP } from '../../src/image/source.ts';
import { sha256 } from '../../src/image/digest.ts';
import type { Descriptor } from '../../src/image/descriptor.ts';
import { writeOciLayout } from '../fixtures/oci-layout.ts';
import { makeTar } from '../fixtures/tar.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { haveTool } from '../helpers/tools.ts';

const layer1 = makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/hostname', content: 'imgx\n' }]);
const layer2 = makeTar([{ name: 'bin/hello', content: '#!/bin/sh\necho hi\n', mode: 0o755 }]);

async function rejectsWith(p: Promise<unknown> | (() => Promise<unknown>), code: string, pattern?: RegExp): Promise<Error> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.is((e as { code?: string }).code, code, `expected ${code}, got ${(e as Error).message}`);
    if (pattern) assert.match((e as Error).message, pattern);
    return e as Error;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

function blobFile(dir: string, digest: string): string {
  return join(dir, 'blobs', ...digest.split(':'));
}

test('one image, no tag: manifest, config and layers come back verified', async () => {
  const dir = tempDir();
  const img = writeOciLayout(dir, { layers: [layer1, layer2] });
  const src = await openOciLayout(dir);
  assert.is(src.displayName, `oci:${dir}`);
  const root = await src.getRootManifest();
  assert.is(root.digest, img.root.digest);
  assert.is(root.digest, sha256(root.bytes));
  assert.is(root.mediaType, OCI_MANIFEST);
  const m = img.manifests[0]!;
  const config = await src.readBlob(m.config);
  assert.equal(JSON.parse(config.toString()).rootfs.diff_ids, [sha256(layer1), sha256(layer2)]);
  let progress = 0;
  const stream = await src.openBlob(m.layers[1]!, { onProgress: (n) => (progress += n) });
  const bytes = await buffer(stream);
  assert.ok(bytes.equals(img.blobs.get(m.layers[1]!.digest)!));
  assert.is(progress, m.layers[1]!.size);
  assert.is(m.layers[1]!.mediaType, OCI_LAYER_GZIP);
  assert.equal(await src.listTags!(), []);
  await src.close();
});

test('tag selection, and the error listing tags when none is given', async () => {
  const dir = tempDir();
  const a = writeOciLayout(dir, { layers: [layer1], tag: 'v1' });
  const b = writeOciLayout(dir, { layers: [layer1, layer2], tag: 'v2' });
  const v1 = await openOciLayout(dir, 'v1');
  assert.is((await v1.getRootManifest()).digest, a.root.digest);
  assert.is(v1.displayName, `oci:${dir}:v1`);
  assert.equal(await v1.listTags!(), ['v1', 'v2']);
  const v2 = await openOciLayout(dir, 'v2');
  assert.is((await v2.getRootManifest()).digest, b.root.digest);
  await rejectsWith(openOciLayout(dir), 'IMGX_USAGE', /2 images.*v1, v2/);
  await rejectsWith(openOciLayout(dir, 'v3'), 'IMGX_MANIFEST_UNKNOWN', /no image tagged "v3".*v1, v2/);
});

test('a full containerd name (io.containerd.image.name) selects by its tag', async () => {
  const dir = tempDir();
  const img = writeOciLayout(dir, { layers: [layer1], annotations: { 'io.containerd.image.name': 'docker.io/library/app:1.2' } });
  writeOciLayout(dir, { layers: [layer2], tag: 'other' });
  assert.is((await (await openOciLayout(dir, '1.2')).getRootManifest()).digest, img.root.digest);
  assert.is((await (await openOciLayout(dir, 'docker.io/library/app:1.2')).getRootManifest()).digest, img.root.digest);
});

test('an image index as root; children by digest', async () => {
  const dir = tempDir();
  const img = writeOciLayout(dir, {
    layers: [layer1],
    tag: 'multi',
    platforms: [
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux', variant: 'v8' },
    ],
  });
  const src = await openOciLayout(dir, 'multi');
  const root = await src.getRootManifest();
  assert.is(root.mediaType, OCI_INDEX);
  const arm = img.manifests[1]!;
  const child = await src.getManifest({ digest: arm.descriptor.digest });
  assert.is(child.mediaType, OCI_MANIFEST);
  assert.ok(child.bytes.equals(arm.bytes));
  assert.is(JSON.parse((await src.readBlob(arm.config)).toString()).architecture, 'arm64');
});

test('a tampered layer blob fails its stream with IMGX_DIGEST_MISMATCH', async () => {
  const dir = tempDir();
  const img = writeOciLayout(dir, { layers: [layer1, layer2], compression: 'none' });
  const desc = img.manifests[0]!.layers[0]!;
  const file = blobFile(dir, desc.digest);
  const bytes = readFileSync(file);
  bytes[600] = bytes[600]! ^ 0xff;
  writeFileSync(file, bytes);
  const src = await openOciLayout(dir);
  await rejectsWith(async () => buffer(await src.openBlob(desc)), 'IMGX_DIGEST_MISMATCH', /digest mismatch/);
  // A blob of the wrong size is refused before it streams.
  writeFileSync(file, bytes.subarray(0, 100));
  await rejectsWith(src.openBlob(desc), 'IMGX_SIZE_MISMATCH');
  rmSync(file);
  await rejectsWith(src.openBlob(desc), 'IMGX_BLOB_UNKNOWN');
});

test('tampered manifests and configs are refused', async () => {
  const dir = tempDir();
  const img = writeOciLayout(dir, { layers: [layer1] });
  const m = img.manifests[0]!;
  writeFileSync(blobFile(dir, m.config.digest), Buffer.from(JSON.stringify({ architecture: 'evil', os: 'linux0' }).padEnd(m.config.size, ' ')));
  const src = await openOciLayout(dir);
  await rejectsWith(src.readBlob(m.config), 'IMGX_DIGEST_MISMATCH');
  writeFileSync(blobFile(dir, m.descriptor.digest), Buffer.from(m.bytes.toString().replace('"schemaVersion":2', '"schemaVersion":3')));
  await rejectsWith(src.getRootManifest(), 'IMGX_DIGEST_MISMATCH');
});

test('an invalid digest in index.json is refused before it becomes a path', async () => {
  const dir = tempDir();
  writeOciLayout(dir, { layers: [layer1] });
  // If the digest were used as a path, this is the file it would reach.
  mkdirSync(join(dir, 'escape'));
  writeFileSync(join(dir, 'escape', 'x'), '{}');
  for (const digest of ['sha256:../../escape/x', 'sha256:' + 'A'.repeat(64), 'md5:' + 'a'.repeat(32), 'sha256:' + 'a'.repeat(63)]) {
    writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest, size: 2 }] }));
    await rejectsWith(openOciLayout(dir), 'IMGX_BAD_DIGEST');
  }
  // Digests from callers too.
  const ok = tempDir();
  writeOciLayout(ok, { layers: [layer1] });
  const src = await openOciLayout(ok);
  await rejectsWith(src.getManifest({ digest: 'sha256:../../../etc/passwd' }), 'IMGX_BAD_DIGEST');
  await rejectsWith(src.openBlob({ mediaType: OCI_LAYER_GZIP, digest: 'sha256:../index.json', size: 1 } as Descriptor), 'IMGX_BAD_DIGEST');
  await rejectsWith(src.readBlob({ mediaType: OCI_LAYER_GZIP, digest: 'sha256/../../index.json', size: 1 }), 'IMGX_BAD_DIGEST');
});

test('manifests and configs over the 4 MiB cap are refused', async () => {
  const dir = tempDir();
  const big = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [], pad: 'x'.repeat(MANIFEST_CAP) }));
  const digest = sha256(big);
  writeOciLayout(dir, { layers: [layer1] });
  writeFileSync(blobFile(dir, digest), big);
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest, size: big.length }] }));
  const src = await openOciLayout(dir);
  await rejectsWith(src.getRootManifest(), 'IMGX_MANIFEST_TOO_LARGE');
  // Lying about the size does not get past the cap either.
  await rejectsWith(src.getManifest({ digest, size: 100 }), 'IMGX_MANIFEST_TOO_LARGE');
  await rejectsWith(src.readBlob({ mediaType: 'x', digest, size: big.length }), 'IMGX_MANIFEST_TOO_LARGE');
});

test('not a layout, or an unknown layout version', async () => {
  const dir = tempDir();
  await rejectsWith(openOciLayout(dir), 'IMGX_BAD_ARCHIVE', /no oci-layout/);
  await rejectsWith(openOciLayout(join(dir, 'missing')), 'IMGX_NOT_FOUND');
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '2.0.0' }));
  await rejectsWith(openOciLayout(dir), 'IMGX_UNSUPPORTED', /2\.0\.0/);
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await rejectsWith(openOciLayout(dir), 'IMGX_BAD_ARCHIVE', /without index.json/);
  writeFileSync(join(dir, 'index.json'), '{"manifests": [{"digest": 5}]}');
  await rejectsWith(openOciLayout(dir), 'IMGX_BAD_MANIFEST', /manifests\[0\]/);
});

if (haveTool('mkfifo')) {
  test('a FIFO planted as a blob is refused, not waited on', async () => {
    const dir = tempDir();
    const img = writeOciLayout(dir, { layers: [layer1] });
    const desc = img.manifests[0]!.layers[0]!;
    rmSync(blobFile(dir, desc.digest));
    execFileSync('mkfifo', [blobFile(dir, desc.digest)]);
    const src = await openOciLayout(dir);
    await rejectsWith(src.openBlob(desc), 'IMGX_BAD_ARCHIVE', /not a regular file/);
  });
}

test.run();
