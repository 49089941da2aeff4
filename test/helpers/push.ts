// Pushes an OCI layout to a registry byte for byte. skopeo gzips uncompressed layers on the way to
// a registry (docker destinations always ask for compression), so tests that need a registry
// holding plain-tar layers push with this instead: blobs, then manifests, then the index, untouched.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Desc { mediaType?: string; digest: string; size?: number; annotations?: Record<string, string> }

export interface PushOptions {
  /** `user:pass` for Basic auth (htpasswd registries). */
  creds?: string;
  /** The tag in the layout's index.json to push; default: the only or first manifest. */
  layoutTag?: string;
}

const REF_NAME = 'org.opencontainers.image.ref.name';
const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

/**
 * Pushes the image tagged `opts.layoutTag` (or the first one) in the OCI layout `dir` to
 * `http://HOST/REPO:TAG`, given as `HOST/REPO:TAG`. Returns the pushed root manifest's digest.
 */
export async function pushOciLayout(dir: string, dest: string, opts: PushOptions = {}): Promise<string> {
  const m = /^([^/]+)\/(.+):([\w][\w.-]{0,127})$/.exec(dest);
  if (!m) throw new Error(`pushOciLayout: want HOST/REPO:TAG, got ${dest}`);
  const [, host, repo, tag] = m as unknown as [string, string, string, string];
  const base = `http://${host}/v2/${repo}`;
  const headers: Record<string, string> = opts.creds ? { authorization: `Basic ${Buffer.from(opts.creds).toString('base64')}` } : {};
  const blob = (digest: string) => readFileSync(join(dir, 'blobs', ...digest.split(':')));

  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Desc[] };
  const root = opts.layoutTag ? index.manifests.find((d) => d.annotations?.[REF_NAME] === opts.layoutTag) : index.manifests[0];
  if (!root) throw new Error(`pushOciLayout: no image ${opts.layoutTag ?? ''} in ${dir}`);

  const pushed = new Set<string>();
  const putBlob = async (digest: string) => {
    if (pushed.has(digest)) return;
    pushed.add(digest);
    const head = await fetch(`${base}/blobs/${digest}`, { method: 'HEAD', headers });
    if (head.ok) return;
    const start = await fetch(`${base}/blobs/uploads/`, { method: 'POST', headers });
    await start.arrayBuffer();
    if (start.status !== 202) throw new Error(`start upload ${digest}: HTTP ${start.status}`);
    const loc = new URL(start.headers.get('location') ?? '', `http://${host}`);
    loc.searchParams.set('digest', digest);
    const put = await fetch(loc, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: blob(digest) });
    const text = await put.text();
    if (put.status !== 201) throw new Error(`upload ${digest}: HTTP ${put.status} ${text}`);
  };
  const putManifest = async (ref: string, mediaType: string, body: Buffer) => {
    const res = await fetch(`${base}/manifests/${ref}`, { method: 'PUT', headers: { ...headers, 'content-type': mediaType }, body });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`put manifest ${ref}: HTTP ${res.status} ${text}`);
  };
  const pushManifest = async (d: Desc, ref: string): Promise<void> => {
    const body = blob(d.digest);
    const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: string; manifests?: Desc[]; config?: Desc; layers?: Desc[] };
    const mediaType = d.mediaType ?? parsed.mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
    if (INDEX_TYPES.has(mediaType)) {
      for (const child of parsed.manifests ?? []) await pushManifest(child, child.digest);
    } else {
      for (const b of [parsed.config, ...(parsed.layers ?? [])]) if (b) await putBlob(b.digest);
    }
    await putManifest(ref, mediaType, body);
  };
  await pushManifest(root, tag);
  return root.digest;
}
