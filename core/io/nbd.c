/* remap: the NBD backend: origin= or spare= given as an NBD URI, served by
 * any NBD server (nbdkit, qemu-nbd, qemu-storage-daemon) through libnbd.
 *
 * libnbd's synchronous calls hold the handle for their whole duration, so
 * one handle would serialise every request.  We keep a small pool: up to
 * POOL connections when the server advertises multi-conn (which also
 * guarantees that a flush on one connection covers writes completed on
 * the others), else exactly one.  A request borrows a free slot.
 *
 * Errors: a command the server refused (the connection still up) is a
 * server error, returned with the server's errno for the engine's error
 * classes (only EIO and its kin are a failed medium).  Requests are split at MAX_REQUEST (libnbd refuses more
 * than 64 MiB).  Alignment is the server's business: strict alignment
 * checking is off so that sub-block requests reach the server.
 *
 * A lost connection is not a failed medium (SPEC 3.10).  A command that
 * fails on a handle that libnbd reports dead or closed, or that the server
 * refuses with ESHUTDOWN (it is going away), has lost its connection, and
 * the backend goes DOWN:
 *
 *           lost                       reconnected, same export size
 *     UP ---------> DOWN (-ENOTCONN) ---------------------------------> UP
 *                    |  ^  attempt failed: next in 100 ms, doubling to 5 s
 *                    +--+
 *
 * While DOWN every transfer fails with -ENOTCONN, never -EIO, so that the
 * engine cannot take it for a bad sector; except that a request waits for
 * the connection to come back (and then runs) for at most wait_ms
 * (reconnect-timeout=, default 5 s, well under the kernel nbd client's
 * 30 s request timeout), and not at all once the outage is older than
 * that: a server restart is not seen by clients, a long outage costs them
 * no time.  Reconnection is on demand, never given up: whoever finds an
 * attempt due (next_try passed, no attempt under way) makes it, bounded
 * by CONNECT_MS; the rest wait or fail at once.  A loss less than
 * STABLE_MS after a reconnection (a flapping server) doubles the wait
 * before its first attempt, each time in a row (up to 5 s).  No thread
 * of its own: a backend is opened before nbdkit forks.  status reports
 * DOWN, for how long and why, and itself makes an attempt when one is
 * due.
 *
 * Epochs.  Every loss bumps `epoch'; a slot remembers the epoch its handle
 * was connected in.  A handle of an older epoch is stale (its connection
 * is known lost, or predates a loss) and is closed and reconnected before
 * use; its failure is not a new loss.  So one loss is recorded once, and a
 * reconnection is not undone by the other slots' dead handles.
 *
 * Durability.  A write the server acknowledged on a connection that was
 * then lost may not have reached its stable storage.  If writes completed
 * since the last good flush when a loss is recorded, the next flush (on
 * the new connection) fails once with -EIO, like fsync after a writeback
 * error, so that the caller learns that what it wrote may be gone.
 *
 * A reconnection is accepted only to an export of the size we had (and
 * writable if we write): another size is another disk, the backend stays
 * DOWN and status says so.
 *
 * Locking: `lock' guards everything below it in struct nbd; a handle is
 * used without it by the one request that marked its slot busy.  libnbd
 * calls that may block (connect, commands) run without `lock'.
 *
 * Extents: every connection asks for the base:allocation context, and
 * extents is one NBD_CMD_BLOCK_STATUS (at most EXTENTS_MAX bytes; the
 * server may answer for less).  Its answer is collected in the command
 * and reported only after `run' returns: a command retried on a new
 * connection starts its collection again, so the caller never sees a
 * range twice.  A server without the context reports all data.
 *
 * Not done: an advisory lock (NBD has none: exclusive use is the
 * server's business); a timeout for a server that keeps the connection
 * open but never answers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "remap/backend.h"

bool
remap_is_nbd_uri (const char *spec)
{
  static const char *const schemes[] = {
    "nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+vsock://",
    "nbds+vsock://",
  };
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
    if (strncmp (spec, schemes[i], strlen (schemes[i])) == 0)
      return true;
  return false;
}

int
remap_backend_open (const char *spec, unsigned flags,
                    struct remap_backend **out, struct remap_error *err)
{
  if (remap_is_nbd_uri (spec))
    return remap_nbd_open (spec, flags & REMAP_FILE_READONLY, out, err);
  return remap_file_open (spec, flags, out, err);
}

#ifndef REMAP_HAVE_LIBNBD

int
remap_nbd_open (const char *uri, unsigned flags, struct remap_backend **out,
                struct remap_error *err)
{
  (void) flags;
  *out = NULL;
  return remap_set_error (err, -ENOTSUP, "%s: this remap was built without "
                          "libnbd, so NBD URIs are not supported; install "
                          "libnbd-dev and rebuild", uri);
}

int
remap_nbd_open_known_size (const char *uri, unsigned flags, uint64_t size,
                           struct remap_backend **out,
                           struct remap_error *err)
{
  (void) size;
  return remap_nbd_open (uri, flags, out, err);
}

int
remap_nbd_set_reconnect_timeout (struct remap_backend *b, unsigned ms)
{
  (void) b;
  (void) ms;
  return -EINVAL;
}

#else

#include <libnbd.h>

#define POOL 4
#define MAX_REQUEST (32u << 20)
#define OPEN_CONNECT_MS 30000u  /* the first connection */
#define CONNECT_MS 2000u        /* one reconnection attempt */
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define STABLE_MS 10000u        /* up this long: a new loss is a new outage */

