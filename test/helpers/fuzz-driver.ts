// The fuzz driver (issue 16): fast-check generates inputs (a seed and its mutations) from one
// numeric seed, the worker (fuzz-worker.ts) runs each on a target, and the driver decides what a
// run means. A finding is anything but success or an ImgxError: another error escaping, a broken
// invariant, a hang (no answer within the per-input timeout, even from a synchronous loop), a
// crashed worker (an exhausted heap included), RSS growing by more than the bound during one
// input, a warning of a leak, or, for the directory writer, anything created, changed or removed
// outside DEST, or DEST or a staging directory left behind by a failed run.
//
// Every finding is reproducible: from the fast-check seed and path printed with it (for the one
// fast-check shrank), and from its input description (every finding), which `npm run fuzz --
// --replay FILE` runs again.
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { removeTree } from '../../src/export/remove-tree.ts';
import { sha256 } from '../../src/image/digest.ts';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/image/media-types.ts';
import { BLOCK_SIZE } from '../../src/layers/tar-header.ts';
import { applyByteOps, applyJsonOps, byteOp, byteOps, jsonOps, textOp, type ByteOp, type JsonOp } from './fuzz-mutate.ts';
import { archiveSeeds, docSeeds, layerStacks, tarSeeds, type DocSeed, type Outside, type Seed } from './fuzz-seeds.ts';
import type { DocKind, Payload } from './fuzz-targets.ts';
import type { WorkerMessage, WorkerResult } from './fuzz-worker.ts';

export const TARGETS = ['tar', 'flatten', 'writer', 'docs', 'archive'] as const;
export type TargetName = (typeof TARGETS)[number];

export interface DriverOptions {
  /** Per input (ms): longer is a hang. */
  timeoutMs: number;
  /** RSS may grow by this much during one input (bytes). */
  rssLimit: number;
  /** fast-check shrinks a finding for at most this long (ms); 0: no shrinking. */
  shrinkMs: number;
  /** Say each finding as it is found. */
  log: (line: string) => void;
  /** Write each finding's input here (descriptions and the bytes). */
  dumpDir?: string;
}

// ---- input descriptions (what fast-check generates) ------------------------------------------------

type Ops = ByteOp[];

interface TarDesc {
  seed: number;
  ops: Ops;
  chunks: number[];
  consume: number[];
  skipBodies: boolean;
}

interface LayersDesc {
  /** A designed stack (index), or seeds picked at random. */
  stack: { stack: number } | { pick: number[] };
  /** Operations for layer i (empty: the layer as it is). */
  ops: Ops[];
}

interface FlattenDesc extends LayersDesc {
  /** Layers compressed as a registry serves them (0: plain tars), the mutations on the compressed bytes when `inBlob`. */
  compressed?: { compression: 'gzip' | 'zstd' | 'none'; inBlob: boolean };
  strict: boolean;
  concurrency: number;
  contents: boolean;
  recordPaths: boolean;
}

interface WriterDesc extends LayersDesc {
  mode: 'stream' | 'extract' | 'direct';
  strict: boolean;
  unprivileged: boolean;
  gzip: boolean;
}

interface DocDesc {
  kind: DocKind;
  /** The seed document (within the kind's seeds). */
  seed: number;
  /** JSON operations per document of the input (see buildDocs), and byte damage after them. */
  json: JsonOp[][];
  text: ByteOp[][];
  hint: number;
  platform: number;
  strictPlatform: boolean;
  tag: number;
  status: number;
}

interface ArchiveDesc {
  seed: number;
  ops: Ops;
  ref: number;
}

export type Desc = TarDesc | FlattenDesc | WriterDesc | DocDesc | ArchiveDesc;

const maybeOps = fc.oneof({ weight: 1, arbitrary: fc.constant([] as Ops) }, { weight: 6, arbitrary: byteOps });
/** Layers of a stack: each unchanged half of the time, so that most stacks get past their first layer. */
const layerOps = fc.oneof({ weight: 1, arbitrary: fc.constant([] as Ops) }, { weight: 1, arbitrary: fc.array(byteOp, { minLength: 1, maxLength: 4 }) });
const chunkSize = fc.oneof(fc.integer({ min: 1, max: 700 }), fc.constantFrom(511, 512, 513, 1024, 4096, 65536));
const stackArb = fc.oneof({ weight: 1, arbitrary: fc.record({ stack: fc.nat() }) }, { weight: 3, arbitrary: fc.record({ pick: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }) }) });
const stackOps = fc.array(layerOps, { minLength: 3, maxLength: 3 });
/** --strict a quarter of the time (a warning then ends the run). */
const strictArb = fc.nat({ max: 3 }).map((n) => n === 0);

