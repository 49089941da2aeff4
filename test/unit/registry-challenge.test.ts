import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseChallenges, pickChallenge } from '../../src/registry/challenge.ts';
import { nextLink } from '../../src/registry/client.ts';
import { isLoopbackHost, registryBaseUrl } from '../../src/registry/endpoint.ts';
import { parseRetryAfter } from '../../src/registry/retry.ts';
import { errorFromResponse, isRetryableNetworkError, networkError } from '../../src/registry/errors.ts';

test('Bearer with realm, service, scope', () => {
  const c = parseChallenges('Bearer realm="https://auth.example.test/token",service="registry.example.test",scope="repository:library/nginx:pull"');
  assert.equal(c, [
    {
      scheme: 'bearer',
      params: { realm: 'https://auth.example.test/token', service: 'registry.example.test', scope: 'repository:library/nginx:pull' },
    },
  ]);
});

test('commas and escaped quotes inside quoted strings; spaces around =', () => {
  const c = parseChallenges('Bearer realm = "https://a.test/t?x=1,2" , scope="repository:a:pull,push", error="say \\"hi\\""');
  assert.equal(c[0]!.params, { realm: 'https://a.test/t?x=1,2', scope: 'repository:a:pull,push', error: 'say "hi"' });
});

test('Basic, case-insensitive scheme and names, unquoted values', () => {
  const c = parseChallenges('BASIC Realm=registry');
  assert.equal(c, [{ scheme: 'basic', params: { realm: 'registry' } }]);
});

test('several challenges in one header and across headers', () => {
  const c = parseChallenges(['Basic realm="r1", Bearer realm="https://t.test/token",service="s"', 'Negotiate abc==']);
  assert.equal(
    c.map((x) => x.scheme),
    ['basic', 'bearer', 'negotiate'],
  );
  assert.equal(c[1]!.params, { realm: 'https://t.test/token', service: 's' });
  assert.is(c[2]!.params[''], 'abc==');
  assert.is(pickChallenge(c)?.scheme, 'bearer');
  assert.is(pickChallenge(parseChallenges('Basic realm="x"'))?.scheme, 'basic');
  assert.is(pickChallenge(parseChallenges('Negotiate')), undefined);
});

test('absent or empty header', () => {
  assert.equal(parseChallenges(undefined), []);
  assert.equal(parseChallenges(''), []);
  assert.equal(parseChallenges('Bearer'), [{ scheme: 'bearer', params: {} }]);
});

test('Link rel="next"', () => {
  assert.is(nextLink('</v2/a/tags/list?n=2&last=b>; rel="next"'), '/v2/a/tags/list?n=2&last=b');
  assert.is(nextLink('<http://h/x>; rel="prev", <http://h/y>; rel=next'), 'http://h/y');
  assert.is(nextLink('<http://h/x>; rel="prev"'), undefined);
  assert.is(nextLink(undefined), undefined);
});

test('endpoints: Docker Hub mapping, loopback over http, plainHttp', () => {
  assert.is(registryBaseUrl('docker.io', { plainHttp: false }).href, 'https://registry-1.docker.io/');
  assert.is(registryBaseUrl('127.0.0.1:5000', { plainHttp: false }).href, 'http://127.0.0.1:5000/');
  assert.is(registryBaseUrl('[::1]:5000', { plainHttp: false }).href, 'http://[::1]:5000/');
  assert.is(registryBaseUrl('localhost:5000', { plainHttp: false }).href, 'http://localhost:5000/');
  assert.is(registryBaseUrl('reg.example.test:5000', { plainHttp: false }).href, 'https://reg.example.test:5000/');
  assert.is(registryBaseUrl('reg.example.test', { plainHttp: true }).href, 'http://reg.example.test/');
  assert.ok(isLoopbackHost('127.1.2.3'));
  assert.not.ok(isLoopbackHost('128.0.0.1:5000'));
  assert.not.ok(isLoopbackHost('localhost.example.test'));
});

test('Retry-After: seconds, HTTP-date, garbage', () => {
  const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
  assert.is(parseRetryAfter('3', now), 3000);
  assert.is(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', now), 5000);
  assert.is(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0);
  assert.is(parseRetryAfter('soon', now), undefined);
  assert.is(parseRetryAfter(undefined, now), undefined);
});

function sysErr(code: string, message = code): Error {
  return Object.assign(new Error(message), { code });
}

test('network failures: classification and retryability', () => {
  const w = 'docker://reg.example.test/app:v1';
  assert.is(networkError(sysErr('ECONNREFUSED'), 'reg.example.test', w).code, 'IMGX_UNREACHABLE');
  assert.is(networkError(sysErr('UND_ERR_HEADERS_TIMEOUT'), 'reg.example.test', w).code, 'IMGX_TIMEOUT');
  assert.is(networkError(sysErr('DEPTH_ZERO_SELF_SIGNED_CERT', 'self-signed certificate'), 'reg.example.test', w).code, 'IMGX_TLS');
  assert.is(networkError(sysErr('ERR_SSL_WRONG_VERSION_NUMBER'), 'reg.example.test', w).code, 'IMGX_TLS');
  // Happy eyeballs reports every address's failure in an AggregateError.
  const agg = Object.assign(new AggregateError([sysErr('ECONNREFUSED'), sysErr('ECONNREFUSED')], 'connect failed'), {});
  assert.match(networkError(agg, 'h:1', w).message, /cannot reach h:1 \(connection refused\)/);
  assert.ok(isRetryableNetworkError(agg));
  assert.ok(isRetryableNetworkError(sysErr('UND_ERR_SOCKET')));
  assert.ok(isRetryableNetworkError(sysErr('ECONNRESET')));
  assert.not.ok(isRetryableNetworkError(sysErr('ENOTFOUND')));
  assert.not.ok(isRetryableNetworkError(sysErr('CERT_HAS_EXPIRED')));
});

test('registry error bodies and bare statuses', () => {
  const ctx = { what: 'docker://127.0.0.1:5000/app:v1', kind: 'manifest' as const };
  const e = errorFromResponse(404, '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}', ctx);
  assert.is(e.code, 'IMGX_MANIFEST_UNKNOWN');
  assert.is(e.message, 'docker://127.0.0.1:5000/app:v1: manifest unknown (the registry has no such tag)');
  assert.is(errorFromResponse(404, '', { ...ctx, byDigest: true }).message, 'docker://127.0.0.1:5000/app:v1: manifest unknown (the registry has no manifest with this digest)');
  assert.is(errorFromResponse(404, '{"errors":[{"code":"NAME_UNKNOWN"}]}', ctx).code, 'IMGX_NAME_UNKNOWN');
  assert.is(errorFromResponse(404, '', { ...ctx, kind: 'blob' }).code, 'IMGX_BLOB_UNKNOWN');
  assert.is(errorFromResponse(401, '', ctx).code, 'IMGX_UNAUTHORIZED');
  assert.is(errorFromResponse(403, '', ctx).code, 'IMGX_DENIED');
  assert.is(errorFromResponse(429, 'x', ctx).code, 'IMGX_TOOMANYREQUESTS');
  const odd = errorFromResponse(400, '{"errors":[{"code":"TAG_INVALID","message":"bad\\ntag\\u0007"}]}', ctx);
  assert.is(odd.code, 'IMGX_REGISTRY_ERROR');
  assert.is(odd.message, 'docker://127.0.0.1:5000/app:v1: registry error: HTTP 400 (TAG_INVALID: bad tag)');
});

test.run();
