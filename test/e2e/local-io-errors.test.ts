// Issue 16, local I/O: a full disk (ENOSPC), a read-only filesystem (EROFS) or a directory imgx may
// not write (EACCES, as an unprivileged user) under DEST, an output file, the cache or the Docker
// config is exit 11 with one line on stderr that names what could not be written and why, never
// exit 1 ("internal error"); staging directories, staged contents, temporary files and partial
// outputs are removed, what was there before stays, and the cache stays usable (a second run with
// room succeeds). Real filesystems: small tmpfs mounts (root only), images built in the test as an
// oci: layout (and pushed to a loopback registry for the paths that pull). EIO and EDQUOT cannot
// be made here: test/unit/io-errors.test.ts covers them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { EXIT_STATUS } from '../../src/cli/exit-codes.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';

const IO = EXIT_STATUS.IMGX_IO;

if (requireRoot(test) && requireTools(test, ['mount', 'umount', 'docker-registry', 'htpasswd', 'grub-mkimage', 'runc', 'setpriv'])) {
  const { runImgx } = await import('../helpers/imgx.ts');
  const { tempDir } = await import('../helpers/tempdir.ts');
  const { writeOciLayout } = await import('../fixtures/oci-layout.ts');
  const { makeTar } = await import('../fixtures/tar.ts');
  const { startRegistry } = await import('../helpers/registry.ts');
  const { pushOciLayout } = await import('../helpers/push.ts');
  type ImgxResult = Awaited<ReturnType<typeof runImgx>>;

  const T0 = 1_700_000_000;
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  // Random bytes: the layer blob stays ~4 MiB compressed, twice what the small mounts hold.
  const big = randomBytes(4 << 20);
  const kernel = randomBytes(4 << 20);
  const layout = tempDir('imgx-io-layout-');
  const written = writeOciLayout(layout, {
    tag: 'v1',
    layers: [
      makeTar([
        { name: './', type: 'directory', mode: 0o755, mtime: T0 },
        { name: 'etc/', type: 'directory', mtime: T0 },
        { name: 'etc/os-release', content: 'ID=imgx\nPRETTY_NAME="imgx test"\n', mtime: T0 },
        { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n', mtime: T0 },
        { name: 'etc/group', content: 'root:x:0:\n', mtime: T0 },
        { name: 'bin/', type: 'directory', mtime: T0 },
        { name: 'bin/true', content: 'not run', mode: 0o755, mtime: T0 },
        { name: 'big.bin', content: big, mtime: T0 },
      ]),
    ],
  });
  const image = `oci:${layout}:v1`;
  const manifestDigest = written.manifests[0]!.descriptor.digest;
  const layerDigest = written.manifests[0]!.layers[0]!.digest;
  // A kernel and an initramfs (not real ones: to-disk only places them) so that to-disk has
  // nothing to say but its error.
  const kernelLayout = tempDir('imgx-io-kernel-');
  writeOciLayout(kernelLayout, {
    tag: 'v1',
    layers: [
      makeTar([
        { name: './', type: 'directory', mode: 0o755, mtime: T0 },
        { name: 'etc/', type: 'directory', mtime: T0 },
        { name: 'etc/os-release', content: 'ID=imgx\nPRETTY_NAME="imgx test"\n', mtime: T0 },
        { name: 'boot/', type: 'directory', mtime: T0 },
        { name: 'boot/vmlinuz-6.1.0-1-amd64', content: kernel, mtime: T0 },
        { name: 'boot/initrd.img-6.1.0-1-amd64', content: 'initrd', mtime: T0 },
      ]),
    ],
  });
  const kernelImage = `oci:${kernelLayout}:v1`;

  // ---- helpers ---------------------------------------------------------------------------------

  /** A tmpfs of `size` on a new directory for the length of `fn`, unmounted however it ends. */
  async function withTmpfs(size: string, fn: (dir: string) => Promise<void>): Promise<void> {
    const dir = tempDir('imgx-io-mnt-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
    try {
      await fn(dir);
    } finally {
      execFileSync('umount', [dir]);
    }
  }

  const remount = (dir: string, opts: string) => execFileSync('mount', ['-o', `remount,${opts}`, dir]);

  /** Fills the filesystem of `dir` to the last page with one file (`filler`). */
  function fill(dir: string): void {
    const fd = openSync(join(dir, 'filler'), 'w');
    const chunk = Buffer.alloc(64 << 10);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
    } finally {
      closeSync(fd);
    }
  }

  /** Every path under `dir`, relative to it, sorted. */
  function walk(dir: string): string[] {
    const out: string[] = [];
    const go = (d: string) => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        out.push(relative(dir, p));
        if (lstatSync(p).isDirectory()) go(p);
      }
    };
    go(dir);
    return out.sort();
  }

  /** Temporary or partial files that a failure must not leave in a cache or beside an output. */
  const leftovers = (dir: string) => walk(dir).filter((p) => /\.tmp-|\.imgx-|imgx-tmp|imgx-partial|imgx-disk-|spool-|\.lock$/.test(p) || p.startsWith('tmp/'));

  /** Exit 11 and one line on stderr that matches `line`. */
  function failsWithOneLine(r: ImgxResult, line: RegExp): void {
    assert.is(r.code, IO, `want exit ${IO}, got ${r.code}: ${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    assert.is(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
    assert.match(lines[0]!, line);
    assert.not.match(r.stderr, /internal error/);
  }

  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  // ---- a full disk ------------------------------------------------------------------------------

  test('extract into a full tmpfs: exit 11, one line, no staging directory, no staged content, no parent it made', async () => {
    await withTmpfs('2m', async (mnt) => {
      const dest = join(mnt, 'a', 'b', 'rootfs');
      const r = await runImgx(['extract', image, dest]);
      failsWithOneLine(r, new RegExp(`^imgx: cannot write ${esc(dest)}: no space left on device \\(ENOSPC\\)$`));
      assert.equal(walk(mnt), [], 'nothing left on the tmpfs');
    });
  });

  test('extract into an existing empty DEST on a full tmpfs: DEST stays, empty; nothing else is left', async () => {
    await withTmpfs('2m', async (mnt) => {
      const dest = join(mnt, 'rootfs');
      mkdirSync(dest);
      writeFileSync(join(mnt, 'keep.txt'), 'mine');
      const r = await runImgx(['extract', image, dest]);
      failsWithOneLine(r, /^imgx: cannot write .*: no space left on device \(ENOSPC\)$/);
      assert.equal(walk(mnt), ['keep.txt', 'rootfs']);
      assert.is(readFileSync(join(mnt, 'keep.txt'), 'utf8'), 'mine');
    });
  });

  test('export -o onto a full tmpfs: exit 11, one line, no partial file, an older FILE untouched', async () => {
    await withTmpfs('2m', async (mnt) => {
      const out = join(mnt, 'rootfs.tar');
      const r = await runImgx(['export', image, '-o', out]);
      failsWithOneLine(r, new RegExp(`^imgx: cannot write ${esc(out)}: no space left on device \\(ENOSPC\\)$`));
      assert.equal(walk(mnt), []);
      writeFileSync(out, 'the previous archive');
      const again = await runImgx(['export', image, '-o', out]);
      failsWithOneLine(again, /no space left on device \(ENOSPC\)$/);
      assert.equal(walk(mnt), ['rootfs.tar']);
      assert.is(readFileSync(out, 'utf8'), 'the previous archive');
    });
  });

  test('pull into a cache on a full tmpfs: exit 11, no temporary file, no blob; with room, the next pull succeeds', async () => {
    await withTmpfs('2m', async (mnt) => {
      const cache = join(mnt, 'cache');
      const r = await runImgx(['pull', image, '--cache-dir', cache]);
      failsWithOneLine(r, new RegExp(`^imgx: cannot write to the cache ${esc(cache)}: no space left on device \\(ENOSPC\\)$`));
      assert.equal(leftovers(cache), []);
      assert.not.ok(existsSync(join(cache, 'blobs', ...layerDigest.split(':'))), 'no partial blob under its digest');
      remount(mnt, 'size=32m');
      const ok = await runImgx(['pull', image, '--cache-dir', cache]);
      assert.is(ok.code, 0, ok.stderr);
      const blob = readFileSync(join(cache, 'blobs', ...layerDigest.split(':')));
      assert.is(`sha256:${sha(blob)}`, layerDigest);
      assert.equal(leftovers(cache), []);
    });
  });

  test('ls, cat, layers, extract with a full cache: the browse index is not saved, the command succeeds and says so only under --debug', async () => {
    await withTmpfs('2m', async (mnt) => {
      const cache = join(mnt, 'cache');
      mkdirSync(cache);
      fill(mnt);
      const cat = await runImgx(['cat', image, '/etc/os-release', '--cache-dir', cache]);
      assert.is(cat.code, 0, cat.stderr);
      assert.is(cat.stdout, 'ID=imgx\nPRETTY_NAME="imgx test"\n');
      assert.is(cat.stderr, '');
      for (const args of [['ls', image, '/'], ['layers', image]]) {
        const r = await runImgx([...args, '--cache-dir', cache]);
        assert.is(r.code, 0, r.stderr);
        assert.is(r.stderr, '');
      }
      const debug = await runImgx(['ls', image, '/', '--cache-dir', cache, '--debug']);
      assert.is(debug.code, 0, debug.stderr);
      assert.match(debug.stderr, /browse index not saved: cannot write .*: no space left on device \(ENOSPC\)/);
      const dest = join(tempDir('imgx-io-dest-'), 'rootfs');
      const ex = await runImgx(['extract', image, dest, '--cache-dir', cache]);
      assert.is(ex.code, 0, ex.stderr);
      assert.is(sha(readFileSync(join(dest, 'big.bin'))), sha(big));
      assert.equal(leftovers(cache), []);
      assert.equal(walk(join(cache, 'imgx-index')), ['sha256'], 'no index file, no temporary one');
    });
  });

  test('extract from a registry with the cache on a full tmpfs: exit 11 naming the cache, nothing beside DEST, no temporary file; with room it succeeds', async () => {
    const registry = await startRegistry({ auth: 'htpasswd' });
    try {
      const [user, pass] = Object.entries(registry.users)[0]!;
      const ref = `${registry.host}/imgx-test/io:v1`;
      await pushOciLayout(layout, ref, { creds: `${user}:${pass}` });
      const dockerConfig = tempDir('imgx-io-docker-');
      const login = await runImgx(['login', registry.host, '-u', user, '--password-stdin'], { env: { DOCKER_CONFIG: dockerConfig }, input: `${pass}\n` });
      assert.is(login.code, 0, login.stderr);
      await withTmpfs('2m', async (mnt) => {
        const cache = join(mnt, 'cache');
        const parent = tempDir('imgx-io-dest-');
        const dest = join(parent, 'rootfs');
        const r = await runImgx(['extract', ref, dest, '--cache-dir', cache], { env: { DOCKER_CONFIG: dockerConfig } });
        failsWithOneLine(r, new RegExp(`^imgx: cannot write to the cache ${esc(cache)}: no space left on device \\(ENOSPC\\)$`));
        assert.equal(readdirSync(parent), [], 'no DEST, no staging directory, no staged contents');
        assert.equal(leftovers(cache), []);
        remount(mnt, 'size=32m');
        const ok = await runImgx(['extract', ref, dest, '--cache-dir', cache], { env: { DOCKER_CONFIG: dockerConfig } });
        assert.is(ok.code, 0, ok.stderr);
        assert.is(sha(readFileSync(join(dest, 'big.bin'))), sha(big));
        assert.equal(leftovers(cache), []);
      });
      // The Docker config on a read-only filesystem: login cannot store the credentials.
      await withTmpfs('1m', async (mnt) => {
        remount(mnt, 'ro');
        const r = await runImgx(['login', registry.host, '-u', user, '--password-stdin'], { env: { DOCKER_CONFIG: mnt }, input: `${pass}\n` });
        failsWithOneLine(r, new RegExp(`^imgx: cannot write ${esc(join(mnt, 'config.json'))}: read-only file system \\(EROFS\\)$`));
        const nested = join(mnt, 'docker');
        const r2 = await runImgx(['login', registry.host, '-u', user, '--password-stdin'], { env: { DOCKER_CONFIG: nested }, input: `${pass}\n` });
        failsWithOneLine(r2, /^imgx: cannot write .*: read-only file system \(EROFS\)$/);
      });
    } finally {
      await registry.stop();
    }
  });

  test('to-disk with OUT on a full tmpfs: exit 11, one line, no partial image, no work directory in the cache', async () => {
    const cache = tempDir('imgx-io-cache-');
    await withTmpfs('2m', async (mnt) => {
      const out = join(mnt, 'disk.img');
      const r = await runImgx(['to-disk', kernelImage, out, '--boot', 'bios'], { env: { IMGX_CACHE: cache } });
      failsWithOneLine(r, new RegExp(`^imgx: cannot write ${esc(out)}: no space left on device \\(ENOSPC\\)$`));
      assert.equal(walk(mnt), []);
      assert.equal(leftovers(cache), []);
    });
  });

  // ---- permissions --------------------------------------------------------------------------------

  test('EACCES as an unprivileged user: a DEST or a cache where it may not write is exit 11 and one line, and leaves nothing', async () => {
    const { runImgxAs } = await import('../helpers/imgx.ts');
    const id = (flag: string) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim());
    const nobody = { uid: id('-u'), gid: id('-g') };
    chmodSync(layout, 0o755);
    const home = tempDir('imgx-io-home-');
    chownSync(home, nobody.uid, nobody.gid);
    // root's, 0755: nobody may read it, not write in it.
    const locked = tempDir('imgx-io-locked-');
    chmodSync(locked, 0o755);
    const dest = join(locked, 'rootfs');
    const r = await runImgxAs(nobody, home, 120_000, ['extract', image, dest]);
    failsWithOneLine(r, new RegExp(`^imgx: cannot write ${esc(dest)}: permission denied \\(EACCES\\)$`));
    const cache = join(locked, 'cache');
    const p = await runImgxAs(nobody, home, 120_000, ['pull', image, '--cache-dir', cache]);
    failsWithOneLine(p, new RegExp(`^imgx: cannot write to the cache ${esc(cache)}: permission denied \\(EACCES\\)$`));
    assert.equal(readdirSync(locked), []);
  });

  // ---- a read-only filesystem -------------------------------------------------------------------

  test('a read-only filesystem: extract, export -o, pull, cache prune and run are EROFS, exit 11, and change nothing', async () => {
    await withTmpfs('32m', async (mnt) => {
      const cache = join(mnt, 'cache');
      const pulled = await runImgx(['pull', image, '--cache-dir', cache]);
      assert.is(pulled.code, 0, pulled.stderr);
      // The tree `imgx run` would extract into the cache, there already (the run below fails after it).
      const hex = manifestDigest.split(':')[1]!;
      const rootfs = await runImgx(['extract', image, join(cache, 'imgx-rootfs', 'sha256', hex), '--cache-dir', cache]);
      assert.is(rootfs.code, 0, rootfs.stderr);
      // Without the browse index, export scans the layers and spools them in the cache.
      rmSync(join(cache, 'imgx-index'), { recursive: true });
      const before = walk(mnt);
      remount(mnt, 'ro');
      try {
        const erofs = /: read-only file system \(EROFS\)$/;
        const dest = join(mnt, 'x', 'rootfs');
        failsWithOneLine(await runImgx(['extract', image, dest]), new RegExp(`^imgx: cannot write ${esc(dest)}${erofs.source}`));
        failsWithOneLine(await runImgx(['export', image, '-o', join(mnt, 'x.tar')]), new RegExp(`^imgx: cannot write ${esc(join(mnt, 'x.tar'))}${erofs.source}`));
        // A cache directory to be made (mkdir -p on a read-only filesystem says ENOENT; the real reason is told).
        const newCache = join(mnt, 'new-cache');
        failsWithOneLine(await runImgx(['pull', image, '--cache-dir', newCache]), new RegExp(`^imgx: cannot write to the cache ${esc(newCache)}${erofs.source}`));
        failsWithOneLine(await runImgx(['cache', 'prune', '--all', '--cache-dir', cache]), new RegExp(`^imgx: cannot write to the cache ${esc(cache)}${erofs.source}`));
        failsWithOneLine(await runImgx(['export', image, '-o', join(tempDir('imgx-io-out-'), 'x.tar'), '--cache-dir', cache]), new RegExp(`^imgx: cannot write to the cache ${esc(cache)}${erofs.source}`));
        failsWithOneLine(await runImgx(['run', '--cache-dir', cache, image, '/bin/true']), new RegExp(`^imgx: cannot write the run directory ${esc(join(cache, 'imgx-runs'))}/\\w+${erofs.source}`));
        assert.equal(walk(mnt), before, 'nothing changed');
      } finally {
        remount(mnt, 'rw');
      }
    });
  });
}

test.run();
