/**
 * A cgroup file kept open (host/heldFiles.ts) never serves what a fresh open would not: on a
 * real cgroup, removed and then recreated under the same path, the kept fd is refused by the
 * kernel (ENODEV), the cache opens the path again and reads the new cgroup's value.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestCgroup, isPureV2, type TestCgroup } from '../helpers/cgroups';
import { HeldFiles } from '../../src/host/heldFiles';
import type { FileReadError } from '../../src/host/boundedRead';

const MIB = 1024n * 1024n;
let cgroup: TestCgroup | null = null;
const files = new HeldFiles();

afterEach(async () => {
  files.clear();
  await cgroup?.remove();
  cgroup = null;
});

describe('kept cgroup files on a real cgroup', () => {
  it('a removed cgroup is gone, a recreated one shows its own value', async () => {
    const limitFile = isPureV2() ? 'memory.max' : 'memory.limit_in_bytes';
    cgroup = createTestCgroup('held', { memoryLimitBytes: 100n * MIB });
    const dir = cgroup.dirs.get('memory');
    if (dir === undefined) throw new Error('no memory cgroup made');
    expect(files.readText(dir, limitFile).trim()).toBe(String(100n * MIB));
    expect(files.size).toBe(1); // kept: a kernfs file
    expect(files.readText(dir, limitFile).trim()).toBe(String(100n * MIB));

    await cgroup.remove();
    cgroup = null;
    let error: unknown = null;
    try {
      files.readText(dir, limitFile);
    } catch (err) {
      error = err;
    }
    // By name: a module registry reset elsewhere in a shared worker makes instanceof unreliable.
    expect((error as FileReadError | null)?.name).toBe('FileReadError');
    expect((error as FileReadError).code).toBe('ENOENT');
    expect(files.size).toBe(0);

    cgroup = createTestCgroup('held', { memoryLimitBytes: 200n * MIB });
    expect(cgroup.dirs.get('memory')).toBe(dir);
    expect(files.readText(dir, limitFile).trim()).toBe(String(200n * MIB));
    expect(files.size).toBe(1);
  });
});
