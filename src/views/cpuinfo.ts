// /proc/cpuinfo for a container: a copy of each visible host CPU's block, renumbered from 0, the
// topology rewritten as one package of n single-threaded cores, so every way of counting CPUs
// from this file gives nproc's n (docs/views.md#cpuinfo). s390's format is refused.
import type { CpuinfoBlock } from '../host/snapshot';

const DEFAULT_SEPARATOR = '\t: ';

export function renderCpuinfo(hostBlocks: CpuinfoBlock[], visible: number[]): string {
  if (visible.length === 0) throw new Error('cannot render /proc/cpuinfo for 0 CPUs');
  const byCpuId = new Map<number, CpuinfoBlock>();
  for (const block of hostBlocks) if (block.cpuId !== null) byCpuId.set(block.cpuId, block);
  const [firstCpuBlock] = byCpuId.values();
  if (firstCpuBlock === undefined) {
    throw new Error('host /proc/cpuinfo has no "processor : N" blocks (s390?): this format is not supported');
  }

  // The host's cpuinfo is cached: a CPU that came online since gets a copy of a visible CPU's
  // block (a host's CPUs are one model in practice) rather than failing the read.
  const template = visible.map((id) => byCpuId.get(id)).find((b) => b !== undefined) ?? firstCpuBlock;

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

/** The topology fields rewritten for row `row` of `count`. */
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
