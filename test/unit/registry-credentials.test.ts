import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eraseCredentials, getCredentials, storeCredentials } from '../../src/registry/credentials.ts';
import { dockerConfigPath } from '../../src/registry/docker-config.ts';

const root = mkdtempSync(join(tmpdir(), 'imgx-cred-'));
const bin = join(root, 'bin');
mkdirSync(bin);
// A credential helper speaking the docker-credential-helpers protocol, keeping its state in `bin`.
writeFileSync(
  join(bin, 'docker-credential-testhelper'),
  `#!/bin/sh
d=$(dirname "$0")
case "$1" in
  get)
    read -r url
    f="$d/creds-$(printf %s "$url" | tr -c 'A-Za-z0-9' _)"
    if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) cat > "$d/stored.json" ;;
  erase) read -r url; printf %s "$url" > "$d/erased" ;;
  *) exit 2 ;;
esac
`,
);
chmodSync(join(bin, 'docker-credential-testhelper'), 0o755);
process.env.PATH = `${bin}:${process.env.PATH}`;

function helperHas(url: string, username: string, secret: string): void {
  writeFileSync(join(bin, `creds-${url.replace(/[^A-Za-z0-9]/g, '_')}`), JSON.stringify({ ServerURL: url, Username: username, Secret: secret }));
}

let n = 0;
function configFile(content: unknown): string {
  const p = join(root, `config-${n++}.json`);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content));
  return p;
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

test.after(() => rmSync(root, { recursive: true, force: true }));

test('auths: base64 auth, username/password, identitytoken; keys matched by host', async () => {
  const dockerConfig = configFile({
    auths: {
      'reg.example.test:5000': { auth: b64('alice:pa:ss') },
      'https://other.example.test/v1/': { username: 'bob', password: 'pw' },
      'https://index.docker.io/v1/': { auth: b64('hub:hubpw') },
      'tok.example.test': { username: '<token>', identitytoken: 'refresh-me' },
      'empty.example.test': {},
    },
  });
  assert.equal(await getCredentials('reg.example.test:5000', { dockerConfig }), { username: 'alice', password: 'pa:ss' });
  assert.equal(await getCredentials('other.example.test', { dockerConfig }), { username: 'bob', password: 'pw' });
  assert.equal(await getCredentials('docker.io', { dockerConfig }), { username: 'hub', password: 'hubpw' });
  assert.equal(await getCredentials('tok.example.test', { dockerConfig }), { username: '<token>', identityToken: 'refresh-me' });
  assert.is(await getCredentials('empty.example.test', { dockerConfig }), undefined);
  assert.is(await getCredentials('reg.example.test', { dockerConfig }), undefined, 'the port is part of the host');
  assert.is(await getCredentials('nowhere.example.test', { dockerConfig }), undefined);
  assert.is(await getCredentials('x', { dockerConfig: join(root, 'missing.json') }), undefined);
});

test('docker.io key written as docker.io matches too', async () => {
  const dockerConfig = configFile({ auths: { 'docker.io': { auth: b64('u:p') } } });
  assert.equal(await getCredentials('docker.io', { dockerConfig }), { username: 'u', password: 'p' });
});

test('discovery: REGISTRY_AUTH_FILE, then $DOCKER_CONFIG/config.json, then ~/.docker/config.json', async () => {
  const saved = { ...process.env };
  try {
    const home = join(root, 'home');
    mkdirSync(join(home, '.docker'), { recursive: true });
    writeFileSync(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { h: { auth: b64('home:1') } } }));
    const dc = join(root, 'dc');
    mkdirSync(dc);
    writeFileSync(join(dc, 'config.json'), JSON.stringify({ auths: { h: { auth: b64('dc:2') } } }));
    const authFile = configFile({ auths: { h: { auth: b64('raf:3') } } });
    delete process.env.REGISTRY_AUTH_FILE;
    delete process.env.DOCKER_CONFIG;
    process.env.HOME = home;
    assert.equal(await getCredentials('h'), { username: 'home', password: '1' });
    process.env.DOCKER_CONFIG = dc;
    assert.equal(await getCredentials('h'), { username: 'dc', password: '2' });
    process.env.REGISTRY_AUTH_FILE = authFile;
    assert.equal(await getCredentials('h'), { username: 'raf', password: '3' });
    assert.is(dockerConfigPath('/explicit.json'), '/explicit.json');
  } finally {
    process.env = saved;
  }
});

