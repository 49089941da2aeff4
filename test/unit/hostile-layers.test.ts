// The security suite: hostile layers through the WHOLE path (tars built here → layerReadersFromBuffers
// → scanLayers → emitTree → writeDirectory into work/dest). Whatever the layers hold, nothing
// outside work/dest may be created, changed or deleted: the canaries beside it and above it stay
// as they were (content, mode, owner, link count, ctime), and a failed run leaves neither DEST nor a
// staging directory. Run as root, this file also runs itself as an unprivileged user (a child
// process under setpriv), so both kinds of run are covered by one test file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeDirectory } from '../../src/export/dir-writer.ts';
import { removeTree } from '../../src/export/remove-tree.ts';
import { emitTree } from '../../src/layers/emit.ts';
import { layerReadersFromBuffers } from '../../src/layers/layer-reader.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { BLOCK_SIZE, encodeEntryHeaders, encodeHeader, paddingFor } from '../../src/layers/tar-header.ts';
import { Warnings, type WarningCode } from '../../src/warnings.ts';
import { makeTar, type TarEntry } from '../fixtures/tar.ts';
import { NODE_BIN } from '../helpers/imgx.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';

const TEST_USER = 'imgx-test-user';
const CHILD = process.env.IMGX_HOSTILE_CHILD === '1';
const isRoot = process.geteuid?.() === 0;

interface Env {
  /** The test's top directory (outer canaries live here). */
  top: string;
  /** top/work: holds dest and the canary beside it. */
  work: string;
  dest: string;
}

type Outcome = 'ok' | string;

interface Case {
  name: string;
  layers: (env: Env) => (TarEntry[] | Buffer)[];
  /** Acceptable outcomes: 'ok' or error codes; default ['ok']. */
  expect?: Outcome[];
  /** Warnings that must have been given (when the run succeeded). */
  warns?: WarningCode[];
  check?: (env: Env, warnings: Warnings) => void;
}

const file = (name: string, content = 'pwned', extra: Partial<TarEntry> = {}): TarEntry => ({ name, content, ...extra });
const dir = (name: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name: name.endsWith('/') ? name : `${name}/`, type: 'directory', ...extra });
const sym = (name: string, linkname: string): TarEntry => ({ name, type: 'symlink', linkname });
const hard = (name: string, linkname: string): TarEntry => ({ name, type: 'hardlink', linkname });

/** A layer whose one member's name comes in a GNU `L` long-name entry (not PAX). */
function gnuLongNameLayer(name: string, content: string): Buffer {
  const body = Buffer.from(`${name}\0`);
  const data = Buffer.from(content);
  return Buffer.concat([
    encodeHeader({ name: '././@LongLink', type: 'gnu-long-name', size: body.length }, { format: 'gnu' }),
    body,
    Buffer.alloc(paddingFor(body.length)),
    encodeEntryHeaders({ name: 'placeholder', size: data.length }),
    data,
    Buffer.alloc(paddingFor(data.length)),
    Buffer.alloc(2 * BLOCK_SIZE),
  ]);
}

const LONG = 'x'.repeat(120);

