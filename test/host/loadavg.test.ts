import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parseLoadavg, readHostLoadavg } from '../../src/host/loadavg';

const fixture = readFileSync(path.join(__dirname, '../fixtures/proc/loadavg'), 'utf8');

describe('parseLoadavg', () => {
  it('parses the real file of this machine', () => {
    expect(fixture).toBe('0.07 0.03 0.02 1/97 9298\n');
    expect(parseLoadavg(fixture)).toEqual({
      load1: '0.07',
      load5: '0.03',
      load15: '0.02',
      running: 1,
      total: 97,
      lastPid: 9298,
    });
  });

  it('reads the live /proc/loadavg', () => {
    const host = readHostLoadavg();
    expect(host.total).toBeGreaterThanOrEqual(host.running);
    expect(host.lastPid).toBeGreaterThan(0);
  });

  it.each([['0.07 0.03 1/97 9298\n'], ['0.07 0.03 0.02 97 9298\n'], ['x\n'], ['']])(
    'rejects %j with an error naming /proc/loadavg',
    (text) => {
      expect(() => parseLoadavg(text)).toThrow(CgroupParseError);
      expect(() => parseLoadavg(text)).toThrow(/^\/proc\/loadavg: /);
    },
  );
});
