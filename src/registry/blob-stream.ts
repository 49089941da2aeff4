// A blob download that survives a cut connection: when the body fails mid-way it asks again with
// `Range: bytes=N-` (each resume drawing on the operation's retry budget) and carries on; a server
// that ignores Range and answers 200 has its first N bytes skipped. Bytes pass through VerifyStream,
// so the stream errors before 'end' unless size and digest match.
import { Readable } from 'node:stream';
import { RegistryError } from '../errors.ts';
import type { Descriptor } from '../image/descriptor.ts';
import { VerifyStream } from '../image/verify-stream.ts';
import { abortError, isRetryableNetworkError, networkError } from './errors.ts';
import type { RetryBudget } from './retry.ts';
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
          for await (const c of res.body as AsyncIterable<Buffer>) {
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
          await sleep(wait, signal);
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
