/* Fault tests: the engine's error policy (SPEC 3.2-3.6, 3.8).
 *
 * The origin (and, where needed, the spare) is a fault injector over a mem
 * backend the test keeps, so the test can both fail chosen units and look
 * at the bytes behind the engine's back.
 *
 *   origin write error     -> remapped, acknowledged, reads back
 *   partial write, rest of the unit unreadable -> lost granules, -EIO there
 *   read error             -> -EIO for exactly the failing units, pending
 *   spare write error      -> that spare unit BAD, another used
 *   spare full             -> -ENOSPC (or -EIO), everything else works
 *   metadata copy failing  -> copies_valid drops, commits go on, reopen heals
 *   threads                -> one spare unit per unit; readers never see a mix
 *
 * The threaded tests are the ones to run under TSan.
 */

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 64u
#define ORIGIN_SIZE (ORIGIN_UNITS * UNIT)

struct env {
  struct remap_backend *omem, *smem;    /* the bytes */
  struct remap_backend *ofault, *sfault; /* what the engine holds */
  struct remap_engine *e;
  struct remap_layout l;
};

static char logbuf[8192];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void
log_fn (void *opaque, enum remap_log_level lvl, const char *msg)
{
  (void) opaque;
  if (lvl < REMAP_LOG_WARN)
    return;
  pthread_mutex_lock (&log_lock);
  size_t n = strlen (logbuf);
  snprintf (logbuf + n, sizeof logbuf - n, "%s\n", msg);
  pthread_mutex_unlock (&log_lock);
}

/* Format a spare of spare_bytes, open with fault injectors on both sides. */
/* Tests that cover both versions set this: a hand-made version 1 spare. */
static bool env_v1;

static void
env_open (struct env *v, uint64_t spare_bytes, struct remap_open_opts *opts)
{
  memset (v, 0, sizeof *v);
  v->omem = tl_mem (ORIGIN_SIZE);
  v->smem = tl_mem (spare_bytes);
  tl_pattern (remap_mem_data (v->omem), ORIGIN_SIZE, 11);
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
  struct remap_open_opts o = { 0 };
  if (opts)
    o = *opts;
  o.log = log_fn;
  logbuf[0] = '\0';
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

/* Reopen on plain sharers of the bytes (no faults). */
static struct remap_engine *
env_reopen_plain (struct env *v)
{
  remap_close (v->e);
  v->e = NULL;
  return tl_open_ok (v->omem, v->smem, NULL);
}

static void
fail_units (struct remap_backend *fb, uint64_t u, uint64_t n, unsigned ops)
{
  struct remap_fault_rule r = { .off = u * UNIT, .len = n * UNIT,
                                .ops = ops, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (fb, &r), 0);
}

static void
fail_bytes (struct remap_backend *fb, uint64_t off, uint64_t len,
            unsigned ops)
{
  struct remap_fault_rule r = { .off = off, .len = len, .ops = ops,
                                .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (fb, &r), 0);
}

static uint8_t *
origin_bytes (struct env *v, uint64_t u)
{
  return remap_mem_data (v->omem) + u * UNIT;
}

static uint64_t
first_free_slot (const struct remap_layout *l)
{
  uint64_t s = 0;
  while (remap_layout_is_reserved (l, s))
    s++;
  return s;
}

/* ---- origin write errors -------------------------------------------------- */

START_TEST (test_write_error_remaps)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  uint8_t old[UNIT], buf[UNIT], rbuf[3 * UNIT];
  memcpy (old, origin_bytes (&v, 5), UNIT);

  fail_units (v.ofault, 5, 1, REMAP_FAULT_WRITE);
  tl_pattern (buf, UNIT, 500);
  struct remap_error err = { 0 };
  /* A three-unit write: only unit 5 fails. */
  uint8_t *big = malloc (3 * UNIT);
  tl_pattern (big, 3 * UNIT, 501);
  memcpy (big + UNIT, buf, UNIT);
  int r = remap_pwrite (v.e, big, 3 * UNIT, 4 * UNIT, REMAP_FUA, &err);
  ck_assert_msg (r == 0, "write: %d %s", r, err.msg);
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (tl_lookup (v.e, 4).state, REMAP_SLOT_FREE);
  ck_assert_int_eq (tl_lookup (v.e, 6).state, REMAP_SLOT_FREE);
  struct remap_counters k = tl_counters (v.e);
  ck_assert_uint_ge (k.write_errors, 1);
  ck_assert_uint_eq (k.reallocated_units, 1);
  ck_assert_uint_eq (k.reallocation_events, 1);
  /* The origin's unit 5 was never written; its neighbours were. */
  ck_assert_mem_eq (origin_bytes (&v, 5), old, UNIT);
  ck_assert_mem_eq (origin_bytes (&v, 4), big, UNIT);
  ck_assert_mem_eq (origin_bytes (&v, 6), big + 2 * UNIT, UNIT);

  /* Reads no longer rely on the origin's unit 5, even if it cannot be
   * read at all. */
  fail_units (v.ofault, 5, 1, REMAP_FAULT_READ);
  ck_assert_int_eq (remap_pread (v.e, rbuf, 3 * UNIT, 4 * UNIT, &err), 0);
  ck_assert_mem_eq (rbuf, big, 3 * UNIT);
  /* Nor do later writes. */
  tl_pattern (buf, UNIT, 502);
  ck_assert_int_eq (remap_pwrite (v.e, buf, 100, 5 * UNIT + 7, 0, NULL), 0);
  memcpy (big + UNIT + 7, buf, 100);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 5 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, big + UNIT, UNIT);
  ck_assert_mem_eq (origin_bytes (&v, 5), old, UNIT);
  ck_assert_uint_eq (tl_counters (v.e).reallocated_units, 1);

  /* Durable: a plain reopen reads the same. */
  struct remap_engine *e = env_reopen_plain (&v);
  ck_assert_int_eq (remap_pread (e, rbuf, 3 * UNIT, 4 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, big, 3 * UNIT);
  remap_close (e);
  free (big);
  env_close (&v);
}
END_TEST

