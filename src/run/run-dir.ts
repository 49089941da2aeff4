// The private directory of one run, `<cache>/imgx-runs/<id>/`: the bundle (config.json), the rootfs
// the container sees, its writable layer, and the /etc files Docker bind-mounts (hosts, resolv.conf,
// hostname). As root the rootfs is an overlay (the cached tree below, `upper/` on top) that the
// runtime mounts inside the container's own mount namespace, so the host's mount table never holds
// it; without root it is a copy of the cached tree. Either way the cached tree is never written.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ImgxError } from '../errors.ts';
import { ioError } from '../io-errors.ts';
import { RUN_LOWER_FILE } from '../image/cache-gc.ts';
import { removeTree } from '../export/remove-tree.ts';
import type { NetworkMode } from './runtime-spec.ts';

const execFileP = promisify(execFile);

export interface RunDir {
  id: string;
  path: string;
  rootfs: string;
  /** Set when the rootfs is an overlay over the cached tree. */
  overlay?: { lower: string; upper: string; work: string };
  etcFiles: { hosts: string; resolvConf: string; hostname: string };
  /** Removes everything the run left (its writable layer too). */
  remove(): Promise<void>;
}

export interface RunDirOptions {
  id: string;
  hostname: string;
  net: NetworkMode;
  /** The cached, read-only tree. */
  lower: string;
  /** Overlay (root) or copy (without root); `direct`: `lower` is the rootfs, written in place (to-disk's own copy). */
  writable: 'overlay' | 'copy' | 'direct';
}

const LOOPBACK_HOSTS = `127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
`;

export function runsRoot(cacheRoot: string): string {
  return join(cacheRoot, 'imgx-runs');
}

async function hostFile(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}

export async function createRunDir(cacheRoot: string, opts: RunDirOptions): Promise<RunDir> {
  const path = join(runsRoot(cacheRoot), opts.id);
  // A full or read-only cache: IMGX_IO naming the run directory, and nothing of it left.
  const cannotWrite = (e: unknown) => ioError(e, `cannot write the run directory ${path}`);
  await mkdir(path, { recursive: true, mode: 0o700 }).catch((e: unknown) => {
    throw cannotWrite(e);
  });
  const remove = () => removeRunTree(path);
  try {
    // `imgx cache prune` spares the cached tree a run stands on.
    await writeFile(join(path, RUN_LOWER_FILE), opts.lower);
    const etcFiles = { hosts: join(path, 'hosts'), resolvConf: join(path, 'resolv.conf'), hostname: join(path, 'hostname') };
    // With the host's network the host's names resolve as they do on the host (Docker does the same).
    const hosts = opts.net === 'host' ? await hostFile('/etc/hosts') : LOOPBACK_HOSTS;
    await writeFile(etcFiles.hosts, `${hosts}${hosts.endsWith('\n') || hosts === '' ? '' : '\n'}127.0.1.1\t${opts.hostname}\n`);
    await writeFile(etcFiles.resolvConf, await hostFile('/etc/resolv.conf'));
    await writeFile(etcFiles.hostname, `${opts.hostname}\n`);
    if (opts.writable === 'direct') return { id: opts.id, path, rootfs: opts.lower, etcFiles, remove };
    const rootfs = join(path, 'rootfs');
    if (opts.writable === 'overlay') {
      const overlay = { lower: opts.lower, upper: join(path, 'upper'), work: join(path, 'work') };
      for (const p of [overlay.lower, overlay.upper, overlay.work]) {
        // overlayfs splits its options on `,` and `:`, and `\` escapes: such a path cannot be said.
        if (/[,:\\]/.test(p)) throw new ImgxError('IMGX_IO', `cannot use ${p} for an overlay (it holds , : or \\): choose another --cache-dir`);
      }
      await Promise.all([mkdir(rootfs), mkdir(overlay.upper), mkdir(overlay.work)]);
      return { id: opts.id, path, rootfs, overlay, etcFiles, remove };
    }
    await copyTree(opts.lower, rootfs);
    return { id: opts.id, path, rootfs, etcFiles, remove };
  } catch (e) {
    await remove().catch(() => {});
    throw cannotWrite(e);
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  try {
    // cp -a keeps modes, times, links, xattrs; reflinks make it nearly free where the filesystem can.
    await execFileP('cp', ['-a', '--reflink=auto', '--', from, to], { maxBuffer: 1 << 20 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new ImgxError('IMGX_IO', `copying the image's tree for this run failed: ${(err.stderr || err.message).trim().split('\n')[0]}`);
  }
}

/**
 * Files a run made as a subordinate id (a USER other than root, without root on the host) are not the
 * caller's to delete: those are removed from inside a user namespace that maps the same ids.
 */
async function removeRunTree(path: string): Promise<void> {
  try {
    await removeTree(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (process.geteuid?.() === 0 || (code !== 'EACCES' && code !== 'EPERM')) throw e;
    await execFileP('unshare', ['--map-auto', '--map-root-user', '--', 'rm', '-rf', '--', path]);
  }
}
