// The fuzz targets (issue 16): each takes one input and either succeeds or throws. An ImgxError is
// the right answer to bad input; anything else escaping (TypeError, RangeError, a system error, an
// `Invariant` thrown here because a success broke a promise the code makes) is a finding. They run
// inside the fuzz worker (fuzz-worker.ts), which times them and reports what escaped.
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { makeContext, type CliContext } from '../../src/cli/context.ts';
import { writeDirectory } from '../../src/export/dir-writer.ts';
import { extractImage } from '../../src/export/extract-image.ts';
import { exportTar } from '../../src/export/tar-export.ts';
import { BlobCache } from '../../src/image/blob-cache.ts';
import { CachingSource } from '../../src/image/caching-source.ts';
import { parseImageConfig } from '../../src/image/config.ts';
import { describeImage } from '../../src/image/describe.ts';
import type { Descriptor } from '../../src/image/descriptor.ts';
import type { LayoutFiles } from '../../src/image/layout-files.ts';
import { parseManifestBlob } from '../../src/image/manifest.ts';
import { OciLayoutImage } from '../../src/image/oci-layout.ts';
import { parsePlatform } from '../../src/image/platform.ts';
import { resolveImage } from '../../src/image/resolve.ts';
import type { ImageSource, ManifestBlob } from '../../src/image/source.ts';
import { emitTree } from '../../src/layers/emit.ts';
import { FlatTree, type TreeNode } from '../../src/layers/flat-tree.ts';
import { decodeName } from '../../src/util/raw-name.ts';
import { openImageTree } from '../../src/layers/image-tree.ts';
import { diffIdMismatch, layerName, layerReaders, layerReadersFromBuffers, openLayerStream, type LayerReader } from '../../src/layers/layer-reader.ts';
import { decodeOffThread } from '../../src/layers/offthread-decode.ts';
import { warmHelperThreads } from '../../src/offthread/pool.ts';
import { OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD } from '../../src/image/media-types.ts';
import { scanLayers, xattrsOf, type ContentSink } from '../../src/layers/scan.ts';
import type { FlatEntry } from '../../src/layers/fs-entry.ts';
import { normalisePath } from '../../src/layers/normalise-path.ts';
import { readTar, type TarEntry } from '../../src/layers/tar-reader.ts';
import { processArgs, processCwd, processEnv } from '../../src/run/process-args.ts';
import { parseGroup, parsePasswd } from '../../src/run/user.ts';
import { parseOsRelease } from '../../src/disk/os-release.ts';
import { parseChallenges, pickChallenge } from '../../src/registry/challenge.ts';
import * as registryAuth from '../../src/registry/auth.ts';
import * as registryClient from '../../src/registry/client.ts';
import * as registryErrors from '../../src/registry/errors.ts';
import { Warnings } from '../../src/warnings.ts';
import { ImgxError, isImgxError } from '../../src/errors.ts';
import { writeOciLayout } from '../fixtures/oci-layout.ts';

/** A success that broke a promise of the code under test (a body of the wrong length, a path that is not normalised …). */
export class Invariant extends Error {
  override name = 'Invariant';
}

function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Invariant(what);
}

const buf = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.length);

// ---- payloads -----------------------------------------------------------------------------------

export interface TarPayload {
  target: 'tar';
  bytes: Uint8Array;
  /** Chunk sizes of the input stream, used in turn. */
  chunks: number[];
  /** How each entry's body is consumed, in turn (see consumeBody). */
  consume: number[];
  skipBodies: boolean;
}

export interface FlattenPayload {
  target: 'flatten';
  layers: Uint8Array[];
  /**
   * Layers as they come from a registry: compressed so (the bytes above are the compressed blobs),
   * with the diff_ids of the tars they were made from (mutations may have hit the compressed bytes).
   */
  compressed?: { compression: 'gzip' | 'zstd' | 'none'; diffIds: string[]; aux: string };
  strict: boolean;
  concurrency: number;
  /** Pass 1 hands contents to a sink (as extract does) instead of skipping bodies. */
  contents: boolean;
  recordPaths: boolean;
}

export interface WriterPayload {
  target: 'writer';
  layers: Uint8Array[];
  /** DEST (absent before the run; made by the fuzz driver's case directory). */
  dest: string;
  /** Scratch space outside the watched tree (layouts, a cache). */
  aux: string;
  /**
   * `stream`: writeDirectory over emitTree; `extract`: the whole `imgx extract` of an oci: layout
   * holding the layers; `direct`: the first layer's entries straight into writeDirectory (names
   * normalised, nothing else: duplicates, dangling links and types in any order reach the writer).
   */
  mode: 'stream' | 'extract' | 'direct';
  strict: boolean;
  /** false: as an unprivileged user would (no owners, no devices), whoever runs the test. */
  asRoot: boolean | undefined;
  gzip: boolean;
}

