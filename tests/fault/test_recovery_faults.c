/* Faults injected while a spare is being opened and repaired: read errors
 * on a copy during the scan, write errors on the copy being repaired, and
 * a crash at every write of the repair.  After each, the table must come
 * back whole and the damage must be repaired by a later open.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remap/remap.h"
#include "../unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_SIZE (4u << 20)
#define SPARE_SIZE (1u << 20)   /* linear, 4 copies */

static const uint64_t units[] = { 3, 50, 700, 1023 };

struct world {
  struct remap_backend *origin, *spare;
  struct remap_info info;
  uint8_t *expect;              /* the disk as the client wrote it */
};

static void
world_init (struct world *w)
{
  w->origin = tl_mem (ORIGIN_SIZE);
  w->spare = tl_mem (SPARE_SIZE);
  uint64_t seed = 7;
  tl_random_bytes (&seed, remap_mem_data (w->origin), ORIGIN_SIZE);
  tl_format_ok (w->origin, w->spare, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_engine *e = tl_open_ok (w->origin, w->spare, NULL);
  remap_get_info (e, &w->info);
  ck_assert_uint_eq (w->info.layout.copies, 4);
  uint8_t buf[UNIT];
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    ck_assert_int_eq (remap_remap (e, units[i], 0, NULL), 0);
    tl_pattern (buf, UNIT, units[i]);
    ck_assert_int_eq (remap_pwrite (e, buf, UNIT, units[i] * UNIT, REMAP_FUA,
                                    NULL), 0);
  }
  ck_assert_int_eq (remap_close (e), 0);
  w->expect = malloc (ORIGIN_SIZE);
  memcpy (w->expect, remap_mem_data (w->origin), ORIGIN_SIZE);
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    tl_pattern (w->expect + units[i] * UNIT, UNIT, units[i]);
}

static void
world_free (struct world *w)
{
  remap_backend_close (w->origin);
  remap_backend_close (w->spare);
  free (w->expect);
}

static uint64_t
copy_byte (const struct world *w, uint32_t i)
{
  return w->info.layout.copy_offset[i] * UNIT;
}

static uint64_t
copy_len (const struct world *w)
{
  return w->info.layout.copy_units * UNIT;
}

/* Every remap present and the whole disk reads as the client wrote it. */
static void
check_engine (struct remap_engine *e, const struct world *w, const char *when)
{
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
    ck_assert_msg (tl_lookup (e, units[i]).state == REMAP_SLOT_MAPPED,
                   "%s: unit %" PRIu64 " lost its mapping", when, units[i]);
  uint8_t *buf = malloc (ORIGIN_SIZE);
  for (uint64_t off = 0; off < ORIGIN_SIZE; off += 256 * 1024)
    ck_assert_int_eq (remap_pread (e, buf + off, 256 * 1024, off, NULL), 0);
  ck_assert_msg (memcmp (buf, w->expect, ORIGIN_SIZE) == 0,
                 "%s: the disk reads differently", when);
  free (buf);
}

/* A clean open: nothing to repair, every copy valid. */
static void
check_clean (struct world *w, const char *when)
{
  struct remap_engine *e = tl_open_ok (w->origin, w->spare, NULL);
  struct remap_counters c = tl_counters (e);
  ck_assert_msg (c.repaired_blocks == 0, "%s: %" PRIu64 " units repaired "
                 "on a clean spare", when, c.repaired_blocks);
  ck_assert_uint_eq (c.copies_valid, c.copies_total);
  check_engine (e, w, when);
  remap_close (e);
}

START_TEST (test_read_errors_during_scan)
{
  struct world w;
  world_init (&w);
  /* Copy 2 cannot be read at all; copy 1 has a damaged block too. */
  remap_mem_data (w.spare)[copy_byte (&w, 1) + UNIT + 100] ^= 0x40;
  struct remap_backend *f;
  ck_assert_int_eq (remap_fault_create (tl_share (w.spare), true, &f), 0);
  struct remap_fault_rule rule = { .off = copy_byte (&w, 2),
                                   .len = copy_len (&w),
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (tl_share (w.origin), f, NULL, &e, &err) == 0,
                 "%s", err.msg);
  struct remap_counters c = tl_counters (e);
  ck_assert_uint_gt (c.repaired_blocks, 0);
  ck_assert_uint_eq (c.copies_valid, 4);   /* writes to copy 2 worked */
  check_engine (e, &w, "reads of copy 2 failing");
  remap_close (e);
  check_clean (&w, "after the repair");
  world_free (&w);
}
END_TEST

/* The scan reads every copy, then open reads the chosen version of each
 * block again to load it.  When that second read fails (fault rule with
 * after=1 on copy 0's block 0: the scan's read passes, the load's fails),
 * open takes the next valid copy of the block instead of refusing, and
 * repair rewrites the copy that failed. */
