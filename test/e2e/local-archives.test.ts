// The three local sources agree on one image that skopeo, an independent producer, wrote as an
// OCI archive and as a docker archive.
import { suite, test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { gunzipSync } from 'node:zlib';
import { openDockerArchive } from '../../src/image/docker-archive-source.ts';
import { openOciArchive } from '../../src/image/oci-archive-source.ts';
import { openOciLayout } from '../../src/image/oci-layout-source.ts';
import { sha256 } from '../../src/image/digest.ts';
import { parseManifestBlob, type ImageManifest } from '../../src/image/manifest.ts';
import { DOCKER_LAYER, DOCKER_MANIFEST } from '../../src/image/media-types.ts';
import type { ImageSource } from '../../src/image/source.ts';
import { writeOciLayout, type WrittenImage } from '../fixtures/oci-layout.ts';
import { makeTar } from '../fixtures/tar.ts';
import { skopeo, skopeoCopy } from '../helpers/skopeo.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { requireTools } from '../helpers/tools.ts';

interface Seen {
  manifestDigest: string;
  manifest: ImageManifest;
  configDigest: string;
  diffIds: string[];
  /** sha256 of each layer after decompression. */
  uncompressed: string[];
}

async function look(src: ImageSource): Promise<Seen> {
  const root = await src.getRootManifest();
  const manifest = parseManifestBlob(root);
  if (manifest.kind !== 'manifest') throw new Error('expected a manifest');
  const config = JSON.parse((await src.readBlob(manifest.config)).toString());
  const uncompressed: string[] = [];
  for (const l of manifest.layers) {
    const bytes = await buffer(await src.openBlob(l));
    uncompressed.push(sha256(bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes));
  }
  await src.close();
  return { manifestDigest: root.digest, manifest, configDigest: manifest.config.digest, diffIds: config.rootfs.diff_ids, uncompressed };
}

if (requireTools(test, ['skopeo'])) {
  let dir: string;
  let image: WrittenImage;

  test.before(async () => {
    dir = tempDir();
    image = writeOciLayout(join(dir, 'layout'), {
      tag: 'v1',
      layers: [
        makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/os-release', content: 'ID=imgx\n' }]),
        makeTar([{ name: 'usr/bin/tool', content: Buffer.alloc(70_000, 7), mode: 0o755 }, { name: 'usr/bin/t', type: 'symlink', linkname: 'tool' }]),
        makeTar([{ name: 'etc/.wh.os-release' }]),
      ],
    });
    await skopeoCopy(`oci:${join(dir, 'layout')}:v1`, `oci-archive:${join(dir, 'oci.tar')}:v1`);
    await skopeoCopy(`oci:${join(dir, 'layout')}:v1`, `docker-archive:${join(dir, 'docker.tar')}:example.com/test/img:v1`);
  });

  test('oci layout, oci-archive and docker-archive agree on config and layers', async () => {
    const layout = await look(await openOciLayout(join(dir, 'layout'), 'v1'));
    const ociArchive = await look(await openOciArchive(join(dir, 'oci.tar'), 'v1'));
    const dockerArchive = await look(await openDockerArchive(join(dir, 'docker.tar'), 'example.com/test/img:v1'));

    assert.is(layout.manifestDigest, image.root.digest);
    assert.is(ociArchive.manifestDigest, layout.manifestDigest, 'oci-archive keeps the manifest byte for byte');
    for (const seen of [layout, ociArchive, dockerArchive]) {
      assert.is(seen.configDigest, image.manifests[0]!.config.digest);
      assert.equal(seen.diffIds, image.diffIds);
      assert.equal(seen.uncompressed, image.diffIds);
    }
    // skopeo stores docker-archive layers uncompressed: the synthesised digests are the diff_ids.
    assert.is(dockerArchive.manifest.mediaType, DOCKER_MANIFEST);
    assert.equal(dockerArchive.manifest.layers.map((l) => l.digest), image.diffIds);
    assert.ok(dockerArchive.manifest.layers.every((l) => l.mediaType === DOCKER_LAYER));
  });

  test('the synthesised manifest is deterministic and matches skopeo’s own, up to the layer type', async () => {
    const file = join(dir, 'docker.tar');
    const first = await openDockerArchive(file);
    const second = await openDockerArchive(file, 'example.com/test/img:v1');
    const a = await first.getRootManifest();
    const b = await second.getRootManifest();
    await first.close();
    await second.close();
    assert.ok(a.bytes.equals(b.bytes));
    // containers/image labels uncompressed archive layers as gzip; otherwise the bytes are the same.
    const theirs = (await skopeo(['inspect', '--raw', `docker-archive:${file}`])).stdout.trim();
    assert.is(a.bytes.toString(), theirs.replaceAll('rootfs.diff.tar.gzip', 'rootfs.diff.tar'));
  });

  test('tags and refs select images in the archives', async () => {
    const docker = await openDockerArchive(join(dir, 'docker.tar'), '@0');
    assert.equal(await docker.listTags!(), ['example.com/test/img:v1']);
    await docker.close();
    const oci = await openOciArchive(join(dir, 'oci.tar'));
    assert.equal(await oci.listTags!(), ['v1']);
    await oci.close();
    try {
      await openDockerArchive(join(dir, 'docker.tar'), 'example.com/test/img:v2');
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code?: string }).code, 'IMGX_MANIFEST_UNKNOWN');
      assert.match((e as Error).message, /example\.com\/test\/img:v1/);
    }
  });
}

test.run();

// umoci as another independent producer, of OCI layouts (manifests without a mediaType field).
const umoci = suite('umoci layouts');
if (requireTools(umoci, ['umoci'])) {
  umoci('an umoci-built layout opens, with both of its tags', async () => {
    const dir = tempDir();
    const layout = join(dir, 'L');
    const run = (...args: string[]) => execFileSync('umoci', args, { cwd: dir, stdio: 'pipe' });
    run('init', '--layout', layout);
    run('new', '--image', `${layout}:t`);
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src', 'f'), 'hi\n');
    run('insert', '--rootless', '--image', `${layout}:t`, join(dir, 'src'), '/opt');
    run('tag', '--image', `${layout}:t`, 't2');
    const src = await openOciLayout(layout);
    assert.equal(await src.listTags!(), ['t', 't2']);
    const seen = await look(src);
    assert.is(seen.manifest.layers.length, 1);
    assert.equal(seen.uncompressed, seen.diffIds);
  });
}
umoci.run();
