// A real registry for e2e tests and benches: Debian's docker-registry (distribution 2.8) on a free
// loopback port, filesystem storage in a temp dir, and optionally Basic (htpasswd) or Bearer (token)
// auth. In token mode the token server runs inside this process, so tests can count its requests.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes, sign } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removeTempDir, tempDir } from './tempdir.ts';

const execFileP = promisify(execFile);

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface RegistryOptions {
  auth?: RegistryAuth;
  /** user → password; default `{ imgx: 'imgx-secret' }` when auth is not 'none'. */
  users?: Record<string, string>;
  /** token mode: requests without credentials get a token with pull access (like a public repo). */
  anonymousPull?: boolean;
}

export interface Registry {
  /** `127.0.0.1:PORT`, for `docker://HOST/repo:tag`. */
  host: string;
  auth: RegistryAuth;
  users: Record<string, string>;
  stop(): Promise<void>;
  /** token mode: how many requests the token server has answered (any outcome). */
  tokenRequests?: () => number;
}

export const REGISTRY_BIN = '/usr/bin/docker-registry';
const SERVICE = 'imgx-test-registry';
const ISSUER = 'imgx-test-issuer';
const DEFAULT_USERS = { imgx: 'imgx-secret' };

// Registries left running by a test that crashed would outlive it; kill them at exit.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const auth = opts.auth ?? 'none';
  const users = auth === 'none' ? {} : (opts.users ?? DEFAULT_USERS);
  const dir = tempDir('imgx-registry-');
  const cleanups: Array<() => Promise<void> | void> = [() => removeTempDir(dir)];
  try {
    let authYaml = '';
    let tokenRequests: (() => number) | undefined;
    if (auth === 'htpasswd') {
      const lines: string[] = [];
      for (const [user, pass] of Object.entries(users)) {
        // -B bcrypt: the only hash distribution accepts.
        const { stdout } = await execFileP('htpasswd', ['-Bbn', user, pass]);
        lines.push(stdout.trim());
      }
      writeFileSync(join(dir, 'htpasswd'), lines.join('\n') + '\n');
      authYaml = `auth:\n  htpasswd:\n    realm: imgx-test\n    path: ${join(dir, 'htpasswd')}\n`;
    } else if (auth === 'token') {
      const ts = await startTokenServer(dir, users, opts.anonymousPull ?? false);
      cleanups.push(ts.close);
      tokenRequests = ts.count;
      authYaml =
        `auth:\n  token:\n    realm: ${ts.realm}\n    service: ${SERVICE}\n    issuer: ${ISSUER}\n` +
        `    rootcertbundle: ${ts.certFile}\n`;
    }

    // The registry binds port 0 and says in its log which port it got. (Finding a free port first
    // and handing it over raced with other test files starting registries at the same moment: a
    // registry that lost the port died, and the readiness check could find the other one.)
    let lastError: unknown;
    for (let attempt = 0; attempt < 4; attempt++) {
      const config = join(dir, `config-${attempt}.yml`);
      writeFileSync(
        config,
        [
          'version: 0.1',
          'log:',
          '  level: info',
          '  accesslog:',
          '    disabled: true',
          'storage:',
          '  filesystem:',
          `    rootdirectory: ${join(dir, 'storage')}`,
          '  delete:',
          '    enabled: true',
          '  maintenance:',
          '    uploadpurging:',
          '      enabled: false',
          'http:',
          '  addr: 127.0.0.1:0',
          `  secret: ${randomBytes(16).toString('hex')}`,
          authYaml,
        ].join('\n'),
      );
      const logFile = join(dir, `registry-${attempt}.log`);
      const logFd = openSync(logFile, 'w');
      // REGISTRY_* variables override the config file; keep the caller's out.
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REGISTRY_')));
      const child = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', logFd, logFd], env });
      closeSync(logFd);
      live.add(child);
      let exited = false;
      child.once('exit', () => {
        exited = true;
        live.delete(child);
      });
      let host = '';
      try {
        host = await listeningAddress(logFile, () => exited);
        await waitReady(host, () => exited);
      } catch (e) {
        lastError = new Error(`docker-registry did not start${host ? ` on ${host}` : ''}: ${(e as Error).message}\n${tail(logFile)}`);
        if (!exited) await killChild(child);
        continue;
      }
      const stop = async () => {
        await killChild(child);
        for (const c of cleanups.reverse()) await c();
      };
      return tokenRequests ? { host, auth, users, stop, tokenRequests } : { host, auth, users, stop };
    }
    throw lastError;
  } catch (e) {
    for (const c of cleanups.reverse()) await c();
    throw e;
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** The address the registry logs once it listens (`msg="listening on 127.0.0.1:PORT"`). */
async function listeningAddress(logFile: string, exited: () => boolean): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /listening on (127\.0\.0\.1:\d+)/.exec(readFileSync(logFile, 'utf8'));
    if (m) return m[1]!;
    if (exited()) throw new Error('process exited');
    if (Date.now() > deadline) throw new Error('timed out waiting for it to listen');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function waitReady(host: string, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited()) throw new Error('process exited');
    try {
      const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      // 401 is "up, wants auth"; both mean the API answers.
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('timed out waiting for /v2/');
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- token server ----------------------------------------------------------------------------

interface TokenServer {
  realm: string;
  certFile: string;
  count: () => number;
  close: () => Promise<void>;
}

let keyPair: Promise<{ keyPem: string; certPem: string; certDerB64: string }> | undefined;

/** One self-signed RSA cert per process: openssl is slowish and the tests don't care which key. */
function issuerKey(): Promise<{ keyPem: string; certPem: string; certDerB64: string }> {
  keyPair ??= (async () => {
    const d = tempDir('imgx-tokenkey-');
    const keyFile = join(d, 'key.pem');
    const certFile = join(d, 'cert.pem');
    await execFileP('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
      '-subj', `/CN=${ISSUER}`, '-keyout', keyFile, '-out', certFile,
    ]);
    const keyPem = readFileSync(keyFile, 'utf8');
    const certPem = readFileSync(certFile, 'utf8');
    removeTempDir(d);
    const certDerB64 = certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    return { keyPem, certPem, certDerB64 };
  })();
  return keyPair;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

interface Access { type: string; name: string; actions: string[] }

function parseScopes(scopes: string[]): Access[] {
  const out: Access[] = [];
  for (const s of scopes) {
    for (const one of s.split(' ')) {
      // type:name:actions, where name may hold a port colon (registry.example:5000/foo is not
      // sent here, but be lenient): actions are after the last colon, type before the first.
      const first = one.indexOf(':');
      const last = one.lastIndexOf(':');
      if (first < 0 || last === first) continue;
      out.push({ type: one.slice(0, first), name: one.slice(first + 1, last), actions: one.slice(last + 1).split(',').filter(Boolean) });
    }
  }
  return out;
}

function makeJwt(key: { keyPem: string; certDerB64: string }, subject: string, access: Access[]): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'RS256', x5c: [key.certDerB64] };
  const claims = {
    iss: ISSUER,
    sub: subject,
    aud: SERVICE,
    exp: now + 300,
    nbf: now - 10,
    iat: now,
    jti: randomBytes(12).toString('hex'),
    access,
  };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = sign('sha256', Buffer.from(signingInput), key.keyPem);
  return `${signingInput}.${b64url(sig)}`;
}

