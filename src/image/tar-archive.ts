// Random access to the regular files of a tar archive without extracting it: one pass over the
// headers with positioned reads (file data is skipped by offset, never read), then any member is
// a byte range of the archive. Image archives hold a handful of big blobs, so the index is small.
// Every read goes through the file handle opened for indexing, so a file swapped on disk after
// `open` cannot change what the index points at.
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { BadArchiveError, ImgxError, NotFoundError, UnsupportedError } from '../errors.ts';
import { BLOCK_SIZE, MAX_EXTENSION_SIZE, TarExtensions, decodeHeader, isExtension, isHeaderOnly, paddingFor } from '../layers/tar-header.ts';

export interface TarMember {
  /** Normalised name (no `./`, no trailing slash); for a member reached through a link, the link's name. */
  name: string;
  /** Offset of the data in the archive file. */
  offset: number;
  size: number;
}

const COMPRESSED: { magic: number[]; what: string; tool: string }[] = [
  { magic: [0x1f, 0x8b], what: 'gzip', tool: 'gunzip' },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], what: 'zstd', tool: 'unzstd' },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], what: 'xz', tool: 'unxz' },
  { magic: [0x42, 0x5a, 0x68], what: 'bzip2', tool: 'bunzip2' },
];

/** `./a//b/` → `a/b`. `..` is kept: such names simply never match what a caller looks up. */
export function normaliseMemberName(name: string): string {
  return name
    .split('/')
    .filter((p) => p !== '' && p !== '.')
    .join('/');
}

/** Resolves a link target against the directory of the link, inside the archive root; undefined if it leaves it. */
function resolveLink(linkName: string, target: string, hard: boolean): string | undefined {
  const parts = hard || target.startsWith('/') ? [] : linkName.split('/').slice(0, -1);
  for (const p of target.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(p);
  }
  return parts.join('/');
}

type Slot = { kind: 'file'; offset: number; size: number } | { kind: 'link'; target: string };

export class TarArchive {
  readonly file: string;
  private readonly handle: FileHandle;
  private readonly members: Map<string, TarMember>;
  private closed = false;

  private constructor(file: string, handle: FileHandle, members: Map<string, TarMember>) {
    this.file = file;
    this.handle = handle;
    this.members = members;
  }

