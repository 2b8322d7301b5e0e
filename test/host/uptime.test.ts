import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parseUptime, readHostUptime } from '../../src/host/uptime';

const fixture = readFileSync(path.join(__dirname, '../fixtures/proc/uptime'), 'utf8');

describe('parseUptime', () => {
  it('parses the real file of this machine (idle summed over 2 CPUs exceeds uptime)', () => {
    expect(parseUptime(fixture)).toEqual({ uptimeSec: 2620.97, idleSec: 5167.65 });
  });

  it('reads the live /proc/uptime', () => {
    const host = readHostUptime();
    expect(host.uptimeSec).toBeGreaterThan(0);
    expect(host.idleSec).toBeGreaterThanOrEqual(0);
  });

  it.each([['2620.97\n'], ['2620 5167\n'], ['a b\n'], ['']])(
    'rejects %j with an error naming /proc/uptime',
    (text) => {
      expect(() => parseUptime(text)).toThrow(CgroupParseError);
      expect(() => parseUptime(text)).toThrow(/^\/proc\/uptime: /);
    },
  );
});
