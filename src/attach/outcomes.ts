/**
 * What the attach manager knows of each mount namespace it looked at, when it looks again, and
 * how each look's outcome is counted and logged (manager.ts does the looking).
 */
import { AttachHelperError, type AttachResult } from './attach';
import { containerDirName } from '../fuse/filesystem';
import type { Logger } from '../log';
import type { AttachPlan, OurDevices } from './plan';

export interface ScanReport {
  /** Mount namespaces seen (other than ours). */
  namespaces: number;
  /** Of those, how many were looked at (mountinfo read): new ones and those due. */
  inspected: number;
  repairedMounts: number;
  attachedContainers: number;
  failures: number;
  durationMs: number;
}

/** Who looks: the full scan, the event-driven schedule, or attachNow. */
export type LookKind = 'scan' | 'look' | 'now';

/** One scan, look or attachNow in progress: our mount, whether it attaches, what it did so far. */
export interface Pass {
  /** The scan number it counts in (verifyAtScan). */
  scan: number;
  ourDevices: OurDevices;
  attaching: boolean;
  report: ScanReport;
  startedMs: number;
}

export interface NamespaceState {
  /** The container attached there (null: repair only, or not under a prefix). */
  key: string | null;
  /** The scan number at which to look at the namespace again. */
  verifyAtScan: number;
  /** Helper runs in a row that found something to do here (a look that finds none resets it). */
  runsInARow: number;
  /** When the namespace was first recorded for this key (performance.now()). */
  sinceMs: number;
}

/** A namespace planned, about to be applied. */
export interface Looked {
  ns: number;
  pid: number;
  /** The container under a prefix the namespace's process is in, when attaching. */
  matching: string | null;
  state: NamespaceState | undefined;
  plan: AttachPlan;
}

/** A look whose helper ran: the container now attached there (NamespaceState.key) and the runs in a row. */
interface Applied extends Looked {
  key: string | null;
  runsInARow: number;
}

/** Helper runs in a row after which a namespace is no longer looked at again soon. */
const MAX_QUICK_RUNS = 3;

export interface OutcomesOptions {
  logger: Logger;
  verifyEveryScans: number;
  warn: (key: string, fields: object, message: string) => void;
}

export class Outcomes {
  /** Mount namespaces seen (by inode) and what was done there. */
  private readonly handled = new Map<number, NamespaceState>();

  constructor(private readonly options: OutcomesOptions) {}

  static emptyReport(): ScanReport {
    return { namespaces: 0, inspected: 0, repairedMounts: 0, attachedContainers: 0, failures: 0, durationMs: 0 };
  }

  state(ns: number): NamespaceState | undefined {
    return this.handled.get(ns);
  }

  /** New, due for its periodic look, or now in another container (attaching). */
  due(pass: Pass, ns: number, matching: string | null): boolean {
    const state = this.handled.get(ns);
    return state === undefined || pass.scan >= state.verifyAtScan || (pass.attaching && matching !== state.key);
  }

  /** Looked at before, and its periodic look is not due yet (whatever its cgroup now). */
  knownAndNotDue(pass: Pass, ns: number): boolean {
    const state = this.handled.get(ns);
    return state !== undefined && pass.scan < state.verifyAtScan;
  }

  /**
   * In place since before `startedMs` for this container: known then, and its last look found
   * nothing to do. A process joining a container already attached (an exec, a liveness probe)
   * needs no series of looks; a new namespace does (its runtime may still pivot_root).
   */
  settledBefore(ns: number, key: string, startedMs: number): boolean {
    const state = this.handled.get(ns);
    return state !== undefined && state.key === key && state.sinceMs < startedMs && state.runsInARow === 0;
  }

  /** Not one whose mounts vanished after each of the last few helper runs (something removes them). */
  quickLookAllowed(ns: number, matching: string | null): boolean {
    return runsInARowFor(this.handled.get(ns), matching) < MAX_QUICK_RUNS;
  }

  /** Applies a planned look (apply: runs the helper), counts and logs it, schedules the next look. */
  async record(pass: Pass, looked: Looked, apply: () => Promise<AttachResult[]>): Promise<AttachResult[]> {
    const { ns, state, plan } = looked;
    const key = pass.attaching ? looked.matching : state?.key ?? null;
    if (plan.pairs.length === 0) {
      this.set(ns, { key, verifyAtScan: pass.scan + this.options.verifyEveryScans, runsInARow: 0 });
      return [];
    }
    const runsInARow = runsInARowFor(state, key) + 1;
    let results: AttachResult[];
    const startedMs = performance.now();
    try {
      results = await apply();
    } catch (err) {
      this.recordHelperFailure(pass, { ...looked, key, runsInARow }, err);
      throw err;
    }
    this.recordApplied(pass, { ...looked, key, runsInARow }, results, performance.now() - startedMs);
    return results;
  }

