// Streaming SHA-256/512 on a helper thread (src/offthread/: the thread that also decodes layers). Extract's main thread parses tar and writes files while
// it also hashed every byte twice (the blob's digest as it downloads, the layer's diff_id as it
// inflates): SHA-256 runs at ~200 MB/s on CPUs without SHA extensions, so that was a third of the
// main thread's time. Here the bytes are copied into a small ring of shared memory slots and a
// worker hashes them: no allocation per chunk, one short message per filled slot. When the
// worker's slots are all full the caller waits for one (backpressure by blocking, bounded by the
// hash rate). Streams of any number of callers share the first helper thread, in order per stream.
import { createHash } from 'node:crypto';
import { helperThread, type HelperThread } from '../offthread/pool.ts';

export interface StreamHash {
  update(chunk: Uint8Array): void;
  /** Hex digest of everything given to update(). */
  digest(): Promise<string>;
  /** Drops the stream (its digest is never asked for). */
  abort(): void;
}

// 2 MiB in all (512 KiB slots were no faster; memory counts on extract).
const SLOTS = 8;
const SLOT_SIZE = 256 * 1024;
const FREE = 0;
const FULL = 1;
const STALLED_MS = 60_000;

class HashWorker {
  private readonly thread: HelperThread;
  private readonly state: Int32Array;
  private readonly data: Uint8Array;
  private next = 0;
  private ids = 0;
  private readonly waiting = new Map<number, { resolve: (hex: string) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  constructor(thread: HelperThread) {
    this.thread = thread;
    const sab = new SharedArrayBuffer(SLOTS * 4 + SLOTS * SLOT_SIZE);
    this.state = new Int32Array(sab, 0, SLOTS);
    this.data = new Uint8Array(sab, SLOTS * 4);
    thread.post({ op: 'hash-slots', sab, slots: SLOTS, slotSize: SLOT_SIZE });
    thread.onMessage((m) => {
      if (m.op !== 'hash-digest') return;
      const { id, hex } = m as { op: string; id: number; hex: string };
      const w = this.waiting.get(id);
      if (!w) return;
      this.waiting.delete(id);
      thread.end(true);
      thread.end(false);
      w.resolve(hex);
    });
    thread.onFailure((e) => this.fail(e));
  }

  get broken(): boolean {
    return this.failure !== undefined || !this.thread.usable;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiting.values()) w.reject(this.failure);
    this.waiting.clear();
    // Nobody waits on the worker now: a slot it will never free must not block a caller.
    for (let i = 0; i < SLOTS; i++) Atomics.store(this.state, i, FREE);
  }

  /** A new stream; the thread stays up until its digest arrives or it is dropped. */
  open(algorithm: string): number {
    const id = ++this.ids;
    this.thread.begin(false);
    this.thread.post({ op: 'hash-new', id, algorithm });
    return id;
  }

  /**
   * A free slot's index (waits for the worker to free the next one in turn). While this thread
   * waits it cannot hear that the worker died, so a slot not freed for a minute means it did.
   */
  private acquire(): number {
    const slot = this.next;
    this.next = (this.next + 1) % SLOTS;
    if (Atomics.load(this.state, slot) !== FREE && Atomics.wait(this.state, slot, FULL, STALLED_MS) === 'timed-out') {
      this.fail(new Error('the hash worker stopped responding'));
      void this.thread.terminate();
      throw this.failure;
    }
    return slot;
  }

  /** Copies `chunk` into slots and hands them to the worker. */
  send(id: number, chunk: Uint8Array): void {
    for (let off = 0; off < chunk.length; ) {
      if (this.failure) throw this.failure;
      const slot = this.acquire();
      const len = Math.min(SLOT_SIZE, chunk.length - off);
      this.data.set(chunk.subarray(off, off + len), slot * SLOT_SIZE);
      Atomics.store(this.state, slot, FULL);
      this.thread.post({ op: 'hash-data', id, slot, len });
      off += len;
    }
  }

  end(id: number): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      // A pending digest must keep the process alive until it arrives.
      this.thread.begin(true);
      this.thread.post({ op: 'hash-end', id });
    });
  }

  drop(id: number): void {
    if (this.failure) return;
    this.thread.post({ op: 'hash-drop', id });
    this.thread.end(false);
  }
}

let shared: HashWorker | undefined;

/** Hashes go to the first helper thread (the one started first, and the last to get decode jobs). */
function worker(): HashWorker | undefined {
  if (process.env.IMGX_HASH_THREAD === '0') return undefined;
  if (!shared || shared.broken) {
    try {
      shared = new HashWorker(helperThread(0));
    } catch {
      return undefined;
    }
  }
  return shared;
}

/**
 * Chunks smaller than a slot are gathered before they go to the worker (network reads come in
 * 16–64 KiB pieces: one message per piece would cost more than the hash).
 */
class OffThreadHash implements StreamHash {
  private readonly w: HashWorker;
  private readonly id: number;
  private pending: Buffer | undefined;
  private pendingLen = 0;
  /** digest() or abort() was called: the stream is over (the other is then a no-op). */
  private over = false;

  constructor(w: HashWorker, algorithm: string) {
    this.w = w;
    this.id = w.open(algorithm);
  }

  update(chunk: Uint8Array): void {
    if (chunk.length >= SLOT_SIZE && this.pendingLen === 0) {
      this.w.send(this.id, chunk);
      return;
    }
    this.pending ??= Buffer.allocUnsafe(SLOT_SIZE);
    for (let off = 0; off < chunk.length; ) {
      const n = Math.min(SLOT_SIZE - this.pendingLen, chunk.length - off);
      this.pending.set(chunk.subarray(off, off + n), this.pendingLen);
      this.pendingLen += n;
      off += n;
      if (this.pendingLen === SLOT_SIZE) this.flush();
    }
  }

  private flush(): void {
    if (this.pendingLen === 0) return;
    this.w.send(this.id, this.pending!.subarray(0, this.pendingLen));
    this.pendingLen = 0;
  }

  digest(): Promise<string> {
    if (this.over) return Promise.reject(new Error('hash: digest after the stream ended'));
    this.over = true;
    try {
      this.flush();
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return this.w.end(this.id);
  }

  abort(): void {
    if (this.over) return;
    this.over = true;
    this.w.drop(this.id);
  }
}

class InThreadHash implements StreamHash {
  private readonly h;
  constructor(algorithm: string) {
    this.h = createHash(algorithm);
  }
  update(chunk: Uint8Array): void {
    this.h.update(chunk);
  }
  digest(): Promise<string> {
    return Promise.resolve(this.h.digest('hex'));
  }
  abort(): void {}
}

/**
 * Streams of at most this many bytes are hashed on the calling thread: ~1-4 ms of SHA-256, less
 * than the messages would cost, and no wait for a helper thread to start (100-200 ms on a 2-vCPU
 * VM: an extract's config blob, hashed on a new thread, held back every layer's download that long).
 */
const IN_THREAD_MAX = 1 << 20;

/**
 * A streaming hash of `algorithm` (a node:crypto name), on the worker when one can run. `size`:
 * the stream's length if known (-1 if not); a small one is hashed here.
 */
export function streamHash(algorithm: string, size = -1): StreamHash {
  const w = size >= 0 && size <= IN_THREAD_MAX ? undefined : worker();
  return w ? new OffThreadHash(w, algorithm) : new InThreadHash(algorithm);
}
