import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects as rejectsWith } from '../helpers/rejects.ts';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { TarArchive, normaliseMemberName } from '../../src/image/tar-archive.ts';
import { openOciArchive } from '../../src/image/oci-archive-source.ts';
import { BLOCK_SIZE } from '../../src/layers/tar-header.ts';
import { writeOciLayout } from '../fixtures/oci-layout.ts';
import { makeTar, tarDirectory } from '../fixtures/tar.ts';
import { tempDir } from '../helpers/tempdir.ts';

function writeTemp(name: string, bytes: Buffer): string {
  const file = join(tempDir(), name);
  writeFileSync(file, bytes);
  return file;
}


async function content(archive: TarArchive, name: string): Promise<string> {
  const m = archive.get(name);
  if (!m) throw new Error(`no member ${name}`);
  const streamed = (await buffer(archive.createReadStream(m))).toString();
  assert.is((await archive.read(m)).toString(), streamed);
  return streamed;
}

test('member names are normalised', () => {
  assert.is(normaliseMemberName('./blobs//sha256/./x'), 'blobs/sha256/x');
  assert.is(normaliseMemberName('/index.json'), 'index.json');
  assert.is(normaliseMemberName('dir/'), 'dir');
  assert.is(normaliseMemberName('a/../b'), 'a/../b');
});

test('indexes regular files by name and reads them in place', async () => {
  const long = 'deep/' + 'n'.repeat(250);
  const file = writeTemp(
    'a.tar',
    makeTar([
      { name: './', type: 'directory' },
      { name: './index.json', content: '{"a":1}' },
      { name: './empty', content: '' },
      { name: long, content: 'long name via PAX' },
      { name: 'big', content: Buffer.alloc(100_000, 'z') },
      { name: 'dup', content: 'first' },
      { name: 'dup', content: 'second' },
      { name: 'dev', type: 'char-device', devmajor: 1, devminor: 3 },
    ]),
  );
  const archive = await TarArchive.open(file);
  assert.equal(archive.names().sort(), ['big', 'deep/' + 'n'.repeat(250), 'dup', 'empty', 'index.json'].sort());
  assert.is(await content(archive, 'index.json'), '{"a":1}');
  assert.is(await content(archive, './index.json'), '{"a":1}');
  assert.is(await content(archive, 'empty'), '');
  assert.is(await content(archive, long), 'long name via PAX');
  assert.is((await content(archive, 'big')).length, 100_000);
  assert.is(await content(archive, 'dup'), 'second', 'a later entry replaces an earlier one');
  assert.is(archive.get('dev'), undefined);
  assert.is((await buffer(archive.createReadStream(archive.get('big')!, 99_990))).length, 10);
  await archive.close();
});

test('links to regular files are followed one level, never out of the archive', async () => {
  const file = writeTemp(
    'links.tar',
    makeTar([
      { name: 'aaa/layer.tar', content: 'layer bytes' },
      { name: 'bbb/layer.tar', type: 'symlink', linkname: '../aaa/layer.tar' },
      { name: 'ccc/layer.tar', type: 'symlink', linkname: '/aaa/layer.tar' },
      { name: 'hard', type: 'hardlink', linkname: './aaa/layer.tar' },
      { name: 'chain', type: 'symlink', linkname: 'bbb/layer.tar' },
      { name: 'escape', type: 'symlink', linkname: '../../etc/passwd' },
      { name: 'dangling', type: 'symlink', linkname: 'nothing' },
      { name: 'before', type: 'symlink', linkname: 'later' },
      { name: 'later', content: 'defined after the link' },
    ]),
  );
  const archive = await TarArchive.open(file);
  assert.is(await content(archive, 'bbb/layer.tar'), 'layer bytes');
  assert.is(await content(archive, 'ccc/layer.tar'), 'layer bytes');
  assert.is(await content(archive, 'hard'), 'layer bytes');
  assert.is(await content(archive, 'before'), 'defined after the link');
  assert.is(archive.get('bbb/layer.tar')!.offset, archive.get('aaa/layer.tar')!.offset);
  assert.is(archive.get('chain'), undefined, 'only one level');
  assert.is(archive.get('escape'), undefined);
  assert.is(archive.get('dangling'), undefined);
  await archive.close();
});

