// `imgx run`: image → cached rootfs → a private run directory (bundle + writable layer) → runc or the
// native core → the container's exit status. Everything that can be checked before the container
// starts is (runtime, user, command), so those failures are one clear line with their own status.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CliContext } from '../cli/context.ts';
import { RunError } from '../errors.ts';
import type { Warnings } from '../warnings.ts';
import { rootlessMappings } from './id-mappings.ts';
import { imageRootfs } from './image-rootfs.ts';
import { runWithNative } from './native.ts';
import { DEFAULT_PATH, envValue, processArgs, processCwd, processEnv } from './process-args.ts';
import { findCommand } from './root-path.ts';
import { runWithRunc } from './runc.ts';
import { createRunDir } from './run-dir.ts';
import { chooseRuntime, findOnPath, type RuntimeName } from './runtime-choice.ts';
import { buildRuntimeSpec, type NetworkMode } from './runtime-spec.ts';
import { resolveUser } from './user.ts';
import type { Volume } from './volumes.ts';

export interface RunOptions {
  image: string;
  command?: string[];
  entrypoint?: string;
  env?: string[];
  workdir?: string;
  user?: string;
  volumes: Volume[];
  net: NetworkMode;
  hostname?: string;
  tty: boolean;
  readOnly: boolean;
  runtime: RuntimeName;
  init: boolean;
  keep: boolean;
  warnings: Warnings;
  /** Told where a kept run is (stderr). */
  notice(message: string): void;
}

export interface RunResult {
  status: number;
  runtime: 'runc' | 'native';
  id: string;
  kept?: string;
}

export async function runImage(ctx: CliContext, opts: RunOptions): Promise<RunResult> {
  // Under --debug: milliseconds since the process started, per phase (start-up cost is what `run` is judged on).
  const phase = (what: string) => ctx.debug && process.stderr.write(`debug: run: ${what} at ${performance.now().toFixed(0)} ms\n`);
  phase('command parsed');
  const asRoot = process.geteuid?.() === 0;
  const runtime = await chooseRuntime(opts.runtime, asRoot);
  if (opts.init && runtime.name !== 'native') throw new RunError('IMGX_RUNTIME_UNAVAILABLE', '--init needs the native runtime (--runtime native)');
  const rootfs = await imageRootfs(ctx, opts.image, opts.warnings, asRoot);
  opts.warnings.flush();
  phase(rootfs.extracted ? 'image extracted' : 'cached rootfs found');
  const config = rootfs.image.config;

  const id = randomBytes(6).toString('hex');
  const hostname = opts.hostname || id;
  const user = await resolveUser(rootfs.dir, opts.user ?? config.config?.User ?? '');
  const args = processArgs(config, { ...(opts.command ? { command: opts.command } : {}), ...(opts.entrypoint !== undefined ? { entrypoint: opts.entrypoint } : {}) });
  const env = processEnv(config, { ...(opts.env ? { env: opts.env } : {}), hostEnv: process.env, hostname, home: user.home, tty: opts.tty });
  const cwd = processCwd(config, opts.workdir);
  await checkCommand(rootfs.dir, args[0]!, envValue(env, 'PATH') ?? DEFAULT_PATH, cwd, opts.volumes);

  const userNamespace = asRoot ? undefined : await rootlessMappings(Boolean(await findOnPath('newuidmap')) && Boolean(await findOnPath('newgidmap')));
  if (userNamespace && !userNamespace.maps(user.uid, user.gid)) {
    throw new RunError(
      'IMGX_RUN_SETUP',
      `running as uid ${user.uid} gid ${user.gid} without root needs subordinate ids: add a range for this user to /etc/subuid and /etc/subgid (and install uidmap)`,
    );
  }
  // A namespace of the caller's id alone denies setgroups(): supplementary groups cannot be set there.
  if (userNamespace) user.additionalGids = userNamespace.gidMappings.length === 1 ? [] : user.additionalGids.filter((g) => userNamespace.maps(0, g));

  phase('bundle checked');
  const run = await createRunDir(ctx.cache.root, { id, hostname, net: opts.net, lower: rootfs.dir, writable: asRoot ? 'overlay' : 'copy' });
  let kept = false;
  try {
    const spec = buildRuntimeSpec({
      id,
      args,
      env,
      cwd,
      user,
      tty: opts.tty,
      hostname,
      net: opts.net,
      readOnly: opts.readOnly,
      volumes: opts.volumes,
      etcFiles: run.etcFiles,
      rootfs: run.rootfs,
      limits: await readFile('/proc/self/limits', 'utf8').catch(() => ''),
      ...(userNamespace ? { userNamespace: { uidMappings: userNamespace.uidMappings, gidMappings: userNamespace.gidMappings } } : {}),
      // runc gets the overlay mounted for it (runc.ts); the native core mounts it itself.
      ...(run.overlay && runtime.name === 'native' ? { overlay: run.overlay } : {}),
    });
    await writeFile(join(run.path, 'config.json'), JSON.stringify(spec, null, 2));
    phase(`run directory ready, starting ${runtime.name}`);
    const status = runtime.name === 'runc' ? await runWithRunc(runtime.path, run) : await runWithNative(run, { init: opts.init });
    phase(`container exited (${status})`);
    if (opts.keep) {
      kept = true;
      opts.notice(`kept run ${id}: ${run.path} (bundle config.json, ${run.overlay ? 'writable layer upper/' : 'rootfs/'})`);
    }
    return { status, runtime: runtime.name, id, ...(kept ? { kept: run.path } : {}) };
  } finally {
    if (!kept) await run.remove().catch(() => {});
    phase('cleaned up');
  }
}

/** The command must be in the image (unless it comes from a volume): say so before anything starts. */
async function checkCommand(root: string, command: string, pathEnv: string, cwd: string, volumes: Volume[]): Promise<void> {
  const underVolume = (p: string) => volumes.some((v) => p === v.destination || p.startsWith(`${v.destination.replace(/\/$/, '')}/`));
  if (command.includes('/') && underVolume(command.startsWith('/') ? command : `${cwd}/${command}`)) return;
  if (!command.includes('/') && pathEnv.split(':').some((d) => underVolume(d))) return;
  const found = await findCommand(root, command, pathEnv, cwd);
  if ('missing' in found) throw new RunError('IMGX_EXEC_NOT_FOUND', `exec: "${command}": executable file not found in ${command.includes('/') ? 'the image' : '$PATH'}`);
  if ('notExecutable' in found) throw new RunError('IMGX_EXEC_DENIED', `exec: "${found.notExecutable}": permission denied`);
}
