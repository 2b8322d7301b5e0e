import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/vm/**', 'node_modules/**'],
    globalSetup: ['test/globalSetup.ts'],
    // Integration tests mount FUSE, create cgroups and time load averages: running files one at
    // a time keeps them from measuring each other on a 2-CPU machine.
    fileParallelism: false,
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
