/** The pure parts of the attach manager: reading mountinfo and finding the mount on top. */
import { describe, expect, it } from 'vitest';
import { parseMountinfo, topmostMounts } from '../../src/attach/manager';

// Shaped like a runc container's mountinfo after a hostPath bind at creation (id 610), a dead
// mount of a previous daemon under a live attach on /proc/vmstat (612 on 611), and a path with
// a space (escaped as \040 by the kernel).
const MOUNTINFO = [
  '600 580 0:52 / / ro,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w',
  '601 600 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw',
  '610 601 0:41 /proc/meminfo /proc/meminfo ro,nosuid,nodev,relatime - fuse.isolfs isolfs:/var/lib/isolfs/mnt rw,user_id=0,group_id=0,allow_other',
  '611 601 0:41 /containers/%2Fkubepods%2Fpod1/proc/vmstat /proc/vmstat rw,relatime - fuse.isolfs isolfs:/var/lib/isolfs/mnt rw,user_id=0,group_id=0',
  '612 611 0:77 /containers/%2Fkubepods%2Fpod1/proc/vmstat /proc/vmstat rw,relatime - fuse.isolfs isolfs:/var/lib/isolfs/mnt rw,user_id=0,group_id=0',
  '620 600 0:60 / /data\\040dir rw,relatime shared:5 - tmpfs tmpfs rw',
  '',
].join('\n');

describe('parseMountinfo', () => {
  it('reads ids, device, root, mountpoint, fstype and source, unescaping paths', () => {
    const mounts = parseMountinfo(MOUNTINFO);
    expect(mounts).toHaveLength(6);
    expect(mounts[2]).toEqual({
      id: 610, parentId: 601, device: '0:41', root: '/proc/meminfo', mountpoint: '/proc/meminfo',
      fstype: 'fuse.isolfs', source: 'isolfs:/var/lib/isolfs/mnt',
    });
    // Optional fields (shared:5) before the separator do not shift anything.
    expect(mounts[5]).toMatchObject({ mountpoint: '/data dir', fstype: 'tmpfs', source: 'tmpfs' });
  });

  it('skips lines without the separator instead of failing', () => {
    expect(parseMountinfo('garbage\n1 2 3\n')).toEqual([]);
  });
});

describe('topmostMounts', () => {
  it('picks the mount nothing else on the same path sits on, whatever the line order', () => {
    const mounts = parseMountinfo(MOUNTINFO);
    const reversed = [...mounts].reverse();
    for (const list of [mounts, reversed]) {
      const top = topmostMounts(list);
      expect(top.get('/proc/vmstat')?.id).toBe(612);
      expect(top.get('/proc/meminfo')?.id).toBe(610);
      expect(top.get('/proc')?.id).toBe(601);
    }
  });
});
