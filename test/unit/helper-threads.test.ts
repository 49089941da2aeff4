// The helper threads: they retire when idle (their memory is given back before extract builds its
// tree) and come back when work does, without losing a hash or a layer on the way.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { streamHash } from '../../src/image/offthread-hash.ts';
import { helperThread, runningHelperThread } from '../../src/offthread/pool.ts';

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

test.run();
