/* Extents under faults and races.
 *
 *   - the origin's extents fail (a lost connection, a media error): the
 *     range is reported as data, a warning names the origin, and nothing
 *     is recorded (no pending unit, no remap): an extents error is no
 *     verdict on the medium;
 *   - a unit pending in memory only (read-only engine) and a unit in doubt
 *     (its commit's outcome unknown) are data, whatever the origin says;
 *   - the fault backend: held (volatile) writes make everything data,
 *     rules with REMAP_FAULT_EXTENTS fail the call, a crash fails it;
 *   - race: units whose bytes move between origin and spare (remap, zero
 *     the origin under it, unmap = copy back) are never reported as a hole
 *     by a concurrent remap_extents (run it under TSan too);
 *   - race: units remapped over origin holes (zero spare copies, whose
 *     zero answer extents.c remembers) written with data while scanners
 *     ask: a unit whose write was acknowledged before a call began is
 *     never reported as zero by that call.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../unit/testlib.h"

#define UNIT 4096u
#define UNITS 64u
#define DISK ((uint64_t) UNITS * UNIT)
#define HZ (REMAP_EXTENT_HOLE | REMAP_EXTENT_ZERO)

static char logbuf[8192];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void
log_fn (void *opaque, enum remap_log_level lvl, const char *msg)
{
  (void) opaque;
  (void) lvl;
  pthread_mutex_lock (&log_lock);
  size_t n = strlen (logbuf);
  snprintf (logbuf + n, sizeof logbuf - n, "%s\n", msg);
  pthread_mutex_unlock (&log_lock);
}

struct list {
  uint64_t off[256], len[256];
  uint32_t type[256];
  size_t n;
};

static int
collect (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct list *l = opaque;
  REQ (l->n < 256, "too many extents");
  l->off[l->n] = off;
  l->len[l->n] = len;
  l->type[l->n++] = type;
  return 0;
}

/* The type reported for byte b (the list covers it). */
static uint32_t
type_at (const struct list *l, uint64_t b)
{
  for (size_t i = 0; i < l->n; i++)
    if (b >= l->off[i] && b < l->off[i] + l->len[i])
      return l->type[i];
  ck_abort_msg ("byte %llu not reported", (unsigned long long) b);
  return 0;
}

static struct list
extents_of (struct remap_engine *e)
{
  struct list l = { .n = 0 };
  struct remap_error err = { 0 };
  int r = remap_extents (e, DISK, 0, collect, &l, &err);
  ck_assert_msg (r == 0, "remap_extents: %d %s", r, err.msg);
  return l;
}

/* An engine over a fault backend on a zeroed (all-hole) mem origin. */
struct fx {
  struct remap_backend *om, *sm, *fo, *fs;
  struct remap_engine *e;
};

