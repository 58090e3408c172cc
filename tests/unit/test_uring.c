/* Tests of remap_backend_submit (core/io/uring.c): batches that mix file
 * backends (issued together through io_uring), a memory backend and a
 * fault backend (issued one by one), with per-transfer results; and a
 * wait for completions that fails (the test knob of core/io/testhooks.h)
 * while the kernel still holds transfers: they are cancelled and reaped
 * before anything is done again, so no completion lands in a buffer
 * after the batch has returned. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remap/backend.h"
#include "testlib.h"
#include "../../core/io/testhooks.h"

static char path_a[256], path_b[256];

static void
make_file (char *path, const char *tag, size_t size)
{
  const char *dir = getenv ("REMAP_BUILD_DIR");
  snprintf (path, 256, "%s/uring-%s-%d.img", dir ? dir : "/var/tmp", tag,
            (int) getpid ());
  int fd = open (path, O_CREAT | O_TRUNC | O_RDWR, 0600);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, size), 0);
  close (fd);
}

static struct remap_backend *
open_file (const char *path)
{
  struct remap_backend *b;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_file_open (path, 0, &b, &err) == 0, "%s", err.msg);
  return b;
}

START_TEST (test_mixed_batch)
{
  make_file (path_a, "a", 1 << 20);
  make_file (path_b, "b", 1 << 20);
  struct remap_backend *a = open_file (path_a), *b = open_file (path_b), *m;
  ck_assert_int_eq (remap_mem_create (1 << 20, &m), 0);
  static char w[6][8192], r[6][8192];
  for (int i = 0; i < 6; i++)
    memset (w[i], 'A' + i, sizeof w[i]);

  struct remap_io io[6] = {
    { a, w[0], 8192, 0, true, 7 },
    { b, w[1], 4096, 4096, true, 7 },
    { a, w[2], 1000, 100000, true, 7 },
    { m, w[3], 8192, 65536, true, 7 },
    { b, w[4], 512, 1 << 19, true, 7 },
    { a, w[5], 8192, 8192, true, 7 },
  };
  ck_assert_int_eq (remap_backend_submit (io, 6), 0);
  for (int i = 0; i < 6; i++)
    ck_assert_int_eq (io[i].result, 0);

  struct remap_io rd[6];
  for (int i = 0; i < 6; i++) {
    rd[i] = io[i];
    rd[i].buf = r[i];
    rd[i].write = false;
    rd[i].result = 7;
  }
  ck_assert_int_eq (remap_backend_submit (rd, 6), 0);
  for (int i = 0; i < 6; i++) {
    ck_assert_int_eq (rd[i].result, 0);
    ck_assert_msg (memcmp (r[i], w[i], rd[i].len) == 0, "transfer %d", i);
  }
  /* Cross-check with plain reads that the data landed where it should. */
  char x[4096];
  ck_assert_int_eq (remap_backend_pread (b, x, 4096, 4096), 0);
  ck_assert_int_eq (x[0], 'B');
  ck_assert_int_eq (x[4095], 'B');
  remap_backend_close (a);
  remap_backend_close (b);
  remap_backend_close (m);
  unlink (path_a);
  unlink (path_b);
}
END_TEST

START_TEST (test_errors_per_transfer)
{
  make_file (path_a, "c", 1 << 20);
  struct remap_backend *a = open_file (path_a), *a2 = open_file (path_a);
  struct remap_backend *f, *mem;
  ck_assert_int_eq (remap_mem_create (1 << 20, &mem), 0);
  ck_assert_int_eq (remap_fault_create (mem, true, &f), 0);
  struct remap_fault_rule rule = { .off = 4096, .len = 512,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  static char buf[4][4096];
  struct remap_io io[4] = {
    { a, buf[0], 4096, 0, false, 7 },
    { f, buf[1], 4096, 4096, false, 7 },      /* fails */
    { a2, buf[2], 4096, 8192, false, 7 },
    { a, buf[3], 4096, (1 << 20) - 2048, false, 7 }, /* past the end: EINVAL */
  };
  int r = remap_backend_submit (io, 4);
  ck_assert_int_eq (io[0].result, 0);
  ck_assert_int_eq (io[1].result, -EIO);
  ck_assert_int_eq (io[2].result, 0);
  ck_assert_int_ne (io[3].result, 0);
  ck_assert_int_eq (r, -EIO);               /* the first failure */
  remap_backend_close (a);
  remap_backend_close (a2);
  remap_backend_close (f);
  unlink (path_a);
}
END_TEST

static bool
have_uring (void)
{
  return strcmp (remap_backend_uring_status (), "io_uring") == 0;
}

/* A backend whose reads go to the kernel as reads of a pipe (raw_fd), so
 * they stay in flight until someone writes to the pipe; its own pread, the
 * synchronous way, fills the buffer with 'S' and counts the calls. */
struct pipe_backend {
  struct remap_backend b;
  int fd[2];
  int sync_reads;
};

static int
pipe_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  (void) off;
  ((struct pipe_backend *) b)->sync_reads++;
  memset (buf, 'S', len);
  return 0;
}

