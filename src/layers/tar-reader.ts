// The streaming tar reader. Headers are parsed straight out of the incoming chunks (a header that
// straddles two chunks is the only copy); data is skipped by counting, or handed to the entry's
// body stream as slices of those chunks. One state object owns the input; the generator and the
// current body stream take turns on it, so a body can be read while the generator waits at `yield`.
// Every way an archive can end early or be garbage is an IMGX_BAD_ARCHIVE naming the offset.
import { Readable } from 'node:stream';
import { BadArchiveError } from '../errors.ts';
import { SparseError, SparseMapText, oldGnuSparseExtension, oldGnuSparseHeader, paxSparse, validateSparse, type SparseSegment } from './sparse.ts';
import {
  BLOCK_SIZE,
  MAX_EXTENSION_SIZE,
  TarExtensions,
  decodeHeader,
  isExtension,
  isHeaderOnly,
  isZeroBlock,
  paddingFor,
  type TarHeader,
} from './tar-header.ts';

export interface TarEntry {
  /** With PAX / GNU long name and link extensions applied. */
  header: TarHeader;
  /**
   * Byte offset, in the uncompressed stream, of this entry's first header block (its PAX/GNU
   * extension headers included). Stable across re-reads: pass 2 finds an entry again by it.
   */
  offset: number;
  /**
   * The entry's data: exactly header.size bytes (for GNU sparse files: the expanded logical
   * content, header.size = logical size, holes as zeros). Consume it or leave it: asking for the
   * next entry skips what is left.
   */
  body: Readable;
  /**
   * The body without a stream: calls `sink` with each piece of the content in order (holes of
   * sparse files as zeros) and resolves after the last. A piece is valid only during the call. For
   * consumers that write synchronously (pass 1 staging file contents); use it or `body`, not both.
   */
  readBody(sink: (chunk: Buffer) => void): Promise<void>;
  /**
   * The stored data only, each piece with its offset in the logical content: holes are not
   * produced, so a 60 GB sparse file with 600 bytes of data costs 600 bytes. For a file that is not
   * sparse, the same pieces as readBody at increasing offsets. Use one of body, data, readBody
   * and readData, once.
   */
  readData(sink: (chunk: Buffer, offset: number) => void): Promise<void>;
  /**
   * The stored data only, as a stream: for a sparse file, the data of `sparse`'s segments one
   * after the other (a sink places them, or writes them out with the map); else the same as body.
   */
  data: Readable;
  /** For GNU sparse files: where the stored data goes (everything else is a hole). */
  sparse?: SparseSegment[];
}

export interface ReadTarOptions {
  /** Names the archive in error messages (e.g. `layer 3 (sha256:…)`). */
  what?: string;
  /** Pass 1's fast path: no body streams, data skipped by counting; every body is empty. */
  skipBodies?: boolean;
  /**
   * The input reuses a chunk's memory once the next is asked for (offthread-decode.ts): nothing
   * may hold on to a chunk, so there are no body streams (`readBody` only).
   */
  recycled?: boolean;
}

/** What the reader reads: a Readable, or anything else that iterates chunks and can be stopped. */
export interface TarInput {
  [Symbol.asyncIterator](): AsyncIterator<unknown>;
  destroy(): void;
  readonly destroyed: boolean;
}

const EMPTY = Buffer.alloc(0);
/** Holes of sparse files are pushed in pieces of at most this size. */
const ZERO_CHUNK = 1 << 16;
const ZEROS = Buffer.alloc(ZERO_CHUNK);

function emptyBody(): Readable {
  return new Readable({
    read() {
      this.push(null);
    },
  });
}

/** How an entry reaches its content (undefined: it has none, or bodies are skipped). */
interface ContentAccess {
  stream(physical: boolean): Readable;
  read(sink: (chunk: Buffer, offset: number) => void, physical: boolean): Promise<void>;
}

