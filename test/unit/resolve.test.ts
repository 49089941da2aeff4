import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { resolveImage } from '../../src/image/resolve.ts';
import { parsePlatform } from '../../src/image/platform.ts';
import { MemorySource } from '../helpers/memory-source.ts';

function singleArm64() {
  const src = new MemorySource();
  const img = src.addImage([randomBytes(100)], 'arm64');
  src.setRoot(img.manifest);
  return { src, img };
}

test('a single-platform image is taken for the default (host) platform', async () => {
  const { src, img } = singleArm64();
  const r = await resolveImage(src, parsePlatform('linux/amd64'));
  assert.is(r.manifest.digest, img.manifest.digest);
  assert.is(r.config.architecture, 'arm64');
});

test('an explicit --platform that the single image does not have is an error naming what it has', async () => {
  const { src } = singleArm64();
  try {
    await resolveImage(src, parsePlatform('linux/amd64'), true);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'IMGX_NO_MATCHING_PLATFORM');
    assert.match((e as Error).message, 'available: linux/arm64');
  }
  const ok = await resolveImage(src, parsePlatform('linux/aarch64'), true);
  assert.is(ok.config.architecture, 'arm64');
});

test('a manifest whose layers and diff_ids disagree is refused', async () => {
  const src = new MemorySource();
  const layer = src.put(randomBytes(10));
  const config = src.put(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = src.put(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.digest, size: layer.size }],
    }),
  );
  src.setRoot({ digest: manifest.digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
  try {
    await resolveImage(src, parsePlatform('linux/amd64'));
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'IMGX_BAD_MANIFEST');
  }
});

test.run();
