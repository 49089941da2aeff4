// What turns a container userland into a machine that boots and can be reached: the files to-disk
// adds to the root filesystem (as extras: the image's tree is never written). fstab by UUID, the
// hostname, a root password (SHA-512 crypt, by openssl) or an SSH key, DHCP on the wired NICs with
// systemd-networkd, a getty on the serial console, and an empty machine-id for first boot.
import { UsageError } from '../errors.ts';
import { asView, existsInView, type RootView } from './root-view.ts';
import { runTool } from './host-tool.ts';
import type { ExtraEntry } from './rootfs-builder.ts';

export interface SystemOptions {
  rootUuid: string;
  hostname: string;
  rootPassword?: string;
  /** The public key(s), as read from --ssh-key FILE. */
  sshKey?: string;
}

export interface SystemFiles {
  extras: ExtraEntry[];
  /** What was set up, for the summary ("DHCP (systemd-networkd)", "serial getty" …). */
  features: string[];
  /** Things the user should know (no way to log in, no sshd …). */
  notes: string[];
}

const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function checkHostname(name: string): void {
  if (!HOSTNAME.test(name)) throw new UsageError(`--hostname "${name}" is not a hostname (lowercase letters, digits and -, at most 63)`);
}

/**
 * A hostname from an image argument: "registry/library/debian:12" → "debian"; for a local layout or
 * archive ("oci:DIR:TAG") the tag, else the file's name.
 */
export function hostnameFromImage(ref: string): string {
  const transport = /^(oci|oci-archive|docker-archive):(.*)$/.exec(ref);
  let last: string;
  if (transport) {
    const [path, tag] = transport[2]!.split(':');
    last = tag && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(tag) ? tag : (path ?? '').replace(/\/+$/, '').split('/').pop()!.replace(/\.(tar|tgz|tar\.gz)$/, '');
  } else {
    last = ref.replace(/^docker:\/\//, '').replace(/@.*$/, '').replace(/:[^/]*$/, '').split('/').pop() ?? '';
  }
  const name = last.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
  return name || 'localhost';
}

/** The first of `paths` that exists in the image (systemd units live in /lib or /usr/lib). */
async function firstExisting(view: RootView, paths: string[]): Promise<string | undefined> {
  for (const p of paths) if ((await view.resolve(p)) !== undefined) return p;
  return undefined;
}

const unitPaths = (unit: string) => [`/lib/systemd/system/${unit}`, `/usr/lib/systemd/system/${unit}`];

export async function hashPassword(password: string): Promise<string> {
  const r = await runTool('openssl', ['passwd', '-6', '-stdin'], { packages: 'openssl', purpose: 'hashing the root password', input: `${password}\n` });
  const hash = r.stdout.trim();
  if (!hash.startsWith('$6$')) throw new Error('openssl passwd -6 gave no SHA-512 crypt hash');
  return hash;
}

/** `root`: an extracted tree's directory, or a view of the image (root-view.ts). */
export async function systemFiles(root: string | RootView, opts: SystemOptions): Promise<SystemFiles> {
  const view = asView(root);
  const extras: ExtraEntry[] = [];
  const features: string[] = [];
  const notes: string[] = [];
  const file = (path: string, content: string, mode = 0o644, gid = 0) => extras.push({ type: 'file', path, content, mode, uid: 0, gid });
  const dirs = new Set<string>();
  const ensureDir = async (path: string, mode = 0o755) => {
    if (dirs.has(path) || (await existsInView(view, path))) return;
    const parent = path.slice(0, path.lastIndexOf('/'));
    if (parent) await ensureDir(parent);
    dirs.add(path);
    extras.push({ type: 'dir', path, mode, uid: 0, gid: 0 });
  };
  const link = async (path: string, target: string) => {
    await ensureDir(path.slice(0, path.lastIndexOf('/')));
    extras.push({ type: 'symlink', path, target, uid: 0, gid: 0 });
  };

  await ensureDir('/etc');
  file('/etc/fstab', `# Written by imgx to-disk: the root filesystem by its UUID.\nUUID=${opts.rootUuid}\t/\text4\terrors=remount-ro\t0\t1\n`);
  checkHostname(opts.hostname);
  file('/etc/hostname', `${opts.hostname}\n`);
  file('/etc/hosts', `127.0.0.1\tlocalhost\n127.0.1.1\t${opts.hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`);
  // Empty: systemd makes one on first boot, so no two VMs from this disk share an id.
  file('/etc/machine-id', '', 0o444);

  if (opts.rootPassword !== undefined) {
    const shadow = await view.readFile('/etc/shadow');
    if (shadow === undefined || !/^root:/m.test(shadow)) throw new UsageError('--root-password: the image has no /etc/shadow with a root entry');
    const hash = await hashPassword(opts.rootPassword);
    const days = Math.floor(Date.now() / 86_400_000);
    const updated = shadow.replace(/^root:[^:\n]*:[^:\n]*:/m, `root:${hash}:${days}:`);
    const st = (await view.lstat((await view.resolve('/etc/shadow'))!))!;
    file('/etc/shadow', updated, st.mode, st.gid);
    features.push('root password');
  }
  if (opts.sshKey !== undefined) {
    const keys = opts.sshKey.trim();
    if (!/^(ssh-|ecdsa-|sk-)/m.test(keys)) throw new UsageError('--ssh-key: the file holds no OpenSSH public key (ssh-ed25519 …, ssh-rsa …)');
    await ensureDir('/root', 0o700);
    await ensureDir('/root/.ssh', 0o700);
    file('/root/.ssh/authorized_keys', `${keys}\n`, 0o600);
    features.push('SSH key for root');
    if (!(await firstExisting(view, ['/usr/sbin/sshd']))) notes.push('--ssh-key: the image has no SSH server (/usr/sbin/sshd); install openssh-server in it');
  }
  if (opts.rootPassword === undefined && opts.sshKey === undefined) notes.push('no --root-password or --ssh-key: root cannot log in unless the image allows it');

  const networkd = await firstExisting(view, unitPaths('systemd-networkd.service'));
  if (networkd) {
    await ensureDir('/etc/systemd/network');
    file('/etc/systemd/network/80-imgx-dhcp.network', '# Written by imgx to-disk: DHCP on every wired NIC.\n[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n');
    await link('/etc/systemd/system/multi-user.target.wants/systemd-networkd.service', networkd);
    const socket = await firstExisting(view, unitPaths('systemd-networkd.socket'));
    if (socket) await link('/etc/systemd/system/sockets.target.wants/systemd-networkd.socket', socket);
    const resolved = await firstExisting(view, unitPaths('systemd-resolved.service'));
    if (resolved) await link('/etc/systemd/system/multi-user.target.wants/systemd-resolved.service', resolved);
    features.push(`DHCP (systemd-networkd${resolved ? ', systemd-resolved' : ''})`);
  } else {
    notes.push('no systemd-networkd in the image: the network is not configured');
  }
  const getty = await firstExisting(view, unitPaths('serial-getty@.service'));
  if (getty) {
    await link('/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service', getty);
    features.push('serial getty on ttyS0');
  }
  return { extras, features, notes };
}
