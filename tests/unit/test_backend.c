/* Unit tests: the backend wrappers (core/backend.c), the mem backend
 * (core/io/mem.c) and the file backend (core/io/file.c).
 *
 * File tests use a scratch directory: $REMAP_BUILD_DIR (set by ctest), else
 * /var/tmp.  Not /tmp, which is often a tmpfs that refuses O_DIRECT.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "remap/backend.h"

/* ---- helpers --------------------------------------------------------- */

static void
fill (uint8_t *p, size_t len, unsigned seed)
{
  size_t i;

  for (i = 0; i < len; i++)
    p[i] = (uint8_t) (seed * 131 + i * 7 + (i >> 9));
}

static bool
all_zero (const uint8_t *p, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++)
    if (p[i] != 0)
      return false;
  return true;
}

/* Create a scratch file of `size' bytes filled with a pattern; returns its
 * path in path[]. */
static void
make_file (char *path, size_t pathlen, uint64_t size, unsigned seed)
{
  const char *dir = getenv ("REMAP_BUILD_DIR");
  uint8_t *buf = malloc (size ? size : 1);
  int fd;

  ck_assert_ptr_nonnull (buf);
  snprintf (path, pathlen, "%s/remap-test-XXXXXX", dir ? dir : "/var/tmp");
  fd = mkstemp (path);
  ck_assert_msg (fd >= 0, "mkstemp %s: %m", path);
  fill (buf, size, seed);
  ck_assert_int_eq (pwrite (fd, buf, size, 0), (ssize_t) size);
  close (fd);
  free (buf);
}

static uint64_t
file_size (const char *path)
{
  struct stat st;

  ck_assert_int_eq (stat (path, &st), 0);
  return st.st_size;
}

/* ---- mem ------------------------------------------------------------- */

START_TEST (test_mem_round_trip)
{
  struct remap_backend *b;
  uint8_t w[3000], r[3000];

  ck_assert_int_eq (remap_mem_create (65536, &b), 0);
  ck_assert_uint_eq (b->size, 65536);
  ck_assert_str_eq (b->ops->kind, "mem");
  ck_assert_str_eq (b->name, "mem");
  ck_assert_uint_eq (b->logical_block, 512);

  ck_assert_int_eq (remap_backend_pread (b, r, sizeof r, 100), 0);
  ck_assert (all_zero (r, sizeof r));

  fill (w, sizeof w, 1);
  ck_assert_int_eq (remap_backend_pwrite (b, w, sizeof w, 12345), 0);
  ck_assert_int_eq (remap_backend_pread (b, r, sizeof r, 12345), 0);
  ck_assert_mem_eq (r, w, sizeof w);
  ck_assert_mem_eq (remap_mem_data (b) + 12345, w, sizeof w);
  ck_assert_int_eq (remap_backend_pwrite (b, w, 10, 65536 - 10), 0);
  ck_assert_int_eq (remap_backend_flush (b), 0);

  /* Zero, then the neighbours are intact. */
  ck_assert_int_eq (remap_backend_zero (b, 1000, 12345 + 1000, false), 0);
  ck_assert_int_eq (remap_backend_pread (b, r, sizeof r, 12345), 0);
  ck_assert_mem_eq (r, w, 1000);
  ck_assert (all_zero (r + 1000, 1000));
  ck_assert_mem_eq (r + 2000, w + 2000, 1000);

  ck_assert_int_eq (remap_backend_trim (b, 4096, 0), 0);
  ck_assert_int_eq (remap_backend_lock (b, NULL), 0);
  remap_backend_close (b);
  remap_backend_close (NULL);
}
END_TEST

