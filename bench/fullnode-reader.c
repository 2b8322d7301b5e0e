/*
 * fullnode-reader: the "container" of bench/full-node.sh, and the aggregator of what it measured.
 *
 *   fullnode-reader init --id ID --dir DIR --events FILE --limit-kb KB
 *                        [--interval-ms 1000] [--probe-ms 100] [--bind SRC:DST ...]
 *
 *     Meant to run as pid 1 of a fresh pid + mount namespace (`unshare -m -p -f --propagation
 *     private --mount-proc --kill-child fullnode-reader init ...`). Bind-mounts each SRC over
 *     DST (how a pod gets LXCFS's files at creation; isolfs instead attaches its own later),
 *     then forks the reader and sleeps, reaping children, as a container's init does.
 *
 *     The reader (comm "fn-reader"; the init is "fn-init") opens + reads to EOF + closes
 *     /proc/meminfo, /proc/stat and /proc/loadavg once every interval, as a monitoring agent
 *     does, each timed with CLOCK_MONOTONIC. Its first round starts at a random offset within
 *     the interval, so that N readers do not all fire at the same instant. Every read is one
 *     24-byte record in DIR/ID.bin (struct sample below), flushed after each round.
 *
 *     The reader classifies what its /proc/meminfo shows: "iso" (MemTotal equals --limit-kb,
 *     the cgroup's memory limit: the content is a served view), "host" (any other MemTotal: the
 *     kernel's own file) or "err" (open or read failed, e.g. ENOTCONN once the daemon behind a
 *     mount died). Each change of that state is one line appended to the shared events file
 *     (O_APPEND, one write(2) per line, so lines of different readers never interleave):
 *
 *       <CLOCK_REALTIME ns> <ID> iso|host|err <errno>
 *
 *     While the state is not "iso", the reader also probes /proc/meminfo every --probe-ms (not
 *     recorded as samples), so that the moment a mount is attached or repaired is seen within
 *     --probe-ms rather than within a whole interval. That probing is a measuring device; it
 *     stops as soon as the reader sees served content.
 *
 *   fullnode-reader monitor PID CPUACCT_USAGE_FILE INTERVAL_MS OUT
 *
 *     Until PID exits (or SIGTERM): every INTERVAL_MS one line in OUT,
 *       <CLOCK_REALTIME ns> <machine busy ticks> <PID's utime+stime ticks> <cpuacct.usage ns>
 *     (busy = every CPU's /proc/stat time except idle and iowait), the timeline from which
 *     bench/full-node.sh tells the daemon's, the containers' and everyone else's CPU apart when
 *     a window went wrong. Costs a few syscalls per line.
 *
 *   fullnode-reader aggregate T0_NS T1_NS DIR [TIMELINE HZ MAX_OTHER_PCT]
 *
 *     Latencies of the samples of every DIR/\*.bin that started within [T0_NS, T1_NS)
 *     (CLOCK_REALTIME ns, as `date +%s%N` prints), one line per file and one for all:
 *       file=<name> reads=<n> errors=<n> not_iso=<n> p50_us= p90_us= p99_us= p999_us= max_us=
 *       over_1ms=<n> over_10ms=<n> first_errno=<e>
 *     not_iso counts successful reads made while the reader's meminfo state was not "iso".
 *     Then the whole second of the window with the slowest median read:
 *       worst_second=<start ns> reads=<n> p50_us= max_us=
 *     With a monitor TIMELINE (and its clock ticks per second), also "file=quiet ..." over the
 *     seconds of the window in which everything but the daemon and the containers used less than
 *     MAX_OTHER_PCT % of one CPU, plus "quiet_seconds=<k> of=<n>": on a machine shared with
 *     other work, the latencies the daemon itself is answerable for.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUFFER_BYTES (64 * 1024)
#define MAX_BINDS 16

static const char *const FILES[] = {"/proc/meminfo", "/proc/stat", "/proc/loadavg"};
static const char *const FILE_NAMES[] = {"meminfo", "stat", "loadavg"};
#define NFILES 3

enum state { ST_UNKNOWN = 0, ST_ISO = 1, ST_HOST = 2, ST_ERR = 3 };
static const char *const STATE_NAMES[] = {"unknown", "iso", "host", "err"};

struct sample {
  uint64_t start_realtime_ns; /* when the open began (CLOCK_REALTIME) */
  uint64_t latency_ns;        /* open + read to EOF + close (CLOCK_MONOTONIC) */
  uint8_t file;               /* index into FILES */
  uint8_t state;              /* the reader's meminfo state when the read began */
  uint16_t reserved;
  int32_t error;              /* errno of a failed open/read, or 0 */
};

