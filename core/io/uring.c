/* remap: batches of transfers through io_uring (SPEC 3.1).
 *
 * A request that the engine splits into pieces (origin runs, spare units)
 * is handed here as one batch.  Pieces whose backend can issue them as they
 * are (ops->raw_fd: buffered reads of files, aligned O_DIRECT reads and
 * writes; buffered writes are not, see file_raw_fd) go to the kernel
 * together in one io_uring_submit_and_wait on a ring owned by the calling
 * thread; the rest, and every piece when io_uring is unavailable, run one
 * after another through the backend's own pread/pwrite.  A batch of one
 * piece never touches the ring: for a single transfer pread is as cheap
 * and keeps the common path identical to nbdkit's file plugin.
 *
 * Rings: one per thread, created on first use (64 entries) and destroyed
 * by a thread-specific-data destructor when the thread exits.  A ring is
 * tied to the process that made it: after fork (nbdkit daemonizes after
 * .get_ready) a child that finds a ring of its parent makes its own.
 * If io_uring_queue_init fails once (old kernel, seccomp, io_uring
 * disabled), io_uring is given up for the life of the process and
 * remap_backend_uring_status says why.
 *
 * Completion: a short transfer is finished synchronously (the kernel may
 * return less than asked at end of file or on signals); errors are mapped
 * like the file backend maps them (media errors -> -EIO).
 *
 * Ownership: from submission until its completion is reaped, a transfer's
 * buffer belongs to the kernel.  If waiting for completions fails (a
 * signal: -EINTR, or anything else), the transfers still in flight are
 * cancelled and every completion is reaped before ring_batch returns;
 * only then are the transfers that did not complete (cancelled, or never
 * taken by the kernel) run again through pread/pwrite.  Nothing is issued
 * twice at once, and no completion is left to land in a buffer its caller
 * has reused.  SQEs the kernel did not take are dropped with the ring (a
 * fresh one is made for the next batch), so they cannot go out later.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remap/backend.h"
#include "testhooks.h"

int remap_uring_test_failed_waits;

static int
run_sync (struct remap_io *io)
{
  return io->write ? remap_backend_pwrite (io->b, io->buf, io->len, io->off)
    : remap_backend_pread (io->b, io->buf, io->len, io->off);
}

static int
run_all_sync (struct remap_io *ios, size_t n)
{
  int first = 0;
  for (size_t i = 0; i < n; i++) {
    ios[i].result = run_sync (&ios[i]);
    if (ios[i].result && !first)
      first = ios[i].result;
  }
  return first;
}

#ifndef REMAP_HAVE_LIBURING

const char *
remap_backend_uring_status (void)
{
  return "pread/pwrite (io_uring unavailable: built without liburing)";
}

int
remap_backend_submit (struct remap_io *ios, size_t n)
{
  return run_all_sync (ios, n);
}

#else

#include <liburing.h>

/* 64 SQEs; the CQ ring has twice as many entries, room for every
 * completion a batch can produce (one per transfer, one per cancel), so
 * none is ever dropped for lack of room. */
#define RING_ENTRIES 64u
#define CANCEL_TAG UINT64_MAX   /* user_data of a cancel request */

struct ring {
  struct io_uring ring;
  pid_t pid;
};

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;
static int ring_failed;         /* errno of the first failed init, or 0 */
static char status[160] = "io_uring";

static void
ring_destroy (void *p)
{
  struct ring *r = p;
  if (r->pid == getpid ())
    io_uring_queue_exit (&r->ring);
  free (r);
}

static void
ring_key_init (void)
{
  pthread_key_create (&ring_key, ring_destroy);
}

/* This thread's ring is gone (nothing of it in flight); the next call of
 * thread_ring makes a fresh one. */
static void
ring_drop (void)
{
  struct ring *r = pthread_getspecific (ring_key);
  pthread_setspecific (ring_key, NULL);
  if (r)
    ring_destroy (r);
}

