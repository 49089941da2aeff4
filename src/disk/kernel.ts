// The kernel and initramfs an image already carries in /boot: Debian and Ubuntu (`vmlinuz-VER`,
// `initrd.img-VER`), Fedora-style (`initramfs-VER.img`), Alpine (`vmlinuz-lts`, `initramfs-lts`).
// The newest version wins. Paths are resolved inside the tree, so a hostile /boot symlink reads
// nothing of the host.
import { asView, type RootView } from './root-view.ts';

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

async function isFileInRoot(view: RootView, path: string): Promise<boolean> {
  const resolved = await view.resolve(path);
  return resolved !== undefined && (await view.lstat(resolved))?.type === 'file';
}

/** `root`: an extracted tree's directory, or a view of the image (root-view.ts). */
export async function findKernel(root: string | RootView): Promise<FoundKernel | undefined> {
  const view = asView(root);
  const boot = await view.resolve('/boot');
  if (!boot || (await view.lstat(boot))?.type !== 'directory') return undefined;
  const names = await view.readdir(boot);
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-') && !n.endsWith('.old'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort(compareVersions)
    .reverse();
  for (const version of versions) {
    const kernel = `/boot/vmlinuz-${version}`;
    if (!(await isFileInRoot(view, kernel))) continue;
    let initrd: string | undefined;
    for (const candidate of [`initrd.img-${version}`, `initramfs-${version}.img`, `initramfs-${version}`, `initrd-${version}`]) {
      if (names.includes(candidate) && (await isFileInRoot(view, `/boot/${candidate}`))) {
        initrd = `/boot/${candidate}`;
        break;
      }
    }
    return { kernel, version, ...(initrd ? { initrd } : {}) };
  }
  return undefined;
}
