// The host's /proc/cpuinfo as blocks of "name<padding>: value" lines, each field keeping its
// own separator (the padding differs per field and architecture) so it prints back byte for
// byte. "processor : N" starts a CPU's block, a blank line ends it; lines outside any CPU block
// (ppc64's timebase summary, arm's Hardware lines) become machine-wide blocks (cpuId null).
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import { MAX_CPU_COUNT } from '../cgroup/cpulist';
import type { CpuinfoBlock } from './snapshot';
import { shown } from '../cgroup/parse';

const CPU_ID = /^\d{1,5}$/;

/** `procDir` only names the file in errors (a CgroupParseError naming the directory and file). */
export function parseCpuinfo(text: string, procDir = '/proc'): CpuinfoBlock[] {
  const fail = (reason: string) => new CgroupParseError(procDir, 'cpuinfo', reason);
  const blocks: CpuinfoBlock[] = [];
  const seenCpuIds = new Set<number>();
  let current: CpuinfoBlock | null = null;

  const lines = text.split('\n');
  // "a\nb\n" splits into [..., ""]: the final newline is not an extra blank line.
  if (lines.at(-1) === '') lines.pop();

  for (const [index, line] of lines.entries()) {
    if (line === '') {
      // A blank line ends the block. A second blank line in a row carries nothing: skipped.
      if (current !== null) current.blankLineAfter = true;
      current = null;
      continue;
    }
    const lineFail = (rest: string) => fail(`line ${index + 1}${rest}`);
    const [name, separator, value] = fieldOf(line, lineFail);
    const cpuId = processorId(name, value, seenCpuIds, lineFail);
    if (cpuId !== null || current === null) {
      // A processor line starts a new block even without a blank line before it (old arm
      // prints its "Processor" header right above "processor : 0").
      if (current !== null) current.blankLineAfter = false;
      current = { cpuId, fields: [], blankLineAfter: false };
      blocks.push(current);
    }
    current.fields.push([name, value, separator]);
  }

  if (blocks.length === 0) throw fail('empty');
  return blocks;
}

/** The line split as splitField does; a line that is not "name: value" is an error. */
function fieldOf(line: string, lineFail: (rest: string) => Error): [name: string, separator: string, value: string] {
  const field = splitField(line);
  if (field === null || field[0].trim() === '') throw lineFail(` is not "name: value": ${shown(line)}`);
  return field;
}

/** The CPU id of a "processor : N" line, checked (within the kernel's CPUs, not seen before);
 *  null for any other line. */
function processorId(name: string, value: string, seenCpuIds: Set<number>, lineFail: (rest: string) => Error): number | null {
  if (name !== 'processor' || !CPU_ID.test(value)) return null;
  const cpuId = Number(value);
  if (cpuId >= MAX_CPU_COUNT) throw lineFail(`: processor ${cpuId} is past the kernel's ${MAX_CPU_COUNT} CPUs`);
  if (seenCpuIds.has(cpuId)) throw lineFail(`: processor ${cpuId} appears twice`);
  seenCpuIds.add(cpuId);
  return cpuId;
}

/**
 * name (no colon; may hold spaces: "model name", "cpu MHz"), then the padding, the colon and at
 * most one space, then the value as printed (may be empty, may hold colons). Split by hand, not
 * by a regex: a lazy name before an absent colon backtracks quadratically on a long line.
 */
function splitField(line: string): [name: string, separator: string, value: string] | null {
  const colon = line.indexOf(':');
  if (colon < 0 || /[\r\u2028\u2029]/.test(line)) return null;
  let nameEnd = colon;
  while (nameEnd > 0 && (line[nameEnd - 1] === ' ' || line[nameEnd - 1] === '\t')) nameEnd--;
  const valueStart = line[colon + 1] === ' ' ? colon + 2 : colon + 1;
  return [line.slice(0, nameEnd), line.slice(nameEnd, valueStart), line.slice(valueStart)];
}

export function readHostCpuinfo(procDir = '/proc'): CpuinfoBlock[] {
  return parseCpuinfo(readBoundedText(procDir, 'cpuinfo'), procDir);
}
