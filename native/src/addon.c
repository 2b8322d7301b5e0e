/*
 * isolfs native part: a thin N-API layer over libfuse3's low-level API.
 *
 * It moves requests and bytes; every decision lives in TypeScript. Each request is handed to a
 * JS handler together with the caller's pid/uid/gid (from the FUSE request header, which is the
 * whole reason this addon exists: fuse-native cannot say who is reading), its numbers written
 * into a Float64Array JS reuses (see "The request header"), and is answered later through the
 * reply* functions, from the main thread, in any order.
 *
 * Two request loops, selectable at mount time, because each thread hop costs tens of
 * microseconds on the machines we measured (READs of open handles are answered here, on
 * whichever thread received them, from the content table: see there):
 *   "poll"   — no extra thread: libuv polls the session fd; on readability the main thread
 *              drains the (non-blocking) fd, and libfuse dispatches straight into JS.
 *   "thread" — a native thread blocks in read(2) on the fd and posts each request to the main
 *              thread through a thread-safe function.
 * In both, a third thread (the notifier) makes the page-cache stores that precede some OPEN
 * replies: a store may wait on a READ, so no thread that answers READs may make it (see there).
 *
 * Safety: JS never sees a fuse_req_t. It gets a numeric request id that indexes a slot table with
 * a generation counter, so a double reply or a stale id is refused with an exception instead of
 * a use-after-free. A request whose handler throws is answered EIO.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <node_api.h>
#include <uv.h>

#include "deadman.h"
#include "pollwatch.h"

/* Operation codes. Written here only: exported to JS as `ops` (see init). */
enum {
  OP_LOOKUP = 1,
  OP_GETATTR,
  OP_OPEN,
  OP_READ,
  OP_WRITE,
  OP_RELEASE,
  OP_READDIR,
  OP_SETATTR,
  OP_OPENDIR,
  OP_ACCESS,
  OP_POLL,
};

typedef struct {
  const char *name;
  int value;
} named_int_t;

static const named_int_t op_codes[] = {
    {"lookup", OP_LOOKUP},   {"getattr", OP_GETATTR}, {"open", OP_OPEN},
    {"read", OP_READ},       {"write", OP_WRITE},     {"release", OP_RELEASE},
    {"readdir", OP_READDIR}, {"setattr", OP_SETATTR}, {"opendir", OP_OPENDIR},
    {"access", OP_ACCESS},   {"poll", OP_POLL},
};

/*
 * The request header: a Float64Array that JS allocates once and hands to mount; the main thread
 * writes a request's numbers into it just before calling the handler, so a request costs JS no
 * object of its own. The index of each field is exported as `requestFields` (see init).
 */
enum {
  FIELD_ID,
  FIELD_OP,
  FIELD_INO,
  FIELD_PID,
  FIELD_UID,
  FIELD_GID,
  FIELD_FH,
  FIELD_OFFSET,
  FIELD_SIZE,
  FIELD_FLAGS, /* OPEN/OPENDIR: open flags; ACCESS: the mask; SETATTR: to_set */
  FIELD_COUNT,
};

static const named_int_t request_fields[] = {
    {"id", FIELD_ID},   {"op", FIELD_OP},         {"ino", FIELD_INO},   {"pid", FIELD_PID},
    {"uid", FIELD_UID}, {"gid", FIELD_GID},       {"fh", FIELD_FH},     {"offset", FIELD_OFFSET},
    {"size", FIELD_SIZE}, {"flags", FIELD_FLAGS},
};
_Static_assert(sizeof(request_fields) / sizeof(request_fields[0]) == FIELD_COUNT,
               "every request field is exported");

