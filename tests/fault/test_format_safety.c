/* Fault tests: format never destroys what it could not read, and a crash
 * at any write of format leaves a spare that opens (SPEC 2.5).
 *
 *   unreadable_table  an existing table whose reads fail (every read; the
 *                     places discovery looks; only the superblocks):
 *                     remap_spare_has_metadata says yes, format without
 *                     force refuses naming the error and the byte, open
 *                     reports the read error (never "no metadata"), and no
 *                     byte of the spare changes.
 *   unreadable_blank  a blank spare with one unreadable place where a
 *                     superblock could be: format without force refuses,
 *                     naming that byte; force formats it.
 *   format_crash      the spare caches writes and crashes at every write of
 *                     format (blank spares, and format by force over a
 *                     table of the same and of other layouts), losing,
 *                     keeping or tearing what was not flushed.  Whenever a
 *                     valid superblock is left anywhere on the spare, it
 *                     opens: as the old table with every remap and byte, or
 *                     as the new empty one, and a second open is clean.
 *                     Otherwise open says "no metadata" or "damaged".
 */

#include "unit/testlib.h"

struct table {
  uint32_t unit;
  uint64_t spare_size;
  enum remap_strategy s;
  uint32_t copies;
};

/* ---- a spare with a table ----------------------------------------------- */

struct world {
  struct remap_backend *origin, *spare;
  struct remap_layout l;
  uint8_t uuid[16];
  uint64_t remaps;              /* origin units 0, 3, 6, ... are remapped */
  uint8_t *golden_spare;
  uint8_t *expect;              /* what the disk reads */
};

static void
world_init (struct world *w, const struct table *t, uint64_t remaps)
{
  memset (w, 0, sizeof *w);
  w->origin = tl_mem (2 * MiB);
  w->spare = tl_mem (t->spare_size);
  w->remaps = remaps;
  tl_pattern (remap_mem_data (w->origin), w->origin->size, 0x5afe);
  struct remap_format_opts o;
  tl_format_opts (&o, t->unit, t->s, t->copies, 1);
  memcpy (w->uuid, o.uuid, 16);
  ck_assert_int_eq (remap_format (w->origin, w->spare, &o, NULL), 0);
  ck_assert_int_eq (remap_layout_compute (t->spare_size, t->unit, t->s,
                                          t->copies, &w->l, NULL), 0);
  w->expect = malloc (w->origin->size);
  memcpy (w->expect, remap_mem_data (w->origin), w->origin->size);
  struct remap_engine *e = tl_open_ok (w->origin, w->spare, NULL);
  uint8_t *buf = malloc (t->unit);
  for (uint64_t i = 0; i < remaps; i++) {
    uint64_t u = 3 * i;
    ck_assert_int_eq (remap_remap (e, u, 0, NULL), 0);
    tl_pattern (buf, t->unit, 0x1000 + u);
    ck_assert_int_eq (remap_pwrite (e, buf, t->unit, u * t->unit, REMAP_FUA,
                                    NULL), 0);
    memcpy (w->expect + u * t->unit, buf, t->unit);
  }
  free (buf);
  ck_assert_int_eq (remap_close (e), 0);
  w->golden_spare = malloc (t->spare_size);
  memcpy (w->golden_spare, remap_mem_data (w->spare), t->spare_size);
}

static void
world_free (struct world *w)
{
  remap_backend_close (w->origin);
  remap_backend_close (w->spare);
  free (w->golden_spare);
  free (w->expect);
}

/* The old table is whole: every remap, every byte. */
static void
check_old_table (struct world *w, struct remap_engine *e, const char *ctx)
{
  struct remap_info info;
  remap_get_info (e, &info);
  ck_assert_msg (memcmp (info.uuid, w->uuid, 16) == 0, "%s: not the old "
                 "table", ctx);
  ck_assert_msg (tl_counters (e).reallocated_units == w->remaps,
                 "%s: %" PRIu64 " remaps, want %" PRIu64, ctx,
                 tl_counters (e).reallocated_units, w->remaps);
  uint8_t *buf = malloc (w->origin->size);
  for (uint64_t off = 0; off < w->origin->size; off += 256 * KiB)
    ck_assert_int_eq (remap_pread (e, buf + off, 256 * KiB, off, NULL), 0);
  ck_assert_msg (memcmp (buf, w->expect, w->origin->size) == 0,
                 "%s: the disk does not read what was written", ctx);
  free (buf);
}

