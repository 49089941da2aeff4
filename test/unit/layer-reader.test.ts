import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from '../helpers/rejects.ts';
import { buffer } from 'node:stream/consumers';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { sha256 } from '../../src/image/digest.ts';
import { DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD } from '../../src/image/media-types.ts';
import { resolveImage } from '../../src/image/resolve.ts';
import { layerReaders, layerReadersFromBuffers } from '../../src/layers/layer-reader.ts';
import { readTar } from '../../src/layers/tar-reader.ts';
import { makeTar } from '../fixtures/tar.ts';
import { MemorySource } from '../helpers/memory-source.ts';


const tars = [
  makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/a', content: 'a'.repeat(100_000) }]),
  makeTar([{ name: 'etc/b', content: 'b' }]),
  makeTar([{ name: 'etc/.wh.a' }]),
];

/** An image in a memory source whose layers are stored as `blobs` under `mediaTypes`, with the given diff_ids. */
function image(blobs: Buffer[], mediaTypes: string[], diffIds: string[]) {
  const src = new MemorySource();
  const layers = blobs.map((b, i) => ({ mediaType: mediaTypes[i]!, digest: src.put(b).digest, size: b.length }));
  const config = src.put(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
  const manifest = src.put(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers,
    }),
  );
  src.setRoot({ digest: manifest.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
  return src;
}

async function readers(src: MemorySource) {
  return layerReaders(src, await resolveImage(src, { os: 'linux', architecture: 'amd64' }));
}

test('layerReadersFromBuffers: uncompressed layers with their digests as diff_ids', async () => {
  const layers = layerReadersFromBuffers(tars);
  assert.is(layers.length, 3);
  for (const [i, l] of layers.entries()) {
    assert.is(l.index, i);
    assert.is(l.desc.mediaType, OCI_LAYER);
    assert.is(l.diffId, sha256(tars[i]!));
    assert.is(l.desc.digest, l.diffId);
    // Opened twice, the same bytes (pass 1 and pass 2 both open a layer).
    assert.ok((await buffer(await l.open())).equals(tars[i]!));
    assert.ok((await buffer(await l.open({ verifyDiffId: false }))).equals(tars[i]!));
  }
});

test('layerReaders: gzip, zstd and uncompressed layers, checked against their diff_ids', async () => {
  const blobs = [gzipSync(tars[0]!), zstdCompressSync(tars[1]!), tars[2]!];
  const src = image(blobs, [DOCKER_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER], tars.map((t) => sha256(t)));
  const layers = await readers(src);
  assert.equal(
    layers.map((l) => [l.index, l.desc.mediaType, l.diffId]),
    [
      [0, DOCKER_LAYER_GZIP, sha256(tars[0]!)],
      [1, OCI_LAYER_ZSTD, sha256(tars[1]!)],
      [2, OCI_LAYER, sha256(tars[2]!)],
    ],
  );
  for (const l of layers) assert.ok((await buffer(await l.open())).equals(tars[l.index]!));
  const names: string[] = [];
  for (const l of layers) for await (const e of readTar(await l.open(), { skipBodies: true })) names.push(e.header.name);
  assert.equal(names, ['etc/', 'etc/a', 'etc/b', 'etc/.wh.a']);
});

test('a diff_id mismatch fails at the end of the stream (and through readTar), unless not verified', async () => {
  const wrong = sha256('something else');
  const src = image([gzipSync(tars[0]!)], [OCI_LAYER_GZIP], [wrong]);
  const [layer] = await readers(src);
  await rejects(buffer(await layer!.open()), 'IMGX_DIFFID_MISMATCH', new RegExp(`layer 0 \\(sha256:[0-9a-f]{12}\\): .*expected ${wrong}, got ${sha256(tars[0]!)}`));
  // readTar reads past the end-of-archive marker, so pass 1 sees the mismatch.
  await rejects(
    (async () => {
      for await (const _ of readTar(await layer!.open(), { skipBodies: true }));
    })(),
    'IMGX_DIFFID_MISMATCH',
  );
  assert.ok((await buffer(await layer!.open({ verifyDiffId: false }))).equals(tars[0]!));
});

test('a media type that is not a layer we know is IMGX_UNSUPPORTED naming it', async () => {
  const src = image([tars[0]!], ['application/vnd.oci.image.layer.v1.tar+bzip2'], [sha256(tars[0]!)]);
  const [layer] = await readers(src);
  await rejects(layer!.open(), 'IMGX_UNSUPPORTED', /application\/vnd\.oci\.image\.layer\.v1\.tar\+bzip2/);
});

test('data that does not match its media type is IMGX_BAD_LAYER', async () => {
  const src = image([zstdCompressSync(tars[0]!)], [OCI_LAYER_GZIP], [sha256(tars[0]!)]);
  const [layer] = await readers(src);
  await rejects(buffer(await layer!.open()), 'IMGX_BAD_LAYER', /layer 0 .*gzip-compressed but the data is zstd-compressed/);
});

test('a blob that does not match its descriptor fails with the source error', async () => {
  const blob = gzipSync(tars[0]!);
  const src = image([blob], [OCI_LAYER_GZIP], [sha256(tars[0]!)]);
  const [layer] = await readers(src);
  src.corrupt.set(layer!.desc.digest, gzipSync(tars[1]!));
  await rejects(buffer(await layer!.open()), 'IMGX_SIZE_MISMATCH');
});

test('an abort signal ends the stream with IMGX_INTERRUPTED', async () => {
  const [layer] = layerReadersFromBuffers([makeTar([{ name: 'big', content: Buffer.alloc(4 << 20) }])]);
  const ac = new AbortController();
  const s = await layer!.open({ signal: ac.signal });
  const p = buffer(s);
  ac.abort();
  await rejects(p, 'IMGX_INTERRUPTED');
  const pre = new AbortController();
  pre.abort();
  await rejects(buffer(await layer!.open({ signal: pre.signal })), 'IMGX_INTERRUPTED');
});

test.run();