static uint64_t clock_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_mono(uint64_t deadline_ns) {
  struct timespec ts = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* One open + read-until-EOF + close. Returns bytes read, or -errno. */
static int64_t read_once(const char *path, char *buffer) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int64_t total = 0;
  for (;;) {
    ssize_t got = read(fd, buffer + total, BUFFER_BYTES - 1 - (size_t)total);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      close(fd);
      return -saved;
    }
    total += got;
    if (total >= BUFFER_BYTES - 1) break; /* larger than any file we read: keep the head */
  }
  close(fd);
  buffer[total] = '\0';
  return total;
}

static enum state classify_meminfo(int64_t got, const char *buffer, unsigned long long limit_kb) {
  if (got <= 0) return ST_ERR;
  const char *line = strstr(buffer, "MemTotal:");
  if (line == NULL) return ST_ERR;
  unsigned long long kb = strtoull(line + strlen("MemTotal:"), NULL, 10);
  return kb == limit_kb ? ST_ISO : ST_HOST;
}

struct reader_config {
  int id;
  const char *dir;
  const char *events;
  unsigned long long limit_kb;
  uint64_t interval_ns;
  uint64_t probe_ns;
};

static void emit_event(int fd, int id, enum state state, int error) {
  char line[96];
  int n = snprintf(line, sizeof line, "%llu %d %s %d\n", (unsigned long long)clock_ns(CLOCK_REALTIME), id,
                   STATE_NAMES[state], error);
  if (write(fd, line, (size_t)n) != n) {
    /* Nothing sensible to do: the script will notice a reader that never reports. */
  }
}

