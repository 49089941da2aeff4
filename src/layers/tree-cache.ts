// The browse index: an image's FlatTree saved in the cache under its manifest digest
// (<cacheRoot>/imgx-index/<alg>/<hex>.json.gz), so ls, cat, layers, diff and a second extract skip
// pass 1. Written atomically; a missing, unreadable, corrupt or older-format file reads as absent,
// and the caller simply scans again.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { createGzip, gunzip, constants } from 'node:zlib';
import { writeFileAtomic } from '../image/atomic-file.ts';
import { ioError } from '../io-errors.ts';
import { parseDigest } from '../image/digest.ts';
import { FlatTree, FORMAT_VERSION } from './flat-tree.ts';
import type { WarningCode } from '../warnings.ts';

const gunzipAsync = promisify(gunzip);

/** Tells this file apart from any other JSON that might sit there. */
const FORMAT = 'imgx-flat-tree';

export function treeIndexPath(cacheRoot: string, manifestDigest: string): string {
  const { algorithm, hex } = parseDigest(manifestDigest);
  return join(cacheRoot, 'imgx-index', algorithm, `${hex}.json.gz`);
}

/** A warning pass 1 gave while it built the tree, kept so a run from the index can repeat it. */
export interface RecordedWarning {
  code: WarningCode;
  message: string;
}

/** Most warnings kept per index: enough to repeat every kind with its count, bounded for hostile layers. */
const MAX_RECORDED = 10_000;

export async function loadTree(cacheRoot: string, manifestDigest: string): Promise<FlatTree | undefined> {
  return (await loadTreeAndWarnings(cacheRoot, manifestDigest))?.tree;
}

export async function loadTreeAndWarnings(cacheRoot: string, manifestDigest: string): Promise<{ tree: FlatTree; warnings: RecordedWarning[] } | undefined> {
  const path = treeIndexPath(cacheRoot, manifestDigest);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch {
    return undefined;
  }
  try {
    const j = JSON.parse((await gunzipAsync(data)).toString('utf8')) as { format?: unknown; version?: unknown; digest?: unknown; tree?: unknown; warnings?: unknown };
    if (j.format !== FORMAT || j.version !== FORMAT_VERSION || j.digest !== manifestDigest) return undefined;
    const warnings = Array.isArray(j.warnings)
      ? (j.warnings as unknown[]).filter((w): w is RecordedWarning => typeof (w as RecordedWarning)?.code === 'string' && typeof (w as RecordedWarning)?.message === 'string')
      : [];
    return { tree: FlatTree.fromJSON(j.tree), warnings };
  } catch {
    return undefined;
  }
}

export async function saveTree(cacheRoot: string, manifestDigest: string, tree: FlatTree, warnings: RecordedWarning[] = []): Promise<void> {
  const path = treeIndexPath(cacheRoot, manifestDigest);
  // Level 3: most of level 9's ratio on this repetitive JSON at a fraction of the time.
  const gz = createGzip({ level: 3, strategy: constants.Z_DEFAULT_STRATEGY });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const done = new Promise<void>((resolve, reject) => {
    gz.once('end', resolve);
    gz.once('error', reject);
  });
  // The same JSON as JSON.stringify of the whole document, a field at a time: a million-node
  // tree is tens of MB of JSON, which in one piece (and again as the compressor's input) was the
  // peak of a scan's memory. The tree does not change meanwhile (FlatTree's columns never do).
  const fields: [string, unknown][] = [
    ['format', FORMAT],
    ['version', FORMAT_VERSION],
    ['digest', manifestDigest],
  ];
  let first = true;
  const write = async (text: string) => {
    if (!gz.write(text)) await once(gz, 'drain');
  };
  await write('{');
  for (const [k, v] of fields) {
    await write(`${first ? '' : ','}${JSON.stringify(k)}:${JSON.stringify(v)}`);
    first = false;
  }
  await write(',"tree":{');
  first = true;
  for (const [k, v] of Object.entries(tree.toJSON())) {
    await write(`${first ? '' : ','}${JSON.stringify(k)}:${JSON.stringify(v)}`);
    first = false;
  }
  await write(`},"warnings":${JSON.stringify(warnings.slice(0, MAX_RECORDED))}}`);
  gz.end();
  await done;
  const data = Buffer.concat(out);
  // A full or read-only cache leaves no temporary file (writeFileAtomic), and the caller goes on
  // without the index: it is only a speed-up.
  await writeFileAtomic(path, data).catch((e: unknown) => {
    throw ioError(e, `cannot write ${path}`);
  });
}
