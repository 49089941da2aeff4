// The blob throughput floor (src/registry/throughput.ts) on a made-up clock, and how the floor is
// read from IMGX_BLOB_FLOOR.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ThroughputMeter, describeFloor } from '../../src/registry/throughput.ts';
import { blobFloorFromEnv, DEFAULT_BLOB_FLOOR, resolveOptions } from '../../src/registry/options.ts';

const floor = { bytes: 1000, windowMs: 10_000 };

test('a download that keeps the rate never trips; one that drips trips after one window', () => {
  const fast = new ThroughputMeter(floor);
  let now = 0;
  for (let i = 0; i < 100; i++) {
    fast.waiting(now);
    now += 1000;
    fast.received(now, 200); // 2000 bytes per 10 s window
    assert.not.ok(fast.tooSlow(now), `at ${now}`);
  }
  const drip = new ThroughputMeter(floor);
  now = 0;
  let tripped = -1;
  for (let i = 0; i < 30 && tripped < 0; i++) {
    drip.waiting(now);
    now += 1000;
    drip.received(now, 1); // a byte a second
    if (drip.tooSlow(now)) tripped = now;
  }
  assert.is(tripped, 10_000, 'not before a whole window has passed');
});

test('a stall with no bytes at all trips while waiting', () => {
  const m = new ThroughputMeter(floor);
  m.waiting(0);
  m.received(100, 5000);
  m.waiting(100);
  assert.not.ok(m.tooSlow(9_000));
  assert.not.ok(m.tooSlow(10_099), 'the 5000 bytes are still inside the window');
  assert.ok(m.tooSlow(10_101));
});

test('time the consumer holds a chunk does not count against the registry', () => {
  const m = new ThroughputMeter(floor);
  m.waiting(0);
  m.received(100, 2000);
  // The consumer takes a minute with the chunk: no wait, no network time.
  assert.not.ok(m.tooSlow(60_000));
  m.waiting(60_000);
  assert.not.ok(m.tooSlow(69_000), 'only 9 s of network time so far');
  assert.ok(m.tooSlow(70_200), 'then a whole window without enough bytes');
});

test('bursts inside one window count together; the window slides', () => {
  const m = new ThroughputMeter(floor);
  let now = 0;
  for (let i = 0; i < 20; i++) {
    m.waiting(now);
    now += 500;
    m.received(now, i < 4 ? 400 : 0); // 400 bytes at 0.5, 1, 1.5 and 2 s, then nothing
  }
  m.waiting(now);
  assert.not.ok(m.tooSlow(10_400), 'all 1600 bytes are inside the last 10 s');
  assert.ok(m.tooSlow(11_100), 'the window slid past half of them: 800 < 1000');
});

test('many chunks keep the meter small and exact enough', () => {
  const m = new ThroughputMeter({ bytes: 64 * 1024, windowMs: 30_000 });
  let now = 0;
  for (let i = 0; i < 200_000; i++) {
    m.waiting(now);
    now += 1;
    m.received(now, 16 * 1024);
  }
  assert.not.ok(m.tooSlow(now));
  assert.ok((m as unknown as { arrivals: unknown[] }).arrivals.length < 1000);
});

test('IMGX_BLOB_FLOOR=KIB/SECONDS, the default, and describeFloor', () => {
  assert.equal(blobFloorFromEnv('8/2'), { bytes: 8192, windowMs: 2000 });
  assert.equal(blobFloorFromEnv(' 0.5 / 1.5 '), { bytes: 512, windowMs: 1500 });
  assert.is(blobFloorFromEnv('fast'), undefined);
  assert.is(blobFloorFromEnv('1/0'), undefined);
  assert.is(blobFloorFromEnv(undefined), undefined);
  assert.equal(DEFAULT_BLOB_FLOOR, { bytes: 64 * 1024, windowMs: 30_000 });
  assert.is(describeFloor(DEFAULT_BLOB_FLOOR), '64 KiB in 30 s');
  assert.is(ThroughputMeter.active({ bytes: 0, windowMs: 1000 }), false, '0/N turns it off');
  const saved = process.env.IMGX_BLOB_FLOOR;
  try {
    process.env.IMGX_BLOB_FLOOR = '4/1';
    assert.equal(resolveOptions().blobFloor, { bytes: 4096, windowMs: 1000 });
    assert.equal(resolveOptions({ blobFloor: { bytes: 1, windowMs: 5 } }).blobFloor, { bytes: 1, windowMs: 5 });
    delete process.env.IMGX_BLOB_FLOOR;
    assert.equal(resolveOptions().blobFloor, DEFAULT_BLOB_FLOOR);
    assert.is(resolveOptions().deadlineMs, 60_000);
    assert.is(resolveOptions().timeoutMs, 30_000);
  } finally {
    if (saved === undefined) delete process.env.IMGX_BLOB_FLOOR;
    else process.env.IMGX_BLOB_FLOOR = saved;
  }
});

test.run();