#define CHECK(call)                                                                              \
  do {                                                                                           \
    napi_status status_ = (call);                                                                \
    if (status_ != napi_ok) {                                                                    \
      napi_throw_error(env, NULL, "isolfs native: N-API call failed: " #call);                   \
      return NULL;                                                                               \
    }                                                                                            \
  } while (0)

/* ---------------------------------------------------------------- pending request table ---- */

typedef struct {
  fuse_req_t req; /* NULL when the slot is free */
  uint32_t generation;
  int op;
  uint64_t ino;  /* the request's inode: a store before an OPEN reply goes to this one only */
  uint64_t size; /* READ/WRITE/READDIR size: replies are cut to it */
  uint64_t fh;
  struct fuse_pollhandle *ph; /* POLL: whom to notify later; destroyed unless a reply keeps it */
} slot_t;

/* What a reply needs to know about its request, besides the request itself. */
typedef struct {
  int op;
  uint64_t ino;
  uint64_t size;
  uint64_t fh;
  /* Set by the caller to take the request's poll handle (into `ph`); else it is destroyed. */
  int want_ph;
  struct fuse_pollhandle *ph;
} slot_info_t;

static slot_t *slots = NULL;
static uint32_t slot_count = 0;
static uint32_t *free_slots = NULL;
static uint32_t free_count = 0;
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;

/* id = generation * 2^22 + index: stays an exact double (< 2^53) for 2^31 generations. */
#define SLOT_BITS 22
#define SLOT_MASK ((1u << SLOT_BITS) - 1)

static double slot_take(fuse_req_t req, int op, uint64_t ino, uint64_t size, uint64_t fh,
                        struct fuse_pollhandle *ph) {
  pthread_mutex_lock(&slot_lock);
  uint32_t index;
  if (free_count > 0) {
    index = free_slots[--free_count];
  } else {
    if (slot_count > SLOT_MASK) {
      pthread_mutex_unlock(&slot_lock);
      return -1;
    }
    uint32_t grown = slot_count == 0 ? 256 : slot_count * 2;
    if (grown > SLOT_MASK + 1) grown = SLOT_MASK + 1;
    slot_t *more = realloc(slots, grown * sizeof(slot_t));
    uint32_t *more_free = realloc(free_slots, grown * sizeof(uint32_t));
    if (more == NULL || more_free == NULL) {
      if (more) slots = more;
      if (more_free) free_slots = more_free;
      pthread_mutex_unlock(&slot_lock);
      return -1;
    }
    slots = more;
    free_slots = more_free;
    for (uint32_t i = slot_count; i < grown; i++) {
      slots[i].req = NULL;
      slots[i].generation = 0;
    }
    /* hand out the new slots from the low end first */
    for (uint32_t i = grown; i > slot_count + 1; i--) free_slots[free_count++] = i - 1;
    index = slot_count;
    slot_count = grown;
  }
  slots[index].req = req;
  slots[index].op = op;
  slots[index].ino = ino;
  slots[index].size = size;
  slots[index].fh = fh;
  slots[index].ph = ph;
  slots[index].generation = (slots[index].generation + 1) & 0x7fffffff;
  double id = (double)slots[index].generation * (double)(1u << SLOT_BITS) + (double)index;
  pthread_mutex_unlock(&slot_lock);
  return id;
}

/* Removes the request from the table; returns NULL if the id is stale or already answered. */
static fuse_req_t slot_release(double id, slot_info_t *info) {
  /* ids are exact integers below 2^53: anything else (NaN, negative, huge) is refused */
  if (!(id >= 0 && id < 9007199254740992.0)) return NULL;
  uint64_t raw = (uint64_t)id;
  uint32_t index = (uint32_t)(raw & SLOT_MASK);
  uint32_t generation = (uint32_t)(raw >> SLOT_BITS);
  fuse_req_t req = NULL;
  pthread_mutex_lock(&slot_lock);
  if (index < slot_count && slots[index].req != NULL && slots[index].generation == generation) {
    req = slots[index].req;
    if (info) {
      info->op = slots[index].op;
      info->ino = slots[index].ino;
      info->size = slots[index].size;
      info->fh = slots[index].fh;
      if (info->want_ph) info->ph = slots[index].ph;
    }
    if (!(info && info->want_ph) && slots[index].ph) fuse_pollhandle_destroy(slots[index].ph);
    slots[index].ph = NULL;
    slots[index].req = NULL;
    free_slots[free_count++] = index;
  }
  pthread_mutex_unlock(&slot_lock);
  return req;
}

static uint32_t slot_pending(void) {
  pthread_mutex_lock(&slot_lock);
  uint32_t pending = slot_count - free_count;
  pthread_mutex_unlock(&slot_lock);
  return pending;
}

/* Answers every pending request of a session that is going away (EIO), so none is left in the
 * table pointing at a destroyed session. */
static void slot_drop_session(void *userdata) {
  pthread_mutex_lock(&slot_lock);
  for (uint32_t i = 0; i < slot_count; i++) {
    if (slots[i].req != NULL && fuse_req_userdata(slots[i].req) == userdata) {
      fuse_reply_err(slots[i].req, EIO);
      if (slots[i].ph) fuse_pollhandle_destroy(slots[i].ph);
      slots[i].ph = NULL;
      slots[i].req = NULL;
      free_slots[free_count++] = i;
    }
  }
  pthread_mutex_unlock(&slot_lock);
}

/* ---------------------------------------------------------------- sessions ------------------ */

typedef struct request_s {
  double id;
  int op;
  uint64_t ino;
  uint64_t fh;
  int64_t offset;
  uint64_t size;
  int flags;
  pid_t pid;
  uid_t uid;
  gid_t gid;
  char *name;    /* lookup */
  char *data;    /* write */
  size_t data_len;
  int to_set;    /* setattr */
  struct fuse_pollhandle *ph; /* poll: goes into the request's slot */
} request_t;

/*
 * The content table. Content is rendered once, in JS, when a file is opened (the reader is known
 * then); the READs that follow — the first one and the one at EOF that every `cat` makes — only
 * copy bytes out of it. Answering them here, on whichever thread received them, saves a call into
 * JS per READ and, with the "thread" loop, the hop to the main thread and back.
 * Which READs go to JS instead is JS's choice, made per handle at OPEN (freshOnRewind): with it,
 * a READ from offset 0 after the handle's content was read goes to JS, which may give new content
 * back with setContent; without it, native serves that READ from its copy.
 * Once a READ has delivered the last byte, the copy is freed and only its length kept (for the
 * EOF READ that follows): an idle open handle then costs a few dozen bytes here. Mechanics, not
 * policy: a READ that needs bytes after the copy was freed goes to JS, as native has none.
 */
#define CONTENT_BUCKETS 256

typedef struct content_s {
  uint64_t fh; /* the open handle; in a page-cache session, the inode */
  char *data;  /* NULL once every byte has been delivered (never, for an inode's content) */
  size_t len;
  int served;          /* a READ has been answered from this content */
  int fresh_on_rewind; /* JS's rule: a READ at offset 0 once served goes to JS */
  /* Inode content (page-cache sessions, see "inode content"): `data` is the version whose
   * attributes the kernel was last given; `pending` the newer one JS set, served once attributes
   * showing a change (mtime or size) are replied. */
  char *pending;
  size_t pending_len;
  int reported; /* attributes were replied for this inode; the last ones: */
  int64_t reported_sec;
  long reported_nsec;
  int64_t reported_size;
  struct content_s *next;
} content_t;

typedef struct session_s {
  struct fuse_session *se;
  napi_env env;
  napi_ref handler;
  napi_ref header; /* the request header (Float64Array) the handler reads */
  napi_ref resource;
  napi_async_context async_context;
  int use_thread;
  int page_cache; /* JS's choice at mount: OPEN answered ENOSYS, READs from inode content */
  int mounted;
  int fd;
  /* poll mode */
  uv_poll_t *poll;
  struct fuse_buf buf;
  /* thread mode */
  pthread_t thread;
  int thread_started;
  napi_threadsafe_function tsfn;
  /* content of open handles, served to READ without a trip to JS (see "content table") */
  pthread_mutex_t content_lock;
  struct content_s *content[CONTENT_BUCKETS];
  size_t content_live; /* handles in the table, and the most since memory was last trimmed */
  size_t content_peak;
  size_t content_freed_bytes; /* freed since memory was last trimmed */
  struct content_s *content_spare; /* free entries (see content_entry_new) */
  /* the notifier thread: page-cache stores before OPEN replies (see "notifier") */
  pthread_t notifier;
  int notifier_started;
  pthread_mutex_t store_lock;
  pthread_cond_t store_cond;
  struct store_job_s *store_queue;
  unsigned store_head;
  unsigned store_count;
  int store_stop;
  int torn_down; /* a thread that would not end keeps its session: never destroy it again */
  struct session_s *next;
} session_t;

static session_t *all_sessions = NULL;

/* Table entries live in chunks of their own, outside the heap that content copies and JS buffers
 * churn through: there, each long-lived entry would pin a page of freed copies (measured: the
 * heap kept ~0.8 KB per idle handle). Chunks are kept for reuse: at most 48 B per open handle. */
#define CONTENT_CHUNK_ENTRIES 1024

static content_t *content_entry_new(session_t *s) {
  if (s->content_spare == NULL) {
    content_t *chunk = mmap(NULL, CONTENT_CHUNK_ENTRIES * sizeof(content_t), PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED) return NULL;
    for (int i = 0; i < CONTENT_CHUNK_ENTRIES; i++) {
      chunk[i].next = s->content_spare;
      s->content_spare = &chunk[i];
    }
  }
  content_t *c = s->content_spare;
  s->content_spare = c->next;
  memset(c, 0, sizeof(*c));
  return c;
}

static void content_entry_free(session_t *s, content_t *c) {
  c->next = s->content_spare;
  s->content_spare = c;
}
static int atexit_registered = 0;

static void deliver(session_t *s, request_t *r);
static void fail_request(request_t *r);

/* A malloc'd copy of `len` bytes (never a zero-size allocation), or NULL. */
static char *copy_of(const void *data, size_t len) {
  char *copy = malloc(len > 0 ? len : 1);
  if (copy && len > 0) memcpy(copy, data, len); /* an empty Buffer's data may be NULL */
  return copy;
}

/* The entry of `fh`, or NULL. Called with content_lock held. */
static content_t *content_find(session_t *s, uint64_t fh) {
  content_t *c = s->content[fh % CONTENT_BUCKETS];
  while (c && c->fh != fh) c = c->next;
  return c;
}

/* The entry of `key`, a new empty one if there is none (`*added` says which, if asked), or NULL
 * when out of memory. Called with content_lock held. */
static content_t *content_find_or_add(session_t *s, uint64_t key, int *added) {
  content_t *c = content_find(s, key);
  if (added) *added = c == NULL;
  if (c != NULL) return c;
  c = content_entry_new(s);
  if (c == NULL) return NULL;
  content_t **bucket = &s->content[key % CONTENT_BUCKETS];
  c->fh = key;
  c->next = *bucket;
  *bucket = c;
  if (++s->content_live > s->content_peak) s->content_peak = s->content_live;
  return c;
}

/* Makes a copy of `data` the content of the newly opened `fh`, served under JS's rule
 * `fresh_on_rewind`. Returns 0 or ENOMEM. */
static int content_put(session_t *s, uint64_t fh, const void *data, size_t len, int fresh_on_rewind) {
  char *copy = copy_of(data, len);
  if (copy == NULL) return ENOMEM;
  pthread_mutex_lock(&s->content_lock);
  int added = 0;
  content_t *c = content_find_or_add(s, fh, &added);
  if (c == NULL) {
    pthread_mutex_unlock(&s->content_lock);
    free(copy);
    return ENOMEM;
  }
  if (!added) free(c->data);
  c->data = copy;
  c->len = len;
  c->served = 0;
  c->fresh_on_rewind = fresh_on_rewind;
  pthread_mutex_unlock(&s->content_lock);
  return 0;
}

/* Replaces the content of the open `fh` (JS answered a READ from fresh content: that READ
 * counts as served). A handle without an entry is left without one. Returns 0 or ENOMEM. */
static int content_replace(session_t *s, uint64_t fh, const void *data, size_t len) {
  char *copy = copy_of(data, len);
  if (copy == NULL) return ENOMEM;
  pthread_mutex_lock(&s->content_lock);
  content_t *c = content_find(s, fh);
  char *old = copy;
  if (c) {
    old = c->data;
    c->data = copy;
    c->len = len;
    c->served = 1;
  }
  pthread_mutex_unlock(&s->content_lock);
  free(old);
  return 0;
}

/* Heaps of many small blocks are not given back by free(): the copies freed after delivery sit
 * between the entries of handles still open. Trim once the open handles have fallen to half of
 * their peak (a burst of 10k+ fds closing), or 16 MiB of copies were freed; not on every close. */
#define TRIM_MIN_PEAK 4096
#define TRIM_FREED_BYTES (16u << 20)

/* Counts `len` freed bytes; 1 if it is time to trim (the caller trims, outside the lock). */
static int content_freed(session_t *s, size_t len) {
  s->content_freed_bytes += len;
  if (s->content_freed_bytes < TRIM_FREED_BYTES) return 0;
  s->content_freed_bytes = 0;
  return 1;
}

static void content_drop(session_t *s, uint64_t fh) {
  content_t **p = &s->content[fh % CONTENT_BUCKETS];
  int trim = 0;
  pthread_mutex_lock(&s->content_lock);
  while (*p && (*p)->fh != fh) p = &(*p)->next;
  content_t *c = *p;
  if (c) {
    *p = c->next;
    s->content_live--;
    if (s->content_peak >= TRIM_MIN_PEAK && s->content_live <= s->content_peak / 2) {
      s->content_peak = s->content_live;
      trim = 1;
    }
    if (c->data && content_freed(s, c->len)) trim = 1;
  }
  char *data = c ? c->data : NULL;
  char *cached = c ? c->pending : NULL;
  if (c) content_entry_free(s, c);
  pthread_mutex_unlock(&s->content_lock);
  free(data);
  free(cached);
  if (trim) malloc_trim(0);
}

static void content_drop_all(session_t *s) {
  pthread_mutex_lock(&s->content_lock);
  for (int i = 0; i < CONTENT_BUCKETS; i++) {
    content_t *c = s->content[i];
    s->content[i] = NULL;
    while (c) {
      content_t *next = c->next;
      free(c->data);
      free(c->pending);
      content_entry_free(s, c);
      c = next;
    }
  }
  s->content_live = 0;
  s->content_peak = 0;
  pthread_mutex_unlock(&s->content_lock);
}

/* Answers a READ from the table if it can: 1 if answered, 0 if JS must (no content for this
 * handle, e.g. a control file; a rewind to 0 on a freshOnRewind handle; bytes already freed). */
static int content_serve(session_t *s, fuse_req_t req, uint64_t fh, size_t size, off_t off) {
  int answered = 0;
  int trim = 0;
  pthread_mutex_lock(&s->content_lock);
  content_t *c = content_find(s, fh);
  if (c && off >= 0 && !(off == 0 && c->served && c->fresh_on_rewind)) {
    size_t start = (uint64_t)off < c->len ? (size_t)off : c->len;
    size_t n = c->len - start < size ? c->len - start : size;
    if (n == 0 || c->data != NULL) {
      c->served = 1;
      /* Replied under the lock: setContent from the main thread may replace the buffer. */
      fuse_reply_buf(req, n > 0 ? c->data + start : NULL, n);
      answered = 1;
      if (n > 0 && start + n == c->len) {
        free(c->data);
        c->data = NULL;
        trim = content_freed(s, c->len);
      }
    }
  }
  pthread_mutex_unlock(&s->content_lock);
  if (trim) malloc_trim(0);
  return answered;
}

/*
 * Inode content: what a page-cache session (JS's choice at mount) serves. There OPEN is answered
 * ENOSYS, so the kernel sends no OPEN, READ or RELEASE per open file: it keeps the file's pages
 * across opens and readers, and asks us only for pages it does not have (READ, keyed here by the
 * inode) and, once the attributes JS gave expired, for attributes (GETATTR, answered in JS: a new
 * mtime or size makes the kernel drop the pages, FUSE_CAP_AUTO_INVAL_DATA).
 *
 * Pages and size must come from one version, or a reader gets a file cut short or padded with
 * zeros (a page of one version read against another's size). So a READ always gets the version
 * whose attributes the kernel was last given: content JS sets is pending until a reply to
 * GETATTR or LOOKUP carries a changed mtime or size, and takes over in that reply, before the
 * kernel can send a READ that knows the new size. (Measured: serving what JS set at once, or a
 * guess at which version a READ's neighbouring pages are of, gave such files by the thousand.)
 */

/* Makes a copy of `data` the pending content of `ino` (the current one if the kernel has no
 * attributes of it yet). Returns 0 or ENOMEM. */
static int inode_content_set(session_t *s, uint64_t ino, const void *data, size_t len) {
  char *copy = copy_of(data, len);
  if (copy == NULL) return ENOMEM;
  pthread_mutex_lock(&s->content_lock);
  content_t *c = content_find_or_add(s, ino, NULL);
  char *unused = NULL;
  if (c == NULL) {
    pthread_mutex_unlock(&s->content_lock);
    free(copy);
    return ENOMEM;
  }
  if (c->reported) {
    unused = c->pending; /* superseded before it was ever reported */
    c->pending = copy;
    c->pending_len = len;
  } else {
    unused = c->data; /* no attributes, so no page, of it in the kernel yet */
    c->data = copy;
    c->len = len;
  }
  pthread_mutex_unlock(&s->content_lock);
  free(unused);
  return 0;
}

/* Attributes of `ino` are being replied: a changed mtime or size publishes the pending content
 * (the kernel drops every page of the inode once it applies them). */
static void inode_content_reported(session_t *s, uint64_t ino, const struct stat *st) {
  char *old = NULL;
  pthread_mutex_lock(&s->content_lock);
  content_t *c = content_find(s, ino);
  if (c && (!c->reported || c->reported_sec != (int64_t)st->st_mtim.tv_sec ||
            c->reported_nsec != st->st_mtim.tv_nsec || c->reported_size != (int64_t)st->st_size)) {
    c->reported = 1;
    c->reported_sec = st->st_mtim.tv_sec;
    c->reported_nsec = st->st_mtim.tv_nsec;
    c->reported_size = st->st_size;
    if (c->pending) {
      old = c->data;
      c->data = c->pending;
      c->len = c->pending_len;
      c->pending = NULL;
      c->pending_len = 0;
    }
  }
  pthread_mutex_unlock(&s->content_lock);
  free(old);
}

/* Answers a READ of `ino` from its published content: 1 if answered, 0 if JS must (none yet). */
static int inode_content_serve(session_t *s, fuse_req_t req, uint64_t ino, size_t size, off_t off) {
  pthread_mutex_lock(&s->content_lock);
  content_t *c = content_find(s, ino);
  if (c == NULL || off < 0) {
    pthread_mutex_unlock(&s->content_lock);
    return 0;
  }
  size_t start = (uint64_t)off < c->len ? (size_t)off : c->len;
  size_t n = c->len - start < size ? c->len - start : size;
  fuse_reply_buf(req, n > 0 ? c->data + start : NULL, n); /* under the lock: JS may publish */
  pthread_mutex_unlock(&s->content_lock);
  return 1;
}

/*
 * The notifier. Giving splice/sendfile/mmap readers of a per-container file their bytes needs
 * notify_store (it sets i_size; without it they read an empty file), and a store waits for the
 * lock of every page it fills. A page-cache READ of that inode holds such a lock until we answer
 * it, so a store made on a thread that also answers requests can wait for itself forever (the
 * daemon froze so, the main thread in D state under fuse_dev_do_write). Stores therefore run
 * here, on a thread that answers nothing but the OPEN each store precedes; when the queue is full
 * or the store fails the OPEN is answered without one (that reader sees an empty file).
 */
#define STORE_QUEUE_MAX 256

typedef struct store_job_s {
  fuse_req_t req;
  struct fuse_file_info fi;
  fuse_ino_t ino;
  char *data;
  size_t len;
} store_job_t;

/* Queues "store then reply OPEN"; returns 0, or -1 if the queue is full or stopping. */
static int store_enqueue(session_t *s, fuse_req_t req, const struct fuse_file_info *fi,
                         fuse_ino_t ino, const void *data, size_t len) {
  char *copy = copy_of(data, len);
  if (copy == NULL) return -1;
  pthread_mutex_lock(&s->store_lock);
  if (!s->notifier_started || s->store_stop || s->store_count >= STORE_QUEUE_MAX) {
    pthread_mutex_unlock(&s->store_lock);
    free(copy);
    return -1;
  }
  store_job_t *job = &s->store_queue[(s->store_head + s->store_count) % STORE_QUEUE_MAX];
  job->req = req;
  job->fi = *fi;
  job->ino = ino;
  job->data = copy;
  job->len = len;
  s->store_count++;
  pthread_cond_signal(&s->store_cond);
  pthread_mutex_unlock(&s->store_lock);
  return 0;
}

static void mask_signals(int allow_wake);

static void *notifier_loop(void *arg) {
  session_t *s = arg;
  mask_signals(0);
  pthread_mutex_lock(&s->store_lock);
  for (;;) {
    while (s->store_count == 0 && !s->store_stop) pthread_cond_wait(&s->store_cond, &s->store_lock);
    if (s->store_count == 0) break; /* stopping, and nothing left to answer */
    store_job_t job = s->store_queue[s->store_head];
    s->store_head = (s->store_head + 1) % STORE_QUEUE_MAX;
    s->store_count--;
    int stopping = s->store_stop;
    pthread_mutex_unlock(&s->store_lock);
    if (!stopping) {
      struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(job.len);
      bufv.buf[0].mem = job.data;
      fuse_lowlevel_notify_store(s->se, job.ino, 0, &bufv, 0); /* on failure: open without it */
    }
    fuse_reply_open(job.req, &job.fi);
    free(job.data);
    pthread_mutex_lock(&s->store_lock);
  }
  pthread_mutex_unlock(&s->store_lock);
  return NULL;
}

/* Hands `r` to JS; `r->id` is -1 when nothing is to be answered (a notification). */
static void tell_js(session_t *s, request_t *r) {
  if (s->use_thread) {
    if (napi_call_threadsafe_function(s->tsfn, r, napi_tsfn_nonblocking) != napi_ok) fail_request(r);
  } else {
    deliver(s, r);
  }
}

static void dispatch(fuse_req_t req, request_t *r) {
  session_t *s = fuse_req_userdata(req);
  const struct fuse_ctx *ctx = fuse_req_ctx(req);
  r->pid = ctx->pid;
  r->uid = ctx->uid;
  r->gid = ctx->gid;
  r->id = slot_take(req, r->op, r->ino, r->size, r->fh, r->ph);
  if (r->id < 0) {
    fuse_reply_err(req, ENOMEM);
    return fail_request(r); /* no id: frees only */
  }
  tell_js(s, r);
}

static request_t *new_request(int op, fuse_ino_t ino) {
  request_t *r = calloc(1, sizeof(request_t));
  if (r) {
    r->op = op;
    r->ino = ino;
  }
  return r;
}

#define NEW_OR_FAIL(var, op, ino)                                                                \
  request_t *var = new_request(op, ino);                                                         \
  if (var == NULL) {                                                                             \
    fuse_reply_err(req, ENOMEM);                                                                 \
    return;                                                                                      \
  }

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  session_t *s = userdata;
  /* A page-cache session's pages are dropped when GETATTR shows a new mtime or size. */
  if (s->page_cache && (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  /* O_TRUNC arrives with OPEN instead of a separate SETATTR round trip. */
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  /* Splice would hand us pipe buffers; our replies are small and built in JS memory. */
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  NEW_OR_FAIL(r, OP_LOOKUP, parent);
  r->name = strdup(name);
  dispatch(req, r);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  (void)ino;
  (void)nlookup;
  /* The inode table is static: nothing to forget. */
  fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  NEW_OR_FAIL(r, OP_GETATTR, ino);
  dispatch(req, r);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi) {
  NEW_OR_FAIL(r, OP_SETATTR, ino);
  r->to_set = to_set;
  r->size = (uint64_t)attr->st_size;
  r->fh = fi ? fi->fh : 0;
  dispatch(req, r);
}

/* Hands JS a request whose one argument is `flags`. */
static void dispatch_flags(fuse_req_t req, int op, fuse_ino_t ino, int flags) {
  NEW_OR_FAIL(r, op, ino);
  r->flags = flags;
  dispatch(req, r);
}

/* Hands JS a request for `size` bytes (or entries) at `off` of the open handle `fh`. */
static void dispatch_range(fuse_req_t req, int op, fuse_ino_t ino, uint64_t fh, size_t size, off_t off) {
  NEW_OR_FAIL(r, op, ino);
  r->fh = fh;
  r->size = size;
  r->offset = off;
  dispatch(req, r);
}

/* access(2) and chdir: the mask (R_OK|W_OK|X_OK) goes to JS as `flags`. */
static void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  dispatch_flags(req, OP_ACCESS, ino, mask);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session_t *s = fuse_req_userdata(req);
  /* ENOSYS: the kernel stops sending OPEN (and READs per open file) for this connection */
  if (s->page_cache) {
    fuse_reply_err(req, ENOSYS);
    return;
  }
  dispatch_flags(req, OP_OPEN, ino, fi->flags);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi) {
  session_t *s = fuse_req_userdata(req);
  int served = s->page_cache ? inode_content_serve(s, req, ino, size, off) : content_serve(s, req, fi->fh, size, off);
  if (served) return;
  dispatch_range(req, OP_READ, ino, fi->fh, size, off);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
  NEW_OR_FAIL(r, OP_WRITE, ino);
  r->fh = fi->fh;
  r->offset = off;
  r->size = size;
  r->data = copy_of(buf, size);
  if (r->data == NULL) {
    free(r);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  r->data_len = size;
  dispatch(req, r);
}

/*
 * RELEASE is answered here at once and JS is only told (request id -1: nothing to answer). The
 * kernel sends it as a background request, at most max_background (12) in flight: answered after
 * a trip through JS, behind every queued OPEN, a flood of opens starved it and closed files piled
 * up as open handles until the open-file cap refused everyone (ENFILE).
 */
static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session_t *s = fuse_req_userdata(req);
  content_drop(s, fi->fh);
  request_t *r = new_request(OP_RELEASE, ino);
  const struct fuse_ctx *ctx = fuse_req_ctx(req);
  if (r) {
    r->fh = fi->fh;
    r->pid = ctx->pid;
    r->uid = ctx->uid;
    r->gid = ctx->gid;
    r->id = -1;
  }
  fuse_reply_err(req, 0);
  if (r) tell_js(s, r);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  dispatch_flags(req, OP_OPENDIR, ino, fi->flags);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi) {
  dispatch_range(req, OP_READDIR, ino, fi->fh, size, off);
}

/* POLL: the events asked go to JS as `flags`; the poll handle (if the kernel wants a
 * notification) waits in the request's slot until replyPoll keeps or destroys it. */
static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph) {
  session_t *s = fuse_req_userdata(req);
  /* A page-cache session has no open files (OPEN is ENOSYS): ENOSYS makes the kernel answer its
   * polls itself (always ready), as before POLL was handled at all. */
  if (s->page_cache) {
    if (ph) fuse_pollhandle_destroy(ph);
    fuse_reply_err(req, ENOSYS);
    return;
  }
  request_t *r = new_request(OP_POLL, ino);
  if (r == NULL) {
    if (ph) fuse_pollhandle_destroy(ph);
    fuse_reply_err(req, ENOMEM);
    return;
  }
  r->fh = fi->fh;
  r->flags = (int)fi->poll_events;
  r->ph = ph;
  dispatch(req, r);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  /* Directory handles carry no state. */
  fuse_reply_err(req, 0);
}

