// `docker-archive:FILE[:REF]`: the `docker save` format, read in place. manifest.json lists images
// as {Config, RepoTags, Layers} paths inside the tar; there is no distribution manifest, so one
// is synthesised (Docker schema 2, layer digests from hashing each layer's bytes once). Docker ≥ 25
// writes the archive as an OCI layout as well: then the original manifest is served instead, so
// digests are the registry's.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { BadArchiveError, BadReferenceError, IntegrityError, NotFoundError, UsageError } from '../errors.ts';
import type { Descriptor } from './descriptor.ts';
import { sha256 } from './digest.ts';
import { quotedText } from '../util/terminal-text.ts';
import { parseManifestBlob } from './manifest.ts';
import { DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER_ZSTD, isIndexType, isManifestType } from './media-types.ts';
import { archiveFiles } from './oci-archive-source.ts';
import { CONTAINERD_NAME, OciLayoutImage, readLayoutIndex, readManifestFrom } from './oci-layout.ts';
import type { LayoutFiles } from './layout-files.ts';
import { formatReference, parseDockerReference } from './reference.ts';
import { MANIFEST_CAP, type BlobOpenOptions, type ImageSource, type ManifestBlob } from './source.ts';
import { TarArchive, type TarMember } from './tar-archive.ts';
import { checkBytes, tooLarge, verifiedStream } from './verified-read.ts';

interface SavedImage {
  Config: string;
  RepoTags: string[];
  Layers: string[];
}

/** `nginx` → `docker.io/library/nginx:latest`; undefined for text that is not a reference. */
function normaliseRef(s: string): string | undefined {
  try {
    return formatReference(parseDockerReference(s));
  } catch {
    return undefined;
  }
}

async function readManifestJson(archive: TarArchive): Promise<SavedImage[]> {
  const member = archive.get('manifest.json');
  if (!member) throw new BadArchiveError(`${archive.file}: not a docker archive (no manifest.json)`);
  if (member.size > MANIFEST_CAP) throw tooLarge(`${archive.file}:manifest.json`, member.size, MANIFEST_CAP);
  let doc: unknown;
  try {
    doc = JSON.parse((await archive.read(member)).toString('utf8'));
  } catch {
    throw new BadArchiveError(`${archive.file}: manifest.json is not valid JSON`);
  }
  if (!Array.isArray(doc)) throw new BadArchiveError(`${archive.file}: manifest.json is not a list`);
  return doc.map((entry: unknown, i: number) => {
    const e = entry as Partial<Record<keyof SavedImage, unknown>> | null;
    const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
    if (typeof e !== 'object' || e === null || typeof e.Config !== 'string' || !isStrings(e.Layers)) {
      throw new BadArchiveError(`${archive.file}: manifest.json[${i}] needs Config and Layers`);
    }
    if (e.RepoTags != null && !isStrings(e.RepoTags)) throw new BadArchiveError(`${archive.file}: manifest.json[${i}].RepoTags is not a list of strings`);
    return { Config: e.Config, Layers: e.Layers, RepoTags: e.RepoTags ?? [] };
  });
}

function describeImages(images: SavedImage[]): string {
  return images.map((im, i) => `@${i}${im.RepoTags.length ? ` (${im.RepoTags.join(', ')})` : ''}`).join(', ');
}

/** The image `ref` names: `@N`, a tag compared after normalisation, or the only image. */
function pickImage(images: SavedImage[], ref: string | undefined, where: string): number {
  if (images.length === 0) throw new BadArchiveError(`${where}: manifest.json lists no images`);
  if (ref === undefined || ref === '') {
    if (images.length === 1) return 0;
    throw new UsageError(`${where} holds ${images.length} images; name one with a tag or @N: ${describeImages(images)}`);
  }
  const at = /^@(\d+)$/.exec(ref);
  if (at) {
    const n = Number(at[1]);
    if (n >= images.length) throw new NotFoundError('IMGX_MANIFEST_UNKNOWN', `${where}: no image @${n}; the archive has ${describeImages(images)}`);
    return n;
  }
  const wanted = normaliseRef(ref);
  if (wanted === undefined) throw new BadReferenceError(`invalid reference ${JSON.stringify(ref)}`);
  const found = images.flatMap((im, i) => (im.RepoTags.some((t) => (normaliseRef(t) ?? t) === wanted) ? [i] : []));
  if (found.length === 0) throw new NotFoundError('IMGX_MANIFEST_UNKNOWN', `${where}: no image tagged ${ref}; the archive has ${describeImages(images)}`);
  if (found.length > 1) throw new UsageError(`${where}: ${ref} names ${found.length} images; use @N: ${describeImages(images)}`);
  return found[0]!;
}

