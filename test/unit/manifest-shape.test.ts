// Shape checks of the documents imgx reads from outside (issue 16, "never crash"): indexes,
// manifests, configs, tag lists and token answers of every wrong shape end in a coded error that
// names the field, in one short line; deep nesting and huge strings cost nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sha256 } from '../../src/image/digest.ts';
import { parseManifestBlob } from '../../src/image/manifest.ts';
import { parseImageConfig } from '../../src/image/config.ts';
import { parsePlatform, selectManifest } from '../../src/image/platform.ts';
import { describeImage } from '../../src/image/describe.ts';
import { resolveImage } from '../../src/image/resolve.ts';
import { OCI_INDEX, OCI_MANIFEST } from '../../src/image/media-types.ts';
import { parseTagList } from '../../src/registry/client.ts';
import { parseTokenResponse } from '../../src/registry/auth.ts';
import { MemorySource } from '../helpers/memory-source.ts';

const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;
const desc = (extra: Record<string, unknown> = {}) => ({ mediaType: OCI_MANIFEST, digest: D1, size: 100, ...extra });
const layer = (extra: Record<string, unknown> = {}) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: D2, size: 5, ...extra });
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

function blob(doc: unknown, mediaType = ''): { bytes: Buffer; mediaType: string; digest: string } {
  const bytes = Buffer.from(typeof doc === 'string' ? doc : JSON.stringify(doc));
  return { bytes, mediaType, digest: sha256(bytes) };
}

function index(manifests: unknown[]): string {
  return JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests });
}

function manifest(fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { ...desc(), mediaType: 'application/vnd.oci.image.config.v1+json' }, layers: [layer()], ...fields };
}

/** Runs `fn`, expects an error with `code` whose message matches `re`, is one line and short. */
function refuses(fn: () => unknown, code: string, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    const err = e as Error & { code?: string };
    assert.is(err.code, code, `${err.code}: ${err.message}`);
    assert.match(err.message, re);
    assert.not.match(err.message, /[\u0000-\u001f\u007f-\u009f]/, 'one printable line');
    assert.ok(err.message.length < 400, `a short message (${err.message.length} characters)`);
    return;
  }
  assert.unreachable(`expected ${code} (${re})`);
}

test('an index entry whose platform has no architecture, or fields of the wrong type → IMGX_BAD_MANIFEST naming the field', () => {
  const p = (platform: unknown) => blob(index([desc({ platform })]));
  refuses(() => parseManifestBlob(p({ os: 'linux' }), 'idx'), 'IMGX_BAD_MANIFEST', /^idx: manifests\[0\]\.platform\.architecture is missing$/);
  refuses(() => parseManifestBlob(p({ architecture: 'amd64' }), 'idx'), 'IMGX_BAD_MANIFEST', /manifests\[0\]\.platform\.os is missing/);
  refuses(() => parseManifestBlob(p({ os: 'linux', architecture: 64 }), 'idx'), 'IMGX_BAD_MANIFEST', /platform\.architecture is a number, not a string/);
  refuses(() => parseManifestBlob(p({ os: ['linux'], architecture: 'amd64' }), 'idx'), 'IMGX_BAD_MANIFEST', /platform\.os is a list, not a string/);
  refuses(() => parseManifestBlob(p({ os: 'linux', architecture: 'arm', variant: 7 }), 'idx'), 'IMGX_BAD_MANIFEST', /platform\.variant is a number/);
  refuses(() => parseManifestBlob(p({ os: 'linux', architecture: 'amd64', 'os.features': [1] }), 'idx'), 'IMGX_BAD_MANIFEST', /platform\.os\.features\[0\] is a number/);
  refuses(() => parseManifestBlob(p('linux/amd64'), 'idx'), 'IMGX_BAD_MANIFEST', /manifests\[0\]\.platform is a string, not an object/);
  refuses(() => parseManifestBlob(blob(index([null])), 'idx'), 'IMGX_BAD_MANIFEST', /manifests\[0\] is null, not an object/);
  refuses(() => parseManifestBlob(blob({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: { a: 1 } }), 'idx'), 'IMGX_BAD_MANIFEST', /manifests is an object, not a list/);
});