  /** Namespaces that no longer exist (not seen by a full scan): forgotten. */
  forgetVanished(seen: ReadonlySet<number>): void {
    for (const ns of [...this.handled.keys()]) if (!seen.has(ns)) this.handled.delete(ns);
  }

  /** The pass's report, with its duration, logged (info when it did something). */
  finish(pass: Pass, message: string): ScanReport {
    const { report } = pass;
    report.durationMs = performance.now() - pass.startedMs;
    const level = report.repairedMounts > 0 || report.attachedContainers > 0 || report.failures > 0 ? 'info' : 'debug';
    this.options.logger[level]({ ...report }, message);
    return report;
  }

  /** Records a namespace's state, keeping when it was first seen for the same container. */
  private set(ns: number, state: Omit<NamespaceState, 'sinceMs'>): void {
    const previous = this.handled.get(ns);
    const sinceMs = previous !== undefined && previous.key === state.key ? previous.sinceMs : performance.now();
    this.handled.set(ns, { ...state, sinceMs });
  }

  private recordApplied(pass: Pass, looked: Applied, results: AttachResult[], helperMs: number): void {
    const { ns, pid, matching, plan, key, runsInARow } = looked;
    const { report } = pass;
    // ENOENT: the target vanished between our look and the helper's (a container starting).
    const failed = results.filter((r): r is Extract<AttachResult, { ok: false }> => !r.ok && r.errno !== 'ENOENT');
    const done = results.filter((r) => r.ok).map((r) => r.target);
    const attached = matching !== null && done.some((t) => !plan.repairTargets.has(t));
    report.failures += failed.length;
    report.repairedMounts += done.filter((t) => plan.repairTargets.has(t)).length;
    if (attached) report.attachedContainers++;
    // After an attach, look again soon: a runtime that had not yet switched to the container's
    // root throws such mounts away with the old root. Not forever, though: mounts that vanish
    // every time (something in the container removes them) are retried slowly. The event path
    // has its own quick looks, and attachNow (a hook, maybe before pivot_root) starts them; a
    // scan's attach (most likely a container running for a while) is looked at on the next scan:
    // quick looks for each of a node's 500 containers found at start cost seconds of CPU.
    const clean = failed.length === 0;
    const soon = clean && runsInARow < MAX_QUICK_RUNS;
    this.set(ns, { key, verifyAtScan: pass.scan + (soon ? 1 : this.options.verifyEveryScans), runsInARow });
    if (runsInARow > MAX_QUICK_RUNS) this.options.warn(`again:${ns}`, { pid, container: matching, runsInARow }, 'isolfs mounts keep disappearing from a container');
    this.options.logger.info({
      pid, container: matching, dir: matching === null ? undefined : containerDirName(matching),
      repaired: [...plan.repairTargets], attached: done, failed: failed.map((r) => `${r.target}: ${r.errno} ${r.message}`),
      detachedMounts: results.reduce((sum, r) => sum + (r.ok ? r.detachedMounts : 0), 0),
      again: looked.state !== undefined && looked.state.key === matching, helperMs: Math.round(helperMs * 10) / 10,
    }, plan.repairTargets.size > 0 ? 'repaired isolfs mounts in a container' : 'attached isolfs files into a container');
    if (!clean) this.options.warn(`failed:${ns}`, { pid, container: matching, failed: failed.map((r) => `${r.target}: ${r.errno}`) }, 'some files could not be attached');
  }

  private recordHelperFailure(pass: Pass, looked: Applied, err: unknown): void {
    const { ns, pid, state, runsInARow } = looked;
    pass.report.failures++;
    if (err instanceof AttachHelperError && err.errno === 'ESRCH') {
      // The process exited since we listed it: another of the namespace's, next time.
      this.handled.delete(ns);
    } else {
      this.set(ns, { key: state?.key ?? null, verifyAtScan: pass.scan + this.options.verifyEveryScans, runsInARow });
      this.options.warn(`helper:${ns}`, { pid, err: String(err) }, 'attach helper failed');
    }
  }
}

/**
 * Helper runs in a row in a namespace for this container. Another container's count does not
 * carry over: namespace inodes are reused as soon as one is freed (runc's next container often
 * gets its predecessor's), and the full scan that forgets vanished ones runs only every 30 s.
 */
function runsInARowFor(state: NamespaceState | undefined, key: string | null): number {
  return state !== undefined && state.key === key ? state.runsInARow : 0;
}
