// Streaming SHA-256/512 on a worker thread. Extract's main thread parses tar and writes files while
// it also hashed every byte twice (the blob's digest as it downloads, the layer's diff_id as it
// inflates): SHA-256 runs at ~200 MB/s on CPUs without SHA extensions, so that was a third of the
// main thread's time. Here the bytes are copied into a small ring of shared memory slots and a
// worker hashes them: no allocation per chunk, one short message per filled slot. When the
// worker's slots are all full the caller waits for one (backpressure by blocking, bounded by the
// hash rate). Streams of any number of callers share the one worker, in order per stream.
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';

export interface StreamHash {
  update(chunk: Uint8Array): void;
  /** Hex digest of everything given to update(). */
  digest(): Promise<string>;
  /** Drops the stream (its digest is never asked for). */
  abort(): void;
}

const SLOTS = 8;
const SLOT_SIZE = 512 * 1024;
const FREE = 0;
const FULL = 1;
const STALLED_MS = 60_000;

// Plain JavaScript: the worker is started from this string, not from a file.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { sab, slots, slotSize } = workerData;
const state = new Int32Array(sab, 0, slots);
const data = new Uint8Array(sab, slots * 4);
const hashes = new Map();
parentPort.on('message', (m) => {
  switch (m.op) {
    case 'new': hashes.set(m.id, createHash(m.algorithm)); break;
    case 'data': {
      const h = hashes.get(m.id);
      if (h) h.update(data.subarray(m.slot * slotSize, m.slot * slotSize + m.len));
      Atomics.store(state, m.slot, ${FREE});
      Atomics.notify(state, m.slot);
      break;
    }
    case 'end': {
      const h = hashes.get(m.id);
      hashes.delete(m.id);
      parentPort.postMessage({ id: m.id, hex: h ? h.digest('hex') : '' });
      break;
    }
    case 'drop': hashes.delete(m.id); break;
  }
});
`;

class HashWorker {
  private readonly worker: Worker;
  private readonly state: Int32Array;
  private readonly data: Uint8Array;
  private next = 0;
  private ids = 0;
  private readonly waiting = new Map<number, { resolve: (hex: string) => void; reject: (e: Error) => void }>();
  private failure: Error | undefined;

  constructor() {
    const sab = new SharedArrayBuffer(SLOTS * 4 + SLOTS * SLOT_SIZE);
    this.state = new Int32Array(sab, 0, SLOTS);
    this.data = new Uint8Array(sab, SLOTS * 4);
    // The worker allocates almost nothing (a message object per slot): a small heap is plenty.
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { sab, slots: SLOTS, slotSize: SLOT_SIZE },
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16, codeRangeSizeMb: 4 },
    });
    this.worker.unref();
    this.worker.on('message', (m: { id: number; hex: string }) => {
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) this.worker.unref();
      w?.resolve(m.hex);
    });
    this.worker.on('error', (e) => this.fail(e));
    this.worker.on('exit', () => this.fail(new Error('the hash worker exited')));
  }

  get broken(): boolean {
    return this.failure !== undefined;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiting.values()) w.reject(this.failure);
    this.waiting.clear();
    // Nobody waits on the worker now: a slot it will never free must not block a caller.
    for (let i = 0; i < SLOTS; i++) Atomics.store(this.state, i, FREE);
  }

  open(algorithm: string): number {
    const id = ++this.ids;
    this.worker.postMessage({ op: 'new', id, algorithm });
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
      void this.worker.terminate();
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
      this.worker.postMessage({ op: 'data', id, slot, len });
      off += len;
    }
  }

  end(id: number): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      // A pending digest must keep the process alive until it arrives.
      this.worker.ref();
      this.worker.postMessage({ op: 'end', id });
    });
  }

  drop(id: number): void {
    if (!this.failure) this.worker.postMessage({ op: 'drop', id });
  }
}

let shared: HashWorker | undefined;

function worker(): HashWorker | undefined {
  if (process.env.IMGX_HASH_THREAD === '0') return undefined;
  if (!shared || shared.broken) {
    try {
      shared = new HashWorker();
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
    try {
      this.flush();
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return this.w.end(this.id);
  }

  abort(): void {
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

/** A streaming hash of `algorithm` (a node:crypto name), on the worker when one can run. */
export function streamHash(algorithm: string): StreamHash {
  const w = worker();
  return w ? new OffThreadHash(w, algorithm) : new InThreadHash(algorithm);
}