export type DocKind = 'manifest' | 'config' | 'image' | 'cached' | 'layout' | 'token' | 'tags' | 'registry-error' | 'challenge' | 'passwd' | 'os-release';

export interface DocsPayload {
  target: 'docs';
  kind: DocKind;
  /** manifest, config: [doc]; image, cached: [root, child, config]; layout: [oci-layout, index.json, ...blobs]; registry kinds: [body]. */
  docs: Uint8Array[];
  /** Scratch space (the blob cache of `cached`). */
  aux: string;
  /** The media type the transport claimed (manifest, image). */
  hint: string;
  platform: string;
  strictPlatform: boolean;
  tag: string | undefined;
  status: number;
}

export interface ArchivePayload {
  target: 'archive';
  kind: 'oci-archive' | 'docker-archive';
  bytes: Uint8Array;
  file: string;
  aux: string;
  ref: string | undefined;
}

export type Payload = TarPayload | FlattenPayload | WriterPayload | DocsPayload | ArchivePayload;

// ---- the tar reader -----------------------------------------------------------------------------

/** Logical content read through `body` or `readBody` is cut here for sparse files (holes are zeros: a 10 GB hole is legitimately 10 GB). */
const LOGICAL_CAP = 8 << 20;

function chunkedStream(bytes: Buffer, sizes: number[]): Readable {
  let pos = 0;
  let k = 0;
  return new Readable({
    read() {
      if (pos >= bytes.length) return void this.push(null);
      const n = Math.max(1, sizes[k++ % sizes.length]!);
      this.push(bytes.subarray(pos, pos + n));
      pos += n;
    },
  });
}

function storedOf(e: TarEntry): number {
  return e.sparse ? e.sparse.reduce((a, s) => a + s.size, 0) : e.header.size;
}

/** Consumes an entry's content in one of the ways the code does, checking what comes out. */
async function consumeBody(e: TarEntry, how: number, skipBodies: boolean): Promise<void> {
  const h = e.header;
  const logicalTooBig = e.sparse !== undefined && h.size > LOGICAL_CAP;
  // Sparse files with huge holes are read as the code reads them (data/readData: holes skipped).
  const mode = logicalTooBig && (how === 1 || how === 3 || how === 6) ? (how === 3 ? 4 : 2) : how;
  const want = skipBodies ? 0 : mode === 2 || mode === 4 ? storedOf(e) : h.size;
  let got = 0;
  switch (mode) {
    case 0:
      return; // left unread: the reader skips it
    case 1:
    case 2:
      for await (const c of mode === 1 ? e.body : e.data) got += (c as Buffer).length;
      break;
    case 3:
      await e.readBody((c) => (got += c.length));
      break;
    case 4: {
      let last = -1;
      await e.readData((c, at) => {
        check(at > last || c.length === 0, `readData went back from ${last} to ${at}`);
        check(at >= 0 && at + c.length <= h.size, `readData piece ${at}+${c.length} outside the ${h.size}-byte file`);
        last = at;
        got += c.length;
      });
      break;
    }
    case 5: {
      // One piece, then on to the next entry: the rest is skipped.
      const it = e.body[Symbol.asyncIterator]();
      await it.next();
      return;
    }
    case 6:
      // A slow consumer (backpressure).
      for await (const c of e.body) {
        got += (c as Buffer).length;
        await new Promise((r) => setImmediate(r));
      }
      break;
  }
  check(got === want, `${JSON.stringify(h.name.slice(0, 80))}: read ${got} bytes, the entry has ${want} (mode ${mode})`);
}

/** What a read of an archive gave: its entries' headers and offsets, and how it ended. */
interface Transcript {
  entries: string[];
  end: string;
}

function entryLine(e: TarEntry): string {
  const h = e.header;
  const pax = h.pax ? [...h.pax].map(([k, v]) => `${k}=${v.toString('hex')}`).join(',') : '';
  return `${e.offset} ${h.type} ${JSON.stringify(h.name)} ${JSON.stringify(h.linkname)} ${h.size} ${h.mode} ${h.uid} ${h.gid} ${h.mtime} ${h.devmajor},${h.devminor} ${pax} ${e.sparse ? JSON.stringify(e.sparse) : ''}`;
}

