// cgroup v2 PSI files (cpu.pressure, memory.pressure, io.pressure) -> PressureSnapshot. They
// exist in every cgroup of a cgroup2 hierarchy, controllers or not (a hybrid host's "unified"
// mount has them too), and /proc/pressure/* has the same format.
import { CgroupParseError, type PressureLine, type PressureResource, type PressureSnapshot } from '../snapshot';
import { parseUnsigned, readOptionalFile, shown } from '../parse';

const LINE = /^(some|full) avg10=(\d+\.\d\d) avg60=(\d+\.\d\d) avg300=(\d+\.\d\d) total=(\d+)$/;

function centi(text: string): number {
  const [whole, hundredths] = text.split('.');
  return Number(whole) * 100 + Number(hundredths);
}

/** Parses a PSI file's text; throws CgroupParseError (naming `dir`/`file`) when malformed. */
export function parsePressure(text: string, dir: string, file: string): PressureSnapshot {
  const lines = new Map<string, PressureLine>();
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    const m = LINE.exec(raw);
    if (!m) throw new CgroupParseError(dir, file, `not a PSI line: ${shown(raw)}`);
    if (lines.has(m[1])) throw new CgroupParseError(dir, file, `two "${m[1]}" lines`);
    lines.set(m[1], {
      avg10Centi: centi(m[2]),
      avg60Centi: centi(m[3]),
      avg300Centi: centi(m[4]),
      totalUs: parseUnsigned(m[5], dir, file, 'total'),
    });
  }
  const some = lines.get('some');
  if (!some) throw new CgroupParseError(dir, file, 'no "some" line');
  return { some, full: lines.get('full') ?? null };
}

/** `<resource>.pressure` of the v2 cgroup at `dir`; null when the file is absent (psi=0, old kernel). */
export function readV2Pressure(dir: string, resource: PressureResource): PressureSnapshot | null {
  const file = `${resource}.pressure`;
  const text = readOptionalFile(dir, file);
  return text === null ? null : parsePressure(text, dir, file);
}
