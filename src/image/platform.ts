// Platforms: parsing `os/arch[/variant]`, normalising architecture names as containerd does,
// the host's platform, and choosing a manifest from an index.
import { PlatformError, UsageError } from '../errors.ts';
import { safeText } from '../util/terminal-text.ts';
import type { Descriptor, Platform } from './descriptor.ts';

export interface PlatformSpec {
  os: string;
  architecture: string;
  variant?: string;
}

/** Architecture aliases people and images use, mapped to the OCI/Go names. */
function normaliseArch(arch: string, variant: string | undefined): { architecture: string; variant?: string } {
  const a = arch.toLowerCase();
  switch (a) {
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return variant && variant !== 'v1' ? { architecture: 'amd64', variant } : { architecture: 'amd64' };
    case 'aarch64':
    case 'arm64':
      // arm64 defaults to v8; an explicit v8 is the same platform.
      return variant && variant !== 'v8' ? { architecture: 'arm64', variant } : { architecture: 'arm64' };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v6' };
    case 'arm':
      return { architecture: 'arm', variant: variant ?? 'v7' };
    case 'i386':
    case 'i686':
    case '386':
      return { architecture: '386' };
    default:
      return variant ? { architecture: a, variant } : { architecture: a };
  }
}

export function normalisePlatform(p: { os: string; architecture: string; variant?: string | undefined }): PlatformSpec {
  return { os: p.os.toLowerCase(), ...normaliseArch(p.architecture, p.variant || undefined) };
}

export function parsePlatform(s: string): PlatformSpec {
  const parts = s.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[A-Za-z0-9_.-]+$/.test(p))) {
    throw new UsageError(`invalid platform ${JSON.stringify(s)}: expected os/arch[/variant], e.g. linux/arm64`);
  }
  return normalisePlatform({ os: parts[0]!, architecture: parts[1]!, variant: parts[2] });
}

export function hostPlatform(): PlatformSpec {
  const archMap: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const arch = archMap[process.arch] ?? process.arch;
  return normalisePlatform({ os: 'linux', architecture: arch, variant: arch === "arm" ? `v${String((process.config.variables as Record<string, unknown>).arm_version ?? 7)}` : undefined });
}

/** `os/arch[/variant]`; the parts come from images, so each is made safe to print (safeText). */
export function formatPlatform(p: { os: string; architecture: string; variant?: string | undefined }): string {
  return [p.os, p.architecture, p.variant]
    .filter(Boolean)
    .map((s) => safeText(s!, 64))
    .join('/');
}

/** At most this many platforms are listed in a message. */
const LISTED_PLATFORMS = 20;

/** The distinct platforms of `list` for a message: the first 20, then how many more. */
export function listPlatforms(list: string[]): string {
  const distinct = [...new Set(list)];
  if (distinct.length === 0) return 'none';
  const shown = distinct.slice(0, LISTED_PLATFORMS).join(', ');
  return distinct.length > LISTED_PLATFORMS ? `${shown} and ${distinct.length - LISTED_PLATFORMS} more` : shown;
}

export function platformMatches(want: PlatformSpec, have: Platform): boolean {
  const h = normalisePlatform(have);
  if (h.os !== want.os || h.architecture !== want.architecture) return false;
  // A wanted variant must match exactly; with no variant wanted, any variant of the arch will do.
  return want.variant === undefined || h.variant === want.variant;
}

/**
 * The manifest of an index for a platform. Attestation manifests (platform unknown/unknown) never
 * match. With no exact variant match, an arm image falls back to the highest variant not above
 * the wanted one, as containerd does.
 */
export function selectManifest(manifests: Descriptor[], want: PlatformSpec, what: string): Descriptor {
  const candidates = manifests.filter((m) => m.platform && m.platform.os !== 'unknown');
  const exact = candidates.find((m) => platformMatches(want, m.platform!));
  if (exact) return exact;
  if (want.variant && want.architecture === 'arm') {
    const wantV = Number(want.variant.slice(1));
    const lower = candidates
      .filter((m) => platformMatches({ os: want.os, architecture: 'arm' }, m.platform!))
      .map((m) => ({ m, v: Number((normalisePlatform(m.platform!).variant ?? 'v7').slice(1)) }))
      .filter((x) => x.v <= wantV)
      .sort((a, b) => b.v - a.v);
    if (lower[0]) return lower[0].m;
  }
  const available = candidates.map((m) => formatPlatform(normalisePlatform(m.platform!)));
  const unnamed = manifests.filter((m) => !m.platform).length;
  throw new PlatformError(
    `${what}: no image for platform ${formatPlatform(want)}; available: ${listPlatforms(available)}` +
      (unnamed ? ` (${unnamed} ${unnamed === 1 ? 'entry names' : 'entries name'} no platform)` : ''),
    [...new Set(available)],
  );
}
