// The image configuration (OCI image-spec config.md; Docker's is a superset we read the same way).
// Every field imgx uses is shape checked (shape.ts) and copied into a fresh object, so `run`,
// `inspect` and `to-disk` never meet a number where a string belongs: a field of the wrong type
// is IMGX_BAD_MANIFEST naming it (`config.Env[2] is a number, not a string`). `null` reads as
// absent, except for Entrypoint, Cmd and Labels, where it is kept (an explicit "none").
import { IntegrityError } from '../errors.ts';
import { quotedText } from '../util/terminal-text.ts';
import { isValidDigest } from './digest.ts';
import { Fields, isObject, kindOf, type ShapeFail } from './shape.ts';

export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: {
    User?: string;
    ExposedPorts?: Record<string, object>;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Volumes?: Record<string, object>;
    WorkingDir?: string;
    Labels?: Record<string, string> | null;
    StopSignal?: string;
    Healthcheck?: unknown;
    Shell?: string[];
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: { created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }[];
}

type RunConfig = NonNullable<ImageConfig['config']>;
type History = NonNullable<ImageConfig['history']>[number];

function bad(what: string, why: string): never {
  throw new IntegrityError('IMGX_BAD_MANIFEST', `${what}: ${why}`);
}

/** `{"80/tcp": {}}`: the keys, with object (or null) values, as a fresh object. */
function keySet(f: Fields, key: string): Record<string, object> | undefined {
  const v = f.get(key);
  if (v === undefined) return undefined;
  if (!isObject(v)) f.fail(f.name(key), `is ${kindOf(v)}, not an object`);
  const out: [string, object][] = [];
  for (const [k, x] of Object.entries(v)) {
    if (x !== null && !isObject(x)) f.fail(`${f.name(key)}[${quotedText(k, 60)}]`, `is ${kindOf(x)}, not an object`);
    out.push([k, {}]);
  }
  return Object.fromEntries(out);
}

/** A list of strings where `null` is kept (Entrypoint, Cmd). */
function nullableStrings(f: Fields, key: string): string[] | null | undefined {
  if (Object.hasOwn(f.obj, key) && f.obj[key] === null) return null;
  const list = f.optStringList(key);
  return list === undefined ? undefined : [...list];
}

function runConfig(f: Fields): RunConfig {
  const c: RunConfig = {};
  const user = f.optString('User');
  if (user !== undefined) c.User = user;
  const ports = keySet(f, 'ExposedPorts');
  if (ports !== undefined) c.ExposedPorts = ports;
  const env = f.optStringList('Env');
  if (env !== undefined) c.Env = [...env];
  const entrypoint = nullableStrings(f, 'Entrypoint');
  if (entrypoint !== undefined) c.Entrypoint = entrypoint;
  const cmd = nullableStrings(f, 'Cmd');
  if (cmd !== undefined) c.Cmd = cmd;
  const volumes = keySet(f, 'Volumes');
  if (volumes !== undefined) c.Volumes = volumes;
  const workingDir = f.optString('WorkingDir');
  if (workingDir !== undefined) c.WorkingDir = workingDir;
  if (Object.hasOwn(f.obj, 'Labels') && f.obj.Labels === null) c.Labels = null;
  else {
    const labels = f.optStringMap('Labels');
    if (labels !== undefined) c.Labels = labels;
  }
  const stopSignal = f.optString('StopSignal');
  if (stopSignal !== undefined) c.StopSignal = stopSignal;
  // Not used by imgx: only its kind is checked (Docker's HealthConfig is an object).
  const health = f.optObject('Healthcheck');
  if (health !== undefined) c.Healthcheck = health.obj;
  const shell = f.optStringList('Shell');
  if (shell !== undefined) c.Shell = [...shell];
  return c;
}

function historyEntry(v: unknown, path: string, fail: ShapeFail): History {
  const f = Fields.of(v, path, fail);
  const h: History = {};
  const created = f.optString('created');
  if (created !== undefined) h.created = created;
  const createdBy = f.optString('created_by');
  if (createdBy !== undefined) h.created_by = createdBy;
  const author = f.optString('author');
  if (author !== undefined) h.author = author;
  const comment = f.optString('comment');
  if (comment !== undefined) h.comment = comment;
  const empty = f.optBoolean('empty_layer');
  if (empty !== undefined) h.empty_layer = empty;
  return h;
}

export function parseImageConfig(bytes: Buffer, what: string): ImageConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    bad(what, 'image config is not valid JSON');
  }
  if (!isObject(doc)) bad(what, `image config is ${kindOf(doc)}, not a JSON object`);
  const fail: ShapeFail = (field, why) => bad(what, `image config ${field} ${why}`);
  const f = new Fields(doc, '', fail);
  const c: ImageConfig = {};
  for (const key of ['architecture', 'os', 'variant', 'created', 'author'] as const) {
    const v = f.optString(key);
    if (v !== undefined) c[key] = v;
  }
  const run = f.optObject('config');
  if (run !== undefined) c.config = runConfig(run);
  const rootfs = f.optObject('rootfs');
  if (rootfs !== undefined) {
    const type = rootfs.optString('type') ?? '';
    const diffIds = rootfs.list('diff_ids');
    for (let i = 0; i < diffIds.length; i++) {
      const d = diffIds[i];
      if (typeof d !== 'string') fail(`rootfs.diff_ids[${i}]`, `is ${kindOf(d)}, not a string`);
      if (!isValidDigest(d)) fail(`rootfs.diff_ids[${i}]`, `${quotedText(d)} is not a valid digest`);
    }
    c.rootfs = { type, diff_ids: [...(diffIds as string[])] };
  }
  const history = f.optList('history');
  if (history !== undefined) c.history = history.map((h, i) => historyEntry(h, `history[${i}]`, fail));
  return c;
}
