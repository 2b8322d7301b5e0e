/*
 * Poll watches: a kernel fd tied to one open FUSE file handle, whose POLLPRI events are passed
 * on to the kernel's poller of that handle (fuse_lowlevel_notify_poll).
 *
 * Used for PSI triggers: JS opens the container's real cgroup pressure file and writes the
 * trigger there; the fd comes here. libuv polls it (epoll, EPOLLPRI) on the main loop, so no
 * thread ever blocks on it. An event is latched (`pending`) as the kernel's own trigger latches
 * it (psi_trigger_poll consumes the event when polled, and epoll polls it first), and the poll
 * handle of the FUSE file's last POLL is notified so the reader polls again and JS, asking
 * pollwatch_take_event, answers POLLPRI. Everything here runs on the main thread; nothing is
 * decided here (JS decides which handles have a watch, and what a POLL answers).
 *
 * One-shot: after an event the fd is not polled again until the file's next POLL that waits
 * (pollwatch_keep_handle re-arms it). An fd that stays ready (its cgroup was removed: kernfs then
 * answers POLLERR|POLLPRI forever) would otherwise fire on every loop iteration and spin the
 * daemon; this way it costs one wake-up per POLL of its reader, as the kernel's own file would.
 */
#include <poll.h>
#include "pollwatch.h"

#include <stdlib.h>
#include <unistd.h>

#define WATCH_BUCKETS 64

typedef struct watch_s {
  const void *owner; /* the session */
  uint64_t fh;
  int fd;
  int pending;
  int armed; /* in libuv's poll set */
  uv_poll_t *uv;
  struct fuse_pollhandle *ph; /* the poller to notify; NULL when none waits */
  struct watch_s *next;
} watch_t;

static watch_t *buckets[WATCH_BUCKETS];

static unsigned bucket_of(const void *owner, uint64_t fh) {
  return (unsigned)(((uintptr_t)owner >> 4) ^ fh) % WATCH_BUCKETS;
}

static watch_t **find_slot(const void *owner, uint64_t fh) {
  watch_t **p = &buckets[bucket_of(owner, fh)];
  while (*p && !((*p)->owner == owner && (*p)->fh == fh)) p = &(*p)->next;
  return p;
}

static void notify(watch_t *w) {
  if (w->ph == NULL) return;
  fuse_lowlevel_notify_poll(w->ph);
  fuse_pollhandle_destroy(w->ph);
  w->ph = NULL;
}

static void on_event(uv_poll_t *handle, int status, int events) {
  (void)events;
  (void)status;
  watch_t *w = handle->data;
  w->pending = 1;
  uv_poll_stop(handle);
  w->armed = 0;
  notify(w);
}

static void uv_freed(uv_handle_t *handle) { free(handle); }

int pollwatch_add(uv_loop_t *loop, const void *owner, uint64_t fh, int fd) {
  watch_t **slot = find_slot(owner, fh);
  if (*slot) return EEXIST;
  watch_t *w = calloc(1, sizeof(watch_t));
  uv_poll_t *uv = malloc(sizeof(uv_poll_t));
  if (w == NULL || uv == NULL) {
    free(w);
    free(uv);
    return ENOMEM;
  }
  int rc = uv_poll_init(loop, uv, fd);
  if (rc == 0) {
    uv->data = w;
    rc = uv_poll_start(uv, UV_PRIORITIZED, on_event);
    if (rc != 0) uv_close((uv_handle_t *)uv, uv_freed);
  } else {
    free(uv);
  }
  if (rc != 0) {
    free(w);
    return rc < 0 ? -rc : EIO; /* libuv errors are negated errnos */
  }
  w->owner = owner;
  w->fh = fh;
  w->fd = fd;
  w->uv = uv;
  w->armed = 1;
  *slot = w;
  return 0;
}

int pollwatch_take_event(const void *owner, uint64_t fh) {
  watch_t *w = *find_slot(owner, fh);
  if (w == NULL) return 0;
  if (!w->pending && !w->armed) {
    /* not in the poll set since its last event: ask the fd itself, without waiting */
    struct pollfd pfd = {.fd = w->fd, .events = POLLPRI};
    if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLPRI | POLLERR))) w->pending = 1;
  }
  if (!w->pending) return 0;
  w->pending = 0;
  return 1;
}

int pollwatch_keep_handle(const void *owner, uint64_t fh, struct fuse_pollhandle *ph) {
  watch_t *w = *find_slot(owner, fh);
  if (w == NULL) return 0;
  if (w->ph) fuse_pollhandle_destroy(w->ph);
  w->ph = ph;
  if (!w->armed && uv_poll_start(w->uv, UV_PRIORITIZED, on_event) == 0) w->armed = 1;
  return 1;
}

static void unlink_and_free(watch_t **slot) {
  watch_t *w = *slot;
  *slot = w->next;
  uv_poll_stop(w->uv);
  uv_close((uv_handle_t *)w->uv, uv_freed);
  close(w->fd); /* after uv_poll_stop: libuv no longer has it in its epoll set */
  if (w->ph) fuse_pollhandle_destroy(w->ph);
  free(w);
}

int pollwatch_remove(const void *owner, uint64_t fh) {
  watch_t **slot = find_slot(owner, fh);
  if (*slot == NULL) return 0;
  unlink_and_free(slot);
  return 1;
}

void pollwatch_remove_owner(const void *owner) {
  for (unsigned b = 0; b < WATCH_BUCKETS; b++) {
    watch_t **p = &buckets[b];
    while (*p) {
      if ((*p)->owner == owner) unlink_and_free(p);
      else p = &(*p)->next;
    }
  }
}
