/*
 * The PSI trigger reader of test/integration/pressure.test.ts, as systemd-oomd and Kubernetes
 * agents use the file: open it read-write, write a trigger, poll(2) for POLLPRI. Small on
 * purpose: in a cgroup throttled by memory.high every page a reader charges costs it a penalty.
 *
 * usage: psi_reader FILE TRIGGER TIMEOUT_S [COUNT [WAITS]]
 *   COUNT > 1: opens that many files, each with the trigger (accepted: how many took it).
 *   WAITS > 1: polls again after each POLLPRI (events: how many came before the timeout).
 * Prints one JSON line: accepted, writeErrno (the first refused write's), secondWriteErrno (a
 * second write to the first file), events, pri, pollSeconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s FILE TRIGGER TIMEOUT_S [COUNT [WAITS]]\n", argv[0]);
    return 2;
  }
  double timeout_s = atof(argv[3]);
  int count = argc > 4 ? atoi(argv[4]) : 1;
  int waits = argc > 5 ? atoi(argv[5]) : 1;
  char trigger[256];
  int len = snprintf(trigger, sizeof(trigger), "%s\n", argv[2]);
  int first = -1;
  int accepted = 0;
  const char *write_errno = NULL;
  for (int i = 0; i < count; i++) {
    int fd = open(argv[1], O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      write_errno = strerrorname_np(errno);
      break;
    }
    if (first < 0) first = fd;
    if (write(fd, trigger, (size_t)len) != len) {
      write_errno = strerrorname_np(errno);
      break;
    }
    accepted++;
  }
  printf("{\"accepted\": %d", accepted);
  if (write_errno) {
    printf(", \"writeErrno\": \"%s\"}\n", write_errno);
    return 0;
  }
  if (write(first, trigger, (size_t)len) < 0) printf(", \"secondWriteErrno\": \"%s\"", strerrorname_np(errno));
  struct pollfd pfd = {.fd = first, .events = POLLPRI};
  double start = now_s();
  int events = 0;
  while (events < waits) {
    double left_s = timeout_s - (now_s() - start);
    if (left_s <= 0) break;
    pfd.revents = 0;
    int n = poll(&pfd, 1, (int)(left_s * 1000));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !(pfd.revents & POLLPRI)) break;
    events++;
  }
  printf(", \"events\": %d, \"pri\": %s, \"pollSeconds\": %.2f}\n", events, events > 0 ? "true" : "false", now_s() - start);
  return 0;
}
