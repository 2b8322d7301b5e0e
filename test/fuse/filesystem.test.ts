/** Names the FUSE tree gives containers and its own mounts. */
import { describe, expect, it } from 'vitest';
import { containerDirName, containerFilePath, mountSourceName } from '../../src/fuse/filesystem';

describe('containerDirName', () => {
  it('percent-encodes a cgroup path into one name that decodes back to it', () => {
    const key = '/kubepods/burstable/pod1b2c/0123abcd';
    const name = containerDirName(key);
    expect(name).toBe('%2Fkubepods%2Fburstable%2Fpod1b2c%2F0123abcd');
    expect(name).not.toContain('/');
    expect(decodeURIComponent(name)).toBe(key);
  });

  it('cannot be made to climb out or split, whatever the cgroup is called', () => {
    for (const key of ['/..', '/../../etc', '/a/./b', '/with space/and%percent', '/x:y,z']) {
      const name = containerDirName(key);
      expect(name).not.toMatch(/[/\0]/);
      expect(name === '.' || name === '..').toBe(false);
      expect(decodeURIComponent(name)).toBe(key);
    }
  });

  it('hashes keys whose encoding would exceed NAME_MAX, distinctly and stably', () => {
    const a = `/kubelet.slice/${'a'.repeat(250)}`;
    const b = `/kubelet.slice/${'a'.repeat(249)}b`;
    expect(containerDirName(a)).toMatch(/^sha256-[0-9a-f]{64}$/);
    expect(containerDirName(a)).toBe(containerDirName(a));
    expect(containerDirName(a)).not.toBe(containerDirName(b));
    // Up to the limit the name stays readable.
    const fits = `/${'c'.repeat(252)}`; // "%2F" + 252 = 255 bytes
    expect(containerDirName(fits)).toBe(`%2F${'c'.repeat(252)}`);
    expect(containerDirName(`${fits}c`)).toMatch(/^sha256-/);
  });

  it('places a served file under /containers/<name>', () => {
    expect(containerFilePath('/k/p', '/proc/vmstat')).toBe('/containers/%2Fk%2Fp/proc/vmstat');
  });
});

describe('mountSourceName', () => {
  it('names the mountpoint, or a hash of it when the path would need escaping in mount options', () => {
    expect(mountSourceName('/var/lib/isolfs/mnt')).toBe('isolfs:/var/lib/isolfs/mnt');
    expect(mountSourceName('/tmp/a,b')).toMatch(/^isolfs:sha256-[0-9a-f]{32}$/);
    expect(mountSourceName('/tmp/a b')).not.toBe(mountSourceName('/tmp/a,b'));
  });
});
