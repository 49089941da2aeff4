// `imgx ls`, `cat`, `layers` and `diff` through the CLI, on synthetic multi-layer images in OCI
// layouts and in the loopback registry. That a second run does not scan the layers again is shown
// without timing: the layout's layer blobs are overwritten with garbage after the first run (any
// read of them would fail), and, for the registry, the image is read by digest with the registry
// gone; the --debug line says where the tree came from.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeOciLayout, type WrittenImage } from '../fixtures/oci-layout.ts';
import { makeTar } from '../fixtures/tar.ts';
import { IMGX_BIN, NODE_BIN, runImgx, type ImgxResult } from '../helpers/imgx.ts';
import { pushOciLayout } from '../helpers/push.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { requireTools } from '../helpers/tools.ts';
import { treeIndexPath } from '../../src/layers/tree-cache.ts';

const TOOL = randomBytes(150_000);
const TOOL2 = randomBytes(150_000);

const L0 = makeTar([
  { name: 'etc/', type: 'directory' },
  { name: 'etc/os-release', content: 'ID=imgx\n' },
  { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' },
  { name: 'etc/hostname', content: 'box\n' },
  { name: 'usr/', type: 'directory' },
  { name: 'usr/bin/', type: 'directory' },
  { name: 'usr/bin/tool', content: TOOL, mode: 0o755 },
  { name: 'usr/bin/t', type: 'symlink', linkname: 'tool' },
  { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
  { name: 'opt/data/', type: 'directory' },
  { name: 'opt/data/a', content: 'a' },
  { name: 'opt/data/b', content: 'b' },
]);
const L1 = makeTar([
  { name: 'etc/.wh.hostname' },
  { name: 'etc/motd', content: 'welcome\n', uid: 1000, gid: 1000 },
  { name: 'usr/bin/tool', content: TOOL2, mode: 0o755 },
  { name: 'opt/data/.wh..wh..opq' },
  { name: 'opt/data/c', content: 'c' },
]);
const L2 = makeTar([
  { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\nimgx:x:1000:1000::/home/imgx:/bin/sh\n' },
  { name: 'usr/bin/su', content: 'SU', mode: 0o4755 },
  { name: 'var/log/', type: 'directory' },
]);

const EXPECTED_DIFF = ['M /etc/passwd (size 30→67)', 'A /usr/bin/su', 'A /var', 'A /var/log'];

function ok(r: ImgxResult, what: string): ImgxResult {
  assert.is(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
  return r;
}

function lines(s: string): string[] {
  return s.split('\n').filter((l) => l !== '');
}

/** Overwrites each layer blob of a written image with garbage of the same size. */
function spoilLayers(layout: string, image: WrittenImage, keep: (i: number) => boolean = () => false): void {
  image.manifests[0]!.layers.forEach((l, i) => {
    if (keep(i)) return;
    writeFileSync(join(layout, 'blobs', 'sha256', l.digest.slice('sha256:'.length)), Buffer.alloc(l.size, 0x5a));
  });
}

// ---- OCI layouts ------------------------------------------------------------------------------

const oci = suite('browse: oci layouts');
let dir: string;
let layout: string;
let v1: WrittenImage;
let v2: WrittenImage;
let cache: string;
const imgx = (args: string[]) => runImgx(args, { env: { IMGX_CACHE: cache } });

oci.before(() => {
  dir = tempDir('imgx-browse-');
  layout = join(dir, 'layout');
  v1 = writeOciLayout(layout, { tag: 'v1', layers: [L0, L1] });
  v2 = writeOciLayout(layout, { tag: 'v2', layers: [L0, L1, L2], config: { history: [{ created_by: 'base' }, { created_by: 'ENV X=1', empty_layer: true }, { created_by: 'update' }, { created_by: 'add su' }] } });
  cache = tempDir('imgx-browse-cache-');
});

oci('ls: names, -l, -R, a file, --json', async () => {
  const img = `oci:${layout}:v2`;
  assert.equal(lines(ok(await imgx(['ls', img]), 'ls').stdout), ['bin', 'etc', 'opt', 'usr', 'var']);
  assert.equal(lines(ok(await imgx(['ls', img, '/etc']), 'ls /etc').stdout), ['motd', 'os-release', 'passwd']);
  assert.equal(lines(ok(await imgx(['ls', img, '/opt', '-R']), 'ls -R').stdout), ['data', 'data/c']);
  assert.equal(lines(ok(await imgx(['ls', img, 'bin']), 'ls bin').stdout), ['su', 't', 'tool']);
  const long = lines(ok(await imgx(['ls', '-l', img, '/usr/bin']), 'ls -l').stdout);
  assert.equal(long, [
    '-rwsr-xr-x 0 0      2 1970-01-01 00:00 su',
    'lrw-r--r-- 0 0      0 1970-01-01 00:00 t -> tool',
    '-rwxr-xr-x 0 0 150000 1970-01-01 00:00 tool',
  ]);
  assert.equal(lines(ok(await imgx(['ls', img, '/etc/motd', '-l']), 'ls -l file').stdout), ['-rw-r--r-- 1000 1000 8 1970-01-01 00:00 /etc/motd']);
  const json = JSON.parse(ok(await imgx(['ls', img, '/etc', '--json']), 'ls --json').stdout);
  assert.equal(json, [
    { path: '/etc/motd', type: 'file', mode: 0o644, uid: 1000, gid: 1000, size: 8, mtime: 0 },
    { path: '/etc/os-release', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 8, mtime: 0 },
    { path: '/etc/passwd', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 67, mtime: 0 },
  ]);
});

oci('ls of a missing path: IMGX_NOT_FOUND, one line, exit 4', async () => {
  for (const p of ['/etc/hostname', '/opt/data/a', '/nope/x']) {
    const r = await imgx(['ls', `oci:${layout}:v2`, p]);
    assert.is(r.code, 4, r.stderr);
    assert.is(r.stdout, '');
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^imgx: .*no such file or directory/);
  }
});

oci('cat: byte-exact content, through symlinks, from the right layer', async () => {
  const img = `oci:${layout}:v2`;
  const run = (p: string) => runImgx(['cat', img, p], { env: { IMGX_CACHE: cache } });
  assert.is(ok(await run('/etc/motd'), 'cat motd').stdout, 'welcome\n');
  assert.is(ok(await run('etc/passwd'), 'cat passwd').stdout, 'root:x:0:0:root:/root:/bin/sh\nimgx:x:1000:1000::/home/imgx:/bin/sh\n');
  assert.is(ok(await imgx(['cat', `oci:${layout}:v1`, '/etc/passwd']), 'cat v1').stdout, 'root:x:0:0:root:/root:/bin/sh\n');
  for (const [p, re] of [['/etc', /is a directory/], ['/etc/hostname', /no such file/], ['/usr/bin/t/x', /not a directory/]] as const) {
    const r = await run(p);
    assert.is(r.code, 4, `${p}: ${r.stderr}`);
    assert.equal(lines(r.stderr).length, 1);
    assert.match(r.stderr, re);
  }
});

oci('cat of a binary file is byte-exact, through a pipe to a file', async () => {
  // runImgx decodes stdout as text; let a shell redirect the bytes into a file instead.
  const out = join(dir, 'tool.out');
  const s = spawnSync('sh', ['-c', '"$0" "$1" cat "$2" /bin/tool > "$3"', NODE_BIN, IMGX_BIN, `oci:${layout}:v2`, out], {
    env: { ...process.env, IMGX_CACHE: cache },
    encoding: 'utf8',
  });
  assert.is(s.status, 0, s.stderr);
  assert.ok(readFileSync(out).equals(TOOL2));
  // A reader that leaves early (`| head -c`) is not an error.
  const head = spawnSync('sh', ['-c', '"$0" "$1" cat "$2" /bin/tool | head -c 10 | wc -c', NODE_BIN, IMGX_BIN, `oci:${layout}:v2`], {
    env: { ...process.env, IMGX_CACHE: cache },
    encoding: 'utf8',
  });
  assert.is(head.stdout.trim(), '10');
  assert.not.match(head.stderr, /imgx:/, head.stderr);
});

oci('layers: per-layer changes, sizes and history (empty steps skipped)', async () => {
  const j = JSON.parse(ok(await imgx(['layers', `oci:${layout}:v2`, '--json']), 'layers --json').stdout);
  assert.is(j.layers.length, 3);
  assert.equal(
    j.layers.map((l: { index: number; createdBy: string; digest: string; size: number }) => [l.index, l.createdBy, l.digest, l.size]),
    v2.manifests[0]!.layers.map((l, i) => [i, ['base', 'update', 'add su'][i], l.digest, l.size]),
  );
  const [l0, l1, l2] = j.layers;
  assert.is(l0.modified, 0);
  assert.is(l0.removed, 0);
  assert.ok(l0.added >= 12, `layer 0 added ${l0.added}`);
  assert.ok(l1.removed >= 3, 'hostname and the opaque directory children');
  assert.is(l1.modifiedBytes, TOOL2.length);
  assert.is(l2.added, 3, 'su, var, var/log');
  assert.is(l2.modified, 1, 'passwd');
  assert.is(l0.paths, undefined, 'paths only with --paths');
  assert.is(j.layers[0].diffId, v2.diffIds[0]);

  const withPaths = JSON.parse(ok(await imgx(['layers', `oci:${layout}:v2`, '--json', '--paths']), 'layers --paths').stdout);
  const p2 = withPaths.layers[2].paths.map((p: { path: string; change: string }) => `${p.change} ${p.path}`).sort();
  assert.equal(p2, ['added /usr/bin/su', 'added /var', 'added /var/log', 'modified /etc/passwd']);
  assert.ok(withPaths.layers[1].paths.some((p: { path: string; change: string }) => p.path === '/etc/hostname' && p.change === 'removed'));

  const human = ok(await imgx(['layers', `oci:${layout}:v2`]), 'layers').stdout;
  assert.match(human, /^#\s+DIGEST\s+SIZE\s+ADDED\s+MODIFIED\s+REMOVED\s+CREATED BY$/m);
  assert.match(human, /^2\s+sha256:[0-9a-f]{12}\s+.*\badd su$/m);
  assert.match(human, /3 layers/);
  const verbose = ok(await imgx(['layers', `oci:${layout}:v2`, '-v']), 'layers -v').stdout;
  assert.match(verbose, /^ {2}D \/etc\/hostname$/m);
  assert.match(verbose, /^ {2}A \/usr\/bin\/su \(2 B\)$/m);
});

oci('diff: A/D/M lines and --json, the second time from the indexes', async () => {
  const r = ok(await imgx(['diff', `oci:${layout}:v1`, `oci:${layout}:v2`, '--debug']), 'diff');
  assert.equal(lines(r.stdout), EXPECTED_DIFF);
  const again = ok(await imgx(['diff', `oci:${layout}:v1`, `oci:${layout}:v2`, '--json', '--debug']), 'diff --json');
  assert.is(again.stderr.match(/loaded from the cache, no layer scanned/g)?.length, 2, again.stderr);
  const j = JSON.parse(again.stdout);
  assert.equal(j.summary, { added: 3, removed: 0, modified: 1 });
  assert.equal(j.from.manifest, v1.root.digest);
  assert.equal(j.to.manifest, v2.root.digest);
  assert.equal(j.changes[0], {
    path: '/etc/passwd',
    change: 'modified',
    type: 'file',
    fields: ['size'],
    before: { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 30 },
    after: { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 67 },
  });
  const back = ok(await imgx(['diff', `oci:${layout}:v2`, `oci:${layout}:v1`]), 'diff back');
  assert.equal(lines(back.stdout), ['M /etc/passwd (size 67→30)', 'D /usr/bin/su', 'D /var', 'D /var/log']);
  const same = ok(await imgx(['diff', `oci:${layout}:v2`, `oci:${layout}:v2`]), 'diff same');
  assert.is(same.stdout, '');
});

oci('a second ls or cat does not scan the layers: it works with every layer blob spoiled', async () => {
  // A copy of the layout, so the other tests keep theirs.
  const own = join(dir, 'spoiled');
  cpSync(layout, own, { recursive: true });
  const img = `oci:${own}:v2`;
  const ownCache = tempDir('imgx-browse-cache-');
  const run = (args: string[]) => runImgx([...args, '--debug'], { env: { IMGX_CACHE: ownCache } });

  const first = ok(await run(['ls', img, '/etc']), 'first ls');
  assert.match(first.stderr, /built by scanning 3 layers/);
  const index = treeIndexPath(ownCache, v2.root.digest);
  assert.ok(existsSync(index), 'the browse index is in the cache');
  const mtime = statSync(index).mtimeMs;

  // Layer 2 holds /etc/passwd: with the others spoiled, cat still works, so it read only that one.
  spoilLayers(own, v2, (i) => i === 2);
  const catted = ok(await run(['cat', img, '/etc/passwd']), 'cat with layers 0 and 1 spoiled');
  assert.match(catted.stdout, /^imgx:x:1000/m);
  assert.match(catted.stderr, /loaded from the cache, no layer scanned/);

  spoilLayers(own, v2);
  const second = ok(await run(['ls', img, '/etc']), 'ls with every layer spoiled');
  assert.is(second.stdout, first.stdout);
  assert.match(second.stderr, /loaded from the cache, no layer scanned/);
  ok(await run(['ls', '-lR', img]), 'ls -lR with every layer spoiled');
  ok(await run(['layers', img]), 'layers with every layer spoiled');
  assert.is(statSync(index).mtimeMs, mtime, 'the index was not rewritten');

  // Reading content now fails, as it must: the spoiled layer is refused, not trusted.
  const broken = await run(['cat', img, '/etc/passwd']);
  assert.is.not(broken.code, 0);
  assert.is(broken.stdout, '');
});

oci.run();

// ---- the loopback registry --------------------------------------------------------------------

const reg = suite('browse: registry');
if (requireTools(reg, ['docker-registry'])) {
  let registry: Registry;
  let rdir: string;
  let rcache: string;
  let d1: string;
  let d2: string;
  const run = (args: string[]) => runImgx([...args, '--debug'], { env: { IMGX_CACHE: rcache } });

  reg.before(async () => {
    registry = await startRegistry();
    rdir = tempDir('imgx-browse-reg-');
    writeOciLayout(join(rdir, 'layout'), { tag: 'v1', layers: [L0, L1] });
    writeOciLayout(join(rdir, 'layout'), { tag: 'v2', layers: [L0, L1, L2], compression: 'zstd' });
    d1 = await pushOciLayout(join(rdir, 'layout'), `${registry.host}/browse/img:v1`, { layoutTag: 'v1' });
    d2 = await pushOciLayout(join(rdir, 'layout'), `${registry.host}/browse/img:v2`, { layoutTag: 'v2' });
    rcache = tempDir('imgx-browse-cache-');
  });

  reg.after(async () => {
    await registry?.stop();
  });

  reg('ls, cat, layers, diff on registry images; the index is reused', async () => {
    const img1 = `docker://${registry.host}/browse/img:v1`;
    const img2 = `docker://${registry.host}/browse/img:v2`;
    const first = ok(await run(['ls', img2, '/usr/bin']), 'ls');
    assert.equal(lines(first.stdout), ['su', 't', 'tool']);
    assert.match(first.stderr, /built by scanning 3 layers/);
    const second = ok(await run(['ls', img2, '/usr/bin', '-l']), 'second ls');
    assert.match(second.stderr, /loaded from the cache, no layer scanned/);
    assert.is(ok(await run(['cat', img2, '/etc/motd']), 'cat').stdout, 'welcome\n');
    const layers = JSON.parse(ok(await run(['layers', img2, '--json']), 'layers').stdout);
    assert.is(layers.layers.length, 3);
    assert.equal(lines(ok(await run(['diff', img1, img2]), 'diff').stdout), EXPECTED_DIFF);
  });

  reg('with the registry gone, an image by digest is browsed from the cache alone', async () => {
    await registry.stop();
    const img2 = `docker://${registry.host}/browse/img@${d2}`;
    const ls = ok(await run(['ls', img2, '/etc']), 'ls by digest, offline');
    assert.equal(lines(ls.stdout), ['motd', 'os-release', 'passwd']);
    assert.match(ls.stderr, /loaded from the cache, no layer scanned/);
    assert.is(ok(await run(['cat', img2, '/etc/os-release']), 'cat offline').stdout, 'ID=imgx\n');
    const diff = ok(await run(['diff', `docker://${registry.host}/browse/img@${d1}`, img2]), 'diff offline');
    assert.equal(lines(diff.stdout), EXPECTED_DIFF);
  });
}
reg.run();
