// The first root filesystem builder: e2fsprogs. `mke2fs -d TREE -E offset=…` writes ext4 straight
// into the partition's place in the image file (no loop device, no mount), then one debugfs session
// on `IMAGE?offset=…` adds the extras. Features are pinned rather than taken from the host's
// mke2fs.conf: GRUB 2.06 cannot read metadata_csum_seed or orphan_file (1.47's defaults).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskError } from '../errors.ts';
import { runTool } from './host-tool.ts';
import { checkExtraPath, type ExtraEntry, type RootFsBuilder, type RootFsRequest } from './rootfs-builder.ts';

export const EXT4_BLOCK_SIZE = 4096;
export const EXT4_INODE_SIZE = 256;
const FEATURES = 'has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize,^metadata_csum_seed,^orphan_file';
const PACKAGES = 'e2fsprogs';

// debugfs takes arguments split at spaces; a quote would be read as one.
const DEBUGFS_SAFE = /^[A-Za-z0-9._+\-/@:=,]+$/;

function debugfsArg(s: string): string {
  if (!DEBUGFS_SAFE.test(s)) throw new Error(`cannot pass ${JSON.stringify(s)} to debugfs`);
  return s;
}

const octal = (n: number) => `0${n.toString(8)}`;

/** The debugfs script for the extras; file contents go to numbered files in `workDir`. */
export async function debugfsScript(extras: ExtraEntry[], workDir: string): Promise<string> {
  const lines: string[] = [];
  for (const [i, e] of extras.entries()) {
    checkExtraPath(e.path);
    const p = debugfsArg(e.path);
    if (e.type === 'dir') {
      lines.push(`mkdir ${p}`, `sif ${p} mode ${octal(0o040000 | e.mode)}`);
    } else {
      // Whatever was there goes first ("rm" of a missing path only complains: see IGNORED).
      lines.push(`rm ${p}`);
      if (e.type === 'file') {
        const local = join(workDir, `extra-${i}`);
        await writeFile(local, e.content);
        lines.push(`write ${debugfsArg(local)} ${p}`, `sif ${p} mode ${octal(0o100000 | e.mode)}`);
      } else {
        lines.push(`symlink ${p} ${debugfsArg(e.target)}`);
      }
    }
    lines.push(`sif ${p} uid ${e.uid}`, `sif ${p} gid ${e.gid}`);
  }
  return lines.join('\n') + '\n';
}

// debugfs says these for paths that are simply not there yet (rm before write, mkdir of an existing
// directory): not failures. Anything else it prints on stderr is.
const IGNORED = [/^debugfs \d/, /^rm: File not found by ext2_lookup/, /^(ext2fs_)?mkdir: .*already exists/i, /^Allocated inode/];

export class Mke2fsBuilder implements RootFsBuilder {
  readonly name = 'mke2fs';

  async build(req: RootFsRequest): Promise<void> {
    if (req.offset % EXT4_BLOCK_SIZE !== 0 || req.size % EXT4_BLOCK_SIZE !== 0) throw new Error('the root partition is not 4 KiB aligned');
    const blocks = req.size / EXT4_BLOCK_SIZE;
    const mke2fs = (extended: string) =>
      runTool(
        'mke2fs',
        ['-q', '-F', '-t', 'ext4', '-b', String(EXT4_BLOCK_SIZE), '-I', String(EXT4_INODE_SIZE), '-N', String(req.inodes), '-O', FEATURES, '-E', extended, '-U', req.uuid, '-L', req.label, '-d', req.tree, req.image, String(blocks)],
        { packages: PACKAGES, purpose: 'building the ext4 root filesystem' },
      );
    const extended = `offset=${req.offset},nodiscard`;
    if (!req.prezeroed) await mke2fs(extended);
    else {
      // A fresh sparse file reads as zeros: mke2fs need not write zeros over the inode tables and
      // the journal (0.5 s and 80 MiB less here). The option is e2fsprogs 1.47's; older ones refuse it.
      await mke2fs(`${extended},assume_storage_prezeroed=1`).catch((e: unknown) => {
        if (!/assume_storage_prezeroed|Bad option/i.test((e as Error).message)) throw e;
        return mke2fs(extended);
      });
    }
    if (req.extras.length === 0) return;
    const script = join(req.workDir, 'debugfs.cmds');
    await writeFile(script, await debugfsScript(req.extras, req.workDir));
    const r = await runTool('debugfs', ['-w', '-f', script, `${req.image}?offset=${req.offset}`], { packages: PACKAGES, purpose: 'adding files to the root filesystem' });
    const complaints = r.stderr
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !IGNORED.some((re) => re.test(l)));
    if (complaints.length > 0) throw new DiskError('IMGX_TOOL_FAILED', `adding files to the root filesystem: debugfs: ${complaints[0]}`);
  }
}
