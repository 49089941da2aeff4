// Runs the real CLI as a user would: a child process on the repo's Node 24, with its own blob
// cache and an empty Docker config unless the test gives them, so nothing from the machine leaks in.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { tempDir } from './tempdir.ts';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE_BIN = join(REPO_ROOT, 'node_modules', '.bin', 'node');
export const IMGX_BIN = join(REPO_ROOT, 'bin', 'imgx.js');

export interface ImgxResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** stdout as it came (a tar from export, names that are not UTF-8). */
  stdoutBytes: Buffer;
  stderr: string;
  /** The IMGX_CACHE the run used. */
  cacheDir: string;
}

export interface ImgxOptions {
  /** Added to (and overriding) the environment; IMGX_CACHE and DOCKER_CONFIG get temp dirs unless set here. */
  env?: Record<string, string | undefined>;
  input?: string | Buffer;
  cwd?: string;
  timeoutMs?: number;
}

export function runImgx(args: string[], opts: ImgxOptions = {}): Promise<ImgxResult> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: '1' };
  delete env.IMGX_CACHE;
  delete env.DOCKER_CONFIG;
  Object.assign(env, opts.env ?? {});
  env.IMGX_CACHE ??= tempDir('imgx-cache-');
  env.DOCKER_CONFIG ??= tempDir('imgx-dockercfg-');
  const cacheDir = env.IMGX_CACHE;
  return new Promise((resolve, reject) => {
    const child = spawn(NODE_BIN, [IMGX_BIN, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stdoutBytes: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8'), cacheDir });
    });
    // A child that exits before reading its stdin makes the pipe error; that is not our failure.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs imgx as another user (setpriv), with HOME, the cache and the Docker config under `home`, which it owns. */
export function runImgxAs(user: { uid: number; gid: number }, home: string, timeoutMs: number, args: string[]): Promise<ImgxResult> {
  const env = { ...process.env, NO_COLOR: '1', HOME: home, IMGX_CACHE: join(home, 'cache'), DOCKER_CONFIG: join(home, 'docker') };
  return new Promise((resolve, reject) => {
    const child = spawn('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', NODE_BIN, IMGX_BIN, ...args], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr, cacheDir: env.IMGX_CACHE });
    });
  });
}
