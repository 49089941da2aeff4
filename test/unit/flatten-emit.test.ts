// Flatten pass 2: the order of the emitted stream, bodies, which layers are read again, and what
// happens when a consumer skips bodies, stops early or aborts. Plus a 100k-entry image for figures.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { emitTree } from '../../src/layers/emit.ts';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { sha256 } from '../../src/image/digest.ts';
import { DiffIdCheck, layerReadersFromBuffers, type LayerOpenOptions, type LayerReader } from '../../src/layers/layer-reader.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { Warnings } from '../../src/warnings.ts';
import { makeTar, type TarEntry } from '../fixtures/tar.ts';
import { collect, countingReaders, dir, file, flatten, link, rejectsWith, shape, symlink, wh } from './flatten-helpers.ts';

test('order: directories, then files layer by layer in tar order, then symlinks, devices and fifos', async () => {
  const f = await flatten([
    [dir('usr/'), dir('usr/bin/'), file('usr/bin/zz', 'z'), file('usr/bin/aa', 'a'), symlink('bin', 'usr/bin'), { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3 }],
    [dir('etc/'), file('etc/b', 'b'), file('etc/a', 'a'), { name: 'run/p', type: 'fifo' }, dir('a/'), symlink('a/l', 'x')],
    [file('usr/bin/aa', 'A2'), link('usr/bin/ab', 'usr/bin/aa')],
  ]);
  assert.equal(shape(f.entries), [
    'a directory',
    'dev directory',
    'etc directory',
    'run directory',
    'usr directory',
    'usr/bin directory',
    // layer 0, tar order
    'usr/bin/zz file',
    // layer 1
    'etc/b file',
    'etc/a file',
    // layer 2: the file then its link
    'usr/bin/aa file',
    'usr/bin/ab hardlink -> usr/bin/aa',
    // the rest in tree order
    'a/l symlink -> x',
    'bin symlink -> usr/bin',
    'dev/null char-device',
    'run/p fifo',
  ]);
  assert.equal(f.byPath.get('usr/bin/aa')!.content!.toString(), 'A2');
});

test('tree order: parents before children, each directory a contiguous run, siblings sorted', async () => {
  const f = await flatten([[dir('a-b/'), dir('a/'), file('a/z'), dir('a/y/'), file('a/y/x'), file('a.txt'), dir('B/')]]);
  assert.equal(
    f.tree.list().map((n) => n.path),
    ['B', 'a', 'a/y', 'a/y/x', 'a/z', 'a-b', 'a.txt'],
  );
  assert.equal(f.tree.children('a').map((n) => n.path), ['a/y', 'a/z']);
  assert.equal(f.tree.children('.').map((n) => n.path), ['B', 'a', 'a-b', 'a.txt']);
  assert.equal(f.tree.descendants('a').map((n) => n.path), ['a/y', 'a/y/x', 'a/z']);
  assert.equal(f.tree.children('a/z'), []);
});

test('only layers with surviving non-empty content are read again', async () => {
  const f = await flatten([
    [file('gone', 'x'), file('replaced', 'old'), dir('d/')],
    [wh('.wh.gone'), file('replaced', 'new'), file('empty', '')],
    [symlink('s', 'x'), dir('e/')],
  ]);
  assert.equal(f.opens, [1, 2, 1]);
  assert.equal(f.byPath.get('empty')!.content!.length, 0);
});

test('a consumer that skips bodies (or reads half of one) still gets every entry right', async () => {
  const big = Buffer.alloc(300_000, 7);
  const tars = [makeTar([file('a', 'A'), { name: 'big', content: big }, file('c', 'C'), { name: 'big2', content: big }, file('e', 'E')])];
  const layers = layerReadersFromBuffers(tars);
  const tree = await scanLayers(layers, { warnings: new Warnings() });
  const seen: string[] = [];
  let k = 0;
  for await (const e of emitTree(tree, layers)) {
    seen.push(e.path);
    if (e.path === 'big2') {
      // Read one chunk, leave the rest.
      await new Promise<void>((resolve) => e.body!.once('data', () => resolve()));
      e.body!.pause();
    } else if (e.path === 'e') {
      const parts: Buffer[] = [];
      for await (const c of e.body!) parts.push(c as Buffer);
      assert.is(Buffer.concat(parts).toString(), 'E');
    }
    k++;
  }
  assert.equal(seen, ['a', 'big', 'c', 'big2', 'e']);
});

