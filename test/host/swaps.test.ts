import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupParseError } from '../../src/cgroup/snapshot';
import { parseSwaps, readHostSwaps } from '../../src/host/swaps';

const FIXTURE_DIR = path.join(__dirname, '../fixtures/proc');
const HEADER = 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority';

describe('parseSwaps', () => {
  it('parses the header-only file of a host without swap (this machine)', () => {
    const host = parseSwaps(readFileSync(path.join(FIXTURE_DIR, 'swaps'), 'utf8'));
    expect(host).toEqual({ header: HEADER, devices: [] });
  });

  it('parses device lines in the kernel format, escaped paths kept as printed', () => {
    const host = parseSwaps(readFileSync(path.join(FIXTURE_DIR, 'swaps-devices'), 'utf8'));
    expect(host.header).toBe(HEADER);
    expect(host.devices).toEqual([
      { filename: '/dev/sda2', type: 'partition', sizeKb: 8388604n, usedKb: 1048576n, priority: -2 },
      {
        filename: '/var/lib/swap/a\\040file',
        type: 'file',
        sizeKb: 16777212n,
        usedKb: 0n,
        priority: -3,
      },
    ]);
  });

  it('reads the live /proc/swaps', () => {
    expect(readHostSwaps().header).toBe(HEADER);
  });

  it.each([
    ['a file without header', '/dev/sda2 partition 1 0 -2\n'],
    ['a line missing a column', `${HEADER}\n/dev/sda2 partition 1 0\n`],
    ['a non-numeric size', `${HEADER}\n/dev/sda2 partition big 0 -2\n`],
  ])('rejects %s with an error naming /proc/swaps', (_name, text) => {
    expect(() => parseSwaps(text)).toThrow(CgroupParseError);
    expect(() => parseSwaps(text)).toThrow(/^\/proc\/swaps: /);
  });
});
