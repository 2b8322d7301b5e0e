/**
 * Looks at a new (or newly populated) container cgroup a few times over its first seconds. One
 * look is not enough: a runtime moves its init into the cgroup before that init makes the
 * container's mount namespace, and runc's init then prepares the root and pivot_roots into it,
 * throwing away whatever was attached before. Each look is cheap (the cgroup's process list, a
 * mountinfo read per namespace; the helper runs only when a file is missing), so the schedule is
 * dense early, when the runtime is at work, and sparse later. Bounded: at most maxActive cgroups
 * have a schedule at once (beyond, the periodic scan finds them).
 */

/** When to look, in ms after the first event: dense while a runtime sets up, then sparse. */
export const LOOK_DELAYS_MS: readonly number[] = [0, 10, 20, 30, 40, 50, 60, 80, 100, 125, 150, 175, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000];
const DEFAULT_MAX_ACTIVE = 4096;

export interface LookScheduleOptions {
  /**
   * One look at a cgroup (never rejects: the caller logs its own failures). `startedMs`: when the
   * series began (performance.now()). True: nothing new there, the series ends.
   */
  look: (key: string, startedMs: number) => Promise<boolean>;
  delaysMs?: readonly number[];
  maxActive?: number;
  /** Called once per cgroup refused while maxActive are running. */
  overflow?: (key: string) => void;
}

interface Active {
  step: number;
  /** When the series (re)started. */
  startedMs: number;
  /** The next look's timer (null: a look is running). */
  timer: NodeJS.Timeout | null;
  /** An event came while a look was running: start over after it. */
  restart: boolean;
}

export class LookSchedule {
  private readonly active = new Map<string, Active>();
  private readonly delaysMs: readonly number[];
  private readonly maxActive: number;
  private stopped = false;

  constructor(private readonly options: LookScheduleOptions) {
    this.delaysMs = options.delaysMs ?? LOOK_DELAYS_MS;
    this.maxActive = options.maxActive ?? DEFAULT_MAX_ACTIVE;
  }

  /**
   * Starts the looks at `key`; under way already, they start over from the first (a process just
   * moved in: the dense early looks are the ones that find it), at most once per look.
   */
  start(key: string): void {
    if (this.stopped) return;
    const running = this.active.get(key);
    if (running !== undefined) {
      this.restart(key, running);
      return;
    }
    if (this.active.size >= this.maxActive) {
      this.options.overflow?.(key);
      return;
    }
    const entry: Active = { step: 0, startedMs: performance.now(), timer: null, restart: false };
    this.active.set(key, entry);
    this.arm(key, entry, this.delaysMs[0] ?? 0);
  }

  stop(): void {
    this.stopped = true;
    for (const entry of this.active.values()) if (entry.timer !== null) clearTimeout(entry.timer);
    this.active.clear();
  }

  /** Cgroups with looks under way. */
  get size(): number {
    return this.active.size;
  }

  private restart(key: string, entry: Active): void {
    if (entry.timer === null) {
      entry.restart = true;
      return;
    }
    clearTimeout(entry.timer);
    entry.step = 0;
    entry.startedMs = performance.now();
    this.arm(key, entry, this.delaysMs[0] ?? 0);
  }

  private arm(key: string, entry: Active, delayMs: number): void {
    entry.timer = setTimeout(() => void this.step(key, entry), delayMs);
    entry.timer.unref();
  }

  private async step(key: string, entry: Active): Promise<void> {
    entry.timer = null;
    const settled = await this.options.look(key, entry.startedMs);
    if (this.stopped || this.active.get(key) !== entry) return;
    if (entry.restart) {
      entry.restart = false;
      entry.step = 0;
      entry.startedMs = performance.now();
      this.arm(key, entry, this.delaysMs[0] ?? 0);
      return;
    }
    const previous = this.delaysMs[entry.step] ?? 0;
    entry.step++;
    const next = this.delaysMs[entry.step];
    if (next === undefined || settled) this.active.delete(key);
    else this.arm(key, entry, Math.max(0, next - previous));
  }
}
