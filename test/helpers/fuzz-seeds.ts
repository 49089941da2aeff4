// Seeds for the fuzz test (issue 16): the inputs the mutators start from, built in code (no binary
// corpus is committed) with the test suite's own builders (fixtures/tar.ts makeTar, fixtures/
// oci-layout.ts) and by hand where the builders cannot go: old GNU sparse headers, PAX 0.0/0.1/1.0
// sparse entries, GNU long names, PAX `x` then `g`, v7 and star headers, base-256 numbers,
// names that are not UTF-8. Deterministic: the same `Outside` paths give the same bytes.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sha256 } from '../../src/image/digest.ts';
import { BLOCK_SIZE, checksums, encodeHeader, encodeNumber, encodePax, paddingFor } from '../../src/layers/tar-header.ts';
import { DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST } from '../../src/image/media-types.ts';
import { makeTar, tarDirectory, type TarEntry } from '../fixtures/tar.ts';
import { writeOciLayout } from '../fixtures/oci-layout.ts';

export interface Seed {
  name: string;
  bytes: Buffer;
}

/** Absolute paths outside DEST that hostile seeds aim at (the writer target's canaries). */
export interface Outside {
  /** The fuzz run's top directory: `top/outer-canary` is a canary. */
  top: string;
  /** `top/work`: holds DEST and the canary beside it (`work/canary`). */
  work: string;
}

// ---- raw blocks -------------------------------------------------------------------------------