function endOf(e: unknown): string {
  if (e === undefined) return 'ok';
  return isImgxError(e) ? e.code : `not an ImgxError: ${(e as Error).name}`;
}

/**
 * The same archive read again in one piece, bodies skipped, through input that reuses one buffer
 * for every chunk as the helper threads' recycled chunks do (nothing may keep a chunk): the same
 * entries must come out, and it must end the same way.
 */
async function plainRead(bytes: Buffer, upTo: number): Promise<Transcript> {
  const shared = Buffer.alloc(4096);
  let pos = 0;
  let done = false;
  const input = {
    destroyed: false,
    destroy() {
      this.destroyed = true;
    },
    async *[Symbol.asyncIterator]() {
      while (pos < bytes.length && !done) {
        const n = bytes.copy(shared, 0, pos, pos + shared.length);
        pos += n;
        yield shared.subarray(0, n);
      }
    },
  };
  const entries: string[] = [];
  try {
    for await (const e of readTar(input, { what: 'fuzz', skipBodies: true, recycled: true })) {
      entries.push(entryLine(e));
      if (entries.length > upTo) break;
    }
  } catch (e) {
    return { entries, end: endOf(e) };
  } finally {
    done = true;
  }
  return { entries, end: 'ok' };
}

/** What a diff_id check or a decompressor raises at the end of a layer: the reader must pass it on as it is. */
class InputFault extends ImgxError {
  constructor() {
    super('IMGX_DIFFID_MISMATCH', 'fuzz: the input failed at its end');
  }
}

/**
 * The archive from an input that fails at its end instead of ending (as a layer whose diff_id does
 * not match does): the read can never succeed (the reader reads to the end of its input, so that
 * the check runs), and once the input is used up, the error must be the input's own, whichever
 * way the bodies are taken (skipped, or read with readData).
 */
async function inputFaultRead(bytes: Buffer, skipBodies: boolean): Promise<void> {
  let exhausted = false;
  // Pulled by the reader alone (a Readable would read ahead): `exhausted` means the reader asked past the end.
  const input = {
    destroyed: false,
    destroy() {
      this.destroyed = true;
    },
    async *[Symbol.asyncIterator]() {
      for (let pos = 0; pos < bytes.length; pos += 4096) yield bytes.subarray(pos, pos + 4096);
      exhausted = true;
      throw new InputFault();
    },
  };
  try {
    for await (const e of readTar(input, { what: 'fuzz', skipBodies })) if (!skipBodies) await e.readData(() => {});
  } catch (e) {
    check(!exhausted || e instanceof InputFault, `the input's own error at its end came out as ${endOf(e)}: ${(e as Error).message?.slice(0, 200)}`);
    return;
  }
  throw new Invariant('the archive read to a successful end, but its input failed at its end');
}

async function tarTarget(p: TarPayload): Promise<void> {
  await inputFaultRead(buf(p.bytes), p.skipBodies);
  const bytes = buf(p.bytes);
  const transcript: Transcript = { entries: [], end: 'ok' };
  try {
    await readAndConsume(p, bytes, transcript);
  } catch (e) {
    transcript.end = endOf(e);
    if (!(e instanceof Invariant) && isImgxError(e)) {
      // A body read can fail on data the header walk never looks at (a sparse map that does not add up …): compare the entries only.
      const again = await plainRead(bytes, transcript.entries.length);
      check(sameEntries(transcript.entries, again.entries), `reading the archive in one piece gave other entries:\n${diffLines(transcript.entries, again.entries)}`);
    }
    throw e;
  }
  const again = await plainRead(bytes, Infinity);
  check(sameEntries(transcript.entries, again.entries) && again.entries.length === transcript.entries.length, `reading the archive in one piece gave other entries (${again.entries.length}, not ${transcript.entries.length}):\n${diffLines(transcript.entries, again.entries)}`);
  check(again.end === 'ok', `read in pieces it ends well, in one piece with ${again.end}`);
}

