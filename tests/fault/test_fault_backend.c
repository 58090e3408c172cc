/* Fault tests: the fault injector itself (core/io/fault.c), stacked on mem.
 *
 * Rules (range overlap, after/times, flush), the volatile write cache, and
 * crashes at a chosen write for each crash mode: afterwards the inner disk
 * must hold exactly what the mode promises and every operation must fail.
 */

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"

#define DISK (64 * 1024)
#define BLK 4096

static struct remap_backend *mem, *fb;

static void
setup (void)
{
  ck_assert_int_eq (remap_mem_create (DISK, &mem), 0);
  ck_assert_int_eq (remap_fault_create (mem, true, &fb), 0);
}

static void
teardown (void)
{
  remap_backend_close (fb);
  fb = mem = NULL;
}

static uint8_t *
inner (void)
{
  return remap_mem_data (mem);
}

static bool
all_byte (const uint8_t *p, size_t len, uint8_t v)
{
  size_t i;

  for (i = 0; i < len; i++)
    if (p[i] != v)
      return false;
  return true;
}

static int
write_byte (uint64_t off, size_t len, uint8_t v)
{
  uint8_t *buf = malloc (len);
  int r;

  ck_assert_ptr_nonnull (buf);
  memset (buf, v, len);
  r = remap_backend_pwrite (fb, buf, len, off);
  free (buf);
  return r;
}

/* ---- rules ----------------------------------------------------------- */

START_TEST (test_identity)
{
  ck_assert_str_eq (fb->name, "fault:mem");
  ck_assert_str_eq (fb->ops->kind, "fault");
  ck_assert_uint_eq (fb->size, DISK);
  ck_assert_uint_eq (fb->logical_block, mem->logical_block);
  ck_assert_uint_eq (fb->align, mem->align);
  ck_assert (!remap_fault_crashed (fb));
  ck_assert_uint_eq (remap_fault_writes (fb), 0);
}
END_TEST

START_TEST (test_rule_range)
{
  struct remap_fault_rule rule = {
    .off = BLK,
    .len = BLK,
    .ops = REMAP_FAULT_READ,
    .err = -EIO,
  };
  uint8_t buf[2 * BLK];

  ck_assert_int_eq (remap_fault_add_rule (fb, &rule), 0);
  ck_assert_int_eq (remap_backend_pread (fb, buf, BLK, 0), 0);
  ck_assert_int_eq (remap_backend_pread (fb, buf, BLK, 2 * BLK), 0);
  ck_assert_int_eq (remap_backend_pread (fb, buf, 2, BLK - 1), -EIO);
  ck_assert_int_eq (remap_backend_pread (fb, buf, 1, 2 * BLK - 1), -EIO);
  ck_assert_int_eq (remap_backend_pread (fb, buf, 2 * BLK, 0), -EIO);
  ck_assert_uint_eq (remap_fault_injected (fb), 3);
  /* Writes do not match a read rule. */
  ck_assert_int_eq (write_byte (BLK, BLK, 0x11), 0);
  ck_assert (all_byte (inner () + BLK, BLK, 0x11));
  remap_fault_clear_rules (fb);
  ck_assert_int_eq (remap_backend_pread (fb, buf, BLK, BLK), 0);
  ck_assert (all_byte (buf, BLK, 0x11));
  ck_assert_uint_eq (remap_fault_injected (fb), 3);
}
END_TEST

START_TEST (test_rule_after_times)
{
  struct remap_fault_rule rule = {
    .off = 0,
    .len = 512,
    .ops = REMAP_FAULT_WRITE,
    .err = -ENOSPC,
    .after = 2,
    .times = 3,
  };
  int expect[] = { 0, 0, -ENOSPC, -ENOSPC, -ENOSPC, 0, 0 };
  unsigned i;

  ck_assert_int_eq (remap_fault_add_rule (fb, &rule), 0);
  for (i = 0; i < sizeof expect / sizeof expect[0]; i++) {
    /* A non-matching write in between is not counted. */
    ck_assert_int_eq (write_byte (1024, 16, 0x22), 0);
    ck_assert_int_eq (write_byte (100, 10, (uint8_t) (i + 1)), expect[i]);
    if (expect[i] == 0)
      ck_assert_uint_eq (inner ()[100], i + 1);
    else /* a failed write does nothing */
      ck_assert_uint_eq (inner ()[100], 2);
  }
  ck_assert_uint_eq (remap_fault_injected (fb), 3);
  ck_assert_uint_eq (remap_fault_writes (fb), 14);
}
END_TEST

