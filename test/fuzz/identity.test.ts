/** Fuzz: /proc/<pid>/cgroup parsing on arbitrary and hostile text. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseProcCgroup, ProcCgroupParseError } from '../../src/identity/procCgroup';
import { anyText, hostileNumber, parsesOrRejects } from './arbitraries';

describe('fuzz: parseProcCgroup', () => {
  it('throws only ProcCgroupParseError; every path it keeps starts with "/"', () => {
    const line = fc.tuple(
      fc.oneof(hostileNumber, fc.constantFrom('0', '1', '12')),
      fc.constantFrom('', 'memory', 'cpu,cpuacct', 'name=systemd', ',', 'memory,'),
      fc.oneof(fc.constantFrom('/', '/..', '/../x', '/a:b', '/kubepods/pod1', 'x', ''), fc.string({ maxLength: 30 }).map((s) => `/${s}`)),
    ).map(([id, controllers, p]) => `${id}:${controllers}:${p}`);
    const text = fc.array(line, { maxLength: 20 }).map((l) => `${l.join('\n')}\n`);
    fc.assert(fc.property(fc.oneof(text, anyText), (t) => {
      const entries = parsesOrRejects(() => parseProcCgroup(t), ProcCgroupParseError);
      if (entries === null) return;
      for (const p of entries.v1.values()) expect(p.startsWith('/')).toBe(true);
      if (entries.unified !== null) expect(entries.unified.startsWith('/')).toBe(true);
      const outside = [...entries.v1.values(), entries.unified].some((p) => p === '/..' || p?.startsWith('/../'));
      if (outside) expect(entries.relativeToOtherNamespace).toBe(true);
      if (!/:\/\.\.(\/|$)/m.test(t)) expect(entries.relativeToOtherNamespace).toBe(false);
    }), { numRuns: 300 });
  });
});