struct nbd {
  struct remap_backend base;    /* first: the vtable base */
  char *uri;
  bool readonly;

  pthread_mutex_t lock;
  pthread_cond_t cond;          /* a slot came free, or the state changed */
  /* Under lock. */
  struct nbd_handle *h[POOL];   /* NULL: not connected */
  unsigned epoch_of[POOL];      /* the epoch h[i] was connected in */
  bool busy[POOL];              /* a request (or an attempt) owns slot i */
  unsigned n;                   /* slots in use */
  bool pool_sized;              /* n follows the server's multi-conn */
  unsigned epoch;               /* bumped at every recorded loss */
  bool down;
  bool connecting;              /* a reconnection attempt is under way */
  uint64_t down_since, next_try; /* CLOCK_MONOTONIC, ms */
  uint64_t up_since;            /* the last (re)connection */
  unsigned flaps;               /* losses in a row soon after a reconnect */
  unsigned backoff;             /* ms until the attempt after next */
  unsigned wait_ms;             /* how long a request waits (from the loss) */
  uint64_t attempts;            /* failed attempts in this outage */
  uint64_t reconnects;
  uint64_t writes, flushed;     /* writes completed; covered by a flush */
  bool suspect;                 /* unflushed writes met a lost connection */
  char why[200];                /* the cause of the outage */
};

static const struct remap_backend_ops nbd_ops;

static uint64_t
now_ms (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return (uint64_t) t.tv_sec * 1000 + (uint64_t) t.tv_nsec / 1000000;
}

static void
copy_error (char *dst, size_t n, const char *fallback)
{
  const char *e = nbd_get_error ();
  snprintf (dst, n, "%s", e && *e ? e : fallback);
}

/* A server error (the connection is fine): its errno as it is, for the
 * engine's error classes (docs/ERRORS.md): a server's media error arrives
 * as EIO, its ENOSPC or EPERM as themselves.  A failure without an errno
 * is EPROTO, which is no media error. */
static int
server_errno (int e)
{
  return e ? -e : -EPROTO;
}

static bool
connection_lost (struct nbd_handle *h, int e)
{
  return e == ESHUTDOWN || e == ENOTCONN || nbd_aio_is_dead (h) == 1
    || nbd_aio_is_closed (h) == 1;
}

