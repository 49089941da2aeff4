// The host programs to-disk drives (mke2fs, debugfs, grub-mkimage, mtools, qemu-img): a missing one
// is one line naming the Debian package that has it; a failing one is its first error line.
import { spawn, type ChildProcess } from 'node:child_process';
import { DiskError } from '../errors.ts';
import { findOnPath } from '../run/runtime-choice.ts';

export interface ToolRun {
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  /** The Debian package(s) that ship the program, for the message when it is missing. */
  packages: string;
  /** What the call is for, for the message when it fails ("writing the ESP"). */
  purpose: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

/** The last meaningful line a failed tool printed (tools put the reason last, after banners). */
function reason(stderr: string, stdout: string): string {
  const lines = `${stderr}\n${stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /error|invalid|cannot|could not|no space|not found|too |fail/i.test(l)) ?? lines.at(-1) ?? 'no message';
}

/** Tools still running: an interrupted to-disk stops them before it removes their output. */
const running = new Set<ChildProcess>();

export function stopTools(): void {
  for (const c of running) c.kill('SIGTERM');
}

export function runTool(cmd: string, args: string[], opts: ToolOptions): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    running.add(child);
    child.once('exit', () => running.delete(child));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    child.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new DiskError('IMGX_TOOL_MISSING', `${opts.purpose} needs ${cmd}, which is not installed (Debian package: ${opts.packages})`));
      else reject(new DiskError('IMGX_TOOL_FAILED', `${opts.purpose}: cannot start ${cmd}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) resolve({ stdout, stderr });
      else reject(new DiskError('IMGX_TOOL_FAILED', `${opts.purpose}: ${cmd} failed (${signal ?? `status ${code}`}): ${reason(stderr, stdout)}`));
    });
  });
}

/** Fails with IMGX_TOOL_MISSING, naming the package, when `cmd` is not on PATH. */
export async function requireTool(cmd: string, packages: string, purpose: string): Promise<string> {
  const path = await findOnPath(cmd);
  if (!path) throw new DiskError('IMGX_TOOL_MISSING', `${purpose} needs ${cmd}, which is not installed (Debian package: ${packages})`);
  return path;
}
