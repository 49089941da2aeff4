// Runs every *.test.ts under the given folders (default: test/), each in its own Node process,
// and ends with the plain line CI reads: `N passed, N failed, N skipped`.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { availableParallelism } from 'node:os';

const roots = process.argv.slice(2);
const filter = process.env.IMGX_TEST_FILTER;

function find(p: string): string[] {
  if (statSync(p).isFile()) return p.endsWith('.test.ts') ? [p] : [];
  return readdirSync(p)
    .sort()
    .flatMap((n) => (n === 'fixtures' || n === 'helpers' ? [] : find(join(p, n))));
}

const files = (roots.length ? roots : ['test']).flatMap(find).filter((f) => !filter || f.includes(filter));
// Unit tests are cheap; e2e tests start registries and move hundreds of MB, so run two at a time.
const parallel = Number(process.env.IMGX_TEST_JOBS ?? Math.min(2, availableParallelism()));

interface Result { file: string; passed: number; failed: number; skipped: number; output: string; code: number | null; ms: number }

function runOne(file: string): Promise<Result> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => {
      const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? NaN);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(out)?.[1] ?? 0);
      let r: Result;
      if (Number.isNaN(total) || Number.isNaN(passed)) {
        // Crashed before uvu's summary: count the whole file as one failure.
        r = { file, passed: 0, failed: 1, skipped: 0, output: out, code, ms: Date.now() - t0 };
      } else {
        let failed = total - passed - skipped;
        if (code !== 0 && failed === 0) failed = 1;
        r = { file, passed, failed, skipped, output: out, code, ms: Date.now() - t0 };
      }
      resolve(r);
    });
  });
}

const results: Result[] = [];
let next = 0;
async function worker() {
  while (next < files.length) {
    const f = files[next++]!;
    const r = await runOne(f);
    results.push(r);
    const status = r.failed ? 'FAIL' : 'ok  ';
    process.stdout.write(`${status} ${relative('.', f)}  (${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped, ${(r.ms / 1000).toFixed(1)} s)\n`);
    if (r.failed || process.env.IMGX_TEST_VERBOSE || r.skipped) process.stdout.write(r.output.replace(/^/gm, '    | ') + '\n');
  }
}
await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
const sum = (k: 'passed' | 'failed' | 'skipped') => results.reduce((a, r) => a + r[k], 0);
const failed = sum('failed');
process.stdout.write(`${sum('passed')} passed, ${failed} failed, ${sum('skipped')} skipped\n`);
process.exitCode = failed ? 1 : 0;
