/**
 * Parsing of what is written to a control file. The kernel's sysctl handlers accept "0"/"1"
 * with optional trailing newline; so do we, and everything else is EINVAL with no change.
 */

/** Longest accepted write: "1\n". Anything longer is refused before it is even decoded. */
const MAX_CONTROL_WRITE_BYTES = 2;

export function parseSwitchWrite(data: Buffer, offset: number): boolean | null {
  if (offset !== 0) return null;
  if (data.length === 0 || data.length > MAX_CONTROL_WRITE_BYTES) return null;
  const text = data.toString('latin1');
  if (text === '0' || text === '0\n') return false;
  if (text === '1' || text === '1\n') return true;
  return null;
}
