// Docker image references: grammar, normalisation and formatting, following the rules of
// distribution/reference (reference.go, regexp.go, normalize.go).
//
//   reference := name [ ":" tag ] [ "@" digest ]
//   name      := [ domain "/" ] path
//   domain    := host [ ":" port ]        host: DNS-ish name, IPv4, or [IPv6] without zone
//   path      := component ( "/" component )*, each lowercase alnum joined by . _ __ or -+
//   tag       := [\w][\w.-]{0,127}
//   digest    := algorithm ":" hex        (only algorithms imgx can verify are accepted)
//
// Parsing is done piecewise rather than with one large regular expression, so that an error
// can say which part is wrong; the accepted language is the same as upstream's regexp.
import { BadReferenceError } from '../errors.ts';

/** A parsed, normalised reference: docker.io/library/nginx:latest → domain docker.io, path library/nginx. */
export interface Reference {
  /** Registry host, with port when given: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  domain: string;
  /** Repository path inside the registry: `library/nginx`. */
  path: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
/** Upstream limits the repository path (not the domain) to 255 characters. */
const PATH_MAX = 255;

const DOMAIN_COMPONENT = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?';
// IPv6 literals only in brackets, and without zone (%eth0) or embedded IPv4, as upstream.
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;
const DIGEST_SYNTAX_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const IMAGE_ID_RE = /^[a-f0-9]{64}$/;
/** Hex lengths of the algorithms src/image/digest.ts can verify; a reference to anything else is useless. */
const DIGEST_HEX_LENGTH = new Map([
  ['sha256', 64],
  ['sha512', 128],
]);

/** The input as quoted in messages: JSON keeps it on one line; absurd lengths are cut. */
export function quoteInput(s: string, max = 512): string {
  return JSON.stringify(s.length > max ? `${s.slice(0, max)}…` : s);
}

function fail(input: string, why: string): never {
  throw new BadReferenceError(`invalid reference ${quoteInput(input)}: ${why}`);
}

/** Why `p` is not a repository path, or undefined when it is one. */
function pathProblem(p: string): string | undefined {
  if (p === '') return 'missing repository name';
  for (const c of p.split('/')) {
    if (c === '') return 'empty path component (a doubled or trailing "/")';
    if (!PATH_COMPONENT_RE.test(c)) {
      return `invalid path component ${quoteInput(c, 100)} (lowercase letters and digits, joined by ".", "_", "__" or "-")`;
    }
  }
  return undefined;
}

/** The grammar alone (upstream's referenceRegexp): the parts, or what is wrong. */
function splitReference(s: string): Reference | string {
  let name = s;
  let tag: string | undefined;
  let digest: string | undefined;
  const at = s.indexOf('@');
  if (at >= 0) {
    digest = s.slice(at + 1);
    name = s.slice(0, at);
    if (!DIGEST_SYNTAX_RE.test(digest)) return `invalid digest ${quoteInput(digest, 100)} (expected algorithm:hex)`;
  }
  // A ':' in the name only occurs in the domain, which is always followed by '/'; so a last ':'
  // with no '/' after it can only introduce the tag.
  const colon = name.lastIndexOf(':');
  if (colon >= 0 && !name.includes('/', colon)) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!TAG_RE.test(tag)) {
      return `invalid tag ${quoteInput(tag, 100)} (up to 128 letters, digits, "_", "." or "-", not starting with "." or "-")`;
    }
  }
  let domain = '';
  let path = name;
  const slash = name.indexOf('/');
  // The first component is the domain whenever it can be one (upstream's regexp prefers it).
  if (slash >= 0 && DOMAIN_RE.test(name.slice(0, slash)) && pathProblem(name.slice(slash + 1)) === undefined) {
    domain = name.slice(0, slash);
    path = name.slice(slash + 1);
  }
  const problem = pathProblem(path);
  if (problem !== undefined) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return 'a URL is not an image reference (write host[:port]/repository[:tag])';
    if (slash < 0) return problem;
    const first = name.slice(0, slash);
    const rest = name.slice(slash + 1);
    // Blame the part at fault: the path when the host was fine, the host when it cannot be a path.
    if (DOMAIN_RE.test(first)) return rest === '' ? `nothing after "${first}/"` : pathProblem(rest)!;
    if (/[:[\]]/.test(first)) return `invalid registry host ${quoteInput(first, 100)}`;
    return problem;
  }
  const r: Reference = { domain, path };
  if (tag !== undefined) r.tag = tag;
  if (digest !== undefined) r.digest = digest;
  return r;
}

function digestProblem(digest: string): string | undefined {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const want = DIGEST_HEX_LENGTH.get(algorithm);
  if (want === undefined) return `unsupported digest algorithm ${quoteInput(algorithm, 100)} (supported: ${[...DIGEST_HEX_LENGTH.keys()].join(', ')})`;
  if (hex.length !== want) return `digest has the wrong length for ${algorithm}: ${hex.length} hex digits, expected ${want}`;
  if (!/^[a-f0-9]+$/.test(hex)) return 'digest hex must be lowercase';
  return undefined;
}