START_TEST (test_mem_out_of_range)
{
  struct remap_backend *b;
  uint8_t buf[16] = { 0 };

  ck_assert_int_eq (remap_mem_create (4096, &b), 0);
  ck_assert_int_eq (remap_backend_pread (b, buf, 2, 4095), -EINVAL);
  ck_assert_int_eq (remap_backend_pwrite (b, buf, 1, 4096), -EINVAL);
  ck_assert_int_eq (remap_backend_pread (b, buf, 2, UINT64_MAX), -EINVAL);
  ck_assert_int_eq (remap_backend_pwrite (b, buf, 16, UINT64_MAX - 8), -EINVAL);
  ck_assert_int_eq (remap_backend_zero (b, 2, 4095, false), -EINVAL);
  ck_assert_int_eq (remap_backend_trim (b, 4097, 0), -EINVAL);
  /* The vtable itself checks too. */
  ck_assert_int_eq (b->ops->pread (b, buf, 2, 4095), -EINVAL);
  ck_assert_int_eq (b->ops->pwrite (b, buf, 2, 4095), -EINVAL);
  ck_assert_int_eq (b->ops->zero (b, 2, 4095, false), -EINVAL);
  /* Exactly up to the end is fine; so is zero length at the end. */
  ck_assert_int_eq (remap_backend_pread (b, buf, 1, 4095), 0);
  ck_assert_int_eq (remap_backend_pread (b, buf, 0, 4096), 0);
  /* Bad backends. */
  ck_assert_int_eq (remap_backend_pread (NULL, buf, 1, 0), -EINVAL);
  ck_assert_int_eq (remap_backend_flush (NULL), -EINVAL);
  ck_assert_ptr_null (remap_mem_data (NULL));
  remap_backend_close (b);
}
END_TEST

START_TEST (test_mem_share)
{
  struct remap_backend *a, *b;
  uint8_t w[512], r[512];

  ck_assert_int_eq (remap_mem_create (8192, &a), 0);
  ck_assert_int_eq (remap_mem_share (a, &b), 0);
  ck_assert_ptr_eq (remap_mem_data (a), remap_mem_data (b));
  ck_assert_uint_eq (b->size, 8192);
  fill (w, sizeof w, 2);
  ck_assert_int_eq (remap_backend_pwrite (a, w, sizeof w, 1000), 0);
  remap_backend_close (a); /* b keeps the bytes alive */
  ck_assert_int_eq (remap_backend_pread (b, r, sizeof r, 1000), 0);
  ck_assert_mem_eq (r, w, sizeof w);
  remap_backend_close (b);
}
END_TEST

/* ---- the zero fallback ------------------------------------------------- */

/* A backend over mem whose zero is missing or refuses: counts pwrites. */
struct counting {
  struct remap_backend base;
  struct remap_backend *mem;
  unsigned pwrites;
  size_t max_len;
};

static int
cnt_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  return remap_backend_pread (((struct counting *) b)->mem, buf, len, off);
}

static int
cnt_pwrite (struct remap_backend *b, const void *buf, size_t len, uint64_t off)
{
  struct counting *c = (struct counting *) b;

  c->pwrites++;
  if (len > c->max_len)
    c->max_len = len;
  return remap_backend_pwrite (c->mem, buf, len, off);
}

static int
cnt_zero_refuses (struct remap_backend *b, uint64_t len, uint64_t off,
                  bool may_trim)
{
  (void) b;
  (void) len;
  (void) off;
  (void) may_trim;
  return -EOPNOTSUPP;
}

static void
zero_fallback_case (int (*zero) (struct remap_backend *, uint64_t, uint64_t,
                                 bool))
{
  const struct remap_backend_ops ops = {
    .kind = "counting",
    .pread = cnt_pread,
    .pwrite = cnt_pwrite,
    .zero = zero,
  };
  const uint64_t size = 4 * 1024 * 1024;
  struct counting c = { .base = { .ops = &ops, .size = size } };
  uint8_t *data;
  uint64_t i;

  ck_assert_int_eq (remap_mem_create (size, &c.mem), 0);
  data = remap_mem_data (c.mem);
  memset (data, 0xee, size);
  /* 3 MiB + 5 bytes starting at an odd offset: 4 chunks of <= 1 MiB. */
  ck_assert_int_eq (remap_backend_zero (&c.base, 3 * 1024 * 1024 + 5, 7, true),
                    0);
  ck_assert_uint_eq (c.pwrites, 4);
  ck_assert_uint_le (c.max_len, 1024 * 1024);
  ck_assert_uint_eq (data[6], 0xee);
  for (i = 7; i < 7 + 3 * 1024 * 1024 + 5; i++)
    if (data[i] != 0)
      ck_abort_msg ("byte %" PRIu64 " not zeroed", i);
  ck_assert_uint_eq (data[7 + 3 * 1024 * 1024 + 5], 0xee);

  /* No trim, no lock, no flush op: all succeed as no-ops. */
  ck_assert_int_eq (remap_backend_trim (&c.base, 512, 0), 0);
  ck_assert_int_eq (remap_backend_lock (&c.base, NULL), 0);
  ck_assert_int_eq (remap_backend_flush (&c.base), 0);
  remap_backend_close (&c.base); /* no close op: nothing happens */
  remap_backend_close (c.mem);
}

