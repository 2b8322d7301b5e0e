/**
 * /sys/devices/system/cpu as a whole directory, bound over the real one as LXCFS manifests do
 * (`<mnt>/sys/devices/system/cpu` -> `/sys/devices/system/cpu`), in containers with a CFS quota
 * of 1 CPU and with a cpuset of host CPU 1: getconf, ls, lscpu, htop, Python and Node all count
 * the container's CPUs; cpuN/ stands for the host CPU its number maps to; and a reader that
 * sees more CPUs never leaves its cpu1 in a kernel cache another reader is served from.
 */
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type DaemonHandle } from '../helpers/daemon';
import { createTestCgroup, type TestCgroup } from '../helpers/cgroups';
import { BOUND_FILES, runInContainer, startContainer, type RunningContainer, type RunResult } from '../helpers/container';
import { ok, until } from '../helpers/procText';

const HOST_CPU_DIR = '/sys/devices/system/cpu';
const HOST_ONLINE = fs.readFileSync(`${HOST_CPU_DIR}/online`, 'utf8').trim();
/** The whole CPU directory instead of its `online` file, beside the /proc files. */
const FILES = [...BOUND_FILES.filter((f) => f !== `${HOST_CPU_DIR}/online`), HOST_CPU_DIR];

/** htop in a detached tmux of its own (a private socket), its screen after it drew twice. */
const HTOP_SCREEN = [
  'sock=/tmp/isolfs-cputree-$$.tmux',
  "TERM=xterm-256color tmux -S $sock new -d -x 200 -y 50 'htop -d 5'",
  'sleep 2',
  'tmux -S $sock capture-pane -p',
  'tmux -S $sock kill-server; rm -f $sock',
].join('\n');