START_TEST (test_reread_falls_back)
{
  struct world w;
  world_init (&w);
  struct remap_backend *f;
  ck_assert_int_eq (remap_fault_create (tl_share (w.spare), true, &f), 0);
  struct remap_fault_rule rule = { .off = copy_byte (&w, 0) + UNIT,
                                   .len = UNIT, .ops = REMAP_FAULT_READ,
                                   .err = -EIO, .after = 1 };
  ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (tl_share (w.origin), f, NULL, &e, &err) == 0,
                 "open: %s", err.msg);
  ck_assert_uint_eq (remap_fault_injected (f), 1);
  struct remap_counters c = tl_counters (e);
  ck_assert_uint_eq (c.repaired_blocks, 1);    /* copy 0's block 0 */
  ck_assert_uint_eq (c.copies_valid, 4);
  check_engine (e, &w, "re-read of copy 0 failing");
  remap_close (e);
  check_clean (&w, "after the repair");

  /* When the second read fails in every copy, open refuses, and says
   * what happened to the last one tried. */
  ck_assert_int_eq (remap_fault_create (tl_share (w.spare), true, &f), 0);
  for (uint32_t i = 0; i < 4; i++) {
    rule.off = copy_byte (&w, i) + UNIT;
    ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  }
  remap_error_clear (&err);
  ck_assert_int_eq (remap_open (tl_share (w.origin), f, NULL, &e, &err),
                    -EUCLEAN);
  ck_assert_msg (strstr (err.msg, "table block 0 is damaged in every")
                 && strstr (err.msg, "(last: copy 3: reading it again "
                            "failed"), "message: %s", err.msg);
  check_clean (&w, "after the refused open");
  world_free (&w);
}
END_TEST

/* The same when the version that fails to read back is the only one with
 * the newest generation (copies 1-3 stale, as after a crash between the
 * copies of a commit) and copy 0 cannot be rewritten either: the older
 * version is loaded, as if the scan had found copy 0 unreadable, but the
 * current generation stays at the newest one seen, so a commit made now
 * outranks the bytes copy 0 may still hold.  Otherwise the next open would
 * prefer copy 0's old block and lose that commit. */
START_TEST (test_reread_fails_on_newest)
{
  struct world w;
  world_init (&w);
  uint8_t *snap = malloc (SPARE_SIZE);
  memcpy (snap, remap_mem_data (w.spare), SPARE_SIZE);
  struct remap_engine *e = tl_open_ok (w.origin, w.spare, NULL);
  ck_assert_int_eq (remap_remap (e, 900, 0, NULL), 0);
  uint64_t newest = tl_counters (e).generation;
  remap_close (e);
  uint8_t *d = remap_mem_data (w.spare);
  for (uint32_t i = 1; i < 4; i++)
    memcpy (d + copy_byte (&w, i), snap + copy_byte (&w, i), copy_len (&w));

  struct remap_backend *f;
  ck_assert_int_eq (remap_fault_create (tl_share (w.spare), true, &f), 0);
  struct remap_fault_rule rules[2] = {
    { .off = copy_byte (&w, 0) + UNIT, .len = UNIT, .ops = REMAP_FAULT_READ,
      .err = -EIO, .after = 1 },
    { .off = copy_byte (&w, 0), .len = copy_len (&w),
      .ops = REMAP_FAULT_WRITE, .err = -EIO },
  };
  ck_assert_int_eq (remap_fault_set_rules (f, rules, 2), 0);
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (tl_share (w.origin), f, NULL, &e, &err) == 0,
                 "open: %s", err.msg);
  struct remap_counters c = tl_counters (e);
  ck_assert_uint_eq (c.copies_valid, 3);       /* copy 0 retired */
  ck_assert_uint_eq (c.generation, newest);
  ck_assert_int_eq (tl_lookup (e, 900).state, REMAP_SLOT_FREE);
  ck_assert_int_eq (remap_remap (e, 901, 0, NULL), 0);
  ck_assert_uint_eq (tl_counters (e).generation, newest + 1);
  check_engine (e, &w, "newest version unreadable");
  remap_close (e);

  /* Faults gone: copy 0 still holds the old newest block, but the commit
   * of unit 901 outranks it. */
  e = tl_open_ok (w.origin, w.spare, NULL);
  ck_assert_int_eq (tl_lookup (e, 901).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (tl_lookup (e, 900).state, REMAP_SLOT_FREE);
  ck_assert_uint_eq (tl_counters (e).copies_valid, 4);
  check_engine (e, &w, "after the faults");
  remap_close (e);
  free (snap);
  world_free (&w);
}
END_TEST

