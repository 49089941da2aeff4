// A source made on first use. The registry source pulls in the whole HTTP stack (~0.1 s to import);
// a command served from the cache (`imgx run` of a cached tag) never needs it, so it is only loaded
// when the cache cannot answer.
import type { Descriptor } from './descriptor.ts';
import type { BlobOpenOptions, ImageSource, ManifestBlob } from './source.ts';
import type { Readable } from 'node:stream';

export class LazySource implements ImageSource {
  readonly displayName: string;
  private readonly make: () => Promise<ImageSource>;
  private made: Promise<ImageSource> | undefined;

  constructor(displayName: string, make: () => Promise<ImageSource>) {
    this.displayName = displayName;
    this.make = make;
  }

  private source(): Promise<ImageSource> {
    return (this.made ??= this.make());
  }

  async getRootManifest(): Promise<ManifestBlob> {
    return (await this.source()).getRootManifest();
  }

  async getManifest(desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>): Promise<ManifestBlob> {
    return (await this.source()).getManifest(desc);
  }

  async openBlob(desc: Descriptor, options?: BlobOpenOptions): Promise<Readable> {
    return (await this.source()).openBlob(desc, options);
  }

  async readBlob(desc: Descriptor, cap?: number): Promise<Buffer> {
    return (await this.source()).readBlob(desc, cap);
  }

  async listTags(): Promise<string[]> {
    const s = await this.source();
    return s.listTags ? s.listTags() : [];
  }

  async close(): Promise<void> {
    if (this.made) await (await this.made).close();
  }
}
