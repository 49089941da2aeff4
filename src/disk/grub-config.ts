// grub.cfg (on the root filesystem) and the early config built into core.img / BOOTX64.EFI, from
// templates/grub/. Values are checked before they are substituted: GRUB's script language would
// take a quote or a newline in them as syntax.
import { readFile } from 'node:fs/promises';
import { UsageError } from '../errors.ts';

const TEMPLATES = new URL('../../templates/grub/', import.meta.url);

export interface GrubMenu {
  title: string;
  rootUuid: string;
  /** Kernel and initramfs paths on the root filesystem (absolute). */
  kernel: string;
  initrd?: string;
  /** Extra kernel command line (--cmdline). */
  cmdline?: string;
  timeout?: number;
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    const v = values[k];
    if (v === undefined) throw new Error(`grub template: no value for ${k}`);
    return v;
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A path GRUB reads unquoted: no spaces, quotes, `$`, `;` or control characters. */
const SAFE_PATH = /^\/[A-Za-z0-9._+\-/]+$/;

export function checkCmdline(cmdline: string): void {
  if (/[\n\r'"\\$;{}]/.test(cmdline)) throw new UsageError(`--cmdline may not hold quotes, backslashes, $, ;, braces or newlines: ${JSON.stringify(cmdline)}`);
}

export async function renderGrubCfg(menu: GrubMenu): Promise<string> {
  if (!UUID.test(menu.rootUuid)) throw new Error(`not a filesystem UUID: ${menu.rootUuid}`);
  for (const p of [menu.kernel, menu.initrd]) if (p !== undefined && !SAFE_PATH.test(p)) throw new Error(`kernel path GRUB cannot read unquoted: ${p}`);
  const cmdline = menu.cmdline?.trim() ?? '';
  checkCmdline(cmdline);
  const template = await readFile(new URL('grub.cfg', TEMPLATES), 'utf8');
  return fill(template, {
    timeout: String(menu.timeout ?? 1),
    title: menu.title.replace(/[^A-Za-z0-9 ._+\-:()/]/g, ''),
    rootUuid: menu.rootUuid,
    kernel: menu.kernel,
    cmdline: cmdline ? ` ${cmdline}` : '',
    initrdLine: menu.initrd ? `\tinitrd ${menu.initrd}\n` : '',
  });
}

/**
 * The early config runs under GRUB's rescue parser, which knows no comments (an apostrophe in one
 * opens a quote that swallows the rest of the file): the template's comment lines are dropped.
 */
export async function renderEarlyCfg(rootUuid: string): Promise<string> {
  if (!UUID.test(rootUuid)) throw new Error(`not a filesystem UUID: ${rootUuid}`);
  const text = fill(await readFile(new URL('early.cfg', TEMPLATES), 'utf8'), { rootUuid });
  return text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'))
    .join('\n') + '\n';
}
