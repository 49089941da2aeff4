// Retry policy: a bounded budget of tries per operation, exponential backoff with jitter, and the
// server's Retry-After when it gives one. Blob resumes draw on the same budget as retries.
import { setTimeout as delay } from 'node:timers/promises';
import { abortError } from './errors.ts';
import type { ResolvedOptions } from './options.ts';

export class RetryBudget {
  /** Tries left after the current one. */
  remaining: number;
  private used = 0;
  private readonly base: number;
  private readonly max: number;

  constructor(options: Pick<ResolvedOptions, 'retries' | 'backoffMs' | 'maxDelayMs'>) {
    this.remaining = options.retries;
    this.base = options.backoffMs;
    this.max = options.maxDelayMs;
  }

  /** Takes one retry from the budget; false when it is spent. */
  take(): boolean {
    if (this.remaining <= 0) return false;
    this.remaining--;
    this.used++;
    return true;
  }

  /** Backoff before the retry just taken: base·2^(n-1), capped, with ±50 % jitter so clients spread out. */
  backoff(): number {
    const exp = Math.min(this.max, this.base * 2 ** Math.max(0, this.used - 1));
    return Math.round(exp * (0.5 + Math.random() * 0.5));
  }

  /** The server's Retry-After when present (capped), else our backoff. */
  delayFor(retryAfter: string | undefined, now = Date.now()): number {
    const ra = parseRetryAfter(retryAfter, now);
    return ra === undefined ? this.backoff() : Math.min(ra, this.max);
  }
}

/** Retry-After as delta-seconds or an HTTP-date, in ms from `now`; undefined when absent or garbled. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

/** Statuses that say "try again later" rather than "no". */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** Waits `ms`; an abort of `signal` meanwhile throws what abortError makes of it (never a bare AbortError). */
export async function sleep(ms: number, signal?: AbortSignal, what = 'request'): Promise<void> {
  if (ms <= 0) return;
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (e) {
    if (signal?.aborted) throw abortError(signal, what);
    throw e;
  }
}
