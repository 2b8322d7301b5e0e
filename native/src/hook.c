/*
 * isolfs-oci-hook: an OCI createRuntime hook that asks the running isolfs daemon to attach a
 * container's files now, before its first instruction, and waits (bounded) until they are in place.
 *
 * Why createRuntime: it runs in the runtime's namespaces (its path resolves on the host, so the
 * binary lives there, not in the image; the socket is reachable; the state's pid is the
 * container's init as the host sees it), after the runtime mounted the container's /proc and
 * /sys under its rootfs and before pivot_root. The daemon binds the files under the rootfs path
 * (<rootfs>/proc/meminfo), which pivot_root keeps; a bind on the old root's /proc would be
 * discarded with it. createContainer runs in the container's pid (and user) namespace, where the
 * state's pid is 1 and a user-namespaced root cannot open a root-only socket; startContainer runs
 * after pivot_root and its path must resolve inside the image.
 *
 * Why C: it runs on every container start; it must start in a millisecond and need nothing on the
 * host (a Node script takes ~40 ms to start, socat or curl may be absent).
 *
 * Protocol (src/attach/hookServer.ts): connect to the daemon's unix socket (root-only), write
 * {"hookPid":N,"state":<the state JSON from stdin>}, shut down the writing side, read one JSON
 * line back ({"result":"attached",...}) until EOF.
 *
 * Usage: isolfs-oci-hook [--socket PATH] [--timeout-ms N]
 *   defaults /run/isolfs-hook/hook.sock and 2000 ms (the whole exchange, stdin included).
 *
 * Exit status: always 0 (the container starts whatever happens here): on timeout, a daemon that
 * is absent or refuses, or bad input, one line on stderr says why, and the daemon's periodic scan
 * attaches the container as soon as it can. Quiet when the files were attached or not wanted.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/isolfs-hook/hook.sock"
#define DEFAULT_TIMEOUT_MS 2000
/* The daemon refuses larger requests; a state is a few hundred bytes plus annotations. */
#define MAX_STATE_BYTES (60 * 1024)
#define MAX_REPLY_BYTES 4096

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long deadline_ms;

/* Says why the hook gives up and exits 0: the container starts, the daemon attaches it later. */
static void give_up(const char *what, int err) {
    if (err != 0) fprintf(stderr, "isolfs-oci-hook: %s: %s (the container starts; isolfs attaches it later)\n", what, strerror(err));
    else fprintf(stderr, "isolfs-oci-hook: %s (the container starts; isolfs attaches it later)\n", what);
    exit(0);
}

/* Waits until fd is ready for `events` or the deadline passes (then gives up). */
static void wait_for(int fd, short events, const char *what) {
    for (;;) {
        long long left = deadline_ms - now_ms();
        if (left <= 0) give_up(what, ETIMEDOUT);
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, (int)left);
        if (n > 0) return;
        if (n < 0 && errno != EINTR) give_up(what, errno);
    }
}

/* Reads fd to EOF into buf (at most cap bytes); returns the length. */
static size_t read_all(int fd, char *buf, size_t cap, const char *what) {
    size_t len = 0;
    for (;;) {
        wait_for(fd, POLLIN, what);
        ssize_t n = read(fd, buf + len, cap - len);
        if (n == 0) return len;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            give_up(what, errno);
        }
        len += (size_t)n;
        if (len == cap) give_up("input too large", EMSGSIZE);
    }
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        wait_for(fd, POLLOUT, "sending the request to isolfs");
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            give_up("sending the request to isolfs", errno);
        }
        buf += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv) {
    const char *socket_path = DEFAULT_SOCKET;
    long timeout_ms = DEFAULT_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            socket_path = argv[++i];
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            char *end;
            timeout_ms = strtol(argv[++i], &end, 10);
            if (*end != '\0' || timeout_ms < 1 || timeout_ms > 600000) give_up("--timeout-ms must be 1..600000", EINVAL);
        } else {
            give_up("usage: isolfs-oci-hook [--socket PATH] [--timeout-ms N]", EINVAL);
        }
    }
    deadline_ms = now_ms() + timeout_ms;

    /* stdin: the runtime writes the state and closes it. */
    static char request[MAX_STATE_BYTES + 64];
    int head = snprintf(request, sizeof request, "{\"hookPid\":%ld,\"state\":", (long)getpid());
    size_t state_len = read_all(STDIN_FILENO, request + head, MAX_STATE_BYTES, "reading the container state from stdin");
    if (state_len == 0) give_up("no container state on stdin", EINVAL);
    size_t len = (size_t)head + state_len;
    request[len++] = '}';

    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(socket_path) >= sizeof addr.sun_path) give_up("socket path too long", ENAMETOOLONG);
    strcpy(addr.sun_path, socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) give_up("socket", errno);
    /* ENOENT / ECONNREFUSED: no daemon listening (fails at once); EAGAIN: its backlog is full. */
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) give_up(socket_path, errno);
    write_all(fd, request, len);
    shutdown(fd, SHUT_WR);

    char reply[MAX_REPLY_BYTES + 1];
    size_t reply_len = read_all(fd, reply, MAX_REPLY_BYTES, "waiting for isolfs to attach");
    reply[reply_len] = '\0';
    while (reply_len > 0 && reply[reply_len - 1] == '\n') reply[--reply_len] = '\0';
    /* The daemon puts the result first; anything but a success or a "not wanted" is worth a line. */
    if (strncmp(reply, "{\"result\":\"attached\"", 20) != 0 && strncmp(reply, "{\"result\":\"skipped\"", 19) != 0) {
        fprintf(stderr, "isolfs-oci-hook: isolfs answered %s (the container starts; isolfs attaches it later)\n",
                reply_len > 0 ? reply : "nothing");
    }
    return 0;
}