test('index entries without a platform are no candidates: the platform error says so (exit 9, not a crash)', () => {
  const parsed = parseManifestBlob(blob(index([desc(), desc({ digest: D2, platform: { os: 'linux', architecture: 'arm64' } })])), 'idx');
  assert.is(parsed.kind, 'index');
  if (parsed.kind !== 'index') return;
  refuses(() => selectManifest(parsed.manifests, parsePlatform('linux/amd64'), 'idx'), 'IMGX_NO_MATCHING_PLATFORM', /available: linux\/arm64 \(1 entry names no platform\)$/);
  const none = parseManifestBlob(blob(index([desc()])), 'idx');
  if (none.kind !== 'index') return;
  refuses(() => selectManifest(none.manifests, parsePlatform('linux/amd64'), 'idx'), 'IMGX_NO_MATCHING_PLATFORM', /available: none/);
});

test('a long index of platforms is listed in part; platform names are made safe', () => {
  const many = Array.from({ length: 500 }, (_, i) => desc({ platform: { os: 'linux', architecture: `arch${i}\x1b[31m` } }));
  const parsed = parseManifestBlob(blob(index(many)), 'idx');
  if (parsed.kind !== 'index') return assert.unreachable();
  refuses(() => selectManifest(parsed.manifests, parsePlatform('linux/amd64'), 'idx'), 'IMGX_NO_MATCHING_PLATFORM', /linux\/arch19 and 480 more$/);
});

