// The acceptance test of flatten on a real image: a multi-layer Debian image (mmdebstrap base;
// umoci- and GNU-tar-made layers with whiteouts, opaque directories, hardlinks, xattrs, a file
// capability, devices, fifos, long names) pushed to a loopback registry. `umoci unpack` of what
// `skopeo copy` fetched is the reference tree; `imgx extract`, and `imgx export | tar -x`, must
// give the same tree: paths, types, modes, owners, sizes, contents, symlink targets, hardlink
// groups, xattrs, device numbers and mtimes (umoci and GNU tar both restore them, so they count).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEBIAN_IMAGE_TOOLS, debianImage, ociRef, type DebianImage } from '../fixtures/debian-image.ts';
import { IMGX_BIN, NODE_BIN, REPO_ROOT, runImgx } from '../helpers/imgx.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { skopeoCopy } from '../helpers/skopeo.ts';
import { removeTempDir, tempDir } from '../helpers/tempdir.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';
import { diffSnapshots, snapshotTree, type Tree, type TreeDiff } from '../helpers/tree-compare.ts';

const TOOLS = [...DEBIAN_IMAGE_TOOLS, 'skopeo', 'docker-registry', 'getfattr', 'setpriv'];
const LONG = 15 * 60_000;
/** The unprivileged user of the rootless checks (nobody:nogroup on Debian). */
const NOBODY = 65534;

/** Every difference, timestamps included (directory mtimes unless told not to), as one list. */
function allDiffs(d: TreeDiff, dirMtimes = true): string[] {
  return [...d.differences, ...d.mtimes, ...(dirMtimes ? d.dirMtimes : [])];
}

function assertSame(d: TreeDiff, what: string, dirMtimes = true): void {
  const all = allDiffs(d, dirMtimes);
  assert.ok(d.counts.a > 5000, `the reference tree looks too small (${d.counts.a} nodes)`);
  assert.equal(all, [], `${what}: ${all.length} differences from umoci unpack:\n  ${all.slice(0, 60).join('\n  ')}`);
}

