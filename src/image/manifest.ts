// Parsing and validating manifests and indexes (OCI and Docker schema 2) from verified bytes.
import { IntegrityError, UnsupportedError } from '../errors.ts';
import type { Descriptor, Platform } from './descriptor.ts';
import { isValidDigest } from './digest.ts';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, isIndexType, isManifestType } from './media-types.ts';
import type { ManifestBlob } from './source.ts';

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

function bad(what: string, why: string): never {
  throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: ${why}`);
}

function descriptor(v: unknown, what: string): Descriptor {
  if (typeof v !== 'object' || v === null) bad(what, 'descriptor is not an object');
  const d = v as Record<string, unknown>;
  if (typeof d.mediaType !== 'string') bad(what, 'descriptor has no mediaType');
  if (typeof d.digest !== 'string' || !isValidDigest(d.digest)) bad(what, `descriptor has an invalid digest ${JSON.stringify(d.digest)}`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) bad(what, 'descriptor has an invalid size');
  return d as unknown as Descriptor;
}

/** The media type of a manifest blob: the body's own field wins over what the transport said. */
export function detectMediaType(doc: Record<string, unknown>, fallback: string | undefined): string {
  if (typeof doc.mediaType === 'string' && doc.mediaType) return doc.mediaType;
  if (fallback && (isIndexType(fallback) || isManifestType(fallback))) return fallback;
  // OCI allows mediaType to be absent: guess from the shape.
  if (Array.isArray(doc.manifests)) return OCI_INDEX;
  if (doc.config && Array.isArray(doc.layers)) return OCI_MANIFEST;
  return fallback ?? 'unknown';
}

export function parseManifestBlob(blob: ManifestBlob, what = blob.digest): ImageManifest | ImageIndex {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(blob.bytes.toString('utf8'));
  } catch {
    bad(what, 'not valid JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) bad(what, 'not a JSON object');
  if (doc.schemaVersion === 1) throw new UnsupportedError(`${what}: Docker schema 1 manifests are not supported`);
  const mediaType = detectMediaType(doc, blob.mediaType);
  if (isIndexType(mediaType)) {
    if (!Array.isArray(doc.manifests)) bad(what, 'index has no manifests list');
    return {
      kind: 'index',
      mediaType,
      manifests: doc.manifests.map((m: unknown, i: number) => descriptor(m, `${what} manifests[${i}]`)),
      ...(doc.annotations ? { annotations: doc.annotations as Record<string, string> } : {}),
    };
  }
  if (isManifestType(mediaType)) {
    if (!Array.isArray(doc.layers)) bad(what, 'manifest has no layers list');
    return {
      kind: 'manifest',
      mediaType,
      config: descriptor(doc.config, `${what} config`),
      layers: doc.layers.map((l: unknown, i: number) => descriptor(l, `${what} layers[${i}]`)),
      ...(doc.annotations ? { annotations: doc.annotations as Record<string, string> } : {}),
    };
  }
  throw new UnsupportedError(`${what}: unsupported manifest media type ${JSON.stringify(mediaType)}`);
}

export const KNOWN_ROOT_TYPES = [OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
export type { Platform };
