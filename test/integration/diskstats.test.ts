/**
 * End to end: a container that writes 50 MiB with `dd oflag=direct` sees its own disk in
 * /proc/diskstats (its sectors, not the host's), only that disk in /proc/partitions, its own
 * pgpgout in /proc/vmstat, and procps' `vmstat -d` agrees; a sibling that did no I/O sees none of it.
 * (sysstat's iostat 12.x reads /sys/block/<dev>/stat, not /proc/diskstats: it still shows the host.)
 *
 * The disk: on the host (cgroup v1 blkio), the one under the temporary directory. There the
 * kernel (6.18) counts blkio's throttle statistics only on a disk some cgroup has set a throttle
 * rule on, so the container gets a rule that never throttles (1 TiB/s), as `docker run
 * --device-write-bps` would set one. In the cgroup v2 VM (io.stat counts every disk), /tmp is
 * tmpfs and / is 9p: a zram disk made for the test (zram-control/hot_add), written raw.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, isPureV2, type TestCgroup } from '../helpers/cgroups';
import { runInContainer } from '../helpers/container';
import { ok, until } from '../helpers/procText';

const WRITTEN_MIB = 50;
const WRITTEN_SECTORS = (WRITTEN_MIB * 1024 * 1024) / 512;
const FILES = ['/proc/diskstats', '/proc/partitions', '/proc/vmstat', '/proc/uptime'];

interface Disk {
  /** "major:minor" of the whole disk (a cgroup's I/O is counted per disk). */
  device: string;
  name: string;
  /** Where dd writes. */
  target: string;
  remove: () => void;
}

/** The whole disk under `dir`: its partition's parent when `dir` is on a partition. */
function diskUnder(dir: string): Disk {
  const { dev } = fs.statSync(dir);
  const sysDir = fs.realpathSync(`/sys/dev/block/${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}`);
  const diskDir = fs.existsSync(path.join(sysDir, 'partition')) ? path.dirname(sysDir) : sysDir;
  const scratch = fs.mkdtempSync(path.join(dir, 'isolfs-disk-'));
  return {
    device: fs.readFileSync(path.join(diskDir, 'dev'), 'utf8').trim(),
    name: path.basename(diskDir),
    target: path.join(scratch, 'written'),
    remove: () => fs.rmSync(scratch, { recursive: true, force: true }),
  };
}

/** A fresh zram disk of 64 MiB (the VM loads the zram module for its swap). */
function newZramDisk(): Disk {
  const id = fs.readFileSync('/sys/class/zram-control/hot_add', 'utf8').trim();
  fs.writeFileSync(`/sys/block/zram${id}/disksize`, '64M');
  return {
    device: fs.readFileSync(`/sys/block/zram${id}/dev`, 'utf8').trim(),
    name: `zram${id}`,
    target: `/dev/zram${id}`,
    remove: () => fs.writeFileSync('/sys/class/zram-control/hot_remove', id),
  };
}

/** name -> the 17 counters, of every line of a diskstats text. */
function diskstatsLines(text: string): Map<string, bigint[]> {
  const lines = new Map<string, bigint[]>();
  for (const line of text.split('\n').filter(Boolean)) {
    const [, , name, ...counters] = line.trim().split(/\s+/);
    expect(counters, line).toHaveLength(17);
    lines.set(name, counters.map(BigInt));
  }
  return lines;
}

function section(output: string, index: number): string {
  return output.split('@@@\n')[index] ?? '';
}

