/**
 * Pressure files on the FUSE side, with the recording fake addon: PSI trigger writes tie a real
 * fd (the backend's lease) to the open file, POLL is answered as the kernel's psi_trigger_poll
 * answers, and the fd goes with the file.
 */
import { constants as osConstants } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { TriggerLease, WriteRequest } from '../../src/fuse/fileBackend';
import { harness } from './fake-native';

const { errno: E } = osConstants;
const POLLPRI = 0x2;
const POLLERR = 0x8;
const DEFAULT_POLLMASK = 0x145;
const O_RDWR = 2;
const W_OK = 2;

function withTriggers() {
  const leases: Array<{ fd: number; released: boolean | null; request: WriteRequest }> = [];
  let refuse: number | null = null;
  const h = harness({}, {
    openTrigger: (request) => {
      if (refuse !== null) return { errno: refuse };
      const lease = { fd: 100 + leases.length, released: null as boolean | null, request };
      leases.push(lease);
      return { fd: lease.fd, release: (closeFd) => { lease.released = closeFd; } } satisfies TriggerLease;
    },
  });
  return { ...h, leases, refuseWith: (errno: number | null) => { refuse = errno; } };
}

function revents(h: ReturnType<typeof harness>, fh: number): number {
  const reply = h.request('poll', 0, { fh, flags: POLLPRI });
  expect(reply.kind).toBe('poll');
  return reply.args[0] as number;
}

describe('pressure files: triggers and poll', () => {
  it('are 0666 in the main tree and writable by any uid', () => {
    const h = withTriggers();
    const ino = h.lookupPath('/proc/pressure/memory');
    const attr = h.request('getattr', ino);
    expect((attr.args[1] as number) & 0o777).toBe(0o666);
    expect(h.outcome('access', ino, { uid: 1000, flags: W_OK })).toBe(0);
    expect(h.open(ino, { uid: 1000, flags: O_RDWR }).fh).toBeGreaterThan(0);
  });

  it('without a trigger POLL says POLLERR|POLLPRI (psi_trigger_poll); a trigger is watched and fires POLLPRI once per event', () => {
    const h = withTriggers();
    const ino = h.lookupPath('/proc/pressure/memory');
    const { fh } = h.open(ino, { flags: O_RDWR });
    expect(revents(h, fh)).toBe(DEFAULT_POLLMASK | POLLERR | POLLPRI);
    const data = Buffer.from('some 150000 2000000\n');
    expect(h.request('write', ino, { fh, data, uid: 1000, pid: 42 })).toMatchObject({ kind: 'write', args: [data.length] });
    expect(h.leases[0].request).toMatchObject({ file: '/proc/pressure/memory', caller: { pid: 42, uid: 1000 } });
    expect(h.watches.get(fh)?.fd).toBe(100);
    expect(revents(h, fh)).toBe(DEFAULT_POLLMASK);
    h.fire(fh);
    expect(revents(h, fh)).toBe(DEFAULT_POLLMASK | POLLPRI);
    expect(revents(h, fh)).toBe(DEFAULT_POLLMASK);
    // One trigger per open file, as the kernel: EBUSY, and no second lease.
    expect(h.outcome('write', ino, { fh, data })).toBe(E.EBUSY);
    expect(h.leases).toHaveLength(1);
  });

  it('RELEASE ends the watch and releases the lease without closing the fd (native closes it)', () => {
    const h = withTriggers();
    const ino = h.lookupPath('/proc/pressure/io');
    const { fh } = h.open(ino, { flags: O_RDWR });
    h.request('write', ino, { fh, data: Buffer.from('some 1 2000000\n') });
    h.release(fh);
    expect(h.watches.has(fh)).toBe(false);
    expect(h.leases[0].released).toBe(false);
  });

  it("the backend's errno goes back; a watch that cannot start releases the lease and closes its fd", () => {
    const h = withTriggers();
    const ino = h.lookupPath('/proc/pressure/cpu');
    const { fh } = h.open(ino, { flags: O_RDWR });
    h.refuseWith(E.EINVAL);
    expect(h.outcome('write', ino, { fh, data: Buffer.from('bogus\n') })).toBe(E.EINVAL);
    h.refuseWith(null);
    h.failWatches(E.ENOMEM);
    expect(h.outcome('write', ino, { fh, data: Buffer.from('some 1 2000000\n') })).toBe(E.ENOMEM);
    expect(h.leases[0].released).toBe(true);
    // Still no trigger: the next write may try again.
    h.failWatches(0);
    expect(h.outcome('write', ino, { fh, data: Buffer.from('some 1 2000000\n') })).toBe('write');
  });

  it('other files are always ready (a page-cache tree never sees POLL: native answers it ENOSYS)', () => {
    const h = withTriggers();
    const { fh } = h.open(h.lookupPath('/proc/meminfo'));
    expect(revents(h, fh)).toBe(DEFAULT_POLLMASK);
    expect(h.outcome('write', h.lookupPath('/proc/meminfo'), { fh, data: Buffer.from('x') })).toBe(E.EACCES);
  });
});