const cases: Case[] = [
  {
    name: '`..` member names are confined to DEST',
    layers: () => [[file('../escape'), file('../../escape2'), file('a/../../escape3'), file('./../escape4'), dir('../escdir'), file('../escdir/f')]],
    warns: ['IMGX_PATH_CLAMPED'],
    check: ({ dest }) => {
      for (const f of ['escape', 'escape2', 'escape3', 'escape4', 'escdir/f']) assert.ok(lstatSync(join(dest, f)).isFile(), f);
    },
  },
  {
    name: 'absolute member names are confined to DEST',
    layers: ({ top, work }) => [[file(`${top}/abs-escape`), file(`${work}/canary`), dir(`${top}/abs-dir`), file('/etc/imgx-hostile-test')]],
    warns: ['IMGX_PATH_CLAMPED'],
    check: ({ dest, work }) => {
      assert.is(readFileSync(join(dest, work, 'canary'), 'utf8'), 'pwned');
      assert.ok(lstatSync(join(dest, 'etc/imgx-hostile-test')).isFile());
    },
  },
  {
    name: '`..` in a PAX path and in a GNU long name',
    layers: () => [[{ name: 'short', content: 'pwned', pax: { path: `../../pax-escape-${LONG}` } }], gnuLongNameLayer(`../../gnu-escape-${LONG}`, 'pwned')],
    warns: ['IMGX_PATH_CLAMPED'],
    check: ({ dest }) => {
      assert.ok(existsSync(join(dest, `pax-escape-${LONG}`)));
      assert.ok(existsSync(join(dest, `gnu-escape-${LONG}`)));
    },
  },
  {
    name: 'a `..` directory entry changes only DEST itself',
    layers: () => [[dir('..', { mode: 0o777 }), dir('../..', { mode: 0o777 }), dir('/', { mode: 0o777 }), file('f')]],
  },
  {
    name: 'symlink to / planted by layer 1, a file written through it by layer 2',
    layers: ({ top }) => [[sym('evil', '/')], [file(`evil${top}/pwned`)]],
    warns: ['IMGX_PARENT_REPLACED'],
    check: ({ dest, top }) => {
      assert.ok(lstatSync(join(dest, 'evil')).isDirectory());
      assert.ok(lstatSync(join(dest, 'evil', top, 'pwned')).isFile());
    },
  },
  {
    name: 'symlink to ../.. planted by layer 1, file, directory and hardlink written through it by layer 2',
    layers: () => [[sym('evil', '../..'), file('target')], [file('evil/pwned'), dir('evil/newdir', { mode: 0o777 }), file('evil/newdir/f'), hard('evil/hl', 'target')]],
    warns: ['IMGX_PARENT_REPLACED'],
  },
  {
    name: 'symlink to the directory holding the canary, the canary overwritten through it',
    layers: ({ work }) => [[sym('evil', '..'), sym('abs', work)], [file('evil/canary'), file('abs/canary'), dir('evil/', { mode: 0o777 })]],
  },
  {
    name: 'symlink and a write through it in the same layer',
    layers: () => [[sym('x', '..'), file('x/canary'), sym('y', '../..'), dir('y/work'), file('y/work/canary')]],
  },
  {
    name: 'a symlink chain to / written through',
    layers: ({ top }) => [[sym('a', 'b'), sym('b', '/')], [file(`a${top}/pwned`), file('b/pwned2')]],
  },
  {
    name: 'hardlink through a planted symlink to a file outside',
    layers: () => [[sym('evil', '..')], [hard('h', 'evil/canary')], [file('h', 'overwrite')]],
    check: ({ dest }) => assert.is(readFileSync(join(dest, 'h'), 'utf8'), 'overwrite'),
  },
  {
    name: 'whiteouts written through a planted symlink',
    layers: () => [[sym('evil', '..'), sym('up', '../..')], [file('evil/.wh.canary', ''), file('up/work/.wh.canary', ''), file('up/.wh.outer-canary', '')]],
  },
  {
    name: 'opaque whiteout written through a planted symlink',
    layers: () => [[sym('evil', '..'), sym('up', '../..')], [file('evil/.wh..wh..opq', ''), file('up/.wh..wh..opq', '')]],
  },
  {
    name: 'a symlink replacing a directory mid-layer, then written through',
    layers: ({ work }) => [
      [dir('etc'), file('etc/passwd', 'root:x:0:0')],
      [sym('etc', work), file('etc/canary'), dir('etc/newdir'), hard('etc/hl', 'etc/passwd')],
      [dir('d'), sym('d', '..'), file('d/canary')],
    ],
  },
  {
    name: 'a directory entry over a planted symlink does not chmod what it points to',
    layers: ({ work }) => [[sym('s', work), sym('t', '..')], [dir('s', { mode: 0o777, uid: 1234 }), dir('t', { mode: 0o700 })]],
    check: ({ dest }) => assert.ok(lstatSync(join(dest, 's')).isDirectory()),
  },
  {
    name: 'hardlinks pointing outside DEST',
    layers: ({ work, top }) => [[file('target'), hard('h1', '../canary'), hard('h2', `${work}/canary`), hard('h3', '../../work/canary'), hard('h4', `${top}/outer-canary`), hard('h5', '/etc/passwd')]],
    check: ({ dest }) => {
      for (const h of ['h1', 'h2', 'h3', 'h4', 'h5']) assert.not.ok(existsSync(join(dest, h)), h);
    },
  },
  {
    name: 'hardlinks to symlinks pointing outside, then written to',
    layers: ({ work }) => [[sym('s', `${work}/canary`), sym('t', '../canary')], [hard('h', 's'), hard('g', 't')], [file('h', 'over'), file('t/x')]],
    check: ({ dest }) => {
      assert.is(readFileSync(join(dest, 'h'), 'utf8'), 'over');
      assert.is(readlinkSync(join(dest, 'g')), '../canary');
    },
  },
  {
    name: 'whiteouts with `..`',
    layers: () => [[file('keep')], [file('../.wh.canary', ''), file('a/../../.wh.canary', ''), file('../../.wh.work', ''), file('/.wh.keep', '')]],
    check: ({ dest }) => assert.not.ok(existsSync(join(dest, 'keep'))),
  },
  {
    name: 'malformed whiteouts (`.wh...`, `.wh..`) are rejected',
    layers: () => [[file('keep')], [file('.wh...', ''), file('sub/.wh..', '')]],
    expect: ['IMGX_BAD_WHITEOUT'],
  },
  {
    name: 'device nodes (made only as root), also with `..` names',
    layers: () => [
      [
        dir('dev'),
        { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
        { name: '../evil-dev', type: 'char-device', devmajor: 1, devminor: 1, mode: 0o666 },
        { name: 'dev/fifo', type: 'fifo', mode: 0o600 },
      ],
    ],
    check: ({ dest }, w) => {
      assert.ok(lstatSync(join(dest, 'dev/fifo')).isFIFO());
      if (isRoot) {
        assert.ok(lstatSync(join(dest, 'dev/null')).isCharacterDevice());
        assert.ok(lstatSync(join(dest, 'dev/sda')).isBlockDevice());
        assert.ok(lstatSync(join(dest, 'evil-dev')).isCharacterDevice());
      } else {
        assert.not.ok(existsSync(join(dest, 'dev/null')));
        assert.not.ok(existsSync(join(dest, 'evil-dev')));
        assert.is(w.count('IMGX_UNPRIVILEGED'), 1, 'one summary warning');
        assert.is(w.count('IMGX_NO_DEVICE') + w.count('IMGX_NO_CHOWN'), 0, 'and no other privilege warning');
        assert.match(w.summary().join('\n'), /3 device nodes/);
      }
    },
  },
  {
    name: 'setuid and setgid files, a sticky directory',
    layers: () => [[dir('usr/bin'), file('usr/bin/sudo', 'ELF', { mode: 0o4755 }), file('usr/bin/wall', 'ELF', { mode: 0o2755, gid: 5 }), dir('tmp', { mode: 0o1777 })]],
    check: ({ dest }) => {
      const sudo = lstatSync(join(dest, 'usr/bin/sudo'));
      assert.is(sudo.mode & 0o777, 0o755);
      assert.is(lstatSync(join(dest, 'tmp')).mode & 0o7777, 0o1777);
      if (isRoot) {
        assert.is(sudo.mode & 0o7777, 0o4755);
        assert.is(sudo.uid, 0);
        const wall = lstatSync(join(dest, 'usr/bin/wall'));
        assert.is(`${wall.gid} ${(wall.mode & 0o7777).toString(8)}`, '5 2755');
      } else {
        assert.is(sudo.uid, process.geteuid!(), 'unprivileged: owned by the user');
      }
    },
  },
  {
    name: 'a 0000 directory with children',
    layers: () => [[dir('locked', { mode: 0 }), dir('locked/sub', { mode: 0 }), file('locked/sub/f', 'inside')], [file('locked/sub/g', 'later')]],
    check: ({ dest }) => {
      assert.is(lstatSync(join(dest, 'locked')).mode & 0o7777, 0);
      chmodSync(join(dest, 'locked'), 0o700);
      chmodSync(join(dest, 'locked/sub'), 0o700);
      assert.is(readFileSync(join(dest, 'locked/sub/f'), 'utf8'), 'inside');
      assert.is(readFileSync(join(dest, 'locked/sub/g'), 'utf8'), 'later');
    },
  },
  {
    name: 'duplicate entries: the last one wins',
    layers: () => [[file('dup', 'one'), file('dup', 'two'), dir('dd'), file('dd/x'), file('dd', 'file now'), sym('l', '/'), file('l', 'safe'), file('m', 'file'), sym('m', '..')], [file('dup', 'three')]],
    check: ({ dest }) => {
      assert.is(readFileSync(join(dest, 'dup'), 'utf8'), 'three');
      assert.is(readFileSync(join(dest, 'dd'), 'utf8'), 'file now');
      assert.is(readFileSync(join(dest, 'l'), 'utf8'), 'safe');
      assert.is(readlinkSync(join(dest, 'm')), '..');
    },
  },
  {
    name: 'a symlink planted in a lower layer, replaced by a directory, then written into',
    layers: ({ work }) => [[sym('etc', work)], [dir('etc'), file('etc/canary', 'inside')]],
    check: ({ dest }) => assert.is(readFileSync(join(dest, 'etc/canary'), 'utf8'), 'inside'),
  },
];

// ---- the snapshot of everything outside DEST ---------------------------------------------------

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
}

