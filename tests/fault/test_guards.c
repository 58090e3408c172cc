/* Data-safety behaviours that a mutation run found unguarded (issue 8,
 * item 7).  Each test names the behaviour it keeps, and each was checked
 * to fail with that behaviour removed from core/ (scripts/mutate.sh keeps
 * those mutants).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "remap/badlist.h"
#include "../unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 64u
#define ORIGIN_SIZE ((uint64_t) ORIGIN_UNITS * UNIT)

struct env {
  struct remap_backend *omem, *smem;     /* the bytes */
  struct remap_backend *ofault, *sfault; /* what the engine holds */
  struct remap_engine *e;
  struct remap_layout l;
};

/* A hand-made version 1 spare instead (tests that cover both). */
static bool env_v1;

static void
env_open (struct env *v, uint64_t spare_bytes)
{
  memset (v, 0, sizeof *v);
  v->omem = tl_mem (ORIGIN_SIZE);
  v->smem = tl_mem (spare_bytes);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    tl_pattern (remap_mem_data (v->omem) + u * UNIT, UNIT, u + 1);
  if (env_v1)
    tl_format_v1 (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, 0, NULL);
  else
    tl_format_ok (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_layout_compute_version (env_v1 ? 1 : 2,
                                                  spare_bytes, UNIT,
                                                  REMAP_STRATEGY_AUTO, 0,
                                                  &v->l, NULL), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->omem), true,
                                        &v->ofault), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->smem), true,
                                        &v->sfault), 0);
  struct remap_error err = { 0 };
  int r = remap_open (v->ofault, v->sfault, NULL, &v->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
}

static struct remap_engine *
env_reopen_plain (struct env *v)
{
  if (v->e)
    remap_close (v->e);
  v->e = NULL;
  return tl_open_ok (v->omem, v->smem, NULL);
}

static void
env_close (struct env *v)
{
  if (v->e)
    remap_close (v->e);
  remap_backend_close (v->omem);
  remap_backend_close (v->smem);
}

static void
fail_range (struct remap_backend *fb, uint64_t off, uint64_t len,
            unsigned ops, uint64_t times)
{
  struct remap_fault_rule r = { .off = off, .len = len, .ops = ops,
                                .err = -EIO, .times = times };
  ck_assert_int_eq (remap_fault_add_rule (fb, &r), 0);
}

/* Unmap with copy-back flushes the origin before the commit that frees the
 * spare unit: if the origin then loses its unflushed writes, the data is
 * still there (on the origin) after a restart. */
START_TEST (test_unmap_flushes_origin_before_commit)
{
  struct env v;
  env_open (&v, 1 * MiB);
  uint8_t x[UNIT], got[UNIT];
  tl_pattern (x, UNIT, 0x51);
  ck_assert_int_eq (remap_remap (v.e, 3, 0, NULL), 0);
  ck_assert_int_eq (remap_pwrite (v.e, x, UNIT, 3 * UNIT, REMAP_FUA, NULL),
                    0);
  remap_fault_set_volatile (v.ofault, true);
  ck_assert_int_eq (remap_unmap (v.e, 3, 0, NULL), 0);
  /* Power fails right after unmap returned. */
  remap_fault_crash_now (v.ofault, REMAP_CRASH_DROP_ALL, 1);
  struct remap_engine *e = env_reopen_plain (&v);
  ck_assert_int_eq (tl_lookup (e, 3).state, REMAP_SLOT_FREE);
  ck_assert_int_eq (remap_pread (e, got, UNIT, 3 * UNIT, NULL), 0);
  ck_assert_msg (memcmp (got, x, UNIT) == 0,
                 "unit 3 lost the data unmap copied back");
  remap_close (e);
  env_close (&v);
}
END_TEST

/* close makes writes to remapped units durable even without FUA: a spare
 * that loses its unflushed writes at close (the fault backend drops held
 * writes when closed) still has them. */
START_TEST (test_close_flushes_spare)
{
  struct env v;
  env_open (&v, 1 * MiB);
  uint8_t x[UNIT], got[UNIT];
  tl_pattern (x, UNIT, 0x52);
  ck_assert_int_eq (remap_remap (v.e, 5, 0, NULL), 0);
  remap_fault_set_volatile (v.sfault, true);
  ck_assert_int_eq (remap_pwrite (v.e, x, UNIT, 5 * UNIT, 0, NULL), 0);
  ck_assert_int_eq (remap_close (v.e), 0);
  v.e = NULL;
  struct remap_engine *e = env_reopen_plain (&v);
  ck_assert_int_eq (remap_pread (e, got, UNIT, 5 * UNIT, NULL), 0);
  ck_assert_msg (memcmp (got, x, UNIT) == 0,
                 "a write acknowledged before close is gone");
  remap_close (e);
  env_close (&v);
}
END_TEST

