/**
 * One containerd run, as Kubernetes nodes have it: Debian's containerd (runc underneath, the
 * cgroupfs layout) runs the conformance image with `ctr run`, a memory limit and a CPU quota,
 * under a kubepods-like cgroup path (<parent>/kubepods/burstable/pod<uid>/<id>), in three modes:
 * the files bound at creation (`--mount type=bind,...`, what a pod spec's hostPath volumes do),
 * attached by a daemon started with `--attach <parent>/kubepods` (the DaemonSet's way), and
 * attached by the OCI hook as well: the container made from the spec the shipped
 * make-containerd-base-spec.sh writes (`ctr run --config`, as the CRI plugin uses
 * base_runtime_spec), whose first instruction must read its own files, here and over STARTS
 * short containers. The programs that need a terminal (htop) or a writable root (nginx) are
 * podman.test.ts's only.
 * Its table goes to test/conformance/results-containerd.md and is printed. Root only.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DaemonHandle, startDaemon } from '../helpers/daemon';
import { type Containerd, type CtrOptions, makeHookSpec, runCtr, runCtrFirstReads, startContainerd, unpackedRootfs } from './containerd';
import { conformanceImage } from './image';
import { BIND_PATHS, type Container, cgroupParent, removeCgroupParent, requireCommands } from './podman';
import { type Limits, PROBES, waitForAttach } from './probes';
import { STARTS, type StartsResult, describeStarts, repeatStarts } from './starts';
import { MODES, type Mode, type Observation, renderSection, verdictOf } from './table';

const MIB = 1 << 20;
const RESULTS_FILE = path.join(__dirname, 'results-containerd.md');
const MEMORY_BYTES = 160 * MIB;
const hostCpus = os.cpus().length;
const hostMemTotalKb = Number(/^MemTotal:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1]);
// Not here: htop (a terminal) and nginx (a writable root).
const probes = PROBES.filter((p) => !/htop|nginx/.test(p.program));

let containerd: Containerd | undefined;
let daemon: DaemonHandle | undefined;
let parent: string | undefined;
const containers = new Map<Mode, { container: Container; limits: Limits; attachMs?: number }>();
const observations: Observation[] = [];
const startsResults: StartsResult[] = [];
let rootfs = '';
let hookSpec: string | undefined;

/** Where a container of this mode sits: kubepods-like under the --attach prefix, or apart (bind). */
function cgroupOf(mode: Mode, id: string): string {
  if (parent === undefined) throw new Error('no cgroup parent');
  return mode === 'bind' ? `${parent}/bind/${id}` : `${parent}/kubepods/burstable/pod${process.pid}-${mode}/${id}`;
}

describe('containerd (ctr run, kubepods-like cgroup): what real programs report under isolfs', () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the conformance suite needs root (containerd, FUSE, cgroups)');
    requireCommands(['containerd', 'ctr', 'podman', 'mmdebstrap', 'runc']);
    rootfs = unpackedRootfs(conformanceImage());
    parent = cgroupParent();
    containerd = await startContainerd();
    daemon = await startDaemon({ args: ['--attach', `${parent}/kubepods`] });
    hookSpec = makeHookSpec(daemon.hookSocket);
    for (const mode of MODES) {
      const id = `isolfs-conformance-${process.pid}-${mode}`;
      const mnt = daemon.mountpoint;
      const container = await runCtr({
        id, rootfs, cgroup: cgroupOf(mode, id), memoryBytes: MEMORY_BYTES, cpus: 1,
        binds: mode === 'bind' ? BIND_PATHS.map((p) => [`${mnt}${p}`, p]) : [], hookSpec: mode === 'hook' ? hookSpec : undefined,
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
      `containerd ${containerd ? '(Debian package)' : '(did not start)'}, \`ctr run\` with \`--memory-limit ${MEMORY_BYTES} --cpus 1\`;`,
      "bind mode: `--mount type=bind,src=<mnt>/proc/meminfo,dst=/proc/meminfo,options=rbind:ro` and so on;",
      `attach mode: cgroup <parent>/kubepods/burstable/pod<uid>/<id>, daemon \`--attach <parent>/kubepods\`${attachMs === undefined ? '' : `, files in place ${attachMs} ms after \`ctr run -d\` returned`};`,
      'hook mode: cgroup <parent>/kubepods/burstable/pod<uid>-hook/<id> (discovery sees it too), the container made from the spec',
      '`deploy/oci-hooks/make-containerd-base-spec.sh` writes (`ctr run --config`: the hook in the spec, as base_runtime_spec gives it to CRI containers).',
      ...startsResults.map(describeStarts),
      '',
      renderSection({ title: "containerd: `--memory-limit` 160 MiB, `--cpus 1`", observations }),
      '',
    ].join('\n');
    fs.writeFileSync(RESULTS_FILE, text);
    console.log(`isolfs conformance (${RESULTS_FILE}):\n${text}`);
  }, 120_000);

  const startsIn = (mode: 'attach' | 'hook') => (i: number) => {
    const id = `isolfs-conformance-${process.pid}-starts-${mode}-${i}`;
    const options: CtrOptions = { id, rootfs, cgroup: cgroupOf(mode, id), memoryBytes: 128 * MIB, cpus: 1, binds: [], hookSpec: mode === 'hook' ? hookSpec : undefined };
    return runCtrFirstReads(options);
  };

  it(`with the OCI hook (base spec), the first instruction reads its own meminfo, vmstat and cpu/online in each of ${STARTS} starts`, async () => {
    const result = await repeatStarts('containerd, OCI hook in the base spec', { memoryBytes: 128 * MIB, cpus: 1 }, startsIn('hook'));
    startsResults.push(result);
    console.log(`isolfs conformance: ${describeStarts(result)}`);
    expect(result.broken).toEqual([]);
    expect(result.wrong).toEqual([]);
  }, 120_000);

  it(`without the hook, discovery races the first instruction over ${STARTS} starts (counted, not asserted)`, async () => {
    const result = await repeatStarts('containerd, discovery only (no hook)', { memoryBytes: 128 * MIB, cpus: 1 }, startsIn('attach'));
    startsResults.push(result);
    console.log(`isolfs conformance: ${describeStarts(result)}${result.wrong.length > 0 ? `\n  ${result.wrong.join('\n  ')}` : ''}`);
    expect(result.broken).toEqual([]);
  }, 120_000);

  for (const mode of MODES) {
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
