// One entry point from an image argument (any transport) to an ImageSource. Registry images read
// through the blob cache; local layouts and archives are read in place.
// Local paths are recorded absolute, so the cache's record of them means one thing from anywhere.
import { resolve } from 'node:path';
import type { RegistryOptions } from '../registry/options.ts';
import type { BlobCache } from './blob-cache.ts';
import { CachingSource, type PullPolicy } from './caching-source.ts';
import { openDockerArchive } from './docker-archive-source.ts';
import { openOciArchive } from './oci-archive-source.ts';
import { openOciLayout } from './oci-layout-source.ts';
import { LazySource } from './lazy-source.ts';
import { formatReference, registryDisplayName } from './reference.ts';
import type { ImageSource } from './source.ts';
import { formatImageArg, type ImageArg } from './transport.ts';

export interface OpenSourceOptions {
  cache: BlobCache;
  registry: RegistryOptions;
  warn?: (message: string) => void;
  /** Registry images: when to ask the registry (see CachingSource). */
  pull?: PullPolicy;
}

export interface OpenedSource {
  source: ImageSource;
  /** The key under which the cache records the image: the full reference for registry images. */
  refKey: string;
}

export async function openImageSource(arg: ImageArg, opts: OpenSourceOptions): Promise<OpenedSource> {
  switch (arg.transport) {
    case 'docker': {
      const refKey = formatReference(arg.ref);
      // Loaded on first use: the HTTP stack costs ~0.1 s of start-up that a cache hit does not need.
      const upstream = new LazySource(registryDisplayName(arg.ref), async () => {
        const { RegistrySource } = await import('../registry/registry-source.ts');
        return new RegistrySource(arg.ref, opts.registry);
      });
      const source = new CachingSource(upstream, opts.cache, {
        refKey,
        ...(arg.ref.digest ? { pinnedDigest: arg.ref.digest } : {}),
        ...(opts.warn ? { warn: opts.warn } : {}),
        ...(opts.pull ? { pull: opts.pull } : {}),
      });
      return { source, refKey };
    }
    case 'oci':
      return { source: await openOciLayout(arg.dir, arg.tag), refKey: formatImageArg({ ...arg, dir: resolve(arg.dir) }) };
    case 'oci-archive':
      return { source: await openOciArchive(arg.file, arg.tag), refKey: formatImageArg({ ...arg, file: resolve(arg.file) }) };
    case 'docker-archive':
      return { source: await openDockerArchive(arg.file, arg.ref), refKey: formatImageArg({ ...arg, file: resolve(arg.file) }) };
  }
}
