// Stands in for the `string-width` package (yargs and cliui use it to lay out --help): the real one
// builds an Intl.Segmenter and Unicode-property regexes when it is imported, ~70 ms of every start
// of imgx, though only help and usage errors ever measure a string. This module loads the real
// one (whose URL start-up-hooks.ts passes in the query string) on the first call instead.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

type StringWidth = (input: string, options?: object) => number;

const realUrl = new URL(import.meta.url).searchParams.get('real');
let real: StringWidth | undefined;

export default function stringWidth(input: string, options?: object): number {
  if (!real) {
    if (!realUrl) throw new Error('lazy-string-width: loaded without the real module URL');
    real = (createRequire(import.meta.url)(fileURLToPath(realUrl)) as { default: StringWidth }).default;
  }
  return real(input, options);
}
