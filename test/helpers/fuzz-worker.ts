// The fuzz worker: a child process of the driver that runs one target on one input at a time and
// says how it ended, with the peak RSS of the input. A process of its own, so that the driver can
// kill an input that hangs (even in a synchronous loop or a system call), see a crash or an
// exhausted heap without losing the run, and measure its memory alone; and so that the code under
// test has a whole process, as it does in imgx (umask, signals).
import { readFileSync, writeFileSync } from 'node:fs';
import { isImgxError } from '../../src/errors.ts';
import { Invariant, runTarget, type Payload } from './fuzz-targets.ts';

export type WorkerResult =
  | { status: 'ok' }
  | { status: 'error'; code: string; message: string; cause?: { code?: string; syscall?: string } }
  | { status: 'crash'; invariant: boolean; name: string; message: string; stack: string; code?: string };

export type WorkerMessage =
  | { type: 'done'; id: number; result: WorkerResult; ms: number; rssBefore: number; rssPeak: number }
  | { type: 'warning'; name: string; message: string; code?: string };

function send(m: WorkerMessage): void {
  process.send!(m);
}

/** kB of /proc/self/status's `field`, or 0. */
function status(field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Starts a new peak RSS (VmHWM) for the next input; false when the kernel does not let it. */
function resetPeak(): boolean {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

function describe(e: unknown): WorkerResult {
  if (isImgxError(e)) {
    const cause = e.cause as { code?: unknown; syscall?: unknown } | undefined;
    const r: WorkerResult = { status: 'error', code: e.code, message: e.message.slice(0, 500) };
    if (cause && typeof cause === 'object' && (typeof cause.code === 'string' || typeof cause.syscall === 'string')) {
      r.cause = { ...(typeof cause.code === 'string' ? { code: cause.code } : {}), ...(typeof cause.syscall === 'string' ? { syscall: cause.syscall } : {}) };
    }
    return r;
  }
  const err = e as { name?: unknown; message?: unknown; stack?: unknown; code?: unknown } | null;
  const r: WorkerResult = {
    status: 'crash',
    invariant: e instanceof Invariant,
    name: typeof err?.name === 'string' ? err.name : typeof e,
    message: typeof err?.message === 'string' ? err.message.slice(0, 1000) : String(e).slice(0, 1000),
    stack: typeof err?.stack === 'string' ? err.stack : '',
  };
  if (typeof err?.code === 'string') r.code = err.code;
  return r;
}

// Warnings tell of leaks across inputs (listeners, file handles closed by the garbage collector).
process.on('warning', (w) => send({ type: 'warning', name: w.name, message: w.message, ...((w as { code?: string }).code ? { code: (w as { code?: string }).code } : {}) }));

// The driver went away (killed, crashed): so does the worker.
process.on('disconnect', () => process.exit(0));

process.on('message', async (m: { id: number; payload: Payload }) => {
  const peakKnown = resetPeak();
  const rssBefore = process.memoryUsage.rss();
  const t0 = performance.now();
  let result: WorkerResult;
  try {
    await runTarget(m.payload);
    result = { status: 'ok' };
  } catch (e) {
    result = describe(e);
  }
  const ms = performance.now() - t0;
  const rssPeak = Math.max(peakKnown ? status('VmHWM') : 0, process.memoryUsage.rss());
  send({ type: 'done', id: m.id, result, ms, rssBefore, rssPeak });
});
