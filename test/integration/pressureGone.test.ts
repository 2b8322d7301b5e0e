/**
 * A PSI trigger whose cgroup is removed, as the kernel answers for its own cgroup pressure file
 * (kernfs_fop_poll: a removed file polls DEFAULT_POLLMASK | EPOLLERR | EPOLLPRI; a write is
 * ENODEV): a real reader in its own cgroup writes a trigger, moves to another cgroup, the cgroup
 * is removed, and its poll(2) on the open file returns POLLERR|POLLPRI at once (no hang), again
 * on a second poll, a further write is ENODEV, and the daemon goes on serving.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';

const READER = `
import json, os, select, sys, time
mnt, away = sys.argv[1], sys.argv[2:]
fd = os.open(mnt + '/proc/pressure/cpu', os.O_RDWR | os.O_NONBLOCK)
os.write(fd, b'some 150000 2000000\\n')
for procs in away:
    with open(procs, 'w') as f: f.write(str(os.getpid()))
print('moved', flush=True)
sys.stdin.readline()  # the cgroup is gone now
def poll_once():
    p = select.poll(); p.register(fd, select.POLLPRI)
    started = time.monotonic(); events = p.poll(5000)
    return {'revents': events[0][1] if events else 0, 'ms': round((time.monotonic() - started) * 1000)}
result = {'first': poll_once(), 'second': poll_once()}
try:
    os.write(fd, b'some 150000 2000000\\n'); result['write'] = 'ok'
except OSError as e:
    result['write'] = e.errno
try:
    result['read'] = len(os.pread(fd, 4096, 0))
except OSError as e:
    result['read'] = -e.errno
print(json.dumps(result), flush=True)
`;

interface Result { first: { revents: number; ms: number }; second: { revents: number; ms: number }; write: number | 'ok'; read: number }

describe('a PSI trigger whose cgroup was removed', () => {
  let daemon: DaemonHandle;
  let doomed: TestCgroup;
  let away: TestCgroup;

  beforeAll(async () => {
    doomed = createTestCgroup('psi-doomed', { unified: true });
    away = createTestCgroup('psi-away', { unified: true });
    if (!doomed.dirs.has('unified')) throw new Error('no cgroup2 (unified) hierarchy here: PSI triggers cannot be tested');
    daemon = await startDaemon();
  });
  afterAll(async () => {
    await daemon?.cleanup();
    await doomed?.remove();
    await away?.remove();
  });

  it('polls POLLERR|POLLPRI at once, twice, and a write is ENODEV; the daemon goes on serving', async () => {
    const join = doomed.procsFiles.map((f) => `echo $$ > ${f}`).join('; ');
    const child = spawn('sh', ['-c', `${join}; exec python3 -c "$0" "$@"`, READER, daemon.mountpoint, ...away.procsFiles], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = readline.createInterface({ input: child.stdout });
    const next = () => new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`reader exited (${code})`)));
    });
    expect(await next()).toBe('moved');
    await doomed.remove();
    expect(fs.existsSync(doomed.dirs.get('unified') as string)).toBe(false);
    child.stdin.write('\n');
    const result = JSON.parse(await next()) as Result;
    const POLLPRI = 0x2;
    const POLLERR = 0x8;
    expect(result.first.revents & (POLLERR | POLLPRI), JSON.stringify(result)).toBe(POLLERR | POLLPRI);
    expect(result.first.ms).toBeLessThan(1000);
    expect(result.second.revents & (POLLERR | POLLPRI), JSON.stringify(result)).toBe(POLLERR | POLLPRI);
    expect(result.second.ms).toBeLessThan(1000);
    expect(result.write).toBe(19); // ENODEV, as kernfs answers a removed file
    expect(typeof result.read).toBe('number');
    expect(fs.readFileSync(path.join(daemon.mountpoint, 'proc/meminfo'), 'utf8')).toMatch(/^MemTotal:/);
  }, 60_000);
});