static struct io_uring *
thread_ring (void)
{
  if (__atomic_load_n (&ring_failed, __ATOMIC_RELAXED))
    return NULL;
  pthread_once (&ring_once, ring_key_init);
  struct ring *r = pthread_getspecific (ring_key);
  if (r && r->pid == getpid ())
    return &r->ring;
  if (r) {                      /* inherited across fork: not ours */
    free (r);
    pthread_setspecific (ring_key, NULL);
  }
  r = calloc (1, sizeof *r);
  if (!r)
    return NULL;
  int e = io_uring_queue_init (RING_ENTRIES, &r->ring, 0);
  if (e < 0) {
    free (r);
    if (__atomic_exchange_n (&ring_failed, -e, __ATOMIC_RELAXED) == 0)
      snprintf (status, sizeof status,
                "pread/pwrite (io_uring unavailable: %s)", strerror (-e));
    return NULL;
  }
  r->pid = getpid ();
  pthread_setspecific (ring_key, r);
  return &r->ring;
}

const char *
remap_backend_uring_status (void)
{
  thread_ring ();
  return status;
}

static int
media (int res)
{
  switch (-res) {
  case EIO: case ENODATA: case EILSEQ: case EBADMSG: case EREMOTEIO:
    return -EIO;
  default:
    return res;
  }
}

