/* Two spare-retests and a remap, in the one order that used to lose data.
 *
 * Retest A holds the retest lock and is stopped (a gate backend holds its
 * test pattern write) at BAD spare unit s.  Retest B starts meanwhile and
 * waits for the lock.  A frees s and stops again at the next BAD unit s2;
 * while it is stopped, a remap takes s (the only free unit) and fills it
 * with its data.  When A is let go and B gets the lock, B must not write
 * its test pattern over s: it is no longer BAD.  Before the fix, B's list
 * of BAD units was taken before it waited for the lock, and it did.
 */
#include <check.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 64u
#define ORIGIN_SIZE (ORIGIN_UNITS * UNIT)
#define SPARE_SIZE (64 * KiB)

struct gate {
  struct remap_backend base;    /* first: the vtable base */
  struct remap_backend *inner;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint64_t off[2];              /* writes at these bytes wait ... */
  bool armed[2], arrived[2], released[2];  /* ... once each */
};

static int
gate_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  return remap_backend_pread (((struct gate *) b)->inner, buf, len, off);
}

static int
gate_pwrite (struct remap_backend *b, const void *buf, size_t len,
             uint64_t off)
{
  struct gate *g = (struct gate *) b;
  pthread_mutex_lock (&g->lock);
  for (int i = 0; i < 2; i++)
    if (g->armed[i] && off == g->off[i]) {
      g->armed[i] = false;
      g->arrived[i] = true;
      pthread_cond_broadcast (&g->cond);
      while (!g->released[i])
        pthread_cond_wait (&g->cond, &g->lock);
    }
  pthread_mutex_unlock (&g->lock);
  return remap_backend_pwrite (g->inner, buf, len, off);
}

static int
gate_flush (struct remap_backend *b)
{
  return remap_backend_flush (((struct gate *) b)->inner);
}

static void
gate_close (struct remap_backend *b)
{
  struct gate *g = (struct gate *) b;
  remap_backend_close (g->inner);
  pthread_mutex_destroy (&g->lock);
  pthread_cond_destroy (&g->cond);
  free (g);
}

static const struct remap_backend_ops gate_ops = {
  .kind = "gate", .pread = gate_pread, .pwrite = gate_pwrite,
  .flush = gate_flush, .close = gate_close,
};

/* Wait (bounded) until gate i was reached. */
static void
wait_arrived (struct gate *g, int i)
{
  struct timespec t;
  clock_gettime (CLOCK_REALTIME, &t);
  t.tv_sec += 60;
  pthread_mutex_lock (&g->lock);
  while (!g->arrived[i])
    if (pthread_cond_timedwait (&g->cond, &g->lock, &t) != 0)
      break;
  bool ok = g->arrived[i];
  pthread_mutex_unlock (&g->lock);
  ck_assert_msg (ok, "the retest never reached gate %d", i);
}

static void
release (struct gate *g, int i)
{
  pthread_mutex_lock (&g->lock);
  g->released[i] = true;
  pthread_cond_broadcast (&g->cond);
  pthread_mutex_unlock (&g->lock);
}

struct retester {
  struct remap_engine *e;
  uint64_t n;
  int r;
};

static void *
retest (void *arg)
{
  struct retester *x = arg;
  uint64_t cleared = 0;
  x->r = remap_spare_retest (x->e, 0, x->n, &cleared, NULL);
  return NULL;
}

START_TEST (test_retest_never_writes_a_freed_unit)
{
  struct remap_backend *om = tl_mem (ORIGIN_SIZE), *sm = tl_mem (SPARE_SIZE);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    tl_pattern (remap_mem_data (om) + u * UNIT, UNIT, u + 1);
  tl_format_ok (om, sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_layout l;
  ck_assert_int_eq (remap_layout_compute (SPARE_SIZE, UNIT,
                                          REMAP_STRATEGY_AUTO, 0, &l, NULL),
                    0);
  struct gate *g = calloc (1, sizeof *g);
  g->base.ops = &gate_ops;
  g->base.size = sm->size;
  g->base.align = 1;
  g->base.logical_block = 512;
  strcpy (g->base.name, "gate");
  g->inner = tl_share (sm);
  pthread_mutex_init (&g->lock, NULL);
  pthread_cond_init (&g->cond, NULL);
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_open (tl_share (om), &g->base, NULL, &e, &err), 0);

  /* Two BAD units s < s2, every other usable unit mapped. */
  uint64_t s = UINT64_MAX, s2 = UINT64_MAX, next = 0;
  for (uint64_t x = 0; x < l.spare_units; x++)
    if (!remap_layout_is_reserved (&l, x)) {
      if (s == UINT64_MAX)
        s = x;
      else if (s2 == UINT64_MAX)
        s2 = x;
    }
  ck_assert_uint_ne (s2, UINT64_MAX);
  ck_assert_int_eq (remap_mark_spare_bad (e, s, NULL), 0);
  ck_assert_int_eq (remap_mark_spare_bad (e, s2, NULL), 0);
  while (tl_counters (e).spare_free_units > 0)
    ck_assert_int_eq (remap_remap (e, next++, 0, NULL), 0);

  /* A stops at s, B waits for the lock. */
  g->off[0] = s * UNIT;
  g->off[1] = s2 * UNIT;
  g->armed[0] = g->armed[1] = true;
  struct retester a = { e, l.spare_units, 0 }, b = a;
  pthread_t ta, tb;
  ck_assert_int_eq (pthread_create (&ta, NULL, retest, &a), 0);
  wait_arrived (g, 0);
  ck_assert_int_eq (pthread_create (&tb, NULL, retest, &b), 0);
  usleep (200 * 1000);          /* let B reach the lock */

  /* A frees s and stops at s2; a remap takes s. */
  release (g, 0);
  wait_arrived (g, 1);
  uint64_t u = ORIGIN_UNITS - 1;
  ck_assert_int_eq (remap_remap (e, u, 0, &err), 0);
  ck_assert_uint_eq (tl_lookup (e, u).spare_unit, s);
  release (g, 1);
  pthread_join (ta, NULL);
  pthread_join (tb, NULL);
  ck_assert_int_eq (a.r, 0);
  ck_assert_int_eq (b.r, 0);

  uint8_t want[UNIT], got[UNIT];
  tl_pattern (want, UNIT, u + 1);
  ck_assert_int_eq (remap_pread (e, got, UNIT, u * UNIT, NULL), 0);
  ck_assert_msg (memcmp (got, want, UNIT) == 0, "unit %llu lost its data "
                 "to a retest's pattern", (unsigned long long) u);
  ck_assert_int_eq (remap_close (e), 0);
  e = tl_open_ok (om, sm, NULL);
  ck_assert_int_eq (remap_pread (e, got, UNIT, u * UNIT, NULL), 0);
  ck_assert (memcmp (got, want, UNIT) == 0);
  remap_close (e);
  remap_backend_close (om);
  remap_backend_close (sm);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("retest-race");
  TCase *tc = tcase_create ("race");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_retest_never_writes_a_freed_unit);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
