import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { VIEW_PATHS } from '../../src/fuse/layout';
import { DEFAULT_HTTP_PORT } from '../../src/health/server';
import { REPO_ROOT, loadManifests, unknownFieldErrors, validateAgainstSchema, type KubeObject } from './kubernetes';

const DEPLOY_DIR = path.join(REPO_ROOT, 'deploy');
const KUSTOMIZATION_FILE = 'deploy/kustomization.yaml';
/** Applied by hand after the install, not part of `kubectl apply -k deploy/`. */
const EXAMPLE_FILE = 'deploy/example-deployment.yaml';
/** runc refuses a bind mount over these when it creates a container (it allows a short list of
 *  /proc files only): the daemon attaches them. */
const RUNC_REFUSES_BIND = ['/proc/vmstat', '/proc/partitions'];

const documents = loadManifests(DEPLOY_DIR);
/** Everything but the kustomization, which is kustomize's configuration, not an API object. */
const apiDocuments = documents.filter((d) => d.file !== KUSTOMIZATION_FILE);

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** A copy of `object` without its field `key` (to break a manifest by leaving a field out). */
function without(object: object, key: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([name]) => name !== key));
}

// Loose views of the objects, for the checks that matter beyond the schema (which has already
// established the shapes).
interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
}
interface VolumeMount {
  name: string;
  mountPath: string;
  mountPropagation?: string;
  readOnly?: boolean;
}
interface Probe {
  httpGet?: { path: string; port: number | string };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: { privileged?: boolean; readOnlyRootFilesystem?: boolean };
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  volumeMounts?: VolumeMount[];
}
interface PodSpec {
  hostPID?: boolean;
  priorityClassName?: string;
  serviceAccountName?: string;
  terminationGracePeriodSeconds?: number;
  tolerations?: Record<string, unknown>[];
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
}
interface Workload extends KubeObject {
  spec: {
    updateStrategy?: { type: string; rollingUpdate?: { maxUnavailable?: number | string } };
    template: { metadata?: { annotations?: Record<string, string> }; spec: PodSpec };
  };
}

function only(kind: string, file?: string): KubeObject {
  const matches = apiDocuments.filter((d) => d.object.kind === kind && (file === undefined || d.file === file));
  expect(matches, `exactly one ${kind}${file ? ` in ${file}` : ''}`).toHaveLength(1);
  return matches[0].object;
}

function daemonSet(): Workload {
  return only('DaemonSet') as Workload;
}

function isolfsContainer(ds: Workload): Container {
  const containers = ds.spec.template.spec.containers;
  expect(containers).toHaveLength(1);
  return containers[0];
}

/** The value of `--name=value` or `--name value` in args. */
function flag(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
  }
  return undefined;
}

/** The positional argument of the isolfs command line (its mountpoint). */
function mountpointArg(args: string[]): string {
  const positionals = args.filter((a, i) => !(a.startsWith('--') || (i > 0 && args[i - 1].startsWith('--') && !args[i - 1].includes('='))));
  expect(positionals).toHaveLength(1);
  return positionals[0];
}

