// The kernel and initramfs an image already carries in /boot: Debian and Ubuntu (`vmlinuz-VER`,
// `initrd.img-VER`), Fedora-style (`initramfs-VER.img`), Alpine (`vmlinuz-lts`, `initramfs-lts`).
// The newest version wins. Paths are resolved inside the tree, so a hostile /boot symlink reads
// nothing of the host.
import { lstat, readdir } from 'node:fs/promises';
import { resolveInRoot } from '../run/root-path.ts';

export interface FoundKernel {
  /** Paths inside the image. */
  kernel: string;
  initrd?: string;
  version: string;
}

/** Compares dotted/dashed versions piece by piece, numbers numerically ("6.1.0-10" > "6.1.0-9"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+~_]/);
  const pb = b.split(/[.\-+~_]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const c = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x.localeCompare(y);
    if (c !== 0) return c;
  }
  return 0;
}

async function isFileInRoot(root: string, path: string): Promise<boolean> {
  const host = await resolveInRoot(root, path);
  return host !== undefined && (await lstat(host)).isFile();
}

export async function findKernel(root: string): Promise<FoundKernel | undefined> {
  const boot = await resolveInRoot(root, '/boot');
  if (!boot) return undefined;
  const names = await readdir(boot).catch(() => [] as string[]);
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-') && !n.endsWith('.old'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort(compareVersions)
    .reverse();
  for (const version of versions) {
    const kernel = `/boot/vmlinuz-${version}`;
    if (!(await isFileInRoot(root, kernel))) continue;
    let initrd: string | undefined;
    for (const candidate of [`initrd.img-${version}`, `initramfs-${version}.img`, `initramfs-${version}`, `initrd-${version}`]) {
      if (names.includes(candidate) && (await isFileInRoot(root, `/boot/${candidate}`))) {
        initrd = `/boot/${candidate}`;
        break;
      }
    }
    return { kernel, version, ...(initrd ? { initrd } : {}) };
  }
  return undefined;
}
