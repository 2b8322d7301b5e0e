/**
 * The cpuN directories of the CPU tree through a fake addon: shown per reader at LOOKUP and
 * READDIR, and never cached by the kernel (entry timeout 0), while the tree's other names are.
 */
import { constants as osConstants } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { Caller } from '../../src/fuse/fileBackend';
import type { CpuTreePath } from '../../src/fuse/layout';
import { harness } from './fake-native';

const E = osConstants.errno;
const DIR = '/sys/devices/system/cpu';
/** replyEntry's arguments after the id: ino, mode, nlink, size, uid, gid, mtime, entry timeout, ... */
const ENTRY_TIMEOUT_ARG = 7;

/** A host with cpu0..cpu3 (cpu2 absent: a hole, as after hot-removal) and a cpu4 id. */
const PATHS: CpuTreePath[] = [
  `${DIR}/possible`, `${DIR}/smt/active`,
  ...[0, 1, 2, 3, 4].flatMap((n) => [`${DIR}/cpu${n}/online`, `${DIR}/cpu${n}/topology/core_id`] as CpuTreePath[]),
];
const HOST_CPU_IDS = [0, 1, 3, 4];

/** uid 1 sees 1 CPU, uid 2 3 CPUs, uid 3 the host's tree (not isolated), uid 4 an error. */
function cpuDirCount(caller: Caller): number | null | { errno: number } {
  if (caller.uid === 1) return 1;
  if (caller.uid === 2) return 3;
  if (caller.uid === 3) return null;
  return { errno: E.EIO };
}

function setup() {
  return harness({ cpuTree: { paths: PATHS, hostCpuIds: HOST_CPU_IDS } }, { cpuDirCount });
}

describe('cpuN directories per reader', () => {
  it('LOOKUP finds cpuN only below the reader\'s CPU count, or where the host has it for a reader that is not isolated', () => {
    const { outcome, lookupPath } = setup();
    const dir = lookupPath(DIR);
    const seen = (uid: number): string[] =>
      ['cpu0', 'cpu1', 'cpu2', 'cpu3', 'cpu4'].filter((name) => outcome('lookup', dir, { name, uid }) === 'entry');
    expect(seen(1)).toEqual(['cpu0']);
    expect(seen(2)).toEqual(['cpu0', 'cpu1', 'cpu2']);
    expect(seen(3)).toEqual(['cpu0', 'cpu1', 'cpu3', 'cpu4']);
    expect(outcome('lookup', dir, { name: 'cpu0', uid: 4 })).toBe(E.EIO);
  });

  it('the kernel keeps no cpuN name (entry timeout 0), and keeps the names beside and below them', () => {
    const { request, lookupPath } = setup();
    const dir = lookupPath(DIR);
    const cpu0 = request('lookup', dir, { name: 'cpu0', uid: 1 });
    expect(cpu0.args[ENTRY_TIMEOUT_ARG]).toBe(0);
    expect(request('lookup', dir, { name: 'possible', uid: 1 }).args[ENTRY_TIMEOUT_ARG]).toBeGreaterThan(0);
    expect(request('lookup', cpu0.args[0] as number, { name: 'online', uid: 1 }).args[ENTRY_TIMEOUT_ARG]).toBeGreaterThan(0);
  });

  it('READDIR lists the reader\'s cpuN beside every other name; an error lists none', () => {
    const { request, lookupPath } = setup();
    const dir = lookupPath(DIR);
    const names = (uid: number): unknown => request('readdir', dir, { offset: 0, uid }).args[0];
    expect(names(1)).toEqual(['.', '..', 'online', 'possible', 'smt', 'cpu0']);
    expect(names(2)).toEqual(['.', '..', 'online', 'possible', 'smt', 'cpu0', 'cpu1', 'cpu2']);
    expect(names(3)).toEqual(['.', '..', 'online', 'possible', 'smt', 'cpu0', 'cpu1', 'cpu3', 'cpu4']);
    expect(names(4)).toEqual(['.', '..', 'online', 'possible', 'smt']);
  });

  it('a backend that does not count CPUs shows the host\'s shape', () => {
    const { outcome, lookupPath } = harness({ cpuTree: { paths: PATHS, hostCpuIds: HOST_CPU_IDS } });
    expect(outcome('lookup', lookupPath(DIR), { name: 'cpu3' })).toBe('entry');
    expect(outcome('lookup', lookupPath(DIR), { name: 'cpu2' })).toBe(E.ENOENT);
  });
});
