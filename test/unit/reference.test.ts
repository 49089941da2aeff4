import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { BadReferenceError } from '../../src/errors.ts';
import {
  familiarName,
  formatReference,
  parseDockerReference,
  parseNormalizedReference,
  parseReference,
  repositoryName,
} from '../../src/image/reference.ts';
import type { Reference } from '../../src/image/reference.ts';

interface Vector {
  input: string;
  source: string;
  error?: string;
  domain?: string;
  path?: string;
  tag?: string;
  digest?: string;
  familiar?: string;
  full?: string;
  canonical?: boolean;
}

const vectors = JSON.parse(readFileSync(new URL('../fixtures/reference-vectors.json', import.meta.url), 'utf8')) as Record<
  'parse' | 'normalize' | 'docker' | 'canonical',
  Vector[]
>;

// Each upstream error kind shows up as a fixed phrase after `invalid reference "…": `.
const KIND_PHRASE: Record<string, RegExp> = {
  'name-empty': /: empty reference$/,
  'name-uppercase': /: repository name must be lowercase$/,
  'name-too-long': /: repository name is longer than 255 characters/,
  'digest-invalid-length': /: digest has the wrong length/,
  'digest-unsupported': /: unsupported digest algorithm/,
  'digest-invalid-format': /: digest hex must be lowercase$/,
};

function throwsBad(fn: () => unknown, input: string, kind: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof BadReferenceError, `expected BadReferenceError for ${JSON.stringify(input)}, got ${String(err)}`);
  const msg = (err as BadReferenceError).message;
  assert.is((err as BadReferenceError).code, 'IMGX_BAD_REFERENCE');
  assert.ok(msg.startsWith(`invalid reference ${JSON.stringify(input)}: `), msg);
  assert.not.match(msg, /\n/);
  if (kind === 'any') return;
  if (kind === 'invalid-format') {
    for (const [k, re] of Object.entries(KIND_PHRASE)) assert.not.match(msg, re, `${msg} reads as ${k}`);
  } else {
    const re = KIND_PHRASE[kind];
    assert.ok(re, `unknown kind ${kind}`);
    assert.match(msg, re!);
  }
}

function label(v: Vector): string {
  const input = v.input.length > 60 ? `${v.input.slice(0, 57)}…` : v.input;
  return `${v.source.split(' ')[1] ?? v.source}: ${JSON.stringify(input)}`;
}

for (const v of vectors.parse) {
  test(`parse ${label(v)}`, () => {
    if (v.error) return throwsBad(() => parseReference(v.input), v.input, v.error);
    const r = parseReference(v.input);
    const want: Reference = { domain: v.domain!, path: v.path! };
    if (v.tag !== undefined) want.tag = v.tag;
    if (v.digest !== undefined) want.digest = v.digest;
    assert.equal(r, want);
    // Upstream also checks that the parsed reference prints back as the input.
    assert.is(formatReference(r), v.input);
  });
}

for (const v of vectors.normalize) {
  test(`normalize ${label(v)}`, () => {
    if (v.error) return throwsBad(() => parseNormalizedReference(v.input), v.input, v.error);
    const r = parseNormalizedReference(v.input);
    assert.ok(r.domain !== '', 'a normalised reference always has a domain');
    if (v.domain !== undefined) assert.is(r.domain, v.domain);
    if (v.path !== undefined) {
      assert.is(r.path, v.path);
      assert.is(r.tag, v.tag);
      assert.is(r.digest, v.digest);
    }
    if (v.full !== undefined) assert.is(formatReference(r), v.full);
    if (v.familiar !== undefined) assert.is(familiarName(r), v.familiar);
    // The normalised form is a fixed point.
    assert.equal(parseNormalizedReference(formatReference(r)), r);
  });
}

for (const v of vectors.docker) {
  test(`docker ${label(v)}`, () => {
    const r = parseDockerReference(v.input);
    assert.is(formatReference(r), v.full);
    assert.equal(parseReference(formatReference(r)), r);
  });
}

for (const v of vectors.canonical) {
  test(`canonical ${label(v)}`, () => {
    assert.is(formatReference(parseNormalizedReference(v.input)) === v.input, v.canonical);
  });
}

