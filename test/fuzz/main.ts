// `npm run fuzz`: the fuzz test of issue 16 for as long as asked. See docs/FUZZING.md.
//
//   npm run fuzz -- --minutes 30                     every target in turn (20 s slices), a fresh seed per slice
//   npm run fuzz -- --minutes 5 --target tar,writer  some targets
//   npm run fuzz -- --target tar --seed S --path P   replay what fast-check shrank
//   npm run fuzz -- --replay finding.json            replay a dumped finding (any of them)
//
// Exits 1 when it found something, 0 otherwise; the summary says how many inputs each target ran,
// what they ended in, the findings, and the peak RSS.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Fuzzer, TARGETS, describeFindings, describeStats, hexdump, type Desc, type TargetName } from '../helpers/fuzz-driver.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' },
    seconds: { type: 'string' },
    seed: { type: 'string' },
    target: { type: 'string', default: TARGETS.join(',') },
    runs: { type: 'string', default: '100000' },
    'slice-seconds': { type: 'string', default: '20' },
    path: { type: 'string' },
    replay: { type: 'string' },
    'timeout-ms': { type: 'string', default: '10000' },
    'rss-mb': { type: 'string', default: '512' },
    'shrink-seconds': { type: 'string', default: '60' },
    dump: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('\n').slice(0, 10).join('\n') + '\n');
  process.exit(0);
}

const targets = values.target!.split(',').map((t) => t.trim()) as TargetName[];
for (const t of targets) if (!TARGETS.includes(t)) throw new Error(`unknown target ${t}: one of ${TARGETS.join(', ')}`);
const seconds = values.minutes !== undefined ? Number(values.minutes) * 60 : values.seconds !== undefined ? Number(values.seconds) : 60;
const baseSeed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
// Piped into `head`, the rest of the output goes nowhere, and the run goes on to clean up.
process.stdout.on('error', () => {});
const log = (line: string) => process.stdout.write(`${line}\n`);

const fuzzer = new Fuzzer({
  timeoutMs: Number(values['timeout-ms']),
  rssLimit: Number(values['rss-mb']) * 2 ** 20,
  shrinkMs: Number(values['shrink-seconds']) * 1000,
  log,
  ...(values.dump ? { dumpDir: values.dump } : {}),
});

/** The summary, and 1 when something was found. */
function summary(): number {
  const report = fuzzer.report();
  log('\n' + describeStats(report));
  if (!report.findings.length) return 0;
  log('\nFindings:\n' + describeFindings(report.findings, fuzzer));
  return 1;
}

// Ctrl-C (or a CI's TERM) ends a long run with its summary, the worker and the temp dir gone.
let stopping = false;
const stop = (signal: NodeJS.Signals) => {
  if (stopping) process.exit(130);
  stopping = true;
  log(`\n${signal}: stopped`);
  const found = summary();
  void fuzzer.close().finally(() => process.exit(found || 130));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

let code = 0;
try {
  if (values.replay) {
    const j = JSON.parse(readFileSync(values.replay, 'utf8')) as { replay?: { target: TargetName; desc: Desc }; target?: TargetName; desc?: Desc };
    const r = j.replay ?? (j as { target: TargetName; desc: Desc });
    const { outcome, payload } = await fuzzer.execute(r.target, r.desc);
    log(`${r.target}: ${outcome.status}${outcome.kind ? ` (${outcome.kind})` : ''}: ${outcome.summary}`);
    if (outcome.detail) log(outcome.detail);
    const bytes = payload.target === 'tar' || payload.target === 'archive' ? [payload.bytes] : payload.target === 'docs' ? payload.docs : payload.layers;
    for (const [i, b] of bytes.entries()) log(`input ${i} (${b.length} bytes):\n${hexdump(b, 4096)}`);
    code = outcome.status === 'finding' ? 1 : 0;
  } else if (values.path !== undefined) {
    if (targets.length !== 1 || values.seed === undefined) throw new Error('--path needs --seed and one --target');
    await fuzzer.fuzz(targets[0]!, baseSeed, 1 << 30, { path: values.path });
  } else {
    const slice = Number(values['slice-seconds']) * 1000;
    log(`imgx fuzz: ${targets.join(', ')} for ${seconds} s, in turn, ${slice / 1000} s (or ${values.runs} inputs) each, first fast-check seed ${baseSeed}`);
    const deadline = Date.now() + seconds * 1000;
    for (let batch = 0; Date.now() < deadline; batch++) {
      const target = targets[batch % targets.length]!;
      const seed = (baseSeed + batch) % 2 ** 31;
      const t0 = Date.now();
      await fuzzer.fuzz(target, seed, Number(values.runs), { deadline: Math.min(deadline, t0 + slice) });
      const s = fuzzer.stats.get(target)!;
      const mem = process.memoryUsage();
      log(`batch ${batch}: ${target} seed ${seed} (${((Date.now() - t0) / 1000).toFixed(1)} s; ${s.runs} ${target} inputs so far, ${s.findings} findings; RSS ${Math.round(mem.rss / 2 ** 20)} MiB, driver heap ${Math.round(mem.heapUsed / 2 ** 20)} MiB)`);
    }
  }
  code = Math.max(code, summary());
} finally {
  await fuzzer.close();
}
// A worker stuck in a system call would keep the process alive.
process.exit(code);
