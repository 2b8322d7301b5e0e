/*
 * The watchdog's last resort: a thread of the addon that frees every reader when the main
 * thread has stopped running (stuck in the kernel, in a loop, stopped by ptrace), and ends a
 * process whose exit is overdue.
 *
 * The main thread is the one that answers FUSE requests; while it is stuck, readers wait on our
 * connections and only another thread can help. This one does not need V8: a second isolate (the
 * worker thread it replaces) cost ~10 MB of RSS for what is a clock and two writes. What to
 * watch and for how long is decided in JS (health/startWatchdog.ts); here: the main thread beats
 * (deadman_beat); if it has not beaten for `silence_limit_ms`, or an exit deadline set by JS has
 * passed, the thread logs why, aborts our FUSE connections through fusectl (so no reader stays
 * in D state, and no thread of ours waits on our own mount so the process can die), and sends
 * the process SIGKILL.
 *
 * Lock-free on purpose: the main thread may be stopped anywhere, a held lock included.
 */
#include "deadman.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define FUSECTL_DIR "/sys/fs/fuse/connections"
#define LOOK_EVERY_MS 200
#define FUSECTL_SUPER_MAGIC 0x65735543

static atomic_int started;
static _Atomic int64_t last_beat_ms;
static _Atomic int64_t silence_limit_ms; /* 0: not watched */
static _Atomic int64_t kill_at_ms;       /* 0: no deadline */
static _Atomic unsigned connections[DEADMAN_MAX_CONNECTIONS];
static atomic_int connection_count;
/* Written by the main thread before kill_at_ms is published (release), read after (acquire). */
static char kill_reason[256];

static int64_t monotonic_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* `text` with the characters JSON cannot hold in a string replaced, into `out`. */
static void json_safe(const char *text, char *out, size_t size) {
  size_t o = 0;
  for (const char *p = text; *p && o + 1 < size; p++) out[o++] = (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ? '\'' : *p;
  out[o] = '\0';
}

/* One log line as the daemon's logger writes them (pino: level 60 = fatal), in one write(2). */
static void log_fatal(const char *msg) {
  struct timespec now;
  struct tm tm;
  char when[32], safe[512], line[700];
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
  json_safe(msg, safe, sizeof(safe));
  int n = snprintf(line, sizeof(line), "{\"level\":60,\"time\":\"%s.%03ldZ\",\"name\":\"isolfs\",\"msg\":\"%s\"}\n",
                   when, now.tv_nsec / 1000000, safe);
  if (n > 0) {
    ssize_t ignored = write(STDOUT_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    (void)ignored;
  }
}

static int fusectl_mounted(void) {
  struct statfs fs;
  return statfs(FUSECTL_DIR, &fs) == 0 && fs.f_type == FUSECTL_SUPER_MAGIC;
}

/* Writes 1 to connection `minor`'s abort file, mounting fusectl first if nobody has. 0 or errno. */
static int abort_connection(unsigned minor) {
  char path[96];
  snprintf(path, sizeof(path), FUSECTL_DIR "/%u/abort", minor);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && !fusectl_mounted()) {
    if (mount("fusectl", FUSECTL_DIR, "fusectl", 0, NULL) != 0) return errno;
    fd = open(path, O_WRONLY | O_CLOEXEC);
  }
  if (fd < 0) return errno;
  int err = write(fd, "1", 1) == 1 ? 0 : errno;
  close(fd);
  return err;
}

static void abort_and_kill(const char *why) {
  char done[256] = "";
  size_t used = 0;
  int count = atomic_load(&connection_count);
  for (int i = 0; i < count && used < sizeof(done); i++) {
    unsigned minor = atomic_load(&connections[i]);
    int err = abort_connection(minor);
    int n = snprintf(done + used, sizeof(done) - used, "%s%u %s", i ? ", " : "", minor, err ? strerror(err) : "aborted");
    if (n > 0) used += (size_t)n;
  }
  char msg[512];
  snprintf(msg, sizeof(msg), "watchdog: %s; our FUSE connections (fusectl): %s; killing the process", why,
           count ? done : "none known");
  log_fatal(msg);
  kill(getpid(), SIGKILL);
}

static void *watch(void *unused) {
  (void)unused;
  const struct timespec pause = {.tv_sec = 0, .tv_nsec = LOOK_EVERY_MS * 1000000L};
  for (;;) {
    nanosleep(&pause, NULL);
    int64_t now = monotonic_ms();
    int64_t limit = atomic_load(&silence_limit_ms);
    int64_t silent = now - atomic_load(&last_beat_ms);
    if (limit > 0 && silent >= limit) {
      char why[160];
      snprintf(why, sizeof(why), "the main thread has not run for %lld ms (limit %lld ms)", (long long)silent, (long long)limit);
      abort_and_kill(why);
    }
    int64_t deadline = atomic_load_explicit(&kill_at_ms, memory_order_acquire);
    if (deadline > 0 && now >= deadline) abort_and_kill(kill_reason);
  }
  return NULL;
}

int deadman_arm(int64_t limit_ms, const unsigned *minors, int count) {
  if (count > DEADMAN_MAX_CONNECTIONS) count = DEADMAN_MAX_CONNECTIONS;
  for (int i = 0; i < count; i++) atomic_store(&connections[i], minors[i]);
  atomic_store(&connection_count, count);
  atomic_store(&last_beat_ms, monotonic_ms());
  atomic_store(&silence_limit_ms, limit_ms > 0 ? limit_ms : 0);
  if (atomic_exchange(&started, 1)) return 0;
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int err = pthread_create(&thread, &attr, watch, NULL);
  pthread_attr_destroy(&attr);
  if (err) atomic_store(&started, 0);
  return err;
}

void deadman_beat(void) {
  atomic_store(&last_beat_ms, monotonic_ms());
}

void deadman_stop_watching(void) {
  atomic_store(&silence_limit_ms, 0);
}

void deadman_kill_after(int64_t ms, const char *why) {
  int64_t at = monotonic_ms() + (ms > 0 ? ms : 0);
  int64_t current = atomic_load(&kill_at_ms);
  if (current > 0 && current <= at) return; /* an earlier deadline stands */
  if (current == 0) snprintf(kill_reason, sizeof(kill_reason), "%s", why);
  atomic_store_explicit(&kill_at_ms, at, memory_order_release);
}