/* FLUSH, GETXATTR, ... are left NULL: libfuse answers ENOSYS and the kernel stops sending them,
 * which saves a round trip on every close(2). ACCESS is answered: left out, the kernel would
 * grant every access(2) (W_OK on 0444 files included). */
static const struct fuse_lowlevel_ops isolfs_ops = {
    .init = op_init,
    .lookup = op_lookup, .forget = op_forget,
    .getattr = op_getattr, .setattr = op_setattr, .access = op_access,
    .open = op_open, .read = op_read, .write = op_write, .release = op_release,
    .opendir = op_opendir, .readdir = op_readdir, .releasedir = op_releasedir,
    .poll = op_poll,
};

/* Writes `r` into the request header. 0 if the header is gone or too short (JS replaced it). */
static int fill_header(napi_env env, session_t *s, const request_t *r) {
  napi_value header;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_get_reference_value(env, s->header, &header) != napi_ok || header == NULL ||
      napi_get_typedarray_info(env, header, &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || length < FIELD_COUNT || data == NULL) {
    return 0;
  }
  double *field = data;
  field[FIELD_ID] = r->id;
  field[FIELD_OP] = r->op;
  field[FIELD_INO] = (double)r->ino;
  field[FIELD_PID] = r->pid;
  field[FIELD_UID] = r->uid;
  field[FIELD_GID] = r->gid;
  field[FIELD_FH] = (double)r->fh;
  field[FIELD_OFFSET] = (double)r->offset;
  field[FIELD_SIZE] = (double)r->size;
  field[FIELD_FLAGS] = r->op == OP_SETATTR ? r->to_set : r->flags;
  return 1;
}

