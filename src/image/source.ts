// The one contract every image source (registry, OCI layout, OCI archive, docker archive) meets,
// so every command works on every source. Sources return verified bytes: manifests are checked
// against their digest before they are returned, blob streams error before 'end' if they do not
// match their descriptor.
import type { Readable } from 'node:stream';
import type { Descriptor } from './descriptor.ts';

/** A manifest or index as raw bytes, with its media type and digest (sha256 of the bytes). */
export interface ManifestBlob {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

export interface BlobOpenOptions {
  /** Called with the count of new bytes as they arrive (for progress display). */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
  /**
   * The caller verifies the content another way (a layer's diff_id over its uncompressed stream),
   * so a local source (a layout, an archive, the cache) may skip hashing the compressed bytes.
   * Network sources ignore it: what comes over the wire is always checked before it is cached.
   */
  trustContent?: boolean;
}

export interface ImageSource {
  /** How the source is shown to a person, e.g. `docker://docker.io/library/nginx:latest`. */
  readonly displayName: string;
  /** The manifest or index that the reference names (by tag or digest). */
  getRootManifest(): Promise<ManifestBlob>;
  /** A manifest or index by digest, e.g. a child of an index. */
  getManifest(desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>): Promise<ManifestBlob>;
  /** A blob's bytes, verified against the descriptor while they stream. */
  openBlob(desc: Descriptor, options?: BlobOpenOptions): Promise<Readable>;
  /** A small blob (a config) read whole, verified and capped. */
  readBlob(desc: Descriptor, cap?: number): Promise<Buffer>;
  /** Tags of the repository the source names, when the source has tags. */
  listTags?(): Promise<string[]>;
  close(): Promise<void>;
}

/** Manifests and configs larger than this are refused (design: safety rules). */
export const MANIFEST_CAP = 4 * 1024 * 1024;
