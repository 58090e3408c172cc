/* Adversary of the data-path merge (issues 11 and 12): cases where the
 * rewrite of a pending unit, when it cannot get a spare unit, takes its
 * way out through the origin (pending_to_origin) on errors that are not
 * spare exhaustion, or reports the wrong error.  Each test failed before
 * the fix in core/datapath.c named in its comment.
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
env_open (struct env *v, bool enospc_as_eio)
{
  memset (v, 0, sizeof *v);
  v->omem = tl_mem (ORIGIN_SIZE);
  v->smem = tl_mem (1 * MiB);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    tl_pattern (remap_mem_data (v->omem) + u * UNIT, UNIT, u + 1);
  tl_format_ok (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_layout_compute_version (2, 1 * MiB, UNIT,
                                                  REMAP_STRATEGY_AUTO, 0,
                                                  &v->l, NULL), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->omem), true,
                                        &v->ofault), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->smem), true,
                                        &v->sfault), 0);
  struct remap_open_opts o = { .enospc_as_eio = enospc_as_eio };
  struct remap_error err = { 0 };
  int r = remap_open (v->ofault, v->sfault, &o, &v->e, &err);
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
inject (struct remap_backend *fb, uint64_t off, uint64_t len, unsigned ops,
      int errnum, uint64_t times)
{
  struct remap_fault_rule r = { .off = off, .len = len, .ops = ops,
                                .err = errnum, .times = times };
  ck_assert_int_eq (remap_fault_add_rule (fb, &r), 0);
}

/* Unit 9 fails a read and becomes pending, recorded in a pending-only
 * place (version 2). */
static void
make_pending (struct env *v, uint64_t u)
{
  uint8_t got[UNIT];
  inject (v->ofault, u * UNIT, UNIT, REMAP_FAULT_READ, -EIO, 0);
  ck_assert_int_eq (remap_pread (v->e, got, UNIT, u * UNIT, NULL), -EIO);
  remap_fault_clear_rules (v->ofault);
  ck_assert_int_eq (tl_lookup (v->e, u).state, REMAP_SLOT_PENDING);
  ck_assert_uint_ge (tl_lookup (v->e, u).spare_unit, v->l.spare_units);
}

/* Every usable spare unit bad, unit 9 pending; its rewrite cannot get a
 * spare unit and goes to the origin, which has lost its connection
 * (-ENOTCONN).  SPEC 3.10: a lost connection is reported as such, not as
 * a full spare: the client is told ENOTCONN (retry when it is back), the
 * unit stays pending, the origin is unchanged.  Before the fix the write
 * failed with ENOSPC ("the spare is full"), whatever the origin said. */
START_TEST (test_pending_rewrite_origin_error_kept)
{
  static const int errs[] = { -ENOTCONN, -ENOSPC, -EAGAIN };
  struct env v;
  env_open (&v, false);
  for (uint64_t s = 0; s < v.l.spare_units; s++)
    if (!remap_layout_is_reserved (&v.l, s))
      ck_assert_int_eq (remap_mark_spare_bad (v.e, s, NULL), 0);
  make_pending (&v, 9);

  uint8_t x[UNIT], before[UNIT];
  tl_pattern (x, UNIT, 0x77);
  memcpy (before, remap_mem_data (v.omem) + 9 * UNIT, UNIT);
  for (size_t k = 0; k < sizeof errs / sizeof errs[0]; k++) {
    struct remap_error err = { 0 };
    inject (v.ofault, 9 * UNIT, UNIT, REMAP_FAULT_WRITE, errs[k], 0);
    int r = remap_pwrite (v.e, x, UNIT, 9 * UNIT, 0, &err);
    ck_assert_msg (r == errs[k], "origin error %d: the write returned %d "
                   "(%s)", errs[k], r, err.msg);
    ck_assert_msg (err.msg[0] != '\0', "no message for %d", errs[k]);
    remap_fault_clear_rules (v.ofault);
    ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_PENDING);
    ck_assert (memcmp (remap_mem_data (v.omem) + 9 * UNIT, before, UNIT)
               == 0);
  }
  /* A media error on the origin as well: then the spare really is what
   * is missing, and the answer stays ENOSPC. */
  inject (v.ofault, 9 * UNIT, UNIT, REMAP_FAULT_WRITE, -EIO, 0);
  ck_assert_int_eq (remap_pwrite (v.e, x, UNIT, 9 * UNIT, 0, NULL), -ENOSPC);
  remap_fault_clear_rules (v.ofault);
  ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_PENDING);

  /* And once the origin is back the rewrite lands there. */
  ck_assert_int_eq (remap_pwrite (v.e, x, UNIT, 9 * UNIT, 0, NULL), 0);
  ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_FREE);
  ck_assert (memcmp (remap_mem_data (v.omem) + 9 * UNIT, x, UNIT) == 0);
  env_close (&v);
}
END_TEST