/** One line per path under `top` (DEST's subtree left out): everything a write through a link would change. */
function snapshot(top: string, skip: string): string[] {
  const lines: string[] = [];
  const walk = (rel: string) => {
    const abs = rel ? join(top, rel) : top;
    const st = lstatSync(abs);
    const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFile() ? 'f' : 'o';
    // work/ itself gets DEST (and the staging dir) as new children: its times and link count change.
    const times = rel === 'work' ? '' : ` n=${st.nlink} m=${st.mtimeMs} c=${st.ctimeMs}`;
    let line = `${rel || '.'} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}${times}`;
    if (kind === 'f') line += ` ${st.size} ${sha(abs)}`;
    if (kind === 'l') line += ` -> ${readlinkSync(abs)}`;
    lines.push(line);
    if (kind === 'd') for (const n of readdirSync(abs).sort()) if (join(rel, n) !== skip) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return lines;
}

function setUp(): Env {
  const top = tempDir('imgx-hostile-');
  const work = join(top, 'work');
  mkdirSync(work);
  writeFileSync(join(work, 'canary'), 'canary');
  writeFileSync(join(top, 'outer-canary'), 'outer');
  mkdirSync(join(top, 'outer-dir'));
  writeFileSync(join(top, 'outer-dir', 'f'), 'f');
  symlinkSync('outer-canary', join(top, 'outer-link'));
  return { top, work, dest: join(work, 'dest') };
}

async function runCase(c: Case): Promise<void> {
  const env = setUp();
  const before = snapshot(env.top, 'work/dest');
  const tars = c.layers(env).map((l) => (Buffer.isBuffer(l) ? l : makeTar(l)));
  const layers = layerReadersFromBuffers(tars);
  const warnings = new Warnings();
  let outcome: Outcome = 'ok';
  try {
    const tree = await scanLayers(layers, { warnings });
    await writeDirectory(emitTree(tree, layers), env.dest, { warnings });
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('IMGX_')) throw e;
    outcome = code;
  }
  try {
    assert.equal(snapshot(env.top, 'work/dest'), before, 'nothing outside DEST changed');
    assert.equal(readdirSync(env.work).sort(), outcome === 'ok' ? ['canary', 'dest'] : ['canary'], 'no staging dir left; DEST only on success');
    assert.is(readFileSync(join(env.work, 'canary'), 'utf8'), 'canary');
    const expected = c.expect ?? ['ok'];
    assert.ok(expected.includes(outcome), `outcome ${outcome}, expected one of ${expected.join(', ')}`);
    if (outcome === 'ok') {
      for (const w of c.warns ?? []) assert.ok(warnings.count(w) > 0, `warning ${w}: ${warnings.summary().join('; ')}`);
      c.check?.(env, warnings);
    }
  } finally {
    await removeTree(env.top);
  }
}