/* Connect within ms milliseconds: the handle, or NULL and why. */
static struct nbd_handle *
connect_bounded (const char *uri, unsigned ms, char *why, size_t whylen)
{
  struct nbd_handle *h = nbd_create ();
  uint64_t end = now_ms () + ms;

  if (!h) {
    copy_error (why, whylen, "out of memory");
    return NULL;
  }
  nbd_set_strict_mode (h, nbd_get_strict_mode (h) & ~LIBNBD_STRICT_ALIGN);
  if (nbd_add_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1
      || nbd_aio_connect_uri (h, uri) == -1)
    goto fail;
  while (nbd_aio_is_connecting (h) == 1) {
    uint64_t t = now_ms ();
    if (t >= end) {
      snprintf (why, whylen, "no answer within %u ms", ms);
      nbd_close (h);
      return NULL;
    }
    if (nbd_poll (h, (int) (end - t)) == -1)
      goto fail;
  }
  if (nbd_aio_is_ready (h) == 1)
    return h;
 fail:
  copy_error (why, whylen, "the connection failed");
  nbd_close (h);
  return NULL;
}

/* Is h an export we may use in place of the one we had? */
static bool
same_export (struct nbd *n, struct nbd_handle *h, char *why, size_t whylen)
{
  int64_t size = nbd_get_size (h);
  if (size < 0 || (uint64_t) size != n->base.size) {
    snprintf (why, whylen, "the server is back, but its export has %lld "
              "bytes, not %llu: it is another disk; serve the right one",
              (long long) size, (unsigned long long) n->base.size);
    return false;
  }
  if (!n->readonly && nbd_is_read_only (h) == 1) {
    snprintf (why, whylen, "the server is back, but its export is "
              "read-only now; serve it writable");
    return false;
  }
  return true;
}

/* Record a loss seen on slot i (lock held).  A handle of an older epoch,
 * or a loss already recorded, is not a new one. */
static void
lost_locked (struct nbd *n, unsigned i, const char *why)
{
  if (n->down || n->epoch_of[i] != n->epoch)
    return;
  uint64_t t = now_ms ();
  n->down = true;
  n->epoch++;
  /* The server may come back without writes it acknowledged, or be
   * another one serving the same size: what the export holds is unknown
   * from now on (remap_backend_writes: caches of its bytes are stale). */
  remap_backend_count_write (&n->base);
  n->down_since = t;
  n->attempts = 0;
  /* A connection that lived less than STABLE_MS: the server flaps, and
   * each such loss waits twice as long before its first attempt. */
  if (t - n->up_since >= STABLE_MS)
    n->flaps = 0;
  else if (n->flaps < 6)
    n->flaps++;
  n->backoff = BACKOFF_MIN_MS << n->flaps;
  if (n->backoff > BACKOFF_MAX_MS)
    n->backoff = BACKOFF_MAX_MS;
  n->next_try = n->flaps ? t + n->backoff : t;
  if (n->writes > n->flushed)
    n->suspect = true;
  snprintf (n->why, sizeof n->why, "connection lost: %.170s", why);
  pthread_cond_broadcast (&n->cond);
}

/* (Re)connect slot i, which the caller owns (busy); lock held on entry
 * and exit, dropped while connecting.  recovering: this is the attempt
 * of an outage (n->connecting was set).  0, or -ENOTCONN (then the slot
 * is given back and the backend is DOWN). */
