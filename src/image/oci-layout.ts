// An image in an OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md),
// over any LayoutFiles: `oci-layout` and `index.json` name the images, blobs live at
// blobs/<alg>/<hex>. Digests are validated before they become paths; every read is verified.
import type { Readable } from 'node:stream';
import { BadArchiveError, IntegrityError, NotFoundError, UnsupportedError, UsageError } from '../errors.ts';
import type { Descriptor } from './descriptor.ts';
import { parseDigest } from './digest.ts';
import type { LayoutFiles } from './layout-files.ts';
import { detectMediaType, platformOf } from './manifest.ts';
import { Fields, type ShapeFail } from './shape.ts';
import { MANIFEST_CAP, type BlobOpenOptions, type ImageSource, type ManifestBlob } from './source.ts';
import { checkBytes, tooLarge, verifiedStream } from './verified-read.ts';

export const REF_NAME = 'org.opencontainers.image.ref.name';
/** containerd (and Docker ≥ 25 `docker save`) put the full reference here. */
export const CONTAINERD_NAME = 'io.containerd.image.name';

export function blobPath(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

function badIndex(where: string, why: string): never {
  throw new IntegrityError('IMGX_BAD_MANIFEST', `${where}/index.json: ${why}`);
}

/** Checks `oci-layout` and returns the descriptors of `index.json` (shape-checked; digests are checked on use). */
export async function readLayoutIndex(files: LayoutFiles): Promise<Descriptor[]> {
  const marker = await files.read('oci-layout', 64 * 1024);
  if (!marker) throw new BadArchiveError(`${files.where}: not an OCI image layout (no oci-layout file)`);
  let version: unknown;
  try {
    version = JSON.parse(marker.toString('utf8'))?.imageLayoutVersion;
  } catch {
    throw new BadArchiveError(`${files.where}/oci-layout: not valid JSON`);
  }
  if (typeof version !== 'string') throw new BadArchiveError(`${files.where}/oci-layout: no imageLayoutVersion`);
  if (!/^1\.\d+\.\d+$/.test(version)) throw new UnsupportedError(`${files.where}: OCI image layout version ${JSON.stringify(version)} is not supported`);

  const bytes = await files.read('index.json', MANIFEST_CAP);
  if (!bytes) throw new BadArchiveError(`${files.where}: OCI image layout without index.json`);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    badIndex(files.where, 'not valid JSON');
  }
  const manifests = (doc as { manifests?: unknown } | null)?.manifests;
  if (!Array.isArray(manifests)) badIndex(files.where, 'no manifests list');
  const fail: ShapeFail = (field, why) => badIndex(files.where, `${field} ${why}`);
  return manifests.map((m: unknown, i: number) => {
    const d = m as Partial<Descriptor> | null;
    if (typeof d !== 'object' || d === null) badIndex(files.where, `manifests[${i}] is not an object`);
    if (typeof d.mediaType !== 'string' || typeof d.digest !== 'string') badIndex(files.where, `manifests[${i}] has no mediaType or digest`);
    if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) badIndex(files.where, `manifests[${i}] has an invalid size`);
    // The fields read later (ref names, platforms) are typed here; the digest is checked on use.
    const f = new Fields(d as Record<string, unknown>, `manifests[${i}]`, fail);
    const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
    const annotations = f.optStringMap('annotations');
    if (annotations !== undefined) out.annotations = annotations;
    const platform = f.optObject('platform');
    if (platform !== undefined) out.platform = platformOf(platform);
    return out;
  });
}

export function refNameOf(desc: Descriptor): string | undefined {
  return desc.annotations?.[REF_NAME];
}

/** The ref names of the index, unique, in index order. */
export function refNames(entries: Descriptor[]): string[] {
  return [...new Set(entries.map(refNameOf).filter((n): n is string => !!n))];
}

function describeEntries(entries: Descriptor[]): string {
  return entries.map((e) => refNameOf(e) ?? e.annotations?.[CONTAINERD_NAME] ?? e.digest).join(', ');
}

/**
 * The entry a tag names: its ref.name annotation equals the tag, or else its containerd name is the
 * tag or ends in `:tag`. Without a tag, the only entry.
 */
