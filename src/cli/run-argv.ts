// `imgx run [OPTIONS] IMAGE [COMMAND [ARG…]]` as Docker reads it: every word after the image belongs
// to the command, dashes and numbers included (`imgx run debian sh -c 'exit 7'`), and `--` before the
// command is optional. yargs would take `-c` as an option and `7` as a number, so the command words
// are cut off here, before yargs sees the line.
import { VALUE_FLAGS } from './run-options.ts';

export interface SplitRunArgv {
  /** What yargs parses: everything up to and including the image. */
  argv: string[];
  /** The command words, verbatim; undefined when none were given (the image's Cmd applies). */
  command?: string[];
}

export function splitRunArgv(argv: readonly string[]): SplitRunArgv {
  let i = 0;
  let sawRun = false;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { argv: [...argv] };
    if (a.startsWith('-')) {
      if (VALUE_FLAGS.has(a)) i++;
      continue;
    }
    if (!sawRun) {
      if (a !== 'run') return { argv: [...argv] };
      sawRun = true;
      continue;
    }
    // The image: the rest is the command.
    let rest = argv.slice(i + 1);
    if (rest[0] === '--') rest = rest.slice(1);
    return { argv: argv.slice(0, i + 1), ...(rest.length ? { command: rest } : {}) };
  }
  return { argv: [...argv] };
}
