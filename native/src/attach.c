/*
 * isolfs-attach: attach files into a running container's mount namespace.
 *
 * Why a separate program: setns(CLONE_NEWNS) refuses a process whose fs_struct is shared, i.e.
 * any multi-threaded process, so Node cannot enter a container's mount namespace itself. This
 * helper is single-threaded, does one job per invocation (with --batch, one per namespace, each
 * in a forked child: entering a namespace has no way back) and exits.
 *
 * Why open_tree + move_mount: runc refuses bind mounts over /proc files outside a short list
 * (/proc/vmstat is not on it), so a pod cannot ask for them at creation. A detached clone of a
 * host file (open_tree(OPEN_TREE_CLONE)) taken *before* entering the namespace can be attached
 * *after* entering it (move_mount), without the host path ever being visible inside.
 *
 * Usage:
 *   isolfs-attach --pid PID [--read-only] [--root ROOT] SRC:DST:IDS [SRC:DST:IDS ...]
 *                                                 detach the named mounts on DST, attach SRC over it
 *   isolfs-attach --pid PID --check DST [DST ...]    report the state of each DST
 *   isolfs-attach --pid PID --unmount DST:IDS [DST:IDS ...]
 *                                                 detach the named mounts on DST, attach nothing
 *   isolfs-attach --batch [--read-only] [--ns-timeout-ms MS] -- @PID[=ROOT] SRC:DST:IDS ... [@PID ...]
 *                                                 attach, in each listed namespace in turn (at most
 *                                                 MAX_BATCH_GROUPS): its sources cloned here, then a
 *                                                 forked child enters it (killed after MS, default
 *                                                 2000); output per namespace: "ns PID", then its
 *                                                 lines as below, or one "fatal ERRNAME pid PID: ..."
 *                                                 (gone, cannot enter, timed out: nothing more there)
 *
 * SRC:DST:IDS is split at the LAST two colons (host sources may contain colons; container
 * targets are fixed paths such as /proc/vmstat), DST:IDS at the last one. IDS is empty or a
 * comma-separated list of at most MAX_DETACH_IDS mount ids (positive integers, mountinfo's first
 * field, as the caller read them from the container's mountinfo). DST is resolved inside the
 * container: after setns the helper chroots to /proc/PID/root, the root that process sees. DST
 * must already exist (a bind covers an existing file; nothing is ever created inside a
 * container) and must not contain whitespace (output is space-separated). ROOT (the OCI hook's
 * rootfs before pivot_root, a path in the process's root): every DST is under it, and the
 * helper chroots into it too, so DST past ROOT resolves with the rootfs as "/" (an image's
 * absolute symlink cannot point into the host's root). A DST with a symlink on its path, or
 * that is one, is refused (ELOOP), as runc refuses one for /proc.
 *
 * Before attaching (and for --unmount, instead of it), the helper detaches the topmost mount on
 * DST while its id is in IDS, and nothing else: which mounts to replace is the caller's
 * decision. The new mount goes on top of whatever is left. The id comes from statx
 * STATX_MNT_ID (Linux 5.8+) or, on older kernels, from name_to_handle_at (FUSE, tmpfs, ext4...
 * have file handles); when neither can tell and something is mounted on DST, nothing is
 * detached and the item fails (e.g. EOPNOTSUPP: the top mount's file system has no file
 * handles). Tests only: ISOLFS_ATTACH_TEST_HANDLE_MNT_ID=1 in the environment makes the helper
 * ignore statx's Linux 5.8 answers (STATX_MNT_ID, STATX_ATTR_MOUNT_ROOT), so the older kernels'
 * paths run on a new one.
 *
 * Output: one line per DST on stdout, in argument order, first word the result:
 *   attach:  "ok DST detached=N" | "err DST ERRNAME message"     (N: named mounts detached)
 *   check:   "live DST" | "dead DST" | "absent DST" | "not-mounted DST" | "err DST ERRNAME message"
 *   unmount: "ok DST detached=N" | "err DST ERRNAME message"     (N may be 0: the top was not named)
 * "dead" means a mount whose FUSE connection is gone (stat fails with ENOTCONN).
 *
 * Exit status: 0 every item succeeded (for --check: every state was determined), 1 at least one
 * item failed (see its line), 2 usage error, 3 could not enter the container (nothing was done;
 * no stdout, one line on stderr starting "isolfs-attach: ERRNAME").
 *
 * --read-only: make the attached mounts read-only (mount_setattr, Linux 5.12+), so a container
 * cannot write through to the source even where the source itself would allow it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* Older glibc/kernel headers may lack these (open_tree/move_mount are Linux 5.2+). */
