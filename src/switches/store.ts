/**
 * The two switches of the kernel feature isolfs stands in for, and their persistence.
 *
 * - `kernel.stats_isolated` (host): true = isolated views; false = every reader gets host files.
 * - `kernel.container_stats_isolated` (per container): an entry per container key (its cgroup
 *   path). An entry applies to that cgroup and every cgroup below it; the nearest entry wins,
 *   so a container's own child cgroups follow it (the kernel flag did not: every cgroup started
 *   at 1 — we do better, as DESIGN.md asks).
 *
 * State is written atomically (temp file, fsync, rename, fsync of the directory) before a write
 * to a control file is acknowledged, so an acknowledged switch survives kill -9 and power loss.
 */
import fs from 'node:fs';
import path from 'node:path';

export const STATE_FILE = 'switches.json';
const STATE_VERSION = 1;

interface PersistedState {
  version: number;
  hostIsolated: boolean;
  /** container key -> 0 | 1 */
  containers: Record<string, 0 | 1>;
}

export interface SwitchLogger {
  info: (obj: object, msg: string) => void;
  warn: (obj: object, msg: string) => void;
  error: (obj: object, msg: string) => void;
}

export class StateFileError extends Error {}

interface Waiter { resolve: () => void; reject: (err: unknown) => void }

export class SwitchStore {
  private hostIsolatedValue: boolean;
  private readonly containers = new Map<string, boolean>();
  /** The values last made durable: what a failed flush puts back. */
  private durable: { hostIsolated: boolean; containers: Map<string, boolean> } = { hostIsolated: true, containers: new Map() };
  /** Whether a flush runs (one at a time), and the writes waiting for the next one. */
  private flushing = false;
  private queued: Waiter[] = [];

  private constructor(
    private readonly stateDir: string,
    hostIsolatedDefault: boolean,
  ) {
    this.hostIsolatedValue = hostIsolatedDefault;
  }

  /**
   * Loads the state under `stateDir`. A missing file starts from the defaults (first start); a
   * corrupt one is moved aside (`switches.json.corrupt-<time>`) and reported at error level:
   * never silently replaced. `hostIsolatedFlag` (the --host-isolated flag) applies only when no
   * state was persisted: a value an operator set at run time outlives a restart.
   */
  static open(stateDir: string, logger: SwitchLogger, hostIsolatedFlag: boolean | undefined): SwitchStore {
    makeStateDir(stateDir);
    const store = new SwitchStore(stateDir, hostIsolatedFlag ?? true);
    const file = path.join(stateDir, STATE_FILE);
    const text = readStateFile(file);
    if (text !== null) {
      try {
        const state = parseState(text);
        store.hostIsolatedValue = state.hostIsolated;
        for (const [key, value] of Object.entries(state.containers)) store.containers.set(key, value === 1);
        if (hostIsolatedFlag !== undefined && hostIsolatedFlag !== state.hostIsolated) {
          logger.warn({ persisted: state.hostIsolated, flag: hostIsolatedFlag },
            'kernel.stats_isolated: the persisted value wins over --host-isolated (set it with isolfs sysctl -w)');
        }
        logger.info({ file, hostIsolated: state.hostIsolated, containers: store.containers.size }, 'switch state restored');
      } catch (err) {
        const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        fs.renameSync(file, aside);
        logger.error({ file, movedTo: aside, reason: (err as Error).message },
          'switch state file is corrupt: moved aside, starting from defaults; restore it by hand if it mattered');
        store.persist();
      }
    } else {
      store.persist();
    }
    store.durable = { hostIsolated: store.hostIsolatedValue, containers: new Map(store.containers) };
    return store;
  }

  get hostIsolated(): boolean {
    return this.hostIsolatedValue;
  }

  /** A value already set is not persisted again: a write loop costs no fsync of the main thread. */
  setHostIsolated(value: boolean): void {
    const before = this.hostIsolatedValue;
    if (before === value) return;
    this.hostIsolatedValue = value;
    try {
      this.persist();
    } catch (err) {
      this.hostIsolatedValue = before; // not durable, so not acknowledged
      throw err;
    }
  }

  /** The explicit value for `key`: its own entry or its nearest ancestor's; undefined if none. */
  explicitContainerValue(key: string): boolean | undefined {
    let current = key;
    while (true) {
      const value = this.containers.get(current);
      if (value !== undefined) return value;
      if (current === '/' || current === '') return undefined;
      const slash = current.lastIndexOf('/');
      current = slash <= 0 ? '/' : current.slice(0, slash);
    }
  }

  setContainer(key: string, value: boolean): void {
    const before = this.containers.get(key);
    if (before === value) return;
    this.containers.set(key, value);
    try {
      this.persist();
    } catch (err) {
      if (before === undefined) this.containers.delete(key);
      else this.containers.set(key, before);
      throw err;
    }
  }

  get optedOutCount(): number {
    let count = 0;
    for (const value of this.containers.values()) if (!value) count++;
    return count;
  }

  /** Whether `key` has an entry of its own (not an ancestor's). */
  hasContainerEntry(key: string): boolean {
    return this.containers.has(key);
  }

