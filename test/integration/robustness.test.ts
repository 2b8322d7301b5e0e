/**
 * The daemon's edges: clear one-line start-up errors with a non-zero exit, errnos for requests
 * that make no sense, and a malformed cgroup file answered with EIO and a log line, never a crash.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, startDaemon, type DaemonHandle } from '../helpers/daemon';
import { isPureV2, ownCgroups } from '../helpers/cgroups';

function isolfs(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return result(spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 }));
}

/**
 * The CLI run by a user other than root: in a user namespace of its own with no uid mapped,
 * where getuid() says 65534 (the overflow uid). Not setpriv to uid 65534: the checkout may sit
 * in a directory only root may enter (a clone in `mktemp -d`), and a process in an unmapped
 * user namespace still reaches root's files as their owner, so the CLI loads from anywhere.
 */
function isolfsAsNonRoot(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return result(spawnSync('unshare', ['--user', process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 20_000 }));
}

function result(r: SpawnSyncReturns<string>): { status: number | null; stdout: string; stderr: string } {
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('start-up errors', () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-cli-'));
  afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it('--help and --version succeed', () => {
    const help = isolfs(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: isolfs \[options\] <mountpoint>/);
    expect(isolfs(['--version']).stdout).toMatch(/^isolfs \d+\.\d+\.\d+\n$/);
  });

  it.each([
    ['a missing mountpoint', () => [path.join(scratch, 'nope')], /mountpoint .*nope does not exist/],
    ['a mountpoint that is a file', () => { const f = path.join(scratch, 'file'); fs.writeFileSync(f, ''); return [f]; }, /is not a directory/],
    ['a busy mountpoint', () => ['/proc'], /is busy: something is already mounted there/],
  ])('refuses %s with one line and exit 1', (_what, args, message) => {
    const r = isolfs([...args(), '--state-dir', path.join(scratch, 'state')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses a state directory that is a file with one line and exit 1, leaving the file as it was', () => {
    const mnt = fs.mkdtempSync(path.join(scratch, 'mnt-'));
    const stateFile = path.join(scratch, 'state-is-a-file');
    fs.writeFileSync(stateFile, 'precious\n');
    const r = isolfs([mnt, '--state-dir', stateFile]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^isolfs: state directory .*state-is-a-file: exists and is not a directory\n$/);
    expect(fs.readFileSync(stateFile, 'utf8')).toBe('precious\n');
  });

  it('refuses a switches.json that is a directory with one line and exit 1, deleting nothing', () => {
    const mnt = fs.mkdtempSync(path.join(scratch, 'mnt-'));
    const stateDir = fs.mkdtempSync(path.join(scratch, 'state-'));
    fs.mkdirSync(path.join(stateDir, 'switches.json'));
    fs.writeFileSync(path.join(stateDir, 'switches.json', 'inside'), 'kept\n');
    const r = isolfs([mnt, '--state-dir', stateDir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^isolfs: state file .*switches\.json is a directory: move it away/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.readFileSync(path.join(stateDir, 'switches.json', 'inside'), 'utf8')).toBe('kept\n');
    expect(fs.readdirSync(stateDir)).toEqual(['switches.json']);
  });

  it('refuses a cgroup root with no cgroup in it with one line and exit 1', () => {
    const mnt = fs.mkdtempSync(path.join(scratch, 'mnt-'));
    const r = isolfs([mnt, '--state-dir', path.join(scratch, 'state'), '--cgroup-root', fs.mkdtempSync(path.join(scratch, 'cg-'))]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^isolfs: cgroup hierarchy under .*: no cgroup v1 controller mount and no cgroup2 mount/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses to run as non-root', () => {
    const uid = spawnSync('unshare', ['--user', 'id', '-u'], { encoding: 'utf8' }).stdout.trim();
    expect(uid).toBe('65534');
    const r = isolfsAsNonRoot([scratch, '--state-dir', path.join(scratch, 'state')]);
    expect(r.stderr).toMatch(/^isolfs: must run as root/);
    expect(r.status).toBe(1);
  });

  it('rejects bad flags with usage and exit 2', () => {
    expect(isolfs(['--loop', 'sideways', scratch]).status).toBe(2);
    expect(isolfs(['--http', 'nowhere', scratch]).status).toBe(2);
    expect(isolfs(['--attach', 'kubepods', scratch]).status).toBe(2);
    for (const bad of ['0', '-1', '1.5', '1e3', 'many', '']) {
      const r = isolfs(['--max-open-files', bad, scratch]);
      expect(r.status, `--max-open-files ${bad}`).toBe(2);
      expect(r.stderr).toMatch(bad === '-1' ? /--max-open-files/ : /--max-open-files must be an integer >= 1/);
    }
    expect(isolfs(['--watchdog-abort-ms', '999', scratch]).stderr).toMatch(/--watchdog-abort-ms must be an integer >= 1000/);
    const unknown = isolfs(['--frobnicate', scratch]);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/Usage:/);
  });
});

describe('requests that make no sense', () => {
  let daemon: DaemonHandle;
  beforeAll(async () => { daemon = await startDaemon(); });
  afterAll(async () => { await daemon?.cleanup(); });

  it('answers ENOENT, EACCES, EISDIR and friends, and keeps serving', () => {
    const mnt = daemon.mountpoint;
    const code = (f: () => unknown): string | undefined => {
      try { f(); return undefined; } catch (err) { return (err as NodeJS.ErrnoException).code; }
    };
    expect(code(() => fs.readFileSync(path.join(mnt, 'proc/nonexistent')))).toBe('ENOENT');
    expect(code(() => fs.writeFileSync(path.join(mnt, 'proc/meminfo'), 'x'))).toBe('EACCES');
    expect(code(() => fs.readFileSync(path.join(mnt, 'proc')))).toBe('EISDIR');
    expect(code(() => fs.mkdirSync(path.join(mnt, 'proc/new')))).toMatch(/^E/);
    expect(code(() => fs.unlinkSync(path.join(mnt, 'proc/meminfo')))).toMatch(/^E/);
    expect(code(() => fs.renameSync(path.join(mnt, 'proc/stat'), path.join(mnt, 'proc/stat2')))).toMatch(/^E/);
    expect(code(() => fs.readFileSync(path.join(mnt, 'containers/%2Fno-such-container/proc/meminfo')))).toBe('ENOENT');
    expect(fs.readdirSync(path.join(mnt, 'proc')).sort()).toEqual(
      ['cpuinfo', 'diskstats', 'loadavg', 'meminfo', 'partitions', 'pressure', 'stat', 'swaps', 'sys', 'uptime', 'vmstat']);
    expect(fs.readFileSync(path.join(mnt, 'proc/meminfo'), 'utf8')).toMatch(/^MemTotal:/);
    expect(daemon.process.exitCode).toBeNull();
  });
});

describe('--max-open-files', () => {
  let daemon: DaemonHandle;
  beforeAll(async () => { daemon = await startDaemon({ args: ['--max-open-files', '3'] }); });
  afterAll(async () => { await daemon?.cleanup(); });

  it('answers ENFILE past the limit with a warning, and opens again once handles close', async () => {
    const file = path.join(daemon.mountpoint, 'proc/meminfo');
    const held = [1, 2, 3].map(() => fs.openSync(file, 'r'));
    let code: string | undefined;
    try {
      try { fs.closeSync(fs.openSync(file, 'r')); } catch (err) { code = (err as NodeJS.ErrnoException).code; }
    } finally {
      for (const fd of held) fs.closeSync(fd);
    }
    expect(code).toBe('ENFILE');
    await new Promise((r) => setTimeout(r, 100));
    expect(daemon.logs.some((l) => l.includes('open-file limit reached: answering ENFILE') && l.includes('"maxOpenFiles":3')), daemon.logs.join('\n')).toBe(true);
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^MemTotal:/);
  });
});

describe('a malformed cgroup file', () => {
  let daemon: DaemonHandle;
  const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-fakecg-'));

  beforeAll(async () => {
    // A cgroup tree in the kernel's layout whose files for OUR cgroup hold garbage.
    const own = ownCgroups();
    if (isPureV2()) {
      fs.writeFileSync(path.join(fake, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
      const dir = path.join(fake, own.unified);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'memory.max'), 'a lot\n');
      fs.writeFileSync(path.join(dir, 'memory.current'), '12\n');
      fs.writeFileSync(path.join(dir, 'memory.stat'), 'anon twelve\n');
    } else {
      const root = path.join(fake, 'memory');
      fs.mkdirSync(root);
      fs.writeFileSync(path.join(root, 'cgroup.procs'), '');
      const dir = path.join(root, own.v1.get('memory') ?? '/');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), 'a lot\n');
      fs.writeFileSync(path.join(dir, 'memory.usage_in_bytes'), '12\n');
      fs.writeFileSync(path.join(dir, 'memory.stat'), 'cache twelve\n');
    }
    daemon = await startDaemon({ args: ['--cgroup-root', fake] });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    fs.rmSync(fake, { recursive: true, force: true });
  });

  it('answers EIO with a log line naming the file, and the daemon keeps serving', async () => {
    let code: string | undefined;
    try { fs.readFileSync(path.join(daemon.mountpoint, 'proc/meminfo')); } catch (err) { code = (err as NodeJS.ErrnoException).code; }
    expect(code).toBe('EIO');
    await new Promise((r) => setTimeout(r, 100));
    const line = daemon.logs.find((l) => l.includes('cannot build the view'));
    expect(line, daemon.logs.join('\n')).toBeDefined();
    expect(line).toMatch(/memory\.(stat|max|limit_in_bytes)/);
    // Other files of the same reader, and the switches, still answer.
    expect(fs.readFileSync(path.join(daemon.mountpoint, 'proc/cpuinfo'), 'utf8')).toMatch(/^processor/);
    expect(fs.readFileSync(path.join(daemon.mountpoint, 'proc/sys/kernel/stats_isolated'), 'utf8')).toBe('1\n');
    expect(daemon.process.exitCode).toBeNull();
  });
});
