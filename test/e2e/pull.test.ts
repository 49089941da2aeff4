// Acceptance tests of `imgx pull` and `imgx inspect --json` against a real registry (Debian's
// docker-registry) in each auth mode, with images pushed by skopeo and read back by skopeo as the
// independent reference: media types (OCI, Docker v2s2), compressions (gzip, zstd, none),
// multi-platform indexes, error exit statuses, and the same image through every transport.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTools } from '../helpers/tools.ts';
import type { ImageDescription } from '../../src/image/describe.ts';

if (requireTools(test, ['docker-registry', 'skopeo', 'htpasswd', 'openssl'])) {
  const { startRegistry, freePort } = await import('../helpers/registry.ts');
  type Registry = Awaited<ReturnType<typeof startRegistry>>;
  const { skopeoCopy, skopeoInspectText } = await import('../helpers/skopeo.ts');
  const { pushOciLayout } = await import('../helpers/push.ts');
  const { runImgx } = await import('../helpers/imgx.ts');
  const { tempDir } = await import('../helpers/tempdir.ts');
  const { writeOciLayout } = await import('../fixtures/oci-layout.ts');
  const { makeTar } = await import('../fixtures/tar.ts');

  // ---- the inspect --json contract ------------------------------------------------------------

  // The shape `inspect --json` documents (README); the assertions below check the values.
  type Description = ImageDescription;

  interface RawManifest {
    mediaType?: string;
    config: { mediaType: string; digest: string; size: number };
    layers: { mediaType: string; digest: string; size: number }[];
    manifests?: { mediaType: string; digest: string; size: number; platform?: { os: string; architecture: string; variant?: string } }[];
  }

  const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const HOST_ARCH = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;

  // ---- fixtures: one image, several encodings ------------------------------------------------

  const layerTars = [
    makeTar([
      { name: 'etc/', type: 'directory', mode: 0o755 },
      { name: 'etc/os-release', content: 'ID=imgxtest\nVERSION_ID=1\n', mode: 0o644 },
      { name: 'bin/', type: 'directory', mode: 0o755 },
      { name: 'bin/app', content: '#!/bin/sh\necho app\n', mode: 0o755 },
      { name: 'bin/app-link', type: 'symlink', linkname: 'app' },
    ]),
    makeTar([
      { name: 'srv/', type: 'directory', mode: 0o755 },
      { name: 'srv/data.bin', content: createHash('sha512').update('imgx').digest(), mode: 0o600, uid: 1000, gid: 1000 },
      { name: 'srv/notes.txt', content: 'lorem ipsum dolor sit amet\n'.repeat(2000), mode: 0o644 },
    ]),
    makeTar([{ name: 'etc/app.conf', content: 'listen = 8080\n', mode: 0o644 }]),
  ];
  const CREATED = '2024-02-03T04:05:06Z';
  const imageConfig = {
    created: CREATED,
    author: 'imgx tests <tests@imgx.invalid>',
    config: {
      Entrypoint: ['/bin/app'],
      Cmd: ['--serve', '--port=8080'],
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'APP_MODE=test'],
      User: '1000:1000',
      WorkingDir: '/srv',
      ExposedPorts: { '8080/tcp': {}, '53/udp': {} },
      Volumes: { '/srv/data': {} },
      Labels: { 'org.opencontainers.image.title': 'imgx-e2e', 'com.example.empty': '' },
    },
    history: [
      { created: CREATED, created_by: 'ADD rootfs /' },
      { created: CREATED, created_by: 'ENV APP_MODE=test', empty_layer: true },
      { created: CREATED, created_by: 'COPY srv /srv', comment: 'data' },
      { created: CREATED, created_by: 'COPY app.conf /etc/' },
    ],
  };

  const work = tempDir('imgx-pull-e2e-');
  const layout = join(work, 'layout');
  const images = {
    gzip: writeOciLayout(layout, { layers: layerTars, compression: 'gzip', tag: 'gzip', config: imageConfig }),
    zstd: writeOciLayout(layout, { layers: layerTars, compression: 'zstd', tag: 'zstd', config: imageConfig }),
    none: writeOciLayout(layout, { layers: layerTars, compression: 'none', tag: 'none', config: imageConfig }),
    multi: writeOciLayout(layout, {
      layers: layerTars,
      compression: 'gzip',
      tag: 'multi',
      config: imageConfig,
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64' },
      ],
    }),
  };
  const DIFF_IDS = images.gzip.diffIds;

  const USER = 'puller';
  const PASS = 'correct horse battery staple';
  const CREDS = `${USER}:${PASS}`;

  let open: Registry; // no auth
  let basic: Registry; // htpasswd
  let token: Registry; // bearer tokens, anonymous pull allowed

  test.before(async () => {
    [open, basic, token] = await Promise.all([
      startRegistry(),
      startRegistry({ auth: 'htpasswd', users: { [USER]: PASS } }),
      startRegistry({ auth: 'token', users: { [USER]: PASS }, anonymousPull: true }),
    ]);
    await Promise.all([
      skopeoCopy(`oci:${layout}:gzip`, `docker://${open.host}/test/app:gzip`),
      skopeoCopy(`oci:${layout}:gzip`, `docker://${open.host}/test/app:v2s2`, ['--format', 'v2s2']),
      skopeoCopy(`oci:${layout}:zstd`, `docker://${open.host}/test/app:zstd`),
      // skopeo gzips plain layers on the way to a registry; this pushes them as they are.
      pushOciLayout(layout, `${open.host}/test/app:none`, { layoutTag: 'none' }),
      skopeoCopy(`oci:${layout}:multi`, `docker://${open.host}/test/multi:1`, ['--all']),
      skopeoCopy(`oci:${layout}:gzip`, `docker://${basic.host}/test/private:1`, [], { dest: CREDS }),
      skopeoCopy(`oci:${layout}:gzip`, `docker://${token.host}/test/private:1`, [], { dest: CREDS }),
    ]);
  });

  test.after(async () => {
    await Promise.all([open?.stop(), basic?.stop(), token?.stop()]);
  });

  // ---- helpers ------------------------------------------------------------------------------

  /** A DOCKER_CONFIG dir whose config.json holds `auths` for `host`. */
  function dockerConfig(host: string, creds: string): string {
    const dir = tempDir('imgx-dockercfg-');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(creds).toString('base64') } } }));
    return dir;
  }

  async function raw(ref: string, creds?: string): Promise<{ text: string; digest: string; json: RawManifest }> {
    const text = await skopeoInspectText(ref, creds ? { raw: true, creds } : { raw: true });
    return { text, digest: sha256(text), json: JSON.parse(text) as RawManifest };
  }

  function fileDigest(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const h = createHash('sha256');
      createReadStream(path)
        .on('data', (d) => h.update(d))
        .on('error', reject)
        .on('end', () => resolve(`sha256:${h.digest('hex')}`));
    });
  }

  /** The cache is an OCI layout whose every blob hashes to its name; returns the digests it holds. */
  async function verifyCache(dir: string): Promise<Set<string>> {
    assert.ok(existsSync(join(dir, 'oci-layout')), 'cache has oci-layout');
    const layoutJson = JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8')) as { imageLayoutVersion?: string };
    assert.type(layoutJson.imageLayoutVersion, 'string');
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { schemaVersion?: number; manifests?: unknown[] };
    assert.is(index.schemaVersion, 2);
    assert.ok(Array.isArray(index.manifests), 'index.json has manifests');
    const blobDir = join(dir, 'blobs', 'sha256');
    const names = readdirSync(blobDir).filter((n) => !n.startsWith('.'));
    const have = new Set<string>();
    for (const name of names) {
      assert.match(name, /^[0-9a-f]{64}$/, `blob file name ${name}`);
      assert.is(await fileDigest(join(blobDir, name)), `sha256:${name}`, `blob ${name} matches its name`);
      have.add(`sha256:${name}`);
    }
    return have;
  }

  function assertHolds(have: Set<string>, digests: string[], what: string): void {
    for (const d of digests) assert.ok(have.has(d), `cache holds ${what} ${d}`);
  }

  async function pullOk(args: string[], env?: Record<string, string>): Promise<{ cacheDir: string; stderr: string; stdout: string }> {
    const r = await runImgx(['pull', ...args], env ? { env } : {});
    assert.is(r.code, 0, `imgx pull ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r;
  }

  async function inspectJson(args: string[], env?: Record<string, string>): Promise<Description> {
    const r = await runImgx(['inspect', '--json', ...args], env ? { env } : {});
    assert.is(r.code, 0, `imgx inspect --json ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    try {
      return JSON.parse(r.stdout) as Description;
    } catch {
      throw new Error(`inspect --json printed no JSON: ${r.stdout.slice(0, 300)}`);
    }
  }

  /** Fails with `code`, exactly one line on stderr, no stack trace. */
  async function failsWith(args: string[], code: number, env?: Record<string, string>): Promise<string> {
    const r = await runImgx(args, env ? { env } : {});
    assert.is(r.code, code, `imgx ${args.join(' ')}: want exit ${code}, got ${r.code}; stderr: ${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    assert.is(lines.length, 1, `one line on stderr, got: ${JSON.stringify(r.stderr)}`);
    assert.not.match(r.stderr, /^\s+at\s/m, 'no stack trace');
    assert.not.match(r.stderr, /internal error/i, 'not reported as an internal error');
    return lines[0]!;
  }

  /** Everything inspect --json says about a single-platform image, against the raw manifest and config. */
  function checkDescription(d: Description, m: RawManifest, manifestDigest: string, configBytes: Buffer): void {
    assert.is(d.manifest.digest, manifestDigest);
    assert.is(d.manifest.mediaType, m.mediaType);
    assert.type(d.manifest.size, 'number');
    assert.is(d.config.digest, m.config.digest);
    assert.is(d.config.digest, sha256(configBytes));
    assert.is(d.config.mediaType, m.config.mediaType);
    assert.is(d.config.size, configBytes.length);
    assert.equal(
      d.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
      m.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
    );
    assert.equal(
      d.layers.map((l) => l.diffId),
      DIFF_IDS,
    );
    const c = imageConfig.config;
    assert.equal(d.config.entrypoint, c.Entrypoint);
    assert.equal(d.config.cmd, c.Cmd);
    assert.equal(d.config.env, c.Env);
    assert.is(d.config.user, c.User);
    assert.is(d.config.workingDir, c.WorkingDir);
    assert.equal([...d.config.exposedPorts].sort(), Object.keys(c.ExposedPorts).sort());
    assert.equal(d.config.volumes, Object.keys(c.Volumes));
    assert.equal(d.config.labels, c.Labels);
    assert.is(d.config.created, CREATED);
    assert.is(d.config.author, imageConfig.author);
    assert.equal(
      d.history.map((h) => ({ createdBy: h.createdBy, emptyLayer: h.emptyLayer })),
      imageConfig.history.map((h) => ({ createdBy: h.created_by, emptyLayer: h.empty_layer === true })),
    );
    assert.is(d.history[2]!.comment, 'data');
    assert.is(d.history[0]!.created, CREATED);
    const layerSum = m.layers.reduce((a, l) => a + l.size, 0);
    assert.ok(d.totalSize >= layerSum && d.totalSize <= layerSum + configBytes.length + d.manifest.size, `totalSize ${d.totalSize} covers the layers (${layerSum})`);
    assert.is(d.platform.os, 'linux');
  }

  async function checkPulledImage(ref: string, tag: string, pullArgs: string[] = [], env?: Record<string, string>, creds?: string) {
    const m = await raw(`docker://${ref}`, creds);
    const configBytes = Buffer.from(await skopeoInspectText(`docker://${ref}`, creds ? { config: true, raw: true, creds } : { config: true, raw: true }));
    const pulled = await pullOk([...pullArgs, ref], env);
    const have = await verifyCache(pulled.cacheDir);
    assertHolds(have, [m.digest], 'the manifest');
    assertHolds(have, [m.json.config.digest], 'the config');
    assertHolds(have, m.json.layers.map((l) => l.digest), `the ${tag} layer`);
    const d = await inspectJson([ref], { ...env, IMGX_CACHE: pulled.cacheDir });
    assert.is(d.digest, m.digest);
    assert.is(d.mediaType, m.json.mediaType);
    assert.ok(d.reference.includes('test/'), `reference names the repository: ${d.reference}`);
    assert.type(d.source, 'string');
    checkDescription(d, m.json, m.digest, configBytes);
    return { m, d };
  }

  // ---- pulls ----------------------------------------------------------------------------------

  test('anonymous pull of an OCI image with gzip layers; inspect --json describes it', async () => {
    const { m, d } = await checkPulledImage(`${open.host}/test/app:gzip`, 'gzip');
    assert.is(m.json.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.ok(d.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+gzip'));
    assert.is(d.digest, images.gzip.root.digest, 'skopeo pushed the manifest unchanged');
    assert.is(d.platforms, undefined, 'a plain manifest has no platform list');
  });

  test('docker:// transport prefix and --quiet: nothing on stderr', async () => {
    const r = await runImgx(['pull', '--quiet', `docker://${open.host}/test/app:gzip`]);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    const have = await verifyCache(r.cacheDir);
    assertHolds(have, images.gzip.manifests[0]!.layers.map((l) => l.digest), 'layer');
  });

  test('pull by digest', async () => {
    const r = await pullOk([`${open.host}/test/app@${images.gzip.root.digest}`]);
    assertHolds(await verifyCache(r.cacheDir), [images.gzip.root.digest], 'the manifest');
  });

  test('zstd layers', async () => {
    const { d } = await checkPulledImage(`${open.host}/test/app:zstd`, 'zstd');
    assert.ok(d.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd media types');
  });

  test('uncompressed layers', async () => {
    const { d } = await checkPulledImage(`${open.host}/test/app:none`, 'uncompressed');
    assert.ok(d.layers.every((l) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar'), 'plain tar media types');
    assert.equal(
      d.layers.map((l) => l.digest),
      DIFF_IDS,
      'a plain layer is its own diff id',
    );
  });

  test('Docker v2s2 manifest', async () => {
    const { m, d } = await checkPulledImage(`${open.host}/test/app:v2s2`, 'v2s2');
    assert.is(m.json.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.is(d.config.mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.ok(d.layers.every((l) => l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar.gzip'));
  });

  test('Basic auth with credentials from DOCKER_CONFIG', async () => {
    const env = { DOCKER_CONFIG: dockerConfig(basic.host, CREDS) };
    await checkPulledImage(`${basic.host}/test/private:1`, 'gzip', [], env, CREDS);
  });

  test('Basic auth registry without credentials → exit 5', async () => {
    await failsWith(['pull', `${basic.host}/test/private:1`], 5);
  });

  test('Basic auth with wrong credentials → exit 5', async () => {
    await failsWith(['pull', `${basic.host}/test/private:1`], 5, { DOCKER_CONFIG: dockerConfig(basic.host, `${USER}:wrong`) });
    await failsWith(['inspect', `${basic.host}/test/private:1`], 5, { DOCKER_CONFIG: dockerConfig(basic.host, `${USER}:wrong`) });
  });

  test('Bearer token flow with credentials from DOCKER_CONFIG', async () => {
    const before = token.tokenRequests!();
    const env = { DOCKER_CONFIG: dockerConfig(token.host, CREDS) };
    await checkPulledImage(`${token.host}/test/private:1`, 'gzip', [], env, CREDS);
    assert.ok(token.tokenRequests!() > before, 'imgx asked the token server');
  });

  test('Bearer token flow, anonymous pull', async () => {
    const before = token.tokenRequests!();
    const r = await pullOk([`${token.host}/test/private:1`]);
    assertHolds(await verifyCache(r.cacheDir), images.gzip.manifests[0]!.layers.map((l) => l.digest), 'layer');
    assert.ok(token.tokenRequests!() > before, 'imgx asked the token server');
  });

  test('Bearer token flow with wrong credentials → exit 5', async () => {
    await failsWith(['pull', `${token.host}/test/private:1`], 5, { DOCKER_CONFIG: dockerConfig(token.host, `${USER}:wrong`) });
  });

  test('an index with two platforms: --platform linux/arm64 picks arm64', async () => {
    const ref = `${open.host}/test/multi:1`;
    const idx = await raw(`docker://${ref}`);
    assert.is(idx.digest, images.multi.root.digest, 'skopeo --all pushed the index unchanged');
    const arm = idx.json.manifests!.find((e) => e.platform?.architecture === 'arm64')!;
    const amd = idx.json.manifests!.find((e) => e.platform?.architecture === 'amd64')!;
    assert.ok(arm && amd);

    const d = await inspectJson(['--platform', 'linux/arm64', ref]);
    assert.is(d.digest, idx.digest, 'digest is the index digest');
    assert.is(d.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(
      (d.platforms ?? []).map((p) => `${p.os}/${p.architecture}@${p.digest}`).sort(),
      [`linux/amd64@${amd.digest}`, `linux/arm64@${arm.digest}`].sort(),
    );
    assert.is(d.manifest.digest, arm.digest);
    assert.equal({ os: d.platform.os, architecture: d.platform.architecture }, { os: 'linux', architecture: 'arm64' });
    const armManifest = JSON.parse((await raw(`docker://${open.host}/test/multi@${arm.digest}`)).text) as RawManifest;
    assert.is(d.config.digest, armManifest.config.digest);

    const pulled = await pullOk(['--platform', 'linux/arm64', ref]);
    const have = await verifyCache(pulled.cacheDir);
    assertHolds(have, [arm.digest, armManifest.config.digest, ...armManifest.layers.map((l) => l.digest)], 'arm64 blob');
    const config = JSON.parse(readFileSync(join(pulled.cacheDir, 'blobs', 'sha256', armManifest.config.digest.slice(7)), 'utf8')) as { architecture: string; os: string };
    assert.is(config.architecture, 'arm64');
    assert.is(config.os, 'linux');
  });

  test('an index without --platform picks the host platform', async () => {
    const ref = `${open.host}/test/multi:1`;
    const idx = await raw(`docker://${ref}`);
    const mine = idx.json.manifests!.find((e) => e.platform?.architecture === HOST_ARCH);
    if (!mine) return; // a host that is neither amd64 nor arm64 is covered by the exit-9 path elsewhere
    const d = await inspectJson([ref]);
    assert.is(d.manifest.digest, mine.digest);
    assert.is(d.platform.architecture, HOST_ARCH);
  });

  // ---- errors --------------------------------------------------------------------------------

  test('a bad reference → exit 3', async () => {
    await failsWith(['inspect', 'Bad//Ref'], 3);
  });

  test('an unknown tag → exit 4', async () => {
    await failsWith(['inspect', `${open.host}/test/app:no-such-tag`], 4);
    await failsWith(['pull', `${open.host}/test/app:no-such-tag`], 4);
  });

  test('an unknown repository → exit 4', async () => {
    await failsWith(['inspect', `${open.host}/test/nothing-here:1`], 4);
  });

  test('an unreachable registry (closed loopback port) → exit 6', async () => {
    const port = await freePort();
    await failsWith(['inspect', `127.0.0.1:${port}/test/app:1`], 6);
    await failsWith(['pull', `127.0.0.1:${port}/test/app:1`], 6);
  });

  // ---- one image, every transport ------------------------------------------------------------

  test('registry, oci:, oci-archive: and docker-archive: give the same config and layers', async () => {
    const ref = `${open.host}/test/app:none`;
    const dir = tempDir('imgx-transports-');
    mkdirSync(join(dir, 'layout'));
    // Without this flag skopeo would gzip the plain layers on the way into a layout.
    const keepPlain = ['--dest-oci-accept-uncompressed-layers'];
    await skopeoCopy(`docker://${ref}`, `oci:${join(dir, 'layout')}:t1`, keepPlain);
    await skopeoCopy(`docker://${ref}`, `oci-archive:${join(dir, 'image.oci.tar')}:t1`, keepPlain);
    await skopeoCopy(`docker://${ref}`, `docker-archive:${join(dir, 'image.docker.tar')}:test/app:none`);

    const fromRegistry = await inspectJson([`docker://${ref}`]);
    const fromLayout = await inspectJson([`oci:${join(dir, 'layout')}:t1`]);
    const fromOciArchive = await inspectJson([`oci-archive:${join(dir, 'image.oci.tar')}:t1`]);
    const fromDockerArchive = await inspectJson([`docker-archive:${join(dir, 'image.docker.tar')}`]);

    const layers = (d: Description) => d.layers.map((l) => ({ digest: l.digest, size: l.size, diffId: l.diffId }));
    for (const [name, d] of Object.entries({ fromLayout, fromOciArchive, fromDockerArchive })) {
      assert.is(d.config.digest, fromRegistry.config.digest, `${name}: config digest`);
      assert.equal(layers(d), layers(fromRegistry), `${name}: layers`);
      assert.equal(d.config.env, fromRegistry.config.env, `${name}: env`);
      assert.equal(d.history, fromRegistry.history, `${name}: history`);
    }
    assert.equal(
      layers(fromRegistry).map((l) => l.digest),
      DIFF_IDS,
    );
    assert.is(fromLayout.manifest.digest, fromRegistry.manifest.digest, 'oci: manifest digest');
    assert.is(fromOciArchive.manifest.digest, fromRegistry.manifest.digest, 'oci-archive: manifest digest');
    assert.is(fromRegistry.manifest.digest, images.none.root.digest);
  });
}

test.run();
