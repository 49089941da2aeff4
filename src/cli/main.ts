// The command line: global options, the commands, and the one place where errors become a
// one-line message and an exit status (see exit-codes.ts).
import type { Options } from 'yargs';
import { isImgxError } from '../errors.ts';
import { EXIT_INTERNAL, EXIT_STATUS } from './exit-codes.ts';
import { splitRunArgv } from './run-argv.ts';
import { GLOBAL_OPTIONS, parseRunFast } from './run-options.ts';

const USAGE_STATUS = EXIT_STATUS.IMGX_USAGE;

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  let usageError: string | undefined;
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
    .fail((msg, err) => {
      if (err) throw err;
      usageError = msg;
    });
  try {
    await cli.parseAsync();
  } catch (e) {
    return reportError(e, debug);
  }
  if (usageError !== undefined) {
    process.stderr.write(`imgx: ${usageError.split('\n')[0]} (see imgx --help)\n`);
    return USAGE_STATUS;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}

function reportError(e: unknown, debug: boolean): number {
  if (isImgxError(e)) {
    process.stderr.write(`imgx: ${oneLine(e.message)}\n`);
    if (debug) process.stderr.write(`${e.code}\n${e.stack ?? ''}\n`);
    return EXIT_STATUS[e.code] ?? EXIT_INTERNAL;
  }
  const err = e as Error;
  process.stderr.write(`imgx: internal error: ${oneLine(err?.message ?? String(e))}${debug ? '' : ' (run with --debug for details)'}\n`);
  if (debug) process.stderr.write(`${err?.stack ?? ''}\n`);
  return EXIT_INTERNAL;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}