static struct remap_backend *
faulty (struct world *w)
{
  struct remap_backend *fb;
  ck_assert_int_eq (remap_fault_create (tl_share (w->spare), true, &fb), 0);
  snprintf (fb->name, sizeof fb->name, "%s", "failing-spare");
  return fb;
}

static void
add_rule (struct remap_backend *fb, uint64_t off, uint64_t len)
{
  struct remap_fault_rule r = { .off = off, .len = len,
                                .ops = REMAP_FAULT_READ, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (fb, &r), 0);
}

/* ---- unreadable tables ---------------------------------------------------- */

static const struct table tables[] = {
  { 512, 64 * KiB, REMAP_STRATEGY_MINIMAL, 2 },
  { 4096, 1 * MiB, REMAP_STRATEGY_LINEAR, 4 },
  { 4096, 4 * MiB, REMAP_STRATEGY_GEOMETRIC, 5 },
  { 4096, 2 * MiB, REMAP_STRATEGY_GEOMETRIC, 8 },
};
#define NTABLES (sizeof tables / sizeof tables[0])

enum failing { EVERY_READ, WHERE_DISCOVERY_LOOKS, SUPERBLOCKS, NFAILING };
static const char *const failing_names[] = {
  "every read fails", "the copies and the first 128 KiB fail",
  "the superblocks fail",
};

START_TEST (test_unreadable_table)
{
  const struct table *t = &tables[_i / NFAILING];
  enum failing f = (enum failing) (_i % NFAILING);
  struct world w;
  world_init (&w, t, 5);
  struct remap_backend *fb = faulty (&w);
  switch (f) {
  case EVERY_READ:
    add_rule (fb, 0, t->spare_size);
    break;
  case WHERE_DISCOVERY_LOOKS:
    /* The copies, and every place a table block's magic is looked for. */
    for (uint32_t i = 0; i < w.l.copies; i++)
      add_rule (fb, w.l.copy_offset[i] * t->unit, w.l.copy_units * t->unit);
    add_rule (fb, 0, 2 * REMAP_MAX_UNIT < t->spare_size
              ? 2 * REMAP_MAX_UNIT : t->spare_size);
    break;
  case SUPERBLOCKS:
    for (uint32_t i = 0; i < w.l.copies; i++)
      add_rule (fb, w.l.copy_offset[i] * t->unit, REMAP_SB_SIZE);
    break;
  default:
    ck_abort ();
  }
  char ctx[160];
  snprintf (ctx, sizeof ctx, "unit %u %s x%u, %s", t->unit,
            remap_strategy_name (t->s), t->copies, failing_names[f]);

  ck_assert_msg (remap_spare_has_metadata (fb), "%s: reported blank", ctx);
  struct remap_format_opts o;
  tl_format_opts (&o, t->unit, t->s, t->copies, 9);
  struct remap_error err = { 0 };
  int r = remap_format (w.origin, fb, &o, &err);
  ck_assert_msg (r != 0, "%s: formatted over a table it could not read", ctx);
  if (f == SUPERBLOCKS)
    ck_assert_msg (r == -EEXIST, "%s: format returned %d (%s)", ctx, r,
                   err.msg);
  else {
    ck_assert_msg (r == -EIO, "%s: format returned %d (%s)", ctx, r,
                   err.msg);
    ck_assert_msg (strstr (err.msg, "failing-spare") && strstr (err.msg,
                   "byte 0") && strstr (err.msg, strerror (EIO))
                   && strstr (err.msg, "force"),
                   "%s: the refusal does not name the spare, the byte, "
                   "the error and the way out: %s", ctx, err.msg);
  }
  ck_assert_msg (memcmp (remap_mem_data (w.spare), w.golden_spare,
                         t->spare_size) == 0, "%s: format wrote", ctx);

  /* Open says what happened, not "no metadata". */
  struct remap_engine *e = NULL;
  remap_error_clear (&err);
  r = remap_open (tl_share (w.origin), fb, NULL, &e, &err);
  ck_assert_msg (r != 0 && r != -ENOMEDIUM, "%s: open returned %d (%s)",
                 ctx, r, err.msg);
  if (f != SUPERBLOCKS)
    ck_assert_msg (r == -EIO && strstr (err.msg, "failing-spare"),
                   "%s: open returned %d (%s)", ctx, r, err.msg);
  ck_assert_msg (memcmp (remap_mem_data (w.spare), w.golden_spare,
                         t->spare_size) == 0, "%s: open wrote", ctx);

  /* Once reads work again, the table is all there. */
  e = tl_open_ok (w.origin, w.spare, NULL);
  check_old_table (&w, e, ctx);
  ck_assert_int_eq (remap_close (e), 0);
  world_free (&w);
}
END_TEST

