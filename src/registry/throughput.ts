// The minimum throughput of a blob download: an attempt that receives fewer than `bytes` in any
// window of `windowMs` fails (and is resumed, drawing on the retry budget). Blobs have no total
// deadline — a large layer on a slow link may rightly take an hour — but a registry that drips
// a byte now and then must not hold a pull for ever, and the idle timeout alone never fires
// while bytes keep coming.
//
// The clock runs only while the download waits for the network: time the consumer spends with
// a chunk (writing it, inflating it) is not the registry's fault, so it does not count.

import type { ThroughputFloor } from './options.ts';

export class ThroughputMeter {
  private readonly floor: ThroughputFloor;
  /** Network time spent in earlier waits (ms). */
  private waited = 0;
  /** Start of the current wait, if the download is waiting now. */
  private waitingSince: number | undefined;
  /** Arrivals inside the window: network time of arrival and bytes, oldest first. */
  private readonly arrivals: { t: number; n: number }[] = [];
  private head = 0;
  private inWindow = 0;

  constructor(floor: ThroughputFloor) {
    this.floor = floor;
  }

  /** Whether the floor can ever trip (`0/N` turns it off). */
  static active(floor: ThroughputFloor): boolean {
    return floor.bytes > 0 && floor.windowMs > 0;
  }

  /** The download starts waiting for its next chunk. */
  waiting(now: number): void {
    this.waitingSince ??= now;
  }

  /** A chunk of `n` bytes arrived (or the body ended, n = 0): the wait is over. */
  received(now: number, n: number): void {
    this.waited = this.networkTime(now);
    this.waitingSince = undefined;
    if (n > 0) {
      // Arrivals close together share one entry, so the list stays short at any rate.
      const last = this.arrivals[this.arrivals.length - 1];
      if (last && this.arrivals.length > this.head && this.waited - last.t < this.floor.windowMs / 64) last.n += n;
      else this.arrivals.push({ t: this.waited, n });
      this.inWindow += n;
    }
    this.prune(this.waited);
  }

  /** Drops the arrivals that left the window ending at network time `t`. */
  private prune(t: number): void {
    const from = t - this.floor.windowMs;
    while (this.head < this.arrivals.length && this.arrivals[this.head]!.t <= from) {
      this.inWindow -= this.arrivals[this.head]!.n;
      this.head++;
    }
    if (this.head > 64 && this.head * 2 > this.arrivals.length) {
      this.arrivals.splice(0, this.head);
      this.head = 0;
    }
  }

  private networkTime(now: number): number {
    return this.waited + (this.waitingSince === undefined ? 0 : Math.max(0, now - this.waitingSince));
  }

  /** True once a whole window of network time has passed with fewer bytes than the floor in it. */
  tooSlow(now: number): boolean {
    const t = this.networkTime(now);
    if (t < this.floor.windowMs) return false;
    this.prune(t);
    return this.inWindow < this.floor.bytes;
  }
}

/** `floor` as people read it: `64 KiB in 30 s`. */
export function describeFloor(floor: ThroughputFloor): string {
  const kib = floor.bytes / 1024;
  return `${Number.isInteger(kib) ? kib : kib.toFixed(1)} KiB in ${Number((floor.windowMs / 1000).toFixed(3))} s`;
}
