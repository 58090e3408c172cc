/* More data-safety behaviours that the mutation campaign (scripts/mutate.sh,
 * docs/MUTATION.md) found unguarded.  Each test names the behaviour it
 * keeps and the mutant that it kills; each was checked to pass on the
 * unmutated tree and to fail with that mutant applied.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

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

static void
env_open (struct env *v, uint64_t spare_bytes)
{
  memset (v, 0, sizeof *v);
  v->omem = tl_mem (ORIGIN_SIZE);
  v->smem = tl_mem (spare_bytes);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    tl_pattern (remap_mem_data (v->omem) + u * UNIT, UNIT, u + 1);
  tl_format_ok (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_layout_compute (spare_bytes, UNIT,
                                          REMAP_STRATEGY_AUTO, 0, &v->l,
                                          NULL), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->omem), true,
                                        &v->ofault), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->smem), true,
                                        &v->sfault), 0);
  struct remap_error err = { 0 };
  int r = remap_open (v->ofault, v->sfault, NULL, &v->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
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

/* A unit that is pending in memory only (the spare was full when its read
 * failed) stops being pending once a commit maps it, here a remap by hand
 * after room was made: the counters no longer call it pending, and the
 * unit reads its data.  Kills apply-keeps-vpend. */
START_TEST (test_memory_pending_cleared_by_remap)
{
  struct env v;
  env_open (&v, 64 * KiB);
  ck_assert_uint_ge (v.l.usable_units, 2);
  ck_assert_uint_le (v.l.usable_units, 40);
  for (uint64_t i = 0; i < v.l.usable_units; i++)
    ck_assert_int_eq (remap_remap (v.e, 20 + i, 0, NULL), 0);
  ck_assert_uint_eq (tl_counters (v.e).spare_free_units, 0);

  uint8_t got[UNIT], want[UNIT];
  fail_range (v.ofault, 9 * UNIT, UNIT, REMAP_FAULT_READ, 0);
  ck_assert_int_eq (remap_pread (v.e, got, UNIT, 9 * UNIT, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 1);
  ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_FREE);
  remap_fault_clear_rules (v.ofault);

  ck_assert_int_eq (remap_unmap (v.e, 20, 0, NULL), 0);
  ck_assert_uint_eq (tl_counters (v.e).spare_free_units, 1);
  ck_assert_int_eq (remap_remap (v.e, 9, 0, NULL), 0);
  ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 0);
  tl_pattern (want, UNIT, 9 + 1);
  ck_assert_int_eq (remap_pread (v.e, got, UNIT, 9 * UNIT, NULL), 0);
  ck_assert (memcmp (got, want, UNIT) == 0);
  env_close (&v);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("guards2");
  TCase *tc = tcase_create ("guards2");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_memory_pending_cleared_by_remap);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
