/**
 * The watchdog's decisions on fakes (no root, no mount): what an external umount, a dead
 * connection and a wedged FUSE loop each lead to, and that it never piles up probes.
 */
import { describe, expect, it } from 'vitest';
import { judge, Watchdog, type WatchdogDeps, type WatchdogObservation } from '../../src/health/watchdog';

const LIMITS = { wedgedAfterMs: 10_000, abortAfterMs: 30_000 };
const SOURCE = 'isolfs:/var/lib/isolfs/mnt';
const OURS = `100 1 0:53 / /var/lib/isolfs/mnt rw,nosuid,nodev,relatime - fuse.isolfs ${SOURCE} rw,user_id=0,group_id=0,allow_other\n`;
const ROOT = '1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n';

const seen = (over: Partial<WatchdogObservation>): WatchdogObservation => ({ mount: 'ours', probeSinceMs: null, probeFailure: null, ...over });

describe('judge', () => {
  it('is healthy and ready when the mount is ours and the last probe answered', () => {
    expect(judge(seen({}), 0, LIMITS)).toMatchObject({ healthy: true, ready: true, action: 'none' });
    // An unreadable mountinfo alone is no reason to exit.
    expect(judge(seen({ mount: 'unknown' }), 0, LIMITS)).toMatchObject({ healthy: true, action: 'none' });
  });

  it('exits when the mount is gone from mountinfo', () => {
    const v = judge(seen({ mount: 'gone' }), 0, LIMITS);
    expect(v).toMatchObject({ healthy: false, ready: false, action: 'exit' });
    expect(v.reason).toMatch(/mount is gone/);
  });

  it('calls a probe unanswered for 10 s wedged, and aborts at 30 s', () => {
    expect(judge(seen({ probeSinceMs: 1000 }), 1000 + 9_999, LIMITS)).toMatchObject({ healthy: true, action: 'none' });
    expect(judge(seen({ probeSinceMs: 1000 }), 1000 + 10_000, LIMITS)).toMatchObject({ healthy: false, ready: false, action: 'none' });
    const v = judge(seen({ probeSinceMs: 1000 }), 1000 + 30_000, LIMITS);
    expect(v).toMatchObject({ healthy: false, action: 'abort-and-exit' });
    expect(v.reason).toMatch(/has not answered for 30000 ms/);
  });

  it('exits on a dead connection, but only reports other read failures', () => {
    for (const code of ['ENOTCONN', 'ECONNABORTED']) {
      expect(judge(seen({ probeFailure: { code, message: code } }), 0, LIMITS)).toMatchObject({ healthy: false, action: 'exit' });
    }
    expect(judge(seen({ probeFailure: { code: 'EIO', message: 'EIO: i/o error' } }), 0, LIMITS))
      .toMatchObject({ healthy: false, ready: true, action: 'none' });
  });
});

interface Fake {
  deps: WatchdogDeps;
  mountinfo: string;
  nowMs: number;
  probes: number;
  /** Settles the probe in flight. */
  answer: ((err?: NodeJS.ErrnoException) => void) | null;
  aborts: number;
  exits: string[];
  errors: string[];
}

function fake(): Fake {
  const f: Fake = { mountinfo: ROOT + OURS, nowMs: 0, probes: 0, answer: null, aborts: 0, exits: [], errors: [], deps: undefined as unknown as WatchdogDeps };
  f.deps = {
    readMountinfo: async () => f.mountinfo,
    probe: () => new Promise<void>((resolve, reject) => {
      f.probes++;
      f.answer = (err) => { f.answer = null; if (err) reject(err); else resolve(); };
    }),
    abortConnection: () => { f.aborts++; return Promise.resolve('aborted'); },
    exit: (reason) => { f.exits.push(reason); },
    nowMs: () => f.nowMs,
    logger: { info: () => undefined, warn: () => undefined, error: (o, msg) => { f.errors.push(`${msg} ${JSON.stringify(o)}`); } },
  };
  return f;
}

function watchdog(f: Fake): Watchdog {
  return new Watchdog({ ...LIMITS, source: SOURCE, realMountpoint: '/var/lib/isolfs/mnt', device: '0:53', intervalMs: 2000, exitGraceMs: 0 }, f.deps);
}

const settle = () => new Promise((r) => setImmediate(r));

