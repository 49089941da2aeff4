// `-u`/`USER` → uid, gid, supplementary groups and home, resolved from the image's own /etc/passwd
// and /etc/group, with Docker's rules: `name`, `uid`, `name:group`, `uid:gid` (any mix); a name must
// exist in the image; a number need not (it then gets gid 0 and home /, unless a group is given).
import { RunError } from '../errors.ts';
import { readFileInRoot } from './root-path.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
  /** The passwd name, when the user has an entry. */
  name?: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const ID = /^\d+$/;
const MAX_ID = 0xffffffff - 1;

function parseId(s: string): number | undefined {
  if (!ID.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const uid = parseId(f[2] ?? '');
    const gid = parseId(f[3] ?? '');
    if (f.length < 7 || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0]!, uid, gid, home: f[5] || '/' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    const gid = parseId(f[2] ?? '');
    if (f.length < 4 || gid === undefined) continue;
    out.push({ name: f[0]!, gid, members: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return out;
}

/** Resolves `spec` (empty: root) against the passwd and group files of the image at `root`. */
export async function resolveUser(root: string, spec: string): Promise<ResolvedUser> {
  const [userPart = '', groupPart, ...rest] = spec.split(':');
  if (rest.length > 0) throw new RunError('IMGX_USER_UNKNOWN', `invalid user ${JSON.stringify(spec)}: expected USER[:GROUP]`);
  const passwd = parsePasswd((await readFileInRoot(root, '/etc/passwd')) ?? '');
  const groups = parseGroup((await readFileInRoot(root, '/etc/group')) ?? '');

  const user = userPart === '' ? '0' : userPart;
  const uidNum = parseId(user);
  const entry = uidNum !== undefined ? passwd.find((p) => p.uid === uidNum) : passwd.find((p) => p.name === user);
  if (!entry && uidNum === undefined) {
    throw new RunError('IMGX_USER_UNKNOWN', `unable to find user ${user}: no matching entries in the image's /etc/passwd`);
  }
  const uid = uidNum ?? entry!.uid;
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined && groupPart !== '') {
    const gidNum = parseId(groupPart);
    if (gidNum !== undefined) gid = gidNum;
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new RunError('IMGX_USER_UNKNOWN', `unable to find group ${groupPart}: no matching entries in the image's /etc/group`);
      gid = g.gid;
    }
  }
  // Supplementary groups: the primary one, then every group that lists the user as a member (as runc does).
  const additional = new Set<number>([gid]);
  if (entry) for (const g of groups) if (g.members.includes(entry.name)) additional.add(g.gid);
  return { uid, gid, additionalGids: [...additional], home: entry?.home ?? '/', ...(entry ? { name: entry.name } : {}) };
}