function sameEntries(a: string[], b: string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function diffLines(a: string[], b: string[]): string {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return `  entry ${i}: ${a[i]!.slice(0, 300)}\n  entry ${i}: ${b[i]!.slice(0, 300)}`;
  return '';
}

async function readAndConsume(p: TarPayload, bytes: Buffer, transcript: Transcript): Promise<void> {
  const input = chunkedStream(bytes, p.chunks.length ? p.chunks : [65536]);
  let i = 0;
  let lastOffset = -1;
  for await (const e of readTar(input, { what: 'fuzz', skipBodies: p.skipBodies })) {
    transcript.entries.push(entryLine(e));
    const h = e.header;
    check(e.offset > lastOffset && e.offset % 512 === 0, `entry offset ${e.offset} after ${lastOffset}`);
    lastOffset = e.offset;
    check(Number.isSafeInteger(h.size) && h.size >= 0, `size ${h.size}`);
    check(typeof h.name === 'string' && typeof h.linkname === 'string', 'name and linkname are strings');
    if (e.sparse) {
      let end = 0;
      for (const s of e.sparse) {
        check(s.offset >= end && s.size >= 0 && s.offset + s.size <= h.size, `sparse segment ${s.offset}+${s.size} in a ${h.size}-byte file`);
        end = s.offset + s.size;
      }
    }
    await consumeBody(e, p.consume[i++ % Math.max(1, p.consume.length)] ?? 0, p.skipBodies);
  }
}

// ---- the flatten stage --------------------------------------------------------------------------

/** Normalised and confined, as FsEntry.path promises: no `.`/`..`/empty components, no leading or trailing `/`. */
function normalised(path: string): boolean {
  if (path === '.') return true;
  if (path === '' || path.startsWith('/') || path.endsWith('/')) return false;
  return path.split('/').every((c) => c !== '' && c !== '.' && c !== '..');
}

/** Where pass 1 hands contents when the target asks for it: each piece checked against the entry. */
const checkingSink: ContentSink = {
  async file(_layer, _offset, entry, readData) {
    let n = 0;
    await readData((chunk, at) => {
      check(at >= 0 && at + chunk.length <= entry.size, `content piece ${at}+${chunk.length} outside the ${entry.size}-byte ${JSON.stringify(entry.path)}`);
      n += chunk.length;
    });
    const stored = entry.sparse ? entry.sparse.reduce((a, s) => a + s.size, 0) : entry.size;
    check(n === stored, `pass 1 gave ${n} bytes of ${JSON.stringify(entry.path)}, it stores ${stored}`);
  },
};

/** The tar `imgx export` writes for a tree, in memory. */
async function exportToBuffer(tree: FlatTree, layers: ReturnType<typeof layerReadersFromBuffers>): Promise<Buffer> {
  const parts: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  await exportTar(emitTree(tree, layers), out);
  return Buffer.concat(parts);
}

function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++) if (x[i] !== y[i]) return `  ${JSON.stringify(x[i] ?? '(end)').slice(0, 300)}\n  ${JSON.stringify(y[i] ?? '(end)').slice(0, 300)}`;
  return '';
}

/**
 * LayerReaders over compressed blobs, as a registry image's are read: the stream way (node:zlib on
 * the thread pool, decompress.ts) and, with `offThread`, pass 1 on the helper threads (the gzip
 * framing read by src/offthread/gzip-inflater.js, output in recycled shared slots).
 */
function compressedReaders(p: FlattenPayload, offThread: boolean): LayerReader[] {
  const c = p.compressed!;
  const mediaType = c.compression === 'gzip' ? OCI_LAYER_GZIP : c.compression === 'zstd' ? OCI_LAYER_ZSTD : OCI_LAYER;
  return p.layers.map((u8, index): LayerReader => {
    const bytes = buf(u8);
    const desc: Descriptor = { mediaType, digest: sha256(bytes), size: bytes.length };
    const diffId = c.diffIds[index]!;
    const what = layerName(index, desc.digest);
    const file = join(c.aux, `layer-${index}.blob`);
    writeFileSync(file, bytes);
    const reader: LayerReader = { index, desc, diffId, open: (opts = {}) => openLayerStream(async () => chunkedStream(bytes, [65536]), desc, diffId, what, opts) };
    if (offThread) {
      reader.openChunks = (o) => decodeOffThread({ path: file, size: bytes.length }, { compression: c.compression, diffId, mismatch: (actual) => diffIdMismatch(what, diffId, actual), what, ...(o.signal ? { signal: o.signal } : {}) });
    }
    return reader;
  });
}