  /** Opens and indexes `file`. Throws IMGX_BAD_ARCHIVE for a truncated or corrupt tar. */
  static async open(file: string): Promise<TarArchive> {
    let handle: FileHandle;
    try {
      handle = await openFile(file, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new NotFoundError('IMGX_NOT_FOUND', `${file}: no such file`);
      throw new ImgxError('IMGX_IO', `${file}: ${(e as Error).message}`, { cause: e });
    }
    try {
      const members = await scan(file, handle);
      return new TarArchive(file, handle, members);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** The regular file (or link to one) called `name`, after normalisation. */
  get(name: string): TarMember | undefined {
    return this.members.get(normaliseMemberName(name));
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  /** Reads `length` bytes at `offset` of the archive (fewer only if the file shrank, which is an error). */
  async readRange(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw new BadArchiveError(`${this.file}: archive shrank while being read (at offset ${offset + done})`);
      done += bytesRead;
    }
    return buf;
  }

  /** A member's whole content; callers cap sizes before calling. */
  read(member: TarMember): Promise<Buffer> {
    return this.readRange(member.offset, member.size);
  }

  /** A member's content as a stream (positioned reads on the shared handle; closing it is `close`'s job). */
  createReadStream(member: TarMember, start = 0): Readable {
    if (member.size - start <= 0) return Readable.from([]);
    return this.handle.createReadStream({ start: member.offset + start, end: member.offset + member.size - 1, autoClose: false });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

async function scan(file: string, handle: FileHandle): Promise<Map<string, TarMember>> {
  const fileSize = (await handle.stat()).size;
  if (fileSize === 0) throw new BadArchiveError(`${file}: empty file, not a tar archive`);
  const block = Buffer.alloc(BLOCK_SIZE);
  const readAt = async (buf: Buffer, length: number, position: number) => {
    let done = 0;
    while (done < length) {
      const { bytesRead } = await handle.read(buf, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  };

  const head = await readAt(block, Math.min(BLOCK_SIZE, fileSize), 0);
  for (const c of COMPRESSED) {
    if (head >= c.magic.length && c.magic.every((b, i) => block[i] === b)) {
      throw new UnsupportedError(`${file}: ${c.what}-compressed archives are not supported; ${c.tool} it first`);
    }
  }

  const slots = new Map<string, Slot>();
  const ext = new TarExtensions();
  let offset = 0;
  for (;;) {
    // A tar without its end-of-archive blocks is accepted at a block boundary, as GNU tar and Go do.
    if (offset === fileSize) break;
    if (offset + BLOCK_SIZE > fileSize) throw new BadArchiveError(`${file}: truncated tar archive: partial header at offset ${offset}`);
    await readAt(block, BLOCK_SIZE, offset);
    let header;
    try {
      header = decodeHeader(block);
    } catch (e) {
      const what = offset === 0 ? 'not a tar archive' : `corrupt tar archive at offset ${offset}`;
      throw new BadArchiveError(`${file}: ${what}: ${(e as Error).message}`);
    }
    if (!header) break;
    const dataOffset = offset + BLOCK_SIZE;
    // A negative size (base-256 allows it) would index backwards, or never move on.
    if (header.size < 0 && !isHeaderOnly(header.type)) throw new BadArchiveError(`${file}: corrupt tar archive at offset ${offset}: negative size ${header.size}`);

    if (isExtension(header.type)) {
      if (header.size > MAX_EXTENSION_SIZE) throw new BadArchiveError(`${file}: ${header.type} entry at offset ${offset} is ${header.size} bytes`);
      const padded = header.size + paddingFor(header.size);
      if (dataOffset + padded > fileSize) throw truncated(file, header.name, dataOffset, padded, fileSize);
      const body = Buffer.alloc(header.size);
      await readAt(body, header.size, dataOffset);
      try {
        ext.absorb(header, body);
      } catch (e) {
        throw new BadArchiveError(`${file}: at offset ${offset}: ${(e as Error).message}`);
      }
      offset = dataOffset + padded;
      continue;
    }

    let entry;
    try {
      entry = ext.apply(header);
    } catch (e) {
      throw new BadArchiveError(`${file}: at offset ${offset}: ${(e as Error).message}`);
    }
    const size = isHeaderOnly(entry.type) ? 0 : entry.size;
    if (size < 0) throw new BadArchiveError(`${file}: corrupt tar archive at offset ${offset}: negative size ${size}`);
    if (dataOffset + size + paddingFor(size) > fileSize) throw truncated(file, entry.name, dataOffset, size + paddingFor(size), fileSize);
    const name = normaliseMemberName(entry.name);
    if (name) {
      // Later entries replace earlier ones of the same name, as when extracting.
      if (entry.type === 'file') slots.set(name, { kind: 'file', offset: dataOffset, size });
      else if (entry.type === 'symlink' || entry.type === 'hardlink') {
        const target = resolveLink(name, entry.linkname, entry.type === 'hardlink');
        if (target !== undefined) slots.set(name, { kind: 'link', target });
        else slots.delete(name);
      } else slots.delete(name);
    }
    offset = dataOffset + size + paddingFor(size);
  }
  if (ext.pending) throw new BadArchiveError(`${file}: truncated tar archive: extension header without the entry it describes`);

  // Links are followed one level (docker save's legacy layout links repeated layer.tar files).
  const members = new Map<string, TarMember>();
  for (const [name, slot] of slots) {
    const target = slot.kind === 'link' ? slots.get(slot.target) : slot;
    if (target?.kind === 'file') members.set(name, { name, offset: target.offset, size: target.size });
  }
  return members;
}

function truncated(file: string, name: string, offset: number, needed: number, fileSize: number): BadArchiveError {
  return new BadArchiveError(
    `${file}: truncated tar archive: ${JSON.stringify(name)} needs ${needed} bytes at offset ${offset}, the file ends at ${fileSize}`,
  );
}