START_TEST (test_unreadable_blank)
{
  struct remap_backend *origin = tl_mem (1 * MiB), *spare = tl_mem (1 * MiB);
  /* Copy 3 of a geometric 4096-byte layout with 5 copies: a place only
   * that layout uses. */
  struct remap_layout l;
  ck_assert_int_eq (remap_layout_compute (1 * MiB, 4096,
                                          REMAP_STRATEGY_GEOMETRIC, 5, &l,
                                          NULL), 0);
  uint64_t at = l.copy_offset[3] * 4096;
  struct remap_fault_rule rule = { .off = at, .len = REMAP_SB_SIZE,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  struct remap_backend *fb, *fb2;
  ck_assert_int_eq (remap_fault_create (tl_share (spare), true, &fb), 0);
  ck_assert_int_eq (remap_fault_add_rule (fb, &rule), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (spare), true, &fb2), 0);
  ck_assert_int_eq (remap_fault_add_rule (fb2, &rule), 0);

  ck_assert (remap_spare_has_metadata (fb));
  struct remap_error err = { 0 };
  int r = tl_format (origin, fb, 4096, REMAP_STRATEGY_AUTO, 0, false, &err);
  char where[40];
  snprintf (where, sizeof where, "byte %" PRIu64, at);
  ck_assert_msg (r == -EIO && strstr (err.msg, where), "format returned %d "
                 "(%s), want -EIO naming %s", r, err.msg, where);
  for (uint64_t i = 0; i < spare->size; i++)
    REQ (remap_mem_data (spare)[i] == 0, "byte %" PRIu64 " written", i);
  struct remap_engine *e = NULL;
  remap_error_clear (&err);
  r = remap_open (tl_share (origin), fb2, NULL, &e, &err);
  ck_assert_msg (r == -EIO, "open returned %d (%s)", r, err.msg);

  /* By force it formats regardless; then it opens, with reads healed. */
  remap_error_clear (&err);
  r = tl_format (origin, fb, 4096, REMAP_STRATEGY_AUTO, 0, true, &err);
  ck_assert_msg (r == 0, "forced format: %d %s", r, err.msg);
  remap_backend_close (fb);
  e = tl_open_ok (origin, spare, NULL);
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

/* ---- a crash at every write of format ------------------------------------ */

struct crash_case {
  const char *what;
  struct table old;             /* unit 0: a blank spare */
  struct table new;
};

static const struct crash_case crash_cases[] = {
  { "blank, linear", { 0 }, { 4096, 1 * MiB, REMAP_STRATEGY_AUTO, 0 } },
  { "blank, minimal", { 0 }, { 512, 64 * KiB, REMAP_STRATEGY_MINIMAL, 2 } },
  { "force over the same layout",
    { 4096, 4 * MiB, REMAP_STRATEGY_AUTO, 0 },
    { 4096, 4 * MiB, REMAP_STRATEGY_AUTO, 0 } },
  /* 7 copies: version 2 extents (sb, map, 2 blocks) leave no room for 8
   * geometric copies in 1 MiB. */
  { "force, 4096 geometric over 512 linear",
    { 512, 1 * MiB, REMAP_STRATEGY_LINEAR, 4 },
    { 4096, 1 * MiB, REMAP_STRATEGY_GEOMETRIC, 7 } },
  { "force, 512 minimal over 4096 geometric",
    { 4096, 4 * MiB, REMAP_STRATEGY_GEOMETRIC, 5 },
    { 512, 4 * MiB, REMAP_STRATEGY_MINIMAL, 3 } },
};
#define NCRASH (sizeof crash_cases / sizeof crash_cases[0])

struct mode {
  enum remap_crash_mode m;
  uint64_t seed;
};

static const struct mode modes[] = {
  { REMAP_CRASH_DROP_ALL, 0 },
  { REMAP_CRASH_KEEP_SOME, 1 }, { REMAP_CRASH_KEEP_SOME, 2 },
  { REMAP_CRASH_KEEP_SOME, 3 },
  { REMAP_CRASH_TEAR_ONE, 1 }, { REMAP_CRASH_TEAR_ONE, 2 },
  { REMAP_CRASH_TEAR_ONE, 3 },
};
#define NMODES (sizeof modes / sizeof modes[0])

/* Is there a valid superblock, at a place its own layout gives it,
 * anywhere discovery could look? */
static bool
any_valid_superblock (const uint8_t *img, uint64_t size)
{
  for (uint32_t u = REMAP_MIN_UNIT; u <= REMAP_MAX_UNIT; u *= 2)
    for (int s = REMAP_STRATEGY_MINIMAL; s <= REMAP_STRATEGY_GEOMETRIC; s++)
      for (uint32_t c = 1; c <= REMAP_MAX_COPIES; c++) {
        struct remap_layout l;
        if (remap_layout_compute (size, u, (enum remap_strategy) s, c, &l,
                                  NULL) != 0)
          continue;
        for (uint32_t k = 0; k < c; k++) {
          struct remap_sb sb;
          uint64_t at = l.copy_offset[k] * u;
          if (remap_sb_decode (img + at, REMAP_SB_SIZE, &sb, NULL) == 0
              && sb.layout.copy_offset[sb.copy_index] * sb.layout.unit == at)
            return true;
        }
      }
  return false;
}

/* Format on a spare that crashes at write `at' (UINT64_MAX: never).
 * Returns the number of writes format made. */
static uint64_t
crashing_format (struct world *w, const struct crash_case *cc,
                 const uint8_t *image, uint64_t at, const struct mode *m,
                 const uint8_t uuid[16])
{
  memcpy (remap_mem_data (w->spare), image, cc->new.spare_size);
  struct remap_backend *fb;
  ck_assert_int_eq (remap_fault_create (tl_share (w->spare), true, &fb), 0);
  remap_fault_set_volatile (fb, true);
  if (at != UINT64_MAX)
    remap_fault_crash_at (fb, at, m->m, m->seed);
  struct remap_format_opts o;
  tl_format_opts (&o, cc->new.unit, cc->new.s, cc->new.copies, 2);
  memcpy (o.uuid, uuid, 16);
  o.force = cc->old.unit != 0;
  int r = remap_format (w->origin, fb, &o, NULL);
  uint64_t writes = remap_fault_writes (fb);
  if (at == UINT64_MAX)
    ck_assert_int_eq (r, 0);
  else
    ck_assert_msg (remap_fault_crashed (fb), "no crash at write %" PRIu64
                   " of %" PRIu64, at, writes);
  remap_backend_close (fb);    /* unflushed writes of a crash are gone */
  return writes;
}

START_TEST (test_format_crash)
{
  const struct crash_case *cc = &crash_cases[_i];
  struct world w;
  if (cc->old.unit)
    world_init (&w, &cc->old, 6);
  else {
    memset (&w, 0, sizeof w);
    w.origin = tl_mem (2 * MiB);
    w.spare = tl_mem (cc->new.spare_size);
    w.golden_spare = calloc (1, cc->new.spare_size);
  }
  uint8_t *image = malloc (cc->new.spare_size);
  memcpy (image, remap_mem_data (w.spare), cc->new.spare_size);
  uint8_t nuuid[16];
  for (int i = 0; i < 16; i++)
    nuuid[i] = (uint8_t) (0x90 + i);
  struct remap_layout nl;
  ck_assert_int_eq (remap_layout_compute (cc->new.spare_size, cc->new.unit,
                                          cc->new.s, cc->new.copies, &nl,
                                          NULL), 0);

  uint64_t writes = crashing_format (&w, cc, image, UINT64_MAX, &modes[0],
                                     nuuid);
  /* Version 2 format writes the map units (all bits clear) and the
   * superblocks, never a table block: every block unit keeps the bytes it
   * had (the old table's, or zero), but for old metadata that format by
   * force erased (512 zero bytes at old superblock places and old first
   * table blocks); and the maps claim none of them. */
  {
    const uint8_t *img = remap_mem_data (w.spare);
    struct remap_sb sb;
    tl_sb_of (img, &nl, 0, &sb);
    for (uint32_t i = 0; i < nl.copies; i++)
      for (uint64_t k = 0; k < nl.table_blocks; k++) {
        uint64_t at = remap_layout_block_unit (&nl, i, k) * nl.unit;
        for (uint64_t o = 0; o < nl.unit; o += REMAP_SB_SIZE) {
          static const uint8_t zero[REMAP_SB_SIZE];
          REQ (memcmp (img + at + o, image + at + o, REMAP_SB_SIZE) == 0
               || (cc->old.unit && memcmp (img + at + o, zero,
                                           REMAP_SB_SIZE) == 0),
               "%s: format wrote table block %" PRIu64 " of copy %u", cc->what,
               k, i);
        }
        REQ (tl_map_bit (img, &sb, i, k) == 0, "%s: copy %u's map claims "
             "block %" PRIu64 " after format", cc->what, i, k);
      }
  }
  unsigned olds = 0, news = 0, none = 0;
  for (uint64_t at = 0; at < writes; at++)
    for (size_t m = 0; m < NMODES; m++) {
      char ctx[160];
      snprintf (ctx, sizeof ctx, "%s: crash at write %" PRIu64 " of %"
                PRIu64 ", mode %d seed %" PRIu64, cc->what, at, writes,
                (int) modes[m].m, modes[m].seed);
      crashing_format (&w, cc, image, at, &modes[m], nuuid);
      bool valid = any_valid_superblock (remap_mem_data (w.spare),
                                         cc->new.spare_size);
      struct remap_engine *e = NULL;
      struct remap_error err = { 0 };
      int r = tl_open (w.origin, w.spare, NULL, &e, &err);
      if (!valid) {
        ck_assert_msg (r == -ENOMEDIUM || r == -EUCLEAN, "%s: no valid "
                       "superblock, open returned %d (%s)", ctx, r, err.msg);
        none++;
        continue;
      }
      ck_assert_msg (r == 0, "%s: a superblock is valid, but open returned "
                     "%d (%s)", ctx, r, err.msg);
      struct remap_info info;
      remap_get_info (e, &info);
      if (memcmp (info.uuid, nuuid, 16) == 0) {
        ck_assert_msg (info.layout.unit == nl.unit && info.layout.copies
                       == nl.copies && info.layout.strategy == nl.strategy,
                       "%s: the new table has the wrong layout", ctx);
        ck_assert_msg (tl_counters (e).reallocated_units == 0,
                       "%s: the new table has remaps", ctx);
        news++;
      }
      else {
        ck_assert_msg (cc->old.unit != 0, "%s: an unknown table", ctx);
        check_old_table (&w, e, ctx);
        olds++;
      }
      ck_assert_int_eq (remap_close (e), 0);
      /* The first open repaired everything: the second is clean. */
      e = tl_open_ok (w.origin, w.spare, NULL);
      struct remap_counters k = tl_counters (e);
      ck_assert_msg (k.repaired_blocks == 0 && k.copies_valid
                     == k.copies_total, "%s: second open repaired %" PRIu64
                     ", copies %u/%u", ctx, k.repaired_blocks,
                     k.copies_valid, k.copies_total);
      ck_assert_int_eq (remap_close (e), 0);
    }
  fprintf (stderr, "format crash, %s: %" PRIu64 " writes; opened the old "
           "table %u times, the new %u, nothing %u\n", cc->what, writes,
           olds, news, none);
  ck_assert_uint_gt (news, 0);
  if (cc->old.unit)
    ck_assert_uint_gt (olds, 0);
  free (image);
  world_free (&w);
}
END_TEST

static Suite *
format_suite (void)
{
  Suite *s = suite_create ("format safety");
  TCase *rd = tcase_create ("unreadable");
  TCase *cr = tcase_create ("crash");

  tcase_set_timeout (rd, 300);
  tcase_set_timeout (cr, 600);
  tcase_add_loop_test (rd, test_unreadable_table, 0, NTABLES * NFAILING);
  tcase_add_test (rd, test_unreadable_blank);
  tcase_add_loop_test (cr, test_format_crash, 0, NCRASH);
  suite_add_tcase (s, rd);
  suite_add_tcase (s, cr);
  return s;
}

int
main (void)
{
  return tl_run (format_suite ());
}