async function flattenTarget(p: FlattenPayload): Promise<void> {
  if (p.compressed) return compressedTarget(p);
  const layers = layerReadersFromBuffers(p.layers.map(buf));
  const warnings = new Warnings({ strict: p.strict });
  const tree = await scanLayers(layers, { warnings, concurrency: p.concurrency, recordPaths: p.recordPaths, ...(p.contents ? { contents: checkingSink } : {}) });
  const sig = (t: FlatTree) =>
    t
      .list()
      .map((n) => {
        const xattrs = [...n.xattrs].map(([k, v]) => `${k}=${v.toString('hex')}`).sort().join(',');
        return `${n.path}\u0000${n.type}\u0000${n.size}\u0000${n.mode}\u0000${n.uid}:${n.gid}\u0000${n.linkname ?? ''}\u0000${n.devmajor ?? ''},${n.devminor ?? ''}\u0000${n.inode ?? 0}\u0000${JSON.stringify(n.sparse ?? null)}\u0000${xattrs}`;
      })
      .join('\n');
  // The browse index form gives the same tree back.
  const back = FlatTree.fromJSON(JSON.parse(JSON.stringify(tree)));
  check(sig(back) === sig(tree), 'the tree read back from its browse index form differs');
  // How the layers were read (in parallel or one by one, bodies skipped or handed to a sink) changes nothing.
  const plainWarnings = new Warnings({ strict: p.strict });
  const plain = await scanLayers(layerReadersFromBuffers(p.layers.map(buf)), { warnings: plainWarnings, concurrency: 1 });
  check(sig(plain) === sig(tree), 'the layers read one at a time with bodies skipped give another tree');
  // (Layers read in parallel warn in the order they are read: the same warnings, each code as often, but another first one.)
  const said = (w: Warnings) =>
    w
      .summary()
      .map((l) => /\[([A-Z_]+)\]$/.exec(l)?.[1] ?? l)
      .sort()
      .map((code) => `${code} ×${w.count(code as Parameters<Warnings['count']>[0])}`)
      .join(', ');
  check(said(plainWarnings) === said(warnings), `the layers read one at a time give other warnings: ${said(plainWarnings)}, not ${said(warnings)}`);
  // `imgx export` of the tree, read back as a layer, is the same tree (the root's own entry aside: export leaves it out).
  const exported = await exportToBuffer(tree, layers);
  const reread = await scanLayers(layerReadersFromBuffers([exported]), { warnings: new Warnings() });
  const noRoot = (t: FlatTree) => sig(t).split('\n').filter((l) => !l.startsWith('.\u0000')).join('\n');
  check(noRoot(reread) === noRoot(tree), `the exported tar reads back as another tree:\n${firstDifference(noRoot(tree), noRoot(reread))}`);
  for await (const e of emitTree(tree, layers)) {
    check(normalised(e.path), `emitted path ${JSON.stringify(e.path)} is not normalised`);
    if (e.type === 'hardlink') check(normalised(e.linkname ?? ''), `hardlink target ${JSON.stringify(e.linkname)} is not normalised`);
    if (e.type === 'file' && e.body) {
      let n = 0;
      for await (const c of e.body) n += (c as Buffer).length;
      const want = e.sparse ? e.sparse.reduce((a, s) => a + s.size, 0) : e.size;
      check(n === want, `emitted ${JSON.stringify(e.path)} with ${n} bytes, it has ${want}`);
    } else check(e.type !== 'file' || e.size === 0, `emitted ${JSON.stringify(e.path)} (${e.size} bytes) without a body`);
  }
}

/**
 * Compressed layers: decoded on the helper threads and by node:zlib, the scan must come to the
 * same tree, or both fail with the same code.
 */
async function compressedTarget(p: FlattenPayload): Promise<void> {
  // Threads that start for every input would make this target a benchmark of thread start-up.
  warmHelperThreads(2000);
  const outcome = async (offThread: boolean) => {
    try {
      const layers = compressedReaders(p, offThread);
      const tree = await scanLayers(layers, { warnings: new Warnings(), concurrency: p.concurrency });
      for await (const e of emitTree(tree, layers)) if (e.body) for await (const _ of e.body);
      return { tree: tree.list().map((n) => `${n.path} ${n.type} ${n.size}`).join('\n'), error: undefined };
    } catch (e) {
      if (!isImgxError(e)) throw e;
      return { tree: '', error: e };
    }
  };
  const off = await outcome(true);
  const stream = await outcome(false);
  // (Which error comes first may differ: the helper thread reads ahead of the tar parser, so it
  // can meet a bad gzip trailer before the parser meets the garbage the bad data became. And the
  // helper threads do not check gzip's CRC-32, by design (README: the diff_id covers every byte):
  // a bad CRC over the right content passes there, and fails in node:zlib.)
  const crcOnly = off.error === undefined && stream.error?.code === 'IMGX_BAD_LAYER' && /incorrect data check/.test(stream.error.message);
  check(
    crcOnly || (off.tree === stream.tree && (off.error === undefined) === (stream.error === undefined)),
    `helper threads and node:zlib disagree: ${off.error ? `${off.error.code} (${off.error.message.slice(0, 200)})` : 'ok'} vs ${stream.error ? `${stream.error.code} (${stream.error.message.slice(0, 200)})` : 'ok'}`,
  );
  if (off.error) throw off.error;
}

