// The native namespace executor (native/, `imgx-run`) on its own, without imgx's Node side: bundles
// written by hand (a Docker-like default spec) around a real Debian userland extracted by the CLI.
// As root: the command, exit statuses, env and cwd, pid 1, hostname, network namespace, bind mounts,
// the user switch, capabilities, no_new_privs, masked and read-only paths, a read-only root, the
// overlay rootfs, a symlink planted in the rootfs that must not redirect a mount out of it, the
// report fd protocol (NOTFOUND, NOEXEC, SETUP), signals and --init. Then as an unprivileged user: a
// user namespace with the user's own id, the sysfs fallback, and newuidmap/newgidmap ranges.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { DEBIAN_IMAGE_TOOLS, debianImage } from '../fixtures/debian-image.ts';
import { REPO_ROOT, runImgx } from '../helpers/imgx.ts';
import { removeTempDir, tempDir } from '../helpers/tempdir.ts';
import { haveTool, requireRoot, requireTools } from '../helpers/tools.ts';

const BIN = join(REPO_ROOT, 'native', 'build', 'imgx-run');
const TOOLS = [...DEBIAN_IMAGE_TOOLS, 'cc', 'setpriv', 'useradd', 'mount', 'umount'];
const TEST_USER = 'imgx-native-test';
const SUBID_START = 200000;
const SPAWN_LIMIT_MS = 60_000;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// Docker's defaults, as imgx writes them into a bundle.
const DOCKER_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE'];
/** The same set as /proc/PID/status prints it. */
const DOCKER_CAP_MASK = '00000000a80425fb';

interface Mount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}
interface IdMap {
  containerID: number;
  hostID: number;
  size: number;
}
type CapSet = 'bounding' | 'effective' | 'inheritable' | 'permitted' | 'ambient';
interface Spec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[]; umask?: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<CapSet, string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: Mount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    uidMappings?: IdMap[];
    gidMappings?: IdMap[];
    devices: { path: string; type: string; major: number; minor: number; fileMode: number; uid: number; gid: number }[];
    maskedPaths: string[];
    readonlyPaths: string[];
  };
  annotations?: Record<string, string>;
}

/** A bundle config like the one `docker run` gets: default mounts, capabilities, devices, masks. */
function dockerSpec(root: string, args: string[]): Spec {
  const dev = (name: string, major: number, minor: number) => ({ path: `/dev/${name}`, type: 'c', major, minor, fileMode: 0o666, uid: 0, gid: 0 });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: [`PATH=${PATH}`, 'HOME=/root'],
      cwd: '/',
      capabilities: { bounding: DOCKER_CAPS, effective: DOCKER_CAPS, inheritable: [], permitted: DOCKER_CAPS, ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }],
      noNewPrivileges: true,
    },
    root: { path: root, readonly: false },
    hostname: 'imgx-native',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount'].map((type) => ({ type })),
      devices: [dev('null', 1, 3), dev('zero', 1, 5), dev('full', 1, 7), dev('random', 1, 8), dev('urandom', 1, 9), dev('tty', 5, 0)],
      maskedPaths: ['/proc/asound', '/proc/acpi', '/proc/interrupts', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

interface User {
  uid: number;
  gid: number;
}
interface RunOptions {
  init?: boolean;
  /** Run imgx-run as this user (setpriv), as rootless imgx would. */
  as?: User;
  stdin?: 'ignore' | 'pipe';
  /** Called with the bundle directory before imgx-run starts. */
  prepare?: (bundle: string) => void;
}
interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** What imgx-run wrote on its report fd (3). */
  report: string;
}
interface Started {
  child: ChildProcess;
  result: Promise<RunResult>;
  /** Resolves when the report fd reaches EOF: the command was exec'ed, or setup failed. */
  reportClosed: Promise<void>;
  stdout: () => string;
}

