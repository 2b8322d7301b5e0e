// /proc/diskstats for a container: one line per disk its cgroup did I/O on, in the host's order
// and format, with the cgroup's own counts. Counters grow by deltas since the previous read of
// the same container (the caller keeps the returned DiskHistory), so none goes backwards when
// the cgroup's numbers drop (v1 takes a removed child cgroup's I/O out of its parent's). Fields:
// Documentation/admin-guide/iostats.rst; every source: docs/views.md#diskstats.
import type { BlockDeviceIo, BlockIoSnapshot } from '../cgroup/snapshot';
import type { HostDiskstats } from '../host/diskstats';
import { DISKSTATS_FIELD_COUNT } from '../host/diskstats';
import type { BlockIoBytes } from './vmstat';

const SECTOR_BYTES = 512n;
const COUNTERS = ['readBytes', 'writeBytes', 'discardBytes', 'readIos', 'writeIos', 'discardIos'] as const;
type Counters = Record<(typeof COUNTERS)[number], bigint>;

/** What a render must remember for the next one of the same container. Treat as opaque. */
export interface DiskHistory {
  /** By "major:minor", only devices the host still has. */
  readonly devices: ReadonlyMap<string, DiskMark>;
}

export interface DiskMark {
  /** The cgroup's counters as last read. */
  readonly source: Counters;
  /** The counters shown: grown by every increase of `source`, never decreased. */
  readonly shown: Counters;
}

/** The history after this reading of the cgroup's I/O: devices the host no longer has are
 *  forgotten, so the history holds at most one mark per host device. */
export function advanceDiskHistory(previous: DiskHistory | null, io: BlockIoSnapshot, host: HostDiskstats): DiskHistory {
  const hostDevices = new Set(host.devices.map((d) => `${d.major}:${d.minor}`));
  const devices = new Map<string, DiskMark>();
  for (const [key, mark] of previous?.devices ?? []) if (hostDevices.has(key)) devices.set(key, mark);
  for (const device of io.devices) {
    const key = `${device.major}:${device.minor}`;
    if (!hostDevices.has(key)) continue;
    const source = countersOf(device);
    const before = devices.get(key);
    devices.set(key, { source, shown: before === undefined ? source : grown(before, source) });
  }
  return { devices };
}

function countersOf(device: BlockDeviceIo): Counters {
  const { readBytes, writeBytes, discardBytes, readIos, writeIos, discardIos } = device;
  return { readBytes, writeBytes, discardBytes, readIos, writeIos, discardIos };
}

/** `before.shown` plus what each counter of the source rose by (a drop adds nothing). */
function grown(before: DiskMark, source: Counters): Counters {
  const shown = { ...before.shown };
  for (const c of COUNTERS) if (source[c] > before.source[c]) shown[c] += source[c] - before.source[c];
  return shown;
}

/** "major:minor" of the devices the container's files show: those it did any I/O on. */
export function shownDevices(history: DiskHistory): Set<string> {
  const shown = new Set<string>();
  for (const [key, mark] of history.devices) if (COUNTERS.some((c) => mark.shown[c] > 0n)) shown.add(key);
  return shown;
}

export function renderDiskstats(history: DiskHistory, host: HostDiskstats): string {
  const shown = shownDevices(history);
  const statCount = Math.max(0, Math.min(host.fieldCount, DISKSTATS_FIELD_COUNT) - 3);
  let text = '';
  for (const device of host.devices) {
    const key = `${device.major}:${device.minor}`;
    const mark = history.devices.get(key);
    if (mark === undefined || !shown.has(key)) continue;
    const stats = diskStats(mark.shown).slice(0, statCount);
    text += `${String(device.major).padStart(4)} ${String(device.minor).padStart(7)} ${device.name} ${stats.join(' ')}\n`;
  }
  return text;
}

/** The 17 counters of a diskstats line (iostats.rst order). The cgroup counts I/Os and bytes
 *  per direction only; the rest is 0, since no cgroup file has them: */
function diskStats(c: Counters): bigint[] {
  return [
    c.readIos, // reads completed
    0n, // reads merged: merging happens below the cgroup's accounting
    c.readBytes / SECTOR_BYTES, // sectors read
    0n, // ms reading: no per-cgroup time (v1 lost it with CFQ in 5.0; v2 has none)
    c.writeIos, // writes completed
    0n, // writes merged
    c.writeBytes / SECTOR_BYTES, // sectors written
    0n, // ms writing
    0n, // I/Os in flight: the disk's queue, not the cgroup's
    0n, // ms doing I/O (iostat's %util): the disk's busy time, shared by every cgroup
    0n, // weighted ms doing I/O
    c.discardIos, // discards completed
    0n, // discards merged
    c.discardBytes / SECTOR_BYTES, // sectors discarded
    0n, // ms discarding
    0n, // flushes completed: counted among the cgroup's writes, not apart
    0n, // ms flushing
  ];
}

/** Bytes read and written over every shown device, for vmstat's pgpgin/pgpgout. */
export function blockIoTotals(history: DiskHistory): BlockIoBytes {
  let readBytes = 0n;
  let writeBytes = 0n;
  for (const mark of history.devices.values()) {
    readBytes += mark.shown.readBytes;
    writeBytes += mark.shown.writeBytes;
  }
  return { readBytes, writeBytes };
}
