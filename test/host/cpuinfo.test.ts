import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parseCpuinfo, readHostCpuinfo } from '../../src/host/cpuinfo';
import type { CpuinfoBlock } from '../../src/host/snapshot';

const fixture = (name: string) => readFileSync(path.join(__dirname, '../fixtures/proc', name), 'utf8');

/** Prints blocks back the way the kernel did: the byte-identity the view relies on. */
function reprint(blocks: CpuinfoBlock[]): string {
  return blocks
    .map((b) => b.fields.map(([n, v, sep]) => `${n}${sep ?? '\t: '}${v}\n`).join('') + (b.blankLineAfter === false ? '' : '\n'))
    .join('');
}

describe('parseCpuinfo', () => {
  it('splits this machine\'s x86 file into one block per processor, names without padding', () => {
    const blocks = parseCpuinfo(fixture('cpuinfo'));
    expect(blocks.map((b) => b.cpuId)).toEqual([0, 1]);
    expect(blocks[0]!.fields[0]).toEqual(['processor', '0', '\t: ']);
    expect(blocks[0]!.fields.find(([n]) => n === 'model')).toEqual(['model', '167', '\t\t: ']);
    expect(blocks[1]!.fields.find(([n]) => n === 'core id')?.[1]).toBe('1');
    expect(blocks[0]!.fields.at(-1)).toEqual(['power management', '', ':']);
    expect(blocks.every((b) => b.blankLineAfter === true)).toBe(true);
  });

  it.each(['cpuinfo', 'cpuinfo-arm64', 'cpuinfo-ppc64', 'cpuinfo-s390'])('keeps every byte of %s', (name) => {
    const text = fixture(name);
    expect(reprint(parseCpuinfo(text))).toBe(text);
  });

  it('keeps arm64\'s "CPU architecture: 8" without a tab', () => {
    const blocks = parseCpuinfo(fixture('cpuinfo-arm64'));
    expect(blocks.map((b) => b.cpuId)).toEqual([0, 1, 2, 3]);
    expect(blocks[2]!.fields.find(([n]) => n === 'CPU architecture')).toEqual(['CPU architecture', '8', ': ']);
  });

  it('makes ppc64\'s trailing summary a machine-wide block without a blank line after it', () => {
    const blocks = parseCpuinfo(fixture('cpuinfo-ppc64'));
    expect(blocks.map((b) => b.cpuId)).toEqual([0, 1, 2, 3, null]);
    expect(blocks[4]!.fields.map(([n]) => n)).toEqual(['timebase', 'platform', 'model', 'machine', 'MMU']);
    expect(blocks[4]!.blankLineAfter).toBe(false);
  });

  it('finds no processor block in s390\'s format (processor lines there are "processor 0: ...")', () => {
    expect(parseCpuinfo(fixture('cpuinfo-s390')).every((b) => b.cpuId === null)).toBe(true);
  });

  it('starts a CPU block at a processor line even with no blank line before it (old arm header)', () => {
    const text = 'Processor\t: ARMv7 Processor rev 10 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 790.52\n\nprocessor\t: 1\nBogoMIPS\t: 790.52\n\nHardware\t: Freescale i.MX6\n';
    const blocks = parseCpuinfo(text);
    expect(blocks.map((b) => [b.cpuId, b.blankLineAfter])).toEqual([[null, false], [0, true], [1, true], [null, false]]);
    expect(reprint(blocks)).toBe(text);
  });

  it('keeps values holding colons and trailing spaces', () => {
    const [block] = parseCpuinfo('processor\t: 0\nmodel name\t: Foo: Bar @ 2.0GHz \n\n');
    expect(block!.fields[1]).toEqual(['model name', 'Foo: Bar @ 2.0GHz ', '\t: ']);
  });

  it('reads the live /proc/cpuinfo of this machine', () => {
    expect(readHostCpuinfo().filter((b) => b.cpuId !== null).length).toBeGreaterThan(0);
  });

  it.each([
    ['an empty file', ''],
    ['a line without a colon', 'processor\t: 0\nflags fpu vme\n'],
    ['a line without a name', 'processor\t: 0\n: 5\n'],
    ['a processor listed twice', 'processor\t: 0\n\nprocessor\t: 0\n\n'],
  ])('rejects %s with an error naming /proc/cpuinfo', (_name, text) => {
    expect(() => parseCpuinfo(text)).toThrow(CgroupParseError);
    expect(() => parseCpuinfo(text)).toThrow(/^\/proc\/cpuinfo: /);
  });
});