async function startTokenServer(dir: string, users: Record<string, string>, anonymousPull: boolean): Promise<TokenServer> {
  const key = await issuerKey();
  const certFile = join(dir, 'token-cert.pem');
  writeFileSync(certFile, key.certPem);
  let count = 0;

  const deny = (res: ServerResponse, status: number, code: string, message: string) => {
    res.writeHead(status, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="imgx-test-token"' });
    res.end(JSON.stringify({ errors: [{ code, message }] }));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    count++;
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    if (url.pathname !== '/token') return deny(res, 404, 'NOT_FOUND', 'no such endpoint');
    let params = url.searchParams;
    let user: string | undefined;
    let pass: string | undefined;
    if (req.method === 'POST') {
      // OAuth2 password grant, as containerd and docker send it.
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      if (params.get('grant_type') === 'password') {
        user = params.get('username') ?? undefined;
        pass = params.get('password') ?? undefined;
      }
    } else if (req.method !== 'GET') {
      return deny(res, 405, 'UNSUPPORTED', 'method not allowed');
    }
    const authz = req.headers.authorization;
    if (authz?.toLowerCase().startsWith('basic ')) {
      const dec = Buffer.from(authz.slice(6).trim(), 'base64').toString('utf8');
      const i = dec.indexOf(':');
      user = i < 0 ? dec : dec.slice(0, i);
      pass = i < 0 ? '' : dec.slice(i + 1);
    }
    if (params.get('service') !== SERVICE) return deny(res, 400, 'INVALID_REQUEST', 'unknown service');
    const wanted = parseScopes(params.getAll('scope'));
    let subject = '';
    let granted: Access[];
    if (user !== undefined) {
      if (!Object.hasOwn(users, user) || users[user] !== pass) return deny(res, 401, 'UNAUTHORIZED', 'invalid username or password');
      subject = user;
      granted = wanted;
    } else {
      // Anonymous: pull on repositories when allowed, nothing otherwise (the registry then
      // answers 401 insufficient_scope, as Docker Hub does for a private repository).
      granted = anonymousPull
        ? wanted.filter((a) => a.type === 'repository').map((a) => ({ ...a, actions: a.actions.filter((x) => x === 'pull') }))
        : [];
    }
    const token = makeJwt(key, subject, granted);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) deny(res, 500, 'INTERNAL', String(e));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    certFile,
    count: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
