// How the benches start imgx: exactly as bin/imgx.js's shebang does (its environment settings and
// Node flags, read from that line), with the repository's Node 24, so a bench measures what users run.
import { readFileSync } from 'node:fs';
import { IMGX_BIN, NODE_BIN } from '../../test/helpers/imgx.ts';

function parseShebang(): { env: Record<string, string>; nodeArgs: string[] } {
  const first = readFileSync(IMGX_BIN, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S (.*)$/.exec(first);
  if (!m) throw new Error(`${IMGX_BIN}: unexpected shebang ${first}`);
  const words = m[1]!.trim().split(/\s+/);
  const env: Record<string, string> = {};
  let i = 0;
  for (; i < words.length && /^[A-Z_][A-Z0-9_]*=/.test(words[i]!); i++) {
    const [k, ...v] = words[i]!.split('=');
    env[k!] = v.join('=');
  }
  if (words[i] !== 'node') throw new Error(`${IMGX_BIN}: the shebang does not run node: ${first}`);
  return { env, nodeArgs: words.slice(i + 1) };
}

const launch = parseShebang();

/** The command line for `imgx ARGS…` and the environment to add to the caller's. */
export function imgxCommand(args: string[]): { cmd: string; args: string[]; env: Record<string, string> } {
  return { cmd: NODE_BIN, args: [...launch.nodeArgs, IMGX_BIN, ...args], env: launch.env };
}

/** Node's bare start-up under the same settings (`node -e 0`). */
export function nodeBareCommand(): { cmd: string; args: string[]; env: Record<string, string> } {
  return { cmd: NODE_BIN, args: [...launch.nodeArgs, '-e', '0'], env: launch.env };
}
