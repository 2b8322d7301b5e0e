/**
 * Parse the host's /proc/cpuinfo into blocks of "name<padding>: value" lines, keeping every
 * byte needed to print them again: the padding between name and colon differs per field and
 * per architecture (x86 "model\t\t: 167", "power management:" with no value; arm64
 * "CPU architecture: 8" with no tab at all), so each field keeps its own separator.
 *
 * Structure (arch/x86/kernel/cpu/proc.c, arch/arm64/kernel/cpuinfo.c, arch/powerpc/kernel/
 * setup-common.c, arch/arm/kernel/setup.c): a "processor\t: N" line starts each CPU's block and
 * a blank line ends it. Lines outside any CPU block (ppc64's trailing timebase/platform/model
 * summary, arm's trailing Hardware/Revision/Serial, old arm's leading "Processor" line) become
 * machine-wide blocks with cpuId null. s390 has no "processor : N" blocks at all: it parses
 * into machine-wide blocks only, and the view refuses it with a clear error.
 */
import { readFileSync } from 'node:fs';
import { CgroupParseError } from '../cgroup/snapshot';
import type { CpuinfoBlock } from './snapshot';

// name (no colon; may hold spaces: "model name", "cpu MHz"), then the padding, the colon and
// at most one space, then the value as printed (may be empty, may hold colons).
const FIELD_LINE = /^([^:]*?)([ \t]*: ?)(.*)$/;
const CPU_ID = /^\d+$/;

/** `procDir` only names the file in errors (a CgroupParseError naming the directory and file). */
export function parseCpuinfo(text: string, procDir = '/proc'): CpuinfoBlock[] {
  const fail = (reason: string) => new CgroupParseError(procDir, 'cpuinfo', reason);
  const blocks: CpuinfoBlock[] = [];
  const seenCpuIds = new Set<number>();
  let current: CpuinfoBlock | null = null;

  const lines = text.split('\n');
  // "a\nb\n" splits into [..., ""]: the final newline is not an extra blank line.
  if (lines[lines.length - 1] === '') lines.pop();

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') {
      // A blank line ends the block. A second blank line in a row carries nothing: skipped.
      if (current !== null) {
        current.blankLineAfter = true;
        current = null;
      }
      continue;
    }
    const match = FIELD_LINE.exec(line);
    if (match === null || match[1]!.trim() === '') {
      throw fail(`line ${i + 1} is not "name: value": ${JSON.stringify(line)}`);
    }
    const name = match[1]!;
    const separator = match[2]!;
    const value = match[3]!;

    if (name === 'processor' && CPU_ID.test(value)) {
      const cpuId = Number(value);
      if (seenCpuIds.has(cpuId)) throw fail(`line ${i + 1}: processor ${cpuId} appears twice`);
      seenCpuIds.add(cpuId);
      // A processor line starts a new block even without a blank line before it (old arm
      // prints its "Processor" header right above "processor : 0").
      if (current !== null) current.blankLineAfter = false;
      current = { cpuId, fields: [], blankLineAfter: false };
      blocks.push(current);
    } else if (current === null) {
      current = { cpuId: null, fields: [], blankLineAfter: false };
      blocks.push(current);
    }
    current.fields.push([name, value, separator]);
  }

  if (blocks.length === 0) throw fail('empty');
  return blocks;
}

/**
 * Read and parse /proc/cpuinfo. Synchronous on purpose: procfs never blocks on disk, and a
 * sync read is ~10x cheaper than a trip through libuv's thread pool.
 */
export function readHostCpuinfo(procDir = '/proc'): CpuinfoBlock[] {
  return parseCpuinfo(readFileSync(`${procDir}/cpuinfo`, 'utf8'), procDir);
}
