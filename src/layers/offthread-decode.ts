// A layer's uncompressed stream, decoded on a helper thread (src/offthread/worker.js) into shared memory.
// The stream path (decompress.ts) allocates a buffer for every chunk it reads and every chunk it
// inflates: ~3 GB for a 700 MB image, and V8 answers that much external memory with a full
// collection every few tens of megabytes (93 of them in one extract, a fifth of the CPU, and the
// dead buffers pushed the peak RSS up). Here the worker reads the file into one reused buffer,
// inflates into a few shared slots; the main thread parses each slot in place and hands it back.
// Nothing is allocated per chunk on either side.
//
// The diff_id's hash of the output is as much work as the inflating (SHA-256 at ~200-400 MB/s on
// CPUs without SHA extensions), and the layer that ends last (an image's largest) would end the
// extract with one thread inflating and hashing it while the other sits idle. So that layer's
// hash can run on the other thread (`hashOnOtherThread`): the decoder tells it each filled slot
// over a channel of their own, and fills a slot again once both the reader and the hasher gave it
// back. Not every layer: the messages cost ~10% of the hash, and while several layers decode both
// threads are busy anyway (all layers split was no faster on bench-200; the largest alone was).
// Not relayed through the main thread: its reader takes ready chunks without returning to the
// event loop, so the hasher's answers would wait, and the decoder with them.
//
// The price is a contract: a chunk is valid only until the next one is asked for, so only a
// reader that copies what it keeps may consume this (the tar reader in pass 1, which parses
// headers in place and hands file contents to a synchronous sink).
import { MessageChannel } from 'node:worker_threads';
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
  | { op: 'decode-error'; job: number; kind: 'zlib' | 'io'; message: string; code?: string }
  | { op: 'slot-hash-digest'; job: number; hex: string };

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
  /**
   * Hash the output on the other helper thread, if there are two (for the layer expected to end
   * last; IMGX_SPLIT_DECODE=0 turns it off).
   */
  hashOnOtherThread?: boolean;
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

/** Whether a layer's output is hashed on the other helper thread (see the top of the file). */
function splitsHash(opts: OffThreadDecodeOptions): boolean {
  return opts.hashOnOtherThread === true && process.env.IMGX_SPLIT_DECODE !== '0' && helperThreadCount() > 1;
}

class DecodeJob implements RecycledChunks {
  readonly id: number;
  destroyed = false;
  private readonly thread: HelperThread;
  /** The thread that hashes the output, when not the decoder itself. */
  private readonly hasher: HelperThread | undefined;
  /** The decoder's decode-end came (every chunk came before it). */
  private decoded = false;
  /**
   * The output's digest, from the decoder's decode-end or the hasher. The two threads' messages
   * are not ordered with each other: the hasher's may come before the decoder's last chunks.
   */
  private hex: string | undefined;
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