test('credHelpers[host] and credsStore through a credential helper', async () => {
  helperHas('helped.example.test', 'carol', 's3cret');
  helperHas('https://index.docker.io/v1/', '<token>', 'idtok');
  const dockerConfig = configFile({
    credHelpers: { 'helped.example.test': 'testhelper' },
    auths: { 'plain.example.test': { auth: b64('dave:pw') } },
  });
  assert.equal(await getCredentials('helped.example.test', { dockerConfig }), { username: 'carol', password: 's3cret' });
  assert.equal(await getCredentials('plain.example.test', { dockerConfig }), { username: 'dave', password: 'pw' });

  const store = configFile({ credsStore: 'testhelper', auths: { 'plain.example.test': { auth: b64('dave:pw') } } });
  assert.equal(await getCredentials('docker.io', { dockerConfig: store }), { username: '', identityToken: 'idtok' });
  // Not in the helper: the file's entry still counts.
  assert.equal(await getCredentials('plain.example.test', { dockerConfig: store }), { username: 'dave', password: 'pw' });
  assert.is(await getCredentials('unknown.example.test', { dockerConfig: store }), undefined);
});

test('a missing helper does not stop anonymous access', async () => {
  const msgs: string[] = [];
  const dockerConfig = configFile({ credsStore: 'nosuchhelper' });
  assert.is(await getCredentials('x.example.test', { dockerConfig, debug: (m) => msgs.push(m) }), undefined);
  assert.match(msgs.join('\n'), /docker-credential-nosuchhelper: not found on PATH/);
});

test('an invalid config file → IMGX_CREDENTIALS', async () => {
  const dockerConfig = configFile('{ not json');
  try {
    await getCredentials('x', { dockerConfig });
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'IMGX_CREDENTIALS');
  }
});

test('storeCredentials writes atomically with mode 0600 and keeps other keys', async () => {
  const dir = join(root, 'store');
  const dockerConfig = join(dir, 'config.json');
  mkdirSync(dir);
  writeFileSync(
    dockerConfig,
    JSON.stringify({ auths: { 'https://reg.example.test/v1/': { auth: b64('old:old') }, 'keep.example.test': { auth: b64('k:k') } }, psFormat: 'table' }),
  );
  const where = await storeCredentials('reg.example.test', 'alice', 'new', { dockerConfig });
  assert.is(where, dockerConfig);
  const j = JSON.parse(readFileSync(dockerConfig, 'utf8'));
  assert.equal(j.auths, { 'https://reg.example.test/v1/': { auth: b64('alice:new') }, 'keep.example.test': { auth: b64('k:k') } });
  assert.is(j.psFormat, 'table');
  assert.is(statSync(dockerConfig).mode & 0o777, 0o600);
  assert.equal(readdirSync(dir), ['config.json'], 'no temp file left behind');
  assert.equal(await getCredentials('reg.example.test', { dockerConfig }), { username: 'alice', password: 'new' });

  // A new file in a new folder; Docker Hub under its historical key.
  const fresh = join(root, 'fresh', 'sub', 'config.json');
  await storeCredentials('docker.io', 'hub', 'pw', { dockerConfig: fresh });
  assert.equal(JSON.parse(readFileSync(fresh, 'utf8')), { auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } });
  assert.is(statSync(fresh).mode & 0o777, 0o600);
});

test('storeCredentials and eraseCredentials use the configured helper', async () => {
  const dockerConfig = configFile({ credsStore: 'testhelper', auths: { 'reg.example.test': { auth: b64('stale:x') } } });
  const before = readFileSync(dockerConfig, 'utf8');
  assert.is(await storeCredentials('reg.example.test', 'erin', 'pw', { dockerConfig }), 'docker-credential-testhelper');
  assert.equal(JSON.parse(readFileSync(join(bin, 'stored.json'), 'utf8')), { ServerURL: 'reg.example.test', Username: 'erin', Secret: 'pw' });
  assert.is(readFileSync(dockerConfig, 'utf8'), before);

  assert.ok(await eraseCredentials('reg.example.test', { dockerConfig }));
  assert.is(readFileSync(join(bin, 'erased'), 'utf8'), 'reg.example.test');
  assert.equal(JSON.parse(readFileSync(dockerConfig, 'utf8')), { credsStore: 'testhelper', auths: {} });
});

test('eraseCredentials from the file; false when nothing was stored', async () => {
  const dockerConfig = configFile({ auths: { 'https://index.docker.io/v1/': { auth: b64('a:b') }, other: { auth: b64('c:d') } } });
  assert.ok(await eraseCredentials('docker.io', { dockerConfig }));
  assert.equal(JSON.parse(readFileSync(dockerConfig, 'utf8')).auths, { other: { auth: b64('c:d') } });
  assert.not.ok(await eraseCredentials('docker.io', { dockerConfig }));
  const none = join(root, 'never.json');
  assert.not.ok(await eraseCredentials('x', { dockerConfig: none }));
  assert.not.ok(existsSync(none));
});

test.run();
