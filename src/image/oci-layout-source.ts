// `oci:DIR[:TAG]`: an OCI image layout in a directory.
import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { BadArchiveError, ImgxError, NotFoundError } from '../errors.ts';
import type { LayoutFiles } from './layout-files.ts';
import { OciLayoutImage } from './oci-layout.ts';
import type { ImageSource } from './source.ts';
import { tooLarge } from './verified-read.ts';

function ioError(path: string, e: unknown): ImgxError {
  return new ImgxError('IMGX_IO', `${path}: ${(e as Error).message}`, { cause: e });
}

/** Files of a layout directory. Only regular files are read (O_NONBLOCK so a planted FIFO cannot hang the open). */
export function directoryFiles(dir: string): LayoutFiles {
  async function openRegular(rel: string): Promise<{ handle: FileHandle; size: number } | undefined> {
    const path = join(dir, rel);
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw ioError(path, e);
    }
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      throw new BadArchiveError(`${path}: not a regular file`);
    }
    return { handle, size: st.size };
  }

  return {
    where: dir,
    async read(rel, cap) {
      const opened = await openRegular(rel);
      if (!opened) return undefined;
      try {
        if (opened.size > cap) throw tooLarge(join(dir, rel), opened.size, cap);
        // Read at most cap + 1 bytes, so a file growing after fstat cannot slip past the cap.
        const buf = Buffer.alloc(Math.min(opened.size, cap) + 1);
        let done = 0;
        while (done < buf.length) {
          const { bytesRead } = await opened.handle.read(buf, done, buf.length - done, done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        if (done > cap) throw tooLarge(join(dir, rel), done, cap);
        return buf.subarray(0, done);
      } finally {
        await opened.handle.close();
      }
    },
    async open(rel) {
      const opened = await openRegular(rel);
      if (!opened) return undefined;
      return { size: opened.size, stream: opened.handle.createReadStream({ autoClose: true }) };
    },
    async close() {},
  };
}

/** Opens the image `tag` names in the OCI layout at `dir` (or its only image when no tag is given). */
export async function openOciLayout(dir: string, tag?: string): Promise<ImageSource> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new BadArchiveError(`${dir}: not a directory (an OCI layout is a directory; for a tar use oci-archive:)`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('IMGX_NOT_FOUND', `${dir}: no such directory`);
    throw e instanceof ImgxError ? e : ioError(dir, e);
  }
  return OciLayoutImage.open(directoryFiles(dir), `oci:${dir}${tag ? `:${tag}` : ''}`, tag);
}
