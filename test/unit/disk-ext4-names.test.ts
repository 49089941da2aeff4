// Names keep their bytes in the native ext4 writer (issue 16): a layer's names, symlink targets and
// xattr names that are not UTF-8 reach ext4 byte for byte (raw-name.ts's surrogateescape form on
// the way), two names that differ only in such bytes stay two files, and a directory tree with such
// names round-trips through tree-source.ts. e2fsprogs is the judge: e2fsck -fn, debugfs `ls`,
// `ea_list`, and `rdump` into a directory read back with Buffer names.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readTreeXattrs, treeEntries, unescapeName } from '../../src/disk/ext4/tree-source.ts';
import { usageOfEntries } from '../../src/disk/fs-size.ts';
import { layerEntries, writeLayerRootFs } from '../../src/disk/layer-rootfs.ts';
import { NativeExt4Builder } from '../../src/disk/native-ext4-builder.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { decodeName, encodeName } from '../../src/util/raw-name.ts';
import { Warnings } from '../../src/warnings.ts';
import { makeTar, type TarEntry } from '../fixtures/tar.ts';
import { haveTool, requireTools } from '../helpers/tools.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { countingReaders } from './flatten-helpers.ts';

const MIB = 1024 * 1024;
const OFF = MIB;
const SIZE = 32 * MIB;
const tmp = tempDir('imgx-disk-names-');
let n = 0;
const fresh = () => {
  const d = join(tmp, `t${n++}`);
  mkdirSync(d);
  return d;
};
const raw = (...parts: (string | number[] | Buffer)[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
/** A name from bytes, as the tar reader gives it. */
const D = (...parts: (string | number[] | Buffer)[]) => decodeName(raw(...parts));

// Bytes that are not UTF-8: a lone 0xff, a stray continuation byte, a truncated sequence, Latin-1.
const F = raw('f', [0xff, 0x80]);
const A_FF = raw('a', [0xff]);
const A_FE = raw('a', [0xfe]);
const DIR = raw('d', [0xe9], 'r');
const TRUNC = raw([0xe2, 0x82], '.txt');
const CAFE = raw('caf', [0xc3, 0xa9]);
const SHORT_TARGET = raw('../', [0xff, 0x80]);
const LONG_TARGET = raw('x'.repeat(70), '/', [0xfe, 0xfd]);
const XNAME_FF = raw('user.n', [0xff]);
const XNAME_FE = raw('user.n', [0xfe]);

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 64 * MIB });
  return { status: r.status, out: r.stdout, err: r.stderr.toString('latin1') };
}
/** debugfs with commands given as bytes (a file, so that names need not be text). */
function debugfs(spec: string, cmds: Buffer[], dir: string): Buffer {
  const file = join(dir, `cmds${n++}`);
  writeFileSync(file, Buffer.concat(cmds.flatMap((c) => [c, Buffer.from('\n')])));
  const r = run('debugfs', ['-f', file, spec]);
  assert.is(r.status, 0, r.err);
  return r.out;
}
function fsckClean(spec: string): void {
  const r = run('e2fsck', ['-fn', spec]);
  const out = r.out.toString('latin1');
  assert.is(r.status, 0, out + r.err);
  const odd = out.split('\n').filter((l) => l && !/^Pass \d[a-z]?: /.test(l) && !/^\S+: \d+\/\d+ files \(.*\), \d+\/\d+ blocks$/.test(l));
  assert.equal(odd, [], out);
}
function imageFile(dir: string): string {
  const path = join(dir, 'disk.img');
  const fd = openSync(path, 'w');
  ftruncateSync(fd, OFF + SIZE);
  closeSync(fd);
  return path;
}
/** `rdump /` into a fresh directory: the tree as ext4 holds it, on the host. */
function rdump(spec: string, dir: string): string {
  const out = join(dir, `rdump${n++}`);
  mkdirSync(out);
  debugfs(spec, [Buffer.from(`rdump / ${out}`)], dir);
  return out;
}
const names = (dir: Buffer | string) => readdirSync(dir, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
const hexes = (...bs: Buffer[]) => bs.map((b) => b.toString('hex')).sort();
/** debugfs's ea_list line for an xattr whose name is not printable: its bytes in hex. */
const eaLine = (name: Buffer, value: string) => Buffer.from(`${[...name].map((b) => b.toString(16).padStart(2, '0')).join(' ')}  (${value.length}) = "${value}"`);
const at = (root: string, ...parts: Buffer[]) => Buffer.concat([Buffer.from(root), ...parts.flatMap((p) => [Buffer.from('/'), p])]);

test('unescapeName: getfattr\'s octal escapes and raw bytes give the name\'s bytes, decoded without replacement', () => {
  assert.is(unescapeName(Buffer.from('/tmp/q\\134z')), '/tmp/q\\z');
  assert.is(unescapeName(Buffer.from('user.e\\075q')), 'user.e=q');
  assert.is(unescapeName(raw('/t/f', [0xff, 0x80])), D('/t/f', [0xff, 0x80]));
  assert.ok(encodeName(unescapeName(Buffer.from('/t/\\377\\200'))).equals(raw('/t/', [0xff, 0x80])));
  assert.is(unescapeName(Buffer.from('caf\\303\\251')), 'café');
  assert.not.ok(unescapeName(raw([0xff])).includes('\ufffd'));
});

if (requireTools(test, ['e2fsck', 'debugfs'])) {
  test('writeLayerRootFs: names, symlink targets and xattr names that are not UTF-8 keep their bytes; names differing only in them stay apart', async () => {
    const t = fresh();
    const layer: TarEntry[] = [
      { name: `${D(DIR)}/`, type: 'directory' },
      { name: `${D(DIR)}/${D(F)}`, content: 'in a raw directory' },
      { name: D(A_FF), content: 'a-ff' },
      { name: D(A_FE), content: 'a-fe' },
      { name: D(TRUNC), content: 'truncated sequence' },
      { name: D(CAFE), content: 'valid UTF-8' },
      { name: 'short', type: 'symlink', linkname: D(SHORT_TARGET) },
      { name: 'long', type: 'symlink', linkname: D(LONG_TARGET) },
      { name: D('h', [0xff]), type: 'hardlink', linkname: D(A_FF) },
      { name: 'x', content: 'xattrs', pax: { [`SCHILY.xattr.${D(XNAME_FF)}`]: 'v-ff', [`SCHILY.xattr.${D(XNAME_FE)}`]: 'v-fe' } },
    ];
    const { layers: readers } = countingReaders([makeTar(layer)]);
    const tree = await scanLayers(readers, { warnings: new Warnings() });
    const planned = layerEntries(tree);
    assert.ok(planned.entries.has(D(A_FF)) && planned.entries.has(D(A_FE)), 'two entries');
    const img = imageFile(t);
    await writeLayerRootFs({ image: img, offset: OFF, size: SIZE, tree, layers: readers, planned, extras: [], uuid: '12345678-1234-1234-1234-123456789abc', label: 'root', inodes: 1024 });
    const spec = `${img}?offset=${OFF}`;
    fsckClean(spec);

    // debugfs ls: the exact bytes of every name.
    const ls = debugfs(spec, [Buffer.from('ls -p /')], t);
    for (const name of [A_FF, A_FE, TRUNC, CAFE, raw('h', [0xff]), DIR]) assert.ok(ls.includes(Buffer.concat([Buffer.from('/'), name, Buffer.from('/')])), `ls shows ${name.toString('hex')}`);
    assert.not.ok(ls.includes(Buffer.from('\ufffd')), 'no replacement character');
    assert.ok(debugfs(spec, [Buffer.concat([Buffer.from('ls -p /'), DIR])], t).includes(Buffer.concat([Buffer.from('/'), F, Buffer.from('/')])));

    // rdump: the tree as ext4 holds it, names as bytes.
    const out = rdump(spec, t);
    assert.equal(names(out), hexes(A_FF, A_FE, TRUNC, CAFE, raw('h', [0xff]), DIR, Buffer.from('short'), Buffer.from('long'), Buffer.from('x'), Buffer.from('lost+found')));
    assert.is(readFileSync(at(out, A_FF), 'utf8'), 'a-ff');
    assert.is(readFileSync(at(out, A_FE), 'utf8'), 'a-fe');
    assert.is(readFileSync(at(out, raw('h', [0xff])), 'utf8'), 'a-ff');
    assert.is(readFileSync(at(out, TRUNC), 'utf8'), 'truncated sequence');
    assert.is(readFileSync(at(out, DIR, F), 'utf8'), 'in a raw directory');
    assert.ok(readlinkSync(at(out, Buffer.from('short')), { encoding: 'buffer' }).equals(SHORT_TARGET), 'fast symlink target');
    assert.ok(readlinkSync(at(out, Buffer.from('long')), { encoding: 'buffer' }).equals(LONG_TARGET), 'block symlink target');
    // The hardlink is the same inode.
    const inode = (name: Buffer) => /Inode: (\d+)/.exec(debugfs(spec, [Buffer.concat([Buffer.from('stat /'), name])], t).toString('latin1'))?.[1];
    assert.is(inode(raw('h', [0xff])), inode(A_FF));
    assert.is.not(inode(A_FE), inode(A_FF));

    // xattr names as bytes, two that differ only in a raw byte apart.
    const ea = debugfs(spec, [Buffer.from('ea_list /x')], t);
    assert.ok(ea.includes(eaLine(XNAME_FF, 'v-ff')), ea.toString('latin1'));
    assert.ok(ea.includes(eaLine(XNAME_FE, 'v-fe')), ea.toString('latin1'));
  });

  test('treeEntries → NativeExt4Builder → rdump: a directory tree with names that are not UTF-8 round-trips byte for byte', async () => {
    const t = fresh();
    const root = join(t, 'tree');
    mkdirSync(root);
    const p = (...parts: Buffer[]) => at(root, ...parts);
    mkdirSync(p(DIR));
    writeFileSync(p(DIR, F), 'in a raw directory');
    writeFileSync(p(A_FF), 'a-ff');
    writeFileSync(p(A_FE), 'a-fe');
    writeFileSync(p(TRUNC), 'truncated sequence');
    writeFileSync(p(CAFE), 'valid UTF-8');
    symlinkSync(SHORT_TARGET, p(Buffer.from('short')));
    symlinkSync(LONG_TARGET, p(Buffer.from('long')));
    linkSync(p(A_FF), p(raw('h', [0xff])));
    const withXattr = haveTool('setfattr') && haveTool('getfattr');
    if (withXattr) {
      // setfattr's arguments as bytes (argv from a JS string would be UTF-8): through the shell's printf.
      const octal = (b: Buffer) => [...b].map((x) => `\\${x.toString(8).padStart(3, '0')}`).join('');
      const r = spawnSync('sh', ['-c', `f="$(printf '${octal(p(A_FE))}')"; setfattr -n "$(printf '${octal(XNAME_FF)}')" -v v-ff "$f" && setfattr -n "$(printf '${octal(XNAME_FE)}')" -v v-fe "$f"`]);
      assert.is(r.status, 0, r.stderr.toString());
      const xs = await readTreeXattrs(root);
      const got = xs!.get(D(root, '/', A_FE));
      assert.ok(got, `getfattr's file line read as bytes: ${[...xs!.keys()].join(', ')}`);
      assert.equal([...got!.entries()].map(([k, v]) => [k, v.toString()]).sort(), [[D(XNAME_FE), 'v-fe'], [D(XNAME_FF), 'v-ff']]);
    }

    const { entries } = await treeEntries(root);
    assert.equal([...entries.keys()].sort(), ['.', D(A_FE), D(A_FF), D(CAFE), D(DIR), `${D(DIR)}/${D(F)}`, D(TRUNC), D('h', [0xff]), 'long', 'short'].sort());
    assert.is(entries.get(D('h', [0xff]))!.entry.type, 'hardlink');
    assert.is(entries.get('short')!.entry.linkname, D(SHORT_TARGET));
    assert.ok(usageOfEntries(entries).blocks > 0);

    const img = imageFile(t);
    const builder = new NativeExt4Builder();
    await builder.build({ image: img, offset: OFF, size: SIZE, tree: root, extras: [], uuid: '12345678-1234-1234-1234-123456789abc', label: 'root', inodes: 1024, workDir: t });
    const spec = `${img}?offset=${OFF}`;
    fsckClean(spec);
    const out = rdump(spec, t);
    assert.equal(names(out), [...names(root), Buffer.from('lost+found').toString('hex')].sort());
    assert.equal(names(at(out, DIR)), hexes(F));
    for (const name of [A_FF, A_FE, TRUNC, CAFE, raw('h', [0xff])]) assert.ok(readFileSync(at(out, name)).equals(readFileSync(p(name))), name.toString('hex'));
    assert.ok(readFileSync(at(out, DIR, F)).equals(readFileSync(p(DIR, F))));
    assert.ok(readlinkSync(at(out, Buffer.from('short')), { encoding: 'buffer' }).equals(SHORT_TARGET));
    assert.ok(readlinkSync(at(out, Buffer.from('long')), { encoding: 'buffer' }).equals(LONG_TARGET));
    if (withXattr) {
      const ea = debugfs(spec, [Buffer.concat([Buffer.from('ea_list /'), A_FE])], t);
      assert.ok(ea.includes(eaLine(XNAME_FF, 'v-ff')), ea.toString('latin1'));
      assert.ok(ea.includes(eaLine(XNAME_FE, 'v-fe')), ea.toString('latin1'));
    }
  });
}

test.run();
