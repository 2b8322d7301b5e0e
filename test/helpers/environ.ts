/** An EnvironSource that reads on the calling thread: for fixture /proc trees, which never block. */
import { readDeclaration } from '../../src/switches/environRead';
import type { EnvironSource } from '../../src/switches/environReader';
import { EnvOptOut } from '../../src/switches/envOptOut';

export function inThreadEnviron(procRoot: string): EnvironSource {
  return {
    read: (pid) => {
      try {
        return { kind: 'read', optedOut: readDeclaration(procRoot, pid) };
      } catch {
        return { kind: 'failed' };
      }
    },
    stuckOn: () => false,
    stuckCount: 0,
  };
}

/** The env opt-out over a fixture /proc tree. */
export function fixtureEnvOptOut(procRoot: string): EnvOptOut {
  return new EnvOptOut({ procRoot, environ: inThreadEnviron(procRoot) });
}