// ---- the directory writer -----------------------------------------------------------------------

/** A context for `imgx extract` with its own cache, saying nothing on stdout/stderr. */
function quietContext(cacheDir: string): CliContext {
  return { ...makeContext({ cacheDir }), out: () => {}, warn: () => {} };
}

function typeOf(st: Stats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char-device';
  if (st.isBlockDevice()) return 'block-device';
  if (st.isFIFO()) return 'fifo';
  return 'other';
}

/**
 * After a successful write, DEST is the flattened tree: the same paths (names byte for byte), types,
 * sizes, modes, symlink targets, hardlink groups, and owners when ownership was applied. Device
 * nodes may be missing where they could not be made (unprivileged), symlinks with an empty target
 * are skipped (with a warning).
 */
function checkDest(dest: string, tree: FlatTree, asRoot: boolean, warnings: Warnings): void {
  // Device nodes are not made unprivileged, nor where mknod is refused (root without CAP_MKNOD): the writer says so.
  const devicesMayLack = !asRoot || warnings.count('IMGX_NO_DEVICE') > 0;
  const want = new Map<string, TreeNode>();
  for (const n of tree.list()) want.set(n.path, n);
  const inodes = new Map<number, number>();
  const seen = new Set<string>();
  const visit = (abs: Buffer, rel: string) => {
    const st = lstatSync(abs);
    const n = want.get(rel);
    check(n !== undefined, `DEST has ${JSON.stringify(rel)}, which the tree has not`);
    seen.add(rel);
    const type = typeOf(st);
    check(type === n.type, `${JSON.stringify(rel)} is a ${type} in DEST, a ${n.type} in the tree`);
    if (type === 'file') check(st.size === n.size, `${JSON.stringify(rel)} is ${st.size} bytes in DEST, ${n.size} in the tree`);
    if (type === 'symlink') check(decodeName(readlinkSync(abs, { encoding: 'buffer' })) === n.linkname, `${JSON.stringify(rel)} points elsewhere in DEST`);
    else check((st.mode & 0o7777) === n.mode, `${JSON.stringify(rel)} has mode ${(st.mode & 0o7777).toString(8)} in DEST, ${n.mode.toString(8)} in the tree`);
    // An id of 2^32-1 is chown's "leave it": no file can have it.
    const same = (have: number, want: number) => want === 0xffffffff || have === want;
    if (asRoot) check(same(st.uid, n.uid) && same(st.gid, n.gid), `${JSON.stringify(rel)} is owned by ${st.uid}:${st.gid} in DEST, ${n.uid}:${n.gid} in the tree`);
    if (n.inode && type !== 'directory') {
      const ino = inodes.get(n.inode);
      if (ino === undefined) inodes.set(n.inode, st.ino);
      else check(ino === st.ino, `${JSON.stringify(rel)} is not linked to the other paths of its inode`);
    }
    if (type === 'directory') {
      for (const name of readdirSync(abs, { encoding: 'buffer' }) as Buffer[]) {
        visit(Buffer.concat([abs, Buffer.from('/'), name]), rel === '.' ? decodeName(name) : `${rel}/${decodeName(name)}`);
      }
    }
  };
  if (!want.has('.')) want.set('.', { path: '.', type: 'directory', mode: 0o755, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, mtime: 0, size: 0, xattrs: new Map() });
  visit(Buffer.from(dest), '.');
  for (const [path, n] of want) {
    if (seen.has(path)) continue;
    const skipped = (n.type === 'char-device' || n.type === 'block-device') && devicesMayLack;
    check(skipped || (n.type === 'symlink' && !n.linkname), `the tree has ${JSON.stringify(path)} (${n.type}), DEST has not`);
  }
}

const WRITABLE: ReadonlySet<string> = new Set(['file', 'directory', 'symlink', 'hardlink', 'char-device', 'block-device', 'fifo']);

