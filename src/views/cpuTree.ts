// /sys/devices/system/cpu for a container: its visible CPUs renumbered from 0 (cpuN/ stands for
// host CPU visible[N], as row N of cpuinfo and stat does). Files that name CPUs (lists, masks)
// are translated to the container's numbering, dropping CPUs it does not see; the rest is the
// host's file as it is (kernel_max, modalias, cache sizes, core ids).
import { formatCpuList, parseCpuList } from '../cgroup/cpulist';
import { renderCpuOnline } from './cpuOnline';

/** How a file's content is made, by its path relative to the CPU directory. */
export type CpuFileKind =
  | 'count-list' // online, possible, present: 0..n-1
  | 'empty-list' // offline: the container's CPUs are all online
  | 'one' // cpuN/online
  | 'list' // a CPU list ("0-3,8"), translated
  | 'mask' // a CPU mask ("ff,00000001"), translated, as wide as the container's CPU count
  | 'space-list' // cpufreq's "0 1 " lists, translated
  | 'smt-active' // smt/active: whether two visible CPUs are thread siblings
  | 'host'; // the host's file as it is

const PER_CPU = /^cpu\d+\/(.+)$/;

export function cpuFileKind(rel: string): CpuFileKind {
  const perCpu = PER_CPU.exec(rel);
  if (perCpu) return perCpuKind(perCpu[1]);
  if (rel === 'online' || rel === 'possible' || rel === 'present') return 'count-list';
  if (rel === 'offline') return 'empty-list';
  if (rel === 'isolated' || rel === 'nohz_full') return 'list';
  if (rel === 'smt/active') return 'smt-active';
  return 'host';
}

/** `sub`: the path below cpuN/. */
function perCpuKind(sub: string): CpuFileKind {
  if (sub === 'online') return 'one';
  if (/^topology\/\w+_list$/.test(sub) || /^cache\/index\d+\/shared_cpu_list$/.test(sub)) return 'list';
  if (/^topology\/\w+_(cpus|siblings)$/.test(sub) || /^cache\/index\d+\/shared_cpu_map$/.test(sub)) return 'mask';
  if (/^cpufreq\/(related_cpus|affected_cpus|freqdomain_cpus)$/.test(sub)) return 'space-list';
  return 'host';
}

/** Whether a file of this kind is made from the host's file of the CPU it stands for. */
export function needsHostText(kind: CpuFileKind): boolean {
  return kind !== 'count-list' && kind !== 'empty-list' && kind !== 'one';
}

export interface CpuTreeFileInput {
  kind: CpuFileKind;
  /** Host CPU ids the container sees, ascending: its CPU i is visible[i]. */
  visible: number[];
  /** The host's file (kinds that translate or pass it through). */
  hostText?: string;
  /** smt-active: each visible CPU's host thread_siblings_list, parsed. */
  threadSiblings?: number[][];
}

/** The file's content for the container. Throws on a host file it cannot translate. */
export function renderCpuTreeFile(input: CpuTreeFileInput): string {
  const { kind, visible } = input;
  const host = input.hostText ?? '';
  switch (kind) {
    case 'count-list': return renderCpuOnline(visible.length);
    case 'empty-list': return '\n';
    case 'one': return '1\n';
    // nohz_full says "(null)" when the kernel has none: not a list, kept.
    case 'list': return /^\s*\(null\)\s*$/.test(host) ? host : `${formatCpuList(renumber(parseCpuList(host), visible))}\n`;
    case 'mask': return `${formatCpuMask(renumber(parseCpuMask(host), visible), visible.length)}\n`;
    case 'space-list': return `${renumber(parseSpaceList(host), visible).map((id) => `${id} `).join('')}\n`;
    case 'smt-active': return host.trim() === '0' ? host : `${smtActive(visible, input.threadSiblings ?? []) ? 1 : 0}\n`;
    default: return host; // 'host'
  }
}

/** Host ids -> the container's numbering; CPUs it does not see are dropped. */
export function renumber(hostIds: number[], visible: number[]): number[] {
  const index = new Map(visible.map((id, i) => [id, i]));
  const ids: number[] = [];
  for (const id of hostIds) {
    const mapped = index.get(id);
    if (mapped !== undefined) ids.push(mapped);
  }
  return ids.sort((a, b) => a - b);
}

/** Two visible CPUs are siblings of one core: SMT is active for the container. */
function smtActive(visible: number[], threadSiblings: number[][]): boolean {
  const shown = new Set(visible);
  return threadSiblings.some((siblings) => siblings.filter((id) => shown.has(id)).length > 1);
}

/** The kernel's "%*pb" bitmap: 32-bit hex chunks, most significant first, comma-separated. */
export function parseCpuMask(text: string): number[] {
  const chunks = text.trim().split(',');
  if (chunks.length > 1024 || !chunks.every((c) => /^[0-9a-fA-F]{1,8}$/.test(c))) {
    throw new Error(`not a CPU mask: ${JSON.stringify(text.slice(0, 80))}`);
  }
  const ids: number[] = [];
  chunks.reverse().forEach((chunk, i) => {
    const value = Number.parseInt(chunk, 16);
    for (let bit = 0; bit < 32; bit++) if (value & (2 ** bit)) ids.push(i * 32 + bit);
  });
  return ids;
}

/**
 * As the kernel prints a mask of `bits` CPUs (nr_cpu_ids): the first chunk holds the top
 * bits % 32 (or 32) bits in as many hex digits as they need, every other chunk 8 digits.
 */
export function formatCpuMask(ids: number[], bits: number): string {
  const chunkCount = Math.max(1, Math.ceil(bits / 32));
  const chunks = new Array<number>(chunkCount).fill(0);
  for (const id of ids) if (id < bits) chunks[Math.floor(id / 32)] |= 1 << (id % 32);
  const topBits = bits % 32 || 32;
  return chunks
    .reverse()
    .map((value, i) => (value >>> 0).toString(16).padStart(i === 0 ? Math.ceil(topBits / 4) : 8, '0'))
    .join(',');
}

function parseSpaceList(text: string): number[] {
  const words = text.trim().split(/\s+/).filter(Boolean);
  if (!words.every((w) => /^\d{1,5}$/.test(w))) throw new Error(`not a CPU list: ${JSON.stringify(text.slice(0, 80))}`);
  return words.map(Number);
}
