/**
 * /proc/loadavg end to end: the daemon samples with a short interval (--loadavg-interval-ms, for
 * tests only), a container runs two busy loops and its 1-minute load climbs towards 2, while a
 * sibling idle container stays near 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { runInContainer, startContainer, type RunningContainer } from '../helpers/container';

const INTERVAL_MS = 200;

function parseLoadavg(text: string): { load1: number; load5: number; running: number; total: number } {
  const m = /^([\d.]+) ([\d.]+) ([\d.]+) (\d+)\/(\d+) (\d+)\n$/.exec(text);
  if (!m) throw new Error(`not a loadavg line: ${JSON.stringify(text)}`);
  return { load1: Number(m[1]), load5: Number(m[2]), running: Number(m[4]), total: Number(m[5]) };
}

describe('/proc/loadavg per container', () => {
  let daemon: DaemonHandle;
  let busy: TestCgroup;
  let idle: TestCgroup;
  let busyContainer: RunningContainer | undefined;

  beforeAll(async () => {
    daemon = await startDaemon({ args: ['--loadavg-interval-ms', String(INTERVAL_MS)] });
    busy = createTestCgroup('load-busy');
    idle = createTestCgroup('load-idle');
  });

  afterAll(async () => {
    await busyContainer?.stop();
    await daemon?.cleanup();
    await busy?.remove();
    await idle?.remove();
  });

  const readIn = async (cg: TestCgroup): Promise<string> => {
    const result = await runInContainer(cg, { mountpoint: daemon.mountpoint, files: ['/proc/loadavg'] }, 'cat /proc/loadavg');
    if (result.code !== 0) throw new Error(result.stderr);
    return result.stdout;
  };

  it('climbs towards 2 with two busy loops while an idle sibling stays near 0', async () => {
    // Read both first: the sampler starts following a container when someone reads its file,
    // seeded with the count at that moment (0 runnable here: nothing runs yet).
    expect(parseLoadavg(await readIn(busy)).load1).toBeLessThan(0.3);
    expect(parseLoadavg(await readIn(idle)).load1).toBeLessThan(0.3);

    // Two busy loops plus a reader loop that keeps the container "read recently".
    busyContainer = startContainer(busy, { mountpoint: daemon.mountpoint, files: ['/proc/loadavg'] },
      'sh -c "while :; do :; done" & sh -c "while :; do :; done" & while :; do cat /proc/loadavg > /dev/null; sleep 1; done');

    // The kernel's EXP_1 per tick is 1884/2048: after n ticks with 2 runnable the load is
    // 2 * (1 - 0.92^n); 40 ticks (8 s at 200 ms) gives 1.93. Allow for a busy machine.
    const deadline = Date.now() + 20_000;
    let busyLoad = parseLoadavg(await readIn(busy));
    while (busyLoad.load1 < 1.5 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      busyLoad = parseLoadavg(await readIn(busy));
    }
    expect(busyLoad.load1).toBeGreaterThanOrEqual(1.5);
    expect(busyLoad.load1).toBeLessThanOrEqual(2.6);
    expect(busyLoad.running).toBeGreaterThanOrEqual(1);
    expect(busyLoad.total).toBeGreaterThanOrEqual(3);
    expect(busyLoad.load5).toBeLessThan(busyLoad.load1); // the slower average lags behind

    const idleLoad = parseLoadavg(await readIn(idle));
    expect(idleLoad.load1).toBeLessThan(0.3);
  });

  it('falls again once the loops stop', async () => {
    await busyContainer?.stop();
    busyContainer = undefined;
    const before = parseLoadavg(await readIn(busy)).load1;
    await new Promise((r) => setTimeout(r, 3000));
    const after = parseLoadavg(await readIn(busy)).load1;
    expect(after).toBeLessThan(before * 0.6);
  });
});
