// What every bench reads from its command line: `--rounds N` (or IMGX_BENCH_ROUNDS), and the
// check that it runs as root where the peer tools need it, and credentials no tool can pick up.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** `--rounds` as given (a string from parseArgs), else IMGX_BENCH_ROUNDS, else `fallback`. */
export function roundsOption(given: string | undefined, fallback: number): number {
  const rounds = Number(given ?? process.env.IMGX_BENCH_ROUNDS ?? fallback);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds wants a positive integer, got ${given}`);
  return rounds;
}

/** Exits with `why` on stderr unless root. */
export function requireRoot(script: string, why: string): void {
  if (process.getuid?.() === 0) return;
  process.stderr.write(`${script} needs root: ${why}\n`);
  process.exit(1);
}

/**
 * An empty Docker config directory and containers auth file under `work`, so that no tool picks up
 * credentials from this machine: give `dir` as DOCKER_CONFIG and `authFile` as REGISTRY_AUTH_FILE.
 */
export function emptyCredentials(work: string): { dir: string; authFile: string } {
  const dir = join(work, 'docker-config');
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), '{"auths":{}}');
  const authFile = join(dir, 'auth.json');
  writeFileSync(authFile, '{"auths":{}}');
  return { dir, authFile };
}