function portOf(container: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** The volume mount that holds `pathInContainer`, and the host path it corresponds to. */
function hostPathOf(spec: PodSpec, container: Container, pathInContainer: string): { mount: VolumeMount; hostPath: string } {
  const mount = (container.volumeMounts ?? [])
    .filter((m) => pathInContainer === m.mountPath || pathInContainer.startsWith(m.mountPath.replace(/\/?$/, '/')))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  expect(mount, `a volume mount holding ${pathInContainer}`).toBeDefined();
  const volume = spec.volumes?.find((v) => v.name === mount.name);
  expect(volume?.hostPath, `volume ${mount.name} is a hostPath`).toBeDefined();
  return { mount, hostPath: path.posix.join(volume!.hostPath!.path, path.posix.relative(mount.mountPath, pathInContainer)) };
}

/** Dockerfile instructions with their arguments, continuations joined. */
function dockerfileInstructions(): { instruction: string; args: string }[] {
  const text = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const out: { instruction: string; args: string }[] = [];
  let buffer = '';
  for (const raw of text.split('\n')) {
    if (buffer === '' && /^\s*(#|$)/.test(raw)) continue;
    if (/\\\s*$/.test(raw)) {
      buffer += raw.replace(/\\\s*$/, ' ');
      continue;
    }
    const line = buffer + raw;
    buffer = '';
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (match) out.push({ instruction: match[1].toUpperCase(), args: match[2].trim() });
  }
  return out;
}

function dockerfileJson(instruction: string): string[] {
  const found = dockerfileInstructions().filter((i) => i.instruction === instruction);
  expect(found, `one ${instruction} in the Dockerfile`).toHaveLength(1);
  return JSON.parse(found[0].args) as string[];
}

describe('deploy/ manifests against the Kubernetes API schemas', () => {
  it('finds the manifests it is meant to check', () => {
    const kinds = apiDocuments.map((d) => `${d.file}:${d.object.kind}`).sort((a, b) => a.localeCompare(b));
    expect(kinds).toEqual(['deploy/daemonset.yaml:DaemonSet', 'deploy/example-deployment.yaml:Deployment', 'deploy/namespace.yaml:Namespace', 'deploy/serviceaccount.yaml:ServiceAccount']);
  });

  it.each(apiDocuments.map((d) => [`${d.file}#${d.index} (${d.object.kind})`, d.object] as const))('%s satisfies the schema of its kind', async (_name, object) => {
    expect(await validateAgainstSchema(object)).toEqual([]);
  });

  it('uses no field the schemas do not define, anywhere in any manifest', async () => {
    const errors = await unknownFieldErrors(apiDocuments.map((d) => d.object));
    const report = apiDocuments.map((d, i) => ({ file: d.file, errors: errors[i] })).filter((r) => r.errors.length > 0);
    expect(report).toEqual([]);
  });

  describe('rejects a broken copy (proof that the validation bites)', () => {
    it('a typo in a pod spec field: hostPid', async () => {
      const broken = clone(daemonSet());
      const template = broken.spec.template as unknown as Record<string, unknown>;
      template.spec = { ...without(broken.spec.template.spec, 'hostPID'), hostPid: true };
      const [errors] = await unknownFieldErrors([broken]);
      expect(errors.join('\n')).toMatch(/'"?hostPid"?' does not exist in type/);
    });

    it('a typo deep inside a container: mountPropogation', async () => {
      const broken = clone(daemonSet());
      const mounts = isolfsContainer(broken).volumeMounts! as unknown as Record<string, unknown>[];
      mounts[0] = { ...without(mounts[0]!, 'mountPropagation'), mountPropogation: mounts[0]!.mountPropagation };
      const [errors] = await unknownFieldErrors([broken]);
      expect(errors.join('\n')).toMatch(/'"?mountPropogation"?' does not exist in type/);
    });

    it('an unknown top-level field', async () => {
      const broken = { ...clone(only('Namespace')), specification: {} } as KubeObject;
      const [errors] = await unknownFieldErrors([broken]);
      expect(errors.join('\n')).toMatch(/'"?specification"?' does not exist/);
    });

    it('a wrong type: a string containerPort', async () => {
      const broken = clone(daemonSet());
      (isolfsContainer(broken).ports![0] as unknown as Record<string, unknown>).containerPort = '9464';
      expect((await validateAgainstSchema(broken)).join('\n')).toMatch(/containerPort must be integer/);
    });

    it('a missing required field: a pod without containers', async () => {
      const broken = clone(daemonSet());
      (broken.spec.template as unknown as Record<string, unknown>).spec = without(broken.spec.template.spec, 'containers');
      expect((await validateAgainstSchema(broken)).join('\n')).toMatch(/spec must have required property '?containers'?/);
    });

    it('an unknown kind, a kind under the wrong apiVersion, and a type that is not a kind', async () => {
      expect((await validateAgainstSchema({ ...clone(daemonSet()), kind: 'DaemonSett' })).join('\n')).toMatch(/unknown apiVersion\/kind apps\/v1\/DaemonSett/);
      expect((await validateAgainstSchema({ ...clone(daemonSet()), apiVersion: 'v1' })).join('\n')).toMatch(/unknown apiVersion\/kind v1\/DaemonSet/);
      expect((await validateAgainstSchema({ apiVersion: 'v1', kind: 'PodSpec', containers: [] })).join('\n')).toMatch(/not a Kubernetes API kind/);
      const [errors] = await unknownFieldErrors([{ ...clone(daemonSet()), kind: 'DaemonSett' }]);
      expect(errors.length).toBeGreaterThan(0);
    });
  });
});

describe('deploy/daemonset.yaml', () => {
  it('runs privileged with the host pid namespace, on every node, before other pods', () => {
    const ds = daemonSet();
    const spec = ds.spec.template.spec;
    expect(spec.hostPID).toBe(true);
    expect(isolfsContainer(ds).securityContext?.privileged).toBe(true);
    expect(spec.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(spec.priorityClassName).toBe('system-node-critical');
    expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(10);
  });

  it('mounts with Bidirectional propagation so the FUSE mount reaches the host, and keeps state on the host', () => {
    const ds = daemonSet();
    const spec = ds.spec.template.spec;
    const container = isolfsContainer(ds);
    const args = container.args ?? [];
    const mountpoint = mountpointArg(args);
    const { mount, hostPath } = hostPathOf(spec, container, mountpoint);
    expect(mount.mountPropagation).toBe('Bidirectional');
    // The parent is mounted, not the mountpoint itself: a dead FUSE mount fails stat.
    expect(mount.mountPath).not.toBe(mountpoint);
    expect(hostPath).toBe('/var/lib/isolfs/mnt');
    const stateDir = flag(args, 'state-dir');
    expect(stateDir).toBeDefined();
    expect(hostPathOf(spec, container, stateDir!).hostPath).toBe('/var/lib/isolfs/state');
    // The init container creates both where the daemon looks for them.
    const init = spec.initContainers?.find((c) => c.name === 'prepare-dirs');
    expect(init?.args ?? (init as unknown as { command: string[] }).command).toEqual(expect.arrayContaining([mountpoint, stateDir]));
  });

  it('gives the container-views tree a writable private directory under the read-only root', () => {
    const ds = daemonSet();
    const spec = ds.spec.template.spec;
    const container = isolfsContainer(ds);
    expect(container.securityContext?.readOnlyRootFilesystem).toBe(true);
    const views = flag(container.args ?? [], 'views-mountpoint');
    expect(views, '--views-mountpoint (the default, under /run, is on the read-only root)').toBeDefined();
    const mount = (container.volumeMounts ?? []).find((m) => views!.startsWith(`${m.mountPath}/`));
    expect(mount, `a volume mount holding ${views}`).toBeDefined();
    const volume = spec.volumes?.find((v) => v.name === mount!.name) as { emptyDir?: unknown } | undefined;
    // Private to the daemon's container (no propagation to the host), gone with the pod.
    expect(volume?.emptyDir).toBeDefined();
    expect(mount!.mountPropagation ?? 'None').toBe('None');
  });

  it('serves the OCI hook\'s socket in a node directory the shipped hook files name, and installs the hook on the node', () => {
    const ds = daemonSet();
    const spec = ds.spec.template.spec;
    const container = isolfsContainer(ds);
    const socket = flag(container.args ?? [], 'hook-socket');
    expect(socket).toBe('/run/isolfs-hook/hook.sock');
    // The runtime runs the hook on the node: the socket must be where the node sees the same path.
    expect(hostPathOf(spec, container, socket!).hostPath).toBe(socket);
    const hooksD = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'oci-hooks', 'isolfs.json'), 'utf8')) as { hook: { path: string; args: string[] }; stages: string[] };
    const containerd = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'oci-hooks', 'containerd-hooks.json'), 'utf8')) as { createRuntime: Array<{ path: string; args: string[] }> };
    expect(hooksD.stages).toEqual(['createRuntime']);
    for (const hook of [hooksD.hook, containerd.createRuntime[0]]) {
      expect(hook.args).toEqual(expect.arrayContaining(['--socket', socket]));
      expect(hook.path).toBe('/opt/isolfs/bin/isolfs-oci-hook');
    }
    // The init container copies the binary to where the hook files look for it, on the node.
    const install = spec.initContainers?.find((c) => c.name === 'install-hook');
    const script = ((install as unknown as { command: string[] }).command).join('\n');
    const mount = install?.volumeMounts?.find((m) => script.includes(`${m.mountPath}/bin/isolfs-oci-hook`));
    expect(mount, 'a volume the init container installs the hook into').toBeDefined();
    expect(spec.volumes?.find((v) => v.name === mount!.name)?.hostPath?.path).toBe('/opt/isolfs');
  });

  it('gives the daemon the host cgroup tree and /dev/fuse', () => {
    const ds = daemonSet();
    const spec = ds.spec.template.spec;
    const container = isolfsContainer(ds);
    expect(hostPathOf(spec, container, '/sys/fs/cgroup').hostPath).toBe('/sys/fs/cgroup');
    expect(hostPathOf(spec, container, '/dev/fuse').hostPath).toBe('/dev/fuse');
    expect(spec.volumes?.find((v) => v.hostPath?.path === '/dev/fuse')?.hostPath?.type).toBe('CharDevice');
  });

  it('probes /healthz and /readyz on the port the daemon listens on (--http), which is the default health port', () => {
    const container = isolfsContainer(daemonSet());
    const listen = flag(container.args ?? [], 'http');
    expect(listen).toBe(`0.0.0.0:${DEFAULT_HTTP_PORT}`);
    for (const [probe, route] of [
      [container.livenessProbe, '/healthz'],
      [container.startupProbe, '/healthz'],
      [container.readinessProbe, '/readyz'],
    ] as const) {
      expect(probe?.httpGet?.path).toBe(route);
      expect(portOf(container, probe!.httpGet!.port)).toBe(DEFAULT_HTTP_PORT);
    }
    const annotations = daemonSet().spec.template.metadata?.annotations ?? {};
    expect(annotations['prometheus.io/port']).toBe(String(DEFAULT_HTTP_PORT));
    expect(annotations['prometheus.io/path']).toBe('/metrics');
  });

  it('attaches into every pod the kubelet runs (cgroupfs /kubepods and systemd /kubepods.slice)', () => {
    const prefix = flag(isolfsContainer(daemonSet()).args ?? [], 'attach');
    expect(prefix).toBe('/kubepods');
    for (const podCgroup of ['/kubepods/burstable/pod1/abc', '/kubepods.slice/kubepods-besteffort.slice/cri-containerd-1.scope']) {
      expect(podCgroup.startsWith(prefix as string)).toBe(true);
    }
  });

  it('sets the log level from an environment variable the args expand', () => {
    const container = isolfsContainer(daemonSet());
    expect(flag(container.args ?? [], 'log-level')).toBe('$(ISOLFS_LOG_LEVEL)');
    expect(container.env?.find((e) => e.name === 'ISOLFS_LOG_LEVEL')?.value).toBe('info');
  });

  it('has resource requests and a memory limit', () => {
    const container = isolfsContainer(daemonSet());
    expect(container.resources?.requests?.cpu).toBeDefined();
    expect(container.resources?.requests?.memory).toBeDefined();
    expect(container.resources?.limits?.memory).toBeDefined();
  });

  it('runs in the namespace and as the service account deploy/ creates', () => {
    const ds = daemonSet();
    expect(ds.metadata?.namespace).toBe(only('Namespace').metadata?.name);
    const sa = only('ServiceAccount');
    expect(sa.metadata?.namespace).toBe(ds.metadata?.namespace);
    expect(ds.spec.template.spec.serviceAccountName).toBe(sa.metadata?.name);
  });
});