test('an archive without its end blocks is read; truncated ones are refused', async () => {
  const tar = makeTar([
    { name: 'a', content: 'x'.repeat(1000) },
    { name: 'b', content: 'y'.repeat(10) },
  ]);
  const noEnd = tar.subarray(0, tar.length - 2 * BLOCK_SIZE);
  const ok = await TarArchive.open(writeTemp('noend.tar', noEnd));
  assert.ok(ok.get('b'));
  await ok.close();
  await rejectsWith(TarArchive.open(writeTemp('cut-data.tar', tar.subarray(0, 700))), 'IMGX_BAD_ARCHIVE', /truncated tar archive: "a" needs 1024 bytes at offset 512/);
  await rejectsWith(TarArchive.open(writeTemp('cut-header.tar', tar.subarray(0, 1536 + 100))), 'IMGX_BAD_ARCHIVE', /partial header at offset 1536/);
  // A PAX header at the very end, describing nothing.
  const paxOnly = makeTar([{ name: 'p'.repeat(200), content: 'z' }]).subarray(0, 2 * BLOCK_SIZE);
  await rejectsWith(TarArchive.open(writeTemp('pax-only.tar', paxOnly)), 'IMGX_BAD_ARCHIVE', /extension header without/);
});

test('corrupt, foreign and compressed files are refused clearly', async () => {
  const tar = makeTar([
    { name: 'a', content: 'x' },
    { name: 'b', content: 'y' },
  ]);
  const corrupt = Buffer.from(tar);
  corrupt[1024 + 10] = 0x41;
  await rejectsWith(TarArchive.open(writeTemp('corrupt.tar', corrupt)), 'IMGX_BAD_ARCHIVE', /corrupt tar archive at offset 1024: invalid tar header: checksum/);
  await rejectsWith(TarArchive.open(writeTemp('text.tar', Buffer.from('hello world\n'.repeat(100)))), 'IMGX_BAD_ARCHIVE', /not a tar archive/);
  await rejectsWith(TarArchive.open(writeTemp('empty.tar', Buffer.alloc(0))), 'IMGX_BAD_ARCHIVE', /empty file/);
  await rejectsWith(TarArchive.open(writeTemp('a.tar.gz', gzipSync(tar))), 'IMGX_UNSUPPORTED', /compressed archives are not supported; gunzip it first/);
  await rejectsWith(TarArchive.open(join(tempDir(), 'missing.tar')), 'IMGX_NOT_FOUND');
});

test('reads come from the file that was indexed, even if the path is replaced', async () => {
  const dir = tempDir();
  const file = join(dir, 'x.tar');
  writeFileSync(file, makeTar([{ name: 'f', content: 'original' }]));
  const archive = await TarArchive.open(file);
  writeFileSync(join(dir, 'other.tar'), makeTar([{ name: 'f', content: 'replaced' }]));
  renameSync(join(dir, 'other.tar'), file);
  assert.is(await content(archive, 'f'), 'original');
  await archive.close();
});

test('oci-archive: a layout tarred with ./ names, read without extraction; tampering detected', async () => {
  const dir = tempDir();
  const img = writeOciLayout(join(dir, 'layout'), { layers: [makeTar([{ name: 'hello', content: 'hi' }])], tag: 'latest', compression: 'none' });
  const file = join(dir, 'oci.tar');
  writeFileSync(file, tarDirectory(join(dir, 'layout'), './'));
  const src = await openOciArchive(file, 'latest');
  assert.is(src.displayName, `oci-archive:${file}:latest`);
  assert.is((await src.getRootManifest()).digest, img.root.digest);
  const layer = img.manifests[0]!.layers[0]!;
  assert.ok((await buffer(await src.openBlob(layer))).equals(img.blobs.get(layer.digest)!));
  await src.close();

  // Flip one byte of the layer inside the archive.
  const bytes = readFileSync(file);
  const at = bytes.indexOf(img.blobs.get(layer.digest)!.subarray(0, 600));
  assert.ok(at > 0);
  bytes[at + 10] = bytes[at + 10]! ^ 1;
  writeFileSync(file, bytes);
  const tampered = await openOciArchive(file);
  try {
    await buffer(await tampered.openBlob(layer));
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'IMGX_DIGEST_MISMATCH');
  }
  await tampered.close();
});

test.run();
