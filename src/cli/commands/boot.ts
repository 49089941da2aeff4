// `imgx boot DISK`: boot a disk image under qemu (TCG) and wait for the login prompt on the serial
// console; prints the seconds it took. Exit 21 when it does not come.
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface Args extends GlobalArgs {
  disk: string;
  firmware: string;
  expect: string;
  timeout: number;
  memory: number;
  console?: boolean;
}

export const bootCommand: CommandModule<GlobalArgs, Args> = {
  command: 'boot <disk>',
  describe: 'boot a disk image under qemu (SeaBIOS or OVMF) and wait for the login prompt',
  builder: (y) =>
    y
      .positional('disk', { type: 'string', demandOption: true, describe: 'a raw or qcow2 disk image (opened read-only: snapshot=on)' })
      .option('firmware', { type: 'string', choices: ['bios', 'uefi'], default: 'bios', describe: 'SeaBIOS (bios) or OVMF (uefi)' })
      .option('expect', { type: 'string', default: 'login:', requiresArg: true, describe: 'text to wait for on the serial console' })
      .option('timeout', { type: 'number', default: 300, describe: 'seconds to wait' })
      .option('memory', { type: 'number', default: 1024, describe: 'guest memory in MiB' })
      .option('console', { type: 'boolean', describe: 'copy the serial console to stderr as it comes' }) as never,
  handler: async (argv) => {
    if (!(argv.timeout > 0)) throw new UsageError('--timeout must be a positive number of seconds');
    if (!(argv.memory >= 64)) throw new UsageError('--memory must be at least 64 (MiB)');
    if (argv.expect === '') throw new UsageError('--expect needs some text');
    const { bootDisk } = await import('../../disk/qemu-boot.ts');
    const ctx = makeContext(argv);
    const r = await bootDisk({
      disk: resolve(argv.disk),
      firmware: argv.firmware as 'bios' | 'uefi',
      expect: argv.expect,
      timeoutSeconds: argv.timeout,
      memoryMiB: argv.memory,
      ...(argv.console ? { console: (c: string) => process.stderr.write(c) } : {}),
    });
    if (ctx.json) ctx.out(JSON.stringify({ disk: resolve(argv.disk), firmware: r.firmware, format: r.format, expect: argv.expect, seconds: Math.round(r.seconds * 10) / 10 }));
    else if (!ctx.quiet) ctx.out(`${argv.disk}: "${argv.expect}" after ${r.seconds.toFixed(1)} s (${r.firmware === 'uefi' ? 'OVMF' : 'SeaBIOS'}, ${r.format})`);
  },
};