static int run_reader(const struct reader_config *cfg) {
  static char buffer[BUFFER_BYTES];
  char path[4096];
  snprintf(path, sizeof path, "%s/%d.bin", cfg->dir, cfg->id);
  FILE *samples = fopen(path, "we");
  if (samples == NULL) {
    perror(path);
    return 1;
  }
  static char samples_buffer[16 * 1024];
  setvbuf(samples, samples_buffer, _IOFBF, sizeof samples_buffer);
  int events = open(cfg->events, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (events < 0) {
    perror(cfg->events);
    return 1;
  }

  enum state state = ST_UNKNOWN;
  int last_error = 0;
  srandom((unsigned)(clock_ns(CLOCK_MONOTONIC) ^ ((uint64_t)cfg->id << 20) ^ (uint64_t)getpid()));
  uint64_t now = clock_ns(CLOCK_MONOTONIC);
  uint64_t next_round = now + (uint64_t)(random() % (long)(cfg->interval_ns / 1000u)) * 1000u;
  uint64_t next_probe = now;

  for (;;) {
    uint64_t wake = next_round;
    if (state != ST_ISO && next_probe < wake) wake = next_probe;
    sleep_until_mono(wake);
    now = clock_ns(CLOCK_MONOTONIC);
    enum state seen;
    int error = 0;
    if (now >= next_round) {
      enum state round_state = state;
      seen = ST_ERR;
      for (int f = 0; f < NFILES; f++) {
        struct sample s = {0, 0, (uint8_t)f, (uint8_t)round_state, 0, 0};
        s.start_realtime_ns = clock_ns(CLOCK_REALTIME);
        uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
        int64_t got = read_once(FILES[f], buffer);
        s.latency_ns = clock_ns(CLOCK_MONOTONIC) - t0;
        if (got < 0) s.error = (int32_t)-got;
        else if (got == 0) s.error = ENODATA;
        fwrite(&s, sizeof s, 1, samples);
        if (f == 0) {
          seen = classify_meminfo(got, buffer, cfg->limit_kb);
          error = got < 0 ? (int)-got : 0;
        }
      }
      fflush(samples);
      now = clock_ns(CLOCK_MONOTONIC);
      next_round += cfg->interval_ns;
      /* Stopped (SIGSTOP) or starved for longer than an interval: no burst of catch-up rounds. */
      if (next_round <= now) next_round = now + cfg->interval_ns;
    } else {
      int64_t got = read_once(FILES[0], buffer);
      seen = classify_meminfo(got, buffer, cfg->limit_kb);
      error = got < 0 ? (int)-got : 0;
      next_probe = now + cfg->probe_ns;
    }
    if (seen != state || (seen == ST_ERR && error != last_error)) {
      emit_event(events, cfg->id, seen, error);
      state = seen;
      last_error = error;
      next_probe = clock_ns(CLOCK_MONOTONIC) + cfg->probe_ns;
    }
  }
}

static volatile sig_atomic_t init_stop = 0;
static void on_term(int sig) {
  (void)sig;
  init_stop = 1;
}

static int run_init(int argc, char **argv) {
  struct reader_config cfg = {-1, NULL, NULL, 0, 1000000000ull, 100000000ull};
  const char *binds[MAX_BINDS];
  int nbinds = 0;
  for (int i = 2; i < argc; i++) {
    const char *opt = argv[i];
    if (i + 1 >= argc) {
      fprintf(stderr, "fullnode-reader: %s needs a value\n", opt);
      return 2;
    }
    const char *val = argv[++i];
    if (strcmp(opt, "--id") == 0) cfg.id = atoi(val);
    else if (strcmp(opt, "--dir") == 0) cfg.dir = val;
    else if (strcmp(opt, "--events") == 0) cfg.events = val;
    else if (strcmp(opt, "--limit-kb") == 0) cfg.limit_kb = strtoull(val, NULL, 10);
    else if (strcmp(opt, "--interval-ms") == 0) cfg.interval_ns = strtoull(val, NULL, 10) * 1000000ull;
    else if (strcmp(opt, "--probe-ms") == 0) cfg.probe_ns = strtoull(val, NULL, 10) * 1000000ull;
    else if (strcmp(opt, "--bind") == 0 && nbinds < MAX_BINDS) binds[nbinds++] = val;
    else {
      fprintf(stderr, "fullnode-reader: unknown option %s\n", opt);
      return 2;
    }
  }
  if (cfg.id < 0 || cfg.dir == NULL || cfg.events == NULL || cfg.limit_kb == 0 || cfg.interval_ns < 1000000 ||
      cfg.probe_ns < 1000000) {
    fprintf(stderr, "fullnode-reader init: --id, --dir, --events, --limit-kb are required\n");
    return 2;
  }
  for (int b = 0; b < nbinds; b++) {
    char spec[4096];
    snprintf(spec, sizeof spec, "%s", binds[b]);
    char *colon = strrchr(spec, ':');
    if (colon == NULL) {
      fprintf(stderr, "fullnode-reader: --bind expects SRC:DST, got %s\n", binds[b]);
      return 2;
    }
    *colon = '\0';
    if (mount(spec, colon + 1, NULL, MS_BIND, NULL) != 0) {
      fprintf(stderr, "fullnode-reader: bind %s over %s: %s\n", spec, colon + 1, strerror(errno));
      return 1;
    }
  }

  pid_t reader = fork();
  if (reader < 0) {
    perror("fork");
    return 1;
  }
  if (reader == 0) {
    prctl(PR_SET_NAME, "fn-reader");
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    return run_reader(&cfg);
  }
  prctl(PR_SET_NAME, "fn-init");
  /* pid 1 of a pid namespace gets only the signals it has handlers for (and SIGKILL/SIGSTOP). */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  for (;;) {
    int status;
    pid_t done = waitpid(-1, &status, 0);
    if (init_stop) {
      kill(reader, SIGKILL);
      return 0;
    }
    if (done == reader) return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    if (done < 0 && errno == ECHILD) return 1;
  }
}

/* --- aggregate -------------------------------------------------------------------------- */

struct series {
  double *lat_us;
  size_t n, cap;
  uint64_t errors, not_iso, over_1ms, over_10ms;
  int first_errno;
};

static void series_add(struct series *s, const struct sample *x) {
  if (x->error != 0) {
    if (s->errors++ == 0) s->first_errno = x->error;
    return;
  }
  if (x->state != ST_ISO) s->not_iso++;
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 4096;
    s->lat_us = realloc(s->lat_us, s->cap * sizeof *s->lat_us);
    if (s->lat_us == NULL) {
      perror("realloc");
      exit(1);
    }
  }
  double us = (double)x->latency_ns / 1000.0;
  s->lat_us[s->n++] = us;
  if (us > 1000.0) s->over_1ms++;
  if (us > 10000.0) s->over_10ms++;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(const struct series *s, double p) {
  if (s->n == 0) return 0;
  size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
  return s->lat_us[i];
}

static void series_print(const char *name, struct series *s) {
  qsort(s->lat_us, s->n, sizeof *s->lat_us, compare_double);
  printf("file=%s reads=%zu errors=%llu not_iso=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
         "over_1ms=%llu over_10ms=%llu first_errno=%d\n",
         name, s->n, (unsigned long long)s->errors, (unsigned long long)s->not_iso, percentile(s, 0.50),
         percentile(s, 0.90), percentile(s, 0.99), percentile(s, 0.999), s->n ? s->lat_us[s->n - 1] : 0.0,
         (unsigned long long)s->over_1ms, (unsigned long long)s->over_10ms, s->first_errno);
}

/* The whole second of [t0, t1) (from t0 on) whose reads had the highest median latency:
 *   worst_second=<start ns> reads=<n> p50_us= max_us=                                          */
static void print_worst_second(const char *path, uint64_t t0, uint64_t t1) {
  size_t seconds = (size_t)((t1 - t0) / 1000000000u);
  if (seconds == 0) return;
  struct series *per_second = calloc(seconds, sizeof *per_second);
  if (per_second == NULL) return;
  DIR *dir = opendir(path);
  struct dirent *entry;
  while (dir != NULL && (entry = readdir(dir)) != NULL) {
    size_t len = strlen(entry->d_name);
    if (len < 5 || strcmp(entry->d_name + len - 4, ".bin") != 0) continue;
    char file[4096];
    snprintf(file, sizeof file, "%s/%s", path, entry->d_name);
    FILE *f = fopen(file, "re");
    if (f == NULL) continue;
    struct sample x;
    while (fread(&x, sizeof x, 1, f) == 1) {
      if (x.start_realtime_ns < t0 || x.file >= NFILES) continue;
      size_t i = (size_t)((x.start_realtime_ns - t0) / 1000000000u);
      if (i < seconds) series_add(&per_second[i], &x);
    }
    fclose(f);
  }
  if (dir != NULL) closedir(dir);
  size_t worst = 0;
  double worst_p50 = -1;
  for (size_t i = 0; i < seconds; i++) {
    qsort(per_second[i].lat_us, per_second[i].n, sizeof(double), compare_double);
    double p50 = percentile(&per_second[i], 0.5);
    if (p50 > worst_p50) {
      worst_p50 = p50;
      worst = i;
    }
  }
  struct series *w = &per_second[worst];
  printf("worst_second=%llu reads=%zu p50_us=%.1f max_us=%.1f\n", (unsigned long long)(t0 + worst * 1000000000ull), w->n,
         percentile(w, 0.5), w->n ? w->lat_us[w->n - 1] : 0.0);
  for (size_t i = 0; i < seconds; i++) free(per_second[i].lat_us);
  free(per_second);
}

/* quiet[i] = 1 when, in second i of [t0, t1), the rest of the machine used < max_other % of a CPU. */
static unsigned char *quiet_seconds(const char *timeline, double hz, double max_other, uint64_t t0, size_t seconds) {
  FILE *f = fopen(timeline, "re");
  if (f == NULL) return NULL;
  unsigned char *quiet = calloc(seconds ? seconds : 1, 1);
  unsigned long long (*first)[4] = calloc(seconds ? seconds : 1, sizeof *first);
  unsigned long long (*last)[4] = calloc(seconds ? seconds : 1, sizeof *last);
  unsigned long long v[4];
  while (quiet && first && last && fscanf(f, "%llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3]) == 4) {
    if (v[0] < t0) continue;
    size_t i = (size_t)((v[0] - t0) / 1000000000u);
    if (i >= seconds) continue;
    if (first[i][0] == 0) memcpy(first[i], v, sizeof v);
    memcpy(last[i], v, sizeof v);
  }
  fclose(f);
  for (size_t i = 0; quiet && first && last && i < seconds; i++) {
    double dt = (double)(last[i][0] - first[i][0]) / 1e9;
    if (dt < 0.5) continue; /* too few monitor lines to tell: not quiet */
    double machine = (double)(last[i][1] - first[i][1]) / hz / dt * 100;
    double daemon = (double)(last[i][2] - first[i][2]) / hz / dt * 100;
    double containers = (double)(last[i][3] - first[i][3]) / 1e9 / dt * 100;
    quiet[i] = machine - daemon - containers < max_other;
  }
  free(first);
  free(last);
  return quiet;
}

static int run_aggregate(int argc, char **argv) {
  if (argc != 5 && argc != 8) {
    fprintf(stderr, "usage: fullnode-reader aggregate T0_NS T1_NS DIR [TIMELINE HZ MAX_OTHER_PCT]\n");
    return 2;
  }
  uint64_t t0 = strtoull(argv[2], NULL, 10), t1 = strtoull(argv[3], NULL, 10);
  size_t seconds = t1 > t0 ? (size_t)((t1 - t0) / 1000000000u) : 0;
  unsigned char *quiet = argc == 8 ? quiet_seconds(argv[5], atof(argv[6]), atof(argv[7]), t0, seconds) : NULL;
  struct series quiet_series;
  memset(&quiet_series, 0, sizeof quiet_series);
  DIR *dir = opendir(argv[4]);
  if (dir == NULL) {
    perror(argv[4]);
    return 1;
  }
  struct series per_file[NFILES], all;
  memset(per_file, 0, sizeof per_file);
  memset(&all, 0, sizeof all);
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL) {
    size_t len = strlen(entry->d_name);
    if (len < 5 || strcmp(entry->d_name + len - 4, ".bin") != 0) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[4], entry->d_name);
    FILE *f = fopen(path, "re");
    if (f == NULL) continue;
    struct sample x;
    while (fread(&x, sizeof x, 1, f) == 1) {
      if (x.start_realtime_ns < t0 || x.start_realtime_ns >= t1 || x.file >= NFILES) continue;
      series_add(&per_file[x.file], &x);
      series_add(&all, &x);
      size_t second = (size_t)((x.start_realtime_ns - t0) / 1000000000u);
      if (quiet != NULL && second < seconds && quiet[second]) series_add(&quiet_series, &x);
    }
    fclose(f);
  }
  closedir(dir);
  for (int f = 0; f < NFILES; f++) series_print(FILE_NAMES[f], &per_file[f]);
  series_print("all", &all);
  print_worst_second(argv[4], t0, t1);
  if (quiet != NULL) {
    size_t k = 0;
    for (size_t i = 0; i < seconds; i++) k += quiet[i];
    series_print("quiet", &quiet_series);
    printf("quiet_seconds=%zu of=%zu\n", k, seconds);
  }
  return 0;
}

