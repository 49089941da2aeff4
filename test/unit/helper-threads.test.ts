// The helper threads: they retire when idle (their memory is given back before extract builds its
// tree) and come back when work does, without losing a hash or a layer on the way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { streamHash } from '../../src/image/offthread-hash.ts';
import { helperThread, helperThreadCount, retireIdleHelperThreads, runningHelperThread, warmHelperThreads } from '../../src/offthread/pool.ts';

function sha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function hashOffThread(data: Buffer): Promise<string> {
  const h = streamHash('sha256');
  for (let off = 0; off < data.length; off += 300_000) h.update(data.subarray(off, off + 300_000));
  return h.digest();
}

test('a helper thread with nothing to do retires; the next hash starts a new one and is right', async () => {
  const data = Buffer.alloc(3_000_000, 'imgx');
  assert.is(await hashOffThread(data), sha(data));
  const first = runningHelperThread(0);
  assert.ok(first, 'the hash ran on helper thread 0');
  await sleep(400);
  assert.is(runningHelperThread(0), undefined, 'idle, it retired');
  assert.not.ok(first!.usable);
  assert.is(await hashOffThread(data), sha(data));
  const second = runningHelperThread(0);
  assert.ok(second && second !== first, 'a new thread did the second hash');
});

test('a thread does not retire while work is open on it, however long', async () => {
  const h = streamHash('sha256');
  h.update(Buffer.from('part one '));
  await sleep(400);
  h.update(Buffer.from('part two'));
  assert.is(await h.digest(), sha(Buffer.from('part one part two')));
});

test('work counted on a thread keeps it; ending the work lets it retire', async () => {
  const t = helperThread(1);
  t.begin(false);
  await sleep(300);
  assert.ok(t.usable, 'kept while work is open');
  t.end(false);
  await sleep(300);
  assert.not.ok(t.usable, 'retired once idle');
});

test('retiring idle threads at once stops the idle ones and keeps those with open work', async () => {
  const busy = helperThread(0);
  const idle = helperThread(1);
  busy.begin(false);
  retireIdleHelperThreads();
  assert.not.ok(idle.usable, 'the idle thread retired without waiting for the idle delay');
  assert.is(runningHelperThread(1), undefined);
  assert.ok(busy.usable, 'the thread with open work kept running');
  // The thread that kept running still serves work, and a new thread replaces the retired one.
  const data = Buffer.alloc(1_000_000, 'kept');
  assert.is(await hashOffThread(data), sha(data));
  assert.is(runningHelperThread(0), busy);
  const next = helperThread(1);
  assert.ok(next !== idle && next.usable);
  busy.end(false);
  retireIdleHelperThreads();
  assert.not.ok(busy.usable);
  assert.not.ok(next.usable);
});

test('a stream of a small known size is hashed on the calling thread: no helper thread starts for it', async () => {
  retireIdleHelperThreads();
  const small = Buffer.alloc(900_000, 'config');
  const h = streamHash('sha256', small.length);
  h.update(small);
  assert.is(await h.digest(), sha(small));
  assert.is(runningHelperThread(0), undefined, 'no thread started');
  // A large or unknown size goes to the thread.
  const large = Buffer.alloc(2_000_000, 'layer');
  const l = streamHash('sha256', large.length);
  l.update(large);
  assert.is(await l.digest(), sha(large));
  assert.ok(runningHelperThread(0), 'the large stream ran on helper thread 0');
});

test('warm threads start at once and wait for work past the idle delay, then retire', async () => {
  retireIdleHelperThreads();
  warmHelperThreads(500);
  const warm = Array.from({ length: helperThreadCount() }, (_, i) => runningHelperThread(i));
  assert.ok(warm.every((t) => t !== undefined), 'every thread started');
  await sleep(300);
  assert.ok(warm.every((t) => t!.usable), 'kept past the 100 ms idle delay');
  await sleep(500);
  assert.ok(warm.every((t) => !t!.usable), 'retired once the warm time and the idle delay passed');
});

test.run();
