// `-v SRC:DST[:ro|:rw]`: a host path bind-mounted into the container. Only host paths (no named
// volumes: there is no daemon to keep them); SRC must exist, since creating host directories on a
// typo is a surprise Docker's own `--mount` refuses too.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import type { SpecMount } from './docker-defaults.ts';

export interface Volume {
  source: string;
  destination: string;
  readOnly: boolean;
}

export async function parseVolume(spec: string, cwd = process.cwd()): Promise<Volume> {
  const parts = spec.split(':');
  if (parts.length < 2 || parts.length > 3) throw new UsageError(`invalid volume ${JSON.stringify(spec)}: expected SRC:DST[:ro|rw]`);
  const [src = '', dst = '', mode = 'rw'] = parts;
  if (mode !== 'ro' && mode !== 'rw') throw new UsageError(`invalid volume ${JSON.stringify(spec)}: mode must be ro or rw`);
  if (!src.startsWith('/') && !src.startsWith('.')) {
    throw new UsageError(`invalid volume ${JSON.stringify(spec)}: the source must be a host path (named volumes need a daemon)`);
  }
  if (!dst.startsWith('/')) throw new UsageError(`invalid volume ${JSON.stringify(spec)}: the destination must be absolute`);
  if (dst.split('/').includes('..')) throw new UsageError(`invalid volume ${JSON.stringify(spec)}: ".." in the destination`);
  const source = resolve(cwd, src);
  await stat(source).catch(() => {
    throw new UsageError(`volume source ${source} does not exist`);
  });
  return { source, destination: dst, readOnly: mode === 'ro' };
}

export function volumeMount(v: Volume): SpecMount {
  return { destination: v.destination, type: 'bind', source: v.source, options: ['rbind', 'rprivate', ...(v.readOnly ? ['ro'] : [])] };
}