#ifndef SYS_open_tree
#  if defined(__x86_64__) || defined(__aarch64__)
#    define SYS_open_tree 428
#  endif
#endif
#ifndef SYS_move_mount
#  if defined(__x86_64__) || defined(__aarch64__)
#    define SYS_move_mount 429
#  endif
#endif
#ifndef OPEN_TREE_CLONE
#  define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#  define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef SYS_mount_setattr
#  if defined(__x86_64__) || defined(__aarch64__)
#    define SYS_mount_setattr 442
#  endif
#endif
#ifndef MOUNT_ATTR_RDONLY
#  define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#  define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#  define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#  define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif
#ifndef AT_STATX_FORCE_SYNC
#  define AT_STATX_FORCE_SYNC 0x2000
#endif
#ifndef AT_STATX_DONT_SYNC
#  define AT_STATX_DONT_SYNC 0x4000
#endif
#ifndef STATX_MNT_ID
#  define STATX_MNT_ID 0x00001000U
#endif
#ifndef UMOUNT_NOFOLLOW
#  define UMOUNT_NOFOLLOW 0x8
#endif

/* Mount ids per target; the caller (src/attach/attach.ts MAX_DETACH_IDS) keeps the same bound. */
#define MAX_DETACH_IDS 16
/* --batch bounds: namespaces per run and arguments in all (src/attach/attachBatch.ts keeps within them). */
#define MAX_BATCH_GROUPS 64
#define MAX_BATCH_ARGS 2048

enum mode { MODE_ATTACH, MODE_CHECK, MODE_UNMOUNT };

struct item {
    const char *src; /* attach only */
    const char *dst;
    const char *path; /* dst as resolved in the group's root: dst, or dst past the group's --root */
    int tree_fd;     /* attach only: the detached clone of src, or -1 */
    int detach_ids[MAX_DETACH_IDS]; /* attach and unmount: mounts the caller named for detaching */
    int detach_count;
    int src_errno;   /* attach only: why the source could not be prepared ... */
    const char *src_what; /* ... and at which step */
};

static const char *errno_name(int err) {
    /* strerrorname_np needs glibc 2.32; a table keeps the helper building on older images. */
    switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EIO: return "EIO";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EXDEV: return "EXDEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case EROFS: return "EROFS";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case ENOTCONN: return "ENOTCONN";
    case ECONNABORTED: return "ECONNABORTED";
    case ESTALE: return "ESTALE";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EOVERFLOW: return "EOVERFLOW";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINTR: return "EINTR";
    default: {
        static char buf[16];
        snprintf(buf, sizeof buf, "E%d", err);
        return buf;
    }
    }
}

static void usage(const char *why) {
    fprintf(stderr,
            "isolfs-attach: %s\n"
            "usage: isolfs-attach --pid PID [--read-only] SRC:DST:IDS [SRC:DST:IDS ...]\n"
            "       isolfs-attach --pid PID --check DST [DST ...]\n"
            "       isolfs-attach --pid PID --unmount DST:IDS [DST:IDS ...]\n"
            "       isolfs-attach --batch [--read-only] [--ns-timeout-ms MS] -- @PID SRC:DST:IDS ... [@PID ...]\n",
            why);
    exit(2);
}