/* Answers EIO (unless a notification) and frees `r`: for a request JS cannot be given. */
static void fail_request(request_t *r) {
  fuse_req_t req = r->id >= 0 ? slot_release(r->id, NULL) : NULL;
  if (r->id < 0 && r->ph) fuse_pollhandle_destroy(r->ph); /* never reached a slot */
  if (req) fuse_reply_err(req, EIO);
  free(r->name);
  free(r->data);
  free(r);
}

/* Fills the request header and calls handler(name, data). Runs on the main thread. */
static void call_handler(napi_env env, napi_value handler, session_t *s, request_t *r) {
  if (!fill_header(env, s, r)) return fail_request(r);
  napi_value argv[2];
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  argv[0] = argv[1] = undefined;
  if (r->name) napi_create_string_utf8(env, r->name, NAPI_AUTO_LENGTH, &argv[0]);
  if (r->data) {
    void *copy = NULL;
    napi_create_buffer_copy(env, r->data_len, r->data, &copy, &argv[1]);
  }
  napi_value result;
  if (napi_call_function(env, undefined, handler, 2, argv, &result) != napi_ok) {
    /* The handler threw: never let it escape (it would kill the daemon); answer EIO. */
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    return fail_request(r);
  }
  free(r->name);
  free(r->data);
  free(r);
}

static void deliver(session_t *s, request_t *r) {
  /* poll mode: we are inside the uv poll callback with a handle + callback scope open */
  napi_value handler;
  if (napi_get_reference_value(s->env, s->handler, &handler) != napi_ok || handler == NULL) {
    return fail_request(r);
  }
  call_handler(s->env, handler, s, r);
}

/* ---------------------------------------------------------------- poll loop ----------------- */

