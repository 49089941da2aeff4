// From what a reference names to one image: follow an index to the manifest for the platform,
// then read the config. Everything read here comes verified from the source.
import { IntegrityError } from '../errors.ts';
import type { Descriptor } from './descriptor.ts';
import { parseImageConfig, type ImageConfig } from './config.ts';
import { parseManifestBlob, type ImageIndex, type ImageManifest } from './manifest.ts';
import { MANIFEST_CAP, type ImageSource, type ManifestBlob } from './source.ts';
import { formatPlatform, normalisePlatform, platformMatches, selectManifest, type PlatformSpec } from './platform.ts';
import { PlatformError } from '../errors.ts';

export interface ResolvedImage {
  /** What the reference named: a manifest or an index. */
  root: ManifestBlob;
  /** The platform entries of the root index (and of nested indexes), when it is one. */
  platforms: Descriptor[];
  /** The image manifest chosen for the platform (the root itself when it is a manifest). */
  manifest: ManifestBlob;
  parsed: ImageManifest;
  configBytes: Buffer;
  config: ImageConfig;
}

const MAX_INDEX_DEPTH = 4;

/**
 * `strictPlatform`: the user asked for this platform, so a single-platform image of another one is
 * an error (with the host's platform as a mere default, any single image is taken, as Docker does).
 */
export async function resolveImage(source: ImageSource, platform: PlatformSpec, strictPlatform = false): Promise<ResolvedImage> {
  const root = await source.getRootManifest();
  let current = root;
  let parsed: ImageManifest | ImageIndex = parseManifestBlob(root, source.displayName);
  const platforms: Descriptor[] = [];
  for (let depth = 0; parsed.kind === 'index'; depth++) {
    if (depth >= MAX_INDEX_DEPTH) throw new IntegrityError('IMGX_BAD_MANIFEST', `${source.displayName}: indexes nested too deep`);
    platforms.push(...parsed.manifests.filter((m) => m.platform));
    const chosen = selectManifest(parsed.manifests, platform, source.displayName);
    current = await source.getManifest(chosen);
    parsed = parseManifestBlob(current, `${source.displayName}@${chosen.digest}`);
  }
  const configBytes = await source.readBlob(parsed.config, MANIFEST_CAP);
  const config = parseImageConfig(configBytes, source.displayName);
  if (strictPlatform && platforms.length === 0 && config.os && config.architecture) {
    const have = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    if (!platformMatches(platform, have)) {
      const available = formatPlatform(normalisePlatform(have));
      throw new PlatformError(`${source.displayName}: no image for platform ${formatPlatform(platform)}; available: ${available}`, [available]);
    }
  }
  const diffIds = config.rootfs?.diff_ids;
  if (diffIds && diffIds.length !== parsed.layers.length) {
    throw new IntegrityError(
      'IMGX_BAD_MANIFEST',
      `${source.displayName}: the manifest lists ${parsed.layers.length} layers but the config ${diffIds.length} diff_ids`,
    );
  }
  return { root, platforms, manifest: current, parsed, configBytes, config };
}

/** The descriptor of a manifest blob as an index or a cache entry would list it. */
export function descriptorOf(blob: ManifestBlob): Descriptor {
  return { mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length };
}
