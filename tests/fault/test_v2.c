/* Fault tests: what format version 2 adds (SPEC 2.6, FORMAT.md 6.5, 10).
 *
 *   never_written     a table block that no map claims is empty without
 *                     being read: a rule failing reads of it never fires,
 *                     garbage or another spare's block there is ignored.
 *   damaged_block     a block whose map bit is set but whose bytes do not
 *                     validate (garbage, or all zero: what a never-written
 *                     unit often holds) is damaged, never empty: open
 *                     refuses when every copy has it so, and takes another
 *                     copy's version (and repairs) when one is valid.
 *   damaged_map       a map unit that does not validate makes its blocks be
 *                     read; repair rewrites it, claiming what the copy
 *                     holds; the next open is clean.
 *   crash_order       a crash at every write of commits that first-write
 *                     blocks (block, flush, map, flush), every crash mode,
 *                     volatile cache: in the image the crash leaves, no map
 *                     claims a block that does not validate; after reopen
 *                     every acknowledged remap and pending mark is there,
 *                     and nothing else but the operation the crash hit.
 *   pending_places    a dead region of more units than the spare has free
 *                     units is marked pending whole, in pending-only
 *                     places, and persists; rewriting it remaps units
 *                     while spare units last and writes the origin after
 *                     (whole units: no longer pending).
 */

#include "unit/testlib.h"

#define UNIT 4096u
#define SPARE_SIZE (1 * MiB)    /* v2: linear x4, L = 4, T = 2, M = 1 */
#define ORIGIN_UNITS 256u
#define ORIGIN_SIZE ((uint64_t) ORIGIN_UNITS * UNIT)

struct env {
  struct remap_backend *omem, *smem;
  struct remap_layout l;
  struct remap_sb sb;
};

static void
env_init (struct env *v, uint64_t spare, uint32_t unit, uint64_t origin)
{
  memset (v, 0, sizeof *v);
  v->omem = tl_mem (origin);
  v->smem = tl_mem (spare);
  tl_pattern (remap_mem_data (v->omem), origin, 0x2a);
  tl_format_ok (v->omem, v->smem, unit, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_layout_compute (spare, unit, REMAP_STRATEGY_AUTO,
                                          0, &v->l, NULL), 0);
  ck_assert_uint_eq (v->l.version, 2);
  tl_sb_of (remap_mem_data (v->smem), &v->l, 0, &v->sb);
}

static void
env_free (struct env *v)
{
  remap_backend_close (v->omem);
  remap_backend_close (v->smem);
}

static uint8_t *
block_at (struct env *v, uint32_t i, uint64_t k)
{
  return remap_mem_data (v->smem)
    + remap_layout_block_unit (&v->l, i, k) * v->l.unit;
}

static uint8_t *
map_at (struct env *v, uint32_t i, uint64_t m)
{
  return remap_mem_data (v->smem)
    + remap_layout_map_unit (&v->l, i, m) * v->l.unit;
}

/* Open over a fault injector on the spare with `rules'. */
static int
open_with_rules (struct env *v, const struct remap_fault_rule *rules,
                 size_t n, const struct remap_open_opts *o,
                 struct remap_backend **fb, struct remap_engine **e,
                 struct remap_error *err)
{
  ck_assert_int_eq (remap_fault_create (tl_share (v->smem), true, fb), 0);
  if (n)
    ck_assert_int_eq (remap_fault_set_rules (*fb, rules, n), 0);
  return remap_open (tl_share (v->omem), *fb, o, e, err);
}

/* ---- (1) never written: not read -------------------------------------- */

