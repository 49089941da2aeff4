// @ts-check
// A gzip stream (one member or several) inflated through node:zlib's raw-deflate handle, with the
// members' headers and trailers read here (RFC 1952). Why not the Gunzip handle: it computes the
// CRC-32 of every output byte, ~15% of the inflating on a CPU of this project's CI kind, and the
// layer's output is hashed anyway (its diff_id, SHA-256, checks every byte). The trailer's length
// (ISIZE) is still checked; its CRC-32 is not.
//
// Same behaviour as Gunzip otherwise: after a member, a zero byte ends the stream (padding, and
// whatever follows it is ignored); any other byte starts another member, whose header must then
// be valid. Errors carry zlib's codes and messages (Z_BUF_ERROR for a stream that ends early).
import { constants, createInflateRaw } from 'node:zlib';

const { Z_NO_FLUSH, Z_FINISH } = constants;
const EMPTY = new Uint8Array(0);

/** Header flags (FLG). */
const FHCRC = 0x02;
const FEXTRA = 0x04;
const FNAME = 0x08;
const FCOMMENT = 0x10;
const RESERVED = 0xe0;

/**
 * @typedef {{ code: string; message: string }} InflateError
 * @typedef {{ availOut: number; availIn: number; ended: boolean; error?: InflateError }} WriteResult
 * @typedef {{
 *   write(finish: boolean, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): WriteResult;
 *   close(): void;
 * }} Inflater
 */

/** The raw-deflate handle of node:zlib, if this Node has the internals it is driven through. */
function rawHandle() {
  const stream = createInflateRaw();
  const internals = /** @type {any} */ (stream);
  const native = internals._handle;
  const state = internals._writeState;
  if (!native || typeof native.writeSync !== 'function' || typeof native.reset !== 'function' || !(state instanceof Uint32Array) || state.length < 2) {
    stream.close();
    return undefined;
  }
  return { stream, native, state };
}

/** node:zlib's names for its error numbers. */
/** @type {Record<number, string>} */
const ZLIB_CODES = { [-2]: 'Z_STREAM_ERROR', [-3]: 'Z_DATA_ERROR', [-4]: 'Z_MEM_ERROR', [-5]: 'Z_BUF_ERROR', [-6]: 'Z_VERSION_ERROR', [2]: 'Z_NEED_DICT' };

const truncated = () => ({ code: 'Z_BUF_ERROR', message: 'unexpected end of file' });
const dataError = (/** @type {string} */ message) => ({ code: 'Z_DATA_ERROR', message });

