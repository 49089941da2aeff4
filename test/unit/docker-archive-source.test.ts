import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects as rejectsWith } from '../helpers/rejects.ts';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { openDockerArchive } from '../../src/image/docker-archive-source.ts';
import { sha256 } from '../../src/image/digest.ts';
import { parseManifestBlob, type ImageManifest } from '../../src/image/manifest.ts';
import { DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST } from '../../src/image/media-types.ts';
import { writeOciLayout } from '../fixtures/oci-layout.ts';
import { makeTar, tarDirectory, type TarEntry } from '../fixtures/tar.ts';
import { tempDir } from '../helpers/tempdir.ts';

const layerA = makeTar([{ name: 'a', content: 'A' }]);
const layerB = makeTar([{ name: 'b', content: 'B'.repeat(3000) }]);
const hex = (d: string) => d.slice('sha256:'.length);

interface SavedSpec {
  tags: string[];
  layers: { bytes: Buffer; gzip?: boolean }[];
}

/** A legacy `docker save` archive: `<id>/layer.tar` per layer, a repeated layer stored once and linked. */
function dockerSave(images: SavedSpec[], tweak: (entries: TarEntry[]) => void = () => {}): { file: string; configs: Buffer[] } {
  const entries: TarEntry[] = [];
  const manifest: unknown[] = [];
  const configs: Buffer[] = [];
  const stored = new Map<string, string>();
  images.forEach((im, n) => {
    const diffIds = im.layers.map((l) => sha256(l.bytes));
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n, rootfs: { type: 'layers', diff_ids: diffIds } }));
    configs.push(config);
    const configName = `${hex(sha256(config))}.json`;
    entries.push({ name: configName, content: config });
    const layerNames = im.layers.map((l, i) => {
      const data = l.gzip ? gzipSync(l.bytes) : l.bytes;
      const id = hex(sha256(`${n}/${i}`));
      const name = `${id}/layer.tar`;
      const first = stored.get(sha256(data));
      if (first) entries.push({ name: `${id}/`, type: 'directory' }, { name, type: 'symlink', linkname: `../${first}` });
      else {
        stored.set(sha256(data), name);
        entries.push({ name: `${id}/`, type: 'directory' }, { name, content: data });
      }
      return name;
    });
    manifest.push({ Config: configName, RepoTags: im.tags, Layers: layerNames });
  });
  entries.push({ name: 'manifest.json', content: JSON.stringify(manifest) });
  tweak(entries);
  const file = join(tempDir(), 'saved.tar');
  writeFileSync(file, makeTar(entries));
  return { file, configs };
}


test('legacy layout: a schema 2 manifest is synthesised from the layer bytes', async () => {
  const { file, configs } = dockerSave([{ tags: ['nginx:latest'], layers: [{ bytes: layerA }, { bytes: layerB }, { bytes: layerA }] }]);
  const src = await openDockerArchive(file);
  const root = await src.getRootManifest();
  assert.is(root.mediaType, DOCKER_MANIFEST);
  assert.is(root.digest, sha256(root.bytes));
  const m = parseManifestBlob(root) as ImageManifest;
  assert.equal(m.config, { mediaType: DOCKER_CONFIG, size: configs[0]!.length, digest: sha256(configs[0]!) });
  assert.equal(
    m.layers.map((l) => [l.mediaType, l.digest, l.size]),
    [layerA, layerB, layerA].map((l) => [DOCKER_LAYER, sha256(l), l.length]),
  );
  // Key order is fixed: the bytes are what a Go client would write.
  assert.ok(root.bytes.toString().startsWith('{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":'));
  assert.ok((await buffer(await src.openBlob(m.layers[2]!))).equals(layerA), 'the linked layer.tar');
  assert.ok((await src.readBlob(m.config)).equals(configs[0]!));
  assert.equal(await src.listTags!(), ['nginx:latest']);
  assert.ok((await src.getManifest({ digest: root.digest })).bytes.equals(root.bytes));
  await rejectsWith(src.getManifest({ digest: sha256('other') }), 'IMGX_MANIFEST_UNKNOWN');
  await rejectsWith(src.openBlob({ mediaType: DOCKER_LAYER, digest: sha256('other'), size: 5 }), 'IMGX_BLOB_UNKNOWN');
  await src.close();

  const again = await openDockerArchive(file, 'nginx');
  assert.ok((await again.getRootManifest()).bytes.equals(root.bytes), 'deterministic');
  await again.close();
});

test('references are compared normalised; @N picks by position', async () => {
  const { file } = dockerSave([
    { tags: ['nginx:latest', 'nginx:1.25'], layers: [{ bytes: layerA }] },
    { tags: ['localhost:5000/team/app:v1'], layers: [{ bytes: layerB }] },
    { tags: [], layers: [{ bytes: layerA }, { bytes: layerB }] },
  ]);
  const configOf = async (ref?: string) => {
    const src = await openDockerArchive(file, ref);
    const m = parseManifestBlob(await src.getRootManifest()) as ImageManifest;
    const n = JSON.parse((await src.readBlob(m.config)).toString()).n;
    await src.close();
    return n;
  };
  for (const ref of ['nginx', 'nginx:latest', 'docker.io/library/nginx:latest', 'index.docker.io/library/nginx', 'library/nginx:1.25', '@0']) {
    assert.is(await configOf(ref), 0, ref);
  }
  assert.is(await configOf('localhost:5000/team/app:v1'), 1);
  assert.is(await configOf('@2'), 2);
  await rejectsWith(openDockerArchive(file), 'IMGX_USAGE', /3 images.*@0 \(nginx:latest, nginx:1\.25\), @1 \(localhost:5000\/team\/app:v1\), @2/);
  await rejectsWith(openDockerArchive(file, '@3'), 'IMGX_MANIFEST_UNKNOWN');
  await rejectsWith(openDockerArchive(file, 'nginx:1.26'), 'IMGX_MANIFEST_UNKNOWN', /no image tagged nginx:1\.26/);
  await rejectsWith(openDockerArchive(file, 'localhost:5000/team/app'), 'IMGX_MANIFEST_UNKNOWN');
  await rejectsWith(openDockerArchive(file, 'Not A Ref'), 'IMGX_BAD_REFERENCE');
});

