/* Readers against a table that keeps changing (issue 8, item 1).
 *
 * Reader threads read 1 MiB and 4 KiB ranges that span remapped and plain
 * units and check every byte; meanwhile writer threads remap units (the
 * table grows past several doublings of its index), unmap them again (with
 * the data copied back), mark units pending, rewrite them, and move units
 * whose spare unit is declared bad.  Every one of those operations keeps
 * the disk's content the same, so each read must return exactly the
 * pattern the origin was filled with: a read that walks a freed index,
 * finds the wrong slot or sees half of a move returns other bytes (or, under
 * ASan/TSan, is reported as it happens).
 *
 * A bulk thread meanwhile sends large requests that keep the content too:
 * zeroes and trims of ranges spanning several chunks inside the last
 * quarter of the disk (which holds zeroes; mem trims keep the data), and
 * writes of up to 2 MiB of the same bytes anywhere (batches of origin runs
 * and runs of mapped units).
 *
 * Duration: REMAP_STRESS_SECONDS (default 5; CI runs the sanitizer builds
 * with 60).  Seed: REMAP_SEED.  The test also requires that the writers
 * reached REMAP_STRESS_MIN_REMAPS (default 5000) mapped units at least
 * once, so that the growth points were really crossed.
 */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "../unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 12288u     /* 48 MiB */
#define READERS 4
#define ZERO_FROM 9216u         /* units from here on hold zeroes */

static uint8_t *truth;          /* the origin's bytes, never changed */
static atomic_bool stop;
static atomic_uint_fast64_t reads_done, ops_done, bad_reads;
static atomic_uint_fast64_t max_mapped;
static char first_bad[256];
static pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;

struct ctx {
  struct remap_engine *e;
  uint64_t seed;
};

static void report_bad (const char *fmt, ...)
  __attribute__ ((format (printf, 1, 2)));

static void
report_bad (const char *fmt, ...)
{
  va_list ap;
  pthread_mutex_lock (&bad_lock);
  if (first_bad[0] == 0) {
    va_start (ap, fmt);
    vsnprintf (first_bad, sizeof first_bad, fmt, ap);
    va_end (ap);
  }
  pthread_mutex_unlock (&bad_lock);
  atomic_fetch_add (&bad_reads, 1);
}

static void *
reader (void *arg)
{
  struct ctx *c = arg;
  uint64_t st = c->seed;
  uint8_t *buf = malloc (MiB);
  while (!atomic_load (&stop)) {
    size_t len = tl_below (&st, 4) == 0 ? MiB : 4 * KiB;
    /* Unaligned starts too: pieces of units on both sides. */
    uint64_t off = tl_below (&st, (uint64_t) ORIGIN_UNITS * UNIT - len);
    if (tl_below (&st, 2))
      off -= off % 512;
    struct remap_error err = { 0 };
    int r = remap_pread (c->e, buf, len, off, &err);
    if (r != 0)
      report_bad ("read at %llu failed: %d", (unsigned long long) off, r);
    else if (memcmp (buf, truth + off, len) != 0) {
      size_t i = 0;
      while (buf[i] == truth[off + i])
        i++;
      report_bad ("read returned wrong bytes at byte %llu (unit %llu)",
                  (unsigned long long) (off + i),
                  (unsigned long long) ((off + i) / UNIT));
    }
    atomic_fetch_add (&reads_done, 1);
  }
  free (buf);
  return NULL;
}

/* Grows the table: remaps units in a sweep, so that the number of mapped
 * units climbs through the index's doublings; when the sweep ends it
 * starts over (the unmapper has freed units behind it). */