/** Starts imgx-run on a fresh bundle holding `spec`, with the report fd on fd 3; killed after 60 s. */
function start(spec: Spec, opts: RunOptions = {}): Started {
  const bundle = tempDir('imgx-native-bundle-');
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));
  opts.prepare?.(bundle);
  if (opts.as) execFileSync('chown', ['-R', `${opts.as.uid}:${opts.as.gid}`, bundle]);
  const args = [...(opts.init ? ['--init'] : []), '--report-fd', '3', bundle];
  const child = opts.as
    ? spawn('setpriv', [`--reuid=${opts.as.uid}`, `--regid=${opts.as.gid}`, '--clear-groups', BIN, ...args], { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe', 'pipe'] })
    : spawn(BIN, args, { stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let report = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const reportStream = child.stdio[3] as Readable;
  reportStream.on('data', (d) => (report += d));
  const reportClosed = new Promise<void>((resolve) => reportStream.once('close', () => resolve()));
  const timer = setTimeout(() => child.kill('SIGKILL'), SPAWN_LIMIT_MS);
  const result = new Promise<RunResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      removeTempDir(bundle);
      resolve({ code, signal, stdout, stderr, report });
    });
  });
  return { child, result, reportClosed, stdout: () => stdout };
}

const run = (spec: Spec, opts: RunOptions = {}) => start(spec, opts).result;

/** Runs and asserts a zero exit status with nothing reported; returns stdout. */
async function output(spec: Spec, opts: RunOptions = {}): Promise<string> {
  const r = await run(spec, opts);
  assert.is(r.code, 0, `exit ${r.code} (signal ${r.signal}); report: ${r.report}; stderr: ${r.stderr}; stdout: ${r.stdout}`);
  assert.is(r.report, '', 'nothing on the report fd when the command ran');
  return r.stdout;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The container's pid 1 as the host sees it: the only child of imgx-run. */
function containerPid(outer: number): number {
  const kids = readFileSync(`/proc/${outer}/task/${outer}/children`, 'utf8').trim().split(/\s+/);
  assert.is(kids.length, 1, `imgx-run has one child: ${kids.join(' ')}`);
  return Number(kids[0]);
}

/** Exists and is not a zombie waiting for its reaper. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** What is mounted where on the host (mount ids change with any mount anywhere). */
function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!)
    .sort();
}

function ensureTestUser(): User {
  if (spawnSync('id', ['-u', TEST_USER]).status !== 0) execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER]);
  const uid = Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', TEST_USER], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** Subordinate ids for newuidmap/newgidmap (idempotent). */
function ensureSubIds(): void {
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
    if (!text.split('\n').some((l) => l.startsWith(`${TEST_USER}:`))) appendFileSync(f, `${text && !text.endsWith('\n') ? '\n' : ''}${TEST_USER}:${SUBID_START}:65536\n`);
  }
}

