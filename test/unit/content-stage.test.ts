// Extract's pass 1 writes file contents at their own path in the staging tree when it can
// (content-stage.ts), in whatever order the layers are read; settle() then makes that tree agree
// with the flattened one, and pass 2 builds the rest. Whatever the layers do to each other's
// paths (replace a file by a directory or the reverse, white out, make a directory opaque, turn
// one into a symlink, hardlink to a path a later layer removes, repeat a path), the result must
// be the tree that pass 2 writes from the layers alone, and nothing may be left beside it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ContentStage } from '../../src/export/content-stage.ts';
import { writeDirectory } from '../../src/export/dir-writer.ts';
import { writerIdentity } from '../../src/export/fd-ops.ts';
import { StagingDir } from '../../src/export/staging-dir.ts';
import { emitTree } from '../../src/layers/emit.ts';
import { layerReadersFromBuffers, type LayerReader } from '../../src/layers/layer-reader.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { Warnings } from '../../src/warnings.ts';
import { makeTar, type TarEntry } from '../fixtures/tar.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { diffSnapshots, snapshotTree } from '../helpers/tree-compare.ts';

const file = (name: string, content: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name, content, mode: 0o644, mtime: 1_600_000_000, ...extra });
const dir = (name: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name, type: 'directory', mode: 0o755, mtime: 1_600_000_000, ...extra });

/** Layers that fight over paths, bottom first. */
const LAYERS: TarEntry[][] = [
  [
    dir('a/'),
    file('a/keep', 'kept from layer 0'),
    file('a/replaced-by-dir', 'a file, a directory later'),
    file('a/whited', 'removed by layer 2'),
    file('a/dup', 'first'),
    file('a/dup', 'second, same layer: wins'),
    dir('b/'),
    file('b/deep/er/file', 'under implicit directories'),
    file('b/linked', 'the content of a hardlink that outlives its path'),
    { name: 'b/hard', type: 'hardlink', linkname: 'b/linked' },
    file('lib/x.so', 'under a directory that becomes a symlink'),
    file('opaque/old', 'hidden by an opaque directory'),
    file('c/file-becomes-parent', 'a file that a later layer puts files under'),
    file('n'.repeat(250) + '/' + 'm'.repeat(250) + '/long', 'long names'),
  ],
  [
    dir('a/replaced-by-dir/'),
    file('a/replaced-by-dir/inside', 'in the directory that replaced a file'),
    file('b/deep', 'a file where layer 0 had a directory'),
    file('c/file-becomes-parent/child', 'its parent was a file in layer 0'),
    file('a/keep2', 'layer 1'),
  ],
  [
    { name: 'a/.wh.whited' },
    { name: 'b/.wh.linked' },
    { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
    dir('opaque/'),
    { name: 'opaque/.wh..wh..opq' },
    file('opaque/new', 'after the opaque whiteout'),
    file('a/keep2', 'layer 2 rewrites what layer 1 wrote', { mode: 0o600 }),
    file('usr/lib/y.so', 'layer 2'),
  ],
];

/** The layers, each opened after `delays[i]` ms (so that their contents come in another order). */
function readers(delays: number[]): LayerReader[] {
  return layerReadersFromBuffers(LAYERS.map((l) => makeTar(l))).map((r, i) => ({
    ...r,
    open: async (o) => {
      await new Promise((res) => setTimeout(res, delays[i]!));
      return r.open(o);
    },
  }));
}

/** extract's way: contents staged in pass 1, settled, then pass 2. Returns DEST and the stage's directory. */
async function viaStage(delays: number[]): Promise<{ dest: string; beside: string; counts: ContentStage['counts'] }> {
  const dest = join(tempDir(), 'dest');
  const staging = await StagingDir.create(dest);
  const stage = await ContentStage.create(`${staging.path}.content`, staging.path, writerIdentity());
  const warnings = new Warnings();
  const layers = readers(delays);
  const tree = await scanLayers(layers, { warnings, contents: stage });
  stage.settle(tree);
  await writeDirectory(emitTree(tree, layers, { staged: stage }), dest, { warnings, staging, made: stage.dirs });
  await stage.dispose();
  return { dest, beside: stage.dir, counts: stage.counts };
}

/** Pass 2 alone, from the layers' bodies. */
async function direct(): Promise<string> {
  const dest = join(tempDir(), 'dest');
  const warnings = new Warnings();
  const layers = readers([0, 0, 0]);
  const tree = await scanLayers(layers, { warnings });
  await writeDirectory(emitTree(tree, layers), dest, { warnings });
  return dest;
}

test('contents staged in any layer order give the tree pass 2 writes alone, and leave nothing beside it', async () => {
  const expected = snapshotTree(await direct(), { xattrs: false });
  assert.ok(expected.nodes.has('a/keep2') && !expected.nodes.has('a/whited') && expected.nodes.get('lib')?.type === 'symlink', 'the fixture does what it says');
  assert.ok(expected.nodes.get('b/hard')?.type === 'file' && !expected.nodes.has('b/linked'));
  // In order, reversed, and the middle layer first.
  for (const delays of [
    [0, 0, 0],
    [60, 30, 0],
    [40, 0, 20],
  ]) {
    const { dest, beside, counts } = await viaStage(delays);
    // Most contents were written where they belong; of those the tree does not have there, the
    // ones it has elsewhere moved (b/linked, now b/hard's) and the others were removed: every path ran.
    assert.ok(counts.inPlace >= 8, `${counts.inPlace} contents in place`);
    assert.ok(counts.movedBack >= 1, `${counts.movedBack} moved back`);
    assert.ok(counts.removed >= 3, `${counts.removed} removed`);
    const d = diffSnapshots(snapshotTree(dest, { xattrs: false }), expected, { mtimes: true });
    assert.equal(d.differences, [], `layers opened after ${delays.join('/')} ms`);
    assert.equal(d.mtimes, [], `mtimes, layers opened after ${delays.join('/')} ms`);
    // The root has no entry in these layers: its mtime is when it was made.
    assert.equal(d.dirMtimes.filter((m) => !m.startsWith('mtime: .:')), [], `directory mtimes, layers opened after ${delays.join('/')} ms`);
    assert.not.ok(existsSync(beside), 'the directory beside DEST is gone');
    assert.equal(readdirSync(join(dest, '..')).sort(), ['dest'], 'nothing else beside DEST');
  }
});

test.run();