START_TEST (test_rule_flush)
{
  struct remap_fault_rule rule = {
    .off = 0,
    .len = 0,
    .ops = REMAP_FAULT_FLUSH,
    .err = -EIO,
    .times = 1,
  };
  struct remap_fault_rule rw = {
    .off = 60000,
    .len = 1,
    .ops = REMAP_FAULT_READ | REMAP_FAULT_FLUSH,
    .err = -EROFS,
    .after = 1,
  };

  ck_assert_int_eq (remap_fault_add_rule (fb, &rule), 0);
  ck_assert_int_eq (remap_backend_flush (fb), -EIO);
  ck_assert_int_eq (remap_backend_flush (fb), 0);
  /* A flush rule ignores the range: the 2nd flush it sees fails. */
  ck_assert_int_eq (remap_fault_add_rule (fb, &rw), 0);
  ck_assert_int_eq (remap_backend_flush (fb), 0);
  ck_assert_int_eq (remap_backend_flush (fb), -EROFS);
  ck_assert_uint_eq (remap_fault_flushes (fb), 4);
  ck_assert_uint_eq (remap_fault_injected (fb), 2);
}
END_TEST

START_TEST (test_rule_invalid)
{
  struct remap_fault_rule ok = {
    .off = 0,
    .len = 1,
    .ops = REMAP_FAULT_READ,
    .err = -EIO,
  };
  struct remap_fault_rule bad;
  unsigned i;

  bad = ok;
  bad.ops = 0;
  ck_assert_int_eq (remap_fault_add_rule (fb, &bad), -EINVAL);
  bad = ok;
  bad.ops = 0x10;
  ck_assert_int_eq (remap_fault_add_rule (fb, &bad), -EINVAL);
  bad = ok;
  bad.err = EIO;
  ck_assert_int_eq (remap_fault_add_rule (fb, &bad), -EINVAL);
  bad = ok;
  bad.len = 0;
  ck_assert_int_eq (remap_fault_add_rule (fb, &bad), -EINVAL);
  ck_assert_int_eq (remap_fault_add_rule (fb, NULL), -EINVAL);
  for (i = 0; i < 64; i++)
    ck_assert_int_eq (remap_fault_add_rule (fb, &ok), 0);
  ck_assert_int_eq (remap_fault_add_rule (fb, &ok), -ENOSPC);
  remap_fault_clear_rules (fb);
  ck_assert_int_eq (remap_fault_add_rule (fb, &ok), 0);
}
END_TEST

/* zero on the fault backend becomes pwrite of zeroes: counted and matched
 * like any write. */
START_TEST (test_zero_is_a_write)
{
  struct remap_fault_rule rule = {
    .off = 0,
    .len = DISK,
    .ops = REMAP_FAULT_WRITE,
    .err = -EIO,
    .after = 1,
  };

  memset (inner (), 0x33, DISK);
  ck_assert_int_eq (remap_fault_add_rule (fb, &rule), 0);
  ck_assert_int_eq (remap_backend_zero (fb, 1000, 10, false), 0);
  ck_assert (all_byte (inner () + 10, 1000, 0));
  ck_assert_int_eq (remap_backend_zero (fb, 1000, 10, false), -EIO);
  ck_assert_uint_eq (remap_fault_writes (fb), 2);
}
END_TEST

/* ---- volatile mode ----------------------------------------------------- */

