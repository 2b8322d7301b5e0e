/**
 * Who may write a switch is decided at open(2), against the opener, as the kernel decides it for
 * /proc/sys (proc_sys_permission: root's 0644 files are EACCES to anyone else at open), and the
 * open file keeps that answer whoever writes through it:
 * - an unprivileged process (uid 65534) opening for writing gets EACCES at open, so a root
 *   process it hands the fd to (SCM_RIGHTS, a setuid program's stdout) cannot be made to write
 *   for it (before: the open succeeded, and root's write through it changed the switch);
 * - root's fd keeps working after root drops to uid 65534 (before: EPERM at write).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { until } from '../helpers/procText';

/** Real processes: the opener and the writer are different credentials, as in the cases above. */
const SCRIPT = `
import os, socket, sys
mnt, case = sys.argv[1], sys.argv[2]
os.chdir(mnt)  # uid 65534 may not search the test's directories above the mount
FILE = 'proc/sys/kernel/stats_isolated'
def drop():
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
if case == 'unprivileged-opens':
    parent, child = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        drop()
        try:
            fd = os.open(FILE, os.O_WRONLY)
        except OSError as e:
            child.send(b'open errno %d' % e.errno); os._exit(0)
        socket.send_fds(child, [b'fd'], [fd]); os._exit(0)
    msg, fds, _, _ = socket.recv_fds(parent, 100, 1)
    os.waitpid(pid, 0)
    if not fds:
        print(msg.decode())
    else:
        try:
            os.write(fds[0], b'0\\n'); print('root write ok')
        except OSError as e:
            print('root write errno %d' % e.errno)
else:
    fd = os.open(FILE, os.O_WRONLY)
    drop()
    try:
        os.write(fd, sys.argv[3].encode()); print('unprivileged write ok')
    except OSError as e:
        print('unprivileged write errno %d' % e.errno)
`;

function run(mnt: string, ...args: string[]): string {
  const r = spawnSync('python3', ['-c', SCRIPT, mnt, ...args], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) throw new Error(`python3 failed (${r.status}): ${r.stderr}`);
  return r.stdout.trim();
}

describe('switch files: permission decided at open, carried by the open file', () => {
  let daemon: DaemonHandle;
  let file: string;

  beforeAll(async () => {
    daemon = await startDaemon();
    file = path.join(daemon.mountpoint, 'proc/sys/kernel/stats_isolated');
  });
  afterAll(async () => {
    await daemon?.cleanup();
  });

  it('an unprivileged opener gets EACCES at open (logged): root cannot be handed a writable fd by it', async () => {
    expect(fs.readFileSync(file, 'utf8')).toBe('1\n');
    expect(run(daemon.mountpoint, 'unprivileged-opens')).toBe('open errno 13'); // EACCES
    expect(fs.readFileSync(file, 'utf8')).toBe('1\n');
    await until('the refusal logged', () => daemon.logs.some((l) => l.includes('control write refused') && l.includes('opener is not uid 0')), Boolean, 5000);
  });

  it("root's open for writing keeps working after root drops to uid 65534", () => {
    expect(run(daemon.mountpoint, 'root-opens', '0\n')).toBe('unprivileged write ok');
    expect(fs.readFileSync(file, 'utf8')).toBe('0\n');
    expect(run(daemon.mountpoint, 'root-opens', '1\n')).toBe('unprivileged write ok');
    expect(fs.readFileSync(file, 'utf8')).toBe('1\n');
  });
});
