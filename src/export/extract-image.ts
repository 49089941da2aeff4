// An image's flattened filesystem into a directory, in one read of each layer: the staging
// directory is made first, pass 1 writes every file content as it scans (content-stage.ts: at its
// own path in the staging directory when it can, else beside it), and pass 2 (the directory
// writer) builds the rest of the tree around the contents and moves the others into place. When
// the tree comes from the browse index instead (nothing scanned), pass 2 reads the layers as usual.
import { resolve } from 'node:path';
import type { CliContext } from '../cli/context.ts';
import { ioError } from '../io-errors.ts';
import { emitTree } from '../layers/emit.ts';
import { openImageTree, type ImageTree } from '../layers/image-tree.ts';
import type { ContentSink } from '../layers/scan.ts';
import type { Warnings } from '../warnings.ts';
import { ContentStage } from './content-stage.ts';
import { writeDirectory, type WriteDirectoryResult } from './dir-writer.ts';
import { writerIdentity } from './fd-ops.ts';
import { onInterrupt } from './interrupt.ts';
import { StagingDir, checkDestination } from './staging-dir.ts';

export interface ExtractImageOptions {
  warnings: Warnings;
  /** As writeDirectory's. */
  asRoot?: boolean;
  /** Called with the tree once it is known, before anything is written into DEST. */
  opened?: (it: ImageTree) => void;
  /** Told when each phase ends (for --debug). */
  phase?: (what: string) => void;
}

export async function extractImage(ctx: CliContext, image: string, dest: string, opts: ExtractImageOptions): Promise<{ tree: ImageTree; result: WriteDirectoryResult }> {
  const target = resolve(dest);
  await checkDestination(target);
  const staging = await StagingDir.create(target);
  const cannotWrite = (e: unknown) => ioError(e, `cannot write ${target}`);
  let stage: ContentStage;
  try {
    stage = await ContentStage.create(`${staging.path}.content`, staging.path, writerIdentity(opts.asRoot));
  } catch (e) {
    await staging.discard().catch(() => {});
    throw cannotWrite(e);
  }
  // Everything partial goes: the staging tree, the staged contents beside it, and the parents of
  // DEST that were made for it. Never throws over the error that made it run.
  const cleanUp = async () => {
    await stage.dispose().catch(() => {});
    await staging.discard().catch(() => {});
    await staging.removeParents().catch(() => {});
  };
  // For the whole extract: during pass 2 the writer's own handler removes the staging directory,
  // this one the staged contents (the signal is raised again once both are done).
  const unhook = onInterrupt(cleanUp);
  let it: ImageTree & { close(): Promise<void> };
  try {
    it = await openImageTree(ctx, image, { warnings: opts.warnings, contents: destWrites(stage, cannotWrite) });
    opts.phase?.(it.fromIndex ? 'tree index found' : 'layers read, contents staged');
    opts.opened?.(it);
  } catch (e) {
    unhook();
    await cleanUp();
    throw e;
  }
  let failed = false;
  try {
    // What pass 1 wrote into the staging tree, made to agree with the tree (before pass 2, which
    // removes the staging tree should it fail; before it, that is done here).
    try {
      stage.settle(it.tree);
    } catch (e) {
      await staging.discard().catch(() => {});
      throw cannotWrite(e);
    }
    const result = await writeDirectory(emitTree(it.tree, it.layers, { staged: stage }), target, {
      warnings: opts.warnings,
      staging,
      made: stage.dirs,
      ...(opts.asRoot !== undefined ? { asRoot: opts.asRoot } : {}),
    });
    opts.phase?.('tree written');
    return { tree: it, result };
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // Contents that later layers replaced or removed, or all of them after a failure.
    await stage.dispose().catch(() => {});
    opts.phase?.('staged leftovers removed');
    if (failed) {
      await staging.removeParents().catch(() => {});
      await it.close().catch(() => {});
    } else await it.close();
    unhook();
  }
}

/**
 * The content stage as pass 1 sees it, with its own failures (creating, writing, closing a file
 * in the staging tree or beside it: a full disk …) as IMGX_IO naming DEST. A failure to read the
 * layer passes as it is.
 */
function destWrites(stage: ContentStage, cannotWrite: (e: unknown) => unknown): ContentSink {
  return {
    async file(layer, offset, entry, readData) {
      let readError: { error: unknown } | undefined;
      try {
        await stage.file(layer, offset, entry, (sink) =>
          readData((chunk, at) => {
            try {
              sink(chunk, at);
            } catch (e) {
              throw cannotWrite(e);
            }
          }).catch((e: unknown) => {
            readError = { error: e };
            throw e;
          }),
        );
      } catch (e) {
        if (readError?.error === e) throw e;
        throw cannotWrite(e);
      }
    },
  };
}
