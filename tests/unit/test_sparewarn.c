/* Unit tests: the low-spare warning (core/engine.c, spare_watch_locked).
 *
 * The engine logs one ALERT when the free spare falls under 10 % of the
 * usable units and one when it falls under 1 %: once per crossing, never
 * on every allocation; climbing back over a threshold re-arms it; an
 * engine opened already low says so once; a commit that failed but still
 * took a unit out of use (held in doubt) counts like one that succeeded.
 * Each test counts the ALERT lines a log callback receives.  The last one
 * runs four threads remapping at once until the spare is full: still
 * exactly two warnings, and (under TSan) no race on the callback's
 * counters, which only the engine's meta_lock guards.
 */

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "remap/backend.h"
#include "remap/remap.h"

#define U 4096u
#define ORIGIN_SIZE (4u << 20)          /* 1024 units */
#define SPARE_SIZE (1u << 20)           /* 256 units, some for metadata */

static struct remap_backend *origin_mem, *spare_mem, *spare_fault;
static struct remap_engine *e;
static int alerts, infos_again;
static char last_alert[512];

static void
log_fn (void *opaque, enum remap_log_level lvl, const char *msg)
{
  (void) opaque;
  if (lvl == REMAP_LOG_ALERT) {
    alerts++;
    snprintf (last_alert, sizeof last_alert, "%s", msg);
  }
  else if (lvl == REMAP_LOG_INFO && strstr (msg, "free again"))
    infos_again++;
}

/* Open over the mem backends; the spare through a fault injector. */
static void
open_engine (void)
{
  struct remap_backend *o, *s;
  struct remap_error err = { 0 };
  struct remap_open_opts oo = { .no_lock = true, .log = log_fn };

  ck_assert_int_eq (remap_mem_share (origin_mem, &o), 0);
  ck_assert_int_eq (remap_mem_share (spare_mem, &s), 0);
  ck_assert_int_eq (remap_fault_create (s, true, &spare_fault), 0);
  ck_assert_msg (remap_open (o, spare_fault, &oo, &e, &err) == 0, "open: %s",
                 err.msg);
}

static void
setup (void)
{
  struct remap_format_opts fo;
  struct remap_error err = { 0 };

  ck_assert_int_eq (remap_mem_create (ORIGIN_SIZE, &origin_mem), 0);
  ck_assert_int_eq (remap_mem_create (SPARE_SIZE, &spare_mem), 0);
  remap_format_opts_init (&fo);
  fo.unit = U;
  fo.format_time = 1700000000;
  fo.origin_label = "origin";
  ck_assert_msg (remap_format (origin_mem, spare_mem, &fo, &err) == 0,
                 "format: %s", err.msg);
  alerts = infos_again = 0;
  last_alert[0] = '\0';
  open_engine ();
}

static void
teardown (void)
{
  remap_close (e);
  e = NULL;
  remap_backend_close (origin_mem);
  remap_backend_close (spare_mem);
}

static struct remap_counters
counters (void)
{
  struct remap_counters c;
  remap_get_counters (e, &c);
  return c;
}

static int
band (const struct remap_counters *c)
{
  uint64_t f = c->spare_free_units, n = c->spare_usable_units;
  return f * 100 < n ? 2 : f * 10 < n ? 1 : 0;
}

/* Remap origin units from *next on until the free count is `target'. */
static void
remap_until_free (uint64_t *next, uint64_t target)
{
  struct remap_error err = { 0 };
  while (counters ().spare_free_units > target) {
    ck_assert_msg (remap_remap (e, (*next)++, 0, &err) == 0, "remap: %s",
                   err.msg);
  }
}

START_TEST (test_once_per_crossing)
{
  struct remap_error err = { 0 };
  struct remap_counters c = counters ();
  uint64_t u = 0, usable = c.spare_usable_units;
  int r;

  ck_assert_uint_gt (usable, 100);      /* so 1 % and 10 % differ */
  ck_assert_int_eq (alerts, 0);
  /* One allocation at a time: the alert count follows the band exactly,
   * so it never repeats within a band. */
  for (;;) {
    r = remap_remap (e, u++, 0, &err);
    if (r == -ENOSPC)
      break;
    ck_assert_msg (r == 0, "remap %" PRIu64 ": %s", u - 1, err.msg);
    c = counters ();
    ck_assert_msg (alerts == band (&c), "free %" PRIu64 " of %" PRIu64
                   ": %d alert(s), want %d", c.spare_free_units, usable,
                   alerts, band (&c));
    if (alerts == 1)
      ck_assert_msg (strstr (last_alert, "under 10 %") != NULL, "%s",
                     last_alert);
  }
  ck_assert_int_eq (alerts, 2);
  ck_assert_msg (strstr (last_alert, "under 1 %") != NULL, "%s", last_alert);
  ck_assert_msg (strstr (last_alert, "replace the origin disk") != NULL,
                 "the warning says what to do: %s", last_alert);
  /* Refused remaps of a full spare add nothing. */
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq (remap_remap (e, u + i, 0, &err), -ENOSPC);
  ck_assert_int_eq (alerts, 2);
}
END_TEST

