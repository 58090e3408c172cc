/* The lock-free fast path (core/datapath.c, fast_ok): with nothing
 * remapped, requests go to the origin without stripe locks.  A placement
 * change that overlaps such a request must send it again through the
 * locked path.  A gate backend holds a write to the origin in flight while
 * the unit is remapped; when the write is let go, the acknowledged data
 * must end up where the table says the unit lives.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "remap/remap.h"
#include "../unit/testlib.h"

#define UNIT 4096u

struct gate {
  struct remap_backend base;    /* first: the vtable base */
  struct remap_backend *inner;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint64_t off;                 /* writes touching this byte are held */
  bool armed, arrived, released;
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
  if (g->armed && off <= g->off && g->off < off + len) {
    g->armed = false;
    g->arrived = true;
    pthread_cond_broadcast (&g->cond);
    while (!g->released)
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

static struct gate *
gate_new (struct remap_backend *inner)
{
  struct gate *g = calloc (1, sizeof *g);
  g->base.ops = &gate_ops;
  g->base.size = inner->size;
  g->base.align = 1;
  g->base.logical_block = 512;
  strcpy (g->base.name, "gate");
  g->inner = inner;
  pthread_mutex_init (&g->lock, NULL);
  pthread_cond_init (&g->cond, NULL);
  return g;
}

struct writer {
  struct remap_engine *e;
  uint64_t off;
  uint8_t data[UNIT];
  int r;
};

static void *
write_thread (void *p)
{
  struct writer *w = p;
  w->r = remap_pwrite (w->e, w->data, UNIT, w->off, 0, NULL);
  return NULL;
}

/* An acknowledged write that raced with the remap of its unit. */
START_TEST (test_write_races_remap)
{
  struct remap_backend *omem = tl_mem (4u << 20), *smem = tl_mem (1u << 20);
  uint64_t seed = 3;
  tl_random_bytes (&seed, remap_mem_data (omem), 4u << 20);
  tl_format_ok (omem, smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct gate *g = gate_new (tl_share (omem));
  struct remap_engine *e;
  ck_assert_int_eq (remap_open (&g->base, tl_share (smem),
                                &(struct remap_open_opts) { .no_lock = true },
                                &e, NULL), 0);
  uint64_t u = 77;
  struct writer w = { .e = e, .off = u * UNIT };
  tl_pattern (w.data, UNIT, 0xfeed);

  g->off = u * UNIT;
  g->armed = true;
  pthread_t t;
  pthread_create (&t, NULL, write_thread, &w);
  pthread_mutex_lock (&g->lock);
  while (!g->arrived)
    pthread_cond_wait (&g->cond, &g->lock);
  pthread_mutex_unlock (&g->lock);

  /* The write is in flight on the fast path: remap its unit now.  The
   * remap copies the origin's old bytes to the spare. */
  ck_assert_int_eq (remap_remap (e, u, 0, NULL), 0);
  ck_assert_int_eq (tl_lookup (e, u).state, REMAP_SLOT_MAPPED);

  pthread_mutex_lock (&g->lock);
  g->released = true;
  pthread_cond_broadcast (&g->cond);
  pthread_mutex_unlock (&g->lock);
  pthread_join (t, NULL);
  ck_assert_int_eq (w.r, 0);

  uint8_t buf[UNIT];
  ck_assert_int_eq (remap_pread (e, buf, UNIT, u * UNIT, NULL), 0);
  ck_assert_msg (memcmp (buf, w.data, UNIT) == 0,
                 "an acknowledged write that raced with the remap of its "
                 "unit is not what the unit reads");
  remap_close (e);
  /* And after a reopen. */
  e = tl_open_ok (omem, smem, NULL);
  ck_assert_int_eq (remap_pread (e, buf, UNIT, u * UNIT, NULL), 0);
  ck_assert (memcmp (buf, w.data, UNIT) == 0);
  remap_close (e);
  remap_backend_close (omem);
  remap_backend_close (smem);
}
END_TEST

/* The fast path must not be taken while anything is remapped: a write to a
 * remapped unit goes to the spare even though the table is tiny. */
START_TEST (test_no_fast_path_with_remaps)
{
  struct remap_backend *omem = tl_mem (4u << 20), *smem = tl_mem (1u << 20);
  tl_format_ok (omem, smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_engine *e = tl_open_ok (omem, smem, NULL);
  ck_assert_int_eq (remap_remap (e, 5, 0, NULL), 0);
  uint8_t data[UNIT], before[UNIT];
  memcpy (before, remap_mem_data (omem) + 5 * UNIT, UNIT);
  tl_pattern (data, UNIT, 0xab);
  ck_assert_int_eq (remap_pwrite (e, data, UNIT, 5 * UNIT, 0, NULL), 0);
  ck_assert (memcmp (remap_mem_data (omem) + 5 * UNIT, before, UNIT) == 0);
  remap_close (e);
  remap_backend_close (omem);
  remap_backend_close (smem);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("fastpath");
  TCase *tc = tcase_create ("race");
  tcase_add_test (tc, test_write_races_remap);
  tcase_add_test (tc, test_no_fast_path_with_remaps);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
