// A cross-process lock file (O_EXCL create), for read-modify-write of small shared files such as
// the cache's index.json when several imgx processes pull at once. A lock whose holder died is
// taken over: the file records the holder's pid, checked with signal 0.
import { open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ImgxError } from '../errors.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const t0 = Date.now();
  let delay = 5;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o644);
      try {
        await fh.writeFile(String(process.pid));
        await fh.close();
      } catch (e) {
        // A lock file without a pid (a full disk) would hold every later process up until the
        // timeout: it goes again.
        await fh.close().catch(() => {});
        await rm(lockPath, { force: true }).catch(() => {});
        throw e;
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (holder && !alive(holder)) {
        await rm(lockPath, { force: true });
        continue;
      }
      if (Date.now() - t0 > timeoutMs) throw new ImgxError('IMGX_IO', `timed out waiting for the lock ${lockPath} (held by pid ${holder || '?'})`);
      await sleep(delay);
      delay = Math.min(delay * 2, 200);
    }
  }
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    await rm(lockPath, { force: true }).catch(() => {});
    throw e;
  }
  await rm(lockPath, { force: true });
  return result;
}