static int
connect_slot (struct nbd *n, unsigned i, bool recovering)
{
  struct nbd_handle *old = n->h[i], *h;
  char why[200];

  n->h[i] = NULL;
  pthread_mutex_unlock (&n->lock);
  if (old)
    nbd_close (old);            /* stale: its connection is known lost */
  h = connect_bounded (n->uri, CONNECT_MS, why, sizeof why);
  if (h && !same_export (n, h, why, sizeof why)) {
    nbd_close (h);
    h = NULL;
  }
  pthread_mutex_lock (&n->lock);
  if (recovering)
    n->connecting = false;
  if (h) {
    n->h[i] = h;
    n->epoch_of[i] = n->epoch;
    /* A new connection may reach a server that restarted unseen by the
     * other slots (see lost_locked). */
    remap_backend_count_write (&n->base);
    if (!n->pool_sized) {
      n->n = nbd_can_multi_conn (h) == 1 ? POOL : 1;
      n->pool_sized = true;
    }
    if (n->down) {
      n->down = false;
      n->reconnects++;
      n->up_since = now_ms ();
      n->why[0] = '\0';
    }
    pthread_cond_broadcast (&n->cond);
    return 0;
  }
  if (!n->down && !recovering && i > 0 && n->h[0]
      && n->epoch_of[0] == n->epoch) {
    /* An extra connection of the pool refused while the first one works:
     * the server takes fewer connections than multi-conn suggested.  Use
     * fewer, as at open. */
    n->n = i;
    n->busy[i] = false;
    pthread_cond_broadcast (&n->cond);
    return -ENOTCONN;
  }
  if (!n->down) {
    n->epoch_of[i] = n->epoch;
    lost_locked (n, i, why);
  }
  n->attempts++;
  n->next_try = now_ms () + n->backoff;
  n->backoff = n->backoff * 2 < BACKOFF_MAX_MS ? n->backoff * 2
    : BACKOFF_MAX_MS;
  snprintf (n->why, sizeof n->why, "%s: %.150s", n->pool_sized
            ? "connection lost; reconnecting failed" : "cannot connect",
            why);
  n->busy[i] = false;
  pthread_cond_broadcast (&n->cond);
  return -ENOTCONN;
}

static int
free_slot_locked (struct nbd *n)
{
  for (unsigned i = 0; i < n->n; i++)
    if (!n->busy[i])
      return (int) i;
  return -1;
}

/* Wait on cond until the absolute CLOCK_MONOTONIC time t (ms). */
static void
wait_until_locked (struct nbd *n, uint64_t t)
{
  struct timespec ts = { .tv_sec = (time_t) (t / 1000),
                         .tv_nsec = (long) (t % 1000) * 1000000 };
  pthread_cond_timedwait (&n->cond, &n->lock, &ts);
}

/* A connected slot for one request (*slot, busy), or -ENOTCONN.  While
 * DOWN: make the attempt if one is due, else wait for the outcome until
 * the outage is wait_ms old or the request started wait_ms ago (start),
 * whichever comes first, else fail at once. */
static int
get_slot (struct nbd *n, uint64_t start, unsigned *slot)
{
  int i;

  pthread_mutex_lock (&n->lock);
  for (;;) {
    uint64_t t = now_ms ();
    if (n->down) {
      uint64_t deadline = (n->down_since < start ? n->down_since : start)
        + n->wait_ms;
      if (!n->connecting && t >= n->next_try
          && (i = free_slot_locked (n)) >= 0) {
        n->busy[i] = true;
        n->connecting = true;
        if (connect_slot (n, (unsigned) i, true) == 0)
          break;
        continue;
      }
      if (t >= deadline) {
        pthread_mutex_unlock (&n->lock);
        return -ENOTCONN;
      }
      /* Woken by the attempt's outcome or a slot coming free; else at
       * the next attempt's time. */
      wait_until_locked (n, n->connecting || n->next_try <= t
                         || n->next_try > deadline ? deadline : n->next_try);
      continue;
    }
    if ((i = free_slot_locked (n)) < 0) {
      pthread_cond_wait (&n->cond, &n->lock);
      continue;
    }
    n->busy[i] = true;
    if ((n->h[i] && n->epoch_of[i] == n->epoch)
        || connect_slot (n, (unsigned) i, false) == 0)
      break;
  }
  *slot = (unsigned) i;
  pthread_mutex_unlock (&n->lock);
  return 0;
}

