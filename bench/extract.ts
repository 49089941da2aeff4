// Extract benchmark: `imgx extract docker://… DIR` against its peers doing the same job,
// `skopeo copy docker://… oci:D:tag && umoci unpack --image D:tag BUNDLE` (timed as one sequence:
// wall times summed, peak RSS the larger of the two), on real multi-layer Debian images of about
// 200 MB and 700 MB of gzip layers (test/fixtures/debian-image.ts) served by a loopback
// docker-registry. Cold cache and empty destinations every run, tools alternating who goes first,
// after one untimed warm-up round (--warmup N). Round 1 also checks that both produced the same
// tree, so the two sides did the same work.
//
//   node_modules/.bin/node bench/extract.ts [--rounds N] [--warmup N] [--sizes 200,700] [--no-verify]
//
// Prints a table per image, the imgx/peer ratio of median wall times and the peak RSS of each
// side's whole process tree, and writes bench/results/extract.json. Needs root (umoci unpack with
// owners and device nodes; the images are built in a chroot the first time).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { imgxCommand } from './lib/imgx-launch.ts';
import { requireRoot, roundsOption } from './lib/options.ts';
import { coldPageCache } from './lib/page-cache.ts';
import { debianImage, FIXTURE_ROOT, ociRef, type DebianImage } from '../test/fixtures/debian-image.ts';
import { diffTrees } from '../test/helpers/tree-compare.ts';
import { formatTable, machineInfo, measure, type Measurement, median, toolVersion } from './lib/measure.ts';
import { REPO_ROOT, skopeoCopy, startRegistry } from './lib/registry.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, warmup: { type: 'string' }, sizes: { type: 'string' }, 'no-verify': { type: 'boolean' } } });
const rounds = roundsOption(values.rounds, 3);
// Untimed rounds first: the first run after the registry starts is slower for both tools, and the
// first imgx run after its sources changed fills Node's compile cache (what building a binary is
// for the peer). Both tools run in each, as in a timed round.
const warmup = values.warmup === undefined ? 1 : Number(values.warmup);
if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`--warmup: a whole number ≥ 0, got ${values.warmup}`);
const sizes = (values.sizes ?? '200,700').split(',').map((s) => s.trim());
for (const s of sizes) if (!['200', '700'].includes(s)) throw new Error(`--sizes: 200 and/or 700, got ${s}`);
requireRoot('bench/extract.ts', 'umoci unpack restores owners and device nodes only as root');

/** Goals from the issue. */
const GOAL_RATIO = 0.5;
// The issue says 200 MB: decimal, 190.7 MiB (the stricter reading).
const GOAL_RSS_MIB = Math.round((200e6 / (1024 * 1024)) * 10) / 10;
const MiB = 1024 * 1024;
const mib = (kib: number) => Math.round(kib / 102.4) / 10;

type Tool = 'imgx' | 'peer';
interface Run {
  round: number;
  tool: Tool;
  wallS: number;
  peakTreeRssKiB: number;
  maxRssKiB: number;
  /** The peer's two commands. */
  steps?: { skopeoS: number; umociS: number; skopeoRssKiB: number; umociRssKiB: number };
}

const images: DebianImage[] = [];
for (const s of sizes) images.push(await debianImage(`bench-${s}`));

