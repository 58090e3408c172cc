/* An import (remap_import_units, core/import.c) that runs while clients
 * write and read the same units, as an online `remapctl import --control'
 * does: no write may be lost to the import's copy of a unit, and readers
 * always see whole writes.  Run under TSan (scripts/sanitize.sh thread) it
 * also shows that import.c touches no engine state outside the engine's
 * own locked calls.
 *
 * Writers own disjoint units, so the last value each wrote is known; each
 * write fills a whole unit with one 8-byte tag repeated.  They write from
 * before the first import until every unit has been written twice more
 * after the last one, so the imports start while writes are in flight.  Readers check
 * that a unit never holds a mix of two tags.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "unit/testlib.h"

#include "remap/import.h"

#define U 4096u
#define UNITS 48u
#define WRITERS 3u

static struct remap_engine *e;
/* The tag of the last write to each unit that has returned. */
static _Atomic uint64_t last_tag[UNITS];
static atomic_bool stop_readers, stop_writers;
static atomic_uint writes_done;

static void
fill (uint8_t *buf, uint64_t tag)
{
  for (size_t i = 0; i < U; i += 8)
    memcpy (buf + i, &tag, 8);
}

static void *
writer (void *arg)
{
  unsigned w = (unsigned) (uintptr_t) arg;
  uint8_t *buf = malloc (U);

  ck_assert_ptr_nonnull (buf);
  /* Until told to stop: before, during and after the imports. */
  for (unsigned r = 0; !atomic_load (&stop_writers); r++)
    for (uint64_t u = w; u < UNITS; u += WRITERS) {
      uint64_t tag = (u << 32) | (r + 1);
      struct remap_error err = { 0 };
      fill (buf, tag);
      int rc = remap_pwrite (e, buf, U, u * U, 0, &err);
      REQ (rc == 0, "write unit %" PRIu64 ": %d %s", u, rc, err.msg);
      atomic_store (&last_tag[u], tag);   /* this writer alone owns u */
      atomic_fetch_add (&writes_done, 1);
    }
  free (buf);
  return NULL;
}

static void *
reader (void *arg)
{
  uint8_t *buf = malloc (U);
  uint64_t seed = (uintptr_t) arg;

  ck_assert_ptr_nonnull (buf);
  while (!atomic_load (&stop_readers)) {
    uint64_t u = tl_below (&seed, UNITS), first;
    uint64_t done = atomic_load (&last_tag[u]);
    struct remap_error err = { 0 };
    int rc = remap_pread (e, buf, U, u * U, &err);
    REQ (rc == 0, "read unit %" PRIu64 ": %d %s", u, rc, err.msg);
    memcpy (&first, buf, 8);
    for (size_t i = 8; i < U; i += 8)
      REQ (memcmp (buf + i, &first, 8) == 0, "unit %" PRIu64 " holds a torn "
           "write at byte %zu", u, i);
    /* Tags grow with each write: older data than a write that returned
     * before this read began is a lost write. */
    REQ (first >= done, "unit %" PRIu64 " went back from %" PRIx64 " to %"
         PRIx64 ": a write was lost", u, done, first);
  }
  free (buf);
  return NULL;
}

START_TEST (test_import_during_writes)
{
  struct remap_backend *o = tl_mem (4 * MiB), *s = tl_mem (2 * MiB);
  struct remap_open_opts oo = { .no_lock = true };
  pthread_t w[WRITERS], rd[2];
  uint8_t *buf = malloc (U);

  tl_format_ok (o, s, U, REMAP_STRATEGY_MINIMAL, 2);
  e = tl_open_ok (o, s, &oo);
  atomic_store (&stop_readers, false);
  atomic_store (&writes_done, 0);
  atomic_store (&stop_writers, false);
  for (uint64_t u = 0; u < UNITS; u++) {
    fill (buf, u << 32);
    ck_assert_int_eq (remap_pwrite (e, buf, U, u * U, 0, NULL), 0);
    atomic_store (&last_tag[u], u << 32);
  }
  for (unsigned i = 0; i < 2; i++)
    ck_assert_int_eq (pthread_create (&rd[i], NULL, reader,
                                      (void *) (uintptr_t) (i + 7)), 0);
  for (unsigned i = 0; i < WRITERS; i++)
    ck_assert_int_eq (pthread_create (&w[i], NULL, writer,
                                      (void *) (uintptr_t) i), 0);

  /* Two imports of overlapping lists, one remapping, one marking pending
   * (a no-op on units the first already remapped). */
  struct remap_unit_range a[] = { { 0, UNITS / 2 }, { UNITS - 4, UNITS - 1 } };
  struct remap_unit_range b[] = { { 0, UNITS - 1 } };
  struct remap_import_result res;
  struct remap_error err = { 0 };
  while (atomic_load (&writes_done) < UNITS)
    sched_yield ();             /* every writer is under way */
  unsigned before = atomic_load (&writes_done);
  ck_assert_msg (remap_import_units (e, a, 2, "race", 0, &res, &err) == 0,
                 "%s", err.msg);
  ck_assert_uint_gt (res.changed, 0);
  ck_assert_msg (remap_import_units (e, b, 1, "race", REMAP_IMPORT_PENDING,
                                     &res, &err) == 0, "%s", err.msg);

  /* Every unit is written again after the imports, then stop. */
  unsigned after = atomic_load (&writes_done);
  while (atomic_load (&writes_done) < after + 2 * UNITS)
    sched_yield ();
  atomic_store (&stop_writers, true);
  for (unsigned i = 0; i < WRITERS; i++)
    pthread_join (w[i], NULL);
  atomic_store (&stop_readers, true);
  ck_assert_uint_ge (before, UNITS);
  for (unsigned i = 0; i < 2; i++)
    pthread_join (rd[i], NULL);

  /* Every unit holds the last write made to it, remapped or not. */
  for (uint64_t u = 0; u < UNITS; u++) {
    uint64_t got, want = atomic_load (&last_tag[u]);
    ck_assert_int_eq (remap_pread (e, buf, U, u * U, NULL), 0);
    memcpy (&got, buf, 8);
    REQ (got == want, "unit %" PRIu64 ": %" PRIx64 " not the last "
         "write %" PRIx64, u, got, want);
    if (u <= UNITS / 2 || u >= UNITS - 4)
      REQ (tl_lookup (e, u).state == REMAP_SLOT_MAPPED, "unit %" PRIu64
           " not remapped", u);
  }
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (o);
  remap_backend_close (s);
  free (buf);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("import_race");
  TCase *tc = tcase_create ("race");
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_import_during_writes);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
