// The runc backend: `runc run` on the bundle, in the foreground, stdio passed through (runc makes a
// pty when the spec asks for a terminal). The overlay rootfs is mounted in a private mount namespace
// that exists only for this runc (util-linux `unshare` + `mount`), so nothing is left mounted on the
// host whatever happens. runc's own errors go to a JSON log, so a failed start is told apart from
// a container that exits non-zero.
import { spawn } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RunError } from '../errors.ts';
import { waitForwardingSignals } from './forward-signals.ts';
import type { RunDir } from './run-dir.ts';

/** runc's state for imgx's containers, apart from anyone else's. */
export const RUNC_STATE_ROOT = '/run/imgx/runc';

/** `output` 'stderr': no stdin, the container's stdout and stderr both to imgx's stderr (to-disk's provisioning). */
export async function runWithRunc(runc: string, run: RunDir, output: 'inherit' | 'stderr' = 'inherit'): Promise<number> {
  const log = join(run.path, 'runc.log');
  const runcArgs = [runc, '--root', RUNC_STATE_ROOT, '--log', log, '--log-format', 'json', 'run', '--bundle', run.path, run.id];
  let cmd: string;
  let args: string[];
  if (run.overlay) {
    const o = run.overlay;
    const mountOpts = `lowerdir=${o.lower},upperdir=${o.upper},workdir=${o.work}`;
    cmd = 'unshare';
    args = ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t overlay overlay -o "$1" "$2" || exit 125; shift 2; exec "$@"', 'imgx-overlay', mountOpts, run.rootfs, ...runcArgs];
  } else {
    [cmd, ...args] = runcArgs as [string, ...string[]];
  }
  const child = spawn(cmd, args, { stdio: output === 'stderr' ? ['ignore', 2, 2] : 'inherit' });
  let status: number;
  try {
    status = await waitForwardingSignals(child);
  } finally {
    // runc removes a container that ran in the foreground; one left by a kill is removed here.
    await deleteContainer(runc, run.id);
  }
  if (status !== 0) {
    const failure = await runcError(log);
    if (failure) throw new RunError('IMGX_RUN_SETUP', `runc could not start the container: ${failure}`);
    if (run.overlay && status === 125) throw new RunError('IMGX_RUN_SETUP', `mounting the overlay rootfs for runc failed (see the line above)`);
  }
  return status;
}

/** The first error runc logged, if any. */
async function runcError(log: string): Promise<string | undefined> {
  const text = await readFile(log, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if ((e.level === 'error' || e.level === 'fatal') && e.msg) return e.msg;
    } catch {
      /* not a JSON line */
    }
  }
  return undefined;
}

async function deleteContainer(runc: string, id: string): Promise<void> {
  // Nothing to do (the usual case) when runc removed its state itself: spare a process.
  if (!(await stat(join(RUNC_STATE_ROOT, id)).catch(() => undefined))) return;
  await new Promise<void>((resolve) => {
    const c = spawn(runc, ['--root', RUNC_STATE_ROOT, 'delete', '--force', id], { stdio: 'ignore' });
    c.once('error', () => resolve());
    c.once('exit', () => resolve());
  });
  await rm(join(RUNC_STATE_ROOT, id), { recursive: true, force: true }).catch(() => {});
}
