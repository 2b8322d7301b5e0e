/**
 * Attached containers are never evicted from the registry (their subtree lives as long as their
 * cgroup), and each costs a helper run, a subtree of inodes and its views' content. A container
 * that makes child cgroups, each with a process in a mount namespace of its own (root in its
 * user namespace: unshare -m), had every one attached as a container of its own: 30 children,
 * 30 more subtrees, without a bound but its pids. At most MAX_ATTACHED_PER_TENANT (16) are
 * attached at or below one attached container now (a warning for the rest, whose namespaces
 * keep the mounts they have), and a container started elsewhere after them is still attached.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, makeChildCgroup, removeChildCgroups, type TestCgroup } from '../helpers/cgroups';
import { startContainer, type RunningContainer } from '../helpers/container';
import { until } from '../helpers/procText';

const CHILDREN = 30;
/** MAX_ATTACHED_PER_TENANT (src/containers/registry.ts): A and 15 below it. */
const PER_TENANT = 16;

describe('containers attached below an attached container', () => {
  let daemon: DaemonHandle;
  let a: TestCgroup;
  let b: TestCgroup;
  const containers: RunningContainer[] = [];
  const childDirs: string[][] = [];

  beforeAll(async () => {
    a = createTestCgroup('nestA');
    const prefix = path.posix.join(path.posix.dirname(a.key), 'isolfs-test-nest');
    daemon = await startDaemon({ args: ['--attach', prefix] });
    containers.push(startContainer(a, { mountpoint: null }, 'sleep 600'));
    await until('A attached', () => fs.existsSync(path.join(daemon.mountpoint, 'containers', encodeURIComponent(a.key))), Boolean, 20_000);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(containers.map((c) => c.stop()));
    await daemon?.cleanup();
    await removeChildCgroups(childDirs.flat());
    await a?.remove();
    await b?.remove();
  }, 60_000);

  it('at most 16 at or below A, with a warning; B, started after them, is attached', async () => {
    for (let i = 0; i < CHILDREN; i++) {
      const dirs = makeChildCgroup(a, `c${i}`);
      childDirs.push(dirs);
      const fake = { ...a, key: `${a.key}/c${i}`, procsFiles: dirs.map((d) => path.join(d, 'cgroup.procs')) };
      containers.push(startContainer(fake, { mountpoint: null }, 'sleep 600'));
    }
    const subtreesOfA = () => fs.readdirSync(path.join(daemon.mountpoint, 'containers')).map(decodeURIComponent).filter((k) => k === a.key || k.startsWith(`${a.key}/`));
    await until('A and 15 children attached', () => subtreesOfA().length, (n) => n >= PER_TENANT, 30_000);
    await until('a warning for the rest', () => daemon.logs.some((l) => l.includes('too many containers attached below one attached container')), Boolean, 10_000);
    b = createTestCgroup('nestB');
    containers.push(startContainer(b, { mountpoint: null }, 'sleep 600'));
    await until('B attached', () => fs.existsSync(path.join(daemon.mountpoint, 'containers', encodeURIComponent(b.key))), Boolean, 20_000);
    // Every child's namespace was looked at by now (B's came after them): none more attached.
    await new Promise((r) => setTimeout(r, 2000));
    expect(subtreesOfA()).toHaveLength(PER_TENANT);
  }, 60_000);
});
