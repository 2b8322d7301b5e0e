/**
 * Attach into many namespaces with one helper run: `isolfs-attach --batch`.
 *
 * Why: at 500 containers the helper's own work is ~0.3 ms per namespace (open_tree, setns,
 * move_mount), but spawning it from the daemon costs the daemon's main thread a fork of a large
 * process, ~1.5 ms of CPU each on a quiet machine and tens of ms under load. Requests that arrive
 * while the runs are busy (or within windowMs of the first) go into one run: the helper clones a
 * namespace's sources in the host's namespace, forks a child that enters it and binds, and prints
 * that namespace's lines before the next (native/src/attach.c, --batch).
 *
 * Bounds: at most maxRuns helper runs at once, each at most maxNamespaces namespaces and
 * maxPairs pairs (the helper refuses more than 64 namespaces and 2048 arguments); each namespace's child is killed after
 * nsTimeoutMs (its pairs fail with ETIMEDOUT, the others go on); a namespace whose process is
 * gone (ESRCH) fails alone. The rules of attach.ts hold: sources are cloned before entering a
 * container, the helper never runs synchronously on the event loop.
 */
import {
  type AttachPair, type AttachResult, AttachHelperError, type HelperOutput, parseResult, runHelper, validatePairs, validateRoot,
} from './attach';

export interface AttachBatcherOptions {
  helperPath: string;
  /** Helper runs at once (default 2). */
  maxRuns?: number;
  /** Namespaces per run (default 32, at most 64). */
  maxNamespaces?: number;
  /** Pairs per run (default 1024, at most 1984: with 64 @PID words, the helper's 2048 arguments). */
  maxPairs?: number;
  /** How long the first request waits for others when a run could start at once (default 2 ms). */
  windowMs?: number;
  /** A namespace's child is killed after this long (default 2000 ms). */
  nsTimeoutMs?: number;
}

interface Request {
  pid: number;
  pairs: readonly AttachPair[];
  /** The container's rootfs before pivot_root (the OCI hook): targets resolve with it as "/". */
  root: string | undefined;
  resolve: (results: AttachResult[]) => void;
  reject: (err: unknown) => void;
}

/** The helper's answer for one namespace: "ns PID", then its pair lines or one "fatal ..." line. */
interface GroupLines {
  pid: number;
  lines: string[];
}

export class AttachBatcher {
  private readonly queue: Request[] = [];
  private running = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly maxRuns: number;
  private readonly maxNamespaces: number;
  private readonly maxPairs: number;
  private readonly windowMs: number;
  private readonly nsTimeoutMs: number;
  /** Helper runs started, and namespaces they carried (for tests and logs). */
  runs = 0;
  namespaces = 0;

  constructor(private readonly options: AttachBatcherOptions) {
    this.maxRuns = Math.max(1, options.maxRuns ?? 2);
    this.maxNamespaces = Math.min(64, Math.max(1, options.maxNamespaces ?? 32));
    this.maxPairs = Math.min(1984, Math.max(1, options.maxPairs ?? 1024));
    this.windowMs = options.windowMs ?? 2;
    this.nsTimeoutMs = options.nsTimeoutMs ?? 2000;
  }

  /** As attachFiles(helperPath, pid, pairs): one result per pair, or AttachHelperError for this pid alone. */
  attach(pid: number, pairs: readonly AttachPair[], root?: string): Promise<AttachResult[]> {
    validatePairs(pid, pairs);
    if (root !== undefined) validateRoot(root, pairs);
    if (pairs.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ pid, pairs, root, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.queue.length === 0 || this.running >= this.maxRuns || this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, this.windowMs);
  }

  private flush(): void {
    while (this.queue.length > 0 && this.running < this.maxRuns) {
      const batch: Request[] = [];
      let pairs = 0;
      while (this.queue.length > 0 && batch.length < this.maxNamespaces) {
        const next = this.queue[0] as Request;
        if (batch.length > 0 && pairs + next.pairs.length > this.maxPairs) break;
        batch.push(next);
        pairs += next.pairs.length;
        this.queue.shift();
      }
      this.running++;
      void this.run(batch).finally(() => {
        this.running--;
        // Whatever queued meanwhile goes now: it has waited for a run already.
        this.flush();
      });
    }
  }

  private async run(batch: Request[]): Promise<void> {
    this.runs++;
    this.namespaces += batch.length;
    const args = ['--batch', '--ns-timeout-ms', String(this.nsTimeoutMs), '--'];
    for (const r of batch) {
      args.push(r.root === undefined ? `@${r.pid}` : `@${r.pid}=${r.root}`, ...r.pairs.map((p) => `${p.source}:${p.target}:${p.detachMountIds.join(',')}`));
    }
    let output: HelperOutput;
    try {
      // The helper's own bound is nsTimeoutMs per namespace; this one only catches a helper gone wrong.
      output = await runHelper(this.options.helperPath, args, this.nsTimeoutMs * batch.length + 5000);
    } catch (err) {
      for (const r of batch) r.reject(err);
      return;
    }
    const groups = splitGroups(output.lines);
    batch.forEach((r, i) => {
      try {
        r.resolve(groupResults(r, groups[i], output));
      } catch (err) {
        r.reject(err);
      }
    });
  }
}

function splitGroups(lines: string[]): GroupLines[] {
  const groups: GroupLines[] = [];
  for (const line of lines) {
    const header = /^ns (\d+)$/.exec(line);
    if (header) groups.push({ pid: Number(header[1]), lines: [] });
    else groups.at(-1)?.lines.push(line);
  }
  return groups;
}

function groupResults(r: Request, group: GroupLines | undefined, output: HelperOutput): AttachResult[] {
  if (group === undefined || group.pid !== r.pid) {
    throw new AttachHelperError(`isolfs-attach printed no answer for pid ${r.pid}`, output.exitCode, null, output.stderr);
  }
  // "fatal ESRCH pid 123: ..." — nothing more was done in that namespace (or its child was killed).
  const fatal = group.lines.find((l) => l.startsWith('fatal '));
  if (fatal !== undefined) {
    const errno = /^fatal (E[A-Z0-9]+) /.exec(fatal)?.[1] ?? null;
    throw new AttachHelperError(`isolfs-attach: ${fatal.slice('fatal '.length)}`, 3, errno, output.stderr);
  }
  const own: HelperOutput = { lines: group.lines, stderr: output.stderr, exitCode: output.exitCode };
  return r.pairs.map((p, i) => parseResult(own, i, p.target, p.detachMountIds.length));
}
