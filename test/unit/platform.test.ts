import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatPlatform, hostPlatform, parsePlatform, selectManifest } from '../../src/image/platform.ts';
import type { Descriptor } from '../../src/image/descriptor.ts';

const d = (n: number, os: string, architecture: string, variant?: string): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: 'sha256:' + String(n).repeat(64).slice(0, 64),
  size: 1,
  platform: { os, architecture, ...(variant ? { variant } : {}) },
});

const index = [d(1, 'linux', 'amd64'), d(2, 'linux', 'arm64', 'v8'), d(3, 'linux', 'arm', 'v6'), d(4, 'linux', 'arm', 'v7'), d(5, 'unknown', 'unknown')];

test('parsePlatform normalises architecture aliases', () => {
  assert.equal(parsePlatform('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.equal(parsePlatform('linux/aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.equal(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
  assert.equal(parsePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(parsePlatform('Linux/ARMHF'), { os: 'linux', architecture: 'arm', variant: 'v7' });
});

test('parsePlatform rejects malformed strings with a usage error', () => {
  for (const bad of ['linux', 'linux/', 'a/b/c/d', 'linux/amd 64']) {
    try {
      parsePlatform(bad);
      assert.unreachable(bad);
    } catch (e) {
      assert.is((e as { code: string }).code, 'IMGX_USAGE');
    }
  }
});

test('selectManifest picks exact matches, arm64 with or without v8', () => {
  assert.is(selectManifest(index, parsePlatform('linux/amd64'), 'x').digest, index[0]!.digest);
  assert.is(selectManifest(index, parsePlatform('linux/arm64'), 'x').digest, index[1]!.digest);
  assert.is(selectManifest(index, parsePlatform('linux/arm/v6'), 'x').digest, index[2]!.digest);
  assert.is(selectManifest(index, parsePlatform('linux/arm/v7'), 'x').digest, index[3]!.digest);
});

test('selectManifest falls back to a lower arm variant, never a higher one', () => {
  const only6 = [index[2]!];
  assert.is(selectManifest(only6, parsePlatform('linux/arm/v7'), 'x').digest, index[2]!.digest);
  const only7 = [index[3]!];
  assert.throws(() => selectManifest(only7, parsePlatform('linux/arm/v6'), 'x'));
});

test('no match: error lists available platforms and skips attestations', () => {
  try {
    selectManifest(index, parsePlatform('linux/s390x'), 'docker://r/x:1');
    assert.unreachable();
  } catch (e) {
    const err = e as { code: string; message: string; available: string[] };
    assert.is(err.code, 'IMGX_NO_MATCHING_PLATFORM');
    assert.match(err.message, 'linux/amd64, linux/arm64, linux/arm/v6, linux/arm/v7');
    assert.not.match(err.message, 'unknown');
  }
});

test('host platform is a linux platform', () => {
  const h = hostPlatform();
  assert.is(h.os, 'linux');
  assert.ok(formatPlatform(h).startsWith('linux/'));
});

test.run();