static void poll_closed(uv_handle_t *handle) { free(handle); }

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  session_t *s = handle->data;
  if (status < 0 || s->se == NULL) return;
  napi_env env = s->env;
  napi_handle_scope handle_scope;
  napi_callback_scope callback_scope;
  napi_value resource;
  napi_open_handle_scope(env, &handle_scope);
  napi_get_reference_value(env, s->resource, &resource);
  /* One callback scope for the whole batch: microtasks queued by the handlers run once at the
   * end of the batch instead of after every request. */
  napi_open_callback_scope(env, resource, s->async_context, &callback_scope);
  /* Drain what is queued, but yield to the event loop after a bounded batch. */
  for (int i = 0; i < 64 && s->se != NULL; i++) {
    int res = fuse_session_receive_buf(s->se, &s->buf);
    if (res == -EAGAIN || res == -EINTR) break;
    if (res <= 0 || fuse_session_exited(s->se)) {
      /* the connection is gone (unmounted from outside, or aborted) */
      uv_poll_stop(s->poll);
      break;
    }
    fuse_session_process_buf(s->se, &s->buf);
  }
  napi_close_callback_scope(env, callback_scope);
  napi_close_handle_scope(env, handle_scope);
}

/* ---------------------------------------------------------------- thread loop --------------- */

/* Teardown interrupts the receiving thread's read(2) of /dev/fuse with this signal: while a
 * container holds a bind of the mount the connection stays up after our unmount, and that read
 * would never return. Its handler does nothing; installed without SA_RESTART, the read fails
 * with EINTR and the loop sees the session has exited. */
#define WAKE_SIGNAL (SIGRTMIN + 4)

static void on_wake_signal(int sig) { (void)sig; }

static void install_wake_signal(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_wake_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART */
  sigaction(WAKE_SIGNAL, &sa, NULL);
}

/* Our threads take no process signals (Node handles those), except the wake signal. */
static void mask_signals(int allow_wake) {
  sigset_t set;
  sigfillset(&set);
  if (allow_wake) sigdelset(&set, WAKE_SIGNAL);
  pthread_sigmask(SIG_SETMASK, &set, NULL);
}

/* Joins `thread`, signalling it every 20 ms (if `wake`), for at most `bound_ms`; 1 if it ended. */
static int join_bounded(pthread_t thread, int wake, int bound_ms) {
  for (int waited_ms = 0; waited_ms < bound_ms; waited_ms += 20) {
    if (wake) pthread_kill(thread, WAKE_SIGNAL);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 20 * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(thread, NULL, &until) == 0) return 1;
  }
  return 0;
}

static void *thread_loop(void *arg) {
  session_t *s = arg;
  mask_signals(1);
  struct fuse_buf buf;
  memset(&buf, 0, sizeof(buf));
  while (!fuse_session_exited(s->se)) {
    int res = fuse_session_receive_buf(s->se, &buf);
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res <= 0) break;
    fuse_session_process_buf(s->se, &buf);
  }
  free(buf.mem);
  return NULL;
}

static void tsfn_call_js(napi_env env, napi_value handler, void *context, void *data) {
  request_t *r = data;
  /* the function is being torn down: answer so the kernel does not wait forever */
  if (env == NULL || handler == NULL) return fail_request(r);
  call_handler(env, handler, context, r);
}

/* ---------------------------------------------------------------- mount / unmount ---------- */

static void session_unlink(session_t *s) {
  session_t **p = &all_sessions;
  while (*p) {
    if (*p == s) {
      *p = s->next;
      return;
    }
    p = &(*p)->next;
  }
}

/* Unmounts without touching JS: safe from atexit and env cleanup hooks. */
static void session_unmount_raw(session_t *s) {
  if (!s->mounted) return;
  s->mounted = 0;
  fuse_session_exit(s->se);
  fuse_session_unmount(s->se);
}

static void at_process_exit(void) {
  for (session_t *s = all_sessions; s; s = s->next) session_unmount_raw(s);
}

static void env_cleanup(void *arg) {
  (void)arg;
  at_process_exit();
}

/* Stops the notifier: what is still queued is answered without its store. 1 if it ended. */
static int notifier_stop(session_t *s) {
  if (!s->notifier_started) return 1;
  pthread_mutex_lock(&s->store_lock);
  s->store_stop = 1;
  pthread_cond_broadcast(&s->store_cond);
  pthread_mutex_unlock(&s->store_lock);
  /* a store in progress waits at most for a READ in flight, which the aborted connection ends */
  if (!join_bounded(s->notifier, 0, 2000)) return 0;
  s->notifier_started = 0;
  return 1;
}

static void drop_reference(napi_env env, napi_ref *ref) {
  if (*ref == NULL) return;
  napi_delete_reference(env, *ref);
  *ref = NULL;
}

/*
 * Bounded: exit, unmount (the connection lives on while containers hold binds of it), wake the
 * receiving thread out of its read(2) and join it for at most 2 s, stop the notifier, then close
 * the session (closing the fd aborts the connection: readers in containers get ECONNABORTED until
 * the next daemon repairs their mounts). A thread that does not end is left with its session.
 */
static void session_teardown(session_t *s) {
  napi_env env = s->env;
  int ended = 1;
  pthread_mutex_lock(&s->store_lock);
  s->store_stop = 1; /* no new stores from now on */
  pthread_mutex_unlock(&s->store_lock);
  session_unmount_raw(s);
  if (s->use_thread) {
    if (s->thread_started) {
      ended = join_bounded(s->thread, 1, 2000);
      if (ended) s->thread_started = 0;
    }
    if (s->tsfn) {
      napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
      s->tsfn = NULL;
    }
  } else if (s->poll) {
    uv_poll_stop(s->poll);
    uv_close((uv_handle_t *)s->poll, poll_closed);
    s->poll = NULL;
  }
  if (!notifier_stop(s)) ended = 0;
  pollwatch_remove_owner(s);
  if (s->se && ended) {
    slot_drop_session(s);
    fuse_session_destroy(s->se);
    s->se = NULL;
    free(s->buf.mem);
    s->buf.mem = NULL;
    content_drop_all(s);
    free(s->store_queue);
    s->store_queue = NULL;
  }
  drop_reference(env, &s->handler);
  drop_reference(env, &s->resource);
  drop_reference(env, &s->header);
  if (s->async_context) {
    napi_async_destroy(env, s->async_context);
    s->async_context = NULL;
  }
  s->torn_down = 1;
  session_unlink(s);
}

static void session_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  session_t *s = data;
  if (!s->torn_down) session_teardown(s);
  if (s->se == NULL) free(s); /* else a thread may still use it: leave it */
}

static bool arg_bool(napi_env env, napi_value v);
static napi_value js_number(napi_env env, double value);

static char *get_string(napi_env env, napi_value value) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return NULL;
  char *out = malloc(len + 1);
  if (!out) return NULL;
  napi_get_value_string_utf8(env, value, out, len + 1, &len);
  return out;
}

#define MAX_JS_ARGS 11

/* A call's arguments (those not given are undefined) and, for a reply, what the table knew of
 * its request. */
typedef struct {
  napi_value argv[MAX_JS_ARGS];
  size_t argc;
  slot_info_t slot;
} js_args_t;

/* Fetches a call's arguments: 0 (and a TypeError saying `usage` thrown) if fewer than `min_args`. */
static int get_args(napi_env env, napi_callback_info info, size_t min_args, const char *usage,
                    js_args_t *a) {
  a->argc = MAX_JS_ARGS;
  if (napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "isolfs native: napi_get_cb_info failed");
    return 0;
  }
  if (a->argc >= min_args) return 1;
  napi_throw_type_error(env, NULL, usage);
  return 0;
}

/* A Float64Array of at least FIELD_COUNT elements (the request header)? */
static int is_request_header(napi_env env, napi_value value) {
  bool is_typedarray = false;
  napi_typedarray_type type;
  size_t length = 0;
  if (napi_is_typedarray(env, value, &is_typedarray) != napi_ok || !is_typedarray) return 0;
  napi_get_typedarray_info(env, value, &type, &length, NULL, NULL, NULL);
  return type == napi_float64_array && length >= FIELD_COUNT;
}