/* Zero requests meet the same policy. */
START_TEST (test_zero_error_remaps)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  fail_units (v.ofault, 9, 1, REMAP_FAULT_WRITE);
  struct remap_error err = { 0 };
  int r = remap_zero (v.e, 3 * UNIT, 8 * UNIT, 0, &err);
  ck_assert_msg (r == 0, "zero: %s", err.msg);
  ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_MAPPED);
  uint8_t rbuf[3 * UNIT], zero[3 * UNIT] = { 0 };
  ck_assert_int_eq (remap_pread (v.e, rbuf, sizeof rbuf, 8 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, zero, sizeof rbuf);
  env_close (&v);
}
END_TEST

START_TEST (test_partial_write_lost_granules)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  uint32_t g = remap_lost_granule (UNIT);       /* 512: 8 granules */
  ck_assert_uint_eq (g, 512);
  uint8_t data[UNIT], rbuf[UNIT];
  tl_pattern (data, UNIT, 700);

  /* Unit 7: writes fail, and so does reading anything of it. */
  fail_units (v.ofault, 7, 1, REMAP_FAULT_WRITE | REMAP_FAULT_READ);
  struct remap_error err = { 0 };
  int r = remap_pwrite (v.e, data, g, 7 * UNIT, 0, &err);      /* granule 0 */
  ck_assert_msg (r == 0, "partial write: %s", err.msg);
  struct remap_mapping m = tl_lookup (v.e, 7);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (m.lost, 0xfe);
  struct remap_counters k = tl_counters (v.e);
  ck_assert_uint_eq (k.uncorrectable_units, 1);
  ck_assert_uint_eq (k.lost_granules, 7);

  /* The written part reads; every lost granule is -EIO, never zeros. */
  ck_assert_int_eq (remap_pread (v.e, rbuf, g, 7 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, g);
  for (uint32_t i = 1; i < UNIT / g; i++) {
    ck_assert_int_eq (remap_pread (v.e, rbuf, 1, 7 * UNIT + i * g, NULL),
                      -EIO);
    ck_assert_int_eq (remap_pread (v.e, rbuf, g, 7 * UNIT + i * g, NULL),
                      -EIO);
  }
  remap_error_clear (&err);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 7 * UNIT, &err), -EIO);
  ck_assert_msg (err.msg[0] != '\0', "no message");
  /* A read that only touches a lost granule's neighbour is fine. */
  ck_assert_int_eq (remap_pread (v.e, rbuf, 10, 7 * UNIT + g - 10, NULL), 0);

  /* Rewriting granule 3 whole heals it; half of granule 4 does not. */
  ck_assert_int_eq (remap_pwrite (v.e, data + 3 * g, g, 7 * UNIT + 3 * g, 0,
                                  NULL), 0);
  ck_assert_int_eq (remap_pwrite (v.e, data + 4 * g, g / 2, 7 * UNIT + 4 * g,
                                  0, NULL), 0);
  m = tl_lookup (v.e, 7);
  ck_assert_uint_eq (m.lost, 0xf6);
  ck_assert_int_eq (remap_pread (v.e, rbuf, g, 7 * UNIT + 3 * g, NULL), 0);
  ck_assert_mem_eq (rbuf, data + 3 * g, g);
  ck_assert_int_eq (remap_pread (v.e, rbuf, g / 2, 7 * UNIT + 4 * g, NULL),
                    -EIO);

  /* Unmapping would turn lost data into stale origin bytes. */
  ck_assert_int_eq (remap_unmap (v.e, 7, 0, NULL), -EBUSY);

  /* Persisted. */
  struct remap_engine *e = env_reopen_plain (&v);
  ck_assert_uint_eq (tl_lookup (e, 7).lost, 0xf6);
  ck_assert_int_eq (remap_pread (e, rbuf, g, 7 * UNIT + 5 * g, NULL), -EIO);
  /* A full write heals everything. */
  ck_assert_int_eq (remap_pwrite (e, data, UNIT, 7 * UNIT, 0, NULL), 0);
  ck_assert_uint_eq (tl_lookup (e, 7).lost, 0);
  ck_assert_int_eq (remap_pread (e, rbuf, UNIT, 7 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  ck_assert_uint_eq (tl_counters (e).uncorrectable_units, 0);
  remap_close (e);
  env_close (&v);
}
END_TEST

/* Only the granules that really fail are lost. */
START_TEST (test_partial_write_some_granules_unreadable)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  uint8_t data[UNIT], rbuf[UNIT], want[UNIT];
  tl_pattern (data, UNIT, 710);
  memcpy (want, origin_bytes (&v, 3), UNIT);

  fail_units (v.ofault, 3, 1, REMAP_FAULT_WRITE);
  fail_bytes (v.ofault, 3 * UNIT + 2048, 1024, REMAP_FAULT_READ); /* g 4,5 */
  /* Write bytes 100..699: granules 0 and 1 partly. */
  ck_assert_int_eq (remap_pwrite (v.e, data, 600, 3 * UNIT + 100, 0, NULL),
                    0);
  memcpy (want + 100, data, 600);
  ck_assert_uint_eq (tl_lookup (v.e, 3).lost, 0x30);
  ck_assert_int_eq (remap_pread (v.e, rbuf, 2048, 3 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, want, 2048);
  ck_assert_int_eq (remap_pread (v.e, rbuf, 1024, 3 * UNIT + 3072, NULL), 0);
  ck_assert_mem_eq (rbuf, want + 3072, 1024);
  ck_assert_int_eq (remap_pread (v.e, rbuf, 1, 3 * UNIT + 2560, NULL), -EIO);
  env_close (&v);
}
END_TEST

/* ---- read errors ------------------------------------------------------------- */

static unsigned sleeps[16], nsleeps;

static void
sleep_fn (unsigned us)
{
  if (nsleeps < 16)
    sleeps[nsleeps] = us;
  nsleeps++;
}

/* _i == 1: on a version 1 spare, where a pending unit holds a spare unit;
 * version 2 records it in a pending-only place and gives it a spare unit
 * when it is rewritten. */
START_TEST (test_read_error_pending)
{
  struct remap_open_opts o = { .read_retries = 3, .retry_delay_us = 100,
                               .sleep_us = sleep_fn };
  struct env v;
  env_v1 = _i == 1;
  env_open (&v, 1 * MiB, &o);
  uint8_t *buf = malloc (8 * UNIT), data[UNIT];

  fail_units (v.ofault, 12, 1, REMAP_FAULT_READ);
  fail_units (v.ofault, 15, 1, REMAP_FAULT_READ);
  nsleeps = 0;
  struct remap_error err = { 0 };
  int r = remap_pread (v.e, buf, 8 * UNIT, 10 * UNIT, &err);
  ck_assert_int_eq (r, -EIO);
  ck_assert_msg (strstr (err.msg, "12") != NULL, "message: %s", err.msg);
  for (uint64_t u = 10; u < 18; u++) {
    struct remap_mapping m = tl_lookup (v.e, u);
    ck_assert_msg (m.state == ((u == 12 || u == 15) ? REMAP_SLOT_PENDING
                               : REMAP_SLOT_FREE), "unit %" PRIu64
                   " state %d", u, m.state);
  }
  /* The good units of the failed request were read. */
  ck_assert_mem_eq (buf, origin_bytes (&v, 10), 2 * UNIT);
  ck_assert_mem_eq (buf + 3 * UNIT, origin_bytes (&v, 13), 2 * UNIT);
  ck_assert_mem_eq (buf + 6 * UNIT, origin_bytes (&v, 16), 2 * UNIT);
  struct remap_counters k = tl_counters (v.e);
  ck_assert_uint_eq (k.pending_units, 2);
  ck_assert_uint_ge (k.read_errors, 2);
  /* Retries: the 8 unit-by-unit reads that isolate the failed request,
   * then 3 more attempts for each of the 2 failing units. */
  ck_assert_uint_eq (k.retries, 8 + 6);
  ck_assert_uint_eq (k.reallocated_units, 0);
  /* One back-off per pass, shared by every unit the pass put aside. */
  ck_assert_uint_eq (nsleeps, 3);
  ck_assert_uint_eq (sleeps[0], 100);
  ck_assert_uint_eq (sleeps[1], 200);
  ck_assert_uint_eq (sleeps[2], 400);

  /* Reading again: still -EIO, no second hold. */
  ck_assert_int_eq (remap_pread (v.e, buf, 8 * UNIT, 10 * UNIT, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 2);
  ck_assert_uint_eq (tl_counters (v.e).spare_free_units,
                     v.l.usable_units - (env_v1 ? 2 : 0));
  ck_assert_int_eq (remap_pread (v.e, buf, UNIT, 13 * UNIT, NULL), 0);
  uint64_t held = tl_lookup (v.e, 12).spare_unit;
  if (env_v1)
    ck_assert_uint_lt (held, v.l.spare_units);
  else {        /* the first two pending-only places */
    ck_assert_uint_eq (held, remap_layout_first_pending_slot (&v.l));
    ck_assert_uint_eq (tl_lookup (v.e, 15).spare_unit, held + 1);
  }

  /* Pending persists. */
  v.e = (remap_close (v.e), NULL);
  ck_assert_int_eq (remap_fault_create (tl_share (v.omem), true, &v.ofault),
                    0);
  fail_units (v.ofault, 12, 1, REMAP_FAULT_READ);
  fail_units (v.ofault, 15, 1, REMAP_FAULT_READ);
  struct remap_error oerr = { 0 };
  ck_assert_int_eq (remap_open (v.ofault, tl_share (v.smem), NULL, &v.e,
                                &oerr), 0);
  ck_assert_int_eq (tl_lookup (v.e, 12).state, REMAP_SLOT_PENDING);
  ck_assert_uint_eq (tl_lookup (v.e, 12).spare_unit, held);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 2);

  /* A full write of unit 12 maps it (v1: into its held slot; v2: into a
   * spare unit, the place is freed); it reads back although the origin
   * still cannot be read there. */
  tl_pattern (data, UNIT, 1200);
  ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 12 * UNIT, 0, NULL), 0);
  struct remap_mapping m = tl_lookup (v.e, 12);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  if (env_v1)
    ck_assert_uint_eq (m.spare_unit, held);
  else {
    ck_assert_uint_eq (m.spare_unit, first_free_slot (&v.l));
    ck_assert_uint_eq (tl_counters (v.e).spare_free_units,
                       v.l.usable_units - 1);
  }
  ck_assert_uint_eq (m.lost, 0);
  ck_assert_int_eq (remap_pread (v.e, buf, UNIT, 12 * UNIT, NULL), 0);
  ck_assert_mem_eq (buf, data, UNIT);
  k = tl_counters (v.e);
  ck_assert_uint_eq (k.pending_units, 1);
  ck_assert_uint_eq (k.reallocated_units, 1);
  /* A partial write of pending unit 15 maps it with the rest lost. */
  ck_assert_int_eq (remap_pwrite (v.e, data, 512, 15 * UNIT, 0, NULL), 0);
  ck_assert_uint_eq (tl_lookup (v.e, 15).lost, 0xfe);
  ck_assert_int_eq (remap_pread (v.e, buf, 512, 15 * UNIT, NULL), 0);
  ck_assert_int_eq (remap_pread (v.e, buf, UNIT, 15 * UNIT, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 0);
  free (buf);
  env_close (&v);
}
END_TEST

