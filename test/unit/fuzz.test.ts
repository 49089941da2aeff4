// Issue 16: exit 1 only for bugs, enforced by a fuzzer. Mutated inputs seeded from the suite's own
// tars and documents (fuzz-seeds.ts, fuzz-mutate.ts) go through the tar reader, the flatten stage,
// the directory writer (into a temp dir, the whole `imgx extract` too), the manifest, index,
// config, layout and registry parsers, and the OCI/docker archive readers. Only ImgxErrors may
// come out; no input may hang (10 s), grow the worker's RSS by more than 512 MiB, or make the
// writer touch anything outside DEST or leave DEST or a staging directory after a failure; and
// what succeeds must keep its promises (differential checks: chunkings, recycled input, helper
// threads vs node:zlib, export read back, DEST equal to the flattened tree; see fuzz-targets.ts).
//
// A fixed number of inputs per target from a fixed fast-check seed, so that a run is reproducible
// (IMGX_FUZZ_SEED picks another seed, IMGX_FUZZ_SCALE scales the counts); `npm run fuzz` runs the
// same targets for as long as asked. docs/FUZZING.md says how to replay a finding.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Fuzzer, describeFindings, describeStats, type TargetName } from '../helpers/fuzz-driver.ts';

const SEED = Number(process.env.IMGX_FUZZ_SEED ?? 16_2025);
const SCALE = Number(process.env.IMGX_FUZZ_SCALE ?? 1);

/**
 * Inputs per target: about 50 s on an idle 2-core VM altogether, under 2 minutes when it is busy
 * (per input: tar ~1 ms, flatten ~4.5 ms, the writer ~20 ms, documents ~3 ms, archives ~7 ms).
 */
const RUNS: Record<TargetName, number> = { tar: 8000, flatten: 3500, writer: 600, docs: 2000, archive: 1000 };

const fuzzer = new Fuzzer({
  timeoutMs: 10_000,
  rssLimit: 512 * 2 ** 20,
  shrinkMs: 20_000,
  log: (line) => process.stdout.write(`  ${line}\n`),
});
process.stdout.write(`fuzz: fast-check seed ${SEED} (IMGX_FUZZ_SEED), ${JSON.stringify(fuzzer.seedCounts)} seeds\n`);

for (const target of Object.keys(RUNS) as TargetName[]) {
  const runs = Math.max(1, Math.round(RUNS[target] * SCALE));
  test(`fuzz ${target}: ${runs} mutated inputs end in success or an ImgxError, nothing else`, async () => {
    const t0 = Date.now();
    await fuzzer.fuzz(target, SEED, runs);
    const s = fuzzer.stats.get(target)!;
    process.stdout.write(`  ${target}: ${s.runs} inputs in ${((Date.now() - t0) / 1000).toFixed(1)} s (ok ${s.ok}, coded errors ${s.runs - s.ok - s.findings})\n`);
    const found = [...fuzzer.findings.values()].filter((f) => f.target === target);
    if (found.length) assert.unreachable(`${found.length} finding(s); reproduce with the replay line:\n${describeFindings(found, fuzzer)}`);
    assert.is(s.runs, runs);
  });
}

test.after(async () => {
  process.stdout.write(`${describeStats(fuzzer.report())}\n`);
  await fuzzer.close();
});

test.run();
