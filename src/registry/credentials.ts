// Registry credentials from the Docker config: `auths` entries, `credHelpers[host]` and `credsStore`
// (through the credential-helper protocol); and storing/erasing them for login/logout.
import { ImgxError } from '../errors.ts';
import { helperErase, helperGet, helperStore } from './cred-helper.ts';
import { dockerConfigPath, readDockerConfig, writeDockerConfig, type AuthEntry, type DockerConfigFile } from './docker-config.ts';
import { isDockerHub } from './endpoint.ts';
import { quotedText } from '../util/terminal-text.ts';

export interface Credentials {
  username: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token realm instead of a password. */
  identityToken?: string;
}

export interface CredentialOptions {
  /** Path of the config file; overrides discovery. */
  dockerConfig?: string;
  debug?: (msg: string) => void;
}

/** The key under which Docker files Docker Hub credentials (the protocol's historical name). */
const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';

/** A config key or host reduced to a comparable host: scheme, path and case dropped; Hub names unified. */
export function normalizeAuthKey(key: string): string {
  let h = key.trim().toLowerCase().replace(/^[a-z][a-z0-9+.-]*:\/\//, '');
  const slash = h.indexOf('/');
  if (slash >= 0) h = h.slice(0, slash);
  return isDockerHub(h) ? 'docker.io' : h;
}

/** The server URL a credential helper is asked about, as Docker asks it. */
export function helperServerUrl(host: string): string {
  return isDockerHub(host) ? DOCKER_HUB_KEY : host.toLowerCase();
}

/** The key of `record` that names `host`: an exact match first, then any key that normalises to it. */
function findKey(record: Record<string, unknown> | undefined, host: string): string | undefined {
  if (!record || typeof record !== 'object') return undefined;
  if (Object.hasOwn(record, host)) return host;
  const want = normalizeAuthKey(host);
  return Object.keys(record).find((k) => normalizeAuthKey(k) === want);
}

function matchingKeys(record: Record<string, unknown> | undefined, host: string): string[] {
  if (!record || typeof record !== 'object') return [];
  const want = normalizeAuthKey(host);
  return Object.keys(record).filter((k) => normalizeAuthKey(k) === want);
}

/** The helper that holds `host`'s credentials: credHelpers[host], else credsStore. */
function helperFor(config: DockerConfigFile, host: string): string | undefined {
  const key = findKey(config.credHelpers, host);
  const h = key !== undefined ? config.credHelpers?.[key] : undefined;
  if (typeof h === 'string' && h !== '') return h;
  return typeof config.credsStore === 'string' && config.credsStore !== '' ? config.credsStore : undefined;
}

function fromEntry(e: AuthEntry, path: string, key: string): Credentials | undefined {
  if (!e || typeof e !== 'object') return undefined;
  let username = typeof e.username === 'string' ? e.username : '';
  let password = typeof e.password === 'string' && e.password !== '' ? e.password : undefined;
  if (typeof e.auth === 'string' && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new ImgxError('IMGX_CREDENTIALS', `${path}: auths[${quotedText(key)}].auth is not base64 of user:password`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  const identityToken = typeof e.identitytoken === 'string' && e.identitytoken !== '' ? e.identitytoken : undefined;
  if (identityToken) return { username, identityToken };
  if (password !== undefined) return { username, password };
  return undefined;
}

/** Credentials for a registry host (`docker.io`, `127.0.0.1:5000`), or undefined for anonymous access. */
export async function getCredentials(host: string, options: CredentialOptions = {}): Promise<Credentials | undefined> {
  const path = dockerConfigPath(options.dockerConfig);
  const config = await readDockerConfig(path);
  const helper = helperFor(config, host);
  if (helper) {
    try {
      const c = await helperGet(helper, helperServerUrl(host));
      // The protocol marks an identity token with this user name.
      if (c) return c.username === '<token>' ? { username: '', identityToken: c.secret } : { username: c.username, password: c.secret };
    } catch (e) {
      // A config copied from a desktop (credsStore with no helper here) must not stop anonymous pulls.
      options.debug?.(`credentials for ${host}: ${(e as Error).message}; continuing without the helper`);
    }
  }
  const key = findKey(config.auths, host);
  return key !== undefined ? fromEntry(config.auths![key]!, path, key) : undefined;
}

/**
 * Saves credentials for `host` in its credential helper when configured, else in the config file.
 * Returns where they went, for a person: the file's path, or `docker-credential-NAME`.
 */
export async function storeCredentials(host: string, username: string, secret: string, options: CredentialOptions = {}): Promise<string> {
  const path = dockerConfigPath(options.dockerConfig);
  const config = await readDockerConfig(path);
  const helper = helperFor(config, host);
  if (helper) {
    await helperStore(helper, helperServerUrl(host), username, secret);
    return `docker-credential-${helper}`;
  }
  const auths: Record<string, AuthEntry> = config.auths && typeof config.auths === 'object' ? { ...config.auths } : {};
  // Replace every entry that names this registry, keep the first key's spelling.
  const keys = matchingKeys(auths, host);
  const key = keys[0] ?? (isDockerHub(host) ? DOCKER_HUB_KEY : host.toLowerCase());
  for (const k of keys) delete auths[k];
  auths[key] = { auth: Buffer.from(`${username}:${secret}`, 'utf8').toString('base64') };
  await writeDockerConfig(path, { ...config, auths });
  return path;
}

/** Removes credentials for `host` from its helper and from the file; false when there were none. */
export async function eraseCredentials(host: string, options: CredentialOptions = {}): Promise<boolean> {
  const path = dockerConfigPath(options.dockerConfig);
  const config = await readDockerConfig(path);
  const helper = helperFor(config, host);
  let erased = false;
  if (helper) erased = await helperErase(helper, helperServerUrl(host));
  const keys = matchingKeys(config.auths, host);
  if (keys.length > 0) {
    const auths = { ...config.auths };
    for (const k of keys) delete auths[k];
    await writeDockerConfig(path, { ...config, auths });
    erased = true;
  }
  return erased;
}
