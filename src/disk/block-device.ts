// A block device as to-disk's OUT (a USB stick, a cloud volume attached to this machine): the disk
// is written in place, as large as the device. Refused while the device or one of its partitions
// is mounted, and only with --force: writing a device destroys what it held.
import { lstat, readdir, readFile } from 'node:fs/promises';
import { ImgxError, UsageError } from '../errors.ts';
import { devMajor, devMinor } from './dev-number.ts';

export interface BlockDevice {
  path: string;
  /** Bytes. */
  size: number;
  /** "MAJOR:MINOR". */
  devno: string;
}


/** The device at `path`, or undefined when it is not a block device. */
export async function blockDevice(path: string): Promise<BlockDevice | undefined> {
  const st = await lstat(path).catch(() => undefined);
  if (!st?.isBlockDevice()) return undefined;
  const devno = `${devMajor(st.rdev)}:${devMinor(st.rdev)}`;
  const sectors = Number((await readFile(`/sys/dev/block/${devno}/size`, 'utf8')).trim());
  return { path, size: sectors * 512, devno };
}

/** Device numbers of the device and its partitions, from sysfs. */
async function familyDevnos(dev: BlockDevice): Promise<Set<string>> {
  const out = new Set([dev.devno]);
  const dir = `/sys/dev/block/${dev.devno}`;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const n = await readFile(`${dir}/${name}/dev`, 'utf8').catch(() => undefined);
    if (n) out.add(n.trim());
  }
  return out;
}

export async function checkDeviceTarget(dev: BlockDevice, opts: { force: boolean; format: string; sizeGiven: boolean }): Promise<void> {
  if (opts.format !== 'raw') throw new UsageError(`${dev.path} is a block device: only --format raw can be written to it`);
  if (opts.sizeGiven) throw new UsageError(`${dev.path} is a block device: the disk is as large as the device (${dev.size} bytes); leave --size out`);
  const family = await familyDevnos(dev);
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[2] && family.has(f[2])) throw new ImgxError('IMGX_DEST_EXISTS', `${dev.path} (or a partition of it) is mounted on ${f[4]}: unmount it first`);
  }
  if (!opts.force) throw new ImgxError('IMGX_DEST_EXISTS', `${dev.path} is a block device: writing the disk there destroys what it holds; add --force to do it`);
}
