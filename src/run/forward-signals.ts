// While a container runs, imgx is only its parent: the signals a user or a CI runner sends to imgx
// go on to the runtime (which passes them to the container), and imgx waits for the exit status.
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;

/** Forwards signals to `child` until it exits; resolves with its status (128+N for signal N). */
export function waitForwardingSignals(child: ChildProcess): Promise<number> {
  const handler = (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  for (const s of FORWARDED) process.on(s, handler);
  return new Promise<number>((resolve, reject) => {
    const done = () => {
      for (const s of FORWARDED) process.off(s, handler);
    };
    child.once('error', (e) => {
      done();
      reject(e);
    });
    child.once('exit', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}
