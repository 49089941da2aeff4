// Pass 1 decompresses every layer to scan it; pass 2 needs the same bytes again for the files it
// writes. Rather than inflating twice, pass 1 can spool each layer's uncompressed tar to a file
// (on the cache's disk, not in memory) and pass 2 reads the spool: a page-cache copy instead of a
// second inflate, which was half of extract's CPU. A spool counts only once its layer was read to
// the end and its diff_id verified; anything less is thrown away and the layer is read normally.
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { LayerReader } from './layer-reader.ts';

export interface LayerSpool {
  layers: LayerReader[];
  /** Removes the spool files. */
  dispose(): Promise<void>;
}

class SpoolWriter extends Transform {
  private readonly fh: FileHandle;
  private position = 0;
  complete = false;

  constructor(fh: FileHandle) {
    super({ highWaterMark: 1 << 20 });
    this.fh = fh;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const at = this.position;
    this.position += chunk.length;
    this.fh.write(chunk, 0, chunk.length, at).then(() => cb(null, chunk), cb);
  }

  override _flush(cb: TransformCallback): void {
    this.complete = true;
    cb();
  }
}

export async function spoolLayers(layers: LayerReader[], parent: string): Promise<LayerSpool> {
  const dir = join(parent, `spool-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ready = new Set<number>();
  /** Spools still being closed: a reader arriving meanwhile waits for the verdict. */
  const settling = new Map<number, Promise<void>>();
  const wrapped = layers.map((layer): LayerReader => ({
    ...layer,
    open: async (opts = {}) => {
      const file = join(dir, String(layer.index));
      await settling.get(layer.index);
      if (ready.has(layer.index)) return createReadStream(file, { highWaterMark: 1 << 20 });
      // Only a read that verifies the diff_id may fill the spool.
      if (opts.verifyDiffId === false || layer.diffId === undefined) return layer.open(opts);
      // The spool file first: once the layer stream exists, its errors must have a listener.
      const fh = await open(file, 'w', 0o600);
      let inner: Readable;
      try {
        inner = await layer.open(opts);
      } catch (e) {
        await fh.close();
        await rm(file, { force: true });
        throw e;
      }
      const tee = new SpoolWriter(fh);
      let failed = false;
      inner.on('error', (e) => {
        failed = true;
        tee.destroy(e);
      });
      let settled!: () => void;
      settling.set(layer.index, new Promise<void>((r) => (settled = r)));
      tee.on('close', () => {
        // 'end' of the inner stream comes after its diff_id check: the spool is good only then.
        void fh
          .close()
          .then(() => {
            if (tee.complete && !failed && inner.readableEnded) ready.add(layer.index);
            else return rm(file, { force: true });
          })
          .catch(() => {})
          .finally(settled);
      });
      return inner.pipe(tee) as Readable;
    },
  }));
  return { layers: wrapped, dispose: () => rm(dir, { recursive: true, force: true }) };
}