/* enospc=eio (_i == 1) against the default (_i == 0): the same fault must
 * have the same outcome.  Unit 9 pending, the spare has room; its rewrite
 * relocates it, and the spare's flush of the new copy fails.  A failed
 * flush blames nothing and fails the request with -EIO; the unit keeps its
 * pending place (nothing changed).  Before the fix, with enospc=eio the
 * relocation's -EIO was taken for "spare exhausted" (write_range compared
 * it with enospc (-ENOSPC), which is -EIO there), so the write went to
 * the origin instead, the pending mark was committed away and the client
 * was told success: the outcome of a fault depended on how exhaustion is
 * spelled. */
START_TEST (test_pending_rewrite_flush_failure_same_with_enospc_eio)
{
  struct env v;
  env_open (&v, _i == 1);
  make_pending (&v, 9);
  uint64_t place = tl_lookup (v.e, 9).spare_unit;

  uint8_t x[UNIT], before[UNIT];
  tl_pattern (x, UNIT, 0x99);
  memcpy (before, remap_mem_data (v.omem) + 9 * UNIT, UNIT);
  inject (v.sfault, 0, 1 * MiB, REMAP_FAULT_FLUSH, -EIO, 1);
  struct remap_error err = { 0 };
  int r = remap_pwrite (v.e, x, UNIT, 9 * UNIT, 0, &err);
  ck_assert_msg (r == -EIO, "enospc_as_eio=%d: the write returned %d (%s)",
                 _i, r, err.msg);
  remap_fault_clear_rules (v.sfault);
  struct remap_mapping m = tl_lookup (v.e, 9);
  ck_assert_int_eq (m.state, REMAP_SLOT_PENDING);
  ck_assert_uint_eq (m.spare_unit, place);
  ck_assert (memcmp (remap_mem_data (v.omem) + 9 * UNIT, before, UNIT) == 0);
  env_close (&v);
}
END_TEST

/* Unit 9 pending, the spare has room; its relocation writes the new copy,
 * then every metadata write fails with -ENOSPC (the file system under the
 * spare filled up), so the commit fails and its outcome is unknown: the
 * unit is in doubt, and a unit in doubt refuses writes, its old and new
 * homes both kept (SPEC 3.10).  That -ENOSPC is not an exhausted spare:
 * the rewrite must not be sent to the origin and committed again. */
START_TEST (test_pending_rewrite_failed_commit_not_redone)
{
  struct env v;
  env_open (&v, false);
  make_pending (&v, 9);

  uint8_t x[UNIT], before[UNIT];
  tl_pattern (x, UNIT, 0x55);
  memcpy (before, remap_mem_data (v.omem) + 9 * UNIT, UNIT);
  struct remap_fault_rule rule = { .off = 0, .len = 1 * MiB,
                                   .ops = REMAP_FAULT_WRITE, .err = -ENOSPC,
                                   .after = 1, .times = 0 };
  ck_assert_int_eq (remap_fault_add_rule (v.sfault, &rule), 0);
  struct remap_error err = { 0 };
  int r = remap_pwrite (v.e, x, UNIT, 9 * UNIT, 0, &err);
  ck_assert_msg (r != 0, "a rewrite whose commit failed was acknowledged");
  ck_assert_msg (memcmp (remap_mem_data (v.omem) + 9 * UNIT, before, UNIT)
                 == 0, "the origin of a unit in doubt was written (%d: %s)",
                 r, err.msg);
  remap_fault_clear_rules (v.sfault);
  /* In doubt until reopen: the next write is refused too. */
  ck_assert_int_eq (remap_pwrite (v.e, x, UNIT, 9 * UNIT, 0, NULL), -EIO);
  env_close (&v);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("advdp");
  TCase *tc = tcase_create ("advdp");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_pending_rewrite_origin_error_kept);
  tcase_add_loop_test (tc, test_pending_rewrite_flush_failure_same_with_enospc_eio,
                       0, 2);
  tcase_add_test (tc, test_pending_rewrite_failed_commit_not_redone);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
