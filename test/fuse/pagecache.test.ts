/**
 * Page-cache sessions (mount's `pageCache`): OPEN is answered ENOSYS natively, READs natively
 * from each inode's content (setInodeContent), and the kernel keeps an inode's pages until a
 * GETATTR or LOOKUP answer shows a new mtime or size (FUSE_CAP_AUTO_INVAL_DATA). On a real mount
 * driven by a minimal handler instead of IsolfsFilesystem, for both loops; the readers are a
 * small C program (compiled once into a temp dir) run as children, as the main thread serves.
 * Needs root, /dev/fuse and gcc.
 */
import { type ChildProcessWithoutNullStreams, execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FuseRequest, loadNative, type LoopMode, type NativeAddon, type NativeSession } from '../../src/fuse/native';

const CAN_MOUNT = process.getuid?.() === 0 && fs.existsSync('/dev/fuse');
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const PAGE = 4096;
const NSEC_PER_SEC = 1_000_000_000;

/**
 * The reader, one mode per use:
 *   read FILE              the file's bytes (read(2)s of 64 KiB to EOF) on stdout
 *   hold FILE              one fd; per line on stdin, lseek(0) and the whole file, as one line
 *   fadvise FILE OFF LEN   posix_fadvise(POSIX_FADV_DONTNEED): the page cache drops those pages
 *   resident FILE PAGES    per page, 1 if the page cache holds it (cachestat(2)), e.g. "101"
 *   hammer FILE MS LENA LENB
 *                          open + one read(2) of 64 KiB + close, for MS ms; a JSON line: how many
 *                          reads were LENA bytes of 'A', LENB bytes of 'B', and every other
 *                          result in run-length form ("A4096B7904": a page of A, then B; NULs
 *                          as '_')
 */
const READER_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
static char buf[BUF_SIZE];
static char all[1 << 20];

static void die(const char *what) {
  fprintf(stderr, "pcread: %s: %s\n", what, strerror(errno));
  exit(2);
}

