import os from 'node:os';
import path from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';
import { defineConfig } from 'vitest/config';

/**
 * The unit lane (`npm run test:unit`): the decision layer on fixtures and temp dirs, with no root,
 * no FUSE mount and no cgroup creation, in seconds. scripts/test.sh runs it as uid 65534 before
 * the suites, which proves every file here needs no privilege.
 *
 * Every test file outside NOT_UNIT_DIRS is in, so a new test file joins the lane by being written.
 * A file there that needs root, a mount or a real container belongs in ROOT_ONLY, named.
 */
/** Suites that mount, create cgroups or run real containers by design; everything else is unit. */
const NOT_UNIT_DIRS = ['integration', 'stress', 'deploy', 'vm', 'conformance'];
const ROOT_ONLY = [
  'test/fuse/mount.test.ts', // mounts isolfs through the built daemon
  'test/fuse/native.test.ts', // mounts the native addon itself (both loops)
  'test/fuse/pagecache.test.ts', // mounts the native addon in a page-cache session (both loops)
  'test/attach/attach.test.ts', // runs the real isolfs-attach helper in runc containers
  'test/attach/attachBatch.test.ts', // runs isolfs-attach --batch in real mount namespaces (unshare -m)
  'test/attach/hookServer.test.ts', // a socket directory owned by another uid needs chown
];

/**
 * A test skipped as non-root would pass this lane while proving nothing: a skip here fails the
 * run, naming the test, so a unit test that secretly needs root is moved to ROOT_ONLY instead.
 */
const noSkips: Reporter = {
  onTestRunEnd(testModules: readonly TestModule[]): void {
    const skipped: string[] = [];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        if (test.result().state === 'skipped') skipped.push(`${module.moduleId}: ${test.fullName}`);
      }
    }
    if (skipped.length === 0) return;
    process.stderr.write(`isolfs unit lane: ${skipped.length} test(s) skipped; the unit lane allows none:\n  ${skipped.join('\n  ')}\n`);
    process.exitCode = 1;
  },
};

export default defineConfig({
  // Writable by whoever runs the lane (it runs as uid 65534 in CI, in a tree owned by root).
  cacheDir: path.join(os.tmpdir(), `isolfs-vitest-unit-${process.getuid?.() ?? 'user'}`),
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['node_modules/**', ...NOT_UNIT_DIRS.map((dir) => `test/${dir}/**`), ...ROOT_ONLY],
    reporters: ['default', noSkips],
    // No globalSetup: nothing here runs the built CLI, so nothing needs dist/.
    pool: 'forks',
    // Files share a worker process instead of each starting a fresh one: 13 s instead of 35 s
    // on the 2-CPU machines (measured 2026-12-02). So a file must leave no global state behind:
    // spies, env and globals are undone after every test below; vi.mock of a module does not
    // belong in this lane.
    isolate: false,
    restoreMocks: true,
    unstubEnvs: true,
    unstubGlobals: true,
    // vitest leaves one CPU to its main process by default, which here is half the machine.
    maxWorkers: os.availableParallelism(),
    testTimeout: 20_000,
  },
});
