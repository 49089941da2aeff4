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
  for (let off = 0; off < data.length; off += 300_000) await h.update(data.subarray(off, off + 300_000));
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

test('a helper that is behind holds up its streams, not the thread: updates wait on a promise, timers run meanwhile, digests are right', async () => {
  retireIdleHelperThreads();
  // Three streams at once, far more than the slot ring holds (the new thread is not even up yet).
  const datas = [0, 1, 2].map((i) => Buffer.alloc(6_000_000 + i * 12_345, `stream ${i} `));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  let waits = 0;
  const digests = await Promise.all(
    datas.map(async (data) => {
      const h = streamHash('sha256');
      for (let off = 0; off < data.length; off += 100_000) {
        const taking = h.update(data.subarray(off, off + 100_000));
        if (!taking) continue;
        waits++;
        // The contract: nothing more until the chunk is in.
        assert.throws(() => h.update(Buffer.from('x')), /before the previous chunk was taken/);
        await taking;
      }
      return h.digest();
    }),
  );
  clearInterval(timer);
  digests.forEach((d, i) => assert.is(d, sha(datas[i]!), `stream ${i}`));
  assert.ok(waits > 0, 'the ring filled up');
  assert.ok(ticks > 0, 'the thread ran timers while the streams waited');
});

test('a stream waiting for a slot when its helper thread dies fails with that, and the next stream hashes', async () => {
  retireIdleHelperThreads();
  const h = streamHash('sha256');
  const data = Buffer.alloc(300_000, 'w');
  let taking: Promise<void> | undefined;
  // Fill the ring (the thread is still starting, so nothing is freed yet).
  while (!(taking = h.update(data)));
  runningHelperThread(0)!.terminate();
  await taking.then(
    () => assert.unreachable('the chunk was taken by a dead thread'),
    (e: Error) => assert.match(e.message, /helper thread exited/),
  );
  assert.is(await hashOffThread(data), sha(data));
});

test('a thread does not retire while work is open on it, however long', async () => {
  const h = streamHash('sha256');
  await h.update(Buffer.from('part one '));
  await sleep(400);
  await h.update(Buffer.from('part two'));
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
  assert.is(h.update(small), undefined, 'taken at once');
  assert.is(await h.digest(), sha(small));
  assert.is(runningHelperThread(0), undefined, 'no thread started');
  // A large or unknown size goes to the thread.
  const large = Buffer.alloc(2_000_000, 'layer');
  const l = streamHash('sha256', large.length);
  await l.update(large);
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
