import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChildProber } from '../../src/health/childProber';

describe('ChildProber', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-prober-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads the file anew at every probe, from one child process', async () => {
    const file = path.join(dir, 'flag');
    fs.writeFileSync(file, '0\n');
    const prober = new ChildProber(file);
    expect(await prober.read()).toBe('0\n');
    fs.writeFileSync(file, '1\n');
    expect(await prober.read()).toBe('1\n');
    const child = (prober as unknown as { child: { pid: number } }).child;
    expect(await prober.read()).toBe('1\n');
    expect((prober as unknown as { child: { pid: number } }).child.pid).toBe(child.pid);
    // A file it cannot read: an error, and the next probe works again.
    fs.rmSync(file);
    await expect(prober.read()).rejects.toThrow(/cannot read/);
    fs.writeFileSync(file, '0\n');
    expect(await prober.read()).toBe('0\n');
    process.kill(child.pid, 'SIGKILL');
  });

  it('starts another child when its child ended; never two probes at once', async () => {
    const file = path.join(dir, 'flag2');
    fs.writeFileSync(file, '1\n');
    const prober = new ChildProber(file);
    expect(await prober.read()).toBe('1\n');
    const first = (prober as unknown as { child: { pid: number } }).child.pid;
    process.kill(first, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const both = [prober.read(), prober.read()];
    await expect(both[1]).rejects.toThrow(/outstanding/);
    expect(await both[0]).toBe('1\n');
    const second = (prober as unknown as { child: { pid: number } }).child.pid;
    expect(second).not.toBe(first);
    process.kill(second, 'SIGKILL');
  });
});
