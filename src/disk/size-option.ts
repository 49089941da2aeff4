// `--size`: `auto` (the default), a size (`4G`, `4GiB`, `1536M`, `2147483648`), or `+SIZE` (the
// computed minimum plus that much). Units are binary, as qemu-img and truncate read them.
import { UsageError } from '../errors.ts';

export type SizeOption = { kind: 'auto' } | { kind: 'exact'; bytes: number } | { kind: 'extra'; bytes: number };

const UNITS: Record<string, number> = { '': 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

export function parseSizeOption(text: string): SizeOption {
  const t = text.trim();
  if (t === '' || t === 'auto') return { kind: 'auto' };
  const m = /^(\+?)(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(t);
  if (!m) throw new UsageError(`--size: "${text}" is not auto, a size like 4G or 1536M, or +SIZE`);
  const bytes = Math.round(Number(m[2]) * UNITS[m[3]!.toUpperCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`--size: "${text}" is not a usable size`);
  return m[1] ? { kind: 'extra', bytes } : { kind: 'exact', bytes: Math.ceil(bytes / 512) * 512 };
}
