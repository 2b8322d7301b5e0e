/**
 * Cgroup namespaces: on cgroup v2 every pod gets its own by default, so /proc/<pid>/cgroup reads
 * relative to the reader's namespace. The daemon must still place every caller in its real
 * cgroup: a reader in its own namespace (it sees "/" as its cgroup), and the daemon itself in
 * its own namespace (as a DaemonSet pod is), which it leaves for the host's at start through
 * /proc/1/ns/cgroup (src/daemon.ts, joinHostCgroupNamespace).
 *
 * The reader cases run everywhere (v1 hybrid and v2). The daemon-in-its-own-namespace cases need
 * /proc/1/ns/cgroup, which the project's sandboxes refuse even to root (EACCES): there they are
 * reported as skipped under a title that says why, and the cgroup v2 VM (test/vm/run.sh, part of
 * scripts/test.sh; it sets ISOLFS_EXPECT_CGROUP2=1) runs them and fails if it cannot.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { runInContainer } from '../helpers/container';

const MIB = 1024n * 1024n;

function memTotalKb(text: string): number | null {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) : null;
}

const hostMemTotalKb = memTotalKb(fs.readFileSync('/proc/meminfo', 'utf8'));

/** pid 1's cgroup namespace, or why we may not look at it (refused even to root in some sandboxes). */
function initCgroupNamespace(): { ns: string } | { error: string } {
  try {
    return { ns: fs.readlinkSync('/proc/1/ns/cgroup') };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}

/** A reader that unshares its own cgroup namespace, prints /proc/self/cgroup, then /proc/meminfo. */
const READER_IN_OWN_CGROUPNS = "unshare -C sh -c 'cat /proc/self/cgroup; echo ===; cat /proc/meminfo'";

function expectOwnNamespaceRoot(selfCgroup: string): void {
  const lines = selfCgroup.split('\n').filter(Boolean);
  expect(lines.length).toBeGreaterThan(0);
  // Inside its namespace the reader's own cgroup is the root, in every hierarchy.
  for (const line of lines) expect(line).toMatch(/:\/$/);
}

describe('a reader in its own cgroup namespace', () => {
  let daemon: DaemonHandle;
  let cg: TestCgroup;

  beforeAll(async () => {
    daemon = await startDaemon();
    cg = createTestCgroup('cgns-reader', { memoryLimitBytes: 96n * MIB });
  });

  afterAll(async () => {
    await daemon?.cleanup();
    await cg?.remove();
  });

  it('sees "/" as its own cgroup, and still gets its own limit (the daemon reads the real path)', async () => {
    const result = await runInContainer(cg, { mountpoint: daemon.mountpoint }, READER_IN_OWN_CGROUPNS);
    expect(result.code, result.stderr).toBe(0);
    const [selfCgroup, meminfo] = result.stdout.split('===\n');
    expectOwnNamespaceRoot(selfCgroup);
    expect(memTotalKb(meminfo)).toBe(96 * 1024);
    expect(96 * 1024).toBeLessThan(hostMemTotalKb as number);
  });
});

const init = initCgroupNamespace();
const expectVm = process.env.ISOLFS_EXPECT_CGROUP2 === '1';
const canJoin = 'ns' in init;
const notHere = canJoin ? '' : ` [NOT RUN HERE: readlink /proc/1/ns/cgroup fails with ${init.error}; test/vm/run.sh runs these]`;
if (!canJoin) console.warn(`!!! the daemon-in-its-own-cgroup-namespace tests are skipped here${notHere}`);

describe(`the daemon in its own cgroup namespace${notHere}`, () => {
  // Where these must run (the VM), not being able to is a failure, not a skip.
  it.runIf(expectVm)('(the VM) lets root read /proc/1/ns/cgroup', () => {
    expect(init).toHaveProperty('ns');
  });

  describe.skipIf(!canJoin)('starting under `unshare -C` in a cgroup of its own', () => {
    let daemonCg: TestCgroup;
    let readerCg: TestCgroup;

    /** Moves the daemon into daemonCg, then runs it in a new cgroup namespace rooted there. */
    const startInOwnNamespace = (args: string[] = []): Promise<DaemonHandle> => {
      const join = daemonCg.procsFiles.map((f) => `echo $$ > ${f}`).join('; ');
      // unshare -C without -f: unshare(CLONE_NEWCGROUP), then exec — the daemon keeps this pid.
      return startDaemon({ args, wrap: ['bash', '-c', `${join}; exec unshare -C "$@"`, 'bash'] });
    };

    beforeAll(() => {
      daemonCg = createTestCgroup('cgns-daemon');
      readerCg = createTestCgroup('cgns-sibling', { memoryLimitBytes: 80n * MIB });
    });

    afterAll(async () => {
      await readerCg?.remove();
      await daemonCg?.remove();
    });

    describe("joins the host's cgroup namespace (the default)", () => {
      let daemon: DaemonHandle;

      beforeAll(async () => {
        daemon = await startInOwnNamespace();
      });

      afterAll(async () => {
        await daemon?.cleanup();
      });

      it("left the namespace unshare gave it for pid 1's", () => {
        const line = daemon.logs.find((l) => l.includes("joined the host's cgroup namespace"));
        expect(line, daemon.logs.join('\n')).toBeDefined();
        const joined = JSON.parse(line!) as { from?: string; to?: string };
        const hostNs = fs.readlinkSync('/proc/1/ns/cgroup');
        expect(joined!.to).toBe(hostNs);
        expect(joined!.from).toMatch(/^cgroup:\[\d+\]$/);
        expect(joined!.from).not.toBe(hostNs);
        expect(fs.readlinkSync(`/proc/${daemon.process.pid}/ns/cgroup`)).toBe(hostNs);
      });

      it('resolves a reader in a sibling cgroup to its real cgroup', async () => {
        const result = await runInContainer(readerCg, { mountpoint: daemon.mountpoint }, 'cat /proc/meminfo');
        expect(result.code, result.stderr).toBe(0);
        expect(memTotalKb(result.stdout)).toBe(80 * 1024);
      });

      it('resolves a reader that is in its own cgroup namespace too', async () => {
        const result = await runInContainer(readerCg, { mountpoint: daemon.mountpoint }, READER_IN_OWN_CGROUPNS);
        expect(result.code, result.stderr).toBe(0);
        const [selfCgroup, meminfo] = result.stdout.split('===\n');
        expectOwnNamespaceRoot(selfCgroup);
        expect(memTotalKb(meminfo)).toBe(80 * 1024);
      });
    });

    describe('with --no-join-cgroupns (the control: what the join is for)', () => {
      let daemon: DaemonHandle;

      beforeAll(async () => {
        daemon = await startInOwnNamespace(['--no-join-cgroupns']);
      });

      afterAll(async () => {
        await daemon?.cleanup();
      });

      it('stays in its own namespace, sees the sibling as "/../..." and serves it the host\'s file', async () => {
        expect(fs.readlinkSync(`/proc/${daemon.process.pid}/ns/cgroup`)).not.toBe(fs.readlinkSync('/proc/1/ns/cgroup'));
        const result = await runInContainer(readerCg, { mountpoint: daemon.mountpoint }, 'cat /proc/meminfo');
        expect(result.code, result.stderr).toBe(0);
        expect(memTotalKb(result.stdout)).toBe(hostMemTotalKb);
        expect(daemon.logs.some((l) => l.includes('outside our cgroup namespace')), daemon.logs.join('\n')).toBe(true);
      });
    });
  });
});
