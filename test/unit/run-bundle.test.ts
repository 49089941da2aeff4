// The pure parts of `imgx run`: Docker's rules for the process (entrypoint/cmd, env, cwd), users and
// groups from the image's files, volumes, the command line split, subordinate ids, the runtime spec,
// and path resolution inside a hostile rootfs (symlinks never lead out of it).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { splitRunArgv } from '../../src/cli/run-argv.ts';
import type { ImageConfig } from '../../src/image/config.ts';
import { subordinateRange } from '../../src/run/id-mappings.ts';
import { processArgs, processCwd, processEnv } from '../../src/run/process-args.ts';
import { findCommand, readFileInRoot, resolveInRoot } from '../../src/run/root-path.ts';
import { buildRuntimeSpec } from '../../src/run/runtime-spec.ts';
import { defaultRlimits } from '../../src/run/docker-defaults.ts';
import { resolveUser } from '../../src/run/user.ts';
import { parseVolume } from '../../src/run/volumes.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { rejects } from '../helpers/rejects.ts';

const cfg = (c: NonNullable<ImageConfig['config']>): ImageConfig => ({ config: c });

test('Entrypoint + Cmd; a command replaces Cmd; --entrypoint replaces Entrypoint and drops Cmd', () => {
  const c = cfg({ Entrypoint: ['/init'], Cmd: ['serve', '--port', '80'] });
  assert.equal(processArgs(c, {}), ['/init', 'serve', '--port', '80']);
  assert.equal(processArgs(c, { command: ['version'] }), ['/init', 'version']);
  assert.equal(processArgs(c, { entrypoint: '/bin/sh' }), ['/bin/sh']);
  assert.equal(processArgs(c, { entrypoint: '/bin/sh', command: ['-c', 'true'] }), ['/bin/sh', '-c', 'true']);
  assert.equal(processArgs(c, { entrypoint: '', command: ['ls'] }), ['ls']);
  assert.equal(processArgs(cfg({ Cmd: ['bash'] }), {}), ['bash']);
  assert.throws(() => processArgs(cfg({}), {}), /no Entrypoint or Cmd/);
  assert.throws(() => processArgs(c, { entrypoint: '' }), /no Entrypoint or Cmd/);
});

