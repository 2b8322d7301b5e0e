#!/usr/bin/env node
// Cost of one container-registry sweep (one stat per record checked, at most 2000 a sweep) over N
// records whose cgroup directories are real cgroupfs directories (reused when there are fewer).
// Usage: npm run build && node bench/registry-sweep.js [N=1000] [cgroupRoot=/sys/fs/cgroup]
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { ContainerRegistry } = require('../dist/containers/registry');

const records = Number(process.argv[2] ?? 1000);
const cgroupRoot = process.argv[3] ?? '/sys/fs/cgroup';

function cgroupDirs(root, limit) {
  const dirs = [];
  const queue = [root];
  while (queue.length > 0 && dirs.length < limit) {
    const dir = queue.shift();
    dirs.push(dir);
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) queue.push(path.join(dir, entry.name));
  }
  return dirs;
}

const dirs = cgroupDirs(cgroupRoot, records);
const registry = new ContainerRegistry({ idleMs: 10 * 60_000 });
for (let i = 0; i < records; i++) {
  const location = { key: `/bench/${i}`, version: 2, dirs: {}, roots: {}, unifiedDir: dirs[i % dirs.length] };
  registry.markAttached(location); // attached: every sweep checks its cgroup
}
// Wall time includes time descheduled on a busy machine; CPU time is what the sweep costs.
const wallMs = [];
const cpuMs = [];
for (let run = 0; run < 50; run++) {
  const wallStart = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  registry.sweep(Date.now());
  const cpu = process.cpuUsage(cpuStart);
  cpuMs.push((cpu.user + cpu.system) / 1000);
  wallMs.push(Number(process.hrtime.bigint() - wallStart) / 1e6);
}
const summary = (runs) => {
  runs.sort((a, b) => a - b);
  const at = (q) => runs[Math.min(runs.length - 1, Math.floor(q * runs.length))].toFixed(2);
  return `median ${at(0.5)} ms, p90 ${at(0.9)} ms`;
};
console.log(`sweep of ${registry.size} records (${dirs.length} distinct cgroup dirs): CPU ${summary(cpuMs)}; wall ${summary(wallMs)}; load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`);
