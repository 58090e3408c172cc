/* Adversary of the remembered zero answers of block status (core/extents.c,
 * e->zc; issue 12).
 *
 * extents.c remembers that a spare unit reads as zeroes for as long as the
 * spare backend's change count (remap_backend_writes) has not moved.  The
 * claim under attack: block status never reports ZERO for bytes that a
 * read would not return as zeroes.  The count moves for every write the
 * engine issues; these tests change what a read of the spare returns
 * without the engine writing anything:
 *
 *   - the spare unit starts failing reads (a media error appears; here a
 *     fault rule): before the answers were remembered, block status read
 *     the unit, failed, and said data; a remembered ZERO hides a unit that
 *     no longer reads;
 *   - a spare flush fails: the writes it should have made durable may be
 *     gone (docs/ERRORS.md, "Flush failures": Linux marks the failed pages
 *     clean, and once evicted they read back as what the disk held before).
 *     The test plays the lost write by putting the old bytes back under the
 *     failed flush;
 *   - race (run under TSan and ASan): writers that zero their units, write
 *     data over them, and unmap and remap them (spare units handed from one
 *     unit to another) against scanners; a unit that held data for the
 *     whole of a call must be data in its answer, and the remembered
 *     answers must have been used (not a test that cannot fail).
 *
 * The NBD spare that reconnects to a server that lost writes is in
 * test_advzc_nbd.c (it needs nbdkit).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit/testlib.h"

#define UNIT 4096u
#define UNITS 64u
#define DISK ((uint64_t) UNITS * UNIT)
#define HZ (REMAP_EXTENT_HOLE | REMAP_EXTENT_ZERO)

/* Reported as reading zeroes (ZERO, with HOLE or without: a zero spare
 * copy over a hole is ZERO or keeps the hole's type, as extents.c has
 * it). */
static bool
zero_typed (uint32_t t)
{
  return (t & REMAP_EXTENT_ZERO) != 0;
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
  if (l->n == 256)
    return -1;                  /* more extents than this test makes */
  l->off[l->n] = off;
  l->len[l->n] = len;
  l->type[l->n++] = type;
  return 0;
}

/* The type reported for byte b, or UINT32_MAX if the list lacks it. */
static uint32_t
type_at (const struct list *l, uint64_t b)
{
  for (size_t i = 0; i < l->n; i++)
    if (b >= l->off[i] && b < l->off[i] + l->len[i])
      return l->type[i];
  return UINT32_MAX;
}

static uint32_t
type_of_unit (struct remap_engine *e, uint64_t u)
{
  struct list l = { .n = 0 };
  struct remap_error err = { 0 };
  int r = remap_extents (e, DISK, 0, collect, &l, &err);
  ck_assert_msg (r == 0, "remap_extents: %d %s", r, err.msg);
  uint32_t t = type_at (&l, u * UNIT);
  ck_assert_msg (t != UINT32_MAX, "unit %llu not reported",
                 (unsigned long long) u);
  return t;
}

