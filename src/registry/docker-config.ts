// The Docker config file (config.json, or a containers-auth.json of the same format): where it is,
// reading it, and replacing it atomically with the other keys kept.
import { randomBytes } from 'node:crypto';
import { open, mkdir, readFile, realpath, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ImgxError } from '../errors.ts';

export interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  [key: string]: unknown;
}

export interface DockerConfigFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [key: string]: unknown;
}

/**
 * The one config file in use: the explicit path, else REGISTRY_AUTH_FILE, else
 * $DOCKER_CONFIG/config.json, else ~/.docker/config.json. Reads and writes use the same file.
 */
export function dockerConfigPath(explicit?: string): string {
  if (explicit) return explicit;
  const env = process.env;
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  if (env.DOCKER_CONFIG) return join(env.DOCKER_CONFIG, 'config.json');
  return join(homedir(), '.docker', 'config.json');
}

/** The parsed file; an empty config when it does not exist. */
export async function readDockerConfig(path: string): Promise<DockerConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ImgxError('IMGX_CREDENTIALS', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (text.trim() === '') return {};
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    // Not JSON.parse's message: it quotes the file, which holds credentials.
    throw new ImgxError('IMGX_CREDENTIALS', `${path}: not valid JSON`, { cause: e });
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) {
    throw new ImgxError('IMGX_CREDENTIALS', `${path}: not a JSON object`);
  }
  return j as DockerConfigFile;
}

/** Replaces the file: temp file (0600) → fsync → rename, through a symlink to its target. */
export async function writeDockerConfig(path: string, config: DockerConfigFile): Promise<void> {
  let target = path;
  try {
    target = await realpath(path);
  } catch {
    // not there yet: create it where it was asked for
  }
  const dir = dirname(target);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(config, null, '\t') + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new ImgxError('IMGX_CREDENTIALS', `cannot write ${target}: ${(e as Error).message}`, { cause: e });
  }
  // Make the rename itself durable.
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // some filesystems refuse fsync on a directory
  }
}
