// cgroup v1 blkio controller -> BlockIoSnapshot, from the throttle layer's counters:
// blkio.throttle.io_service_bytes / io_serviced, "MAJ:MIN Op value" (Op: Read Write Sync Async
// Discard Total) ending in "Total N". The _recursive files (kernel 4.x on) count the cgroup's
// descendants too, as v2's io.stat does and as memory's hierarchical numbers do; older kernels
// give the cgroup's own. The CFQ files LXCFS reads (blkio.io_serviced_recursive, ...) went with
// CFQ in 5.0; BFQ's only count with the bfq scheduler. Measured on kernel 6.18: the throttle
// counters stay 0 on a disk until some cgroup has set a throttle rule on it (any, since boot).
import { CgroupParseError } from '../snapshot';
import type { BlockDeviceIo, BlockIoSnapshot } from '../snapshot';
import { forEachLine, parseDeviceNumber, parseUnsigned, readOptionalFile } from '../parse';

const OPERATIONS = ['Read', 'Write', 'Sync', 'Async', 'Discard', 'Total'] as const;
type Operation = (typeof OPERATIONS)[number];
type DeviceCounts = Map<string, { major: number; minor: number; byOperation: Map<Operation, bigint> }>;

/** The cgroup's block I/O at `dir`; null when it has no throttle files (no blkio accounting). */
export function readV1BlockIo(dir: string): BlockIoSnapshot | null {
  const bytes = readFirst(dir, ['blkio.throttle.io_service_bytes_recursive', 'blkio.throttle.io_service_bytes']);
  const ios = readFirst(dir, ['blkio.throttle.io_serviced_recursive', 'blkio.throttle.io_serviced']);
  if (bytes === null || ios === null) return null;
  const devices: BlockDeviceIo[] = [];
  for (const [key, counted] of bytes) {
    const served = ios.get(key)?.byOperation;
    const count = (of: Map<Operation, bigint> | undefined, op: Operation) => of?.get(op) ?? 0n;
    devices.push({
      major: counted.major,
      minor: counted.minor,
      readBytes: count(counted.byOperation, 'Read'),
      writeBytes: count(counted.byOperation, 'Write'),
      discardBytes: count(counted.byOperation, 'Discard'), // no Discard line before 4.19: 0
      readIos: count(served, 'Read'),
      writeIos: count(served, 'Write'),
      discardIos: count(served, 'Discard'),
    });
  }
  return { devices };
}

/** The first of `files` that exists, parsed; null when none does. */
function readFirst(dir: string, files: string[]): DeviceCounts | null {
  for (const file of files) {
    const text = readOptionalFile(dir, file);
    if (text !== null) return parseThrottleStat(text, dir, file);
  }
  return null;
}

export function parseThrottleStat(text: string, dir: string, file: string): DeviceCounts {
  const devices: DeviceCounts = new Map();
  forEachLine(text, dir, file, (line) => {
    const tokens = line.text.trim().split(/\s+/);
    if (tokens.length === 2 && tokens[0] === 'Total') {
      parseUnsigned(tokens[1], dir, file, `line ${line.number} (Total)`);
      return;
    }
    const device = tokens.length === 3 ? parseDeviceNumber(tokens[0]) : null;
    const operation = OPERATIONS.find((op) => op === tokens[1]);
    if (device === null || operation === undefined) throw line.notA('"MAJ:MIN Operation value"');
    const entry = devices.get(tokens[0]) ?? { ...device, byOperation: new Map<Operation, bigint>() };
    if (entry.byOperation.has(operation)) throw line.fail(`${tokens[0]} ${operation} appears twice`);
    entry.byOperation.set(operation, parseUnsigned(tokens[2], dir, file, `line ${line.number} (${operation})`));
    devices.set(tokens[0], entry);
  });
  if (devices.size > 0 && [...devices.values()].some((d) => !(d.byOperation.has('Read') && d.byOperation.has('Write')))) {
    throw new CgroupParseError(dir, file, 'a device without Read / Write lines');
  }
  return devices;
}
