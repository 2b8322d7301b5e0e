/**
 * One containerd run, as Kubernetes nodes have it: Debian's containerd (runc underneath, the
 * cgroupfs layout) runs the conformance image with `ctr run`, a memory limit and a CPU quota,
 * under a kubepods-like cgroup path (<parent>/kubepods/burstable/pod<uid>/<id>), in both modes:
 * the files bound at creation (`--mount type=bind,...`, what a pod spec's hostPath volumes do)
 * and attached by a daemon started with `--attach <parent>/kubepods` (the DaemonSet's way).
 * The programs that need a terminal (htop) or a writable root (nginx) are podman.test.ts's only.
 * Its table goes to test/conformance/results-containerd.md and is printed. Root only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonHandle, startDaemon } from '../helpers/daemon';
import { type Containerd, runCtr, startContainerd, unpackedRootfs } from './containerd';
import { conformanceImage } from './image';
import { BIND_PATHS, type Container, cgroupParent, removeCgroupParent, requireCommands } from './podman';
import { type Limits, PROBES, waitForAttach } from './probes';
import { type Mode, type Observation, renderSection, verdictOf } from './table';

const MIB = 1 << 20;
const RESULTS_FILE = path.join(__dirname, 'results-containerd.md');
const MEMORY_BYTES = 160 * MIB;
const hostCpus = os.cpus().length;
const hostMemTotalKb = Number(/^MemTotal:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1]);
// Not here: htop (a terminal), nginx and the init's first read (a writable root).
const probes = PROBES.filter((p) => !/htop|nginx|first instruction/.test(p.program));

let containerd: Containerd | undefined;
let daemon: DaemonHandle | undefined;
let parent: string | undefined;
const containers = new Map<Mode, { container: Container; limits: Limits; attachMs?: number }>();
const observations: Observation[] = [];

describe('containerd (ctr run, kubepods-like cgroup): what real programs report under isolfs', () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the conformance suite needs root (containerd, FUSE, cgroups)');
    requireCommands(['containerd', 'ctr', 'podman', 'mmdebstrap', 'runc']);
    const rootfs = unpackedRootfs(conformanceImage());
    parent = cgroupParent();
    containerd = await startContainerd();
    daemon = await startDaemon({ args: ['--attach', `${parent}/kubepods`] });
    for (const mode of ['bind', 'attach'] as Mode[]) {
      const id = `isolfs-conformance-${process.pid}-${mode}`;
      const cgroup = mode === 'attach' ? `${parent}/kubepods/burstable/pod${process.pid}/${id}` : `${parent}/bind/${id}`;
      const mnt = daemon.mountpoint;
      const container = await runCtr({
        id, rootfs, cgroup, memoryBytes: MEMORY_BYTES, cpus: 1, binds: mode === 'bind' ? BIND_PATHS.map((p) => [`${mnt}${p}`, p]) : [],
      });
      containers.set(mode, {
        container,
        limits: { memoryBytes: MEMORY_BYTES, cpus: 1, cpusetCpus: hostCpus, hostCpus, hostMemTotalKb, startedAtMs: container.startedAtMs },
      });
    }
    const attached = containers.get('attach');
    if (attached) attached.attachMs = await waitForAttach(attached.container, MEMORY_BYTES);
  }, 900_000);

  afterAll(async () => {
    for (const { container } of containers.values()) await container.remove();
    await containerd?.stop();
    await daemon?.cleanup();
    if (parent !== undefined) await removeCgroupParent(parent);
    const attachMs = containers.get('attach')?.attachMs;
    const text = [
      `containerd ${containerd ? '(Debian package)' : '(did not start)'}, \`ctr run --rootfs\` with \`--memory-limit ${MEMORY_BYTES} --cpus 1\`;`,
      "bind mode: `--mount type=bind,src=<mnt>/proc/meminfo,dst=/proc/meminfo,options=rbind:ro` and so on;",
      `attach mode: cgroup <parent>/kubepods/burstable/pod<uid>/<id>, daemon \`--attach <parent>/kubepods\`${attachMs === undefined ? '' : `, files in place ${attachMs} ms after \`ctr run -d\` returned`}.`,
      '',
      renderSection({ title: "containerd: `--memory-limit` 160 MiB, `--cpus 1`", observations }),
      '',
    ].join('\n');
    fs.writeFileSync(RESULTS_FILE, text);
    console.log(`isolfs conformance (${RESULTS_FILE}):\n${text}`);
  }, 120_000);

  for (const mode of ['bind', 'attach'] as Mode[]) {
    for (const probe of probes) {
      it(`containerd, ${mode}: ${probe.program} (${probe.kind})`, async () => {
        const entry = containers.get(mode);
        if (!entry) throw new Error('container not started');
        const observation: Observation = { probe, mode, reported: null, raw: '', limits: entry.limits };
        observations.push(observation);
        try {
          observation.raw = await probe.run(entry.container);
        } catch (error) {
          observation.error = String(error);
          throw error;
        }
        observation.reported = probe.report(observation.raw);
        expect(observation.reported, observation.raw).not.toBeNull();
        expect(verdictOf(observation), `${probe.program} printed:\n${observation.raw}`).not.toBe('FAIL');
      });
    }
  }
});
