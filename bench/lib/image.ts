// The benchmark image: a Debian bookworm userland (mmdebstrap, minbase + python3) split into three
// layers, plus one layer of mixed incompressible / compressible / many-small files, all gzip-compressed
// as real images are, written as an OCI layout. Built once and cached under /var/tmp/imgx-bench,
// keyed by a hash of the recipe and of this file, so a changed recipe rebuilds it.
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { arch } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const execFileP = promisify(execFile);
const gzipP = promisify(gzip);

export const BENCH_ROOT = process.env.IMGX_BENCH_DIR ?? '/var/tmp/imgx-bench';

const RECIPE = {
  version: 1,
  suite: 'bookworm',
  variant: 'minbase',
  include: ['python3', 'ca-certificates'],
  data: { randomFiles: 24, randomFileMiB: 3, textFiles: 16, textFileMiB: 3, smallFiles: 3000 },
  gzipLevel: 6, // zlib's default, as docker and containers/image use
};

export interface BenchImage {
  /** OCI layout directory. */
  layout: string;
  tag: string;
  /** `synthetic` when mmdebstrap could not build a userland and generated files stand in. */
  userland: 'mmdebstrap' | 'synthetic';
  layers: { digest: string; size: number; diffId: string; uncompressedSize: number }[];
  compressedSize: number;
  uncompressedSize: number;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function recipeKey(): string {
  const self = readFileSync(fileURLToPath(import.meta.url));
  return sha256(JSON.stringify(RECIPE) + sha256(self)).slice(0, 16);
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

/** The cached image, built first when missing. */
export async function benchImage(): Promise<BenchImage> {
  const key = recipeKey();
  const dir = join(BENCH_ROOT, `image-${key}`);
  const meta = join(dir, 'bench-image.json');
  if (existsSync(meta)) return JSON.parse(readFileSync(meta, 'utf8')) as BenchImage;

  mkdirSync(BENCH_ROOT, { recursive: true });
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'blobs', 'sha256'), { recursive: true });

  let userland: BenchImage['userland'] = 'mmdebstrap';
  let base: Buffer[];
  const rootfs = await debianRootfs();
  if (rootfs) {
    base = splitRootfs(readFileSync(rootfs));
  } else {
    userland = 'synthetic';
    log('mmdebstrap unavailable: using a synthetic userland instead');
    base = syntheticUserland();
  }
  const tars = [...base, dataLayer()];

  log(`compressing ${tars.length} layers (gzip -${RECIPE.gzipLevel})`);
  const layers = await Promise.all(
    tars.map(async (tar) => {
      const gz = await gzipP(tar, { level: RECIPE.gzipLevel });
      const digest = `sha256:${sha256(gz)}`;
      writeFileSync(join(work, 'blobs', 'sha256', digest.slice(7)), gz);
      return { digest, size: gz.length, diffId: `sha256:${sha256(tar)}`, uncompressedSize: tar.length };
    }),
  );