const HINTS = ['', OCI_MANIFEST, OCI_INDEX, 'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws', 'text/html'];
const PLATFORMS = ['linux/amd64', 'linux/arm64', 'linux/arm/v7', 'linux/arm/v5', 'windows/amd64', 'linux/riscv64'];
const TAGS: (string | undefined)[] = [undefined, 'v1', 'v2', 'latest', 'app:latest', '@0', 'nope'];
/** What follows `oci-archive:FILE:` and `docker-archive:FILE:` (undefined: nothing, the only image). */
const OCI_ARCHIVE_REFS: (string | undefined)[] = [undefined, undefined, 'v1', 'latest', 'nope'];
const DOCKER_ARCHIVE_REFS: (string | undefined)[] = [undefined, undefined, 'app:latest', 'docker.io/library/app:v1', '@0', '@1', 'nope'];

const docText = fc.array(textOp, { minLength: 0, maxLength: 2 });
const docJson = fc.oneof({ weight: 1, arbitrary: fc.constant([] as JsonOp[]) }, { weight: 3, arbitrary: jsonOps });

const ARBITRARIES: { [T in TargetName]: fc.Arbitrary<Desc> } = {
  tar: fc.record({
    seed: fc.nat(),
    ops: maybeOps,
    chunks: fc.array(chunkSize, { minLength: 1, maxLength: 4 }),
    consume: fc.array(fc.nat({ max: 6 }), { minLength: 1, maxLength: 8 }),
    skipBodies: fc.boolean(),
  }),
  flatten: fc.record({
    stack: stackArb,
    ops: stackOps,
    compressed: fc.oneof(
      { weight: 2, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.record({ compression: fc.constantFrom('gzip' as const, 'gzip' as const, 'zstd' as const, 'none' as const), inBlob: fc.boolean() }) },
    ),
    strict: strictArb, concurrency: fc.integer({ min: 1, max: 4 }), contents: fc.boolean(), recordPaths: fc.boolean() }),
  writer: fc.record({
    stack: stackArb,
    ops: stackOps,
    mode: fc.constantFrom('stream' as const, 'stream' as const, 'extract' as const, 'direct' as const),
    strict: strictArb,
    unprivileged: fc.boolean(),
    gzip: fc.boolean(),
  }),
  docs: fc.record({
    kind: fc.constantFrom<DocKind>('manifest', 'manifest', 'config', 'config', 'image', 'image', 'cached', 'layout', 'token', 'tags', 'registry-error', 'challenge', 'passwd', 'os-release'),
    seed: fc.nat(),
    json: fc.array(docJson, { minLength: 4, maxLength: 4 }),
    text: fc.array(docText, { minLength: 4, maxLength: 4 }),
    hint: fc.nat({ max: HINTS.length - 1 }),
    platform: fc.nat({ max: PLATFORMS.length - 1 }),
    strictPlatform: fc.boolean(),
    tag: fc.nat({ max: TAGS.length - 1 }),
    status: fc.constantFrom(400, 401, 403, 404, 405, 409, 429, 500, 502, 503, 200, 206, 301, 999),
  }),
  // Fewer operations: most of them break the outer tar, and the layers inside are the other targets' work.
  archive: fc.record({ seed: fc.nat(), ops: fc.array(byteOp, { minLength: 1, maxLength: 3 }), ref: fc.nat({ max: 6 }) }),
};

// ---- seeds and the writer's watched tree -----------------------------------------------------------

/**
 * The writer's world: `top` (mkdtemp, so its path has the same length on every run, and so the
 * seeds aiming at it the same layout) holds `outer-canary`, `work/` (DEST's parent, with
 * `canary` and `canary-dir/` beside DEST) and `aux/` (scratch: layouts, caches, archives; not
 * watched).
 */
class World {
  readonly top: string;
  readonly work: string;
  readonly dest: string;
  readonly aux: string;
  private baseline = '';

  constructor() {
    this.top = mkdtempSync(join(tmpdir(), 'imgx-fuzz-'));
    this.work = join(this.top, 'work');
    this.dest = join(this.work, 'dest');
    this.aux = join(this.top, 'aux');
    // However the driver ends, the world goes with it.
    const top = this.top;
    process.once('exit', () => rmSync(top, { recursive: true, force: true }));
    this.reset();
  }

  /** (Re)makes the canaries and records how everything outside DEST and aux looks. */
  reset(): void {
    for (const name of readdirSync(this.top)) rmSync(join(this.top, name), { recursive: true, force: true });
    mkdirSync(join(this.work, 'canary-dir'), { recursive: true });
    mkdirSync(this.aux);
    writeFileSync(join(this.top, 'outer-canary'), 'outer');
    writeFileSync(join(this.work, 'canary'), 'canary');
    writeFileSync(join(this.work, 'canary-dir', 'f'), 'f');
    this.baseline = this.snapshot(false);
  }