/** A layer's entries as the writer's input, without flatten: names normalised (FsEntry's promise), whiteouts and unknown types left out. */
async function* directEntries(tar: Buffer): AsyncGenerator<FlatEntry> {
  for await (const e of readTar(Readable.from([tar]), { what: 'fuzz' })) {
    const h = e.header;
    const n = normalisePath(h.name);
    if (!WRITABLE.has(h.type) || n.path.split('/').some((c) => c.startsWith('.wh.'))) continue;
    const f: FlatEntry = { path: n.path, type: h.type as FlatEntry['type'], mode: h.mode & 0o7777, uid: h.uid, gid: h.gid, mtime: h.mtime, size: h.type === 'file' ? h.size : 0, xattrs: xattrsOf(h.pax) ?? new Map() };
    if (h.type === 'symlink') f.linkname = h.linkname;
    if (h.type === 'hardlink') f.linkname = normalisePath(h.linkname).path;
    if (h.type === 'char-device' || h.type === 'block-device') Object.assign(f, { devmajor: h.devmajor, devminor: h.devminor });
    if (h.type === 'file') {
      if (e.sparse) f.sparse = e.sparse;
      f.body = e.sparse ? e.data : e.body;
    }
    yield f;
  }
}

async function writerTarget(p: WriterPayload): Promise<void> {
  const tars = p.layers.map(buf);
  const warnings = new Warnings({ strict: p.strict });
  const asRoot = p.asRoot === undefined ? {} : { asRoot: p.asRoot };
  const root = p.asRoot ?? process.geteuid?.() === 0;
  if (p.mode === 'direct') {
    await writeDirectory(directEntries(tars[0] ?? Buffer.alloc(0)), p.dest, { warnings, ...asRoot });
    return;
  }
  if (p.mode === 'stream') {
    const layers = layerReadersFromBuffers(tars);
    const tree = await scanLayers(layers, { warnings });
    await writeDirectory(emitTree(tree, layers), p.dest, { warnings, ...asRoot });
    checkDest(p.dest, tree, root, warnings);
    return;
  }
  // The whole extract, as `imgx extract oci:LAYOUT DEST` runs it (pass 1 stages contents).
  const layout = join(p.aux, 'layout');
  rmSync(layout, { recursive: true, force: true });
  writeOciLayout(layout, { layers: tars, compression: p.gzip ? 'gzip' : 'none' });
  const { tree } = await extractImage(quietContext(join(p.aux, 'cache')), `oci:${layout}`, p.dest, { warnings, ...asRoot });
  checkDest(p.dest, tree.tree, root, warnings);
}