/* mount(mountpoint: string, options: string, loop: "poll" | "thread", header: Float64Array,
 * handler(name, data)[, pageCache: boolean]): session */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  static const char usage[] = "mount(mountpoint, options, loop, header: Float64Array, handler)";
  js_args_t a;
  if (!get_args(env, info, 5, usage, &a)) return NULL;
  napi_value *argv = a.argv;
  if (!is_request_header(env, argv[3])) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  char *mountpoint = get_string(env, argv[0]);
  char *options = get_string(env, argv[1]);
  char *loop = get_string(env, argv[2]);
  if (!mountpoint || !options || !loop) {
    free(mountpoint);
    free(options);
    free(loop);
    napi_throw_type_error(env, NULL, "mountpoint, options and loop must be strings");
    return NULL;
  }
  session_t *s = calloc(1, sizeof(session_t));
  if (s == NULL) {
    free(mountpoint);
    free(options);
    free(loop);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  pthread_mutex_init(&s->content_lock, NULL);
  pthread_mutex_init(&s->store_lock, NULL);
  pthread_cond_init(&s->store_cond, NULL);
  s->store_queue = calloc(STORE_QUEUE_MAX, sizeof(store_job_t));
  s->env = env;
  s->use_thread = strcmp(loop, "thread") == 0;
  s->page_cache = a.argc > 5 && arg_bool(env, argv[5]);
  free(loop);

  char *fuse_argv[] = {"isolfs", "-o", options, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
  s->se = fuse_session_new(&args, &isolfs_ops, sizeof(isolfs_ops), s);
  free(options);
  if (s->se == NULL) {
    free(mountpoint);
    free(s);
    napi_throw_error(env, "EINVAL", "fuse_session_new failed (bad mount options?)");
    return NULL;
  }
  if (fuse_session_mount(s->se, mountpoint) != 0) {
    free(mountpoint);
    fuse_session_destroy(s->se);
    free(s);
    napi_throw_error(env, "EMOUNT", "fuse_session_mount failed (see libfuse's message above)");
    return NULL;
  }
  free(mountpoint);
  s->mounted = 1;
  s->fd = fuse_session_fd(s->se);
  s->next = all_sessions;
  all_sessions = s;
  if (!atexit_registered) {
    atexit(at_process_exit);
    napi_add_env_cleanup_hook(env, env_cleanup, NULL);
    atexit_registered = 1;
  }

  napi_value resource_name, resource;
  napi_create_string_utf8(env, "isolfs.request", NAPI_AUTO_LENGTH, &resource_name);
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &s->resource);
  napi_create_reference(env, argv[3], 1, &s->header);
  napi_async_init(env, resource, resource_name, &s->async_context);

  /* without a notifier, OPENs are answered without a store (queue refuses) */
  if (s->store_queue && pthread_create(&s->notifier, NULL, notifier_loop, s) == 0) s->notifier_started = 1;

  if (s->use_thread) {
    install_wake_signal();
    CHECK(napi_create_threadsafe_function(env, argv[4], NULL, resource_name, 0, 1, NULL, NULL,
                                          s, tsfn_call_js, &s->tsfn));
    if (pthread_create(&s->thread, NULL, thread_loop, s) != 0) {
      session_teardown(s);
      napi_throw_error(env, NULL, "cannot start the FUSE request thread");
      return NULL;
    }
    s->thread_started = 1;
  } else {
    CHECK(napi_create_reference(env, argv[4], 1, &s->handler));
    /* non-blocking, so a drained queue ends the batch with EAGAIN instead of blocking */
    int fl = fcntl(s->fd, F_GETFL);
    fcntl(s->fd, F_SETFL, fl | O_NONBLOCK);
    uv_loop_t *uvloop;
    napi_get_uv_event_loop(env, &uvloop);
    s->poll = malloc(sizeof(uv_poll_t));
    uv_poll_init(uvloop, s->poll, s->fd);
    s->poll->data = s;
    uv_poll_start(s->poll, UV_READABLE, on_readable);
  }

  napi_value external;
  CHECK(napi_create_external(env, s, session_finalize, NULL, &external));
  return external;
}

/* The session `value` is, or NULL (and a TypeError saying `usage` thrown). */
static session_t *get_session(napi_env env, napi_value value, const char *usage) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  return data;
}

/* unmount(session): idempotent */
static napi_value js_unmount(napi_env env, napi_callback_info info) {
  js_args_t a;
  if (!get_args(env, info, 1, "unmount(session)", &a)) return NULL;
  session_t *s = get_session(env, a.argv[0], "unmount(session)");
  if (s && !s->torn_down) session_teardown(s);
  return NULL;
}

/* ---------------------------------------------------------------- replies ------------------ */

/* The request `id_value` names, taken out of the table; NULL (and ESTALE thrown) if there is none. */
static fuse_req_t take_request(napi_env env, napi_value id_value, slot_info_t *info) {
  double id = -1;
  napi_get_value_double(env, id_value, &id);
  fuse_req_t req = slot_release(id, info);
  if (req == NULL) napi_throw_error(env, "ESTALE", "unknown or already answered request id");
  return req;
}

/* What every reply* starts with: its arguments, at least `min_args` of them, and the request the
 * first one names. NULL when JS has an exception to see. */
static fuse_req_t reply_begin(napi_env env, napi_callback_info info, size_t min_args,
                              const char *usage, js_args_t *a) {
  if (!get_args(env, info, min_args, usage, a)) return NULL;
  a->slot.want_ph = 0; /* a POLL answered otherwise (replyErr) has its poll handle destroyed */
  return take_request(env, a->argv[0], &a->slot);
}

/* Declares `a` (the arguments) and `req` (the request `a.argv[0]` names), or returns to JS with
 * its exception. The first line of every reply*. */
#define REPLY_BEGIN(min_args, usage)                                                             \
  js_args_t a;                                                                                   \
  fuse_req_t req = reply_begin(env, info, min_args, usage, &a);                                  \
  if (req == NULL) return NULL

static double num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

/* A JS number as an integer in [0, max]; NaN, negative or larger values give `fallback` instead
 * of the undefined behaviour of a C cast. */
static uint64_t num_u64(napi_env env, napi_value v, uint64_t max, uint64_t fallback) {
  double d = num(env, v);
  if (!(d >= 0) || d >= 18446744073709551616.0) return fallback; /* 2^64 */
  uint64_t out = (uint64_t)d;
  return out > max ? fallback : out;
}

/* A timeout in seconds, kept within [0, 1e9] (NaN: 0). */
static double num_timeout(napi_env env, napi_value v) {
  double d = num(env, v);
  if (!(d >= 0)) return 0;
  return d > 1e9 ? 1e9 : d;
}

/* st_blksize of every file: 64 KiB, more than any view is long on common machines. */
#define PREFERRED_READ_BYTES 65536

/* v: ino, mode, nlink, size, uid, gid, mtimeSec; `nsec`: the mtime's nanoseconds (undefined: 0) */
static void fill_stat(napi_env env, napi_value *v, napi_value nsec, struct stat *st) {
  memset(st, 0, sizeof(*st));
  st->st_ino = (ino_t)num_u64(env, v[0], UINT64_MAX, 0);
  st->st_mode = (mode_t)num_u64(env, v[1], 0177777, 0);
  st->st_nlink = (nlink_t)num_u64(env, v[2], UINT32_MAX, 1);
  st->st_size = (off_t)num_u64(env, v[3], INT64_MAX, 0);
  st->st_uid = (uid_t)num_u64(env, v[4], UINT32_MAX, 0);
  st->st_gid = (gid_t)num_u64(env, v[5], UINT32_MAX, 0);
  st->st_mtim.tv_sec = st->st_atim.tv_sec = st->st_ctim.tv_sec =
      (time_t)num_u64(env, v[6], INT64_MAX / 2, 0);
  st->st_mtim.tv_nsec = (long)num_u64(env, nsec, 999999999, 0);
  /* Reported as the preferred I/O size: stdio takes min(this, 8 KiB) and Python this as its
   * buffer, so a file up to that size is read in one read(2), i.e. one version of it even from
   * the page cache (several calls can straddle a change; one cannot). */
  st->st_blksize = PREFERRED_READ_BYTES;
}

/* replyErr(id, errno) */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  REPLY_BEGIN(2, "replyErr(id, errno)");
  /* 0 is success (RELEASE, ACCESS); NaN, negative or past 4095 becomes EIO */
  fuse_reply_err(req, (int)num_u64(env, a.argv[1], 4095, EIO));
  return NULL;
}

/* replyEntry(id, ino, mode, nlink, size, uid, gid, mtimeSec, entryTimeoutSec, attrTimeoutSec[, mtimeNsec]) */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  REPLY_BEGIN(10, "replyEntry: 10 arguments");
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  fill_stat(env, &a.argv[1], a.argv[10], &e.attr);
  session_t *s = fuse_req_userdata(req);
  if (s->page_cache) inode_content_reported(s, e.attr.st_ino, &e.attr);
  e.ino = e.attr.st_ino;
  e.generation = 1;
  e.entry_timeout = num_timeout(env, a.argv[8]);
  e.attr_timeout = num_timeout(env, a.argv[9]);
  fuse_reply_entry(req, &e);
  return NULL;
}

