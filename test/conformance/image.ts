/**
 * The conformance image: a Debian bookworm root built by mmdebstrap from Debian packages only
 * (no registry pull), imported into the suite's own podman storage.
 *
 * - Cached as a tar in IMAGE_CACHE_DIR under a name carrying a hash of everything that decides
 *   its content (suite, mirror, packages, options): a changed list builds a new one, and older
 *   tars are removed. Built aside, then renamed into place, so a killed build leaves no tar.
 * - Measured here: ~27 s to build on a clean machine (downloads included), ~5 s to import; with
 *   the tar cached, an existing image costs one `podman image exists`.
 * - nodejs is in: +92 MB (158 -> 250 MB) and +2 s of build for Node's own answers (os.cpus(),
 *   os.totalmem(), os.availableParallelism()) from the Node Debian users run.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { podmanArgs } from './podman';

export const IMAGE_CACHE_DIR = '/var/cache/isolfs';
const SUITE = 'bookworm';
const MIRROR = 'http://deb.debian.org/debian';
export const IMAGE_PACKAGES = ['procps', 'python3', 'nginx-light', 'busybox', 'htop', 'nodejs'] as const;
// Documentation is dead weight in a test image.
const MMDEBSTRAP_OPTIONS = [
  '--variant=essential',
  '--dpkgopt=path-exclude=/usr/share/doc/*',
  '--dpkgopt=path-exclude=/usr/share/man/*',
  '--dpkgopt=path-exclude=/usr/share/locale/*',
];
// Bump when the way the tar is made changes in a way the inputs above do not show.
const IMAGE_FORMAT = 1;

export interface ConformanceImage {
  /** The podman image reference. */
  ref: string;
  tarPath: string;
  /** Seconds the mmdebstrap build took in this run (null: the cached tar was used). */
  buildSeconds: number | null;
  /** Seconds `podman import` took in this run (null: already imported). */
  importSeconds: number | null;
}

function imageHash(): string {
  const inputs = JSON.stringify({ IMAGE_FORMAT, SUITE, MIRROR, packages: IMAGE_PACKAGES, options: MMDEBSTRAP_OPTIONS });
  return crypto.createHash('sha256').update(inputs).digest('hex').slice(0, 16);
}

function buildTar(tarPath: string): number {
  fs.mkdirSync(IMAGE_CACHE_DIR, { recursive: true });
  const building = `${tarPath}.building-${process.pid}`;
  const started = process.hrtime.bigint();
  try {
    execFileSync('mmdebstrap', [...MMDEBSTRAP_OPTIONS, `--include=${IMAGE_PACKAGES.join(',')}`, '--format=tar', SUITE, building, MIRROR], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 600_000,
    });
    fs.renameSync(building, tarPath);
  } catch (error) {
    fs.rmSync(building, { force: true });
    throw new Error(`mmdebstrap could not build the conformance image (network to ${MIRROR}? scripts/deps.sh --test installs mmdebstrap)`, { cause: error });
  }
  // Only one image's tar is kept: the others are for package lists no longer used.
  for (const name of fs.readdirSync(IMAGE_CACHE_DIR)) {
    const file = path.join(IMAGE_CACHE_DIR, name);
    if (name.startsWith('conformance-image-') && file !== tarPath && !name.includes('.building-')) fs.rmSync(file, { force: true });
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** The image, built and imported if needed. */
export function conformanceImage(): ConformanceImage {
  const hash = imageHash();
  const tarPath = path.join(IMAGE_CACHE_DIR, `conformance-image-${hash}.tar`);
  const ref = `localhost/isolfs-conformance:${hash}`;
  const buildSeconds = fs.existsSync(tarPath) ? null : buildTar(tarPath);
  let importSeconds: number | null = null;
  try {
    execFileSync('podman', podmanArgs('image', 'exists', ref), { stdio: 'ignore' });
  } catch {
    const started = process.hrtime.bigint();
    execFileSync('podman', podmanArgs('import', '--quiet', tarPath, ref), { stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
    importSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    // Images of older package lists go with their tars.
    const tags = execFileSync('podman', podmanArgs('images', '--format', '{{.Repository}}:{{.Tag}}'), { encoding: 'utf8' }).split('\n');
    for (const old of tags.filter((t) => t.startsWith('localhost/isolfs-conformance:') && t !== ref)) {
      execFileSync('podman', podmanArgs('rmi', '--force', old), { stdio: 'ignore' });
    }
  }
  return { ref, tarPath, buildSeconds, importSeconds };
}
