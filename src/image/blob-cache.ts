// The content-addressed blob cache: an OCI image layout (oci-layout, index.json, blobs/ALG/HEX).
// A blob appears under its digest only after its bytes were verified and fsynced (temp → rename),
// so the cache never holds a blob that was not checked, and several processes may fill it at once.
// index.json records the images pulled (one entry per reference), updated under a lock.
// A local failure (a full disk, a read-only cache …) is IMGX_IO naming the cache, and leaves no
// temporary file behind: the cache stays as it was, usable.
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, utimes, rename } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ImgxError, NotFoundError } from '../errors.ts';
import { ioError } from '../io-errors.ts';
import { tempNameFor, writeFileAtomic } from './atomic-file.ts';
import type { Descriptor } from './descriptor.ts';
import { parseDigest, verifyBytes } from './digest.ts';
import { withFileLock } from './file-lock.ts';
import { FollowedFileWriter, type BlobWriting } from './growing-blob.ts';
import { VerifyStream } from './verify-stream.ts';

/** The annotation that holds the full reference an index.json entry was pulled as. */
export const REF_ANNOTATION = 'org.opencontainers.image.ref.name';
export const PULLED_ANNOTATION = 'dev.imgx.pulled';

export interface CacheEntry extends Descriptor {
  annotations: Record<string, string>;
}

export function defaultCacheDir(): string {
  if (process.env.IMGX_CACHE) return process.env.IMGX_CACHE;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg || join(homedir(), '.cache'), 'imgx');
}

export class BlobCache {
  readonly root: string;
  private ready: Promise<void> | undefined;

  constructor(root: string) {
    this.root = root;
  }

  /** Creates the layout on first use. */
  init(): Promise<void> {
    this.ready ??= (async () => {
      try {
        await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
        const layoutFile = join(this.root, 'oci-layout');
        if (!(await exists(layoutFile))) await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
        const indexFile = join(this.root, 'index.json');
        if (!(await exists(indexFile))) {
          await withFileLock(this.lockPath(), async () => {
            if (!(await exists(indexFile))) await writeFileAtomic(indexFile, indexJson([]));
          });
        }
      } catch (e) {
        // Not remembered: a later call (once there is room) tries again.
        this.ready = undefined;
        throw this.cannotWrite(e);
      }
    })();
    return this.ready;
  }

