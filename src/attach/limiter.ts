/**
 * At most `limit` tasks at once; the rest wait their turn in order. Attach bounds its helper runs
 * with it: each is a fork/exec that enters a namespace and asks our own mount for its sources, so
 * hundreds at once would crowd the CPUs that serve FUSE, and one at a time made a node of 500
 * containers wait ~10 s.
 */
export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`limit must be an integer >= 1: ${limit}`);
  }

  /** Resolves when a place is free (taken for the caller): release() it when done. */
  acquire(): Promise<void> {
    if (this.running < this.limit) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.running--;
    else next(); // the place passes straight to the next waiter
  }

  /** Runs `task` in a place. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  get active(): number {
    return this.running;
  }
}
