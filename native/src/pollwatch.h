/* Poll watches: kernel fds whose POLLPRI events wake the poller of one FUSE file handle
 * (pollwatch.c). Main thread only. */
#ifndef ISOLFS_POLLWATCH_H
#define ISOLFS_POLLWATCH_H

#include <errno.h>
#include <stdint.h>

#include <fuse_lowlevel.h>
#include <uv.h>

/* Watches `fd` for handle `fh` of session `owner`, and owns it from now on (closed at removal).
 * 0, or an errno (EEXIST: the handle has a watch; the fd is then not taken). */
int pollwatch_add(uv_loop_t *loop, const void *owner, uint64_t fh, int fd);
/* 1 if an event came since the last call (and forgets it), else 0. While the fd is out of the
 * poll set (after an event) its readiness is asked directly, without waiting. */
int pollwatch_take_event(const void *owner, uint64_t fh);
/* Keeps `ph` to notify at the next event (replacing an older one) and polls the fd again if an
 * event had stopped it: 1, or 0 if the handle has no watch (the caller still owns `ph`). */
int pollwatch_keep_handle(const void *owner, uint64_t fh, struct fuse_pollhandle *ph);
/* Ends the handle's watch and closes its fd: 1, or 0 if it had none. */
int pollwatch_remove(const void *owner, uint64_t fh);
/* Ends every watch of the session (teardown). */
void pollwatch_remove_owner(const void *owner);

#endif
