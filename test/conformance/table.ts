/**
 * The suite's table, "what each program reads and what it reports under isolfs": one row per
 * probe and container, what it reported with the files bound (-v) and attached (--attach), what
 * the limits call for, and the verdict. Written to results.md beside this file and printed.
 */
import type { Limits, Probe } from './probes';

export type Mode = 'bind' | 'attach';
export type Verdict = 'pass' | 'FAIL' | 'limit' | 'gap' | 'bind gap';

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
  if (o.reported === null) return 'FAIL';
  const ok = probe.ok ? probe.ok(o.reported, o.limits) : o.reported === probe.expected(o.limits);
  return ok ? 'pass' : 'FAIL';
}

function cell(o: Observation | undefined): string {
  if (!o) return '(not run)';
  if (o.error !== undefined) return `error: ${o.error.split('\n')[0].slice(0, 80)}`;
  const value = o.reported ?? '(nothing)';
  return o.mode === 'bind' && o.probe.bindGap !== undefined ? `${value} (${o.probe.bindGap})` : value;
}

function resultCell(bind: Observation | undefined, attach: Observation | undefined): string {
  const verdicts = [bind, attach].filter((o) => o !== undefined).map(verdictOf);
  const probe = (bind ?? attach)?.probe;
  if (probe?.kind === 'limit') return `limit: ${probe.note ?? 'not a file'}`;
  if (probe?.kind === 'gap') return `gap: ${probe.note ?? 'not served'}`;
  if (verdicts.includes('FAIL')) return `**FAIL** (bind ${bind ? verdictOf(bind) : '-'}, attach ${attach ? verdictOf(attach) : '-'})`;
  if (verdicts.includes('bind gap')) return 'pass attached; cannot be bound';
  return 'pass';
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
    '| program | reads | bound at creation (`-v`) | attached (`--attach`) | expected | result |',
    '|---|---|---|---|---|---|',
  ];
  for (const probe of probes) {
    const bind = section.observations.find((o) => o.probe === probe && o.mode === 'bind');
    const attach = section.observations.find((o) => o.probe === probe && o.mode === 'attach');
    const limits = (bind ?? attach)?.limits;
    const expected = limits ? probe.expected(limits) : '';
    lines.push(`| ${probe.program} | ${probe.reads} | ${cell(bind)} | ${cell(attach)} | ${expected} | ${resultCell(bind, attach)} |`);
  }
  return lines.join('\n');
}