/* replyAttr(id, ino, mode, nlink, size, uid, gid, mtimeSec, attrTimeoutSec[, mtimeNsec]) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  REPLY_BEGIN(9, "replyAttr: 9 arguments");
  struct stat st;
  fill_stat(env, &a.argv[1], a.argv[9], &st);
  session_t *s = fuse_req_userdata(req);
  if (s->page_cache) inode_content_reported(s, st.st_ino, &st);
  fuse_reply_attr(req, &st, num_timeout(env, a.argv[8]));
  return NULL;
}

static bool arg_bool(napi_env env, napi_value v) {
  bool b = false;
  napi_get_value_bool(env, v, &b);
  return b;
}

/* The bytes of a Buffer argument; 0 if it is not one. */
static int arg_buffer(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (!is_buffer) return 0;
  napi_get_buffer_info(env, v, data, len);
  return 1;
}

/*
 * replyOpen(id, fh, directIo, keepCache, nonSeekable[, content[, storeFirst[, freshOnRewind]]]):
 * `content`, if given, is what READs of this handle get (copied into the content table before the
 * kernel can send one), under JS's rule `freshOnRewind` (see "content table"). With `storeFirst`,
 * the notifier puts `content` into the page cache of the opened inode and then answers (see
 * "notifier"); without a free place in its queue, we answer now.
 */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  REPLY_BEGIN(5, "replyOpen: 5 arguments");
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.fh = num_u64(env, a.argv[1], UINT64_MAX, 0);
  fi.direct_io = arg_bool(env, a.argv[2]);
  fi.keep_cache = arg_bool(env, a.argv[3]);
  fi.nonseekable = arg_bool(env, a.argv[4]);
  void *data = NULL;
  size_t len = 0;
  session_t *s = fuse_req_userdata(req);
  if (arg_buffer(env, a.argv[5], &data, &len)) {
    if (content_put(s, fi.fh, data, len, arg_bool(env, a.argv[7])) != 0) {
      fuse_reply_err(req, ENOMEM);
      return NULL;
    }
    if (arg_bool(env, a.argv[6]) && a.slot.op == OP_OPEN && len > 0 &&
        store_enqueue(s, req, &fi, (fuse_ino_t)a.slot.ino, data, len) == 0) {
      return NULL; /* the notifier answers */
    }
  }
  fuse_reply_open(req, &fi);
  return NULL;
}

/* The body of setContent and setInodeContent: `set`(session, key, bytes) with the third argument's
 * bytes, a TypeError for a bad call, ENOMEM thrown when it fails. */
static napi_value set_bytes_call(napi_env env, napi_callback_info info, const char *usage,
                                 int (*set)(session_t *, uint64_t, const void *, size_t)) {
  js_args_t a;
  if (!get_args(env, info, 3, usage, &a)) return NULL;
  session_t *s = get_session(env, a.argv[0], usage);
  void *data = NULL;
  size_t len = 0;
  if (s == NULL) return NULL;
  if (!arg_buffer(env, a.argv[2], &data, &len)) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  if (s->torn_down) return NULL;
  if (set(s, num_u64(env, a.argv[1], UINT64_MAX, 0), data, len) != 0) napi_throw_error(env, "ENOMEM", "out of memory");
  return NULL;
}

/* setContent(session, fh, buffer): fresh content for an open handle (after JS answered a READ). */
static napi_value js_set_content(napi_env env, napi_callback_info info) {
  return set_bytes_call(env, info, "setContent(session, fh, buffer)", content_replace);
}

/* setInodeContent(session, ino, buffer): the next content of `ino` in a page-cache session (see
 * "inode content": READs get it once attributes announcing it are replied) */
static napi_value js_set_inode_content(napi_env env, napi_callback_info info) {
  return set_bytes_call(env, info, "setInodeContent(session, ino, buffer)", inode_content_set);
}

/* dropInodeContent(session, ino): forgets it (the inode is gone); idempotent */
static napi_value js_drop_inode_content(napi_env env, napi_callback_info info) {
  static const char usage[] = "dropInodeContent(session, ino)";
  js_args_t a;
  if (!get_args(env, info, 2, usage, &a)) return NULL;
  session_t *s = get_session(env, a.argv[0], usage);
  if (s == NULL || s->torn_down) return NULL;
  content_drop(s, num_u64(env, a.argv[1], UINT64_MAX, 0));
  return NULL;
}

/* invalidateAttributes(session, ino): the kernel forgets `ino`'s attributes (not its pages), so
 * its next read asks GETATTR. Safe on a serving thread: an attribute-only invalidation waits on
 * no page, so on no request of ours. Returns 0, or the errno (ENOENT: the kernel has no such
 * inode cached, nothing to do). */
static napi_value js_invalidate_attributes(napi_env env, napi_callback_info info) {
  static const char usage[] = "invalidateAttributes(session, ino)";
  js_args_t a;
  if (!get_args(env, info, 2, usage, &a)) return NULL;
  session_t *s = get_session(env, a.argv[0], usage);
  if (s == NULL) return NULL;
  int rc = ENOTCONN;
  if (!s->torn_down && s->se != NULL && s->mounted) {
    rc = -fuse_lowlevel_notify_inval_inode(s->se, (fuse_ino_t)num_u64(env, a.argv[1], UINT64_MAX, 0), -1, 0);
  }
  return js_number(env, rc);
}

/* replyBuf(id, buffer) — the bytes of a read (anything but a Buffer: none) */
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  REPLY_BEGIN(1, "replyBuf(id, buffer)");
  void *data = NULL;
  size_t len = 0;
  arg_buffer(env, a.argv[1], &data, &len);
  /* never more than the kernel asked for: it would refuse the whole reply */
  fuse_reply_buf(req, data, len < a.slot.size ? len : (size_t)a.slot.size);
  return NULL;
}

/* replyWrite(id, count) */
/* replyPoll(id, revents): answers a POLL; its poll handle is kept by the handle's watch (to
 * notify at the next event) when there is one, else destroyed. */
static napi_value js_reply_poll(napi_env env, napi_callback_info info) {
  js_args_t a;
  if (!get_args(env, info, 2, "replyPoll(id, revents)", &a)) return NULL;
  a.slot.want_ph = 1;
  a.slot.ph = NULL;
  fuse_req_t req = take_request(env, a.argv[0], &a.slot);
  if (req == NULL) return NULL;
  session_t *s = fuse_req_userdata(req);
  if (a.slot.ph && !(a.slot.op == OP_POLL && pollwatch_keep_handle(s, a.slot.fh, a.slot.ph))) {
    fuse_pollhandle_destroy(a.slot.ph);
  }
  fuse_reply_poll(req, (unsigned)num_u64(env, a.argv[1], UINT32_MAX, 0));
  return NULL;
}

/* watchPoll(session, fh, fd): 0 or an errno. From 0 on the fd is native's (closed by unwatchPoll
 * or teardown); its POLLPRI events wake the pollers of `fh`. */
static napi_value js_watch_poll(napi_env env, napi_callback_info info) {
  static const char usage[] = "watchPoll(session, fh, fd)";
  js_args_t a;
  if (!get_args(env, info, 3, usage, &a)) return NULL;
  session_t *s = get_session(env, a.argv[0], usage);
  if (s == NULL) return NULL;
  uint64_t fh = num_u64(env, a.argv[1], UINT64_MAX, 0);
  uint64_t fd = num_u64(env, a.argv[2], INT32_MAX, UINT64_MAX);
  if (fd == UINT64_MAX || s->torn_down) return js_number(env, EBADF);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  return js_number(env, pollwatch_add(loop, s, fh, (int)fd));
}

/* unwatchPoll(session, fh): ends the handle's watch and closes its fd; true if it had one. */
static napi_value js_unwatch_poll(napi_env env, napi_callback_info info) {
  js_args_t a;
  if (!get_args(env, info, 2, "unwatchPoll(session, fh)", &a)) return NULL;
  session_t *s = get_session(env, a.argv[0], "unwatchPoll(session, fh)");
  if (s == NULL) return NULL;
  napi_value out;
  napi_get_boolean(env, pollwatch_remove(s, num_u64(env, a.argv[1], UINT64_MAX, 0)), &out);
  return out;
}

/* takePollEvent(session, fh): the poll bits the handle's fd adds (pollwatch_take_event). */
static napi_value js_take_poll_event(napi_env env, napi_callback_info info) {
  js_args_t a;
  if (!get_args(env, info, 2, "takePollEvent(session, fh)", &a)) return NULL;
  session_t *s = get_session(env, a.argv[0], "takePollEvent(session, fh)");
  if (s == NULL) return NULL;
  napi_value out;
  napi_create_uint32(env, (uint32_t)pollwatch_take_event(s, num_u64(env, a.argv[1], UINT64_MAX, 0)), &out);
  return out;
}