static void fatal(int err, const char *what, long pid) {
    fprintf(stderr, "isolfs-attach: %s pid %ld: %s: %s\n", errno_name(err), pid, what, strerror(err));
    exit(3);
}

static void item_error(const char *dst, int err, const char *what) {
    printf("err %s %s %s: %s\n", dst, errno_name(err), what, strerror(err));
}

static int has_whitespace(const char *s) {
    for (; *s; s++)
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') return 1;
    return 0;
}

static int sys_open_tree(int dfd, const char *path, unsigned flags) {
    return (int)syscall(SYS_open_tree, dfd, path, flags);
}

/* Our own copy of struct mount_attr: glibc's <sys/mount.h> only has it from 2.36 on. */
struct isolfs_mount_attr {
    unsigned long long attr_set;
    unsigned long long attr_clr;
    unsigned long long propagation;
    unsigned long long userns_fd;
};

static int sys_mount_setattr_rdonly(int fd) {
    struct isolfs_mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
    return (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
}

static int sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to, unsigned flags) {
    return (int)syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}

/* From ISOLFS_ATTACH_TEST_HANDLE_MNT_ID (tests only): ignore statx's 5.8 answers (STATX_MNT_ID,
 * STATX_ATTR_MOUNT_ROOT), so the pre-5.8 paths run on a new kernel. */
static int pre_5_8_statx;

/*
 * Is `path` the root of a mount? statx's STATX_ATTR_MOUNT_ROOT (Linux 5.8+) answers directly;
 * on older kernels a different device than the parent directory is the classic test.
 * Returns 1/0, or -1 with errno set (ENOTCONN for a dead FUSE mount). sync_flag: FORCE_SYNC makes
 * FUSE ask its daemon instead of answering from cached attributes, so a dead connection is
 * noticed; DONT_SYNC asks no daemon.
 */
static int is_mount_root(const char *path, struct statx *stx, int sync_flag) {
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | sync_flag, STATX_TYPE | STATX_INO, stx) != 0) return -1;
    if ((stx->stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && !pre_5_8_statx) return (stx->stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
    char parent[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof parent) { errno = ENAMETOOLONG; return -1; }
    memcpy(parent, path, len + 1);
    char *slash = strrchr(parent, '/');
    if (!slash) return 0;
    if (slash == parent) slash[1] = '\0'; else *slash = '\0';
    struct statx pstx;
    if (statx(AT_FDCWD, parent, 0, STATX_INO, &pstx) != 0) return -1;
    return pstx.stx_dev_major != stx->stx_dev_major || pstx.stx_dev_minor != stx->stx_dev_minor;
}

static int is_named(const struct item *it, unsigned long long mnt_id) {
    for (int i = 0; i < it->detach_count; i++)
        if ((unsigned long long)it->detach_ids[i] == mnt_id) return 1;
    return 0;
}

/*
 * The id of the topmost mount on path, as in mountinfo; returns 0, or -1 with errno set. statx answers
 * from Linux 5.8 on; before, name_to_handle_at fills in the mount id even when the handle does
 * not fit (EOVERFLOW: we ask for none), on any file system with file handles (FUSE has them).
 * DONT_SYNC: a dead FUSE mount answers from cached attributes instead of ENOTCONN; neither call
 * asks the file system's daemon.
 */
static int top_mount_id(const char *path, unsigned long long *mnt_id) {
    struct statx stx;
    if (!pre_5_8_statx) {
        if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) != 0) return -1;
        if (stx.stx_mask & STATX_MNT_ID) { *mnt_id = stx.stx_mnt_id; return 0; }
    }
    struct file_handle fh = { .handle_bytes = 0 };
    int id;
    if (name_to_handle_at(AT_FDCWD, path, &fh, &id, 0) != 0 && errno != EOVERFLOW) return -1;
    *mnt_id = (unsigned long long)id;
    return 0;
}