if (requireTools(test, TOOLS) && requireRoot(test)) {
  let work = '';
  let rootfs = '';
  let debianVersion = '';
  let mountsBefore: string[] = [];

  test.before(async () => {
    mountsBefore = mountPoints();
    const b = spawnSync('sh', [join(REPO_ROOT, 'native', 'build.sh')], { encoding: 'utf8' });
    assert.is(b.status, 0, `native/build.sh failed:\n${b.stderr}`);
    assert.is(b.stderr, '', `the build is silent (no compiler warnings):\n${b.stderr}`);
    assert.ok(existsSync(BIN), `${BIN} was built`);
    const img = await debianImage('small');
    work = tempDir('imgx-native-');
    rootfs = join(work, 'rootfs');
    const r = await runImgx(['extract', '--quiet', `oci:${img.layout}:${img.tag}`, rootfs], { timeoutMs: 10 * 60_000 });
    assert.is(r.code, 0, `imgx extract failed: ${r.stderr}`);
    debianVersion = readFileSync(join(rootfs, 'etc', 'debian_version'), 'utf8').trim();
  });

  test.after(() => {
    if (work) removeTempDir(work);
  });

  test('runs the command in the rootfs: cat /etc/debian_version', async () => {
    assert.ok(/^\d+\.\d+/.test(debianVersion), debianVersion);
    assert.is((await output(dockerSpec(rootfs, ['cat', '/etc/debian_version']))).trim(), debianVersion);
  });

  test('root.path relative to the bundle', async () => {
    const out = await output(dockerSpec('rootfs', ['cat', '/etc/debian_version']), { prepare: (b) => symlinkSync(rootfs, join(b, 'rootfs')) });
    assert.is(out.trim(), debianVersion);
  });

  test("the command's exit status is imgx-run's: sh -c 'exit 7' → 7", async () => {
    const r = await run(dockerSpec(rootfs, ['sh', '-c', 'exit 7']));
    assert.is(r.code, 7, r.stderr);
    assert.is(r.report, '');
  });

  test('env is exactly process.env; a missing cwd is created (mkdir -p) and entered', async () => {
    const spec = dockerSpec(rootfs, ['sh', '-c', 'pwd; env | sort']);
    spec.process.env = [`PATH=${PATH}`, 'FOO=bar baz', 'HOME=/root'];
    spec.process.cwd = '/srv/imgx/deep/work';
    assert.not.ok(existsSync(join(rootfs, 'srv', 'imgx')));
    const lines = (await output(spec)).trim().split('\n');
    assert.is(lines[0], '/srv/imgx/deep/work');
    // sh adds PWD (and SHLVL); nothing from imgx-run's own environment leaks in.
    assert.equal(lines.slice(1).filter((l) => !/^(PWD|SHLVL|_)=/.test(l)), ['FOO=bar baz', 'HOME=/root', `PATH=${PATH}`]);
    assert.ok(statSync(join(rootfs, 'srv', 'imgx', 'deep', 'work')).isDirectory());
  });

  test('the command is pid 1 of its own pid namespace, with no fd of imgx-run left open', async () => {
    // `exec ls` lists the descriptors sh had (ls adds only its own handle on the directory, 3): no
    // pipeline whose pipe ends sh would hold for a moment. imgx-run passes on nothing but stdio —
    // whatever its caller left open closes at exec, as with runc.
    assert.is(await output(dockerSpec(rootfs, ['sh', '-c', 'echo $$; exec ls /proc/self/fd'])), '1\n0\n1\n2\n3\n');
  });

  test('hostname (uts namespace)', async () => {
    assert.is((await output(dockerSpec(rootfs, ['cat', '/proc/sys/kernel/hostname']))).trim(), 'imgx-native');
  });

  test('network namespace: only lo, and lo is up', async () => {
    const out = await output(dockerSpec(rootfs, ['sh', '-c', 'tail -n +3 /proc/net/dev | cut -d: -f1; cat /sys/class/net/lo/flags']));
    const lines = out.trim().split('\n').map((l) => l.trim());
    assert.equal(lines.slice(0, -1), ['lo']);
    assert.is(Number(lines.at(-1)) & 1, 1, `IFF_UP in lo's flags ${lines.at(-1)}`);
  });

  test('standard mounts, devices and /dev symlinks; RLIMIT_NOFILE clamped to the hard limit it may not raise', async () => {
    const spec = dockerSpec(rootfs, ['sh', '-c', 'cut -d" " -f5,8 /proc/self/mountinfo; ls /dev; readlink /dev/fd /dev/ptmx; echo x > /dev/null && head -c 4 /dev/zero | wc -c; ulimit -Hn']);
    // More than the kernel allows (fs.nr_open), so raising it fails even with CAP_SYS_RESOURCE.
    spec.process.rlimits = [{ type: 'RLIMIT_NOFILE', hard: 2 ** 40, soft: 2 ** 40 }];
    const lines = (await output(spec)).trim().split('\n');
    for (const m of ['/ ', '/proc proc', '/dev tmpfs', '/dev/pts devpts', '/dev/shm tmpfs', '/dev/mqueue mqueue', '/sys sysfs']) {
      assert.ok(lines.some((l) => l.startsWith(m)), `mounted: ${m} in\n${lines.join('\n')}`);
    }
    for (const d of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'fd', 'stdin', 'stdout', 'stderr', 'ptmx', 'pts', 'shm', 'mqueue']) {
      assert.ok(lines.includes(d), `/dev/${d}`);
    }
    assert.ok(lines.includes('/proc/self/fd') && lines.includes('pts/ptmx'), 'symlinks /dev/fd and /dev/ptmx');
    assert.ok(lines.includes('4'), 'read /dev/zero');
    const hostHard = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
    assert.is(lines.at(-1), hostHard);
  });

  test('bind mounts: rw writes through to the host, ro refuses writes', async () => {
    const rw = join(work, 'bind-rw');
    const ro = join(work, 'bind-ro');
    mkdirSync(rw);
    mkdirSync(ro);
    writeFileSync(join(ro, 'data'), 'from the host\n');
    const spec = dockerSpec(rootfs, ['sh', '-c', 'echo written > /mnt/rw/out && cat /mnt/ro/data && if echo no > /mnt/ro/data; then echo WROTE; fi']);
    spec.mounts.push({ destination: '/mnt/rw', type: 'bind', source: rw, options: ['rbind', 'rprivate'] });
    spec.mounts.push({ destination: '/mnt/ro', type: 'none', source: ro, options: ['bind', 'ro', 'nosuid'] });
    const r = await run(spec);
    assert.is(r.code, 0, r.stderr + r.report);
    assert.is(r.stdout, 'from the host\n');
    assert.match(r.stderr, /Read-only file system/);
    assert.is(readFileSync(join(rw, 'out'), 'utf8'), 'written\n');
    assert.is(readFileSync(join(ro, 'data'), 'utf8'), 'from the host\n');
  });

  test('a file bind mount onto a path the rootfs lacks creates the file', async () => {
    const src = join(work, 'hosts-file');
    writeFileSync(src, '10.1.2.3 imgx-native-host\n');
    const spec = dockerSpec(rootfs, ['cat', '/etc/imgx/hosts']);
    spec.mounts.push({ destination: '/etc/imgx/hosts', type: 'bind', source: src, options: ['rbind', 'ro'] });
    assert.is(await output(spec), '10.1.2.3 imgx-native-host\n');
  });

  test('user switch: uid/gid 65534 with additionalGids; non-root with empty capability sets has none', async () => {
    const spec = dockerSpec(rootfs, ['sh', '-c', 'id -u; id -g; id -G; grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status']);
    spec.process.user = { uid: 65534, gid: 65534, additionalGids: [100, 5] };
    spec.process.capabilities = { bounding: DOCKER_CAPS, effective: [], inheritable: [], permitted: [], ambient: [] };
    const lines = (await output(spec)).trim().split('\n');
    assert.is(lines[0], '65534');
    assert.is(lines[1], '65534');
    assert.equal(lines[2]!.split(' ').map(Number).sort((a, b) => a - b), [5, 100, 65534]);
    assert.ok(lines.includes('CapEff:\t0000000000000000'), lines.join('\n'));
    assert.ok(lines.includes('CapPrm:\t0000000000000000'), lines.join('\n'));
    assert.ok(lines.includes(`CapBnd:\t${DOCKER_CAP_MASK}`), lines.join('\n'));
  });

  test("capabilities: root gets exactly Docker's default set; NoNewPrivs; ambient capabilities survive a non-root exec", async () => {
    const lines = (await output(dockerSpec(rootfs, ['grep', '-E', '^(Cap|NoNewPrivs)', '/proc/self/status']))).trim().split('\n');
    for (const set of ['Prm', 'Eff', 'Bnd']) assert.ok(lines.includes(`Cap${set}:\t${DOCKER_CAP_MASK}`), lines.join('\n'));
    assert.ok(lines.includes('CapInh:\t0000000000000000'));
    assert.ok(lines.includes('NoNewPrivs:\t1'));
    const spec = dockerSpec(rootfs, ['grep', '-E', '^Cap(Eff|Amb)', '/proc/self/status']);
    spec.process.user = { uid: 1000, gid: 1000 };
    const nb = ['CAP_NET_BIND_SERVICE'];
    spec.process.capabilities = { bounding: DOCKER_CAPS, effective: nb, inheritable: nb, permitted: nb, ambient: nb };
    assert.is(await output(spec), 'CapEff:\t0000000000000400\nCapAmb:\t0000000000000400\n');
  });

  test('masked paths read empty; /proc/sys and the other readonlyPaths are read-only', async () => {
    const spec = dockerSpec(rootfs, ['sh', '-c', 'for f in /proc/kcore /proc/keys /proc/timer_list; do [ -e $f ] && echo "$f $(wc -c < $f)"; done; ls -A /proc/acpi | wc -l; echo x > /proc/sys/kernel/hostname || echo refused']);
    const r = await run(spec);
    assert.is(r.code, 0, r.stderr + r.report);
    const lines = r.stdout.trim().split('\n');
    const masked = lines.filter((l) => l.startsWith('/proc/'));
    assert.ok(masked.length >= 2, `masked files found: ${lines.join(' | ')}`);
    if (existsSync('/proc/kcore')) assert.ok(masked.includes('/proc/kcore 0'), 'masked /proc/kcore reads empty');
    for (const m of masked) assert.match(m, / 0$/, `masked file reads empty: ${m}`);
    assert.ok(lines.includes('0'), 'masked directory /proc/acpi is empty');
    assert.is(lines.at(-1), 'refused');
    assert.match(r.stderr, /Read-only file system/);
  });

  test('root.readonly makes / read-only (but not the mounts on it); a missing cwd is still created', async () => {
    const spec = dockerSpec(rootfs, ['sh', '-c', 'pwd; touch /imgx-ro-test || echo refused; touch /dev/shm/ok && echo tmpfs-writable']);
    spec.root.readonly = true;
    spec.process.cwd = '/srv/imgx-ro-cwd';
    const r = await run(spec);
    assert.is(r.code, 0, r.stderr + r.report);
    assert.is(r.stdout, '/srv/imgx-ro-cwd\nrefused\ntmpfs-writable\n');
    assert.match(r.stderr, /Read-only file system/);
    assert.not.ok(existsSync(join(rootfs, 'imgx-ro-test')));
  });

  test('overlay annotation: writes land in upperdir, the lowerdir is unchanged, nothing stays mounted', async () => {
    const o = tempDir('imgx-native-overlay-');
    for (const d of ['upper', 'work']) mkdirSync(join(o, d));
    const spec = dockerSpec('merged', ['sh', '-c', 'echo hello > /etc/imgx-overlay && rm /etc/issue && cat /etc/imgx-overlay']);
    spec.annotations = { 'dev.imgx.overlay.lowerdir': rootfs, 'dev.imgx.overlay.upperdir': join(o, 'upper'), 'dev.imgx.overlay.workdir': join(o, 'work') };
    let merged = '';
    const out = await output(spec, {
      prepare: (b) => {
        merged = join(b, 'merged');
        mkdirSync(merged);
      },
    });
    assert.is(out, 'hello\n');
    assert.is(readFileSync(join(o, 'upper', 'etc', 'imgx-overlay'), 'utf8'), 'hello\n');
    assert.ok(statSync(join(o, 'upper', 'etc', 'issue')).isCharacterDevice(), 'a whiteout for the removed file');
    assert.not.ok(existsSync(join(rootfs, 'etc', 'imgx-overlay')), 'lowerdir unchanged');
    assert.ok(existsSync(join(rootfs, 'etc', 'issue')), 'lowerdir unchanged');
    assert.not.ok(mountPoints().some((m) => m.includes('imgx-native')), 'no overlay left mounted on the host');
    removeTempDir(o);
  });

  test('a symlink planted in the rootfs does not redirect a mount destination out of it', async () => {
    const outside = tempDir('imgx-native-outside-');
    const src = join(work, 'bind-src');
    mkdirSync(src);
    writeFileSync(join(src, 'marker'), 'bound\n');
    // Absolute and relative escapes: both must resolve inside the rootfs.
    symlinkSync(outside, join(rootfs, 'mnt', 'evil'));
    symlinkSync(`../../../../../../../..${outside}-rel`, join(rootfs, 'mnt', 'evil-rel'));
    const before = mountPoints();
    try {
      const spec = dockerSpec(rootfs, ['sh', '-c', 'cat /mnt/evil/marker /mnt/evil-rel/marker']);
      spec.mounts.push({ destination: '/mnt/evil', type: 'bind', source: src, options: ['rbind', 'ro'] });
      spec.mounts.push({ destination: '/mnt/evil-rel', type: 'bind', source: src, options: ['rbind'] });
      assert.is(await output(spec), 'bound\nbound\n', 'the mounts are where the symlinks lead inside the container');
      assert.equal(readdirSync(outside), [], 'the host directory is untouched');
      assert.equal(mountPoints(), before, 'nothing new mounted on the host');
      assert.not.ok(existsSync(`${outside}-rel`), 'nothing created next to it on the host');
      assert.ok(statSync(join(rootfs, `${outside.slice(1)}-rel`)).isDirectory(), 'the symlinks\' targets were created inside the rootfs');
    } finally {
      rmSync(join(rootfs, 'mnt', 'evil'));
      rmSync(join(rootfs, 'mnt', 'evil-rel'));
      removeTempDir(outside);
    }
  });

  test('NOTFOUND: exit 127 and one line on the report fd; NOEXEC: 126', async () => {
    const r = await run(dockerSpec(rootfs, ['nosuch']));
    assert.is(r.code, 127);
    assert.is(r.report, 'NOTFOUND exec "nosuch": executable file not found in $PATH\n');
    const abs = await run(dockerSpec(rootfs, ['/usr/bin/nosuch']));
    assert.is(abs.code, 127);
    assert.is(abs.report, 'NOTFOUND exec "/usr/bin/nosuch": No such file or directory\n');
    const noexec = await run(dockerSpec(rootfs, ['/etc/passwd']));
    assert.is(noexec.code, 126);
    assert.is(noexec.report, 'NOEXEC exec "/etc/passwd": Permission denied\n');
  });

  test('a setup failure (bind source missing): exit 125, one SETUP line naming the step; nothing left mounted', async () => {
    const before = mountPoints();
    const spec = dockerSpec(rootfs, ['true']);
    spec.mounts.push({ destination: '/mnt/x', type: 'bind', source: '/nonexistent/imgx-native', options: ['rbind'] });
    const r = await run(spec);
    assert.is(r.code, 125);
    assert.is(r.report, 'SETUP mount bind /nonexistent/imgx-native on /mnt/x: No such file or directory\n');
    assert.equal(mountPoints(), before);
  });

  test('without --report-fd the line goes to stderr; a bad config and a bad invocation exit 125', async () => {
    const bundle = tempDir('imgx-native-bundle-');
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(dockerSpec(rootfs, ['nosuch'])));
    const r = spawnSync(BIN, [bundle], { encoding: 'utf8', timeout: SPAWN_LIMIT_MS });
    assert.is(r.status, 127);
    assert.is(r.stderr, 'imgx-run: exec "nosuch": executable file not found in $PATH\n');
    writeFileSync(join(bundle, 'config.json'), '{"process": {"args": []}, "root": {"path": "/"}}');
    const bad = spawnSync(BIN, [bundle], { encoding: 'utf8', timeout: SPAWN_LIMIT_MS });
    assert.is(bad.status, 125);
    assert.is(bad.stderr, 'imgx-run: config.json: process.args: must be a non-empty array of strings\n');
    writeFileSync(join(bundle, 'config.json'), '{"process": ');
    assert.match(spawnSync(BIN, [bundle], { encoding: 'utf8' }).stderr, /config\.json: line 1: unexpected end of input/);
    const usage = spawnSync(BIN, ['--bogus'], { encoding: 'utf8' });
    assert.is(usage.status, 125);
    assert.match(usage.stderr, /usage: imgx-run \[--init\] \[--report-fd N\] BUNDLE_DIR/);
    const joined = dockerSpec(rootfs, ['true']);
    joined.linux.namespaces.push({ type: 'ipc', path: '/proc/1/ns/ipc' });
    const j = await run(joined);
    assert.is(j.code, 125);
    assert.match(j.report, /^SETUP .*joining namespaces is not supported/);
    removeTempDir(bundle);
  });

  test('the report fd reaches EOF when the command has been exec\'ed, while it still runs', async () => {
    const s = start(dockerSpec(rootfs, ['head', '-c', '1']), { stdin: 'pipe' });
    await s.reportClosed;
    assert.is(s.child.exitCode, null, 'still running');
    (s.child.stdin as Writable).end('x');
    const r = await s.result;
    assert.is(r.code, 0);
    assert.is(r.stdout, 'x');
    assert.is(r.report, '');
  });

  test('signals are forwarded: SIGTERM to imgx-run reaches the trap of pid 1', async () => {
    const s = start(dockerSpec(rootfs, ['sh', '-c', 'trap "exit 3" TERM; echo ready; while :; do sleep 0.1; done']));
    await until(() => s.stdout().includes('ready'), 'the trap to be set');
    s.child.kill('SIGTERM');
    const r = await s.result;
    assert.is(r.code, 3, r.stderr);
  });

  test('a command killed by signal N gives 128+N', async () => {
    const s = start(dockerSpec(rootfs, ['sleep', '30']));
    await s.reportClosed;
    process.kill(containerPid(s.child.pid!), 'SIGKILL');
    assert.is((await s.result).code, 137);
  });

  test('when imgx-run is killed, the container dies with it (parent-death signal)', async () => {
    const s = start(dockerSpec(rootfs, ['sleep', '30']));
    await s.reportClosed;
    const pid1 = containerPid(s.child.pid!);
    s.child.kill('SIGKILL');
    assert.is((await s.result).signal, 'SIGKILL');
    await until(() => !alive(pid1), 'the container process to die');
  });

  test('--init: the command is pid 2, orphans are reaped, its status (or 128+N) is the exit status', async () => {
    const spec = dockerSpec(rootfs, ['sh', '-c', 'echo $$; p=$(sh -c "sleep 0.2 & echo \\$!"); i=0; while [ -e /proc/$p ] && [ $i -lt 200 ]; do i=$((i+1)); sleep 0.05; done; [ -e /proc/$p ] && echo zombie || echo reaped; exit 5']);
    const r = await run(spec, { init: true });
    assert.is(r.code, 5, r.stderr + r.report);
    assert.is(r.stdout, '2\nreaped\n');
    const killed = await run(dockerSpec(rootfs, ['sh', '-c', 'kill -TERM $$']), { init: true });
    assert.is(killed.code, 143);
    const nf = await run(dockerSpec(rootfs, ['nosuch']), { init: true });
    assert.is(nf.code, 127);
    assert.match(nf.report, /^NOTFOUND /);
  });

  test('--init forwards signals to pid 2', async () => {
    const s = start(dockerSpec(rootfs, ['sh', '-c', 'trap "exit 4" USR1; echo ready; while :; do sleep 0.1; done']), { init: true });
    await until(() => s.stdout().includes('ready'), 'the trap to be set');
    s.child.kill('SIGUSR1');
    assert.is((await s.result).code, 4);
  });

  if (haveTool('script')) {
    test('process.terminal with a tty on fd 0: the command gets the foreground; the caller keeps its terminal', async () => {
      // script gives the shell a pty as its controlling terminal, as a terminal emulator would.
      const probe = 'cut -d" " -f5,7,8 /proc/self/stat';
      const spec = dockerSpec(rootfs, ['sh', '-c', probe]);
      spec.process.terminal = true;
      for (const init of [false, true]) {
        const bundle = tempDir('imgx-native-bundle-');
        writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
        const script = `${probe}; ${BIN} ${init ? '--init ' : ''}${bundle}; echo "rc=$?"; ${probe}`;
        const r = spawnSync('script', ['-qec', `sh -c '${script}'`, '/dev/null'], { encoding: 'utf8', timeout: SPAWN_LIMIT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
        const lines = r.stdout.trim().split(/\r?\n/);
        assert.is(lines.length, 4, r.stdout + r.stderr);
        const [callerBefore, inside, rc, callerAfter] = lines.map((l) => l.trim());
        assert.is(rc, 'rc=0');
        const [pgrp, tty, fg] = inside!.split(' ').map(Number);
        assert.is(pgrp, init ? 2 : 1, 'the command leads its own process group');
        assert.is(fg, pgrp, 'which is the terminal\'s foreground');
        assert.ok(tty! > 0, 'and the tty is its controlling terminal');
        assert.is(callerAfter, callerBefore, 'the caller has its terminal and the foreground back');
        removeTempDir(bundle);
      }
    });
  }

  // Unprivileged: what rootless imgx does.
  let user: User = { uid: -1, gid: -1 };
  let userRoot = '';
  let userHome = '';
  const userSpec = (args: string[], maps?: { uid: IdMap[]; gid: IdMap[] }): Spec => {
    const spec = dockerSpec(userRoot, args);
    spec.linux.namespaces.push({ type: 'user' });
    spec.linux.uidMappings = maps?.uid ?? [{ containerID: 0, hostID: user.uid, size: 1 }];
    spec.linux.gidMappings = maps?.gid ?? [{ containerID: 0, hostID: user.gid, size: 1 }];
    return spec;
  };

  test('unprivileged: a user namespace mapping root to the caller; the rootfs, pid 1, only lo', async () => {
    user = ensureTestUser();
    // Its own temp dir: the user must be able to reach the rootfs (work is root's, mode 0700).
    userHome = tempDir('imgx-native-user-');
    userRoot = join(userHome, 'rootfs');
    execFileSync('cp', ['-a', rootfs, userRoot]);
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, userHome]);
    const out = await output(userSpec(['sh', '-c', 'id -u; cat /etc/debian_version; echo $$; tail -n +3 /proc/net/dev | cut -d: -f1; ls /dev/null /dev/pts/ptmx']), { as: user });
    assert.equal(out.trim().split('\n').map((l) => l.trim()), ['0', debianVersion, '1', 'lo', '/dev/null', '/dev/pts/ptmx']);
  });

  test('unprivileged, host network: sysfs falls back to the host /sys, read-only', async () => {
    const spec = userSpec(['sh', '-c', 'ls /sys/class/net; awk \'$5 == "/sys" { print $6 }\' /proc/self/mountinfo']);
    spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== 'network');
    const lines = (await output(spec, { as: user })).trim().split('\n');
    assert.match(lines.at(-1)!, /^ro,/, 'read-only');
    assert.equal(lines.slice(0, -1), readdirSync('/sys/class/net').sort());
  });

  test('unprivileged: a read-only bind of a nosuid,nodev,noexec source keeps those locked flags', async () => {
    // Where the user can reach it (work is root's, mode 0700).
    const src = join(userHome, 'locked');
    mkdirSync(src);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'nosuid,nodev,noexec,mode=0755', 'imgx-native-locked', src]);
    try {
      writeFileSync(join(src, 'data'), 'locked\n');
      chownSync(src, user.uid, user.gid);
      const spec = userSpec(['sh', '-c', 'cat /mnt/locked/data; echo x > /mnt/locked/new || echo refused; awk \'$5 == "/mnt/locked" { print $6 }\' /proc/self/mountinfo']);
      spec.mounts.push({ destination: '/mnt/locked', type: 'bind', source: src, options: ['rbind', 'ro'] });
      const out = await output(spec, { as: user });
      assert.is(out, 'locked\nrefused\nro,nosuid,nodev,noexec,relatime\n');
    } finally {
      execFileSync('umount', [src]);
    }
  });

  test('unprivileged without a user namespace: SETUP, 125', async () => {
    const r = await run(dockerSpec(userRoot, ['true']), { as: user });
    assert.is(r.code, 125);
    assert.match(r.report, /^SETUP create namespaces: Operation not permitted\n$/);
  });

  if (requireTools(test, ['newuidmap', 'newgidmap'])) {
    test('unprivileged with subordinate ids (newuidmap/newgidmap): switching to uid 65534 inside works', async () => {
      ensureSubIds();
      const range = (host: number): IdMap[] => [
        { containerID: 0, hostID: host, size: 1 },
        { containerID: 1, hostID: SUBID_START, size: 65536 },
      ];
      const spec = userSpec(['sh', '-c', 'id -u; id -g; id -G; cat /proc/self/uid_map'], { uid: range(user.uid), gid: range(user.gid) });
      spec.process.user = { uid: 65534, gid: 65534, additionalGids: [100] };
      const lines = (await output(spec, { as: user })).trim().split('\n');
      assert.equal(lines.slice(0, 3), ['65534', '65534', '65534 100']);
      assert.equal(lines.slice(3).map((l) => l.trim().split(/\s+/).map(Number)), [
        [0, user.uid, 1],
        [1, SUBID_START, 65536],
      ]);
    });
  }

  test('nothing left mounted on the host, no process left behind', () => {
    assert.equal(mountPoints(), mountsBefore);
    const mine = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
    assert.is(mine, '', 'no child process of this test is still running');
  });
}

test.run();
