/*
 * attach-probe: a "container" started without a hook, timing from the inside how long isolfs's
 * event-driven attach takes (bench/attach-latency.sh, bench/attach-runc.sh).
 *
 *   attach-probe join --limit-kb KB [--timeout-ms 5000] PROCS_FILE...
 *
 *     Writes its own pid into each PROCS_FILE (the container's cgroup.procs, one per v1
 *     hierarchy), as a runtime moves its init into the cgroup, then unshares its mount namespace
 *     (propagation private) as the runtime's init does next: the container's first process has
 *     appeared. Then polls every 1 ms until /proc/meminfo shows MemTotal == KB (the container's
 *     own view) and /proc/vmstat is a FUSE file (isolfs's: runc cannot bind it at creation, only
 *     attach brings it). Prints one line:
 *
 *       joined_to_ns_us=<unshare done, after the join> meminfo_us=<first correct read> vmstat_us=<...>
 *
 *     the last two counted from the unshare (-1: not within the timeout). Exit 0 when both came.
 *
 *   attach-probe wait --limit-kb KB [--timeout-ms 5000]
 *
 *     The same polling only, from the probe's start (inside a runc container: its init, started
 *     by `runc start`). Prints the same line with joined_to_ns_us=0. started_at_us: when the
 *     polling began (CLOCK_REALTIME, µs), so that a caller can count from its own moment.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define FUSE_SUPER_MAGIC 0x65735546

static long long realtime_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* MemTotal in kB from /proc/meminfo, or -1. */
static long long memtotal_kb(void) {
  char buf[4096];
  int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *line = strstr(buf, "MemTotal:");
  return line ? strtoll(line + 9, NULL, 10) : -1;
}

static int vmstat_served(void) {
  struct statfs st;
  if (statfs("/proc/vmstat", &st) != 0) return 0;
  if ((unsigned long)st.f_type != FUSE_SUPER_MAGIC) return 0;
  char buf[256];
  int fd = open("/proc/vmstat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  return n > 0 && strncmp(buf, "nr_", 3) == 0;
}

static void usage(void) {
  fprintf(stderr, "usage: attach-probe join|wait --limit-kb KB [--timeout-ms MS] [PROCS_FILE...]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  int join = strcmp(argv[1], "join") == 0;
  if (!join && strcmp(argv[1], "wait") != 0) usage();
  long long limit_kb = -1, timeout_ms = 5000;
  int i = 2;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--limit-kb") == 0 && i + 1 < argc) limit_kb = atoll(argv[++i]);
    else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) timeout_ms = atoll(argv[++i]);
    else break;
  }
  if (limit_kb <= 0) usage();
  long long t_join = now_us();
  if (join) {
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d\n", getpid());
    for (; i < argc; i++) {
      int fd = open(argv[i], O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, pid, len) != len) { fprintf(stderr, "attach-probe: %s: %s\n", argv[i], strerror(errno)); return 2; }
      close(fd);
    }
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
      fprintf(stderr, "attach-probe: unshare: %s\n", strerror(errno));
      return 2;
    }
  }
  long long t0 = now_us();
  long long meminfo_us = -1, vmstat_us = -1, started_at = realtime_us();
  const struct timespec ms = {0, 1000000};
  while (now_us() - t0 < timeout_ms * 1000 && (meminfo_us < 0 || vmstat_us < 0)) {
    if (meminfo_us < 0 && memtotal_kb() == limit_kb) meminfo_us = now_us() - t0;
    if (vmstat_us < 0 && vmstat_served()) vmstat_us = now_us() - t0;
    if (meminfo_us < 0 || vmstat_us < 0) nanosleep(&ms, NULL);
  }
  printf("joined_to_ns_us=%lld meminfo_us=%lld vmstat_us=%lld started_at_us=%lld\n", join ? t0 - t_join : 0, meminfo_us, vmstat_us, started_at);
  return meminfo_us >= 0 && vmstat_us >= 0 ? 0 : 1;
}
