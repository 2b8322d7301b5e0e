/* The watchdog's last resort (deadman.c): a thread that aborts our FUSE connections and kills the
 * process when the main thread stops beating or an exit is overdue. Callable from any thread. */
#ifndef ISOLFS_DEADMAN_H
#define ISOLFS_DEADMAN_H

#include <stdint.h>

#define DEADMAN_MAX_CONNECTIONS 8

/* Watches for `limit_ms` without a beat (0: no such watch) and aborts these fusectl connections
 * (device minors) when acting; starts the thread on the first call. 0, or pthread_create's errno. */
int deadman_arm(int64_t limit_ms, const unsigned *minors, int count);
/* The main thread is running. */
void deadman_beat(void);
/* No more beats will come (an orderly stop): only a deadline makes it act from now on. */
void deadman_stop_watching(void);
/* Abort and kill `ms` from now unless the process has ended (an earlier deadline stands). */
void deadman_kill_after(int64_t ms, const char *why);

#endif
