// A blob download that survives a cut connection: when the body fails mid-way it asks again with
// `Range: bytes=N-` (each resume drawing on the operation's retry budget) and carries on; a server
// that ignores Range and answers 200 has its first N bytes skipped. Bytes pass through VerifyStream,
// so the stream errors before 'end' unless size and digest match. An attempt that falls below the
// throughput floor (throughput.ts) fails like a cut one and is resumed the same way.
import { Readable } from 'node:stream';
import { RegistryError } from '../errors.ts';
import type { Descriptor } from '../image/descriptor.ts';
import { VerifyStream } from '../image/verify-stream.ts';
import { abortError, isRetryableNetworkError, networkError, SlowBodyError } from './errors.ts';
import type { ThroughputFloor } from './options.ts';
import type { RetryBudget } from './retry.ts';
import { describeFloor, ThroughputMeter } from './throughput.ts';
import { sleep } from './retry.ts';
import { header, type HttpResponse } from './transport.ts';

export interface ResumableBlobInit {
  desc: Descriptor;
  /** The first response (200), already checked. */
  first: HttpResponse;
  /** Asks again from `offset` (with Range); resolves to a 200 or 206 response, or throws the mapped error. */
  refetch: (offset: number) => Promise<HttpResponse>;
  budget: RetryBudget;
  what: string;
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal;
  debug?: (msg: string) => void;
  /** The minimum throughput of each attempt (none when absent). */
  floor?: ThroughputFloor;
}

/**
 * The chunks of one response's body, failing with SlowBodyError (by destroying the body) when the
 * attempt falls below `floor`. Checked every second or quarter window, whichever is shorter.
 */
async function* metered(body: HttpResponse['body'], floor: ThroughputFloor | undefined): AsyncGenerator<Buffer> {
  if (!floor || !ThroughputMeter.active(floor)) {
    yield* body as AsyncIterable<Buffer>;
    return;
  }
  const meter = new ThroughputMeter(floor);
  const timer = setInterval(() => {
    if (meter.tooSlow(Date.now())) body.destroy(new SlowBodyError(`fewer than ${describeFloor(floor)}, the minimum throughput for blobs`));
  }, Math.max(10, Math.min(1000, floor.windowMs / 4)));
  // The connection keeps the process alive while the download runs; the check alone must not.
  timer.unref();
  const it = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  try {
    for (;;) {
      meter.waiting(Date.now());
      const r = await it.next();
      meter.received(Date.now(), r.done ? 0 : r.value.length);
      if (r.done) return;
      yield r.value;
    }
  } finally {
    clearInterval(timer);
    try {
      await it.return?.();
    } catch {
      // the body failed already: its error is what the caller sees
    }
  }
}

/** Where a 206 starts: `bytes START-END/TOTAL`. */
function rangeStart(contentRange: string | undefined): number | undefined {
  const m = /^\s*bytes\s+(\d+)-\d+\/(?:\d+|\*)\s*$/i.exec(contentRange ?? '');
  return m ? Number(m[1]) : undefined;
}

export function resumableBlob(init: ResumableBlobInit): Readable {
  const { desc, budget, what, signal } = init;

  async function* chunks(): AsyncGenerator<Buffer> {
    let res: HttpResponse | undefined = init.first;
    let received = 0;
    try {
      for (;;) {
        // Bytes of this response that we already have: all of them before `received`.
        let skip = 0;
        if (received > 0) {
          if (res.status === 206) {
            const start = rangeStart(header(res.headers, 'content-range'));
            if (start === undefined || start > received) {
              throw new RegistryError('IMGX_REGISTRY_ERROR', `${what}: resumed download answered an unusable range`, 206);
            }
            skip = received - start;
          } else {
            skip = received;
          }
        }
        try {
          for await (const c of metered(res.body, init.floor)) {
            let chunk = c;
            if (skip > 0) {
              const n = Math.min(skip, chunk.length);
              skip -= n;
              chunk = chunk.subarray(n);
              if (chunk.length === 0) continue;
            }
            received += chunk.length;
            init.onProgress?.(chunk.length);
            yield chunk;
          }
          return;
        } catch (err) {
          if (signal?.aborted) throw abortError(signal, what);
          if (!isRetryableNetworkError(err)) throw networkError(err, res.url.host, what);
          // Past the declared size there is nothing left to resume: let VerifyStream judge.
          if (received >= desc.size || !budget.take()) throw networkError(err, res.url.host, what);
          const wait = budget.backoff();
          init.debug?.(`${what}: cut after ${received} bytes (${(err as Error).message}); resuming in ${wait} ms`);
          await sleep(wait, signal, what);
          res = undefined;
          res = await init.refetch(received);
        }
      }
    } finally {
      // The consumer stopped early (or we failed): release the connection.
      if (res && !res.body.destroyed) res.body.destroy();
    }
  }

  const source = Readable.from(chunks(), { objectMode: false });
  const verify = new VerifyStream(desc, what);
  source.on('error', (e) => verify.destroy(e));
  verify.on('close', () => {
    if (!source.destroyed) source.destroy();
  });
  source.pipe(verify);
  return verify;
}