/* The test knob (testhooks.h): true if this wait is to fail. */
static bool
wait_fails (void)
{
  int n = __atomic_load_n (&remap_uring_test_failed_waits, __ATOMIC_RELAXED);
  while (n > 0)
    if (__atomic_compare_exchange_n (&remap_uring_test_failed_waits, &n,
                                     n - 1, false, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
      return true;
  return false;
}

static int
wait_cqe (struct io_uring *ring, struct io_uring_cqe **cqe)
{
  return wait_fails () ? -EINTR : io_uring_wait_cqe (ring, cqe);
}

/* Submit the prepared SQEs and wait for n completions.  Like the kernel,
 * report a failed wait whatever was submitted. */
static int
submit_and_wait (struct io_uring *ring, unsigned n)
{
  if (wait_fails ()) {
    io_uring_submit (ring);     /* as if a signal cut the wait short */
    return -EINTR;
  }
  return io_uring_submit_and_wait (ring, n);
}

/* Take one completion.  A transfer the kernel gave back undone (cancelled,
 * interrupted) keeps result 1: the caller runs it again, now that the
 * kernel no longer holds it.  Returns false for the answer to a cancel
 * request, which is not one of the batch's transfers. */
static bool
take_cqe (struct remap_io *ios, const struct io_uring_cqe *cqe)
{
  uint64_t tag = io_uring_cqe_get_data64 (cqe);
  if (tag == CANCEL_TAG)
    return false;
  struct remap_io *io = &ios[tag];
  int res = cqe->res;
  if (res == -ECANCELED || res == -EINTR || res == -EAGAIN)
    io->result = 1;
  else if (res < 0) {
    io->result = media (res);
    if (!io->write)             /* as remap_backend_pread: its bytes are */
      remap_backend_count_write (io->b);        /* unknown now */
  }
  else if ((size_t) res < io->len) {
    /* Finish a short transfer the ordinary way. */
    struct remap_io rest = *io;
    rest.buf = (char *) io->buf + res;
    rest.len -= res;
    rest.off += res;
    io->result = run_sync (&rest);
  }
  else
    io->result = 0;
  return true;
}

/* Waiting failed with `left' transfers of ios[idx[0..taken)] still in
 * flight (result 1).  Cancel each and reap every completion, theirs and
 * the cancel requests', so that the kernel holds none of the caller's
 * buffers when this returns.  A wait that fails here is waited again: the
 * completions do come (a cancelled transfer completes with -ECANCELED, one
 * the kernel could not stop completes by itself) and the CQ ring has room
 * for all of them.  Giving up instead would let the kernel write into
 * memory its caller has freed, or write freed memory to the disk; so a wait
 * error other than an interruption, which io_uring does not return for a
 * ring used this way, ends the process rather than return. */
static void
cancel_and_reap (struct io_uring *ring, struct remap_io *ios,
                 const size_t *idx, size_t taken, size_t left)
{
  unsigned asked = 0;
  for (size_t j = 0; j < taken; j++) {
    struct io_uring_sqe *sqe;
    if (ios[idx[j]].result != 1 || (sqe = io_uring_get_sqe (ring)) == NULL)
      continue;
    io_uring_prep_cancel64 (sqe, idx[j], 0);
    io_uring_sqe_set_data64 (sqe, CANCEL_TAG);
    asked++;
  }
  if (asked) {
    while (io_uring_submit (ring) == -EINTR)
      ;
    /* Cancel requests the kernel did not take stay queued: ring_batch
     * drops the ring, so they never go out. */
    left += asked - io_uring_sq_ready (ring);
  }
  while (left > 0) {
    struct io_uring_cqe *cqe;
    int e = wait_cqe (ring, &cqe);
    if (e == -EINTR || e == -EAGAIN || e == -EBUSY || e == -ETIME)
      continue;
    if (e < 0)
      abort ();
    take_cqe (ios, cqe);
    io_uring_cqe_seen (ring, cqe);
    left--;
  }
}

/* Issue ios[idx[0..m)] on the ring and wait for all of them.  When this
 * returns, the kernel holds none of them and every result is set (the
 * ring itself may have been dropped: see thread_ring). */
static void
ring_batch (struct io_uring *ring, struct remap_io *ios, const size_t *idx,
            const int *fd, size_t m)
{
  for (size_t j = 0; j < m; j++) {
    struct remap_io *io = &ios[idx[j]];
    struct io_uring_sqe *sqe = io_uring_get_sqe (ring);
    if (io->write) {
      remap_backend_count_write (io->b);        /* before it can land */
      io_uring_prep_write (sqe, fd[j], io->buf, io->len, io->off);
    }
    else
      io_uring_prep_read (sqe, fd[j], io->buf, io->len, io->off);
    io_uring_sqe_set_data64 (sqe, idx[j]);
  }
  int e = submit_and_wait (ring, m);
  /* SQEs are taken in order: the first `taken' are the kernel's now. */
  size_t taken = m - io_uring_sq_ready (ring), got = 0;
  while (e >= 0 && got < taken) {
    struct io_uring_cqe *cqe;
    if ((e = wait_cqe (ring, &cqe)) < 0)
      break;
    got += take_cqe (ios, cqe);
    io_uring_cqe_seen (ring, cqe);
  }
  if (got < taken)
    cancel_and_reap (ring, ios, idx, taken, taken - got);
  if (io_uring_sq_ready (ring))
    ring_drop ();
  for (size_t j = 0; j < m; j++)
    if (ios[idx[j]].result == 1)
      ios[idx[j]].result = run_sync (&ios[idx[j]]);
}

int
remap_backend_submit (struct remap_io *ios, size_t n)
{
  if (n < 2)
    return run_all_sync (ios, n);

  struct io_uring *ring = thread_ring ();
  size_t idx[RING_ENTRIES];
  int fd[RING_ENTRIES];
  size_t m = 0;

  for (size_t i = 0; i < n; i++) {
    struct remap_io *io = &ios[i];
    int f = ring && io->b->ops->raw_fd
      ? io->b->ops->raw_fd (io->b, io->buf, io->len, io->off, io->write) : -1;
    if (f < 0 || io->len == 0) {
      io->result = run_sync (io);
      continue;
    }
    io->result = 1;             /* in flight */
    idx[m] = i;
    fd[m++] = f;
    if (m == RING_ENTRIES) {
      ring_batch (ring, ios, idx, fd, m);
      ring = thread_ring ();    /* a fresh one if that batch dropped it */
      m = 0;
    }
  }
  if (m == 1)
    ios[idx[0]].result = run_sync (&ios[idx[0]]);
  else if (m > 1)
    ring_batch (ring, ios, idx, fd, m);

  int first = 0;
  for (size_t i = 0; i < n && !first; i++)
    first = ios[i].result;
  return first;
}

#endif /* REMAP_HAVE_LIBURING */