/* Retries that succeed hide a transient error: no pending unit. */
START_TEST (test_read_retry_recovers)
{
  struct remap_open_opts o = { .read_retries = 3 };
  struct env v;
  env_open (&v, 1 * MiB, &o);
  struct remap_fault_rule rule = { .off = 20 * UNIT, .len = UNIT,
                                   .ops = REMAP_FAULT_READ, .err = -EIO,
                                   .times = 2 };
  ck_assert_int_eq (remap_fault_add_rule (v.ofault, &rule), 0);
  uint8_t buf[2 * UNIT];
  ck_assert_int_eq (remap_pread (v.e, buf, 2 * UNIT, 19 * UNIT, NULL), 0);
  ck_assert_mem_eq (buf, origin_bytes (&v, 19), 2 * UNIT);
  ck_assert_int_eq (tl_lookup (v.e, 20).state, REMAP_SLOT_FREE);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 0);
  ck_assert_uint_ge (tl_counters (v.e).retries, 1);
  env_close (&v);
}
END_TEST

/* ---- spare failures ------------------------------------------------------------ */

START_TEST (test_spare_write_error_marks_bad)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  uint64_t s0 = first_free_slot (&v.l);
  fail_units (v.sfault, s0, 1, REMAP_FAULT_WRITE);
  fail_units (v.ofault, 2, 1, REMAP_FAULT_WRITE);
  uint8_t data[UNIT], rbuf[UNIT];
  tl_pattern (data, UNIT, 202);
  struct remap_error err = { 0 };
  int r = remap_pwrite (v.e, data, UNIT, 2 * UNIT, 0, &err);
  ck_assert_msg (r == 0, "write: %s", err.msg);
  struct remap_mapping m = tl_lookup (v.e, 2);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  ck_assert_uint_ne (m.spare_unit, s0);
  ck_assert (!remap_layout_is_reserved (&v.l, m.spare_unit));
  struct remap_counters k = tl_counters (v.e);
  ck_assert_uint_eq (k.spare_bad_units, 1);
  ck_assert_uint_ge (k.spare_errors, 1);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 2 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);

  /* A mapped unit whose spare unit starts failing moves again, with its
   * old bytes for the part not written. */
  uint64_t s1 = m.spare_unit;
  fail_units (v.sfault, s1, 1, REMAP_FAULT_WRITE);
  ck_assert_int_eq (remap_pwrite (v.e, data + 100, 50, 2 * UNIT + 300, 0,
                                  &err), 0);
  memcpy (data + 300, data + 100, 50);
  m = tl_lookup (v.e, 2);
  ck_assert_uint_ne (m.spare_unit, s1);
  ck_assert_uint_ne (m.spare_unit, s0);
  ck_assert_uint_eq (tl_counters (v.e).spare_bad_units, 2);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 2 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);

  /* Persisted: both bad units, and the data. */
  struct remap_engine *e = env_reopen_plain (&v);
  ck_assert_uint_eq (tl_counters (e).spare_bad_units, 2);
  ck_assert_int_eq (remap_pread (e, rbuf, UNIT, 2 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  /* And never handed out again. */
  for (uint64_t u = 30; u < ORIGIN_UNITS; u++) {
    ck_assert_int_eq (remap_remap (e, u, 0, NULL), 0);
    uint64_t s = tl_lookup (e, u).spare_unit;
    ck_assert (s != s0 && s != s1);
  }
  remap_close (e);
  env_close (&v);
}
END_TEST

/* A spare whose data units all fail: after a bounded number of attempts
 * the write fails with -EIO, the unit stays on the origin, and nothing is
 * half-mapped. */
START_TEST (test_spare_data_area_fails)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);         /* linear 4: copies at 0, 84, ... */
  uint64_t a = v.l.copy_units, b = v.l.copy_offset[1];
  ck_assert_uint_gt (b - a, 16);
  fail_units (v.sfault, a, b - a, REMAP_FAULT_WRITE);
  fail_units (v.ofault, 6, 1, REMAP_FAULT_WRITE);
  uint8_t old[UNIT], data[UNIT], rbuf[UNIT];
  memcpy (old, origin_bytes (&v, 6), UNIT);
  tl_pattern (data, UNIT, 66);
  struct remap_error err = { 0 };
  int r = remap_pwrite (v.e, data, UNIT, 6 * UNIT, 0, &err);
  ck_assert_int_eq (r, -EIO);
  ck_assert_msg (err.msg[0] != '\0', "no message");
  ck_assert_int_eq (tl_lookup (v.e, 6).state, REMAP_SLOT_FREE);
  struct remap_counters k = tl_counters (v.e);
  ck_assert_uint_ge (k.spare_bad_units, 1);
  ck_assert_uint_eq (k.reallocated_units, 0);
  ck_assert_uint_eq (k.copies_valid, v.l.copies);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 6 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, old, UNIT);
  /* The spare heals: the next attempt finds a good unit. */
  remap_fault_clear_rules (v.sfault);
  ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 6 * UNIT, 0, NULL), 0);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 6 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  env_close (&v);
}
END_TEST

