/**
 * The per-container switch is kept (and persisted, fsync'd, on the daemon's main thread) per
 * cgroup written from, so what a container may add to it is bounded: a write through the shared
 * file applies to the writer's own cgroup, and a container that makes child cgroups (a
 * delegated subtree) could add one entry per child, each write rewriting the whole state file
 * (before: 100 children, 100 entries, no bound; a loop over 100k children grew it without end).
 * Past its share (64 entries at or below the attached container) a write of a new entry gets
 * ENOSPC and a log line naming the container, while another container still writes its own.
 * A write that changes nothing is not persisted again: a loop of `echo 0 >` costs no fsync.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, makeChildCgroup, removeChildCgroups, type TestCgroup } from '../helpers/cgroups';
import { startContainer, type RunningContainer } from '../helpers/container';
import { until } from '../helpers/procText';

const CHILDREN = 100;
/** MAX_SWITCH_ENTRIES_PER_CONTAINER (src/switches/controlWrites.ts). */
const SHARE = 64;

/** One process: for each list of cgroup.procs files, joins them, then writes VALUE through FILE; prints each errno (0: written). */
const WRITER = `
import os, sys
file, value = sys.argv[1], sys.argv[2]
out = []
for group in sys.argv[3:]:
    for procs in group.split(','):
        with open(procs, 'w') as f: f.write(str(os.getpid()))
    try:
        fd = os.open(file, os.O_WRONLY)
        try:
            os.write(fd, value.encode()); out.append('0')
        finally:
            os.close(fd)
    except OSError as e:
        out.append(str(e.errno))
print(' '.join(out))
`;

function write(file: string, value: string, groups: string[][]): number[] {
  const r = spawnSync('python3', ['-c', WRITER, file, value, ...groups.map((g) => g.join(','))], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`python3 failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim().split(' ').map(Number);
}

describe('per-container share of the switch entries', () => {
  let daemon: DaemonHandle;
  let a: TestCgroup;
  let b: TestCgroup;
  const containers: RunningContainer[] = [];
  const childDirs: string[][] = [];
  let shared: string;
  let stateFile: string;

  beforeAll(async () => {
    a = createTestCgroup('switchA');
    b = createTestCgroup('switchB');
    const prefix = path.posix.join(path.posix.dirname(a.key), 'isolfs-test-switch');
    daemon = await startDaemon({ args: ['--attach', prefix] });
    shared = path.join(daemon.mountpoint, 'proc/sys/kernel/container_stats_isolated');
    stateFile = path.join(daemon.stateDir, 'switches.json');
    for (const cg of [a, b]) containers.push(startContainer(cg, { mountpoint: null }, 'sleep 600'));
    const attached = (cg: TestCgroup) => fs.existsSync(path.join(daemon.mountpoint, 'containers', encodeURIComponent(cg.key)));
    await until('containers A and B attached', () => attached(a) && attached(b), Boolean, 20_000);
    for (let i = 0; i < CHILDREN; i++) childDirs.push(makeChildCgroup(a, `child${i}`));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(containers.map((c) => c.stop()));
    await daemon?.cleanup();
    await removeChildCgroups(childDirs.flat());
    await a?.remove();
    await b?.remove();
  }, 60_000);

  it('A\'s children together add at most its share (ENOSPC past it, logged); B still writes its own', async () => {
    const errnos = write(shared, '0\n', childDirs.map((dirs) => dirs.map((d) => path.join(d, 'cgroup.procs'))));
    const written = errnos.filter((e) => e === 0).length;
    expect(written, errnos.join(' ')).toBe(SHARE);
    expect(errnos.slice(SHARE).every((e) => e === 28), errnos.join(' ')).toBe(true); // ENOSPC
    const entries = Object.keys(JSON.parse(fs.readFileSync(stateFile, 'utf8')).containers as object);
    expect(entries.filter((k) => k.startsWith(`${a.key}/`))).toHaveLength(SHARE);
    expect(write(shared, '0\n', [b.procsFiles])).toEqual([0]);
    await until('a log line naming A', () => daemon.logs.some((l) => l.includes('switch entries') && l.includes(JSON.stringify(a.key))), Boolean, 5000);
    // An entry already there may still change.
    expect(write(shared, '1\n', [childDirs[0].map((d) => path.join(d, 'cgroup.procs'))])).toEqual([0]);
  }, 60_000);

  it('a write that changes nothing is acknowledged without rewriting the state file', () => {
    expect(write(shared, '0\n', [b.procsFiles])).toEqual([0]);
    const before = fs.statSync(stateFile).ino;
    expect(write(shared, '0\n', [b.procsFiles, b.procsFiles, b.procsFiles])).toEqual([0, 0, 0]);
    expect(fs.statSync(stateFile).ino).toBe(before);
    expect(write(shared, '1\n', [b.procsFiles])).toEqual([0]);
    expect(fs.statSync(stateFile).ino).not.toBe(before);
  }, 30_000);
});
