// The host's /proc/swaps: a header, then "path type size used priority" per device. The kernel
// escapes whitespace in the path as \ooo, so each line splits on runs of whitespace.
import { CgroupParseError } from '../cgroup/snapshot';
import { readBoundedText } from './boundedRead';
import type { HostSwaps, SwapDevice } from './snapshot';
import { shown } from '../cgroup/parse';

// Sizes are u64 (at most 20 digits), the priority an int (at most 10 digits and a sign).
const UNSIGNED_DECIMAL = /^\d{1,20}$/;
const SIGNED_DECIMAL = /^-?\d{1,10}$/;

/** `procDir` only names the file in errors. */
export function parseSwaps(text: string, procDir = '/proc'): HostSwaps {
  const fail = (reason: string) => new CgroupParseError(procDir, 'swaps', reason);
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const [header, ...deviceLines] = lines;
  if (header === undefined || !header.startsWith('Filename')) {
    throw fail(`no "Filename" header: ${shown(text)}`);
  }
  const devices = deviceLines.map((line, i): SwapDevice => {
    const fields = line.trim().split(/\s+/);
    const [filename, type, size, used, priority] = fields;
    if (
      fields.length !== 5 ||
      !UNSIGNED_DECIMAL.test(size) ||
      !UNSIGNED_DECIMAL.test(used) ||
      !SIGNED_DECIMAL.test(priority)
    ) {
      // Line 1 is the header.
      throw fail(`line ${i + 2} is not "path type size used priority": ${shown(line)}`);
    }
    return { filename, type, sizeKb: BigInt(size), usedKb: BigInt(used), priority: Number(priority) };
  });
  return { header, devices };
}

export function readHostSwaps(procDir = '/proc'): HostSwaps {
  return parseSwaps(readBoundedText(procDir, 'swaps'), procDir);
}
