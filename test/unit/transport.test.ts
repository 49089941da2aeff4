import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BadReferenceError } from '../../src/errors.ts';
import { formatImageArg, parseImageArg } from '../../src/image/transport.ts';
import type { ImageArg } from '../../src/image/transport.ts';

const D = `sha256:${'ab'.repeat(32)}`;

function docker(domain: string, path: string, tag?: string, digest?: string): ImageArg {
  const ref: { domain: string; path: string; tag?: string; digest?: string } = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return { transport: 'docker', ref };
}

function rejects(s: string, re: RegExp): void {
  try {
    parseImageArg(s);
  } catch (e) {
    assert.instance(e, BadReferenceError, `${s}: ${String(e)}`);
    assert.match((e as Error).message, re);
    assert.not.match((e as Error).message, /\n/);
    return;
  }
  assert.unreachable(`${JSON.stringify(s)} should be rejected`);
}

test('docker references, with and without the transport', () => {
  const cases: [string, ImageArg][] = [
    ['nginx', docker('docker.io', 'library/nginx', 'latest')],
    ['nginx:1.25', docker('docker.io', 'library/nginx', '1.25')],
    ['docker://nginx', docker('docker.io', 'library/nginx', 'latest')],
    ['docker://docker.io/library/nginx:latest', docker('docker.io', 'library/nginx', 'latest')],
    ['user/app', docker('docker.io', 'user/app', 'latest')],
    ['localhost:5000/foo', docker('localhost:5000', 'foo', 'latest')],
    ['localhost/foo', docker('localhost', 'foo', 'latest')],
    ['[::1]:5000/foo:t', docker('[::1]:5000', 'foo', 't')],
    ['ghcr.io/org/app@' + D, docker('ghcr.io', 'org/app', undefined, D)],
    ['ghcr.io/org/app:v1@' + D, docker('ghcr.io', 'org/app', 'v1', D)],
    // The official image `docker`, not the transport (which needs `//`).
    ['docker:dind', docker('docker.io', 'library/docker', 'dind')],
    ['docker', docker('docker.io', 'library/docker', 'latest')],
    // Image names that merely start like a transport.
    ['oci-tools/x', docker('docker.io', 'oci-tools/x', 'latest')],
    ['dir/x:1', docker('docker.io', 'dir/x', '1')],
  ];
  for (const [input, want] of cases) assert.equal(parseImageArg(input), want, input);
});

test('oci: tag after the last colon only when it is a tag', () => {
  const cases: [string, ImageArg][] = [
    ['oci:/tmp/layout', { transport: 'oci', dir: '/tmp/layout' }],
    ['oci:layout', { transport: 'oci', dir: 'layout' }],
    ['oci:/tmp/layout:v1', { transport: 'oci', dir: '/tmp/layout', tag: 'v1' }],
    ['oci:./l:1.0.0-rc1', { transport: 'oci', dir: './l', tag: '1.0.0-rc1' }],
    ['oci:/tmp/a:b:latest', { transport: 'oci', dir: '/tmp/a:b', tag: 'latest' }],
    // What follows the last ':' has a '/' (or is no tag): it is all path.
    ['oci:/backup/2024-01-01T10:00/layout', { transport: 'oci', dir: '/backup/2024-01-01T10:00/layout' }],
    ['oci:/tmp/x:-bad', { transport: 'oci', dir: '/tmp/x:-bad' }],
    // A trailing ':' means no tag.
    ['oci:/tmp/a:b:', { transport: 'oci', dir: '/tmp/a:b' }],
    ['oci:/tmp/layout:', { transport: 'oci', dir: '/tmp/layout' }],
    ['oci-archive:/tmp/img.tar', { transport: 'oci-archive', file: '/tmp/img.tar' }],
    ['oci-archive:/tmp/img.tar:v2', { transport: 'oci-archive', file: '/tmp/img.tar', tag: 'v2' }],
    ['oci-archive:/tmp/12:00/img.tar', { transport: 'oci-archive', file: '/tmp/12:00/img.tar' }],
  ];
  for (const [input, want] of cases) assert.equal(parseImageArg(input), want, input);
});