describe('Dockerfile', () => {
  it('starts the daemon on the same mountpoint, state dir and health port as the DaemonSet', () => {
    expect(dockerfileJson('ENTRYPOINT')).toEqual(['node', '/opt/isolfs/dist/cli.js']);
    const cmd = dockerfileJson('CMD');
    const dsArgs = isolfsContainer(daemonSet()).args ?? [];
    expect(mountpointArg(cmd)).toBe(mountpointArg(dsArgs));
    expect(flag(cmd, 'state-dir')).toBe(flag(dsArgs, 'state-dir'));
    expect(flag(cmd, 'http')).toBe(`0.0.0.0:${DEFAULT_HTTP_PORT}`);
  });

  it('health-checks /healthz on that port and exposes it', () => {
    const healthcheck = dockerfileInstructions().find((i) => i.instruction === 'HEALTHCHECK');
    expect(healthcheck?.args).toContain(`http://127.0.0.1:${DEFAULT_HTTP_PORT}/healthz`);
    expect(dockerfileInstructions().find((i) => i.instruction === 'EXPOSE')?.args).toBe(String(DEFAULT_HTTP_PORT));
  });
});

describe('deploy/example-deployment.yaml', () => {
  const example = only('Deployment', EXAMPLE_FILE) as Workload;
  const spec = example.spec.template.spec;
  const container = spec.containers[0];

  it('binds every served file runc allows over the kernel one, from the daemon\'s mount, as type File', () => {
    const ds = daemonSet();
    const hostMountDir = hostPathOf(ds.spec.template.spec, isolfsContainer(ds), mountpointArg(isolfsContainer(ds).args ?? [])).hostPath;
    const bound = new Map<string, string>();
    for (const mount of container.volumeMounts ?? []) {
      const volume = spec.volumes?.find((v) => v.name === mount.name);
      expect(volume?.hostPath?.type, `${mount.name} is a hostPath of type File`).toBe('File');
      const source = volume!.hostPath!.path;
      expect(source.startsWith(`${hostMountDir}/`), `${source} lies in the daemon's mount ${hostMountDir}`).toBe(true);
      const served = source.slice(hostMountDir.length);
      expect(VIEW_PATHS as readonly string[], `${served} is a file isolfs serves`).toContain(served);
      // Same path inside the container as in the mount: LXCFS-compatible layout.
      expect(mount.mountPath).toBe(served);
      expect(mount.readOnly).toBe(true);
      bound.set(mount.mountPath, source);
    }
    const bindable = VIEW_PATHS.filter((p) => !RUNC_REFUSES_BIND.includes(p));
    expect([...bound.keys()].sort((a, b) => a.localeCompare(b))).toEqual([...bindable].sort((a, b) => a.localeCompare(b)));
  });

  it('does not bind /proc/vmstat, which runc refuses at container creation', () => {
    expect((container.volumeMounts ?? []).map((m) => m.mountPath)).not.toContain('/proc/vmstat');
  });

  it('limits the container to 256 MiB and 1.5 CPUs, the numbers its files then show', () => {
    expect(container.resources?.limits).toEqual({ cpu: '1500m', memory: '256Mi' });
  });

  it('shows the opt-out variable, commented out', () => {
    const text = fs.readFileSync(path.join(REPO_ROOT, EXAMPLE_FILE), 'utf8');
    expect(text).toMatch(/#\s+- name: CONTAINER_STATS_ISOLATED\n\s*#\s+value: "0"/);
    expect(container.env ?? []).toEqual([]);
  });
});

describe('deploy/kustomization.yaml', () => {
  const kustomization = parseYaml(fs.readFileSync(path.join(REPO_ROOT, KUSTOMIZATION_FILE), 'utf8')) as {
    apiVersion: string;
    kind: string;
    resources: string[];
    images?: { name: string; newName?: string; newTag?: string }[];
  };

  it('is a kustomize Kustomization whose resources all exist', () => {
    expect(kustomization.apiVersion).toBe('kustomize.config.k8s.io/v1beta1');
    expect(kustomization.kind).toBe('Kustomization');
    for (const resource of kustomization.resources) {
      expect(fs.existsSync(path.join(DEPLOY_DIR, resource)), `${resource} exists`).toBe(true);
    }
  });

  it('installs every manifest in deploy/ except the example workload', () => {
    const listed = kustomization.resources.map((r) => path.posix.join('deploy', r)).sort((a, b) => a.localeCompare(b));
    const expected = [...new Set(apiDocuments.map((d) => d.file))].filter((f) => f !== EXAMPLE_FILE).sort((a, b) => a.localeCompare(b));
    expect(listed).toEqual(expected);
  });

  it('sets the tag of the image the DaemonSet uses, matching the package version', () => {
    const version = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const ds = daemonSet();
    const images = [...ds.spec.template.spec.containers, ...(ds.spec.template.spec.initContainers ?? [])].map((c) => c.image);
    expect(new Set(images)).toEqual(new Set(['isolfs']));
    expect(kustomization.images).toEqual([{ name: 'isolfs', newTag: version }]);
  });
});
