// ext4 extended attributes: the in-inode area (after i_extra_isize) and the one xattr block, with
// the entry and block hashes e2fsprogs checks (ext2fs_ext_attr_hash_entry, ext2fs_ext_attr_block_rehash)
// and POSIX ACLs stored in ext4's own compact format, as the kernel and e2fsprogs store them.
// Names keep their bytes (raw-name.ts).
import { encodeName, printableName } from '../../util/raw-name.ts';
import { Ext4LimitError } from './errors.ts';

export const XATTR_MAGIC = 0xea020000;
const BLOCK_HEADER = 32;
const ENTRY_HEADER = 16;

/** Longest prefixes first: ext4's name indexes. */
const PREFIXES: [string, number][] = [
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['user.', 1],
  ['trusted.', 4],
  ['security.', 6],
  ['system.', 7],
];

export interface XattrEntry {
  index: number;
  name: Buffer;
  value: Buffer;
  hash: number;
}

const pad4 = (n: number) => (n + 3) & ~3;
export const entrySize = (e: XattrEntry) => pad4(ENTRY_HEADER + e.name.length);
const valueSize = (e: XattrEntry) => pad4(e.value.length);

/** ext2fs_ext_attr_hash_entry (names as signed chars, like x86's kernel). */
export function entryHash(name: Buffer, value: Buffer): number {
  let hash = 0;
  for (const c of name) hash = ((hash << 5) ^ (hash >>> 27) ^ (c >= 0x80 ? c - 256 : c)) >>> 0;
  if (value.length > 0) {
    const padded = Buffer.alloc(pad4(value.length));
    value.copy(padded);
    for (let i = 0; i < padded.length; i += 4) hash = ((hash << 16) ^ (hash >>> 16) ^ padded.readUInt32LE(i)) >>> 0;
  }
  return hash;
}

function blockHash(entries: XattrEntry[]): number {
  let hash = 0;
  for (const e of entries) {
    if (e.hash === 0) return 0;
    hash = ((hash << 16) ^ (hash >>> 16) ^ e.hash) >>> 0;
  }
  return hash;
}

const ACL_USER_OBJ = 1;
const ACL_USER = 2;
const ACL_GROUP_OBJ = 4;
const ACL_GROUP = 8;
const ACL_MASK = 0x10;
const ACL_OTHER = 0x20;

/** posix_acl_xattr (version 2, what getxattr and tar give) → ext4_acl (version 1); other input as is. */
export function toExt4Acl(value: Buffer): Buffer {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== 2) return value;
  const parts: Buffer[] = [Buffer.from([1, 0, 0, 0])];
  for (let off = 4; off < value.length; off += 8) {
    const tag = value.readUInt16LE(off);
    const perm = value.readUInt16LE(off + 2);
    const id = value.readUInt32LE(off + 4);
    if (tag === ACL_USER || tag === ACL_GROUP) {
      const b = Buffer.alloc(8);
      b.writeUInt16LE(tag, 0);
      b.writeUInt16LE(perm, 2);
      b.writeUInt32LE(id, 4);
      parts.push(b);
    } else if (tag === ACL_USER_OBJ || tag === ACL_GROUP_OBJ || tag === ACL_MASK || tag === ACL_OTHER) {
      const b = Buffer.alloc(4);
      b.writeUInt16LE(tag, 0);
      b.writeUInt16LE(perm, 2);
      parts.push(b);
    } else return value;
  }
  return Buffer.concat(parts);
}

/**
 * Name → (index, suffix), value converted for ACLs; sorted as ext4 keeps a block (index, length,
 * name). A name in no namespace ext4 has (the kernel refuses to set it, and containerd unpacks the
 * layer without it) is left out and pushed to `skipped`.
 */
export function xattrEntries(xattrs: Map<string, Buffer>, skipped: string[] = []): XattrEntry[] {
  const out: XattrEntry[] = [];
  for (const [full, raw] of xattrs) {
    const p = PREFIXES.find(([prefix]) => full.startsWith(prefix));
    if (!p || ((p[1] === 2 || p[1] === 3) && full !== p[0])) {
      skipped.push(full);
      continue;
    }
    const [prefix, index] = p;
    const name = encodeName(full.slice(prefix.length));
    if (name.length > 255) throw new Ext4LimitError(`extended attribute name longer than 255 bytes: ${printableName(full.slice(0, 64))}…`);
    const value = index === 2 || index === 3 ? toExt4Acl(raw) : raw;
    out.push({ index, name, value, hash: entryHash(name, value) });
  }
  out.sort((a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name));
  return out;
}

/** Bytes after i_extra_isize for a 256-byte inode with i_extra_isize 32: the ibody header and its area. */
export const IBODY_SPACE = 256 - 128 - 32;

/** Splits entries between the inode body and a block; throws when the block cannot hold the rest. */
export function splitXattrs(entries: XattrEntry[], blockSize: number): { inline: XattrEntry[]; block: XattrEntry[] } {
  const inline: XattrEntry[] = [];
  const block: XattrEntry[] = [];
  // Area after the 4-byte magic: entries, a 4-byte terminator, then values.
  let used = 4;
  for (const e of entries) {
    const need = entrySize(e) + valueSize(e);
    if (block.length === 0 && 4 + used + need <= IBODY_SPACE) {
      inline.push(e);
      used += need;
    } else block.push(e);
  }
  if (block.length > 0) {
    const need = BLOCK_HEADER + 4 + block.reduce((s, e) => s + entrySize(e) + valueSize(e), 0);
    if (need > blockSize) throw new Ext4LimitError(`extended attributes too large for one ${blockSize}-byte block (${need} bytes)`);
  }
  return { inline, block };
}

/** Writes entries + terminator at `start`, values downward from `end`; offsets relative to `base`. */
function writeEntries(buf: Buffer, entries: XattrEntry[], start: number, end: number, base: number): void {
  let pos = start;
  let vend = end;
  for (const e of entries) {
    let voff = 0;
    if (e.value.length > 0) {
      vend -= valueSize(e);
      e.value.copy(buf, vend);
      voff = vend - base;
    }
    buf.writeUInt8(e.name.length, pos);
    buf.writeUInt8(e.index, pos + 1);
    buf.writeUInt16LE(voff, pos + 2);
    buf.writeUInt32LE(0, pos + 4);
    buf.writeUInt32LE(e.value.length, pos + 8);
    buf.writeUInt32LE(e.hash, pos + 12);
    e.name.copy(buf, pos + ENTRY_HEADER);
    pos += entrySize(e);
  }
  if (pos + 4 > vend) throw new Error('extended attributes overlap their values');
  buf.writeUInt32LE(0, pos);
}

/** The in-inode area: `inode` is the 256-byte inode, written at its offset 160. */
export function writeIbodyXattrs(inode: Buffer, entries: XattrEntry[]): void {
  if (entries.length === 0) return;
  const at = 128 + 32;
  inode.writeUInt32LE(XATTR_MAGIC, at);
  writeEntries(inode, entries, at + 4, inode.length, at + 4);
}

export function xattrBlock(entries: XattrEntry[], blockSize: number): Buffer {
  const buf = Buffer.alloc(blockSize);
  buf.writeUInt32LE(XATTR_MAGIC, 0);
  buf.writeUInt32LE(1, 4); // h_refcount
  buf.writeUInt32LE(1, 8); // h_blocks
  buf.writeUInt32LE(blockHash(entries), 12);
  writeEntries(buf, entries, BLOCK_HEADER, blockSize, 0);
  return buf;
}