test('a gzip-compressed layer file gets the gzip media type and its compressed digest', async () => {
  const { file } = dockerSave([{ tags: ['x:1'], layers: [{ bytes: layerA, gzip: true }, { bytes: layerB }] }]);
  const src = await openDockerArchive(file, 'x:1');
  const m = parseManifestBlob(await src.getRootManifest()) as ImageManifest;
  assert.is(m.layers[0]!.mediaType, DOCKER_LAYER_GZIP);
  assert.is(m.layers[0]!.digest, sha256(gzipSync(layerA)));
  assert.is(m.layers[1]!.mediaType, DOCKER_LAYER);
  await src.close();
});

test('inconsistent archives are refused', async () => {
  // A layer that does not match the config's diff_id.
  const swapped = dockerSave([{ tags: ['x:1'], layers: [{ bytes: layerA }] }], (entries) => {
    const layer = entries.find((e) => e.name.endsWith('/layer.tar'))!;
    layer.content = layerB;
  });
  const src = await openDockerArchive(swapped.file);
  await rejectsWith(src.getRootManifest(), 'IMGX_DIGEST_MISMATCH', /diff_id/);
  await src.close();
  // A config whose name is not its digest.
  const renamed = dockerSave([{ tags: ['x:1'], layers: [{ bytes: layerA }] }], (entries) => {
    const config = entries.find((e) => e.name.endsWith('.json'))!;
    config.content = Buffer.from(String(config.content).replace('"n":0', '"n":1'));
  });
  await rejectsWith(openDockerArchive(renamed.file), 'IMGX_DIGEST_MISMATCH', /config/);
  // A layer that is not in the archive.
  const missing = dockerSave([{ tags: ['x:1'], layers: [{ bytes: layerA }] }], (entries) => {
    entries.splice(entries.findIndex((e) => e.name.endsWith('/layer.tar')), 1);
  });
  await rejectsWith(openDockerArchive(missing.file), 'IMGX_BAD_ARCHIVE', /layer ".*layer.tar" is not in the archive/);
  // Not a docker archive at all.
  const file = join(tempDir(), 'plain.tar');
  writeFileSync(file, makeTar([{ name: 'hello', content: 'hi' }]));
  await rejectsWith(openDockerArchive(file), 'IMGX_BAD_ARCHIVE', /no manifest\.json/);
  writeFileSync(file, makeTar([{ name: 'manifest.json', content: '{"not":"a list"}' }]));
  await rejectsWith(openDockerArchive(file), 'IMGX_BAD_ARCHIVE', /not a list/);
});

/** A Docker ≥ 25 `docker save`: an OCI layout plus manifest.json pointing into blobs/. */
function dockerSaveOci(platforms?: { architecture: string; os: string }[]): { file: string; root: string; config: string } {
  const dir = tempDir();
  const layout = join(dir, 'layout');
  const img = writeOciLayout(layout, {
    layers: [layerA, layerB],
    compression: 'none',
    tag: '1',
    annotations: { 'io.containerd.image.name': 'docker.io/library/app:1' },
    ...(platforms ? { platforms } : {}),
  });
  // Another image in the same layout, to be skipped.
  writeOciLayout(layout, { layers: [layerB], compression: 'none', tag: '2', annotations: { 'io.containerd.image.name': 'docker.io/library/app:2' } });
  const m = img.manifests[0]!;
  const manifestJson = [{ Config: `blobs/sha256/${hex(m.config.digest)}`, RepoTags: ['app:1'], Layers: m.layers.map((l) => `blobs/sha256/${hex(l.digest)}`) }];
  writeFileSync(join(layout, 'manifest.json'), JSON.stringify(manifestJson));
  const file = join(dir, 'saved.tar');
  writeFileSync(file, tarDirectory(layout));
  return { file, root: img.root.digest, config: m.config.digest };
}

test('Docker ≥ 25 archives serve the original OCI manifest', async () => {
  const saved = dockerSaveOci();
  const src = await openDockerArchive(saved.file, 'app:1');
  const root = await src.getRootManifest();
  assert.is(root.digest, saved.root);
  assert.is(root.mediaType, OCI_MANIFEST);
  const m = parseManifestBlob(root) as ImageManifest;
  assert.is(m.config.digest, saved.config);
  assert.ok((await buffer(await src.openBlob(m.layers[1]!))).equals(layerB));
  assert.is(src.displayName, `docker-archive:${saved.file}:app:1`);
  await src.close();
});

test('Docker ≥ 25 archives with an image index keep the index as root', async () => {
  const saved = dockerSaveOci([{ architecture: 'amd64', os: 'linux' }]);
  const src = await openDockerArchive(saved.file);
  const root = await src.getRootManifest();
  assert.is(root.digest, saved.root);
  assert.is(root.mediaType, OCI_INDEX);
  await src.close();
});

test.run();
