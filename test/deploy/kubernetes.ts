/**
 * Validates Kubernetes manifests against the API's own schemas, as shipped by the maintained
 * `kubernetes-models` package (generated from the Kubernetes OpenAPI spec):
 *   - validateAgainstSchema: the package's ajv validators (types, required fields, enums);
 *   - unknownFieldErrors: those validators accept unknown fields, so a typo'd field would pass
 *     them silently; the package's generated TypeScript declarations of the same schemas do
 *     know every field, and tsc's excess-property check on an object literal rejects any
 *     other, at any depth. So the manifests are written out as typed literals and type-checked.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface ManifestDocument {
  /** Path relative to the repo root, e.g. deploy/daemonset.yaml. */
  file: string;
  /** Position of the document in its file (0-based). */
  index: number;
  object: KubeObject;
}

/** Every YAML document of every *.yaml / *.yml file under `dir`; throws on a YAML error. */
export function loadManifests(dir: string): ManifestDocument[] {
  const out: ManifestDocument[] = [];
  for (const file of listYamlFiles(dir)) {
    const text = fs.readFileSync(file, 'utf8');
    const rel = path.relative(REPO_ROOT, file);
    parseAllDocuments(text).forEach((doc, index) => {
      const problems = [...doc.errors, ...doc.warnings];
      if (problems.length > 0) throw new Error(`${rel} document ${index}: ${problems.map((p) => p.message).join('; ')}`);
      const object = doc.toJS() as unknown;
      if (object === null || object === undefined) return; // an empty document (a trailing ---)
      if (typeof object !== 'object' || Array.isArray(object)) throw new Error(`${rel} document ${index} is not a mapping`);
      out.push({ file: rel, index, object: object as KubeObject });
    });
  }
  return out;
}

function listYamlFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listYamlFiles(full));
    else if (/\.ya?ml$/.test(entry.name)) files.push(full);
  }
  return files;
}

const API_VERSION = /^(?:[a-z0-9.-]+\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;
const KIND = /^[A-Z][A-Za-z0-9]*$/;

/** The module of kubernetes-models that holds one kind, e.g. kubernetes-models/apps/v1/DaemonSet. */
function modelModule(object: KubeObject): string {
  if (typeof object.apiVersion !== 'string' || !API_VERSION.test(object.apiVersion)) throw new Error(`bad apiVersion ${JSON.stringify(object.apiVersion)}`);
  if (typeof object.kind !== 'string' || !KIND.test(object.kind)) throw new Error(`bad kind ${JSON.stringify(object.kind)}`);
  return `kubernetes-models/${object.apiVersion}/${object.kind}`;
}

interface ModelClass {
  new (data: unknown): { validate: () => void };
  apiVersion?: string;
  kind?: string;
}

/**
 * Errors from the Kubernetes schema of the object's apiVersion/kind; an unknown apiVersion/kind
 * (or a type that is not a top-level kind, e.g. PodSpec) is an error too.
 */
export async function validateAgainstSchema(object: KubeObject): Promise<string[]> {
  let module: Record<string, unknown>;
  try {
    module = (await import(modelModule(object))) as Record<string, unknown>;
  } catch (err) {
    return [`unknown apiVersion/kind ${object.apiVersion}/${object.kind}: ${(err as Error).message.split('\n')[0]}`];
  }
  const model = module[object.kind] as ModelClass | undefined;
  if (typeof model !== 'function' || model.kind !== object.kind || model.apiVersion !== object.apiVersion) {
    return [`${object.apiVersion}/${object.kind} is not a Kubernetes API kind`];
  }
  try {
    new model(object).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

/**
 * Fields the Kubernetes schema does not define, for each object (same order as given): one tsc
 * run over all of them. An object whose kind is unknown gets that as its error.
 */
export async function unknownFieldErrors(objects: KubeObject[]): Promise<string[][]> {
  const errors: string[][] = objects.map(() => []);
  const lines: string[] = [];
  const lineToObject = new Map<number, number>();
  const imported = new Set<string>();
  objects.forEach((object, i) => {
    let module: string;
    try {
      module = modelModule(object);
    } catch (err) {
      errors[i].push((err as Error).message);
      return;
    }
    const typeName = `I${object.kind}`;
    const alias = `${typeName}_${object.apiVersion.replace(/[^A-Za-z0-9]/g, '_')}`;
    if (!imported.has(alias)) {
      imported.add(alias);
      lineToObject.set(lines.length + 1, i);
      lines.push(`import type { ${typeName} as ${alias} } from ${JSON.stringify(module)};`);
    }
    lineToObject.set(lines.length + 1, i);
    lines.push(`export const object${i}: ${alias} = ${JSON.stringify(object)};`);
  });

  // Under node_modules/.cache so that the package resolves as it does for the project.
  const cacheDir = path.join(REPO_ROOT, 'node_modules', '.cache');
  fs.mkdirSync(cacheDir, { recursive: true });
  const dir = fs.mkdtempSync(path.join(cacheDir, 'isolfs-manifest-typecheck-'));
  try {
    fs.writeFileSync(path.join(dir, 'manifests.ts'), `${lines.join('\n')}\n`);
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'ES2022', skipLibCheck: true, types: [] },
        files: ['manifests.ts'],
      }),
    );
    const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const output = await new Promise<string>((resolve) => {
      execFile(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir }, (_err, stdout, stderr) => resolve(stdout + stderr));
    });
    let reported = 0;
    for (const line of output.split('\n')) {
      const match = /^manifests\.ts\((\d+),\d+\): error (TS\d+: .*)$/.exec(line.trim());
      if (match === null) continue;
      const i = lineToObject.get(Number(match[1]));
      if (i === undefined) throw new Error(`tsc reported a line that holds no manifest: ${line}`);
      errors[i].push(match[2]);
      reported++;
    }
    // tsc failed for a reason it did not tie to a manifest (a broken setup): never pass silently.
    if (reported === 0 && /error/i.test(output)) throw new Error(`tsc failed:\n${output}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return errors;
}