static bool
all_zero (const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* An engine over an all-zero mem origin (a hole: mem reports zero grains
 * as HOLE|ZERO) and a fault backend over a mem spare, which the test keeps
 * (sm) to poke its bytes. */
struct fx {
  struct remap_backend *om, *sm, *fs;
  struct remap_engine *e;
};

static void
fx_open (struct fx *f)
{
  struct remap_error err = { 0 };
  f->om = tl_mem (DISK);
  f->sm = tl_mem (1 * MiB);
  tl_format_ok (f->om, f->sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_fault_create (tl_share (f->sm), true, &f->fs), 0);
  int r = remap_open (tl_share (f->om), f->fs, NULL, &f->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
}

static void
fx_close (struct fx *f)
{
  remap_close (f->e);
  remap_backend_close (f->om);
  remap_backend_close (f->sm);
}

/* Unit u remapped over the origin's hole: its spare copy is zeroes, block
 * status says so and remembers it (asked twice).  Its spare unit. */
static uint64_t
zero_unit_remembered (struct fx *f, uint64_t u)
{
  ck_assert_int_eq (remap_remap (f->e, u, 0, NULL), 0);
  ck_assert (zero_typed (type_of_unit (f->e, u)));
  ck_assert (zero_typed (type_of_unit (f->e, u)));
  struct remap_mapping m;
  ck_assert_int_eq (remap_lookup (f->e, u, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  return m.spare_unit;
}

/* ---- the spare's bytes change with no write ------------------------- */

/* Unit 5's spare unit starts failing reads after block status called it
 * ZERO.  A read of unit 5 fails; block status must not go on calling it
 * zeroes (extents.c: "a spare read that fails makes it data"). */
START_TEST (test_read_error_forgets_zero)
{
  struct fx f;
  fx_open (&f);
  uint64_t s = zero_unit_remembered (&f, 5);
  struct remap_fault_rule rule = { .off = s * UNIT, .len = UNIT,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (f.fs, &rule), 0);
  uint8_t buf[UNIT];
  ck_assert_int_eq (remap_pread (f.e, buf, UNIT, 5 * UNIT, NULL), -EIO);
  ck_assert_msg (type_of_unit (f.e, 5) == 0, "unit 5 reads as an error, "
                 "but block status still calls it ZERO (type %u): a copy "
                 "would skip it and report success",
                 type_of_unit (f.e, 5));
  /* Readable again: zeroes again. */
  remap_fault_clear_rules (f.fs);
  ck_assert_int_eq (remap_pread (f.e, buf, UNIT, 5 * UNIT, NULL), 0);
  ck_assert (all_zero (buf, UNIT));
  ck_assert (zero_typed (type_of_unit (f.e, 5)));
  ck_assert_uint_eq (type_of_unit (f.e, 4), HZ);
  fx_close (&f);
}
END_TEST

/* The same through a read of several units: a piece over two consecutive
 * spare units (20, 21) fails as a whole, and is read again unit by unit;
 * only unit 20's spare unit fails.  21 is still zeroes (read again). */
START_TEST (test_batch_read_error_forgets_zero)
{
  struct fx f;
  fx_open (&f);
  uint64_t s = zero_unit_remembered (&f, 20);
  (void) zero_unit_remembered (&f, 21);
  (void) zero_unit_remembered (&f, 23);
  struct remap_fault_rule rule = { .off = s * UNIT, .len = UNIT,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (f.fs, &rule), 0);
  uint8_t buf[4 * UNIT];
  ck_assert_int_eq (remap_pread (f.e, buf, sizeof buf, 20 * UNIT, NULL),
                    -EIO);
  ck_assert_uint_eq (type_of_unit (f.e, 20), 0);
  ck_assert (zero_typed (type_of_unit (f.e, 21)));
  fx_close (&f);
}
END_TEST

/* Unit 7 holds data D, durable.  A client zeroes it (no FUA): the spare
 * unit holds zeroes, block status says ZERO.  Then the spare's flush
 * fails: the zeroes may never reach the disk, and the disk still holds D
 * (played by putting D back).  A read returns D; block status must not
 * say ZERO. */
START_TEST (test_failed_flush_forgets_zero)
{
  struct fx f;
  fx_open (&f);
  ck_assert_int_eq (remap_remap (f.e, 7, 0, NULL), 0);
  uint8_t d[UNIT], got[UNIT];
  tl_pattern (d, UNIT, 7);
  ck_assert_int_eq (remap_pwrite (f.e, d, UNIT, 7 * UNIT, REMAP_FUA, NULL),
                    0);
  ck_assert_uint_eq (type_of_unit (f.e, 7), 0);
  ck_assert_int_eq (remap_zero (f.e, UNIT, 7 * UNIT, 0, NULL), 0);
  ck_assert (zero_typed (type_of_unit (f.e, 7)));
  ck_assert (zero_typed (type_of_unit (f.e, 7)));

  struct remap_fault_rule rule = { .ops = REMAP_FAULT_FLUSH, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (f.fs, &rule), 0);
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_flush (f.e, &err), -EIO);
  struct remap_mapping m;
  ck_assert_int_eq (remap_lookup (f.e, 7, &m), 0);
  memcpy (remap_mem_data (f.sm) + m.spare_unit * UNIT, d, UNIT);

  ck_assert_int_eq (remap_pread (f.e, got, UNIT, 7 * UNIT, NULL), 0);
  ck_assert (memcmp (got, d, UNIT) == 0);
  ck_assert_msg (type_of_unit (f.e, 7) == 0, "unit 7 reads as data after "
                 "the failed flush, but block status still calls it ZERO");
  fx_close (&f);
}
END_TEST

/* ---- slot collisions ------------------------------------------------ */

/* The table of answers is direct-mapped: spare units s and s + 4096 share
 * an entry.  Unit a (zeroes) and unit b (data) over holes, on two such
 * spare units, asked in one call and again with no write in between: the
 * entry that a's answer filled must not answer for b. */
START_TEST (test_colliding_spare_units)
{
  const uint32_t unit = 512;
  const uint64_t units = 8192, disk = units * unit;
  struct remap_backend *om = tl_mem (disk), *sm = tl_mem (4 * MiB);
  tl_format_ok (om, sm, unit, REMAP_STRATEGY_AUTO, 0);
  struct remap_engine *e = tl_open_ok (om, sm, NULL);
  struct remap_mapping ma, mb = { 0 };
  ck_assert_int_eq (remap_remap (e, 1, 0, NULL), 0);
  ck_assert_int_eq (remap_lookup (e, 1, &ma), 0);
  uint64_t b = 2;
  for (; b < units; b++) {
    ck_assert_int_eq (remap_remap (e, b, 0, NULL), 0);
    ck_assert_int_eq (remap_lookup (e, b, &mb), 0);
    if (mb.spare_unit == ma.spare_unit + 4096)
      break;
  }
  ck_assert_msg (b < units, "no unit got spare unit %llu",
                 (unsigned long long) ma.spare_unit + 4096);
  uint8_t d[512];
  tl_pattern (d, sizeof d, b);
  ck_assert_int_eq (remap_pwrite (e, d, unit, b * unit, 0, NULL), 0);
  for (int round = 0; round < 3; round++) {
    struct list l = { .n = 0 };
    ck_assert_int_eq (remap_extents (e, 4 * unit, 0, collect, &l, NULL), 0);
    ck_assert (zero_typed (type_at (&l, 1 * unit)));
    l.n = 0;
    ck_assert_int_eq (remap_extents (e, unit, b * unit, collect, &l, NULL),
                      0);
    ck_assert_msg (type_at (&l, b * unit) == 0, "round %d: unit %llu (data, "
                   "spare unit %llu) answered from the entry of spare unit "
                   "%llu", round, (unsigned long long) b,
                   (unsigned long long) mb.spare_unit,
                   (unsigned long long) ma.spare_unit);
  }
  remap_close (e);
  remap_backend_close (om);
  remap_backend_close (sm);
}
END_TEST

/* ---- the race --------------------------------------------------------- */

#define WRITERS 3u
#define BLOCK 4u                /* units per writer block */
#define FIRST 1u                /* unit 0 stays on the origin */
#define NBLOCKS ((UNITS - FIRST) / BLOCK)

/* Per unit: seq is raised before anything may make the unit read as
 * zeroes (zero, unmap, remap over the hole); data is set once a write of
 * non-zero bytes was acknowledged after the last such change.  A scanner
 * reads seq, then data, before a call, and seq after it: data set and seq
 * unmoved means the unit held non-zero bytes for the whole call (see
 * zscan), so it must be data in the answer. */
struct zrace {
  struct remap_engine *e;
  atomic_bool stop;
  atomic_uint_fast64_t seq[UNITS];
  atomic_bool data[UNITS];
  atomic_uint scans, held_checks, zero_answers, ops;
  char failure[1024];
  pthread_mutex_t fail_lock;
  uint64_t deadline;            /* CLOCK_MONOTONIC seconds */
};

static uint64_t
now_s (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return (uint64_t) t.tv_sec;
}

static void
zfail (struct zrace *r, const char *what, uint64_t u, const char *msg)
{
  pthread_mutex_lock (&r->fail_lock);
  if (!r->failure[0])
    snprintf (r->failure, sizeof r->failure, "%s, unit %llu: %s", what,
              (unsigned long long) u, msg);
  pthread_mutex_unlock (&r->fail_lock);
  atomic_store (&r->stop, true);
}

/* Units [u, u+n) may read as zeroes from now on. */
static void
may_zero (struct zrace *r, uint64_t u, uint64_t n)
{
  for (uint64_t i = u; i < u + n; i++) {
    atomic_store (&r->data[i], false);
    atomic_fetch_add (&r->seq[i], 1);
  }
}

struct zwriter_arg {
  struct zrace *r;
  unsigned id;
};

static void *
zwriter (void *arg)
{
  struct zwriter_arg *a = arg;
  struct zrace *r = a->r;
  uint64_t s = 0x2ace0000u + a->id;
  uint8_t buf[BLOCK * UNIT];
  while (!atomic_load (&r->stop) && now_s () < r->deadline) {
    /* A block of this writer's, and a unit or the whole block of it. */
    uint64_t b = a->id + WRITERS * tl_below (&s, NBLOCKS / WRITERS);
    uint64_t u = FIRST + b * BLOCK, n = BLOCK;
    if (tl_below (&s, 2)) {
      u += tl_below (&s, BLOCK);
      n = 1;
    }
    struct remap_error err = { 0 };
    int rc = 0;
    switch (tl_below (&s, 4)) {
    case 0:                     /* zeroes, by ZERO or by writing them */
      may_zero (r, u, n);
      if (tl_below (&s, 2))
        rc = remap_zero (r->e, n * UNIT, u * UNIT, 0, &err);
      else {
        memset (buf, 0, n * UNIT);
        rc = remap_pwrite (r->e, buf, n * UNIT, u * UNIT, 0, &err);
      }
      break;
    case 1:                     /* the unit leaves the spare and comes back:
                                   its old spare unit goes to whoever
                                   remaps next */
      may_zero (r, u, 1);
      rc = remap_unmap (r->e, u, REMAP_UNMAP_DISCARD, &err);
      if (rc == 0)              /* the origin under it was never written */
        rc = remap_remap (r->e, u, 0, &err);
      n = 1;
      break;
    default:                    /* data, no unit all zero */
      tl_pattern (buf, n * UNIT, tl_rand (&s));
      for (uint64_t i = 0; i < n; i++)
        buf[i * UNIT + tl_below (&s, UNIT)] |= 1;
      rc = remap_pwrite (r->e, buf, n * UNIT, u * UNIT, 0, &err);
      if (rc == 0)
        for (uint64_t i = u; i < u + n; i++)
          atomic_store (&r->data[i], true);
      break;
    }
    if (rc) {
      zfail (r, "writer", u, err.msg);
      break;
    }
    atomic_fetch_add (&r->ops, 1);
  }
  return NULL;
}

static void *
zscanner (void *arg)
{
  struct zrace *r = arg;
  while (!atomic_load (&r->stop) && now_s () < r->deadline) {
    uint64_t seq0[UNITS];
    bool held[UNITS];
    for (unsigned u = 0; u < UNITS; u++) {
      seq0[u] = atomic_load (&r->seq[u]);
      held[u] = atomic_load (&r->data[u]);
    }
    struct list l = { .n = 0 };
    if (remap_extents (r->e, DISK, 0, collect, &l, NULL) != 0) {
      zfail (r, "scanner", 0, "remap_extents failed");
      break;
    }
    for (unsigned u = FIRST; u < UNITS; u++) {
      uint32_t t = type_at (&l, (uint64_t) u * UNIT);
      if (t == UINT32_MAX) {
        zfail (r, "scanner", u, "not reported");
        break;
      }
      if (t & REMAP_EXTENT_ZERO)
        atomic_fetch_add (&r->zero_answers, 1);
      if (!held[u] || atomic_load (&r->seq[u]) != seq0[u])
        continue;
      atomic_fetch_add (&r->held_checks, 1);
      if (t != 0) {
        char msg[128];
        snprintf (msg, sizeof msg, "held data for the whole call, reported "
                  "as type %u", t);
        zfail (r, "scanner", u, msg);
        break;
      }
    }
    atomic_fetch_add (&r->scans, 1);
  }
  return NULL;
}

START_TEST (test_zero_answers_race)
{
  uint64_t seconds = tl_env_u64 ("REMAP_STRESS_SECONDS", 5, NULL);
  struct remap_backend *om = tl_mem (DISK), *sm = tl_mem (1 * MiB);
  tl_format_ok (om, sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  static struct zrace r;
  memset (&r, 0, sizeof r);
  pthread_mutex_init (&r.fail_lock, NULL);
  r.e = tl_open_ok (om, sm, NULL);
  for (uint64_t u = FIRST; u < UNITS; u++)
    ck_assert_int_eq (remap_remap (r.e, u, 0, NULL), 0);
  ck_assert (zero_typed (type_of_unit (r.e, 9)));
  r.deadline = now_s () + seconds;
  pthread_t tw[WRITERS], ts[2];
  struct zwriter_arg wa[WRITERS];
  for (unsigned i = 0; i < 2; i++)
    pthread_create (&ts[i], NULL, zscanner, &r);
  for (unsigned i = 0; i < WRITERS; i++) {
    wa[i] = (struct zwriter_arg) { &r, i };
    pthread_create (&tw[i], NULL, zwriter, &wa[i]);
  }
  for (unsigned i = 0; i < WRITERS; i++)
    pthread_join (tw[i], NULL);
  atomic_store (&r.stop, true);
  for (unsigned i = 0; i < 2; i++)
    pthread_join (ts[i], NULL);
  fprintf (stderr, "test_zero_answers_race: %u writer ops, %u scans, %u "
           "checks of units that held data, %u ZERO answers\n",
           atomic_load (&r.ops), atomic_load (&r.scans),
           atomic_load (&r.held_checks), atomic_load (&r.zero_answers));
  ck_assert_msg (!r.failure[0], "%s (after %u scans)", r.failure,
                 atomic_load (&r.scans));
  ck_assert_uint_gt (atomic_load (&r.held_checks), 0);
  ck_assert_uint_gt (atomic_load (&r.zero_answers), 0);
  /* Quiet now: every unit's answer agrees with what it reads. */
  struct list l = { .n = 0 };
  ck_assert_int_eq (remap_extents (r.e, DISK, 0, collect, &l, NULL), 0);
  for (uint64_t u = 0; u < UNITS; u++) {
    uint8_t buf[UNIT];
    ck_assert_int_eq (remap_pread (r.e, buf, UNIT, u * UNIT, NULL), 0);
    uint32_t t = type_at (&l, u * UNIT);
    REQ (t == 0 || all_zero (buf, UNIT), "unit %llu: type %u, data not "
         "zero", (unsigned long long) u, t);
  }
  remap_close (r.e);
  remap_backend_close (om);
  remap_backend_close (sm);
  pthread_mutex_destroy (&r.fail_lock);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("advzc");
  TCase *tc = tcase_create ("no_write");
  tcase_add_test (tc, test_read_error_forgets_zero);
  tcase_add_test (tc, test_batch_read_error_forgets_zero);
  tcase_add_test (tc, test_failed_flush_forgets_zero);
  tcase_add_test (tc, test_colliding_spare_units);
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  TCase *tr = tcase_create ("race");
  tcase_set_timeout (tr, 600);
  tcase_add_test (tr, test_zero_answers_race);
  suite_add_tcase (s, tr);
  return tl_run (s);
}