static void
fx_open (struct fx *f, bool readonly, bool fault_spare)
{
  struct remap_open_opts o = { .readonly = readonly, .log = log_fn };
  struct remap_error err = { 0 };
  logbuf[0] = '\0';
  f->om = tl_mem (DISK);
  f->sm = tl_mem (1 * MiB);
  tl_format_ok (f->om, f->sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_fault_create (tl_share (f->om), true, &f->fo), 0);
  f->fs = tl_share (f->sm);
  if (fault_spare)
    ck_assert_int_eq (remap_fault_create (f->fs, true, &f->fs), 0);
  int r = remap_open (f->fo, f->fs, &o, &f->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
}

static void
fx_close (struct fx *f)
{
  remap_close (f->e);
  remap_backend_close (f->om);
  remap_backend_close (f->sm);
}

static void
origin_extents_fail (int errnum)
{
  struct fx f;
  fx_open (&f, false, false);
  ck_assert_int_eq (remap_remap (f.e, 3, 0, NULL), 0);
  uint8_t one = 1;                      /* not a zero unit on the spare */
  ck_assert_int_eq (remap_pwrite (f.e, &one, 1, 3 * UNIT + 9, 0, NULL), 0);
  struct remap_counters before = tl_counters (f.e);
  struct remap_fault_rule rule = { .off = 0, .len = DISK,
                                   .ops = REMAP_FAULT_EXTENTS,
                                   .err = errnum };
  ck_assert_int_eq (remap_fault_add_rule (f.fo, &rule), 0);
  struct list l = extents_of (f.e);
  ck_assert_uint_eq (l.n, 1);
  ck_assert_uint_eq (l.type[0], 0);
  ck_assert_uint_eq (l.len[0], DISK);
  ck_assert_uint_eq (remap_fault_injected (f.fo), 1);
  ck_assert_msg (strstr (logbuf, "cannot tell its allocation") != NULL,
                 "no warning:\n%s", logbuf);
  struct remap_counters after = tl_counters (f.e);
  ck_assert_uint_eq (after.pending_units, before.pending_units);
  ck_assert_uint_eq (after.reallocated_units, before.reallocated_units);
  ck_assert_uint_eq (after.reallocation_events, before.reallocation_events);
  ck_assert_uint_eq (after.read_errors, before.read_errors);
  ck_assert_uint_eq (after.generation, before.generation);
  for (uint64_t u = 0; u < UNITS; u++)
    ck_assert_int_eq (remap_unit_pending (f.e, u), 0);
  /* Healed: holes again, the remapped unit still data. */
  remap_fault_clear_rules (f.fo);
  l = extents_of (f.e);
  ck_assert_uint_eq (l.n, 3);
  ck_assert_uint_eq (type_at (&l, 0), HZ);
  ck_assert_uint_eq (type_at (&l, 3 * UNIT), 0);
  ck_assert_uint_eq (type_at (&l, 4 * UNIT), HZ);
  fx_close (&f);
}

START_TEST (test_origin_extents_enotconn)
{
  origin_extents_fail (-ENOTCONN);
}
END_TEST

START_TEST (test_origin_extents_eio_is_no_verdict)
{
  origin_extents_fail (-EIO);
}
END_TEST

/* A read error in a read-only engine leaves the unit pending in memory. */
START_TEST (test_memory_pending_is_data)
{
  struct fx f;
  fx_open (&f, true, false);
  struct remap_fault_rule rule = { .off = 7 * UNIT, .len = UNIT,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (f.fo, &rule), 0);
  uint8_t buf[UNIT];
  ck_assert_int_eq (remap_pread (f.e, buf, UNIT, 7 * UNIT, NULL), -EIO);
  ck_assert_int_eq (remap_unit_pending (f.e, 7), 2);
  struct list l = extents_of (f.e);
  ck_assert_uint_eq (type_at (&l, 7 * UNIT), 0);
  ck_assert_uint_eq (type_at (&l, 7 * UNIT - 1), HZ);
  ck_assert_uint_eq (type_at (&l, 8 * UNIT), HZ);
  ck_assert_uint_eq (l.n, 3);
  fx_close (&f);
}
END_TEST

/* Every metadata write fails: the remap's commit has an unknown outcome
 * and the unit is in doubt: data (its bytes may be on the spare). */
START_TEST (test_doubt_is_data)
{
  struct fx f;
  fx_open (&f, false, true);
  struct remap_info info;
  remap_get_info (f.e, &info);
  const struct remap_layout *l = &info.layout;
  for (uint32_t i = 0; i < l->copies; i++) {
    struct remap_fault_rule rule = { .off = l->copy_offset[i] * UNIT,
                                     .len = l->copy_units * UNIT,
                                     .ops = REMAP_FAULT_WRITE, .err = -EIO };
    ck_assert_int_eq (remap_fault_add_rule (f.fs, &rule), 0);
  }
  ck_assert_int_ne (remap_remap (f.e, 11, 0, NULL), 0);
  ck_assert_uint_eq (tl_counters (f.e).doubt_units, 1);
  ck_assert_uint_eq (tl_lookup (f.e, 11).state, REMAP_SLOT_FREE);
  struct list ls = extents_of (f.e);
  ck_assert_uint_eq (type_at (&ls, 11 * UNIT), 0);
  ck_assert_uint_eq (type_at (&ls, 10 * UNIT), HZ);
  ck_assert_uint_eq (type_at (&ls, 12 * UNIT), HZ);
  remap_fault_clear_rules (f.fs);
  fx_close (&f);
}
END_TEST

/* The fault backend itself: pass-through, rules, held writes, crash. */
START_TEST (test_fault_backend_extents)
{
  struct remap_backend *m = tl_mem (DISK), *fb;
  ck_assert_int_eq (remap_fault_create (tl_share (m), true, &fb), 0);
  memset (remap_mem_data (m) + 2 * UNIT, 0x5a, 10);
  struct list l = { .n = 0 };
  ck_assert_int_eq (remap_backend_extents (fb, DISK, 0, collect, &l), 0);
  ck_assert_uint_eq (l.n, 3);
  ck_assert_uint_eq (type_at (&l, 2 * UNIT), 0);
  ck_assert_uint_eq (type_at (&l, 0), HZ);

  struct remap_fault_rule rule = { .off = 5 * UNIT, .len = 1,
                                   .ops = REMAP_FAULT_EXTENTS,
                                   .err = -ENOTCONN, .times = 1 };
  ck_assert_int_eq (remap_fault_add_rule (fb, &rule), 0);
  l.n = 0;
  ck_assert_int_eq (remap_backend_extents (fb, UNIT, 0, collect, &l), 0);
  l.n = 0;
  ck_assert_int_eq (remap_backend_extents (fb, DISK, 0, collect, &l),
                    -ENOTCONN);
  ck_assert_uint_eq (l.n, 0);
  remap_fault_clear_rules (fb);

  /* A held write over a hole: inner does not have it, so all is data. */
  remap_fault_set_volatile (fb, true);
  uint8_t buf[UNIT];
  memset (buf, 0x77, sizeof buf);
  ck_assert_int_eq (remap_backend_pwrite (fb, buf, UNIT, 9 * UNIT), 0);
  l.n = 0;
  ck_assert_int_eq (remap_backend_extents (fb, DISK, 0, collect, &l), 0);
  ck_assert_uint_eq (l.n, 1);
  ck_assert_uint_eq (l.type[0], 0);
  ck_assert_int_eq (remap_backend_flush (fb), 0);
  l.n = 0;
  ck_assert_int_eq (remap_backend_extents (fb, DISK, 0, collect, &l), 0);
  ck_assert_uint_eq (type_at (&l, 9 * UNIT), 0);
  ck_assert_uint_eq (type_at (&l, 8 * UNIT), HZ);
  remap_fault_crash_now (fb, REMAP_CRASH_DROP_ALL, 1);
  ck_assert_int_eq (remap_backend_extents (fb, DISK, 0, collect, &l), -EIO);
  remap_backend_close (fb);
  remap_backend_close (m);
}
END_TEST

/* ---- the race --------------------------------------------------------- */

#define MOVING 8u               /* units 0, 8, 16, ... move */
#define ROUNDS 300
#define MAX_SECONDS 40          /* under TSan 300 rounds take minutes */

struct race {
  struct remap_engine *e;
  struct remap_backend *origin_share;   /* pokes the origin under a mapping */
  atomic_bool stop;
  atomic_uint moves, scans;
  char failure[1024];
};

/* Unit u's bytes move: origin -> spare (remap), the origin is zeroed under
 * the mapping (a hole there now), then back (unmap copies the spare's bytes
 * to the origin).  What a client reads never changes: the pattern. */
static void *
mover (void *arg)
{
  struct race *r = arg;
  uint8_t zero[UNIT] = { 0 };
  time_t t0 = time (NULL);
  for (unsigned i = 0; i < ROUNDS && !r->failure[0]
       && time (NULL) - t0 < MAX_SECONDS; i++)
    for (uint64_t u = 0; u < UNITS; u += MOVING) {
      struct remap_error err = { 0 };
      if (remap_remap (r->e, u, 0, &err) != 0
          || remap_backend_pwrite (r->origin_share, zero, UNIT, u * UNIT) != 0
          || remap_unmap (r->e, u, 0, &err) != 0) {
        snprintf (r->failure, sizeof r->failure, "move of %llu: %s",
                  (unsigned long long) u, err.msg);
        break;
      }
      atomic_fetch_add (&r->moves, 1);
    }
  atomic_store (&r->stop, true);
  return NULL;
}

static void *
scanner (void *arg)
{
  struct race *r = arg;
  while (!atomic_load (&r->stop)) {
    struct list l = { .n = 0 };
    if (remap_extents (r->e, DISK, 0, collect, &l, NULL) != 0) {
      snprintf (r->failure, sizeof r->failure, "remap_extents failed");
      break;
    }
    for (uint64_t u = 0; u < UNITS; u += MOVING)
      if (type_at (&l, u * UNIT) != 0) {
        snprintf (r->failure, sizeof r->failure, "unit %llu reported as a "
                  "hole while its data was on the spare or the origin",
                  (unsigned long long) u);
        atomic_store (&r->stop, true);
        break;
      }
    atomic_fetch_add (&r->scans, 1);
  }
  return NULL;
}

/* Units 1..UNITS-1 are remapped over an all-zero origin (mem reports it
 * as a hole): their spare copies are zeroes, reported ZERO and
 * remembered.  A writer gives them data one after another, in writes of
 * one unit and of several (a batch of spare pieces); acked[u] is set once
 * unit u's write returned.  A scanner notes acked[] before each call:
 * every unit acked then must be data in the answer. */
struct zrace {
  struct remap_engine *e;
  atomic_bool stop;
  atomic_bool acked[UNITS];
  atomic_uint scans, stale_checks;
  char failure[1024];
};

static void *
zwriter (void *arg)
{
  struct zrace *r = arg;
  uint8_t buf[4 * UNIT];
  uint64_t s = 0x2ace;
  for (uint64_t u = 1; u < UNITS && !r->failure[0];) {
    uint64_t n = 1 + tl_below (&s, 4);
    if (u + n > UNITS)
      n = UNITS - u;
    tl_pattern (buf, n * UNIT, u);
    for (uint64_t i = 0; i < n * UNIT; i += UNIT)
      buf[i] |= 1;              /* no unit is left all zero */
    struct remap_error err = { 0 };
    if (remap_pwrite (r->e, buf, n * UNIT, u * UNIT, 0, &err) != 0) {
      snprintf (r->failure, sizeof r->failure, "write at %llu: %s",
                (unsigned long long) u, err.msg);
      break;
    }
    for (uint64_t i = 0; i < n; i++)
      atomic_store (&r->acked[u + i], true);
    u += n;
    struct timespec ts = { 0, 200000 };         /* let the scanners ask */
    nanosleep (&ts, NULL);
  }
  atomic_store (&r->stop, true);
  return NULL;
}

static void *
zscanner (void *arg)
{
  struct zrace *r = arg;
  while (!atomic_load (&r->stop)) {
    bool before[UNITS];
    for (unsigned u = 0; u < UNITS; u++)
      before[u] = atomic_load (&r->acked[u]);
    struct list l = { .n = 0 };
    if (remap_extents (r->e, DISK, 0, collect, &l, NULL) != 0) {
      snprintf (r->failure, sizeof r->failure, "remap_extents failed");
      break;
    }
    for (unsigned u = 1; u < UNITS; u++) {
      uint32_t t = type_at (&l, (uint64_t) u * UNIT);
      if (before[u] && t != 0) {
        snprintf (r->failure, sizeof r->failure, "unit %u reported as "
                  "type %u after its data was written", u, t);
        atomic_store (&r->stop, true);
        break;
      }
      if (before[u])
        atomic_fetch_add (&r->stale_checks, 1);
    }
    atomic_fetch_add (&r->scans, 1);
  }
  return NULL;
}

START_TEST (test_written_units_never_zero)
{
  struct remap_backend *om = tl_mem (DISK), *sm = tl_mem (1 * MiB);
  tl_format_ok (om, sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct zrace r = { .e = tl_open_ok (om, sm, NULL) };
  for (uint64_t u = 1; u < UNITS; u++)
    ck_assert_int_eq (remap_remap (r.e, u, 0, NULL), 0);
  struct list l = extents_of (r.e);
  ck_assert_uint_eq (type_at (&l, 5 * UNIT), REMAP_EXTENT_ZERO);
  pthread_t tw, ts[3];
  for (int i = 0; i < 3; i++)
    pthread_create (&ts[i], NULL, zscanner, &r);
  pthread_create (&tw, NULL, zwriter, &r);
  pthread_join (tw, NULL);
  for (int i = 0; i < 3; i++)
    pthread_join (ts[i], NULL);
  ck_assert_msg (!r.failure[0], "%s (after %u scans)", r.failure,
                 atomic_load (&r.scans));
  ck_assert_uint_gt (atomic_load (&r.stale_checks), 0);
  l = extents_of (r.e);
  for (uint64_t u = 1; u < UNITS; u++)
    ck_assert_uint_eq (type_at (&l, u * UNIT), 0);
  remap_close (r.e);
  remap_backend_close (om);
  remap_backend_close (sm);
}
END_TEST

START_TEST (test_moving_units_never_holes)
{
  struct remap_backend *om = tl_mem (DISK), *sm = tl_mem (1 * MiB);
  for (uint64_t u = 0; u < UNITS; u += MOVING)
    tl_pattern (remap_mem_data (om) + u * UNIT, UNIT, u + 1);
  tl_format_ok (om, sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct race r = { .origin_share = tl_share (om) };
  r.e = tl_open_ok (om, sm, NULL);
  pthread_t tm, ts[2];
  pthread_create (&tm, NULL, mover, &r);
  for (int i = 0; i < 2; i++)
    pthread_create (&ts[i], NULL, scanner, &r);
  pthread_join (tm, NULL);
  for (int i = 0; i < 2; i++)
    pthread_join (ts[i], NULL);
  ck_assert_msg (!r.failure[0], "%s (after %u moves, %u scans)", r.failure,
                 atomic_load (&r.moves), atomic_load (&r.scans));
  ck_assert_uint_gt (atomic_load (&r.scans), 0);
  /* And every moving unit still reads its pattern. */
  uint8_t want[UNIT], got[UNIT];
  for (uint64_t u = 0; u < UNITS; u += MOVING) {
    tl_pattern (want, UNIT, u + 1);
    ck_assert_int_eq (remap_pread (r.e, got, UNIT, u * UNIT, NULL), 0);
    ck_assert_msg (memcmp (want, got, UNIT) == 0, "unit %llu",
                   (unsigned long long) u);
  }
  remap_close (r.e);
  remap_backend_close (r.origin_share);
  remap_backend_close (om);
  remap_backend_close (sm);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("extents_faults");
  TCase *tc = tcase_create ("faults");
  tcase_add_test (tc, test_origin_extents_enotconn);
  tcase_add_test (tc, test_origin_extents_eio_is_no_verdict);
  tcase_add_test (tc, test_memory_pending_is_data);
  tcase_add_test (tc, test_doubt_is_data);
  tcase_add_test (tc, test_fault_backend_extents);
  suite_add_tcase (s, tc);
  TCase *tr = tcase_create ("race");
  tcase_set_timeout (tr, 600);
  tcase_add_test (tr, test_moving_units_never_holes);
  tcase_add_test (tr, test_written_units_never_zero);
  suite_add_tcase (s, tr);
  return tl_run (s);
}
