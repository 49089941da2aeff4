// The user namespace of a run without root: the caller becomes root inside; when /etc/subuid and
// /etc/subgid grant the caller a range (and newuidmap/newgidmap are there to apply it), container
// ids 1… map onto that range, so images whose USER is not root run too.
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import type { IdMapping } from './runtime-spec.ts';

export interface SubordinateRange {
  start: number;
  count: number;
}

/** The first range of `/etc/subuid`-style `text` for the user (by name or by number). */
export function subordinateRange(text: string, name: string, id: number): SubordinateRange | undefined {
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (who !== name && who !== String(id)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && c > 0) return { start: s, count: c };
  }
  return undefined;
}

export interface UserNamespaceMappings {
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
  /** Container ids that have a host id (0 always). */
  maps(uid: number, gid: number): boolean;
}

export async function rootlessMappings(hasNewIdMap: boolean): Promise<UserNamespaceMappings> {
  const uid = process.geteuid!();
  const gid = process.getegid!();
  const name = userInfo().username;
  const read = (p: string) => readFile(p, 'utf8').catch(() => '');
  const subUid = hasNewIdMap ? subordinateRange(await read('/etc/subuid'), name, uid) : undefined;
  const subGid = hasNewIdMap ? subordinateRange(await read('/etc/subgid'), name, uid) : undefined;
  const uidMappings: IdMapping[] = [{ containerID: 0, hostID: uid, size: 1 }];
  const gidMappings: IdMapping[] = [{ containerID: 0, hostID: gid, size: 1 }];
  if (subUid && subGid) {
    uidMappings.push({ containerID: 1, hostID: subUid.start, size: subUid.count });
    gidMappings.push({ containerID: 1, hostID: subGid.start, size: subGid.count });
  }
  const inside = (m: IdMapping[], id: number) => m.some((x) => id >= x.containerID && id < x.containerID + x.size);
  return { uidMappings, gidMappings, maps: (u, g) => inside(uidMappings, u) && inside(gidMappings, g) };
}