  const created = '2025-01-01T00:00:00Z';
  const archName = arch() === 'arm64' ? 'arm64' : 'amd64';
  const steps = ['base system (etc, var, …)', 'usr/lib', 'usr (bin, share, …)', 'bench data (/opt/bench-data)'];
  const config = Buffer.from(
    JSON.stringify({
      created,
      architecture: archName,
      os: 'linux',
      config: {
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8'],
        Cmd: ['/bin/bash'],
        WorkingDir: '/',
        Labels: { 'org.opencontainers.image.title': 'imgx pull benchmark' },
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created, created_by: `imgx-bench: ${steps[i] ?? `layer ${i}`}` })),
    }),
  );
  const configDigest = `sha256:${sha256(config)}`;
  writeFileSync(join(work, 'blobs', 'sha256', configDigest.slice(7)), config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = `sha256:${sha256(manifest)}`;
  writeFileSync(join(work, 'blobs', 'sha256', manifestDigest.slice(7)), manifest);
  const tag = 'bench';
  writeFileSync(join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(work, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  const image: BenchImage = {
    layout: dir,
    tag,
    userland,
    layers,
    compressedSize: layers.reduce((a, l) => a + l.size, 0),
    uncompressedSize: layers.reduce((a, l) => a + l.uncompressedSize, 0),
  };
  writeFileSync(join(work, 'bench-image.json'), JSON.stringify(image, null, 2));
  rmSync(dir, { recursive: true, force: true });
  renameSync(work, dir);
  // Images of older recipes are dead weight (hundreds of MB each).
  for (const n of readdirSync(BENCH_ROOT)) {
    if (n.startsWith('image-') && n !== `image-${key}` && !n.includes('.tmp-')) rmSync(join(BENCH_ROOT, n), { recursive: true, force: true });
  }
  return image;
}

/** The userland tarball from mmdebstrap, cached on its own (it is the slow, networked part). */
async function debianRootfs(): Promise<string | undefined> {
  const key = sha256(JSON.stringify([RECIPE.suite, RECIPE.variant, RECIPE.include])).slice(0, 16);
  const file = join(BENCH_ROOT, `rootfs-${key}.tar`);
  if (existsSync(file)) return file;
  if (process.env.IMGX_BENCH_SYNTHETIC === '1') return undefined;
  const tmp = `${file}.tmp-${process.pid}.tar`;
  log(`building a ${RECIPE.suite} ${RECIPE.variant} userland with mmdebstrap (once; about a minute)`);
  try {
    await execFileP(
      'mmdebstrap',
      ['--quiet', `--variant=${RECIPE.variant}`, `--include=${RECIPE.include.join(',')}`, RECIPE.suite, tmp],
      { maxBuffer: 64 << 20, timeout: 15 * 60_000 },
    );
    renameSync(tmp, file);
    return file;
  } catch (e) {
    rmSync(tmp, { force: true });
    log(`mmdebstrap failed: ${((e as { stderr?: string }).stderr ?? String(e)).trim().split('\n').slice(-3).join(' | ')}`);
    return undefined;
  }
}

// ---- tar, just enough of it -----------------------------------------------------------------

const BLOCK = 512;
const END = Buffer.alloc(2 * BLOCK);
const roundUp = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

function readOctal(h: Buffer, off: number, len: number): number {
  // GNU base-256 for large values: high bit of the first byte set.
  if (h[off]! & 0x80) {
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + h[i]!;
    return v;
  }
  const s = h.subarray(off, off + len).toString('latin1').replace(/[\0 ]+$/g, '').trim();
  return s ? parseInt(s, 8) : 0;
}

function cString(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
}

/**
 * Splits a tar into three layers by path without re-encoding a byte: entries keep their PAX and
 * GNU long-name headers. Device nodes under /dev are dropped, as image builders do.
 */
function splitRootfs(tar: Buffer): Buffer[] {
  const layers: Buffer[][] = [[], [], []];
  let off = 0;
  let pending: Buffer[] = [];
  let longName: string | undefined;
  while (off + BLOCK <= tar.length) {
    const h = tar.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const size = readOctal(h, 124, 12);
    const type = String.fromCharCode(h[156]!);
    const total = BLOCK + roundUp(size);
    const chunk = tar.subarray(off, off + total);
    const data = tar.subarray(off + BLOCK, off + BLOCK + size);
    off += total;
    if (type === 'x' || type === 'L' || type === 'K' || type === 'g') {
      pending.push(chunk);
      if (type === 'L') longName = cString(data);
      if (type === 'x') {
        const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'));
        if (m) longName = m[1];
      }
      continue;
    }
    const prefix = h.readUInt8(257) === 0x75 && h.subarray(257, 262).toString('latin1') === 'ustar' ? cString(h.subarray(345, 500)) : '';
    let name = longName ?? (prefix ? `${prefix}/${cString(h.subarray(0, 100))}` : cString(h.subarray(0, 100)));
    name = name.replace(/^\.\//, '');
    longName = undefined;
    const entry = [...pending, chunk];
    pending = [];
    if (name.startsWith('dev/') && name !== 'dev/') continue;
    const i = name === 'usr/' || name.startsWith('usr/lib/') || name === 'usr/lib' ? 1 : name.startsWith('usr/') ? 2 : 0;
    layers[i]!.push(...entry);
  }
  return layers.map((parts) => Buffer.concat([...parts, END]));
}

function ustarHeader(name: string, size: number, type: '0' | '5', mode: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
  h.write(name, 0, 100, 'utf8');
  const oct = (v: number, off: number, len: number) => h.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
  oct(mode, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(1735689600, 136, 12); // 2025-01-01
  h.write('        ', 148, 8, 'latin1');
  h.write(type, 156, 1, 'latin1');
  h.write('ustar\u000000', 257, 8, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return h;
}

class TarBuilder {
  parts: Buffer[] = [];
  dir(name: string): void {
    this.parts.push(ustarHeader(name.endsWith('/') ? name : `${name}/`, 0, '5', 0o755));
  }
  file(name: string, data: Buffer, mode = 0o644): void {
    this.parts.push(ustarHeader(name, data.length, '0', mode), data, Buffer.alloc(roundUp(data.length) - data.length));
  }
  finish(): Buffer {
    return Buffer.concat([...this.parts, END]);
  }
}

/** Deterministic incompressible bytes (AES-CTR keystream). */
function randomish(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const c = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(size)), c.final()]);
}

/** Deterministic log-like text: compresses about as well as real logs and sources do. */
function textish(seed: number, size: number): Buffer {
  const words = ['GET', 'POST', 'PUT', '/api/v1/items', '/api/v1/users', '/healthz', '/static/app.js', 'INFO', 'WARN', 'DEBUG', 'cache', 'miss', 'hit', 'upstream', 'latency_ms', 'bytes'];
  let x = seed >>> 0 || 1;
  const rnd = () => {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const lines: string[] = [];
  let n = 0;
  while (n < size) {
    const t = new Date(1735689600000 + (rnd() % 86_400_000)).toISOString();
    const line = `${t} ${words[rnd() % 8 + 7]} svc[${rnd() % 4096}] ${words[rnd() % 3]} ${words[3 + (rnd() % 4)]} status=${[200, 200, 200, 304, 404, 500][rnd() % 6]} ${words[13 + (rnd() % 3)]}=${rnd() % 100000} id=${(rnd() % 0xffffff).toString(16)}\n`;
    lines.push(line);
    n += line.length;
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

function dataLayer(): Buffer {
  const d = RECIPE.data;
  const t = new TarBuilder();
  t.dir('opt/');
  t.dir('opt/bench-data/');
  t.dir('opt/bench-data/assets/');
  for (let i = 0; i < d.randomFiles; i++) t.file(`opt/bench-data/assets/blob-${i}.bin`, randomish(`blob-${i}`, d.randomFileMiB << 20));
  t.dir('opt/bench-data/logs/');
  for (let i = 0; i < d.textFiles; i++) t.file(`opt/bench-data/logs/app-${i}.log`, textish(i + 1, d.textFileMiB << 20));
  t.dir('opt/bench-data/small/');
  for (let i = 0; i < d.smallFiles; i++) {
    if (i % 100 === 0) t.dir(`opt/bench-data/small/${i / 100}/`);
    const body = i % 3 === 0 ? randomish(`small-${i}`, 512 + (i % 7) * 1000) : textish(1000 + i, 300 + (i % 11) * 700);
    t.file(`opt/bench-data/small/${Math.floor(i / 100)}/f-${i}.dat`, body);
  }
  return t.finish();
}

/** Stand-in for the Debian userland when mmdebstrap cannot run: three layers of mixed files. */
function syntheticUserland(): Buffer[] {
  return [0, 1, 2].map((l) => {
    const t = new TarBuilder();
    const top = ['etc', 'usr/lib', 'usr/share'][l]!;
    if (l > 0) t.dir('usr/');
    t.dir(`${top}/`);
    for (let i = 0; i < 4000; i++) {
      if (i % 200 === 0) t.dir(`${top}/d${i / 200}/`);
      const size = 2000 + ((i * 7919) % 60000);
      const body = i % 4 === 0 ? randomish(`u-${l}-${i}`, size) : textish(l * 10000 + i, size);
      t.file(`${top}/d${Math.floor(i / 200)}/f${i}`, body);
    }
    return t.finish();
  });
}
