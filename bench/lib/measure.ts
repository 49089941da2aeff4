// Runs one command and measures its whole process tree: wall time, and peak RSS two ways:
// GNU time's %M (largest single process, from wait4 rusage) and the peak of the summed RSS of
// every live process in the tree, sampled from /proc (catches helpers running side by side).
// A child that was forked and has not yet exec'd is left out of the sum: its pages are its
// parent's, shared copy-on-write, and counting them twice measures nothing (imgx forks `sh` for
// device nodes while its RSS is at its peak, and such a child showed 26-35 MiB for a moment).
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism, cpus, release, tmpdir, totalmem } from 'node:os';
import { randomBytes } from 'node:crypto';

export const GNU_TIME = '/usr/bin/time';

export interface Measurement {
  code: number | null;
  /** Wall time seen by this process, in seconds. */
  wallS: number;
  /** GNU time %e, seconds. */
  timeWallS: number;
  /** GNU time %M: max RSS of the largest single process in the tree, KiB. */
  maxRssKiB: number;
  /** Peak of the summed RSS of the tree (excluding the `time` wrapper), KiB, sampled every `sampleMs`;
   *  never below maxRssKiB, which a short-lived peak between samples could otherwise undercut. */
  treePeakRssKiB: number;
  stderr: string;
  stdout: string;
}

export interface MeasureOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  sampleMs?: number;
}

const PAGE_KIB = 4; // x86_64 and arm64 Debian kernels both use 4 KiB pages for statm

/** pid → ppid for every process; unreadable entries (raced exits) are skipped. */
function processTable(): Map<number, number> {
  const t = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // comm may hold spaces and parens; fields resume after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      t.set(pid, Number(rest[1]));
    } catch {
      // gone
    }
  }
  return t;
}

function rssKiB(pid: number): number {
  try {
    const statm = readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ');
    return Number(statm[1]) * PAGE_KIB;
  } catch {
    return 0;
  }
}

/** The executable and command line of `pid` ('' when it is gone). */
function image(pid: number): string {
  try {
    return `${readlinkSync(`/proc/${pid}/exe`)}\0${readFileSync(`/proc/${pid}/cmdline`, 'latin1')}`;
  } catch {
    return '';
  }
}

/** Whether `pid` is a fork of `parent` that has not exec'd: the same executable and command line. */
function unexecedFork(pid: number, parent: number): boolean {
  const own = image(pid);
  return own !== '' && own === image(parent);
}

/** Summed RSS of every descendant of `root` (not `root` itself), forks that have not exec'd left out. */
function treeRssKiB(root: number): number {
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of table) {
    let l = children.get(ppid);
    if (!l) children.set(ppid, (l = []));
    l.push(pid);
  }
  let sum = 0;
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const p = stack.pop()!;
    if (!unexecedFork(p, table.get(p)!)) sum += rssKiB(p);
    stack.push(...(children.get(p) ?? []));
  }
  return sum;
}

export function measure(cmd: string, args: string[], opts: MeasureOptions = {}): Promise<Measurement> {
  const out = join(tmpdir(), `imgx-bench-time-${randomBytes(6).toString('hex')}`);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(GNU_TIME, ['-f', '%e %M', '-o', out, cmd, ...args], {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let peak = 0;
    const sample = () => {
      if (child.pid !== undefined) peak = Math.max(peak, treeRssKiB(child.pid));
    };
    const timer = setInterval(sample, opts.sampleMs ?? 25);
    child.once('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearInterval(timer);
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
      let timeWallS = NaN;
      let maxRssKiB = NaN;
      try {
        // The last line: time prints "Command exited with non-zero status N" before it on failure.
        const lines = readFileSync(out, 'utf8').trim().split('\n');
        const [e, m] = lines[lines.length - 1]!.split(' ');
        timeWallS = Number(e);
        maxRssKiB = Number(m);
      } catch {
        // time itself failed; the code says so
      }
      rmSync(out, { force: true });
      resolve({ code, wallS, timeWallS, maxRssKiB, treePeakRssKiB: Math.max(peak, maxRssKiB || 0), stderr, stdout });
    });
  });
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Plain text table, columns padded; numeric cells (numbers or pre-formatted strings) right-aligned. */
export function formatTable(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r, ri) =>
      r
        .map((c, i) => {
          const right = ri > 0 && /^-?\d+(\.\d+)?$/.test(c);
          return right ? c.padStart(widths[i]!) : c.padEnd(widths[i]!);
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The first line a tool prints for its version, for the results file ('unknown' when it cannot say). */
export function toolVersion(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], ...opts }).trim().split('\n')[0]!;
  } catch {
    return 'unknown';
  }
}

/** The machine a result was measured on, for the JSON beside each bench. */
export function machineInfo(): { cpus: number; cpuModel: string; memoryGiB: number; kernel: string } {
  return { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: release() };
}
