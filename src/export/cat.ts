// File contents straight from the layers, without extracting: `imgx cat` streams one file from
// the layer entry that holds it, `imgx diff` hashes the files it must compare. Only the layers
// that hold a wanted entry are opened, each once, and reading stops right after the last wanted
// entry.
//
// Stopping early means the layer's diff_id is not checked on these reads (it can only be checked
// at the end of the stream). That is acceptable: the blob was verified when it entered the cache,
// and the browse index was built from a full read that checked the diff_id.
import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BadArchiveError, NotFoundError } from '../errors.ts';
import type { ContentSource, FlatTree } from '../layers/flat-tree.ts';
import { layerName as nameOf, type LayerReader } from '../layers/layer-reader.ts';
import { readTar, type TarEntry } from '../layers/tar-reader.ts';
import { displayPath, isRegular, lookup } from './browse.ts';

/**
 * The regular file at `input`, symlinks followed inside the image (confined to its root, at most
 * 40 hops). A directory, a device, a missing path → IMGX_NOT_FOUND with a one-line message.
 */
export function locateFile(tree: FlatTree, input: string): { path: string; source: ContentSource | undefined; size: number } {
  const { path, node } = lookup(tree, input, { followFinal: true });
  if (node.type === 'directory') throw new NotFoundError('IMGX_NOT_FOUND', `${input}: is a directory in the image`);
  if (!isRegular(node)) throw new NotFoundError('IMGX_NOT_FOUND', `${input}: not a regular file in the image (${node.type} at ${displayPath(path)})`);
  const source = tree.contentSource(path);
  // Empty files have no content source: there is nothing to read.
  if (!source && node.type === 'file' && node.size > 0) throw new BadArchiveError(`${displayPath(path)}: the image index has no content source for it`);
  return { path, source, size: source?.size ?? node.size };
}

function layerAt(layers: readonly LayerReader[], index: number): LayerReader {
  const layer = layers.find((l) => l.index === index) ?? layers[index];
  if (!layer) throw new BadArchiveError(`the image index names layer ${index}, which the image does not have`);
  return layer;
}

function layerName(layer: LayerReader): string {
  return nameOf(layer.index, layer.desc.digest);
}

/**
 * Streams the content at `source` into `out` (which is not ended): the layer is read up to the
 * entry at `source.offset`, its body piped, and the layer closed.
 */
export async function copyContent(layers: readonly LayerReader[], source: ContentSource | undefined, out: Writable): Promise<number> {
  if (!source || source.size === 0) return 0;
  const layer = layerAt(layers, source.layer);
  const input = await layer.open({ verifyDiffId: false });
  try {
    for await (const entry of readTar(input, { what: layerName(layer) })) {
      if (entry.offset < source.offset) continue;
      if (entry.offset > source.offset) break;
      if (entry.header.size !== source.size) {
        throw new BadArchiveError(`${layerName(layer)}: the entry at offset ${source.offset} has ${entry.header.size} bytes, the index says ${source.size}`);
      }
      await pipeline(entry.body, out, { end: false });
      return source.size;
    }
    throw new BadArchiveError(`${layerName(layer)}: no entry at offset ${source.offset}; the image index does not match the layer`);
  } finally {
    input.destroy();
  }
}

/** Key of a content source in `hashContents`' answer. */
export function contentKey(layer: LayerReader, offset: number): string {
  return `${layer.diffId ?? layer.desc.digest}@${offset}`;
}

export interface ContentRequest {
  layers: readonly LayerReader[];
  source: ContentSource;
}

/**
 * sha256 of each requested content, keyed by `contentKey` (layer diff_id + offset, so two images
 * sharing a layer read it once). One pass per layer, up to its last wanted entry; at most
 * `concurrency` layers at a time. Memory stays flat: bodies are hashed as they stream.
 */
/** Requests by layer (keyed by diff_id, so two images sharing a layer read it once): offset → size. */
function groupByLayer(requests: Iterable<ContentRequest>): Map<string, { layer: LayerReader; offsets: Map<number, number> }> {
  const byLayer = new Map<string, { layer: LayerReader; offsets: Map<number, number> }>();
  for (const r of requests) {
    const layer = layerAt(r.layers, r.source.layer);
    const key = layer.diffId ?? layer.desc.digest;
    let g = byLayer.get(key);
    if (!g) byLayer.set(key, (g = { layer, offsets: new Map() }));
    g.offsets.set(r.source.offset, r.source.size);
  }
  return byLayer;
}

export async function hashContents(requests: Iterable<ContentRequest>, opts: { concurrency?: number } = {}): Promise<Map<string, string>> {
  const byLayer = groupByLayer(requests);
  const hashes = new Map<string, string>();
  const groups = [...byLayer.values()];
  const worker = async () => {
    for (let g = groups.shift(); g; g = groups.shift()) await hashLayer(g.layer, g.offsets, hashes);
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 2) }, worker));
  return hashes;
}

async function hashLayer(layer: LayerReader, wanted: Map<number, number>, into: Map<string, string>): Promise<void> {
  await visitContents(layer, wanted, async (offset, body, entry) => {
    // A sparse file is hashed as its map and its stored data, not its holes: a 60 GB file with
    // 600 bytes of data costs 600 bytes. (The same content stored once sparse and once in full
    // then compares as modified.)
    into.set(contentKey(layer, offset), entry.sparse ? await sparseFingerprint(entry.sparse, entry.data) : await sha256Of(body()));
  });
}

/** One pass over `layer` up to its last wanted entry, each wanted body (offset → size) given to `consume`. */
async function visitContents(layer: LayerReader, wanted: Map<number, number>, consume: (offset: number, body: () => Readable, entry: TarEntry) => Promise<void>): Promise<void> {
  const last = Math.max(...wanted.keys());
  const input = await layer.open({ verifyDiffId: false });
  let found = 0;
  try {
    for await (const entry of readTar(input, { what: layerName(layer) })) {
      const size = wanted.get(entry.offset);
      if (size !== undefined) {
        if (entry.header.size !== size) {
          throw new BadArchiveError(`${layerName(layer)}: the entry at offset ${entry.offset} has ${entry.header.size} bytes, the index says ${size}`);
        }
        await consume(entry.offset, () => entry.body, entry);
        found++;
      }
      if (entry.offset >= last) break;
    }
  } finally {
    input.destroy();
  }
  if (found !== wanted.size) throw new BadArchiveError(`${layerName(layer)}: ${wanted.size - found} entries named by the image index are missing; the index does not match the layer`);
}

/** The bytes of several (small) contents, keyed by `contentKey`: one pass per layer, as hashContents. */
export async function readContents(requests: Iterable<ContentRequest>): Promise<Map<string, Buffer>> {
  const byLayer = groupByLayer(requests);
  const out = new Map<string, Buffer>();
  for (const { layer, offsets } of byLayer.values()) {
    await visitContents(layer, offsets, async (offset, body) => {
      const chunks: Buffer[] = [];
      for await (const c of body()) chunks.push(c as Buffer);
      out.set(contentKey(layer, offset), Buffer.concat(chunks));
    });
  }
  return out;
}

async function sparseFingerprint(map: readonly { offset: number; size: number }[], data: Readable): Promise<string> {
  const h = createHash('sha256');
  h.update(JSON.stringify(map.filter((s) => s.size > 0).map((s) => [s.offset, s.size])));
  for await (const chunk of data) h.update(chunk as Buffer);
  return `sparse:sha256:${h.digest('hex')}`;
}

async function sha256Of(body: Readable): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of body) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}
