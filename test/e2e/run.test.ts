// The acceptance test of `imgx run`, for both backends (runc, and the native core), on a real Debian
// userland pulled from a loopback registry: the image's files, exit statuses, -e/-w/-u, pid 1, the
// hostname, --net none, volumes, runs isolated from each other and from the cached tree, an image
// whose config names a USER, one-line failures with their own statuses, signals forwarded; then the
// native core without root (a test user, mapped to root inside; with subordinate ids for a USER).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEBIAN_IMAGE_TOOLS, debianImage, ociRef, type DebianImage } from '../fixtures/debian-image.ts';
import { IMGX_BIN, NODE_BIN, REPO_ROOT, runImgx, runImgxAs, type ImgxOptions, type ImgxResult } from '../helpers/imgx.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { skopeoCopy } from '../helpers/skopeo.ts';
import { mountTable } from '../helpers/host-state.ts';
import { removeTempDir, tempDir } from '../helpers/tempdir.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';

const TOOLS = [...DEBIAN_IMAGE_TOOLS, 'skopeo', 'docker-registry', 'runc', 'cc', 'setpriv', 'useradd', 'newuidmap', 'newgidmap', 'script', 'umoci'];
const LONG = 10 * 60_000;
const TEST_USER = 'imgx-run-test';
const SUBID_START = 300000;

/** Every file of a tree with its type, mode, owner, size and mtime: enough to see any change. */
function treeListing(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = rel ? join(root, rel) : root;
    const st = statSync(p, { throwIfNoEntry: false, bigint: false }) ?? undefined;
    const l = st && (rel ? lstatLine(p, rel) : '');
    if (l) out.push(l);
    if (st?.isDirectory() && !statIsLink(p)) for (const n of readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return out;
}

function statIsLink(p: string): boolean {
  return spawnSync('test', ['-L', p]).status === 0;
}

function lstatLine(p: string, rel: string): string {
  const st = spawnSync('stat', ['-c', '%F %a %u:%g %s %Y', p], { encoding: 'utf8' }).stdout.trim();
  return `${rel} ${st}`;
}

function ensureTestUser(): { uid: number; gid: number } {
  if (spawnSync('id', ['-u', TEST_USER]).status !== 0) execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER]);
  const uid = Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', TEST_USER], { encoding: 'utf8' }).trim());
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
    if (!text.split('\n').some((l) => l.startsWith(`${TEST_USER}:`))) appendFileSync(f, `${text && !text.endsWith('\n') ? '\n' : ''}${TEST_USER}:${SUBID_START}:65536\n`);
  }
  return { uid, gid };
}

