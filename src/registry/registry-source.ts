// The ImageSource of a registry reference (docker://…).
import type { Readable } from 'node:stream';
import { IntegrityError } from '../errors.ts';
import type { Descriptor } from '../image/descriptor.ts';
import { registryDisplayName, type Reference } from '../image/reference.ts';
import { MANIFEST_CAP, type BlobOpenOptions, type ImageSource, type ManifestBlob } from '../image/source.ts';
import { RegistryClient } from './client.ts';
import type { RegistryOptions } from './options.ts';

export { checkLogin } from './login.ts';

export class RegistrySource implements ImageSource {
  readonly displayName: string;
  readonly reference: Reference;
  readonly client: RegistryClient;

  constructor(ref: Reference, options: RegistryOptions = {}) {
    this.reference = ref;
    this.client = new RegistryClient(ref.domain, options);
    this.displayName = registryDisplayName(ref);
  }

  /** By digest when the reference has one (it pins the content), else by tag, else `latest`. */
  getRootManifest(): Promise<ManifestBlob> {
    const r = this.reference;
    return this.client.getManifest(r.path, r.digest ?? r.tag ?? 'latest');
  }

  async getManifest(desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>): Promise<ManifestBlob> {
    if (desc.size !== undefined && desc.size > MANIFEST_CAP) {
      throw new IntegrityError('IMGX_MANIFEST_TOO_LARGE', `${this.client.display(this.reference.path, desc.digest)}: ${desc.size} bytes, more than the ${MANIFEST_CAP}-byte limit`);
    }
    const m = await this.client.getManifest(this.reference.path, desc.digest);
    if (desc.size !== undefined && desc.size >= 0 && m.bytes.length !== desc.size) {
      throw new IntegrityError('IMGX_SIZE_MISMATCH', `${this.client.display(this.reference.path, desc.digest)}: ${m.bytes.length} bytes, its descriptor declares ${desc.size}`);
    }
    return m;
  }

  openBlob(desc: Descriptor, options?: BlobOpenOptions): Promise<Readable> {
    return this.client.openBlob(this.reference.path, desc, options);
  }

  readBlob(desc: Descriptor, cap = MANIFEST_CAP): Promise<Buffer> {
    return this.client.readBlob(this.reference.path, desc, cap);
  }

  listTags(): Promise<string[]> {
    return this.client.listTags(this.reference.path);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}