static size_t read_all(int fd) {
  size_t got = 0;
  for (;;) {
    size_t want = sizeof(all) - got < BUF_SIZE ? sizeof(all) - got : BUF_SIZE;
    ssize_t n = read(fd, all + got, want);
    if (n < 0) die("read");
    got += (size_t)n;
    if (n == 0 || got == sizeof(all)) return got;
  }
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void rle(const char *p, size_t n, char *out, size_t cap) {
  size_t o = 0;
  out[0] = 0;
  for (size_t i = 0; i < n && o + 32 < cap;) {
    size_t j = i;
    while (j < n && p[j] == p[i]) j++;
    char c = p[i] == 0 ? '_' : (p[i] > 32 && p[i] < 127 ? p[i] : '?');
    o += (size_t)snprintf(out + o, cap - o, "%c%zu", c, j - i);
    i = j;
  }
  if (n == 0) snprintf(out, cap, "empty");
}

struct cachestat_range { uint64_t off, len; };
struct cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *mode = argv[1];
  int fd = open(argv[2], O_RDONLY);
  if (fd < 0) die("open");
  if (strcmp(mode, "read") == 0) {
    size_t n = read_all(fd);
    if (fwrite(all, 1, n, stdout) != n) die("write");
    return 0;
  }
  if (strcmp(mode, "hold") == 0) {
    char line[64];
    while (fgets(line, sizeof(line), stdin)) {
      if (lseek(fd, 0, SEEK_SET) != 0) die("lseek");
      size_t n = read_all(fd);
      fwrite(all, 1, n, stdout);
      fputc('\n', stdout);
      fflush(stdout);
    }
    return 0;
  }
  if (strcmp(mode, "fadvise") == 0 && argc == 5) {
    int rc = posix_fadvise(fd, atoll(argv[3]), atoll(argv[4]), POSIX_FADV_DONTNEED);
    if (rc != 0) {
      errno = rc;
      die("posix_fadvise");
    }
    return 0;
  }
  if (strcmp(mode, "resident") == 0 && argc == 4) {
    int pages = atoi(argv[3]);
    for (int i = 0; i < pages; i++) {
      struct cachestat_range range = {(uint64_t)i * 4096, 4096};
      struct cachestat cs;
      memset(&cs, 0, sizeof(cs));
      if (syscall(451 /* cachestat */, fd, &range, &cs, 0) != 0) die("cachestat");
      putchar(cs.nr_cache > 0 ? '1' : '0');
    }
    putchar('\n');
    return 0;
  }
  if (strcmp(mode, "hammer") == 0 && argc == 6) {
    close(fd);
    double until = now_ms() + atof(argv[3]);
    size_t lens[2] = {(size_t)atol(argv[4]), (size_t)atol(argv[5])};
    long counts[2] = {0, 0};
    long bad = 0;
    char shapes[20][256];
    long shape_counts[20];
    int nshapes = 0;
    char shape[256];
    while (now_ms() < until) {
      fd = open(argv[2], O_RDONLY);
      if (fd < 0) die("open");
      ssize_t n = read(fd, buf, BUF_SIZE);
      if (n < 0) die("read");
      close(fd);
      int kind = -1;
      for (int k = 0; k < 2 && kind < 0; k++) {
        char want = (char)('A' + k);
        if ((size_t)n != lens[k]) continue;
        ssize_t i = 0;
        while (i < n && buf[i] == want) i++;
        if (i == n) kind = k;
      }
      if (kind >= 0) {
        counts[kind]++;
        continue;
      }
      bad++;
      rle(buf, (size_t)n, shape, sizeof(shape));
      int s = 0;
      while (s < nshapes && strcmp(shapes[s], shape) != 0) s++;
      if (s == nshapes && nshapes < 20) {
        strcpy(shapes[nshapes], shape);
        shape_counts[nshapes++] = 0;
      }
      if (s < nshapes) shape_counts[s]++;
    }
    printf("{\"a\":%ld,\"b\":%ld,\"bad\":%ld,\"shapes\":{", counts[0], counts[1], bad);
    for (int i = 0; i < nshapes; i++) printf("%s\"%s\":%ld", i ? "," : "", shapes[i], shape_counts[i]);
    printf("}}\n");
    return 0;
  }
  return 2;
}
`;

/** What the hammer mode prints. */
interface HammerResult {
  a: number;
  b: number;
  bad: number;
  shapes: Record<string, number>;
}

/** One file of the mount, as the handler knows it. */
interface FileState {
  readonly ino: number;
  /** What GETATTR and LOOKUP report the size of, and what a READ that reaches JS gets. */
  content: Buffer;
  mtimeSec: number;
  mtimeNsec: number;
  attrTimeoutSec: number;
  entryTimeoutSec: number;
  /** Called by GETATTR and LOOKUP before they answer (a content change made there, as cachedFiles). */
  beforeAttributes?: () => void;
}

/**
 * How the concurrency case changes a file's content (new mtime each time):
 *   timer      every `periodMs`, whenever the timer fires (attributes follow at the next GETATTR)
 *   attributes at the first GETATTR or LOOKUP after `periodMs` passed, right before answering it,
 *              as cachedFiles does (its renders are reused for 50 ms)
 */
interface FlipCase {
  name: string;
  ino: number;
  mode: 'timer' | 'attributes';
  periodMs: number;
  attrTimeoutSec: number;
  entryTimeoutSec: number;
  lengths: [number, number];
}

const FLIP_CASES: FlipCase[] = [
  // The adversary: a version every 3 ms, whenever a timer fires, attributes held 10 ms; one
  // length, so only a mixture of pages can fail it. (With two lengths, versions changing faster
  // than the attributes, as the daemon never does, the kernel's size-before-pages order shows in
  // ~1-6% of reads: one version at the other's length.)
  { name: 'flip-same-size', ino: 7, mode: 'timer', periodMs: 3, attrTimeoutSec: 0.01, entryTimeoutSec: 0.01, lengths: [12000, 12000] },
  // cachedFiles' protocol and timing: a new version at most every 50 ms, made and reported at a
  // GETATTR or LOOKUP, attributes held PAGE_CACHE_ATTR_TIMEOUT_SEC, entries an hour (as
  // filesystem.ts); sizes 10 bytes apart.
  {
    name: 'flip-attributes', ino: 8, mode: 'attributes', periodMs: 50, attrTimeoutSec: 0.05, entryTimeoutSec: 3600,
    lengths: [12000, 11990],
  },
  // The same protocol, one size: nothing but whole versions, ever.
  {
    name: 'flip-attributes-same-size', ino: 9, mode: 'attributes', periodMs: 50, attrTimeoutSec: 0.05, entryTimeoutSec: 3600,
    lengths: [12000, 12000],
  },
];

/**
 * Whether a run-length shape is one version read against the other's length: all of one letter,
 * cut to the shorter length or padded with NULs to the longer one.
 */
function sizeRaceShape(shapeOf: string, lengths: [number, number]): boolean {
  const m = /^([AB])(\d+)(?:_(\d+))?$/.exec(shapeOf);
  if (!m) return false;
  const total = Number(m[2]) + Number(m[3] ?? 0);
  return lengths[0] !== lengths[1] && lengths.includes(total);
}

/** Run-length form of `bytes` ("A4096B7904"), for messages that show what a read returned. */
function shape(bytes: Buffer): string {
  let out = '';
  for (let i = 0; i < bytes.length;) {
    let j = i;
    while (j < bytes.length && bytes[j] === bytes[i]) j++;
    out += `${bytes[i] === 0 ? '_' : String.fromCharCode(bytes[i])}${j - i}`;
    i = j;
  }
  return out === '' ? 'empty' : out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, ms);
  });
}

/** The "major:minor" of the mount at `mountpoint` (no FUSE request: the main thread serves them). */
function mountDevice(mountpoint: string): string | undefined {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (fields[4] === mountpoint) return fields[2];
  }
  return undefined;
}

describe.skipIf(!CAN_MOUNT)('page-cache sessions', () => {
  let tmp: string;
  let reader: string;

  /** Runs the reader in a child (the main thread must stay free to serve the mount). */
  function run(args: string[], timeoutMs = 20_000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      execFile(reader, args, { encoding: 'buffer', timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`pcread ${args.join(' ')}: ${err.message}\n${stderr.toString()}`));
        else resolve(stdout);
      });
    });
  }

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-pagecache-'));
    fs.writeFileSync(path.join(tmp, 'pcread.c'), READER_SOURCE);
    reader = path.join(tmp, 'pcread');
    execFileSync('gcc', ['-O2', '-Wall', '-Werror', '-o', reader, path.join(tmp, 'pcread.c')]);
  });

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe.each<LoopMode>(['poll', 'thread'])('%s loop', (loop) => {
    let native: NativeAddon;
    let session: NativeSession;
    let mountpoint: string;
    let device: string | undefined;
    /** Handler calls per op code, and the READs that reached JS ("ino@offset+size"). */
    const seen = new Map<number, number>();
    const readsInJs: string[] = [];
    /** Attribute requests (LOOKUP, GETATTR) per inode. */
    const attrRequests = new Map<number, number>();
    const children = new Set<ChildProcessWithoutNullStreams>();

    const files = new Map<string, FileState>();
    const byIno = new Map<number, FileState>();
    /** A file of the mount; `timeouts` in seconds: how long the kernel may use its attributes and entry. */
    function file(name: string, ino: number, content: string | Buffer, timeouts: { attr: number; entry: number }): FileState {
      const state: FileState = {
        ino, content: Buffer.from(content), mtimeSec: 1_700_000_000, mtimeNsec: 0,
        attrTimeoutSec: timeouts.attr, entryTimeoutSec: timeouts.entry,
      };
      files.set(name, state);
      byIno.set(ino, state);
      return state;
    }
    // Each case has its own inode, so one case's cached pages and attributes are not another's.
    const basic = file('basic', 2, 'one: from the page cache\n', { attr: 0.05, entry: 0.05 });
    const fresh = file('fresh', 3, 'fresh-v1', { attr: 0.05, entry: 1 });
    const gap = file('gap', 4, Buffer.alloc(12000, 'A'), { attr: 3600, entry: 3600 });
    for (const c of FLIP_CASES) {
      file(c.name, c.ino, Buffer.alloc(c.lengths[0], 'A'), { attr: c.attrTimeoutSec, entry: c.entryTimeoutSec });
    }
    const dropped = file('dropped', 6, 'from native\n', { attr: 3600, entry: 3600 });

    function pathOf(state: FileState): string {
      for (const [name, f] of files) if (f === state) return path.join(mountpoint, name);
      throw new Error(`no file has inode ${state.ino}`);
    }

    /** The next mtime: the kernel compares it for equality only (nanoseconds, as cachedFiles). */
    function bumpMtime(f: FileState): void {
      f.mtimeNsec++;
      if (f.mtimeNsec === NSEC_PER_SEC) {
        f.mtimeNsec = 0;
        f.mtimeSec++;
      }
    }

    /**
     * Gives native `content` for `f`; with `newMtime`, GETATTR and LOOKUP report the change (and
     * native serves it from that reply on; before, the version whose attributes the kernel has).
     */
    function setContent(f: FileState, content: Buffer | string, newMtime: boolean): void {
      f.content = Buffer.from(content);
      native.setInodeContent(session, f.ino, f.content);
      if (newMtime) bumpMtime(f);
    }

    async function readFile(f: FileState): Promise<Buffer> {
      return await run(['read', pathOf(f)]);
    }

    async function resident(f: FileState): Promise<string> {
      return (await run(['resident', pathOf(f), String(Math.ceil(f.content.length / PAGE))])).toString().trim();
    }

    beforeAll(() => {
      native = loadNative();
      mountpoint = fs.mkdtempSync(path.join(os.tmpdir(), 'isolfs-pagecache-mnt-'));
      const req = new FuseRequest(native.requestFields);
      const { ops } = native;
      const attrs = (f: FileState): [number, number, number, number, number, number, number] =>
        [f.ino, S_IFREG | 0o444, 1, f.content.length, 0, 0, f.mtimeSec];
      const attributesAsked = (f: FileState): void => {
        attrRequests.set(f.ino, (attrRequests.get(f.ino) ?? 0) + 1);
        f.beforeAttributes?.();
      };
      const handler = (name: string | undefined): void => {
        const id = req.id;
        seen.set(req.op, (seen.get(req.op) ?? 0) + 1);
        switch (req.op) {
          case ops.lookup: {
            const f = req.ino === 1 ? files.get(name ?? '') : undefined;
            if (!f) {
              native.replyErr(id, os.constants.errno.ENOENT);
              break;
            }
            attributesAsked(f);
            native.replyEntry(id, ...attrs(f), f.entryTimeoutSec, f.attrTimeoutSec, f.mtimeNsec);
            break;
          }
          case ops.getattr: {
            const f = byIno.get(req.ino);
            if (req.ino === 1) native.replyAttr(id, 1, S_IFDIR | 0o555, 2, 0, 0, 0, 0, 3600);
            else if (!f) native.replyErr(id, os.constants.errno.ENOENT);
            else {
              attributesAsked(f);
              native.replyAttr(id, ...attrs(f), f.attrTimeoutSec, f.mtimeNsec);
            }
            break;
          }
          case ops.read: {
            readsInJs.push(`${req.ino}@${req.offset}+${req.size}`);
            const f = byIno.get(req.ino);
            if (f) native.replyBuf(id, f.content.subarray(req.offset, req.offset + req.size));
            else native.replyErr(id, os.constants.errno.ENOENT);
            break;
          }
          case ops.release: break; // a notification (id -1): nothing to answer
          default: native.replyErr(id, os.constants.errno.ENOSYS);
        }
      };
      // The options of the real page-cache tree (filesystem.ts): read-only, the kernel checks modes.
      session = native.mount(mountpoint, 'fsname=isolfs-pagecache-test,subtype=isolfs,ro,default_permissions',
        loop, req.header, handler, true);
      device = mountDevice(mountpoint);
      for (const f of byIno.values()) native.setInodeContent(session, f.ino, f.content);
    });

    afterAll(() => {
      for (const child of children) child.kill('SIGKILL');
      if (session) native.unmount(session);
      // A mount the unmount did not remove (a wedged connection): abort it, then detach it.
      if (mountpoint && mountDevice(mountpoint) !== undefined) {
        const minor = device?.split(':')[1];
        if (minor) fs.writeFileSync(`/sys/fs/fuse/connections/${minor}/abort`, '1');
        execFileSync('umount', ['-l', mountpoint]);
      }
      if (mountpoint) fs.rmdirSync(mountpoint); // not recursive: never into a mount left behind
    });

    it('sends no OPEN or RELEASE to JS, reads the inode content, and keeps its pages until the mtime changes', async () => {
      const { ops } = native;
      expect(device, 'the mount is in /proc/self/mountinfo').toMatch(/^0:\d+$/);
      expect((await readFile(basic)).toString()).toBe('one: from the page cache\n');
      // New content of the same size, the mtime unchanged: the kernel's pages are what it reads.
      setContent(basic, 'two: from the page cache\n', false);
      expect((await readFile(basic)).toString()).toBe('one: from the page cache\n');
      // Once the attributes expired the kernel asks again, sees the same mtime, keeps the pages.
      const asked = attrRequests.get(basic.ino) ?? 0;
      await sleep(150);
      expect((await readFile(basic)).toString()).toBe('one: from the page cache\n');
      expect(attrRequests.get(basic.ino) ?? 0, 'attributes were asked again').toBeGreaterThan(asked);
      // A new mtime: the kernel drops the pages and reads the new content.
      bumpMtime(basic);
      await sleep(150);
      expect((await readFile(basic)).toString()).toBe('two: from the page cache\n');
      expect(seen.get(ops.open) ?? 0, 'OPENs that reached JS').toBe(0);
      expect(seen.get(ops.release) ?? 0, 'RELEASEs that reached JS').toBe(0);
      expect(readsInJs.filter((r) => r.startsWith(`${basic.ino}@`))).toEqual([]);
    });

    it('gives a long-lived fd and a fresh open the new content within 100 ms of a new mtime (attr timeout 50 ms)', async () => {
      const child = spawn(reader, ['hold', pathOf(fresh)]);
      children.add(child);
      try {
        let pending = '';
        const waiters: ((line: string) => void)[] = [];
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          pending += chunk;
          for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            waiters.shift()?.(line);
          }
        });
        const readAgain = (): Promise<string> => new Promise((resolve) => {
          waiters.push(resolve);
          child.stdin.write('r\n');
        });
        expect(await readAgain()).toBe('fresh-v1');
        setContent(fresh, 'fresh-v2', true);
        const changedAt = performance.now();
        let seenAfterMs = -1;
        while (performance.now() - changedAt < 1000) {
          if ((await readAgain()) === 'fresh-v2') {
            seenAfterMs = performance.now() - changedAt;
            break;
          }
          await sleep(5);
        }
        expect(seenAfterMs, 'ms until lseek(0) + read on the open fd saw the new content').toBeGreaterThanOrEqual(0);
        console.log(`${loop} loop: lseek(0) + read on the open fd saw the new content after ${seenAfterMs.toFixed(1)} ms`);
        expect(seenAfterMs).toBeLessThan(100);
        expect((await readFile(fresh)).toString()).toBe('fresh-v2');
        expect(await readAgain()).toBe('fresh-v2');
      } finally {
        child.kill('SIGKILL');
        children.delete(child);
      }
    });

    it.each([0, 1, 2])('fills a gap at page %i from the version whose attributes the kernel has, not a newer one set since', async (page) => {
      const a = Buffer.alloc(12000, 'A');
      const b = Buffer.alloc(12000, 'B');
      // Start from pages of A (the kernel drops whatever it held: new mtime, attributes asked;
      // ENOENT: the kernel has not looked the file up yet, so holds nothing of it).
      setContent(gap, a, true);
      expect([0, os.constants.errno.ENOENT]).toContain(native.invalidateAttributes(session, gap.ino));
      expect(shape(await readFile(gap))).toBe('A12000');
      expect(await resident(gap), 'the pages are cached').toBe('111');
      // B is set without the kernel being told (same mtime and size, attributes for an hour).
      setContent(gap, b, false);
      await run(['fadvise', pathOf(gap), String(page * PAGE), String(PAGE)]);
      expect(await resident(gap), 'only that page was dropped').toBe(['011', '101', '110'][page]);
      // The READ of the gap gets A: B is not served before attributes that show it.
      expect(shape(await readFile(gap))).toBe('A12000');
      expect(await resident(gap)).toBe('111');
      // GETATTR reports a new mtime: the kernel drops every page and fills them from B.
      bumpMtime(gap);
      expect(native.invalidateAttributes(session, gap.ino)).toBe(0);
      expect(shape(await readFile(gap))).toBe('B12000');
      expect(readsInJs.filter((r) => r.startsWith(`${gap.ino}@`))).toEqual([]);
    });

    it.each(FLIP_CASES)('never gives a reader a mixture or a cut of two versions ($name: $mode every $periodMs ms, sizes $lengths)', async (c) => {
      const f = files.get(c.name)!;
      const versions = [Buffer.alloc(c.lengths[0], 'A'), Buffer.alloc(c.lengths[1], 'B')];
      let flips = 0;
      const flipNow = (): void => {
        setContent(f, versions[f.content[0] === 0x41 ? 1 : 0], true);
        flips++;
      };
      let due = false;
      if (c.mode === 'attributes') {
        f.beforeAttributes = (): void => {
          if (!due) return;
          due = false;
          flipNow();
        };
      }
      const timer = setInterval(() => {
        if (c.mode === 'attributes') due = true;
        else flipNow();
      }, c.periodMs);
      let results: HammerResult[];
      try {
        results = await Promise.all([0, 1, 2, 3].map(async () => {
          const out = await run(['hammer', pathOf(f), '3000', String(c.lengths[0]), String(c.lengths[1])]);
          return JSON.parse(out.toString()) as HammerResult;
        }));
      } finally {
        clearInterval(timer);
        f.beforeAttributes = undefined;
      }
      const total = { a: 0, b: 0, bad: 0, shapes: {} as Record<string, number> };
      for (const r of results) {
        total.a += r.a;
        total.b += r.b;
        total.bad += r.bad;
        for (const [s, n] of Object.entries(r.shapes)) total.shapes[s] = (total.shapes[s] ?? 0) + n;
      }
      console.log(`${loop} loop, ${c.name}: ${flips} versions; reads: ${total.a} all-A, ${total.b} all-B, ` +
        `${total.bad} other ${JSON.stringify(total.shapes)}`);
      // Other results, in run-length form: "A9000" is A cut at B's length, "B9000_3000" is B
      // padded with 3000 NULs to A's length, "A4096B4904" is a page of A then pages of B.
      // A mixture of pages is never allowed. Versions of different lengths: the kernel sets a new
      // size before it drops the pages of the version before (fuse_change_attributes), so a
      // reader racing that moment reads old pages against the new size: one version cut or padded
      // to the other's length. Counted, bounded, documented (docs/benchmarks.md); never allowed
      // when the lengths are the same.
      // The timer cases are an adversary beyond the daemon's protocol (a new version every 3 ms,
      // whenever a timer fires): there a reader whose read(2) copies pages in two batches across
      // an invalidation and a refill can get one page of each (seen: 1 in ~170,000 reads); the
      // daemon's protocol (attributes cases: a version kept 50 ms, made at GETATTR) never.
      const count = (pick: (shapeOf: string) => boolean): number =>
        Object.entries(total.shapes).filter(([shapeOf]) => pick(shapeOf)).reduce((sum, [, n]) => sum + n, 0);
      const reads = total.a + total.b + total.bad;
      const mixtures = count((shapeOf) => !sizeRaceShape(shapeOf, c.lengths));
      expect(mixtures, 'reads that mix pages of two versions').toBeLessThanOrEqual(c.mode === 'attributes' ? 0 : reads / 10_000);
      const raced = count((shapeOf) => sizeRaceShape(shapeOf, c.lengths));
      const sameLength = c.lengths[0] === c.lengths[1];
      expect(raced, 'reads of one version at the length of the other').toBeLessThanOrEqual(sameLength ? 0 : reads / 20);
      expect(flips, 'versions made').toBeGreaterThan(c.mode === 'timer' ? 200 : 20);
      expect(total.a, 'reads of version A').toBeGreaterThan(100);
      expect(total.b, 'reads of version B').toBeGreaterThan(100);
      expect(readsInJs.filter((r) => r.startsWith(`${f.ino}@`))).toEqual([]);
    }, 30_000);

    it('sends READs to JS once the inode content is dropped', async () => {
      expect((await readFile(dropped)).toString()).toBe('from native\n');
      native.dropInodeContent(session, dropped.ino);
      native.dropInodeContent(session, dropped.ino); // idempotent
      // The kernel still has the pages: no READ until a new mtime makes it drop them.
      expect((await readFile(dropped)).toString()).toBe('from native\n');
      expect(readsInJs.filter((r) => r.startsWith(`${dropped.ino}@`))).toEqual([]);
      dropped.content = Buffer.from('from JS now\n');
      bumpMtime(dropped);
      expect(native.invalidateAttributes(session, dropped.ino)).toBe(0);
      expect((await readFile(dropped)).toString()).toBe('from JS now\n');
      expect(readsInJs.filter((r) => r.startsWith(`${dropped.ino}@`))).toEqual([`${dropped.ino}@0+4096`]);
    });
  });
});
