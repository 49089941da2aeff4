// @ts-check
// The helper thread (started by pool.ts). It serves two kinds of work, both over shared memory so
// that nothing is allocated per chunk on either side:
// - hashes: the main thread copies a download's bytes into shared slots and the worker hashes them
//   (offthread-hash.ts);
// - layer decoding: the worker reads a layer's compressed file (following it while a download still
//   writes it), inflates it straight into the job's shared slots and tells the main thread which
//   slot holds how many bytes (offthread-decode.ts). The result's hash (the diff_id) is taken
//   either here too or, with two threads, on the other one (slot hashes): the decoder tells it
//   each filled slot over a channel of their own, and a slot is filled again once both the main
//   thread and the hasher gave it back. A large last layer then keeps both threads busy.
// Plain JavaScript importing only Node and its sibling: a TypeScript worker would load the type
// stripper into its own isolate (~15 MB more per thread).
//
// The inflater is node:zlib's own: the handle of a raw-deflate stream, driven with writeSync (the
// same native code that the stream drives on the thread pool), with the gzip framing read in
// gzip-inflater.js. The public stream API allocates a new output buffer per chunk, which is what
// this avoids. The handle is not a documented interface: the worker checks for it at start and
// says whether it has it; the main thread falls back to the stream path when it does not. Decode
// jobs take turns, one slot each per turn, so several layers progress together and hash requests
// are served in between.
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { gzipInflater } from './gzip-inflater.js';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);

// ---- hashes ---------------------------------------------------------------------------------

const FREE = 0;
/** @type {{ state: Int32Array; data: Uint8Array; slotSize: number } | undefined} */
let hashSlots;
/** @type {Map<number, import('node:crypto').Hash>} */
const hashes = new Map();

/** @param {any} m */
function onHash(m) {
  switch (m.op) {
    case 'hash-slots':
      hashSlots = { state: new Int32Array(m.sab, 0, m.slots), data: new Uint8Array(m.sab, m.slots * 4), slotSize: m.slotSize };
      break;
    case 'hash-new':
      hashes.set(m.id, createHash(m.algorithm));
      break;
    case 'hash-data': {
      const s = /** @type {NonNullable<typeof hashSlots>} */ (hashSlots);
      hashes.get(m.id)?.update(s.data.subarray(m.slot * s.slotSize, m.slot * s.slotSize + m.len));
      Atomics.store(s.state, m.slot, FREE);
      Atomics.notify(s.state, m.slot);
      break;
    }
    case 'hash-end': {
      const h = hashes.get(m.id);
      hashes.delete(m.id);
      port.postMessage({ op: 'hash-digest', id: m.id, hex: h ? h.digest('hex') : '' });
      break;
    }
    case 'hash-drop':
      hashes.delete(m.id);
      break;
  }
}

// ---- slot hashes: a decode job's output, hashed on the thread that does not decode it ---------

/** The decoder's channel of each job hashed here. */
/** @type {Map<number, import('node:worker_threads').MessagePort>} */
const slotHashes = new Map();

/** @param {any} m */
function onSlotHash(m) {
  switch (m.op) {
    case 'slot-hash-open': {
      /** @type {import('node:worker_threads').MessagePort} */
      const decoder = m.decoder;
      const hash = createHash(m.algorithm);
      const memory = Buffer.from(m.memory);
      const slotSize = m.slotSize;
      slotHashes.set(m.job, decoder);
      decoder.on('message', (/** @type {{ op: 'data'; slot: number; len: number } | { op: 'end' }} */ d) => {
        if (slotHashes.get(m.job) !== decoder) return;
        if (d.op === 'data') {
          hash.update(memory.subarray(d.slot * slotSize, d.slot * slotSize + d.len));
          decoder.postMessage({ op: 'hashed', slot: d.slot });
        } else {
          // Every slot came before the end: the digest is the output's.
          slotHashes.delete(m.job);
          decoder.close();
          port.postMessage({ op: 'slot-hash-digest', job: m.job, hex: hash.digest('hex') });
        }
      });
      break;
    }
    case 'slot-hash-drop':
      slotHashes.get(m.job)?.close();
      slotHashes.delete(m.job);
      break;
  }
}

// ---- the inflater ---------------------------------------------------------------------------

/** Whether the raw-deflate handle works here: two small gzip members must come out right. */
function inflaterWorks() {
  try {
    const z = gzipInflater();
    if (!z) return false;
    const members = Buffer.concat([gzipSync(Buffer.from('o')), gzipSync(Buffer.from('k'))]);
    const out = Buffer.alloc(16);
    const r = z.write(true, members, 0, members.length, out, 0, out.length);
    z.close();
    return !r.error && r.ended && r.availIn === 0 && out.subarray(0, out.length - r.availOut).toString() === 'ok';
  } catch {
    return false;
  }
}

