#!/usr/bin/env python3
"""One hostile reader of isolfs files, for test/stress/hostile.test.ts.

Joins the given cgroups (as root), drops to --uid, then loops one kind of read over the given
files until --seconds have passed, classifying every result:
  ok     the content parses and shows the reader's own view (MemTotal, CPU count)
  empty  no bytes (what sendfile/splice/mmap get from a shared, uncached file: documented)
  cross  parses but shows another view (another cgroup's MemTotal or CPU count)
  torn   does not parse (a mix of two renders, a cut line, trailing zeros)
  errors errno name -> count
The loop runs in a forked child so that a SIGBUS from a mapping that shrank is counted, not
fatal. Prints one JSON line at the end (mode "probe" prints one line per probe instead).
"""
import argparse
import ctypes
import errno
import json
import mmap
import os
import re
import select
import signal
import sys
import time

LINE = {
    'meminfo': re.compile(rb'^[A-Za-z0-9_()]+:\s+\d+( kB)?$'),
    'vmstat': re.compile(rb'^[a-z0-9_]+ -?\d+$'),
    'stat': re.compile(rb'^(cpu\d* +\d+( \d+)*|intr( \d+)+|softirq( \d+)+|ctxt \d+|btime \d+|processes \d+|procs_running \d+|procs_blocked \d+)$'),
    'cpuinfo': re.compile(rb'^([^\t:\n]+\t*: ?.*|)$'),
    'loadavg': re.compile(rb'^\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+$'),
}
FIRST = {'meminfo': b'MemTotal:', 'vmstat': b'nr_free_pages ', 'stat': b'cpu ', 'cpuinfo': b'processor', 'loadavg': b''}
ODD_OFFSETS = (0, 1, 4095, 4096, 1 << 62)
CHUNK_BYTES = 65536
PAGE_BYTES = mmap.PAGESIZE
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
LIBC.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
LIBC.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
LIBC.write.restype = ctypes.c_ssize_t
LIBC.write.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
# errno a mode may legitimately get: O_DIRECT alignment rules, offsets past what the fs allows.
ALLOWED_ERRNOS = {'odirect': {'EINVAL'}, 'pread': {'EINVAL', 'EOVERFLOW'}}


def kind_of(path):
    return os.path.basename(path)


def classify(kind, data, expect):
    """ok / empty / cross / torn for the full content of one file."""
    if not data:
        return 'empty'
    if not data.startswith(FIRST[kind]) or not data.endswith(b'\n'):
        return 'torn'
    lines = data[:-1].split(b'\n')
    if not all(LINE[kind].match(line) for line in lines):
        return 'torn'
    if kind == 'meminfo' and 'memTotalKb' in expect:
        m = re.match(rb'MemTotal:\s+(\d+) kB', data)
        return 'ok' if m and int(m.group(1)) == expect['memTotalKb'] else 'cross'
    if kind in ('cpuinfo', 'stat') and 'cpus' in expect:
        pattern = rb'^processor\s' if kind == 'cpuinfo' else rb'^cpu\d+ '
        count = len(re.findall(pattern, data, re.M))
        return 'ok' if count == expect['cpus'] else 'cross'
    return 'ok'


def sample(kind, path, data):
    """What a report needs to see of a bad result: its size, its first bad line, its end."""
    lines = data.split(b'\n')
    bad = next((l for l in lines[:-1] if not LINE[kind].match(l)), None)
    text = lambda b: b.decode('utf8', 'replace')
    return {'file': path, 'bytes': len(data), 'head': text(data[:80]), 'firstBadLine': text(bad[:160]) if bad is not None else None,
            'tail': text(data[-80:])}


def read_all(fd, chunk):
    parts = []
    while True:
        b = os.read(fd, chunk)
        if not b:
            return b''.join(parts)
        parts.append(b)


def pipe_drain(r, n):
    got = []
    while n > 0:
        b = os.read(r, n)
        got.append(b)
        n -= len(b)
    return b''.join(got)


def op_read(path, state):
    fd = os.open(path, os.O_RDONLY)
    try:
        # Small chunks every other time: one file in several READs must still be one render.
        state['i'] += 1
        return [read_all(fd, 1024 if state['i'] % 2 else CHUNK_BYTES)]
    finally:
        os.close(fd)


def op_reread(path, state):
    """lseek(0) + read on a handle kept open for 200 rounds."""
    held = state.get('held')
    if held is None or held[0] != path or held[2] >= 200:
        if held is not None:
            os.close(held[1])
        held = [path, os.open(path, os.O_RDONLY), 0]
        state['held'] = held
    held[2] += 1
    os.lseek(held[1], 0, os.SEEK_SET)
    return [read_all(held[1], CHUNK_BYTES)]


