// /etc/os-release (or /usr/lib/os-release) of an image: which distribution, to know how to
// install a kernel into it.
import { asView, type RootView } from './root-view.ts';

export interface OsRelease {
  id: string;
  idLike: string[];
  prettyName: string;
  versionCodename?: string;
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
    out[m[1]!] = v;
  }
  return out;
}

export async function readOsRelease(root: string | RootView): Promise<OsRelease | undefined> {
  const view = asView(root);
  const text = (await view.readFile('/etc/os-release')) ?? (await view.readFile('/usr/lib/os-release'));
  if (text === undefined) return undefined;
  const f = parseOsRelease(text);
  const id = (f.ID ?? '').toLowerCase();
  return {
    id,
    idLike: (f.ID_LIKE ?? '').toLowerCase().split(/\s+/).filter(Boolean),
    prettyName: f.PRETTY_NAME || f.NAME || id || 'Linux',
    ...(f.VERSION_CODENAME ? { versionCodename: f.VERSION_CODENAME } : {}),
  };
}
