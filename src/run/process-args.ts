// What the container runs, with Docker's rules: `--entrypoint` replaces the image's Entrypoint (and
// drops its Cmd, as Docker does; `--entrypoint ''` clears it); a command after `--` replaces Cmd; the
// process is Entrypoint + Cmd. Env: the image's, then `-e` in order (`-e KEY` takes the caller's value,
// or drops KEY when the caller has none), then PATH, HOSTNAME, HOME and TERM as Docker fills them in.
import type { ImageConfig } from '../image/config.ts';
import { UsageError } from '../errors.ts';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface CommandRequest {
  /** Words after `--`, replacing Cmd (empty or absent: the image's Cmd). */
  command?: readonly string[];
  /** `--entrypoint`: replaces Entrypoint; '' clears it. */
  entrypoint?: string;
}

export function processArgs(config: ImageConfig, req: CommandRequest): string[] {
  const c = config.config ?? {};
  const entrypoint = req.entrypoint !== undefined ? (req.entrypoint === '' ? [] : [req.entrypoint]) : (c.Entrypoint ?? []);
  const cmd = req.command && req.command.length > 0 ? [...req.command] : req.entrypoint !== undefined ? [] : (c.Cmd ?? []);
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new UsageError('the image has no Entrypoint or Cmd: give a command after --');
  return args;
}

export interface EnvRequest {
  /** `-e KEY=VALUE` or `-e KEY`, in order. */
  env?: readonly string[];
  hostEnv: NodeJS.ProcessEnv;
  hostname: string;
  home: string;
  tty: boolean;
}

function keyOf(kv: string): string {
  const i = kv.indexOf('=');
  return i < 0 ? kv : kv.slice(0, i);
}

export function processEnv(config: ImageConfig, req: EnvRequest): string[] {
  const vars = new Map<string, string>();
  for (const kv of config.config?.Env ?? []) vars.set(keyOf(kv), kv);
  for (const e of req.env ?? []) {
    const key = keyOf(e);
    if (key === '') throw new UsageError(`invalid -e ${JSON.stringify(e)}: expected KEY=VALUE or KEY`);
    if (e.includes('=')) vars.set(key, e);
    else if (req.hostEnv[key] !== undefined) vars.set(key, `${key}=${req.hostEnv[key]}`);
    else vars.delete(key);
  }
  if (!vars.has('PATH')) vars.set('PATH', `PATH=${DEFAULT_PATH}`);
  vars.set('HOSTNAME', `HOSTNAME=${req.hostname}`);
  if (!vars.has('HOME')) vars.set('HOME', `HOME=${req.home}`);
  if (req.tty && !vars.has('TERM')) vars.set('TERM', 'TERM=xterm');
  return [...vars.values()];
}

export function envValue(env: readonly string[], key: string): string | undefined {
  const hit = env.find((kv) => keyOf(kv) === key);
  return hit === undefined ? undefined : hit.slice(key.length + 1);
}

/** `-w` or the image's WorkingDir, else `/`; it must be absolute (Docker's rule). */
export function processCwd(config: ImageConfig, workdir: string | undefined): string {
  const cwd = workdir || config.config?.WorkingDir || '/';
  if (!cwd.startsWith('/')) throw new UsageError(`the working directory must be absolute: ${JSON.stringify(cwd)}`);
  return cwd;
}
