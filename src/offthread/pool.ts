// The helper threads that run worker.js: started when first needed, at most one per CPU and never
// more than two (the main thread needs a CPU too). A thread never keeps the process alive unless
// work that must finish is pending, and it is stopped once it has had no work for a moment: its
// isolate is ~10-15 MB, and extract's peak memory comes after the layers are read (when the tree is
// built), so an idle thread should be gone by then (image-tree.ts retires them at once). Clients
// (offthread-hash.ts, offthread-decode.ts) post their own messages and pick out the replies that
// are theirs.
import { availableParallelism } from 'node:os';
import { Worker, type Transferable } from 'node:worker_threads';

/** A thread with no work for this long is stopped (a new one starts when work comes). */
const IDLE_MS = 100;

export class HelperThread {
  private readonly worker: Worker;
  /** Work in progress, and the part of it that must keep the process alive. */
  private work = 0;
  private refs = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;
  private retired = false;
  private readonly listeners = new Set<(m: { op: string }) => void>();
  private readonly failureListeners = new Set<(e: Error) => void>();
  /** Whether the thread can inflate through node:zlib's handle (it says so when it starts). */
  readonly canInflate: Promise<boolean>;

  constructor() {
    // Its heap holds a few small objects per job: the memory that matters is shared.
    this.worker = new Worker(new URL('./worker.js', import.meta.url), {
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16, codeRangeSizeMb: 4 },
    });
    this.worker.unref();
    let answer!: (ok: boolean) => void;
    this.canInflate = new Promise<boolean>((r) => (answer = r));
    this.worker.on('message', (m: { op: string; inflate?: boolean }) => {
      if (m.op === 'ready') answer(m.inflate === true);
      else for (const fn of this.listeners) fn(m);
    });
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', () => this.fail(new Error('the helper thread exited')));
    this.onFailure(() => answer(false));
    // Started for work that may never come (a client that only looked): retire if none does.
    this.scheduleRetirement();
  }

  /** False once the thread failed or was retired: ask helperThread() for a new one. */
  get usable(): boolean {
    return this.failure === undefined && !this.retired;
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    clearTimeout(this.idleTimer);
    for (const fn of this.failureListeners) fn(e);
  }

  /** `transfer`: objects moved to the thread with the message (a MessagePort). */
  post(m: { op: string; [field: string]: unknown }, transfer: Transferable[] = []): void {
    if (!this.failure) this.worker.postMessage(m, transfer);
  }

  onMessage(fn: (m: { op: string }) => void): void {
    this.listeners.add(fn);
  }

  /** `fn` hears once if the thread dies (an error in it, its exit, or its retirement). */
  onFailure(fn: (e: Error) => void): void {
    if (this.failure) fn(this.failure);
    else this.failureListeners.add(fn);
  }

  /**
   * Work begins on the thread; it is not retired until the matching `end`. With `keepAlive` the
   * work also keeps the process alive (a digest or a decode someone waits for).
   */
  begin(keepAlive: boolean): void {
    this.work++;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (keepAlive && this.refs++ === 0) this.worker.ref();
  }

  end(keepAlive: boolean): void {
    if (keepAlive && --this.refs === 0) this.worker.unref();
    if (--this.work === 0) this.scheduleRetirement();
  }

  private scheduleRetirement(): void {
    if (this.failure) return;
    this.idleTimer = setTimeout(() => this.retireIfIdle(), IDLE_MS);
    this.idleTimer.unref();
  }

  /** Stops the thread now if it has no work (a new one starts when work comes). */
  retireIfIdle(): void {
    if (this.work > 0 || !this.usable) return;
    clearTimeout(this.idleTimer);
    this.retired = true;
    void this.worker.terminate();
  }

  /** Stops the thread now (a client that found it unresponsive). */
  terminate(): void {
    void this.worker.terminate();
  }
}

const threads: HelperThread[] = [];

/** How many helper threads there may be. */
export function helperThreadCount(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

/** Helper thread `i` (0 ≤ i < helperThreadCount()), started now if it is not running. */
export function helperThread(i: number): HelperThread {
  let t = threads[i];
  if (!t || !t.usable) threads[i] = t = new HelperThread();
  return t;
}

/** Helper thread `i` if it is running. */
export function runningHelperThread(i: number): HelperThread | undefined {
  const t = threads[i];
  return t?.usable ? t : undefined;
}

/**
 * Starts every helper thread now and keeps it for `ms` even without work: for a command that will
 * need them in a moment. A thread takes 100-200 ms to start on a 2-vCPU VM, and the first download
 * to hash waits for it (its next chunk is held up once the hash slots are full).
 */
export function warmHelperThreads(ms: number): void {
  for (let i = 0; i < helperThreadCount(); i++) {
    const t = helperThread(i);
    t.begin(false);
    setTimeout(() => t.end(false), ms).unref();
  }
}

/** Stops every helper thread that has no work now, not after the idle delay (a phase that needs none is next). */
export function retireIdleHelperThreads(): void {
  for (const t of threads) t?.retireIfIdle();
}