/** @returns {Inflater | undefined} */
export function gzipInflater() {
  const h = rawHandle();
  if (!h) return undefined;
  const { stream, native, state } = h;
  /** @type {InflateError | undefined} */
  let error;
  // Called synchronously from inside writeSync; replaces the stream's handler (which would destroy the stream).
  native.onerror = (/** @type {string} */ message, /** @type {number} */ errno) => {
    error ??= { code: ZLIB_CODES[errno] ?? `errno ${errno}`, message };
  };

  // Where in the stream: a member's fixed header, its optional fields, its deflate data, its
  // trailer, or between members.
  /** @type {'fixed' | 'xlen' | 'extra' | 'name' | 'comment' | 'hcrc' | 'body' | 'trailer' | 'between' | 'done'} */
  let phase = 'fixed';
  const fixed = new Uint8Array(10);
  const trailer = new Uint8Array(8);
  /** Bytes of the current fixed-size field seen so far, or left to skip. */
  let have = 0;
  let skip = 0;
  let flags = 0;
  /** Output of the current member, modulo 2^32 (compared with ISIZE). */
  let memberOut = 0;

  /** After the fixed header (or a field): the next optional field the flags ask for, else the data. */
  function nextField(/** @type {string} */ after) {
    const order = ['fixed', 'xlen', 'name', 'comment', 'hcrc'];
    for (let i = order.indexOf(after) + 1; i < order.length; i++) {
      const f = order[i];
      if (f === 'xlen' && flags & FEXTRA) return 'xlen';
      if (f === 'name' && flags & FNAME) return 'name';
      if (f === 'comment' && flags & FCOMMENT) return 'comment';
      if (f === 'hcrc' && flags & FHCRC) return 'hcrc';
    }
    return 'body';
  }

  /**
   * @param {boolean} finish no input follows what is given
   * @param {Uint8Array} input @param {number} inOff @param {number} inLen
   * @param {Uint8Array} out @param {number} outOff @param {number} outLen
   * @returns {WriteResult}
   */
  function write(finish, input, inOff, inLen, out, outOff, outLen) {
    let i = inOff;
    const inEnd = inOff + inLen;
    let o = outOff;
    const outEnd = outOff + outLen;
    /** @param {InflateError} [e] @returns {WriteResult} */
    const result = (e) => ({ availOut: outEnd - o, availIn: inEnd - i, ended: phase === 'done', error: e });
    while (!error && phase !== 'done') {
      switch (phase) {
        case 'fixed': {
          if (i === inEnd) {
            if (finish) return result(truncated());
            return result();
          }
          fixed[have++] = /** @type {number} */ (input[i++]);
          if (have === 1 && fixed[0] !== 0x1f) return result(dataError('incorrect header check'));
          if (have === 2 && fixed[1] !== 0x8b) return result(dataError('incorrect header check'));
          if (have === 3 && fixed[2] !== 8) return result(dataError('unknown compression method'));
          if (have === 4 && (/** @type {number} */ (fixed[3]) & RESERVED) !== 0) return result(dataError('unknown header flags set'));
          if (have < 10) break;
          flags = /** @type {number} */ (fixed[3]);
          have = 0;
          phase = nextField('fixed');
          if (phase === 'hcrc') skip = 2;
          break;
        }
        case 'xlen': {
          if (i === inEnd) return finish ? result(truncated()) : result();
          // XLEN is little-endian: the field's length follows it.
          skip |= /** @type {number} */ (input[i++]) << (8 * have);
          if (++have < 2) break;
          have = 0;
          phase = 'extra';
          break;
        }
        case 'extra':
        case 'hcrc': {
          const n = Math.min(skip, inEnd - i);
          i += n;
          skip -= n;
          if (skip > 0) return finish ? result(truncated()) : result();
          phase = nextField(phase === 'extra' ? 'xlen' : 'hcrc');
          if (phase === 'hcrc') skip = 2;
          break;
        }
        case 'name':
        case 'comment': {
          // Zero-terminated.
          const nul = input.subarray(i, inEnd).indexOf(0);
          if (nul < 0) {
            i = inEnd;
            return finish ? result(truncated()) : result();
          }
          i += nul + 1;
          phase = nextField(phase);
          if (phase === 'hcrc') skip = 2;
          break;
        }
        case 'body': {
          if (o === outEnd) return result();
          const len = inEnd - i;
          if (len === 0 && !finish) return result();
          native.writeSync(finish && len === 0 ? Z_FINISH : Z_NO_FLUSH, len === 0 ? EMPTY : input, len === 0 ? 0 : i, len, out, o, outEnd - o);
          if (error) return result(error);
          const availOut = /** @type {number} */ (state[0]);
          const availIn = /** @type {number} */ (state[1]);
          const produced = outEnd - o - availOut;
          const consumed = len - availIn;
          memberOut = (memberOut + produced) >>> 0;
          o += produced;
          i += consumed;
          // The deflate data ended: input left over with room to spare, or (the end fell on the
          // last byte given before) no progress at all on what came next, or nothing more to come.
          if ((availIn > 0 && availOut > 0) || (len > 0 && consumed === 0 && produced === 0) || (len === 0 && availOut > 0)) {
            phase = 'trailer';
            have = 0;
            break;
          }
          // All of the last input taken and room left: now it must end (or fail, if cut short).
          if (finish && i === inEnd && o < outEnd && len > 0) break;
          return result();
        }
        case 'trailer': {
          while (have < 8 && i < inEnd) trailer[have++] = /** @type {number} */ (input[i++]);
          if (have < 8) return finish ? result(truncated()) : result();
          if (new DataView(trailer.buffer).getUint32(4, true) !== memberOut) return result(dataError('incorrect length check'));
          phase = 'between';
          break;
        }
        case 'between': {
          if (i === inEnd) {
            if (finish) phase = 'done';
            return result();
          }
          if (input[i] === 0) {
            // Zero padding: the stream ends here, whatever follows (as Gunzip has it).
            phase = 'done';
            break;
          }
          native.reset();
          have = 0;
          memberOut = 0;
          phase = 'fixed';
          break;
        }
      }
    }
    return result(error);
  }

  return { write, close: () => stream.close() };
}
