// The native backend: imgx's own namespace executor (native/, built at install), which reads the
// same bundle. Node cannot unshare a user namespace (it is multithreaded), so a small C program does
// it. Setup failures come back on a pipe (fd 3) as one line, `KIND message`; the pipe closes without
// a word when the command has been exec'ed.
import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { RunError } from '../errors.ts';
import { waitForwardingSignals } from './forward-signals.ts';
import type { RunDir } from './run-dir.ts';

export function nativeCorePath(): string {
  return process.env.IMGX_NATIVE_CORE || fileURLToPath(new URL('../../native/build/imgx-run', import.meta.url));
}

export async function nativeCoreBuilt(): Promise<boolean> {
  return access(nativeCorePath(), constants.X_OK).then(
    () => true,
    () => false,
  );
}

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** `output` 'stderr': no stdin, the container's stdout and stderr both to imgx's stderr (to-disk's provisioning). */
export async function runWithNative(run: RunDir, opts: { init?: boolean; output?: 'inherit' | 'stderr' } = {}): Promise<number> {
  const args = [...(opts.init ? ['--init'] : []), '--report-fd', '3', run.path];
  const out = opts.output === 'stderr' ? 2 : 'inherit';
  const child = spawn(nativeCorePath(), args, { stdio: [opts.output === 'stderr' ? 'ignore' : 'inherit', out, out, 'pipe'] });
  const report = readAll(child.stdio[3] as Readable).catch(() => '');
  const status = await waitForwardingSignals(child);
  const line = (await report).split('\n')[0] ?? '';
  if (line) {
    const space = line.indexOf(' ');
    const kind = space < 0 ? line : line.slice(0, space);
    const message = space < 0 ? line : line.slice(space + 1);
    if (kind === 'NOTFOUND') throw new RunError('IMGX_EXEC_NOT_FOUND', message);
    if (kind === 'NOEXEC') throw new RunError('IMGX_EXEC_DENIED', message);
    throw new RunError('IMGX_RUN_SETUP', `the native runtime could not start the container: ${message}`);
  }
  return status;
}
