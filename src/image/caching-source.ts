// Reads through the blob cache: what the cache holds is served from disk (verified again), what it
// lacks comes from the upstream source, and manifests and configs fetched on the way are kept.
// When the upstream is unreachable, a tag the cache has seen before is served from the cache.
import type { Readable } from 'node:stream';
import { isImgxError } from '../errors.ts';
import type { BlobCache } from './blob-cache.ts';
import type { Descriptor } from './descriptor.ts';
import { detectMediaType } from './manifest.ts';
import { isObject } from './shape.ts';
import type { BlobOpenOptions, ImageSource, ManifestBlob } from './source.ts';
import { MANIFEST_CAP } from './source.ts';
import { IntegrityError, NotFoundError } from '../errors.ts';

export interface CachingSourceOptions {
  /** The full reference the cache records this image under, for offline fallback. */
  refKey?: string;
  /** The digest the reference pins, when it does: served from the cache without asking upstream. */
  pinnedDigest?: string;
  warn?: (message: string) => void;
  /**
   * `missing`: a tag the cache has seen is served from the cache without asking upstream (Docker's
   * `run` policy); `never`: nothing is asked upstream at all. Default `always`: the tag is looked up.
   */
  pull?: PullPolicy;
}

export type PullPolicy = 'always' | 'missing' | 'never';

const OFFLINE_CODES = new Set(['IMGX_UNREACHABLE', 'IMGX_TIMEOUT']);

export class CachingSource implements ImageSource {
  readonly upstream: ImageSource;
  readonly cache: BlobCache;
  private readonly opts: CachingSourceOptions;

  constructor(upstream: ImageSource, cache: BlobCache, opts: CachingSourceOptions = {}) {
    this.upstream = upstream;
    this.cache = cache;
    this.opts = opts;
  }

  get displayName(): string {
    return this.upstream.displayName;
  }

  private async fromCache(digest: string, mediaTypeHint?: string): Promise<ManifestBlob | undefined> {
    if (!(await this.cache.has({ digest, size: -1 }))) return undefined;
    const bytes = await this.cache.readBytes({ digest });
    if (bytes.length > MANIFEST_CAP) throw new IntegrityError('IMGX_MANIFEST_TOO_LARGE', `${this.displayName}: cached manifest ${digest} is over the cap`);
    let doc: unknown;
    try {
      doc = JSON.parse(bytes.toString('utf8'));
    } catch {
      /* parseManifestBlob reports it */
    }
    // Any blob can be named by its digest: `null`, a list … are parseManifestBlob's to report too.
    return { bytes, digest, mediaType: detectMediaType(isObject(doc) ? doc : {}, mediaTypeHint) };
  }

  private offline(what: string): never {
    throw new NotFoundError('IMGX_NOT_FOUND', `${this.displayName}: ${what} is not in the cache (--pull never)`);
  }

  async getRootManifest(): Promise<ManifestBlob> {
    if (this.opts.pinnedDigest) {
      const hit = await this.fromCache(this.opts.pinnedDigest);
      if (hit) return hit;
    }
    if (this.opts.pull === 'missing' || this.opts.pull === 'never') {
      const entry = this.opts.refKey ? await this.cache.lookupRef(this.opts.refKey) : undefined;
      const hit = entry && (await this.fromCache(entry.digest, entry.mediaType));
      if (hit) return hit;
      if (this.opts.pull === 'never') this.offline('the image');
    }
    try {
      const m = await this.upstream.getRootManifest();
      await this.cache.putBytes({ digest: m.digest, size: m.bytes.length }, m.bytes);
      return m;
    } catch (e) {
      if (!this.opts.refKey || !isImgxError(e) || !OFFLINE_CODES.has(e.code)) throw e;
      const entry = await this.cache.lookupRef(this.opts.refKey);
      const hit = entry && (await this.fromCache(entry.digest, entry.mediaType));
      if (!hit) throw e;
      this.opts.warn?.(`${e.message}; using the cached ${this.opts.refKey} (${entry.digest})`);
      return hit;
    }
  }

  async getManifest(desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>): Promise<ManifestBlob> {
    const hit = await this.fromCache(desc.digest, desc.mediaType);
    if (hit) return hit;
    if (this.opts.pull === 'never') this.offline(`manifest ${desc.digest}`);
    const m = await this.upstream.getManifest(desc);
    await this.cache.putBytes({ digest: m.digest, size: m.bytes.length }, m.bytes);
    return m;
  }

  async openBlob(desc: Descriptor, options?: BlobOpenOptions): Promise<Readable> {
    if (await this.cache.has(desc)) {
      await this.cache.touch(desc.digest);
      const rs = this.cache.openRead(desc, { verify: !options?.trustContent });
      if (options?.onProgress) rs.on('data', (c: Buffer) => options.onProgress!(c.length));
      return rs;
    }
    if (this.opts.pull === 'never') this.offline(`blob ${desc.digest}`);
    return this.upstream.openBlob(desc, options);
  }

  async readBlob(desc: Descriptor, cap = MANIFEST_CAP): Promise<Buffer> {
    if (await this.cache.has(desc)) return this.cache.readBytes(desc);
    if (this.opts.pull === 'never') this.offline(`blob ${desc.digest}`);
    const bytes = await this.upstream.readBlob(desc, cap);
    await this.cache.putBytes(desc, bytes);
    return bytes;
  }

  listTags(): Promise<string[]> {
    if (!this.upstream.listTags) return Promise.resolve([]);
    return this.upstream.listTags();
  }

  close(): Promise<void> {
    return this.upstream.close();
  }
}