// ---- documents ----------------------------------------------------------------------------------

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Serves the same documents whatever is asked: a source that hands out what an attacker wrote (its digests are the attacker's too). */
class AnySource implements ImageSource {
  readonly displayName = 'fuzz:image';
  private readonly root: Buffer;
  private readonly child: Buffer;
  private readonly config: Buffer;
  private readonly hint: string;
  constructor(root: Buffer, child: Buffer, config: Buffer, hint: string) {
    this.root = root;
    this.child = child;
    this.config = config;
    this.hint = hint;
  }
  async getRootManifest(): Promise<ManifestBlob> {
    return { bytes: this.root, mediaType: this.hint, digest: sha256(this.root) };
  }
  async getManifest(desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>): Promise<ManifestBlob> {
    return { bytes: this.child, mediaType: desc.mediaType ?? '', digest: desc.digest };
  }
  async openBlob(): Promise<Readable> {
    return Readable.from([]);
  }
  async readBlob(): Promise<Buffer> {
    return this.config;
  }
  async close(): Promise<void> {}
}

/** An OCI layout in memory: `oci-layout`, `index.json`, and blobs by their digest. */
function memoryLayout(marker: Buffer, index: Buffer, blobs: Buffer[]): LayoutFiles {
  const byPath = new Map<string, Buffer>([
    ['oci-layout', marker],
    ['index.json', index],
  ]);
  for (const b of blobs) byPath.set(`blobs/sha256/${sha256(b).slice(7)}`, b);
  return {
    where: 'fuzz-layout',
    async read(path) {
      return byPath.get(path);
    },
    async open(path) {
      const b = byPath.get(path);
      return b && { size: b.length, stream: Readable.from([b]) };
    },
    async close() {},
  };
}

/** After a successful resolve: what inspect and run make of the image. */
function useImage(resolved: Awaited<ReturnType<typeof resolveImage>>, source: ImageSource): void {
  JSON.stringify(describeImage(resolved, 'fuzz', 'fuzz'));
  try {
    processArgs(resolved.config, {});
  } catch (e) {
    if ((e as { code?: string }).code !== 'IMGX_USAGE') throw e;
  }
  processEnv(resolved.config, { hostEnv: {}, hostname: 'h', home: '/root', tty: false });
  try {
    processCwd(resolved.config, undefined);
  } catch (e) {
    if ((e as { code?: string }).code !== 'IMGX_USAGE') throw e;
  }
  layerReaders(source, resolved);
}

/** A registry parser by name, when this checkout has it (the registry's JSON validation is new). */
function registryFn(mod: object, name: string): ((...args: unknown[]) => unknown) | undefined {
  const f = (mod as Record<string, unknown>)[name];
  return typeof f === 'function' ? (f as (...args: unknown[]) => unknown) : undefined;
}

async function docsTarget(p: DocsPayload): Promise<void> {
  const d = p.docs.map(buf);
  switch (p.kind) {
    case 'manifest':
      parseManifestBlob({ bytes: d[0]!, mediaType: p.hint, digest: sha256(d[0]!) }, 'fuzz');
      return;
    case 'config':
      parseImageConfig(d[0]!, 'fuzz');
      return;
    case 'image': {
      const source = new AnySource(d[0]!, d[1]!, d[2]!, p.hint);
      useImage(await resolveImage(source, parsePlatform(p.platform), p.strictPlatform), source);
      return;
    }
    case 'cached': {
      // The root is a blob of the cache, named by its digest (`imgx inspect REPO@sha256:…` after a pull): it is served from there.
      const cache = new BlobCache(join(p.aux, 'cache'));
      await cache.putBytes({ digest: sha256(d[0]!), size: d[0]!.length }, d[0]!);
      const source = new CachingSource(new AnySource(d[0]!, d[1]!, d[2]!, p.hint), cache, { pinnedDigest: sha256(d[0]!) });
      useImage(await resolveImage(source, parsePlatform(p.platform), p.strictPlatform), source);
      return;
    }
    case 'layout': {
      const source = await OciLayoutImage.open(memoryLayout(d[0]!, d[1]!, d.slice(2)), 'oci:fuzz', p.tag);
      await source.listTags();
      useImage(await resolveImage(source, parsePlatform(p.platform), p.strictPlatform), source);
      return;
    }
    case 'token':
      registryFn(registryAuth, 'parseTokenResponse')?.(d[0]!, 'registry.example', 'fuzz');
      return;
    case 'tags':
      registryFn(registryClient, 'parseTagList')?.(d[0]!, 'fuzz');
      return;
    case 'challenge': {
      const text = d[0]!.toString('latin1');
      pickChallenge(parseChallenges(text));
      pickChallenge(parseChallenges([text, text.slice(0, text.length >> 1)]));
      return;
    }
    case 'passwd': {
      const text = d[0]!.toString('utf8');
      parsePasswd(text);
      parseGroup(text);
      return;
    }
    case 'os-release':
      parseOsRelease(d[0]!.toString('utf8'));
      return;
    case 'registry-error': {
      const err = registryErrors.errorFromResponse(p.status, d[0]!.toString('utf8'), { what: 'fuzz', kind: 'manifest' });
      check(typeof err.code === 'string' && err.message.length < 2000, `errorFromResponse gave ${err.message.length} characters`);
      return;
    }
  }
}

// ---- image archives -----------------------------------------------------------------------------

async function archiveTarget(p: ArchivePayload): Promise<void> {
  writeFileSync(p.file, p.bytes);
  const cache = join(p.aux, 'cache');
  mkdirSync(cache, { recursive: true });
  const ctx = quietContext(cache);
  const it = await openImageTree(ctx, `${p.kind}:${p.file}${p.ref ? `:${p.ref}` : ''}`, { warnings: new Warnings() });
  try {
    JSON.stringify(describeImage(it.image, 'fuzz', 'fuzz'));
    for await (const e of emitTree(it.tree, it.layers)) if (e.body) for await (const _ of e.body);
  } finally {
    await it.close();
  }
}

export function runTarget(p: Payload): Promise<void> {
  switch (p.target) {
    case 'tar':
      return tarTarget(p);
    case 'flatten':
      return flattenTarget(p);
    case 'writer':
      return writerTarget(p);
    case 'docs':
      return docsTarget(p);
    case 'archive':
      return archiveTarget(p);
  }
}