def op_pread(path, state):
    """pread at odd offsets; only offset 0 is a whole file, the rest are checked for errors."""
    fd = os.open(path, os.O_RDONLY)
    try:
        whole = os.pread(fd, CHUNK_BYTES, 0)
        for off in ODD_OFFSETS[1:]:
            part = os.pread(fd, CHUNK_BYTES, off)
            if off == 1 and whole and part and not whole.startswith(part[:8], 1):
                state['oddMismatch'] = state.get('oddMismatch', 0) + 1
        return [whole]
    finally:
        os.close(fd)


def op_mmap(path, state):
    """MAP_PRIVATE at least one page whatever st_size says, then madvise(DONTNEED) + touch the
    pages again, 20 times per open: every other time from user space (within st_size), else by
    write(2)ing them into a pipe: the same page faults, but a page past the inode's size is
    EFAULT (counted empty), not SIGBUS."""
    if 'pipe' not in state:
        state['pipe'] = os.pipe()
    r, w = state['pipe']
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        length = max(PAGE_BYTES, -(-size // PAGE_BYTES) * PAGE_BYTES)
        addr = LIBC.mmap(None, length, mmap.PROT_READ, mmap.MAP_PRIVATE, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), 'mmap')
        try:
            results = []
            for i in range(20):
                LIBC.madvise(addr, length, mmap.MADV_DONTNEED)
                if size > 0 and i % 2:
                    # A plain touch from user space, within st_size (a shrink since is a SIGBUS).
                    results.append(ctypes.string_at(addr, size).split(b'\0', 1)[0])
                    continue
                n = LIBC.write(w, addr, length)
                if n < 0 and ctypes.get_errno() != errno.EFAULT:
                    raise OSError(ctypes.get_errno(), 'write from the mapping')
                state['faults'] = state.get('faults', 0) + (n < 0)
                data = pipe_drain(r, n) if n > 0 else b''
                results.append(data.split(b'\0', 1)[0])
            return results
        finally:
            LIBC.munmap(addr, length)
    finally:
        os.close(fd)


def op_sendfile(path, state):
    return [_pipe_copy(path, state, lambda fd, w: os.sendfile(w, fd, None, CHUNK_BYTES))]


def op_splice(path, state):
    return [_pipe_copy(path, state, lambda fd, w: os.splice(fd, w, CHUNK_BYTES))]


def _pipe_copy(path, state, move):
    if 'pipe' not in state:
        state['pipe'] = os.pipe()
    r, w = state['pipe']
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while True:
            n = move(fd, w)
            if n == 0:
                return b''.join(parts)
            parts.append(pipe_drain(r, n))
    finally:
        os.close(fd)


def op_odirect(path, state):
    if 'abuf' not in state:
        state['abuf'] = mmap.mmap(-1, CHUNK_BYTES)  # page-aligned, as O_DIRECT wants
    buf = state['abuf']
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        parts = []
        while True:
            n = os.readv(fd, [buf])
            if n == 0:
                break
            parts.append(bytes(buf[:n]))
        return [b''.join(parts)]
    finally:
        os.close(fd)


OPS = {'read': op_read, 'reread': op_reread, 'pread': op_pread, 'mmap': op_mmap,
       'sendfile': op_sendfile, 'splice': op_splice, 'odirect': op_odirect}


def new_counts():
    return {'ops': 0, 'ok': 0, 'empty': 0, 'cross': 0, 'torn': 0, 'errors': {}, 'slowOps': 0,
            'maxMs': 0.0, 'samples': {}}


def loop(args, expect, end, report):
    """The child: runs the mode until `end`, sending cumulative counts through report()."""
    op = OPS[args.mode]
    counts = new_counts()
    state = {'i': 0}
    last_report = time.monotonic()
    i = 0
    while time.monotonic() < end:
        path = args.file[i % len(args.file)]
        i += 1
        t0 = time.monotonic()
        try:
            results = op(path, state)
        except OSError as e:
            name = errno.errorcode.get(e.errno, str(e.errno))
            counts['errors'][name] = counts['errors'].get(name, 0) + 1
            results = []
            state.pop('held', None)
        ms = (time.monotonic() - t0) * 1000
        counts['ops'] += 1
        counts['maxMs'] = max(counts['maxMs'], round(ms, 1))
        if ms > 2000:
            counts['slowOps'] += 1
        for data in results:
            outcome = classify(kind_of(path), data, expect)
            counts[outcome] += 1
            if outcome in ('cross', 'torn') and outcome not in counts['samples']:
                counts['samples'][outcome] = sample(kind_of(path), path, data)
        counts['oddMismatch'] = state.get('oddMismatch', 0)
        counts['efault'] = state.get('faults', 0)
        if time.monotonic() - last_report > 0.5:
            report(counts)
            last_report = time.monotonic()
    report(counts)


def merge(total, part):
    for k in ('ops', 'ok', 'empty', 'cross', 'torn', 'slowOps', 'oddMismatch', 'efault'):
        total[k] = total.get(k, 0) + part.get(k, 0)
    total['maxMs'] = max(total['maxMs'], part['maxMs'])
    for name, n in part['errors'].items():
        total['errors'][name] = total['errors'].get(name, 0) + n
    for k, v in part['samples'].items():
        total['samples'].setdefault(k, v)


class Interrupted(Exception):
    pass


def on_sigterm(signum, frame):
    raise Interrupted()


def run_guarded(args, expect):
    """Forks the loop, restarting it after a SIGBUS; gives up on a child stuck past the end.
    SIGTERM (the test is giving up) prints what was counted so far."""
    end = time.monotonic() + args.seconds
    total = new_counts()
    total.update({'sigbus': 0, 'stuck': False, 'crashes': {}, 'interrupted': False})
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        run_children(args, expect, end, total)
    except Interrupted:
        total['interrupted'] = True
        merge(total, total.pop('_last', None) or new_counts())
    total.pop('_last', None)
    total['allowedErrors'] = sorted(ALLOWED_ERRNOS.get(args.mode, ()))
    return total


def run_children(args, expect, end, total):
    while time.monotonic() < end:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(r)
            out = os.fdopen(w, 'w')

            def report(c):
                out.write(json.dumps(c) + '\n')
                out.flush()
            try:
                loop(args, expect, end, report)
            except BaseException as e:  # a bug here, not in isolfs: say so and stop
                out.write(json.dumps({'crash': repr(e)}) + '\n')
                out.flush()
                os._exit(3)
            os._exit(0)
        os.close(w)
        last, buf = None, b''
        with os.fdopen(r, 'rb') as inp:
            while True:
                ready, _, _ = select.select([inp], [], [], 1.0)
                if ready:
                    chunk = os.read(inp.fileno(), 65536)
                    if not chunk:
                        break
                    buf += chunk
                    *lines, buf = buf.split(b'\n')
                    for line in lines:
                        msg = json.loads(line)
                        if 'crash' in msg:
                            total['crashes']['exception'] = msg['crash']
                        else:
                            last = msg
                            total['_last'] = msg
                elif time.monotonic() > end + args.grace:
                    # Blocked in a request past the end: say so; the test aborts the mount.
                    total['stuck'] = True
                    os.kill(pid, signal.SIGKILL)
                    break
        total.pop('_last', None)
        if last:
            merge(total, last)
        if total['stuck']:
            break
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            sig = signal.Signals(os.WTERMSIG(status)).name
            if sig == 'SIGBUS':
                total['sigbus'] += 1  # one op that got no bytes: counted as such
                total['ops'] += 1
            else:
                total['crashes'][sig] = total['crashes'].get(sig, 0) + 1
                break
        elif os.WEXITSTATUS(status) != 0:
            total['crashes'].setdefault('exit', os.WEXITSTATUS(status))
            break


def probe(args, expect):
    """Reads the file once a second and prints how long it took, until killed."""
    while True:
        t0 = time.monotonic()
        try:
            data = op_read(args.file[0], {'i': 1})[0]
            outcome = classify(kind_of(args.file[0]), data, expect)
        except OSError as e:
            outcome = errno.errorcode.get(e.errno, str(e.errno))
        ms = (time.monotonic() - t0) * 1000
        print(json.dumps({'ms': round(ms, 1), 'outcome': outcome}), flush=True)
        time.sleep(max(0.0, 1.0 - ms / 1000))


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--mode', required=True, choices=sorted(OPS) + ['probe'])
    p.add_argument('--file', action='append', required=True)
    p.add_argument('--seconds', type=float, default=60)
    p.add_argument('--grace', type=float, default=5, help='seconds past the end a request may still take')
    p.add_argument('--uid', type=int, default=0)
    p.add_argument('--cgroup-procs', action='append', default=[])
    p.add_argument('--expect', default='{}', help='JSON: {"memTotalKb": N, "cpus": N}')
    p.add_argument('--label', default='')
    p.add_argument('--go-file', help='start once this file exists (all readers at once)')
    args = p.parse_args()
    for f in args.cgroup_procs:
        with open(f, 'w') as out:
            out.write(str(os.getpid()))
    if args.uid != 0:
        os.setgroups([])
        os.setgid(args.uid)
        os.setuid(args.uid)
    expect = json.loads(args.expect)
    while args.go_file and not os.path.exists(args.go_file):
        time.sleep(0.05)
    if args.mode == 'probe':
        probe(args, expect)
        return
    result = run_guarded(args, expect)
    result.update({'label': args.label, 'mode': args.mode, 'uid': args.uid})
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