// Our own cases, beyond the upstream vectors.

test('messages say what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['Foo', /^invalid reference "Foo": repository name must be lowercase$/],
    ['nginx:-bad', /invalid tag "-bad"/],
    ['nginx:' + 'a'.repeat(129), /invalid tag/],
    ['a//b', /empty path component/],
    ['a/', /nothing after "a\/"/],
    ['example.com/-x', /invalid path component "-x"/],
    ['nginx@sha256:abc', /invalid digest "sha256:abc"/],
    [`nginx@sha384:${'a'.repeat(96)}`, /unsupported digest algorithm "sha384"/],
    [`nginx@sha256:${'A'.repeat(64)}`, /digest hex must be lowercase/],
    [`nginx@sha256:${'a'.repeat(63)}`, /wrong length for sha256: 63 hex digits, expected 64/],
    ['a@b@c', /invalid digest/],
  ];
  for (const [input, re] of cases) {
    try {
      parseNormalizedReference(input);
      assert.unreachable(`${input} should not parse`);
    } catch (e) {
      assert.instance(e, BadReferenceError);
      assert.match((e as Error).message, re);
    }
  }
});

test('normalised: image IDs, empty input and hosts that are not hosts', () => {
  const id = 'a'.repeat(64);
  assert.throws(() => parseNormalizedReference(id), /image ID, not a repository name/);
  assert.throws(() => parseNormalizedReference(''), /^invalid reference "": empty reference$/);
  // Upstream returns a domain-less name here; imgx needs a registry host.
  assert.throws(() => parseNormalizedReference('foo_bar.com/app'), /invalid registry host "foo_bar.com"/);
  assert.equal(parseNormalizedReference('localhost/app'), { domain: 'localhost', path: 'app' });
  assert.equal(parseNormalizedReference('localhost:5000/foo:1'), { domain: 'localhost:5000', path: 'foo', tag: '1' });
  assert.equal(parseNormalizedReference('[::1]:5000/foo'), { domain: '[::1]:5000', path: 'foo' });
  assert.equal(parseNormalizedReference('index.docker.io/nginx'), { domain: 'docker.io', path: 'library/nginx' });
});

test('parseDockerReference adds latest only when there is neither tag nor digest', () => {
  const d = `sha256:${'0'.repeat(64)}`;
  assert.equal(parseDockerReference('nginx'), { domain: 'docker.io', path: 'library/nginx', tag: 'latest' });
  assert.equal(parseDockerReference('nginx:1.25'), { domain: 'docker.io', path: 'library/nginx', tag: '1.25' });
  assert.equal(parseDockerReference(`nginx@${d}`), { domain: 'docker.io', path: 'library/nginx', digest: d });
  assert.equal(parseDockerReference(`nginx:1.25@${d}`), { domain: 'docker.io', path: 'library/nginx', tag: '1.25', digest: d });
});

test('formatting', () => {
  const d = `sha256:${'0'.repeat(64)}`;
  const r = { domain: 'host:5000', path: 'a/b', tag: 't', digest: d };
  assert.is(formatReference(r), `host:5000/a/b:t@${d}`);
  assert.is(repositoryName(r), 'host:5000/a/b');
  assert.is(familiarName(r), `host:5000/a/b:t@${d}`);
  assert.is(familiarName(parseDockerReference('nginx')), 'nginx:latest');
  assert.is(familiarName(parseNormalizedReference('user/app')), 'user/app');
  assert.is(familiarName(parseNormalizedReference('library/a/b')), 'library/a/b');
  assert.is(repositoryName(parseReference('nginx')), 'nginx');
  assert.is(formatReference(parseDockerReference('ghcr.io/org/app')), 'ghcr.io/org/app:latest');
});

test('hostile input is rejected', () => {
  // Long runs that a backtracking grammar could struggle with (a catastrophic case would hang here).
  for (const s of ['a'.repeat(100_000) + '!', 'a-'.repeat(50_000) + '/', 'a.'.repeat(50_000) + '-/x', '['.repeat(50_000)]) {
    // The message stays short however long the input.
    assert.throws(() => parseReference(s), (e: Error) => e instanceof BadReferenceError && e.message.length < 800);
  }
});

test.run();
