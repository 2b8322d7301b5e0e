/**
 * Parse the host's /proc/swaps. The kernel (mm/swapfile.c, swap_show) prints a fixed header and
 * one line per active device:
 *   path, padded with spaces to column 40 (at least one space), type ("partition" or "file\t"),
 *   "\t" size kB "\t" ["\t" if size < 10000000] used kB "\t" ["\t" if used < 10000000] priority
 * The path has space, tab, newline and backslash escaped as \ooo, so it is one whitespace-free
 * token and the line splits on runs of whitespace.
 */
import { readFileSync } from 'node:fs';
import { CgroupParseError } from '../cgroup/snapshot';
import type { HostSwaps, SwapDevice } from './snapshot';

const UNSIGNED_DECIMAL = /^\d+$/;
const SIGNED_DECIMAL = /^-?\d+$/;

/** `procDir` only names the file in errors. */
export function parseSwaps(text: string, procDir = '/proc'): HostSwaps {
  const fail = (reason: string) => new CgroupParseError(procDir, 'swaps', reason);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const header = lines[0];
  if (header === undefined || !header.startsWith('Filename')) {
    throw fail(`no "Filename" header: ${JSON.stringify(text.slice(0, 80))}`);
  }
  const devices: SwapDevice[] = [];
  for (let i = 1; i < lines.length; i++) {
    const fields = lines[i]!.trim().split(/\s+/);
    const [filename, type, size, used, priority] = fields;
    if (
      fields.length !== 5 ||
      !UNSIGNED_DECIMAL.test(size!) ||
      !UNSIGNED_DECIMAL.test(used!) ||
      !SIGNED_DECIMAL.test(priority!)
    ) {
      const shown = JSON.stringify(lines[i]);
      throw fail(`line ${i + 1} is not "path type size used priority": ${shown}`);
    }
    devices.push({
      filename: filename!,
      type: type!,
      sizeKb: BigInt(size!),
      usedKb: BigInt(used!),
      priority: Number(priority),
    });
  }
  return { header, devices };
}

/** Read and parse /proc/swaps (synchronously: procfs never blocks on disk). */
export function readHostSwaps(procDir = '/proc'): HostSwaps {
  return parseSwaps(readFileSync(`${procDir}/swaps`, 'utf8'), procDir);
}