// ---- decode jobs ----------------------------------------------------------------------------

/** Compressed bytes read at a time (and, while a download is followed, waited for). */
const READ_SIZE = 512 * 1024;
const EMPTY = Buffer.alloc(0);

/** A failure the main thread turns into its own error (it knows the layer's name and the wording). */
class JobError extends Error {
  /**
   * @param {'zlib' | 'io'} kind
   * @param {string} message
   * @param {{ code?: string }} [detail]
   */
  constructor(kind, message, detail = {}) {
    super(message);
    this.kind = kind;
    this.detail = detail;
  }
}

/**
 * @typedef {{
 *   id: number; compression: 'gzip' | 'none'; path: string; finalPath: string;
 *   written: number; done: boolean; size: number;
 *   memory: Buffer; slotSize: number; free: number[];
 *   hasher: import('node:worker_threads').MessagePort | undefined; holds: Uint8Array;
 *   fd: number | undefined; filePos: number; input: Buffer; inStart: number; inEnd: number;
 *   inputEnded: boolean; outputEnded: boolean; inflater: import('./gzip-inflater.js').Inflater | undefined;
 *   hash: import('node:crypto').Hash | undefined;
 * }} Job
 */

/** @type {Map<number, Job>} */
const jobs = new Map();
let turnQueued = false;

/** @param {Job} job */
function openInput(job) {
  try {
    return fs.openSync(job.path, 'r');
  } catch (e) {
    // Complete already: renamed into place (the same inode).
    if (/** @type {NodeJS.ErrnoException} */ (e).code !== 'ENOENT' || job.finalPath === job.path) throw e;
    return fs.openSync(job.finalPath, 'r');
  }
}

/**
 * Reads the next piece of the file into `into` at `at` (at most `max` bytes). Returns the count;
 * 0 at the end of the file (inputEnded is then set); -1 to wait for the download.
 * @param {Job} job @param {Buffer} into @param {number} at @param {number} max
 */
function readInput(job, into, at, max) {
  const available = job.written - job.filePos;
  // Behind a download, wait for a whole read's worth: every piece costs a round of work.
  if (available <= 0 || (available < READ_SIZE && available < max && !job.done)) {
    if (!job.done) return -1;
    if (job.size >= 0 && job.filePos !== job.size) throw new JobError('io', `blob ${job.path}: ${job.filePos} bytes, expected ${job.size}`);
    job.inputEnded = true;
    if (job.filePos === 0) sendHead(job, EMPTY);
    return 0;
  }
  job.fd ??= openInput(job);
  const first = job.filePos === 0;
  const n = fs.readSync(job.fd, into, at, Math.min(available, max), job.filePos);
  if (n === 0) throw new JobError('io', `blob ${job.path}: unexpected end of file at ${job.filePos}`);
  job.filePos += n;
  if (first) sendHead(job, into.subarray(at, at + n));
  return n;
}

/**
 * The first bytes go to the main thread, which checks them against the media type (before any
 * chunk or error of this job reaches it: messages keep their order).
 * @param {Job} job @param {Buffer} first
 */
function sendHead(job, first) {
  port.postMessage({ op: 'decode-head', job: job.id, head: first.subarray(0, 4).toString('hex') });
}

/**
 * Inflates into `out` until it is full, the stream ends, or the input must be waited for.
 * @param {Job} job @param {Buffer} out
 */
function inflateInto(job, out) {
  const z = /** @type {import('./gzip-inflater.js').Inflater} */ (job.inflater);
  let len = 0;
  while (len < out.length && !job.outputEnded) {
    if (job.inStart === job.inEnd && !job.inputEnded) {
      const n = readInput(job, job.input, 0, READ_SIZE);
      if (n < 0) break;
      job.inStart = 0;
      job.inEnd = n;
      continue;
    }
    const given = job.inEnd - job.inStart;
    const r = z.write(job.inputEnded, job.input, job.inStart, given, out, len, out.length - len);
    if (r.error) throw new JobError('zlib', r.error.message, { code: r.error.code });
    const produced = out.length - r.availOut - len;
    len += produced;
    job.inStart = job.inEnd - r.availIn;
    if (r.ended) job.outputEnded = true;
    // Guards the loop: with input (or its end) and room, the inflater always moves on.
    else if (produced === 0 && r.availIn === given && (job.inputEnded || given > 0)) throw new JobError('zlib', 'the inflater made no progress');
  }
  return len;
}

/**
 * Uncompressed layers: straight from the file into `out`.
 * @param {Job} job @param {Buffer} out
 */
function copyInto(job, out) {
  let len = 0;
  while (len < out.length && !job.inputEnded) {
    const n = readInput(job, out, len, out.length - len);
    if (n < 0) break;
    len += n;
  }
  if (job.inputEnded) job.outputEnded = true;
  return len;
}

