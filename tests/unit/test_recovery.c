/* Unit tests: opening a spare whose metadata copies are damaged (SPEC 2.2,
 * 2.5), and the identity checks of open and format.
 *
 * A spare with n copies (2, 3, 5, 8; minimal, linear, geometric) gets two
 * batches of remaps with data, an unmap and a bad unit; a snapshot is taken
 * between the batches.  Then any proper subset of the copies is damaged:
 * zeroed, bit-flipped, torn (second half of every unit zeroed), stale (the
 * snapshot from before the second batch), or a mix.  Open must find every
 * remap of the second batch, the data must read back, the damaged blocks
 * must be rewritten (repaired_blocks > 0), and a second open must find
 * nothing to repair.  All copies damaged: open refuses.
 */

#include "unit/testlib.h"

struct rcfg {
  uint32_t unit;
  uint64_t spare;
  enum remap_strategy s;
  uint32_t copies;
  unsigned remaps;              /* per batch */
};

static const struct rcfg rcfgs[] = {
  { 512, 64 * KiB, REMAP_STRATEGY_MINIMAL, 2, 24 },
  { 4096, 1 * MiB, REMAP_STRATEGY_LINEAR, 3, 40 },
  { 512, 1 * MiB, REMAP_STRATEGY_AUTO, 0, 40 },         /* linear 4 */
  { 4096, 4 * MiB, REMAP_STRATEGY_AUTO, 0, 140 },       /* geometric 5 */
  { 4096, 2 * MiB, REMAP_STRATEGY_GEOMETRIC, 8, 30 },
  { 512, 1 * MiB, REMAP_STRATEGY_LINEAR, 8, 40 },
  { 1024, 200 * KiB, REMAP_STRATEGY_MINIMAL, 5, 20 },
};
#define NRCFGS (sizeof rcfgs / sizeof rcfgs[0])

enum damage { D_ZERO, D_FLIP, D_TORN, D_STALE, D_MIX, D_NKINDS };
static const char *const dnames[] = { "zeroed", "bit flips", "torn",
                                      "stale", "mixed" };

/* Everything a case needs: the images and the truth. */
struct fixture {
  const struct rcfg *c;
  struct remap_layout l;
  uint32_t unit;
  uint64_t origin_units;
  struct remap_backend *origin, *spare;
  uint8_t *golden;              /* spare after both batches, closed */
  uint8_t *stale;               /* spare between the batches */
  uint8_t *origin_img;          /* origin after both batches */
  uint8_t *expect;              /* what the disk reads */
  struct remap_mapping *truth;  /* lookup of every unit */
  uint64_t mapped;
};

static void
write_unit (struct remap_engine *e, struct fixture *f, uint64_t u,
            uint64_t tag)
{
  uint8_t *p = f->expect + u * f->unit;
  struct remap_error err = { 0 };
  tl_pattern (p, f->unit, tag);
  int r = remap_pwrite (e, p, f->unit, u * f->unit, 0, &err);
  ck_assert_msg (r == 0, "write unit %" PRIu64 ": %s", u, err.msg);
}

static void
do_remap (struct remap_engine *e, uint64_t u)
{
  struct remap_error err = { 0 };
  int r = remap_remap (e, u, 0, &err);
  ck_assert_msg (r == 0, "remap %" PRIu64 ": %s", u, err.msg);
}