START_TEST (test_never_written_not_read)
{
  struct env v;
  env_init (&v, SPARE_SIZE, UNIT, ORIGIN_SIZE);
  ck_assert_uint_eq (v.l.table_blocks, 2);
  struct remap_engine *e = tl_open_ok (v.omem, v.smem, NULL);
  ck_assert_int_eq (remap_remap (e, 3, 0, NULL), 0);    /* block 0 */
  ck_assert_int_eq (remap_close (e), 0);
  uint8_t *img = remap_mem_data (v.smem);
  for (uint32_t i = 0; i < v.l.copies; i++) {
    ck_assert_int_eq (tl_map_bit (img, &v.sb, i, 0), 1);
    ck_assert_int_eq (tl_map_bit (img, &v.sb, i, 1), 0);
  }

  /* Block 1 of every copy: garbage in one, another spare's valid block in
   * another, and reads of it fail in every copy. */
  uint64_t st = 11;
  tl_random_bytes (&st, block_at (&v, 0, 1), UNIT);
  struct remap_tb tb = { .generation = 99999, .block_index = 1 };
  memset (tb.uuid, 0x77, 16);
  remap_tb_encode (&tb, NULL, 0, UNIT, block_at (&v, 1, 1));
  struct remap_fault_rule rules[REMAP_MAX_COPIES];
  for (uint32_t i = 0; i < v.l.copies; i++)
    rules[i] = (struct remap_fault_rule) {
      .off = remap_layout_block_unit (&v.l, i, 1) * UNIT, .len = UNIT,
      .ops = REMAP_FAULT_READ, .err = -EIO };
  uint8_t *before = malloc (SPARE_SIZE);
  memcpy (before, img, SPARE_SIZE);

  for (int ro = 0; ro < 2; ro++) {
    struct remap_open_opts o = { .readonly = ro };
    struct remap_backend *fb;
    struct remap_error err = { 0 };
    int r = open_with_rules (&v, rules, v.l.copies, &o, &fb, &e, &err);
    ck_assert_msg (r == 0, "open: %d %s", r, err.msg);
    ck_assert_msg (remap_fault_injected (fb) == 0, "an unclaimed block was "
                   "read (%" PRIu64 " failed reads)",
                   remap_fault_injected (fb));
    struct remap_counters c = tl_counters (e);
    ck_assert_uint_eq (c.copies_valid, v.l.copies);
    ck_assert_uint_eq (c.repaired_blocks, 0);
    ck_assert_uint_eq (c.reallocated_units, 1);
    ck_assert_int_eq (tl_lookup (e, 3).state, REMAP_SLOT_MAPPED);
    ck_assert_int_eq (remap_close (e), 0);
    ck_assert_msg (memcmp (before, img, SPARE_SIZE) == 0, "open wrote");
  }
  /* inspect agrees: clean. */
  struct remap_inspect *in = calloc (1, sizeof *in);
  ck_assert_int_eq (remap_inspect (v.smem, in, NULL), 0);
  ck_assert_msg (in->verdict == REMAP_CLEAN, "verdict %d: %s", in->verdict,
                 in->reason);
  free (in);
  free (before);
  env_free (&v);
}
END_TEST

/* ---- (1) damaged: bit set, bytes bad ------------------------------------ */

/* Block 1 holds the pending-only places of this layout: a pending mark
 * first-writes it in every copy. */
static void
pending_in_block1 (struct env *v, uint64_t u)
{
  struct remap_engine *e = tl_open_ok (v->omem, v->smem, NULL);
  ck_assert_int_eq (remap_remap (e, 3, 0, NULL), 0);
  ck_assert_int_eq (remap_mark_pending (e, u, NULL), 0);
  struct remap_mapping m = tl_lookup (e, u);
  ck_assert_int_eq (m.state, REMAP_SLOT_PENDING);
  ck_assert_uint_eq (m.spare_unit / v->l.entries_per_block, 1);
  ck_assert_int_eq (remap_close (e), 0);
  for (uint32_t i = 0; i < v->l.copies; i++)
    ck_assert_int_eq (tl_map_bit (remap_mem_data (v->smem), &v->sb, i, 1),
                      1);
}