  constructor(thread: HelperThread, hasher: HelperThread | undefined, id: number, memory: SharedArrayBuffer, opts: OffThreadDecodeOptions) {
    this.thread = thread;
    this.hasher = hasher;
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

  /** A message from the decoder or the hasher about this job. */
  receive(m: FromWorker): void {
    if (this.finished) return;
    switch (m.op) {
      case 'slot-hash-digest':
        this.hex = m.hex;
        break;
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
        this.decoded = true;
        // With a hasher, the digest comes from it (the decoder told it the end).
        if (!this.hasher) this.hex = m.hex;
        break;
      case 'decode-error':
        this.outcome = { error: m.kind === 'zlib' ? inflateFailure(m.code, m.message, this.opts.compression, this.opts.what) : new Error(m.message) };
        this.hasher?.post({ op: 'slot-hash-drop', job: this.id });
        break;
    }
    if (this.decoded && this.hex !== undefined) this.outcome = { hex: this.hex };
    if (this.outcome) this.settle();
    this.wake?.();
  }

  /** Ends the job from this side with `error` (unless it already ended). */
  fail(error: Error): void {
    if (this.finished) return;
    this.failure = error;
    if (!this.decoded) this.thread.post({ op: 'decode-cancel', job: this.id });
    this.hasher?.post({ op: 'slot-hash-drop', job: this.id });
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
      // The chunk given last is done with: its slot goes back to the decoder (to fill once hashed).
      if (this.held >= 0 && !this.decoded && !this.finished) this.thread.post({ op: 'decode-free', job: this.id, slot: this.held });
      this.held = -1;
      while (this.ready.length === 0 && !this.finished) await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
      if (this.failure) throw this.failure;
      const outcome = this.outcome;
      // A decoding error ends the stream at once, as a stream's error does.
      if (outcome && 'error' in outcome) {
        // Not while a hasher may still read it (its drop is behind the slots already sent).
        if (!this.hasher) recycle(this.shared);
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

/** Decode jobs each helper thread decodes or hashes. */
const running = new Map<HelperThread, Map<number, DecodeJob>>();
/** Compressed bytes of the jobs given to each thread and not over (counted from the moment it is picked). */
const assigned = new Map<HelperThread, number>();
let jobIds = 0;

/**
 * The thread for a job of `bytes` compressed bytes: the one with the fewest bytes to decode, a
 * later one on a tie (the first also hashes downloads). By bytes, not jobs: two large layers on
 * one thread would end the extract long after the other thread went idle.
 */
function pickThread(bytes: number): { thread: HelperThread; index: number } {
  let index = -1;
  let bestLoad = Infinity;
  for (let i = helperThreadCount() - 1; i >= 0; i--) {
    const t = runningHelperThread(i);
    const load = t ? (assigned.get(t) ?? 0) : 0;
    if (load < bestLoad) {
      index = i;
      bestLoad = load;
    }
  }
  const thread = helperThread(index);
  assigned.set(thread, bestLoad + bytes);
  return { thread, index };
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
      if (m.op.startsWith('decode-') || m.op.startsWith('slot-hash-')) mine.get((m as FromWorker).job)?.receive(m as FromWorker);
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
  const { thread, index } = pickThread(bytes);
  thread.begin(true);
  // A thread without the zlib handle cannot inflate: the caller reads the stream way.
  if (compression === 'gzip' && !(await thread.canInflate)) {
    unassign(thread, bytes);
    thread.end(true);
    return undefined;
  }
  const memory = spareMemory.pop() ?? new SharedArrayBuffer(SLOTS * SLOT_SIZE);
  const algorithm = hashAlgorithmOf(opts.diffId);
  const hasher = splitsHash(opts) ? helperThread((index + 1) % helperThreadCount()) : undefined;
  const job = new DecodeJob(thread, hasher, ++jobIds, memory, opts);
  // Each thread the job uses hears its messages and counts it as work until it ends (jobs in
  // flight keep the process alive; an idle thread does not). The decoder's began when it was picked.
  const involve = (t: HelperThread) => {
    const jobs = jobsOn(t);
    jobs.set(job.id, job);
    job.onCleanup(() => {
      jobs.delete(job.id);
      t.end(true);
    });
  };
  involve(thread);
  job.onCleanup(() => unassign(thread, bytes));
  let channel: MessageChannel | undefined;
  if (hasher) {
    hasher.begin(true);
    involve(hasher);
    channel = new MessageChannel();
    hasher.post({ op: 'slot-hash-open', job: job.id, algorithm, memory, slotSize: SLOT_SIZE, decoder: channel.port2 }, [channel.port2]);
  }
  let sent = writing ? writing.written : where.size;
  thread.post(
    {
      op: 'decode-start',
      job: job.id,
      compression,
      algorithm,
      hasher: channel?.port1,
      path: where.path,
      finalPath: where.finalPath,
      written: sent,
      done: !writing,
      size: where.size,
      memory,
      slots: SLOTS,
      slotSize: SLOT_SIZE,
    },
    channel ? [channel.port1] : [],
  );
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