const registry = await startRegistry();
const work = join(FIXTURE_ROOT, `bench-extract-${process.pid}`);
const results: Record<string, unknown>[] = [];
try {
  mkdirSync(work, { recursive: true });
  // Neither tool may pick up credentials from this machine.
  const emptyCfg = join(work, 'docker-config');
  mkdirSync(emptyCfg);
  writeFileSync(join(emptyCfg, 'config.json'), '{"auths":{}}');
  const authFile = join(emptyCfg, 'auth.json');
  writeFileSync(authFile, '{"auths":{}}');

  for (const image of images) {
    const ref = `${registry.host}/bench/debian:${image.name}`;
    process.stderr.write(
      `bench: ${image.name}: ${image.layers.length} layers, ${(image.compressedSize / MiB).toFixed(1)} MiB gzip, ${(image.uncompressedSize / MiB).toFixed(1)} MiB tar; pushing\n`,
    );
    await skopeoCopy(ociRef(image), `docker://${ref}`);

    const imgxDest = join(work, 'imgx-rootfs');
    const imgxCache = join(work, 'imgx-cache');
    const peerLayout = join(work, 'peer-oci');
    const peerBundle = join(work, 'peer-bundle');
    // Deleting GB-sized trees keeps the disk busy for a while after rm returns (ext4 discard,
    // journal), which would slow whichever run comes next: runs only rename their output into a
    // trash directory, emptied between images or when free space runs low.
    const trash = join(work, 'trash');
    let trashed = 0;
    const clean = () => {
      for (const d of [imgxDest, imgxCache, peerLayout, peerBundle]) {
        if (existsSync(d)) renameSync(d, join(trash, `${trashed++}`));
      }
    };
    const emptyTrash = () => {
      rmSync(trash, { recursive: true, force: true });
      mkdirSync(trash);
      execFileSync('sync');
    };
    const lowOnSpace = () => {
      const st = statfsSync(work);
      return st.bavail * st.bsize < 4 * (image.compressedSize + image.uncompressedSize) + 5 * 2 ** 30;
    };
    emptyTrash();

    const tools: Record<Tool, () => Promise<Omit<Run, 'round' | 'tool'>>> = {
      imgx: async () => {
        mkdirSync(imgxCache);
        const c = imgxCommand(['extract', '--quiet', ref, imgxDest]);
        const m = await measure(c.cmd, c.args, {
          cwd: REPO_ROOT,
          env: { ...process.env, ...c.env, IMGX_CACHE: imgxCache, DOCKER_CONFIG: emptyCfg, NO_COLOR: '1' },
        });
        if (m.code !== 0) throw new Error(`imgx extract failed (exit ${m.code}): ${m.stderr.trim()}`);
        return { wallS: m.wallS, peakTreeRssKiB: m.treePeakRssKiB, maxRssKiB: m.maxRssKiB };
      },
      peer: async () => {
        const env = { ...process.env, REGISTRY_AUTH_FILE: authFile };
        const copy: Measurement = await measure('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${peerLayout}:bench`], { env });
        if (copy.code !== 0) throw new Error(`skopeo copy failed (exit ${copy.code}): ${copy.stderr.trim()}`);
        const unpack = await measure('umoci', ['unpack', '--image', `${peerLayout}:bench`, peerBundle], { env });
        if (unpack.code !== 0) throw new Error(`umoci unpack failed (exit ${unpack.code}): ${unpack.stderr.trim()}`);
        return {
          wallS: copy.wallS + unpack.wallS,
          peakTreeRssKiB: Math.max(copy.treePeakRssKiB, unpack.treePeakRssKiB),
          maxRssKiB: Math.max(copy.maxRssKiB, unpack.maxRssKiB),
          steps: { skopeoS: copy.wallS, umociS: unpack.wallS, skopeoRssKiB: copy.treePeakRssKiB, umociRssKiB: unpack.treePeakRssKiB },
        };
      },
    };

    const runs: Run[] = [];
    let verified: string | undefined;
    for (let round = 1 - warmup; round <= rounds; round++) {
      clean();
      // Alternate who goes first, so neither always meets the other's dirty page cache.
      const order: Tool[] = round % 2 ? ['imgx', 'peer'] : ['peer', 'imgx'];
      for (const tool of order) {
        coldPageCache();
        const r = { round, tool, ...(await tools[tool]()) };
        const label = round < 1 ? 'warm-up (not counted)' : `round ${round}`;
        process.stderr.write(`bench: ${image.name} ${label} ${tool}: ${r.wallS.toFixed(2)} s, peak ${mib(r.peakTreeRssKiB).toFixed(0)} MiB\n`);
        if (round >= 1) runs.push(r);
      }
      if (round === 1 && !values['no-verify']) {
        // Same work on both sides: the trees must be identical (not timed).
        const d = diffTrees(join(peerBundle, 'rootfs'), imgxDest);
        const diffs = [...d.differences, ...d.mtimes];
        verified = diffs.length === 0 ? `identical (${d.counts.a} paths)` : `${diffs.length} differences`;
        process.stderr.write(`bench: ${image.name}: imgx vs umoci trees: ${verified}${diffs.length ? `\n  ${diffs.slice(0, 10).join('\n  ')}` : ''}\n`);
      }
      clean();
      if (lowOnSpace()) emptyTrash();
    }
    emptyTrash();

    const summary = (tool: Tool) => {
      const mine = runs.filter((r) => r.tool === tool);
      return {
        medianWallS: median(mine.map((r) => r.wallS)),
        minWallS: Math.min(...mine.map((r) => r.wallS)),
        peakTreeRssMiB: mib(Math.max(...mine.map((r) => r.peakTreeRssKiB))),
        peakMaxRssMiB: mib(Math.max(...mine.map((r) => r.maxRssKiB))),
      };
    };
    const imgx = summary('imgx');
    const peer = summary('peer');
    const peerSteps = runs.filter((r) => r.steps).map((r) => r.steps!);
    const ratio = imgx.medianWallS / peer.medianWallS;
    const rows = runs.map((r) => [
      r.round,
      r.tool === 'peer' ? 'skopeo+umoci' : 'imgx',
      r.wallS.toFixed(2),
      r.steps ? `${r.steps.skopeoS.toFixed(2)} + ${r.steps.umociS.toFixed(2)}` : '',
      mib(r.peakTreeRssKiB).toFixed(1),
    ]);
    process.stdout.write(
      `\nimgx extract vs skopeo copy + umoci unpack — ${image.name}: ${image.layers.length} layers, ${(image.compressedSize / MiB).toFixed(1)} MiB gzip / ${(image.uncompressedSize / MiB).toFixed(1)} MiB tar, loopback registry, cold cache, ${rounds} rounds after ${warmup} untimed\n\n`,
    );
    process.stdout.write(formatTable(['round', 'tool', 'wall s', 'skopeo + umoci s', 'peak RSS tree MiB'], rows) + '\n\n');
    process.stdout.write(
      formatTable(
        ['tool', 'median wall s', 'min wall s', 'peak RSS tree MiB', 'max RSS MiB'],
        [
          ['imgx', imgx.medianWallS.toFixed(2), imgx.minWallS.toFixed(2), imgx.peakTreeRssMiB.toFixed(1), imgx.peakMaxRssMiB.toFixed(1)],
          ['skopeo+umoci', peer.medianWallS.toFixed(2), peer.minWallS.toFixed(2), peer.peakTreeRssMiB.toFixed(1), peer.peakMaxRssMiB.toFixed(1)],
        ],
      ) + '\n\n',
    );
    process.stdout.write(`ratio imgx/peer (median wall time): ${ratio.toFixed(2)} (goal ≤ ${GOAL_RATIO}: ${ratio <= GOAL_RATIO ? 'met' : 'not met'})\n`);
    process.stdout.write(
      `peak RSS: imgx ${imgx.peakTreeRssMiB} MiB (goal ≤ 200 MB = ${GOAL_RSS_MIB} MiB: ${imgx.peakTreeRssMiB <= GOAL_RSS_MIB ? 'met' : 'not met'}), peer ${peer.peakTreeRssMiB} MiB (whole process tree, sampled every 25 ms, forks not yet exec'd left out)\n`,
    );
    if (verified) process.stdout.write(`trees (round 1): ${verified}\n`);

    results.push({
      image: {
        name: image.name,
        manifest: image.manifestDigest,
        layers: image.layers.length,
        compressedBytes: image.compressedSize,
        uncompressedBytes: image.uncompressedSize,
      },
      runs,
      verified,
      summary: {
        imgx,
        peer: {
          ...peer,
          medianSkopeoS: median(peerSteps.map((s) => s.skopeoS)),
          medianUmociS: median(peerSteps.map((s) => s.umociS)),
        },
        ratioMedianWall: ratio,
        goals: { ratio: GOAL_RATIO, ratioMet: ratio <= GOAL_RATIO, rssMiB: GOAL_RSS_MIB, rssMet: imgx.peakTreeRssMiB <= GOAL_RSS_MIB },
      },
    });
  }

  const out = {
    benchmark: 'extract',
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: {
      node: process.version,
      skopeo: toolVersion('skopeo', ['--version']),
      umoci: toolVersion('umoci', ['--version']),
      registry: toolVersion('/usr/bin/docker-registry', ['--version']),
    },
    rounds,
    warmup,
    images: results,
  };
  const outDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'extract.json'), JSON.stringify(out, null, 2) + '\n');
  process.stdout.write(`\nresults: ${join('bench', 'results', 'extract.json')}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
  await registry.stop();
}
