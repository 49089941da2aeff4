// safeText (src/util/terminal-text.ts): what a registry says reaches the terminal as one short,
// printable line. Issue 16 ("untrusted input"): registry error codes used to be printed raw.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { quotedText, safeText, SAFE_TEXT_MAX } from '../../src/util/terminal-text.ts';
import { errorFromResponse, firstError, networkError } from '../../src/registry/errors.ts';

/** C0, DEL, C1, U+2028/9 and the bidi controls: none may survive. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

test('escape sequences are removed whole, other controls become one space', () => {
  assert.is(safeText('\x1b[31mRED\x1b[0m'), 'RED');
  assert.is(safeText('\x1b[1;38;5;196mbold\x1b[m text'), 'bold text');
  assert.is(safeText('MANIFEST_UNKNOWN\x07'), 'MANIFEST_UNKNOWN');
  assert.is(safeText('a\nb\r\nc\td'), 'a b c d');
  assert.is(safeText('  spaced   out  '), 'spaced out');
  // OSC (set the window title, hyperlinks), ended by BEL or ST, in 7- and 8-bit forms.
  assert.is(safeText('\x1b]0;pwned\x07after'), 'after');
  assert.is(safeText('\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\'), 'link');
  assert.is(safeText('\x9d0;title\x9cafter'), 'after');
  // 8-bit CSI, DCS, other ESC sequences, DEL and C1 controls.
  assert.is(safeText('\x9b2Jclear'), 'clear');
  assert.is(safeText('\x1bPq#0;2;0;0;0\x1b\\x'), 'x');
  assert.is(safeText('a\x1b(Bb\x1bcc\x1b7d'), 'abcd');
  assert.is(safeText('x\x7fy\x85z'), 'x y z');
  // Bidi overrides (text that reads differently from what it is) are dropped; U+2028 is a line break.
  assert.is(safeText('abc\u202edcba\u202c'), 'abcdcba');
  assert.is(safeText('one\u2028two'), 'one two');
  // An escape cut off at the end of the text goes too.
  assert.is(safeText('ok\x1b[38;5'), 'ok');
  assert.is(safeText('ok\x1b'), 'ok');
});

test('printable text is kept as it is, astral characters included', () => {
  for (const s of ['MANIFEST_UNKNOWN', 'repository name not known to registry', 'héllo wörld ✓', 'emoji 😀 ok', 'tab-free: a/b:c@d']) {
    assert.is(safeText(s), s);
  }
  // A lone surrogate becomes U+FFFD (what a UTF-8 terminal would get anyway).
  assert.is(safeText('a\ud800b'), 'a\ufffdb');
});

test('long text is cut to the limit with an ellipsis, counting characters not UTF-16 units', () => {
  assert.is(SAFE_TEXT_MAX, 300);
  const long = safeText('x'.repeat(1000));
  assert.is([...long].length, 300);
  assert.ok(long.endsWith('…'));
  assert.is(safeText('abcdef', 4), 'abc…');
  assert.is(safeText('abcd', 4), 'abcd');
  const astral = safeText('😀'.repeat(50), 10);
  assert.is([...astral].length, 10);
  assert.ok(astral.isWellFormed(), 'a surrogate pair is never split');
  // No space before the ellipsis.
  assert.is(safeText('abc def', 5), 'abc…');
  // A 50 MB string costs what a short one does.
  const t0 = process.hrtime.bigint();
  const huge = safeText('\x1b[31m' + 'y'.repeat(50 * 1024 * 1024));
  assert.is([...huge].length, 300);
  assert.ok(process.hrtime.bigint() - t0 < 5_000_000_000n, 'linear in the limit, not the input');
});

test('every result is free of control characters, whatever the input', () => {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const alphabet = ['\x1b', '[', ']', '\\', '\x07', '\x9b', '\x9c', '\x9d', '\x90', '\x00', '\n', '\x7f', 'm', '3', ';', 'a', ' ', '\u202e', '\ud83d', '\ude00', 'é'];
  for (let n = 0; n < 2000; n++) {
    let s = '';
    const len = Math.floor(rnd() * 40);
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    const max = 1 + Math.floor(rnd() * 30);
    const out = safeText(s, max);
    assert.not.match(out, UNSAFE, JSON.stringify(s));
    assert.ok([...out].length <= max, JSON.stringify(s));
    assert.ok(out.isWellFormed(), JSON.stringify(s));
    assert.is(out, out.trim());
  }
});

test('quotedText quotes a short safe form', () => {
  assert.is(quotedText('sha256:\x1b[2Jabc'), '"sha256:abc"');
  assert.is(quotedText('z'.repeat(200), 10), `"${'z'.repeat(9)}…"`);
});

test('a registry error code and message with escapes reach the message stripped and cut', () => {
  const body = JSON.stringify({ errors: [{ code: '\x1b[31mEVIL\x07' + 'C'.repeat(500), message: 'msg\x1b]0;title\x07 ' + 'm'.repeat(1000) }] });
  const e = errorFromResponse(500, body, { what: 'docker://127.0.0.1:5000/app:v1', kind: 'manifest' });
  assert.is(e.code, 'IMGX_REGISTRY_ERROR');
  assert.not.match(e.message, UNSAFE);
  assert.ok(e.message.includes('EVIL'), e.message);
  assert.ok(e.message.length < 400, `${e.message.length} characters`);
  // A known code still maps to its error; the message beside it is stripped.
  const denied = errorFromResponse(403, JSON.stringify({ errors: [{ code: 'DENIED', message: 'no\x1b[2J way' }] }), { what: 'x', kind: 'manifest' });
  assert.is(denied.code, 'IMGX_DENIED');
  assert.is(denied.message, 'x: denied (no way)');
});

test('error bodies of any other shape fall back to the HTTP status', () => {
  for (const body of ['', 'not json', '[]', 'null', '{"errors":{}}', '{"errors":[null]}', '{"errors":[{"code":5,"message":[1]}]}', '['.repeat(100_000) + ']'.repeat(100_000)]) {
    assert.equal(firstError(body), {}, body.slice(0, 40));
    const e = errorFromResponse(502, body, { what: 'x', kind: 'blob' });
    assert.is(e.code, 'IMGX_REGISTRY_ERROR');
    assert.is(e.message, 'x: registry error: HTTP 502');
  }
  assert.is(errorFromResponse(404, '{"errors":[{"code":{}}]}', { what: 'x', kind: 'manifest' }).code, 'IMGX_MANIFEST_UNKNOWN');
});

test('network error messages (which may quote the far end) are made safe', () => {
  const err = Object.assign(new Error('certificate names \x1b[31mevil\x1b[0m\n' + 'n'.repeat(1000)), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  const e = networkError(err, 'h:1', 'x');
  assert.is(e.code, 'IMGX_TLS');
  assert.not.match(e.message, UNSAFE);
  assert.ok(e.message.length < 400);
});

test.run();
