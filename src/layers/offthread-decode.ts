// A layer's uncompressed stream, decoded on a helper thread (src/offthread/worker.js) into shared memory.
// The stream path (decompress.ts) allocates a buffer for every chunk it reads and every chunk it
// inflates: ~3 GB for a 700 MB image, and V8 answers that much external memory with a full
// collection every few tens of megabytes (93 of them in one extract, a fifth of the CPU, and the
// dead buffers pushed the peak RSS up). Here the worker reads the file into one reused buffer,
// inflates into a few shared slots and hashes what it produced; the main thread parses each slot
// in place and hands it back. Nothing is allocated per chunk on either side.
//
// The price is a contract: a chunk is valid only until the next one is asked for, so only a
// reader that copies what it keeps may consume this (the tar reader in pass 1, which parses
// headers in place and hands file contents to a synchronous sink).
import { ImgxError } from '../errors.ts';
import { hashAlgorithmOf } from '../image/digest.ts';
import type { BlobWriting } from '../image/growing-blob.ts';
import type { Compression } from '../image/media-types.ts';
import { helperThread, helperThreadCount, runningHelperThread, type HelperThread } from '../offthread/pool.ts';
import { inflateFailure, magicMismatch } from './decompress.ts';

/** The worker's messages about a decode job. */
type FromWorker =
  | { op: 'decode-head'; job: number; head: string }
  | { op: 'decode-chunk'; job: number; slot: number; len: number }
  | { op: 'decode-end'; job: number; hex: string }
  | { op: 'decode-error'; job: number; kind: 'zlib' | 'io'; message: string; code?: string };

// Per job (four at most run at once): 512 KiB slots were no faster, and cost ~10 MB of extract's peak.
const SLOTS = 4;
const SLOT_SIZE = 256 * 1024;
/** A followed download is reported to the worker in steps of this many bytes (and at its end). */
const GROW_STEP = 1 << 20;

/** Where a layer's compressed bytes are: a complete file, or a blob still being written. */
export type LayerFile = { path: string; size: number } | { writing: BlobWriting };

export interface OffThreadDecodeOptions {
  compression: Compression;
  /** The uncompressed stream must hash to this, else IMGX_DIFFID_MISMATCH at its end. */
  diffId: string;
  /** The mismatch error for an uncompressed stream that hashed to `actual`. */
  mismatch: (actual: string) => Error;
  /** Names the layer in messages. */
  what: string;
  signal?: AbortSignal;
}

/**
 * A layer's uncompressed chunks, in order, its diff_id checked at the end (the iterator throws on
 * a mismatch after the last chunk). Each chunk is valid only until the next is asked for.
 */
export interface RecycledChunks {
  [Symbol.asyncIterator](): AsyncIterator<Buffer>;
  /** Stops decoding (a consumer that stops early). */
  destroy(): void;
  readonly destroyed: boolean;
}

/** Whether a layer of this compression may be decoded off-thread (IMGX_DECODE_THREAD=0 turns it off). */
export function canDecodeOffThread(compression: Compression): compression is 'gzip' | 'none' {
  if (process.env.IMGX_DECODE_THREAD === '0') return false;
  return compression === 'gzip' || compression === 'none';
}

class DecodeJob implements RecycledChunks {
  readonly id: number;
  destroyed = false;
  private readonly thread: HelperThread;
  private readonly shared: SharedArrayBuffer;
  private readonly memory: Buffer;
  private readonly opts: OffThreadDecodeOptions;
  private readonly ready: { slot: number; len: number }[] = [];
  private outcome: { hex: string } | { error: Error } | undefined;
  /** Ended here: the download failed, the signal fired, or the consumer let go. */
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private held = -1;
  private readonly cleanups: (() => void)[] = [];

  constructor(thread: HelperThread, id: number, memory: SharedArrayBuffer, opts: OffThreadDecodeOptions) {
    this.thread = thread;
    this.id = id;
    this.shared = memory;
    this.memory = Buffer.from(memory);
    this.opts = opts;
  }

