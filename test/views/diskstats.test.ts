/**
 * /proc/diskstats and /proc/partitions for a container, on the host files of a 6.x kernel (20
 * fields) and a 4.14 one (14 fields): the kernel's format, the cgroup's counts, the host's
 * order and names, counters that never go backwards.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BlockDeviceIo, BlockIoSnapshot } from '../../src/cgroup/snapshot';
import { parseDiskstats } from '../../src/host/diskstats';
import { parsePartitions } from '../../src/host/partitions';
import { advanceDiskHistory, blockIoTotals, renderDiskstats, shownDevices, type DiskHistory } from '../../src/views/diskstats';
import { renderPartitions } from '../../src/views/partitions';
import { CgroupParseError } from '../../src/cgroup/snapshot';

const fixture = (name: string) => readFileSync(path.join(__dirname, '../fixtures/proc', name), 'utf8');
const host = parseDiskstats(fixture('diskstats'));
const MIB = 1024n * 1024n;

function device(major: number, minor: number, io: Partial<BlockDeviceIo> = {}): BlockDeviceIo {
  return { major, minor, readBytes: 0n, writeBytes: 0n, discardBytes: 0n, readIos: 0n, writeIos: 0n, discardIos: 0n, ...io };
}
const snapshot = (...devices: BlockDeviceIo[]): BlockIoSnapshot => ({ devices });
const fieldsOf = (line: string) => line.trim().split(/\s+/);

describe('renderDiskstats', () => {
  it('writes one 20-field line per device with I/O, in the host order, in the kernel format', () => {
    // io.stat lists dm-0 before sda; the host lists sda first.
    const history = advanceDiskHistory(null, snapshot(
      device(253, 0, { readBytes: 1459200n, writeBytes: 314773504n, readIos: 192n, writeIos: 353n }),
      device(8, 0, { readBytes: 90430464n, writeBytes: 299008000n, discardBytes: 50331648n, readIos: 8950n, writeIos: 1252n, discardIos: 3021n }),
      device(7, 0), // a blkg without I/O: not shown
    ), host);
    const text = renderDiskstats(history, host);
    expect(text).toBe(
      '   8       0 sda 8950 0 176622 0 1252 0 584000 0 0 0 0 3021 0 98304 0 0 0\n'
      + ' 253       0 dm-0 192 0 2850 0 353 0 614792 0 0 0 0 0 0 0 0 0 0\n',
    );
    // What iostat and node_exporter parse: "%u %u %s" then the counters.
    for (const line of text.trimEnd().split('\n')) expect(fieldsOf(line)).toHaveLength(20);
  });

  it('follows a host with the 14-field format (kernels before 4.18)', () => {
    const old = parseDiskstats(fixture('diskstats-4.14'));
    expect(old.fieldCount).toBe(14);
    const text = renderDiskstats(advanceDiskHistory(null, snapshot(device(8, 0, { readIos: 3n, readBytes: 4096n })), old), old);
    expect(text).toBe('   8       0 sda 3 0 8 0 0 0 0 0 0 0 0\n');
  });

  it('is empty for a cgroup that did no I/O, and skips devices the host does not have', () => {
    expect(renderDiskstats(advanceDiskHistory(null, snapshot(), host), host)).toBe('');
    const gone = advanceDiskHistory(null, snapshot(device(8, 32, { writeBytes: 4096n })), host);
    expect(gone.devices.size).toBe(0);
    expect(renderDiskstats(gone, host)).toBe('');
  });

  it('never lets a counter go backwards: a drop (v1: a child cgroup removed) adds nothing, growth after it adds its delta', () => {
    let history: DiskHistory | null = null;
    const read = (writeBytes: bigint, writeIos: bigint) => {
      history = advanceDiskHistory(history, snapshot(device(8, 0, { writeBytes, writeIos })), host);
      const [line] = renderDiskstats(history, host).trimEnd().split('\n');
      return { sectors: BigInt(fieldsOf(line)[9]), writes: BigInt(fieldsOf(line)[7]) };
    };
    expect(read(10n * MIB, 10n)).toEqual({ sectors: 20480n, writes: 10n });
    expect(read(1n * MIB, 1n)).toEqual({ sectors: 20480n, writes: 10n }); // dropped: held
    expect(read(3n * MIB, 4n)).toEqual({ sectors: 24576n, writes: 13n }); // +2 MiB, +3 I/Os since the drop
  });

  it('keeps a device line once shown, even when the cgroup no longer lists the device', () => {
    const first = advanceDiskHistory(null, snapshot(device(8, 16, { readIos: 1n, readBytes: 512n })), host);
    const later = advanceDiskHistory(first, snapshot(), host);
    expect(renderDiskstats(later, host)).toBe('   8      16 sdb 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n');
  });

  it('forgets a device the host no longer has (history bounded by the host\'s devices)', () => {
    const first = advanceDiskHistory(null, snapshot(device(8, 16, { readIos: 1n })), host);
    const withoutSdb = { ...host, devices: host.devices.filter((d) => d.name !== 'sdb') };
    expect(advanceDiskHistory(first, snapshot(), withoutSdb).devices.size).toBe(0);
  });

  it('gives vmstat the bytes read and written over every device', () => {
    const history = advanceDiskHistory(null, snapshot(device(8, 0, { readBytes: 4n * MIB, writeBytes: 50n * MIB }), device(253, 0, { writeBytes: 2n * MIB })), host);
    expect(blockIoTotals(history)).toEqual({ readBytes: 4n * MIB, writeBytes: 52n * MIB });
  });
});

describe('parseDiskstats', () => {
  it('reads names, numbers and the field count of the host file', () => {
    expect(host.fieldCount).toBe(20);
    expect(host.devices.map((d) => `${d.major}:${d.minor} ${d.name}`)).toEqual(['7:0 loop0', '8:0 sda', '8:1 sda1', '8:16 sdb', '253:0 dm-0', '254:0 vda']);
  });
  it.each(['8 0 sda 1 2 3\n', 'x 0 sda 1 2 3 4 5 6 7 8 9 10 11\n', '8 0 a/b 1 2 3 4 5 6 7 8 9 10 11\n'])('rejects %j', (text) => {
    expect(() => parseDiskstats(text)).toThrow(CgroupParseError);
  });
});

describe('renderPartitions', () => {
  const partitions = parsePartitions(fixture('partitions'));

  it("keeps the header, a blank line and the host's lines of the devices shown, verbatim", () => {
    const history = advanceDiskHistory(null, snapshot(device(8, 0, { writeBytes: 4096n }), device(7, 0)), host);
    expect(renderPartitions(partitions, shownDevices(history))).toBe('major minor  #blocks  name\n\n   8        0  268435456 sda\n');
  });

  it('is the header alone for a cgroup that did no I/O', () => {
    expect(renderPartitions(partitions, new Set())).toBe('major minor  #blocks  name\n\n');
  });

  it('rejects a file without the header or with a malformed line', () => {
    expect(() => parsePartitions('8 0 100 sda\n')).toThrow('no "major minor  #blocks  name" header');
    expect(() => parsePartitions('major minor  #blocks  name\n\n   8 0 lots sda\n')).toThrow(/line 3 is not/);
  });
});