START_TEST (test_damaged_block_not_empty)
{
  /* _i: 0 garbage, 1 all zero, 2 another spare's valid block. */
  struct env v;
  env_init (&v, SPARE_SIZE, UNIT, ORIGIN_SIZE);
  pending_in_block1 (&v, 40);
  uint8_t *img = remap_mem_data (v.smem);
  uint8_t *golden = malloc (SPARE_SIZE);
  memcpy (golden, img, SPARE_SIZE);
  uint64_t st = 5 + _i;

  for (uint32_t keep = 0; keep <= v.l.copies; keep++) {
    /* keep == copies: every copy damaged; else copy `keep' stays valid. */
    memcpy (img, golden, SPARE_SIZE);
    for (uint32_t i = 0; i < v.l.copies; i++) {
      if (i == keep)
        continue;
      uint8_t *b = block_at (&v, i, 1);
      if (_i == 0)
        tl_random_bytes (&st, b, UNIT);
      else if (_i == 1)
        memset (b, 0, UNIT);
      else {
        struct remap_tb tb = { .generation = 7, .block_index = 1 };
        memset (tb.uuid, 0x3c, 16);
        remap_tb_encode (&tb, NULL, 0, UNIT, b);
      }
    }
    uint8_t *before = malloc (SPARE_SIZE);
    memcpy (before, img, SPARE_SIZE);
    struct remap_engine *e = NULL;
    struct remap_error err = { 0 };
    int r = tl_open (v.omem, v.smem, NULL, &e, &err);
    if (keep == v.l.copies) {
      ck_assert_msg (r == -EUCLEAN, "kind %d, every copy damaged: open "
                     "returned %d (%s)", _i, r, err.msg);
      if (_i != 2)
        ck_assert_msg (strstr (err.msg, "table block 1"), "message: %s",
                       err.msg);
      ck_assert_msg (memcmp (before, img, SPARE_SIZE) == 0,
                     "a refused open wrote");
      free (before);
      continue;
    }
    free (before);
    if (_i == 2) {
      /* Another spare's metadata in the copies: a refusal, never a
       * repair over it. */
      ck_assert_msg (r == -EUCLEAN, "kind 2, copy %u kept: open returned "
                     "%d", keep, r);
      continue;
    }
    ck_assert_msg (r == 0, "kind %d, copy %u kept: open: %d %s", _i, keep, r,
                   err.msg);
    struct remap_counters c = tl_counters (e);
    ck_assert_uint_eq (c.copies_valid, v.l.copies);
    ck_assert_uint_ge (c.repaired_blocks, v.l.copies - 1);
    ck_assert_int_eq (tl_lookup (e, 40).state, REMAP_SLOT_PENDING);
    ck_assert_uint_eq (c.pending_units, 1);
    ck_assert_int_eq (remap_close (e), 0);
    e = tl_open_ok (v.omem, v.smem, NULL);
    ck_assert_uint_eq (tl_counters (e).repaired_blocks, 0);
    ck_assert_int_eq (tl_lookup (e, 40).state, REMAP_SLOT_PENDING);
    ck_assert_int_eq (remap_close (e), 0);
  }
  free (golden);
  env_free (&v);
}
END_TEST

/* ---- (2) a damaged map unit ------------------------------------------------ */

