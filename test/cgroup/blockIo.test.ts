/**
 * Block I/O readers on fixture trees (kernel formats: v1 blkio throttle files as 6.18 prints
 * them, v2 io.stat as cgroup-v2.rst gives it) and on malformed input.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { readBlockIo } from '../../src/cgroup/read';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parseIoStat } from '../../src/cgroup/v2/io';
import { parseThrottleStat } from '../../src/cgroup/v1/blkio';
import { copyFixtureTree, locationIn, MIB, v1Location, v2Location } from './helpers';

const HYBRID_CONTAINER = '/process_api/6000fa4733e63b5c029e087d057f3e65';
const scratch: string[] = [];
afterEach(() => { for (const dir of scratch.splice(0)) fs.rmSync(dir, { recursive: true, force: true }); });

describe('readBlockIo on v1 (blkio throttle counters)', () => {
  it('reads the _recursive files: bytes and I/Os per device, Discard included', () => {
    const io = readBlockIo(v1Location('hybrid', HYBRID_CONTAINER, ['memory', 'blkio']));
    expect(io?.devices).toEqual([
      { major: 254, minor: 0, readBytes: 4n * MIB, writeBytes: 48n * MIB, discardBytes: 0n, readIos: 8n, writeIos: 48n, discardIos: 0n },
      { major: 7, minor: 0, readBytes: 0n, writeBytes: 0n, discardBytes: 0n, readIos: 0n, writeIos: 0n, discardIos: 0n },
    ]);
  });

  it('falls back to the cgroup-only files on kernels without _recursive', () => {
    const root = copyFixtureTree('hybrid');
    scratch.push(root);
    const dir = `${root}/blkio${HYBRID_CONTAINER}`;
    for (const f of ['blkio.throttle.io_service_bytes_recursive', 'blkio.throttle.io_serviced_recursive']) fs.rmSync(`${dir}/${f}`);
    const text = `4:memory:${HYBRID_CONTAINER}\n7:blkio:${HYBRID_CONTAINER}\n`;
    const io = readBlockIo(locationIn(root, text));
    expect(io?.devices).toEqual([
      { major: 254, minor: 0, readBytes: 4n * MIB, writeBytes: 16n * MIB, discardBytes: 0n, readIos: 8n, writeIos: 16n, discardIos: 0n },
    ]);
  });

  it('is null without a blkio controller, and [] for a cgroup that did no I/O', () => {
    expect(readBlockIo(v1Location('hybrid', HYBRID_CONTAINER, ['memory']))).toBeNull();
    expect(readBlockIo(v1Location('hybrid', '/', ['memory', 'blkio']))?.devices).toEqual([]);
  });

  it.each([
    ['254:0 Read 12 kB\n', /line 1 is not "MAJ:MIN Operation value"/],
    ['254:0 Reed 12\n', /line 1 is not/],
    ['sda Read 12\n', /line 1 is not/],
    ['99999:0 Read 1\n', /line 1 is not/],
    ['254:0 Read -1\n', /not an unsigned integer/],
    ['254:0 Read 1\n254:0 Read 2\n', /line 2: 254:0 Read appears twice/],
    ['254:0 Read 1\n', /a device without Read \/ Write lines/],
    ['254:0 Read 123456789012345678901234\n254:0 Write 0\n', /not an unsigned integer/],
  ])('rejects %j with a CgroupParseError naming the file', (text, message) => {
    const parse = () => parseThrottleStat(text, '/cg', 'blkio.throttle.io_serviced');
    expect(parse).toThrow(CgroupParseError);
    expect(parse).toThrow(message);
    expect(parse).toThrow(/^\/cg\/blkio\.throttle\.io_serviced: /);
  });
});

describe('readBlockIo on v2 (io.stat)', () => {
  it('reads every device line, ignoring keys io.latency / io.cost add', () => {
    const io = readBlockIo(v2Location('/kubepods.slice/pod-a.slice/container-a.scope'));
    expect(io?.devices).toEqual([
      { major: 8, minor: 0, readBytes: 90430464n, writeBytes: 299008000n, discardBytes: 50331648n, readIos: 8950n, writeIos: 1252n, discardIos: 3021n },
      { major: 253, minor: 0, readBytes: 1459200n, writeBytes: 314773504n, discardBytes: 0n, readIos: 192n, writeIos: 353n, discardIos: 0n },
    ]);
  });

  it('is [] for an empty io.stat and null where the io controller is not enabled', () => {
    expect(readBlockIo(v2Location('/system.slice/unlimited.service'))?.devices).toEqual([]);
    expect(readBlockIo(v2Location('/kubepods.slice/pod-b.slice/app.scope'))).toBeNull();
  });

  it('names io.stat and the line when a value is not a number', () => {
    const read = () => readBlockIo(v2Location('/system.slice/broken.service'));
    expect(read).toThrow(CgroupParseError);
    expect(read).toThrow(/broken\.service\/io\.stat: line 1 \(wbytes\) is not an unsigned integer: "lots"/);
  });

  it('reads kernels before 5.0 (no dbytes/dios) as 0 discards; values past 2^53 exactly', () => {
    const big = (2n ** 63n + 5n).toString();
    expect(parseIoStat(`8:16 rbytes=${big} wbytes=1 rios=2 wios=3\n`, '/cg').devices).toEqual([
      { major: 8, minor: 16, readBytes: 2n ** 63n + 5n, writeBytes: 1n, discardBytes: 0n, readIos: 2n, writeIos: 3n, discardIos: 0n },
    ]);
  });

  it.each([
    ['8:0 rbytes=1\n', /line 1: no rbytes= \/ wbytes=/],
    ['8:0 rbytes 1 wbytes 2\n', /line 1 is not "MAJ:MIN key=value \.\.\."/],
    ['sda rbytes=1 wbytes=2\n', /line 1 is not/],
    ['8:0 rbytes=1 wbytes=2\n8:0 rbytes=1 wbytes=2\n', /line 2: device 8:0 appears twice/],
  ])('rejects %j', (text, message) => {
    expect(() => parseIoStat(text, '/cg')).toThrow(message);
  });
});
