// The command line: global options, the commands, and the one place where errors become a
// one-line message and an exit status (see exit-codes.ts).
import type { Options } from 'yargs';
import { isImgxError } from '../errors.ts';
import { escapedIoError } from '../io-errors.ts';
import { safeText } from '../util/terminal-text.ts';
import { EXIT_INTERNAL, EXIT_STATUS } from './exit-codes.ts';
import { splitRunArgv } from './run-argv.ts';
import { GLOBAL_OPTIONS, parseRunFast } from './run-options.ts';

const USAGE_STATUS = EXIT_STATUS.IMGX_USAGE;

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const run = splitRunArgv(argv);
  // A plain `imgx run` line skips yargs altogether (start-up is what a run check pays most).
  const fast = parseRunFast(run.argv);
  if (fast) {
    try {
      const { runHandler } = await import('./commands/run.ts');
      await runHandler(fast as never, run.command);
    } catch (e) {
      return reportError(e, debug);
    }
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  }
  const [{ default: yargs }, c] = await Promise.all([import('yargs'), import('./commands/all.ts')]);
  let suggestion: string | undefined;
  let cli = yargs(run.argv)
    .scriptName('imgx')
    .usage('imgx <command> [options]\n\nDaemonless container images: pull, inspect, flatten, run, and make bootable disks.');
  for (const o of GLOBAL_OPTIONS) {
    const opt: Options = { type: o.type, global: true, describe: o.describe, ...(o.alias ? { alias: o.alias } : {}) };
    cli = cli.option(o.name, opt) as typeof cli;
  }
  cli = cli
    .command(c.pullCommand)
    .command(c.inspectCommand)
    .command(c.manifestCommand)
    .command(c.configCommand)
    .command(c.digestCommand)
    .command(c.tagsCommand)
    .command(c.loginCommand)
    .command(c.logoutCommand)
    .command(c.cacheCommand)
    .command(c.extractCommand)
    .command(c.exportCommand)
    .command(c.lsCommand)
    .command(c.catCommand)
    .command(c.layersCommand)
    .command(c.diffCommand)
    .command(c.runCommand(run.command))
    .command(c.toDiskCommand)
    .command(c.bootCommand)
    .demandCommand(1, 'name a command; see imgx --help')
    .strict()
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    // Thrown, not recorded: yargs goes on to run the command after a failed validation when the
    // failure handler returns (an unknown option or a missing argument ran the command anyway).
    // The one exception is the suggestion for a mistyped command, which strict mode's own
    // failure follows: it is kept for that message.
    .fail((msg, err) => {
      if (err) throw err;
      if (suggestion === undefined && msg.startsWith('Did you mean ')) {
        suggestion = msg;
        return;
      }
      throw new UsageFailure(suggestion ? `${msg} (${suggestion.replace(/^D/, 'd')})` : msg);
    });
  // yargs lays out the whole help text before it runs a command, to show it should the command
  // fail; imgx never shows it then (errors are one line), and the layout loads string-width
  // (~60 ms of every command's start; lazy-string-width.ts).
  (cli as unknown as YargsInternals).getInternalMethods().getUsageInstance().cacheHelpMessage = () => {};
  try {
    await cli.parseAsync();
    if (suggestion !== undefined) throw new UsageFailure(suggestion);
  } catch (e) {
    if (e instanceof UsageFailure) {
      process.stderr.write(`imgx: ${e.message.split('\n')[0]} (see imgx --help)\n`);
      return USAGE_STATUS;
    }
    return reportError(e, debug);
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

/** yargs' own message for a command line it rejects. */
class UsageFailure extends Error {}

/** The part of yargs' internals that main() reaches into (pinned by the lockfile; a test checks it still holds). */
interface YargsInternals {
  getInternalMethods(): { getUsageInstance(): { cacheHelpMessage(): void } };
}

export function reportError(e: unknown, debug: boolean): number {
  // A full disk, a read-only filesystem … that no write path mapped is still exit 11, not a bug.
  e = escapedIoError(e) ?? e;
  if (isImgxError(e)) {
    process.stderr.write(`imgx: ${oneLine(e.message)}\n`);
    if (debug) {
      process.stderr.write(`${e.code}\n${e.stack ?? ''}\n`);
      const cause = e.cause as Error | undefined;
      if (cause?.stack) process.stderr.write(`caused by: ${cause.stack}\n`);
    }
    return EXIT_STATUS[e.code] ?? EXIT_INTERNAL;
  }
  const err = e as Error;
  process.stderr.write(`imgx: internal error: ${oneLine(err?.message ?? String(e))}${debug ? '' : ' (run with --debug for details)'}\n`);
  if (debug) process.stderr.write(`${err?.stack ?? ''}\n`);
  return EXIT_INTERNAL;
}

/**
 * The message on one line, safe for a terminal: messages quote names from layers and text from
 * registries, which the code that made them should already have made printable; this is the last
 * net (escape sequences and control characters removed, a runaway message cut).
 */
function oneLine(s: string): string {
  return safeText(s.replace(/\s*\n\s*/g, ' '), 2000);
}