/* A mapped unit with lost granules whose spare unit fails a write moves to
 * a new spare unit: the granules the caller's write covers are no longer
 * lost there, and the ones it does not cover still are. */
START_TEST (test_move_clears_rewritten_lost_granules)
{
  struct env v;
  env_open (&v, 1 * MiB);
  struct remap_info info;
  remap_get_info (v.e, &info);
  uint32_t g = info.lost_granule;
  ck_assert_uint_ge (UNIT / g, 2);
  ck_assert_int_eq (remap_mark_lost (v.e, 7, 0x3, NULL), 0);  /* g0, g1 */
  struct remap_mapping m = tl_lookup (v.e, 7);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (m.lost, 0x3);
  fail_range (v.sfault, m.spare_unit * UNIT, UNIT, REMAP_FAULT_WRITE, 0);

  uint8_t x[UNIT], got[UNIT];
  tl_pattern (x, g, 0x53);
  ck_assert_int_eq (remap_pwrite (v.e, x, g, 7 * UNIT, 0, NULL), 0);
  struct remap_mapping n = tl_lookup (v.e, 7);
  ck_assert_uint_ne (n.spare_unit, m.spare_unit);
  ck_assert_uint_eq (n.lost, 0x2);
  ck_assert_int_eq (remap_pread (v.e, got, g, 7 * UNIT, NULL), 0);
  ck_assert (memcmp (got, x, g) == 0);
  ck_assert_int_eq (remap_pread (v.e, got, g, 7 * UNIT + g, NULL), -EIO);

  struct remap_engine *e = env_reopen_plain (&v);
  ck_assert_uint_eq (tl_lookup (e, 7).lost, 0x2);
  ck_assert_int_eq (remap_pread (e, got, g, 7 * UNIT, NULL), 0);
  ck_assert (memcmp (got, x, g) == 0);
  remap_close (e);
  env_close (&v);
}
END_TEST

/* Pending units that could only be recorded in memory are cleared when
 * the unit is rewritten, which means the lock-free fast path must not
 * serve writes while there are any.  Version 1 reached that state with
 * every usable spare unit bad (the table then indexes nothing); version 2
 * records such a unit in a pending-only place instead (checked below), so
 * the memory-only mark comes from an origin that grew since format: a
 * unit past the recorded end is never recorded (FORMAT.md 11.2), and the
 * table indexes nothing. */
START_TEST (test_memory_pending_cleared_by_rewrite)
{
  const uint64_t old_units = ORIGIN_UNITS / 2;
  struct remap_backend *old = tl_mem (old_units * UNIT);
  struct remap_backend *spare = tl_mem (1 * MiB);
  tl_format_ok (old, spare, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_backend *grown = tl_mem (ORIGIN_SIZE), *fo;
  tl_pattern (remap_mem_data (grown), ORIGIN_SIZE, 9);
  ck_assert_int_eq (remap_fault_create (tl_share (grown), true, &fo), 0);
  struct remap_open_opts o = { .ignore_origin_size = true };
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (fo, tl_share (spare), &o, &e, &err) == 0,
                 "open: %s", err.msg);
  struct remap_counters k = tl_counters (e);
  ck_assert_uint_eq (k.reallocated_units, 0);
  ck_assert_uint_eq (k.pending_units, 0);

  uint64_t u = old_units + 9;   /* past the recorded end */
  fail_range (fo, u * UNIT, UNIT, REMAP_FAULT_READ, 0);
  uint8_t x[UNIT], got[UNIT];
  ck_assert_int_eq (remap_pread (e, got, UNIT, u * UNIT, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (e).pending_units, 1);
  ck_assert_int_eq (remap_unit_pending (e, u), 2);     /* memory only */
  remap_fault_clear_rules (fo);

  tl_pattern (x, UNIT, 0x54);
  ck_assert_int_eq (remap_pwrite (e, x, UNIT, u * UNIT, 0, NULL), 0);
  ck_assert_uint_eq (tl_counters (e).pending_units, 0);
  ck_assert_int_eq (remap_unit_pending (e, u), 0);
  ck_assert_int_eq (remap_pread (e, got, UNIT, u * UNIT, NULL), 0);
  ck_assert (memcmp (got, x, UNIT) == 0);
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (grown);
  remap_backend_close (old);
  remap_backend_close (spare);
}
END_TEST

/* Every usable spare unit bad.  Version 2 (_i == 0): a unit whose read
 * fails is still recorded, in a pending-only place; rewritten, it cannot
 * get a spare unit, so the write goes to the origin and the mark is
 * dropped.  Version 1 (_i == 1, the original case): the mark is in memory
 * only, the table indexes nothing, and the rewrite must clear it (the
 * fast path must not serve it). */
START_TEST (test_pending_place_cleared_by_rewrite_when_spare_bad)
{
  struct env v;
  env_v1 = _i == 1;
  env_open (&v, 1 * MiB);
  for (uint64_t s = 0; s < v.l.spare_units; s++)
    if (!remap_layout_is_reserved (&v.l, s))
      ck_assert_int_eq (remap_mark_spare_bad (v.e, s, NULL), 0);
  struct remap_counters k = tl_counters (v.e);
  ck_assert_uint_eq (k.spare_free_units, 0);
  ck_assert_uint_eq (k.reallocated_units, 0);

  fail_range (v.ofault, 9 * UNIT, UNIT, REMAP_FAULT_READ, 0);
  uint8_t x[UNIT], got[UNIT];
  ck_assert_int_eq (remap_pread (v.e, got, UNIT, 9 * UNIT, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 1);
  ck_assert_int_eq (remap_unit_pending (v.e, 9), env_v1 ? 2 : 1);
  if (!env_v1)
    ck_assert_uint_ge (tl_lookup (v.e, 9).spare_unit, v.l.spare_units);
  remap_fault_clear_rules (v.ofault);

  tl_pattern (x, UNIT, 0x54);
  ck_assert_int_eq (remap_pwrite (v.e, x, UNIT, 9 * UNIT, 0, NULL), 0);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 0);
  ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_FREE);
  ck_assert_int_eq (remap_pread (v.e, got, UNIT, 9 * UNIT, NULL), 0);
  ck_assert (memcmp (got, x, UNIT) == 0);
  ck_assert (memcmp (remap_mem_data (v.omem) + 9 * UNIT, x, UNIT) == 0);
  env_close (&v);
}
END_TEST

