/* Tests of remap_backend_submit (core/io/uring.c): batches that mix file
 * backends (issued together through io_uring), a memory backend and a
 * fault backend (issued one by one), with per-transfer results. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remap/backend.h"
#include "testlib.h"

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
  suite_add_tcase (s, tc);
  return tl_run (s);
}
