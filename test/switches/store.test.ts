/**
 * SwitchStore on temp dirs (no root): what is acknowledged survives a reopen, a crash mid-write
 * and a write that fails; a state file that is not ours is moved aside, never trusted or lost.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { STATE_FILE, StateFileError, SwitchStore, type SwitchLogger } from '../../src/switches/store';

interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

function recordingLogger(lines: LogLine[]): SwitchLogger {
  return {
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj, msg }),
  };
}

let dir: string;
let stateDir: string;
let stateFile: string;
let log: LogLine[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-store-'));
  stateDir = path.join(dir, 'state');
  stateFile = path.join(stateDir, STATE_FILE);
  log = [];
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

function open(flag?: boolean): SwitchStore {
  return SwitchStore.open(stateDir, recordingLogger(log), flag);
}

function persisted(): unknown {
  return JSON.parse(fs.readFileSync(stateFile, 'utf8'));
}

/** The files in the state dir other than the state file itself. */
function strayFiles(): string[] {
  return fs.readdirSync(stateDir).filter((name) => name !== STATE_FILE);
}

describe('first start', () => {
  it('creates the state dir (0700) and a state file (0600) holding the defaults', () => {
    const store = open();
    expect(store.hostIsolated).toBe(true);
    expect(store.containerKeys()).toEqual([]);
    expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(stateFile).mode & 0o777).toBe(0o600);
    expect(persisted()).toEqual({ version: 1, hostIsolated: true, containers: {} });
    expect(strayFiles()).toEqual([]);
  });

  it('takes --host-isolated 0 when nothing was persisted', () => {
    expect(open(false).hostIsolated).toBe(false);
    expect(persisted()).toMatchObject({ hostIsolated: false });
  });
});

describe('persistence across a reopen', () => {
  it('keeps the host switch and every container entry', () => {
    const store = open();
    store.setHostIsolated(false);
    store.setContainer('/kubepods/a', false);
    store.setContainer('/kubepods/b', true);
    const again = open();
    expect(again.hostIsolated).toBe(false);
    expect(again.explicitContainerValue('/kubepods/a')).toBe(false);
    expect(again.explicitContainerValue('/kubepods/b')).toBe(true);
    expect(again.containerKeys().sort((a, b) => a.localeCompare(b))).toEqual(['/kubepods/a', '/kubepods/b']);
    expect(persisted()).toEqual({ version: 1, hostIsolated: false, containers: { '/kubepods/a': 0, '/kubepods/b': 1 } });
  });

  it('lets a persisted host switch win over --host-isolated, and warns that it did', () => {
    open().setHostIsolated(false);
    log.length = 0;
    expect(open(true).hostIsolated).toBe(false);
    expect(log.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({ obj: { persisted: false, flag: true } }),
    ]);
  });

  it('does not warn when the flag agrees with what was persisted', () => {
    open().setHostIsolated(false);
    log.length = 0;
    open(false);
    expect(log.filter((l) => l.level !== 'info')).toEqual([]);
  });

  it('loads a large valid state (20,000 containers) unchanged', () => {
    const containers: Record<string, 0 | 1> = {};
    for (let i = 0; i < 20_000; i++) containers[`/kubepods/pod${i}/ctr`] = (i % 3 === 0 ? 0 : 1);
    fs.mkdirSync(stateDir);
    fs.writeFileSync(stateFile, JSON.stringify({ version: 1, hostIsolated: true, containers }));
    const store = open();
    expect(store.containerKeys()).toHaveLength(20_000);
    expect(store.optedOutCount).toBe(6667);
    expect(store.explicitContainerValue('/kubepods/pod3/ctr')).toBe(false);
    expect(store.explicitContainerValue('/kubepods/pod4/ctr')).toBe(true);
  });
});

