/**
 * /proc/cpuinfo for a container: one block per visible CPU, renumbered from 0, each a copy of
 * that host CPU's block (model, flags, MHz, cache, bugs, ... byte for byte), with the topology
 * fields rewritten so they describe the CPUs shown and nothing else:
 *
 * - processor: the row number 0..n-1, matching /proc/stat's cpuN and .../cpu/online.
 * - physical id 0, core id = row, apicid = initial apicid = row, siblings = cpu cores = n:
 *   one package of n single-threaded cores. Programs that count CPUs from this file (lscpu-like
 *   scripts, the JVM's and Python's fallbacks, monitoring agents) count distinct physical ids
 *   x cpu cores, or distinct (physical id, core id) pairs, or siblings/cpu cores for threads
 *   per core: every one of those comes out n, the count nproc reports. Keeping the host's values
 *   would claim the host's package size (LXCFS does: "siblings: 64" next to 2 processors), and
 *   keeping host core/apic ids while siblings says n would describe CPUs that cannot exist.
 *
 * Architectures without those fields (arm64, ppc64) only get "processor" renumbered. Machine-wide
 * blocks (ppc64's timebase/platform summary, arm's Hardware/Revision) are kept where the host has
 * them. A file with no "processor : N" block (s390) is not a format this view understands: it
 * throws rather than hand the host's CPUs to the container unnoticed.
 */
import type { CpuinfoBlock } from '../host/snapshot';

const DEFAULT_SEPARATOR = '\t: ';

export function renderCpuinfo(hostBlocks: CpuinfoBlock[], visible: number[]): string {
  if (visible.length === 0) throw new Error('cannot render /proc/cpuinfo for 0 CPUs');
  const byCpuId = new Map<number, CpuinfoBlock>();
  for (const block of hostBlocks) if (block.cpuId !== null) byCpuId.set(block.cpuId, block);
  if (byCpuId.size === 0) {
    throw new Error('host /proc/cpuinfo has no "processor : N" blocks (s390?): this format is not supported');
  }

  // The host's cpuinfo is cached (~1 s) while online/cpuset are read per request: a CPU that
  // came online since has no block yet. It gets a copy of the first visible CPU that has one
  // (a host's CPUs are the same model in practice) instead of failing the read.
  const template = visible.map((id) => byCpuId.get(id)).find((b) => b !== undefined) ?? byCpuId.values().next().value!;

  const firstCpuIndex = hostBlocks.findIndex((b) => b.cpuId !== null);
  const leading = hostBlocks.slice(0, firstCpuIndex);
  const trailing = hostBlocks.slice(firstCpuIndex).filter((b) => b.cpuId === null);

  let text = '';
  for (const block of leading) text += printBlock(block.fields, block.blankLineAfter);
  const count = visible.length;
  visible.forEach((hostId, row) => {
    const block = byCpuId.get(hostId) ?? template;
    text += printBlock(renumber(block.fields, row, count), block.blankLineAfter);
  });
  for (const block of trailing) text += printBlock(block.fields, block.blankLineAfter);
  return text;
}

type Field = CpuinfoBlock['fields'][number];

/** The topology fields rewritten for row `row` of `count` (see the file comment for why). */
function renumber(fields: Field[], row: number, count: number): Field[] {
  return fields.map((field): Field => {
    const [name, , separator] = field;
    switch (name) {
      case 'processor':
      case 'core id':
      case 'apicid':
      case 'initial apicid':
        return [name, String(row), separator];
      case 'physical id':
        return [name, '0', separator];
      case 'siblings':
      case 'cpu cores':
        return [name, String(count), separator];
      default:
        return field;
    }
  });
}

function printBlock(fields: Field[], blankLineAfter: boolean | undefined): string {
  let text = '';
  for (const [name, value, separator] of fields) text += `${name}${separator ?? DEFAULT_SEPARATOR}${value}\n`;
  return blankLineAfter === false ? text : `${text}\n`;
}