/** Input buffers of finished jobs, for the next ones (this thread allocates next to nothing, so garbage would wait long for a collection). */
/** @type {Buffer[]} */
const spareInputs = [];

/** @param {Job} job */
function finish(job) {
  jobs.delete(job.id);
  // At the end the hasher closes the channel (after the last slot and the end came through).
  if (!job.outputEnded) job.hasher?.close();
  if (job.fd !== undefined) fs.closeSync(job.fd);
  job.inflater?.close();
  if (job.input.length === READ_SIZE) spareInputs.push(job.input);
  job.input = EMPTY;
  job.memory = EMPTY;
}

/**
 * Fills one free slot of `job` if it can; true when it made progress.
 * @param {Job} job
 */
function step(job) {
  if (job.free.length === 0) return false;
  const slot = /** @type {number} */ (job.free[0]);
  const out = job.memory.subarray(slot * job.slotSize, (slot + 1) * job.slotSize);
  const len = job.compression === 'gzip' ? inflateInto(job, out) : copyInto(job, out);
  if (len > 0) {
    job.hash?.update(out.subarray(0, len));
    job.free.shift();
    port.postMessage({ op: 'decode-chunk', job: job.id, slot, len });
    // Given back by the main thread, and by the hasher if there is one.
    job.holds[slot] = job.hasher ? 2 : 1;
    job.hasher?.postMessage({ op: 'data', slot, len });
  }
  if (job.outputEnded) {
    job.hasher?.postMessage({ op: 'end' });
    finish(job);
    port.postMessage({ op: 'decode-end', job: job.id, hex: job.hash ? job.hash.digest('hex') : '' });
    return true;
  }
  return len > 0;
}

/** One turn: every job fills at most one slot; another turn follows while any made progress. */
function turn() {
  turnQueued = false;
  let progress = false;
  for (const job of [...jobs.values()]) {
    try {
      if (step(job)) progress = true;
    } catch (e) {
      finish(job);
      const err = /** @type {Error} */ (e);
      const kind = e instanceof JobError ? e.kind : 'io';
      const detail = e instanceof JobError ? e.detail : {};
      port.postMessage({ op: 'decode-error', job: job.id, kind, message: err.message, ...detail });
    }
  }
  if (progress) queueTurn();
}

function queueTurn() {
  if (turnQueued) return;
  turnQueued = true;
  // Not a loop: freed slots, download progress and cancels arrive between turns.
  setImmediate(turn);
}

/** @param {Job} job @param {number} slot */
function release(job, slot) {
  const left = /** @type {number} */ (job.holds[slot]) - 1;
  job.holds[slot] = left;
  if (left === 0) job.free.push(slot);
}

/** @param {any} m */
function onDecode(m) {
  switch (m.op) {
    case 'decode-start': {
      /** @type {Job} */
      const job = {
        id: m.job,
        compression: m.compression,
        path: m.path,
        finalPath: m.finalPath,
        written: m.written,
        done: m.done,
        size: m.size,
        memory: Buffer.from(m.memory),
        slotSize: m.slotSize,
        free: Array.from({ length: m.slots }, (_, i) => i),
        fd: undefined,
        filePos: 0,
        input: m.compression === 'gzip' ? (spareInputs.pop() ?? Buffer.allocUnsafe(READ_SIZE)) : EMPTY,
        inStart: 0,
        inEnd: 0,
        inputEnded: false,
        outputEnded: false,
        inflater: m.compression === 'gzip' ? gzipInflater() : undefined,
        // With a hasher the output is hashed there (slot hashes on the other thread).
        hash: m.hasher ? undefined : createHash(m.algorithm),
        hasher: m.hasher,
        holds: new Uint8Array(m.slots),
      };
      jobs.set(job.id, job);
      job.hasher?.on('message', (/** @type {{ op: 'hashed'; slot: number }} */ h) => {
        if (jobs.get(job.id) !== job) return;
        release(job, h.slot);
        queueTurn();
      });
      break;
    }
    case 'decode-grow': {
      const job = jobs.get(m.job);
      if (!job) return;
      job.written = m.written;
      job.done = m.done;
      break;
    }
    case 'decode-free': {
      const job = jobs.get(m.job);
      if (job) release(job, m.slot);
      break;
    }
    case 'decode-cancel': {
      const job = jobs.get(m.job);
      if (job) finish(job);
      return;
    }
  }
  queueTurn();
}

port.on('message', (/** @type {any} */ m) => {
  if (m.op.startsWith('hash-')) onHash(m);
  else if (m.op.startsWith('slot-hash-')) onSlotHash(m);
  else onDecode(m);
});
port.postMessage({ op: 'ready', inflate: inflaterWorks() });
