// Ancestors' limit files, shared by every container below them for a short time. Every render
// walks the reader's limits up through every ancestor (a parent's limit binds its children too),
// so on a node of 500 containers the same few parents' limit files were opened ~1,500 times a
// second; limits are set by an orchestrator when a pod is made or resized, and rarely change.
// Only limits are kept, never usage: how much is used must be as fresh as the reader's own.
import { readOptionalFile } from './parse';

/**
 * How long an ancestor's limit file is reused: a parent's new limit shows in its children's
 * views within this (the reader's own cgroup is read at every render).
 */
export const ANCESTOR_LIMIT_TTL_MS = 1000;
/** Entries kept (one per ancestor and limit file); past it the cache starts over: bounded
 *  however many cgroups a delegated subtree makes. */
export const ANCESTOR_LIMIT_MAX_ENTRIES = 4096;

/** A file's text (null: it does not exist), read at most once per `ttlMs` per path. */
export class TimedFileTexts {
  private readonly entries = new Map<string, { atMs: number; text: string | null }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly read: (dir: string, file: string) => string | null,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  /** The text as read at most `ttlMs` ago; a read that throws keeps nothing. */
  get(dir: string, file: string): string | null {
    const key = `${dir}/${file}`;
    const nowMs = this.nowMs();
    const kept = this.entries.get(key);
    if (kept !== undefined && nowMs >= kept.atMs && nowMs - kept.atMs < this.ttlMs) return kept.text;
    const text = this.read(dir, file);
    if (kept === undefined && this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, { atMs: nowMs, text });
    return text;
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The daemon's one cache of ancestors' limit files. */
export const ancestorLimits = new TimedFileTexts(ANCESTOR_LIMIT_TTL_MS, ANCESTOR_LIMIT_MAX_ENTRIES, readOptionalFile);

/** A limit file of `level`: read now when it is the reader's own cgroup `self`, else shared (above). */
export function readLimitFile(level: string, self: string, file: string): string | null {
  return level === self ? readOptionalFile(level, file) : ancestorLimits.get(level, file);
}
