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
#define _GNU_SOURCE /* strerrorname_np */
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
/* A look this much later than the last one: the process was stopped, not the main thread alone. */
#define PAUSED_AFTER_MS 1000
#define FUSECTL_SUPER_MAGIC 0x65735543

static atomic_int started;
static _Atomic int64_t last_beat_ms;
static _Atomic int64_t silence_limit_ms; /* 0: not watched */
static _Atomic int64_t kill_at_ms;       /* 0: no deadline */
static _Atomic unsigned connections[DEADMAN_MAX_CONNECTIONS];
static atomic_int connection_count;
/* The reason of the deadline: written by the main thread into the buffer not published, then
 * published (release) before the deadline is; read by the thread after it sees the deadline. */
static char reason_buffers[2][256];
static _Atomic(const char *) kill_reason = "";

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

/* The UTC date of `days` since 1970-01-01 (the proleptic Gregorian calendar), by arithmetic:
 * gmtime_r takes glibc's time zone lock, which a stopped main thread may hold. */
static void civil_from_days(int64_t days, int64_t *year, int *month, int *day) {
  days += 719468;
  int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  int64_t doe = days - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *day = (int)(doy - (153 * mp + 2) / 5 + 1);
  *month = (int)(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (*month <= 2);
}

/* One log line as the daemon's logger writes them (pino: level 60 = fatal), in one write(2),
 * with nothing that takes a lock (snprintf into a buffer takes none). */
static void log_fatal(const char *msg) {
  struct timespec now;
  char safe[512], line[700];
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t year;
  int month, day;
  int64_t seconds = (int64_t)now.tv_sec, of_day = ((seconds % 86400) + 86400) % 86400;
  civil_from_days((seconds - of_day) / 86400, &year, &month, &day);
  json_safe(msg, safe, sizeof(safe));
  int n = snprintf(line, sizeof(line),
                   "{\"level\":60,\"time\":\"%04lld-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"name\":\"isolfs\",\"msg\":\"%s\"}\n",
                   (long long)year, month, day, (int)(of_day / 3600), (int)(of_day / 60 % 60), (int)(of_day % 60),
                   now.tv_nsec / 1000000, safe);
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
  ssize_t wrote = write(fd, "1", 1);
  int err = wrote == 1 ? 0 : wrote < 0 ? errno : EIO;
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
    /* strerrorname_np: a constant name; strerror may take locale locks and allocate. */
    const char *name = err ? strerrorname_np(err) : NULL;
    int n = err ? snprintf(done + used, sizeof(done) - used, "%s%u %s", i ? ", " : "", minor, name ? name : "error")
                : snprintf(done + used, sizeof(done) - used, "%s%u aborted", i ? ", " : "", minor);
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
  int64_t previous_look = monotonic_ms(), resumed_at = 0;
  for (;;) {
    nanosleep(&pause, NULL);
    int64_t now = monotonic_ms();
    /* A look far later than asked: this thread did not run either (the whole process was
     * stopped: SIGSTOP, the cgroup freezer, a checkpoint; or the machine starved us). The
     * monotonic clock ran on meanwhile, so the silence counts from now, not from the last beat. */
    if (now - previous_look > PAUSED_AFTER_MS) resumed_at = now;
    previous_look = now;
    int64_t limit = atomic_load(&silence_limit_ms);
    int64_t beat = atomic_load(&last_beat_ms);
    int64_t silent = now - (beat > resumed_at ? beat : resumed_at);
    if (limit > 0 && silent >= limit) {
      char why[160];
      snprintf(why, sizeof(why), "the main thread has not run for %lld ms (limit %lld ms)", (long long)silent, (long long)limit);
      abort_and_kill(why);
    }
    int64_t deadline = atomic_load_explicit(&kill_at_ms, memory_order_acquire);
    if (deadline > 0 && now >= deadline) abort_and_kill(atomic_load_explicit(&kill_reason, memory_order_acquire));
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
  /* The buffer not published, so the thread never reads one being written. */
  static int next_buffer;
  char *reason = reason_buffers[next_buffer];
  next_buffer ^= 1;
  snprintf(reason, sizeof(reason_buffers[0]), "%s", why);
  atomic_store_explicit(&kill_reason, reason, memory_order_release);
  atomic_store_explicit(&kill_at_ms, at, memory_order_release);
}
