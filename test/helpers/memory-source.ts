// An in-memory ImageSource for unit tests of pull, cache and resolve: blobs by digest, verified
// like a real source, with hooks to corrupt or slow a blob.
import { Readable } from 'node:stream';
import { sha256 } from '../../src/image/digest.ts';
import type { Descriptor } from '../../src/image/descriptor.ts';
import type { BlobOpenOptions, ImageSource, ManifestBlob } from '../../src/image/source.ts';
import { VerifyStream } from '../../src/image/verify-stream.ts';
import { NotFoundError } from '../../src/errors.ts';

export class MemorySource implements ImageSource {
  readonly displayName = 'memory:test';
  blobs = new Map<string, Buffer>();
  opened: string[] = [];
  rootDigest = '';
  rootMediaType = '';
  /** Bytes served instead of the real ones, to simulate a lying registry. */
  corrupt = new Map<string, Buffer>();

  put(bytes: Buffer | string): Descriptor & { bytes: Buffer } {
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    const digest = sha256(b);
    this.blobs.set(digest, b);
    return { mediaType: '', digest, size: b.length, bytes: b };
  }

  /** A single-platform image with the given layer payloads. Returns the descriptors. */
  addImage(layers: Buffer[], arch = 'amd64') {
    const layerDescs = layers.map((l) => ({ ...this.put(l), mediaType: 'application/vnd.oci.image.layer.v1.tar' }));
    const config = this.put(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: layerDescs.map((l) => l.digest) }, config: { Cmd: ['sh'] } }));
    const manifest = this.put(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: layerDescs.map(({ bytes: _b, ...d }) => d),
      }),
    );
    return { layers: layerDescs, config, manifest: { ...manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' } };
  }

  setRoot(d: { digest: string; mediaType: string }) {
    this.rootDigest = d.digest;
    this.rootMediaType = d.mediaType;
  }

  async getRootManifest(): Promise<ManifestBlob> {
    return { bytes: this.blobs.get(this.rootDigest)!, digest: this.rootDigest, mediaType: this.rootMediaType };
  }
  async getManifest(desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>): Promise<ManifestBlob> {
    const b = this.blobs.get(desc.digest);
    if (!b) throw new NotFoundError('IMGX_MANIFEST_UNKNOWN', `no manifest ${desc.digest}`);
    return { bytes: b, digest: desc.digest, mediaType: desc.mediaType ?? '' };
  }
  async openBlob(desc: Descriptor, options?: BlobOpenOptions): Promise<Readable> {
    this.opened.push(desc.digest);
    const b = this.corrupt.get(desc.digest) ?? this.blobs.get(desc.digest);
    if (!b) throw new NotFoundError('IMGX_BLOB_UNKNOWN', `no blob ${desc.digest}`);
    const chunks: Buffer[] = [];
    for (let i = 0; i < b.length; i += 65536) chunks.push(b.subarray(i, i + 65536));
    const rs = Readable.from(chunks);
    if (options?.onProgress) rs.on('data', (c: Buffer) => options.onProgress!(c.length));
    return rs.pipe(new VerifyStream(desc));
  }
  async readBlob(desc: Descriptor): Promise<Buffer> {
    const s = await this.openBlob(desc);
    const parts: Buffer[] = [];
    for await (const c of s) parts.push(c as Buffer);
    return Buffer.concat(parts);
  }
  async close() {}
}
