// Docker's defaults for a container, so an image runs under imgx as it does under `docker run`:
// the capability set, the kernel interfaces hidden or made read-only, the standard mounts and
// device nodes, and the open-files limit.

export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const;

export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface SpecMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export const DEFAULT_MOUNTS: SpecMount[] = [
  { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
  { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
  { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
];

export interface SpecDevice {
  path: string;
  type: 'c';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

const dev = (path: string, major: number, minor: number): SpecDevice => ({ path, type: 'c', major, minor, fileMode: 0o666, uid: 0, gid: 0 });

export const DEFAULT_DEVICES: SpecDevice[] = [
  dev('/dev/null', 1, 3),
  dev('/dev/zero', 1, 5),
  dev('/dev/full', 1, 7),
  dev('/dev/random', 1, 8),
  dev('/dev/urandom', 1, 9),
  dev('/dev/tty', 5, 0),
];

/**
 * Containers inherit the daemon's open-files limit under Docker; here imgx is the daemon, so the
 * container gets imgx's hard limit (raising it would need CAP_SYS_RESOURCE, which CI sandboxes lack).
 */
export function defaultRlimits(limitsText: string): { type: string; hard: number; soft: number }[] {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(limitsText);
  const hard = m && m[2] !== 'unlimited' ? Number(m[2]) : 1048576;
  return [{ type: 'RLIMIT_NOFILE', hard, soft: hard }];
}

/**
 * The device cgroup rules runc applies: deny everything, then allow the standard nodes, /dev/console,
 * the pty master and slaves (Docker's list; without it runc's cgroup denies even /dev/null).
 */
export const DEVICE_CGROUP_RULES = [
  { allow: false, access: 'rwm' },
  ...DEFAULT_DEVICES.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: 'rwm' })),
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' },
];
