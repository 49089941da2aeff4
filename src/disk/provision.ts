// Kernel provisioning: an image without /boot/vmlinuz-* gets a kernel, an initramfs and systemd as
// init installed into a copy of its tree with imgx's own run core (runc or the native executor)
// and the host's network, as `docker build` would do for d2vm, with no daemon. Debian and Ubuntu
// (apt); any other distribution is refused by name.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CliContext } from '../cli/context.ts';
import { DiskError, ImgxError } from '../errors.ts';
import { runWithNative } from '../run/native.ts';
import { DEFAULT_PATH } from '../run/process-args.ts';
import { createRunDir } from '../run/run-dir.ts';
import { runWithRunc } from '../run/runc.ts';
import { chooseRuntime } from '../run/runtime-choice.ts';
import { buildRuntimeSpec } from '../run/runtime-spec.ts';
import type { OsRelease } from './os-release.ts';

export interface ProvisionPlan {
  distribution: string;
  packages: string[];
  script: string;
}

const KERNEL_PACKAGE: Record<string, string> = { debian: 'linux-image-amd64', ubuntu: 'linux-image-virtual' };

/** What to install and how, or an IMGX_UNSUPPORTED error naming the distribution. */
export function provisionPlan(os: OsRelease | undefined, opts: { sshServer: boolean }): ProvisionPlan {
  if (!os) throw new ImgxError('IMGX_UNSUPPORTED', 'the image has no kernel in /boot and no /etc/os-release to tell how to install one (imgx installs kernels into Debian and Ubuntu)');
  const kernel = KERNEL_PACKAGE[os.id];
  if (!kernel) throw new ImgxError('IMGX_UNSUPPORTED', `the image has no kernel in /boot, and imgx cannot install one into ${os.prettyName} (ID=${os.id || '?'}): it knows Debian and Ubuntu`);
  const packages = [kernel, 'initramfs-tools', 'systemd-sysv', 'udev', 'dbus', 'iproute2', ...(opts.sshServer ? ['openssh-server'] : [])];
  // systemd-resolved is its own package from bookworm and jammy on; older releases have it in systemd.
  const script = `set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=${DEFAULT_PATH}
# Nothing is started inside the build.
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
apt-get -q -o Acquire::Retries=3 update
extra=
if apt-cache show systemd-resolved >/dev/null 2>&1; then extra=systemd-resolved; fi
apt-get -q -y -o Acquire::Retries=3 -o Dpkg::Use-Pty=0 install --no-install-recommends ${packages.join(' ')} $extra
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d
`;
  return { distribution: os.prettyName, packages, script };
}

/** Runs the plan's script as root in `rootfs` (written in place), with the host's network. */
export async function provision(ctx: CliContext, rootfs: string, plan: ProvisionPlan): Promise<void> {
  const runtime = await chooseRuntime('auto', true);
  const id = `provision-${randomBytes(4).toString('hex')}`;
  const run = await createRunDir(ctx.cache.root, { id, hostname: 'imgx-provision', net: 'host', lower: rootfs, writable: 'direct' });
  try {
    const spec = buildRuntimeSpec({
      id,
      args: ['/bin/sh', '-c', plan.script],
      env: [`PATH=${DEFAULT_PATH}`, 'HOME=/root', 'HOSTNAME=imgx-provision'],
      cwd: '/',
      user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
      tty: false,
      hostname: 'imgx-provision',
      net: 'host',
      readOnly: false,
      volumes: [],
      etcFiles: run.etcFiles,
      rootfs: run.rootfs,
      limits: await readFile('/proc/self/limits', 'utf8').catch(() => ''),
    });
    await writeFile(join(run.path, 'config.json'), JSON.stringify(spec, null, 2));
    const status = runtime.name === 'runc' ? await runWithRunc(runtime.path, run, 'stderr') : await runWithNative(run, { output: 'stderr' });
    if (status !== 0) throw new DiskError('IMGX_PROVISION_FAILED', `installing ${plan.packages[0]} into ${plan.distribution} failed (status ${status}; apt's output is above)`);
  } finally {
    await run.remove().catch(() => {});
  }
}