test('env: the image, then -e in order (KEY takes the caller’s value or drops it), then PATH/HOSTNAME/HOME/TERM', () => {
  const c = cfg({ Env: ['PATH=/opt/bin:/usr/bin', 'A=image', 'B=image', 'C=image'] });
  const env = processEnv(c, { env: ['A=cli', 'B', 'C', 'D=x=y'], hostEnv: { B: 'host' }, hostname: 'h1', home: '/root', tty: true });
  assert.equal(env, ['PATH=/opt/bin:/usr/bin', 'A=cli', 'B=host', 'D=x=y', 'HOSTNAME=h1', 'HOME=/root', 'TERM=xterm']);
  const bare = processEnv(cfg({}), { hostEnv: {}, hostname: 'h', home: '/home/u', tty: false });
  assert.equal(bare, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=h', 'HOME=/home/u']);
  assert.throws(() => processEnv(cfg({}), { env: ['=x'], hostEnv: {}, hostname: 'h', home: '/', tty: false }), /invalid -e/);
});

test('cwd: -w, else WorkingDir, else /; relative is refused', () => {
  assert.is(processCwd(cfg({ WorkingDir: '/app' }), undefined), '/app');
  assert.is(processCwd(cfg({ WorkingDir: '/app' }), '/srv'), '/srv');
  assert.is(processCwd(cfg({}), undefined), '/');
  assert.throws(() => processCwd(cfg({}), 'rel'), /must be absolute/);
});

function fakeRoot(): string {
  const root = tempDir('imgx-run-unit-');
  mkdirSync(join(root, 'etc'));
  writeFileSync(
    join(root, 'etc', 'passwd'),
    ['root:x:0:0:root:/root:/bin/sh', 'daemon:x:1:1::/usr/sbin:/usr/sbin/nologin', '# comment', 'broken:line', 'app:x:1000:1000::/home/app:/bin/sh', ''].join('\n'),
  );
  writeFileSync(join(root, 'etc', 'group'), ['root:x:0:', 'daemon:x:1:', 'mail:x:8:app', 'audio:x:29:app,daemon', 'app:x:1000:', ''].join('\n'));
  return root;
}

test('users: names and numbers, groups by name or number, memberships from /etc/group', async () => {
  const root = fakeRoot();
  assert.equal(await resolveUser(root, ''), { uid: 0, gid: 0, additionalGids: [0], home: '/root', name: 'root' });
  assert.equal(await resolveUser(root, 'app'), { uid: 1000, gid: 1000, additionalGids: [1000, 8, 29], home: '/home/app', name: 'app' });
  assert.equal(await resolveUser(root, '1000:mail'), { uid: 1000, gid: 8, additionalGids: [8, 29], home: '/home/app', name: 'app' });
  assert.equal(await resolveUser(root, '4242'), { uid: 4242, gid: 0, additionalGids: [0], home: '/' });
  assert.equal(await resolveUser(root, '4242:77'), { uid: 4242, gid: 77, additionalGids: [77], home: '/' });
  await rejects(resolveUser(root, 'nobody'), 'IMGX_USER_UNKNOWN', /unable to find user nobody/);
  await rejects(resolveUser(root, 'app:nogroup'), 'IMGX_USER_UNKNOWN', /unable to find group nogroup/);
  await rejects(resolveUser(root, 'a:b:c'), 'IMGX_USER_UNKNOWN', /expected USER\[:GROUP\]/);
});

test('a rootfs symlink never leads out of the root (passwd planted as a link to the host)', async () => {
  const root = tempDir('imgx-run-unit-');
  const outside = tempDir('imgx-run-outside-');
  writeFileSync(join(outside, 'passwd'), 'evil:x:0:0::/:/bin/sh\n');
  mkdirSync(join(root, 'etc'));
  mkdirSync(join(root, 'real'));
  writeFileSync(join(root, 'real', 'passwd'), 'inside:x:7:7::/in:/bin/sh\n');
  symlinkSync(join(outside, 'passwd'), join(root, 'etc', 'passwd'));
  // An absolute link resolves inside the root, where that path does not exist.
  assert.is(await readFileInRoot(root, '/etc/passwd'), undefined);
  symlinkSync('../../../../../../real/passwd', join(root, 'etc', 'up'));
  assert.is(await readFileInRoot(root, '/etc/up'), 'inside:x:7:7::/in:/bin/sh\n');
  symlinkSync('/etc/loop', join(root, 'etc', 'loop'));
  assert.is(await resolveInRoot(root, '/etc/loop'), undefined);
  symlinkSync('/real', join(root, 'abs-dir'));
  assert.is(await resolveInRoot(root, '/abs-dir/passwd'), join(root, 'real', 'passwd'));
  await rejects(resolveUser(root, 'evil'), 'IMGX_USER_UNKNOWN', /unable to find user evil/);
});

test('commands: PATH search in the image, a name with / taken as it is, not-executable told apart', async () => {
  const root = tempDir('imgx-run-unit-');
  mkdirSync(join(root, 'usr', 'bin'), { recursive: true });
  writeFileSync(join(root, 'usr', 'bin', 'tool'), '#!/bin/sh\n');
  chmodSync(join(root, 'usr', 'bin', 'tool'), 0o755);
  writeFileSync(join(root, 'usr', 'bin', 'data'), 'x');
  symlinkSync('usr/bin', join(root, 'bin'));
  assert.equal(await findCommand(root, 'tool', '/usr/local/bin:/bin', '/'), { found: '/bin/tool' });
  assert.equal(await findCommand(root, '/usr/bin/tool', '', '/'), { found: '/usr/bin/tool' });
  assert.equal(await findCommand(root, 'bin/tool', '', '/usr'), { found: '/usr/bin/tool' });
  assert.equal(await findCommand(root, 'data', '/usr/bin', '/'), { notExecutable: '/usr/bin/data' });
  assert.equal(await findCommand(root, 'nope', '/usr/bin', '/'), { missing: true });
});

test('volumes: SRC:DST[:ro|rw], host paths only, SRC must exist', async () => {
  const dir = tempDir('imgx-run-vol-');
  assert.equal(await parseVolume(`${dir}:/data`), { source: dir, destination: '/data', readOnly: false });
  assert.equal(await parseVolume(`${dir}:/data:ro`), { source: dir, destination: '/data', readOnly: true });
  assert.equal(await parseVolume(`./x:/d`, dir).catch((e: Error) => e.message), `volume source ${dir}/x does not exist`);
  await rejects(parseVolume('named:/data'), 'IMGX_USAGE', /named volumes need a daemon/);
  await rejects(parseVolume(`${dir}:rel`), 'IMGX_USAGE', /destination must be absolute/);
  await rejects(parseVolume(`${dir}:/a/../b`), 'IMGX_USAGE', /".." in the destination/);
  await rejects(parseVolume(`${dir}:/d:rx`), 'IMGX_USAGE', /mode must be ro or rw/);
  await rejects(parseVolume(`${dir}`), 'IMGX_USAGE', /expected SRC:DST/);
});

test('the command line: words after the image are the command, verbatim; -- is optional', () => {
  assert.equal(splitRunArgv(['run', '-e', 'A=1', '--net', 'none', 'debian', 'sh', '-c', 'exit 7']), { argv: ['run', '-e', 'A=1', '--net', 'none', 'debian'], command: ['sh', '-c', 'exit 7'] });
  assert.equal(splitRunArgv(['--debug', 'run', 'debian', '--', 'ls', '-l']), { argv: ['--debug', 'run', 'debian'], command: ['ls', '-l'] });
  assert.equal(splitRunArgv(['--cache-dir', 'run', 'run', 'img']), { argv: ['--cache-dir', 'run', 'run', 'img'] });
  assert.equal(splitRunArgv(['run', '-it', '--rm', 'img']), { argv: ['run', '-it', '--rm', 'img'] });
  assert.equal(splitRunArgv(['extract', 'img', 'dir']), { argv: ['extract', 'img', 'dir'] });
  assert.equal(splitRunArgv(['run', '--env=A', 'img', 'sleep', '1']), { argv: ['run', '--env=A', 'img'], command: ['sleep', '1'] });
});

test('subordinate ids: by name or uid, first valid range', () => {
  const text = 'other:100000:65536\nme:bad:1\n1001:200000:1000\nme:300000:65536\n';
  assert.equal(subordinateRange(text, 'me', 1001), { start: 200000, count: 1000 });
  assert.equal(subordinateRange(text, 'me', 5), { start: 300000, count: 65536 });
  assert.is(subordinateRange(text, 'nobody-here', 9), undefined);
});

test('runtime spec: Docker defaults; a non-root user gets no effective capabilities; namespaces follow --net and root', () => {
  const base = {
    id: 'abc',
    args: ['sh'],
    env: ['PATH=/bin'],
    cwd: '/',
    user: { uid: 0, gid: 0, additionalGids: [0], home: '/root' },
    tty: false,
    hostname: 'h',
    net: 'none' as const,
    readOnly: false,
    volumes: [{ source: '/src', destination: '/dst', readOnly: true }],
    etcFiles: { hosts: '/r/hosts', resolvConf: '/r/resolv.conf', hostname: '/r/hostname' },
    limits: 'Max open files            4096                 8192                 files     \n',
    rootfs: '/r/rootfs',
  };
  const s = buildRuntimeSpec(base) as any;
  assert.equal(
    s.linux.namespaces.map((n: { type: string }) => n.type),
    ['pid', 'ipc', 'uts', 'mount', 'network'],
  );
  assert.is(s.process.capabilities.effective.length, 14);
  assert.equal(s.process.capabilities.inheritable, []);
  assert.is(s.process.noNewPrivileges, true);
  assert.equal(s.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 8192, soft: 8192 }]);
  assert.ok(s.linux.maskedPaths.includes('/proc/kcore'));
  assert.ok(s.linux.readonlyPaths.includes('/proc/sys'));
  const dst = s.mounts.find((m: { destination: string }) => m.destination === '/dst');
  assert.equal(dst.options, ['rbind', 'rprivate', 'ro']);
  assert.ok(s.mounts.some((m: { destination: string; source: string }) => m.destination === '/etc/resolv.conf' && m.source === '/r/resolv.conf'));
  const user = buildRuntimeSpec({ ...base, net: 'host', user: { uid: 65534, gid: 65534, additionalGids: [], home: '/' }, userNamespace: { uidMappings: [{ containerID: 0, hostID: 1000, size: 1 }], gidMappings: [{ containerID: 0, hostID: 1000, size: 1 }] } }) as any;
  assert.equal(user.process.capabilities.effective, []);
  assert.is(user.process.capabilities.bounding.length, 14);
  assert.equal(
    user.linux.namespaces.map((n: { type: string }) => n.type),
    ['pid', 'ipc', 'uts', 'mount', 'user'],
  );
  assert.equal(user.linux.uidMappings, [{ containerID: 0, hostID: 1000, size: 1 }]);
  assert.equal(defaultRlimits(''), [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }]);
});

test.run();