START_TEST (test_volatile_overlay)
{
  uint8_t buf[3 * BLK];

  remap_fault_set_volatile (fb, true);
  ck_assert_int_eq (write_byte (0, BLK, 0xaa), 0);
  ck_assert_int_eq (write_byte (BLK / 2, BLK, 0xbb), 0);
  ck_assert_int_eq (write_byte (BLK, 10, 0xcc), 0);
  ck_assert (all_byte (inner (), 3 * BLK, 0)); /* nothing reached it */

  ck_assert_int_eq (remap_backend_pread (fb, buf, sizeof buf, 0), 0);
  ck_assert (all_byte (buf, BLK / 2, 0xaa));
  ck_assert (all_byte (buf + BLK / 2, BLK / 2, 0xbb));
  ck_assert (all_byte (buf + BLK, 10, 0xcc)); /* newest wins */
  ck_assert (all_byte (buf + BLK + 10, BLK / 2 - 10, 0xbb));
  ck_assert (all_byte (buf + BLK + BLK / 2, BLK + BLK / 2, 0));
  /* A read inside one held write. */
  ck_assert_int_eq (remap_backend_pread (fb, buf, 5, BLK + 8), 0);
  ck_assert (all_byte (buf, 2, 0xcc));
  ck_assert (all_byte (buf + 2, 3, 0xbb));

  ck_assert_int_eq (remap_backend_flush (fb), 0);
  ck_assert (all_byte (inner (), BLK / 2, 0xaa));
  ck_assert (all_byte (inner () + BLK / 2, BLK / 2, 0xbb));
  ck_assert (all_byte (inner () + BLK, 10, 0xcc));
  ck_assert (all_byte (inner () + BLK + 10, BLK / 2 - 10, 0xbb));

  /* Turning the mode off applies what is held. */
  ck_assert_int_eq (write_byte (5 * BLK, 100, 0xdd), 0);
  ck_assert (all_byte (inner () + 5 * BLK, 100, 0));
  remap_fault_set_volatile (fb, false);
  ck_assert (all_byte (inner () + 5 * BLK, 100, 0xdd));
  ck_assert_int_eq (write_byte (6 * BLK, 100, 0xee), 0);
  ck_assert (all_byte (inner () + 6 * BLK, 100, 0xee));
}
END_TEST

START_TEST (test_volatile_flush_failure_keeps_writes)
{
  struct remap_fault_rule rule = {
    .len = 0,
    .ops = REMAP_FAULT_FLUSH,
    .err = -EIO,
    .times = 1,
  };

  remap_fault_set_volatile (fb, true);
  ck_assert_int_eq (write_byte (0, 100, 0x44), 0);
  ck_assert_int_eq (remap_fault_add_rule (fb, &rule), 0);
  ck_assert_int_eq (remap_backend_flush (fb), -EIO);
  ck_assert (all_byte (inner (), 100, 0));
  ck_assert_int_eq (remap_backend_flush (fb), 0);
  ck_assert (all_byte (inner (), 100, 0x44));
}
END_TEST

/* ---- crashes ------------------------------------------------------------- */

static void
assert_dead (void)
{
  uint8_t buf[16];

  ck_assert (remap_fault_crashed (fb));
  ck_assert_int_eq (remap_backend_pread (fb, buf, sizeof buf, 0), -EIO);
  ck_assert_int_eq (remap_backend_pwrite (fb, buf, sizeof buf, 0), -EIO);
  ck_assert_int_eq (remap_backend_flush (fb), -EIO);
}

START_TEST (test_crash_drop_all)
{
  unsigned i;

  remap_fault_set_volatile (fb, true);
  remap_fault_crash_at (fb, 6, REMAP_CRASH_DROP_ALL, 1);
  ck_assert_int_eq (write_byte (0, BLK, 1), 0);   /* write 0 */
  ck_assert_int_eq (write_byte (BLK, BLK, 2), 0); /* write 1 */
  ck_assert_int_eq (remap_backend_flush (fb), 0);
  for (i = 2; i < 6; i++) /* writes 2..5 */
    ck_assert_int_eq (write_byte (i * BLK, BLK, i + 1), 0);
  ck_assert (!remap_fault_crashed (fb));
  ck_assert_int_eq (write_byte (6 * BLK, BLK, 7), -EIO); /* write 6: crash */
  ck_assert_uint_eq (remap_fault_writes (fb), 7);

  ck_assert (all_byte (inner (), BLK, 1));
  ck_assert (all_byte (inner () + BLK, BLK, 2));
  ck_assert (all_byte (inner () + 2 * BLK, DISK - 2 * BLK, 0));
  assert_dead ();
  ck_assert_uint_eq (remap_fault_writes (fb), 7);
}
END_TEST

/* Hold `n' writes of one block each (value i + 1 at block i), crash with
 * mode/seed, and return a copy of the inner disk. */
