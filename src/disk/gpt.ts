// GUID partition table (UEFI spec 2.10, chapter 5.3): the primary header at LBA 1 with 128 entries of
// 128 bytes at LBA 2..33, and the backup copy at the end of the disk (entries at LBA N-33..N-2, header
// at LBA N-1). Each header carries the CRC32 of its own 92 bytes and of the entry array.
import { crc32 } from './crc32.ts';
import { encodeGuid } from './guid.ts';
import type { DiskLayout } from './layout.ts';
import { GPT_ENTRY_COUNT, GPT_ENTRY_SECTORS, GPT_ENTRY_SIZE, SECTOR_SIZE } from './layout.ts';

export const GPT_SIGNATURE = 'EFI PART';
export const GPT_REVISION = 0x00010000;
export const GPT_HEADER_SIZE = 92;
/** UTF-16 code units in a partition name. */
export const GPT_NAME_UNITS = 36;

export interface GptEntry {
  typeGuid: string;
  guid: string;
  firstLba: number;
  lastLba: number;
  /** Attribute bits (bit 0 required, bit 1 no block-IO protocol, bit 2 legacy BIOS bootable). */
  attributes?: bigint;
  name: string;
}

/** One 128-byte partition entry. */
export function encodeGptEntry(e: GptEntry): Buffer {
  const b = Buffer.alloc(GPT_ENTRY_SIZE);
  encodeGuid(e.typeGuid).copy(b, 0);
  encodeGuid(e.guid).copy(b, 16);
  b.writeBigUInt64LE(BigInt(e.firstLba), 32);
  b.writeBigUInt64LE(BigInt(e.lastLba), 40);
  b.writeBigUInt64LE(e.attributes ?? 0n, 48);
  const name = Buffer.from(e.name, 'utf16le');
  if (name.length > GPT_NAME_UNITS * 2) throw new RangeError(`GPT partition name longer than ${GPT_NAME_UNITS} UTF-16 units: ${e.name}`);
  name.copy(b, 56);
  return b;
}

/** The whole entry array (128 × 128 bytes), unused entries zero. */
export function encodeGptEntries(entries: GptEntry[]): Buffer {
  if (entries.length > GPT_ENTRY_COUNT) throw new RangeError(`at most ${GPT_ENTRY_COUNT} GPT entries`);
  const b = Buffer.alloc(GPT_ENTRY_COUNT * GPT_ENTRY_SIZE);
  entries.forEach((e, i) => encodeGptEntry(e).copy(b, i * GPT_ENTRY_SIZE));
  return b;
}

export interface GptHeaderFields {
  myLba: number;
  alternateLba: number;
  firstUsableLba: number;
  lastUsableLba: number;
  diskGuid: string;
  entriesLba: number;
  entriesCrc32: number;
}

/** One 512-byte header sector (92 bytes of header, the rest zero), its CRC32 filled in. */
export function encodeGptHeader(h: GptHeaderFields): Buffer {
  const b = Buffer.alloc(SECTOR_SIZE);
  b.write(GPT_SIGNATURE, 0, 'latin1');
  b.writeUInt32LE(GPT_REVISION, 8);
  b.writeUInt32LE(GPT_HEADER_SIZE, 12);
  // 16: header CRC32, computed below with the field zero; 20: reserved, zero.
  b.writeBigUInt64LE(BigInt(h.myLba), 24);
  b.writeBigUInt64LE(BigInt(h.alternateLba), 32);
  b.writeBigUInt64LE(BigInt(h.firstUsableLba), 40);
  b.writeBigUInt64LE(BigInt(h.lastUsableLba), 48);
  encodeGuid(h.diskGuid).copy(b, 56);
  b.writeBigUInt64LE(BigInt(h.entriesLba), 72);
  b.writeUInt32LE(GPT_ENTRY_COUNT, 80);
  b.writeUInt32LE(GPT_ENTRY_SIZE, 84);
  b.writeUInt32LE(h.entriesCrc32 >>> 0, 88);
  b.writeUInt32LE(crc32(b.subarray(0, GPT_HEADER_SIZE)), 16);
  return b;
}

export interface EncodedGpt {
  /** LBA 0: boot code area zero (see mbr.ts for the ranges a boot loader may overwrite). */
  protectiveMbr: Buffer;
  /** LBA 1. */
  primaryHeader: Buffer;
  /** The entry array, written at LBA 2 and again at LBA N-33. */
  entries: Buffer;
  /** LBA N-1. */
  backupHeader: Buffer;
  primaryEntriesLba: number;
  backupEntriesLba: number;
  backupHeaderLba: number;
}

/** Encodes the GPT structures of a layout planned with table 'gpt'. */
export function encodeGpt(layout: DiskLayout, protectiveMbr: Buffer): EncodedGpt {
  if (layout.table !== 'gpt') throw new RangeError('encodeGpt needs a layout with table "gpt"');
  const entries = encodeGptEntries(layout.partitions.map((p) => ({ typeGuid: p.typeGuid, guid: p.guid, firstLba: p.firstLba, lastLba: p.lastLba, name: p.name })));
  const entriesCrc32 = crc32(entries);
  const backupHeaderLba = layout.sectors - 1;
  const backupEntriesLba = backupHeaderLba - GPT_ENTRY_SECTORS;
  const common = { firstUsableLba: layout.firstUsableLba, lastUsableLba: layout.lastUsableLba, diskGuid: layout.diskGuid, entriesCrc32 };
  return {
    protectiveMbr,
    primaryHeader: encodeGptHeader({ ...common, myLba: 1, alternateLba: backupHeaderLba, entriesLba: 2 }),
    entries,
    backupHeader: encodeGptHeader({ ...common, myLba: backupHeaderLba, alternateLba: 1, entriesLba: backupEntriesLba }),
    primaryEntriesLba: 2,
    backupEntriesLba,
    backupHeaderLba,
  };
}