START_TEST (test_zero_fallback)
{
  zero_fallback_case (NULL);
  zero_fallback_case (cnt_zero_refuses);
}
END_TEST

/* ---- file -------------------------------------------------------------- */

START_TEST (test_file_round_trip)
{
  char path[4096];
  struct remap_backend *b;
  struct remap_error err;
  uint8_t w[10000], r[10000];
  uint8_t *all = malloc (1 << 20);

  make_file (path, sizeof path, 1 << 20, 3);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_file_open (path, 0, &b, &err), 0);
  ck_assert_str_eq (b->ops->kind, "file");
  ck_assert_str_eq (b->name, path);
  ck_assert_uint_eq (b->size, 1 << 20);
  ck_assert_uint_eq (b->logical_block, 512);
  ck_assert_uint_eq (b->align, 1);
  ck_assert (!b->direct);
  ck_assert (!b->is_block_device);

  ck_assert_int_eq (remap_backend_pread (b, r, sizeof r, 777), 0);
  ck_assert_ptr_nonnull (all);
  fill (all, 1 << 20, 3);
  ck_assert_mem_eq (r, all + 777, sizeof r);
  free (all);
  fill (w, sizeof w, 4);
  ck_assert_int_eq (remap_backend_pwrite (b, w, sizeof w, 5000), 0);
  ck_assert_int_eq (remap_backend_flush (b), 0);
  ck_assert_int_eq (remap_backend_pread (b, r, sizeof r, 5000), 0);
  ck_assert_mem_eq (r, w, sizeof w);

  /* zero without and with may_trim. */
  ck_assert_int_eq (remap_backend_zero (b, 3000, 6000, false), 0);
  ck_assert_int_eq (remap_backend_zero (b, 1000, 100000, true), 0);
  ck_assert_int_eq (remap_backend_pread (b, r, sizeof r, 5000), 0);
  ck_assert_mem_eq (r, w, 1000);
  ck_assert (all_zero (r + 1000, 3000));
  ck_assert_mem_eq (r + 4000, w + 4000, sizeof w - 4000);
  ck_assert_int_eq (remap_backend_pread (b, r, 1000, 100000), 0);
  ck_assert (all_zero (r, 1000));
  ck_assert_int_eq (remap_backend_trim (b, 8192, 200704), 0);
  ck_assert_uint_eq (file_size (path), 1 << 20);

  remap_backend_close (b);
  unlink (path);
}
END_TEST

/* O_DIRECT with unaligned buffers, offsets and lengths, including the
 * partial last block of a file whose size is not a multiple of 4096. */