static int
pipe_pwrite (struct remap_backend *b, const void *buf, size_t len,
             uint64_t off)
{
  (void) b; (void) buf; (void) len; (void) off;
  return -EROFS;
}

static int
pipe_flush (struct remap_backend *b)
{
  (void) b;
  return 0;
}

static void
pipe_close (struct remap_backend *b)
{
  struct pipe_backend *p = (struct pipe_backend *) b;
  close (p->fd[0]);
  close (p->fd[1]);
  free (p);
}

static int
pipe_raw_fd (struct remap_backend *b, const void *buf, size_t len,
             uint64_t off, bool write)
{
  (void) buf; (void) len; (void) off;
  return write ? -1 : ((struct pipe_backend *) b)->fd[0];
}

static const struct remap_backend_ops pipe_ops = {
  .kind = "pipe", .pread = pipe_pread, .pwrite = pipe_pwrite,
  .flush = pipe_flush, .close = pipe_close, .raw_fd = pipe_raw_fd,
};

static struct pipe_backend *
pipe_backend (void)
{
  struct pipe_backend *p = calloc (1, sizeof *p);
  ck_assert_ptr_nonnull (p);
  ck_assert_int_eq (pipe (p->fd), 0);
  p->b.ops = &pipe_ops;
  p->b.size = 1 << 20;
  p->b.align = 1;
  p->b.logical_block = 512;
  snprintf (p->b.name, sizeof p->b.name, "pipe");
  return p;
}

/* Two reads the kernel cannot finish (empty pipes); the wait for them is
 * interrupted, and so are the next two waits (those of the reaping).  The
 * batch must cancel both reads, reap them, and only then do them the
 * synchronous way.  Afterwards the kernel holds nothing: bytes written to
 * the pipes stay there, the buffers keep what the synchronous reads put
 * in them, and the ring serves the next batch. */
START_TEST (test_wait_interrupted_in_flight)
{
  if (!have_uring ())
    return;                     /* batches never reach a ring here */
  struct pipe_backend *p[2] = { pipe_backend (), pipe_backend () };
  static char buf[2][8];
  memset (buf, 'X', sizeof buf);
  struct remap_io io[2] = {
    { &p[0]->b, buf[0], 8, 0, false, 7 },
    { &p[1]->b, buf[1], 8, 0, false, 7 },
  };
  __atomic_store_n (&remap_uring_test_failed_waits, 3, __ATOMIC_RELAXED);
  ck_assert_int_eq (remap_backend_submit (io, 2), 0);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq (io[i].result, 0);
    ck_assert_int_eq (p[i]->sync_reads, 1);
    ck_assert_mem_eq (buf[i], "SSSSSSSS", 8);
  }

  for (int i = 0; i < 2; i++)
    ck_assert_int_eq (write (p[i]->fd[1], "PIPEPIPE", 8), 8);
  usleep (50 * 1000);           /* time for a stray read to land */
  for (int i = 0; i < 2; i++) {
    char back[16] = "";
    ck_assert_mem_eq (buf[i], "SSSSSSSS", 8);
    ck_assert_int_eq (fcntl (p[i]->fd[0], F_SETFL, O_NONBLOCK), 0);
    ck_assert_int_eq (read (p[i]->fd[0], back, sizeof back), 8);
    ck_assert_mem_eq (back, "PIPEPIPE", 8);
  }
  /* The two waits of the reaping failed too, and were waited again. */
  ck_assert_int_eq (__atomic_load_n (&remap_uring_test_failed_waits,
                                     __ATOMIC_RELAXED), 0);

  /* The ring is clean for the next batch. */
  make_file (path_a, "d", 1 << 20);
  struct remap_backend *a = open_file (path_a), *a2 = open_file (path_a);
  static char w[3][4096], r[3][4096];
  struct remap_io wr[3], rd[3];
  for (int i = 0; i < 3; i++) {
    memset (w[i], 'a' + i, sizeof w[i]);
    wr[i] = (struct remap_io) { i % 2 ? a2 : a, w[i], 4096, 4096u * i, true,
                                7 };
    rd[i] = (struct remap_io) { i % 2 ? a : a2, r[i], 4096, 4096u * i, false,
                                7 };
  }
  ck_assert_int_eq (remap_backend_submit (wr, 3), 0);
  ck_assert_int_eq (remap_backend_submit (rd, 3), 0);
  for (int i = 0; i < 3; i++)
    ck_assert_mem_eq (r[i], w[i], 4096);
  remap_backend_close (a);
  remap_backend_close (a2);
  unlink (path_a);
  remap_backend_close (&p[0]->b);
  remap_backend_close (&p[1]->b);
}
END_TEST