test('stopping early releases the layer stream', async () => {
  const tars = [makeTar([file('a', 'A'), file('b', 'B'), file('c', 'C')])];
  const layers = layerReadersFromBuffers(tars);
  const tree = await scanLayers(layers, { warnings: new Warnings() });
  const streams: Readable[] = [];
  const spy: LayerReader[] = layers.map((l) => ({ ...l, open: async (o?: LayerOpenOptions) => { const s = await l.open(o); streams.push(s); return s; } }));
  for await (const e of emitTree(tree, spy)) {
    if (e.path === 'a') break;
  }
  assert.is(streams.length, 1);
  assert.ok(streams[0]!.destroyed);
});

test('pass 2 checks the layer still holds the scanned file at each offset', async () => {
  const scanned = [makeTar([file('a', 'AAAA'), file('b', 'BB')])];
  const tree = await scanLayers(layerReadersFromBuffers(scanned), { warnings: new Warnings() });
  const changed = layerReadersFromBuffers([makeTar([file('a', 'AAAAAAAA'), file('b', 'BB')])]);
  await rejectsWith(collect(tree, changed), 'IMGX_BAD_LAYER');
  const shorter = layerReadersFromBuffers([makeTar([file('a', 'AAAA')])]);
  await rejectsWith(collect(tree, shorter), 'IMGX_BAD_LAYER');
});

test('pass 1 asks for the diff_id check; pass 2 (which stops early) does not', async () => {
  const tars = [makeTar([file('a', 'A'), file('b', 'B')])];
  const seen: (boolean | undefined)[] = [];
  const layers: LayerReader[] = layerReadersFromBuffers(tars).map((l) => ({ ...l, open: (o?: LayerOpenOptions) => (seen.push(o?.verifyDiffId), l.open(o)) }));
  const tree = await scanLayers(layers, { warnings: new Warnings() });
  await collect(tree, layers);
  assert.equal(seen, [true, false]);
});

test('a diff_id mismatch in pass 1 fails the scan', async () => {
  const tar = makeTar([file('a', 'A')]);
  const claimed = sha256(makeTar([file('a', 'B')]));
  const reader: LayerReader = {
    index: 0,
    desc: { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(tar), size: tar.length },
    diffId: claimed,
    open: async (o) => {
      const s = Readable.from([tar]);
      return o?.verifyDiffId === false ? s : s.pipe(new DiffIdCheck(claimed, 'layer 0'));
    },
  };
  await rejectsWith(scanLayers([reader], { warnings: new Warnings() }), 'IMGX_DIFFID_MISMATCH');
});

test('a truncated layer fails the scan with IMGX_BAD_ARCHIVE, whichever layer it is', async () => {
  const good = makeTar([file('a', 'x'.repeat(5000))]);
  const bad = good.subarray(0, 2000);
  for (const tars of [[bad, good], [good, bad], [good, good, bad, good]]) {
    await rejectsWith(scanLayers(layerReadersFromBuffers(tars), { warnings: new Warnings(), concurrency: 3 }), 'IMGX_BAD_ARCHIVE');
  }
});

test('an aborted scan or emit stops with the abort', async () => {
  const tars = [makeTar([file('a', 'A'), file('b', 'B')])];
  const ac = new AbortController();
  ac.abort(new Error('stop'));
  await scanLayers(layerReadersFromBuffers(tars), { warnings: new Warnings(), signal: ac.signal }).then(
    () => assert.unreachable('should have failed'),
    () => {},
  );
  const layers = layerReadersFromBuffers(tars);
  const tree = await scanLayers(layers, { warnings: new Warnings() });
  const ac2 = new AbortController();
  let n = 0;
  await (async () => {
    for await (const e of emitTree(tree, layers, { signal: ac2.signal })) {
      n++;
      if (e.path === 'a') ac2.abort(new Error('stop'));
    }
  })().then(
    () => assert.unreachable('should have failed'),
    () => {},
  );
  assert.is(n, 1);
});

