/**
 * Both request loops (--loop poll and --loop thread) serve the same bytes. READs are answered by
 * the native side from the content captured at open, except a re-read from offset 0, which JS
 * renders afresh: these tests read the way real tools do (cat, small chunks, pread from 0 again,
 * several readers at once) and check that every read returns one whole, well-formed file.
 */
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';

const run = promisify(execFile);
const HOST_MEMINFO_KEYS = keysOf(fs.readFileSync('/proc/meminfo', 'utf8'));

function keysOf(meminfo: string): string[] {
  return meminfo.split('\n').filter((l) => l !== '').map((l) => l.split(':')[0]);
}

/** Every line "Key:   123 kB" (or without kB), and the keys of the host's file, in its order. */
/** What makes a meminfo whole: no line but "Key: value [kB]", the host's keys in order, a final newline. */
function meminfoShape(text: string): { malformedLines: string[]; keys: string[]; endsWithNewline: boolean } {
  return {
    malformedLines: text.split('\n').filter((l) => l !== '' && !/^[\w()]+:\s+\d+( kB)?$/.test(l)),
    keys: keysOf(text),
    endsWithNewline: text.endsWith('\n'),
  };
}
const WHOLE_MEMINFO = { malformedLines: [], keys: HOST_MEMINFO_KEYS, endsWithNewline: true };

/** Reads `file` through one fd: whole, in 7-byte chunks, then again from offset 0 (pread). */
const CHUNKED_READER = `
const fs = require('fs');
const [file, chunk] = [process.argv[1], Number(process.argv[2])];
const fd = fs.openSync(file, 'r');
const readAll = () => {
  const parts = []; let offset = 0;
  for (;;) {
    const b = Buffer.alloc(chunk);
    const n = fs.readSync(fd, b, 0, chunk, offset);
    if (n === 0) break;
    parts.push(b.subarray(0, n)); offset += n;
  }
  return Buffer.concat(parts).toString();
};
const first = readAll();
const until = Date.now() + 60; while (Date.now() < until) {}
const second = readAll();
process.stdout.write(JSON.stringify([first, second]));
`;

for (const loop of ['poll', 'thread'] as const) {
  describe(`--loop ${loop}`, () => {
    let daemon: DaemonHandle;
    beforeAll(async () => { daemon = await startDaemon({ args: ['--loop', loop] }); });
    afterAll(async () => { await daemon?.stop(); await daemon?.cleanup(); });

    it('cat gets a whole meminfo, and so does a reader of 7-byte chunks', async () => {
      expect(meminfoShape((await run('cat', [`${daemon.mountpoint}/proc/meminfo`])).stdout)).toEqual(WHOLE_MEMINFO);
      const { stdout } = await run(process.execPath, ['-e', CHUNKED_READER, `${daemon.mountpoint}/proc/meminfo`, '7']);
      const [first, second] = JSON.parse(stdout) as [string, string];
      expect(meminfoShape(first)).toEqual(WHOLE_MEMINFO);
      expect(meminfoShape(second)).toEqual(WHOLE_MEMINFO);
    });

    it('a re-read from offset 0 on the same fd is rendered afresh (uptime moves on)', async () => {
      const { stdout } = await run(process.execPath, ['-e', CHUNKED_READER, `${daemon.mountpoint}/proc/uptime`, '4096']);
      const [first, second] = (JSON.parse(stdout) as [string, string]).map((t) => Number(t.split(' ')[0]));
      expect(second - first).toBeGreaterThanOrEqual(0.05);
      expect(second - first).toBeLessThan(5);
    });

    it('four concurrent readers, 150 cats each: every copy whole', async () => {
      const script = `for i in $(seq 150); do cat ${daemon.mountpoint}/proc/meminfo; done`;
      const outs = await Promise.all([1, 2, 3, 4].map(() => run('bash', ['-c', script], { maxBuffer: 64 << 20 })));
      for (const { stdout } of outs) {
        const copies = stdout.split(/(?=^MemTotal:)/m);
        expect(copies).toHaveLength(150);
        for (const copy of copies) expect(keysOf(copy)).toEqual(HOST_MEMINFO_KEYS);
      }
      expect(daemon.process.exitCode).toBeNull();
    });
  });
}