/*
 * Detach the topmost mount on dst while its id is one the caller named; returns how many, or -1
 * with errno set and *what saying which step failed. A mount whose id cannot be read counts as
 * not named: nothing more is detached, and the item fails rather than stack on an unknown top;
 * unless nothing is mounted on dst (the mount read is the one dst is in, e.g. procfs, which has
 * no file handles), where statx too would have found nothing named.
 */
static int detach_named(const struct item *it, const char **what) {
    int detached = 0;
    while (detached < it->detach_count) {
        unsigned long long mnt_id;
        if (top_mount_id(it->path, &mnt_id) != 0) {
            int err = errno;
            struct statx stx;
            if (err == EOPNOTSUPP && is_mount_root(it->path, &stx, AT_STATX_DONT_SYNC) == 0) return detached;
            errno = err;
            if (errno == ENOENT) *what = "target does not exist in the container (not created)";
            else if (errno == EOPNOTSUPP) *what = "cannot read the top mount's id (no STATX_MNT_ID, and its file system has no file handles): not detached";
            else *what = "cannot read the top mount's id: not detached";
            return -1;
        }
        if (!is_named(it, mnt_id)) return detached;
        if (umount2(it->path, MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
            *what = "cannot detach a named mount";
            return -1;
        }
        detached++;
    }
    return detached;
}

/*
 * Refuses a target with a symlink among the directories leading to it, as runc refuses one for
 * /proc: a bind must land on the container's own file, never where an image's link points
 * (before pivot_root, an absolute link would point into the host's root). Returns 0, or -1 with
 * *what set. Components that cannot be looked at (gone, a dead mount) are left to the steps
 * after, which report them.
 */
static int symlink_on_path(const char *path, const char **what) {
    char prefix[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof prefix) return 0;
    for (const char *slash = strchr(path + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        memcpy(prefix, path, (size_t)(slash - path));
        prefix[slash - path] = '\0';
        struct stat st;
        if (lstat(prefix, &st) == 0 && S_ISLNK(st.st_mode)) {
            *what = "a directory on the target's path is a symlink: refused";
            return -1;
        }
    }
    return 0;
}

static int attach_one(const struct item *it) {
    if (it->tree_fd < 0) {
        errno = it->src_errno;
        item_error(it->dst, errno, it->src_what);
        return -1;
    }
    const char *what = NULL;
    if (symlink_on_path(it->path, &what) != 0) {
        item_error(it->dst, ELOOP, what);
        return -1;
    }
    int detached = detach_named(it, &what);
    if (detached < 0) {
        item_error(it->dst, errno, what);
        return -1;
    }
    struct statx stx;
    /* FORCE_SYNC: a dead FUSE mount must answer ENOTCONN, not its cached attributes. */
    if (statx(AT_FDCWD, it->path, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) != 0) {
        int err = errno;
        if (err == ENOENT) item_error(it->dst, err, "target does not exist in the container (not created)");
        else if (err == ENOTCONN) item_error(it->dst, err, "target is a dead FUSE mount not named for detaching");
        else item_error(it->dst, err, "cannot stat target");
        return -1;
    }
    if (S_ISLNK(stx.stx_mode)) {
        item_error(it->dst, ELOOP, "target is a symlink: refused");
        return -1;
    }
    /* Without MOVE_MOUNT_T_SYMLINKS the final component is not followed: a symlink planted by the
     * container cannot redirect the mount. The path itself resolves under the container's root. */
    if (sys_move_mount(it->tree_fd, "", AT_FDCWD, it->path, MOVE_MOUNT_F_EMPTY_PATH) != 0) {
        item_error(it->dst, errno, "move_mount failed");
        return -1;
    }
    printf("ok %s detached=%d\n", it->dst, detached);
    return 0;
}

/* IDS of SRC:DST:IDS or DST:IDS: empty, or up to MAX_DETACH_IDS positive ints separated by commas. */
static void parse_detach_ids(const char *ids, struct item *it) {
    for (const char *p = ids; *p != '\0';) {
        if (it->detach_count == MAX_DETACH_IDS) usage("too many mount ids for one target");
        const char *start = p;
        long id = 0;
        for (; *p >= '0' && *p <= '9'; p++) {
            id = id * 10 + (*p - '0');
            if (id > INT_MAX) usage("mount ids must be positive integers separated by commas");
        }
        if (p == start || id == 0 || (*p != ',' && *p != '\0') || (*p == ',' && p[1] == '\0'))
            usage("mount ids must be positive integers separated by commas");
        it->detach_ids[it->detach_count++] = (int)id;
        if (*p == ',') p++;
    }
}

static int check_one(const char *dst) {
    struct statx stx;
    int root = is_mount_root(dst, &stx, AT_STATX_FORCE_SYNC);
    if (root < 0) {
        if (errno == ENOTCONN) { printf("dead %s\n", dst); return 0; }
        if (errno == ENOENT) { printf("absent %s\n", dst); return 0; }
        item_error(dst, errno, "cannot stat target");
        return -1;
    }
    printf("%s %s\n", root ? "live" : "not-mounted", dst);
    return 0;
}

static int unmount_one(const struct item *it) {
    const char *what = NULL;
    int detached = detach_named(it, &what);
    if (detached < 0) {
        item_error(it->dst, errno, what);
        return -1;
    }
    printf("ok %s detached=%d\n", it->dst, detached);
    return 0;
}

/* One target namespace of a run: its process and its items (a slice of the run's items). */
struct group {
    long pid;
    /* Where the container's / is in the process's root (before pivot_root: its rootfs); NULL: "/". */
    const char *root;
    struct item *items;
    int count;
};

/* Set in a --batch child: fatal errors become a "fatal" line on stdout (the run goes on). */
static int batch_child;

static void group_fatal(int err, const char *what, long pid) {
    if (!batch_child) fatal(err, what, pid);
    printf("fatal %s pid %ld: %s: %s\n", errno_name(err), pid, what, strerror(err));
    fflush(stdout);
    _exit(3);
}

/*
 * A group's ROOT (@PID=ROOT, --root): every DST must be under it, and is resolved past it once
 * the helper has made ROOT its root (run_group).
 */
static void set_root(struct group *g) {
    if (g->root == NULL) return;
    size_t len = strlen(g->root);
    if (g->root[0] != '/' || has_whitespace(g->root)) usage("ROOT must be an absolute path without whitespace");
    while (len > 1 && g->root[len - 1] == '/') len--;
    if (len == 1) { g->root = NULL; return; }
    for (int i = 0; i < g->count; i++) {
        struct item *it = &g->items[i];
        if (strncmp(it->dst, g->root, len) != 0 || it->dst[len] != '/') usage("every DST must be under ROOT");
        it->path = it->dst + len;
    }
}

/* Parses one SRC:DST:IDS, DST:IDS or DST argument into it (modifies arg). */
static void parse_item(char *arg, enum mode mode, struct item *it) {
    it->tree_fd = -1;
    if (mode == MODE_ATTACH) {
        char *ids_colon = strrchr(arg, ':');
        if (!ids_colon) usage("attach arguments are SRC:DST:IDS");
        *ids_colon = '\0';
        parse_detach_ids(ids_colon + 1, it);
        char *colon = strrchr(arg, ':');
        if (!colon || colon == arg || colon[1] == '\0') usage("attach arguments are SRC:DST:IDS");
        *colon = '\0';
        it->src = arg;
        it->dst = colon + 1;
    } else if (mode == MODE_UNMOUNT) {
        char *ids_colon = strrchr(arg, ':');
        if (!ids_colon) usage("unmount arguments are DST:IDS");
        *ids_colon = '\0';
        parse_detach_ids(ids_colon + 1, it);
        it->dst = arg;
    } else {
        it->dst = arg;
    }
    it->path = it->dst;
    if (it->dst[0] != '/') usage("DST must be an absolute path");
    if (has_whitespace(it->dst)) usage("DST must not contain whitespace");
}

/*
 * The directories of a group's sources, opened once each (O_PATH): a container's 14 sources sit in
 * 4 directories of its subtree, whose names our daemon lets no kernel cache, so a walk of each
 * full path asked it ~50 LOOKUPs per container; from the directory, one per file.
 */
#define DIR_CACHE_SIZE 16
struct dir_cache {
    char paths[DIR_CACHE_SIZE][PATH_MAX];
    int fds[DIR_CACHE_SIZE];
    int count;
};

/* open_tree(OPEN_TREE_CLONE) of src, through its directory's fd when it can be kept. */
static int clone_source(struct dir_cache *dirs, const char *src) {
    const unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC;
    const char *slash = strrchr(src, '/');
    const char *base = slash ? slash + 1 : src;
    size_t dir_len = slash ? (size_t)(slash - src) : 0;
    /* Only plain names under an absolute directory; anything else walks the whole path. */
    if (!slash || slash == src || dir_len >= PATH_MAX || base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return sys_open_tree(AT_FDCWD, src, flags);
    int d = 0;
    for (; d < dirs->count; d++)
        if (strncmp(dirs->paths[d], src, dir_len) == 0 && dirs->paths[d][dir_len] == '\0') break;
    if (d == dirs->count) {
        if (dirs->count == DIR_CACHE_SIZE) return sys_open_tree(AT_FDCWD, src, flags);
        memcpy(dirs->paths[d], src, dir_len);
        dirs->paths[d][dir_len] = '\0';
        int fd = open(dirs->paths[d], O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return sys_open_tree(AT_FDCWD, src, flags); /* its own errno, as before */
        dirs->fds[d] = fd;
        dirs->count++;
    }
    return sys_open_tree(dirs->fds[d], base, flags);
}

/*
 * In the host's namespace: opens the group's mount namespace and root, and clones its sources.
 * Returns 0, or an errno with *what set (nothing was opened then).
 */
static int prepare_group(struct group *g, enum mode mode, int read_only, int *ns_fd, int *root_fd, const char **what) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/ns/mnt", g->pid);
    *ns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*ns_fd < 0) { *what = "cannot open its mount namespace"; return errno == ENOENT ? ESRCH : errno; }
    snprintf(path, sizeof path, "/proc/%ld/root", g->pid);
    *root_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*root_fd < 0) {
        int err = errno == ENOENT ? ESRCH : errno;
        close(*ns_fd);
        *what = "cannot open its root";
        return err;
    }
    if (mode != MODE_ATTACH) return 0;
    /* Sources are host paths: clone them before leaving the host's namespace. */
    struct dir_cache dirs = { .count = 0 };
    for (int i = 0; i < g->count; i++) {
        struct item *it = &g->items[i];
        it->tree_fd = clone_source(&dirs, it->src);
        if (it->tree_fd < 0) {
            it->src_errno = errno;
            it->src_what = "cannot clone source (open_tree)";
            continue;
        }
        if (read_only && sys_mount_setattr_rdonly(it->tree_fd) != 0) {
            it->src_errno = errno;
            it->src_what = "cannot make the clone read-only (mount_setattr)";
            close(it->tree_fd);
            it->tree_fd = -1;
        }
    }
    for (int d = 0; d < dirs.count; d++) close(dirs.fds[d]);
    return 0;
}

static void release_group(struct group *g, int ns_fd, int root_fd) {
    for (int i = 0; i < g->count; i++) {
        if (g->items[i].tree_fd >= 0) close(g->items[i].tree_fd);
        g->items[i].tree_fd = -1;
    }
    close(ns_fd);
    close(root_fd);
}

/* Enters the group's namespace and root (no way back: run it in a process of its own) and does its items. */
static int run_group(struct group *g, enum mode mode, int ns_fd, int root_fd) {
    if (setns(ns_fd, CLONE_NEWNS) != 0) group_fatal(errno, "setns into its mount namespace", g->pid);
    /* setns puts root and cwd at the namespace's root mount; the process may have chrooted or
     * pivoted elsewhere, so take the root it actually sees (opened above, before setns). */
    if (fchdir(root_fd) != 0 || chroot(".") != 0 || chdir("/") != 0) group_fatal(errno, "entering its root directory", g->pid);
    /* Targets under a rootfs are resolved with the rootfs as "/": an image's absolute symlink
     * then points into the image, never into the host's root the process still has. */
    if (g->root != NULL && (chroot(g->root) != 0 || chdir("/") != 0)) group_fatal(errno, "entering the container's rootfs", g->pid);
    int failed = 0;
    for (int i = 0; i < g->count; i++) {
        int rc;
        switch (mode) {
        case MODE_ATTACH: rc = attach_one(&g->items[i]); break;
        case MODE_CHECK: rc = check_one(g->items[i].dst); break;
        default: rc = unmount_one(&g->items[i]); break;
        }
        if (rc != 0) failed = 1;
        fflush(stdout);
    }
    return failed ? 1 : 0;
}

/*
 * Waits for a group's child at most timeout_ms, then kills it (a namespace whose process hangs,
 * e.g. on a FUSE request, costs only its own pairs). Returns its exit code, or -1 with *err
 * (ETIMEDOUT: killed at the timeout; EINTR: killed by another signal) and *what set. SIGCHLD is
 * blocked (run_batch), so sigtimedwait sees it.
 */
static int wait_group(pid_t child, long timeout_ms, int *err, const char **what) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    for (;;) {
        int status;
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            *err = EINTR;
            *what = "its helper process was killed by a signal";
            return -1;
        }
        struct timespec now, left;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left.tv_sec = deadline.tv_sec - now.tv_sec;
        left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0) { left.tv_sec--; left.tv_nsec += 1000000000L; }
        if (left.tv_sec < 0) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            *err = ETIMEDOUT;
            *what = "timed out in the container (killed)";
            return -1;
        }
        sigtimedwait(&chld, NULL, &left);
    }
}

