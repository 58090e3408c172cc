/* Fault test: an origin that grew after the spare was formatted, opened
 * with ignore_origin_size.
 *
 * The superblock records origin_units at format, and a reader rejects a
 * table entry whose origin unit is not below it (FORMAT.md 11.2): one such
 * entry invalidates its block in every copy, and the spare no longer opens.
 * So units past the recorded end must never be remapped or recorded
 * pending: a write that fails there is an error for the client, a read
 * that fails there is pending in memory only.  Units inside the recorded
 * end are remapped as always, and the spare opens again afterwards.
 */

#include "unit/testlib.h"

#define UNIT 4096u
#define OLD_UNITS 16u                   /* the origin at format */
#define NEW_UNITS 32u                   /* the origin now */

static void
fail_unit (struct remap_backend *fb, uint64_t u, unsigned ops)
{
  struct remap_fault_rule r = { .off = u * UNIT, .len = UNIT, .ops = ops,
                                .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (fb, &r), 0);
}

START_TEST (test_grown_origin_never_recorded)
{
  struct remap_backend *old = tl_mem (OLD_UNITS * UNIT);
  struct remap_backend *spare = tl_mem (1 * MiB);
  tl_format_ok (old, spare, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_backend *grown = tl_mem (NEW_UNITS * UNIT);
  tl_pattern (remap_mem_data (grown), NEW_UNITS * UNIT, 5);

  struct remap_backend *fo;
  ck_assert_int_eq (remap_fault_create (tl_share (grown), true, &fo), 0);
  fail_unit (fo, 5, REMAP_FAULT_WRITE);         /* inside: remapped */
  fail_unit (fo, 20, REMAP_FAULT_WRITE);        /* past the recorded end */
  fail_unit (fo, 24, REMAP_FAULT_READ);         /* past the recorded end */
  struct remap_open_opts o = { .ignore_origin_size = true };
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (fo, tl_share (spare), &o, &e, &err) == 0,
                 "open: %s", err.msg);
  ck_assert_uint_eq (remap_size (e), NEW_UNITS * UNIT);

  uint8_t buf[UNIT], rd[UNIT];
  tl_pattern (buf, UNIT, 77);
  ck_assert_int_eq (remap_pwrite (e, buf, UNIT, 5 * UNIT, 0, NULL), 0);
  ck_assert_int_eq (tl_lookup (e, 5).state, REMAP_SLOT_MAPPED);

  ck_assert_int_eq (remap_pwrite (e, buf, UNIT, 20 * UNIT, 0, &err), -EIO);
  ck_assert_msg (strstr (err.msg, "unit 20") && strstr (err.msg, "grown")
                 && strstr (err.msg, "format a spare"), "message: %s",
                 err.msg);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_pread (e, rd, UNIT, 24 * UNIT, &err), -EIO);
  struct remap_counters c = tl_counters (e);
  ck_assert_uint_eq (c.reallocated_units, 1);
  ck_assert_uint_eq (c.pending_units, 1);       /* in memory only */
  ck_assert_uint_eq (c.copies_valid, c.copies_total);
  /* Reads past the recorded end that work are served as usual. */
  ck_assert_int_eq (remap_pread (e, rd, UNIT, 30 * UNIT, NULL), 0);
  ck_assert_mem_eq (rd, remap_mem_data (grown) + 30 * UNIT, UNIT);
  ck_assert_int_eq (remap_close (e), 0);

  /* The spare still opens, with the one remap it could record. */
  e = tl_open_ok (grown, spare, &o);
  c = tl_counters (e);
  ck_assert_uint_eq (c.reallocated_units, 1);
  ck_assert_uint_eq (c.pending_units, 0);
  ck_assert_uint_eq (c.copies_valid, c.copies_total);
  ck_assert_int_eq (remap_pread (e, rd, UNIT, 5 * UNIT, NULL), 0);
  ck_assert_mem_eq (rd, buf, UNIT);
  ck_assert_int_eq (remap_close (e), 0);

  /* And with the origin it was formatted for. */
  e = tl_open_ok (old, spare, NULL);
  ck_assert_int_eq (tl_lookup (e, 5).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (grown);
  remap_backend_close (old);
  remap_backend_close (spare);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("grown-origin");
  TCase *tc = tcase_create ("grown");
  tcase_add_test (tc, test_grown_origin_never_recorded);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
