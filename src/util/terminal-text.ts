// Text from outside (a registry's error codes and messages, header values, names, a helper
// program's output) on its way to a terminal: one line, printable, short. A terminal obeys what
// it is sent, so an escape sequence in a registry's error message could recolour, retitle or
// rewrite the user's screen, or hide the rest of the message. What safeText removes:
//
// - ANSI/ECMA-48 escape sequences, whole: CSI (`ESC [` … final byte, and the 8-bit CSI U+009B),
//   the strings OSC, DCS, SOS, PM and APC (`ESC ]`, `ESC P`, `ESC X`, `ESC ^`, `ESC _` and their
//   8-bit forms, up to BEL or ST), and two- or three-character escapes (`ESC c`, `ESC ( B`);
// - every other control character: C0 (U+0000–U+001F, tab and newline included), DEL (U+007F)
//   and C1 (U+0080–U+009F), and the line and paragraph separators U+2028/U+2029: each run of
//   them (and of spaces) becomes one space;
// - the invisible bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069),
//   which can make text read differently from what it is;
// - lone UTF-16 surrogates become U+FFFD (what Node would write for them anyway).
//
// The result is trimmed and at most `max` characters (code points) long: longer text is cut to
// max − 1 characters and ends in `…`. The default, 300, keeps an error message on a line or
// two; callers pass less for short things (an error code: 64). Only a prefix of a huge input
// is looked at, so a 50 MB string costs no more than a short one.
//
// A leaf module: it imports nothing of the project.

/** The default length limit of safeText, in characters. */
export const SAFE_TEXT_MAX = 300;

const ESC = 0x1b;
const BEL = 0x07;
const ST = 0x9c; // 8-bit String Terminator

/** 8-bit introducers of control strings (DCS, SOS, OSC, PM, APC), ended by BEL or ST. */
function isStringIntroducer8(c: number): boolean {
  return c === 0x90 || c === 0x98 || c === 0x9d || c === 0x9e || c === 0x9f;
}

/** The final character of `ESC x` that opens a control string: P (DCS), X (SOS), ] (OSC), ^ (PM), _ (APC). */
function isStringIntroducer7(c: number): boolean {
  return c === 0x50 || c === 0x58 || c === 0x5d || c === 0x5e || c === 0x5f;
}

function isControl(c: number): boolean {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029;
}

function isBidiControl(c: number): boolean {
  return c === 0x061c || c === 0x200e || c === 0x200f || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
}

/** Index after a control string's body starting at `i` (after BEL, `ESC \` or ST; the end if unterminated). */
function skipControlString(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c === BEL || c === ST) return i + 1;
    if (c === ESC) return s.charCodeAt(i + 1) === 0x5c ? i + 2 : i + 1;
    i++;
  }
  return i;
}

/** Index after a CSI sequence whose parameters start at `i`: parameter bytes, intermediate bytes, one final byte. */
function skipCsi(s: string, i: number): number {
  while (i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x3f) i++;
  while (i < s.length && s.charCodeAt(i) >= 0x20 && s.charCodeAt(i) <= 0x2f) i++;
  if (i < s.length && s.charCodeAt(i) >= 0x40 && s.charCodeAt(i) <= 0x7e) i++;
  return i;
}

/**
 * `s` made safe to print on a terminal: escape sequences and control characters removed (see the
 * top of this file), whitespace runs collapsed to one space, trimmed, and cut to `max` characters
 * with a trailing `…`.
 */
export function safeText(s: string, max: number = SAFE_TEXT_MAX): string {
  const limit = Math.max(1, Math.floor(max));
  // Escape sequences only shrink the text, but a prefix this long always yields enough of it
  // unless it is nearly all escapes; then what is left of it is what is shown.
  const scan = Math.min(s.length, limit * 16 + 256);
  const out: string[] = [];
  let count = 0;
  let space = false;
  let cut = scan < s.length;
  let i = 0;
  while (i < scan) {
    const c = s.charCodeAt(i);
    if (c === ESC) {
      const n = s.charCodeAt(i + 1);
      if (n === 0x5b) i = skipCsi(s, i + 2);
      else if (isStringIntroducer7(n)) i = skipControlString(s, i + 2);
      else {
        // ESC, intermediates (0x20–0x2F), one final character (0x30–0x7E).
        i++;
        while (i < s.length && s.charCodeAt(i) >= 0x20 && s.charCodeAt(i) <= 0x2f) i++;
        if (i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x7e) i++;
      }
      continue;
    }
    if (c === 0x9b) {
      i = skipCsi(s, i + 1);
      continue;
    }
    if (isStringIntroducer8(c)) {
      i = skipControlString(s, i + 1);
      continue;
    }
    if (isControl(c) || c === 0x20) {
      space = count > 0;
      i++;
      continue;
    }
    if (isBidiControl(c)) {
      i++;
      continue;
    }
    let ch: string;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && s.charCodeAt(i + 1) >= 0xdc00 && s.charCodeAt(i + 1) <= 0xdfff) {
      ch = s.slice(i, i + 2);
      i += 2;
    } else {
      ch = c >= 0xd800 && c <= 0xdfff ? '\ufffd' : s[i]!;
      i++;
    }
    const need = space ? 2 : 1;
    if (count + need > limit) {
      cut = true;
      break;
    }
    if (space) out.push(' ');
    out.push(ch);
    count += need;
    space = false;
  }
  if (!cut) return out.join('');
  // Make room for the ellipsis (and drop a space it would follow).
  while (out.length > 0 && count + 1 > limit) {
    out.pop();
    count--;
  }
  while (out.length > 0 && out[out.length - 1] === ' ') {
    out.pop();
    count--;
  }
  return out.join('') + '…';
}

/** `s` as a short quoted string for a message: safeText inside double quotes. */
export function quotedText(s: string, max = 80): string {
  return `"${safeText(s, max)}"`;
}