/* A command on one handle: 0, or -1 with libnbd's error set, or a
 * negative errno of our own (not a libnbd failure). */
typedef int (*command_fn) (struct nbd_handle *h, void *arg);

/* Run fn on a connected handle.  A lost connection is recorded and the
 * command run again on the next one (every command here is idempotent),
 * for as long as get_slot lets us wait. */
static int
run (struct nbd *n, command_fn fn, void *arg, bool write)
{
  uint64_t start = now_ms ();
  for (;;) {
    unsigned i;
    int r = get_slot (n, start, &i);
    if (r)
      return r;
    r = fn (n->h[i], arg);
    int e = r == -1 ? nbd_get_errno () : 0;
    bool lost = r == -1 && connection_lost (n->h[i], e);
    char why[200] = "";
    if (lost)
      copy_error (why, sizeof why, "the connection closed");
    pthread_mutex_lock (&n->lock);
    if (r == 0 && write)
      n->writes++;
    /* A write that completed on a connection lost since (its reply was
     * read before the loss was recorded, or another slot lost it first):
     * the server that acknowledged it may be gone with it, so the next
     * flush must not pass. */
    if (r == 0 && write && n->epoch_of[i] != n->epoch)
      n->suspect = true;
    if (lost)
      lost_locked (n, i, why);
    n->busy[i] = false;
    pthread_cond_broadcast (&n->cond);
    pthread_mutex_unlock (&n->lock);
    if (!lost)
      return r == -1 ? server_errno (e) : r;
  }
}

/* ---- commands ---------------------------------------------------------- */

struct xfer {
  void *buf;
  uint64_t len, off;
  bool may_trim;
};

static int
cmd_pread (struct nbd_handle *h, void *arg)
{
  struct xfer *x = arg;
  for (uint64_t done = 0; done < x->len;) {
    size_t c = x->len - done < MAX_REQUEST ? x->len - done : MAX_REQUEST;
    if (nbd_pread (h, (char *) x->buf + done, c, x->off + done, 0) == -1)
      return -1;
    done += c;
  }
  return 0;
}

static int
cmd_pwrite (struct nbd_handle *h, void *arg)
{
  struct xfer *x = arg;
  for (uint64_t done = 0; done < x->len;) {
    size_t c = x->len - done < MAX_REQUEST ? x->len - done : MAX_REQUEST;
    if (nbd_pwrite (h, (char *) x->buf + done, c, x->off + done, 0) == -1)
      return -1;
    done += c;
  }
  return 0;
}

static int
cmd_zero (struct nbd_handle *h, void *arg)
{
  struct xfer *x = arg;
  int can = nbd_can_zero (h);   /* -1: the handle is not connected */
  if (can != 1)
    return can == -1 ? -1 : -EOPNOTSUPP;
  for (uint64_t done = 0; done < x->len;) {
    uint64_t c = x->len - done < (1u << 30) ? x->len - done : (1u << 30);
    if (nbd_zero (h, c, x->off + done,
                  x->may_trim ? 0 : LIBNBD_CMD_FLAG_NO_HOLE) == -1)
      return -1;
    done += c;
  }
  return 0;
}

static int
cmd_trim (struct nbd_handle *h, void *arg)
{
  struct xfer *x = arg;
  int can = nbd_can_trim (h);
  if (can != 1)
    return can;
  for (uint64_t done = 0; done < x->len;) {
    uint64_t c = x->len - done < (1u << 30) ? x->len - done : (1u << 30);
    if (nbd_trim (h, c, x->off + done, 0) == -1)
      return -1;
    done += c;
  }
  return 0;
}

/* With multi-conn one flush covers every connection; with one connection
 * there is only one.  Either way, flush one handle.  A server without a
 * write cache has nothing to flush. */
static int
cmd_flush (struct nbd_handle *h, void *arg)
{
  (void) arg;
  int can = nbd_can_flush (h);
  if (can != 1)
    return can;
  return nbd_flush (h, 0);
}

