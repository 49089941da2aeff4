// The files of an OCI image layout, wherever they are: a directory, or members of a tar archive.
// Paths are relative and '/'-separated, and only ever built from fixed names or validated digests.
import type { Readable } from 'node:stream';

export interface LayoutFiles {
  /** The directory or archive, for messages. */
  readonly where: string;
  /** A whole regular file, or undefined when there is none. Throws IMGX_MANIFEST_TOO_LARGE beyond `cap`. */
  read(path: string, cap: number): Promise<Buffer | undefined>;
  /** A regular file as a stream with its size, or undefined when there is none. */
  open(path: string): Promise<{ size: number; stream: Readable } | undefined>;
  close(): Promise<void>;
}
