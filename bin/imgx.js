#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=65536 node --max-semi-space-size=2 --expose-gc
// Entry point. The shebang sets memory knobs that cannot be set once the process runs:
// - a small V8 young generation: layer streams allocate many 1 MiB buffers that die young, and
//   scavenging them sooner keeps extract's peak RSS ~40 MB lower at no measurable CPU cost;
// - a fixed glibc mmap threshold: by default it rises to 1 MiB after the first such buffer is
//   freed, and from then on those buffers are carved from the brk heap, which fragments and never
//   shrinks; fixed at 64 KiB, each buffer of a network read (64 KiB) or larger is mapped and
//   unmapped on its own (~40 MB less peak RSS on extract than the default);
// - `gc` exposed: when pass 1 has read the layers, the garbage of the scan is collected before the
//   tree is built (layers/image-tree.ts), which is when extract's memory peaks.
// The sources are TypeScript run through Node 24's built-in type stripping,
// so there is no build step; refuse older Node with a clear line instead of a syntax error.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `imgx: needs Node 24 or newer (this is ${process.version}); run it through npx in the checkout, which uses the bundled Node 24\n`,
  );
  process.exit(2);
}
// Cache the type-stripped, compiled modules between runs (in the OS temp dir): it takes start-up
// from about 0.8 s to 0.3 s.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../src/cli/start-up-hooks.ts');
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
