// Streaming SHA-256/512 on a helper thread (src/offthread/: the thread that also decodes layers). Extract's main thread parses tar and writes files while
// it also hashed every byte twice (the blob's digest as it downloads, the layer's diff_id as it
// inflates): SHA-256 runs at ~200 MB/s on CPUs without SHA extensions, so that was a third of the
// main thread's time. Here the bytes are copied into a small ring of shared memory slots and a
// worker hashes them: no allocation per chunk, one short message per filled slot. When the
// worker's slots are all full, update() returns a promise that settles once the chunk is in
// (Atomics.waitAsync on the slot): the caller waits without blocking the thread, which meanwhile
// writes the layers that decode (blocking cost extract ~0.2 s of its main thread, and stalled the
// decoders whose chunks it did not take back). Streams of any number of callers share the first
// helper thread, in order per stream.
import { createHash } from 'node:crypto';
import { helperThread, type HelperThread } from '../offthread/pool.ts';

export interface StreamHash {
  /**
   * Takes `chunk` (hashed in order with the others). A promise: the helper is behind, and the
   * chunk is not all in until it settles (no update or digest before then; `chunk` must stay
   * unchanged until then).
   */
  update(chunk: Uint8Array): Promise<void> | undefined;
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
    // Nobody waits on the worker now: a slot it will never free must not hold up a caller.
    for (let i = 0; i < SLOTS; i++) {
      Atomics.store(this.state, i, FREE);
      Atomics.notify(this.state, i);
    }
  }

  /** A new stream; the thread stays up until its digest arrives or it is dropped. */
  open(algorithm: string): number {
    const id = ++this.ids;
    this.thread.begin(false);
    this.thread.post({ op: 'hash-new', id, algorithm });
    return id;
  }

  /**
   * Settles once `slot` is free. A slot not freed for a minute means the worker died unheard (a
   * failure settles it at once).
   */
  private freed(slot: number): Promise<void> {
    const w = Atomics.waitAsync(this.state, slot, FULL, STALLED_MS);
    // A wait does not keep the process alive by itself: the thread does, meanwhile.
    if (w.async) this.thread.begin(true);
    const settled = (r: string) => {
      if (w.async) this.thread.end(true);
      if (r === 'timed-out' && !this.failure) {
        this.fail(new Error('the hash worker stopped responding'));
        void this.thread.terminate();
      }
      if (this.failure) throw this.failure;
    };
    if (!w.async) return Promise.resolve().then(() => settled(w.value));
    return w.value.then(settled);
  }

  /**
   * Copies `chunk` from `off` into slots and hands them to the worker; when the next slot is not
   * free yet, the rest goes once it is (see StreamHash.update).
   */
  send(id: number, chunk: Uint8Array, off = 0): Promise<void> | undefined {
    while (off < chunk.length) {
      if (this.failure) throw this.failure;
      const slot = this.next;
      if (Atomics.load(this.state, slot) !== FREE) return this.freed(slot).then(() => this.send(id, chunk, off));
      this.next = (slot + 1) % SLOTS;
      const len = Math.min(SLOT_SIZE, chunk.length - off);
      this.data.set(chunk.subarray(off, off + len), slot * SLOT_SIZE);
      Atomics.store(this.state, slot, FULL);
      this.thread.post({ op: 'hash-data', id, slot, len });
      off += len;
    }
    return undefined;
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
  /** An update's promise has not settled yet. */
  private behind = false;

  constructor(w: HashWorker, algorithm: string) {
    this.w = w;
    this.id = w.open(algorithm);
  }

  update(chunk: Uint8Array): Promise<void> | undefined {
    if (this.behind) throw new Error('hash: update before the previous chunk was taken');
    const taking = this.take(chunk, 0);
    if (!taking) return undefined;
    this.behind = true;
    return taking.finally(() => (this.behind = false));
  }

  private take(chunk: Uint8Array, from: number): Promise<void> | undefined {
    if (chunk.length - from >= SLOT_SIZE && this.pendingLen === 0) return this.w.send(this.id, chunk, from);
    this.pending ??= Buffer.allocUnsafe(SLOT_SIZE);
    for (let off = from; off < chunk.length; ) {
      const n = Math.min(SLOT_SIZE - this.pendingLen, chunk.length - off);
      this.pending.set(chunk.subarray(off, off + n), this.pendingLen);
      this.pendingLen += n;
      off += n;
      if (this.pendingLen === SLOT_SIZE) {
        // The pending buffer is free again only once it was sent.
        const sent = this.flush();
        if (sent) return sent.then(() => this.take(chunk, off));
      }
    }
    return undefined;
  }

  private flush(): Promise<void> | undefined {
    if (this.pendingLen === 0) return undefined;
    const len = this.pendingLen;
    this.pendingLen = 0;
    return this.w.send(this.id, this.pending!.subarray(0, len));
  }

  digest(): Promise<string> {
    if (this.over) return Promise.reject(new Error('hash: digest after the stream ended'));
    if (this.behind) return Promise.reject(new Error('hash: digest before the last chunk was taken'));
    this.over = true;
    try {
      const sent = this.flush();
      return sent ? sent.then(() => this.w.end(this.id)) : this.w.end(this.id);
    } catch (e) {
      return Promise.reject(e as Error);
    }
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
  update(chunk: Uint8Array): undefined {
    this.h.update(chunk);
    return undefined;
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
