// The warn(code) channel for recoverable oddities (in layers, or a sink that cannot do everything
// unprivileged). Warnings are counted per code and reported once each, with a count, at the end;
// with --strict the first one becomes an error instead.
import { ImgxError } from './errors.ts';

export type WarningCode =
  /** A member name with `..` or a leading `/` was confined to the root. */
  | 'IMGX_PATH_CLAMPED'
  /** An entry's parent was not a directory (a file or a symlink): it was replaced by a directory. */
  | 'IMGX_PARENT_REPLACED'
  /** A hardlink to a path that does not exist (or is a directory) was skipped. */
  | 'IMGX_BAD_HARDLINK'
  /** A tar member type imgx does not know (e.g. a GNU volume header) was skipped. */
  | 'IMGX_UNKNOWN_ENTRY'
  /** A whiteout of a path that no lower layer has. */
  | 'IMGX_WHITEOUT_NOTHING'
  /** Not root: the one summary of what needed privilege (owners, devices, xattrs). */
  | 'IMGX_UNPRIVILEGED'
  /** Not root: ownership was not applied. */
  | 'IMGX_NO_CHOWN'
  /** Not root: device nodes were not created. */
  | 'IMGX_NO_DEVICE'
  /** An extended attribute could not be set (unprivileged namespace, or the filesystem refused). */
  | 'IMGX_NO_XATTR'
  /** Anything else worth a line. */
  | 'IMGX_WARNING';

export class StrictError extends ImgxError {
  readonly warning: WarningCode;
  constructor(warning: WarningCode, message: string) {
    super('IMGX_STRICT', `${message} (${warning}; an error because of --strict)`);
    this.warning = warning;
  }
}

export class Warnings {
  readonly strict: boolean;
  private readonly counts = new Map<WarningCode, { count: number; first: string }>();
  private readonly sink: ((line: string) => void) | undefined;
  private taps: ((code: WarningCode, message: string) => void)[] = [];

  constructor(opts: { strict?: boolean; sink?: (line: string) => void } = {}) {
    this.strict = opts.strict === true;
    this.sink = opts.sink;
  }

  /** Calls `fn` with every warning from now on (before --strict can throw); returns the un-tap. */
  tap(fn: (code: WarningCode, message: string) => void): () => void {
    this.taps.push(fn);
    return () => {
      this.taps = this.taps.filter((t) => t !== fn);
    };
  }

  warn(code: WarningCode, message: string): void {
    for (const t of this.taps) t(code, message);
    if (this.strict) throw new StrictError(code, message);
    const c = this.counts.get(code);
    if (c) c.count++;
    else this.counts.set(code, { count: 1, first: message });
  }

  count(code?: WarningCode): number {
    if (code) return this.counts.get(code)?.count ?? 0;
    let n = 0;
    for (const c of this.counts.values()) n += c.count;
    return n;
  }

  /** One line per code: the first message and how many more there were. */
  summary(): string[] {
    return [...this.counts.entries()].map(([code, c]) => `${c.first}${c.count > 1 ? ` (and ${c.count - 1} more like it)` : ''} [${code}]`);
  }

  /** Writes the summary lines to the sink. */
  flush(): void {
    if (this.sink) for (const line of this.summary()) this.sink(line);
    this.counts.clear();
  }
}