START_TEST (test_spare_full)
{
  for (int as_eio = 0; as_eio < 2; as_eio++) {
    struct remap_open_opts o = { .enospc_as_eio = as_eio };
    struct env v;
    /* 12 units, 2 copies of 3 (sb, map, one block whose tail holds the
     * pending-only places): 6 usable (version 1: 2 copies of 2, 8) */
    env_open (&v, 48 * KiB, &o);
    ck_assert_uint_eq (v.l.copy_units, 3);
    ck_assert_uint_eq (v.l.usable_units, 6);
    for (uint64_t u = 0; u < 6; u++)
      ck_assert_int_eq (remap_remap (v.e, 40 + u, 0, NULL), 0);
    fail_units (v.ofault, 3, 1, REMAP_FAULT_WRITE);
    uint8_t data[UNIT], rbuf[UNIT];
    tl_pattern (data, UNIT, 33);
    struct remap_error err = { 0 };
    int r = remap_pwrite (v.e, data, UNIT, 3 * UNIT, 0, &err);
    ck_assert_int_eq (r, as_eio ? -EIO : -ENOSPC);
    ck_assert_msg (strstr (err.msg, "full") != NULL, "message: %s", err.msg);
    struct remap_counters k = tl_counters (v.e);
    ck_assert_uint_eq (k.spare_free_units, 0);
    ck_assert_uint_ge (k.enospc_events, 1);
    ck_assert_int_eq (tl_lookup (v.e, 3).state, REMAP_SLOT_FREE);
    /* Everything else works: healthy units, mapped units, reads. */
    ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 4 * UNIT, 0, NULL), 0);
    ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 41 * UNIT, 0, NULL), 0);
    ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 41 * UNIT, NULL), 0);
    ck_assert_mem_eq (rbuf, data, UNIT);
    ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 3 * UNIT, NULL), 0);
    ck_assert_int_eq (remap_flush (v.e, NULL), 0);
    /* Freeing a unit makes room again. */
    ck_assert_int_eq (remap_unmap (v.e, 45, 0, NULL), 0);
    ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 3 * UNIT, 0, NULL), 0);
    ck_assert_int_eq (tl_lookup (v.e, 3).state, REMAP_SLOT_MAPPED);
    env_close (&v);
  }
}
END_TEST

/* A read error when the spare is full: -EIO, and the unit counted once as
 * pending however often it is read (SMART 197 counts units, not events). */