START_TEST (test_write_errors_during_repair)
{
  struct world w;
  world_init (&w);
  memset (remap_mem_data (w.spare) + copy_byte (&w, 1), 0, copy_len (&w));
  struct remap_backend *f;
  ck_assert_int_eq (remap_fault_create (tl_share (w.spare), true, &f), 0);
  struct remap_fault_rule rule = { .off = copy_byte (&w, 1),
                                   .len = copy_len (&w),
                                   .ops = REMAP_FAULT_WRITE, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (tl_share (w.origin), f, NULL, &e, &err) == 0,
                 "%s", err.msg);
  struct remap_counters c = tl_counters (e);
  ck_assert_uint_eq (c.copies_valid, 3);   /* copy 1 retired */
  check_engine (e, &w, "copy 1 unwritable");
  /* Commits carry on with the three good copies. */
  uint8_t buf[UNIT];
  ck_assert_int_eq (remap_remap (e, 900, 0, NULL), 0);
  tl_pattern (buf, UNIT, 900);
  ck_assert_int_eq (remap_pwrite (e, buf, UNIT, 900 * UNIT, REMAP_FUA, NULL),
                    0);
  memcpy (w.expect + 900 * UNIT, buf, UNIT);
  remap_close (e);

  /* The fault is gone: the next open repairs copy 1 and keeps unit 900. */
  e = tl_open_ok (w.origin, w.spare, NULL);
  c = tl_counters (e);
  ck_assert_uint_gt (c.repaired_blocks, 0);
  ck_assert_uint_eq (c.copies_valid, 4);
  ck_assert_int_eq (tl_lookup (e, 900).state, REMAP_SLOT_MAPPED);
  check_engine (e, &w, "after copy 1 healed");
  remap_close (e);
  check_clean (&w, "second open");
  world_free (&w);
}
END_TEST

/* Crash at every write of a repair (three copies to mend: one zeroed, one
 * stale, one with a torn block), in every crash mode; the reopened table
 * must always be whole, and a further open must leave a clean spare. */
START_TEST (test_crash_during_repair)
{
  struct world w;
  world_init (&w);
  uint8_t *snap = malloc (SPARE_SIZE);
  memcpy (snap, remap_mem_data (w.spare), SPARE_SIZE);
  /* Make copy 2 stale: one more remap, then restore copy 2's old bytes. */
  {
    struct remap_engine *e = tl_open_ok (w.origin, w.spare, NULL);
    ck_assert_int_eq (remap_remap (e, 1000, 0, NULL), 0);
    remap_close (e);
    uint8_t *d = remap_mem_data (w.spare);
    memcpy (d + copy_byte (&w, 2), snap + copy_byte (&w, 2), copy_len (&w));
    memset (d + copy_byte (&w, 0), 0, copy_len (&w));
    /* A torn write of block 0: its first half new garbage, the rest old. */
    memset (d + copy_byte (&w, 1) + UNIT, 0xa5, UNIT / 2);
    memcpy (w.expect + 1000 * UNIT, remap_mem_data (w.origin) + 1000 * UNIT,
            UNIT);
  }
  memcpy (snap, remap_mem_data (w.spare), SPARE_SIZE);

  /* Count the writes of one repair. */
  struct remap_backend *base = tl_mem_copy (snap, SPARE_SIZE), *f;
  ck_assert_int_eq (remap_fault_create (tl_share (base), true, &f), 0);
  struct remap_engine *e;
  ck_assert_int_eq (remap_open (tl_share (w.origin), f, NULL, &e, NULL), 0);
  uint64_t writes = remap_fault_writes (f);
  remap_close (e);
  remap_backend_close (base);
  /* copy 0: superblock and 2 blocks; copy 1: block 0; copy 2: block 0 */
  ck_assert_uint_eq (writes, 5);

  static const enum remap_crash_mode modes[] = {
    REMAP_CRASH_DROP_ALL, REMAP_CRASH_KEEP_SOME, REMAP_CRASH_TEAR_ONE,
  };
  for (uint64_t k = 0; k < writes; k++)
    for (size_t m = 0; m < 3; m++)
      for (uint64_t seed = 1; seed <= (m ? 3u : 1u); seed++) {
        base = tl_mem_copy (snap, SPARE_SIZE);
        ck_assert_int_eq (remap_fault_create (tl_share (base), true, &f), 0);
        remap_fault_set_volatile (f, true);
        remap_fault_crash_at (f, k, modes[m], seed);
        /* The open itself may fail once the crash has struck (its last
         * flushes fail): that is the crash.  Either way the engine owns
         * f and closes it. */
        if (remap_open (tl_share (w.origin), f, NULL, &e, NULL) == 0) {
          ck_assert (remap_fault_crashed (f));
          remap_close (e);
        }
        char when[64];
        snprintf (when, sizeof when, "crash at write %" PRIu64 " mode %zu "
                  "seed %" PRIu64, k, m, seed);
        struct remap_backend *saved = w.spare;
        w.spare = base;
        struct remap_engine *e2 = tl_open_ok (w.origin, w.spare, NULL);
        check_engine (e2, &w, when);
        ck_assert_int_eq (tl_lookup (e2, 1000).state, REMAP_SLOT_MAPPED);
        remap_close (e2);
        check_clean (&w, when);
        w.spare = saved;
        remap_backend_close (base);
      }
  free (snap);
  world_free (&w);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("recovery-faults");
  TCase *tc = tcase_create ("open");
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_read_errors_during_scan);
  tcase_add_test (tc, test_reread_falls_back);
  tcase_add_test (tc, test_reread_fails_on_newest);
  tcase_add_test (tc, test_write_errors_during_repair);
  tcase_add_test (tc, test_crash_during_repair);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