#define EXTENTS_MAX (1u << 30)

/* The answer of one block status command, clipped to [pos, end). */
struct ext_answer {
  uint64_t start, end, pos;     /* pos: the next byte expected */
  bool no_context;              /* the server offers no base:allocation */
  size_t n, cap;
  uint64_t *len;
  uint32_t *type;
  bool nomem;
};

static int
ext_entry (struct ext_answer *a, uint64_t len, uint32_t type)
{
  if (a->n == a->cap) {
    size_t cap = a->cap ? 2 * a->cap : 64;
    uint64_t *l = realloc (a->len, cap * sizeof *l);
    if (l)
      a->len = l;
    uint32_t *t = l ? realloc (a->type, cap * sizeof *t) : NULL;
    if (!t) {
      a->nomem = true;
      return -1;
    }
    a->type = t;
    a->cap = cap;
  }
  a->len[a->n] = len;
  a->type[a->n++] = type;
  a->pos += len;
  return 0;
}

static int
ext_callback (void *opaque, const char *context, uint64_t offset,
              uint32_t *entries, size_t nr, int *error)
{
  struct ext_answer *a = opaque;

  (void) error;                 /* an error chunk fails the command */
  if (strcmp (context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0
      || offset != a->pos)
    return 0;
  for (size_t i = 0; i + 1 < nr && a->pos < a->end; i += 2) {
    uint64_t len = entries[i];
    if (len == 0)
      break;
    if (len > a->end - a->pos)
      len = a->end - a->pos;
    if (ext_entry (a, len, entries[i + 1]) == -1)
      return -1;
  }
  return 0;
}

static int
cmd_extents (struct nbd_handle *h, void *arg)
{
  struct ext_answer *a = arg;
  int can = nbd_can_meta_context (h, LIBNBD_CONTEXT_BASE_ALLOCATION);

  a->n = 0;                     /* a retry starts again */
  a->pos = a->start;
  a->nomem = false;
  if (can == -1)
    return -1;
  a->no_context = can == 0;
  if (a->no_context)
    return 0;
  uint64_t count = a->end - a->start < EXTENTS_MAX ? a->end - a->start
    : EXTENTS_MAX;
  nbd_extent_callback cb = { .callback = ext_callback, .user_data = a };
  if (nbd_block_status (h, count, a->start, cb, 0) == -1)
    return a->nomem ? -ENOMEM : -1;
  return 0;
}

/* ---- the vtable ---------------------------------------------------------- */

static int
nbdb_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  struct xfer x = { buf, len, off, false };
  return run ((struct nbd *) b, cmd_pread, &x, false);
}

static int
nbdb_pwrite (struct remap_backend *b, const void *buf, size_t len,
             uint64_t off)
{
  struct xfer x = { (void *) buf, len, off, false };
  return run ((struct nbd *) b, cmd_pwrite, &x, true);
}

static int
nbdb_zero (struct remap_backend *b, uint64_t len, uint64_t off,
           bool may_trim)
{
  struct xfer x = { NULL, len, off, may_trim };
  return run ((struct nbd *) b, cmd_zero, &x, true);
}

static int
nbdb_trim (struct remap_backend *b, uint64_t len, uint64_t off)
{
  struct xfer x = { NULL, len, off, false };
  run ((struct nbd *) b, cmd_trim, &x, true);
  return 0;                     /* advisory */
}

static int
nbdb_flush (struct remap_backend *b)
{
  struct nbd *n = (struct nbd *) b;
  pthread_mutex_lock (&n->lock);
  uint64_t w = n->writes;
  pthread_mutex_unlock (&n->lock);
  int r = run (n, cmd_flush, NULL, false);
  if (r)
    return r;
  pthread_mutex_lock (&n->lock);
  if (w > n->flushed)
    n->flushed = w;
  if (n->suspect) {
    n->suspect = false;
    r = -EIO;                   /* once: the caller has been told */
  }
  pthread_mutex_unlock (&n->lock);
  return r;
}