static void
fixture_init (struct fixture *f, const struct rcfg *c)
{
  memset (f, 0, sizeof *f);
  f->c = c;
  f->unit = c->unit;
  ck_assert_int_eq (remap_layout_compute (c->spare, c->unit, c->s, c->copies,
                                          &f->l, NULL), 0);
  f->origin_units = 3 * c->remaps + 16;
  f->origin = tl_mem (f->origin_units * c->unit);
  f->spare = tl_mem (c->spare);
  tl_pattern (remap_mem_data (f->origin), f->origin->size, 3);
  f->expect = malloc (f->origin->size);
  memcpy (f->expect, remap_mem_data (f->origin), f->origin->size);
  tl_format_ok (f->origin, f->spare, c->unit, c->s, c->copies);

  /* Batch 1: remap + write units 0, 2, 4, ...; a pending unit. */
  struct remap_engine *e = tl_open_ok (f->origin, f->spare, NULL);
  for (unsigned i = 0; i < c->remaps; i++) {
    do_remap (e, 2 * i);
    write_unit (e, f, 2 * i, 100 + 2 * i);
  }
  ck_assert_int_eq (remap_mark_pending (e, 1, NULL), 0);
  ck_assert_int_eq (remap_close (e), 0);
  f->stale = malloc (c->spare);
  memcpy (f->stale, remap_mem_data (f->spare), c->spare);

  /* Batch 2: write then remap odd units; unmap unit 0 (its data goes back
   * to the origin); rewrite unit 2; a bad spare unit; pending unit 1 gets
   * written, so it becomes mapped. */
  e = tl_open_ok (f->origin, f->spare, NULL);
  for (unsigned i = 0; i < c->remaps; i++) {
    uint64_t u = 2 * c->remaps + 1 + i;
    write_unit (e, f, u, 500 + u);
    do_remap (e, u);
  }
  ck_assert_int_eq (remap_unmap (e, 0, 0, NULL), 0);
  write_unit (e, f, 2, 900);
  write_unit (e, f, 1, 901);
  /* The last usable spare unit (free at this point) becomes bad. */
  uint64_t bad = f->l.spare_units - 1;
  while (remap_layout_is_reserved (&f->l, bad))
    bad--;
  ck_assert_int_eq (remap_mark_spare_bad (e, bad, NULL), 0);
  ck_assert_int_eq (remap_flush (e, NULL), 0);

  f->truth = calloc (f->origin_units, sizeof *f->truth);
  for (uint64_t u = 0; u < f->origin_units; u++) {
    f->truth[u] = tl_lookup (e, u);
    f->mapped += f->truth[u].state == REMAP_SLOT_MAPPED;
  }
  ck_assert_int_eq (f->truth[0].state, REMAP_SLOT_FREE);
  ck_assert_int_eq (f->truth[1].state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (f->mapped, 2 * c->remaps);
  ck_assert_uint_eq (tl_counters (e).spare_bad_units, 1);
  ck_assert_int_eq (remap_close (e), 0);
  f->golden = malloc (c->spare);
  memcpy (f->golden, remap_mem_data (f->spare), c->spare);
  f->origin_img = malloc (f->origin->size);
  memcpy (f->origin_img, remap_mem_data (f->origin), f->origin->size);
}

static void
fixture_free (struct fixture *f)
{
  remap_backend_close (f->origin);
  remap_backend_close (f->spare);
  free (f->golden);
  free (f->stale);
  free (f->origin_img);
  free (f->expect);
  free (f->truth);
}

static void
restore (struct fixture *f)
{
  memcpy (remap_mem_data (f->spare), f->golden, f->c->spare);
  memcpy (remap_mem_data (f->origin), f->origin_img, f->origin->size);
}

static void
damage_copy (struct fixture *f, uint32_t i, enum damage d, uint64_t *st)
{
  uint32_t unit = f->unit;
  uint64_t off = f->l.copy_offset[i] * unit, len = f->l.copy_units * unit;
  uint8_t *p = remap_mem_data (f->spare) + off;

  if (d == D_MIX)
    d = (enum damage) tl_below (st, D_MIX);
  switch (d) {
  case D_ZERO:
    memset (p, 0, len);
    break;
  case D_FLIP:
    /* Every unit of the extent gets 1-3 flips inside its checked bytes
     * (the superblock's CRC covers only its first 512). */
    for (uint64_t k = 0; k < f->l.copy_units; k++) {
      uint64_t span = k == 0 ? REMAP_SB_SIZE : unit;
      for (int n = 1 + (int) tl_below (st, 3); n > 0; n--) {
        uint64_t bit = tl_below (st, span * 8);
        p[k * unit + bit / 8] ^= (uint8_t) (1u << (bit % 8));
      }
    }
    break;
  case D_TORN:
    /* The second half of every unit zeroed; where that half holds nothing
     * (a sparse table block, a superblock unit), the second half of the
     * bytes in use, so that the tear always destroys something. */
    for (uint64_t k = 0; k < f->l.copy_units; k++) {
      uint8_t *q = p + k * unit;
      uint64_t z = unit;
      while (z > 0 && q[z - 1] == 0)
        z--;
      uint64_t t = z > unit / 2 ? unit / 2 : z / 2;
      memset (q + t, 0, unit - t);
    }
    break;
  case D_STALE:
    memcpy (p, f->stale + off, len);
    break;
  default:
    ck_abort_msg ("bad damage kind");
  }
}

/* Open, compare everything with the truth, close. */
static void
check_open (struct fixture *f, bool expect_repair, const char *ctx)
{
  struct remap_engine *e = NULL;
  struct remap_error err = { 0 };
  int r = tl_open (f->origin, f->spare, NULL, &e, &err);
  ck_assert_msg (r == 0, "%s: open: %d %s", ctx, r, err.msg);

  struct remap_counters k = tl_counters (e);
  if (expect_repair)
    ck_assert_msg (k.repaired_blocks > 0, "%s: nothing repaired", ctx);
  else
    ck_assert_msg (k.repaired_blocks == 0, "%s: second open repaired %"
                   PRIu64, ctx, k.repaired_blocks);
  ck_assert_msg (k.copies_valid == f->l.copies && k.copies_total
                 == f->l.copies, "%s: copies %u/%u", ctx, k.copies_valid,
                 k.copies_total);
  ck_assert_msg (k.reallocated_units == f->mapped, "%s: %" PRIu64 " mapped",
                 ctx, k.reallocated_units);
  ck_assert_msg (k.spare_bad_units == 1, "%s: bad units %" PRIu64, ctx,
                 k.spare_bad_units);
  for (uint64_t u = 0; u < f->origin_units; u++) {
    struct remap_mapping m = tl_lookup (e, u);
    REQ (m.state == f->truth[u].state
         && (m.state == REMAP_SLOT_FREE
             || m.spare_unit == f->truth[u].spare_unit),
         "%s: unit %" PRIu64 " state %d spare %" PRIu64 ", want %d %" PRIu64,
         ctx, u, m.state, m.spare_unit, f->truth[u].state,
         f->truth[u].spare_unit);
  }
  uint64_t size = f->origin->size;
  uint8_t *buf = malloc (size);
  r = remap_pread (e, buf, size, 0, &err);
  ck_assert_msg (r == 0, "%s: read: %s", ctx, err.msg);
  for (uint64_t u = 0; u < f->origin_units; u++)
    REQ (memcmp (buf + u * f->unit, f->expect + u * f->unit, f->unit) == 0,
         "%s: unit %" PRIu64 " reads wrong data", ctx, u);
  free (buf);
  ck_assert_int_eq (remap_close (e), 0);
}

/* Every copy's blocks decode and agree with each other. */
static void
check_copies_agree (struct fixture *f, const char *ctx)
{
  const struct remap_layout *l = &f->l;
  uint32_t unit = f->unit, E = l->entries_per_block;
  const uint8_t *img = remap_mem_data (f->spare);
  struct remap_entry *a = calloc (E, sizeof *a), *b = calloc (E, sizeof *b);
  struct remap_sb sb;

  for (uint32_t i = 0; i < l->copies; i++) {
    const uint8_t *cp = img + l->copy_offset[i] * unit;
    struct remap_error err = { 0 };
    REQ (remap_sb_decode (cp, unit, &sb, &err) == 0 && sb.copy_index == i,
         "%s: copy %u superblock: %s", ctx, i, err.msg);
  }
  for (uint64_t k = 0; k < l->table_blocks; k++) {
    struct remap_tb t0, ti;
    const uint8_t *b0 = img + (l->copy_offset[0] + 1 + k) * unit;
    REQ (remap_tb_decode (&sb, b0, unit, k, &t0, a, NULL) == 0,
         "%s: copy 0 block %" PRIu64, ctx, k);
    for (uint32_t i = 1; i < l->copies; i++) {
      const uint8_t *bi = img + (l->copy_offset[i] + 1 + k) * unit;
      REQ (remap_tb_decode (&sb, bi, unit, k, &ti, b, NULL) == 0,
           "%s: copy %u block %" PRIu64 " does not decode", ctx, i, k);
      REQ (ti.generation == t0.generation, "%s: copy %u block %" PRIu64
           " generation %" PRIu64 " != %" PRIu64, ctx, i, k, ti.generation,
           t0.generation);
      for (uint32_t j = 0; j < E; j++)
        REQ (a[j].state == b[j].state && a[j].origin_unit == b[j].origin_unit
             && a[j].lost == b[j].lost, "%s: copy %u block %" PRIu64
             " entry %u differs", ctx, i, k, j);
    }
  }
  free (a);
  free (b);
}

static void
run_case (struct fixture *f, uint32_t mask, enum damage d, uint64_t seed)
{
  char ctx[160];
  uint64_t st = seed;
  snprintf (ctx, sizeof ctx, "unit %u, %s x%u, damaged copies %#x, %s, seed "
            "%#" PRIx64, f->unit, remap_strategy_name (f->l.strategy),
            f->l.copies, mask, dnames[d], seed);
  restore (f);
  for (uint32_t i = 0; i < f->l.copies; i++)
    if (mask & (1u << i))
      damage_copy (f, i, d, &st);
  check_open (f, true, ctx);
  check_copies_agree (f, ctx);
  check_open (f, false, ctx);
}

START_TEST (test_damage_subsets)
{
  struct fixture f;
  fixture_init (&f, &rcfgs[_i]);
  uint32_t n = f.l.copies, all = (1u << n) - 1;
  uint64_t seed = 0xdead0000 + (uint64_t) _i * 1000, st = seed;
  unsigned cases = 0;

  if (n <= 5) {
    /* Every non-empty proper subset. */
    for (uint32_t mask = 1; mask < all; mask++)
      for (int d = 0; d < D_NKINDS; d++, cases++)
        run_case (&f, mask, (enum damage) d, seed + cases);
  }
  else {
    /* All n subsets of size n - 1, and a seeded sample of the others. */
    for (uint32_t keep = 0; keep < n; keep++)
      for (int d = 0; d < D_NKINDS; d++, cases++)
        run_case (&f, all & ~(1u << keep), (enum damage) d, seed + cases);
    for (int k = 0; k < 40; k++) {
      uint32_t mask = (uint32_t) tl_below (&st, all - 1) + 1;
      run_case (&f, mask, (enum damage) tl_below (&st, D_NKINDS),
                seed + cases++);
    }
  }
  ck_assert_uint_gt (cases, 0);
  fixture_free (&f);
}
END_TEST

/* Every copy damaged: open refuses and says where and what to do. */
START_TEST (test_all_copies_damaged)
{
  struct fixture f;
  fixture_init (&f, &rcfgs[_i]);
  uint32_t n = f.l.copies;
  uint64_t st = 77;

  for (int d = 0; d < D_NKINDS; d++) {
    if (d == D_STALE)
      continue;                 /* all stale is a valid older table */
    restore (&f);
    for (uint32_t i = 0; i < n; i++)
      damage_copy (&f, i, d == D_MIX ? D_FLIP : (enum damage) d, &st);
    struct remap_backend *sp = tl_share (f.spare);
    snprintf (sp->name, sizeof sp->name, "%s", "spare-image-under-test");
    struct remap_engine *e = NULL;
    struct remap_error err = { 0 };
    int r = remap_open (tl_share (f.origin), sp, NULL, &e, &err);
    if (d == D_ZERO) {
      /* Nothing left that looks like metadata: "blank" is also honest. */
      ck_assert_msg (r == -EUCLEAN || r == -ENOMEDIUM, "%s: r %d",
                     dnames[d], r);
    }
    else {
      ck_assert_msg (r == -EUCLEAN, "%s: r %d (%s)", dnames[d], r, err.msg);
      ck_assert_msg (strstr (err.msg, "spare-image-under-test") != NULL,
                     "%s: message does not name the spare: %s", dnames[d],
                     err.msg);
    }
    ck_assert_ptr_null (e);
    /* And nothing was written to it. */
    uint8_t *img = remap_mem_data (f.spare);
    for (uint64_t u = 0; u < f.l.spare_units; u++)
      if (!remap_layout_is_reserved (&f.l, u))
        REQ (memcmp (img + u * f.unit, f.golden + u * f.unit, f.unit) == 0,
             "%s: data unit %" PRIu64 " changed by a failed open", dnames[d],
             u);
  }

  /* All copies stale: opens, as the older table (nothing newer exists). */
  restore (&f);
  memcpy (remap_mem_data (f.spare), f.stale, f.c->spare);
  struct remap_engine *e = tl_open_ok (f.origin, f.spare, NULL);
  ck_assert_uint_eq (tl_counters (e).reallocated_units, f.c->remaps);
  ck_assert_uint_eq (tl_counters (e).repaired_blocks, 0);
  ck_assert_int_eq (remap_close (e), 0);
  fixture_free (&f);
}
END_TEST

/* no_repair and readonly report damage and leave the bytes alone. */
START_TEST (test_no_repair_and_readonly)
{
  struct fixture f;
  fixture_init (&f, &rcfgs[3]);
  uint64_t st = 5;
  for (int ro = 0; ro < 2; ro++) {
    restore (&f);
    damage_copy (&f, 1, D_TORN, &st);
    uint8_t *before = malloc (f.c->spare);
    memcpy (before, remap_mem_data (f.spare), f.c->spare);
    struct remap_open_opts o = { .no_repair = !ro, .readonly = ro };
    struct remap_engine *e = tl_open_ok (f.origin, f.spare, &o);
    struct remap_counters k = tl_counters (e);
    ck_assert_uint_eq (k.repaired_blocks, 0);
    ck_assert_uint_eq (k.copies_valid, f.l.copies - 1);
    ck_assert_uint_eq (k.reallocated_units, f.mapped);
    if (ro) {
      uint8_t b[16] = { 0 };
      ck_assert_int_eq (remap_pwrite (e, b, sizeof b, 0, 0, NULL), -EROFS);
      ck_assert_int_eq (remap_remap (e, 5, 0, NULL), -EROFS);
    }
    ck_assert_int_eq (remap_close (e), 0);
    ck_assert_msg (memcmp (before, remap_mem_data (f.spare), f.c->spare) == 0,
                   "%s open wrote to the spare", ro ? "readonly" : "no_repair");
    free (before);
    check_open (&f, true, "after no_repair");
  }
  fixture_free (&f);
}
END_TEST

/* ---- identity, format, geometry --------------------------------------------- */

/* Set table block k of every copy to generation g, CRC redone. */
static void
set_block_gen (struct remap_backend *spare, const struct remap_layout *l,
               uint64_t k, uint64_t g)
{
  uint8_t *d = remap_mem_data (spare);
  for (uint32_t i = 0; i < l->copies; i++) {
    uint8_t *tb = d + (l->copy_offset[i] + 1 + k) * l->unit;
    tl_put64 (tb + 8, g);
    tl_tb_recrc (tb, l->unit);
  }
}

/* FORMAT.md 10.1: generations stop at 2^63 - 1.  A table one commit short
 * of the bound takes that commit; the next change (a remap, a pending
 * mark) is refused with a message before anything is committed, and the
 * spare still opens with every block valid: a commit never wraps a
 * generation to the invalid 0 nor writes one that a reader rejects. */
START_TEST (test_generation_bound)
{
  struct remap_backend *origin = tl_mem (1 * MiB), *spare = tl_mem (1 * MiB);
  struct remap_layout l;
  ck_assert_int_eq (remap_layout_compute (1 * MiB, 4096, REMAP_STRATEGY_AUTO,
                                          0, &l, NULL), 0);
  tl_format_ok (origin, spare, 4096, REMAP_STRATEGY_AUTO, 0);
  for (uint64_t k = 0; k < l.table_blocks; k++)
    set_block_gen (spare, &l, k, REMAP_MAX_GENERATION - 1);

  struct remap_engine *e = tl_open_ok (origin, spare, NULL);
  ck_assert_uint_eq (tl_counters (e).generation, REMAP_MAX_GENERATION - 1);
  do_remap (e, 3);
  ck_assert_uint_eq (tl_counters (e).generation, REMAP_MAX_GENERATION);

  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_remap (e, 4, 0, &err), -EOVERFLOW);
  ck_assert_msg (strstr (err.msg, "2^63 - 1") && strstr (err.msg, "export"),
                 "message: %s", err.msg);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_mark_pending (e, 5, &err), -EOVERFLOW);
  ck_assert_int_eq (tl_lookup (e, 4).state, REMAP_SLOT_FREE);
  ck_assert_int_eq (tl_lookup (e, 5).state, REMAP_SLOT_FREE);
  struct remap_counters c = tl_counters (e);
  ck_assert_uint_eq (c.generation, REMAP_MAX_GENERATION);
  ck_assert_uint_eq (c.reallocated_units, 1);
  ck_assert_uint_eq (c.copies_valid, l.copies);
  ck_assert_int_eq (remap_close (e), 0);

  /* Every block of every copy still decodes. */
  e = tl_open_ok (origin, spare, NULL);
  c = tl_counters (e);
  ck_assert_uint_eq (c.generation, REMAP_MAX_GENERATION);
  ck_assert_uint_eq (c.copies_valid, l.copies);
  ck_assert_uint_eq (c.repaired_blocks, 0);
  ck_assert_int_eq (tl_lookup (e, 3).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (tl_lookup (e, 4).state, REMAP_SLOT_FREE);
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

/* remap_open refuses a spare that grew or shrank by a unit or more since
 * format; remap_inspect (remapctl check) must call it unusable too, with
 * the reason and the size to restore, while a change of less than a unit
 * (bytes past the last whole unit) stays clean. */
START_TEST (test_inspect_resized_spare)
{
  struct fixture f;
  fixture_init (&f, &rcfgs[1]);
  static const int64_t delta[] = { 1, -1, 100 };  /* in units, or bytes */
  for (size_t i = 0; i < sizeof delta / sizeof delta[0]; i++) {
    bool bytes = delta[i] == 100;
    uint64_t size = f.c->spare + (bytes ? 100 : delta[i] * (int64_t) f.unit);
    struct remap_backend *s = tl_mem (size);
    memcpy (remap_mem_data (s), remap_mem_data (f.spare),
            size < f.c->spare ? size : f.c->spare);
    struct remap_inspect *in = calloc (1, sizeof *in);
    struct remap_error err = { 0 };
    ck_assert_int_eq (remap_inspect (s, in, &err), 0);
    ck_assert (in->found);
    struct remap_engine *e = NULL;
    int r = remap_open (tl_share (f.origin), tl_share (s), NULL, &e, &err);
    if (bytes) {
      ck_assert_msg (in->verdict == REMAP_CLEAN, "+100 bytes: %s", in->reason);
      ck_assert_msg (r == 0, "+100 bytes: open: %s", err.msg);
      remap_close (e);
    }
    else {
      char want[64];
      snprintf (want, sizeof want, "truncate -s %" PRIu64, f.c->spare);
      ck_assert_msg (in->verdict == REMAP_UNUSABLE
                     && strstr (in->reason, delta[i] > 0 ? "grown" : "shrunk")
                     && strstr (in->reason, want),
                     "%+d units: verdict %d: %s", (int) delta[i],
                     (int) in->verdict, in->reason);
      ck_assert_int_eq (r, -ENODEV);    /* and open agrees */
    }
    free (in);
    remap_backend_close (s);
  }
  fixture_free (&f);
}
END_TEST

START_TEST (test_wrong_origin)
{
  struct fixture f;
  fixture_init (&f, &rcfgs[1]);
  struct remap_backend *other = tl_mem (f.origin->size + f.unit);
  struct remap_backend *osh = tl_share (other);
  snprintf (osh->name, sizeof osh->name, "%s", "other-disk");
  struct remap_engine *e = NULL;
  struct remap_error err = { 0 };
  int r = remap_open (osh, tl_share (f.spare), NULL, &e, &err);
  ck_assert_int_eq (r, -ENODEV);
  ck_assert_ptr_null (e);
  char size[32];
  snprintf (size, sizeof size, "%" PRIu64, f.origin->size);
  ck_assert_msg (strstr (err.msg, size) && strstr (err.msg, "other-disk"),
                 "message: %s", err.msg);

  /* Accepted when told to. */
  struct remap_open_opts o = { .ignore_origin_size = true };
  e = tl_open_ok (other, f.spare, &o);
  ck_assert_int_eq (remap_close (e), 0);

  /* A spare that shrank. */
  struct remap_backend *small = tl_mem_copy (remap_mem_data (f.spare),
                                             f.c->spare - f.unit);
  remap_error_clear (&err);
  r = remap_open (tl_share (f.origin), tl_share (small), NULL, &e, &err);
  ck_assert_int_eq (r, -ENODEV);
  ck_assert_msg (err.msg[0] != '\0', "no message");
  remap_backend_close (small);
  remap_backend_close (other);
  check_open (&f, false, "untouched");
  fixture_free (&f);
}
END_TEST

START_TEST (test_format_refuses_and_forces)
{
  struct fixture f;
  fixture_init (&f, &rcfgs[3]);
  struct remap_error err = { 0 };

  int r = tl_format (f.origin, f.spare, 4096, REMAP_STRATEGY_AUTO, 0, false,
                     &err);
  ck_assert_int_eq (r, -EEXIST);
  ck_assert_msg (strstr (err.msg, "force") != NULL, "message: %s", err.msg);
  ck_assert (remap_spare_has_metadata (f.spare));
  ck_assert_int_eq (memcmp (remap_mem_data (f.spare), f.golden, f.c->spare),
                    0);
  /* Damaged metadata is still metadata. */
  uint64_t st = 1;
  damage_copy (&f, 0, D_ZERO, &st);
  remap_error_clear (&err);
  ck_assert_int_eq (tl_format (f.origin, f.spare, 4096, REMAP_STRATEGY_AUTO,
                               0, false, &err), -EEXIST);
  restore (&f);

  /* Forced, with another unit and placement: the old remaps are gone. */
  struct remap_format_opts o;
  tl_format_opts (&o, 512, REMAP_STRATEGY_MINIMAL, 2, 2);
  o.force = true;
  remap_error_clear (&err);
  r = remap_format (f.origin, f.spare, &o, &err);
  ck_assert_msg (r == 0, "forced format: %s", err.msg);
  struct remap_engine *e = tl_open_ok (f.origin, f.spare, NULL);
  struct remap_info info;
  remap_get_info (e, &info);
  ck_assert_uint_eq (info.layout.unit, 512);
  ck_assert_mem_eq (info.uuid, o.uuid, 16);
  ck_assert_uint_eq (tl_counters (e).reallocated_units, 0);
  ck_assert_uint_eq (tl_counters (e).spare_bad_units, 0);
  uint64_t units = f.origin->size / 512;
  for (uint64_t u = 0; u < units; u++)
    REQ (tl_lookup (e, u).state == REMAP_SLOT_FREE, "unit %" PRIu64
         " still remapped", u);
  /* The disk now reads the origin's own bytes.  In chunks: one request
   * over more than 64 lock stripes overflows TSan's lock table. */
  uint8_t *buf = malloc (f.origin->size);
  for (uint64_t off = 0; off < f.origin->size; off += 256 * KiB) {
    uint64_t n = f.origin->size - off < 256 * KiB ? f.origin->size - off
      : 256 * KiB;
    ck_assert_int_eq (remap_pread (e, buf + off, n, off, NULL), 0);
  }
  ck_assert_int_eq (memcmp (buf, remap_mem_data (f.origin), f.origin->size),
                    0);
  free (buf);
  ck_assert_int_eq (remap_close (e), 0);

  /* With the new copy 0 gone, discovery must find the new format's copy 1,
   * never an old geometric superblock. */
  struct remap_layout nl;
  ck_assert_int_eq (remap_layout_compute (f.c->spare, 512,
                                          REMAP_STRATEGY_MINIMAL, 2, &nl,
                                          NULL), 0);
  memset (remap_mem_data (f.spare), 0, nl.copy_units * 512);
  e = tl_open_ok (f.origin, f.spare, NULL);
  remap_get_info (e, &info);
  ck_assert_mem_eq (info.uuid, o.uuid, 16);
  ck_assert_uint_eq (info.layout.unit, 512);
  ck_assert_uint_eq (tl_counters (e).reallocated_units, 0);
  ck_assert_int_eq (remap_close (e), 0);
  fixture_free (&f);
}
END_TEST

START_TEST (test_blank_spare)
{
  struct remap_backend *origin = tl_mem (1 * MiB), *spare = tl_mem (1 * MiB);
  struct remap_engine *e = NULL;
  struct remap_error err = { 0 };
  ck_assert (!remap_spare_has_metadata (spare));
  int r = tl_open (origin, spare, NULL, &e, &err);
  ck_assert_int_eq (r, -ENOMEDIUM);
  ck_assert_msg (strstr (err.msg, "format") != NULL, "message: %s", err.msg);
  /* Random bytes without any magic are blank too. */
  uint64_t st = 3;
  tl_random_bytes (&st, remap_mem_data (spare), spare->size);
  remap_error_clear (&err);
  ck_assert_int_eq (tl_open (origin, spare, NULL, &e, &err), -ENOMEDIUM);
  /* Too small to format. */
  struct remap_backend *tiny = tl_mem (20 * KiB);
  remap_error_clear (&err);
  ck_assert_int_eq (tl_format (origin, tiny, 4096, REMAP_STRATEGY_AUTO, 0,
                               false, &err), -ENOSPC);
  ck_assert_msg (err.msg[0] != '\0', "no message");
  remap_backend_close (tiny);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

START_TEST (test_geometry_recorded)
{
  static const struct { uint32_t unit; uint64_t spare;
                        enum remap_strategy s; uint32_t copies; } v[] = {
    { 512, 40 * KiB + 100, REMAP_STRATEGY_AUTO, 0 },
    { 4096, 3 * MiB + 1, REMAP_STRATEGY_AUTO, 0 },
    { 8192, 9 * MiB, REMAP_STRATEGY_AUTO, 0 },
    { 65536, 16 * MiB, REMAP_STRATEGY_LINEAR, 7 },
    { 1024, 5 * MiB, REMAP_STRATEGY_MINIMAL, 8 },
    { 4096, 2 * MiB, REMAP_STRATEGY_GEOMETRIC, 8 },
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    struct remap_backend *origin = tl_mem (1 * MiB + 333);
    struct remap_backend *spare = tl_mem (v[i].spare);
    struct remap_format_opts o;
    struct remap_layout l;
    tl_format_opts (&o, v[i].unit, v[i].s, v[i].copies, 40 + i);
    o.format_time = 1234567 + i;
    o.origin_label = "/dev/disk/by-id/some-rather-long-name-of-a-failing-"
      "disk-that-is-longer-than-64-bytes-part1";
    ck_assert_int_eq (remap_format (origin, spare, &o, NULL), 0);
    ck_assert_int_eq (remap_layout_compute (v[i].spare, v[i].unit, v[i].s,
                                            v[i].copies, &l, NULL), 0);
    struct remap_engine *e = tl_open_ok (origin, spare, NULL);
    struct remap_info info;
    remap_get_info (e, &info);
    ck_assert_uint_eq (remap_unit (e), v[i].unit);
    ck_assert_uint_eq (remap_size (e), origin->size);
    ck_assert_uint_eq (info.layout.unit, v[i].unit);
    ck_assert_uint_eq (info.layout.spare_units, l.spare_units);
    ck_assert_uint_eq (info.layout.table_blocks, l.table_blocks);
    ck_assert_uint_eq (info.layout.copy_units, l.copy_units);
    ck_assert_int_eq (info.layout.strategy, l.strategy);
    ck_assert_uint_eq (info.layout.copies, l.copies);
    ck_assert_mem_eq (info.layout.copy_offset, l.copy_offset,
                      sizeof l.copy_offset);
    ck_assert_uint_eq (info.layout.usable_units, l.usable_units);
    ck_assert_mem_eq (info.uuid, o.uuid, 16);
    ck_assert_uint_eq (info.origin_size, origin->size);
    ck_assert_uint_eq (info.spare_size, l.spare_units * v[i].unit);
    ck_assert_uint_eq (info.lost_granule, remap_lost_granule (v[i].unit));
    ck_assert_uint_eq (info.format_time, 1234567 + i);
    /* A long label keeps its end. */
    ck_assert_uint_eq (strlen (info.origin_label), REMAP_LABEL_SIZE);
    ck_assert_msg (strstr (o.origin_label, info.origin_label) != NULL
                   && strstr (info.origin_label, "part1") != NULL,
                   "label %s", info.origin_label);
    struct remap_counters k = tl_counters (e);
    ck_assert_uint_eq (k.copies_total, l.copies);
    ck_assert_uint_eq (k.copies_valid, l.copies);
    ck_assert_uint_eq (k.spare_total_units, l.spare_units);
    ck_assert_uint_eq (k.spare_free_units, l.usable_units);
    ck_assert_int_eq (remap_close (e), 0);
    remap_backend_close (origin);
    remap_backend_close (spare);
  }
}
END_TEST

static Suite *
recovery_suite (void)
{
  Suite *s = suite_create ("recovery");
  TCase *dmg = tcase_create ("damage");
  TCase *ident = tcase_create ("identity");

  tcase_set_timeout (dmg, 600);
  tcase_set_timeout (ident, 300);
  tcase_add_loop_test (dmg, test_damage_subsets, 0, NRCFGS);
  tcase_add_loop_test (dmg, test_all_copies_damaged, 0, NRCFGS);
  tcase_add_test (dmg, test_no_repair_and_readonly);
  tcase_add_test (dmg, test_generation_bound);
  tcase_add_test (ident, test_wrong_origin);
  tcase_add_test (ident, test_inspect_resized_spare);
  tcase_add_test (ident, test_format_refuses_and_forces);
  tcase_add_test (ident, test_blank_spare);
  tcase_add_test (ident, test_geometry_recorded);
  suite_add_tcase (s, dmg);
  suite_add_tcase (s, ident);
  return s;
}

int
main (void)
{
  return tl_run (recovery_suite ());
}