START_TEST (test_damaged_map_read_and_repaired)
{
  struct env v;
  env_init (&v, SPARE_SIZE, UNIT, ORIGIN_SIZE);
  struct remap_engine *e = tl_open_ok (v.omem, v.smem, NULL);
  ck_assert_int_eq (remap_remap (e, 3, 0, NULL), 0);    /* block 0 */
  ck_assert_int_eq (remap_close (e), 0);
  uint8_t *img = remap_mem_data (v.smem);
  const uint32_t j = 1;
  /* _i == 0: a flipped bit; 1: zeroed; 2: a map unit of another index. */
  uint8_t *mp = map_at (&v, j, 0);
  if (_i == 0)
    mp[REMAP_MAP_HEADER_SIZE] ^= 0x80;
  else if (_i == 1)
    memset (mp, 0, UNIT);
  else {
    tl_put64 (mp + 16, 1);
    tl_tb_recrc (mp, UNIT);
  }
  ck_assert_int_eq (tl_map_bit (img, &v.sb, j, 0), -1);

  /* Reads of block 1 fail in copy j (which may hold it, as far as anyone
   * knows) and in copy 0 (whose map says it never wrote it). */
  struct remap_fault_rule rule = {
    .off = remap_layout_block_unit (&v.l, j, 1) * UNIT, .len = UNIT,
    .ops = REMAP_FAULT_READ, .err = -EIO };
  struct remap_backend *fb;
  struct remap_error err = { 0 };
  int r = open_with_rules (&v, &rule, 1, NULL, &fb, &e, &err);
  ck_assert_msg (r == 0, "open: %d %s", r, err.msg);
  ck_assert_msg (remap_fault_injected (fb) >= 1, "copy %u's blocks were not "
                 "read although its map is damaged", j);
  struct remap_counters c = tl_counters (e);
  ck_assert_uint_eq (c.copies_valid, v.l.copies);
  ck_assert_uint_gt (c.repaired_blocks, 0);
  ck_assert_int_eq (tl_lookup (e, 3).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (remap_close (e), 0);
  /* The map unit is valid again and claims block 0. */
  ck_assert_int_eq (tl_map_bit (img, &v.sb, j, 0), 1);
  /* Every claimed block validates in every copy. */
  for (uint32_t i = 0; i < v.l.copies; i++)
    for (uint64_t k = 0; k < v.l.table_blocks; k++) {
      struct remap_tb tb;
      struct remap_entry *ent = calloc (v.l.entries_per_block, sizeof *ent);
      int b = tl_block_of (img, &v.sb, i, k, &tb, ent, NULL);
      REQ (b == 0 || b == 1, "copy %u block %" PRIu64 ": %d", i, k, b);
      free (ent);
    }

  /* Clean now; copy 0's unclaimed blocks are not read. */
  rule.off = remap_layout_block_unit (&v.l, 0, 1) * UNIT;
  if (tl_map_bit (img, &v.sb, 0, 1) == 0) {
    r = open_with_rules (&v, &rule, 1, NULL, &fb, &e, &err);
    ck_assert_msg (r == 0, "reopen: %s", err.msg);
    ck_assert_uint_eq (remap_fault_injected (fb), 0);
  }
  else
    e = tl_open_ok (v.omem, v.smem, NULL);
  c = tl_counters (e);
  ck_assert_uint_eq (c.repaired_blocks, 0);
  ck_assert_uint_eq (c.copies_valid, v.l.copies);
  ck_assert_int_eq (tl_lookup (e, 3).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (remap_close (e), 0);
  env_free (&v);
}
END_TEST

/* ---- (3) crash order -------------------------------------------------------- */

/* 512-byte units, 64 KiB: N = 128, E = 28, Tr = 5, places 128..167 (the
 * tail of block 4, then block 5), minimal x2 (extents 0..7, 8..15).  The
 * remaps first-write blocks 0 and 1, the pending marks blocks 4 and 5;
 * blocks 2 and 3 stay unwritten. */
#define C_SPARE (64 * KiB)
#define C_UNIT 512u
#define C_ORIGIN_UNITS 256u
#define C_STEPS 48

struct cstep {
  bool pending;                 /* mark pending, else remap */
  uint64_t unit;
};

static void
crash_steps (struct cstep *s)
{
  for (int i = 0; i < C_STEPS; i++) {
    s[i].pending = i % 3 == 2;
    s[i].unit = 2 + 3 * (uint64_t) i;
  }
}

/* Run the steps on engine e; ack[i] says step i returned 0. */
static void
run_steps (struct remap_engine *e, const struct cstep *s, bool *ack,
           struct remap_mapping *got)
{
  for (int i = 0; i < C_STEPS; i++) {
    int r = s[i].pending ? remap_mark_pending (e, s[i].unit, NULL)
      : remap_remap (e, s[i].unit, 0, NULL);
    ack[i] = r == 0;
    if (r != 0) {
      /* The process dies: nothing more is issued. */
      for (int j = i + 1; j < C_STEPS; j++)
        ack[j] = false;
      return;
    }
    if (got)
      got[i] = tl_lookup (e, s[i].unit);
  }
}

/* Block before map: in the raw image, every block a map claims validates
 * (torn writes can only hit what was not flushed). */
static void
check_maps_claim_valid (const uint8_t *img, const struct remap_layout *l,
                        const char *ctx)
{
  struct remap_sb sb;
  struct remap_entry *ent = calloc (l->entries_per_block, sizeof *ent);
  for (uint32_t i = 0; i < l->copies; i++) {
    if (remap_sb_decode (img + remap_layout_sb_unit (l, i) * l->unit,
                         l->unit, &sb, NULL) != 0)
      continue;
    for (uint64_t k = 0; k < l->table_blocks; k++) {
      struct remap_tb tb;
      int b = tl_block_of (img, &sb, i, k, &tb, ent, NULL);
      /* (A map unit that does not validate claims nothing.) */
      if (tl_map_bit (img, &sb, i, k) == 1)
        REQ (b == 0, "%s: copy %u's map claims block %" PRIu64 ", which "
             "does not validate (%d): a map was written before its block "
             "was durable", ctx, i, k, b);
    }
  }
  free (ent);
}

START_TEST (test_crash_order)
{
  struct env v;
  env_init (&v, C_SPARE, C_UNIT, (uint64_t) C_ORIGIN_UNITS * C_UNIT);
  ck_assert_uint_eq (v.l.real_blocks, 5);
  ck_assert_uint_eq (v.l.table_blocks, 6);
  uint8_t *golden = malloc (C_SPARE);
  memcpy (golden, remap_mem_data (v.smem), C_SPARE);
  struct cstep s[C_STEPS];
  crash_steps (s);

  /* The full run: count the writes; every block gets first-written. */
  bool ack[C_STEPS];
  struct remap_mapping want[C_STEPS];
  struct remap_backend *base = tl_mem_copy (golden, C_SPARE), *fb;
  ck_assert_int_eq (remap_fault_create (tl_share (base), true, &fb), 0);
  struct remap_engine *e;
  ck_assert_int_eq (remap_open (tl_share (v.omem), fb, NULL, &e, NULL), 0);
  uint64_t w0 = remap_fault_writes (fb);
  run_steps (e, s, ack, want);
  uint64_t writes = remap_fault_writes (fb);
  ck_assert_int_eq (remap_close (e), 0);
  for (int i = 0; i < C_STEPS; i++)
    ck_assert_msg (ack[i], "step %d failed without a crash", i);
  struct remap_sb sb;
  tl_sb_of (remap_mem_data (base), &v.l, 0, &sb);
  for (uint32_t i = 0; i < v.l.copies; i++)
    for (uint64_t k = 0; k < v.l.table_blocks; k++)
      ck_assert_msg (tl_map_bit (remap_mem_data (base), &sb, i, k)
                     == (k != 2 && k != 3), "copy %u block %" PRIu64
                     ": map bit %d", i, k,
                     tl_map_bit (remap_mem_data (base), &sb, i, k));
  remap_backend_close (base);

  static const struct { enum remap_crash_mode m; uint64_t seed; } modes[] = {
    { REMAP_CRASH_DROP_ALL, 0 }, { REMAP_CRASH_KEEP_SOME, 1 },
    { REMAP_CRASH_KEEP_SOME, 2 }, { REMAP_CRASH_TEAR_ONE, 1 },
    { REMAP_CRASH_TEAR_ONE, 2 },
  };
  unsigned runs = 0;
  for (uint64_t k = w0; k < writes; k++)
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
      char ctx[96];
      snprintf (ctx, sizeof ctx, "crash at write %" PRIu64 " of %" PRIu64
                ", mode %d seed %" PRIu64, k, writes, (int) modes[m].m,
                modes[m].seed);
      base = tl_mem_copy (golden, C_SPARE);
      ck_assert_int_eq (remap_fault_create (tl_share (base), true, &fb), 0);
      remap_fault_set_volatile (fb, true);
      remap_fault_crash_at (fb, k, modes[m].m, modes[m].seed);
      ck_assert_int_eq (remap_open (tl_share (v.omem), fb, NULL, &e, NULL),
                        0);
      run_steps (e, s, ack, NULL);
      ck_assert_msg (remap_fault_crashed (fb), "%s: no crash", ctx);
      remap_close (e);          /* its flushes fail: the crash */
      check_maps_claim_valid (remap_mem_data (base), &v.l, ctx);

      struct remap_engine *e2 = tl_open_ok (v.omem, base, NULL);
      int inflight = -1;
      for (int i = 0; i < C_STEPS; i++)
        if (!ack[i]) {
          inflight = i;
          break;
        }
      for (int i = 0; i < C_STEPS; i++) {
        struct remap_mapping mp = tl_lookup (e2, s[i].unit);
        if (ack[i])
          REQ (mp.state == want[i].state
               && mp.spare_unit == want[i].spare_unit, "%s: acknowledged "
               "step %d (%s unit %" PRIu64 ") lost: state %d spare %" PRIu64,
               ctx, i, s[i].pending ? "pending" : "remap", s[i].unit,
               mp.state, mp.spare_unit);
        else if (i == inflight)
          REQ (mp.state == REMAP_SLOT_FREE
               || (mp.state == want[i].state
                   && mp.spare_unit == want[i].spare_unit),
               "%s: step %d in flight: state %d spare %" PRIu64, ctx, i,
               mp.state, mp.spare_unit);
        else
          REQ (mp.state == REMAP_SLOT_FREE, "%s: step %d was never issued, "
               "yet unit %" PRIu64 " has state %d", ctx, i, s[i].unit,
               mp.state);
      }
      /* Nothing else: no unit outside the steps. */
      for (uint64_t u = 0; u < C_ORIGIN_UNITS; u++)
        if (u < 2 || (u - 2) % 3 != 0 || (u - 2) / 3 >= C_STEPS)
          REQ (tl_lookup (e2, u).state == REMAP_SLOT_FREE, "%s: unit %"
               PRIu64 " appeared", ctx, u);
      struct remap_counters c = tl_counters (e2);
      ck_assert_uint_eq (c.copies_valid, v.l.copies);
      ck_assert_int_eq (remap_close (e2), 0);
      e2 = tl_open_ok (v.omem, base, NULL);
      REQ (tl_counters (e2).repaired_blocks == 0, "%s: second open "
           "repaired", ctx);
      ck_assert_int_eq (remap_close (e2), 0);
      check_maps_claim_valid (remap_mem_data (base), &v.l, ctx);
      remap_backend_close (base);
      runs++;
    }
  fprintf (stderr, "crash order: %" PRIu64 " writes, %u crashes\n",
           writes - w0, runs);
  ck_assert_uint_gt (runs, 0);
  free (golden);
  env_free (&v);
}
END_TEST

/* ---- (4) pending-only places ----------------------------------------------- */

START_TEST (test_pending_places_hold_a_dead_region)
{
  struct env v;
  env_init (&v, SPARE_SIZE, UNIT, ORIGIN_SIZE);
  uint64_t places = v.l.table_blocks * v.l.entries_per_block
    - v.l.spare_units;
  uint64_t usable = v.l.usable_units;
  const uint64_t first = 8;
  uint64_t dead = usable + 5;   /* more than the spare has free */
  ck_assert_uint_le (dead, places);
  ck_assert_uint_le (first + dead, ORIGIN_UNITS);

  struct remap_backend *fo;
  ck_assert_int_eq (remap_fault_create (tl_share (v.omem), true, &fo), 0);
  struct remap_fault_rule rule = { .off = first * UNIT, .len = dead * UNIT,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (fo, &rule), 0);
  struct remap_open_opts o = { .read_retries = 0 };
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (fo, tl_share (v.smem), &o, &e, &err) == 0,
                 "open: %s", err.msg);
  uint8_t buf[UNIT];
  for (uint64_t u = first; u < first + dead; u++)
    ck_assert_int_eq (remap_pread (e, buf, UNIT, u * UNIT, NULL), -EIO);
  struct remap_counters c = tl_counters (e);
  ck_assert_uint_eq (c.pending_units, dead);
  ck_assert_uint_eq (c.spare_free_units, usable);      /* none taken */
  for (uint64_t u = first; u < first + dead; u++) {
    REQ (remap_unit_pending (e, u) == 1, "unit %" PRIu64 " not recorded",
         u);
    REQ (tl_lookup (e, u).spare_unit >= v.l.spare_units, "unit %" PRIu64
         " holds a spare unit", u);
  }
  ck_assert_int_eq (remap_close (e), 0);

  /* Persisted. */
  e = tl_open_ok (v.omem, v.smem, NULL);
  c = tl_counters (e);
  ck_assert_uint_eq (c.pending_units, dead);
  ck_assert_uint_eq (c.spare_free_units, usable);
  for (uint64_t u = first; u < first + dead; u++)
    REQ (tl_lookup (e, u).state == REMAP_SLOT_PENDING, "unit %" PRIu64
         " lost its mark", u);

  /* Rewrite them all: remapped while spare units last, then written to
   * the origin (whole units: no longer pending). */
  uint64_t mapped = 0, to_origin = 0;
  for (uint64_t u = first; u < first + dead; u++) {
    tl_pattern (buf, UNIT, 0x1000 + u);
    struct remap_error werr = { 0 };
    int r = remap_pwrite (e, buf, UNIT, u * UNIT, 0, &werr);
    ck_assert_msg (r == 0, "rewrite of unit %" PRIu64 ": %d %s", u, r,
                   werr.msg);
    struct remap_mapping m = tl_lookup (e, u);
    if (m.state == REMAP_SLOT_MAPPED) {
      REQ (m.spare_unit < v.l.spare_units
           && !remap_layout_is_reserved (&v.l, m.spare_unit), "unit %"
           PRIu64 ": spare unit %" PRIu64, u, m.spare_unit);
      REQ (to_origin == 0, "unit %" PRIu64 " remapped after the spare "
           "was full", u);
      mapped++;
    }
    else {
      REQ (m.state == REMAP_SLOT_FREE, "unit %" PRIu64 " state %d", u,
           m.state);
      REQ (memcmp (remap_mem_data (v.omem) + u * UNIT, buf, UNIT) == 0,
           "unit %" PRIu64 ": the origin did not get the write", u);
      to_origin++;
    }
  }
  ck_assert_uint_eq (mapped, usable);
  ck_assert_uint_eq (to_origin, dead - usable);
  c = tl_counters (e);
  ck_assert_uint_eq (c.pending_units, 0);
  ck_assert_uint_eq (c.reallocated_units, usable);
  ck_assert_uint_eq (c.spare_free_units, 0);
  ck_assert_int_eq (remap_close (e), 0);

  e = tl_open_ok (v.omem, v.smem, NULL);
  c = tl_counters (e);
  ck_assert_uint_eq (c.pending_units, 0);
  ck_assert_uint_eq (c.reallocated_units, usable);
  ck_assert_uint_eq (c.repaired_blocks, 0);
  for (uint64_t u = first; u < first + dead; u++) {
    ck_assert_int_eq (remap_pread (e, buf, UNIT, u * UNIT, NULL), 0);
    uint8_t want[UNIT];
    tl_pattern (want, UNIT, 0x1000 + u);
    REQ (memcmp (buf, want, UNIT) == 0, "unit %" PRIu64 " reads wrong", u);
  }
  ck_assert_int_eq (remap_close (e), 0);
  env_free (&v);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("v2");
  TCase *tc = tcase_create ("v2");
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_never_written_not_read);
  tcase_add_loop_test (tc, test_damaged_block_not_empty, 0, 3);
  tcase_add_loop_test (tc, test_damaged_map_read_and_repaired, 0, 3);
  tcase_add_test (tc, test_crash_order);
  tcase_add_test (tc, test_pending_places_hold_a_dead_region);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
