// Temp dirs for e2e tests and benches. Each is removed when the process exits, so a test that
// throws halfway still leaves nothing behind in /tmp.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs = new Set<string>();
let hooked = false;

function removeAll(): void {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

/** A new empty directory under the OS temp dir, removed at process exit (or by `removeTempDir`). */
export function tempDir(prefix = 'imgx-test-'): string {
  if (!hooked) {
    hooked = true;
    process.on('exit', removeAll);
  }
  const d = mkdtempSync(join(process.env.IMGX_TMPDIR ?? tmpdir(), prefix));
  dirs.add(d);
  return d;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}