export function selectEntry(entries: Descriptor[], tag: string | undefined, where: string): Descriptor {
  if (tag === undefined || tag === '') {
    // Several names for one image (umoci tag, skopeo copies under two tags) are still one image.
    if (entries.length > 0 && new Set(entries.map((e) => e.digest)).size === 1) return entries[0]!;
    if (entries.length === 0) throw new NotFoundError('IMGX_MANIFEST_UNKNOWN', `${where}: the layout's index.json lists no images`);
    throw new UsageError(`${where} holds ${entries.length} images; name one with a tag: ${describeEntries(entries)}`);
  }
  let matches = entries.filter((e) => refNameOf(e) === tag);
  if (matches.length === 0) {
    matches = entries.filter((e) => {
      const full = e.annotations?.[CONTAINERD_NAME];
      return full !== undefined && (full === tag || full.endsWith(`:${tag}`));
    });
  }
  const digests = new Set(matches.map((m) => m.digest));
  if (digests.size === 0) {
    const known = describeEntries(entries);
    throw new NotFoundError('IMGX_MANIFEST_UNKNOWN', `${where}: no image tagged ${JSON.stringify(tag)}${known ? `; the layout has: ${known}` : ''}`);
  }
  if (digests.size > 1) throw new UsageError(`${where}: tag ${JSON.stringify(tag)} names ${digests.size} different images: ${describeEntries(matches)}`);
  return matches[0]!;
}

/** A manifest or index blob read whole, capped, and verified against the descriptor. */
export async function readManifestFrom(
  files: LayoutFiles,
  desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>,
  what: string,
): Promise<ManifestBlob> {
  const path = blobPath(desc.digest);
  if (desc.size !== undefined && desc.size > MANIFEST_CAP) throw tooLarge(what, desc.size, MANIFEST_CAP);
  const bytes = await files.read(path, MANIFEST_CAP);
  if (!bytes) throw new NotFoundError('IMGX_MANIFEST_UNKNOWN', `${what}: not in ${files.where}`);
  checkBytes(bytes, desc, what);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: not a JSON object`);
  return { bytes, mediaType: detectMediaType(doc, desc.mediaType), digest: desc.digest };
}

export class OciLayoutImage implements ImageSource {
  readonly displayName: string;
  /** The descriptor (from index.json) of the image the source names. */
  readonly root: Descriptor;
  private readonly files: LayoutFiles;
  private readonly tags: string[];

  constructor(files: LayoutFiles, root: Descriptor, displayName: string, tags: string[]) {
    parseDigest(root.digest);
    this.files = files;
    this.root = root;
    this.displayName = displayName;
    this.tags = tags;
  }

  /** Reads the layout's index and picks the image `tag` names (or the only one). */
  static async open(files: LayoutFiles, displayName: string, tag?: string): Promise<OciLayoutImage> {
    const entries = await readLayoutIndex(files);
    const root = selectEntry(entries, tag, displayName);
    return new OciLayoutImage(files, root, displayName, refNames(entries));
  }

  getRootManifest(): Promise<ManifestBlob> {
    return this.getManifest(this.root);
  }

  getManifest(desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>): Promise<ManifestBlob> {
    return readManifestFrom(this.files, desc, `${this.displayName} manifest ${desc.digest}`);
  }

  async openBlob(desc: Descriptor, options: BlobOpenOptions = {}): Promise<Readable> {
    const what = `${this.displayName} blob ${desc.digest}`;
    const opened = await this.files.open(blobPath(desc.digest));
    if (!opened) throw new NotFoundError('IMGX_BLOB_UNKNOWN', `${what}: not in ${this.files.where}`);
    if (opened.size !== desc.size) {
      opened.stream.destroy();
      throw new IntegrityError('IMGX_SIZE_MISMATCH', `${what}: ${opened.size} bytes, its descriptor declares ${desc.size}`);
    }
    return verifiedStream(opened.stream, desc, what, options);
  }

  async readBlob(desc: Descriptor, cap = MANIFEST_CAP): Promise<Buffer> {
    const what = `${this.displayName} blob ${desc.digest}`;
    const path = blobPath(desc.digest);
    if (desc.size > cap) throw tooLarge(what, desc.size, cap);
    const bytes = await this.files.read(path, cap);
    if (!bytes) throw new NotFoundError('IMGX_BLOB_UNKNOWN', `${what}: not in ${this.files.where}`);
    checkBytes(bytes, desc, what);
    return bytes;
  }

  async listTags(): Promise<string[]> {
    return [...this.tags];
  }

  close(): Promise<void> {
    return this.files.close();
  }
}