test('descriptors: digests, sizes and media types of the wrong kind', () => {
  const m = (l: Record<string, unknown>) => blob(manifest({ layers: [layer(l)] }));
  refuses(() => parseManifestBlob(m({ digest: 'sha256:xyz' }), 'mf'), 'IMGX_BAD_MANIFEST', /^mf: layers\[0\]\.digest "sha256:xyz" is not a valid digest$/);
  refuses(() => parseManifestBlob(m({ digest: 12 }), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.digest is a number, not a string/);
  refuses(() => parseManifestBlob(m({ digest: `sha256:${'A'.repeat(64)}` }), 'mf'), 'IMGX_BAD_MANIFEST', /not a valid digest/);
  for (const size of [-1, 1.5, 2 ** 53, 1e300]) refuses(() => parseManifestBlob(m({ size }), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.size is .*not a size/);
  refuses(() => parseManifestBlob(m({ size: '5' }), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.size is a string, not a size/);
  refuses(() => parseManifestBlob(m({ size: undefined }), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.size is missing/);
  refuses(() => parseManifestBlob(m({ mediaType: 7 }), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.mediaType is a number/);
  refuses(() => parseManifestBlob(m({ mediaType: 'text/\x1b[31mred' }), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.mediaType "text\/red" is not a media type/);
  refuses(() => parseManifestBlob(m({ annotations: { a: 1 } }), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.annotations\["a"\] is a number, not a string/);
  refuses(() => parseManifestBlob(m({ urls: 'http://x' }), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.urls is a string, not a list/);
});

test('manifests: numbers where strings belong, missing parts, lists that are not lists', () => {
  refuses(() => parseManifestBlob(blob(manifest({ mediaType: 2 })), 'mf'), 'IMGX_BAD_MANIFEST', /^mf: mediaType is a number, not a string$/);
  refuses(() => parseManifestBlob(blob(manifest({ schemaVersion: '2' })), 'mf'), 'IMGX_BAD_MANIFEST', /schemaVersion is a string, not a number/);
  refuses(() => parseManifestBlob(blob(manifest({ config: undefined })), 'mf'), 'IMGX_BAD_MANIFEST', /^mf: config is missing$/);
  refuses(() => parseManifestBlob(blob(manifest({ layers: 'none' })), 'mf'), 'IMGX_BAD_MANIFEST', /layers is a string, not a list/);
  refuses(() => parseManifestBlob(blob(manifest({ annotations: [] })), 'mf'), 'IMGX_BAD_MANIFEST', /annotations is a list, not an object/);
  refuses(() => parseManifestBlob(blob('[1,2]'), 'mf'), 'IMGX_BAD_MANIFEST', /a list, not a JSON object/);
  refuses(() => parseManifestBlob(blob('{"schemaVersion":'), 'mf'), 'IMGX_BAD_MANIFEST', /not valid JSON/);
  // null is absent, as Go reads it.
  const ok = parseManifestBlob(blob(manifest({ annotations: null, layers: [layer({ urls: null, annotations: null, platform: null })] })), 'mf');
  assert.is(ok.kind, 'manifest');
});

test('100,000 nested arrays: refused where a value is expected, ignored where nothing reads it, never a stack overflow', () => {
  const nested = deep(100_000);
  const where = [
    `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${nested},"layers":[]}`,
    `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${JSON.stringify(manifest().config)},"layers":${nested}}`,
    `{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[{"mediaType":"${OCI_MANIFEST}","digest":${nested},"size":1}]}`,
    `{"schemaVersion":2,"mediaType":"${OCI_INDEX}","manifests":[],"annotations":{"a":${nested}}}`,
  ];
  for (const doc of where) refuses(() => parseManifestBlob(blob(doc), 'mf'), 'IMGX_BAD_MANIFEST', /^mf: /);
  const unknownField = `{"schemaVersion":2,"mediaType":"${OCI_MANIFEST}","config":${JSON.stringify(manifest().config)},"layers":[],"x-extra":${nested}}`;
  const parsed = parseManifestBlob(blob(unknownField), 'mf');
  assert.is(parsed.kind, 'manifest');
  assert.not.ok('x-extra' in parsed, 'unknown fields are not carried along');
  JSON.stringify(parsed);
});

test('a huge string where a digest or media type belongs: a short one-line message', () => {
  const huge = 'x'.repeat(3 * 1024 * 1024);
  refuses(() => parseManifestBlob(blob(manifest({ layers: [layer({ digest: huge })] })), 'mf'), 'IMGX_BAD_MANIFEST', /layers\[0\]\.digest "x+…" is not a valid digest/);
  refuses(() => parseManifestBlob(blob(manifest({ mediaType: huge })), 'mf'), 'IMGX_UNSUPPORTED', /unsupported manifest media type "x+…"/);
});

const cfg = (fields: Record<string, unknown>) => Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [D2] }, ...fields }));

test('configs: wrong types in Env, Cmd, Labels and friends are refused naming the field', () => {
  const c = (run: Record<string, unknown>) => cfg({ config: run });
  refuses(() => parseImageConfig(c({ Env: 'PATH=/bin' }), 'img'), 'IMGX_BAD_MANIFEST', /^img: image config config\.Env is a string, not a list$/);
  refuses(() => parseImageConfig(c({ Env: ['A=1', 2] }), 'img'), 'IMGX_BAD_MANIFEST', /config\.Env\[1\] is a number, not a string/);
  refuses(() => parseImageConfig(c({ Cmd: 'sh' }), 'img'), 'IMGX_BAD_MANIFEST', /config\.Cmd is a string, not a list/);
  refuses(() => parseImageConfig(c({ Entrypoint: [['sh']] }), 'img'), 'IMGX_BAD_MANIFEST', /config\.Entrypoint\[0\] is a list/);
  refuses(() => parseImageConfig(c({ Labels: { version: 2 } }), 'img'), 'IMGX_BAD_MANIFEST', /config\.Labels\["version"\] is a number, not a string/);
  refuses(() => parseImageConfig(c({ Labels: ['a=b'] }), 'img'), 'IMGX_BAD_MANIFEST', /config\.Labels is a list, not an object/);
  refuses(() => parseImageConfig(c({ User: 0 }), 'img'), 'IMGX_BAD_MANIFEST', /config\.User is a number, not a string/);
  refuses(() => parseImageConfig(c({ WorkingDir: {} }), 'img'), 'IMGX_BAD_MANIFEST', /config\.WorkingDir is an object/);
  refuses(() => parseImageConfig(c({ ExposedPorts: ['80/tcp'] }), 'img'), 'IMGX_BAD_MANIFEST', /config\.ExposedPorts is a list, not an object/);
  refuses(() => parseImageConfig(c({ Volumes: { '/data': 1 } }), 'img'), 'IMGX_BAD_MANIFEST', /config\.Volumes\["\/data"\] is a number, not an object/);
  refuses(() => parseImageConfig(c({ StopSignal: 9 }), 'img'), 'IMGX_BAD_MANIFEST', /config\.StopSignal is a number/);
  refuses(() => parseImageConfig(c({ Healthcheck: 'curl' }), 'img'), 'IMGX_BAD_MANIFEST', /config\.Healthcheck is a string, not an object/);
  refuses(() => parseImageConfig(cfg({ architecture: 64 }), 'img'), 'IMGX_BAD_MANIFEST', /image config architecture is a number, not a string/);
  refuses(() => parseImageConfig(cfg({ config: 'sh' }), 'img'), 'IMGX_BAD_MANIFEST', /image config config is a string, not an object/);
  refuses(() => parseImageConfig(cfg({ rootfs: { diff_ids: 'sha256:x' } }), 'img'), 'IMGX_BAD_MANIFEST', /rootfs\.diff_ids is a string, not a list/);
  refuses(() => parseImageConfig(cfg({ rootfs: { diff_ids: ['sha256:short'] } }), 'img'), 'IMGX_BAD_MANIFEST', /rootfs\.diff_ids\[0\] "sha256:short" is not a valid digest/);
  refuses(() => parseImageConfig(cfg({ history: [{ created_by: 5 }] }), 'img'), 'IMGX_BAD_MANIFEST', /history\[0\]\.created_by is a number/);
  refuses(() => parseImageConfig(cfg({ history: [{ empty_layer: 'yes' }] }), 'img'), 'IMGX_BAD_MANIFEST', /history\[0\]\.empty_layer is a string, not true or false/);
  refuses(() => parseImageConfig(cfg({ history: ['RUN x'] }), 'img'), 'IMGX_BAD_MANIFEST', /history\[0\] is a string, not an object/);
  refuses(() => parseImageConfig(Buffer.from(`{"config":{"Labels":${deep(100_000)}}}`), 'img'), 'IMGX_BAD_MANIFEST', /config\.Labels is a list/);
  refuses(() => parseImageConfig(Buffer.from('"just a string"'), 'img'), 'IMGX_BAD_MANIFEST', /image config is a string, not a JSON object/);
});

test('configs: null reads as absent (kept for Entrypoint, Cmd, Labels); unknown fields are not carried along', () => {
  const c = parseImageConfig(
    Buffer.from(`{"os":"linux","architecture":"amd64","author":null,"config":{"Env":null,"Entrypoint":null,"Cmd":["sh"],"Labels":null,"ExposedPorts":{"80/tcp":{}},"OnBuild":${deep(100_000)}},"container_config":${deep(100_000)}}`),
    'img',
  );
  assert.equal(c, { os: 'linux', architecture: 'amd64', config: { Entrypoint: null, Cmd: ['sh'], Labels: null, ExposedPorts: { '80/tcp': {} } } });
  // A label named __proto__ is a label, not a prototype.
  const p = parseImageConfig(Buffer.from('{"config":{"Labels":{"__proto__":"x","a":"b"}}}'), 'img');
  assert.equal(Object.keys(p.config!.Labels!), ['__proto__', 'a']);
  assert.is(Object.getPrototypeOf(p.config!.Labels), Object.prototype);
});

test('resolve and describe take a validated image to the end (inspect --json serialises it)', async () => {
  const src = new MemorySource();
  const layerBytes = Buffer.from('layer');
  const l = src.put(layerBytes);
  const config = src.put(`{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["${l.digest}"]},"config":{"Labels":{"a":"b"},"Cmd":null},"extra":${deep(100_000)}}`);
  const m = src.put(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: l.digest, size: l.size }] }),
  );
  const idx = src.put(index([{ mediaType: OCI_MANIFEST, digest: m.digest, size: m.size, platform: { os: 'linux', architecture: 'amd64' } }, desc()]));
  src.setRoot({ digest: idx.digest, mediaType: OCI_INDEX });
  const image = await resolveImage(src, parsePlatform('linux/amd64'));
  const d = describeImage(image, 'r', 's');
  assert.equal(d.config.labels, { a: 'b' });
  assert.equal(d.config.cmd, []);
  assert.is(d.platforms!.length, 1);
  assert.ok(JSON.stringify(d).length < 10_000);
});

