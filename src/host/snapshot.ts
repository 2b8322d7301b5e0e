/**
 * The host's own /proc files, parsed just enough to be rewritten by the views.
 * Order matters: views emit every key of the host file in the host's order and format.
 */

/** One line of /proc/meminfo: "MemTotal:       24683656 kB". */
export interface MeminfoLine {
  key: string;
  /** The number as printed (kB for most lines; a count for HugePages_*). */
  value: bigint;
  /** "kB" or "" (HugePages_Total etc. have no unit). */
  unit: string;
}

export interface HostMeminfo {
  lines: MeminfoLine[];
  /** Lookup by key, in kB (or count). */
  get: (key: string) => bigint | undefined;
}

/** One processor block of /proc/cpuinfo, fields in order ("processor", "vendor_id", ...). */
export interface CpuinfoBlock {
  /**
   * The host CPU id ("processor" field); null for a block of machine-wide lines that is not a
   * CPU (ppc64's and arm's trailing "timebase"/"Hardware" summary, old arm's "Processor" header).
   */
  cpuId: number | null;
  /**
   * Fields in the host's order. `separator` is the exact text between name and value
   * ("\t: ", "\t\t: ", ":" for x86's empty "power management:"), so a line re-emits
   * byte-identical as name + separator + value; absent = "\t: ".
   */
  fields: [name: string, value: string, separator?: string][];
  /** Whether a blank line follows the block (every CPU block on x86, arm64, ppc64); absent = true. */
  blankLineAfter?: boolean;
}

/** One cpuN (or aggregate cpu) line of /proc/stat, in USER_HZ ticks. */
export interface StatCpuTicks {
  user: bigint;
  nice: bigint;
  system: bigint;
  idle: bigint;
  iowait: bigint;
  irq: bigint;
  softirq: bigint;
  steal: bigint;
  guest: bigint;
  guestNice: bigint;
}

export interface HostStat {
  total: StatCpuTicks;
  /** Per host CPU id (sparse when CPUs are offline). */
  perCpu: Map<number, StatCpuTicks>;
  /** Every other line verbatim, keyed by its first word, in order (intr, ctxt, btime, ...). */
  otherLines: [key: string, rest: string][];
  /** How many tick columns the host prints per cpu line (10 since Linux 2.6.33); absent = 10. */
  cpuFieldCount?: number;
}

export interface HostLoadavg {
  load1: string;
  load5: string;
  load15: string;
  running: number;
  total: number;
  lastPid: number;
}

/**
 * /proc/vmstat: "key value" lines. Every value is a counter or a gauge printed as an unsigned
 * decimal; the order is the kernel's (views re-emit every key in this order).
 */
export interface HostVmstat {
  entries: [key: string, value: bigint][];
  get: (key: string) => bigint | undefined;
}

/** /proc/uptime: seconds since boot and idle seconds summed over all CPUs (2 decimals). */
export interface HostUptime {
  uptimeSec: number;
  idleSec: number;
}

/** One device line of /proc/swaps. */
export interface SwapDevice {
  /** The path as the kernel prints it (space, tab, newline and backslash escaped as \ooo). */
  filename: string;
  /** "partition" or "file" (newer kernels may add types; kept as printed). */
  type: string;
  sizeKb: bigint;
  usedKb: bigint;
  priority: number;
}

export interface HostSwaps {
  /** The header line verbatim, without its newline. */
  header: string;
  devices: SwapDevice[];
}
