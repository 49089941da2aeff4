// Tests that need an outside tool (skopeo, docker-registry, runc …) skip with a message when it is
// missing; with IMGX_TEST_REQUIRE_ALL=1 (CI) a missing tool is a failure instead of a silent skip.
import { execFileSync } from 'node:child_process';
import type { Test } from 'uvu';

const REQUIRE_ALL = process.env.IMGX_TEST_REQUIRE_ALL === '1';

export function which(tool: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function missingTools(tools: string[]): string[] {
  return tools.filter((t) => !which(t));
}

/**
 * True when every tool is on PATH. Otherwise registers one test in `suite` that is skipped (locally)
 * or fails (CI), and returns false so the caller registers nothing else.
 */
export function requireTools(suite: Test, tools: string[]): boolean {
  const missing = missingTools(tools);
  if (missing.length === 0) return true;
  const msg = `needs ${missing.join(', ')} on PATH`;
  if (REQUIRE_ALL) {
    suite(`required tools present (${tools.join(', ')})`, () => {
      throw new Error(`${msg} (IMGX_TEST_REQUIRE_ALL=1)`);
    });
  } else {
    process.stdout.write(`SKIP: ${msg}\n`);
    suite.skip(`skipped: ${msg}`, () => {});
  }
  return false;
}

/** Root-only parts of a test: same rule as tools. */
export function requireRoot(suite: Test): boolean {
  if (process.getuid?.() === 0) return true;
  if (REQUIRE_ALL) {
    suite('runs as root', () => {
      throw new Error('needs root (IMGX_TEST_REQUIRE_ALL=1)');
    });
  } else {
    suite.skip('skipped: needs root', () => {});
  }
  return false;
}

/**
 * For optional parts of a test file: true when `tool` is on PATH. When it is missing, says so
 * (a skip) or, with IMGX_TEST_REQUIRE_ALL=1, throws so the whole file fails.
 */
export function haveTool(tool: string): boolean {
  if (which(tool)) return true;
  if (REQUIRE_ALL) throw new Error(`needs ${tool} on PATH (IMGX_TEST_REQUIRE_ALL=1)`);
  process.stdout.write(`SKIP: parts that need ${tool}\n`);
  return false;
}
