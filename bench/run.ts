// Run benchmark: the start-up overhead of `imgx run REF true` with the image cached, against
// `runc run` on a bundle prepared beforehand (issue 4; goal: at most 300 ms more than runc).
// The image is the real Debian fixture `small` (test/fixtures/debian-image.ts), pushed to a loopback
// docker-registry. Not timed: one `imgx run` with a fresh cache (pulls and extracts the rootfs once,
// so every timed run finds the image cached; `--pull missing` asks the registry nothing), and the
// peer's bundle (`skopeo copy` + `umoci unpack`, process.args ["true"], no terminal). Timed, in
// rounds whose order reverses every round: imgx --runtime runc, imgx --runtime native (when
// native/build/imgx-run exists or `sh native/build.sh` builds it, and an untimed first run works;
// otherwise the row is skipped with a note), `runc --root STATE run --bundle BUNDLE ID`, and a
// reference row, `node --max-semi-space-size=2 -e 0`: Node's bare start-up, the floor under any
// imgx command, to say how much of the overhead it is. Each side runs once untimed first (page
// cache, Node's compile cache); every timed run must exit 0.
//
//   node_modules/.bin/node bench/run.ts [--rounds N]      (default 20, or IMGX_BENCH_ROUNDS)
//
// Prints the median, p90 and min wall time (ms) and the peak RSS (MiB, whole process tree and
// largest single process) per side, the overhead of each imgx row (median imgx − median runc), the
// goal met or not, the imgx/runc ratio, and writes every sample to bench/results/run.json. Needs
// root (runc). Leaves nothing mounted: the overlay lines of /proc/self/mountinfo are compared
// before and after, and any new one is reported.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { imgxCommand, nodeBareCommand } from './lib/imgx-launch.ts';
import { emptyCredentials, requireRoot, roundsOption } from './lib/options.ts';
import { debianImage, ociRef } from '../test/fixtures/debian-image.ts';
import { formatTable, machineInfo, measure, type Measurement, median, toolVersion } from './lib/measure.ts';
import { IMGX_BIN, NODE_BIN, REPO_ROOT, skopeoCopy, startRegistry } from './lib/registry.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' } } });
const rounds = roundsOption(values.rounds, 20);
requireRoot('bench/run.ts', 'runc (both the peer and `imgx run --runtime runc`) runs containers only as root here');

/** Goal from the issue: imgx run at most this much slower than runc run, median against median. */
const GOAL_OVERHEAD_MS = 300;
const mib = (kib: number) => Math.round(kib / 102.4) / 10;
const ms = (s: number) => s * 1000;
/** Nearest-rank percentile. */
const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
};

const overlayMounts = () =>
  new Set(
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => / - overlay /.test(l)),
  );
const listDir = (d: string) => (existsSync(d) ? readdirSync(d) : []);

type Side = 'imgx-runc' | 'imgx-native' | 'runc' | 'node-start';
const LABEL: Record<Side, string> = {
  'imgx-runc': 'imgx run --runtime runc',
  'imgx-native': 'imgx run --runtime native',
  runc: 'runc run (prepared bundle)',
  'node-start': 'node -e 0 (Node start-up alone)',
};
interface Sample {
  round: number;
  side: Side;
  wallMs: number;
  peakTreeRssKiB: number;
  maxRssKiB: number;
}

// The runtime imgx itself uses for runc: whatever it leaves there is a leak.
const IMGX_RUNC_STATE = '/run/imgx/runc';
const mountsBefore = overlayMounts();
const imgxRuncStateBefore = new Set(listDir(IMGX_RUNC_STATE));