START_TEST (test_file_direct_unaligned)
{
  const uint64_t size = 3 * 1024 * 1024 + 1000;
  static const struct {
    uint64_t off;
    size_t len;
  } cases[] = {
    { 0, 1 },
    { 1, 511 },
    { 4095, 2 },
    { 4096, 4096 },
    { 8191, 8194 },
    { 1024 * 1024 - 3, 7 }, /* across a bounce chunk */
    { 1024 * 1024 - 5000, 2 * 1024 * 1024 + 77 },
    { 3 * 1024 * 1024 - 10, 1010 }, /* into the partial tail */
    { 3 * 1024 * 1024 + 999, 1 },   /* last byte */
    { 3 * 1024 * 1024 + 10, 100 },
  };
  char path[4096];
  struct remap_backend *b, *plain;
  struct remap_error err;
  uint8_t *model, *w, *r, *wbuf, *rbuf;
  size_t i;
  int ret;

  make_file (path, sizeof path, size, 5);
  remap_error_clear (&err);
  ret = remap_file_open (path, REMAP_FILE_DIRECT, &b, &err);
  if (ret == -EINVAL) {
    fprintf (stderr, "skipping O_DIRECT case: %s\n", err.msg);
    unlink (path);
    return;
  }
  ck_assert_msg (ret == 0, "open: %s", err.msg);
  ck_assert (b->direct);
  ck_assert_uint_eq (b->align, 4096);
  ck_assert_uint_eq (b->size, size);

  model = malloc (size);
  w = malloc (3 * 1024 * 1024);
  r = malloc (3 * 1024 * 1024);
  ck_assert (model && w && r);
  fill (model, size, 5);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t off = cases[i].off;
    size_t len = cases[i].len;

    /* Odd buffer addresses force the bounce path even when aligned. */
    wbuf = w + (i & 1 ? 1 : 0);
    rbuf = r + (i & 2 ? 3 : 0);
    fill (wbuf, len, 100 + i);
    ck_assert_int_eq (remap_backend_pwrite (b, wbuf, len, off), 0);
    memcpy (model + off, wbuf, len);
    ck_assert_int_eq (remap_backend_pread (b, rbuf, len, off), 0);
    ck_assert_mem_eq (rbuf, wbuf, len);
    /* The neighbourhood of the write is untouched. */
    {
      uint64_t lo = off > 5000 ? off - 5000 : 0;
      uint64_t hi = off + len + 5000 < size ? off + len + 5000 : size;

      ck_assert_int_eq (remap_backend_pread (b, rbuf, hi - lo, lo), 0);
      ck_assert_mem_eq (rbuf, model + lo, hi - lo);
    }
  }
  ck_assert_int_eq (remap_backend_flush (b), 0);
  remap_backend_close (b);

  /* The file did not grow, and a buffered open sees the same bytes. */
  ck_assert_uint_eq (file_size (path), size);
  ck_assert_int_eq (remap_file_open (path,
                                     REMAP_FILE_NODIRECT | REMAP_FILE_READONLY,
                                     &plain, &err),
                    0);
  ck_assert (!plain->direct);
  for (i = 0; i < size; i += 1024 * 1024) {
    size_t n = size - i < 1024 * 1024 ? size - i : 1024 * 1024;

    ck_assert_int_eq (remap_backend_pread (plain, r, n, i), 0);
    ck_assert_mem_eq (r, model + i, n);
  }
  remap_backend_close (plain);
  free (model);
  free (w);
  free (r);
  unlink (path);
}
END_TEST

/* Sub-block writes to disjoint bytes of one block from two threads must not
 * undo each other (read-modify-write is serialised). */
struct rmw_arg {
  struct remap_backend *b;
  unsigned first;
};

static void *
rmw_thread (void *p)
{
  struct rmw_arg *a = p;
  unsigned round, s;

  for (round = 0; round < 50; round++)
    for (s = a->first; s < 8; s += 2) {
      uint8_t sector[512];

      memset (sector, (uint8_t) (round * 8 + s + 1), sizeof sector);
      if (remap_backend_pwrite (a->b, sector, sizeof sector, s * 512) != 0)
        return (void *) 1;
    }
  return NULL;
}

