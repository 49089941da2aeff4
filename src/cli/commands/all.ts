// Every yargs command, in the order `imgx --help` lists them. Loaded only when yargs parses the line
// (the `imgx run` fast path in main.ts needs none of them).
export { pullCommand } from './pull.ts';
export { inspectCommand } from './inspect.ts';
export { configCommand, digestCommand, manifestCommand } from './raw.ts';
export { tagsCommand } from './tags.ts';
export { loginCommand, logoutCommand } from './login.ts';
export { cacheCommand } from './cache.ts';
export { extractCommand } from './extract.ts';
export { exportCommand } from './export.ts';
export { lsCommand } from './ls.ts';
export { catCommand } from './cat.ts';
export { layersCommand } from './layers.ts';
export { diffCommand } from './diff.ts';
export { runCommand } from './run.ts';
export { toDiskCommand } from './to-disk.ts';
export { bootCommand } from './boot.ts';