// ---- registration --------------------------------------------------------------------------------

const who = isRoot ? 'root' : 'unprivileged';
for (const c of cases) test(`[${who}] ${c.name}`, () => runCase(c));

if (!CHILD) {
  if (isRoot) {
    if (requireTools(test, ['setpriv', 'useradd'])) {
      test('the same suite as an unprivileged user (setpriv)', async () => {
        try {
          execFileSync('id', ['-u', TEST_USER], { stdio: 'ignore' });
        } catch {
          execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER], { stdio: 'ignore' });
        }
        const uid = Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).trim());
        const gid = Number(execFileSync('id', ['-g', TEST_USER], { encoding: 'utf8' }).trim());
        // A work dir the user owns; the child's temp dirs go there.
        const home = tempDir('imgx-hostile-user-');
        chownSync(home, uid, gid);
        const self = fileURLToPath(import.meta.url);
        const child = spawn('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', NODE_BIN, self], {
          env: { ...process.env, IMGX_HOSTILE_CHILD: '1', IMGX_TMPDIR: home, HOME: home, TMPDIR: home },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        const code = await new Promise<number | null>((r) => child.on('close', r));
        const total = Number(/Total:\s+(\d+)/.exec(out)?.[1] ?? -1);
        const passed = Number(/Passed:\s+(\d+)/.exec(out)?.[1] ?? -2);
        assert.ok(code === 0 && total === cases.length && passed === total, `unprivileged run (uid ${uid}) failed, exit ${code}:\n${out}`);
      });
    }
  } else {
    // Run unprivileged from the start: the root half cannot run here.
    requireRoot(test);
  }
}

test.run();
