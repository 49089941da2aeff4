// Paths inside an image's root filesystem, resolved the way the container will see them: symlinks
// are followed, but inside the root (an absolute target starts again at the root, `..` stops there),
// so a hostile link in the image can never make imgx read a host file. Used before the container
// starts: to read /etc/passwd and /etc/group, and to find the command.
import { lstat, readFile, readlink } from 'node:fs/promises';

const MAX_LINKS = 40;

/** The host path of `path` (absolute, in the container) inside `root`, or undefined when it does not resolve. */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  const done: string[] = [];
  let pending = path.split('/').filter((p) => p !== '' && p !== '.');
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '..') {
      done.pop();
      continue;
    }
    const host = [root, ...done, name].join('/');
    const st = await lstat(host).catch(() => undefined);
    if (!st) return undefined;
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return undefined;
      const target = await readlink(host);
      if (target.startsWith('/')) done.length = 0;
      pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
      continue;
    }
    if (pending.length > 0 && !st.isDirectory()) return undefined;
    done.push(name);
  }
  return [root, ...done].join('/');
}

/** The contents of a file in the root, or undefined when it does not exist there. */
export async function readFileInRoot(root: string, path: string): Promise<string | undefined> {
  const host = await resolveInRoot(root, path);
  if (!host) return undefined;
  const st = await lstat(host);
  if (!st.isFile()) return undefined;
  return readFile(host, 'utf8');
}

export type CommandLookup = { found: string } | { missing: true } | { notExecutable: string };

/**
 * Finds a command as execvp() in the container would: a name with a `/` is taken as it is (relative to
 * `cwd`), anything else is searched in `pathEnv`.
 */
export async function findCommand(root: string, command: string, pathEnv: string, cwd: string): Promise<CommandLookup> {
  const candidates = command.includes('/')
    ? [command.startsWith('/') ? command : `${cwd.replace(/\/$/, '')}/${command}`]
    : pathEnv.split(':').map((dir) => `${dir || '.'}/${command}`);
  let denied: string | undefined;
  for (const c of candidates) {
    const host = await resolveInRoot(root, c.startsWith('/') ? c : `${cwd}/${c}`);
    if (!host) continue;
    const st = await lstat(host);
    if (st.isFile() && (st.mode & 0o111) !== 0) return { found: c };
    denied ??= c;
  }
  return denied ? { notExecutable: denied } : { missing: true };
}
