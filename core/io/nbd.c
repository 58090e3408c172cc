/* remap: the NBD backend: origin= or spare= given as an NBD URI, served by
 * any NBD server (nbdkit, qemu-nbd, qemu-storage-daemon) through libnbd.
 *
 * libnbd's synchronous calls hold the handle for their whole duration, so
 * one handle would serialise every request.  We keep a small pool: up to
 * POOL connections when the server advertises multi-conn (which also
 * guarantees that a flush on one connection covers writes completed on
 * the others), else exactly one.  A request borrows a free handle.
 *
 * Errors: libnbd's errno is returned as it is, for the engine's error
 * classes (docs/ERRORS.md): a server's media error arrives as EIO, its
 * ENOSPC, EPERM or ESHUTDOWN as themselves; a connection that dies under
 * a request gives ENOTCONN, and every later call on the dead handle
 * EINVAL ("invalid state"); neither is a media error, so neither moves
 * data.  A failure without an errno is EPROTO.  Requests are
 * split at MAX_REQUEST (libnbd refuses more than 64 MiB).  Alignment is the
 * server's business: strict alignment checking is switched off so that
 * sub-block requests reach the server, which handles them (nbdkit does).
 *
 * Not done: reconnecting after the server goes away (every later request
 * then fails, and the engine reports it without acting on it), and
 * an advisory lock (NBD has none: exclusive use is the server's business).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#else

#include <libnbd.h>

#define POOL 4
#define MAX_REQUEST (32u << 20)

struct nbd {
  struct remap_backend base;    /* first: the vtable base */
  struct nbd_handle *h[POOL];
  unsigned n;
  bool busy[POOL];
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool can_zero, can_trim, can_flush;
};

static const struct remap_backend_ops nbd_ops;

static int
nbd_err (void)
{
  int e = nbd_get_errno ();
  return e ? -e : -EPROTO;
}

static unsigned
borrow (struct nbd *n)
{
  pthread_mutex_lock (&n->lock);
  for (;;) {
    for (unsigned i = 0; i < n->n; i++)
      if (!n->busy[i]) {
        n->busy[i] = true;
        pthread_mutex_unlock (&n->lock);
        return i;
      }
    pthread_cond_wait (&n->cond, &n->lock);
  }
}

static void
give_back (struct nbd *n, unsigned i)
{
  pthread_mutex_lock (&n->lock);
  n->busy[i] = false;
  pthread_cond_signal (&n->cond);
  pthread_mutex_unlock (&n->lock);
}

static int
nbd_io (struct remap_backend *b, void *buf, size_t len, uint64_t off,
        bool write)
{
  struct nbd *n = (struct nbd *) b;
  unsigned i = borrow (n);
  int r = 0;
  for (size_t done = 0; done < len && r == 0;) {
    size_t c = len - done < MAX_REQUEST ? len - done : MAX_REQUEST;
    int x = write ? nbd_pwrite (n->h[i], (char *) buf + done, c, off + done, 0)
      : nbd_pread (n->h[i], (char *) buf + done, c, off + done, 0);
    if (x == -1)
      r = nbd_err ();
    done += c;
  }
  give_back (n, i);
  return r;
}

static int
nbdb_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  return nbd_io (b, buf, len, off, false);
}

static int
nbdb_pwrite (struct remap_backend *b, const void *buf, size_t len,
             uint64_t off)
{
  return nbd_io (b, (void *) buf, len, off, true);
}

static int
nbdb_flush (struct remap_backend *b)
{
  struct nbd *n = (struct nbd *) b;
  if (!n->can_flush)
    return 0;                   /* the server has no write cache to flush */
  /* With multi-conn one flush covers every connection; with one
   * connection there is only one.  Either way, flush one handle. */
  unsigned i = borrow (n);
  int r = nbd_flush (n->h[i], 0) == -1 ? nbd_err () : 0;
  give_back (n, i);
  return r;
}

