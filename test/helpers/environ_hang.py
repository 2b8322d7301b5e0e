#!/usr/bin/env python3
"""A container's first process that makes reads of its own /proc/<pid>/environ (and of anything
else of its memory) block, from outside, for as long as it likes.

How (kernel 4.18+ refuses the direct ways: environ is read only from anonymous memory, FOLL_ANON;
a userfaultfd range answers a remote read at once with an error, no FAULT_FLAG_ALLOW_RETRY):
 1. It mounts a FUSE filesystem of its own (in a private mount namespace) and forks its server,
    which answers INIT/LOOKUP/GETATTR/OPEN and never answers READ.
 2. It maps a file of that mount and reads the mapping through /proc/self/mem in thread A. That
    read faults the page in while holding the process's mmap lock for reading, without the right
    to drop it, so it now holds the lock until the server answers: never.
 3. The main thread (B) calls mmap(2): it waits for the lock as a writer. From then on every
    new reader of the lock queues behind that writer: a read of /proc/<pid>/environ by anyone
    (mmap_read_lock in access_remote_vm) waits with them.
Killing the server (the forked child) fails the READ and frees everything.

Prints "held <pid> <server pid>" once B waits (the server watches for it), "not held" if B does
not within 10 s. Usage: environ_hang.py <empty directory for the mount>
"""
import ctypes
import os
import platform
import signal
import struct
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.unshare.argtypes = [ctypes.c_int]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]

CLONE_NEWNS = 0x20000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV = 0x4000, 0x40000, 0x2, 0x4
PR_SET_PDEATHSIG = 1
PROT_READ, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 1, 1, 2, 0x20
FILE_SIZE = 1 << 20
ROOT, FILE_NODE = 1, 2
LOOKUP, FORGET, GETATTR, OPEN, READ, INIT, BATCH_FORGET = 1, 2, 3, 14, 15, 26, 42
ENOENT, ENOSYS = 2, 38
# mmap(2) and pread64(2): x86_64's numbers, or arm64's (the generic table)
MMAP, PREAD64 = (222, 67) if platform.machine() in ('aarch64', 'arm64') else (9, 17)


def check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f'{what}: {os.strerror(err)}')


def attr(node):
    mode, size, nlink = (0o40755, 0, 2) if node == ROOT else (0o100444, FILE_SIZE, 1)
    # struct fuse_attr: ino size blocks atime mtime ctime, 3 nsec, mode nlink uid gid rdev blksize flags
    return struct.pack('<QQQQQQIIIIIIIIII', node, size, (size + 511) // 512, 0, 0, 0, 0, 0, 0, mode, nlink, 0, 0, 0, 4096, 0)


def serve(fd):
    """The FUSE server: everything a mapping needs, and no answer to READ."""
    while True:
        try:
            request = os.read(fd, 1 << 20 | 4096)
        except OSError:
            return  # the connection is gone
        _, opcode, unique, node = struct.unpack_from('<IIQQ', request)
        body = request[40:]
        if opcode in (FORGET, BATCH_FORGET, READ):
            continue  # FORGETs take no answer; READ never gets one
        error, out = 0, b''
        if opcode == INIT:
            major, minor = struct.unpack_from('<II', body)
            # struct fuse_init_out (64 bytes): major minor max_readahead flags, max_background
            # congestion_threshold, max_write time_gran, max_pages ..., the rest zero
            out = struct.pack('<IIIIHHII', 7, min(minor, 31), 0, 0, 16, 12, 1 << 17, 1) + bytes(32)
        elif opcode == LOOKUP and node == ROOT and body.rstrip(b'\0') == b'pages':
            out = struct.pack('<QQQQII', FILE_NODE, 0, 3600, 3600, 0, 0) + attr(FILE_NODE)
        elif opcode == GETATTR and node in (ROOT, FILE_NODE):
            out = struct.pack('<QII', 3600, 0, 0) + attr(node)
        elif opcode == OPEN:
            out = struct.pack('<QIi', 0, 0, 0)
        elif opcode == LOOKUP:
            error = -ENOENT
        else:
            error = -ENOSYS
        os.write(fd, struct.pack('<IiQ', 16 + len(out), error, unique) + out)


def in_syscall(task, number, state=None):
    """Whether `task` (a /proc/<pid>/task/<tid> path) is in system call `number` (and in `state`)."""
    try:
        with open(f'{task}/syscall') as f:
            current = f.read().split()
        with open(f'{task}/stat') as f:
            now = f.read().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return bool(current) and current[0] == str(number) and (state is None or now == state)


def announce(pid):
    """From the server (its memory is its own): "held" once the first process's main thread (B)
    waits in mmap(2) for the lock (state D, twice 0.1 s apart), or "not held" after 10 s."""
    seen = 0
    for _ in range(100):
        seen = seen + 1 if in_syscall(f'/proc/{pid}/task/{pid}', MMAP, 'D') else 0
        if seen == 2:
            os.write(1, f'held {pid} {os.getpid()}\n'.encode())
            return
        time.sleep(0.1)
    os.write(1, b'not held\n')


def hold(mem, address, tid):
    """Thread A: the read that faults the FUSE page in, with the mmap lock held, until the server dies."""
    tid.append(threading.get_native_id())
    try:
        os.pread(mem, 16, address)
    except OSError:
        pass  # the server died: the READ failed, and the test is over


def main():
    mnt = sys.argv[1]
    check(libc.unshare(CLONE_NEWNS), 'unshare')
    check(libc.mount(b'none', b'/', None, MS_REC | MS_PRIVATE, None), 'make / private')
    fuse_fd = os.open('/dev/fuse', os.O_RDWR)
    opts = f'fd={fuse_fd},rootmode=40000,user_id=0,group_id=0'.encode()
    check(libc.mount(b'environ-hang', mnt.encode(), b'fuse', MS_NOSUID | MS_NODEV, opts), 'mount fuse')
    server = os.fork()
    if server == 0:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        threading.Thread(target=announce, args=(os.getppid(),), daemon=True).start()
        serve(fuse_fd)
        os._exit(0)
    # Only the server holds the connection: its death fails the READ and frees this process.
    os.close(fuse_fd)
    file_fd = os.open(os.path.join(mnt, 'pages'), os.O_RDONLY)
    address = libc.mmap(None, 4096, PROT_READ, MAP_SHARED, file_fd, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), 'mmap of the FUSE file')
    mem = os.open('/proc/self/mem', os.O_RDONLY)
    tid = []
    threading.Thread(target=hold, args=(mem, address, tid), daemon=True).start()
    while not (tid and in_syscall(f'/proc/self/task/{tid[0]}', PREAD64)):
        time.sleep(0.01)
    time.sleep(0.1)  # A is in the fault (its READ sent), holding the lock
    # This thread becomes the waiting writer (B); it never returns.
    libc.mmap(None, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    while True:  # the kernel did not block: the test's own check of the hang says so
        time.sleep(3600)


main()
