// `imgx login` / `imgx logout` against Debian's docker-registry (Basic and token auth): credentials
// are checked before they are stored, stored where Docker keeps them, and used by later pulls.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTools } from '../helpers/tools.ts';
import { startRegistry } from '../helpers/registry.ts';
import { skopeoCopy } from '../helpers/skopeo.ts';
import { runImgx } from '../helpers/imgx.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { REPO_ROOT } from '../helpers/imgx.ts';

if (requireTools(test, ['docker-registry', 'skopeo', 'htpasswd', 'openssl'])) {
  for (const auth of ['htpasswd', 'token'] as const) {
    test(`login checks, stores (0600) and logout removes credentials (${auth})`, async () => {
      const reg = await startRegistry({ auth });
      try {
        const [user, pass] = Object.entries(reg.users)[0]!;
        await skopeoCopy(`oci:${join(REPO_ROOT, 'examples', 'hello')}:latest`, `docker://${reg.host}/private/hello:1`, [], { dest: `${user}:${pass}` });
        const cfgDir = tempDir('imgx-login-');
        const env = { DOCKER_CONFIG: cfgDir };
        const cfgFile = join(cfgDir, 'config.json');
        writeFileSync(cfgFile, JSON.stringify({ auths: {}, psFormat: 'keep me' }));

        const anon = await runImgx(['pull', '-q', `${reg.host}/private/hello:1`], { env });
        assert.is(anon.code, 5, `anonymous pull refused: ${anon.stderr}`);

        const bad = await runImgx(['login', reg.host, '-u', user, '--password-stdin'], { env, input: 'wrong-password\n' });
        assert.is(bad.code, 5, bad.stderr);
        assert.is(bad.stderr.trim().split('\n').length, 1);
        assert.equal(JSON.parse(readFileSync(cfgFile, 'utf8')).auths, {}, 'nothing stored for bad credentials');

        const good = await runImgx(['login', reg.host, '-u', user, '--password-stdin'], { env, input: `${pass}\n` });
        assert.is(good.code, 0, good.stderr);
        assert.match(good.stdout, 'Login succeeded');
        const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
        assert.is(cfg.psFormat, 'keep me', 'other keys kept');
        assert.is(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), `${user}:${pass}`);
        assert.is(statSync(cfgFile).mode & 0o777, 0o600);

        const pulled = await runImgx(['pull', '-q', `${reg.host}/private/hello:1`], { env });
        assert.is(pulled.code, 0, pulled.stderr);

        const out = await runImgx(['logout', reg.host], { env });
        assert.is(out.code, 0, out.stderr);
        assert.not.ok(JSON.parse(readFileSync(cfgFile, 'utf8')).auths[reg.host]);
        const again = await runImgx(['pull', '-q', `${reg.host}/private/hello:1`], { env });
        assert.is(again.code, 5, again.stderr);
      } finally {
        await reg.stop();
      }
    });
  }

  test('login without a password or user is a usage error (exit 2)', async () => {
    const r = await runImgx(['login', '127.0.0.1:1', '-u', 'x'], { input: '' });
    assert.is(r.code, 2, r.stderr);
    const r2 = await runImgx(['login', '127.0.0.1:1', '--password-stdin'], { input: 'x' });
    assert.is(r2.code, 2, r2.stderr);
    assert.ok(!existsSync(join(r.cacheDir, 'index.json')));
  });
}

test.run();