START_TEST (test_pending_when_full_counted_once)
{
  struct env v;
  env_open (&v, 48 * KiB, NULL);
  for (uint64_t u = 0; u < v.l.usable_units; u++)
    ck_assert_int_eq (remap_remap (v.e, 40 + u, 0, NULL), 0);
  fail_units (v.ofault, 3, 1, REMAP_FAULT_READ);
  uint8_t buf[UNIT];
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq (remap_pread (v.e, buf, UNIT, 3 * UNIT, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 1);
  /* Version 2: a full spare still records it, in a pending-only place. */
  ck_assert_int_eq (remap_unit_pending (v.e, 3), 1);
  ck_assert_uint_ge (tl_lookup (v.e, 3).spare_unit, v.l.spare_units);
  env_close (&v);
}
END_TEST

/* ---- metadata copies failing ------------------------------------------------------ */

START_TEST (test_meta_copy_write_fails)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);       /* linear, 4 copies */
  ck_assert_uint_eq (v.l.copies, 4);
  uint32_t bad = 2;
  fail_units (v.sfault, v.l.copy_offset[bad], v.l.copy_units,
              REMAP_FAULT_WRITE);
  uint8_t data[UNIT], rbuf[UNIT];
  for (uint64_t u = 0; u < 5; u++) {
    struct remap_error err = { 0 };
    int r = remap_remap (v.e, u, 0, &err);
    ck_assert_msg (r == 0, "remap %" PRIu64 ": %s", u, err.msg);
    tl_pattern (data, UNIT, 60 + u);
    ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, u * UNIT, REMAP_FUA,
                                    NULL), 0);
  }
  struct remap_counters k = tl_counters (v.e);
  ck_assert_uint_eq (k.copies_valid, 3);
  ck_assert_uint_eq (k.copies_total, 4);
  ck_assert_uint_eq (k.reallocated_units, 5);
  char want[32];
  snprintf (want, sizeof want, "copy %u", bad);
  ck_assert_msg (strstr (logbuf, want) != NULL, "not reported: %s", logbuf);
  /* The retired copy is not written again (one failed write only). */
  ck_assert_uint_eq (remap_fault_injected (v.sfault), 1);

  struct remap_engine *e = env_reopen_plain (&v);
  k = tl_counters (e);
  ck_assert_uint_gt (k.repaired_blocks, 0);
  ck_assert_uint_eq (k.copies_valid, 4);
  ck_assert_uint_eq (k.reallocated_units, 5);
  for (uint64_t u = 0; u < 5; u++) {
    tl_pattern (data, UNIT, 60 + u);
    ck_assert_int_eq (remap_pread (e, rbuf, UNIT, u * UNIT, NULL), 0);
    ck_assert_mem_eq (rbuf, data, UNIT);
  }
  remap_close (e);
  e = tl_open_ok (v.omem, v.smem, NULL);
  ck_assert_uint_eq (tl_counters (e).repaired_blocks, 0);
  ck_assert_uint_eq (tl_counters (e).copies_valid, 4);
  remap_close (e);
  env_close (&v);
}
END_TEST

/* No copy writable: the remap fails and nothing is mapped.  The spare unit
 * the commit named is held (the write may have reached the disk) and the
 * unit refuses writes, until a reopen settles it; then both are free. */
START_TEST (test_meta_all_copies_fail)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  uint64_t free0 = tl_counters (v.e).spare_free_units;
  for (uint32_t i = 0; i < v.l.copies; i++)
    fail_units (v.sfault, v.l.copy_offset[i], v.l.copy_units,
                REMAP_FAULT_WRITE);
  struct remap_error err = { 0 };
  int r = remap_remap (v.e, 1, 0, &err);
  ck_assert_int_eq (r, -EIO);
  ck_assert_msg (err.msg[0] != '\0', "no message");
  ck_assert_int_eq (tl_lookup (v.e, 1).state, REMAP_SLOT_FREE);
  struct remap_counters k = tl_counters (v.e);
  ck_assert_uint_eq (k.spare_free_units, free0 - 1);
  ck_assert_uint_eq (k.held_spare_units, 1);
  ck_assert_uint_eq (k.doubt_units, 1);
  ck_assert_uint_eq (k.copies_valid, 0);
  uint8_t buf[UNIT] = { 0 };
  ck_assert_int_eq (remap_pwrite (v.e, buf, UNIT, 1 * UNIT, 0, NULL), -EIO);
  remap_fault_clear_rules (v.sfault);
  struct remap_engine *e = env_reopen_plain (&v);
  k = tl_counters (e);
  ck_assert_uint_eq (k.spare_free_units, free0);
  ck_assert_uint_eq (k.held_spare_units + k.doubt_units, 0);
  ck_assert_int_eq (remap_pwrite (e, buf, UNIT, 1 * UNIT, 0, NULL), 0);
  remap_close (e);
  env_close (&v);
}
END_TEST

/* A commit that spans two table blocks (a unit moving between spare units
 * in different blocks) where the first block reaches a copy and the second
 * reaches none: the call fails, but the disk now says the unit lives in
 * the new spare unit.  A later write that the engine acknowledges must not
 * be lost at the next open. */