static void
nbdb_status (struct remap_backend *b, struct remap_backend_status *st)
{
  struct nbd *n = (struct nbd *) b;
  int i;

  pthread_mutex_lock (&n->lock);
  if (n->down && !n->connecting && now_ms () >= n->next_try
      && (i = free_slot_locked (n)) >= 0) {
    n->busy[i] = true;
    n->connecting = true;
    if (connect_slot (n, (unsigned) i, true) == 0) {
      n->busy[i] = false;
      pthread_cond_broadcast (&n->cond);
    }
  }
  st->reconnects = n->reconnects;
  if (n->down) {
    uint64_t t = now_ms ();
    st->state = REMAP_BACKEND_UNREACHABLE;
    st->down_ms = t - n->down_since;
    snprintf (st->detail, sizeof st->detail, "%.190s; %llu attempt%s so far, "
              "the next %s", n->why, (unsigned long long) n->attempts,
              n->attempts == 1 ? "" : "s",
              n->connecting || t >= n->next_try ? "at the next request"
              : "after a back-off");
  }
  pthread_mutex_unlock (&n->lock);
}

static void
nbdb_close (struct remap_backend *b)
{
  struct nbd *n = (struct nbd *) b;
  for (unsigned i = 0; i < POOL; i++)
    if (n->h[i]) {
      nbd_shutdown (n->h[i], 0);
      nbd_close (n->h[i]);
    }
  pthread_mutex_destroy (&n->lock);
  pthread_cond_destroy (&n->cond);
  free (n->uri);
  free (n);
}

static int
nbdb_extents (struct remap_backend *b, uint64_t len, uint64_t off,
              remap_extent_fn fn, void *opaque)
{
  struct ext_answer a = { .start = off, .end = off + len, .pos = off };
  int r = run ((struct nbd *) b, cmd_extents, &a, false);

  if (r == 0 && a.no_context)
    r = fn (opaque, off, len, 0);
  for (size_t i = 0; r == 0 && i < a.n; i++) {
    r = fn (opaque, off, a.len[i], a.type[i]);
    off += a.len[i];
  }
  free (a.len);
  free (a.type);
  return r;
}

static const struct remap_backend_ops nbd_ops = {
  .kind = "nbd",
  .pread = nbdb_pread,
  .pwrite = nbdb_pwrite,
  .flush = nbdb_flush,
  .zero = nbdb_zero,
  .trim = nbdb_trim,
  .close = nbdb_close,
  .status = nbdb_status,
  .extents = nbdb_extents,
};

/* ---- opening ------------------------------------------------------------- */

static struct nbd *
nbd_alloc (const char *uri, unsigned flags)
{
  struct nbd *n = calloc (1, sizeof *n);
  pthread_condattr_t ca;

  if (!n || !(n->uri = strdup (uri))) {
    free (n);
    return NULL;
  }
  pthread_mutex_init (&n->lock, NULL);
  pthread_condattr_init (&ca);
  pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  pthread_cond_init (&n->cond, &ca);
  pthread_condattr_destroy (&ca);
  n->base.ops = &nbd_ops;
  n->readonly = flags & REMAP_FILE_READONLY;
  n->wait_ms = REMAP_NBD_DEFAULT_RECONNECT_MS;
  n->backoff = BACKOFF_MIN_MS;
  n->n = 1;
  snprintf (n->base.name, sizeof n->base.name, "%s", uri);
  return n;
}

/* The first connection, then the others of the pool (fewer is fine). */
static int
open_connected (struct nbd *n, struct nbd_handle *h, uint64_t known_size,
                struct remap_error *err)
{
  int64_t size = nbd_get_size (h);

