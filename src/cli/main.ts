// The command line: global options, the commands, and the one place where errors become a
// one-line message and an exit status (see exit-codes.ts).
import yargs from 'yargs';
import { isImgxError } from '../errors.ts';
import { cacheCommand } from './commands/cache.ts';
import { catCommand } from './commands/cat.ts';
import { diffCommand } from './commands/diff.ts';
import { exportCommand } from './commands/export.ts';
import { extractCommand } from './commands/extract.ts';
import { inspectCommand } from './commands/inspect.ts';
import { layersCommand } from './commands/layers.ts';
import { loginCommand, logoutCommand } from './commands/login.ts';
import { lsCommand } from './commands/ls.ts';
import { pullCommand } from './commands/pull.ts';
import { runCommand } from './commands/run.ts';
import { configCommand, digestCommand, manifestCommand } from './commands/raw.ts';
import { tagsCommand } from './commands/tags.ts';
import { EXIT_INTERNAL, EXIT_STATUS } from './exit-codes.ts';
import { splitRunArgv } from './run-argv.ts';

const USAGE_STATUS = EXIT_STATUS.IMGX_USAGE;

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  let usageError: string | undefined;
  const run = splitRunArgv(argv);
  const cli = yargs(run.argv)
    .scriptName('imgx')
    .usage('imgx <command> [options]\n\nDaemonless container images: pull, inspect, flatten, run, and make bootable disks.')
    .option('platform', { type: 'string', global: true, describe: 'os/arch[/variant] to pick from an index (default: the host)' })
    .option('plain-http', { type: 'boolean', global: true, describe: 'talk HTTP, not HTTPS, to the registry' })
    .option('insecure', { type: 'boolean', global: true, describe: 'do not verify the registry TLS certificate' })
    .option('cache-dir', { type: 'string', global: true, describe: 'blob cache (default: $IMGX_CACHE or ~/.cache/imgx)' })
    .option('json', { type: 'boolean', global: true, describe: 'machine-readable output on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', global: true, describe: 'no progress or informational output' })
    .option('debug', { type: 'boolean', global: true, describe: 'log requests; stack traces on errors' })
    .option('strict', { type: 'boolean', global: true, describe: 'treat warnings about layer contents as errors' })
    .command(pullCommand)
    .command(inspectCommand)
    .command(manifestCommand)
    .command(configCommand)
    .command(digestCommand)
    .command(tagsCommand)
    .command(loginCommand)
    .command(logoutCommand)
    .command(cacheCommand)
    .command(extractCommand)
    .command(exportCommand)
    .command(lsCommand)
    .command(catCommand)
    .command(layersCommand)
    .command(diffCommand)
    .command(runCommand(run.command))
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
