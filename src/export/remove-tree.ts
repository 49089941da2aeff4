// Removes a tree this process built, even when it holds directories with modes such as 0000 that
// an unprivileged owner cannot read: those are made searchable first. Symlinks are never followed
// (lstat decides, and only real directories are chmod'ed).
import { chmod, lstat, readdir, rm } from 'node:fs/promises';

/** `path` may be a Buffer: trees from layers have names that are not UTF-8 (raw-name.ts). */
export async function removeTree(path: string | Buffer): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw e;
  }
  await makeSearchable(path);
  await rm(path, { recursive: true, force: true });
}

async function makeSearchable(dir: string | Buffer): Promise<void> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return;
  await chmod(dir, 0o700).catch(() => {});
  // Names as bytes, whatever they are.
  const names = await readdir(dir, { encoding: 'buffer' }).catch(() => [] as Buffer[]);
  const base = typeof dir === 'string' ? Buffer.from(dir) : dir;
  for (const n of names) await makeSearchable(Buffer.concat([base, Buffer.from('/'), n]));
}
