// Module hooks installed by bin/imgx.js before anything else loads: start-up time is what a CI
// pipeline running `imgx run … -- true` per check pays, so the dependencies that cost the most to
// import and are seldom used are loaded on first use instead (see lazy-string-width.ts).
import { registerHooks } from 'node:module';

const LAZY_STRING_WIDTH = new URL('./lazy-string-width.ts', import.meta.url).href;

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    // Each importer keeps its own version (cliui and yargs pin different majors).
    if (specifier === 'string-width' && !context.parentURL?.startsWith(LAZY_STRING_WIDTH)) {
      return { ...resolved, url: `${LAZY_STRING_WIDTH}?real=${encodeURIComponent(resolved.url)}`, format: 'module-typescript', shortCircuit: true };
    }
    return resolved;
  },
});