/** htop's CPU meters' labels: "  0[|||   1.3%]" per CPU, or "  CPU[...]" for the only one. */
function cpuMeters(screen: string): string[] {
  const meters: string[] = [];
  for (const line of screen.split('\n')) for (const m of line.matchAll(/(?:^|\s)(\d+|CPU)\[/g)) meters.push(m[1]);
  return meters;
}

describe('the CPU directory bound whole over /sys/devices/system/cpu', () => {
  let daemon: DaemonHandle;
  let quota: TestCgroup;
  let cpuset: TestCgroup | null = null;

  beforeAll(async () => {
    daemon = await startDaemon();
    quota = createTestCgroup('cputree-quota', { cpuQuotaUs: 50_000, cpuPeriodUs: 100_000 });
    if (HOST_ONLINE === '0-1') cpuset = createTestCgroup('cputree-cpuset', { cpus: '1' });
  });

  afterAll(async () => {
    await quota?.remove();
    await cpuset?.remove();
    await daemon?.cleanup();
  });

  const inside = (cg: TestCgroup, cmd: string): Promise<RunResult> =>
    runInContainer(cg, { mountpoint: daemon.mountpoint, files: FILES }, cmd);

  it('this machine has the 2 CPUs the 1-CPU cases need', () => {
    expect(HOST_ONLINE).toBe('0-1');
  });

  it('1 CPU of quota: getconf, ls, lscpu, Python and Node all count 1 CPU', async () => {
    const out = ok(await inside(quota, [
      'getconf _NPROCESSORS_CONF; getconf _NPROCESSORS_ONLN',
      'echo ===; ls /sys/devices/system/cpu',
      'echo ===; cat /sys/devices/system/cpu/{online,possible,present,offline}',
      'echo ===; LC_ALL=C lscpu',
      "echo ===; python3 -c 'import os; print(os.cpu_count())'",
      "echo ===; node -e 'console.log(require(\"os\").cpus().length)'",
    ].join('\n')));
    const [getconf, ls, lists, lscpu, python, node] = out.split('===\n');
    expect(getconf).toBe('1\n1\n');
    const names = ls.trim().split(/\s+/);
    expect(names).toContain('cpu0');
    expect(names).not.toContain('cpu1');
    for (const name of ['possible', 'present', 'offline', 'kernel_max', 'smt']) expect(names).toContain(name);
    expect(lists).toBe('0\n0\n0\n\n');
    expect(lscpu).toMatch(/^CPU\(s\):\s+1$/m);
    expect(lscpu).toMatch(/^On-line CPU\(s\) list:\s+0$/m);
    expect(python.trim()).toBe('1');
    expect(node.trim()).toBe('1');
  });

  it('1 CPU of quota: htop shows one CPU meter', async () => {
    const screen = ok(await inside(quota, HTOP_SCREEN));
    expect(screen).toMatch(/Tasks:|Load average:/); // htop did draw
    expect(cpuMeters(screen)).toEqual(['CPU']); // htop labels a lone CPU's meter "CPU", several "0", "1", ...
  });

  it("cpu0/ of a cpuset of host CPU 1 is host CPU 1's, renumbered", async () => {
    if (!cpuset) throw new Error('needs host CPUs 0-1');
    const host1 = (f: string): string => fs.readFileSync(`${HOST_CPU_DIR}/cpu1/${f}`, 'utf8');
    const out = ok(await inside(cpuset, [
      'cd /sys/devices/system/cpu/cpu0',
      'cat online topology/core_id topology/physical_package_id topology/thread_siblings_list topology/core_cpus topology/package_cpus_list',
      'echo ===; for i in $(ls cache 2>/dev/null | grep ^index); do d=cache/$i; cat $d/level $d/size $d/shared_cpu_list $d/shared_cpu_map; done',
      'echo ===; ls /sys/devices/system/cpu/cpu1 2>&1; echo rc=$?',
    ].join('\n')));
    const [topology, caches, cpu1] = out.split('===\n');
    expect(topology).toBe(`1\n${host1('topology/core_id')}${host1('topology/physical_package_id')}0\n1\n0\n`);
    // (A VM's CPUs may have no cache directory: then neither has the container's cpu0.)
    const cacheDir = `${HOST_CPU_DIR}/cpu1/cache`;
    const indexes = fs.existsSync(cacheDir) ? fs.readdirSync(cacheDir).filter((n) => n.startsWith('index')).sort() : [];
    expect(caches).toBe(indexes.map((i) => `${host1(`cache/${i}/level`)}${host1(`cache/${i}/size`)}0\n1\n`).join(''));
    expect(cpu1).toMatch(/No such file or directory[\s\S]*rc=2/);
  });

  it("a reader that sees 2 CPUs leaves no cpu1 for a 1-CPU reader, nor the 1-CPU reader's absence for it", async () => {
    const dir = `${daemon.mountpoint}${HOST_CPU_DIR}`;
    // This test's process is in a cgroup without limits: it sees both CPUs.
    expect(fs.readdirSync(dir).filter((n) => /^cpu\d+$/.test(n)).sort()).toEqual(['cpu0', 'cpu1']);
    expect(fs.readFileSync(`${dir}/cpu1/topology/core_id`, 'utf8')).toBe(fs.readFileSync(`${HOST_CPU_DIR}/cpu1/topology/core_id`, 'utf8'));
    const out = ok(await runInContainer(quota, { mountpoint: null },
      `for i in 1 2 3; do stat -c %n ${dir}/cpu1 2>&1; cat ${dir}/cpu1/online 2>&1; ls ${dir} | grep -c '^cpu[0-9]'; done`));
    expect(out).not.toMatch(/^\/.*cpu1$/m); // stat printed no name: it failed every time
    expect(out.match(/No such file or directory/g)?.length).toBe(6);
    expect(out.match(/^1$/gm)?.length).toBe(3); // one cpuN listed
    expect(fs.existsSync(`${dir}/cpu1`)).toBe(true);
  });
});

describe('--attach delivers the CPU directory into a running container', () => {
  let daemon: DaemonHandle;
  let cgroup: TestCgroup;
  let container: RunningContainer;

  beforeAll(async () => {
    cgroup = createTestCgroup('cputree-attach', { cpuQuotaUs: 50_000, cpuPeriodUs: 100_000 });
    daemon = await startDaemon({ args: ['--attach', cgroup.key, '--attach-interval-ms', '300'] });
    container = startContainer(cgroup, { mountpoint: null }, 'exec sleep 600');
  });

  afterAll(async () => {
    await container?.stop();
    await daemon?.cleanup();
    await cgroup?.remove();
  });

  /** A shell in the container's mount namespace and cgroup (a reader of the container). */
  const inside = (cmd: string): Promise<RunResult> => new Promise((resolve) => {
    const join = cgroup.procsFiles.map((f) => `echo $$ > ${f}`).join('; ');
    execFile('bash', ['-c', `${join}; exec nsenter -t ${container.process.pid} -m sh -c '${cmd}'`], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err ? 1 : 0 });
    });
  });

  it('the directory from the main tree, online from the container\'s copy on top; 1 CPU for getconf and ls', async () => {
    const seen = await until('CPU directory attached', () => inside('getconf _NPROCESSORS_CONF; getconf _NPROCESSORS_ONLN; ls /sys/devices/system/cpu'),
      (r) => r.stdout.startsWith('1\n1\n'));
    const names = seen.stdout.split('\n').slice(2);
    expect(names).toContain('cpu0');
    expect(names).not.toContain('cpu1');
    const mounts = fs.readFileSync(`/proc/${container.process.pid}/mountinfo`, 'utf8').split('\n')
      .filter((l) => l.includes(' - fuse.isolfs ')).map((l) => l.split(' ')).map((f) => ({ root: f[3], target: f[4] }));
    expect(mounts).toContainEqual({ root: '/sys/devices/system/cpu', target: '/sys/devices/system/cpu' });
    expect(mounts.find((m) => m.target === '/sys/devices/system/cpu/online')?.root).toMatch(/^\/containers\/.*\/sys\/devices\/system\/cpu\/online$/);
    // busybox cat reads with sendfile (through the page cache): online's copy answers it.
    expect(ok(await inside('busybox cat /sys/devices/system/cpu/online'))).toBe('0\n');
  });
});
