// One request operation of the registry client — a manifest, a config, a page of tags, a token,
// /v2/ — under a total deadline that covers all its tries, with the tries a cut body needs: a body
// that fails after the headers (connection reset, premature close, fewer bytes than its
// Content-Length) is asked for again, like a blob is resumed, drawing on the same retry budget as
// the transport's own retries. Whatever goes wrong ends in a coded error: IMGX_TIMEOUT at the
// deadline, IMGX_UNREACHABLE/IMGX_TIMEOUT once the budget is spent.
import { ImgxError, NetworkError } from '../errors.ts';
import { abortError, isNetworkFailure, isRetryableNetworkError, networkError } from './errors.ts';
import type { ResolvedOptions } from './options.ts';
import { RetryBudget, sleep } from './retry.ts';

export interface Attempt {
  /** Aborted at the deadline (its reason an IMGX_TIMEOUT error) or when the caller's signal aborts. */
  signal: AbortSignal;
  /** Shared by every try of the operation: the transport's retries and the retries of cut bodies. */
  budget: RetryBudget;
  /** When the deadline falls, in Date.now() milliseconds. */
  deadline: number;
}

export interface OperationInit {
  options: ResolvedOptions;
  /** The object as shown in messages. */
  what: string;
  /** The host as shown in messages. */
  host: string;
  /** The caller's signal (an interrupt, a failed sibling download). */
  signal?: AbortSignal | undefined;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** The IMGX_TIMEOUT error of an operation that ran out of time. */
export function deadlineError(what: string, host: string, ms: number): NetworkError {
  return new NetworkError(
    'IMGX_TIMEOUT',
    `${what}: ${host} timed out: no complete answer within ${seconds(ms)} (the deadline for manifests, configs and tokens; --timeout sets it)`,
  );
}

/**
 * Runs `op` (a request and the reading of its body) until it succeeds, under a deadline of
 * `options.deadlineMs`. A body cut mid-transfer is retried with backoff while the budget and the
 * deadline allow; the errors `op` throws as ImgxError are final.
 */
export async function runOperation<T>(init: OperationInit, op: (attempt: Attempt) => Promise<T>): Promise<T> {
  const { options: o, what, host } = init;
  const ms = o.deadlineMs;
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(deadlineError(what, host, ms)), ms);
  const signal = init.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal;
  const deadline = Date.now() + ms;
  const budget = new RetryBudget(o);
  try {
    for (;;) {
      try {
        return await op({ signal, budget, deadline });
      } catch (err) {
        if (signal.aborted) throw abortError(signal, what);
        if (err instanceof ImgxError) throw err;
        // Not a failure of the network: a bug, shown as one.
        if (!isNetworkFailure(err)) throw err;
        if (!isRetryableNetworkError(err) || !budget.take()) throw networkError(err, host, what);
        const wait = budget.backoff();
        if (Date.now() + wait >= deadline) throw networkError(err, host, what);
        o.debug(`${what}: the answer was cut (${(err as Error).message}); retry in ${wait} ms (${budget.remaining} left)`);
        await sleep(wait, signal, what);
      }
    }
  } finally {
    clearTimeout(timer);
  }
}
