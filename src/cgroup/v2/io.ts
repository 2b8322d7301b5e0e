// cgroup v2 io controller -> BlockIoSnapshot. io.stat: one line per device the cgroup (and its
// descendants) did I/O on, "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..", then
// whatever io.cost / io.latency add (cost.vrate=100.00, use_delay=0, ...): ignored.
import type { BlockDeviceIo, BlockIoSnapshot } from '../snapshot';
import { forEachLine, parseDeviceNumber, parseUnsigned, readOptionalFile } from '../parse';

const FILE = 'io.stat';
/** The counters isolfs reads, by io.stat key. dbytes/dios came with kernel 5.0: 0 before. */
const KEYS = {
  rbytes: 'readBytes', wbytes: 'writeBytes', dbytes: 'discardBytes',
  rios: 'readIos', wios: 'writeIos', dios: 'discardIos',
} as const;
type CounterName = (typeof KEYS)[keyof typeof KEYS];

/** io.stat of the v2 cgroup at `dir`; null when it has none (the io controller is not enabled
 *  for it). */
export function readV2BlockIo(dir: string): BlockIoSnapshot | null {
  const text = readOptionalFile(dir, FILE);
  return text === null ? null : parseIoStat(text, dir);
}

export function parseIoStat(text: string, dir: string): BlockIoSnapshot {
  const devices: BlockDeviceIo[] = [];
  const seen = new Set<string>();
  forEachLine(text, dir, FILE, (line) => {
    const [deviceToken, ...fields] = line.text.trim().split(/\s+/);
    const device = parseDeviceNumber(deviceToken);
    if (device === null) throw line.notA('"MAJ:MIN key=value ..."');
    if (seen.has(deviceToken)) throw line.fail(`device ${deviceToken} appears twice`);
    seen.add(deviceToken);
    const io: BlockDeviceIo = { ...device, readBytes: 0n, writeBytes: 0n, discardBytes: 0n, readIos: 0n, writeIos: 0n, discardIos: 0n };
    const found = new Set<CounterName>();
    for (const field of fields) {
      const equals = field.indexOf('=');
      if (equals <= 0) throw line.notA('"MAJ:MIN key=value ..."');
      const name = KEYS[field.slice(0, equals) as keyof typeof KEYS] as CounterName | undefined;
      if (name === undefined) continue;
      io[name] = parseUnsigned(field.slice(equals + 1), dir, FILE, `line ${line.number} (${field.slice(0, equals)})`);
      found.add(name);
    }
    if (!(found.has('readBytes') && found.has('writeBytes'))) throw line.fail('no rbytes= / wbytes=');
    devices.push(io);
  });
  return { devices };
}
