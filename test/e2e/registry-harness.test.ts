// The registry harness itself: in each auth mode, skopeo (an independent client) pushes an image
// and reads it back, so a failing pull test points at imgx, not at the harness.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { requireTools } from '../helpers/tools.ts';

if (requireTools(test, ['docker-registry', 'skopeo', 'htpasswd', 'openssl'])) {
  const { startRegistry } = await import('../helpers/registry.ts');
  const { skopeoCopy, skopeoInspect, skopeoInspectText } = await import('../helpers/skopeo.ts');
  const { pushOciLayout } = await import('../helpers/push.ts');
  const { tempDir } = await import('../helpers/tempdir.ts');
  const { writeOciLayout } = await import('../fixtures/oci-layout.ts');
  const { makeTar } = await import('../fixtures/tar.ts');

  const layout = join(tempDir(), 'layout');
  const written = writeOciLayout(layout, {
    layers: [makeTar([{ name: 'hello.txt', type: 'file', mode: 0o644, content: 'hello from the harness\n' }])],
    tag: 'v1',
  });
  const digest = written.root.digest;

  // uvu's assert has no async `rejects`.
  const rejects = async (p: Promise<unknown>, re: RegExp) => {
    let err: unknown;
    try {
      await p;
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof Error, `expected a rejection matching ${re}`);
    assert.match((err as Error).message, re);
  };
  const CREDS = 'alice:wonderland';
  const users = { alice: 'wonderland' };

  test('auth none: skopeo pushes and reads back', async () => {
    const r = await startRegistry();
    try {
      assert.match(r.host, /^127\.0\.0\.1:\d+$/);
      await skopeoCopy(`oci:${layout}:v1`, `docker://${r.host}/harness/none:v1`);
      const info = await skopeoInspect<{ Digest: string }>(`docker://${r.host}/harness/none:v1`);
      assert.is(info.Digest, digest);
      const raw = await skopeoInspectText(`docker://${r.host}/harness/none:v1`, { raw: true });
      assert.is(`sha256:${createHash('sha256').update(raw).digest('hex')}`, digest);
    } finally {
      await r.stop();
    }
  });

  test('auth htpasswd: push needs creds, wrong ones are refused', async () => {
    const r = await startRegistry({ auth: 'htpasswd', users });
    try {
      await rejects(skopeoCopy(`oci:${layout}:v1`, `docker://${r.host}/harness/basic:v1`), /unauthorized|authentication required/i);
      await skopeoCopy(`oci:${layout}:v1`, `docker://${r.host}/harness/basic:v1`, [], { dest: CREDS });
      const info = await skopeoInspect<{ Digest: string }>(`docker://${r.host}/harness/basic:v1`, { creds: CREDS });
      assert.is(info.Digest, digest);
      await rejects(skopeoInspect(`docker://${r.host}/harness/basic:v1`, { creds: 'alice:nope' }), /unauthorized|authentication required/i);
      await rejects(skopeoInspect(`docker://${r.host}/harness/basic:v1`), /unauthorized|authentication required/i);
    } finally {
      await r.stop();
    }
  });

  test('auth token: bearer tokens are issued, counted, and checked', async () => {
    const r = await startRegistry({ auth: 'token', users });
    try {
      assert.ok(r.tokenRequests);
      await skopeoCopy(`oci:${layout}:v1`, `docker://${r.host}/harness/token:v1`, [], { dest: CREDS });
      const afterPush = r.tokenRequests!();
      assert.ok(afterPush > 0, 'the push asked for a token');
      const info = await skopeoInspect<{ Digest: string }>(`docker://${r.host}/harness/token:v1`, { creds: CREDS });
      assert.is(info.Digest, digest);
      assert.ok(r.tokenRequests!() > afterPush);
      await rejects(skopeoInspect(`docker://${r.host}/harness/token:v1`, { creds: 'alice:nope' }), /invalid username or password|unauthorized/i);
      // Without anonymous pull, a token without credentials grants nothing.
      await rejects(skopeoInspect(`docker://${r.host}/harness/token:v1`), /unauthorized|authentication required|denied/i);
    } finally {
      await r.stop();
    }
  });

  test('auth token with anonymous pull: pull without creds, push still needs them', async () => {
    const r = await startRegistry({ auth: 'token', users, anonymousPull: true });
    try {
      await rejects(skopeoCopy(`oci:${layout}:v1`, `docker://${r.host}/harness/anon:v1`), /unauthorized|authentication required|denied/i);
      await skopeoCopy(`oci:${layout}:v1`, `docker://${r.host}/harness/anon:v1`, [], { dest: CREDS });
      const info = await skopeoInspect<{ Digest: string }>(`docker://${r.host}/harness/anon:v1`);
      assert.is(info.Digest, digest);
    } finally {
      await r.stop();
    }
  });

  test('pushOciLayout keeps uncompressed layers byte for byte', async () => {
    const r = await startRegistry();
    try {
      const dir = join(tempDir(), 'plain');
      const w = writeOciLayout(dir, {
        layers: [makeTar([{ name: 'a.txt', type: 'file', mode: 0o644, content: 'plain\n' }])],
        compression: 'none',
        tag: 'p',
      });
      const pushed = await pushOciLayout(dir, `${r.host}/harness/plain:p`);
      assert.is(pushed, w.root.digest);
      const raw = await skopeoInspectText(`docker://${r.host}/harness/plain:p`, { raw: true });
      assert.is(raw, w.rootBytes.toString('utf8'));
      const m = JSON.parse(raw) as { layers: { mediaType: string; digest: string }[] };
      assert.is(m.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar');
      assert.is(m.layers[0]!.digest, w.diffIds[0]);
    } finally {
      await r.stop();
    }
  });
}

test.run();