const image = await debianImage('small');
const registry = await startRegistry();
const work = mkdtempSync('/var/tmp/imgx-bench-run-');
const runcState = join(work, 'runc-state');
const notes: string[] = [];
let failed = false;
try {
  const ref = `${registry.host}/bench/debian:small`;
  process.stderr.write(`bench: image ${image.name}: ${image.layers.length} layers, ${(image.compressedSize / 2 ** 20).toFixed(1)} MiB gzip; pushing to ${registry.host}\n`);
  await skopeoCopy(ociRef(image), `docker://${ref}`);

  // No tool may pick up credentials from this machine.
  const { dir: emptyCfg, authFile } = emptyCredentials(work);
  const imgxCache = join(work, 'imgx-cache');
  mkdirSync(imgxCache);
  const imgxEnv = { ...process.env, IMGX_CACHE: imgxCache, DOCKER_CONFIG: emptyCfg, NO_COLOR: '1' };
  const imgxRun = (runtime: 'runc' | 'native') =>
    (({ cmd, args, env }) => measure(cmd, args, { cwd: REPO_ROOT, env: { ...imgxEnv, ...env } }))(imgxCommand(['run', '--quiet', '--runtime', runtime, ref, 'true']));

  // The peer's bundle, prepared once.
  const layout = join(work, 'peer-oci');
  const bundle = join(work, 'peer-bundle');
  const peerEnv = { ...process.env, REGISTRY_AUTH_FILE: authFile };
  execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:bench`], { env: peerEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  execFileSync('umoci', ['unpack', '--image', `${layout}:bench`, bundle], { env: peerEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  const configFile = join(bundle, 'config.json');
  const spec = JSON.parse(readFileSync(configFile, 'utf8')) as { process: { args: string[]; terminal?: boolean } };
  spec.process.args = ['true'];
  spec.process.terminal = false;
  writeFileSync(configFile, JSON.stringify(spec, null, 2));
  mkdirSync(runcState);
  let runcIds = 0;
  const runcRun = () => measure('runc', ['--root', runcState, 'run', '--bundle', bundle, `imgx-bench-${process.pid}-${runcIds++}`], { cwd: bundle });

  // The floor under any imgx command: starting Node itself, no module of ours loaded.
  const bare = nodeBareCommand();
  const nodeStartRun = () => measure(bare.cmd, bare.args, { cwd: REPO_ROOT, env: { ...imgxEnv, ...bare.env } });

  const ok = (side: Side, m: Measurement) => {
    if (m.code !== 0) throw new Error(`${LABEL[side]} exited ${m.code}: ${(m.stderr.trim() || m.stdout.trim()).split('\n').slice(-5).join(' | ')}`);
    return m;
  };

  // Warm-up: imgx pulls and extracts the image into its fresh cache (this is what makes the timed
  // runs "image cached"); every other side runs once too, so none is timed on a cold page cache.
  const warmup: Record<string, number> = {};
  process.stderr.write('bench: warm-up: imgx run (pull + extract into a fresh cache)\n');
  warmup['imgx-runc (pull + extract + run)'] = ms(ok('imgx-runc', await imgxRun('runc')).wallS);
  warmup['runc'] = ms(ok('runc', await runcRun()).wallS);
  warmup['node-start'] = ms(ok('node-start', await nodeStartRun()).wallS);

  const sides: Side[] = ['imgx-runc', 'imgx-native', 'runc', 'node-start'];
  const nativeBin = join(REPO_ROOT, 'native', 'build', 'imgx-run');
  if (!existsSync(nativeBin)) {
    process.stderr.write('bench: native/build/imgx-run is missing: sh native/build.sh\n');
    const b = spawnSync('sh', [join(REPO_ROOT, 'native', 'build.sh')], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (b.status !== 0 || !existsSync(nativeBin)) {
      notes.push(`imgx --runtime native skipped: native/build/imgx-run could not be built (${(b.stderr || b.error?.message || '').trim().split('\n').slice(-2).join(' | ') || `exit ${b.status}`})`);
    }
  }
  if (existsSync(nativeBin) && !notes.length) {
    // The native core is young: a first run that fails skips its row, with the reason; a timed run
    // that fails later fails the bench like any other.
    const m = await imgxRun('native');
    if (m.code === 0) warmup['imgx-native'] = ms(m.wallS);
    else notes.push(`imgx --runtime native skipped: its untimed first run exited ${m.code}: ${m.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  }
  if (notes.some((n) => n.startsWith('imgx --runtime native skipped'))) sides.splice(sides.indexOf('imgx-native'), 1);
  for (const n of notes) process.stderr.write(`bench: ${n}\n`);

  const run: Record<Side, () => Promise<Measurement>> = {
    'imgx-runc': () => imgxRun('runc'),
    'imgx-native': () => imgxRun('native'),
    runc: runcRun,
    'node-start': nodeStartRun,
  };
  const samples: Sample[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Reverse the order every other round, so no side always follows the same one.
    const order = round % 2 ? sides : [...sides].reverse();
    const line: string[] = [];
    for (const side of order) {
      const m = ok(side, await run[side]());
      samples.push({ round, side, wallMs: ms(m.wallS), peakTreeRssKiB: m.treePeakRssKiB, maxRssKiB: m.maxRssKiB });
      line.push(`${side} ${ms(m.wallS).toFixed(0)}`);
    }
    process.stderr.write(`bench: round ${round}/${rounds}: ${line.join(', ')} ms\n`);
  }

  const summary = (side: Side) => {
    const mine = samples.filter((s) => s.side === side);
    const wall = mine.map((s) => s.wallMs);
    return {
      medianWallMs: median(wall),
      p90WallMs: percentile(wall, 90),
      minWallMs: Math.min(...wall),
      peakTreeRssMiB: mib(Math.max(...mine.map((s) => s.peakTreeRssKiB))),
      peakMaxRssMiB: mib(Math.max(...mine.map((s) => s.maxRssKiB))),
    };
  };
  const sums = Object.fromEntries(sides.map((s) => [s, summary(s)])) as Partial<Record<Side, ReturnType<typeof summary>>>;
  const runc = sums.runc!;
  const nodeStart = sums['node-start']!;

  process.stdout.write(
    `\nimgx run vs runc run — start-up of \`true\` in Debian bookworm (${image.name}: ${image.layers.length} layers, ${(image.uncompressedSize / 2 ** 20).toFixed(0)} MiB), image cached, ${rounds} rounds\n\n`,
  );
  process.stdout.write(
    formatTable(
      ['side', 'median ms', 'p90 ms', 'min ms', 'peak RSS tree MiB', 'max RSS MiB'],
      sides.map((s) => {
        const x = sums[s]!;
        return [LABEL[s], x.medianWallMs.toFixed(0), x.p90WallMs.toFixed(0), x.minWallMs.toFixed(0), x.peakTreeRssMiB.toFixed(1), x.peakMaxRssMiB.toFixed(1)];
      }),
    ) + '\n\n',
  );
  const overheads: Record<string, { overheadMs: number; ratio: number; goalMet: boolean; nodeStartShare: number }> = {};
  for (const side of ['imgx-runc', 'imgx-native'] as const) {
    const x = sums[side];
    if (!x) continue;
    const overheadMs = x.medianWallMs - runc.medianWallMs;
    const ratio = x.medianWallMs / runc.medianWallMs;
    const goalMet = overheadMs <= GOAL_OVERHEAD_MS;
    const nodeStartShare = nodeStart.medianWallMs / overheadMs;
    overheads[side] = { overheadMs, ratio, goalMet, nodeStartShare };
    process.stdout.write(
      `${LABEL[side]}: overhead ${overheadMs.toFixed(0)} ms over runc (goal ≤ ${GOAL_OVERHEAD_MS} ms: ${goalMet ? 'met' : 'not met'}), ratio ${ratio.toFixed(2)}; ` +
        `Node's own start-up (${nodeStart.medianWallMs.toFixed(0)} ms) is ${overheadMs > 0 ? `${Math.round(nodeStartShare * 100)}% of it` : 'more than all of it'}\n`,
    );
  }
  process.stdout.write(`peak RSS: whole process tree sampled every 25 ms, and the largest single process (GNU time %M)\n`);
  for (const n of notes) process.stdout.write(`note: ${n}\n`);

  // Nothing may be left behind: no mount, no runc state, no run directory.
  const leftovers: string[] = [];
  for (const l of overlayMounts()) if (!mountsBefore.has(l)) leftovers.push(`overlay still mounted: ${l}`);
  for (const id of listDir(IMGX_RUNC_STATE)) if (!imgxRuncStateBefore.has(id)) leftovers.push(`imgx left runc state ${join(IMGX_RUNC_STATE, id)}`);
  for (const id of listDir(runcState)) leftovers.push(`runc left state ${join(runcState, id)}`);
  for (const id of listDir(join(imgxCache, 'imgx-runs'))) leftovers.push(`imgx left its run directory imgx-runs/${id}`);
  process.stdout.write(leftovers.length ? `LEFTOVERS:\n  ${leftovers.join('\n  ')}\n` : 'nothing left mounted, no runc state or run directory left\n');

  const out = {
    benchmark: 'run',
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: {
      node: process.version,
      imgx: toolVersion(NODE_BIN, [IMGX_BIN, '--version'], { cwd: REPO_ROOT }),
      runc: toolVersion('runc', ['--version']),
      umoci: toolVersion('umoci', ['--version']),
      skopeo: toolVersion('skopeo', ['--version']),
      registry: toolVersion('/usr/bin/docker-registry', ['--version']),
    },
    image: { name: image.name, manifest: image.manifestDigest, layers: image.layers.length, compressedBytes: image.compressedSize, uncompressedBytes: image.uncompressedSize },
    rounds,
    sides: Object.fromEntries(sides.map((s) => [s, LABEL[s]])),
    warmupMs: warmup,
    samples,
    summary: { ...sums, overheads, goalOverheadMs: GOAL_OVERHEAD_MS },
    notes,
    leftovers,
  };
  const outDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'run.json'), JSON.stringify(out, null, 2) + '\n');
  process.stdout.write(`\nresults: ${join('bench', 'results', 'run.json')}\n`);
  if (leftovers.length) failed = true;
} finally {
  // A run killed halfway may leave a container in our runc state: delete it before the files.
  for (const id of listDir(runcState)) spawnSync('runc', ['--root', runcState, 'delete', '--force', id], { stdio: 'ignore' });
  rmSync(work, { recursive: true, force: true });
  await registry.stop();
}
if (failed) process.exitCode = 1;