static void *
remapper (void *arg)
{
  struct ctx *c = arg;
  uint64_t st = c->seed;
  uint64_t u = 0;
  while (!atomic_load (&stop)) {
    struct remap_error err = { 0 };
    int r = remap_remap (c->e, u, 0, &err);
    if (r != 0 && r != -ENOSPC)
      report_bad ("remap of unit %llu failed: %d", (unsigned long long) u, r);
    u = (u + 1 + tl_below (&st, 2)) % ORIGIN_UNITS;
    uint64_t m = tl_counters (c->e).reallocated_units;
    uint64_t old = atomic_load (&max_mapped);
    while (m > old && !atomic_compare_exchange_weak (&max_mapped, &old, m))
      ;
    atomic_fetch_add (&ops_done, 1);
  }
  return NULL;
}

/* Unmaps (copying back), marks pending, rewrites, declares spare units
 * bad: every change the table can undergo, none changing the content. */
static void *
churner (void *arg)
{
  struct ctx *c = arg;
  uint64_t st = c->seed;
  uint8_t *buf = malloc (UNIT);
  while (!atomic_load (&stop)) {
    struct remap_error err = { 0 };
    /* Let the table grow first; then shrink it at random. */
    bool shrink = atomic_load (&max_mapped) >= 6000;
    uint64_t u = tl_below (&st, ORIGIN_UNITS);
    struct remap_mapping m = tl_lookup (c->e, u);
    int r = 0;
    switch (tl_below (&st, 4)) {
    case 0:
      if (shrink && m.state == REMAP_SLOT_MAPPED)
        r = remap_unmap (c->e, u, 0, &err);
      break;
    case 1:
      if (m.state == REMAP_SLOT_FREE)
        r = remap_mark_pending (c->e, u, &err);
      break;
    case 2:                     /* rewrite the same bytes, maybe a piece */
      {
        uint64_t a = tl_below (&st, 8) * 512, b = a + 512 * (1 + tl_below (&st, 8 - a / 512));
        memcpy (buf, truth + u * UNIT + a, b - a);
        r = remap_pwrite (c->e, buf, b - a, u * UNIT + a,
                          tl_below (&st, 2) ? REMAP_FUA : 0, &err);
      }
      break;
    case 3:
      if (m.state == REMAP_SLOT_MAPPED && tl_below (&st, 64) == 0)
        r = remap_mark_spare_bad (c->e, m.spare_unit, &err);
      break;
    }
    if (r != 0 && r != -ENOSPC)
      report_bad ("change of unit %llu failed: %d", (unsigned long long) u, r);
    atomic_fetch_add (&ops_done, 1);
  }
  free (buf);
  return NULL;
}

/* Zeroes, trims and large writes that keep the content (see the top). */
static void *
bulk (void *arg)
{
  struct ctx *c = arg;
  uint64_t st = c->seed;
  uint8_t *buf = malloc (2 * MiB);
  while (!atomic_load (&stop)) {
    struct remap_error err = { 0 };
    uint64_t zbase = (uint64_t) ZERO_FROM * UNIT;
    uint64_t zsize = (uint64_t) (ORIGIN_UNITS - ZERO_FROM) * UNIT;
    uint64_t len = 1 + tl_below (&st, 10 * MiB), off;
    unsigned what = (unsigned) tl_below (&st, 3);
    unsigned flags = tl_below (&st, 4) ? 0 : REMAP_FUA;
    int r;
    if (what < 2) {
      len = len < zsize ? len : zsize;
      off = zbase + tl_below (&st, zsize - len + 1);
      r = what ? remap_trim (c->e, len, off, flags, &err)
        : remap_zero (c->e, len, off,
                      flags | (tl_below (&st, 2) ? REMAP_MAY_TRIM : 0), &err);
    }
    else {
      len = 1 + tl_below (&st, 2 * MiB);
      off = tl_below (&st, (uint64_t) ORIGIN_UNITS * UNIT - len + 1);
      memcpy (buf, truth + off, len);
      r = remap_pwrite (c->e, buf, len, off, flags, &err);
    }
    if (r != 0 && r != -ENOSPC)
      report_bad ("%s of %llu bytes at %llu failed: %d (%s)",
                  what == 0 ? "zero" : what == 1 ? "trim" : "write",
                  (unsigned long long) len, (unsigned long long) off, r,
                  err.msg);
    atomic_fetch_add (&ops_done, 1);
  }
  free (buf);
  return NULL;
}