function member(archive: TarArchive, name: string, what: string): TarMember {
  const m = archive.get(name);
  if (!m) throw new BadArchiveError(`${archive.file}: ${what} ${JSON.stringify(name)} is not in the archive`);
  return m;
}

/**
 * Docker ≥ 25 archives: the index.json entry (a manifest, or an index with a child) whose config is
 * `configDigest`, preferring entries named like one of the image's tags. Undefined when none is.
 */
async function findOciRoot(files: LayoutFiles, configDigest: string, repoTags: string[], where: string): Promise<Descriptor | undefined> {
  const tags = new Set(repoTags.map((t) => normaliseRef(t) ?? t));
  const entries = await readLayoutIndex(files);
  const named = (d: Descriptor) => {
    const n = d.annotations?.[CONTAINERD_NAME];
    return n !== undefined && tags.has(normaliseRef(n) ?? n);
  };
  const ordered = [...entries.filter(named), ...entries.filter((d) => !named(d))];
  const configOf = async (desc: Descriptor): Promise<string | undefined> => {
    // Attestations and other artifacts in an index are not images: skip them unread.
    if (!isIndexType(desc.mediaType) && !isManifestType(desc.mediaType)) return undefined;
    let blob: ManifestBlob;
    try {
      blob = await readManifestFrom(files, desc, `${where} manifest ${desc.digest}`);
    } catch (e) {
      // Blobs of other platforms are often absent from a save; skip what is not there.
      if ((e as { code?: string }).code === 'IMGX_MANIFEST_UNKNOWN') return undefined;
      throw e;
    }
    const parsed = parseManifestBlob(blob);
    if (parsed.kind === 'manifest') return parsed.config.digest === configDigest ? configDigest : undefined;
    for (const child of parsed.manifests) if ((await configOf(child)) === configDigest) return configDigest;
    return undefined;
  };
  for (const entry of ordered) if ((await configOf(entry)) === configDigest) return entry;
  return undefined;
}

/** The media type of a layer file from its first bytes (docker save stores them uncompressed, others may not). */
function layerTypeOf(head: Buffer): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return DOCKER_LAYER_GZIP;
  if (head.readUInt32BE(0) === 0x28b52ffd) return OCI_LAYER_ZSTD;
  return DOCKER_LAYER;
}

async function hashMember(archive: TarArchive, m: TarMember): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of archive.createReadStream(m)) hash.update(chunk as Buffer);
  return 'sha256:' + hash.digest('hex');
}

interface Synthesised {
  manifest: ManifestBlob;
  blobs: Map<string, TarMember>;
}

class DockerArchiveSource implements ImageSource {
  readonly displayName: string;
  private readonly archive: TarArchive;
  private readonly config: { member: TarMember; bytes: Buffer; digest: string };
  private readonly layers: TarMember[];
  private readonly tags: string[];
  private synthesised: Promise<Synthesised> | undefined;

  constructor(archive: TarArchive, displayName: string, config: { member: TarMember; bytes: Buffer; digest: string }, layers: TarMember[], tags: string[]) {
    this.archive = archive;
    this.displayName = displayName;
    this.config = config;
    this.layers = layers;
    this.tags = tags;
  }

  private synthesise(): Promise<Synthesised> {
    this.synthesised ??= this.build();
    return this.synthesised;
  }

