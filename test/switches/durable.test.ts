/**
 * SwitchStore.setDurably, the switch files' write path: the value is set at once and the write
 * resolves once durable; the file is written off the main thread, one flush at a time, so a
 * loop of writes (a container toggling its switch) costs a few flushes, not one fsync each on
 * the thread that serves every reader; a flush that fails rejects its writes and puts back the
 * last durable values.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { STATE_FILE, SwitchStore } from '../../src/switches/store';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
let dir: string;
let stateDir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-durable-'));
  stateDir = path.join(dir, 'state');
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

const persisted = (): { hostIsolated: boolean; containers: Record<string, number> } => JSON.parse(fs.readFileSync(path.join(stateDir, STATE_FILE), 'utf8'));

describe('SwitchStore.setDurably', () => {
  it('sets the value at once and resolves once it is in the state file', async () => {
    const store = SwitchStore.open(stateDir, quiet, true);
    const written = store.setDurably('/a', false);
    expect(store.explicitContainerValue('/a')).toBe(false);
    await written;
    expect(persisted().containers).toEqual({ '/a': 0 });
    await store.setDurably(null, false);
    expect(persisted().hostIsolated).toBe(false);
  });

  it('200 writes in a row share a few flushes, and the last value is what is durable', async () => {
    const store = SwitchStore.open(stateDir, quiet, true);
    const renames = vi.spyOn(fs.promises, 'rename');
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) writes.push(store.setDurably('/a', i % 2 === 0));
    await Promise.all(writes);
    expect(renames.mock.calls.length).toBeGreaterThanOrEqual(1);
    expect(renames.mock.calls.length).toBeLessThanOrEqual(2);
    expect(persisted().containers).toEqual({ '/a': 0 });
  });

  it('a value already durable resolves without a flush', async () => {
    const store = SwitchStore.open(stateDir, quiet, true);
    await store.setDurably('/a', false);
    const renames = vi.spyOn(fs.promises, 'rename');
    await store.setDurably('/a', false);
    await store.setDurably(null, true);
    expect(renames).not.toHaveBeenCalled();
  });

  it('a flush that fails rejects its writes and puts back the last durable values', async () => {
    const store = SwitchStore.open(stateDir, quiet, true);
    await store.setDurably('/a', false);
    // The temp file cannot be created, as in a full or read-only directory.
    fs.mkdirSync(path.join(stateDir, `.${STATE_FILE}.${process.pid}.async.tmp`));
    const results = await Promise.allSettled([store.setDurably('/a', true), store.setDurably('/b', false), store.setDurably(null, false)]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(store.explicitContainerValue('/a')).toBe(false);
    expect(store.explicitContainerValue('/b')).toBeUndefined();
    expect(store.hostIsolated).toBe(true);
    expect(persisted()).toEqual({ version: 1, hostIsolated: true, containers: { '/a': 0 } });
  });
});