START_TEST (test_readers_vs_table_changes)
{
  bool seeded;
  uint64_t seed = tl_env_u64 ("REMAP_SEED", (uint64_t) time (NULL), &seeded);
  uint64_t seconds = tl_env_u64 ("REMAP_STRESS_SECONDS", 5, NULL);
  uint64_t min_remaps = tl_env_u64 ("REMAP_STRESS_MIN_REMAPS", 5000, NULL);
  fprintf (stderr, "stress: seed %llu, %llu s (REMAP_SEED, "
           "REMAP_STRESS_SECONDS)\n", (unsigned long long) seed,
           (unsigned long long) seconds);

  uint64_t osize = (uint64_t) ORIGIN_UNITS * UNIT;
  struct remap_backend *om = tl_mem (osize), *sm = tl_mem (64 * MiB);
  truth = malloc (osize);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    if (u < ZERO_FROM)
      tl_pattern (truth + u * UNIT, UNIT, u + 1);
    else
      memset (truth + u * UNIT, 0, UNIT);
  memcpy (remap_mem_data (om), truth, osize);
  tl_format_ok (om, sm, UNIT, REMAP_STRATEGY_GEOMETRIC, 4);
  struct remap_engine *e = tl_open_ok (om, sm, NULL);

  atomic_store (&stop, false);
  struct ctx ctx[READERS + 3];
  pthread_t th[READERS + 3];
  for (int i = 0; i < READERS + 3; i++) {
    ctx[i] = (struct ctx) { e, seed * 31 + (uint64_t) i };
    void *(*fn) (void *) = i < READERS ? reader
      : i == READERS ? remapper : i == READERS + 1 ? churner : bulk;
    ck_assert_int_eq (pthread_create (&th[i], NULL, fn, &ctx[i]), 0);
  }
  /* Run for the time given, and at least until the growth points were
   * crossed (bounded: a slow sanitizer build gets 10 times longer). */
  time_t t0 = time (NULL);
  while (!atomic_load (&stop)) {
    sleep (1);
    uint64_t el = (uint64_t) (time (NULL) - t0);
    if (atomic_load (&bad_reads)
        || (el >= seconds && atomic_load (&max_mapped) >= min_remaps)
        || el >= 10 * seconds + 60)
      atomic_store (&stop, true);
  }
  for (int i = 0; i < READERS + 3; i++)
    pthread_join (th[i], NULL);

  fprintf (stderr, "stress: %llu reads, %llu table changes, peak %llu "
           "remapped units\n", (unsigned long long) atomic_load (&reads_done),
           (unsigned long long) atomic_load (&ops_done),
           (unsigned long long) atomic_load (&max_mapped));
  ck_assert_msg (atomic_load (&bad_reads) == 0, "%llu bad results; first: %s",
                 (unsigned long long) atomic_load (&bad_reads), first_bad);
  ck_assert_msg (atomic_load (&max_mapped) >= min_remaps,
                 "only %llu remapped units at the peak (wanted %llu)",
                 (unsigned long long) atomic_load (&max_mapped),
                 (unsigned long long) min_remaps);

  /* The same content after a restart. */
  ck_assert_int_eq (remap_close (e), 0);
  e = tl_open_ok (om, sm, NULL);
  uint8_t *buf = malloc (MiB);
  for (uint64_t off = 0; off < osize; off += MiB) {
    ck_assert_int_eq (remap_pread (e, buf, MiB, off, NULL), 0);
    ck_assert_msg (memcmp (buf, truth + off, MiB) == 0,
                   "after reopen: wrong bytes in MiB %llu",
                   (unsigned long long) (off / MiB));
  }
  free (buf);
  remap_close (e);
  remap_backend_close (om);
  remap_backend_close (sm);
  free (truth);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("stress");
  TCase *tc = tcase_create ("readers");
  tcase_set_timeout (tc, 0);
  tcase_add_test (tc, test_readers_vs_table_changes);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