test('tag lists: a list of valid tags, or IMGX_REGISTRY_ERROR naming what is wrong', () => {
  assert.equal(parseTagList(Buffer.from('{"name":"app","tags":["v1","latest"]}'), 'repo'), ['v1', 'latest']);
  assert.equal(parseTagList(Buffer.from('{"name":"app","tags":null}'), 'repo'), []);
  refuses(() => parseTagList(Buffer.from('{"tags":"v1"}'), 'repo'), 'IMGX_REGISTRY_ERROR', /^repo: the tag list has tags that are a string, not a list$/);
  refuses(() => parseTagList(Buffer.from('{"tags":["v1",2]}'), 'repo'), 'IMGX_REGISTRY_ERROR', /tags\[1\] that is a number, not a string/);
  refuses(() => parseTagList(Buffer.from('{"tags":["v1\\u001b[31m"]}'), 'repo'), 'IMGX_REGISTRY_ERROR', /has an invalid tag "v1"/);
  refuses(() => parseTagList(Buffer.from(`{"tags":["${'t'.repeat(3_000_000)}"]}`), 'repo'), 'IMGX_REGISTRY_ERROR', /has an invalid tag "t+…"/);
  refuses(() => parseTagList(Buffer.from(deep(100_000)), 'repo'), 'IMGX_REGISTRY_ERROR', /is a list, not an object/);
  refuses(() => parseTagList(Buffer.from('<html>'), 'repo'), 'IMGX_REGISTRY_ERROR', /is not JSON/);
});