START_TEST (test_file_direct_rmw_threads)
{
  char path[4096];
  struct remap_backend *b;
  struct remap_error err;
  struct rmw_arg a0, a1;
  pthread_t t0, t1;
  void *r0, *r1;
  uint8_t buf[4096];
  unsigned s, k;
  int ret;

  make_file (path, sizeof path, 8192, 6);
  remap_error_clear (&err);
  ret = remap_file_open (path, REMAP_FILE_DIRECT, &b, &err);
  if (ret == -EINVAL) {
    fprintf (stderr, "skipping O_DIRECT case: %s\n", err.msg);
    unlink (path);
    return;
  }
  ck_assert_int_eq (ret, 0);
  a0 = (struct rmw_arg){ b, 0 };
  a1 = (struct rmw_arg){ b, 1 };
  pthread_create (&t0, NULL, rmw_thread, &a0);
  pthread_create (&t1, NULL, rmw_thread, &a1);
  pthread_join (t0, &r0);
  pthread_join (t1, &r1);
  ck_assert_ptr_null (r0);
  ck_assert_ptr_null (r1);
  ck_assert_int_eq (remap_backend_pread (b, buf, sizeof buf, 0), 0);
  for (s = 0; s < 8; s++)
    for (k = 0; k < 512; k++)
      ck_assert_uint_eq (buf[s * 512 + k], (uint8_t) (49 * 8 + s + 1));
  remap_backend_close (b);
  unlink (path);
}
END_TEST

START_TEST (test_file_eof_is_not_media)
{
  char path[4096];
  struct remap_backend *b;
  uint8_t buf[8192];

  make_file (path, sizeof path, 65536, 7);
  ck_assert_int_eq (remap_file_open (path, 0, &b, NULL), 0);
  /* The file shrinks under the backend: reads past the new end fail, and
   * not with a media error: no sector went bad, the file is not the one
   * that was opened (a verdict would mark every unit past the end). */
  ck_assert_int_eq (truncate (path, 60000), 0);
  ck_assert_int_eq (remap_backend_pread (b, buf, 1000, 1000), 0);
  ck_assert_int_eq (remap_backend_pread (b, buf, 8192, 57344), -ENXIO);
  ck_assert_int_eq (remap_backend_pread (b, buf, 100, 61000), -ENXIO);
  ck_assert_int_ne (remap_error_class (-ENXIO), REMAP_ERRCLASS_MEDIA);
  remap_backend_close (b);
  unlink (path);
}
END_TEST

/* A write that the kernel cuts short (here at a file-size limit, the
 * RLIMIT_FSIZE of `ulimit -f') is continued, and the error of the rest is
 * reported: never a success with only part of the bytes written.  The
 * limit is lowered in a child, so that the test process keeps its own. */
START_TEST (test_file_short_write_continued)
{
  char path[4096];
  uint8_t buf[8192], got[8192];

  make_file (path, sizeof path, 65536, 9);
  memset (buf, 0xa5, sizeof buf);
  pid_t pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    struct remap_backend *b;
    struct rlimit rl = { 32768, RLIM_INFINITY };
    signal (SIGXFSZ, SIG_IGN);
    if (remap_file_open (path, REMAP_FILE_NODIRECT, &b, NULL) != 0
        || setrlimit (RLIMIT_FSIZE, &rl) != 0)
      _exit (3);
    /* [28 KiB, 36 KiB): the kernel writes the first 4 KiB, then EFBIG. */
    int r = remap_backend_pwrite (b, buf, sizeof buf, 28672);
    _exit (r == -EFBIG ? 0 : r == 0 ? 1 : 2);
  }
  int st;
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  ck_assert (WIFEXITED (st));
  ck_assert_msg (WEXITSTATUS (st) != 1, "a write cut short at the file-size "
                 "limit was reported as a success");
  ck_assert_msg (WEXITSTATUS (st) == 0, "child status %d", WEXITSTATUS (st));
  /* What the kernel did write is there; the rest is not. */
  int fd = open (path, O_RDONLY);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (pread (fd, got, sizeof got, 28672), (ssize_t) sizeof got);
  close (fd);
  ck_assert (memcmp (got, buf, 4096) == 0);
  ck_assert (memcmp (got + 4096, buf, 4096) != 0);
  unlink (path);
}
END_TEST