class Entry implements TarEntry {
  header: TarHeader;
  offset: number;
  sparse?: SparseSegment[];
  #stream: Readable | undefined;
  #access: ContentAccess | undefined;
  constructor(header: TarHeader, offset: number, access: ContentAccess | undefined, sparse: SparseSegment[] | undefined) {
    this.header = header;
    this.offset = offset;
    this.#access = access;
    if (sparse) this.sparse = sparse;
  }
  #take(): ContentAccess | undefined {
    if (this.#stream) throw new Error('tar entry: the body stream was already taken');
    const a = this.#access;
    this.#access = undefined;
    return a;
  }
  readBody(sink: (chunk: Buffer) => void): Promise<void> {
    try {
      return this.#take()?.read((chunk) => sink(chunk), false) ?? Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }
  readData(sink: (chunk: Buffer, offset: number) => void): Promise<void> {
    try {
      return this.#take()?.read(sink, true) ?? Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }
  #streamOf(physical: boolean): Readable {
    if (this.#stream) return this.#stream;
    const a = this.#access;
    this.#access = undefined;
    return (this.#stream = a ? a.stream(physical) : emptyBody());
  }
  /**
   * Created on first use: pass 1 reads millions of entries and never looks at a body, and pass 2
   * passes over most entries of a layer to reach the few it wants.
   */
  get body(): Readable {
    return this.#streamOf(false);
  }
  get data(): Readable {
    return this.#streamOf(true);
  }
}

/** A piece of an entry's logical content: stored data from the archive, or a hole. */
interface Piece {
  data: boolean;
  left: number;
}

class Body extends Readable {
  readonly reader: TarReader;
  constructor(reader: TarReader) {
    super({ highWaterMark: 1 << 16 });
    this.reader = reader;
  }
  override _read(): void {
    this.reader.feed(this);
  }
}

interface Current {
  /** Stored data bytes of the entry not yet consumed from the input. */
  stored: number;
  padding: number;
  pieces: Piece[];
  piece: number;
  body: Body | undefined;
  /** All the content was pushed (and the end). */
  complete: boolean;
  /** The generator moved on: the pump must stop. */
  left: boolean;
  /** Holes are skipped, not given as zeros (readData, data). */
  physical: boolean;
  /** Offset in the logical content of the next byte to give. */
  at: number;
}

class TarReader {
  private readonly input: TarInput;
  private readonly it: AsyncIterator<unknown>;
  private readonly what: string;
  private readonly skipBodies: boolean;
  private readonly recycled: boolean;
  private readonly ext = new TarExtensions();
  /** The current chunk, the read position in it, and the stream offset of its first byte. */
  private buf: Buffer = EMPTY;
  private pos = 0;
  private base = 0;
  private inputDone = false;
  private scratch = Buffer.alloc(BLOCK_SIZE);
  private cur: Current | undefined;
  /** True while a pump runs (set and cleared synchronously, so no _read call is ever lost). */
  private pumpActive = false;
  private pumping: Promise<void> = Promise.resolve();
  private want = false;
  private failed: unknown;
  private closed = false;

  constructor(input: TarInput, opts: ReadTarOptions) {
    this.input = input;
    this.it = input[Symbol.asyncIterator]();
    this.what = opts.what ?? 'tar archive';
    this.skipBodies = opts.skipBodies === true;
    this.recycled = opts.recycled === true;
  }

  private get offset(): number {
    return this.base + this.pos;
  }

  private bad(message: string, at = this.offset): BadArchiveError {
    return new BadArchiveError(`${this.what}: ${message} at offset ${at}`);
  }

  private truncated(what: string): BadArchiveError {
    return this.bad(`truncated tar archive: the stream ends inside ${what}`);
  }

  /** Makes unread bytes available in `buf`; false at the end of the input. */
  private async fill(): Promise<boolean> {
    while (this.pos >= this.buf.length) {
      if (this.inputDone) return false;
      const r = await this.it.next();
      if (r.done) {
        this.inputDone = true;
        return false;
      }
      const v = r.value;
      const chunk = Buffer.isBuffer(v) ? v : typeof v === 'string' ? Buffer.from(v) : Buffer.from(v as Uint8Array);
      this.base += this.buf.length;
      this.buf = chunk;
      this.pos = 0;
    }
    return true;
  }

  /** The next 512-byte block, without a copy when it lies in one chunk; null at a clean end. */
  private async block(what: string): Promise<Uint8Array | null> {
    if (this.buf.length - this.pos >= BLOCK_SIZE) {
      const b = this.buf.subarray(this.pos, this.pos + BLOCK_SIZE);
      this.pos += BLOCK_SIZE;
      return b;
    }
    let got = 0;
    while (got < BLOCK_SIZE) {
      if (this.pos >= this.buf.length && !(await this.fill())) {
        if (got === 0) return null;
        throw this.truncated(what);
      }
      const n = Math.min(BLOCK_SIZE - got, this.buf.length - this.pos);
      this.buf.copy(this.scratch, got, this.pos, this.pos + n);
      this.pos += n;
      got += n;
    }
    return this.scratch;
  }

  private async skip(n: number, what: string): Promise<void> {
    while (n > 0) {
      const avail = this.buf.length - this.pos;
      if (avail >= n) {
        this.pos += n;
        return;
      }
      n -= avail;
      this.pos = this.buf.length;
      if (!(await this.fill())) throw this.truncated(what);
    }
  }

  private async bytes(n: number, what: string): Promise<Buffer> {
    if (this.buf.length - this.pos >= n) {
      const b = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      return b;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (this.pos >= this.buf.length && !(await this.fill())) throw this.truncated(what);
      const k = Math.min(n - got, this.buf.length - this.pos);
      this.buf.copy(out, got, this.pos, this.pos + k);
      this.pos += k;
      got += k;
    }
    return out;
  }

  // ---- the body stream side ----------------------------------------------------------------

  /** The body stream of an entry, made when the consumer first asks for it. */
  private bodyOf(cur: Current, physical: boolean): Readable {
    if (this.recycled) throw new Error(`${this.what}: no body streams over recycled input (use readBody)`);
    cur.physical = physical;
    const body = new Body(this);
    // Asked for after the reader moved on: the data is gone; the stream says so when read
    // (premature close), as a body left half-read does.
    if (cur.left || this.closed) body.destroy();
    else cur.body = body;
    return body;
  }

  /** Called by the current body's _read: pushes content until the body is full or complete. */
  feed(body: Body): void {
    this.want = true;
    if (this.pumpActive || this.cur?.body !== body) return;
    this.pumping = this.pump(body);
  }

  /**
   * The next piece of `cur`'s content: a slice of the input, or zeros for a hole (a fresh buffer,
   * or with `shared` a slice of one zero buffer that must not be kept); null once all of it was
   * given; undefined when the reader moved on while this waited for input.
   */
  private async nextPiece(cur: Current, shared: boolean): Promise<Buffer | null | undefined> {
    for (;;) {
      const piece = cur.pieces[cur.piece];
      if (!piece) return null;
      if (piece.left === 0) {
        cur.piece++;
        continue;
      }
      if (!piece.data) {
        if (cur.physical) {
          cur.at += piece.left;
          piece.left = 0;
          continue;
        }
        const n = Math.min(piece.left, ZERO_CHUNK);
        piece.left -= n;
        cur.at += n;
        return shared ? ZEROS.subarray(0, n) : Buffer.alloc(n);
      }
      if (this.pos >= this.buf.length && !(await this.fill())) throw this.truncated(`the data of an entry`);
      if (cur.left || this.closed) return undefined;
      const n = Math.min(piece.left, this.buf.length - this.pos);
      const chunk = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      cur.stored -= n;
      piece.left -= n;
      cur.at += n;
      return chunk;
    }
  }

  private async pump(body: Body): Promise<void> {
    const cur = this.cur!;
    this.pumpActive = true;
    try {
      while (this.want && !body.destroyed && !cur.left && !this.closed) {
        const chunk = await this.nextPiece(cur, false);
        if (chunk === undefined || body.destroyed) return;
        if (chunk === null) {
          cur.complete = true;
          this.want = false;
          body.push(null);
          return;
        }
        // `want` is cleared before push: a _read called from inside push sets it again.
        this.want = false;
        if (body.push(chunk)) this.want = true;
      }
    } catch (e) {
      this.failed ??= e;
      if (!body.destroyed) body.destroy(e as Error);
    } finally {
      this.pumpActive = false;
    }
  }

  /** Entry.readBody and readData: the content of `cur` to `sink`, straight from the input chunks. */
  readInto(cur: Current, sink: (chunk: Buffer, offset: number) => void, physical: boolean): Promise<void> {
    if (cur.left || this.closed || cur.body) return Promise.reject(new Error('tar entry: the body is no longer readable'));
    cur.physical = physical;
    // Marked as a pump, so that moving to the next entry waits for this read to finish.
    this.pumpActive = true;
    this.pumping = (async () => {
      try {
        for (;;) {
          const chunk = await this.nextPiece(cur, true);
          if (chunk === null) break;
          if (chunk === undefined) throw new Error('tar entry: the reader moved on');
          sink(chunk, cur.at - chunk.length);
        }
        cur.complete = true;
      } catch (e) {
        this.failed ??= e;
        throw e;
      } finally {
        this.pumpActive = false;
      }
    })();
    return this.pumping;
  }

  // ---- the generator side ------------------------------------------------------------------

  async next(): Promise<TarEntry | null> {
    if (this.failed) throw this.failed;
    // Leave the current entry: wait for its body's pump, drop what the consumer did not read.
    // (Inline, with synchronous fast paths: this runs once per entry of every layer.)
    const cur = this.cur;
    if (cur) {
      this.cur = undefined;
      cur.left = true;
      while (this.pumpActive) await this.pumping;
      if (this.failed) throw this.failed;
      if (cur.body && !cur.complete && !cur.body.destroyed) cur.body.destroy();
      const n = cur.stored + cur.padding;
      if (this.buf.length - this.pos >= n) this.pos += n;
      else await this.skip(n, 'the data of an entry');
    }
    let start = this.offset;
    for (;;) {
      const at = this.offset;
      let block: Uint8Array | null;
      if (this.buf.length - this.pos >= BLOCK_SIZE) {
        block = this.buf.subarray(this.pos, this.pos + BLOCK_SIZE);
        this.pos += BLOCK_SIZE;
      } else block = await this.block('a header');
      // An extension header with no entry after it describes nothing: the end, as in Go.
      if (block === null) return null;
      let raw: TarHeader | null;
      try {
        raw = decodeHeader(block);
      } catch (e) {
        throw this.bad(`${at === 0 ? 'not a tar archive' : 'corrupt tar header'}: ${(e as Error).message}`, at);
      }
      if (raw === null) {
        // The marker is two zero blocks. A zero block followed by anything else is refused, as Go's
        // archive/tar (docker, containerd, umoci) refuses it: entries hidden after a lone zero
        // block would be seen by some tools and not others. A stream that ends after one is fine.
        const second = await this.block('the end-of-archive marker');
        if (second !== null && !isZeroBlock(second)) throw this.bad('a lone zero block followed by more data', at);
        await this.drain();
        return null;
      }
      if (raw.size < 0 && !isHeaderOnly(raw.type)) throw this.bad(`negative size ${raw.size}`, at);

      if (isExtension(raw.type)) {
        // Held in memory until its entry; each one replaces the one before (at most 1 MiB each).
        if (raw.size > MAX_EXTENSION_SIZE) throw this.bad(`${raw.type} entry of ${raw.size} bytes`, at);
        const body = await this.bytes(raw.size, `a ${raw.type} entry`);
        try {
          this.ext.absorb(raw, body);
        } catch (e) {
          throw this.bad((e as Error).message, at);
        }
        await this.skip(paddingFor(raw.size), `a ${raw.type} entry`);
        // A global header belongs to no entry: the next entry starts after it.
        if (raw.type === 'pax-global-header' && !this.ext.pending) start = this.offset;
        continue;
      }

      // Old GNU sparse: the map sits in this header (read it before the block is reused) and in
      // extension blocks after it. Type 'S' in any other format is not a header Go can read.
      if (raw.typeflag === 'S' && raw.format !== 'gnu') throw this.bad('a GNU sparse header in a non-GNU archive', at);
      let oldSparse: ReturnType<typeof oldGnuSparseHeader> | undefined;
      if (raw.typeflag === 'S' && raw.format === 'gnu') {
        try {
          oldSparse = oldGnuSparseHeader(block);
          let more = oldSparse.extended;
          while (more) {
            const ext = await this.block('a sparse map');
            if (ext === null) throw this.truncated('a sparse map');
            more = oldGnuSparseExtension(ext, oldSparse.segments);
          }
        } catch (e) {
          // Only the map's own faults are named here: the input's errors (a diff_id check) pass as they are.
          if (!(e instanceof SparseError)) throw e;
          throw this.bad(`bad sparse map: ${e.message}`, at);
        }
      }

      let header: TarHeader;
      try {
        header = this.ext.apply(raw);
      } catch (e) {
        throw this.bad((e as Error).message, at);
      }
      if (header.size < 0 && !isHeaderOnly(header.type)) throw this.bad(`negative size ${header.size}`, at);

      let stored = isHeaderOnly(header.type) ? 0 : header.size;
      if (stored !== header.size) header = { ...header, size: stored };
      const padding = paddingFor(stored);
      let segments: SparseSegment[] | undefined;
      try {
        if (oldSparse) {
          segments = oldSparse.segments;
          header = { ...header, type: 'file', size: oldSparse.realSize };
        } else if (header.pax) {
          const ps = paxSparse(header.pax, header.size);
          if (ps) {
            if (isHeaderOnly(header.type)) throw new SparseError(`a sparse map on a ${header.type}`);
            header = { ...header, size: ps.realSize };
            if (ps.name !== undefined) header.name = ps.name;
            if (ps.version === '1.0') {
              // The map is text at the start of the data, in whole blocks.
              const map = new SparseMapText();
              while (!map.done) {
                if (map.consumed + BLOCK_SIZE > stored) throw new SparseError('the sparse map runs past the entry data');
                const b = await this.block('a sparse map');
                if (b === null) throw this.truncated('a sparse map');
                map.addBlock(b);
              }
              stored -= map.consumed;
              segments = map.segments;
            } else segments = ps.segments;
          }
        }
        if (segments) validateSparse(segments, header.size, stored);
      } catch (e) {
        if (!(e instanceof SparseError)) throw e;
        throw this.bad(`bad sparse entry ${JSON.stringify(header.name)}: ${e.message}`, at);
      }

      const pieces: Piece[] = [];
      if (segments) {
        let pos = 0;
        for (const s of segments) {
          if (s.offset > pos) pieces.push({ data: false, left: s.offset - pos });
          if (s.size > 0) pieces.push({ data: true, left: s.size });
          pos = s.offset + s.size;
        }
        if (header.size > pos) pieces.push({ data: false, left: header.size - pos });
      } else if (stored > 0) pieces.push({ data: true, left: stored });

      const cur: Current = { stored, padding, pieces, piece: 0, body: undefined, complete: false, left: false, physical: false, at: 0 };
      this.cur = cur;
      const withBody = !this.skipBodies && header.size > 0;
      const access: ContentAccess | undefined = withBody
        ? { stream: (physical) => this.bodyOf(cur, physical), read: (sink, physical) => this.readInto(cur, sink, physical) }
        : undefined;
      return new Entry(header, start, access, segments);
    }
  }

  /** After the end-of-archive marker: read the rest, so a verifying input sees its end. */
  private async drain(): Promise<void> {
    this.pos = this.buf.length;
    while (await this.fill()) this.pos = this.buf.length;
  }

  /** The consumer stopped early (or everything ended): let go of the input and the body. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const body = this.cur?.body;
    if (body && !this.cur!.complete && !body.destroyed) body.destroy();
    this.cur = undefined;
    if (!this.inputDone && !this.input.destroyed) this.input.destroy();
  }
}

/**
 * Reads a tar stream entry by entry. Truncated input, a bad checksum or garbage is an
 * IMGX_BAD_ARCHIVE naming `what` and the offset; errors of the input itself (a digest check, a
 * decompressor) come through unchanged. Stopping early destroys the input.
 */
export async function* readTar(input: TarInput, opts: ReadTarOptions = {}): AsyncGenerator<TarEntry> {
  const reader = new TarReader(input, opts);
  try {
    for (;;) {
      const entry = await reader.next();
      if (!entry) return;
      yield entry;
    }
  } finally {
    reader.close();
  }
}
