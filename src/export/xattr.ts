// Extended attributes for the directory writer. Node has no xattr API, so they are collected in
// getfattr's dump format (values as `0s`+base64, so binary security.capability survives byte for
// byte) and applied at the end with ONE `setfattr -h --restore` run (-h: never through a symlink).
import { spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { encodeName } from '../util/raw-name.ts';
import type { Warnings } from '../warnings.ts';

/** Namespaces an unprivileged process may set. */
function settableUnprivileged(name: string): boolean {
  return name.startsWith('user.');
}

/**
 * getfattr's escaping, undone by setfattr's unquote(): `\ooo` for any byte outside printable
 * ASCII, for the backslash and for `=` (which would end an attribute name).
 */
export function quoteDumpName(name: string | Buffer): string {
  const bytes = typeof name === 'string' ? encodeName(name) : name;
  let out = '';
  for (const b of bytes) {
    if (b <= 0x20 || b >= 0x7f || b === 0x5c || b === 0x3d) out += '\\' + b.toString(8).padStart(3, '0');
    else out += String.fromCharCode(b);
  }
  return out;
}

export class XattrBatch {
  /** The dump file (created on the first attribute). */
  readonly dumpPath: string;
  private readonly asRoot: boolean;
  private readonly warnings: Warnings;
  private out: WriteStream | undefined;
  private set = 0;
  private skipped = 0;

  constructor(dumpPath: string, asRoot: boolean, warnings: Warnings) {
    this.dumpPath = dumpPath;
    this.asRoot = asRoot;
    this.warnings = warnings;
  }

  get pending(): number {
    return this.set;
  }

  /** Queues the attributes of `rel` (relative to the root the batch is applied in). */
  add(rel: string, xattrs: Map<string, Buffer>, isSymlink: boolean): void {
    let text = '';
    for (const [name, value] of xattrs) {
      // user.* is not allowed on symlinks by the kernel; unprivileged, only user.* at all.
      if ((!this.asRoot && !settableUnprivileged(name)) || (isSymlink && name.startsWith('user.'))) {
        this.skipped++;
        // --strict: fail now, not after the whole tree is written.
        if (this.warnings.strict) this.warnings.warn('IMGX_NO_XATTR', `extended attribute ${name} of ${rel} cannot be set${this.asRoot ? '' : ' (not root)'}`);
        continue;
      }
      text += `${quoteDumpName(name)}=0s${value.toString('base64')}\n`;
      this.set++;
    }
    if (!text) return;
    this.out ??= createWriteStream(this.dumpPath, { flags: 'wx', mode: 0o600 });
    this.out.write(`# file: ${quoteDumpName(rel)}\n${text}\n`);
  }

  /** Runs setfattr in `root`; warnings for what could not be set. Removes the dump file. */
  async apply(root: string, track: <T>(p: () => Promise<T>) => Promise<T>): Promise<void> {
    const warnings = this.warnings;
    try {
      if (this.out) {
        const out = this.out;
        out.end();
        await once(out, 'close');
        const failed = await track(() => runSetfattr(root, this.dumpPath));
        if (failed === undefined) {
          warnings.warn('IMGX_NO_XATTR', `${this.set} extended attributes not set: setfattr is missing (Debian package attr)`);
        } else if (failed.length > 0) {
          warnings.warn('IMGX_NO_XATTR', `${failed.length} extended attributes could not be set (first: ${failed[0]})`);
        }
      }
      // Unprivileged, the writer reports the skipped ones in its one summary line.
      if (this.skipped > 0 && this.asRoot) {
        warnings.warn(
          'IMGX_NO_XATTR',
          `${this.skipped} extended attributes not set (${this.asRoot ? 'user.* on symlinks' : 'security.* and trusted.* need root'})`,
        );
      }
    } finally {
      await this.discard();
    }
  }

  /** Attributes left out because they need root (security.*, trusted.*) or cannot be on a symlink. */
  get skippedCount(): number {
    return this.skipped;
  }

  async discard(): Promise<void> {
    if (this.out && !this.out.closed) {
      this.out.end();
      await once(this.out, 'close').catch(() => {});
    }
    await rm(this.dumpPath, { force: true });
  }
}

/** The error lines of setfattr (empty when all went well), or undefined when it is not installed. */
function runSetfattr(cwd: string, dump: string): Promise<string[] | undefined> {
  return new Promise((resolve, reject) => {
    const child = spawn('setfattr', ['-h', `--restore=${dump}`], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (err.length < 1 << 20) err += d;
    });
    child.once('error', (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? resolve(undefined) : reject(e)));
    child.once('close', (code) => {
      const lines = err.split('\n').filter(Boolean);
      if (code !== 0 && lines.length === 0) lines.push(`setfattr exited with status ${code}`);
      resolve(lines);
    });
  });
}