/* The wait is interrupted while transfers that finish quickly (file
 * writes, then reads) are in flight: whether the cancels catch them or
 * they complete first, every result is right and the data is where it
 * belongs.  Only O_DIRECT writes go to the ring (buffered ones are
 * pwrite, core/io/file.c file_raw_fd), so the writes are O_DIRECT, and
 * each batch must have met the failing wait: without that the write half
 * could not fail.  A file system without O_DIRECT skips that half. */
static struct remap_backend *
open_direct (const char *path)
{
  struct remap_backend *b;
  struct remap_error err = { 0 };
  if (remap_file_open (path, REMAP_FILE_DIRECT, &b, &err) == 0)
    return b;
  fprintf (stderr, "test_wait_interrupted_files: no O_DIRECT (%s): the "
           "writes are not tested in the ring\n", err.msg);
  return NULL;
}

START_TEST (test_wait_interrupted_files)
{
  if (!have_uring ())
    return;
  make_file (path_a, "e", 1 << 20);
  struct remap_backend *a = open_file (path_a), *a2 = open_file (path_a);
  struct remap_backend *da = open_direct (path_a);
  struct remap_backend *da2 = da ? open_direct (path_a) : NULL;
  static char w[8][4096] __attribute__ ((aligned (4096))), r[8][4096];
  struct remap_io wr[8], rd[8];
  for (int i = 0; i < 8; i++) {
    memset (w[i], 'A' + i, sizeof w[i]);
    memset (r[i], 0, sizeof r[i]);
    wr[i] = (struct remap_io) { i % 2 ? (da2 ? da2 : a2) : (da ? da : a),
                                w[i], 4096, 8192u * i, true, 7 };
    rd[i] = (struct remap_io) { i % 2 ? a : a2, r[i], 4096, 8192u * i, false,
                                7 };
  }
  for (int k = 1; k <= 4; k++) {
    __atomic_store_n (&remap_uring_test_failed_waits, k, __ATOMIC_RELAXED);
    ck_assert_int_eq (remap_backend_submit (wr, 8), 0);
    if (da2)
      ck_assert_msg (__atomic_load_n (&remap_uring_test_failed_waits,
                                      __ATOMIC_RELAXED) < k,
                     "the O_DIRECT writes did not go through the ring");
    __atomic_store_n (&remap_uring_test_failed_waits, k, __ATOMIC_RELAXED);
    ck_assert_int_eq (remap_backend_submit (rd, 8), 0);
    ck_assert_msg (__atomic_load_n (&remap_uring_test_failed_waits,
                                    __ATOMIC_RELAXED) < k,
                   "the reads did not go through the ring");
    for (int i = 0; i < 8; i++) {
      ck_assert_int_eq (wr[i].result, 0);
      ck_assert_int_eq (rd[i].result, 0);
      ck_assert_mem_eq (r[i], w[i], 4096);
    }
    __atomic_store_n (&remap_uring_test_failed_waits, 0, __ATOMIC_RELAXED);
  }
  remap_backend_close (a);
  remap_backend_close (a2);
  if (da)
    remap_backend_close (da);
  if (da2)
    remap_backend_close (da2);
  unlink (path_a);
}
END_TEST

START_TEST (test_status)
{
  const char *s = remap_backend_uring_status ();
  ck_assert_ptr_nonnull (s);
#ifdef REMAP_HAVE_LIBURING
  /* Either it works, or it says why not. */
  ck_assert_msg (strcmp (s, "io_uring") == 0
                 || strstr (s, "unavailable:") != NULL, "%s", s);
#endif
  ck_assert_int_eq (remap_backend_submit (NULL, 0), 0);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("uring");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_mixed_batch);
  tcase_add_test (tc, test_errors_per_transfer);
  tcase_add_test (tc, test_status);
  tcase_add_test (tc, test_wait_interrupted_in_flight);
  tcase_add_test (tc, test_wait_interrupted_files);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