  get finished(): boolean {
    return this.outcome !== undefined || this.failure !== undefined;
  }

  onCleanup(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** A message from the worker about this job. */
  receive(m: FromWorker): void {
    if (this.finished) return;
    switch (m.op) {
      case 'decode-head': {
        // The first bytes must be what the media type says; nothing of the job came before them.
        const bad = magicMismatch(Buffer.from(m.head, 'hex'), this.opts.compression, this.opts.what);
        if (bad) this.fail(bad);
        return;
      }
      case 'decode-chunk':
        this.ready.push({ slot: m.slot, len: m.len });
        break;
      case 'decode-end':
        this.outcome = { hex: m.hex };
        break;
      case 'decode-error':
        this.outcome = { error: m.kind === 'zlib' ? inflateFailure(m.code, m.message, this.opts.compression, this.opts.what) : new Error(m.message) };
        break;
    }
    if (this.outcome) this.settle();
    this.wake?.();
  }

  /** Ends the job from this side with `error` (unless it already ended). */
  fail(error: Error): void {
    if (this.finished) return;
    this.failure = error;
    this.thread.post({ op: 'decode-cancel', job: this.id });
    this.settle();
    this.wake?.();
  }

  private settle(): void {
    for (const fn of this.cleanups.splice(0)) fn();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.fail(new Error('the layer stream was closed'));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    try {
      yield* this.chunks();
    } finally {
      // A consumer that stopped early (break, return, throw) stops the decoding too.
      this.destroy();
    }
  }

  private async *chunks(): AsyncGenerator<Buffer> {
    for (;;) {
      // The chunk given last is done with: its slot goes back to the worker.
      if (this.held >= 0 && !this.finished) this.thread.post({ op: 'decode-free', job: this.id, slot: this.held });
      this.held = -1;
      while (this.ready.length === 0 && !this.finished) await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
      if (this.failure) throw this.failure;
      const outcome = this.outcome;
      // A decoding error ends the stream at once, as a stream's error does.
      if (outcome && 'error' in outcome) {
        recycle(this.shared);
        throw outcome.error;
      }
      const next = this.ready.shift();
      if (next) {
        this.held = next.slot;
        yield this.memory.subarray(next.slot * SLOT_SIZE, next.slot * SLOT_SIZE + next.len);
        continue;
      }
      // The worker is done with the memory, and so is the reader.
      recycle(this.shared);
      const actual = `${this.opts.diffId.slice(0, this.opts.diffId.indexOf(':'))}:${(outcome as { hex: string }).hex}`;
      if (actual !== this.opts.diffId) throw this.opts.mismatch(actual);
      return;
    }
  }
}

const SPARE_MEMORY = 4;

/** Slot memory of jobs that ended, for the next ones (a job cancelled midway keeps its own: the worker may still be writing to it). */
const spareMemory: SharedArrayBuffer[] = [];

function recycle(memory: SharedArrayBuffer): void {
  // Kept only while other jobs run (the next may start any moment); the last one lets all go.
  if (assigned.size > 0 && spareMemory.length < SPARE_MEMORY) spareMemory.push(memory);
  else spareMemory.length = 0;
}

/** Decode jobs running on each helper thread. */
const running = new Map<HelperThread, Map<number, DecodeJob>>();
/** Compressed bytes of the jobs given to each thread and not over (counted from the moment it is picked). */
const assigned = new Map<HelperThread, number>();
let jobIds = 0;

/**
 * The thread for a job of `bytes` compressed bytes: the one with the fewest bytes to decode, a
 * later one on a tie (the first also hashes downloads). By bytes, not jobs: two large layers on
 * one thread would end the extract long after the other thread went idle.
 */
function pickThread(bytes: number): HelperThread {
  let best: HelperThread | undefined;
  let bestLoad = Infinity;
  for (let i = helperThreadCount() - 1; i >= 0; i--) {
    const t = runningHelperThread(i);
    const load = t ? (assigned.get(t) ?? 0) : 0;
    if (load < bestLoad) {
      best = t ?? helperThread(i);
      bestLoad = load;
    }
  }
  assigned.set(best!, bestLoad + bytes);
  return best!;
}

function unassign(thread: HelperThread, bytes: number): void {
  const n = (assigned.get(thread) ?? bytes) - bytes;
  if (n > 0) assigned.set(thread, n);
  else assigned.delete(thread);
}

function jobsOn(thread: HelperThread): Map<number, DecodeJob> {
  let jobs = running.get(thread);
  if (!jobs) {
    const mine = new Map<number, DecodeJob>();
    jobs = mine;
    running.set(thread, mine);
    thread.onMessage((m) => {
      if (m.op.startsWith('decode-')) mine.get((m as FromWorker).job)?.receive(m as FromWorker);
    });
    thread.onFailure((e) => {
      running.delete(thread);
      for (const job of [...mine.values()]) job.fail(e);
    });
  }
  return jobs;
}

/**
 * Decodes a layer file (or a download in progress) off-thread: see RecycledChunks. Undefined when
 * this layer cannot be decoded that way (read its stream instead). A followed download that fails
 * ends the stream with the download's error.
 */
export async function decodeOffThread(file: LayerFile, opts: OffThreadDecodeOptions): Promise<RecycledChunks | undefined> {
  const compression = opts.compression;
  if (!canDecodeOffThread(compression)) return undefined;
  const writing = 'writing' in file ? file.writing : undefined;
  if (writing) await writing.ready;
  // A complete file is a writing that is over.
  const where = 'writing' in file ? file.writing : { path: file.path, finalPath: file.path, size: file.size };
  const bytes = Math.max(1, where.size);
  // The job's work begins on the thread as it is picked: an idle thread retires.
  const thread = pickThread(bytes);
  thread.begin(true);
  // A thread without the zlib handle cannot inflate: the caller reads the stream way.
  if (compression === 'gzip' && !(await thread.canInflate)) {
    unassign(thread, bytes);
    thread.end(true);
    return undefined;
  }
  const memory = spareMemory.pop() ?? new SharedArrayBuffer(SLOTS * SLOT_SIZE);
  const job = new DecodeJob(thread, ++jobIds, memory, opts);
  const jobs = jobsOn(thread);
  jobs.set(job.id, job);
  // Jobs in flight keep the process alive; an idle thread does not.
  job.onCleanup(() => {
    jobs.delete(job.id);
    unassign(thread, bytes);
    thread.end(true);
  });
  let sent = writing ? writing.written : where.size;
  thread.post({
    op: 'decode-start',
    job: job.id,
    compression,
    algorithm: hashAlgorithmOf(opts.diffId),
    path: where.path,
    finalPath: where.finalPath,
    written: sent,
    done: !writing,
    size: where.size,
    memory,
    slots: SLOTS,
    slotSize: SLOT_SIZE,
  });
  if (writing) {
    const unsubscribe = writing.onChange(() => {
      if (writing.written - sent < GROW_STEP) return;
      sent = writing.written;
      thread.post({ op: 'decode-grow', job: job.id, written: sent, done: false });
    });
    job.onCleanup(unsubscribe);
    writing.finished.then(
      () => {
        if (!job.finished) thread.post({ op: 'decode-grow', job: job.id, written: writing.written, done: true });
      },
      (e: unknown) => job.fail(e instanceof Error ? e : new Error(String(e))),
    );
  }
  const signal = opts.signal;
  if (signal) {
    const abort = () => job.fail(new ImgxError('IMGX_INTERRUPTED', 'interrupted', { cause: signal.reason }));
    if (signal.aborted) abort();
    else {
      signal.addEventListener('abort', abort, { once: true });
      job.onCleanup(() => signal.removeEventListener('abort', abort));
    }
  }
  return job;
}