describe('/proc/diskstats, /proc/partitions and vmstat pgpgout in a container that writes 50 MiB', () => {
  let daemon: DaemonHandle;
  let writer: TestCgroup;
  let sibling: TestCgroup;
  let disk: Disk;
  let output: string;

  beforeAll(async () => {
    daemon = await startDaemon();
    writer = createTestCgroup('disk-writer');
    sibling = createTestCgroup('disk-sibling');
    disk = isPureV2() ? newZramDisk() : diskUnder(os.tmpdir());
    const blkio = writer.dirs.get('blkio');
    if (blkio !== undefined) fs.writeFileSync(path.join(blkio, 'blkio.throttle.write_bps_device'), `${disk.device} ${2 ** 40}`);
    const command = [
      `dd if=/dev/zero of=${disk.target} bs=1M count=${WRITTEN_MIB} oflag=direct status=none`,
      'cat /proc/diskstats', 'echo @@@', 'cat /proc/partitions', 'echo @@@',
      'grep -E "^pgpg(in|out) " /proc/vmstat', 'echo @@@', 'vmstat -d',
    ].join(' && ');
    output = ok(await runInContainer(writer, { mountpoint: daemon.mountpoint, files: FILES }, command));
    if (process.env.ISOLFS_DISK_DEBUG) console.log(output);
  });

  afterAll(async () => {
    await daemon?.cleanup();
    await writer?.remove();
    await sibling?.remove();
    disk?.remove();
  });

  it('diskstats: a line for the disk written, with at least its 50 MiB of sectors, and none for disks it did not touch', () => {
    const lines = diskstatsLines(section(output, 0));
    const counters = lines.get(disk.name);
    expect(counters, section(output, 0)).toBeDefined();
    const [, , , , writes, , sectorsWritten] = counters as bigint[];
    expect(sectorsWritten).toBeGreaterThanOrEqual(BigInt(WRITTEN_SECTORS));
    expect(writes).toBeGreaterThanOrEqual(BigInt(WRITTEN_MIB)); // one bio per 1 MiB block, at least
    // Not the host's counters: the host's line for this disk has everything ever written to it.
    const hostLine = diskstatsLines(fs.readFileSync('/proc/diskstats', 'utf8')).get(disk.name) as bigint[];
    expect(sectorsWritten).toBeLessThanOrEqual(hostLine[6]);
    const hostNames = new Set(diskstatsLines(fs.readFileSync('/proc/diskstats', 'utf8')).keys());
    expect(hostNames.size).toBeGreaterThan(lines.size);
  });

  it('partitions: the header and exactly the disks diskstats shows', () => {
    const text = section(output, 1);
    expect(text.startsWith('major minor  #blocks  name\n\n')).toBe(true);
    const names = text.split('\n').slice(2).filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
    expect(names).toContain(disk.name);
    expect(new Set(names)).toEqual(new Set(diskstatsLines(section(output, 0)).keys()));
  });

  it('vmstat: pgpgout counts the 50 MiB in KiB', () => {
    const pgpgout = /^pgpgout (\d+)$/m.exec(section(output, 2));
    expect(pgpgout, section(output, 2)).not.toBeNull();
    expect(BigInt((pgpgout as RegExpExecArray)[1])).toBeGreaterThanOrEqual(BigInt(WRITTEN_MIB * 1024));
  });

  it('vmstat -d (procps, which reads /proc/diskstats) reports the disk with its sectors written', () => {
    const report = section(output, 3);
    const row = report.split('\n').find((l) => l.startsWith(`${disk.name} `));
    expect(row, report).toBeDefined();
    // disk- reads: total merged sectors ms, writes: total merged sectors ms, IO: cur sec
    const sectorsWritten = Number((row as string).trim().split(/\s+/)[7]);
    expect(sectorsWritten).toBeGreaterThanOrEqual(WRITTEN_SECTORS);
    expect(report.split('\n').filter((l) => /^\S+\s+\d/.test(l))).toHaveLength(diskstatsLines(section(output, 0)).size);
  });

  // v1 only: removing a child cgroup drops its I/O from the parent's _recursive counters there
  // (measured on 6.18; blkio.reset_stats does not touch the throttle counters). v2 keeps a removed
  // child's counts in its parent, so its io.stat does not drop.
  it.runIf(!isPureV2())('(v1) when a child cgroup that did I/O is removed, the container\'s diskstats and pgpgout do not go backwards', async () => {
    const blkio = writer.dirs.get('blkio') as string;
    const child = path.join(blkio, 'job');
    fs.mkdirSync(child);
    const read = 'cat /proc/diskstats; echo @@@; grep "^pgpgout " /proc/vmstat';
    const recursiveWriteBytes = () => BigInt(new RegExp(`^${disk.device} Write (\\d+)$`, 'm').exec(fs.readFileSync(path.join(blkio, 'blkio.throttle.io_service_bytes_recursive'), 'utf8'))?.[1] ?? '0');
    let before: string;
    let written = 0n;
    try {
      before = ok(await runInContainer(writer, { mountpoint: daemon.mountpoint, files: FILES }, [
        `echo $$ > ${child}/cgroup.procs`, `dd if=/dev/zero of=${disk.target} bs=1M count=8 oflag=direct status=none`,
        `echo $$ > ${blkio}/cgroup.procs`, read,
      ].join(' && ')));
    } finally {
      written = recursiveWriteBytes();
      fs.rmdirSync(child);
    }
    // The kernel's counter did drop, once the child is offline (else this test would prove nothing).
    await until('the parent\'s _recursive Write to drop', recursiveWriteBytes, (bytes) => bytes < written, 10_000);
    const after = ok(await runInContainer(writer, { mountpoint: daemon.mountpoint, files: FILES }, read));
    const [was, now] = [before, after].map((text) => diskstatsLines(section(text, 0)).get(disk.name) as bigint[]);
    expect(now, after).toBeDefined();
    for (const [i, value] of was.entries()) expect([i, now[i] >= value]).toEqual([i, true]);
    expect(was[6]).toBeGreaterThanOrEqual(BigInt(WRITTEN_SECTORS + 8 * 2048));
    const pgpgout = (text: string) => BigInt(/^pgpgout (\d+)$/m.exec(section(text, 1))?.[1] ?? '0');
    expect(pgpgout(after)).toBeGreaterThanOrEqual(pgpgout(before));
  });

  it('a sibling that did no I/O sees no line of the writer\'s', async () => {
    const text = ok(await runInContainer(sibling, { mountpoint: daemon.mountpoint, files: FILES }, 'cat /proc/diskstats; echo @@@; grep "^pgpgout " /proc/vmstat'));
    const own = diskstatsLines(section(text, 0)).get(disk.name);
    expect(own?.[6] ?? 0n).toBeLessThan(BigInt(WRITTEN_SECTORS));
    expect(BigInt(/^pgpgout (\d+)$/m.exec(section(text, 1))?.[1] ?? 'NaN')).toBeLessThan(BigInt(WRITTEN_MIB * 1024));
  });
});
