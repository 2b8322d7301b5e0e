import { defineConfig } from 'vitest/config';

/**
 * The harness's own check (test/vm/run.sh --config test/vm/selftest/vitest.config.mts): only
 * meaningful inside the VM, so the project's config excludes test/vm/** and this one includes
 * nothing else. No globalSetup: it needs no build.
 */
export default defineConfig({
  test: {
    include: ['test/vm/selftest/**/*.test.ts'],
    fileParallelism: false,
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