  private async build(): Promise<Synthesised> {
    let diffIds: unknown;
    try {
      diffIds = (JSON.parse(this.config.bytes.toString('utf8')) as { rootfs?: { diff_ids?: unknown } } | null)?.rootfs?.diff_ids;
    } catch {
      throw new IntegrityError('IMGX_BAD_MANIFEST', `${this.displayName}: the image config is not valid JSON`);
    }
    const blobs = new Map<string, TarMember>([[this.config.digest, this.config.member]]);
    // Layers linked from several places are the same bytes: hash each region once.
    const byOffset = new Map<number, Promise<string>>();
    const layers: Descriptor[] = [];
    for (const [i, m] of this.layers.entries()) {
      let digest = byOffset.get(m.offset);
      if (!digest) byOffset.set(m.offset, (digest = hashMember(this.archive, m)));
      const head = Buffer.alloc(4);
      (await this.archive.readRange(m.offset, Math.min(4, m.size))).copy(head);
      const mediaType = layerTypeOf(head);
      const d = await digest;
      // An uncompressed layer's digest is its diff_id: check it against the config now.
      if (mediaType === DOCKER_LAYER && Array.isArray(diffIds) && typeof diffIds[i] === 'string' && diffIds[i] !== d) {
        throw new IntegrityError('IMGX_DIGEST_MISMATCH', `${this.displayName}: layer ${m.name}: digest ${d} differs from the config's diff_id ${quotedText(diffIds[i])}`);
      }
      blobs.set(d, m);
      // Stable key order and no whitespace: the same archive always gives the same manifest digest.
      layers.push({ mediaType, size: m.size, digest: d });
    }
    const doc = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, size: this.config.bytes.length, digest: this.config.digest },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(doc), 'utf8');
    return { manifest: { bytes, mediaType: DOCKER_MANIFEST, digest: sha256(bytes) }, blobs };
  }

  async getRootManifest(): Promise<ManifestBlob> {
    return (await this.synthesise()).manifest;
  }

  async getManifest(desc: Pick<Descriptor, 'digest'> & Partial<Descriptor>): Promise<ManifestBlob> {
    const { manifest } = await this.synthesise();
    if (desc.digest !== manifest.digest) throw new NotFoundError('IMGX_MANIFEST_UNKNOWN', `${this.displayName}: no manifest ${desc.digest}`);
    return manifest;
  }

  private async blobMember(desc: Descriptor): Promise<{ member: TarMember; what: string }> {
    const what = `${this.displayName} blob ${desc.digest}`;
    const member = (await this.synthesise()).blobs.get(desc.digest);
    if (!member) throw new NotFoundError('IMGX_BLOB_UNKNOWN', `${what}: not in the archive`);
    if (member.size !== desc.size) throw new IntegrityError('IMGX_SIZE_MISMATCH', `${what}: ${member.size} bytes, its descriptor declares ${desc.size}`);
    return { member, what };
  }

  async openBlob(desc: Descriptor, options: BlobOpenOptions = {}): Promise<Readable> {
    const { member, what } = await this.blobMember(desc);
    return verifiedStream(this.archive.createReadStream(member), desc, what, options);
  }

  async readBlob(desc: Descriptor, cap = MANIFEST_CAP): Promise<Buffer> {
    if (desc.size > cap) throw tooLarge(`${this.displayName} blob ${desc.digest}`, desc.size, cap);
    const { member, what } = await this.blobMember(desc);
    const bytes = await this.archive.read(member);
    checkBytes(bytes, desc, what);
    return bytes;
  }

  async listTags(): Promise<string[]> {
    return [...this.tags];
  }

  close(): Promise<void> {
    return this.archive.close();
  }
}

/** Opens the image `ref` names (a tag, normalised like Docker, or `@N`) in a `docker save` archive. */
export async function openDockerArchive(file: string, ref?: string): Promise<ImageSource> {
  const archive = await TarArchive.open(file);
  const displayName = `docker-archive:${file}${ref ? `:${ref}` : ''}`;
  try {
    const images = await readManifestJson(archive);
    const image = images[pickImage(images, ref, displayName)]!;
    const tags = [...new Set(images.flatMap((im) => im.RepoTags))];

    const configMember = member(archive, image.Config, 'config');
    if (configMember.size > MANIFEST_CAP) throw tooLarge(`${file}:${image.Config}`, configMember.size, MANIFEST_CAP);
    const configBytes = await archive.read(configMember);
    const configDigest = sha256(configBytes);
    // Config files are named by their digest (`<hex>.json`, or `blobs/sha256/<hex>`): hold them to it.
    const named = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(image.Config)?.[1];
    if (named && `sha256:${named}` !== configDigest) {
      throw new IntegrityError('IMGX_DIGEST_MISMATCH', `${displayName}: config ${image.Config} has digest ${configDigest}`);
    }

    if (archive.get('oci-layout') && archive.get('index.json')) {
      const files = archiveFiles(archive);
      const root = await findOciRoot(files, configDigest, image.RepoTags, displayName);
      if (root) return new OciLayoutImage(files, root, displayName, tags);
    }
    const layers = image.Layers.map((l) => member(archive, l, 'layer'));
    return new DockerArchiveSource(archive, displayName, { member: configMember, bytes: configBytes, digest: configDigest }, layers, tags);
  } catch (e) {
    await archive.close();
    throw e;
  }
}