  /** Every path outside DEST and aux with what matters of it (not the times of directories, whose entries are listed). */
  snapshot(withDest: boolean): string {
    const lines: string[] = [];
    const walk = (dir: Buffer, rel: string) => {
      for (const name of (readdirSync(dir, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)) {
        const r = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1');
        if (r === 'aux' || (withDest && r === 'work/dest')) {
          lines.push(`${r} (present)`);
          continue;
        }
        const p = Buffer.concat([dir, Buffer.from('/'), name]);
        const st = lstatSync(p);
        let what = `${r} mode=${st.mode.toString(8)} uid=${st.uid} gid=${st.gid}`;
        if (st.isDirectory()) {
          lines.push(what);
          walk(p, r);
          continue;
        }
        what += ` nlink=${st.nlink} size=${st.size} mtime=${st.mtimeMs} ctime=${st.ctimeMs} ino=${st.ino}`;
        if (st.isSymbolicLink()) what += ` -> ${readlinkSync(p, { encoding: 'buffer' }).toString('latin1')}`;
        else if (st.isFile() && st.size < 1 << 20) what += ` sha=${createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16)}`;
        lines.push(what);
      }
    };
    walk(Buffer.from(this.top), '');
    return lines.join('\n');
  }

  /** What differs from the recorded state after a run (empty when nothing): `succeeded` says DEST should be there. */
  differences(succeeded: boolean): string {
    const now = this.snapshot(true).split('\n');
    const want = new Set(this.baseline.split('\n'));
    if (succeeded) want.add('work/dest (present)');
    const have = new Set(now);
    const out: string[] = [];
    for (const l of have) if (!want.has(l)) out.push(`+ ${l}`);
    for (const l of want) if (!have.has(l)) out.push(`- ${l}`);
    return out.join('\n');
  }

  async clean(): Promise<void> {
    await removeTree(this.dest);
    for (const name of readdirSync(this.aux)) await removeTree(join(this.aux, name));
  }

  async dispose(): Promise<void> {
    await removeTree(this.top);
  }
}

interface SeedPools {
  tars: Seed[];
  tarBytes: Buffer[];
  stacks: Seed[][];
  docs: DocSeed[];
  archives: Seed[];
  archiveBytes: Buffer[];
}

function buildPools(world: World): SeedPools {
  const out: Outside = { top: world.top, work: world.work };
  const tars = tarSeeds(out);
  const scratch = join(world.top, 'seeds');
  mkdirSync(scratch);
  const archives = archiveSeeds(scratch);
  rmSync(scratch, { recursive: true, force: true });
  return { tars, tarBytes: tars.map((s) => s.bytes), stacks: layerStacks(out), docs: docSeeds(), archives, archiveBytes: archives.map((s) => s.bytes) };
}

// ---- from a description to the worker's payload ----------------------------------------------------

function layersOf(d: LayersDesc, pools: SeedPools): Buffer[] {
  const seeds = 'stack' in d.stack ? pools.stacks[d.stack.stack % pools.stacks.length]! : d.stack.pick.map((i) => pools.tars[i % pools.tars.length]!);
  return seeds.map((s, i) => applyByteOps(s.bytes, d.ops[i] ?? [], pools.tarBytes));
}

const DOC_ORDER: Record<DocKind, DocSeed['kind'][]> = {
  manifest: ['manifest'],
  config: ['config'],
  image: ['config', 'manifest', 'manifest'],
  cached: ['config', 'manifest', 'manifest'],
  layout: ['config', 'manifest', 'layout-index', 'oci-layout'],
  token: ['token'],
  tags: ['tags'],
  'registry-error': ['registry-error'],
  challenge: ['challenge'],
  passwd: ['passwd'],
  'os-release': ['os-release'],
};

function docsOfKind(pools: SeedPools, kind: DocSeed['kind']): DocSeed[] {
  return pools.docs.filter((s) => s.kind === kind);
}

/**
 * The documents of a docs input. Chains are built bottom up, each mutated document's real digest
 * and size put into the one above it before that one is mutated, so that most inputs get past the
 * digest checks to the parsers: image = [root (index or manifest), child manifest, config]; layout =
 * [oci-layout, index.json, manifest, config].
 */
function buildDocs(d: DocDesc, pools: SeedPools): Buffer[] {
  const mutate = (doc: unknown, i: number) => applyByteOps(applyJsonOps(doc, d.json[i] ?? []), d.text[i] ?? [], []);
  const pick = (kind: DocSeed['kind'], n: number) => {
    const list = docsOfKind(pools, kind);
    return structuredClone(list[n % list.length]!.doc) as Record<string, unknown>;
  };
  const descOf = (b: Buffer, mediaType: string) => ({ mediaType, digest: sha256(b), size: b.length });
  switch (d.kind) {
    case 'challenge':
    case 'passwd':
    case 'os-release': {
      // Text: byte-level damage only.
      const list = docsOfKind(pools, d.kind);
      return [applyByteOps(Buffer.from(list[d.seed % list.length]!.doc as string, 'utf8'), [...(d.text[0] ?? []), ...(d.text[1] ?? []), ...(d.text[2] ?? [])], [])];
    }
    case 'manifest':
    case 'config':
    case 'token':
    case 'tags':
    case 'registry-error':
      return [mutate(pick(DOC_ORDER[d.kind][0]!, d.seed), 0)];
    case 'image':
    case 'cached': {
      const config = mutate(pick('config', d.seed), 0);
      const manifests = docsOfKind(pools, 'manifest').filter((s) => Array.isArray((s.doc as { layers?: unknown }).layers));
      const m = structuredClone(manifests[d.seed % manifests.length]!.doc) as Record<string, unknown>;
      m.config = descOf(config, 'application/vnd.oci.image.config.v1+json');
      const manifest = mutate(m, 1);
      if (d.hint % 2 === 0) return [manifest, manifest, config];
      const indexes = docsOfKind(pools, 'manifest').filter((s) => Array.isArray((s.doc as { manifests?: unknown }).manifests));
      const idx = structuredClone(indexes[d.seed % indexes.length]!.doc) as { manifests: Record<string, unknown>[] };
      for (const e of idx.manifests) Object.assign(e, descOf(manifest, OCI_MANIFEST));
      return [mutate(idx, 2), manifest, config];
    }
    case 'layout': {
      const config = mutate(pick('config', d.seed), 0);
      const m = pick('manifest', 0);
      m.config = descOf(config, 'application/vnd.oci.image.config.v1+json');
      const manifest = mutate(m, 1);
      const idx = pick('layout-index', 0) as { manifests: Record<string, unknown>[] };
      for (const e of idx.manifests) Object.assign(e, descOf(manifest, OCI_MANIFEST));
      return [mutate(pick('oci-layout', 0), 3), mutate(idx, 2), manifest, config];
    }
  }
}

function payloadOf(target: TargetName, desc: Desc, pools: SeedPools, world: World): Payload {
  switch (target) {
    case 'tar': {
      const d = desc as TarDesc;
      return { target, bytes: applyByteOps(pools.tarBytes[d.seed % pools.tarBytes.length]!, d.ops, pools.tarBytes), chunks: d.chunks, consume: d.consume, skipBodies: d.skipBodies };
    }
    case 'flatten': {
      const d = desc as FlattenDesc;
      const base = { target, strict: d.strict, concurrency: d.concurrency, contents: d.contents, recordPaths: d.recordPaths } as const;
      if (!d.compressed) return { ...base, layers: layersOf(d, pools) };
      // As a registry serves them: the tars (mutated, or not when the mutations go to the blob), compressed.
      const c = d.compressed;
      const tars = layersOf({ ...d, ops: c.inBlob ? [] : d.ops }, pools);
      const blobs = tars.map((t, i) => {
        const z = c.compression === 'gzip' ? gzipSync(t) : c.compression === 'zstd' ? zstdCompressSync(t) : t;
        return c.inBlob ? applyByteOps(z, d.ops[i] ?? [], []) : z;
      });
      return { ...base, layers: blobs, compressed: { compression: c.compression, diffIds: tars.map((t) => sha256(t)), aux: world.aux } };
    }
    case 'writer': {
      const d = desc as WriterDesc;
      return { target, layers: layersOf(d, pools), dest: world.dest, aux: world.aux, mode: d.mode, strict: d.strict, asRoot: d.unprivileged ? false : undefined, gzip: d.gzip };
    }
    case 'docs': {
      const d = desc as DocDesc;
      return { target, kind: d.kind, docs: buildDocs(d, pools), aux: world.aux, hint: HINTS[d.hint % HINTS.length]!, platform: PLATFORMS[d.platform % PLATFORMS.length]!, strictPlatform: d.strictPlatform, tag: TAGS[d.tag % TAGS.length], status: d.status };
    }
    case 'archive': {
      const d = desc as ArchiveDesc;
      const seed = pools.archives[d.seed % pools.archives.length]!;
      const kind = seed.name.startsWith('oci') ? ('oci-archive' as const) : ('docker-archive' as const);
      const refs = kind === 'oci-archive' ? OCI_ARCHIVE_REFS : DOCKER_ARCHIVE_REFS;
      const ref = refs[d.ref % refs.length];
      return { target, kind, bytes: applyByteOps(seed.bytes, d.ops, pools.archiveBytes), file: join(world.aux, 'image.tar'), aux: world.aux, ref };
    }
  }
}

// ---- the worker process --------------------------------------------------------------------------

type Raw =
  | { kind: 'result'; result: WorkerResult; ms: number; rssBefore: number; rssPeak: number }
  | { kind: 'timeout'; ms: number; rssPeak: number }
  | { kind: 'died'; message: string; ms: number; rssPeak: number };

/** Heap limit of the worker process (MiB): an input that needs more is a finding (memory), not a dead machine. */
const WORKER_HEAP_MB = 1024;

/** RSS of process `pid` now, from /proc (0 when it is gone). */
function rssOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ')[1]) * 4096;
  } catch {
    return 0;
  }
}

