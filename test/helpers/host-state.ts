// What a test compares before and after a command to prove it left the host alone: the mount
// table and the loop devices.
import { existsSync, readFileSync, readdirSync } from 'node:fs';

/** What is mounted where (mount ids and peer groups change with any mount anywhere: left out). */
export function mountTable(): string {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ').slice(4, 5).join(' '))
    .sort()
    .join('\n');
}

/** Every loop device and the file behind it. */
export function loopDevices(): string {
  return readdirSync('/sys/block')
    .filter((n) => n.startsWith('loop'))
    .map((d) => {
      const f = `/sys/block/${d}/loop/backing_file`;
      return `${d}=${existsSync(f) ? readFileSync(f, 'utf8').trim() : ''}`;
    })
    .sort()
    .join(' ');
}
