/* Commits whose outcome is unknown (issue 8, item 2).
 *
 * A "liar" backend performs the metadata writes it is given and then
 * reports them failed (or reports the flush after them failed): the engine
 * believes the commit did not happen, but the disk holds it.  The spare
 * unit that commit named must never be given to another unit, or after a
 * restart the first unit reads the second one's bytes.  The test then
 * drives the allocator's cursor around the whole spare, many times, with
 * every later commit failing (all copies retired), restarts, and checks
 * that every unit reads its own bytes.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 1024u

enum lie { LIE_NONE, LIE_WRITE, LIE_FLUSH };

struct liar {
  struct remap_backend base;    /* first: the vtable base */
  struct remap_backend *inner;
  const struct remap_layout *l;
  enum lie lie;
  bool meta_written;            /* a metadata write since the last flush */
  unsigned lies;
};

static bool
in_meta (const struct remap_layout *l, uint64_t off, size_t len)
{
  for (uint64_t u = off / UNIT; u <= (off + len - 1) / UNIT; u++)
    if (remap_layout_is_reserved (l, u))
      return true;
  return false;
}

static int
liar_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  return remap_backend_pread (((struct liar *) b)->inner, buf, len, off);
}

static int
liar_pwrite (struct remap_backend *b, const void *buf, size_t len,
             uint64_t off)
{
  struct liar *x = (struct liar *) b;
  int r = remap_backend_pwrite (x->inner, buf, len, off);
  if (r == 0 && in_meta (x->l, off, len)) {
    x->meta_written = true;
    if (x->lie == LIE_WRITE) {
      x->lies++;
      return -EIO;              /* it is on the disk all the same */
    }
  }
  return r;
}

static int
liar_flush (struct remap_backend *b)
{
  struct liar *x = (struct liar *) b;
  int r = remap_backend_flush (x->inner);
  bool meta = x->meta_written;
  x->meta_written = false;
  if (r == 0 && meta && x->lie == LIE_FLUSH) {
    x->lies++;
    return -EIO;
  }
  return r;
}

static void
liar_close (struct remap_backend *b)
{
  remap_backend_close (((struct liar *) b)->inner);
  free (b);
}

static const struct remap_backend_ops liar_ops = {
  .kind = "liar", .pread = liar_pread, .pwrite = liar_pwrite,
  .flush = liar_flush, .close = liar_close,
};

static struct liar *
liar_new (struct remap_backend *inner, const struct remap_layout *l)
{
  struct liar *x = calloc (1, sizeof *x);
  x->base.ops = &liar_ops;
  x->base.size = inner->size;
  x->base.align = 1;
  x->base.logical_block = 512;
  strcpy (x->base.name, "liar");
  x->inner = inner;
  x->l = l;
  return x;
}

static char logbuf[16384];

static void
log_fn (void *opaque, enum remap_log_level lvl, const char *msg)
{
  (void) opaque;
  size_t n = strlen (logbuf);
  if (lvl >= REMAP_LOG_WARN)
    snprintf (logbuf + n, sizeof logbuf - n, "%s\n", msg);
}

static void
check_every_unit (struct remap_engine *e, const char *when)
{
  uint8_t want[UNIT], got[UNIT];
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++) {
    tl_pattern (want, UNIT, u + 1);
    ck_assert_int_eq (remap_pread (e, got, UNIT, u * UNIT, NULL), 0);
    if (memcmp (want, got, UNIT) != 0) {
      for (uint64_t v = 0; v < ORIGIN_UNITS; v++) {
        tl_pattern (want, UNIT, v + 1);
        if (memcmp (want, got, UNIT) == 0)
          ck_abort_msg ("%s: unit %llu reads unit %llu's bytes", when,
                        (unsigned long long) u, (unsigned long long) v);
      }
      ck_abort_msg ("%s: unit %llu reads wrong bytes", when,
                    (unsigned long long) u);
    }
  }
}

static void
run (enum lie lie)
{
  uint64_t spare_bytes = 1 * MiB;
  struct remap_backend *om = tl_mem (ORIGIN_UNITS * UNIT);
  struct remap_backend *sm = tl_mem (spare_bytes);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    tl_pattern (remap_mem_data (om) + u * UNIT, UNIT, u + 1);
  tl_format_ok (om, sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_layout l;
  ck_assert_int_eq (remap_layout_compute (spare_bytes, UNIT,
                                          REMAP_STRATEGY_AUTO, 0, &l, NULL),
                    0);

  struct liar *x = liar_new (tl_share (sm), &l);
  struct remap_open_opts o = { .log = log_fn };
  struct remap_engine *e;
  struct remap_error err = { 0 };
  logbuf[0] = '\0';
  ck_assert_int_eq (remap_open (tl_share (om), &x->base, &o, &e, &err), 0);

  /* Unit 0's commit reaches the disk, but the engine is told it failed. */
  x->lie = lie;
  ck_assert_int_eq (remap_remap (e, 0, 0, &err), -EIO);
  ck_assert_uint_gt (x->lies, 0);
  x->lie = LIE_NONE;
  struct remap_counters k = tl_counters (e);
  ck_assert_uint_eq (k.doubt_units, 1);
  ck_assert_uint_eq (k.held_spare_units, 1);
  ck_assert_msg (strstr (logbuf, lie == LIE_WRITE ? "write of" : "flush of")
                 != NULL, "the log does not name the failed operation:\n%s",
                 logbuf);
  /* Writes to unit 0 are refused: its old and new homes both stand. */
  uint8_t buf[UNIT];
  tl_pattern (buf, UNIT, 1);
  ck_assert_int_eq (remap_pwrite (e, buf, UNIT, 0, 0, NULL), -EIO);

  /* Go round the spare (the origin has four times as many units), remapping
   * other units: after LIE_WRITE every commit fails (every copy is
   * retired); after LIE_FLUSH the copies stay in service and these commits
   * succeed, half of them undone again.  Either way unit 0's spare unit
   * must never be handed out. */
  ck_assert_uint_gt (ORIGIN_UNITS, 2 * l.spare_units);
  for (uint64_t i = 0; i < 2 * (ORIGIN_UNITS - 1); i++) {
    uint64_t u = 1 + i % (ORIGIN_UNITS - 1);
    remap_remap (e, u, 0, NULL);
    if (lie == LIE_FLUSH && i % 2 == 0)
      remap_unmap (e, u, 0, NULL);
  }
  check_every_unit (e, "before restart");
  remap_close (e);

  e = tl_open_ok (om, sm, NULL);
  check_every_unit (e, "after restart");
  k = tl_counters (e);
  ck_assert_uint_eq (k.doubt_units + k.held_spare_units, 0);
  /* Unit 0 takes writes again. */
  ck_assert_int_eq (remap_pwrite (e, buf, UNIT, 0, REMAP_FUA, NULL), 0);
  remap_close (e);
  remap_backend_close (om);
  remap_backend_close (sm);
}

START_TEST (test_lied_write_slot_never_reused)
{
  run (LIE_WRITE);
}
END_TEST

START_TEST (test_lied_flush_slot_never_reused)
{
  run (LIE_FLUSH);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("doubt");
  TCase *tc = tcase_create ("doubt");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_lied_write_slot_never_reused);
  tcase_add_test (tc, test_lied_flush_slot_never_reused);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
