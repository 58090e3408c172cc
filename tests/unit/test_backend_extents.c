/* remap_backend_extents and the backends' extents ops.
 *
 *   - the wrapper: range checks, a backend without the op is all data, a
 *     backend that breaks the contract (gap, overlap, past the range,
 *     nothing reported) gets -EPROTO instead of a wrong map, fn's non-zero
 *     value stops the walk;
 *   - mem: all-zero grains are holes;
 *   - file: a sparse regular file reports its holes (SEEK_DATA/SEEK_HOLE),
 *     unaligned requests are clipped, a hole at the end of the file too.
 */
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define HZ (REMAP_EXTENT_HOLE | REMAP_EXTENT_ZERO)

struct list {
  uint64_t off[64], len[64];
  uint32_t type[64];
  size_t n;
  size_t stop_at;               /* 0: never */
};

static int
collect (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct list *l = opaque;
  REQ (l->n < 64, "too many extents");
  l->off[l->n] = off;
  l->len[l->n] = len;
  l->type[l->n++] = type;
  return l->stop_at && l->n == l->stop_at ? 9 : 0;
}

static void
expect (const struct list *l, size_t i, uint64_t off, uint64_t len,
        uint32_t type)
{
  ck_assert_uint_gt (l->n, i);
  ck_assert_msg (l->off[i] == off && l->len[i] == len && l->type[i] == type,
                 "extent %zu: %llu+%llu:%u, want %llu+%llu:%u", i,
                 (unsigned long long) l->off[i],
                 (unsigned long long) l->len[i], l->type[i],
                 (unsigned long long) off, (unsigned long long) len, type);
}

/* ---- a backend that misbehaves as told --------------------------------- */

enum bug { GAP, OVERLAP, PAST_END, NOTHING, EMPTY };

struct bad {
  struct remap_backend base;
  enum bug bug;
};

static int
bad_extents (struct remap_backend *b, uint64_t len, uint64_t off,
             remap_extent_fn fn, void *opaque)
{
  switch (((struct bad *) b)->bug) {
  case GAP:
    return fn (opaque, off + 1, len - 1, 0);
  case OVERLAP:
    if (fn (opaque, off, 10, 0))
      return 1;
    return fn (opaque, off + 5, len - 5, 0);
  case PAST_END:
    return fn (opaque, off, len + 1, 0);
  case EMPTY:
    return fn (opaque, off, 0, 0);
  case NOTHING:
    return 0;
  }
  return 0;
}

static const struct remap_backend_ops bad_ops = {
  .kind = "bad",
  .extents = bad_extents,
};

static const struct remap_backend_ops plain_ops = {
  .kind = "plain",
};

START_TEST (test_wrapper_contract)
{
  struct bad b = { .base = { .ops = &bad_ops, .size = 1000 } };
  struct list l = { .n = 0 };
  for (enum bug g = GAP; g <= EMPTY; g++) {
    b.bug = g;
    l.n = 0;
    ck_assert_int_eq (remap_backend_extents (&b.base, 100, 50, collect, &l),
                      -EPROTO);
  }
  /* Without the op: one data extent; past the end: -EINVAL; empty: 0. */
  struct remap_backend p = { .ops = &plain_ops, .size = 1000 };
  l.n = 0;
  ck_assert_int_eq (remap_backend_extents (&p, 1000, 0, collect, &l), 0);
  ck_assert_uint_eq (l.n, 1);
  expect (&l, 0, 0, 1000, 0);
  ck_assert_int_eq (remap_backend_extents (&p, 2, 999, collect, &l), -EINVAL);
  ck_assert_int_eq (remap_backend_extents (&p, 1, UINT64_MAX, collect, &l),
                    -EINVAL);
  ck_assert_int_eq (remap_backend_extents (NULL, 1, 0, collect, &l), -EINVAL);
  ck_assert_int_eq (remap_backend_extents (&p, 0, 1000, collect, &l), 0);
  ck_assert_uint_eq (l.n, 1);
}
END_TEST