/* --- monitor ---------------------------------------------------------------------------- */

/* A small file (at most size - 1 bytes) into buffer, NUL-terminated. */
static int read_small(const char *path, char *buffer, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t got = read(fd, buffer, size - 1);
  close(fd);
  if (got < 0) return -1;
  buffer[got] = '\0';
  return 0;
}

static int run_monitor(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: fullnode-reader monitor PID CPUACCT_USAGE_FILE INTERVAL_MS OUT\n");
    return 2;
  }
  const char *pid = argv[2], *cpuacct = argv[3];
  uint64_t interval_ns = strtoull(argv[4], NULL, 10) * 1000000ull;
  FILE *out = fopen(argv[5], "we");
  if (out == NULL || interval_ns == 0) {
    perror(argv[5]);
    return 1;
  }
  char stat_path[64], buffer[4096];
  snprintf(stat_path, sizeof stat_path, "/proc/%s/stat", pid);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  uint64_t next = clock_ns(CLOCK_MONOTONIC);
  while (!init_stop) {
    unsigned long long busy = 0, daemon = 0, usage = 0;
    if (read_small("/proc/stat", buffer, sizeof buffer) == 0) {
      unsigned long long v[10] = {0};
      sscanf(buffer, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
      busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]; /* user nice system irq softirq steal */
    }
    if (read_small(stat_path, buffer, sizeof buffer) != 0) break; /* the daemon is gone */
    char *after = strrchr(buffer, ')');
    if (after != NULL) {
      unsigned long long utime = 0, stime = 0;
      /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
      sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime);
      daemon = utime + stime;
    }
    if (read_small(cpuacct, buffer, sizeof buffer) == 0) usage = strtoull(buffer, NULL, 10);
    fprintf(out, "%llu %llu %llu %llu\n", (unsigned long long)clock_ns(CLOCK_REALTIME), busy, daemon, usage);
    fflush(out);
    next += interval_ns;
    sleep_until_mono(next);
  }
  fclose(out);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "monitor") == 0) return run_monitor(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "init") == 0) return run_init(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "aggregate") == 0) return run_aggregate(argc, argv);
  fprintf(stderr, "usage: fullnode-reader init --id ID --dir DIR --events FILE --limit-kb KB [--interval-ms MS] "
                  "[--probe-ms MS] [--bind SRC:DST ...]\n       fullnode-reader monitor PID CPUACCT_USAGE_FILE INTERVAL_MS OUT\n"
                  "       fullnode-reader aggregate T0_NS T1_NS DIR\n");
  return 2;
}
