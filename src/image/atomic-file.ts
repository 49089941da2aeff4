// Atomic writes: temp file beside the target → fsync → rename, so a reader or a crash never sees
// a half-written file under the final name. A failure (a full disk …) removes the temp file and
// throws the system's error, for the caller to name what it was writing.
import { open, rename, rm, mkdir } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

export function tempNameFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

export async function writeFileAtomic(target: string, data: Uint8Array | string, mode = 0o644): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempNameFor(target);
  const fh = await open(tmp, 'wx', mode);
  let closed = false;
  try {
    await fh.writeFile(data);
    await fh.sync();
    closed = true;
    await fh.close();
    await rename(tmp, target);
  } catch (e) {
    // Removal works on a full disk; should it fail too, the write's error is the one to report.
    if (!closed) await fh.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
}
