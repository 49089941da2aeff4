// `imgx extract` and `imgx export` through the CLI, on a synthetic multi-layer image (whiteouts, an
// opaque directory, usrmerge, hardlinks, setuid, xattrs, long and non-ASCII names, a device node)
// read from an oci: layout and from the loopback registry: the trees match what the layers say,
// match umoci unpack's rootfs, and `imgx export | tar -x` gives the same tree as `imgx extract`.
// Then the failure paths: DEST not empty (exit status, DEST untouched), an interrupted extract
// (nothing left), and an unprivileged run (one warning line per kind; --strict fails).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_STATUS } from '../../src/cli/exit-codes.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';

if (requireTools(test, ['tar', 'getfattr', 'setfattr'])) {
  const { runImgx, NODE_BIN, IMGX_BIN } = await import('../helpers/imgx.ts');
  const { tempDir } = await import('../helpers/tempdir.ts');
  const { writeOciLayout } = await import('../fixtures/oci-layout.ts');
  const { makeTar } = await import('../fixtures/tar.ts');
  const { snapshotTree, diffTrees } = await import('../helpers/tree-compare.ts');

  const isRoot = process.geteuid?.() === 0;
  const T0 = 1_700_000_000;
  const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  const big = Buffer.alloc(3 * 1024 * 1024 + 5);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i * 2654435761 >>> 0, i);
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  const longName = `usr/share/doc/${'long-directory-name/'.repeat(6)}${'f'.repeat(90)}.txt`;

  const layers = [
    makeTar([
      { name: './', type: 'directory', mode: 0o755, mtime: T0 },
      { name: 'etc/', type: 'directory', mtime: T0 },
      { name: 'etc/os-release', content: 'ID=imgx\n', mtime: T0 },
      { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mtime: T0 },
      { name: 'lib/', type: 'directory', mtime: T0 },
      { name: 'lib/libold.so', content: 'old lib', mtime: T0 },
      { name: 'usr/', type: 'directory', mtime: T0 },
      { name: 'usr/bin/', type: 'directory', mtime: T0 },
      { name: 'usr/bin/tool', content: 'tool v1', mode: 0o755, mtime: T0 },
      { name: 'usr/bin/tool-hl', type: 'hardlink', linkname: 'usr/bin/tool', mtime: T0 },
      { name: 'usr/bin/su', content: 'su', mode: 0o4755, mtime: T0 },
      { name: 'usr/bin/ping', content: 'ping', mode: 0o755, mtime: T0, pax: { 'SCHILY.xattr.security.capability': cap } },
      { name: 'usr/lib/', type: 'directory', mtime: T0 },
      { name: 'usr/lib/big.bin', content: big, mtime: T0 },
      { name: 'usr/lib/libnew.so', content: 'new lib', mtime: T0 },
      { name: 'home/', type: 'directory', mtime: T0 },
      { name: 'home/user/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000, mtime: T0 },
      { name: 'home/user/notes', content: 'mine', uid: 1000, gid: 1000, mode: 0o600, mtime: T0, pax: { 'SCHILY.xattr.user.tag': Buffer.from([0, 1, 2, 255]) } },
      { name: 'var/', type: 'directory', mtime: T0 },
      { name: 'var/cache/', type: 'directory', mtime: T0 },
      { name: 'var/cache/old', content: 'stale', mtime: T0 },
      { name: 'tmp/', type: 'directory', mode: 0o1777, mtime: T0 },
      { name: 'dev/', type: 'directory', mtime: T0 },
      { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666, mtime: T0 },
      { name: 'run/', type: 'directory', mtime: T0 },
      { name: 'run/initctl', type: 'fifo', mode: 0o600, mtime: T0 },
      { name: 'bin', type: 'symlink', linkname: 'usr/bin', mtime: T0 },
      { name: longName, content: 'long', mtime: T0 },
      { name: 'etc/café', content: 'é', mtime: T0 },
    ]),
    makeTar([
      { name: 'etc/', type: 'directory', mtime: T0 + 10 },
      { name: 'etc/.wh.os-release', mtime: T0 + 10 },
      { name: 'etc/hostname', content: 'box\n', mtime: T0 + 10 },
      { name: 'usr/bin/tool', content: 'tool v2', mode: 0o755, mtime: T0 + 10 },
      { name: 'var/cache/', type: 'directory', mtime: T0 + 10 },
      { name: 'var/cache/.wh..wh..opq', mtime: T0 + 10 },
      { name: 'var/cache/fresh', content: 'fresh', mtime: T0 + 10 },
    ]),
    makeTar([
      { name: '.wh.lib', mtime: T0 + 20 },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib', mtime: T0 + 20 },
      { name: 'usr/lib/libnew.so.1', type: 'hardlink', linkname: 'usr/lib/libnew.so', mtime: T0 + 20 },
    ]),
  ];

  const work = tempDir('imgx-e2e-extract-');
  // The unprivileged test user reads the layout from here.
  chmodSync(work, 0o755);
  const layout = join(work, 'layout');
  writeOciLayout(layout, { tag: 'v1', layers });
  const image = `oci:${layout}:v1`;
  const cache = join(work, 'cache');
  const env = { IMGX_CACHE: cache };

  /** What the flattened image must hold (checked node by node on every extracted tree). */
  function checkTree(root: string, opts: { devices: boolean; owners: boolean }): void {
    const t = snapshotTree(root);
    const n = (p: string) => {
      const node = t.nodes.get(p);
      assert.ok(node, `${p} missing`);
      return node!;
    };
    for (const gone of ['etc/os-release', 'lib/libold.so', 'var/cache/old']) assert.not.ok(t.nodes.has(gone), `${gone} should be whited out`);
    assert.is(n('etc/hostname').sha256, sha('box\n'));
    assert.is(n('usr/bin/tool').sha256, sha('tool v2'));
    // The hardlink made in layer 0 keeps the old content: layer 1 replaced the path, not the inode.
    assert.is(n('usr/bin/tool-hl').sha256, sha('tool v1'));
    assert.is(n('usr/lib/big.bin').sha256, sha(big));
    assert.equal(t.hardlinks.get('usr/lib/libnew.so'), ['usr/lib/libnew.so', 'usr/lib/libnew.so.1']);
    assert.is(n('lib').type, 'symlink');
    assert.is(n('lib').target, 'usr/lib');
    assert.is(n('bin').target, 'usr/bin');
    assert.equal([...t.nodes.keys()].filter((p) => p.startsWith('var/cache/')), ['var/cache/fresh']);
    assert.is(n('tmp').mode, 0o1777);
    assert.is(n('usr/bin/su').mode & 0o777, 0o755);
    assert.is(n(longName).sha256, sha('long'));
    assert.is(n('etc/café').sha256, sha('é'));
    assert.is(n('run/initctl').type, 'fifo');
    assert.is(n('home/user/notes').xattrs['user.tag'], Buffer.from([0, 1, 2, 255]).toString('base64'));
    assert.is(n('etc').mtime, T0 + 10, 'directory mtimes restored');
    assert.is(n('usr/lib/big.bin').mtime, T0);
    if (opts.owners) {
      assert.is(n('usr/bin/su').mode, 0o4755);
      assert.is(`${n('home/user/notes').uid}:${n('home/user/notes').gid}`, '1000:1000');
      assert.is(n('home/user').mode, 0o700);
      assert.is(n('usr/bin/ping').xattrs['security.capability'], cap.toString('base64'));
    }
    if (opts.devices) assert.is(n('dev/null').rdev, '1,3');
    else assert.not.ok(t.nodes.has('dev/null'));
  }

  test('imgx extract oci: gives the flattened tree', async () => {
    const dest = join(work, 'rootfs');
    const r = await runImgx(['extract', image, dest], { env });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /files, \d+ directories/);
    checkTree(dest, { devices: isRoot, owners: isRoot });
    assert.equal(readdirSync(work).filter((f) => f.includes('.imgx-')), [], 'no staging dir left');
  });

  test('a second extract reads the browse index, not the layers; --json gives counts', async () => {
    const dest = join(work, 'rootfs-again');
    const r = await runImgx(['extract', '--debug', '--json', image, dest], { env });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, /loaded from the cache, no layer scanned/);
    const j = JSON.parse(r.stdout) as { files: number; dirs: number; links: number; bytes: number };
    // bin, lib, libnew.so.1 (tool-hl lost its partner in layer 1: a plain file now).
    assert.ok(j.files > 10 && j.dirs > 10 && j.links === 3 && j.bytes > big.length, r.stdout);
    assert.equal(diffTrees(join(work, 'rootfs'), dest, { mtimes: true }).differences, []);
  });

  test('imgx export: docker-export names, and `tar -x` of it gives the same tree as extract', async () => {
    const out = join(work, 'export.tar');
    const r = await runImgx(['export', image, '-o', out], { env });
    assert.is(r.code, 0, r.stderr);
    const names = execFileSync('tar', ['-tf', out], { encoding: 'utf8', maxBuffer: 1 << 26 }).split('\n').filter(Boolean);
    assert.ok(names.includes('etc/') && names.includes('usr/bin/tool') && names.includes(longName), names.join(' '));
    assert.not.ok(names.some((n) => n.startsWith('./') || n.startsWith('/') || n === '.'), 'no ./ prefix, no root entry');
    assert.is(new Set(names).size, names.length, 'every path once');
    // Files, hardlinks, devices, fifos first; then the top-level symlinks; then the directories,
    // parents first, each followed by its symlinks (see tar-export.ts).
    const kinds = execFileSync('tar', ['-tvf', out], { encoding: 'utf8' }).split('\n').filter(Boolean).map((l) => l[0]);
    const firstDir = kinds.indexOf('d');
    assert.match(kinds.slice(0, firstDir).join(''), /^[^dl]+l*$/);
    assert.match(kinds.slice(firstDir).join(''), /^[dl]+$/);
    for (const d of names.slice(firstDir).filter((n) => n.endsWith('/'))) {
      const parent = d.slice(0, d.slice(0, -1).lastIndexOf('/') + 1);
      if (parent) assert.ok(names.indexOf(parent) < names.indexOf(d), `${parent} before ${d}`);
    }
    const verbose = execFileSync('tar', ['-tvf', out], { encoding: 'utf8' });
    assert.match(verbose, /usr\/lib\/libnew\.so\.1 link to usr\/lib\/libnew\.so/);

    // The same bytes on stdout as in the file.
    const piped = await new Promise<Buffer>((resolve, reject) => {
      const c = spawn(NODE_BIN, [IMGX_BIN, 'export', image], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
      const parts: Buffer[] = [];
      c.stdout.on('data', (d: Buffer) => parts.push(d));
      c.on('error', reject);
      c.on('close', (code) => (code === 0 ? resolve(Buffer.concat(parts)) : reject(new Error(`export exited ${code}`))));
    });
    assert.ok(piped.equals(readFileSync(out)), 'stdout and -o give the same archive');

    const x = join(work, 'from-tar');
    mkdirSync(x);
    // Unprivileged, tar can set neither owners nor devices: leave both out, as imgx does.
    const how = isRoot ? ['--same-owner', '--numeric-owner'] : ['--no-same-owner', '--exclude=dev/null'];
    execFileSync('tar', ['-x', '-f', out, '-C', x, '-p', '--xattrs', '--xattrs-include=*', ...how], { stdio: 'pipe' });
    const d = diffTrees(join(work, 'rootfs'), x, { root: false, mtimes: true });
    assert.equal(d.differences, []);
    assert.equal(d.mtimes, []);
    // Plain `tar -x` (no --delay-directory-restore) keeps directory times: the directories come last.
    assert.equal(d.dirMtimes.filter((l) => !l.startsWith('mtime: .:')), []);
  });

  if (requireTools(test, ['docker-registry'])) test('the same image through the loopback registry gives the same tree', async () => {
    const { startRegistry } = await import('../helpers/registry.ts');
    const { pushOciLayout } = await import('../helpers/push.ts');
    const reg = await startRegistry();
    try {
      const ref = `${reg.host}/test/flat:v1`;
      await pushOciLayout(layout, ref, { layoutTag: 'v1' });
      const dest = join(work, 'rootfs-registry');
      const freshCache = tempDir('imgx-e2e-cache-');
      const r = await runImgx(['extract', ref, dest], { env: { IMGX_CACHE: freshCache } });
      assert.is(r.code, 0, r.stderr);
      assert.equal(diffTrees(join(work, 'rootfs'), dest, { mtimes: true }).differences, []);
      // Pulled into the cache on the way: a second run needs neither the layers nor the network for them.
      const again = await runImgx(['extract', '--debug', ref, join(work, 'rootfs-registry-2')], { env: { IMGX_CACHE: freshCache } });
      assert.is(again.code, 0, again.stderr);
      assert.match(again.stderr, /loaded from the cache/);
      const exported = join(work, 'registry-export.tar');
      const e = await runImgx(['export', ref, '-o', exported], { env: { IMGX_CACHE: freshCache } });
      assert.is(e.code, 0, e.stderr);
      assert.ok(readFileSync(exported).equals(readFileSync(join(work, 'export.tar'))), 'same archive as from the oci: layout');
    } finally {
      await reg.stop();
    }
  });

  if (requireTools(test, ['umoci'])) test('matches umoci unpack', async () => {
    const bundle = join(work, 'umoci-bundle');
    execFileSync('umoci', ['unpack', ...(isRoot ? [] : ['--rootless']), '--image', `${layout}:v1`, bundle], { stdio: 'pipe' });
    const d = diffTrees(join(bundle, 'rootfs'), join(work, 'rootfs'), { mtimes: true });
    assert.equal(d.differences, []);
    assert.equal(d.mtimes, []);
  });

  test('DEST not empty: the exit status of IMGX_DEST_EXISTS, DEST untouched', async () => {
    const dest = join(work, 'occupied');
    mkdirSync(dest);
    writeFileSync(join(dest, 'mine'), 'keep');
    const r = await runImgx(['extract', image, dest], { env });
    assert.is(r.code, EXIT_STATUS.IMGX_DEST_EXISTS, r.stderr);
    assert.match(r.stderr, /^imgx: .*already exists/);
    assert.is(r.stderr.trim().split('\n').length, 1, 'one line');
    assert.equal(readdirSync(dest), ['mine']);
    assert.is(readFileSync(join(dest, 'mine'), 'utf8'), 'keep');
  });

  test('an interrupted extract leaves neither DEST nor a staging dir', async () => {
    // Big enough that the writing phase is still going when the signal comes.
    const entries: Parameters<typeof makeTar>[0] = [];
    for (let d = 0; d < 40; d++) {
      entries.push({ name: `d${d}/`, type: 'directory' });
      for (let f = 0; f < 1000; f++) entries.push({ name: `d${d}/f${f}`, content: `file ${d}/${f}\n`.repeat(40) });
    }
    for (let i = 0; i < 4; i++) entries.push({ name: `big${i}`, content: Buffer.alloc(16 << 20, i) });
    const bigLayout = join(work, 'big-layout');
    writeOciLayout(bigLayout, { tag: 'big', layers: [makeTar(entries)], compression: 'none' });
    const parent = join(work, 'interrupt');
    mkdirSync(parent);
    const dest = join(parent, 'rootfs');
    const child = spawn(NODE_BIN, [IMGX_BIN, 'extract', `oci:${bigLayout}:big`, dest], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('close', (code, signal) => r({ code, signal })));
    let done = false;
    void exited.then(() => (done = true));
    // Wait until the staging dir holds part of the tree, then interrupt.
    let killed = false;
    while (!done) {
      const staging = readdirSync(parent).find((f) => f.startsWith('.rootfs.imgx-') && !f.endsWith('.xattrs'));
      if (staging && readdirSync(join(parent, staging)).length >= 5) {
        child.kill('SIGINT');
        killed = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    const res = await exited;
    assert.ok(killed, `the extract finished before it could be interrupted: ${stderr}`);
    assert.ok(res.signal === 'SIGINT' || res.code === 130, `exit ${res.code} ${res.signal}: ${stderr}`);
    assert.equal(readdirSync(parent), [], 'nothing left');
  });

  if (requireRoot(test) && requireTools(test, ['setpriv', 'useradd'])) {
    test('unprivileged: one warning line per kind, no device node; --strict fails with nothing left', async () => {
      const user = 'imgx-test-user';
      try {
        execFileSync('id', ['-u', user], { stdio: 'ignore' });
      } catch {
        execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user], { stdio: 'ignore' });
      }
      const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
      const home = tempDir('imgx-e2e-user-');
      chownSync(home, uid, gid);
      const run = (args: string[]) =>
        new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          const c = spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', NODE_BIN, IMGX_BIN, ...args], {
            env: { ...process.env, HOME: home, IMGX_CACHE: join(home, 'cache'), TMPDIR: home, DOCKER_CONFIG: home },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let stdout = '';
          let stderr = '';
          c.stdout.on('data', (d) => (stdout += d));
          c.stderr.on('data', (d) => (stderr += d));
          c.on('close', (code) => resolve({ code, stdout, stderr }));
        });
      const dest = join(home, 'rootfs');
      const r = await run(['extract', image, dest]);
      assert.is(r.code, 0, r.stderr);
      const lines = r.stderr.trim().split('\n');
      // A single summary warning with the counts.
      const warned = lines.filter((l) => l.includes('warning'));
      assert.is(warned.length, 1, r.stderr);
      assert.match(warned[0]!, /\[IMGX_UNPRIVILEGED\]/);
      assert.match(warned[0]!, /ownership of \d+ entries not applied, \d+ device nodes not created, \d+ security/);
      checkTree(dest, { devices: false, owners: false });
      const strictDest = join(home, 'strict');
      const s = await run(['--strict', 'extract', image, strictDest]);
      assert.is(s.code, EXIT_STATUS.IMGX_STRICT, s.stderr);
      assert.not.ok(existsSync(strictDest));
      assert.equal(readdirSync(home).filter((f) => f.includes('.imgx-')), []);
    });
  }
}

test.run();