/** Writes the checksum of a header block (six octal digits, NUL, space), as every tar does. */
export function fixChecksum(block: Buffer, at = 0): void {
  const b = block.subarray(at, at + BLOCK_SIZE);
  b.fill(0x20, 148, 156);
  b.write(checksums(b).unsigned.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

function pad(data: Buffer): Buffer {
  const p = paddingFor(data.length);
  return p ? Buffer.concat([data, Buffer.alloc(p)]) : data;
}

const EOA = Buffer.alloc(2 * BLOCK_SIZE);

/** One extension entry (PAX `x`/`g`, GNU `L`/`K`) with its padded body. */
function extension(type: 'pax-header' | 'pax-global-header' | 'gnu-long-name' | 'gnu-long-link', body: Buffer, format: 'ustar' | 'gnu' = 'ustar'): Buffer {
  const name = type === 'gnu-long-name' || type === 'gnu-long-link' ? '././@LongLink' : type === 'pax-global-header' ? 'pax_global_header' : 'PaxHeaders/x';
  return Buffer.concat([encodeHeader({ name, type, size: body.length }, { format }), pad(body)]);
}

/** A plain entry: header (ustar, or old GNU) and padded data. */
function entry(h: { name: string; type?: TarEntry['type']; typeflag?: string; mode?: number; uid?: number; gid?: number; mtime?: number; linkname?: string; devmajor?: number; devminor?: number }, data: Buffer = Buffer.alloc(0), format: 'ustar' | 'gnu' = 'ustar'): Buffer {
  return Buffer.concat([encodeHeader({ ...h, size: data.length }, { format }), pad(data)]);
}

/** Bytes with a recognisable pattern (so that misplaced data shows). */
function pattern(n: number, salt = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + salt * 7 + (i >> 9)) & 0xff;
  return b;
}

// ---- GNU sparse entries, in each of their encodings ---------------------------------------------

interface SparseFile {
  name: string;
  /** Logical size. */
  size: number;
  segments: { offset: number; size: number }[];
}

const SPARSE_SMALL: SparseFile = { name: 'sparse/small', size: 20_000, segments: [{ offset: 0, size: 100 }, { offset: 4096, size: 600 }, { offset: 12_000, size: 512 }] };
const SPARSE_MANY: SparseFile = {
  name: 'sparse/many',
  size: 1 << 20,
  // More than the 4 slots of an old GNU header: extension blocks follow it.
  segments: Array.from({ length: 7 }, (_, i) => ({ offset: i * 65_536 + 1000, size: 300 + i * 50 })),
};
const SPARSE_HOLEY: SparseFile = { name: 'sparse/holey', size: 10 * 1024 * 1024 * 1024, segments: [{ offset: 5 * 1024 * 1024 * 1024, size: 10 }] };

function sparseData(f: SparseFile): Buffer {
  return Buffer.concat(f.segments.map((s, i) => pattern(s.size, i + 1)));
}

/** Old GNU: typeflag 'S', four map slots in the header, 21 per extension block after it. */
function oldGnuSparse(f: SparseFile): Buffer {
  const data = sparseData(f);
  const header = encodeHeader({ name: f.name, typeflag: 'S', size: data.length, mode: 0o644 }, { format: 'gnu' });
  const slot = (block: Buffer, at: number, s: { offset: number; size: number }) => {
    encodeNumber(s.offset, 12).copy(block, at);
    encodeNumber(s.size, 12).copy(block, at + 12);
  };
  f.segments.slice(0, 4).forEach((s, i) => slot(header, 386 + i * 24, s));
  encodeNumber(f.size, 12).copy(header, 483);
  const rest = f.segments.slice(4);
  const blocks: Buffer[] = [];
  for (let i = 0; i < rest.length; i += 21) {
    const b = Buffer.alloc(BLOCK_SIZE);
    rest.slice(i, i + 21).forEach((s, k) => slot(b, k * 24, s));
    if (i + 21 < rest.length) b[504] = 1;
    blocks.push(b);
  }
  if (blocks.length) header[482] = 1;
  fixChecksum(header);
  return Buffer.concat([header, ...blocks, pad(data)]);
}

/** PAX 0.0 (repeated offset/numbytes records), 0.1 (one map) or 1.0 (the map at the start of the data). */
function paxSparse(f: SparseFile, version: '0.0' | '0.1' | '1.0'): Buffer {
  const data = sparseData(f);
  const records: [string, string][] = [];
  let stored = data;
  if (version === '1.0') {
    records.push(['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0'], ['GNU.sparse.name', f.name], ['GNU.sparse.realsize', String(f.size)]);
    const map = `${f.segments.length}\n${f.segments.map((s) => `${s.offset}\n${s.size}\n`).join('')}`;
    stored = Buffer.concat([pad(Buffer.from(map, 'latin1')), data]);
  } else {
    records.push(['GNU.sparse.size', String(f.size)], ['GNU.sparse.numblocks', String(f.segments.length)]);
    if (version === '0.1') records.push(['GNU.sparse.name', f.name], ['GNU.sparse.map', f.segments.flatMap((s) => [s.offset, s.size]).join(',')]);
    else for (const s of f.segments) records.push(['GNU.sparse.offset', String(s.offset)], ['GNU.sparse.numbytes', String(s.size)]);
  }
  const name = version === '0.0' ? f.name : `${f.name.replace(/[^/]*$/, '')}GNUSparseFile.0/${f.name.replace(/^.*\//, '')}`;
  return Buffer.concat([extension('pax-header', encodePax(records)), entry({ name, mode: 0o644 }, stored)]);
}

// ---- the tar seeds ------------------------------------------------------------------------------

/** A name whose bytes are not UTF-8, as raw-name.ts keeps it (lone surrogates U+DC80–U+DCFF). */
const RAW = (bytes: number[]) => bytes.map((b) => String.fromCharCode(b < 0x80 ? b : 0xdc00 + b)).join('');

export function tarSeeds(out: Outside): Seed[] {
  const seeds: Seed[] = [];
  const add = (name: string, bytes: Buffer) => seeds.push({ name, bytes });
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');

  add(
    'basic',
    makeTar([
      { name: 'etc/', type: 'directory', mode: 0o755, mtime: 1_700_000_000 },
      { name: 'etc/hostname', content: 'box\n', mode: 0o644, uid: 1000, gid: 1000, uname: 'me', gname: 'us', mtime: 1_700_000_000 },
      { name: 'bin/', type: 'directory' },
      { name: 'bin/dash', content: pattern(3000), mode: 0o755 },
      { name: 'bin/sh', type: 'symlink', linkname: 'dash' },
      { name: 'bin/su', content: 'ELF', mode: 0o4755 },
      { name: 'bin/hard', type: 'hardlink', linkname: 'bin/dash' },
      { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'empty', content: '' },
      { name: 'b511', content: pattern(511) },
      { name: 'b512', content: pattern(512) },
      { name: 'b513', content: pattern(513) },
    ]),
  );
  add('big-body', makeTar([{ name: 'big', content: pattern(200_000, 3) }, { name: 'after', content: 'after' }]));
  add(
    'pax',
    makeTar([
      { name: `d/${'n'.repeat(250)}/${'m'.repeat(100)}`, content: 'x', uid: 5_000_000, gid: 4_294_967_295, mtime: 1_700_000_000.25, pax: { 'SCHILY.xattr.security.capability': cap, 'SCHILY.xattr.user.weird': Buffer.from([0, 0xff, 0x0a, 0x3d]) } },
      { name: 'link', type: 'symlink', linkname: 'L'.repeat(500) },
      { name: 'ünïcødé/名前', content: 'u', pax: { 'LIBARCHIVE.xattr.user.b64': 'aGVsbG8=', 'LIBARCHIVE.xattr.user.%66oo': 'YmFy' } },
      { name: 'negative-mtime', content: 'n', mtime: -86_400 },
      { name: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.user.dir': 'v' } },
    ]),
  );
  add(
    'gnu-long',
    Buffer.concat([
      extension('gnu-long-name', Buffer.from(`gnu/${'a'.repeat(200)}\0`), 'gnu'),
      entry({ name: 'placeholder' }, Buffer.from('long')),
      extension('gnu-long-link', Buffer.from(`${'t'.repeat(150)}\0`), 'gnu'),
      extension('gnu-long-name', Buffer.from(`gnu/${'l'.repeat(150)}\0`), 'gnu'),
      entry({ name: 'lnk', type: 'symlink', linkname: 'short' }),
      // GNU long name over a PAX path: the long name wins.
      extension('pax-header', encodePax({ path: 'pax-path' })),
      extension('gnu-long-name', Buffer.from('gnu-wins\0'), 'gnu'),
      entry({ name: 'x' }, Buffer.from('w')),
      EOA,
    ]),
  );
  add(
    'pax-x-then-g',
    Buffer.concat([
      extension('pax-header', encodePax({ path: 'renamed', uid: '7' })),
      extension('pax-global-header', encodePax({ uname: 'global', mtime: '1.5', 'SCHILY.xattr.user.g': 'v' })),
      entry({ name: 'a' }, Buffer.from('1')),
      extension('pax-global-header', encodePax({ comment: 'g first' })),
      extension('pax-header', encodePax({ path: 'b-renamed', size: '3' })),
      extension('pax-header', encodePax({ path: 'b-last-wins', mtime: '1700000000.123456789' })),
      entry({ name: 'b' }, Buffer.from('22')),
      EOA,
    ]),
  );
  add('sparse-old-gnu', Buffer.concat([oldGnuSparse(SPARSE_SMALL), oldGnuSparse(SPARSE_MANY), entry({ name: 'after' }, Buffer.from('a')), EOA]));
  add('sparse-pax-0.0', Buffer.concat([paxSparse(SPARSE_SMALL, '0.0'), EOA]));
  add('sparse-pax-0.1', Buffer.concat([paxSparse(SPARSE_MANY, '0.1'), paxSparse(SPARSE_HOLEY, '0.1'), EOA]));
  add('sparse-pax-1.0', Buffer.concat([paxSparse(SPARSE_SMALL, '1.0'), paxSparse(SPARSE_HOLEY, '1.0'), entry({ name: 'after' }, Buffer.from('a')), EOA]));
  add(
    'whiteouts',
    makeTar([
      { name: 'etc/.wh.hostname', content: '' },
      { name: 'bin/.wh..wh..opq', content: '' },
      { name: 'bin/new', content: 'new' },
      { name: '.wh.tmp', content: '' },
      { name: 'tmp/', type: 'directory' },
      { name: 'deep/a/b/.wh.c', content: '' },
      { name: 'dev/.wh..wh..opq', type: 'directory' },
    ]),
  );
  add(
    'hardlinks',
    makeTar([
      { name: 'f', content: 'content' },
      { name: 'h1', type: 'hardlink', linkname: 'f' },
      { name: 'h2', type: 'hardlink', linkname: './h1' },
      { name: 'sub/h3', type: 'hardlink', linkname: '/f' },
      { name: 'l', type: 'symlink', linkname: 'f' },
      { name: 'hl', type: 'hardlink', linkname: 'l' },
      { name: 'dangling', type: 'hardlink', linkname: 'missing' },
      { name: 'f', content: 'rewritten' },
      { name: '.wh.f', content: '' },
    ]),
  );
  add(
    'names',
    makeTar([
      { name: RAW([0x6e, 0xff, 0x6f]), content: 'raw' },
      { name: RAW([0xc3, 0x28, 0x2f, 0x78]), content: 'raw dir' },
      { name: `deep/${'d/'.repeat(200)}f`, content: 'deep' },
      { name: `w/${'c'.repeat(255)}`, content: 'long component' },
      { name: './dot/./x', content: '.' },
      { name: 'trailing//slash//', type: 'directory' },
      { name: './', type: 'directory', mode: 0o700 },
      { name: 'sp ace/tab\there', content: 't' },
      { name: 'nl\nname', content: 'n' },
    ]),
  );
  add(
    'numbers',
    (() => {
      const a = encodeHeader({ name: 'b256', size: 5, mode: 0o644 });
      // Base-256 size, uid and mtime (negative), as GNU tar writes numbers too big for octal.
      a.fill(0, 124, 136);
      a[124] = 0x80;
      a.writeUInt32BE(5, 132);
      encodeNumber(-1, 12).copy(a, 136);
      encodeNumber(2 ** 31, 8).copy(a, 108);
      fixChecksum(a);
      const b = encodeHeader({ name: 'spaces', size: 2, mode: 0o644 });
      b.write(' 0000002 \0\0\0', 124, 'latin1'); // blanks around the digits
      b.write('   644 \0', 100, 'latin1');
      fixChecksum(b);
      const c = encodeHeader({ name: 'leading-zeros', size: 3 });
      c.write('00000000003', 124, 'latin1'); // no terminator
      fixChecksum(c);
      return Buffer.concat([a, pad(Buffer.from('five!')), b, pad(Buffer.from('ok')), c, pad(Buffer.from('abc')), EOA]);
    })(),
  );
  add(
    'formats',
    (() => {
      // v7 (no magic): a name ending in `/` with typeflag NUL is a directory.
      const v7 = encodeHeader({ name: 'v7dir/', typeflag: '\0' });
      v7.fill(0, 257, 265);
      fixChecksum(v7);
      const v7f = encodeHeader({ name: 'v7dir/file', typeflag: '\0', size: 4 });
      v7f.fill(0, 257, 265);
      fixChecksum(v7f);
      // star: `tar\0` at 508, a prefix of 131 bytes.
      const star = encodeHeader({ name: `${'p'.repeat(120)}/star`, size: 1 });
      star.write('tar\0', 508, 'latin1');
      fixChecksum(star);
      // old GNU with a ustar prefix where atime/ctime are (Go before 1.8).
      const gnu = encodeHeader({ name: 'gnu-file', size: 1 }, { format: 'gnu' });
      gnu.write('prefixdir', 345, 'latin1');
      fixChecksum(gnu);
      // signed checksum (very old tars): a byte over 0x7f in the name.
      const signed = encodeHeader({ name: `signed${String.fromCharCode(0xdcff)}`, size: 0 });
      signed.write(`${checksums(signed).signed.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      const contiguous = encodeHeader({ name: 'contiguous', typeflag: '7', size: 2 });
      const volume = encodeHeader({ name: 'volume-label', typeflag: 'V' }, { format: 'gnu' });
      const multivol = encodeHeader({ name: 'multi', typeflag: 'M', size: 1 }, { format: 'gnu' });
      const unknownA = encodeHeader({ name: 'type-A', typeflag: 'A', size: 3 });
      return Buffer.concat([
        v7,
        v7f,
        pad(Buffer.from('v7v7')),
        star,
        pad(Buffer.from('s')),
        gnu,
        pad(Buffer.from('g')),
        signed,
        contiguous,
        pad(Buffer.from('cc')),
        volume,
        multivol,
        pad(Buffer.from('m')),
        unknownA,
        pad(Buffer.from('aaa')),
        EOA,
      ]);
    })(),
  );
  add('empty-archive', Buffer.from(EOA));
  add('no-end-marker', makeTar([{ name: 'a', content: 'a' }, { name: 'b/', type: 'directory' }]).subarray(0, -2 * BLOCK_SIZE));
  add('one-zero-block-end', Buffer.concat([entry({ name: 'a' }, Buffer.from('a')), Buffer.alloc(BLOCK_SIZE)]));
  add(
    'hostile',
    makeTar([
      { name: '../escape', content: 'x' },
      { name: `${out.top}/abs-escape`, content: 'x' },
      { name: 'evil', type: 'symlink', linkname: '..' },
      { name: 'evil/canary', content: 'pwned' },
      { name: 'up', type: 'symlink', linkname: '../..' },
      { name: 'up/outer-canary', content: 'pwned' },
      { name: 'abs', type: 'symlink', linkname: out.work },
      { name: 'abs/canary', content: 'pwned' },
      { name: 'h', type: 'hardlink', linkname: '../canary' },
      { name: 'h2', type: 'hardlink', linkname: `${out.work}/canary` },
      { name: 'dd', type: 'directory', mode: 0o777 },
      { name: 'dd', content: 'file over dir' },
      { name: 'locked/', type: 'directory', mode: 0 },
      { name: 'locked/f', content: 'inside' },
    ]),
  );
  return seeds;
}

/** Layer stacks that mean something together (a later layer writes through what an earlier planted). */
export function layerStacks(out: Outside): Seed[][] {
  const t = (entries: TarEntry[]) => makeTar(entries);
  const L = (name: string, layers: Buffer[]) => layers.map((bytes, i) => ({ name: `${name}#${i}`, bytes }));
  return [
    L('symlink-then-write', [
      t([{ name: 'evil', type: 'symlink', linkname: '../..' }, { name: 'abs', type: 'symlink', linkname: out.work }, { name: 'root', type: 'symlink', linkname: '/' }, { name: 'target', content: 't' }]),
      t([
        { name: 'evil/pwned', content: 'p' },
        { name: 'evil/newdir/', type: 'directory', mode: 0o777 },
        { name: 'abs/canary', content: 'p' },
        { name: 'evil/hl', type: 'hardlink', linkname: 'target' },
        { name: `root${out.top}/pwned`, content: 'p' },
      ]),
    ]),
    L('whiteouts-through-symlinks', [
      t([{ name: 'evil', type: 'symlink', linkname: '..' }, { name: 'up', type: 'symlink', linkname: '../..' }, { name: 'keep', content: 'k' }]),
      t([{ name: 'evil/.wh.canary', content: '' }, { name: 'up/.wh..wh..opq', content: '' }, { name: '.wh.keep', content: '' }]),
    ]),
    L('replace-and-link', [
      t([{ name: 'usr/bin/', type: 'directory' }, { name: 'usr/bin/tool', content: 'tool v1', mode: 0o755 }, { name: 'bin', type: 'symlink', linkname: 'usr/bin' }]),
      t([{ name: 'bin/', type: 'directory' }, { name: 'bin/tool', type: 'hardlink', linkname: 'usr/bin/tool' }, { name: 'usr/bin/.wh.tool', content: '' }]),
      t([{ name: 'usr/.wh..wh..opq', content: '' }, { name: 'usr/new', content: 'new' }, { name: 'bin/tool', content: 'tool v3' }]),
    ]),
    L('sparse-and-links', [
      Buffer.concat([oldGnuSparse(SPARSE_SMALL), EOA]),
      Buffer.concat([paxSparse(SPARSE_MANY, '1.0'), entry({ name: 'hl', type: 'hardlink', linkname: SPARSE_SMALL.name }), EOA]),
    ]),
  ];
}

// ---- documents ----------------------------------------------------------------------------------

const D = (c: string) => `sha256:${c.repeat(64)}`;

export interface DocSeed {
  name: string;
  kind: 'manifest' | 'config' | 'layout-index' | 'oci-layout' | 'token' | 'tags' | 'registry-error' | 'docker-manifest-json' | 'challenge' | 'passwd' | 'os-release';
  /** JSON, or text for the text kinds (challenge, passwd, os-release). */
  doc: unknown;
}

const fullConfig = {
  created: '2024-01-01T00:00:00Z',
  author: 'someone',
  architecture: 'amd64',
  os: 'linux',
  variant: 'v2',
  config: {
    User: '1000:1000',
    ExposedPorts: { '80/tcp': {}, '53/udp': null },
    Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=1', 'EMPTY='],
    Entrypoint: ['/entry.sh'],
    Cmd: ['serve', '--port', '80'],
    Volumes: { '/data': {} },
    WorkingDir: '/srv',
    Labels: { 'org.opencontainers.image.title': 'fuzz', empty: '' },
    StopSignal: 'SIGTERM',
    Healthcheck: { Test: ['CMD', 'true'], Interval: 1000000000 },
    Shell: ['/bin/sh', '-c'],
  },
  rootfs: { type: 'layers', diff_ids: [D('a'), D('b')] },
  history: [{ created: '2024-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD file', comment: 'c' }, { created_by: 'ENV A=1', empty_layer: true }, {}],
};

export function docSeeds(): DocSeed[] {
  const layer = (c: string, mediaType = OCI_LAYER_GZIP) => ({ mediaType, digest: D(c), size: 1234 });
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: OCI_CONFIG, digest: D('c'), size: 999 },
    layers: [layer('a'), { ...layer('b', OCI_LAYER), urls: ['https://example.com/b'], annotations: { k: 'v' } }],
    annotations: { 'org.opencontainers.image.created': '2024' },
  };
  const platforms = [
    { architecture: 'amd64', os: 'linux' },
    { architecture: 'arm64', os: 'linux', variant: 'v8' },
    { architecture: 'arm', os: 'linux', variant: 'v7' },
    { architecture: 'arm', os: 'linux', variant: 'v6' },
    { architecture: 'amd64', os: 'windows', 'os.version': '10.0.17763.1', 'os.features': ['win32k'] },
    { architecture: 'unknown', os: 'unknown' },
  ];
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: platforms.map((platform, i) => ({ mediaType: OCI_MANIFEST, digest: D('0123456789'[i]!), size: 500 + i, platform, ...(platform.os === 'unknown' ? { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } } : {}) })),
  };
  return [
    { name: 'oci-manifest', kind: 'manifest', doc: manifest },
    { name: 'docker-manifest', kind: 'manifest', doc: { schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { mediaType: DOCKER_CONFIG, digest: D('c'), size: 10 }, layers: [layer('a', DOCKER_LAYER)] } },
    { name: 'manifest-no-mediatype', kind: 'manifest', doc: { schemaVersion: 2, config: { mediaType: OCI_CONFIG, digest: D('c'), size: 1 }, layers: [] } },
    { name: 'oci-index', kind: 'manifest', doc: index },
    { name: 'docker-list', kind: 'manifest', doc: { ...index, mediaType: DOCKER_MANIFEST_LIST } },
    { name: 'nested-index', kind: 'manifest', doc: { schemaVersion: 2, manifests: [{ mediaType: OCI_INDEX, digest: D('e'), size: 10, platform: platforms[0] }] } },
    { name: 'schema1', kind: 'manifest', doc: { schemaVersion: 1, name: 'x', fsLayers: [] } },
    { name: 'config-full', kind: 'config', doc: fullConfig },
    { name: 'config-minimal', kind: 'config', doc: { architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } } },
    { name: 'config-nulls', kind: 'config', doc: { architecture: 'amd64', os: 'linux', config: { Entrypoint: null, Cmd: null, Labels: null, Env: null }, history: null } },
    {
      name: 'layout-index',
      kind: 'layout-index',
      doc: {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: OCI_MANIFEST, digest: D('1'), size: 10, annotations: { 'org.opencontainers.image.ref.name': 'v1' } },
          { mediaType: OCI_INDEX, digest: D('2'), size: 20, annotations: { 'io.containerd.image.name': 'docker.io/library/app:v2', 'org.opencontainers.image.ref.name': 'v2' } },
          { mediaType: OCI_MANIFEST, digest: D('1'), size: 10, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
        ],
      },
    },
    { name: 'oci-layout', kind: 'oci-layout', doc: { imageLayoutVersion: '1.0.0' } },
    { name: 'token', kind: 'token', doc: { token: 'abc.def.ghi', access_token: 'abc.def.ghi', expires_in: 300, issued_at: '2024-01-01T00:00:00Z' } },
    { name: 'tags', kind: 'tags', doc: { name: 'library/app', tags: ['latest', 'v1.0', '1.2.3-alpine', 'a'.repeat(128)] } },
    { name: 'registry-error', kind: 'registry-error', doc: { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: 'x' } }] } },
    { name: 'challenge-bearer', kind: 'challenge', doc: 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push", Basic realm="Registry Realm"' },
    { name: 'challenge-odd', kind: 'challenge', doc: 'Bearer realm="a\\"b,c" , error=insufficient_scope,, Negotiate, Basic' },
    { name: 'passwd', kind: 'passwd', doc: 'root:x:0:0:root:/root:/bin/bash\n# comment\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/bin/sh\n' },
    { name: 'group', kind: 'passwd', doc: 'root:x:0:\nwheel:x:10:root,app\napp:x:1000:\n' },
    { name: 'os-release', kind: 'os-release', doc: 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\nHOME_URL="https://www.debian.org/"\n# c\nQUOTED=\'single \\\' quote\'\n' },
    { name: 'docker-manifest-json', kind: 'docker-manifest-json', doc: [{ Config: `blobs/sha256/${'c'.repeat(64)}`, RepoTags: ['app:latest', 'docker.io/library/app:v1'], Layers: ['blobs/sha256/aa/layer.tar'] }] },
  ];
}