START_TEST (test_partial_commit_then_write)
{
  struct env v;
  /* E = 252: blocks 0 and 1; 2 MiB so that slot E - 1 and the first slots
   * of block 1 are spare units, not a copy's extent (v2 extents are
   * larger). */
  env_open (&v, 2 * MiB, NULL);
  uint64_t E = v.l.entries_per_block;
  ck_assert (!remap_layout_is_reserved (&v.l, E - 1));
  ck_assert (!remap_layout_is_reserved (&v.l, E));
  /* Park the cursor on the last slot of block 0. */
  for (uint64_t s = 0; s < E - 1; s++)
    if (!remap_layout_is_reserved (&v.l, s))
      ck_assert_int_eq (remap_mark_spare_bad (v.e, s, NULL), 0);
  ck_assert_int_eq (remap_remap (v.e, 5, 0, NULL), 0);
  ck_assert_uint_eq (tl_lookup (v.e, 5).spare_unit, E - 1);
  uint8_t a[UNIT], b[UNIT], rbuf[UNIT];
  tl_pattern (a, UNIT, 0xa);
  tl_pattern (b, UNIT, 0xb);
  ck_assert_int_eq (remap_pwrite (v.e, a, UNIT, 5 * UNIT, REMAP_FUA, NULL),
                    0);

  /* Block 0 of every copy becomes unwritable. */
  for (uint32_t i = 0; i < v.l.copies; i++)
    fail_units (v.sfault, remap_layout_block_unit (&v.l, i, 0), 1,
                REMAP_FAULT_WRITE);
  int r = remap_mark_spare_bad (v.e, E - 1, NULL);
  ck_assert_int_ne (r, 0);
  remap_fault_clear_rules (v.sfault);

  /* If the engine still takes writes for unit 5, they must stick. */
  int w = remap_pwrite (v.e, b, UNIT, 5 * UNIT, REMAP_FUA, NULL);
  struct remap_engine *e = env_reopen_plain (&v);
  ck_assert_int_eq (remap_pread (e, rbuf, UNIT, 5 * UNIT, NULL), 0);
  if (w == 0)
    ck_assert_msg (memcmp (rbuf, b, UNIT) == 0,
                   "acknowledged FUA write lost after reopen: unit 5 reads "
                   "%s (now at spare unit %" PRIu64 ")",
                   memcmp (rbuf, a, UNIT) == 0 ? "the older bytes" : "garbage",
                   tl_lookup (e, 5).spare_unit);
  else
    ck_assert_msg (memcmp (rbuf, a, UNIT) == 0, "unit 5 lost its data");
  remap_close (e);
  env_close (&v);
}
END_TEST

/* ---- concurrency --------------------------------------------------------------- */

#define NTHREADS 8

struct wctx {
  struct remap_engine *e;
  pthread_barrier_t *bar;
  uint64_t unit;
  unsigned tag;
  int r;
};

static void *
writer (void *p)
{
  struct wctx *w = p;
  uint8_t buf[UNIT];
  tl_pattern (buf, UNIT, w->tag);
  pthread_barrier_wait (w->bar);
  w->r = remap_pwrite (w->e, buf, UNIT, w->unit * UNIT, 0, NULL);
  return NULL;
}

START_TEST (test_threads_one_spare_unit)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  pthread_barrier_t bar;
  pthread_barrier_init (&bar, NULL, NTHREADS);
  uint64_t rounds = 12;

  for (uint64_t round = 0; round < rounds; round++) {
    uint64_t u = 3 + round * 2;
    fail_units (v.ofault, u, 1, REMAP_FAULT_WRITE);
    pthread_t th[NTHREADS];
    struct wctx w[NTHREADS];
    for (unsigned t = 0; t < NTHREADS; t++) {
      w[t] = (struct wctx) { .e = v.e, .bar = &bar, .unit = u,
                             .tag = (unsigned) (round * 100 + t) };
      ck_assert_int_eq (pthread_create (&th[t], NULL, writer, &w[t]), 0);
    }
    for (unsigned t = 0; t < NTHREADS; t++) {
      pthread_join (th[t], NULL);
      ck_assert_int_eq (w[t].r, 0);
    }
    ck_assert_uint_eq (tl_counters (v.e).reallocated_units, round + 1);
    /* The unit holds one writer's bytes, whole. */
    uint8_t buf[UNIT], want[UNIT];
    ck_assert_int_eq (remap_pread (v.e, buf, UNIT, u * UNIT, NULL), 0);
    bool match = false;
    for (unsigned t = 0; t < NTHREADS && !match; t++) {
      tl_pattern (want, UNIT, round * 100 + t);
      match = memcmp (buf, want, UNIT) == 0;
    }
    ck_assert_msg (match, "round %" PRIu64 ": unit %" PRIu64 " is a mix",
                   round, u);
  }
  pthread_barrier_destroy (&bar);
  ck_assert_uint_eq (tl_counters (v.e).reallocation_events, rounds);
  env_close (&v);
}
END_TEST

/* Eight threads, eight failing units of one lock stripe: eight spare units,
 * each with its own data. */
START_TEST (test_threads_neighbours)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  fail_units (v.ofault, 16, NTHREADS, REMAP_FAULT_WRITE);
  pthread_barrier_t bar;
  pthread_barrier_init (&bar, NULL, NTHREADS);
  pthread_t th[NTHREADS];
  struct wctx w[NTHREADS];
  for (unsigned t = 0; t < NTHREADS; t++) {
    w[t] = (struct wctx) { .e = v.e, .bar = &bar, .unit = 16 + t,
                           .tag = 4000 + t };
    ck_assert_int_eq (pthread_create (&th[t], NULL, writer, &w[t]), 0);
  }
  for (unsigned t = 0; t < NTHREADS; t++) {
    pthread_join (th[t], NULL);
    ck_assert_int_eq (w[t].r, 0);
  }
  pthread_barrier_destroy (&bar);
  ck_assert_uint_eq (tl_counters (v.e).reallocated_units, NTHREADS);
  uint64_t slots[NTHREADS];
  for (unsigned t = 0; t < NTHREADS; t++) {
    uint8_t buf[UNIT], want[UNIT];
    tl_pattern (want, UNIT, 4000 + t);
    ck_assert_int_eq (remap_pread (v.e, buf, UNIT, (16 + t) * UNIT, NULL), 0);
    ck_assert_mem_eq (buf, want, UNIT);
    slots[t] = tl_lookup (v.e, 16 + t).spare_unit;
    for (unsigned x = 0; x < t; x++)
      ck_assert_uint_ne (slots[x], slots[t]);
  }
  env_close (&v);
}
END_TEST

struct rctx {
  struct remap_engine *e;
  uint64_t unit;
  const uint8_t *a, *b;         /* the only two allowed contents */
  atomic_int *stop;
  atomic_long reads;
  long bad;
  char why[96];
};

static void *
reader (void *p)
{
  struct rctx *r = p;
  uint8_t buf[UNIT];
  while (!atomic_load (r->stop)) {
    int rr = remap_pread (r->e, buf, UNIT, r->unit * UNIT, NULL);
    if (rr != 0 || (memcmp (buf, r->a, UNIT) != 0
                    && memcmp (buf, r->b, UNIT) != 0)) {
      if (!r->bad)
        snprintf (r->why, sizeof r->why, "r %d, %s", rr,
                  rr ? "read failed" : "bytes neither old nor new");
      r->bad++;
    }
    atomic_fetch_add (&r->reads, 1);
  }
  return NULL;
}

