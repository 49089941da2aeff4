// Every timed run starts from the same memory state: written back (sync) and with the page cache
// dropped. On this VM a run that followed another paid for the memory the previous one left
// (the same `imgx to-disk` took 4 s of system time after a drop, 14 s without), so "cold" covers
// the page cache as well as the tools' own caches. Needs root (the benches run as root).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export function coldPageCache(): void {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}