/** Parse `s`, reporting errors against `input` (what the user typed). */
function parseStrict(s: string, input: string): Reference {
  if (s === '') fail(input, 'empty reference');
  const r = splitReference(s);
  if (typeof r === 'string') {
    // Upstream's rule: if the lower-cased text would parse, the only fault is upper case.
    const lower = s.toLowerCase();
    if (lower !== s && typeof splitReference(lower) !== 'string') fail(input, 'repository name must be lowercase');
    fail(input, r);
  }
  if (r.path.length > PATH_MAX) fail(input, `repository name is longer than ${PATH_MAX} characters (${r.path.length})`);
  if (r.digest !== undefined) {
    const problem = digestProblem(r.digest);
    if (problem !== undefined) fail(input, problem);
  }
  return r;
}

/**
 * Strict parse of `s` as written, with no normalisation (upstream's `Parse`). `domain` is ''
 * when the input has none (`nginx`, `test_com/foo`): such a Reference names no registry, so use
 * parseNormalizedReference for anything a user typed.
 */
export function parseReference(s: string): Reference {
  return parseStrict(s, s);
}

/** Docker's domain split: which part of a familiar name is a registry host. */
function splitDockerDomain(s: string): [domain: string, remainder: string] {
  const slash = s.indexOf('/');
  if (slash < 0) return [DEFAULT_DOMAIN, OFFICIAL_PREFIX + s];
  const first = s.slice(0, slash);
  let domain = DEFAULT_DOMAIN;
  let remainder = s;
  // Only localhost, something with '.' or ':', or something with upper case (never a valid
  // namespace) counts as a host; `user/app` is a Docker Hub namespace.
  if (first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first) {
    domain = first === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : first;
    remainder = s.slice(slash + 1);
  }
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_PREFIX + remainder;
  return [domain, remainder];
}

/**
 * Parse what a user typed, the way Docker does (upstream's `ParseNormalizedNamed`):
 * `nginx` → docker.io/library/nginx, `user/app` → docker.io/user/app, `index.docker.io/x` →
 * docker.io/library/x. Tag and digest are kept as given; none is added. The domain is never ''.
 */
export function parseNormalizedReference(s: string): Reference {
  if (s === '') fail(s, 'empty reference');
  if (IMAGE_ID_RE.test(s)) fail(s, 'a 64-character hexadecimal string is an image ID, not a repository name');
  const [domain, remainder] = splitDockerDomain(s);
  const colon = remainder.indexOf(':');
  const remote = colon < 0 ? remainder : remainder.slice(0, colon);
  if (remote.toLowerCase() !== remote) fail(s, 'repository name must be lowercase');
  let r: Reference;
  try {
    r = parseStrict(`${domain}/${remainder}`, s);
  } catch (e) {
    // Explain the failure in terms of what the user typed, when that is wrong on its own too.
    parseStrict(s, s);
    throw e;
  }
  // Upstream would return a name with no domain here (e.g. `foo_bar.com/app`); imgx needs a registry.
  if (r.domain === '') fail(s, `invalid registry host ${quoteInput(domain, 100)}`);
  return r;
}

/**
 * parseNormalizedReference plus the default tag `latest` when there is neither tag nor digest.
 * Unlike upstream's ParseDockerRef, a reference with both keeps both; the digest wins for fetching.
 */
export function parseDockerReference(s: string): Reference {
  const r = parseNormalizedReference(s);
  if (r.tag === undefined && r.digest === undefined) r.tag = DEFAULT_TAG;
  return r;
}

/** `domain/path`, or just `path` when there is no domain. */
export function repositoryName(r: Reference): string {
  return r.domain === '' ? r.path : `${r.domain}/${r.path}`;
}

function suffix(r: Reference): string {
  return (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
}

/** Full form: `docker.io/library/nginx:latest`, `host:5000/a/b@sha256:…`, tag before digest. */
export function formatReference(r: Reference): string {
  return repositoryName(r) + suffix(r);
}

/** Docker's short form: `nginx:latest`, `user/app`, `ghcr.io/org/app:v1` (other hosts stay). */
export function familiarName(r: Reference): string {
  let name = repositoryName(r);
  if (r.domain === DEFAULT_DOMAIN) {
    name = r.path;
    const rest = name.slice(OFFICIAL_PREFIX.length);
    // Only single-component official names are shortened; library/a/b stays as is.
    if (name.startsWith(OFFICIAL_PREFIX) && !rest.includes('/')) name = rest;
  }
  return name + suffix(r);
}

/** How a registry image is shown to a person: `docker://docker.io/library/nginx:latest`. */
export function registryDisplayName(ref: Reference): string {
  return `docker://${ref.domain}/${ref.path}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
