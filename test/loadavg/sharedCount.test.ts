/**
 * The daemon's sampler (parts.ts newSampler) and /proc/stat's procs_running share one task count
 * per container for TASK_COUNTS_TTL_MS: a count kept in the record is used, an older one is not.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newSampler } from '../../src/parts';
import { ContainerRegistry } from '../../src/containers/registry';
import { TASK_COUNTS_TTL_MS } from '../../src/files';
import type { DaemonOptions } from '../../src/daemon';
import type { Logger } from '../../src/log';

let dir: string | null = null;
afterEach(() => {
  if (dir !== null) fs.rmSync(dir, { recursive: true, force: true });
  dir = null;
});

describe('newSampler', () => {
  it("uses the record's task count while it is fresh, and counts again (and keeps that) once it is not", () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-shared-count-'));
    const cgroup = path.join(dir, 'cg');
    fs.mkdirSync(cgroup);
    fs.writeFileSync(path.join(cgroup, 'cgroup.threads'), '');
    fs.writeFileSync(path.join(cgroup, 'cgroup.procs'), '');
    const registry = new ContainerRegistry({ idleMs: 600_000 });
    const options = { procRoot: dir, loadavgIntervalMs: 5000 } as DaemonOptions;
    const logger = { warn: () => undefined } as unknown as Logger;
    const sampler = newSampler(options, registry, null, logger);
    const record = registry.use({ key: '/cg', version: 2, dirs: {}, roots: {}, unifiedDir: cgroup }, Date.now());

    record.taskCounts = { atMs: Date.now(), counts: { running: 3, blocked: 0, total: 7, processes: 2, truncated: false } };
    expect(sampler.get(record)).toMatchObject({ running: 3, total: 7 }); // the kept count: nothing read

    record.load = null;
    record.taskCounts = { atMs: Date.now() - TASK_COUNTS_TTL_MS, counts: { running: 3, blocked: 0, total: 7, processes: 2, truncated: false } };
    expect(sampler.get(record)).toMatchObject({ running: 0, total: 0 }); // counted: the cgroup is empty
    expect(record.taskCounts?.counts).toMatchObject({ running: 0, total: 0 });
  });
});
