// Device nodes and fifos. Node has no mknod()/mkfifo(), so they are made in batches by one `sh`
// running coreutils mknod/mkfifo, never one process per node. Paths are relative to the root (the
// shell's cwd), passed as arguments (no quoting), prefixed with ./ so none reads as an option.
// mknod(2) and mkfifo(3) do not follow a symlink in the last component; the parents were verified
// by the caller.
import { spawn } from 'node:child_process';

export interface SpecialNode {
  rel: string;
  type: 'char-device' | 'block-device' | 'fifo';
  mode: number;
  major: number;
  minor: number;
}

const SCRIPT = `i=0
while [ $# -gt 0 ]; do
  if [ "$2" = p ]; then mkfifo -m "$1" -- "$3"; else mknod -m "$1" -- "$3" "$2" "$4" "$5"; fi || echo "$i"
  i=$((i+1))
  shift 5
done`;

const MAX_BATCH = 500;
const MAX_ARG_BYTES = 96 * 1024;

/** Creates the nodes under `root`; returns those that could not be made, with the first error message. */
export async function makeSpecialFiles(root: string, nodes: SpecialNode[]): Promise<{ failed: SpecialNode[]; firstError?: string }> {
  const failed: SpecialNode[] = [];
  let firstError: string | undefined;
  for (let i = 0; i < nodes.length; ) {
    const batch: SpecialNode[] = [];
    let bytes = 0;
    while (i < nodes.length && batch.length < MAX_BATCH && bytes < MAX_ARG_BYTES) {
      const n = nodes[i++]!;
      batch.push(n);
      bytes += n.rel.length + 32;
    }
    const r = await runBatch(root, batch);
    for (const idx of r.failed) failed.push(batch[idx]!);
    firstError ??= r.stderr.split('\n').find(Boolean);
  }
  return firstError === undefined ? { failed } : { failed, firstError };
}

function runBatch(cwd: string, batch: SpecialNode[]): Promise<{ failed: number[]; stderr: string }> {
  const args: string[] = [];
  for (const n of batch) {
    const kind = n.type === 'fifo' ? 'p' : n.type === 'char-device' ? 'c' : 'b';
    args.push((n.mode & 0o7777).toString(8).padStart(4, '0'), kind, `./${n.rel}`, String(n.major), String(n.minor));
  }
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', SCRIPT, 'sh', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (err.length < 65536) err += d;
    });
    child.once('error', reject);
    child.once('close', () => {
      const failed = out
        .split('\n')
        .filter(Boolean)
        .map(Number)
        .filter((n) => Number.isInteger(n) && n >= 0 && n < batch.length);
      resolve({ failed, stderr: err });
    });
  });
}