/* Wait until every reader has finished at least one more read. */
static void
wait_reads (struct rctx *rc, int n)
{
  long base[8];
  for (int t = 0; t < n; t++)
    base[t] = atomic_load (&rc[t].reads);
  for (int t = 0; t < n; t++)
    while (atomic_load (&rc[t].reads) < base[t] + 2)
      sched_yield ();
}

START_TEST (test_readers_see_old_or_new)
{
  struct env v;
  env_open (&v, 1 * MiB, NULL);
  enum { NR = 4, ROUNDS = 30 };
  uint8_t *old = malloc (UNIT), *new = malloc (UNIT), *data = malloc (UNIT);
  uint64_t u = 33;

  memcpy (new, origin_bytes (&v, u), UNIT);
  fail_units (v.ofault, u, 1, REMAP_FAULT_WRITE);
  for (int round = 0; round < ROUNDS; round++) {
    /* Expectations first, readers second: no reader ever sees them
     * change.  Kind 0: whole-unit write; 1: partial write; 2: the data
     * moves (remap, unmap, or a spare unit going bad) unchanged. */
    memcpy (old, new, UNIT);
    int kind = round % 3;
    uint64_t off = 0, len = UNIT;
    if (kind == 1) {
      off = 512 * (uint64_t) (round % 7);
      len = UNIT - off - 512 * (uint64_t) (round % 2);
    }
    tl_pattern (data, UNIT, 9000 + round);
    if (kind != 2)
      memcpy (new + off, data, len);

    atomic_int stop = 0;
    struct rctx rc[NR];
    pthread_t th[NR];
    for (int t = 0; t < NR; t++) {
      rc[t] = (struct rctx) { .e = v.e, .unit = u, .a = old, .b = new,
                              .stop = &stop };
      ck_assert_int_eq (pthread_create (&th[t], NULL, reader, &rc[t]), 0);
    }
    wait_reads (rc, NR);
    int r;
    struct remap_mapping m = tl_lookup (v.e, u);
    if (kind != 2)
      r = remap_pwrite (v.e, data, len, u * UNIT + off, 0, NULL);
    else if (m.state != REMAP_SLOT_MAPPED)
      r = remap_remap (v.e, u, 0, NULL);
    else if (round % 2) {
      remap_fault_clear_rules (v.ofault);
      r = remap_unmap (v.e, u, 0, NULL);
      fail_units (v.ofault, u, 1, REMAP_FAULT_WRITE);
    }
    else
      r = remap_mark_spare_bad (v.e, m.spare_unit, NULL);
    wait_reads (rc, NR);
    atomic_store (&stop, 1);
    for (int t = 0; t < NR; t++) {
      pthread_join (th[t], NULL);
      ck_assert_msg (rc[t].bad == 0, "round %d kind %d reader %d: %ld bad "
                     "reads of %ld: %s", round, kind, t, rc[t].bad,
                     (long) atomic_load (&rc[t].reads), rc[t].why);
    }
    ck_assert_msg (r == 0, "round %d kind %d: %d", round, kind, r);
    uint8_t buf[UNIT];
    ck_assert_int_eq (remap_pread (v.e, buf, UNIT, u * UNIT, NULL), 0);
    ck_assert_msg (memcmp (buf, new, UNIT) == 0, "round %d: final bytes",
                   round);
  }
  ck_assert_uint_ge (tl_counters (v.e).reallocation_events, ROUNDS / 3);
  free (old);
  free (new);
  free (data);
  env_close (&v);
}
END_TEST

/* Slot reuse: units move between the origin and a tiny spare (next-fit
 * wraps every few remaps), so a spare unit freed by one unit soon holds
 * another's bytes.  A reader that acted on a stale mapping would read the
 * wrong unit's bytes.  Every unit's content is fixed for the whole test. */
struct churn {
  struct remap_engine *e;
  atomic_int *stop;
  const uint8_t *content;       /* NCHURN units */
  long reads, bad;
  char why[96];
};

#define NCHURN 6

static void *
churn_reader (void *p)
{
  struct churn *c = p;
  uint8_t buf[2 * UNIT];
  uint64_t st = (uint64_t) (uintptr_t) p;
  while (!atomic_load (c->stop)) {
    uint64_t u = tl_below (&st, NCHURN - 1);
    /* Two units at once, so windows with mixed mappings are read too. */
    int r = remap_pread (c->e, buf, 2 * UNIT, u * UNIT, NULL);
    c->reads++;
    if (r || memcmp (buf, c->content + u * UNIT, 2 * UNIT) != 0) {
      if (!c->bad)
        snprintf (c->why, sizeof c->why, "units %" PRIu64 "-%" PRIu64
                  ": %s", u, u + 1, r ? "read failed" : "wrong bytes");
      c->bad++;
    }
  }
  return NULL;
}

