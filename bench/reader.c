/*
 * reader: the benchmark's load generator. Each worker loops open + read-until-EOF + close on one
 * path, as `cat` or procps do for every refresh, and counts completed iterations.
 *
 *   reader [-j WORKERS] [-d SECONDS | -n ITERATIONS] PATH
 *
 * Prints one line of key=value pairs:
 *   ops=<total iterations> seconds=<wall time> rate=<iterations/s, all workers>
 *   us_per_op=<mean latency of one iteration, per worker> bytes=<bytes of the last read file>
 *
 * Written in C so that the reader costs almost nothing next to what it measures (the kernel's
 * own /proc/meminfo takes ~13 µs here; a Node loop would add more than that). Workers are forked
 * after the caller has placed this process in its cgroup, so they inherit it, and they start
 * together on a pipe so concurrent runs overlap for their whole duration.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Large enough that every served file is read in one call plus the EOF call, like cat's buffer. */
#define BUFFER_BYTES (64 * 1024)

struct worker_result {
  uint64_t iterations;
  uint64_t elapsed_ns;
  uint64_t last_bytes;
  int error_errno; /* 0 = no error */
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One open + read-until-EOF + close. Returns bytes read, or -errno. */
static int64_t read_once(const char *path, char *buffer) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int64_t total = 0;
  for (;;) {
    ssize_t got = read(fd, buffer, BUFFER_BYTES);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      close(fd);
      return -saved;
    }
    total += got;
  }
  close(fd);
  return total;
}

static struct worker_result run_worker(const char *path, double seconds, uint64_t iterations_wanted) {
  static char buffer[BUFFER_BYTES];
  struct worker_result result = {0, 0, 0, 0};
  uint64_t start = now_ns();
  uint64_t deadline = start + (uint64_t)(seconds * 1e9);
  for (;;) {
    if (iterations_wanted > 0 ? result.iterations >= iterations_wanted : now_ns() >= deadline) break;
    int64_t got = read_once(path, buffer);
    if (got < 0) {
      result.error_errno = (int)-got;
      break;
    }
    /* An empty file would mean the server answered nothing: count it as an error, not a win. */
    if (got == 0) {
      result.error_errno = ENODATA;
      break;
    }
    result.last_bytes = (uint64_t)got;
    result.iterations++;
  }
  result.elapsed_ns = now_ns() - start;
  return result;
}

static void usage(void) {
  fprintf(stderr, "usage: reader [-j WORKERS] [-d SECONDS | -n ITERATIONS] PATH\n");
  exit(2);
}

int main(int argc, char **argv) {
  int workers = 1;
  double seconds = 1.0;
  uint64_t iterations = 0;
  int opt;
  while ((opt = getopt(argc, argv, "j:d:n:")) != -1) {
    switch (opt) {
      case 'j': workers = atoi(optarg); break;
      case 'd': seconds = atof(optarg); break;
      case 'n': iterations = strtoull(optarg, NULL, 10); break;
      default: usage();
    }
  }
  if (optind != argc - 1 || workers < 1 || workers > 256 || (iterations == 0 && seconds <= 0)) usage();
  const char *path = argv[optind];

  int start_pipe[2];
  int result_pipe[2];
  if (pipe(start_pipe) != 0 || pipe(result_pipe) != 0) {
    perror("pipe");
    return 1;
  }
  pid_t pids[256];
  for (int i = 0; i < workers; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      close(start_pipe[1]);
      close(result_pipe[0]);
      char go;
      /* Blocks until the parent closes its end: every worker starts at the same moment. */
      while (read(start_pipe[0], &go, 1) < 0 && errno == EINTR) {}
      struct worker_result result = run_worker(path, seconds, iterations);
      /* sizeof(result) < PIPE_BUF, so each worker's write is atomic. */
      if (write(result_pipe[1], &result, sizeof result) != (ssize_t)sizeof result) _exit(1);
      _exit(0);
    }
    pids[i] = pid;
  }
  close(start_pipe[0]);
  close(result_pipe[1]);
  close(start_pipe[1]);

  uint64_t total_ops = 0;
  double rate = 0, latency_sum_us = 0, wall_s = 0;
  uint64_t bytes = 0;
  int failed_errno = 0, received = 0;
  struct worker_result result;
  while (received < workers) {
    ssize_t got = read(result_pipe[0], &result, sizeof result);
    if (got < 0 && errno == EINTR) continue;
    if (got != (ssize_t)sizeof result) break;
    received++;
    total_ops += result.iterations;
    double elapsed_s = (double)result.elapsed_ns / 1e9;
    if (elapsed_s > wall_s) wall_s = elapsed_s;
    /* Summing per-worker rates is exact even when workers stop a few µs apart. */
    if (result.iterations > 0) {
      rate += (double)result.iterations / elapsed_s;
      latency_sum_us += elapsed_s * 1e6 / (double)result.iterations;
    }
    bytes = result.last_bytes;
    if (result.error_errno) failed_errno = result.error_errno;
  }
  int status, worker_failed = 0;
  for (int i = 0; i < workers; i++) {
    if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) worker_failed = 1;
  }
  if (received < workers || worker_failed) {
    fprintf(stderr, "reader: %d of %d workers reported\n", received, workers);
    return 1;
  }
  if (failed_errno) {
    fprintf(stderr, "reader: %s: %s (after %llu iterations)\n", path, strerror(failed_errno), (unsigned long long)total_ops);
    return 1;
  }
  printf("ops=%llu seconds=%.3f rate=%.0f us_per_op=%.1f bytes=%llu\n", (unsigned long long)total_ops, wall_s, rate,
         latency_sum_us / workers, (unsigned long long)bytes);
  return 0;
}
