// Issue 16 through the CLI: layers read as Docker reads them, whatever other projects' writers
// and hostile hands put in them. Each test is named after the reader behaviour or the advisory it
// pins; every input is built here (GNU tar, imgx's own encoder, bytes by hand).
// - Go's archive/tar (the reader in Docker, containerd, BuildKit): the last of several PAX headers,
//   global headers that change nothing, GNU long names over PAX paths, numbers with leading zeros;
// - sparse files (old GNU, PAX 0.0, 0.1, 1.0, as GNU tar writes them): holes stay holes through
//   extract, export and ls;
// - names that are not UTF-8 kept byte for byte (extract, export, ls, ls --json, the index, diff),
//   never merged; control characters never reach the terminal;
// - containerd's order within a layer (a hardlink keeps a lower file a later whiteout removes);
// - node-tar CVE-2024-28863: a path nested a few hundred thousand directories deep.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT_STATUS } from '../../src/cli/exit-codes.ts';
import { requireTools } from '../helpers/tools.ts';

if (requireTools(test, ['tar'])) {
  const { runImgx } = await import('../helpers/imgx.ts');
  const { tempDir } = await import('../helpers/tempdir.ts');
  const { writeOciLayout } = await import('../fixtures/oci-layout.ts');
  const { makeTar } = await import('../fixtures/tar.ts');
  const { BLOCK_SIZE, checksums, encodeHeader, encodePax, paddingFor } = await import('../../src/layers/tar-header.ts');
  const { decodeName, encodeName } = await import('../../src/util/raw-name.ts');

  /** An oci: reference to a one-image layout of these layers. */
  const image = (layers: Buffer[], name = 'img'): string => {
    const dir = join(tempDir('imgx-untrusted-'), name);
    writeOciLayout(dir, { layers, tag: 'v1' });
    return `oci:${dir}:v1`;
  };
  const ok = async (args: string[], cache?: string) => {
    const r = await runImgx(args, cache ? { env: { IMGX_CACHE: cache } } : {});
    assert.is(r.code, 0, `imgx ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  /** Nothing but `keep` in `dir` (no staging directory, no staged contents, no DEST). */
  const onlyThere = (dir: string, keep: string[]) => assert.equal(readdirSync(dir).sort(), keep.sort());
  const padded = (b: Buffer) => Buffer.concat([b, Buffer.alloc(paddingFor(b.length))]);
  const ext = (type: 'pax-header' | 'pax-global-header', records: Record<string, string | Buffer>) => {
    const body = encodePax(records);
    return Buffer.concat([encodeHeader({ name: 'PaxHeader', type, size: body.length }), padded(body)]);
  };
  const gnuLong = (type: 'gnu-long-name' | 'gnu-long-link', value: string) => {
    const body = Buffer.concat([encodeName(value), Buffer.alloc(1)]);
    return Buffer.concat([encodeHeader({ name: '././@LongLink', type, size: body.length }, { format: 'gnu' }), padded(body)]);
  };
  const END = Buffer.alloc(2 * BLOCK_SIZE);

  test("Go archive/tar: the last of several PAX headers applies, g headers change nothing, a GNU long name wins, size=000…0999", async () => {
    const layer = Buffer.concat([
      // pax-multi-hdrs.tar: the first header's path is not applied.
      ext('pax-header', { path: 'PAX1/PAX1/long-path-name' }),
      ext('pax-header', { linkpath: 'PAX4/PAX4/long-linkpath-name' }),
      encodeHeader({ name: 'bar', type: 'symlink', linkname: 'short' }),
      // pax-global-records.tar: neither path nor mtime of a global header reaches an entry.
      ext('pax-global-header', { path: 'global1', mtime: '1500000000.0', uid: '4242' }),
      encodeHeader({ name: 'file1', size: 0 }),
      // gnu-multi-hdrs.tar and a PAX path under a GNU long name: the last GNU name wins.
      gnuLong('gnu-long-name', 'GNU1/GNU1/long-path-name'),
      ext('pax-header', { path: 'from-pax' }),
      gnuLong('gnu-long-name', 'GNU2/GNU2/long-path-name'),
      encodeHeader({ name: 'ignored', size: 0 }),
      // pax-pos-size-file.tar: leading zeros in a number.
      ext('pax-header', { size: '000000000000000000000999' }),
      encodeHeader({ name: 'foo', size: 5 }),
      padded(Buffer.alloc(999, 0x61)),
      END,
    ]);
    const dest = join(tempDir(), 'out');
    await ok(['extract', image([layer]), dest]);
    assert.equal(readdirSync(dest).sort(), ['GNU2', 'bar', 'file1', 'foo']);
    assert.is(readlinkSync(join(dest, 'bar')), 'PAX4/PAX4/long-linkpath-name');
    assert.is(statSync(join(dest, 'file1')).mtimeMs, 0);
    assert.is(statSync(join(dest, 'file1')).uid, 0);
    assert.ok(existsSync(join(dest, 'GNU2/GNU2/long-path-name')));
    assert.is(readFileSync(join(dest, 'foo')).length, 999);
  });

  test('Go archive/tar: a NUL in a PAX path or an xattr name is refused (pax-nul-path.tar, pax-nul-xattrs.tar): exit 8, one line', async () => {
    for (const records of [{ path: 'a\0b' }, { 'SCHILY.xattr.user.a\0b': 'v' }] as Record<string, string>[]) {
      const layer = Buffer.concat([ext('pax-header', records), encodeHeader({ name: 'f', size: 0 }), END]);
      const parent = tempDir();
      const r = await runImgx(['extract', image([layer]), join(parent, 'out')]);
      assert.is(r.code, EXIT_STATUS.IMGX_BAD_ARCHIVE, r.stderr);
      assert.match(r.stderr, /^imgx: layer 0 .*NUL byte.*\n$/);
      onlyThere(parent, []);
    }
  });

  // A 60 GB file with 6 × 512 bytes of data, as Go's gnu-sparse-big.tar and pax-sparse-big.tar.
  const SPARSE_SIZE = 60_000_000_000;
  const sparseSource = (() => {
    const dir = tempDir('imgx-sparse-');
    mkdirSync(join(dir, 'src'));
    const fd = openSync(join(dir, 'src', 'big.img'), 'w');
    for (let i = 1; i <= 6; i++) writeSync(fd, Buffer.alloc(512, 0x30 + i), 0, 512, i * 10_000_000_000 - 512);
    ftruncateSync(fd, SPARSE_SIZE);
    closeSync(fd);
    return dir;
  })();
  const gnuTar = (args: string[]) => execFileSync('tar', ['-C', join(sparseSource, 'src'), '-cf', '-', ...args, 'big.img'], { maxBuffer: 1 << 24 });
  const SPARSE_FORMATS: [string, string[]][] = [
    ['old GNU', ['--sparse', '--format=gnu']],
    ['PAX 0.0', ['--sparse', '--format=posix', '--sparse-version=0.0']],
    ['PAX 0.1', ['--sparse', '--format=posix', '--sparse-version=0.1']],
    ['PAX 1.0', ['--sparse', '--format=posix', '--sparse-version=1.0']],
  ];
  /** The data of a sparse file: 512 bytes before each 10 GB mark. */
  const checkSparseFile = (path: string) => {
    const st = statSync(path);
    assert.is(st.size, SPARSE_SIZE);
    assert.ok(st.blocks * 512 < 1 << 20, `${path}: ${st.blocks} blocks allocated`);
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(1024);
      for (let i = 1; i <= 6; i++) {
        const n = execFileSync('dd', [`if=${path}`, 'bs=512', `skip=${(i * 10_000_000_000) / 512 - 2}`, 'count=2', 'status=none']);
        assert.ok(n.subarray(0, 512).equals(Buffer.alloc(512)), 'a hole reads as zeros');
        assert.ok(n.subarray(512).equals(Buffer.alloc(512, 0x30 + i)), `segment ${i}`);
      }
      void b;
    } finally {
      closeSync(fd);
    }
  };

  for (const [format, args] of SPARSE_FORMATS) {
    test(`sparse files (${format}, written by GNU tar): holes stay holes through extract, export and ls`, async () => {
      const layer = gnuTar(args);
      assert.ok(layer.length < 64 << 10, `GNU tar wrote ${layer.length} bytes`);
      const ref = image([layer]);
      const cache = tempDir('imgx-cache-');
      const dest = join(tempDir(), 'out');
      await ok(['extract', ref, dest], cache);
      checkSparseFile(join(dest, 'big.img'));
      const ls = await ok(['ls', '-l', ref, '/big.img'], cache);
      assert.match(ls.stdout, / 60000000000 /);
      const json = JSON.parse((await ok(['ls', '--json', ref, '/big.img'], cache)).stdout) as { size: number }[];
      assert.is(json[0]!.size, SPARSE_SIZE);
      // export keeps it sparse (PAX 1.0), and GNU tar reads it back whole.
      const exported = await ok(['export', ref], cache);
      assert.ok(exported.stdoutBytes.length < 64 << 10, `export wrote ${exported.stdoutBytes.length} bytes`);
      const back = tempDir();
      execFileSync('tar', ['-xf', '-', '-C', back], { input: exported.stdoutBytes });
      checkSparseFile(join(back, 'big.img'));
    });
  }

  test('sparse: an old GNU sparse header built by hand (Go gnu-sparse-big.tar shape), through extract and export', async () => {
    const h = encodeHeader({ name: 'gnu-sparse', typeflag: 'S', size: 6 * 512 }, { format: 'gnu' });
    // Four map slots in the header (offset 386, 24 bytes each), two in an extension block.
    const slot = (b: Buffer, at: number, offset: number, size: number) => {
      b.write(offset.toString(8).padStart(11, '0'), at, 'latin1');
      b.write(size.toString(8).padStart(11, '0'), at + 12, 'latin1');
    };
    for (let i = 0; i < 4; i++) slot(h, 386 + 24 * i, (i + 1) * 10_000_000_000 - 512, 512);
    h[482] = 1; // extended
    h.write(SPARSE_SIZE.toString(8).padStart(11, '0'), 483, 'latin1');
    h.fill(0x20, 148, 156);
    h.write(checksums(h).unsigned.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    const extBlock = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; i < 2; i++) slot(extBlock, 24 * i, (i + 5) * 10_000_000_000 - 512, 512);
    const data = Buffer.concat([1, 2, 3, 4, 5, 6].map((i) => Buffer.alloc(512, 0x30 + i)));
    const sparseLayer = Buffer.concat([h, extBlock, data, END]);
    const ref = image([sparseLayer]);
    const dest = join(tempDir(), 'out');
    await ok(['extract', ref, dest]);
    checkSparseFile(join(dest, 'gnu-sparse'));
    // diff compares it by its map and data (hashing 60 GB of holes would take minutes).
    // Another layer (another digest) with the same sparse file: its content must be compared.
    const other = image([Buffer.concat([makeTar([{ name: 'new', content: 'n' }]).subarray(0, 1024), h, extBlock, data, END])], 'other');
    const diff = await ok(['diff', '--debug', ref, other]);
    assert.match(diff.stderr, /hashing 1 files of equal size/);
    assert.is(diff.stdout.trim(), 'A /new');
  });

  test('names that are not UTF-8 keep their bytes through extract, export, ls, the index and diff, and are never merged', async () => {
    const raw = (...bytes: number[][]) => decodeName(Buffer.concat(bytes.map((b) => Buffer.from(b))));
    const latin = raw([0x63, 0x61, 0x66, 0xe9]); // "café" in Latin-1
    const other = raw([0x63, 0x61, 0x66, 0xe8]); // differs in one invalid byte: a U+FFFD decoder merges the two
    const dir = raw([0x64, 0xff, 0xfe]);
    const target = raw([0x74, 0x80]);
    const layer = makeTar([
      { name: latin, content: 'e-acute' },
      { name: other, content: 'e-grave' },
      { name: `${dir}/`, type: 'directory' },
      { name: `${dir}/inside`, content: 'in' },
      { name: `${dir}/link`, type: 'symlink', linkname: target },
      { name: `${dir}/hard`, type: 'hardlink', linkname: latin },
      { name: 'plain', content: 'ascii', pax: { [`SCHILY.xattr.user.${raw([0x78, 0xff])}`]: 'v' } },
    ]);
    const ref = image([layer], 'one');
    const cache = tempDir('imgx-cache-');
    const dest = join(tempDir(), 'out');
    await ok(['extract', ref, dest], cache);
    const names = readdirSync(dest, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort();
    assert.equal(names, [encodeName(latin), encodeName(other), encodeName(dir), Buffer.from('plain')].map((b) => b.toString('hex')).sort());
    assert.is(readFileSync(Buffer.concat([Buffer.from(`${dest}/`), encodeName(latin)])).toString(), 'e-acute');
    assert.is(readFileSync(Buffer.concat([Buffer.from(`${dest}/`), encodeName(other)])).toString(), 'e-grave');
    const dirPath = Buffer.concat([Buffer.from(`${dest}/`), encodeName(dir)]);
    assert.ok(readlinkSync(Buffer.concat([dirPath, Buffer.from('/link')]), { encoding: 'buffer' }).equals(encodeName(target)));
    assert.is(lstatSync(Buffer.concat([dirPath, Buffer.from('/hard')])).ino, lstatSync(Buffer.concat([Buffer.from(`${dest}/`), encodeName(latin)])).ino);
    if (process.geteuid?.() === 0) {
      const attrs = execFileSync('getfattr', ['-d', '-e', 'hex', '--absolute-names', join(dest, 'plain')], { encoding: 'latin1' });
      assert.match(attrs, /user\.x\xff=0x76/);
    }
    // export: GNU tar extracts the same bytes.
    const exported = await ok(['export', ref], cache);
    const back = tempDir();
    execFileSync('tar', ['-xf', '-', '-C', back], { input: exported.stdoutBytes });
    assert.equal(readdirSync(back, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort(), names);
    // ls: \xNN on a terminal line, lone surrogates (\udcNN) in JSON; the same from the index.
    for (let round = 0; round < 2; round++) {
      const text = await ok(['ls', ref], cache);
      assert.equal(text.stdout.trim().split('\n').sort(), ['caf\\xe8', 'caf\\xe9', 'd\\xff\\xfe', 'plain']);
      const json = await ok(['ls', '--json', ref], cache);
      assert.match(json.stdout, /"\/caf\\udce9"/);
      const listed = (JSON.parse(json.stdout) as { path: string }[]).map((e) => e.path);
      assert.ok(listed.includes(`/${latin}`) && listed.includes(`/${other}`));
      // A name given as ls prints it.
      const long = await ok(['ls', '-l', ref, '/d\\xff\\xfe'], cache);
      assert.match(long.stdout, /link -> t\\x80/);
    }
    // diff: a rename by one byte is one removal and one addition.
    const changed = makeTar([
      { name: latin, content: 'e-acute' },
      { name: raw([0x63, 0x61, 0x66, 0xea]), content: 'e-grave' },
      { name: `${dir}/`, type: 'directory' },
      { name: `${dir}/inside`, content: 'in' },
      { name: `${dir}/link`, type: 'symlink', linkname: target },
      { name: `${dir}/hard`, type: 'hardlink', linkname: latin },
      { name: 'plain', content: 'ascii', pax: { [`SCHILY.xattr.user.${raw([0x78, 0xff])}`]: 'v' } },
    ]);
    const diff = await ok(['diff', ref, image([changed], 'two')], cache);
    assert.equal(diff.stdout.trim().split('\n').sort(), ['A /caf\\xea', 'D /caf\\xe8']);
  });

  test('control characters in names never reach the terminal', async () => {
    const evil = 'red\x1b[31m\x07name';
    const layer = makeTar([
      { name: evil, content: 'x' },
      { name: `hl\x1b]0;title\x07`, type: 'hardlink', linkname: 'missing\x1b[2J' },
    ]);
    const ref = image([layer]);
    const r = await ok(['ls', ref]);
    assert.not.match(r.stdout + r.stderr, /[\x00-\x08\x0b-\x1f\x7f]/);
    assert.match(r.stdout, /red\\x1b\[31m\\x07name/);
    // The warning about the hardlink names it without its escape sequences.
    assert.match(r.stderr, /hardlink .*missing\\x1b\[2J/);
  });

  test('containerd order within a layer: a hardlink keeps a lower file that a later whiteout of the layer removes', async () => {
    const lower = makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/secret', content: 'S3CR3T' }]);
    const upper = makeTar([
      { name: 'keep', type: 'hardlink', linkname: 'etc/secret' },
      { name: 'etc/.wh.secret', content: '' },
    ]);
    const dest = join(tempDir(), 'out');
    const r = await ok(['extract', image([lower, upper]), dest]);
    assert.is(r.stderr, '');
    assert.equal(readdirSync(join(dest, 'etc')), []);
    assert.is(readFileSync(join(dest, 'keep'), 'utf8'), 'S3CR3T');
  });

  test('node-tar CVE-2024-28863: a path a few hundred thousand directories deep is refused (exit 12), nothing left beside DEST', async () => {
    // ~450 KB of PAX path, one entry: once a V8 heap overflow.
    const deep = `${'a/'.repeat(220_000)}f`;
    const layer = Buffer.concat([ext('pax-header', { path: deep }), encodeHeader({ name: 'f', size: 0 }), END]);
    assert.ok(layer.length > 400_000);
    const ref = image([makeTar([{ name: 'ok', content: 'fine' }]), layer]);
    const parent = tempDir();
    const r = await runImgx(['extract', ref, join(parent, 'out')]);
    assert.is(r.code, EXIT_STATUS.IMGX_UNSAFE_PATH, r.stderr);
    assert.match(r.stderr, /^imgx: layer 1 .*deeper than 1024 directories\n$/);
    assert.ok(r.stderr.length < 400);
    onlyThere(parent, []);
    const ls = await runImgx(['ls', ref]);
    assert.is(ls.code, EXIT_STATUS.IMGX_UNSAFE_PATH, ls.stderr);
    // Just within the limit is fine; a component over 255 bytes or a name over 4095 bytes is not.
    const edge = makeTar([{ name: `${'d/'.repeat(1023)}f`, content: 'deep' }]);
    const dest = join(tempDir(), 'edge');
    await ok(['extract', image([edge]), dest]);
    assert.is(readFileSync(join(dest, `${'d/'.repeat(1023)}f`), 'utf8'), 'deep');
    for (const name of ['n'.repeat(256), `${'abcdefg/'.repeat(512)}f`]) {
      const p = tempDir();
      const bad = await runImgx(['extract', image([makeTar([{ name, content: 'x' }])]), join(p, 'out')]);
      assert.is(bad.code, EXIT_STATUS.IMGX_UNSAFE_PATH, bad.stderr);
      onlyThere(p, []);
    }
  });
}

test.run();