START_TEST (test_readers_during_slot_churn)
{
  struct env v;
  env_open (&v, 48 * KiB, NULL);        /* 8 usable spare units */
  uint8_t *content = malloc (NCHURN * UNIT);
  memcpy (content, origin_bytes (&v, 0), NCHURN * UNIT);
  atomic_int stop = 0;
  enum { NR = 3 };
  struct churn c[NR];
  pthread_t th[NR];
  for (int t = 0; t < NR; t++) {
    c[t] = (struct churn) { .e = v.e, .stop = &stop, .content = content };
    ck_assert_int_eq (pthread_create (&th[t], NULL, churn_reader, &c[t]), 0);
  }
  uint64_t st = 42;
  for (int i = 0; i < 4000; i++) {
    uint64_t u = tl_below (&st, NCHURN);
    int r = tl_lookup (v.e, u).state == REMAP_SLOT_MAPPED
      ? (tl_below (&st, 4) ? remap_unmap (v.e, u, 0, NULL)
         : remap_mark_spare_bad (v.e, tl_lookup (v.e, u).spare_unit, NULL))
      : remap_remap (v.e, u, 0, NULL);
    if (r == -ENOSPC)
      continue;
    ck_assert_msg (r == 0, "op %d on unit %" PRIu64 ": %d", i, u, r);
    /* Bad units would fill the spare: give them back now and then. */
    if (tl_counters (v.e).spare_bad_units > 2) {
      atomic_store (&stop, 1);
      for (int t = 0; t < NR; t++)
        pthread_join (th[t], NULL);
      remap_close (v.e);
      v.e = NULL;
      struct remap_backend *o2;
      ck_assert_int_eq (remap_fault_create (tl_share (v.omem), true, &o2), 0);
      /* Re-format keeps the origin's bytes; mapped units copy back first. */
      struct remap_engine *e2 = tl_open_ok (v.omem, v.smem, NULL);
      for (uint64_t x = 0; x < NCHURN; x++)
        ck_assert_int_eq (remap_unmap (e2, x, 0, NULL), 0);
      remap_close (e2);
      struct remap_error err = { 0 };
      ck_assert_int_eq (tl_format (v.omem, v.smem, UNIT, REMAP_STRATEGY_AUTO,
                                   0, true, &err), 0);
      ck_assert_int_eq (remap_open (o2, tl_share (v.smem), NULL, &v.e, &err),
                        0);
      atomic_store (&stop, 0);
      for (int t = 0; t < NR; t++) {
        c[t].e = v.e;
        ck_assert_int_eq (pthread_create (&th[t], NULL, churn_reader, &c[t]),
                          0);
      }
    }
  }
  atomic_store (&stop, 1);
  for (int t = 0; t < NR; t++) {
    pthread_join (th[t], NULL);
    ck_assert_msg (c[t].bad == 0, "reader %d: %ld bad reads of %ld: %s", t,
                   c[t].bad, c[t].reads, c[t].why);
    ck_assert_int_gt (c[t].reads, 0);
  }
  free (content);
  env_close (&v);
}
END_TEST

/* Units mapped to consecutive spare units are read in one transfer
 * (issue 12).  The bytes must still come from the right places, and a
 * spare read error inside such a run must name the unit that failed and
 * change nothing. */
START_TEST (test_consecutive_spare_units_read)
{
  struct env v;
  struct remap_error err = { 0 };
  env_open (&v, 1 * MiB, NULL);
  for (uint64_t u = 20; u < 24; u++)
    ck_assert_int_eq (remap_remap (v.e, u, 0, NULL), 0);
  uint64_t s0 = tl_lookup (v.e, 20).spare_unit;
  for (uint64_t u = 21; u < 24; u++)
    ck_assert_uint_eq (tl_lookup (v.e, u).spare_unit, s0 + (u - 20));
  /* New data through the engine: units 20..23 land on the spare only. */
  uint8_t *w = malloc (12 * UNIT), *r = malloc (12 * UNIT);
  tl_pattern (w, 12 * UNIT, 77);
  ck_assert_int_eq (remap_pwrite (v.e, w, 12 * UNIT, 16 * UNIT, 0, &err), 0);
  ck_assert_int_ne (memcmp (origin_bytes (&v, 20), w + 4 * UNIT, UNIT), 0);
  /* A read that starts and ends inside the run's units. */
  memset (r, 0, 12 * UNIT);
  ck_assert_int_eq (remap_pread (v.e, r, 12 * UNIT - 300, 16 * UNIT + 100,
                                 &err), 0);
  ck_assert_int_eq (memcmp (r, w + 100, 12 * UNIT - 300), 0);
  ck_assert_int_eq (remap_pread (v.e, r, 2 * UNIT + 10, 20 * UNIT + 2000,
                                 &err), 0);
  ck_assert_int_eq (memcmp (r, w + 4 * UNIT + 2000, 2 * UNIT + 10), 0);

  /* Spare unit of unit 22 fails reads: the run fails, naming it. */
  uint64_t before = tl_counters (v.e).spare_errors;
  fail_units (v.sfault, s0 + 2, 1, REMAP_FAULT_READ);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_pread (v.e, r, 8 * UNIT, 18 * UNIT, &err), -EIO);
  char want[96];
  snprintf (want, sizeof want, "spare unit %llu (data of unit 22)",
            (unsigned long long) (s0 + 2));
  ck_assert_msg (strstr (err.msg, want), "message: %s", err.msg);
  ck_assert_uint_gt (tl_counters (v.e).spare_errors, before);
  for (uint64_t u = 20; u < 24; u++) {
    struct remap_mapping m = tl_lookup (v.e, u);
    ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
    ck_assert_uint_eq (m.spare_unit, s0 + (u - 20));
  }
  /* The units around it still read. */
  ck_assert_int_eq (remap_pread (v.e, r, 2 * UNIT, 20 * UNIT, &err), 0);
  ck_assert_int_eq (memcmp (r, w + 4 * UNIT, 2 * UNIT), 0);
  free (w);
  free (r);
  env_close (&v);
}
END_TEST

static Suite *
errors_suite (void)
{
  Suite *s = suite_create ("errors");
  TCase *wr = tcase_create ("write");
  TCase *rd = tcase_create ("read");
  TCase *sp = tcase_create ("spare");
  TCase *th = tcase_create ("threads");
  tcase_add_test (rd, test_consecutive_spare_units_read);

  tcase_set_timeout (th, 300);
  tcase_add_test (wr, test_write_error_remaps);
  tcase_add_test (wr, test_zero_error_remaps);
  tcase_add_test (wr, test_partial_write_lost_granules);
  tcase_add_test (wr, test_partial_write_some_granules_unreadable);
  tcase_add_loop_test (rd, test_read_error_pending, 0, 2);
  tcase_add_test (rd, test_read_retry_recovers);
  tcase_add_test (sp, test_spare_write_error_marks_bad);
  tcase_add_test (sp, test_spare_data_area_fails);
  tcase_add_test (sp, test_spare_full);
  tcase_add_test (sp, test_pending_when_full_counted_once);
  tcase_add_test (sp, test_meta_copy_write_fails);
  tcase_add_test (sp, test_meta_all_copies_fail);
  tcase_add_test (sp, test_partial_commit_then_write);
  tcase_add_test (th, test_threads_one_spare_unit);
  tcase_add_test (th, test_threads_neighbours);
  tcase_add_test (th, test_readers_see_old_or_new);
  tcase_add_test (th, test_readers_during_slot_churn);
  suite_add_tcase (s, wr);
  suite_add_tcase (s, rd);
  suite_add_tcase (s, sp);
  suite_add_tcase (s, th);
  return s;
}

int
main (void)
{
  return tl_run (errors_suite ());
}
