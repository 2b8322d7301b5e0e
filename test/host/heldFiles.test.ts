/**
 * Kept-open cgroup files (host/heldFiles.ts): the same text as a fresh read, read again from the
 * start each time; bounded (a full cache keeps what it holds unless its oldest is idle); closed
 * when their container goes (release) or all at once (clear); only kernfs files kept by default.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HELD_FILE_IDLE_MS, HeldFiles, defaultMaxHeld } from '../../src/host/heldFiles';

let dir: string;
let nowMs: number;
let cache: HeldFiles | null = null;

function openFds(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

function held(maxHeld: number): HeldFiles {
  cache = new HeldFiles({ maxHeld, nowMs: () => nowMs, holdable: () => true });
  return cache;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-held-'));
  for (const name of ['a', 'b', 'c']) fs.writeFileSync(path.join(dir, name), `${name} 1\n`);
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'sub', 'd'), 'd 1\n');
  nowMs = 1000;
});
afterEach(() => {
  cache?.clear();
  cache = null;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('HeldFiles', () => {
  it('keeps a file open and reads it again from the start: a shorter new content is not mixed with the old', () => {
    const files = held(10);
    const before = openFds();
    expect(files.readText(dir, 'a')).toBe('a 1\n');
    expect(files.size).toBe(1);
    expect(openFds()).toBe(before + 1);
    fs.writeFileSync(path.join(dir, 'a'), 'a 22222\n');
    expect(files.readText(dir, 'a')).toBe('a 22222\n');
    fs.writeFileSync(path.join(dir, 'a'), 'a\n');
    expect(files.readText(dir, 'a')).toBe('a\n');
    expect(openFds()).toBe(before + 1);
  });

  it('answers errors as a fresh read does, and keeps nothing of them', () => {
    const files = held(10);
    expect(() => files.readText(dir, 'missing')).toThrow(/missing: ENOENT/);
    expect(() => files.readText(dir, 'sub')).toThrow(/not a regular file/);
    fs.writeFileSync(path.join(dir, 'big'), 'x'.repeat(100));
    expect(() => files.readText(dir, 'big', 10)).toThrow(/larger than 10 bytes/);
    expect(files.size).toBe(0);
  });

  it('holds at most maxHeld: when full, a new file is read but not kept while the oldest is in use', () => {
    const files = held(2);
    const before = openFds();
    files.readText(dir, 'a');
    files.readText(dir, 'b');
    expect(files.readText(dir, 'c')).toBe('c 1\n');
    expect(files.size).toBe(2);
    expect(openFds()).toBe(before + 2);
  });

  it('when full, closes the least recently read file once it is idle, for the new one', () => {
    const files = held(2);
    const before = openFds();
    files.readText(dir, 'a');
    nowMs += 1;
    files.readText(dir, 'b');
    files.readText(dir, 'a'); // a read: b is now the least recently read
    nowMs += HELD_FILE_IDLE_MS - 1;
    files.readText(dir, 'c'); // b read HELD_FILE_IDLE_MS - 1 ago: not idle yet
    expect(files.size).toBe(2);
    nowMs += 1;
    files.readText(dir, 'c'); // b is idle: closed, c kept
    expect(files.size).toBe(2);
    expect(openFds()).toBe(before + 2);
    fs.rmSync(path.join(dir, 'b'));
    expect(() => files.readText(dir, 'b')).toThrow(/b: ENOENT/); // b was closed: a fresh open
  });

  it('release closes the files directly in the given directories only; clear closes all', () => {
    const files = held(10);
    const before = openFds();
    files.readText(dir, 'a');
    files.readText(dir, 'b');
    files.readText(path.join(dir, 'sub'), 'd');
    files.release([path.join(dir, 'sub')]);
    expect(files.size).toBe(2);
    expect(openFds()).toBe(before + 2);
    files.release([dir]);
    expect(files.size).toBe(0);
    files.readText(dir, 'a');
    files.clear();
    expect(files.size).toBe(0);
    expect(openFds()).toBe(before);
  });

  it('keeps nothing with maxHeld 0', () => {
    const files = held(0);
    expect(files.readText(dir, 'a')).toBe('a 1\n');
    expect(files.size).toBe(0);
  });

  it('by default keeps only kernfs files (cgroupfs, sysfs): a regular file elsewhere is opened per read', () => {
    cache = new HeldFiles();
    expect(cache.readText(dir, 'a')).toBe('a 1\n');
    expect(cache.size).toBe(0);
    const online = cache.readText('/sys/devices/system/cpu', 'online');
    expect(online).toBe(fs.readFileSync('/sys/devices/system/cpu/online', 'utf8'));
    expect(cache.size).toBe(1);
  });
});

describe('defaultMaxHeld', () => {
  const limits = (soft: string): string =>
    `Limit                     Soft Limit           Hard Limit           Units     \nMax open files            ${soft}                ${soft}                files     \n`;
  it('is 4096, at most a quarter of the fd limit', () => {
    expect(defaultMaxHeld(limits('1048576'))).toBe(4096);
    expect(defaultMaxHeld(limits('20000'))).toBe(4096);
    expect(defaultMaxHeld(limits('1024'))).toBe(256);
    expect(defaultMaxHeld(limits('unlimited'))).toBe(4096);
    expect(defaultMaxHeld('garbage')).toBe(256);
    expect(defaultMaxHeld()).toBeGreaterThan(0);
  });
});