static uint8_t *
crash_image (unsigned n, enum remap_crash_mode mode, uint64_t seed)
{
  uint8_t *copy = malloc (DISK);
  unsigned i;

  teardown ();
  setup ();
  remap_fault_set_volatile (fb, true);
  remap_fault_crash_at (fb, n, mode, seed);
  for (i = 0; i < n; i++)
    ck_assert_int_eq (write_byte (i * BLK, BLK, i + 1), 0);
  ck_assert_int_eq (write_byte (n * BLK, BLK, 0xff), -EIO);
  assert_dead ();
  ck_assert_ptr_nonnull (copy);
  memcpy (copy, inner (), DISK);
  return copy;
}

START_TEST (test_crash_keep_some)
{
  const unsigned n = 12;
  unsigned kept_total = 0, dropped_total = 0;
  uint64_t seed;

  for (seed = 1; seed <= 16; seed++) {
    uint8_t *a = crash_image (n, REMAP_CRASH_KEEP_SOME, seed);
    uint8_t *b = crash_image (n, REMAP_CRASH_KEEP_SOME, seed);
    unsigned i;

    ck_assert_mem_eq (a, b, DISK); /* seeded */
    for (i = 0; i < n; i++) {
      if (all_byte (a + i * BLK, BLK, i + 1))
        kept_total++;
      else if (all_byte (a + i * BLK, BLK, 0))
        dropped_total++;
      else
        ck_abort_msg ("seed %u: block %u is neither old nor new",
                      (unsigned) seed, i);
    }
    ck_assert (all_byte (a + n * BLK, DISK - n * BLK, 0));
    free (a);
    free (b);
  }
  /* A random subset: over 16 seeds both outcomes happen. */
  ck_assert_uint_gt (kept_total, 0);
  ck_assert_uint_gt (dropped_total, 0);
}
END_TEST

START_TEST (test_crash_tear_one)
{
  const unsigned n = 8;
  uint64_t seed;

  for (seed = 1; seed <= 16; seed++) {
    uint8_t *a = crash_image (n, REMAP_CRASH_TEAR_ONE, seed);
    uint8_t *b = crash_image (n, REMAP_CRASH_TEAR_ONE, seed);
    unsigned i, torn = 0;

    ck_assert_mem_eq (a, b, DISK);
    for (i = 0; i < n; i++) {
      const uint8_t *blk = a + i * BLK;
      size_t p = 0;

      if (all_byte (blk, BLK, i + 1) || all_byte (blk, BLK, 0))
        continue;
      /* Torn: new prefix ending at a 512-byte boundary, old suffix. */
      while (p < BLK && blk[p] == i + 1)
        p++;
      ck_assert_uint_gt (p, 0);
      ck_assert_uint_lt (p, BLK);
      ck_assert_uint_eq (p % 512, 0);
      ck_assert (all_byte (blk + p, BLK - p, 0));
      torn++;
    }
    ck_assert_uint_eq (torn, 1);
    free (a);
    free (b);
  }
}
END_TEST

START_TEST (test_crash_tear_small)
{
  /* One held write inside one sector: a torn copy of it is nothing. */
  remap_fault_set_volatile (fb, true);
  ck_assert_int_eq (write_byte (512, 512, 0x55), 0);
  remap_fault_crash_now (fb, REMAP_CRASH_TEAR_ONE, 3);
  ck_assert (all_byte (inner (), DISK, 0));
  assert_dead ();
}
END_TEST

START_TEST (test_crash_tear_unaligned)
{
  /* [1000, 1100) holds one boundary, 1024: exactly 24 bytes survive. */
  remap_fault_set_volatile (fb, true);
  ck_assert_int_eq (write_byte (1000, 100, 0x66), 0);
  remap_fault_crash_now (fb, REMAP_CRASH_TEAR_ONE, 99);
  ck_assert (all_byte (inner (), 1000, 0));
  ck_assert (all_byte (inner () + 1000, 24, 0x66));
  ck_assert (all_byte (inner () + 1024, DISK - 1024, 0));
  assert_dead ();
}
END_TEST

START_TEST (test_crash_not_volatile)
{
  ck_assert_int_eq (write_byte (0, 100, 0x77), 0); /* reaches inner */
  remap_fault_crash_at (fb, 5, REMAP_CRASH_DROP_ALL, 0);
  remap_fault_crash_at (fb, UINT64_MAX, REMAP_CRASH_DROP_ALL, 0);
  ck_assert_int_eq (write_byte (100, 100, 0x78), 0);
  ck_assert_int_eq (write_byte (200, 100, 0x79), 0);
  ck_assert (!remap_fault_crashed (fb)); /* disarmed */
  remap_fault_crash_at (fb, 3, REMAP_CRASH_KEEP_SOME, 0);
  ck_assert_int_eq (write_byte (300, 100, 0x7a), -EIO); /* write 3 */
  ck_assert (all_byte (inner (), 100, 0x77));
  ck_assert (all_byte (inner () + 100, 100, 0x78));
  ck_assert (all_byte (inner () + 200, 100, 0x79));
  ck_assert (all_byte (inner () + 300, 100, 0));
  assert_dead ();
}
END_TEST