START_TEST (test_rearmed_after_rising)
{
  struct remap_error err = { 0 };
  uint64_t usable = counters ().spare_usable_units, u = 0, back;

  remap_until_free (&u, 0);
  ck_assert_int_eq (alerts, 2);
  /* Free enough to be over 10 % again. */
  back = usable / 10 + 2;
  for (uint64_t i = 0; i < back; i++)
    ck_assert_msg (remap_unmap (e, i, 0, &err) == 0, "unmap: %s", err.msg);
  struct remap_counters c = counters ();
  ck_assert_int_eq (band (&c), 0);
  ck_assert_int_eq (infos_again, 2);    /* one INFO per threshold passed */
  ck_assert_int_eq (alerts, 2);
  /* Down again: a new crossing, a new warning. */
  remap_until_free (&u, (usable - 1) / 10);
  c = counters ();
  ck_assert_int_eq (band (&c), 1);
  ck_assert_int_eq (alerts, 3);
  ck_assert_msg (strstr (last_alert, "under 10 %") != NULL, "%s", last_alert);
}
END_TEST

START_TEST (test_warns_at_open_when_low)
{
  uint64_t u = 0, usable = counters ().spare_usable_units;

  remap_until_free (&u, (usable - 1) / 10);
  ck_assert_int_eq (alerts, 1);
  ck_assert_int_eq (remap_close (e), 0);
  e = NULL;
  alerts = 0;
  open_engine ();
  ck_assert_int_eq (alerts, 1);
  ck_assert_msg (strstr (last_alert, "under 10 %") != NULL, "%s", last_alert);
}
END_TEST

/* A commit whose metadata writes all fail has an unknown outcome: its
 * spare unit is held out of use until reopen, so the free count falls
 * and the warning is due, although the remap failed. */
START_TEST (test_failed_commit_counts)
{
  struct remap_error err = { 0 };
  struct remap_info in;
  uint64_t usable = counters ().spare_usable_units, u = 0;
  uint64_t at = (usable + 9) / 10;      /* the last free count in band 0 */

  remap_until_free (&u, at);
  ck_assert_int_eq (alerts, 0);
  remap_get_info (e, &in);
  for (uint32_t i = 0; i < in.layout.copies; i++) {
    struct remap_fault_rule rule = {
      .off = in.layout.copy_offset[i] * U,
      .len = in.layout.copy_units * U,
      .ops = REMAP_FAULT_WRITE, .err = -EIO,
    };
    ck_assert_int_eq (remap_fault_add_rule (spare_fault, &rule), 0);
  }
  ck_assert_int_ne (remap_remap (e, u, 0, &err), 0);
  ck_assert_uint_gt (remap_fault_injected (spare_fault), 0);
  struct remap_counters c = counters ();
  ck_assert_msg (c.spare_free_units == at - 1, "free %" PRIu64 ", want %"
                 PRIu64 " (the unit is held)", c.spare_free_units, at - 1);
  ck_assert_int_eq (alerts, 1);
}
END_TEST

#define NTHREADS 4

static void *
filler (void *arg)
{
  uintptr_t t = (uintptr_t) arg;
  struct remap_error err = { 0 };

  /* Thread t takes origin units t, t + NTHREADS, ... until ENOSPC. */
  for (uint64_t u = t; u < ORIGIN_SIZE / U; u += NTHREADS) {
    int r = remap_remap (e, u, 0, &err);
    if (r == -ENOSPC)
      break;
    if (r != 0)
      return (void *) 1;
  }
  return NULL;
}

START_TEST (test_concurrent_fill)
{
  pthread_t th[NTHREADS];
  void *ret;

  for (uintptr_t t = 0; t < NTHREADS; t++)
    ck_assert_int_eq (pthread_create (&th[t], NULL, filler, (void *) t), 0);
  for (int t = 0; t < NTHREADS; t++) {
    ck_assert_int_eq (pthread_join (th[t], &ret), 0);
    ck_assert_msg (ret == NULL, "thread %d: a remap failed", t);
  }
  ck_assert_uint_eq (counters ().spare_free_units, 0);
  ck_assert_int_eq (alerts, 2);
  ck_assert_msg (strstr (last_alert, "under 1 %") != NULL, "%s", last_alert);
}
END_TEST

static Suite *
suite (void)
{
  Suite *s = suite_create ("sparewarn");
  TCase *tc = tcase_create ("core");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_once_per_crossing);
  tcase_add_test (tc, test_rearmed_after_rising);
  tcase_add_test (tc, test_warns_at_open_when_low);
  tcase_add_test (tc, test_failed_commit_counts);
  tcase_add_test (tc, test_concurrent_fill);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (suite ());
  srunner_run_all (sr, CK_NORMAL);
  int nf = srunner_ntests_failed (sr);
  srunner_free (sr);
  return nf == 0 ? 0 : 1;
}
