/**
 * The files of /sys/devices/system/cpu beside `online` (which is a view of files.ts): for an
 * isolated container, its CPUs renumbered from 0, each cpuN/ made from the host CPU it stands
 * for (views/cpuTree.ts); for everyone else the host's file as it is. Which files exist is the
 * start-up scan's (host/cpuTree.ts), so the path of a request is one of ours, never a caller's.
 */
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Errno } from './fuse/fileBackend';
import { CPU_TREE_DIR, type CpuTreePath } from './fuse/layout';
import type { ContainerRecord } from './containers/registry';
import { ViewInputs, type HostSources } from './files';
import { FileReadError, readBoundedBuffer, readBoundedText } from './host/boundedRead';
import { parseCpuList } from './cgroup/cpulist';
import { cpuFileKind, needsHostText, renderCpuTreeFile } from './views/cpuTree';

/** sysfs attributes are at most a page; the largest here (modalias) ~1.5 KiB. */
const CPU_FILE_MAX_BYTES = 64 * 1024;

const PER_CPU = /^cpu(\d+)\/(.+)$/;
const { errno: E } = osConstants;

/** A per-CPU file of a CPU the container does not see (it has fewer now): ENOENT. */
class CpuNotVisibleError extends Error {}

/** The CPU tree's files in metrics and logs: one label, not one per file. */
export const CPU_TREE_LABEL = '/sys/devices/system/cpu/*';

/** What went wrong that is not a defined errno: the backend logs it and answers EIO. */
export interface Failure {
  failure: unknown;
}

/** The path below the CPU directory: "cpu0/topology/core_id", "smt/active". */
function relativeCpuPath(file: CpuTreePath): string {
  return file.slice(CPU_TREE_DIR.length + 1);
}

/** The host's own file (a reader that is not isolated). */
function readHostCpuTreeFile(file: CpuTreePath, sysRoot: string): Buffer {
  return readBoundedBuffer(path.join(sysRoot, 'devices/system/cpu'), relativeCpuPath(file), CPU_FILE_MAX_BYTES);
}

/** How many CPUs a container sees (its cpuN/ directories), from its rendered online view ("0-N"). */
export function cpuCountOfOnline(online: Buffer): number {
  return parseCpuList(online.toString('utf8')).length;
}

/**
 * `file` as `container` sees it (null: the host's file, a reader that is not isolated). The
 * host's own errno is passed on (a file this CPU lacks: ENOENT, as sysfs answers).
 */
export function readCpuTreeFile(file: CpuTreePath, container: ContainerRecord | null, sources: HostSources, nowMs: number): Buffer | Errno | Failure {
  try {
    if (container === null) return readHostCpuTreeFile(file, sources.sysRoot);
    return Buffer.from(renderCpuTreePath(file, container, sources, nowMs), 'utf8');
  } catch (err) {
    if (err instanceof CpuNotVisibleError) return { errno: E.ENOENT };
    const code = err instanceof FileReadError ? (E as Record<string, number>)[err.code] : undefined;
    if (code !== undefined) return { errno: code };
    return container === null ? { errno: E.EIO } : { failure: err };
  }
}

/** `file` as `container` sees it. Throws FileReadError (host file), CpuNotVisibleError, or on bad input. */
function renderCpuTreePath(file: CpuTreePath, container: ContainerRecord, sources: HostSources, nowMs: number): string {
  const rel = relativeCpuPath(file);
  const kind = cpuFileKind(rel);
  const visible = new ViewInputs(container, sources, nowMs).visibleCpus();
  const cpuDir = path.join(sources.sysRoot, 'devices/system/cpu');
  const perCpu = PER_CPU.exec(rel);
  let hostRel = rel;
  if (perCpu) {
    const hostCpu = visible[Number(perCpu[1])];
    if (hostCpu === undefined) throw new CpuNotVisibleError(`cpu${perCpu[1]} is not visible`);
    hostRel = `cpu${hostCpu}/${perCpu[2]}`;
  }
  const hostText = needsHostText(kind) ? readBoundedText(cpuDir, hostRel, CPU_FILE_MAX_BYTES) : undefined;
  const threadSiblings = kind === 'smt-active' && hostText?.trim() !== '0' ? siblingsUntilShared(cpuDir, visible) : undefined;
  return renderCpuTreeFile({ kind, visible, hostText, threadSiblings });
}

/** The visible CPUs' thread siblings, read up to the first list that names two of them (SMT active). */
function siblingsUntilShared(cpuDir: string, visible: number[]): number[][] {
  const shown = new Set(visible);
  const lists: number[][] = [];
  for (const id of visible) {
    const siblings = parseCpuList(readBoundedText(cpuDir, `cpu${id}/topology/thread_siblings_list`, CPU_FILE_MAX_BYTES));
    lists.push(siblings);
    if (siblings.filter((cpu) => shown.has(cpu)).length > 1) break;
  }
  return lists;
}

/** Every path of the CPU tree, for the FUSE layout: the per-CPU files under each cpuN of `cpuIds`. */
export function cpuTreePaths(shared: readonly string[], perCpu: readonly string[], cpuIds: readonly number[]): CpuTreePath[] {
  const paths: CpuTreePath[] = shared.map((rel) => `${CPU_TREE_DIR}/${rel}` as CpuTreePath);
  for (const id of cpuIds) for (const rel of perCpu) paths.push(`${CPU_TREE_DIR}/cpu${id}/${rel}`);
  return paths;
}
