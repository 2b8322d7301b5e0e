/**
 * `isolfs sysctl`: the switches with the spelling and output of sysctl(8), through the mount's
 * control files (so the same permission checks apply as for any other writer).
 *   isolfs sysctl kernel.stats_isolated          -> "kernel.stats_isolated = 1"
 *   isolfs sysctl -w kernel.stats_isolated=0     -> "kernel.stats_isolated = 0"
 *   isolfs sysctl -a                             -> both keys
 */
import fs from 'node:fs';
import path from 'node:path';

export const SYSCTL_KEYS = ['kernel.stats_isolated', 'kernel.container_stats_isolated'] as const;
const DEFAULT_MOUNT = process.env.ISOLFS_MOUNT ?? '/var/lib/isolfs/mnt';

function controlFile(mount: string, key: string): string {
  return path.join(mount, 'proc', 'sys', ...key.split('.'));
}

function describe(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EPERM' || code === 'EACCES') return 'permission denied on key';
  if (code === 'EINVAL') return 'setting key';
  if (code === 'ENOENT') return 'cannot stat';
  return String((err as Error).message);
}

interface SysctlArgs {
  mount: string;
  write: boolean;
  items: string[];
}

function parseSysctlArgs(args: string[]): SysctlArgs {
  const parsed: SysctlArgs = { mount: DEFAULT_MOUNT, write: false, items: [] };
  let all = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--mount') parsed.mount = args[++i] ?? parsed.mount;
    else if (arg === '-w') parsed.write = true;
    else if (arg === '-a' || arg === '-A') all = true;
    else parsed.items.push(arg);
  }
  if (all) parsed.items.push(...SYSCTL_KEYS);
  return parsed;
}

export function runSysctl(args: string[]): number {
  const { mount, write, items } = parseSysctlArgs(args);
  if (items.length === 0) {
    process.stderr.write('usage: isolfs sysctl [--mount DIR] [-a | KEY | -w KEY=VALUE ...]\n');
    return 2;
  }
  let status = 0;
  for (const item of items) {
    if (!runSysctlItem(mount, write, item)) status = 255;
  }
  return status;
}

/** Reads (and with -w or KEY=VALUE, first writes) one key; false when sysctl(8) would fail. */
function runSysctlItem(mount: string, write: boolean, item: string): boolean {
  const eq = item.indexOf('=');
  const key = eq >= 0 ? item.slice(0, eq) : item;
  if (!(SYSCTL_KEYS as readonly string[]).includes(key)) {
    process.stderr.write(`sysctl: cannot stat /proc/sys/${key.replace(/\./g, '/')}: No such file or directory\n`);
    return false;
  }
  const file = controlFile(mount, key);
  try {
    if (write || eq >= 0) {
      if (eq < 0) throw Object.assign(new Error(`"${key}" must be of the form name=value`), { code: 'EINVAL' });
      fs.writeFileSync(file, `${item.slice(eq + 1)}\n`);
    }
    const value = fs.readFileSync(file, 'utf8').trim();
    process.stdout.write(`${key} = ${value}\n`);
    return true;
  } catch (err) {
    process.stderr.write(`sysctl: ${describe(err)} "${key}"\n`);
    return false;
  }
}
