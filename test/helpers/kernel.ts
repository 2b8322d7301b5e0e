/**
 * What the running kernel does with splice/sendfile on a direct-I/O FUSE file. Before 6.5 it
 * went through generic_file_splice_read -> read_iter, i.e. our READ on the reader's own handle
 * (busybox cat gets the reader's own bytes); since 6.5 filemap_splice_read reads the page cache,
 * up to i_size, which is 0 for shared files (an empty file). Both are isolated; tests expect the
 * one this kernel gives (6.1 in the VM, 6.18 on the project's machines).
 */
import os from 'node:os';

export function kernelAtLeast(major: number, minor: number): boolean {
  const [maj, min] = os.release().split('.').map((part) => Number.parseInt(part, 10));
  return maj > major || (maj === major && min >= minor);
}

/** true: splice/sendfile of a shared (size 0) file read as empty; false: the reader's own bytes. */
export const SPLICE_VIA_PAGE_CACHE = kernelAtLeast(6, 5);
