// imgx login / logout: credentials in the Docker config file (or its credential helper).
import type { CommandModule } from 'yargs';
import { UsageError, isImgxError } from '../../errors.ts';
import { ioError, isSystemError } from '../../io-errors.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface LoginArgs extends GlobalArgs {
  registry: string;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
}

/** `https://host:5000/v2/` or `host:5000` → `host:5000`; Docker Hub's aliases → `docker.io`. */
export function registryHost(s: string): string {
  const host = s.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  if (!host) throw new UsageError(`invalid registry ${JSON.stringify(s)}`);
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') return 'docker.io';
  return host;
}

/**
 * The Docker config could not be written for a local reason (a full disk, a read-only or
 * unwritable home …): IMGX_IO (exit 11), not a credentials problem. The file is written atomically
 * (docker-config.ts): the old one is intact and no temporary file is left.
 */
export function configWriteError(e: unknown, path: string): unknown {
  if (isImgxError(e)) {
    if (e.code === 'IMGX_CREDENTIALS' && e.message.startsWith('cannot write ') && isSystemError(e.cause)) return ioError(e.cause, `cannot write ${path}`);
    return e;
  }
  return ioError(e, `cannot write ${path}`);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

export const loginCommand: CommandModule<GlobalArgs, LoginArgs> = {
  command: 'login <registry>',
  describe: 'check credentials against a registry and store them in the Docker config',
  builder: (y) =>
    y
      .positional('registry', { type: 'string', demandOption: true })
      .option('username', { alias: 'u', type: 'string', describe: 'user name' })
      .option('password', { alias: 'p', type: 'string', describe: 'password (prefer --password-stdin)' })
      .option('password-stdin', { type: 'boolean', describe: 'read the password from standard input' }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const host = registryHost(argv.registry);
    if (!argv.username) throw new UsageError('login needs --username');
    if (argv.password !== undefined && argv.passwordStdin) throw new UsageError('--password and --password-stdin are exclusive');
    const password = argv.passwordStdin ? await readStdin() : argv.password;
    if (!password) throw new UsageError('login needs a password: --password-stdin (or --password)');
    if (argv.password !== undefined) ctx.warn('--password shows the password in the process list; use --password-stdin');
    // The registry stack is loaded only by the commands that talk to a registry.
    const { checkLogin } = await import('../../registry/registry-source.ts');
    const { storeCredentials } = await import('../../registry/credentials.ts');
    const { dockerConfigPath } = await import('../../registry/docker-config.ts');
    await checkLogin(host, argv.username, password, ctx.registry);
    const where = await storeCredentials(host, argv.username, password, ctx.registry.dockerConfig ? { dockerConfig: ctx.registry.dockerConfig } : {}).catch((e: unknown) => {
      throw configWriteError(e, dockerConfigPath(ctx.registry.dockerConfig));
    });
    if (!ctx.quiet) ctx.out(`Login succeeded for ${host}${where ? ` (stored in ${where})` : ''}`);
  },
};

interface LogoutArgs extends GlobalArgs {
  registry: string;
}

export const logoutCommand: CommandModule<GlobalArgs, LogoutArgs> = {
  command: 'logout <registry>',
  describe: 'remove stored credentials for a registry',
  builder: (y) => y.positional('registry', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const host = registryHost(argv.registry);
    const { eraseCredentials } = await import('../../registry/credentials.ts');
    const { dockerConfigPath } = await import('../../registry/docker-config.ts');
    const removed = await eraseCredentials(host, ctx.registry.dockerConfig ? { dockerConfig: ctx.registry.dockerConfig } : {}).catch((e: unknown) => {
      throw configWriteError(e, dockerConfigPath(ctx.registry.dockerConfig));
    });
    if (!ctx.quiet) ctx.out(removed ? `Removed credentials for ${host}` : `No credentials stored for ${host}`);
  },
};
