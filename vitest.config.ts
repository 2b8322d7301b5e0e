import fs from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * test/integration/cgroupv2.test.ts needs a pure cgroup v2 machine. It runs where
 * /sys/fs/cgroup is cgroup2 (a v2 host), and wherever ISOLFS_EXPECT_CGROUP2=1 says it must (the
 * VM of test/vm/run.sh sets it; the file then fails unless the machine really is pure v2).
 * Elsewhere (the project's hybrid v1 machines) it is left out of the run, and said so here,
 * rather than counted as passed.
 */
const V2_ONLY = ['test/integration/cgroupv2.test.ts'];
const pureV2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
const runV2Only = pureV2 || process.env.ISOLFS_EXPECT_CGROUP2 === '1';
if (!runV2Only) {
  console.warn(`isolfs: /sys/fs/cgroup is not cgroup v2 here: NOT running ${V2_ONLY.join(', ')} (test/vm/run.sh runs it in a cgroup v2 VM)`);
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/vm/**', 'node_modules/**', ...(runV2Only ? [] : V2_ONLY)],
    globalSetup: ['test/globalSetup.ts'],
    // Integration tests mount FUSE, create cgroups and time load averages: running files one at
    // a time keeps them from measuring each other on a 2-CPU machine.
    fileParallelism: false,
    pool: 'forks',
    // The cgroup v2 VM (test/vm/run.sh sets ISOLFS_VM=1) emulates its CPUs (TCG): every exec
    // costs 5-10x what it does here, so the same tests get 3x the time there.
    testTimeout: process.env.ISOLFS_VM === '1' ? 180_000 : 60_000,
    hookTimeout: process.env.ISOLFS_VM === '1' ? 180_000 : 60_000,
  },
});
