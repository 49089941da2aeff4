// `imgx boot DISK`: boots a disk image under qemu (TCG: no KVM needed) with SeaBIOS or OVMF, the
// serial console on a pipe, and waits for the login prompt (or any text). The disk is opened with
// snapshot=on: verifying an image never changes it.
import { spawn } from 'node:child_process';
import { copyFile, lstat, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiskError, ImgxError } from '../errors.ts';
import { requireTool } from './host-tool.ts';

export type Firmware = 'bios' | 'uefi';

export interface BootOptions {
  disk: string;
  firmware: Firmware;
  /** Text to wait for on the serial console (default "login:"). */
  expect: string;
  timeoutSeconds: number;
  memoryMiB: number;
  /** Serial output as it comes (to stderr). */
  console?: (chunk: string) => void;
  /** Where this run's OVMF variables copy goes (default: a temporary directory). */
  workDir?: string;
}

export interface BootResult {
  seconds: number;
  firmware: Firmware;
  format: 'raw' | 'qcow2';
  /** The serial console's output up to the match. */
  log: string;
}

const OVMF_CANDIDATES = [
  ['/usr/share/OVMF/OVMF_CODE_4M.fd', '/usr/share/OVMF/OVMF_VARS_4M.fd'],
  ['/usr/share/OVMF/OVMF_CODE.fd', '/usr/share/OVMF/OVMF_VARS.fd'],
  ['/usr/share/edk2/ovmf/OVMF_CODE.fd', '/usr/share/edk2/ovmf/OVMF_VARS.fd'],
] as const;

async function exists(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined)) !== undefined;
}

export async function findOvmf(): Promise<{ code: string; vars: string }> {
  const code = process.env.IMGX_OVMF_CODE;
  const vars = process.env.IMGX_OVMF_VARS;
  if (code && vars) return { code, vars };
  for (const [c, v] of OVMF_CANDIDATES) if ((await exists(c)) && (await exists(v))) return { code: c, vars: v };
  throw new DiskError('IMGX_TOOL_MISSING', 'booting under UEFI needs OVMF firmware (Debian package: ovmf)');
}

/** raw or qcow2, from the file's first bytes (qcow2 starts with "QFI\xfb"). */
export async function diskFormat(path: string): Promise<'raw' | 'qcow2'> {
  const fh = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
    throw new ImgxError(e.code === 'ENOENT' ? 'IMGX_NOT_FOUND' : 'IMGX_IO', `${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b.equals(Buffer.from([0x51, 0x46, 0x49, 0xfb])) ? 'qcow2' : 'raw';
  } finally {
    await fh.close();
  }
}

/** The qemu command line (exported for tests and --debug). */
export function qemuArgs(disk: string, format: 'raw' | 'qcow2', opts: { memoryMiB: number; ovmf?: { code: string; vars: string } }): string[] {
  const args = ['-accel', 'tcg', '-m', String(opts.memoryMiB), '-smp', '1', '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'stdio', '-monitor', 'none'];
  if (opts.ovmf) args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${opts.ovmf.code}`, '-drive', `if=pflash,format=raw,unit=1,file=${opts.ovmf.vars}`);
  // qemu splits -drive values at commas: a comma in the path is written twice.
  args.push('-drive', `file=${disk.replace(/,/g, ',,')},format=${format},if=virtio,snapshot=on`, '-nic', 'user,model=virtio-net-pci');
  return args;
}

export async function bootDisk(opts: BootOptions): Promise<BootResult> {
  const qemu = await requireTool('qemu-system-x86_64', 'qemu-system-x86', 'imgx boot');
  const format = await diskFormat(opts.disk);
  let work: string | undefined;
  let ovmf: { code: string; vars: string } | undefined;
  if (opts.firmware === 'uefi') {
    const firmware = await findOvmf();
    work = opts.workDir ?? (await mkdtemp(join(tmpdir(), 'imgx-boot-')));
    // The variable store is written by the firmware: each boot gets its own copy.
    const vars = join(work, 'OVMF_VARS.fd');
    await copyFile(firmware.vars, vars);
    ovmf = { code: firmware.code, vars };
  }
  const t0 = performance.now();
  try {
    return await new Promise<BootResult>((resolve, reject) => {
      const child = spawn(qemu, qemuArgs(opts.disk, format, { memoryMiB: opts.memoryMiB, ...(ovmf ? { ovmf } : {}) }), { stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      let errors = '';
      let done = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        fn();
      };
      const tail = () => {
        const lines = log.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
        return lines.length ? ` (last console line: ${JSON.stringify(lines.at(-1)!.slice(0, 160))})` : ' (nothing on the serial console)';
      };
      const timer = setTimeout(
        () => finish(() => reject(new DiskError('IMGX_BOOT_FAILED', `${opts.disk}: no "${opts.expect}" on the serial console within ${opts.timeoutSeconds} s${tail()}`))),
        opts.timeoutSeconds * 1000,
      );
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        opts.console?.(chunk);
        log += chunk;
        // Keep the search window bounded: the expected text is short.
        if (log.includes(opts.expect)) finish(() => resolve({ seconds: (performance.now() - t0) / 1000, firmware: opts.firmware, format, log }));
        else if (log.length > 1 << 20) log = log.slice(-(1 << 16));
      });
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c: string) => (errors += c));
      child.once('error', (e) => finish(() => reject(new DiskError('IMGX_BOOT_FAILED', `cannot start qemu: ${e.message}`))));
      child.once('exit', (code, signal) =>
        finish(() => reject(new DiskError('IMGX_BOOT_FAILED', `qemu stopped (${signal ?? `status ${code}`}) before "${opts.expect}"${errors.trim() ? `: ${errors.trim().split('\n')[0]}` : tail()}`))),
      );
    });
  } finally {
    if (work && !opts.workDir) await rm(work, { recursive: true, force: true });
  }
}