/*
 * --batch: one group after the other, each "ns PID" followed by its item lines (as one run of
 * the single form prints them) or by one "fatal ERRNAME ..." line (nothing more was done there).
 * Sources are cloned here, in the host's namespace, just before the group's child enters the
 * container; the child inherits them. Returns 0 if every item of every group succeeded.
 */
static int run_batch(struct group *groups, int group_count, int read_only, long timeout_ms) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int failed = 0;
    for (int g = 0; g < group_count; g++) {
        struct group *grp = &groups[g];
        printf("ns %ld\n", grp->pid);
        fflush(stdout);
        int ns_fd, root_fd;
        const char *what = NULL;
        int err = prepare_group(grp, MODE_ATTACH, read_only, &ns_fd, &root_fd, &what);
        if (err != 0) {
            printf("fatal %s pid %ld: %s: %s\n", errno_name(err), grp->pid, what, strerror(err));
            failed = 1;
            continue;
        }
        pid_t child = fork();
        if (child == 0) {
            batch_child = 1;
            sigprocmask(SIG_UNBLOCK, &chld, NULL);
            fflush(stdout);
            _exit(run_group(grp, MODE_ATTACH, ns_fd, root_fd));
        }
        if (child < 0) {
            err = errno;
            printf("fatal %s pid %ld: fork: %s\n", errno_name(err), grp->pid, strerror(err));
            failed = 1;
        } else {
            int rc = wait_group(child, timeout_ms, &err, &what);
            if (rc < 0) printf("fatal %s pid %ld: %s\n", errno_name(err), grp->pid, what);
            if (rc != 0) failed = 1;
        }
        fflush(stdout);
        release_group(grp, ns_fd, root_fd);
    }
    return failed ? 1 : 0;
}