// ---- image archives -----------------------------------------------------------------------------

/** An OCI archive (`oci-archive:`) and a docker-save archive (`docker-archive:`, old style and Docker ≥ 25), as tars. */
export function archiveSeeds(scratch: string): Seed[] {
  const layers = [
    makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/os-release', content: 'ID=fuzz\n' }, { name: 'bin/sh', type: 'symlink', linkname: 'busybox' }]),
    makeTar([{ name: 'etc/.wh.os-release', content: '' }, { name: 'app', content: pattern(2000), mode: 0o755 }]),
  ];
  const seeds: Seed[] = [];
  const dir = join(scratch, 'oci');
  rmSync(dir, { recursive: true, force: true });
  writeOciLayout(dir, { layers, tag: 'v1', platforms: [{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux' }] });
  seeds.push({ name: 'oci-archive', bytes: tarDirectory(dir) });

  const plain = join(scratch, 'oci-plain');
  rmSync(plain, { recursive: true, force: true });
  writeOciLayout(plain, { layers, tag: 'latest', compression: 'none' });
  seeds.push({ name: 'oci-archive-uncompressed', bytes: tarDirectory(plain) });

  // docker save, the classic layout: <id>/layer.tar, <config>.json, manifest.json, repositories.
  const config = Buffer.from(JSON.stringify({ ...fullConfig, rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) } }));
  const configName = `${sha256(config).slice(7)}.json`;
  const entries: TarEntry[] = [{ name: configName, content: config }];
  layers.forEach((l, i) => {
    entries.push({ name: `layer${i}/`, type: 'directory' }, { name: `layer${i}/layer.tar`, content: l }, { name: `layer${i}/VERSION`, content: '1.0' });
  });
  entries.push({ name: 'layer2/', type: 'directory' }, { name: 'layer2/layer.tar', type: 'symlink', linkname: '../layer0/layer.tar' });
  const saved = [{ Config: configName, RepoTags: ['app:latest'], Layers: ['layer0/layer.tar', 'layer1/layer.tar'] }];
  entries.push({ name: 'manifest.json', content: JSON.stringify(saved) }, { name: 'repositories', content: JSON.stringify({ app: { latest: 'layer1' } }) });
  seeds.push({ name: 'docker-archive', bytes: makeTar(entries) });

  // Docker ≥ 25: an OCI layout as well, manifest.json pointing into blobs/.
  const modern = join(scratch, 'docker25');
  rmSync(modern, { recursive: true, force: true });
  const written = writeOciLayout(modern, { layers, compression: 'none', mediaTypes: 'docker', annotations: { 'io.containerd.image.name': 'docker.io/library/app:latest' } });
  const m = written.manifests[0]!;
  const manifestJson = [{ Config: `blobs/sha256/${m.config.digest.slice(7)}`, RepoTags: ['app:latest'], Layers: m.layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`) }];
  const modernTar = tarDirectory(modern);
  seeds.push({ name: 'docker-archive-25', bytes: Buffer.concat([modernTar.subarray(0, -2 * BLOCK_SIZE), makeTar([{ name: 'manifest.json', content: JSON.stringify(manifestJson) }])]) });
  // A gzip'd layer tar inside a docker archive (some tools store them so).
  const gz = gzipSync(layers[0]!);
  const gzConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layers[0]!)] } }));
  seeds.push({
    name: 'docker-archive-gzip-layer',
    bytes: makeTar([{ name: 'c.json', content: gzConfig }, { name: 'l.tar.gz', content: gz }, { name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: null, Layers: ['l.tar.gz'] }]) }]),
  });
  return seeds;
}
