// The OCI runtime-spec config.json of a run: what runc and the native core both read. Built from the
// image config (process, env, cwd, user, already resolved by the caller) and the run's options, with
// Docker's defaults for mounts, devices, capabilities and hidden kernel paths.
import { DEVICE_CGROUP_RULES, DEFAULT_CAPABILITIES, DEFAULT_DEVICES, DEFAULT_MOUNTS, defaultRlimits, MASKED_PATHS, READONLY_PATHS, type SpecMount } from './docker-defaults.ts';
import type { ResolvedUser } from './user.ts';
import { volumeMount, type Volume } from './volumes.ts';

export type NetworkMode = 'none' | 'host';

export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface SpecInput {
  id: string;
  args: string[];
  env: string[];
  cwd: string;
  user: ResolvedUser;
  tty: boolean;
  hostname: string;
  net: NetworkMode;
  readOnly: boolean;
  volumes: Volume[];
  /** Host files bind-mounted over /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker does. */
  etcFiles: { hosts: string; resolvConf: string; hostname: string };
  /** imgx's own /proc/self/limits: the container inherits its open-files limit. */
  limits: string;
  /** The rootfs directory (absolute). */
  rootfs: string;
  /** Without root: the user namespace's id mappings. */
  userNamespace?: { uidMappings: IdMapping[]; gidMappings: IdMapping[] };
  /** The native core mounts this overlay on `rootfs` inside the container's mount namespace. */
  overlay?: { lower: string; upper: string; work: string };
}

export const OVERLAY_ANNOTATIONS = {
  lower: 'dev.imgx.overlay.lowerdir',
  upper: 'dev.imgx.overlay.upperdir',
  work: 'dev.imgx.overlay.workdir',
} as const;

export function buildRuntimeSpec(input: SpecInput): Record<string, unknown> {
  const rootUser = input.user.uid === 0;
  const caps = [...DEFAULT_CAPABILITIES];
  // A non-root process starts with no effective capabilities (Docker's rule); the bounding set still limits what setuid binaries gain.
  const granted = rootUser ? caps : [];
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (input.net === 'none') namespaces.push({ type: 'network' });
  if (input.userNamespace) namespaces.push({ type: 'user' });
  const mounts: SpecMount[] = [...DEFAULT_MOUNTS];
  const bindFile = (destination: string, source: string): SpecMount => ({ destination, type: 'bind', source, options: ['rbind', 'rprivate'] });
  mounts.push(bindFile('/etc/hosts', input.etcFiles.hosts), bindFile('/etc/resolv.conf', input.etcFiles.resolvConf), bindFile('/etc/hostname', input.etcFiles.hostname));
  for (const v of input.volumes) mounts.push(volumeMount(v));

  const annotations: Record<string, string> = {};
  if (input.overlay) {
    annotations[OVERLAY_ANNOTATIONS.lower] = input.overlay.lower;
    annotations[OVERLAY_ANNOTATIONS.upper] = input.overlay.upper;
    annotations[OVERLAY_ANNOTATIONS.work] = input.overlay.work;
  }
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: input.tty,
      user: { uid: input.user.uid, gid: input.user.gid, additionalGids: input.user.additionalGids },
      args: input.args,
      env: input.env,
      cwd: input.cwd,
      capabilities: { bounding: caps, effective: granted, permitted: granted, inheritable: [], ambient: [] },
      rlimits: defaultRlimits(input.limits),
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: input.readOnly },
    hostname: input.hostname,
    mounts,
    annotations,
    linux: {
      namespaces,
      ...(input.userNamespace ?? {}),
      devices: DEFAULT_DEVICES,
      // runc puts the container in this cgroup (under each v1 hierarchy); the native core has none.
      cgroupsPath: `/imgx/${input.id}`,
      resources: { devices: DEVICE_CGROUP_RULES },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}