static long parse_positive(const char *s, const char *why) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v <= 0 || v > INT_MAX) usage(why);
    return v;
}

int main(int argc, char **argv) {
    long pid = -1;
    const char *root = NULL;
    int read_only = 0;
    int batch = 0;
    long timeout_ms = 2000;
    enum mode mode = MODE_ATTACH;
    int first = 1;
    for (; first < argc; first++) {
        const char *a = argv[first];
        if (strcmp(a, "--pid") == 0) {
            if (++first >= argc) usage("--pid needs a value");
            pid = parse_positive(argv[first], "--pid must be a positive integer");
        } else if (strcmp(a, "--root") == 0) {
            if (++first >= argc) usage("--root needs a value");
            root = argv[first];
        } else if (strcmp(a, "--batch") == 0) {
            batch = 1;
        } else if (strcmp(a, "--ns-timeout-ms") == 0) {
            if (++first >= argc) usage("--ns-timeout-ms needs a value");
            timeout_ms = parse_positive(argv[first], "--ns-timeout-ms must be a positive integer");
        } else if (strcmp(a, "--read-only") == 0) {
            read_only = 1;
        } else if (strcmp(a, "--check") == 0) {
            mode = MODE_CHECK;
        } else if (strcmp(a, "--unmount") == 0) {
            mode = MODE_UNMOUNT;
        } else if (strcmp(a, "--") == 0) {
            first++;
            break;
        } else if (a[0] == '-' && a[1] == '-') {
            usage("unknown option");
        } else {
            break;
        }
    }
    if (batch && (pid >= 0 || mode != MODE_ATTACH)) usage("--batch takes @PID arguments and attaches only");
    if (!batch && pid < 0) usage("--pid is required");
    if (read_only && mode != MODE_ATTACH) usage("--read-only only applies to attaching");
    if (root != NULL && (batch || mode != MODE_ATTACH)) usage("--root only applies to attaching one namespace (--batch: @PID=ROOT)");
    int count = argc - first;
    if (count <= 0) usage("nothing to do");
    if (count > MAX_BATCH_ARGS) usage("too many arguments");
    const char *force = getenv("ISOLFS_ATTACH_TEST_HANDLE_MNT_ID");
    pre_5_8_statx = force != NULL && strcmp(force, "1") == 0;

    struct item *items = calloc((size_t)count, sizeof *items);
    struct group *groups = calloc((size_t)count, sizeof *groups);
    if (!items || !groups) fatal(ENOMEM, "allocating", pid);
    int group_count = 0, item_count = 0;
    if (!batch) groups[group_count++] = (struct group){ .pid = pid, .items = items };
    for (int i = 0; i < count; i++) {
        char *arg = argv[first + i];
        if (batch && arg[0] == '@') {
            if (group_count == MAX_BATCH_GROUPS) usage("too many namespaces in one batch");
            char *eq = strchr(arg, '=');
            if (eq != NULL) *eq = '\0';
            groups[group_count++] = (struct group){ .pid = parse_positive(arg + 1, "@PID must be a positive integer"), .root = eq ? eq + 1 : NULL, .items = &items[item_count] };
            continue;
        }
        if (group_count == 0) usage("--batch: the first argument must be @PID");
        parse_item(arg, mode, &items[item_count++]);
        groups[group_count - 1].count++;
    }
    if (!batch) groups[0].root = root;
    for (int g = 0; g < group_count; g++) set_root(&groups[g]);
    if (batch) return run_batch(groups, group_count, read_only, timeout_ms);

    int ns_fd, root_fd;
    const char *what = NULL;
    int err = prepare_group(&groups[0], mode, read_only, &ns_fd, &root_fd, &what);
    if (err != 0) fatal(err, what, pid);
    return run_group(&groups[0], mode, ns_fd, root_fd);
}