/* pollWatchGone(session, fh): whether the handle's fd answered POLLERR (its cgroup was removed). */
static napi_value js_poll_watch_gone(napi_env env, napi_callback_info info) {
  js_args_t a;
  if (!get_args(env, info, 2, "pollWatchGone(session, fh)", &a)) return NULL;
  session_t *s = get_session(env, a.argv[0], "pollWatchGone(session, fh)");
  if (s == NULL) return NULL;
  napi_value out;
  napi_get_boolean(env, pollwatch_gone(s, num_u64(env, a.argv[1], UINT64_MAX, 0)), &out);
  return out;
}

/* watchdogArm(silenceLimitMs, connectionMinors[]): the deadman thread (deadman.c) acts once the
 * main thread has not beaten for that long, aborting these fusectl connections; 0 or an errno. */
static napi_value js_watchdog_arm(napi_env env, napi_callback_info info) {
  static const char usage[] = "watchdogArm(silenceLimitMs, connectionMinors)";
  js_args_t a;
  if (!get_args(env, info, 2, usage, &a)) return NULL;
  bool is_array = false;
  napi_is_array(env, a.argv[1], &is_array);
  if (!is_array) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  uint32_t length = 0;
  napi_get_array_length(env, a.argv[1], &length);
  unsigned minors[DEADMAN_MAX_CONNECTIONS];
  int count = 0;
  for (uint32_t i = 0; i < length && count < DEADMAN_MAX_CONNECTIONS; i++) {
    napi_value item;
    napi_get_element(env, a.argv[1], i, &item);
    minors[count++] = (unsigned)num_u64(env, item, UINT32_MAX, 0);
  }
  return js_number(env, deadman_arm((int64_t)num_u64(env, a.argv[0], INT32_MAX, 0), minors, count));
}

/* watchdogBeat(): the main thread is running. */
static napi_value js_watchdog_beat(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  deadman_beat();
  return NULL;
}

/* watchdogKillAfter(ms, why): no more beats are waited for (the process is ending); if it has not
 * ended `ms` from now, the deadman thread aborts our connections and SIGKILLs it. */
static napi_value js_watchdog_kill_after(napi_env env, napi_callback_info info) {
  static const char usage[] = "watchdogKillAfter(ms, why)";
  js_args_t a;
  if (!get_args(env, info, 2, usage, &a)) return NULL;
  char why[200] = "";
  size_t ignored;
  napi_get_value_string_utf8(env, a.argv[1], why, sizeof(why), &ignored);
  deadman_stop_watching();
  deadman_kill_after((int64_t)num_u64(env, a.argv[0], INT32_MAX, 0), why);
  return NULL;
}

static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  REPLY_BEGIN(2, "replyWrite(id, count)");
  fuse_reply_write(req, (size_t)num_u64(env, a.argv[1], a.slot.size, a.slot.size));
  return NULL;
}

/* replyDir(id, names[], inos[], modes[], offset, size): entries after `offset` (the index of the
 * next one; at or past the end, NaN or negative: none), up to the request's size */
static napi_value js_reply_dir(napi_env env, napi_callback_info info) {
  REPLY_BEGIN(6, "replyDir: 6 arguments");
  napi_value *argv = a.argv;
  uint32_t count = 0;
  napi_get_array_length(env, argv[1], &count);
  uint64_t first = num_u64(env, argv[4], count, count);
  size_t size = (size_t)num_u64(env, argv[5], a.slot.size, a.slot.size);
  char *buf = malloc(size > 0 ? size : 1);
  if (!buf) {
    fuse_reply_err(req, ENOMEM);
    return NULL;
  }
  size_t used = 0;
  for (uint64_t i = first; i < count; i++) {
    napi_value name_v, ino_v, mode_v;
    napi_get_element(env, argv[1], (uint32_t)i, &name_v);
    napi_get_element(env, argv[2], (uint32_t)i, &ino_v);
    napi_get_element(env, argv[3], (uint32_t)i, &mode_v);
    char name[256];
    size_t name_len = 0;
    if (napi_get_value_string_utf8(env, name_v, name, sizeof(name), &name_len) != napi_ok) break;
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = (ino_t)num_u64(env, ino_v, UINT64_MAX, 0);
    st.st_mode = (mode_t)num_u64(env, mode_v, 0177777, 0);
    size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  return NULL;
}

static napi_value js_number(napi_env env, double value) {
  napi_value out;
  napi_create_double(env, value, &out);
  return out;
}

/* pending(): requests handed to JS and not yet answered (for metrics and leak tests) */
static napi_value js_pending(napi_env env, napi_callback_info info) {
  (void)info;
  return js_number(env, slot_pending());
}

/* setnsCgroup(path): joins the cgroup namespace at path (e.g. /proc/1/ns/cgroup) for the calling
 * thread — the main thread, which is where every /proc/<pid>/cgroup read happens. /proc/<pid>/cgroup
 * prints paths relative to the *reader's* cgroup namespace, so a daemon in a pod's own namespace
 * would see other containers as "/../.."; joining the host's makes every path absolute. */
static napi_value js_setns_cgroup(napi_env env, napi_callback_info info) {
  js_args_t a;
  if (!get_args(env, info, 1, "setnsCgroup(path)", &a)) return NULL;
  char *ns_path = get_string(env, a.argv[0]);
  if (!ns_path) {
    napi_throw_type_error(env, NULL, "setnsCgroup(path)");
    return NULL;
  }
  int fd = open(ns_path, O_RDONLY | O_CLOEXEC);
  free(ns_path);
  if (fd < 0 || setns(fd, CLONE_NEWCGROUP) != 0) {
    int err = errno;
    if (fd >= 0) close(fd);
    napi_throw_error(env, NULL, strerror(err));
    return NULL;
  }
  close(fd);
  return NULL;
}

/* libfuseVersion(): e.g. 314 */
static napi_value js_libfuse_version(napi_env env, napi_callback_info info) {
  (void)info;
  return js_number(env, fuse_version());
}

/* A frozen JS object { name: value, ... } of `table`. */
static napi_value named_ints(napi_env env, const named_int_t *table, size_t count) {
  napi_value object;
  napi_create_object(env, &object);
  for (size_t i = 0; i < count; i++) {
    napi_value value;
    napi_create_int32(env, table[i].value, &value);
    napi_set_named_property(env, object, table[i].name, value);
  }
  napi_object_freeze(env, object);
  return object;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value ops = named_ints(env, op_codes, sizeof(op_codes) / sizeof(op_codes[0]));
  napi_value fields = named_ints(env, request_fields, sizeof(request_fields) / sizeof(request_fields[0]));
  napi_property_descriptor props[] = {
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"unmount", NULL, js_unmount, NULL, NULL, NULL, napi_default, NULL},
      {"replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_default, NULL},
      {"replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_default, NULL},
      {"replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_default, NULL},
      {"replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_default, NULL},
      {"replyBuf", NULL, js_reply_buf, NULL, NULL, NULL, napi_default, NULL},
      {"setContent", NULL, js_set_content, NULL, NULL, NULL, napi_default, NULL},
      {"setInodeContent", NULL, js_set_inode_content, NULL, NULL, NULL, napi_default, NULL},
      {"dropInodeContent", NULL, js_drop_inode_content, NULL, NULL, NULL, napi_default, NULL},
      {"invalidateAttributes", NULL, js_invalidate_attributes, NULL, NULL, NULL, napi_default, NULL},
      {"replyWrite", NULL, js_reply_write, NULL, NULL, NULL, napi_default, NULL},
      {"replyDir", NULL, js_reply_dir, NULL, NULL, NULL, napi_default, NULL},
      {"replyPoll", NULL, js_reply_poll, NULL, NULL, NULL, napi_default, NULL},
      {"watchPoll", NULL, js_watch_poll, NULL, NULL, NULL, napi_default, NULL},
      {"unwatchPoll", NULL, js_unwatch_poll, NULL, NULL, NULL, napi_default, NULL},
      {"takePollEvent", NULL, js_take_poll_event, NULL, NULL, NULL, napi_default, NULL},
      {"pollWatchGone", NULL, js_poll_watch_gone, NULL, NULL, NULL, napi_default, NULL},
      {"pending", NULL, js_pending, NULL, NULL, NULL, napi_default, NULL},
      {"watchdogArm", NULL, js_watchdog_arm, NULL, NULL, NULL, napi_default, NULL},
      {"watchdogBeat", NULL, js_watchdog_beat, NULL, NULL, NULL, napi_default, NULL},
      {"watchdogKillAfter", NULL, js_watchdog_kill_after, NULL, NULL, NULL, napi_default, NULL},
      {"setnsCgroup", NULL, js_setns_cgroup, NULL, NULL, NULL, napi_default, NULL},
      {"libfuseVersion", NULL, js_libfuse_version, NULL, NULL, NULL, napi_default, NULL},
      {"ops", NULL, NULL, NULL, NULL, ops, napi_enumerable, NULL},
      {"requestFields", NULL, NULL, NULL, NULL, fields, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