START_TEST (test_mem_grains)
{
  struct remap_backend *m = tl_mem (10 * REMAP_MEM_EXTENT_GRAIN + 100);
  uint8_t *d = remap_mem_data (m);
  d[3 * REMAP_MEM_EXTENT_GRAIN + 7] = 1;
  d[4 * REMAP_MEM_EXTENT_GRAIN] = 1;
  d[10 * REMAP_MEM_EXTENT_GRAIN + 99] = 1;       /* the short last grain */
  struct list l = { .n = 0 };
  ck_assert_int_eq (remap_backend_extents (m, m->size, 0, collect, &l), 0);
  ck_assert_uint_eq (l.n, 4);
  expect (&l, 0, 0, 3 * REMAP_MEM_EXTENT_GRAIN, HZ);
  expect (&l, 1, 3 * REMAP_MEM_EXTENT_GRAIN, 2 * REMAP_MEM_EXTENT_GRAIN, 0);
  expect (&l, 2, 5 * REMAP_MEM_EXTENT_GRAIN, 5 * REMAP_MEM_EXTENT_GRAIN, HZ);
  expect (&l, 3, 10 * REMAP_MEM_EXTENT_GRAIN, 100, 0);
  /* Unaligned request, and a stop. */
  l.n = 0;
  l.stop_at = 1;
  ck_assert_int_eq (remap_backend_extents (m, 5000, 100, collect, &l), 9);
  ck_assert_uint_eq (l.n, 1);
  expect (&l, 0, 100, 5000, HZ);
  remap_backend_close (m);
}
END_TEST

START_TEST (test_file_holes)
{
  char path[] = "/tmp/remap-extents-XXXXXX";
  int fd = mkstemp (path);
  ck_assert_int_ge (fd, 0);
  uint64_t size = 16 * MiB;
  ck_assert_int_eq (ftruncate (fd, (off_t) size), 0);
  static uint8_t buf[MiB];
  memset (buf, 0xab, sizeof buf);
  ck_assert_int_eq (pwrite (fd, buf, MiB, 4 * MiB), (ssize_t) MiB);
  ck_assert_int_eq (pwrite (fd, buf, MiB, 8 * MiB), (ssize_t) MiB);
  fsync (fd);
  close (fd);

  struct remap_backend *b;
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_file_open (path, REMAP_FILE_READONLY, &b, &err), 0);
  struct list l = { .n = 0 };
  ck_assert_int_eq (remap_backend_extents (b, size, 0, collect, &l), 0);
  /* A file system without SEEK_HOLE says "all data": then skip. */
  if (l.n == 1 && l.type[0] == 0) {
    remap_backend_close (b);
    unlink (path);
    return;
  }
  ck_assert_uint_eq (l.n, 5);
  expect (&l, 0, 0, 4 * MiB, HZ);
  expect (&l, 1, 4 * MiB, MiB, 0);
  expect (&l, 2, 5 * MiB, 3 * MiB, HZ);
  expect (&l, 3, 8 * MiB, MiB, 0);
  expect (&l, 4, 9 * MiB, 7 * MiB, HZ);
  /* Unaligned, from inside a hole into data and out again. */
  l.n = 0;
  ck_assert_int_eq (remap_backend_extents (b, 2 * MiB, 3 * MiB + 1, collect,
                                           &l), 0);
  ck_assert_uint_eq (l.n, 3);
  expect (&l, 0, 3 * MiB + 1, MiB - 1, HZ);
  expect (&l, 1, 4 * MiB, MiB, 0);
  expect (&l, 2, 5 * MiB, 1, HZ);
  /* The hole at the end of the file. */
  l.n = 0;
  ck_assert_int_eq (remap_backend_extents (b, 10, size - 10, collect, &l), 0);
  ck_assert_uint_eq (l.n, 1);
  expect (&l, 0, size - 10, 10, HZ);
  remap_backend_close (b);
  unlink (path);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("backend_extents");
  TCase *tc = tcase_create ("extents");
  tcase_add_test (tc, test_wrapper_contract);
  tcase_add_test (tc, test_mem_grains);
  tcase_add_test (tc, test_file_holes);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
