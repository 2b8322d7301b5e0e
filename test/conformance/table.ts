/**
 * The suite's table, "what each program reads and what it reports under isolfs": one row per
 * probe and container, what it reported with the files bound (-v), attached by the daemon
 * (--attach) and attached by the OCI hook before the container starts, what the limits call for,
 * and the verdict. Written to results.md beside this file and printed.
 */
import type { Limits, Probe } from './probes';

export type Mode = 'bind' | 'attach' | 'hook';
export const MODES: readonly Mode[] = ['bind', 'attach', 'hook'];
export type Verdict = 'pass' | 'FAIL' | 'limit' | 'gap' | 'bind gap' | 'race';

export interface Observation {
  probe: Probe;
  mode: Mode;
  /** What it reported (null: nothing parseable); error: it did not run. */
  reported: string | null;
  error?: string;
  raw: string;
  limits: Limits;
}

export function verdictOf(o: Observation): Verdict {
  const { probe } = o;
  if (probe.kind === 'limit') return 'limit';
  if (probe.kind === 'gap') return 'gap';
  if (o.mode === 'bind' && probe.bindGap !== undefined) return 'bind gap';
  // Without the hook, discovery races the container's init: neither a pass nor a failure.
  if (o.mode === 'attach' && probe.attachRace) return 'race';
  if (o.reported === null) return 'FAIL';
  return isRight(o) ? 'pass' : 'FAIL';
}

function isRight(o: Observation): boolean {
  if (o.reported === null) return false;
  return o.probe.ok ? o.probe.ok(o.reported, o.limits) : o.reported === o.probe.expected(o.limits);
}

function cell(o: Observation | undefined): string {
  if (!o) return '(not run)';
  if (o.error !== undefined) return `error: ${o.error.split('\n')[0].slice(0, 80)}`;
  const value = o.reported ?? '(nothing)';
  if (o.mode === 'bind' && o.probe.bindGap !== undefined) return `${value} (${o.probe.bindGap})`;
  if (verdictOf(o) === 'race') return `${value} (race: ${isRight(o) ? 'its own, discovery attached first' : "the host's, discovery attached after the init read"})`;
  return value;
}

function resultCell(observations: (Observation | undefined)[]): string {
  const seen = observations.filter((o) => o !== undefined);
  const probe = seen[0]?.probe;
  if (probe?.kind === 'limit') return `limit: ${probe.note ?? 'not a file'}`;
  if (probe?.kind === 'gap') return `gap: ${probe.note ?? 'not served'}`;
  const verdicts = seen.map(verdictOf);
  if (verdicts.includes('FAIL')) return `**FAIL** (${seen.map((o) => `${o.mode} ${verdictOf(o)}`).join(', ')})`;
  const others = seen.filter((o) => verdictOf(o) !== 'pass').map((o) => `${o.mode} ${verdictOf(o).replace(/^bind /, '')}`);
  return others.length > 0 ? `pass, except ${others.join(' and ')} (see the cell)` : 'pass';
}

export interface TableSection {
  title: string;
  observations: Observation[];
}

export function renderSection(section: TableSection): string {
  const probes = [...new Set(section.observations.map((o) => o.probe))];
  const lines = [
    `#### ${section.title}`,
    '',
    '| program | reads | bound at creation (`-v`) | attached by the daemon (`--attach`) | attached by the OCI hook | expected | result |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const probe of probes) {
    const byMode = MODES.map((mode) => section.observations.find((o) => o.probe === probe && o.mode === mode));
    const limits = byMode.find((o) => o !== undefined)?.limits;
    const expected = limits ? probe.expected(limits) : '';
    lines.push(`| ${probe.program} | ${probe.reads} | ${byMode.map(cell).join(' | ')} | ${expected} | ${resultCell(byMode)} |`);
  }
  return lines.join('\n');
}
