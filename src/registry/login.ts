// `imgx login`: check credentials against the registry before they are stored.
import { RegistryClient } from './client.ts';
import type { RegistryOptions } from './options.ts';

/**
 * Resolves when `username`/`password` open the registry at `host`: GET /v2/, answer its challenge
 * with these credentials (a token from its token service, or Basic), and GET /v2/ again.
 * Throws IMGX_UNAUTHORIZED when they are refused or cannot be checked (a token service on another
 * host does not receive them: DESIGN.md safety rules).
 */
export async function checkLogin(host: string, username: string, password: string, options: RegistryOptions = {}): Promise<void> {
  const client = new RegistryClient(host, options, { credentials: { username, password }, requireCredentials: true });
  try {
    await client.ping();
  } finally {
    await client.close();
  }
}