if (requireTools(test, TOOLS) && requireRoot(test)) {
  let image: DebianImage;
  let registry: Registry | undefined;
  let ref = '';
  let userRef = '';
  let work = '';
  let cache = '';
  let debianVersion = '';

  test.before(async () => {
    execFileSync('sh', [join(REPO_ROOT, 'native', 'build.sh')], { stdio: ['ignore', 'ignore', 'pipe'] });
    image = await debianImage('small');
    registry = await startRegistry();
    work = tempDir('imgx-run-');
    cache = join(work, 'cache');
    ref = `${registry.host}/imgx-test/debian:small`;
    await skopeoCopy(ociRef(image), `docker://${ref}`);
    // The same image with `USER nobody` in its config, made by umoci (an independent tool).
    const layout = join(work, 'layout');
    cpSync(image.layout, layout, { recursive: true });
    execFileSync('umoci', ['config', '--image', `${layout}:${image.tag}`, '--tag', 'with-user', '--config.user', 'nobody']);
    userRef = `${registry.host}/imgx-test/debian:with-user`;
    await skopeoCopy(`oci:${layout}:with-user`, `docker://${userRef}`);
    const cat = await runImgx(['cat', ref, '/etc/debian_version'], { env: { IMGX_CACHE: cache }, timeoutMs: LONG });
    assert.is(cat.code, 0, cat.stderr);
    debianVersion = cat.stdout.trim();
  });

  test.after(async () => {
    await registry?.stop();
    if (work) removeTempDir(work);
  });

  for (const runtime of ['runc', 'native'] as const) {
    const run = (args: string[], opts: ImgxOptions = {}) =>
      runImgx(['run', '--runtime', runtime, ...args], { ...opts, env: { IMGX_CACHE: cache, ...opts.env }, timeoutMs: opts.timeoutMs ?? LONG });
    const ok = (r: ImgxResult) => assert.is(r.code, 0, `imgx run failed (${r.code}): ${r.stderr}`);

    test(`${runtime}: cat /etc/debian_version prints the image's version`, async () => {
      const r = await run([ref, 'cat', '/etc/debian_version']);
      ok(r);
      assert.match(debianVersion, /^12\.\d+$/);
      assert.is(r.stdout.trim(), debianVersion);
    });

    test(`${runtime}: the command's exit status is imgx's`, async () => {
      const r = await run([ref, '--', 'sh', '-c', 'exit 7']);
      assert.is(r.code, 7, r.stderr);
      assert.is(r.stderr, '');
    });

    test(`${runtime}: -e, -w and -u (name and number) take effect`, async () => {
      const r = await run(['-e', 'GREETING=hello world', '-e', 'FROM_HOST', '-w', '/srv/made-by-run', '-u', 'nobody', ref, 'sh', '-c', 'echo "$GREETING|$FROM_HOST|$(pwd)|$(id -un):$(id -gn)|$HOME"'], {
        env: { FROM_HOST: 'passed' },
      });
      ok(r);
      assert.is(r.stdout.trim(), 'hello world|passed|/srv/made-by-run|nobody:nogroup|/nonexistent');
      const n = await run(['-u', '1234:5678', ref, 'sh', '-c', 'echo $(id -u):$(id -g)']);
      ok(n);
      assert.is(n.stdout.trim(), '1234:5678');
      const g = await run(['-u', 'daemon:mail', ref, 'id']);
      ok(g);
      assert.is(g.stdout.trim(), 'uid=1(daemon) gid=8(mail) groups=8(mail)');
    });

    test(`${runtime}: the process is pid 1 and sees its own hostname`, async () => {
      const r = await run(['--hostname', 'imgx-box', ref, 'sh', '-c', 'echo $$ $(hostname) $(cat /etc/hostname) $HOSTNAME']);
      ok(r);
      assert.is(r.stdout.trim(), '1 imgx-box imgx-box imgx-box');
      const d = await run([ref, 'hostname']);
      ok(d);
      assert.match(d.stdout.trim(), /^[0-9a-f]{12}$/, 'the default hostname is the run id');
      assert.is.not(d.stdout.trim(), execFileSync('hostname', { encoding: 'utf8' }).trim());
    });

    test(`${runtime}: --net none sees only lo, and lo is up`, async () => {
      const r = await run(['--net', 'none', ref, 'sh', '-c', 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags']);
      ok(r);
      const [ifaces, ...rest] = [r.stdout.trim().split('\n')[0], ...r.stdout.trim().split('\n').slice(1)];
      assert.is(ifaces, 'lo');
      assert.is(rest.length, 2, r.stdout);
      assert.ok((Number(rest[1]) & 1) === 1, `lo flags ${rest[1]} has IFF_UP`);
      const host = await run([ref, 'sh', '-c', 'tail -n +3 /proc/net/dev | wc -l']);
      ok(host);
      assert.ok(Number(host.stdout.trim()) >= 1);
    });

    test(`${runtime}: -v bind mounts are writable, :ro ones are not`, async () => {
      const vol = join(work, `vol-${runtime}`);
      mkdirSync(vol);
      writeFileSync(join(vol, 'in'), 'from the host\n');
      const rw = await run(['-v', `${vol}:/data`, ref, 'sh', '-c', 'cat /data/in; echo from the container > /data/out']);
      ok(rw);
      assert.is(rw.stdout, 'from the host\n');
      assert.is(readFileSync(join(vol, 'out'), 'utf8'), 'from the container\n');
      const ro = await run(['-v', `${vol}:/data:ro`, ref, 'sh', '-c', 'cat /data/in && echo x > /data/out2']);
      assert.is(ro.code, 2, ro.stderr);
      assert.match(ro.stderr, /Read-only file system/);
      assert.ok(!existsSync(join(vol, 'out2')));
    });

    test(`${runtime}: a file written in one run is absent from the next; the cached tree does not change`, async () => {
      const rootfsParent = join(cache, 'imgx-rootfs', 'sha256');
      const [cached] = readdirSync(rootfsParent).filter((n) => !n.startsWith('.'));
      assert.ok(cached, 'the rootfs is cached');
      const before = treeListing(join(rootfsParent, cached!));
      const mounts = mountTable();
      const w = await run([ref, 'sh', '-c', 'echo hi > /etc/written-by-run && rm -rf /usr/share/doc /etc/passwd && ls /usr/share/doc 2>&1 | wc -l']);
      ok(w);
      const r = await run([ref, 'sh', '-c', 'test -e /etc/written-by-run && echo present || echo absent; ls /usr/share/doc | wc -l; grep -c root /etc/passwd']);
      ok(r);
      const [written, docs, root] = r.stdout.trim().split('\n');
      assert.is(written, 'absent');
      assert.ok(Number(docs) > 10, `/usr/share/doc is back (${docs} entries)`);
      assert.is(root, '1');
      assert.equal(treeListing(join(rootfsParent, cached!)), before, 'the cached tree is unchanged');
      assert.is(mountTable(), mounts, 'nothing is left mounted on the host');
      assert.equal(readdirSync(join(cache, 'imgx-runs')), [], 'no run directory is left');
    });

    test(`${runtime}: an image with USER in its config runs as that user`, async () => {
      const r = await run([userRef, 'sh', '-c', 'id -un; grep CapEff /proc/self/status']);
      ok(r);
      assert.is(r.stdout.split('\n')[0], 'nobody');
      assert.match(r.stdout, /CapEff:\s+0000000000000000/);
      const root = await run(['-u', 'root', userRef, 'id', '-u']);
      ok(root);
      assert.is(root.stdout.trim(), '0');
    });

    test(`${runtime}: failures are one line with their own status`, async () => {
      const missing = await run([ref, 'no-such-command', '--flag']);
      assert.is(missing.code, 127);
      assert.is(missing.stderr, 'imgx: exec: "no-such-command": executable file not found in $PATH\n');
      const notExec = await run([ref, '/etc/passwd']);
      assert.is(notExec.code, 126);
      assert.is(notExec.stderr.trim().split('\n').length, 1, notExec.stderr);
      const user = await run(['-u', 'no-such-user', ref, 'id']);
      assert.is(user.code, 16);
      assert.is(user.stderr, "imgx: unable to find user no-such-user: no matching entries in the image's /etc/passwd\n");
      const group = await run(['-u', 'root:no-such-group', ref, 'id']);
      assert.is(group.code, 16);
      const vol = await run(['-v', '/no/such/dir:/x', ref, 'true']);
      assert.is(vol.code, 2);
      assert.is(vol.stderr, 'imgx: volume source /no/such/dir does not exist\n');
    });

    test(`${runtime}: signals reach the container and its status comes back`, async () => {
      const env = { ...process.env, NO_COLOR: '1', IMGX_CACHE: cache, DOCKER_CONFIG: tempDir('imgx-dockercfg-') };
      const child = spawn(NODE_BIN, [IMGX_BIN, 'run', '--runtime', runtime, ref, 'sh', '-c', 'trap "echo got TERM; exit 3" TERM; echo ready; while :; do sleep 0.1; done'], {
        cwd: REPO_ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.stdout.on('data', (d) => {
          out += d;
          if (out.includes('ready\n') && !out.includes('sent')) {
            out += 'sent';
            child.kill('SIGTERM');
          }
        });
        child.once('close', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.is(code, 3, `status ${code}: ${err}`);
      assert.match(out, /got TERM/);
    });

    test(`${runtime}: --keep keeps the run directory and says where`, async () => {
      const r = await run(['--keep', ref, 'sh', '-c', 'echo kept > /kept-file']);
      ok(r);
      const m = /kept run ([0-9a-f]{12}): (\S+)/.exec(r.stderr);
      assert.ok(m, r.stderr);
      const dir = m![2]!;
      assert.ok(existsSync(join(dir, 'config.json')));
      const file = runtime === 'runc' || existsSync(join(dir, 'upper')) ? join(dir, 'upper', 'kept-file') : join(dir, 'rootfs', 'kept-file');
      assert.is(readFileSync(file, 'utf8'), 'kept\n');
      removeTempDir(dir);
    });
  }

  test('runc: -t gives the container a terminal of its own; --read-only makes / read-only', async () => {
    // `script` (util-linux) gives imgx a terminal, as a person's shell would.
    const line = [NODE_BIN, IMGX_BIN, 'run', '--runtime', 'runc', '-t', ref, 'sh', '-c', "'tty; echo $TERM; exit 5'"].join(' ');
    const r = spawnSync('script', ['-qec', line, '/dev/null'], { encoding: 'utf8', env: { ...process.env, IMGX_CACHE: cache }, timeout: 60_000 });
    assert.is(r.status, 5, r.stderr);
    assert.match(r.stdout, /\/dev\/pts\/0\r?\n/);
    assert.match(r.stdout, /xterm/);
    const ro = await runImgx(['run', '--read-only', ref, 'touch', '/x'], { env: { IMGX_CACHE: cache }, timeoutMs: LONG });
    assert.is(ro.code, 1);
    assert.match(ro.stderr, /Read-only file system/);
  });

  test('--runtime runc without runc on PATH: one line, status 15', async () => {
    const r = await runImgx(['run', '--runtime', 'runc', ref, 'true'], { env: { IMGX_CACHE: cache, PATH: '/nonexistent' }, timeoutMs: LONG });
    assert.is(r.code, 15);
    assert.is(r.stderr, 'imgx: runc is not on PATH: install it (package runc) or use --runtime native\n');
  });

  test('--pull never runs a cached image without the registry, and refuses an uncached one', async () => {
    const r = await runImgx(['run', '--pull', 'never', ref, 'true'], { env: { IMGX_CACHE: cache }, timeoutMs: LONG });
    assert.is(r.code, 0, r.stderr);
    const other = await runImgx(['run', '--pull', 'never', ref, 'true'], { env: { IMGX_CACHE: join(work, 'empty-cache') }, timeoutMs: LONG });
    assert.is(other.code, 4);
    assert.match(other.stderr, /not in the cache \(--pull never\)/);
  });

  test('cache prune keeps the extracted tree of a recorded image; prune --all removes it', async () => {
    const trees = () => readdirSync(join(cache, 'imgx-rootfs', 'sha256')).filter((n) => !n.startsWith('.'));
    const before = trees();
    assert.ok(before.length >= 2, `trees: ${before}`);
    const p = await runImgx(['cache', 'prune'], { env: { IMGX_CACHE: cache } });
    assert.is(p.code, 0, p.stderr);
    assert.equal(trees(), before);
    const all = await runImgx(['cache', 'prune', '--all'], { env: { IMGX_CACHE: cache } });
    assert.is(all.code, 0, all.stderr);
    assert.match(all.stdout, new RegExp(`${before.length} extracted root filesystems`));
    assert.equal(trees(), []);
  });

  test('native without root: the caller is root inside, in its own namespaces', async () => {
    const user = ensureTestUser();
    const home = tempDir('imgx-run-user-');
    for (const d of ['cache', 'docker']) mkdirSync(join(home, d));
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, home]);
    execFileSync('chmod', ['755', home]);
    const r = await runImgxAs(user, home, LONG, ['run', ref, 'sh', '-c', 'id -u; echo $$; cat /etc/debian_version; touch /made-here && echo writable']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n'), ['0', '1', debianVersion, 'writable']);
    // One summary line for what an unprivileged extract cannot do (owners, devices).
    assert.match(r.stderr, /IMGX_UNPRIVILEGED|not root|owner/i);
    const net = await runImgxAs(user, home, LONG, ['run', '--net', 'none', ref, 'sh', '-c', 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "']);
    assert.is(net.code, 0, net.stderr);
    assert.is(net.stdout.trim(), 'lo');
    const status = await runImgxAs(user, home, LONG, ['run', ref, 'sh', '-c', 'exit 7']);
    assert.is(status.code, 7);
    // A USER other than root needs the subordinate ids the test gave the user.
    const nobody = await runImgxAs(user, home, LONG, ['run', userRef, 'sh', '-c', 'id -un; id -u']);
    assert.is(nobody.code, 0, nobody.stderr);
    assert.equal(nobody.stdout.trim().split('\n'), ['nobody', '65534']);
    const runs = join(home, 'cache', 'imgx-runs');
    assert.equal(existsSync(runs) ? readdirSync(runs) : [], [], 'no run directory is left');
  });
}

test.run();
