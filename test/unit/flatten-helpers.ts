// Shared by the flatten-*.test.ts files: layers built in the test with makeTar, run through
// layerReadersFromBuffers → scanLayers → emitTree, and the emitted stream collected with bodies.
import { makeTar, type TarEntry } from '../fixtures/tar.ts';
import { emitTree } from '../../src/layers/emit.ts';
import type { FlatTree } from '../../src/layers/flat-tree.ts';
import type { FlatEntry } from '../../src/layers/fs-entry.ts';
import { layerReadersFromBuffers, type LayerReader } from '../../src/layers/layer-reader.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { expandSparse } from '../../src/layers/sparse.ts';
import { Warnings } from '../../src/warnings.ts';

export interface Emitted extends Omit<FlatEntry, 'body'> {
  /** The body of a file, read in full. */
  content?: Buffer;
}

export interface Flattened {
  tree: FlatTree;
  entries: Emitted[];
  byPath: Map<string, Emitted>;
  warnings: Warnings;
  /** How many times each layer was opened (pass 1 and pass 2 together). */
  opens: number[];
}

async function readAll(body: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** LayerReaders that count how often each layer is opened. */
export function countingReaders(tars: Buffer[]): { layers: LayerReader[]; opens: number[] } {
  const opens = tars.map(() => 0);
  const layers = layerReadersFromBuffers(tars).map((l): LayerReader => {
    return {
      index: l.index,
      desc: l.desc,
      diffId: l.diffId,
      open: (opts) => {
        opens[l.index]!++;
        return l.open(opts);
      },
    };
  });
  return { layers, opens };
}

export async function collect(tree: FlatTree, layers: LayerReader[]): Promise<Emitted[]> {
  const out: Emitted[] = [];
  for await (const e of emitTree(tree, layers)) {
    const { body, ...rest } = e;
    const em: Emitted = rest;
    // A sparse file's body is its stored data: expanded here to compare whole contents.
    if (e.type === 'file') em.content = body ? await readAll(e.sparse ? expandSparse(body, e.sparse, e.size) : body) : Buffer.alloc(0);
    out.push(em);
  }
  return out;
}

/** Flattens layers given as makeTar entry lists (or ready tar buffers). */
export async function flatten(layers: (TarEntry[] | Buffer)[], opts: { strict?: boolean } = {}): Promise<Flattened> {
  const tars = layers.map((l) => (Buffer.isBuffer(l) ? l : makeTar(l)));
  const { layers: readers, opens } = countingReaders(tars);
  const warnings = new Warnings({ strict: opts.strict === true });
  const tree = await scanLayers(readers, { warnings });
  const entries = await collect(tree, readers);
  return { tree, entries, byPath: new Map(entries.map((e) => [e.path, e])), warnings, opens };
}

/** `path type` lines of the emitted stream, in order. */
export function shape(entries: Emitted[]): string[] {
  return entries.map((e) => `${e.path} ${e.type}${e.type === 'symlink' || e.type === 'hardlink' ? ` -> ${e.linkname}` : ''}`);
}

/** Paths of the flattened tree (no root). */
export function paths(f: Flattened): string[] {
  return f.tree.list().map((n) => n.path).filter((p) => p !== '.').sort();
}

export function text(f: Flattened, path: string): string | undefined {
  return f.byPath.get(path)?.content?.toString('utf8');
}

/** Resolves when `p` rejects with an ImgxError of `code` (returns it), fails otherwise. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code !== code) throw new Error(`expected ${code}, got ${err.code ?? ''}: ${err.message}`);
    return err;
  }
  throw new Error(`expected ${code}, but it resolved`);
}

export const dir = (name: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name, type: 'directory', ...extra });
export const file = (name: string, content = '', extra: Partial<TarEntry> = {}): TarEntry => ({ name, content, ...extra });
export const symlink = (name: string, linkname: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name, type: 'symlink', linkname, ...extra });
export const link = (name: string, linkname: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name, type: 'hardlink', linkname, ...extra });
export const wh = (name: string): TarEntry => ({ name, content: '' });
