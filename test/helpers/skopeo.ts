// skopeo as an independent peer: it pushes the images the tests pull, and reads back what the
// registry holds. Loopback registries speak plain HTTP, so TLS verification is turned off for
// every docker:// side; credentials never come from the user's auth files.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { tempDir } from './tempdir.ts';

export interface SkopeoCreds {
  /** `user:pass` for the source registry. */
  src?: string;
  /** `user:pass` for the destination registry. */
  dest?: string;
}

export interface SkopeoResult {
  stdout: string;
  stderr: string;
}

let authFile: string | undefined;

/** An empty auth file, so skopeo never picks up credentials from the machine it runs on. */
function isolatedAuthFile(): string {
  if (!authFile) {
    authFile = join(tempDir('imgx-skopeo-auth-'), 'auth.json');
    writeFileSync(authFile, '{"auths":{}}\n');
  }
  return authFile;
}

/** Runs `skopeo ARGS…`; rejects with stderr in the message when it fails. */
export function skopeo(args: string[], opts: { timeoutMs?: number } = {}): Promise<SkopeoResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'skopeo',
      args,
      {
        maxBuffer: 64 << 20,
        timeout: opts.timeoutMs ?? 300_000,
        env: { ...process.env, REGISTRY_AUTH_FILE: isolatedAuthFile() },
      },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`skopeo ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve({ stdout, stderr });
      },
    );
  });
}

const isDocker = (ref: string) => ref.startsWith('docker://');

/**
 * `skopeo copy SRC DST`, with TLS verification off on docker:// sides and optional credentials.
 * `extraArgs` go before the two references (e.g. `['--all']`, `['--format', 'v2s2']`,
 * `['--dest-compress-format', 'zstd']`).
 */
export async function skopeoCopy(src: string, dst: string, extraArgs: string[] = [], creds: SkopeoCreds = {}): Promise<SkopeoResult> {
  const args = ['copy', '--quiet'];
  if (isDocker(src)) args.push('--src-tls-verify=false');
  if (isDocker(dst)) args.push('--dest-tls-verify=false');
  if (creds.src) args.push('--src-creds', creds.src);
  if (creds.dest) args.push('--dest-creds', creds.dest);
  args.push(...extraArgs, src, dst);
  return skopeo(args);
}

export interface InspectOptions {
  /** `--raw`: the manifest (or index) bytes as stored. */
  raw?: boolean;
  /** `--config`: the image config (with `--raw`, its bytes). */
  config?: boolean;
  creds?: string;
  /** `--override-arch` / `--override-os`, to choose from an index. */
  arch?: string;
  os?: string;
}

/** `skopeo inspect` → raw text (with `raw`) or parsed JSON. */
export async function skopeoInspectText(ref: string, opts: InspectOptions = {}): Promise<string> {
  const args: string[] = [];
  if (opts.arch) args.push('--override-arch', opts.arch);
  if (opts.os) args.push('--override-os', opts.os);
  args.push('inspect');
  if (isDocker(ref)) args.push('--tls-verify=false');
  if (opts.raw) args.push('--raw');
  if (opts.config) args.push('--config');
  if (opts.creds) args.push('--creds', opts.creds);
  else if (isDocker(ref)) args.push('--no-creds');
  args.push(ref);
  return (await skopeo(args)).stdout;
}

export async function skopeoInspect<T = Record<string, unknown>>(ref: string, opts: InspectOptions = {}): Promise<T> {
  return JSON.parse(await skopeoInspectText(ref, opts)) as T;
}
