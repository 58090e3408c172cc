/* Fault tests: read retries (SPEC 3.3) back off with no stripe lock held,
 * and their count and back-off have upper bounds.
 *
 * A failing read is retried after a back-off.  The back-off is slept with
 * no stripe held, so other requests on the same units go on meanwhile;
 * the retry then looks the unit up afresh.  The test makes a write to the
 * failing unit (which also fails on the origin, so it is remapped with
 * the new data) from inside the back-off: it must complete while the
 * reader sleeps, and the retry must read the new data from the spare.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 64u

static struct remap_engine *eng;
static uint8_t newdata[UNIT];
static atomic_int writer_done;
static int writer_result = 1;
static pthread_t writer;
static bool writer_started;
static unsigned sleeps[32], nsleeps;

static void *
write_unit_12 (void *arg)
{
  (void) arg;
  writer_result = remap_pwrite (eng, newdata, UNIT, 12 * UNIT, 0, NULL);
  atomic_store (&writer_done, 1);
  return NULL;
}

/* The engine's back-off.  The first one starts a writer of unit 12 and
 * waits (up to 5 s) for it: a reader that still held the unit's stripe
 * would keep the writer out until the back-off ended. */
static void
sleep_cb (unsigned us)
{
  if (nsleeps < 32)
    sleeps[nsleeps] = us;
  nsleeps++;
  if (writer_started)
    return;
  writer_started = true;
  ck_assert_int_eq (pthread_create (&writer, NULL, write_unit_12, NULL), 0);
  for (int i = 0; i < 500 && !atomic_load (&writer_done); i++)
    nanosleep (&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
}

START_TEST (test_backoff_holds_no_stripe)
{
  struct remap_backend *omem = tl_mem (ORIGIN_UNITS * UNIT);
  struct remap_backend *smem = tl_mem (1 * MiB);
  tl_pattern (remap_mem_data (omem), ORIGIN_UNITS * UNIT, 3);
  tl_format_ok (omem, smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_backend *fo;
  ck_assert_int_eq (remap_fault_create (tl_share (omem), true, &fo), 0);
  struct remap_fault_rule rule = { .off = 12 * UNIT, .len = UNIT,
                                   .ops = REMAP_FAULT_READ | REMAP_FAULT_WRITE,
                                   .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (fo, &rule), 0);
  struct remap_open_opts o = { .read_retries = 2, .retry_delay_us = 1000,
                               .sleep_us = sleep_cb };
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (fo, tl_share (smem), &o, &eng, &err) == 0,
                 "open: %s", err.msg);
  tl_pattern (newdata, UNIT, 1212);

  uint8_t *buf = malloc (6 * UNIT);
  int r = remap_pread (eng, buf, 6 * UNIT, 10 * UNIT, &err);
  bool done_in_sleep = atomic_load (&writer_done);
  ck_assert (writer_started);
  pthread_join (writer, NULL);
  ck_assert_msg (done_in_sleep, "the write of unit 12 waited for the "
                 "reader's back-off: a stripe was held while it slept");
  ck_assert_int_eq (writer_result, 0);
  ck_assert_msg (r == 0, "read: %d %s", r, err.msg);
  ck_assert_int_eq (tl_lookup (eng, 12).state, REMAP_SLOT_MAPPED);
  ck_assert_mem_eq (buf, remap_mem_data (omem) + 10 * UNIT, 2 * UNIT);
  ck_assert_mem_eq (buf + 2 * UNIT, newdata, UNIT);
  ck_assert_mem_eq (buf + 3 * UNIT, remap_mem_data (omem) + 13 * UNIT,
                    3 * UNIT);
  ck_assert_uint_eq (nsleeps, 1);       /* the retry found it remapped */
  ck_assert_uint_eq (tl_counters (eng).pending_units, 0);
  ck_assert_int_eq (remap_close (eng), 0);
  free (buf);
  remap_backend_close (omem);
  remap_backend_close (smem);
}
END_TEST

/* remap_open refuses retry options past REMAP_MAX_READ_RETRIES and
 * REMAP_MAX_RETRY_DELAY_US, with a message; at the bounds it opens, and
 * the doubling back-off stops at REMAP_MAX_RETRY_DELAY_US. */
START_TEST (test_retry_bounds)
{
  struct remap_backend *omem = tl_mem (ORIGIN_UNITS * UNIT);
  struct remap_backend *smem = tl_mem (1 * MiB);
  tl_format_ok (omem, smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_open_opts bad[2] = {
    { .read_retries = REMAP_MAX_READ_RETRIES + 1 },
    { .retry_delay_us = REMAP_MAX_RETRY_DELAY_US + 1 },
  };
  for (int i = 0; i < 2; i++) {
    struct remap_engine *e = NULL;
    struct remap_error err = { 0 };
    ck_assert_int_eq (tl_open (omem, smem, &bad[i], &e, &err), -EINVAL);
    ck_assert_ptr_null (e);
    ck_assert_msg (strstr (err.msg, "read retries") && strstr (err.msg,
                                                               "bounds"),
                   "message: %s", err.msg);
  }

  struct remap_backend *fo;
  ck_assert_int_eq (remap_fault_create (tl_share (omem), true, &fo), 0);
  struct remap_fault_rule rule = { .off = 7 * UNIT, .len = UNIT,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (fo, &rule), 0);
  writer_started = true;                /* no writer in this test */
  nsleeps = 0;
  struct remap_open_opts o = {
    .read_retries = REMAP_MAX_READ_RETRIES,
    .retry_delay_us = REMAP_MAX_RETRY_DELAY_US / 4, .sleep_us = sleep_cb,
  };
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (fo, tl_share (smem), &o, &e, &err) == 0,
                 "open: %s", err.msg);
  uint8_t buf[UNIT];
  ck_assert_int_eq (remap_pread (e, buf, UNIT, 7 * UNIT, NULL), -EIO);
  ck_assert_uint_eq (nsleeps, REMAP_MAX_READ_RETRIES);
  ck_assert_uint_eq (sleeps[0], REMAP_MAX_RETRY_DELAY_US / 4);
  ck_assert_uint_eq (sleeps[1], REMAP_MAX_RETRY_DELAY_US / 2);
  for (unsigned i = 2; i < REMAP_MAX_READ_RETRIES; i++)
    ck_assert_uint_eq (sleeps[i], REMAP_MAX_RETRY_DELAY_US);
  ck_assert_uint_eq (tl_counters (e).retries, 1 + REMAP_MAX_READ_RETRIES);
  ck_assert_int_eq (tl_lookup (e, 7).state, REMAP_SLOT_PENDING);
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (omem);
  remap_backend_close (smem);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("read-retry");
  TCase *tc = tcase_create ("retry");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_backoff_holds_no_stripe);
  tcase_add_test (tc, test_retry_bounds);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