/** One worker process at a time; a new one after a hang or a crash. */
class WorkerHost {
  private child: ChildProcess | undefined;
  private nextId = 1;
  private pending: { id: number; resolve: (r: Raw) => void; t0: number; peak: number } | undefined;
  /** Warnings the worker gave since they were last taken. */
  warnings: { name: string; message: string; code?: string }[] = [];
  restarts = 0;
  private stderr = '';

  private spawn(): ChildProcess {
    const child = fork(fileURLToPath(new URL('./fuzz-worker.ts', import.meta.url)), [], {
      serialization: 'advanced',
      execArgv: [`--max-old-space-size=${WORKER_HEAP_MB}`],
      // What the code under test prints is not the fuzzer's output (the last of stderr says why a worker died).
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'warning') {
        this.warnings.push({ name: m.name, message: m.message, ...(m.code ? { code: m.code } : {}) });
        return;
      }
      const p = this.pending;
      if (!p || p.id !== m.id) return;
      this.pending = undefined;
      p.resolve({ kind: 'result', result: m.result, ms: m.ms, rssBefore: m.rssBefore, rssPeak: m.rssPeak });
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      const p = this.pending;
      if (!p) return;
      this.pending = undefined;
      const why = signal ? `the worker was killed by ${signal}` : `the worker exited with status ${code}`;
      p.resolve({ kind: 'died', message: `${why}\n${this.stderr.trim()}`, ms: performance.now() - p.t0, rssPeak: p.peak });
    });
    this.stderr = '';
    return child;
  }

  run(payload: Payload, timeoutMs: number): Promise<Raw> {
    if (!this.child) {
      if (this.nextId > 1) this.restarts++;
      this.child = this.spawn();
    }
    const child = this.child;
    const id = this.nextId++;
    return new Promise<Raw>((resolve) => {
      const t0 = performance.now();
      // The peak as seen from here, for an input that never answers.
      const sampler = setInterval(() => {
        if (this.pending?.id === id) this.pending.peak = Math.max(this.pending.peak, rssOf(child.pid));
      }, 50);
      const timer = setTimeout(() => {
        const p = this.pending;
        if (p?.id !== id) return;
        this.pending = undefined;
        if (this.child === child) this.child = undefined;
        child.kill('SIGKILL');
        clearInterval(sampler);
        resolve({ kind: 'timeout', ms: performance.now() - t0, rssPeak: p.peak });
      }, timeoutMs);
      this.pending = {
        id,
        t0,
        peak: 0,
        resolve: (r) => {
          clearTimeout(timer);
          clearInterval(sampler);
          resolve(r);
        },
      };
      child.send({ id, payload });
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    this.pending = undefined;
    if (child && child.exitCode === null) {
      // Let it end by itself (it exits when the channel closes), killed if it does not.
      const gone = new Promise((r) => child.once('exit', r));
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    }
  }
}

// ---- outcomes and findings --------------------------------------------------------------------------

export type FindingKind = 'crash' | 'invariant' | 'hang' | 'memory' | 'escape' | 'leak';

export interface Outcome {
  /** ok: success; error: an ImgxError (its code); finding: see FindingKind. */
  status: 'ok' | 'error' | 'finding';
  code?: string;
  kind?: FindingKind;
  /** One line saying what happened. */
  summary: string;
  detail?: string;
  ms: number;
  rssGrowth: number;
  /** A note that is not a finding (an IMGX_IO from a system error, on a healthy file system). */
  note?: string;
}

export interface Finding {
  target: TargetName;
  kind: FindingKind;
  signature: string;
  summary: string;
  detail: string;
  count: number;
  desc: Desc;
  /** Bytes of the input (the smallest seen with this signature). */
  size: number;
  /** The fast-check seed and path of the shrunk counterexample, when fast-check shrank this one. */
  replay?: { seed: number; path: string };
  /** The batch's fast-check seed (the input is one of its runs). */
  batchSeed: number;
}

export interface TargetStats {
  runs: number;
  ok: number;
  errors: Map<string, number>;
  findings: number;
  ms: number;
  notes: Map<string, number>;
}

/** Digits, hex, quoted text and offsets vary between inputs with one cause: they are left out. */
function normalise(s: string): string {
  return s
    .replace(/layer \d+ \(sha256:[0-9a-f]+\)/g, 'layer N')
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/'(?:[^'\\]|\\.)*'/g, "'…'")
    .replace(/[0-9a-f]{12,}/g, 'H')
    .replace(/\d+/g, 'N')
    .slice(0, 120);
}

