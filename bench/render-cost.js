#!/usr/bin/env node
// CPU cost of rendering an attached container's files, as the container-views tree does it at
// every GETATTR once a render's reuse expired (backend.currentContent: render + compare with the
// page content). N real v1 cgroups (one per controller, beneath the cgroups this process is in,
// 256 MiB memory limit, one sleeping process each), every container's meminfo, stat and loadavg
// rendered ROUNDS times, each render a fresh one (the 50 ms reuse cleared). Reports CPU µs per
// render per file (process.cpuUsage: the machine is shared, wall time would mislead).
// Syscalls per render: `strace -c -f -o FILE node bench/render-cost.js`.
// Usage: npm run build && node bench/render-cost.js [N=50] [ROUNDS=40]
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { discoverHierarchy } = require('../dist/cgroup/hierarchy');
const { locateProcess } = require('../dist/identity/processCgroup');
const { ContainerRegistry } = require('../dist/containers/registry');
const { newBackend, newSampler } = require('../dist/parts');
const { SwitchStore } = require('../dist/switches/store');

const N = Number(process.argv[2] ?? 50);
const ROUNDS = Number(process.argv[3] ?? 40);
const FILES = ['/proc/meminfo', '/proc/stat', '/proc/loadavg'];
const CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'cpuset', 'pids'];

const own = new Map();
for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n')) {
  const [, names, rel] = line.split(':');
  for (const name of names.split(',')) own.set(name, rel);
}
const parents = CONTROLLERS.map((c) => path.join('/sys/fs/cgroup', c, own.get(c) ?? '/', `isolfs-bench-render-${process.pid}`));
const children = [];

/** Kills our sleeping processes by pid, waits until they are gone (a cgroup with a process in
 *  it cannot be removed), then removes every cgroup we made. */
async function cleanup() {
  const exited = children.map((child) => (child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', resolve))));
  for (const child of children) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  await Promise.all(exited);
  for (const parent of parents) {
    for (let i = 0; i < N; i++) {
      const dir = path.join(parent, `c${i}`);
      for (let attempt = 0; attempt < 50 && fs.existsSync(dir); attempt++) {
        try { fs.rmdirSync(dir); } catch { await new Promise((resolve) => setTimeout(resolve, 20)); }
      }
    }
    try { fs.rmdirSync(parent); } catch (err) { if (err.code !== 'ENOENT') console.error(`cannot remove ${parent}: ${err.code}`); }
  }
}

async function main() {
  for (const parent of parents) fs.mkdirSync(parent);
  const cpusetParent = parents[CONTROLLERS.indexOf('cpuset')];
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    fs.writeFileSync(path.join(cpusetParent, file), fs.readFileSync(path.join(path.dirname(cpusetParent), file)));
  }
  for (let i = 0; i < N; i++) {
    for (const parent of parents) {
      const dir = path.join(parent, `c${i}`);
      fs.mkdirSync(dir);
      if (parent === cpusetParent) {
        for (const file of ['cpuset.cpus', 'cpuset.mems']) fs.writeFileSync(path.join(dir, file), fs.readFileSync(path.join(parent, file)));
      }
      if (parent.includes('/memory/')) fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(256 * 1024 * 1024));
    }
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    children.push(child);
    for (const parent of parents) fs.writeFileSync(path.join(parent, `c${i}`, 'cgroup.procs'), String(child.pid));
  }
  const hierarchy = discoverHierarchy('/sys/fs/cgroup');
  const containers = new ContainerRegistry({ idleMs: 600_000 });
  const options = { procRoot: '/proc', sysRoot: '/sys', loadavgIntervalMs: 5000 };
  const logger = { info() {}, warn() {}, error() {}, debug() {} };
  const sampler = newSampler(options, containers, null, logger);
  const stateDir = fs.mkdtempSync('/tmp/isolfs-bench-render-');
  const switches = SwitchStore.open(stateDir, logger, true);
  const backend = newBackend({ options, logger, hierarchy, switches, containers, sampler });
  const keys = [];
  for (const child of children) {
    const found = locateProcess('/proc', hierarchy, child.pid);
    if (!found.found) throw new Error(`cannot locate ${child.pid}: ${found.why}`);
    containers.markAttached(found.location);
    keys.push(found.location.key);
  }
  const cpuUs = new Map(FILES.map((file) => [file, []]));
  for (let round = 0; round < ROUNDS + 2; round++) {
    for (const key of keys) {
      const record = containers.find(key);
      for (const file of FILES) {
        record.rendered = null; // every render a fresh one, as at 1 read a second
        const start = process.cpuUsage();
        const content = backend.currentContent({ file, container: key });
        const used = process.cpuUsage(start);
        if (content.errno !== undefined) throw new Error(`${key}${file}: errno ${content.errno}`);
        if (round >= 2) cpuUs.get(file).push(used.user + used.system); // two rounds of warm-up
      }
    }
  }
  sampler.stop();
  fs.rmSync(stateDir, { recursive: true });
  const rows = [];
  for (const [file, samples] of cpuUs) {
    const total = samples.reduce((a, b) => a + b, 0);
    rows.push(`${file} ${(total / samples.length).toFixed(1)} µs`);
  }
  const all = [...cpuUs.values()].flat();
  const mean = all.reduce((a, b) => a + b, 0) / all.length;
  console.log(`render CPU per file (mean over ${N} containers x ${ROUNDS} rounds): ${rows.join(', ')}; all ${mean.toFixed(1)} µs; load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`);
}

process.on('SIGINT', () => { cleanup().then(() => process.exit(130)); });
main().then(cleanup, async (err) => { await cleanup(); console.error(err); process.exit(1); });
