import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCpuinfo } from '../../src/host/cpuinfo';
import { renderCpuinfo } from '../../src/views/cpuinfo';

const fixture = (name: string) => readFileSync(path.join(__dirname, '../fixtures/proc', name), 'utf8');

/** This machine's 2-CPU x86 file. */
const X86_2 = fixture('cpuinfo');

/**
 * A 4-CPU, 2-core, hyper-threaded x86 host built from this machine's real block: every CPU
 * gets its own clock so a test can tell whose block a row copied.
 */
const X86_4_HT = (() => {
  const block0 = X86_2.split('\n\n')[0]!;
  let text = '';
  for (let cpu = 0; cpu < 4; cpu++) {
    text += block0
      .replace(/^processor\t: 0$/m, `processor\t: ${cpu}`)
      .replace(/^cpu MHz\t\t: .*$/m, `cpu MHz\t\t: ${1000 + cpu}.000`)
      .replace(/^siblings\t: .*$/m, 'siblings\t: 4')
      .replace(/^core id\t\t: .*$/m, `core id\t\t: ${cpu >> 1}`)
      .replace(/^apicid\t\t: .*$/m, `apicid\t\t: ${cpu + 10}`)
      .replace(/^initial apicid\t: .*$/m, `initial apicid\t: ${cpu + 10}`);
    text += '\n\n';
  }
  return text;
})();

const field = (text: string, name: string) => [...text.matchAll(new RegExp(`^${name}\\s*: (.*)$`, 'gm'))].map((m) => m[1]);

describe('renderCpuinfo', () => {
  it('serves a host whose CPUs are all visible byte for byte (this machine: 1 package, 2 cores)', () => {
    expect(renderCpuinfo(parseCpuinfo(X86_2), [0, 1])).toBe(X86_2);
  });

  it('shows one block per visible CPU, renumbered from 0, each copied from its own host CPU', () => {
    const text = renderCpuinfo(parseCpuinfo(X86_4_HT), [1, 3]);
    expect(field(text, 'processor')).toEqual(['0', '1']);
    expect(field(text, 'cpu MHz')).toEqual(['1001.000', '1003.000']);
    expect(field(text, 'flags')).toEqual(field(X86_4_HT, 'flags').slice(0, 2));
  });

  it('describes one package of n single-threaded cores, consistent with the count shown', () => {
    const text = renderCpuinfo(parseCpuinfo(X86_4_HT), [0, 2, 3]);
    expect(field(text, 'siblings')).toEqual(['3', '3', '3']);
    expect(field(text, 'cpu cores')).toEqual(['3', '3', '3']);
    expect(field(text, 'physical id')).toEqual(['0', '0', '0']);
    expect(field(text, 'core id')).toEqual(['0', '1', '2']);
    expect(field(text, 'apicid')).toEqual(['0', '1', '2']);
    expect(field(text, 'initial apicid')).toEqual(['0', '1', '2']);
  });

  it('keeps the kernel\'s spacing, so the host parser reads the view back block for block', () => {
    const hostBlocks = parseCpuinfo(X86_4_HT);
    const blocks = parseCpuinfo(renderCpuinfo(hostBlocks, [2]));
    expect(blocks).toHaveLength(1);
    const unchanged = (b: typeof blocks[number]) =>
      b.fields.filter(([n]) => !['processor', 'siblings', 'cpu cores', 'core id', 'apicid', 'initial apicid', 'physical id'].includes(n));
    expect(unchanged(blocks[0]!)).toEqual(unchanged(hostBlocks[2]!));
    expect(renderCpuinfo(hostBlocks, [2]).endsWith('power management:\n\n')).toBe(true);
  });

  it('renumbers arm64 blocks, which have no topology fields, and changes nothing else', () => {
    const host = fixture('cpuinfo-arm64');
    const text = renderCpuinfo(parseCpuinfo(host), [2, 3]);
    const hostBlocks = host.split('\n\n');
    expect(text).toBe(`${hostBlocks[2]!.replace('processor\t: 2', 'processor\t: 0')}\n\n${hostBlocks[3]!.replace('processor\t: 3', 'processor\t: 1')}\n\n`);
  });

  it('keeps ppc64\'s machine summary after the CPU blocks, as the kernel prints it', () => {
    const text = renderCpuinfo(parseCpuinfo(fixture('cpuinfo-ppc64')), [3]);
    expect(text).toBe(
      'processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\nclock\t\t: 2200.000000MHz\nrevision\t: 2.2 (pvr 004e 1202)\n\n' +
        'timebase\t: 512000000\nplatform\t: pSeries\nmodel\t\t: IBM,9009-22A\nmachine\t\t: CHRP IBM,9009-22A\nMMU\t\t: Radix\n',
    );
  });

  it('refuses a format without processor blocks (s390) instead of passing the host\'s CPUs through', () => {
    expect(() => renderCpuinfo(parseCpuinfo(fixture('cpuinfo-s390')), [0])).toThrow(/no "processor : N" blocks/);
  });

  it('gives a CPU missing from the (cached) host file a copy of a visible CPU\'s block', () => {
    const text = renderCpuinfo(parseCpuinfo(X86_4_HT), [2, 9]);
    expect(field(text, 'processor')).toEqual(['0', '1']);
    expect(field(text, 'cpu MHz')).toEqual(['1002.000', '1002.000']);
  });

  it('refuses to render zero CPUs', () => {
    expect(() => renderCpuinfo(parseCpuinfo(X86_2), [])).toThrow(/0 CPUs/);
  });
});