  /** A local failure to write the cache as IMGX_IO ("cannot write to the cache DIR: …"). */
  private cannotWrite(e: unknown): unknown {
    return ioError(e, `cannot write to the cache ${this.root}`);
  }

  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'blobs', algorithm, hex);
  }

  async has(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<boolean> {
    try {
      const s = await stat(this.blobPath(desc.digest));
      return s.isFile() && (desc.size < 0 || s.size === desc.size);
    } catch {
      return false;
    }
  }

  /** Marks a blob as in use now, so a concurrent prune's grace period spares it. */
  async touch(digest: string): Promise<void> {
    const now = new Date();
    await utimes(this.blobPath(digest), now, now).catch(() => {});
  }

  /**
   * Streams `source` into the cache under `desc.digest`, verifying size and digest on the way.
   * Nothing is left under the final name unless every byte matched. A source stream that already
   * verifies itself (every ImageSource's does) need not be hashed twice: pass `verified`.
   */
  async ingest(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    source: Readable,
    opts: { verified?: boolean; onWriting?: (w: BlobWriting) => void } = {},
  ): Promise<void> {
    await this.init();
    const target = this.blobPath(desc.digest);
    try {
      await mkdir(join(target, '..'), { recursive: true });
    } catch (e) {
      source.destroy();
      throw this.cannotWrite(e);
    }
    const tmp = tempNameFor(target);
    // Written, fsynced (in _final), then renamed; a follower may read it meanwhile (growing-blob.ts).
    const out = new FollowedFileWriter(tmp, target, desc.size);
    // The writer's own failures (open, write, fsync, close: a full disk …) are the cache's; the
    // source's (network, digest) pass as they are.
    // (pipeline destroys the writer with the source's error too: that one is not the writer's).
    let writeError: unknown;
    let sourceError: unknown;
    source.once('error', (e) => (sourceError ??= e));
    out.once('error', (e) => {
      if (e !== sourceError) writeError ??= e;
    });
    opts.onWriting?.(out);
    try {
      const sink: Writable = out;
      if (opts.verified) await pipeline(source, sink);
      else await pipeline(source, new VerifyStream(desc), sink);
      try {
        await rename(tmp, target);
      } catch (e) {
        writeError ??= e;
        throw e;
      }
      out.complete();
    } catch (e) {
      const error = e === writeError ? this.cannotWrite(e) : e;
      source.destroy();
      out.complete(error);
      // Removal works on a full disk; should it fail, the error above is still the one to report.
      await rm(tmp, { force: true }).catch(() => {});
      throw error;
    }
  }

  async putBytes(desc: Pick<Descriptor, 'digest' | 'size'>, bytes: Buffer): Promise<void> {
    await this.init();
    verifyBytes(bytes, desc.digest, desc.digest);
    const target = this.blobPath(desc.digest);
    if (await this.has({ digest: desc.digest, size: bytes.length })) return;
    await writeFileAtomic(target, bytes).catch((e: unknown) => {
      throw this.cannotWrite(e);
    });
  }

  /** A cached blob, verified again as it is read (a cache on disk can rot). */
  openRead(desc: Pick<Descriptor, 'digest' | 'size'>, opts: { verify?: boolean } = {}): Readable {
    const rs = createReadStream(this.blobPath(desc.digest), { highWaterMark: 1 << 20 });
    // A caller that checks the content another way (a layer's diff_id) need not pay for this hash.
    if (opts.verify === false) return rs;
    const v = new VerifyStream(desc, `cached blob ${desc.digest}`);
    rs.on('error', (e) => v.destroy(e));
    return rs.pipe(v);
  }

  async readBytes(desc: Pick<Descriptor, 'digest'> & { size?: number }): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.blobPath(desc.digest));
    } catch {
      throw new NotFoundError('IMGX_BLOB_UNKNOWN', `blob ${desc.digest} is not in the cache`);
    }
    verifyBytes(bytes, desc.digest, `cached blob ${desc.digest}`);
    return bytes;
  }

  private lockPath(): string {
    return join(this.root, 'index.json.lock');
  }

  async entries(): Promise<CacheEntry[]> {
    await this.init();
    const path = join(this.root, 'index.json');
    const text = await readFile(path, 'utf8');
    // The cache's own file, but a file on disk all the same: a damaged one is one line, not a crash.
    const corrupt = (why: string) => new ImgxError('IMGX_IO', `${path} is damaged (${why}): remove it to start the cache's index again`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw corrupt((e as Error).message);
    }
    const manifests = (doc as { manifests?: unknown } | null)?.manifests ?? [];
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc) || !Array.isArray(manifests)) throw corrupt('not an image index');
    return manifests.map((m: unknown, i: number) => {
      const e = m as Partial<CacheEntry> | null;
      if (typeof e !== 'object' || e === null || typeof e.digest !== 'string' || typeof e.mediaType !== 'string' || typeof e.size !== 'number') throw corrupt(`entry ${i}`);
      const annotations = e.annotations ?? {};
      if (typeof annotations !== 'object' || annotations === null || Object.values(annotations).some((v) => typeof v !== 'string')) throw corrupt(`entry ${i}'s annotations`);
      return { ...(e as CacheEntry), annotations };
    });
  }

  /** Records that `ref` resolved to `root`, replacing an older entry for the same reference. */
  async recordRef(ref: string, root: Descriptor, extra: Record<string, string> = {}): Promise<void> {
    await this.init();
    await withFileLock(this.lockPath(), async () => {
      const list = (await this.entries()).filter((e) => e.annotations[REF_ANNOTATION] !== ref);
      list.push({
        mediaType: root.mediaType,
        digest: root.digest,
        size: root.size,
        annotations: { [REF_ANNOTATION]: ref, [PULLED_ANNOTATION]: new Date().toISOString(), ...extra },
      });
      list.sort((a, b) => a.annotations[REF_ANNOTATION]!.localeCompare(b.annotations[REF_ANNOTATION]!));
      await writeFileAtomic(join(this.root, 'index.json'), indexJson(list));
    }).catch((e: unknown) => {
      throw this.cannotWrite(e);
    });
  }

  async lookupRef(ref: string): Promise<CacheEntry | undefined> {
    return (await this.entries()).find((e) => e.annotations[REF_ANNOTATION] === ref);
  }

  /** Removes entries (all, or those a predicate picks), under the index lock. Returns what was removed. */
  async removeEntries(pick: (e: CacheEntry) => boolean): Promise<CacheEntry[]> {
    await this.init();
    return withFileLock(this.lockPath(), async () => {
      const all = await this.entries();
      const gone = all.filter(pick);
      if (gone.length) await writeFileAtomic(join(this.root, 'index.json'), indexJson(all.filter((e) => !pick(e))));
      return gone;
    }).catch((e: unknown) => {
      throw this.cannotWrite(e);
    });
  }

  /** Every blob file with its size and mtime. */
  async listBlobs(): Promise<{ digest: string; size: number; mtimeMs: number }[]> {
    await this.init();
    const out: { digest: string; size: number; mtimeMs: number }[] = [];
    for (const alg of await readdir(join(this.root, 'blobs'))) {
      for (const name of await readdir(join(this.root, 'blobs', alg))) {
        if (name.startsWith('.')) continue;
        const s = await stat(join(this.root, 'blobs', alg, name)).catch(() => undefined);
        if (s?.isFile()) out.push({ digest: `${alg}:${name}`, size: s.size, mtimeMs: s.mtimeMs });
      }
    }
    return out;
  }

  /** Temp files left by interrupted writes, and work files (layer spools) under tmp/. */
  async listTemps(): Promise<{ path: string; mtimeMs: number }[]> {
    await this.init();
    const out: { path: string; mtimeMs: number }[] = [];
    for (const name of await readdir(join(this.root, 'tmp')).catch(() => [] as string[])) {
      const p = join(this.root, 'tmp', name);
      const s = await stat(p).catch(() => undefined);
      if (s) out.push({ path: p, mtimeMs: s.mtimeMs });
    }
    for (const alg of await readdir(join(this.root, 'blobs'))) {
      for (const name of await readdir(join(this.root, 'blobs', alg))) {
        if (!name.startsWith('.')) continue;
        const p = join(this.root, 'blobs', alg, name);
        const s = await stat(p).catch(() => undefined);
        if (s) out.push({ path: p, mtimeMs: s.mtimeMs });
      }
    }
    return out;
  }

  async removeBlob(digest: string): Promise<void> {
    await rm(this.blobPath(digest), { force: true }).catch((e: unknown) => {
      throw this.cannotWrite(e);
    });
  }
}

function indexJson(manifests: CacheEntry[]): string {
  return JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }, null, 2) + '\n';
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