  containerKeys(): string[] {
    return [...this.containers.keys()];
  }

  /**
   * Sets `value` now and resolves once it is durable (rejects if it could not be made so, and
   * then every value is back to the last durable one). One flush at a time writes the file, with
   * its fsyncs off the main thread, for every change made before it began: a container writing
   * in a loop costs the daemon one render of the state per flush, never a wait on the disk.
   */
  setDurably(key: string | null, value: boolean): Promise<void> {
    const before = key === null ? this.hostIsolatedValue : this.containers.get(key);
    if (before === value && !this.flushing && this.queued.length === 0) return Promise.resolve();
    if (key === null) this.hostIsolatedValue = value;
    else this.containers.set(key, value);
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ resolve, reject });
      if (!this.flushing) this.flush();
    });
  }

  /** Drops entries whose cgroup no longer exists; persists if anything changed (the sweep's, rare). */
  forget(keys: string[]): void {
    let changed = false;
    for (const key of keys) changed = this.containers.delete(key) || changed;
    if (changed) this.persist();
  }

  private flush(): void {
    this.flushing = true;
    const waiters = this.queued;
    this.queued = [];
    const state = { hostIsolated: this.hostIsolatedValue, containers: new Map(this.containers) };
    const done = (err: unknown): void => {
      this.flushing = false;
      if (err === null) {
        this.durable = state;
        for (const waiter of waiters) waiter.resolve();
      } else {
        // Not durable, so not acknowledged: back to the last durable values, with the writes queued since.
        this.hostIsolatedValue = this.durable.hostIsolated;
        this.containers.clear();
        for (const [key, value] of this.durable.containers) this.containers.set(key, value);
        for (const waiter of [...waiters, ...this.queued]) waiter.reject(err);
        this.queued = [];
      }
      if (this.queued.length > 0) this.flush();
    };
    writeFileAtomicAsync(path.join(this.stateDir, STATE_FILE), render(state.hostIsolated, state.containers)).then(() => done(null), (err: unknown) => done(err ?? new Error('flush failed')));
  }

  private persist(): void {
    writeFileAtomic(path.join(this.stateDir, STATE_FILE), render(this.hostIsolatedValue, this.containers));
    this.durable = { hostIsolated: this.hostIsolatedValue, containers: new Map(this.containers) };
  }
}

function render(hostIsolated: boolean, containers: Map<string, boolean>): string {
  const state: PersistedState = {
    version: STATE_VERSION, hostIsolated,
    containers: Object.fromEntries([...containers].map(([k, v]) => [k, v ? 1 : 0])),
  };
  return `${JSON.stringify(state, null, 2)}\n`;
}

/** writeFileAtomic with the writes and fsyncs on libuv's threads (a temp file of its own). */
async function writeFileAtomicAsync(file: string, content: string): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.async.tmp`);
  const handle = await fs.promises.open(temp, 'w', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.promises.rename(temp, file);
  const dirHandle = await fs.promises.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/**
 * Creates the state directory if needed. What is in the way (a file, a dangling symlink) is
 * left as it is and named: the operator decides what it was.
 */
function makeStateDir(stateDir: string): void {
  try {
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new StateFileError(`state directory ${stateDir}: ${describeFsError(err)}`, { cause: err });
  }
  if (!fs.statSync(stateDir).isDirectory()) throw new StateFileError(`state directory ${stateDir} is not a directory`);
}

/** The state file's text, or null on a first start. Anything else unreadable is not replaced. */
function readStateFile(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'EISDIR') throw new StateFileError(`state file ${file} is a directory: move it away (nothing was changed)`, { cause: err });
    throw new StateFileError(`state file ${file}: ${describeFsError(err)}`, { cause: err });
  }
}

function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EEXIST') return 'exists and is not a directory';
  if (e.code === 'ENOTDIR') return 'a parent of it is not a directory';
  return e.code ? `${e.code} (${e.syscall ?? 'access'})` : String(err);
}

function parseState(text: string): PersistedState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(`not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null) throw new StateFileError('not an object');
  const obj = raw as Record<string, unknown>;
  if (obj.version !== STATE_VERSION) throw new StateFileError(`unknown version ${String(obj.version)}`);
  if (typeof obj.hostIsolated !== 'boolean') throw new StateFileError('hostIsolated is not a boolean');
  const containers = obj.containers;
  if (typeof containers !== 'object' || containers === null || Array.isArray(containers)) {
    throw new StateFileError('containers is not an object');
  }
  for (const [key, value] of Object.entries(containers)) {
    if (!key.startsWith('/')) throw new StateFileError(`container key ${JSON.stringify(key)} is not a cgroup path`);
    if (value !== 0 && value !== 1) throw new StateFileError(`container ${key}: value ${String(value)} is not 0 or 1`);
  }
  return { version: STATE_VERSION, hostIsolated: obj.hostIsolated, containers: containers as Record<string, 0 | 1> };
}

/** temp file in the same directory, fsync, rename over, fsync the directory. */
export function writeFileAtomic(file: string, content: string): void {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(temp, 'w', 0o600);
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temp, file);
  const dirFd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
}
