// Pull benchmark: imgx pull vs skopeo copy of the same ~170 MB gzip image from a loopback
// docker-registry into an empty destination, alternating, N rounds (default 3; --rounds N or
// IMGX_BENCH_ROUNDS). Prints a table, the imgx/skopeo ratio of median wall times and both peak
// RSS figures, and writes bench/results/pull.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { imgxCommand } from './lib/imgx-launch.ts';
import { roundsOption } from './lib/options.ts';
import { BENCH_ROOT, benchImage } from './lib/image.ts';
import { formatTable, machineInfo, measure, type Measurement, median, toolVersion } from './lib/measure.ts';
import { REPO_ROOT, skopeoCopy, startRegistry } from './lib/registry.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' } } });
const rounds = roundsOption(values.rounds, 3);

const image = await benchImage();
const MiB = 1024 * 1024;
process.stderr.write(
  `bench: image ${(image.compressedSize / MiB).toFixed(1)} MiB gzip / ${(image.uncompressedSize / MiB).toFixed(1)} MiB tar in ${image.layers.length} layers (${image.userland} userland)\n`,
);

const registry = await startRegistry();
const work = join(BENCH_ROOT, `run-${process.pid}`);
try {
  const ref = `${registry.host}/bench/debian:1`;
  await skopeoCopy(`oci:${image.layout}:${image.tag}`, `docker://${ref}`);
  mkdirSync(work, { recursive: true });
  // Neither tool may pick up credentials from this machine: empty Docker config and auth file.
  const emptyCfg = join(work, 'docker-config');
  mkdirSync(emptyCfg);
  writeFileSync(join(emptyCfg, 'config.json'), '{"auths":{}}');
  const authFile = join(emptyCfg, 'auth.json');
  writeFileSync(authFile, '{"auths":{}}');

  /** Every layer blob is in `blobDir` with its full size: the run really pulled the image. */
  const checkBlobs = (tool: string, blobDir: string) => {
    for (const l of image.layers) {
      const p = join(blobDir, l.digest.slice(7));
      let size = -1;
      try {
        size = statSync(p).size;
      } catch {
        // missing
      }
      if (size !== l.size) throw new Error(`${tool}: layer ${l.digest} is missing or truncated in ${blobDir}`);
    }
  };

  const runs: { round: number; tool: 'imgx' | 'skopeo'; m: Measurement }[] = [];
  const tools = {
    imgx: async () => {
      const cache = join(work, 'imgx-cache');
      rmSync(cache, { recursive: true, force: true });
      mkdirSync(cache);
      const c = imgxCommand(['pull', '--quiet', ref]);
      const m = await measure(c.cmd, c.args, {
        cwd: REPO_ROOT,
        env: { ...process.env, ...c.env, IMGX_CACHE: cache, DOCKER_CONFIG: emptyCfg, NO_COLOR: '1' },
      });
      if (m.code !== 0) throw new Error(`imgx pull failed (exit ${m.code}): ${m.stderr.trim()}`);
      checkBlobs('imgx', join(cache, 'blobs', 'sha256'));
      rmSync(cache, { recursive: true, force: true });
      return m;
    },
    skopeo: async () => {
      const dest = join(work, 'skopeo-oci');
      rmSync(dest, { recursive: true, force: true });
      mkdirSync(dest);
      const m = await measure('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${dest}:bench`], {
        env: { ...process.env, REGISTRY_AUTH_FILE: authFile },
      });
      if (m.code !== 0) throw new Error(`skopeo copy failed (exit ${m.code}): ${m.stderr.trim()}`);
      checkBlobs('skopeo', join(dest, 'blobs', 'sha256'));
      rmSync(dest, { recursive: true, force: true });
      return m;
    },
  };

  for (let round = 1; round <= rounds; round++) {
    // Alternate who goes first, so neither always meets the other's dirty page cache.
    const order: ('imgx' | 'skopeo')[] = round % 2 ? ['imgx', 'skopeo'] : ['skopeo', 'imgx'];
    for (const tool of order) {
      execFileSync('sync');
      const m = await tools[tool]();
      runs.push({ round, tool, m });
      process.stderr.write(`bench: round ${round} ${tool}: ${m.wallS.toFixed(2)} s, peak ${(m.treePeakRssKiB / 1024).toFixed(0)} MiB\n`);
    }
  }

  const mib = (kib: number) => Math.round(kib / 102.4) / 10;
  const rows = runs.map(({ round, tool, m }) => [round, tool, m.wallS.toFixed(2), mib(m.treePeakRssKiB).toFixed(1), mib(m.maxRssKiB).toFixed(1)]);
  const summary = (tool: 'imgx' | 'skopeo') => {
    const mine = runs.filter((r) => r.tool === tool).map((r) => r.m);
    return {
      medianWallS: median(mine.map((m) => m.wallS)),
      minWallS: Math.min(...mine.map((m) => m.wallS)),
      peakTreeRssMiB: mib(Math.max(...mine.map((m) => m.treePeakRssKiB))),
      peakMaxRssMiB: mib(Math.max(...mine.map((m) => m.maxRssKiB))),
      throughputMiBs: image.compressedSize / MiB / median(mine.map((m) => m.wallS)),
    };
  };
  const imgx = summary('imgx');
  const skopeoS = summary('skopeo');
  const ratio = imgx.medianWallS / skopeoS.medianWallS;

  process.stdout.write(`\nimgx pull vs skopeo copy — ${(image.compressedSize / MiB).toFixed(1)} MiB in ${image.layers.length} gzip layers, loopback registry, ${rounds} rounds\n\n`);
  process.stdout.write(formatTable(['round', 'tool', 'wall s', 'peak RSS tree MiB', 'max RSS MiB'], rows) + '\n\n');
  process.stdout.write(
    formatTable(
      ['tool', 'median wall s', 'MiB/s', 'peak RSS tree MiB', 'max RSS MiB'],
      [
        ['imgx', imgx.medianWallS.toFixed(2), imgx.throughputMiBs.toFixed(1), imgx.peakTreeRssMiB.toFixed(1), imgx.peakMaxRssMiB.toFixed(1)],
        ['skopeo', skopeoS.medianWallS.toFixed(2), skopeoS.throughputMiBs.toFixed(1), skopeoS.peakTreeRssMiB.toFixed(1), skopeoS.peakMaxRssMiB.toFixed(1)],
      ],
    ) + '\n\n',
  );
  process.stdout.write(`ratio imgx/skopeo (median wall time): ${ratio.toFixed(2)}\n`);
  process.stdout.write(`peak RSS: imgx ${imgx.peakTreeRssMiB} MiB, skopeo ${skopeoS.peakTreeRssMiB} MiB (whole process tree, sampled every 25 ms)\n`);

  const results = {
    benchmark: 'pull',
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: {
      node: process.version,
      skopeo: toolVersion('skopeo', ['--version']),
      registry: toolVersion('/usr/bin/docker-registry', ['--version']),
    },
    image: {
      userland: image.userland,
      layers: image.layers.length,
      compressedBytes: image.compressedSize,
      uncompressedBytes: image.uncompressedSize,
    },
    rounds,
    runs: runs.map(({ round, tool, m }) => ({
      round,
      tool,
      wallS: m.wallS,
      timeWallS: m.timeWallS,
      peakTreeRssKiB: m.treePeakRssKiB,
      maxRssKiB: m.maxRssKiB,
    })),
    summary: { imgx, skopeo: skopeoS, ratioMedianWall: ratio },
  };
  const outDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'pull.json'), JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(`results: ${join('bench', 'results', 'pull.json')}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
  await registry.stop();
}
