import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './kubernetes';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'image-build.sh');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-dockerfile-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function imageBuild(dockerfile?: string): { status: number | null; output: string } {
  const env = { ...process.env };
  if (dockerfile !== undefined) env.ISOLFS_DOCKERFILE = dockerfile;
  const result = spawnSync('bash', [SCRIPT], { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 300_000 });
  return { status: result.status, output: `${result.stdout}\n${result.stderr}` };
}

/** A copy of the Dockerfile with one line changed. */
function brokenDockerfile(name: string, from: string, to: string): string {
  const text = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  expect(text).toContain(from);
  const file = path.join(scratch, name);
  fs.writeFileSync(file, text.replace(from, to));
  return file;
}

describe('scripts/image-build.sh (the Dockerfile replayed without Docker)', () => {
  it('builds the image\'s tree from a scratch copy, and the assembled daemon starts', { timeout: 300_000 }, () => {
    const { status, output } = imageBuild();
    expect(output).toContain('RUN scripts/build.sh');
    expect(output).toContain('COPY /src/native/build/Release/isolfs-attach -> /opt/isolfs/native/build/Release/isolfs-attach');
    expect(output).toMatch(/image-build: ok: isolfs \d+\.\d+\.\d+/);
    expect(status).toBe(0);
  });

  it('fails when the build stage copies a file the repo does not have', () => {
    const { status, output } = imageBuild(brokenDockerfile('missing-source', 'COPY src ./src', 'COPY srcs ./src'));
    expect(status).not.toBe(0);
    expect(output).toContain('the build stage copies srcs, which does not exist');
  });

  it('fails when the runtime stage copies an artefact the build does not produce', { timeout: 300_000 }, () => {
    const { status, output } = imageBuild(
      brokenDockerfile('missing-artefact', 'COPY --from=build /src/native/build/Release/isolfs-attach ', 'COPY --from=build /src/native/build/Release/isolfs-attacher '),
    );
    expect(status).not.toBe(0);
    expect(output).toContain('the build produced nothing for /src/native/build/Release/isolfs-attacher');
  });
});
