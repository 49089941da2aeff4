// `imgx to-disk REF OUT`: a partitioned, GRUB-bootable disk image (BIOS and UEFI) from any image.
// The work is in src/disk/to-disk.ts, loaded only when this command runs.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { ImgxError, UsageError } from '../../errors.ts';
import { Warnings } from '../../warnings.ts';
import { makeContext, type GlobalArgs } from '../context.ts';
import { IMAGE_ARG_HELP } from '../help-texts.ts';

interface Args extends GlobalArgs {
  image: string;
  out: string;
  size: string;
  format: string;
  boot: string;
  table?: string;
  espSize?: string;
  kernel: string;
  hostname?: string;
  rootPassword?: string;
  rootPasswordFile?: string;
  sshKey?: string;
  cmdline?: string;
  seed?: string;
  force?: boolean;
  verify?: boolean;
  verifyTimeout: number;
}

export const toDiskCommand: CommandModule<GlobalArgs, Args> = {
  command: 'to-disk <image> <out>',
  describe: 'make a bootable disk image (GPT, ext4 root, GRUB for BIOS and UEFI) from an image',
  builder: (y) =>
    y
      .positional('image', { type: 'string', demandOption: true, describe: IMAGE_ARG_HELP })
      .positional('out', { type: 'string', demandOption: true, describe: 'the disk image file to write (must not exist unless --force)' })
      .option('size', { type: 'string', default: 'auto', requiresArg: true, describe: 'disk size: auto (contents + metadata + headroom), 4G, 1536M, or +1G (the minimum plus 1 GiB)' })
      .option('format', { type: 'string', choices: ['raw', 'qcow2'], default: 'raw', describe: 'raw (sparse file) or qcow2' })
      .option('boot', { type: 'string', choices: ['hybrid', 'bios', 'uefi'], default: 'hybrid', describe: 'firmware to boot under: hybrid boots under both' })
      .option('table', { type: 'string', choices: ['gpt', 'mbr'], describe: 'partition table (default gpt; mbr only with --boot bios)' })
      .option('esp-size', { type: 'string', requiresArg: true, describe: 'size of the EFI system partition (default 64M)' })
      .option('kernel', { type: 'string', choices: ['auto', 'none'], default: 'auto', describe: "auto: the image's /boot/vmlinuz-*, or install one (Debian, Ubuntu); none: never install" })
      .option('hostname', { type: 'string', requiresArg: true, describe: "the machine's hostname (default: from the image name)" })
      .option('root-password', { type: 'string', requiresArg: true, describe: "root's password (visible to other users in ps: prefer --root-password-file)" })
      .option('root-password-file', { type: 'string', requiresArg: true, describe: "a file whose first line is root's password" })
      .option('ssh-key', { type: 'string', requiresArg: true, describe: "a public key file for root's authorized_keys" })
      .option('cmdline', { type: 'string', requiresArg: true, describe: 'more kernel command line (after root=… ro console=tty0 console=ttyS0,115200)' })
      .option('seed', { type: 'string', requiresArg: true, describe: 'make partition GUIDs and the filesystem UUID reproducible from this text' })
      .option('force', { type: 'boolean', describe: 'replace OUT if it exists' })
      .option('verify', { type: 'boolean', describe: 'boot the result under qemu (SeaBIOS, or OVMF for --boot uefi) and wait for the login prompt' })
      .option('verify-timeout', { type: 'number', default: 300, describe: 'seconds --verify waits for the login prompt' }) as never,
  handler: async (argv) => {
    const [{ toDisk, sizeText }, { parseSizeOption }, { hostnameFromImage, checkHostname }, { checkCmdline }] = await Promise.all([
      import('../../disk/to-disk.ts'),
      import('../../disk/size-option.ts'),
      import('../../disk/system-files.ts'),
      import('../../disk/grub-config.ts'),
    ]);
    const ctx = makeContext(argv);
    const size = parseSizeOption(argv.size);
    let espSize: number | undefined;
    if (argv.espSize !== undefined) {
      const e = parseSizeOption(argv.espSize);
      if (e.kind !== 'exact') throw new UsageError('--esp-size takes a size like 64M');
      espSize = e.bytes;
    }
    const boot = argv.boot as 'hybrid' | 'bios' | 'uefi';
    const table = (argv.table ?? 'gpt') as 'gpt' | 'mbr';
    if (table === 'mbr' && boot !== 'bios') throw new UsageError(`--table mbr needs --boot bios (got --boot ${boot}): UEFI boot uses GPT`);
    const hostname = argv.hostname ?? hostnameFromImage(argv.image);
    checkHostname(hostname);
    if (argv.cmdline) checkCmdline(argv.cmdline);
    if (argv.rootPassword !== undefined && argv.rootPasswordFile !== undefined) throw new UsageError('give --root-password or --root-password-file, not both');
    const readArg = async (option: string, path: string) => {
      try {
        return await readFile(path, 'utf8');
      } catch (e) {
        throw new ImgxError((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'IMGX_NOT_FOUND' : 'IMGX_IO', `${option} ${path}: ${(e as Error).message.replace(/^[A-Z]+: /, '')}`);
      }
    };
    let rootPassword = argv.rootPassword;
    if (argv.rootPasswordFile !== undefined) rootPassword = (await readArg('--root-password-file', argv.rootPasswordFile)).split('\n')[0];
    if (rootPassword === '') throw new UsageError('the root password is empty');
    const sshKey = argv.sshKey !== undefined ? await readArg('--ssh-key', argv.sshKey) : undefined;
    const warnings = new Warnings({ strict: ctx.strict, sink: ctx.warn });
    const notice = (m: string) => {
      if (!ctx.quiet) process.stderr.write(`imgx: ${m}\n`);
    };
    const out = resolve(argv.out);
    const r = await toDisk(ctx, {
      image: argv.image,
      out,
      size,
      format: argv.format as 'raw' | 'qcow2',
      boot,
      table,
      ...(espSize !== undefined ? { espSize } : {}),
      kernel: argv.kernel as 'auto' | 'none',
      hostname,
      ...(rootPassword !== undefined ? { rootPassword } : {}),
      ...(sshKey !== undefined ? { sshKey } : {}),
      ...(argv.cmdline ? { cmdline: argv.cmdline } : {}),
      ...(argv.seed !== undefined ? { seed: argv.seed } : {}),
      force: argv.force === true,
      warnings,
      notice,
    });
    for (const n of r.notes) notice(n);
    let verified: { seconds: number; firmware: string } | undefined;
    if (argv.verify) {
      const { bootDisk } = await import('../../disk/qemu-boot.ts');
      const firmware = boot === 'uefi' ? 'uefi' : 'bios';
      notice(`verifying: booting ${argv.out} under qemu (${firmware === 'uefi' ? 'OVMF' : 'SeaBIOS'}, TCG)`);
      const b = await bootDisk({ disk: out, firmware, expect: 'login:', timeoutSeconds: argv.verifyTimeout, memoryMiB: 1024 });
      verified = { seconds: Math.round(b.seconds * 10) / 10, firmware };
    }
    if (ctx.json) {
      ctx.out(
        JSON.stringify(
          {
            reference: argv.image,
            out,
            format: r.format,
            size: r.layout.diskSize,
            boot: r.layout.boot,
            table: r.layout.table,
            partitions: r.layout.partitions.map((p) => ({ number: p.number, role: p.role, offset: p.offset, size: p.size, guid: p.guid })),
            rootUuid: r.rootUuid,
            kernel: r.kernel.kernel,
            initrd: r.kernel.initrd ?? null,
            provisioned: r.provisioned,
            features: r.features,
            contentBytes: r.contentBytes,
            seconds: Math.round(r.seconds * 1000) / 1000,
            ...(verified ? { verified } : {}),
          },
          null,
          2,
        ),
      );
    } else if (!ctx.quiet) {
      const parts = r.layout.partitions.map((p) => `${p.role} ${sizeText(p.size)}`).join(', ');
      ctx.out(`${argv.out}: ${sizeText(r.layout.diskSize)} ${r.format} disk, ${r.layout.boot}/${r.layout.table} (${parts}); root ext4 UUID ${r.rootUuid}; kernel ${r.kernel.version}${r.provisioned ? ' (installed)' : ''}; in ${r.seconds.toFixed(1)} s`);
      if (verified) ctx.out(`${argv.out}: login prompt after ${verified.seconds} s under ${verified.firmware === 'uefi' ? 'OVMF' : 'SeaBIOS'}`);
    }
  },
};