describe('a state file that is not a valid state', () => {
  const garbage: [string, string | Buffer][] = [
    ['empty', ''],
    ['not JSON', '{"version": 1, "hostIsolated": tru'],
    ['binary junk', Buffer.from([0x00, 0xff, 0xfe, 0x7b, 0x0a, 0x80])],
    ['JSON null', 'null'],
    ['a JSON array', '[1, 2]'],
    ['a JSON string', '"hostIsolated"'],
    ['an unknown version', '{"version": 2, "hostIsolated": false, "containers": {}}'],
    ['no version', '{"hostIsolated": false, "containers": {}}'],
    ['hostIsolated as a number', '{"version": 1, "hostIsolated": 0, "containers": {}}'],
    ['hostIsolated as a string', '{"version": 1, "hostIsolated": "false", "containers": {}}'],
    ['containers missing', '{"version": 1, "hostIsolated": false}'],
    ['containers as an array', '{"version": 1, "hostIsolated": false, "containers": ["/a"]}'],
    ['a container key that is not a cgroup path', '{"version": 1, "hostIsolated": false, "containers": {"a": 0}}'],
    ['a container value of 2', '{"version": 1, "hostIsolated": false, "containers": {"/a": 2}}'],
    ['a container value of false', '{"version": 1, "hostIsolated": false, "containers": {"/a": false}}'],
    ['an oversized file of garbage (16 MiB)', Buffer.alloc(16 * 1024 * 1024, 'x')],
  ];

  it.each(garbage)('%s: moved aside byte for byte, logged as an error, defaults written', (_name, content) => {
    fs.mkdirSync(stateDir);
    fs.writeFileSync(stateFile, content);
    const store = open(false);
    // The defaults: nothing from the bad file is believed (several cases say hostIsolated false).
    expect(store.hostIsolated).toBe(false);
    expect(store.containerKeys()).toEqual([]);
    const aside = strayFiles();
    expect(aside).toHaveLength(1);
    expect(aside[0]).toMatch(/^switches\.json\.corrupt-\d{4}-\d\d-\d\dT[\d-]+Z$/);
    expect(fs.readFileSync(path.join(stateDir, aside[0]!)).equals(Buffer.from(content))).toBe(true);
    const errors = log.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.obj).toMatchObject({ file: stateFile, movedTo: path.join(stateDir, aside[0]!) });
    expect(persisted()).toEqual({ version: 1, hostIsolated: false, containers: {} });
  });

  it('a state file that is a directory is refused, and nothing is changed', () => {
    fs.mkdirSync(stateFile, { recursive: true });
    expect(() => open()).toThrow(StateFileError);
    expect(() => open()).toThrow(`state file ${stateFile} is a directory`);
    expect(fs.statSync(stateFile).isDirectory()).toBe(true);
    expect(strayFiles()).toEqual([]);
  });
});

describe('a state dir that cannot be used', () => {
  it('a regular file where the dir should be: a StateFileError naming it', () => {
    fs.writeFileSync(stateDir, 'not a dir');
    expect(() => open()).toThrow(StateFileError);
    expect(() => open()).toThrow(`state directory ${stateDir}: exists and is not a directory`);
    expect(fs.readFileSync(stateDir, 'utf8')).toBe('not a dir');
  });

  it('a file where a parent of it should be: a StateFileError naming the dir', () => {
    fs.writeFileSync(path.join(dir, 'parent'), '');
    const below = path.join(dir, 'parent', 'state');
    expect(() => SwitchStore.open(below, recordingLogger(log), undefined)).toThrow(
      `state directory ${below}: a parent of it is not a directory`,
    );
  });

  it('a dangling symlink where the dir should be is named, not replaced', () => {
    fs.symlinkSync(path.join(dir, 'nowhere'), stateDir);
    expect(() => open()).toThrow(StateFileError);
    expect(fs.lstatSync(stateDir).isSymbolicLink()).toBe(true);
  });
});

describe('a write that cannot be made durable is not acknowledged', () => {
  /** Makes every later write fail as a full or read-only dir would: the temp file cannot be created. */
  function blockWrites(): void {
    fs.mkdirSync(path.join(stateDir, `.${STATE_FILE}.${process.pid}.tmp`));
  }

  it('setHostIsolated throws, keeps the old value in memory and on disk', () => {
    const store = open();
    blockWrites();
    expect(() => store.setHostIsolated(false)).toThrow();
    expect(store.hostIsolated).toBe(true);
    expect(persisted()).toMatchObject({ hostIsolated: true });
  });

  it('setContainer throws and restores the previous entry, or its absence', () => {
    const store = open();
    store.setContainer('/a', false);
    blockWrites();
    expect(() => store.setContainer('/a', true)).toThrow();
    expect(() => store.setContainer('/b', false)).toThrow();
    expect(store.explicitContainerValue('/a')).toBe(false);
    expect(store.explicitContainerValue('/b')).toBeUndefined();
    expect(store.containerKeys()).toEqual(['/a']);
    expect(persisted()).toMatchObject({ containers: { '/a': 0 } });
  });

  it('the state dir replaced by a file after the start: the write throws, the value stays', () => {
    const store = open();
    fs.rmSync(stateDir, { recursive: true });
    fs.writeFileSync(stateDir, '');
    expect(() => store.setContainer('/a', false)).toThrow(/ENOTDIR/);
    expect(store.explicitContainerValue('/a')).toBeUndefined();
    expect(store.optedOutCount).toBe(0);
  });
});

