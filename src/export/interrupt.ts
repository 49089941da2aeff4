// SIGINT/SIGTERM during a long write: run the cleanup (remove the half-built output), then let the
// signal do what it would have done. A second signal while cleaning up exits at once.
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
const SIGNAL_NUMBER: Record<(typeof SIGNALS)[number], number> = { SIGINT: 2, SIGTERM: 15 };

/** Installs the handlers; returns the function that removes them. */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  let running = false;
  const handler = (sig: (typeof SIGNALS)[number]) => {
    if (running) process.exit(128 + SIGNAL_NUMBER[sig]);
    running = true;
    void cleanup()
      .catch(() => {})
      .finally(() => {
        unhook();
        // Nobody else handles it: re-raise, so the process ends by the signal as it would have.
        if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      });
  };
  const unhook = () => {
    for (const s of SIGNALS) process.off(s, handler);
  };
  for (const s of SIGNALS) process.on(s, handler);
  return unhook;
}