test('docker-archive: the ref may itself hold colons', () => {
  const cases: [string, ImageArg][] = [
    ['docker-archive:/tmp/x.tar', { transport: 'docker-archive', file: '/tmp/x.tar' }],
    ['docker-archive:x.tar:nginx', { transport: 'docker-archive', file: 'x.tar', ref: 'docker.io/library/nginx:latest' }],
    ['docker-archive:/tmp/x.tar:nginx:1.25', { transport: 'docker-archive', file: '/tmp/x.tar', ref: 'docker.io/library/nginx:1.25' }],
    ['docker-archive:x.tar:localhost:5000/app:v1', { transport: 'docker-archive', file: 'x.tar', ref: 'localhost:5000/app:v1' }],
    ['docker-archive:x.tar:@1', { transport: 'docker-archive', file: 'x.tar', ref: '@1' }],
    ['docker-archive:x.tar:', { transport: 'docker-archive', file: 'x.tar' }],
    // No remainder is a reference: all of it is the file.
    ['docker-archive:/tmp/A:B.tar', { transport: 'docker-archive', file: '/tmp/A:B.tar' }],
    // The first remainder that is not a reference is skipped.
    ['docker-archive:/tmp/a:b/x.tar:nginx:1', { transport: 'docker-archive', file: '/tmp/a:b/x.tar', ref: 'docker.io/library/nginx:1' }],
  ];
  for (const [input, want] of cases) assert.equal(parseImageArg(input), want, input);
});

test('errors', () => {
  rejects('containers-storage:foo', /^unsupported transport "containers-storage" in "containers-storage:foo" \(supported: docker:\/\/, oci:, oci-archive:, docker-archive:\)$/);
  rejects('dir:/tmp/x', /unsupported transport "dir"/);
  rejects('docker-daemon:nginx:latest', /unsupported transport "docker-daemon"/);
  rejects('https://registry/x', /unsupported transport "https"/);
  rejects('oci:', /^invalid image "oci:": missing layout directory$/);
  rejects('oci::v1', /missing layout directory/);
  rejects('oci-archive:', /missing archive file/);
  rejects('docker-archive:', /missing archive file/);
  rejects('docker-archive::nginx', /missing archive file/);
  rejects(`docker-archive:x.tar:nginx@${D}`, /cannot select an image by digest/);
  rejects('docker://', /missing image reference/);
  rejects('docker:/x', /docker:\/\/REF/);
  rejects('', /empty reference/);
  rejects('Nginx', /^invalid reference "Nginx": repository name must be lowercase$/);
  rejects('docker://Nginx', /must be lowercase/);
  rejects('nginx:', /invalid tag ""/);
});

test('format', () => {
  assert.is(formatImageArg(parseImageArg('nginx')), 'docker://docker.io/library/nginx:latest');
  assert.is(formatImageArg({ transport: 'oci', dir: '/path', tag: 'tag' }), 'oci:/path:tag');
  assert.is(formatImageArg({ transport: 'oci', dir: '/path' }), 'oci:/path');
  assert.is(formatImageArg({ transport: 'oci', dir: '/a:b' }), 'oci:/a:b:');
  assert.is(formatImageArg({ transport: 'oci-archive', file: 'f.tar', tag: 'v1' }), 'oci-archive:f.tar:v1');
  assert.is(formatImageArg({ transport: 'docker-archive', file: 'f.tar', ref: '@0' }), 'docker-archive:f.tar:@0');
  assert.is(formatImageArg({ transport: 'docker-archive', file: 'f.tar' }), 'docker-archive:f.tar');
});

test('format and parse round-trip, colons in paths included', () => {
  const args: ImageArg[] = [
    docker('docker.io', 'library/nginx', 'latest'),
    docker('[::1]:5000', 'a/b', 't', D),
    { transport: 'oci', dir: '/tmp/layout' },
    { transport: 'oci', dir: '/a:b' },
    { transport: 'oci', dir: '/a:b/c:d' },
    { transport: 'oci', dir: '/x:', tag: 'v1' },
    { transport: 'oci', dir: '/x:y', tag: 'v1' },
    { transport: 'oci-archive', file: '/12:00/x.tar', tag: 'a.b' },
    { transport: 'oci-archive', file: '/12:00' },
    { transport: 'docker-archive', file: '/tmp/x.tar' },
    { transport: 'docker-archive', file: '/a:b' },
    { transport: 'docker-archive', file: '/backup/12:00/x.tar' },
    { transport: 'docker-archive', file: '/x:y', ref: 'docker.io/library/z:latest' },
    { transport: 'docker-archive', file: '/x:5000', ref: 'localhost:5000/app:v1' },
    { transport: 'docker-archive', file: '/x:y', ref: '@3' },
  ];
  for (const a of args) assert.equal(parseImageArg(formatImageArg(a)), a, formatImageArg(a));
});

test.run();
