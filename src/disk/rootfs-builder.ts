// The root filesystem step of to-disk, behind one interface so that the first builder (e2fsprogs:
// mke2fs -d from a directory tree) can be replaced by a native streaming ext4 writer that takes the
// flattened image's entries directly, needs no extracted tree and no root for correct owners.
//
// A builder gets the tree, plus `extras`: the few files to-disk adds or replaces (fstab, hostname,
// grub.cfg, keys …) as entries with their own owners and modes, so the image's tree is never
// written to (it may be the shared cache) and a streaming writer can merge them in as it goes.

export type ExtraEntry =
  | { type: 'file'; path: string; content: string | Buffer; mode: number; uid: number; gid: number }
  | { type: 'dir'; path: string; mode: number; uid: number; gid: number }
  | { type: 'symlink'; path: string; target: string; uid: number; gid: number };

export interface RootFsRequest {
  /** The disk image file. */
  image: string;
  /** Byte offset of the partition in the image, and its size. */
  offset: number;
  size: number;
  /** The directory tree to copy in (owners, modes, times, xattrs, hardlinks, devices kept). */
  tree: string;
  /** Added after the tree, in order (parents first); a file or link replaces what the tree had. */
  extras: ExtraEntry[];
  /** Filesystem UUID (fstab and GRUB find the root by it) and label. */
  uuid: string;
  label: string;
  /** The partition reads as zeros already (a fresh sparse file, not a device): nothing needs zeroing. */
  prezeroed?: boolean;
  /** Number of inodes to make. */
  inodes: number;
  /** Scratch space the builder may use (removed by the caller). */
  workDir: string;
}

export interface RootFsBuilder {
  readonly name: string;
  build(req: RootFsRequest): Promise<void>;
}

/** Absolute path in the image, normalised: no empty, `.` or `..` parts. */
export function checkExtraPath(path: string): void {
  const parts = path.split('/');
  if (!path.startsWith('/') || parts.slice(1).some((p) => p === '' || p === '.' || p === '..')) throw new Error(`bad path for an added file: ${path}`);
}