test('concurrency does not change the result', async () => {
  const layers = Array.from({ length: 6 }, (_, i) => makeTar([dir('d/'), file(`d/f${i}`, `v${i}`), file('d/shared', `s${i}`), ...(i > 0 ? [wh(`d/.wh.f${i - 1}`)] : [])]));
  const results: string[] = [];
  for (const concurrency of [1, 2, 6]) {
    const { layers: readers } = countingReaders(layers);
    const tree = await scanLayers(readers, { warnings: new Warnings(), concurrency });
    const entries = await collect(tree, readers);
    results.push(JSON.stringify(entries.map((e) => [e.path, e.type, e.content?.toString()])));
  }
  assert.is(results[0], results[1]);
  assert.is(results[0], results[2]);
  assert.ok(results[0]!.includes('"d/shared","file","s5"'));
});

// ---- a 100k-entry image: figures, no timed assertion ------------------------------------------

function syntheticLayers(): Buffer[] {
  const base: TarEntry[] = [];
  for (let d = 0; d < 1000; d++) {
    base.push(dir(`usr/share/pkg${d}/`));
    for (let i = 0; i < 99; i++) base.push(file(`usr/share/pkg${d}/file-${i}.txt`, `${d}:${i}`));
  }
  const upgrade: TarEntry[] = [];
  for (let d = 0; d < 1000; d += 10) {
    upgrade.push(dir(`usr/share/pkg${d}/`));
    for (let i = 0; i < 99; i += 3) upgrade.push(file(`usr/share/pkg${d}/file-${i}.txt`, `new ${d}:${i}`));
    upgrade.push(link(`usr/share/pkg${d}/alias`, `usr/share/pkg${d}/file-0.txt`));
  }
  const removal: TarEntry[] = [];
  for (let d = 5; d < 1000; d += 10) removal.push(wh(`usr/share/.wh.pkg${d}`));
  for (let d = 1; d < 1000; d += 50) removal.push(dir(`usr/share/pkg${d}/`), wh(`usr/share/pkg${d}/.wh..wh..opq`), file(`usr/share/pkg${d}/only`, 'o'));
  return [makeTar([dir('usr/'), dir('usr/share/'), ...base]), makeTar(upgrade), makeTar(removal)];
}

// A gc() for the memory figure, without needing --expose-gc on the command line.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

test('100k entries: scan and emit stay reasonable (figures printed)', async () => {
  const tars = syntheticLayers();
  const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
  // The peak heap is sampled as the layer streams flow (timers would starve during the scan).
  let peak = 0;
  let heap0 = 0;
  let chunks = 0;
  const layers = layerReadersFromBuffers(tars).map(
    (l): LayerReader => ({
      ...l,
      open: async (o) => {
        const s = await l.open(o);
        s.on('data', () => {
          if (++chunks % 64 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed - heap0);
        });
        return s;
      },
    }),
  );
  gc();
  heap0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const tree = await scanLayers(layers, { warnings: new Warnings() });
  const t1 = performance.now();
  const cpu1 = process.cpuUsage(cpu0);
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  let count = 0;
  let bytes = 0;
  for await (const e of emitTree(tree, layers)) {
    count++;
    if (e.body) for await (const c of e.body) bytes += (c as Buffer).length;
  }
  const t2 = performance.now();
  const json = JSON.stringify(tree.toJSON());
  const t3 = performance.now();
  assert.is(tree.size - 1, count);
  assert.is(bytes, tree.totalSize);
  assert.ok(tree.size > 80_000);
  assert.is(tree.hardlinkGroups().length, 100);
  const c = tree.layerChanges;
  process.stdout.write(
    `\n    100k: ${tars.map((t) => mb(t.length)).join(' + ')} of tar; ${tree.size} nodes, ${tree.fileCount} files\n` +
      `    scan ${(t1 - t0).toFixed(0)} ms wall, ${((cpu1.user + cpu1.system) / 1000).toFixed(0)} ms cpu; heap: tree ${mb(heap1 - heap0)}, peak during scan +${mb(peak)}\n` +
      `    emit ${(t2 - t1).toFixed(0)} ms (${count} entries, ${bytes} bytes)\n` +
      `    index JSON ${mb(json.length)} in ${(t3 - t2).toFixed(0)} ms; rss ${mb(process.memoryUsage().rss)}\n` +
      `    changes: ${c.map((l) => `L${l.layer} +${l.added} ~${l.modified} -${l.removed}`).join(', ')}\n`,
  );
});

test.run();
