// The tar sink: the flattened filesystem as one tar stream, as `docker export` gives a container's
// filesystem: every path once, no `./` prefix and no entry for the root itself, directories with
// a trailing `/`, hardlinks as link entries, xattrs as SCHILY.xattr PAX records (binary values
// byte for byte). Names and metadata come from the entries unchanged; the encoding is TarWriter's.
//
// Order, for plain `tar -x` to restore directory times: the flatten stage gives every directory
// before any file, but GNU tar sets a directory's times as soon as the archive moves past it, so
// files written into it later would leave it with the time of extraction. So the files, hardlinks,
// devices and fifos go first as they come (bodies are streamed, never held), then the directories,
// parents first, each followed by its symlinks: GNU tar makes symlinks with absolute or `..`
// targets only at the very end, and re-applies the times of the directories they are in only if
// the symlink came while its directory entry was still open. Directory and symlink entries are
// metadata only and the tree holds them anyway, so keeping them until the end costs little.
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FlatEntry } from '../layers/fs-entry.ts';
import { TarWriter } from '../layers/tar-writer.ts';

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '.' : path.slice(0, i);
}

export interface ExportStats {
  entries: number;
  bytes: number;
}

export interface ExportOptions {
  /** End `out` when the archive is complete (default true; false for process.stdout). */
  end?: boolean;
}

export async function exportTar(entries: AsyncIterable<FlatEntry>, out: Writable, opts: ExportOptions = {}): Promise<ExportStats> {
  const writer = new TarWriter();
  const piping = pipeline(writer.stream, out, { end: opts.end !== false });
  // Whichever fails first (the consumer going away, a layer going bad) ends both sides.
  piping.catch(() => {});
  const stats: ExportStats = { entries: 0, bytes: 0 };
  const write = async (e: FlatEntry) => {
    await writer.add(e, e.body);
    stats.entries++;
    stats.bytes += e.type === 'file' ? e.size : 0;
  };
  const dirs: FlatEntry[] = [];
  /** Symlinks by parent directory; hardlinks to a symlink go in its group, after it. */
  const symlinksIn = new Map<string, FlatEntry[]>();
  const groupOf = new Map<string, FlatEntry[]>();
  try {
    for await (const e of entries) {
      if (e.path === '.') continue;
      if (e.type === 'directory') {
        dirs.push(e);
      } else if (e.type === 'symlink') {
        const parent = parentOf(e.path);
        let group = symlinksIn.get(parent);
        if (!group) symlinksIn.set(parent, (group = []));
        group.push(e);
        groupOf.set(e.path, group);
      } else if (e.type === 'hardlink' && groupOf.has(e.linkname ?? '')) {
        groupOf.get(e.linkname!)!.push(e);
      } else {
        await write(e);
      }
    }
    groupOf.clear();
    const flush = async (dir: string) => {
      for (const e of symlinksIn.get(dir) ?? []) await write(e);
      symlinksIn.delete(dir);
    };
    await flush('.');
    for (const d of dirs) {
      await write(d);
      await flush(d.path);
    }
    // Symlinks in a directory the stream did not list (not from the flatten stage): last.
    for (const dir of [...symlinksIn.keys()]) await flush(dir);
    await writer.finish();
  } catch (err) {
    // Failed here (a layer): stop the output. Failed there (the reader went away, EPIPE): report that.
    const here = !writer.stream.destroyed;
    if (here) writer.stream.destroy(err as Error);
    const outErr = await piping.then(
      () => undefined,
      (e: unknown) => e,
    );
    throw here || outErr === undefined ? err : outErr;
  }
  await piping;
  return stats;
}