  n->h[0] = h;
  if (size < 0)
    return remap_set_error (err, -EIO, "%s: cannot get the export size: %s",
                            n->uri, nbd_get_error ());
  if (known_size && (uint64_t) size != known_size)
    return remap_set_error (err, -ENODEV, "NBD export %s has %lld bytes, "
                            "not the %llu expected: it is another disk",
                            n->uri, (long long) size,
                            (unsigned long long) known_size);
  if (!n->readonly && nbd_is_read_only (h) == 1)
    return remap_set_error (err, -EROFS, "NBD export %s is read-only, but "
                            "remap needs to write to it", n->uri);
  n->base.size = (uint64_t) size;
  /* Identity (SPEC 2.7): the export name the URI asks for, and the size.
   * It names what the user serves, wherever the server runs; it cannot
   * tell apart two exports of one name and size (nbdkit's default export
   * "" of a size is any such disk).  An origin unreachable at open
   * (known_size, below) has none: nothing is checked. */
  char *xname = nbd_get_export_name (h);
  char *id = NULL;
  if (xname && asprintf (&id, "nbd:%s,size=%lld", xname, (long long) size)
      > 0)
    remap_backend_set_identity (&n->base, id);
  free (id);
  free (xname);
  int64_t min = nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM);
  n->base.logical_block = min > 0 ? (uint32_t) min : 512;
  n->base.align = n->base.logical_block;
  n->pool_sized = true;
  if (nbd_can_multi_conn (h) == 1)
    for (char why[200]; n->n < POOL; n->n++)
      if (!(n->h[n->n] = connect_bounded (n->uri, OPEN_CONNECT_MS, why,
                                          sizeof why)))
        break;
  return 0;
}

static int
nbd_open (const char *uri, unsigned flags, uint64_t known_size,
          struct remap_backend **out, struct remap_error *err)
{
  struct nbd *n = nbd_alloc (uri, flags);
  char why[200];
  int r;

  *out = NULL;
  if (!n)
    return remap_set_error (err, -ENOMEM, "out of memory");
  struct nbd_handle *h = connect_bounded (uri, OPEN_CONNECT_MS, why,
                                          sizeof why);
  if (!h && known_size) {
    /* Unreachable from the start: connect on demand (see the top). */
    n->base.size = known_size;
    n->base.logical_block = n->base.align = 512;
    n->down = true;
    n->epoch = 1;
    n->down_since = n->next_try = now_ms ();
    n->backoff = BACKOFF_MIN_MS;
    n->attempts = 1;
    snprintf (n->why, sizeof n->why, "cannot connect: %.170s", why);
    *out = &n->base;
    return 0;
  }
  if (!h) {
    nbdb_close (&n->base);
    return remap_set_error (err, -ENOTCONN, "cannot connect to NBD server "
                            "%s: %s; is the server running and the URI "
                            "right?", uri, why);
  }
  if ((r = open_connected (n, h, known_size, err)) != 0) {
    nbdb_close (&n->base);
    return r;
  }
  *out = &n->base;
  return 0;
}

int
remap_nbd_open (const char *uri, unsigned flags, struct remap_backend **out,
                struct remap_error *err)
{
  return nbd_open (uri, flags, 0, out, err);
}

int
remap_nbd_open_known_size (const char *uri, unsigned flags, uint64_t size,
                           struct remap_backend **out,
                           struct remap_error *err)
{
  if (size == 0)
    return remap_set_error (err, -EINVAL, "%s: an export of 0 bytes", uri);
  return nbd_open (uri, flags, size, out, err);
}

int
remap_nbd_set_reconnect_timeout (struct remap_backend *b, unsigned ms)
{
  if (b == NULL || b->ops != &nbd_ops || ms > REMAP_NBD_MAX_RECONNECT_MS)
    return -EINVAL;
  struct nbd *n = (struct nbd *) b;
  pthread_mutex_lock (&n->lock);
  n->wait_ms = ms;
  pthread_mutex_unlock (&n->lock);
  return 0;
}

#endif /* REMAP_HAVE_LIBNBD */