/** The first frame of the project's code in a stack. */
function topFrame(stack: string): string {
  for (const line of stack.split('\n')) {
    const m = /\/(src|test)\/([^:)]+):(\d+)/.exec(line);
    if (m && !m[2]!.includes('fuzz-')) return `${m[1]}/${m[2]}:${m[3]}`;
  }
  return '';
}

function sizeOf(p: Payload): number {
  switch (p.target) {
    case 'tar':
    case 'archive':
      return p.bytes.length;
    case 'flatten':
    case 'writer':
      return p.layers.reduce((a, l) => a + l.length, 0);
    case 'docs':
      return p.docs.reduce((a, l) => a + l.length, 0);
  }
}

/** Bytes of an input for a person: the first `max` as a hex dump. */
export function hexdump(b: Uint8Array, max = 512): string {
  const lines: string[] = [];
  for (let i = 0; i < Math.min(b.length, max); i += 16) {
    const row = b.subarray(i, Math.min(i + 16, b.length));
    const hex = [...row].map((x) => x.toString(16).padStart(2, '0')).join(' ');
    const text = [...row].map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${text}`);
  }
  if (b.length > max) lines.push(`… ${b.length - max} more bytes`);
  return lines.join('\n');
}

export interface RunReport {
  stats: Map<TargetName, TargetStats>;
  findings: Finding[];
  peakRss: number;
  restarts: number;
}

/** Runs targets; keeps findings and counts across runs. */
export class Fuzzer {
  readonly opts: DriverOptions;
  private readonly host = new WorkerHost();
  private readonly world = new World();
  private readonly pools: SeedPools;
  readonly stats = new Map<TargetName, TargetStats>();
  readonly findings = new Map<string, Finding>();
  peakRss = 0;

  constructor(opts: DriverOptions) {
    this.opts = opts;
    this.pools = buildPools(this.world);
    for (const t of TARGETS) this.stats.set(t, { runs: 0, ok: 0, errors: new Map(), findings: 0, ms: 0, notes: new Map() });
  }

  get seedCounts(): Record<string, number> {
    return { tars: this.pools.tars.length, stacks: this.pools.stacks.length, docs: this.pools.docs.length, archives: this.pools.archives.length };
  }

  /** The worker's payload for a description (for replays and dumps). */
  payload(target: TargetName, desc: Desc): Payload {
    return payloadOf(target, desc, this.pools, this.world);
  }

  /** One input, start to end: what happened. */
  async execute(target: TargetName, desc: Desc): Promise<{ outcome: Outcome; payload: Payload }> {
    const payload = this.payload(target, desc);
    const watched = target === 'writer';
    const raw = await this.host.run(payload, this.opts.timeoutMs);
    this.peakRss = Math.max(this.peakRss, raw.rssPeak);
    // Growth during this input alone (the worker's peak RSS since just before it started).
    const growth = raw.kind === 'result' ? Math.max(0, raw.rssPeak - raw.rssBefore) : raw.rssPeak;
    let outcome: Outcome;
    if (raw.kind === 'timeout') {
      outcome = { status: 'finding', kind: 'hang', summary: `no answer within ${this.opts.timeoutMs} ms`, ms: raw.ms, rssGrowth: growth };
    } else if (raw.kind === 'died') {
      const oom = /OUT_OF_MEMORY|heap out of memory/i.test(raw.message);
      outcome = { status: 'finding', kind: oom ? 'memory' : 'crash', summary: raw.message.split('\n')[0]!, detail: raw.message, ms: raw.ms, rssGrowth: growth };
    } else if (raw.result.status === 'ok') {
      outcome = { status: 'ok', summary: 'ok', ms: raw.ms, rssGrowth: growth };
    } else if (raw.result.status === 'error') {
      const r = raw.result;
      outcome = { status: 'error', code: r.code, summary: `${r.code}: ${r.message}`, ms: raw.ms, rssGrowth: growth };
      // IMGX_IO is the answer to a full or failing disk. Here the disk is fine: say which system
      // error it stood for (a file that vanished, a path too long …), without failing the run.
      if (r.code === 'IMGX_IO' && r.cause?.code) outcome.note = `IMGX_IO from ${r.cause.code}${r.cause.syscall ? ` (${r.cause.syscall})` : ''}`;
    } else {
      const r = raw.result;
      outcome = {
        status: 'finding',
        kind: r.invariant ? 'invariant' : 'crash',
        summary: `${r.name}${r.code ? ` [${r.code}]` : ''}: ${r.message.split('\n')[0]}`,
        detail: r.stack || r.message,
        ms: raw.ms,
        rssGrowth: growth,
      };
    }
    if (watched) {
      let diff: string;
      try {
        // Invariants are checked after a successful write: DEST is there then.
        diff = this.world.differences(outcome.status === 'ok' || outcome.kind === 'invariant');
      } catch (e) {
        diff = `the watched tree could not be read: ${(e as Error).message}`;
      }
      // A run stopped from outside (a hang, a dead worker) may leave its staging directory, as
      // `kill -9` would: only what it did outside DEST counts then.
      const stopped = raw.kind !== 'result';
      if (stopped) diff = diff.split('\n').filter((l) => l && !/^\+ work\/(\.dest\.imgx-|dest \(present\))/.test(l)).join('\n');
      if (diff) {
        const was = outcome.status === 'finding' ? ` (the run itself: ${outcome.summary})` : outcome.status === 'error' ? ` (after ${outcome.code})` : ' (after a success)';
        const left = diff.split('\n').every((l) => /^\+ work\/(\.dest\.imgx-|dest \(present\))/.test(l));
        outcome = {
          status: 'finding',
          kind: 'escape',
          summary: left ? `a failed run left DEST or a staging directory behind${was}` : `something outside DEST changed${was}`,
          detail: diff,
          ms: outcome.ms,
          rssGrowth: growth,
        };
      }
      await this.world.clean().catch(() => {});
      if (diff || stopped) this.world.reset();
    } else if (target === 'archive' || (payload.target === 'docs' && payload.kind === 'cached') || (payload.target === 'flatten' && payload.compressed)) await this.world.clean().catch(() => {});
    if (outcome.status !== 'finding' && growth > this.opts.rssLimit) {
      outcome = { status: 'finding', kind: 'memory', summary: `RSS grew by ${Math.round(growth / 2 ** 20)} MiB during one input (bound ${Math.round(this.opts.rssLimit / 2 ** 20)} MiB)`, ms: outcome.ms, rssGrowth: growth };
    }
    const leak = this.host.warnings.splice(0).find((w) => w.name === 'MaxListenersExceededWarning' || w.code === 'DEP0137' || /garbage collection/i.test(w.message));
    if (leak && outcome.status !== 'finding') outcome = { status: 'finding', kind: 'leak', summary: `${leak.name}: ${leak.message.split('\n')[0]}`, ms: outcome.ms, rssGrowth: growth };
    return { outcome, payload };
  }

  private record(target: TargetName, desc: Desc, payload: Payload, o: Outcome, batchSeed: number): Finding {
    const frame = o.kind === 'crash' || o.kind === 'invariant' ? topFrame(o.detail ?? '') : '';
    const signature = `${target}|${o.kind}|${normalise(o.summary)}|${frame}`;
    const size = sizeOf(payload);
    let f = this.findings.get(signature);
    if (!f) {
      f = { target, kind: o.kind!, signature, summary: o.summary, detail: o.detail ?? '', count: 0, desc, size, batchSeed };
      this.findings.set(signature, f);
      this.opts.log(`FINDING [${target}/${o.kind}] ${o.summary}`);
      this.dump(f, payload);
    } else if (size < f.size) {
      Object.assign(f, { desc, size, summary: o.summary, detail: o.detail ?? f.detail, batchSeed });
      this.dump(f, payload);
    }
    f.count++;
    return f;
  }

  /** Writes a finding's description and input bytes to the dump directory. */
  private dump(f: Finding, payload: Payload): void {
    const dir = this.opts.dumpDir;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    const id = createHash('sha256').update(f.signature).digest('hex').slice(0, 12);
    const { desc, ...rest } = f;
    writeFileSync(join(dir, `${f.target}-${id}.json`), JSON.stringify({ ...rest, replay: { target: f.target, desc } }, null, 2) + '\n');
    const files: Uint8Array[] = payload.target === 'tar' || payload.target === 'archive' ? [payload.bytes] : payload.target === 'docs' ? payload.docs : payload.layers;
    files.forEach((b, i) => writeFileSync(join(dir, `${f.target}-${id}.${i}.bin`), b));
  }

  /**
   * `runs` inputs of one target from fast-check seed `seed` (or the one input at `path`), until
   * `deadline` (ms since the epoch) if given. The first finding is shrunk (for opts.shrinkMs at
   * most); the others are kept as they came.
   */
  async fuzz(target: TargetName, seed: number, runs: number, opts: { path?: string; deadline?: number } = {}): Promise<Finding | undefined> {
    const stats = this.stats.get(target)!;
    let pinned: string | undefined;
    let shrinkUntil = Infinity;
    let shrinking = false;
    let inflight: Promise<unknown> | undefined;
    const prop = fc.asyncProperty(ARBITRARIES[target], (desc) => {
      const run = check(desc);
      inflight = run.catch(() => {});
      return run;
    });
    const check = async (desc: Desc) => {
      // Past the shrinking budget, the remaining candidates pass without running.
      if (shrinking && Date.now() > shrinkUntil) return true;
      const { outcome, payload } = await this.execute(target, desc);
      if (!shrinking) {
        stats.runs++;
        stats.ms += outcome.ms;
        if (outcome.status === 'ok') stats.ok++;
        else if (outcome.status === 'error') stats.errors.set(outcome.code!, (stats.errors.get(outcome.code!) ?? 0) + 1);
        if (outcome.note) stats.notes.set(normalise(outcome.note), (stats.notes.get(normalise(outcome.note)) ?? 0) + 1);
      }
      if (outcome.status !== 'finding') return true;
      const f = this.record(target, desc, payload, outcome, seed);
      if (!shrinking) stats.findings++;
      if (pinned === undefined) {
        pinned = f.signature;
        shrinking = true;
        shrinkUntil = Date.now() + this.opts.shrinkMs;
      }
      if (f.signature !== pinned) return true;
      throw new Error(`${f.kind}: ${outcome.summary}`);
    };
    const params: fc.Parameters<[Desc]> = { seed, numRuns: runs, endOnFailure: this.opts.shrinkMs === 0, verbose: 0 };
    if (opts.path !== undefined) params.path = opts.path;
    // fast-check stops between runs at the deadline, and races the run in progress: that one is
    // waited for here (the worker is busy with it; what it finds is kept).
    if (opts.deadline !== undefined) params.interruptAfterTimeLimit = Math.max(1, opts.deadline - Date.now());
    const details = await fc.check(prop, params);
    await inflight;
    if (details.failed && pinned !== undefined && details.counterexample) {
      const f = this.findings.get(pinned)!;
      f.replay = { seed: details.seed, path: details.counterexamplePath ?? '' };
      const payload = this.payload(target, details.counterexample[0]);
      f.desc = details.counterexample[0];
      f.size = sizeOf(payload);
      this.dump(f, payload);
      return f;
    }
    return undefined;
  }

  report(): RunReport {
    return { stats: this.stats, findings: [...this.findings.values()], peakRss: this.peakRss, restarts: this.host.restarts };
  }

  async close(): Promise<void> {
    await this.host.close();
    await this.world.dispose().catch(() => {});
  }
}

/** Findings as text: what, how often, how to run it again, and the input. */
export function describeFindings(findings: Finding[], fuzzer: Fuzzer): string {
  const out: string[] = [];
  for (const f of findings) {
    out.push(`[${f.target}/${f.kind}] ${f.summary}  (${f.count}×, input ${f.size} bytes)`);
    if (f.replay) out.push(`  replay: npm run fuzz -- --target ${f.target} --seed ${f.replay.seed} --path ${f.replay.path}`);
    else out.push(`  found in the batch with fast-check seed ${f.batchSeed}`);
    out.push(`  input: ${JSON.stringify({ target: f.target, desc: f.desc })}`);
    if (f.detail) out.push(...f.detail.split('\n').slice(0, 12).map((l) => `    ${l}`));
    const p = fuzzer.payload(f.target, f.desc);
    const bytes = p.target === 'tar' || p.target === 'archive' ? [p.bytes] : p.target === 'docs' ? p.docs : p.layers;
    for (const [i, b] of bytes.entries()) if (b.length <= 8 * BLOCK_SIZE) out.push(`  input ${i} (${b.length} bytes):`, hexdump(b, 8 * BLOCK_SIZE).replace(/^/gm, '    '));
  }
  return out.join('\n');
}

/** One line per target: runs, outcomes, time. */
export function describeStats(report: RunReport): string {
  const lines: string[] = [];
  for (const [t, s] of report.stats) {
    if (!s.runs) continue;
    const errors = [...s.errors].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c.replace(/^IMGX_/, '')} ${n}`).join(', ');
    const notes = [...s.notes].map(([n, k]) => `${n} ×${k}`).join('; ');
    lines.push(`${t.padEnd(8)} ${String(s.runs).padStart(7)} runs in ${(s.ms / 1000).toFixed(1).padStart(6)} s: ok ${s.ok}, coded errors ${s.runs - s.ok - s.findings} (${errors || 'none'}), findings ${s.findings}${notes ? `; notes: ${notes}` : ''}`);
  }
  lines.push(`peak RSS ${Math.round(report.peakRss / 2 ** 20)} MiB; worker restarts ${report.restarts}; distinct findings ${report.findings.length}`);
  return lines.join('\n');
}