START_TEST (test_crash_now_and_reopen)
{
  struct remap_backend *again;
  uint8_t buf[100];

  remap_fault_set_volatile (fb, true);
  ck_assert_int_eq (write_byte (0, 100, 0x12), 0);
  ck_assert_int_eq (remap_backend_flush (fb), 0);
  ck_assert_int_eq (write_byte (0, 100, 0x34), 0);
  remap_fault_crash_now (fb, REMAP_CRASH_DROP_ALL, 0);
  assert_dead ();
  /* The "machine" restarts: the surviving bytes are the flushed ones. */
  ck_assert_int_eq (remap_mem_share (mem, &again), 0);
  ck_assert_int_eq (remap_backend_pread (again, buf, sizeof buf, 0), 0);
  ck_assert (all_byte (buf, sizeof buf, 0x12));
  remap_backend_close (again);
}
END_TEST

/* ---- threads: one mutex, no torn state (run under TSan) ------------------ */

static void *
hammer (void *p)
{
  unsigned id = (unsigned) (uintptr_t) p, i;
  uint8_t buf[BLK];

  for (i = 0; i < 200; i++) {
    memset (buf, (uint8_t) (id + 1), sizeof buf);
    if (remap_backend_pwrite (fb, buf, sizeof buf, id * BLK) != 0 ||
        remap_backend_pread (fb, buf, sizeof buf, id * BLK) != 0 ||
        !all_byte (buf, sizeof buf, (uint8_t) (id + 1)))
      return (void *) 1;
    if (i % 50 == 0 && remap_backend_flush (fb) != 0)
      return (void *) 1;
  }
  return NULL;
}

START_TEST (test_threads)
{
  pthread_t t[4];
  void *r;
  unsigned i;

  remap_fault_set_volatile (fb, true);
  for (i = 0; i < 4; i++)
    pthread_create (&t[i], NULL, hammer, (void *) (uintptr_t) i);
  for (i = 0; i < 4; i++) {
    pthread_join (t[i], &r);
    ck_assert_ptr_null (r);
  }
  ck_assert_int_eq (remap_backend_flush (fb), 0);
  for (i = 0; i < 4; i++)
    ck_assert (all_byte (inner () + i * BLK, BLK, i + 1));
  ck_assert_uint_eq (remap_fault_writes (fb), 800);
}
END_TEST

static Suite *
fault_suite (void)
{
  Suite *s = suite_create ("fault-backend");
  TCase *rules = tcase_create ("rules");
  TCase *vol = tcase_create ("volatile");
  TCase *crash = tcase_create ("crash");

  tcase_add_checked_fixture (rules, setup, teardown);
  tcase_add_checked_fixture (vol, setup, teardown);
  tcase_add_checked_fixture (crash, setup, teardown);
  tcase_add_test (rules, test_identity);
  tcase_add_test (rules, test_rule_range);
  tcase_add_test (rules, test_rule_after_times);
  tcase_add_test (rules, test_rule_flush);
  tcase_add_test (rules, test_rule_invalid);
  tcase_add_test (rules, test_zero_is_a_write);
  tcase_add_test (vol, test_volatile_overlay);
  tcase_add_test (vol, test_volatile_flush_failure_keeps_writes);
  tcase_add_test (vol, test_threads);
  tcase_add_test (crash, test_crash_drop_all);
  tcase_add_test (crash, test_crash_keep_some);
  tcase_add_test (crash, test_crash_tear_one);
  tcase_add_test (crash, test_crash_tear_small);
  tcase_add_test (crash, test_crash_tear_unaligned);
  tcase_add_test (crash, test_crash_not_volatile);
  tcase_add_test (crash, test_crash_now_and_reopen);
  suite_add_tcase (s, rules);
  suite_add_tcase (s, vol);
  suite_add_tcase (s, crash);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (fault_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