START_TEST (test_file_lock_conflict)
{
  char path[4096];
  struct remap_backend *a, *b;
  struct remap_error err;

  make_file (path, sizeof path, 4096, 8);
  ck_assert_int_eq (remap_file_open (path, 0, &a, NULL), 0);
  ck_assert_int_eq (remap_file_open (path, 0, &b, NULL), 0);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_backend_lock (a, &err), 0);
  ck_assert_int_eq (err.err, 0);
  /* Held by this very process (origin and spare are one file): said so,
   * not "another process". */
  ck_assert_int_eq (remap_backend_lock (b, &err), -EINVAL);
  ck_assert_int_eq (err.err, -EINVAL);
  ck_assert_ptr_nonnull (strstr (err.msg, path));
  ck_assert_ptr_nonnull (strstr (err.msg, "origin and spare are the same "
                                 "file"));
  /* Held by another process: that is said. */
  pid_t pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    struct remap_backend *c;
    struct remap_error cerr = { 0 };
    if (remap_file_open (path, 0, &c, NULL) != 0)
      _exit (2);
    remap_backend_close (a);            /* the child's copy of the lock */
    _exit (remap_backend_lock (c, &cerr) == -EWOULDBLOCK
           && strstr (cerr.msg, "in use by another process") ? 0 : 1);
  }
  int status;
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                 "another process was not told the file is in use");
  /* Released on close: now b gets it. */
  remap_backend_close (a);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_backend_lock (b, &err), 0);
  remap_backend_close (b);
  unlink (path);
}
END_TEST

START_TEST (test_file_open_errors)
{
  char path[4096];
  struct remap_backend *b = (void *) 1;
  struct remap_error err;
  const char *dir = getenv ("REMAP_BUILD_DIR");
  uint8_t buf[16] = { 0 };

  snprintf (path, sizeof path, "%s/remap-test-no-such-file-%d",
            dir ? dir : "/var/tmp", (int) getpid ());
  remap_error_clear (&err);
  ck_assert_int_eq (remap_file_open (path, 0, &b, &err), -ENOENT);
  ck_assert_ptr_null (b);
  ck_assert_int_eq (err.err, -ENOENT);
  ck_assert_ptr_nonnull (strstr (err.msg, path));
  ck_assert_ptr_nonnull (strstr (err.msg, "no such file"));

  /* A directory is neither a file nor a block device. */
  remap_error_clear (&err);
  ck_assert_int_lt (remap_file_open (dir ? dir : "/var/tmp",
                                     REMAP_FILE_READONLY, &b, &err),
                    0);
  ck_assert_int_ne (err.msg[0], '\0');

  /* Contradictory flags. */
  remap_error_clear (&err);
  ck_assert_int_eq (remap_file_open (path,
                                     REMAP_FILE_DIRECT | REMAP_FILE_NODIRECT,
                                     &b, &err),
                    -EINVAL);

  /* CREATE makes an empty file. */
  remap_error_clear (&err);
  ck_assert_int_eq (remap_file_open (path, REMAP_FILE_CREATE, &b, &err), 0);
  ck_assert_uint_eq (b->size, 0);
  remap_backend_close (b);
  ck_assert_uint_eq (file_size (path), 0);
  unlink (path);

  /* Read-only refuses writes. */
  make_file (path, sizeof path, 4096, 9);
  ck_assert_int_eq (remap_file_open (path, REMAP_FILE_READONLY, &b, NULL), 0);
  ck_assert_int_eq (remap_backend_pwrite (b, buf, sizeof buf, 0), -EROFS);
  ck_assert_int_eq (remap_backend_pread (b, buf, sizeof buf, 0), 0);
  remap_backend_close (b);
  unlink (path);
}
END_TEST

static Suite *
backend_suite (void)
{
  Suite *s = suite_create ("backend");
  TCase *mem = tcase_create ("mem");
  TCase *file = tcase_create ("file");

  tcase_add_test (mem, test_mem_round_trip);
  tcase_add_test (mem, test_mem_out_of_range);
  tcase_add_test (mem, test_mem_share);
  tcase_add_test (mem, test_zero_fallback);
  tcase_add_test (file, test_file_round_trip);
  tcase_add_test (file, test_file_direct_unaligned);
  tcase_add_test (file, test_file_direct_rmw_threads);
  tcase_add_test (file, test_file_eof_is_not_media);
  tcase_add_test (file, test_file_short_write_continued);
  tcase_add_test (file, test_file_lock_conflict);
  tcase_add_test (file, test_file_open_errors);
  suite_add_tcase (s, mem);
  suite_add_tcase (s, file);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (backend_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