/** `imgx ARGS… | tar -x …` into `dest`; resolves with the sha256 of the tar stream and both exit codes. */
function exportIntoTar(args: string[], dest: string, env: NodeJS.ProcessEnv): Promise<{ imgx: number | null; tar: number | null; sha256: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const imgx = spawn(NODE_BIN, [IMGX_BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tar = spawn('tar', ['-x', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-p', '-C', dest, '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    const h = createHash('sha256');
    let stderr = '';
    imgx.stderr.on('data', (d) => (stderr += d));
    tar.stderr.on('data', (d) => (stderr += `tar: ${d}`));
    imgx.stdout.on('data', (d: Buffer) => h.update(d));
    imgx.stdout.pipe(tar.stdin);
    tar.stdin.on('error', () => {}); // tar failing early is reported by its exit code
    let codes: { imgx?: number | null; tar?: number | null } = {};
    const done = () => {
      if ('imgx' in codes && 'tar' in codes) resolve({ imgx: codes.imgx!, tar: codes.tar!, sha256: h.digest('hex'), stderr });
    };
    imgx.once('error', reject);
    tar.once('error', reject);
    imgx.once('close', (c) => {
      codes = { ...codes, imgx: c };
      done();
    });
    tar.once('close', (c) => {
      codes = { ...codes, tar: c };
      done();
    });
  });
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

/** Runs imgx as an unprivileged user (setpriv), with a cache and Docker config that user owns. */
function runImgxAs(uid: number, args: string[], home: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env, NO_COLOR: '1', HOME: home, IMGX_CACHE: join(home, 'cache'), DOCKER_CONFIG: join(home, 'docker') };
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', NODE_BIN, IMGX_BIN, ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A directory tree `uid` owns, for an unprivileged run. */
function userHome(uid: number): string {
  const home = tempDir('imgx-unpriv-');
  for (const d of ['cache', 'docker', 'out']) mkdirSync(join(home, d));
  execFileSync('chown', ['-R', `${uid}:${uid}`, home]);
  return home;
}

if (requireTools(test, TOOLS) && requireRoot(test)) {
  let image: DebianImage;
  let registry: Registry | undefined;
  let ref = '';
  let work = '';
  let reference: Tree;
  /** One cache for the extracts that should reuse the browse index. */
  let cache = '';

  test.before(async () => {
    image = await debianImage('small');
    registry = await startRegistry();
    ref = `docker://${registry.host}/imgx-test/debian:small`;
    await skopeoCopy(ociRef(image), ref);
    work = tempDir('imgx-extract-debian-');
    cache = join(work, 'imgx-cache');
    // The reference: what a peer fetches from the registry and unpacks, as root (owners, devices).
    await skopeoCopy(ref, `oci:${join(work, 'peer')}:small`);
    execFileSync('umoci', ['unpack', '--image', `${join(work, 'peer')}:small`, join(work, 'bundle')], { stdio: ['ignore', 'ignore', 'pipe'] });
    reference = snapshotTree(join(work, 'bundle', 'rootfs'));
  });

  test.after(async () => {
    await registry?.stop();
    if (work) removeTempDir(work);
  });

  test('the fixture is a real multi-layer image: whiteouts, opaque directories, GNU long names', () => {
    assert.ok(image.layers.length >= 4, `${image.layers.length} layers`);
    assert.ok(image.layers.slice(1).some((l) => l.whiteouts > 10), 'a layer that removes a package carries whiteouts');
    assert.ok(image.layers.some((l) => l.opaque >= 2), 'a layer carries opaque whiteouts');
    assert.ok(image.layers.some((l) => l.gnuLongNames > 0), 'a layer carries GNU long names');
    const n = (p: string) => reference.nodes.get(p);
    // The reference tree has what the recipe put there, so a test passing on it means something.
    assert.is(n('opt/imgx/perm/setuid')?.mode, 0o4755);
    assert.is(n('opt/imgx/perm/sticky')?.mode, 0o1777);
    assert.ok(n('opt/imgx/perm/ping-like')?.xattrs['security.capability'], 'file capability');
    assert.is(n('opt/imgx/perm/xattr-binary')?.xattrs['user.imgx.bin'], Buffer.from([0xff, 0x00, 0x80, 0x7f, 0xff, 0x00]).toString('base64'));
    assert.is(n('opt/imgx/nodes/big-minor')?.rdev, '4,300');
    assert.is(n('usr/share/doc/attr')?.type, 'symlink');
    assert.is(n('etc/issue.net')?.type, 'directory');
    assert.is(n('opt/imgx/special')?.type, 'file');
    assert.ok(n('etc/skel/+first') && !n('etc/skel/.bashrc') && !n('etc/skel/+removed-later'), 'opaque /etc/skel');
    assert.ok(!n('usr/bin/ps') && !n('opt/imgx/links/a') && !n('opt/imgx/links/d'), 'whiteouts applied');
    assert.equal(reference.hardlinks.get('usr/local/bin/less-hardlink'), ['usr/bin/less', 'usr/local/bin/less-hardlink']);
  });

  test('imgx extract docker://… gives the tree umoci unpack gives', async () => {
    const dest = join(work, 'imgx-1');
    const r = await runImgx(['extract', '--quiet', ref, dest], { env: { IMGX_CACHE: cache }, timeoutMs: LONG });
    assert.is(r.code, 0, `imgx extract failed (${r.code}): ${r.stderr}`);
    assertSame(diffSnapshots(reference, snapshotTree(dest)), 'imgx extract');
    removeTempDir(dest);
  });

  test('a second extract from the same cache (browse index, no layer scan) gives the same tree', async () => {
    const dest = join(work, 'imgx-2');
    // --debug says where the flattened tree came from.
    const r = await runImgx(['extract', '--quiet', '--debug', ref, dest], { env: { IMGX_CACHE: cache }, timeoutMs: LONG });
    assert.is(r.code, 0, `imgx extract failed (${r.code}): ${r.stderr}`);
    assert.match(r.stderr, /browse index for sha256:\w+: loaded from the cache/, 'the second extract reuses the index');
    assertSame(diffSnapshots(reference, snapshotTree(dest)), 'second imgx extract');
    removeTempDir(dest);
  });

  test('imgx extract oci:LAYOUT (no registry) gives the same tree', async () => {
    const dest = join(work, 'imgx-oci');
    const r = await runImgx(['extract', '--quiet', `oci:${join(work, 'peer')}:small`, dest], { timeoutMs: LONG });
    assert.is(r.code, 0, `imgx extract failed (${r.code}): ${r.stderr}`);
    assertSame(diffSnapshots(reference, snapshotTree(dest)), 'imgx extract oci:');
    removeTempDir(dest);
  });

  let exportedSha = '';
  let exported: TreeDiff | undefined;
  test('imgx export | tar -x --xattrs gives the same tree', async () => {
    const dest = join(work, 'export-stdout');
    mkdirSync(dest);
    const env = { ...process.env, NO_COLOR: '1', IMGX_CACHE: cache, DOCKER_CONFIG: tempDir('imgx-dockercfg-') };
    const r = await exportIntoTar(['export', '--quiet', ref], dest, env);
    assert.is(r.imgx, 0, `imgx export failed (${r.imgx}): ${r.stderr}`);
    assert.is(r.tar, 0, `tar -x failed (${r.tar}): ${r.stderr}`);
    exportedSha = r.sha256;
    // Like docker export, the stream has no entry for the root: its metadata is the directory tar extracts into.
    exported = diffSnapshots(reference, snapshotTree(dest), { root: false });
    exported.dirMtimes = exported.dirMtimes.filter((l) => !l.startsWith('mtime: .:'));
    assertSame(exported, 'imgx export | tar -x', false);
    removeTempDir(dest);
  });

  // Separate, to name the cause: GNU tar sets a directory's times once it meets a member outside
  // that directory, so a stream with every directory first gets them overwritten by later files
  // unless the directory entries (or their times) come after the files.
  test('imgx export | tar -x restores directory mtimes (plain tar -x, no --delay-directory-restore)', () => {
    assert.ok(exported, 'the export ran');
    assert.equal(exported!.dirMtimes, [], `${exported!.dirMtimes.length} directory mtimes differ:\n  ${exported!.dirMtimes.slice(0, 20).join('\n  ')}`);
  });

  test('imgx export -o FILE writes the same tar as to stdout', async () => {
    assert.ok(exportedSha, 'the stdout export ran');
    const file = join(work, 'export.tar');
    const r = await runImgx(['export', '--quiet', ref, '-o', file], { env: { IMGX_CACHE: cache }, timeoutMs: LONG });
    assert.is(r.code, 0, `imgx export -o failed (${r.code}): ${r.stderr}`);
    assert.is(await sha256File(file), exportedSha, 'same bytes whether written to a file or to stdout');
    removeTempDir(file);
  });

  test('unprivileged imgx extract: the same tree but for owners, devices and security xattrs; one summary warning', async () => {
    const home = userHome(NOBODY);
    const dest = join(home, 'out', 'rootfs');
    // Not --quiet: the summary warning is what is checked.
    const r = await runImgxAs(NOBODY, ['extract', ref, dest], home);
    assert.is(r.code, 0, `unprivileged imgx extract failed (${r.code}): ${r.stderr}`);
    const warningLines = r.stderr.split('\n').filter((l) => l.trim());
    assert.is(warningLines.length, 1, `one summary line, not one per file or per kind:\n${r.stderr.slice(0, 2000)}`);
    assert.match(r.stderr, /IMGX_UNPRIVILEGED/);
    assert.match(r.stderr, /\d/, 'the summary carries counts');

    const mine = snapshotTree(dest);
    const problems: string[] = [];
    for (const [p, n] of mine.nodes) {
      if (n.uid !== NOBODY || n.gid !== NOBODY) problems.push(`owner: ${p}: ${n.uid}:${n.gid}, want the extracting user`);
      if (n.type === 'char-device' || n.type === 'block-device') problems.push(`device node created unprivileged: ${p}`);
    }
    // Compare with the reference what an unprivileged writer can reproduce.
    const expected = snapshotTree(join(work, 'bundle', 'rootfs'));
    const deviceLike = (p: string) => ['char-device', 'block-device'].includes(expected.nodes.get(p)?.type ?? '');
    for (const t of [expected, mine]) {
      for (const [p, n] of t.nodes) {
        if (deviceLike(p)) t.nodes.delete(p);
        n.uid = n.gid = 0;
        for (const k of Object.keys(n.xattrs)) if (!k.startsWith('user.')) delete n.xattrs[k];
      }
    }
    const d = diffSnapshots(expected, mine);
    problems.push(...allDiffs(d));
    assert.equal(problems, [], `unprivileged extract:\n  ${problems.slice(0, 60).join('\n  ')}`);
    removeTempDir(home);
  });

  test('unprivileged imgx extract --strict fails (IMGX_STRICT) and leaves no tree behind', async () => {
    const home = userHome(NOBODY);
    const dest = join(home, 'out', 'rootfs');
    const r = await runImgxAs(NOBODY, ['extract', '--strict', ref, dest], home);
    assert.is(r.code, 13, `want exit 13 (IMGX_STRICT), got ${r.code}: ${r.stderr}`);
    assert.ok(!existsSync(dest) || readdirSync(dest).length === 0, 'no partial tree that looks complete');
    removeTempDir(home);
  });
}

test.run();
