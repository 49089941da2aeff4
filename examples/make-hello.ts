// Writes examples/hello, the tiny OCI layout the README's first command inspects (and extracts,
// once extract lands). Deterministic: running it again gives the same digests.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeOciLayout } from '../test/fixtures/oci-layout.ts';
import { makeTar } from '../test/fixtures/tar.ts';

const dir = join(import.meta.dirname, 'hello');
const T = Date.UTC(2024, 0, 1) / 1000; // fixed mtimes: the same digests on every run
rmSync(dir, { recursive: true, force: true });
const base = makeTar([
  { name: 'etc/', type: 'directory', mode: 0o755, mtime: T },
  { name: 'etc/os-release', content: Buffer.from('NAME="imgx hello"\nID=imgx-hello\nVERSION_ID=1\n'), mode: 0o644, mtime: T },
  { name: 'bin/', type: 'directory', mode: 0o755, mtime: T },
  { name: 'hello.txt', content: Buffer.from('Hello from an image imgx read without a daemon.\n'), mode: 0o644, mtime: T },
]);
const top = makeTar([
  { name: 'usr/', type: 'directory', mode: 0o755, mtime: T },
  { name: 'usr/share/', type: 'directory', mode: 0o755, mtime: T },
  { name: 'usr/share/hello/', type: 'directory', mode: 0o755, mtime: T },
  { name: 'usr/share/hello/README', content: Buffer.from('A second layer.\n'), mode: 0o644, mtime: T },
]);
const img = writeOciLayout(dir, {
  layers: [base, top],
  tag: 'latest',
  config: {
    config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Labels: { 'org.opencontainers.image.title': 'imgx hello' } },
    history: [{ created: '2024-01-01T00:00:00Z', created_by: 'examples/make-hello.ts: base' }, { created: '2024-01-01T00:00:00Z', created_by: 'examples/make-hello.ts: usr/share/hello' }],
  },
});
console.log(`wrote ${dir} ${img.root.digest}`);
