// The native root filesystem builder: ext4 written by imgx itself (src/disk/ext4/), no mke2fs, no
// debugfs. From a directory tree here (walked like `mke2fs -d`); `buildExt4` takes entries and
// bodies directly, so a later step can feed the flatten stage's output without extracting anything.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fsPath, printableName } from '../util/raw-name.ts';
import { Ext4Writer, type Ext4Entry, type Ext4Options } from './ext4/writer.ts';
import { applyExtras, readStoredData, treeEntries, type SourcedEntry } from './ext4/tree-source.ts';
import type { RootFsBuilder, RootFsRequest } from './rootfs-builder.ts';

export { Ext4Writer, ext4MinimumBytes, type Ext4Entry, type Ext4Options } from './ext4/writer.ts';

/** Files smaller than this are read whole; larger ones stream. */
const SMALL = 1 << 20;
const READ_AHEAD = 16;

/**
 * Builds the filesystem at `offset` (`size` bytes) of `image` from entries whose contents come
 * from `content(path)`: bytes, a host file to read (a name in decodeName form), or a stream (called
 * once or twice per file inode, in entry order). For a sparse entry, bytes and streams are its
 * stored data; a host file is read at its segments only.
 */
export async function buildExt4(
  image: string,
  offset: number,
  size: number,
  entries: Iterable<Ext4Entry>,
  content: (path: string) => string | Buffer | AsyncIterable<Uint8Array> | undefined,
  opts: Ext4Options = {},
  notes?: string[],
): Promise<void> {
  const w = await Ext4Writer.open(image, offset, size, entries, opts);
  notes?.push(...w.notes.map((n) => n.message));
  try {
    // Small host files are read ahead (a few at once: each read is a round trip through the thread
    // pool) while earlier ones are written; large ones stream at their turn.
    const paths = w.pendingFiles();
    const ahead = new Map<number, Promise<Buffer>>();
    let next = 0;
    const fill = (i: number) => {
      for (; next < paths.length && next < i + READ_AHEAD; next++) {
        const src = content(paths[next]!);
        const e = w.tree.byPath.get(paths[next]!)!.entry;
        if (typeof src === 'string' && e.size < SMALL && !e.sparse) {
          const p = readFile(fsPath(src));
          p.catch(() => {}); // awaited at its turn
          ahead.set(next, p);
        }
      }
    };
    for (const [i, path] of paths.entries()) {
      fill(i);
      const node = w.tree.byPath.get(path)!;
      const pre = ahead.get(i);
      if (pre) {
        ahead.delete(i);
        await w.writeFile(path, await pre);
        continue;
      }
      const src = content(path);
      if (src === undefined) {
        if (node.dataBlocks === 0) continue;
        throw new Error(`ext4: no content for ${printableName(path)}`);
      }
      if (typeof src === 'string') {
        const { size: bytes, sparse } = node.entry;
        await w.writeFile(path, sparse ? readStoredData(src, sparse) : bytes < SMALL ? await readFile(fsPath(src)) : createReadStream(fsPath(src), { highWaterMark: SMALL }));
      } else await w.writeFile(path, src);
    }
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.finish();
}

export class NativeExt4Builder implements RootFsBuilder {
  readonly name = 'native';
  /** What the walk and the writer left out (sockets; xattrs without getfattr or in no ext4 namespace; symlinks without a target). */
  notes: string[] = [];

  async build(req: RootFsRequest): Promise<void> {
    const { entries, notes } = await treeEntries(req.tree);
    this.notes = notes;
    const time = Math.floor(Date.now() / 1000);
    applyExtras(entries, req.extras, time);
    const sources = new Map<string, SourcedEntry['source']>();
    for (const [p, s] of entries) if (s.source !== undefined) sources.set(p, s.source);
    await buildExt4(req.image, req.offset, req.size, [...entries.values()].map((s) => s.entry), (p) => sources.get(p), { uuid: req.uuid, label: req.label, inodes: req.inodes, time }, this.notes);
  }
}