static int
nbdb_zero (struct remap_backend *b, uint64_t len, uint64_t off,
           bool may_trim)
{
  struct nbd *n = (struct nbd *) b;
  if (!n->can_zero)
    return -EOPNOTSUPP;
  unsigned i = borrow (n);
  int r = 0;
  for (uint64_t done = 0; done < len && r == 0;) {
    uint64_t c = len - done < (1u << 30) ? len - done : (1u << 30);
    if (nbd_zero (n->h[i], c, off + done,
                  may_trim ? 0 : LIBNBD_CMD_FLAG_NO_HOLE) == -1)
      r = nbd_err ();
    done += c;
  }
  give_back (n, i);
  return r;
}

static int
nbdb_trim (struct remap_backend *b, uint64_t len, uint64_t off)
{
  struct nbd *n = (struct nbd *) b;
  if (!n->can_trim)
    return 0;
  unsigned i = borrow (n);
  for (uint64_t done = 0; done < len;) {
    uint64_t c = len - done < (1u << 30) ? len - done : (1u << 30);
    nbd_trim (n->h[i], c, off + done, 0);   /* advisory */
    done += c;
  }
  give_back (n, i);
  return 0;
}

static void
nbdb_close (struct remap_backend *b)
{
  struct nbd *n = (struct nbd *) b;
  for (unsigned i = 0; i < n->n; i++) {
    nbd_shutdown (n->h[i], 0);
    nbd_close (n->h[i]);
  }
  pthread_mutex_destroy (&n->lock);
  pthread_cond_destroy (&n->cond);
  free (n);
}

static const struct remap_backend_ops nbd_ops = {
  .kind = "nbd",
  .pread = nbdb_pread,
  .pwrite = nbdb_pwrite,
  .flush = nbdb_flush,
  .zero = nbdb_zero,
  .trim = nbdb_trim,
  .close = nbdb_close,
};

static struct nbd_handle *
connect_one (const char *uri, struct remap_error *err)
{
  struct nbd_handle *h = nbd_create ();
  if (!h) {
    remap_set_error (err, -ENOMEM, "%s: %s", uri, nbd_get_error ());
    return NULL;
  }
  nbd_set_strict_mode (h, nbd_get_strict_mode (h) & ~LIBNBD_STRICT_ALIGN);
  if (nbd_connect_uri (h, uri) == -1) {
    remap_set_error (err, -EIO, "cannot connect to NBD server %s: %s; is "
                     "the server running and the URI right?", uri,
                     nbd_get_error ());
    nbd_close (h);
    return NULL;
  }
  return h;
}

int
remap_nbd_open (const char *uri, unsigned flags, struct remap_backend **out,
                struct remap_error *err)
{
  struct nbd *n = calloc (1, sizeof *n);
  *out = NULL;
  if (!n)
    return remap_set_error (err, -ENOMEM, "out of memory");
  pthread_mutex_init (&n->lock, NULL);
  pthread_cond_init (&n->cond, NULL);
  n->base.ops = &nbd_ops;
  snprintf (n->base.name, sizeof n->base.name, "%s", uri);

  if (!(n->h[0] = connect_one (uri, err))) {
    nbdb_close (&n->base);
    return -EIO;
  }
  n->n = 1;
  struct nbd_handle *h = n->h[0];
  int64_t size = nbd_get_size (h);
  if (size < 0) {
    remap_set_error (err, -EIO, "%s: cannot get the export size: %s", uri,
                     nbd_get_error ());
    nbdb_close (&n->base);
    return -EIO;
  }
  if (!(flags & REMAP_FILE_READONLY) && nbd_is_read_only (h) == 1) {
    remap_set_error (err, -EROFS, "NBD export %s is read-only, but remap "
                     "needs to write to it", uri);
    nbdb_close (&n->base);
    return -EROFS;
  }
  n->base.size = (uint64_t) size;
  int64_t min = nbd_get_block_size (h, LIBNBD_SIZE_MINIMUM);
  n->base.logical_block = min > 0 ? (uint32_t) min : 512;
  n->base.align = n->base.logical_block;
  n->can_zero = nbd_can_zero (h) == 1;
  n->can_trim = nbd_can_trim (h) == 1;
  n->can_flush = nbd_can_flush (h) == 1;
  if (nbd_can_multi_conn (h) == 1)
    for (; n->n < POOL; n->n++)
      if (!(n->h[n->n] = connect_one (uri, NULL)))
        break;                  /* fewer connections is fine */
  *out = &n->base;
  return 0;
}

#endif /* REMAP_HAVE_LIBNBD */