describe('Watchdog', () => {
  it('stays healthy while the mount is there and answers', async () => {
    const f = fake();
    const w = watchdog(f);
    for (let i = 0; i < 5; i++) {
      await w.tick();
      f.answer?.();
      await settle();
      f.nowMs += 2000;
    }
    expect(w.verdict.healthy).toBe(true);
    expect(f.probes).toBe(5);
    expect(f.exits).toEqual([]);
  });

  it('after an external umount: logs why, turns unhealthy and not ready, then exits once', async () => {
    const f = fake();
    const w = watchdog(f);
    await w.tick();
    f.answer?.();
    f.mountinfo = ROOT; // umount -l from outside
    const ticked = w.tick();
    await ticked;
    expect(w.verdict).toMatchObject({ healthy: false, ready: false });
    expect(f.exits).toHaveLength(1);
    expect(f.exits[0]).toMatch(/mount is gone/);
    expect(f.errors.some((e) => e.startsWith('watchdog: unhealthy'))).toBe(true);
    expect(f.errors.some((e) => e.includes('exiting so the supervisor restarts us'))).toBe(true);
    await w.tick(); // no second exit
    expect(f.exits).toHaveLength(1);
  });

  it('takes a mount with another device at our mountpoint (someone mounted over it) as gone', async () => {
    const f = fake();
    f.mountinfo = ROOT + OURS + OURS.replace('100 1 0:53', '101 100 0:54');
    const w = watchdog(f);
    await w.tick();
    expect(f.exits).toHaveLength(1);
  });

  it('on a wedged loop: one probe only, unhealthy at 10 s, aborts the connection and exits at 30 s', async () => {
    const f = fake();
    const w = watchdog(f);
    for (f.nowMs = 0; f.nowMs < 10_000; f.nowMs += 2000) await w.tick();
    expect(w.verdict.healthy).toBe(true);
    f.nowMs = 10_000;
    await w.tick();
    expect(w.verdict).toMatchObject({ healthy: false, ready: false, action: 'none' });
    expect(f.aborts).toBe(0);
    for (f.nowMs = 12_000; f.nowMs < 30_000; f.nowMs += 2000) await w.tick();
    expect(f.aborts).toBe(0);
    f.nowMs = 30_000;
    await w.tick();
    expect(f.aborts).toBe(1);
    expect(f.exits).toHaveLength(1);
    expect(f.probes).toBe(1); // never more than one read stuck in the pool
    expect(f.errors.some((e) => e.includes('aborted our wedged FUSE connection'))).toBe(true);
  });

  it('recovers when the wedged probe finally answers before the abort', async () => {
    const f = fake();
    const w = watchdog(f);
    for (f.nowMs = 0; f.nowMs <= 12_000; f.nowMs += 2000) await w.tick();
    expect(w.verdict.healthy).toBe(false);
    f.answer?.();
    await settle();
    f.nowMs = 14_000;
    await w.tick();
    expect(w.verdict.healthy).toBe(true);
    expect(f.exits).toEqual([]);
  });

  it('takes a pause of the whole process (looks far apart) for a pause, not for a probe wedged all that time', async () => {
    const f = fake();
    const w = watchdog(f);
    await w.tick(); // a probe goes out at 0, and the process is stopped before its answer is taken
    f.nowMs = 45_000; // resumed: the next look comes 45 s later
    await w.tick();
    expect(w.verdict).toMatchObject({ healthy: true, action: 'none' });
    f.answer?.();
    await settle();
    f.nowMs = 47_000;
    await w.tick();
    expect(w.verdict.healthy).toBe(true);
    expect(f.aborts).toBe(0);
    expect(f.exits).toEqual([]);
  });

  it('after a pause, a probe that still does not answer is wedged again, counted from the resume', async () => {
    const f = fake();
    const w = watchdog(f);
    await w.tick();
    f.nowMs = 45_000;
    await w.tick();
    for (f.nowMs = 47_000; f.nowMs < 75_000; f.nowMs += 2000) await w.tick();
    expect(f.aborts).toBe(0);
    f.nowMs = 75_000;
    await w.tick();
    expect(f.aborts).toBe(1);
    expect(f.exits).toHaveLength(1);
  });

  it('exits when the probe finds the connection dead', async () => {
    const f = fake();
    const w = watchdog(f);
    await w.tick();
    f.answer?.(Object.assign(new Error('ENOTCONN: socket is not connected'), { code: 'ENOTCONN' }));
    await settle();
    await w.tick();
    expect(f.exits).toHaveLength(1);
    expect(f.exits[0]).toMatch(/connection is dead/);
  });
});
