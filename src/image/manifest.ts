// Parsing and validating manifests and indexes (OCI and Docker schema 2) from verified bytes.
// Every field imgx uses is shape checked (shape.ts) and copied into a fresh object: a field of
// the wrong type (a number where a string belongs, a digest that is not one, a size that is not a
// non-negative safe integer, a platform without an architecture) is IMGX_BAD_MANIFEST naming the
// field; fields imgx does not use are not carried along, however deep they are.
import { IntegrityError, UnsupportedError } from '../errors.ts';
import { quotedText } from '../util/terminal-text.ts';
import type { Descriptor, Platform } from './descriptor.ts';
import { isValidDigest } from './digest.ts';
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, isIndexType, isManifestType, isMediaType } from './media-types.ts';
import { Fields, isObject, kindOf, type ShapeFail } from './shape.ts';
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

/** The ShapeFail of a document shown as `what`. */
export function manifestShapeFail(what: string): ShapeFail {
  return (field, why) => bad(what, `${field} ${why}`);
}

/** A platform object: os and architecture required (image-spec), the rest optional, all typed. */
export function platformOf(f: Fields): Platform {
  const p: Platform = { architecture: f.string('architecture'), os: f.string('os') };
  const variant = f.optString('variant');
  if (variant !== undefined) p.variant = variant;
  const osVersion = f.optString('os.version');
  if (osVersion !== undefined) p['os.version'] = osVersion;
  const osFeatures = f.optStringList('os.features');
  if (osFeatures !== undefined) p['os.features'] = [...osFeatures];
  const features = f.optStringList('features');
  if (features !== undefined) p.features = [...features];
  return p;
}

/** A content descriptor at `path`, checked and copied. */
export function parseDescriptor(v: unknown, path: string, fail: ShapeFail): Descriptor {
  const f = Fields.of(v, path, fail);
  const mediaType = f.string('mediaType');
  if (!isMediaType(mediaType)) fail(f.name('mediaType'), `${quotedText(mediaType)} is not a media type`);
  const digest = f.string('digest');
  if (!isValidDigest(digest)) fail(f.name('digest'), `${quotedText(digest)} is not a valid digest`);
  const d: Descriptor = { mediaType, digest, size: f.size('size') };
  const urls = f.optStringList('urls');
  if (urls !== undefined) d.urls = [...urls];
  const annotations = f.optStringMap('annotations');
  if (annotations !== undefined) d.annotations = annotations;
  const platform = f.optObject('platform');
  if (platform !== undefined) d.platform = platformOf(platform);
  const artifactType = f.optString('artifactType');
  if (artifactType !== undefined) d.artifactType = artifactType;
  return d;
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
  let doc: unknown;
  try {
    doc = JSON.parse(blob.bytes.toString('utf8'));
  } catch {
    bad(what, 'not valid JSON');
  }
  if (!isObject(doc)) bad(what, `${kindOf(doc)}, not a JSON object`);
  const fail = manifestShapeFail(what);
  const f = new Fields(doc, '', fail);
  const schemaVersion = f.get('schemaVersion');
  if (schemaVersion === 1) throw new UnsupportedError(`${what}: Docker schema 1 manifests are not supported`);
  if (schemaVersion !== undefined && typeof schemaVersion !== 'number') fail('schemaVersion', `is ${kindOf(schemaVersion)}, not a number`);
  f.optString('mediaType');
  const mediaType = detectMediaType(doc, blob.mediaType);
  const annotations = f.optStringMap('annotations');
  if (isIndexType(mediaType)) {
    const manifests = f.list('manifests').map((m, i) => parseDescriptor(m, `manifests[${i}]`, fail));
    return { kind: 'index', mediaType, manifests, ...(annotations ? { annotations } : {}) };
  }
  if (isManifestType(mediaType)) {
    const config = parseDescriptor(f.get('config'), 'config', fail);
    const layers = f.list('layers').map((l, i) => parseDescriptor(l, `layers[${i}]`, fail));
    return { kind: 'manifest', mediaType, config, layers, ...(annotations ? { annotations } : {}) };
  }
  throw new UnsupportedError(`${what}: unsupported manifest media type ${quotedText(mediaType)}`);
}

export const KNOWN_ROOT_TYPES = [OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
export type { Platform };
