/**
 * PSI trigger writes, as the kernel reads them (kernel/sched/psi.c, psi_write and
 * psi_trigger_create, kernel >= 6.5). Pure: no I/O.
 */

/** psi_write copies at most this many bytes, and its last copied byte becomes the terminator. */
const PROC_WRITE_BUFFER_BYTES = 32;
/** Unprivileged triggers (no CAP_SYS_RESOURCE) must use windows of a multiple of 2 s. */
const UNPRIVILEGED_WINDOW_MULTIPLE_US = 2_000_000;
/** CAP_SYS_RESOURCE's bit in a capability set. */
export const CAP_SYS_RESOURCE_BIT = 24n;

/**
 * The string /proc/pressure/*'s write hands the kernel's parser for `data`: the first 32 bytes
 * with the last one cut off (psi_write: `buf[buf_size - 1] = '\0'`). A cgroup's pressure file
 * parses all it is given, so this is what we write there to get the /proc file's answer.
 * null: an empty write (EINVAL there).
 */
export function procTriggerPayload(data: Buffer): Buffer | null {
  if (data.length === 0) return null;
  return data.subarray(0, Math.min(data.length, PROC_WRITE_BUFFER_BYTES) - 1);
}

export interface TriggerSpec {
  full: boolean;
  thresholdUs: number;
  windowUs: number;
}

/** sscanf(buf, "some %u %u") / "full %u %u" as the kernel does it; null when it would not match. */
export function parseTrigger(payload: string): TriggerSpec | null {
  // sscanf: the literal word, then whitespace-skipping %u conversions; trailing text ignored.
  const m = /^(some|full)\s+(\d+)\s+(\d+)/.exec(payload);
  if (!m) return null;
  const thresholdUs = Number(m[2]);
  const windowUs = Number(m[3]);
  if (thresholdUs > 0xffffffff || windowUs > 0xffffffff) return null; // %u overflow: let the kernel judge
  return { full: m[1] === 'full', thresholdUs, windowUs };
}

/**
 * The one check the kernel makes on the opener's capabilities, which our own (root) write would
 * pass: without CAP_SYS_RESOURCE a window must be a multiple of 2 s. Anything else malformed is
 * left to the kernel's write, whose errno goes back as it is.
 */
export function unprivilegedWindowRefused(payload: string, privileged: boolean): boolean {
  if (privileged) return false;
  const spec = parseTrigger(payload);
  return spec !== null && spec.windowUs % UNPRIVILEGED_WINDOW_MULTIPLE_US !== 0;
}

/** Whether a /proc/<pid>/status text shows CAP_SYS_RESOURCE in CapEff. */
export function hasSysResource(status: string): boolean {
  const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(status);
  if (!m) return false;
  return ((BigInt(`0x${m[1]}`) >> CAP_SYS_RESOURCE_BIT) & 1n) === 1n;
}
