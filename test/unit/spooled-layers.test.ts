import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { spoolLayers } from '../../src/layers/spooled-layers.ts';
import { layerReadersFromBuffers, type LayerReader } from '../../src/layers/layer-reader.ts';
import { makeTar } from '../fixtures/tar.ts';
import { tempDir } from '../helpers/tempdir.ts';

async function drain(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function counting(layer: LayerReader): LayerReader & { opens: number } {
  const c = { ...layer, opens: 0 };
  c.open = (o) => {
    c.opens++;
    return layer.open(o);
  };
  return c;
}

test('a layer read to the end with its diff_id checked is served from the spool afterwards', async () => {
  const tar = makeTar([{ name: 'a', content: Buffer.alloc(200_000, 7) }]);
  const inner = counting(layerReadersFromBuffers([tar])[0]!);
  const spool = await spoolLayers([inner], tempDir());
  const first = await drain(await spool.layers[0]!.open());
  assert.equal(first, tar);
  const second = await drain(await spool.layers[0]!.open({ verifyDiffId: false }));
  assert.equal(second, tar);
  assert.is(inner.opens, 1, 'the second read did not open the layer again');
  await spool.dispose();
});

test('a diff_id mismatch or an early stop leaves no spool behind', async () => {
  const tar = makeTar([{ name: 'a', content: Buffer.alloc(100_000, 1) }]);
  const [good] = layerReadersFromBuffers([tar]);
  // A layer whose stream fails at its end, as a diff_id mismatch does.
  const lying = counting({
    ...good!,
    open: async (o) => {
      if (o?.verifyDiffId === false) return good!.open(o);
      const s = new PassThrough();
      s.write(tar);
      setImmediate(() => s.destroy(Object.assign(new Error('diff_id mismatch'), { code: 'IMGX_DIFFID_MISMATCH' })));
      return s;
    },
  });
  const parent = tempDir();
  const spool = await spoolLayers([lying], parent);
  try {
    await drain(await spool.layers[0]!.open());
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'IMGX_DIFFID_MISMATCH');
  }
  await drain(await spool.layers[0]!.open({ verifyDiffId: false }));
  assert.is(lying.opens, 2, 'nothing was spooled from the bad read');
  const [dir] = readdirSync(parent);
  assert.equal(readdirSync(`${parent}/${dir}`), []);
  await spool.dispose();
  assert.equal(readdirSync(parent), []);
});

test.run();