/* Parsers refuse numbers that do not fit in 64 bits, and products (block x
 * block size, offset + length) that pass 2^64, instead of wrapping. */
START_TEST (test_parsers_reject_overflow)
{
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };
  const char *t;

  t = "18446744073709551616\n";                 /* 2^64 */
  ck_assert_int_eq (remap_parse_badblocks (t, strlen (t), NULL, 1, &x, &err),
                    -EINVAL);
  t = "18446744073709551615\n";                 /* 2^64 - 1, x 1: no room */
  ck_assert_int_eq (remap_parse_badblocks (t, strlen (t), NULL, 1, &x, &err),
                    -EINVAL);
  t = "4503599627370496\n";                     /* 2^52 x 4096 = 2^64 */
  ck_assert_int_eq (remap_parse_badblocks (t, strlen (t), NULL, 4096, &x, &err),
                    -EINVAL);
  t = "8\n18446744073709551614\n";             /* the last byte: fits */
  ck_assert_int_eq (remap_parse_badblocks (t, strlen (t), NULL, 1, &x, &err), 0);
  t = "0x0 +\n0xFFFFFFFFFFFFFFF0 0x20 -\n";
  ck_assert_int_eq (remap_parse_ddrescue (t, strlen (t), NULL, false, &x, &err),
                    -EINVAL);
  t = "0x0 +\n0x10000000000000000 0x200 -\n";
  ck_assert_int_eq (remap_parse_ddrescue (t, strlen (t), NULL, false, &x, &err),
                    -EINVAL);
  remap_extents_free (&x);

  struct remap_fault_rule r;
  ck_assert_int_eq (remap_fault_parse_rule ("read:18446744073709551616", &r,
                                            &err), -EINVAL);
  ck_assert_int_eq (remap_fault_parse_rule ("read:16777216t", &r, &err),
                    -EINVAL);
  ck_assert_int_eq (remap_fault_parse_rule ("read:0+18446744073709551615",
                                            &r, &err), 0);
  ck_assert_int_eq (remap_fault_parse_rule
                    ("read:18446744073709551615+2", &r, &err), -EINVAL);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("guards");
  TCase *tc = tcase_create ("guards");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_unmap_flushes_origin_before_commit);
  tcase_add_test (tc, test_close_flushes_spare);
  tcase_add_test (tc, test_move_clears_rewritten_lost_granules);
  tcase_add_test (tc, test_memory_pending_cleared_by_rewrite);
  tcase_add_loop_test (tc, test_pending_place_cleared_by_rewrite_when_spare_bad,
                       0, 2);
  tcase_add_test (tc, test_parsers_reject_overflow);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
