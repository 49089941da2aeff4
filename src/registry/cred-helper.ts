// The docker-credential-helpers protocol: `docker-credential-NAME get|store|erase`, the server URL
// (get, erase) or {ServerURL, Username, Secret} (store) on stdin, JSON {Username, Secret} out.
import { spawn } from 'node:child_process';
import { ImgxError } from '../errors.ts';
import { quotedText, safeText } from '../util/terminal-text.ts';

export interface HelperCredentials {
  username: string;
  secret: string;
}

const HELPER_TIMEOUT_MS = 60_000;

function program(name: string): string {
  // The name comes from a config file: it must not turn into a path.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new ImgxError('IMGX_CREDENTIALS', `invalid credential helper name ${quotedText(name)}`);
  }
  return `docker-credential-${name}`;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(prog: string, action: string, input: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(prog, [action], { stdio: ['pipe', 'pipe', 'pipe'] });
    // Our own timer: spawn's `timeout` option keeps the process alive when the program is missing.
    const timer = setTimeout(() => child.kill('SIGKILL'), HELPER_TIMEOUT_MS);
    timer.unref();
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = e.code === 'ENOENT' ? 'not found on PATH' : e.message;
      reject(new ImgxError('IMGX_CREDENTIALS', `credential helper ${prog}: ${why}`, { cause: e }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // A helper that exits without reading stdin must not crash us with EPIPE.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

function failure(prog: string, action: string, r: Run): ImgxError {
  const text = safeText(r.stdout.trim() || r.stderr.trim() || `exit status ${r.code}`, 200);
  return new ImgxError('IMGX_CREDENTIALS', `credential helper ${prog} ${action}: ${text}`);
}

/** The helper's credentials for `serverUrl`, or undefined when it has none. */
export async function helperGet(name: string, serverUrl: string): Promise<HelperCredentials | undefined> {
  const prog = program(name);
  const r = await run(prog, 'get', serverUrl);
  if (r.code !== 0) {
    if (/credentials not found/i.test(r.stdout + r.stderr)) return undefined;
    throw failure(prog, 'get', r);
  }
  let j: { Username?: unknown; Secret?: unknown };
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    throw new ImgxError('IMGX_CREDENTIALS', `credential helper ${prog} get: output is not JSON`);
  }
  if (typeof j.Secret !== 'string' || j.Secret === '') return undefined;
  return { username: typeof j.Username === 'string' ? j.Username : '', secret: j.Secret };
}

export async function helperStore(name: string, serverUrl: string, username: string, secret: string): Promise<void> {
  const prog = program(name);
  const r = await run(prog, 'store', JSON.stringify({ ServerURL: serverUrl, Username: username, Secret: secret }));
  if (r.code !== 0) throw failure(prog, 'store', r);
}

/** Erases the helper's credentials; false when it had none. */
export async function helperErase(name: string, serverUrl: string): Promise<boolean> {
  const prog = program(name);
  const r = await run(prog, 'erase', serverUrl);
  if (r.code !== 0) {
    if (/credentials not found/i.test(r.stdout + r.stderr)) return false;
    throw failure(prog, 'erase', r);
  }
  return true;
}
