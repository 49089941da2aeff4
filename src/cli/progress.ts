// Per-layer pull progress on stderr: bytes, total and rate, redrawn in place. Only on a TTY and
// never with --quiet: a pipe or a CI log gets nothing of it.
import type { Descriptor } from '../image/descriptor.ts';
import type { PullProgress } from '../image/pull.ts';
import { humanSize, shortDigest } from './format.ts';

interface Row {
  layer: Descriptor;
  bytes: number;
  state: 'waiting' | 'pulling' | 'done' | 'cached';
  started: number;
  finished: number;
}

export function pullProgressFor(stream: NodeJS.WriteStream, enabled: boolean): PullProgress | undefined {
  if (!enabled || !stream.isTTY) return undefined;
  const rows = new Map<string, Row>();
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;

  const line = (r: Row): string => {
    const total = humanSize(r.layer.size);
    switch (r.state) {
      case 'waiting':
        return `${shortDigest(r.layer.digest)}  waiting   ${total}`;
      case 'cached':
        return `${shortDigest(r.layer.digest)}  cached    ${total}`;
      case 'done': {
        const secs = Math.max(0.001, (r.finished - r.started) / 1000);
        return `${shortDigest(r.layer.digest)}  done      ${total}  ${humanSize(r.layer.size / secs)}/s`;
      }
      case 'pulling': {
        const secs = Math.max(0.001, (Date.now() - r.started) / 1000);
        const pct = r.layer.size ? Math.floor((100 * r.bytes) / r.layer.size) : 0;
        return `${shortDigest(r.layer.digest)}  ${String(pct).padStart(3)}%      ${humanSize(r.bytes)} / ${total}  ${humanSize(r.bytes / secs)}/s`;
      }
    }
  };
  const draw = () => {
    const width = stream.columns || 100;
    let out = drawn ? `\x1b[${drawn}A` : '';
    for (const r of rows.values()) out += '\x1b[2K' + line(r).slice(0, width - 1) + '\n';
    drawn = rows.size;
    stream.write(out);
  };
  return {
    begin(layers) {
      for (const l of layers) rows.set(l.digest, { layer: l, bytes: 0, state: 'waiting', started: 0, finished: 0 });
      draw();
      timer = setInterval(draw, 150);
      timer.unref();
    },
    bytes(layer, n) {
      const r = rows.get(layer.digest);
      if (!r) return;
      if (r.state === 'waiting') {
        r.state = 'pulling';
        r.started = Date.now();
      }
      r.bytes += n;
    },
    done(layer, fromCache) {
      const r = rows.get(layer.digest);
      if (!r) return;
      r.state = fromCache ? 'cached' : 'done';
      r.finished = Date.now();
      if (!r.started) r.started = r.finished;
    },
    end() {
      if (timer) clearInterval(timer);
      draw();
    },
  };
}
