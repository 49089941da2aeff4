// `--runtime auto|runc|native`: auto takes runc when it is on PATH and imgx runs as root (rootless runc
// needs a cgroup setup this tool cannot assume), and the native core otherwise.
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { RunError, UsageError } from '../errors.ts';
import { nativeCoreBuilt, nativeCorePath } from './native.ts';

export type RuntimeName = 'auto' | 'runc' | 'native';
export type Runtime = { name: 'runc'; path: string } | { name: 'native'; path: string };

export async function findOnPath(tool: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, tool);
    if (await access(p, constants.X_OK).then(() => true, () => false)) return p;
  }
  return undefined;
}

const NATIVE_MISSING = `the native runtime is not built (${nativeCorePath()}): it needs a C compiler at install; run \`sh native/build.sh\` in the imgx package`;

export async function chooseRuntime(wanted: RuntimeName, asRoot: boolean): Promise<Runtime> {
  if (wanted !== 'auto' && wanted !== 'runc' && wanted !== 'native') throw new UsageError(`unknown runtime ${JSON.stringify(wanted)}: auto, runc or native`);
  if (wanted === 'runc' || (wanted === 'auto' && asRoot)) {
    const runc = await findOnPath('runc');
    if (runc && asRoot) return { name: 'runc', path: runc };
    if (wanted === 'runc') {
      throw new RunError('IMGX_RUNTIME_UNAVAILABLE', runc ? 'the runc runtime needs root here; use --runtime native' : 'runc is not on PATH: install it (package runc) or use --runtime native');
    }
  }
  if (await nativeCoreBuilt()) return { name: 'native', path: nativeCorePath() };
  throw new RunError('IMGX_RUNTIME_UNAVAILABLE', wanted === 'native' ? NATIVE_MISSING : `no runtime: runc is not on PATH${asRoot ? '' : ' (or imgx is not root)'} and ${NATIVE_MISSING}`);
}
