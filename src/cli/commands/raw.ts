// crane-style raw views: the manifest, the config, the digest.
import type { Argv, CommandModule } from 'yargs';
import type { ManifestBlob } from '../../image/source.ts';
import { resolveImage } from '../../image/resolve.ts';
import { makeContext, type GlobalArgs } from '../context.ts';

interface Args extends GlobalArgs {
  image: string;
  platformManifest?: boolean;
}

const withResolveOption = (y: Argv<GlobalArgs>) =>
  y.positional('image', { type: 'string', demandOption: true }).option('platform-manifest', {
    alias: 'resolve',
    type: 'boolean',
    describe: 'follow an index to the manifest of --platform',
  }) as unknown as Argv<Args>;

/** What the reference names, or with --resolve the manifest of the platform. */
async function manifestFor(argv: Args): Promise<ManifestBlob> {
  const ctx = makeContext(argv);
  const { source } = await ctx.open(argv.image);
  try {
    return argv.platformManifest ? (await resolveImage(source, ctx.platform, ctx.platformExplicit)).manifest : await source.getRootManifest();
  } finally {
    await source.close();
  }
}

export const manifestCommand: CommandModule<GlobalArgs, Args> = {
  command: 'manifest <image>',
  describe: 'print the raw manifest or index the reference names (--resolve: the platform manifest)',
  builder: withResolveOption,
  handler: async (argv) => {
    process.stdout.write((await manifestFor(argv)).bytes);
  },
};

export const configCommand: CommandModule<GlobalArgs, Args> = {
  command: 'config <image>',
  describe: 'print the raw image config (for --platform when the image is an index)',
  builder: (y) => y.positional('image', { type: 'string', demandOption: true }),
  handler: async (argv) => {
    const ctx = makeContext(argv);
    const { source } = await ctx.open(argv.image);
    try {
      process.stdout.write((await resolveImage(source, ctx.platform, ctx.platformExplicit)).configBytes);
    } finally {
      await source.close();
    }
  },
};

export const digestCommand: CommandModule<GlobalArgs, Args> = {
  command: 'digest <image>',
  describe: 'print the digest of what the reference names (--resolve: of the platform manifest)',
  builder: withResolveOption,
  handler: async (argv) => makeContext(argv).out((await manifestFor(argv)).digest),
};