test('token answers: a usable token or IMGX_REGISTRY_ERROR', () => {
  assert.equal(parseTokenResponse(Buffer.from('{"token":"abc","expires_in":300}'), 'auth:1', 'x'), { token: 'abc', expiresIn: 300 });
  assert.equal(parseTokenResponse(Buffer.from('{"access_token":"abc.def"}'), 'auth:1', 'x'), { token: 'abc.def', expiresIn: 60 });
  assert.equal(parseTokenResponse(Buffer.from('{"token":"t","expires_in":"300"}'), 'auth:1', 'x'), { token: 't', expiresIn: 60 });
  assert.equal(parseTokenResponse(Buffer.from('{"token":"t","expires_in":1e300}'), 'auth:1', 'x').expiresIn, 86_400);
  refuses(() => parseTokenResponse(Buffer.from('{"token":12345}'), 'auth:1', 'x'), 'IMGX_REGISTRY_ERROR', /^x: the token service at auth:1 answered a token that is a number, not a string$/);
  refuses(() => parseTokenResponse(Buffer.from('{"token":"a\\r\\nX-Injected: 1"}'), 'auth:1', 'x'), 'IMGX_REGISTRY_ERROR', /characters a token cannot have/);
  refuses(() => parseTokenResponse(Buffer.from('{"token":""}'), 'auth:1', 'x'), 'IMGX_REGISTRY_ERROR', /returned no token/);
  refuses(() => parseTokenResponse(Buffer.from(deep(100_000)), 'auth:1', 'x'), 'IMGX_REGISTRY_ERROR', /answered a list, not a JSON object/);
  refuses(() => parseTokenResponse(Buffer.from('\x1b[31m<html>oops'), 'auth:1', 'x'), 'IMGX_REGISTRY_ERROR', /not JSON: <html>oops$/);
});

test.run();