describe('atomic writes', () => {
  it('a crash between writing the temp file and the rename leaves the last acknowledged state', () => {
    const store = open();
    store.setContainer('/a', false);
    vi.spyOn(fs, 'renameSync').mockImplementationOnce(() => {
      throw new Error('killed before rename');
    });
    expect(() => store.setContainer('/a', true)).toThrow('killed before rename');
    // A new process after the crash finds the previous state, and the half-done temp file beside it.
    const afterCrash = open();
    expect(afterCrash.explicitContainerValue('/a')).toBe(false);
    expect(strayFiles()).toEqual([`.${STATE_FILE}.${process.pid}.tmp`]);
  });

  it('a torn temp file left by a crash is ignored at start and replaced by the next write', () => {
    open().setHostIsolated(false);
    const temp = path.join(stateDir, `.${STATE_FILE}.${process.pid}.tmp`);
    fs.writeFileSync(temp, '{"version": 1, "hostIs');
    const store = open();
    expect(store.hostIsolated).toBe(false);
    store.setHostIsolated(true);
    expect(strayFiles()).toEqual([]);
    expect(persisted()).toMatchObject({ hostIsolated: true });
  });

  it('fsyncs the data before the rename and the directory after it', () => {
    const store = open();
    const calls: string[] = [];
    const fsync = fs.fsyncSync;
    const rename = fs.renameSync;
    vi.spyOn(fs, 'fsyncSync').mockImplementation((fd) => {
      calls.push(fs.fstatSync(fd).isDirectory() ? 'fsync dir' : 'fsync file');
      fsync(fd);
    });
    vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      calls.push('rename');
      rename(from, to);
    });
    store.setContainer('/a', true);
    expect(calls).toEqual(['fsync file', 'rename', 'fsync dir']);
  });
});

describe('explicitContainerValue', () => {
  it('is the entry of the key itself, else of its nearest ancestor, else undefined', () => {
    const store = open();
    store.setContainer('/kubepods', false);
    store.setContainer('/kubepods/pod1', true);
    expect(store.explicitContainerValue('/kubepods/pod1')).toBe(true);
    expect(store.explicitContainerValue('/kubepods/pod1/ctr/child')).toBe(true);
    expect(store.explicitContainerValue('/kubepods/pod2/ctr')).toBe(false);
    expect(store.explicitContainerValue('/kubepods')).toBe(false);
    expect(store.explicitContainerValue('/system.slice/x')).toBeUndefined();
    expect(store.explicitContainerValue('/')).toBeUndefined();
  });

  it('a name that merely starts with a key is not below it', () => {
    const store = open();
    store.setContainer('/kube', false);
    expect(store.explicitContainerValue('/kubepods/a')).toBeUndefined();
    expect(store.explicitContainerValue('/kube/a')).toBe(false);
  });

  it('an entry for / applies to every cgroup without a nearer one', () => {
    const store = open();
    store.setContainer('/', false);
    store.setContainer('/a/b', true);
    expect(store.explicitContainerValue('/x/y/z')).toBe(false);
    expect(store.explicitContainerValue('/a')).toBe(false);
    expect(store.explicitContainerValue('/a/b/c')).toBe(true);
  });
});

describe('optedOutCount and forget', () => {
  it('counts the entries set to 0, whatever else is set', () => {
    const store = open();
    expect(store.optedOutCount).toBe(0);
    store.setContainer('/a', false);
    store.setContainer('/b', false);
    store.setContainer('/c', true);
    store.setHostIsolated(false);
    expect(store.optedOutCount).toBe(2);
    store.setContainer('/a', true);
    expect(store.optedOutCount).toBe(1);
  });

  it('forget drops the named entries and persists the result', () => {
    const store = open();
    store.setContainer('/a', false);
    store.setContainer('/b', false);
    store.setContainer('/c', true);
    store.forget(['/a', '/c', '/never-set']);
    expect(store.containerKeys()).toEqual(['/b']);
    expect(store.optedOutCount).toBe(1);
    expect(open().containerKeys()).toEqual(['/b']);
  });

  it('forget of keys that have no entry writes nothing', () => {
    const store = open();
    store.setContainer('/a', false);
    const rename = vi.spyOn(fs, 'renameSync');
    store.forget(['/b', '/a/child']);
    store.forget([]);
    expect(rename).not.toHaveBeenCalled();
    expect(store.containerKeys()).toEqual(['/a']);
  });
});
