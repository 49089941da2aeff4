// Image arguments as users type them, with skopeo's transport prefixes:
//   docker://REF (also the default: `nginx`, `localhost:5000/app:1`, `docker:dind`),
//   oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF].
//
// A ':' may separate a path from what follows it or belong to the path itself. skopeo cuts at the
// first ':' and forbids ':' in paths; imgx lets paths hold colons (timestamps, `host:port` dirs):
// - oci, oci-archive: the tag is what follows the LAST ':' when that is a valid tag (OCI ref-name
//   characters, no '/'); otherwise the whole text is the path.
// - docker-archive: the ref itself may hold ':' (`nginx:1.25`), so the split is at the FIRST ':'
//   whose remainder is a valid reference or `@N`; otherwise the whole text is the file.
// In all three a trailing ':' means "no tag/ref", which lets any path be written unambiguously.
import { BadReferenceError } from '../errors.ts';
import { formatReference, parseDockerReference, quoteInput } from './reference.ts';
import type { Reference } from './reference.ts';

/**
 * A parsed image argument. docker: `ref` is normalised with parseDockerReference (always a tag or
 * digest). docker-archive: `ref` is a full normalised reference with a tag
 * (`docker.io/library/nginx:latest`; compare RepoTags after normalising them), or `@N` for the
 * N-th entry (from 0) of the archive's manifest.json.
 */
export type ImageArg =
  | { transport: 'docker'; ref: Reference }
  | { transport: 'oci'; dir: string; tag?: string }
  | { transport: 'oci-archive'; file: string; tag?: string }
  | { transport: 'docker-archive'; file: string; ref?: string };

const SUPPORTED = 'docker://, oci:, oci-archive:, docker-archive:';
/** skopeo transports imgx does not read; named so that `dir:/x` is not taken for image `dir`, tag `/x`. */
const UNSUPPORTED = ['containers-storage', 'dir', 'docker-daemon', 'ostree', 'sif', 'tarball', 'atomic'];
/** One component of an OCI `org.opencontainers.image.ref.name`, without ':' (that would be ambiguous). */
const OCI_TAG_RE = /^[A-Za-z0-9]+(?:(?:[-._@+]|--)[A-Za-z0-9]+)*$/;
const ARCHIVE_INDEX_RE = /^@(?:0|[1-9][0-9]{0,8})$/;

function bad(input: string, why: string): never {
  throw new BadReferenceError(`invalid image ${quoteInput(input)}: ${why}`);
}

/** DIR[:TAG] for oci and oci-archive. */
function splitPathAndTag(input: string, rest: string, what: string): { path: string; tag?: string } {
  let path = rest;
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) {
    const after = rest.slice(colon + 1);
    if (after === '') path = rest.slice(0, colon);
    else if (OCI_TAG_RE.test(after)) {
      path = rest.slice(0, colon);
      tag = after;
    }
  }
  if (path === '') bad(input, `missing ${what}`);
  return tag === undefined ? { path } : { path, tag };
}

/** The normalised text of a docker-archive ref, or undefined when `s` is not one. */
function archiveRef(input: string, s: string): string | undefined {
  if (ARCHIVE_INDEX_RE.test(s)) return s;
  let ref: Reference;
  try {
    ref = parseDockerReference(s);
  } catch {
    return undefined;
  }
  // An archive records tags, not digests (skopeo refuses them too).
  if (ref.digest !== undefined) bad(input, 'docker-archive cannot select an image by digest; use a tag or @N');
  return formatReference(ref);
}

function parseDockerArchive(input: string, rest: string): ImageArg {
  for (let colon = rest.indexOf(':'); colon >= 0; colon = rest.indexOf(':', colon + 1)) {
    const after = rest.slice(colon + 1);
    const ref = after === '' ? '' : archiveRef(input, after);
    if (ref === undefined) continue;
    const file = rest.slice(0, colon);
    if (file === '') bad(input, 'missing archive file');
    return ref === '' ? { transport: 'docker-archive', file } : { transport: 'docker-archive', file, ref };
  }
  if (rest === '') bad(input, 'missing archive file');
  return { transport: 'docker-archive', file: rest };
}

/** Parse an image argument; anything without a known transport prefix is a docker reference. */
export function parseImageArg(s: string): ImageArg {
  if (s.startsWith('docker://')) {
    if (s === 'docker://') bad(s, 'missing image reference');
    return { transport: 'docker', ref: parseDockerReference(s.slice('docker://'.length)) };
  }
  if (s.startsWith('oci:')) {
    const { path, tag } = splitPathAndTag(s, s.slice('oci:'.length), 'layout directory');
    return tag === undefined ? { transport: 'oci', dir: path } : { transport: 'oci', dir: path, tag };
  }
  if (s.startsWith('oci-archive:')) {
    const { path, tag } = splitPathAndTag(s, s.slice('oci-archive:'.length), 'archive file');
    return tag === undefined ? { transport: 'oci-archive', file: path } : { transport: 'oci-archive', file: path, tag };
  }
  if (s.startsWith('docker-archive:')) return parseDockerArchive(s, s.slice('docker-archive:'.length));

  const colon = s.indexOf(':');
  const prefix = colon < 0 ? '' : s.slice(0, colon);
  if (UNSUPPORTED.includes(prefix) || /^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
    throw new BadReferenceError(`unsupported transport ${quoteInput(prefix)} in ${quoteInput(s)} (supported: ${SUPPORTED})`);
  }
  try {
    return { transport: 'docker', ref: parseDockerReference(s) };
  } catch (e) {
    // `docker:dind` is the image docker, tag dind; but `docker:/x` was meant as the transport.
    if (prefix === 'docker' && s.startsWith('docker:/')) bad(s, 'the docker transport is written docker://REF');
    throw e;
  }
}

/** The text parseImageArg reads back as `a`: docker://docker.io/library/nginx:latest, oci:/path:tag. */
export function formatImageArg(a: ImageArg): string {
  // A path with a ':' and no tag gets a trailing ':' so that nothing in it is read as a tag.
  const tail = (path: string, tag: string | undefined) => (tag !== undefined ? `${path}:${tag}` : path.includes(':') ? `${path}:` : path);
  switch (a.transport) {
    case 'docker':
      return `docker://${formatReference(a.ref)}`;
    case 'oci':
      return `oci:${tail(a.dir, a.tag)}`;
    case 'oci-archive':
      return `oci-archive:${tail(a.file, a.tag)}`;
    case 'docker-archive':
      return `docker-archive:${tail(a.file, a.ref)}`;
  }
}
