// Where a registry host's API lives: scheme and API host.
import { isIP } from 'node:net';
import type { ResolvedOptions } from './options.ts';

/** docker.io is a name, not a host: its API is served elsewhere (the protocol's fixed mapping). */
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const DOCKER_HUB_API = 'registry-1.docker.io';

export function isDockerHub(host: string): boolean {
  return DOCKER_HUB_NAMES.has(host.toLowerCase());
}

/** The hostname of `host`, without port and brackets: `[::1]:5000` → `::1`. */
export function hostnameOf(host: string): string {
  const h = host.toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(1, end) : h;
  }
  const colon = h.lastIndexOf(':');
  // A bare IPv6 address has several colons and no port.
  if (colon >= 0 && h.indexOf(':') === colon) return h.slice(0, colon);
  return h;
}

/** Loopback registries are reached over plain HTTP without being asked, as Docker does. */
export function isLoopbackHost(host: string): boolean {
  const name = hostnameOf(host);
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) === 6) return name === '::1' || name === '0:0:0:0:0:0:0:1';
  return false;
}

/** The base URL of the registry API for a reference domain, e.g. `http://127.0.0.1:5000`. */
export function registryBaseUrl(host: string, options: Pick<ResolvedOptions, 'plainHttp'>): URL {
  const apiHost = isDockerHub(host) ? DOCKER_HUB_API : host.toLowerCase();
  const scheme = options.plainHttp || isLoopbackHost(apiHost) ? 'http' : 'https';
  return new URL(`${scheme}://${apiHost}`);
}
