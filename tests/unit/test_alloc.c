/* Unit tests: the spare allocator, through the public API (SPEC 1.3-1.4).
 *
 * Over mem backends, for several unit sizes and strategies: remap until the
 * spare is full; no spare unit handed out is reserved, handed out twice, or
 * one marked bad beforehand; the count is exactly usable - bad; exhaustion
 * is -ENOSPC with a message.  A write storm through remap_pwrite (every
 * origin write fails, so every write remaps) fills the spare and leaves
 * every metadata copy intact: superblocks byte-identical to the format,
 * table blocks decodable.  The next-fit cursor survives a reopen.
 */

#include "unit/testlib.h"

struct acfg {
  uint32_t unit;
  uint64_t spare;
  enum remap_strategy s;
  uint32_t copies;
};

static const struct acfg acfgs[] = {
  { 512, 40 * KiB, REMAP_STRATEGY_AUTO, 0 },            /* minimal 2 */
  { 512, 300 * KiB, REMAP_STRATEGY_MINIMAL, 3 },
  { 4096, 600 * KiB, REMAP_STRATEGY_AUTO, 0 },          /* linear 4 */
  { 4096, 1 * MiB, REMAP_STRATEGY_LINEAR, 8 },
  { 4096, 4 * MiB, REMAP_STRATEGY_AUTO, 0 },            /* geometric 5 */
  { 512, 4 * MiB, REMAP_STRATEGY_AUTO, 0 },             /* geometric, T big */
  { 2048, 2 * MiB, REMAP_STRATEGY_GEOMETRIC, 6 },
  { 65536, 4 * MiB + 100, REMAP_STRATEGY_AUTO, 0 },
  { 1024, 3 * MiB, REMAP_STRATEGY_GEOMETRIC, 2 },
};
#define NACFGS (sizeof acfgs / sizeof acfgs[0])

/* Fresh origin and spare for cfg; the origin has room for every remap. */
static void
setup_cfg (const struct acfg *c, struct remap_backend **origin,
           struct remap_backend **spare, struct remap_layout *l)
{
  ck_assert_int_eq (remap_layout_compute (c->spare, c->unit, c->s, c->copies,
                                          l, NULL), 0);
  *origin = tl_mem ((l->usable_units + 16) * c->unit);
  *spare = tl_mem (c->spare);
  tl_pattern (remap_mem_data (*origin), (*origin)->size, 1);
  tl_format_ok (*origin, *spare, c->unit, c->s, c->copies);
}

static bool
own_reserved (const struct remap_layout *l, uint64_t u)
{
  for (uint32_t i = 0; i < l->copies; i++)
    if (u >= l->copy_offset[i] && u < l->copy_offset[i] + l->copy_units)
      return true;
  return false;
}

/* Pick `n' distinct random non-reserved spare units. */
static void
pick_bad (const struct remap_layout *l, uint64_t *st, uint64_t *bad,
          unsigned n)
{
  for (unsigned i = 0; i < n;) {
    uint64_t s = tl_below (st, l->spare_units);
    bool dup = false;
    for (unsigned j = 0; j < i; j++)
      dup |= bad[j] == s;
    if (dup || own_reserved (l, s))
      continue;
    bad[i++] = s;
  }
}

START_TEST (test_remap_until_full)
{
  const struct acfg *c = &acfgs[_i];
  uint64_t seed = 0xa11c0 + _i, st = seed;
  struct remap_backend *origin, *spare;
  struct remap_layout l;
  setup_cfg (c, &origin, &spare, &l);
  struct remap_engine *e = tl_open_ok (origin, spare, NULL);
  struct remap_info info;
  remap_get_info (e, &info);
  ck_assert_uint_eq (info.layout.usable_units, l.usable_units);
  ck_assert_mem_eq (info.layout.copy_offset, l.copy_offset,
                    sizeof l.copy_offset);

  /* Reserved units cannot be marked bad. */
  for (uint32_t i = 0; i < l.copies; i++) {
    struct remap_error err = { 0 };
    ck_assert_int_eq (remap_mark_spare_bad (e, l.copy_offset[i], &err),
                      -EINVAL);
    ck_assert_int_eq (remap_mark_spare_bad (e, l.copy_offset[i]
                                            + l.copy_units - 1, NULL),
                      -EINVAL);
  }
  ck_assert_int_eq (remap_mark_spare_bad (e, l.spare_units, NULL), -EINVAL);

  unsigned nbad = l.usable_units > 8 ? 3 : 1;
  uint64_t bad[3];
  pick_bad (&l, &st, bad, nbad);
  for (unsigned i = 0; i < nbad; i++) {
    struct remap_error err = { 0 };
    int r = remap_mark_spare_bad (e, bad[i], &err);
    ck_assert_msg (r == 0, "mark bad %" PRIu64 ": %s", bad[i], err.msg);
  }
  ck_assert_uint_eq (tl_counters (e).spare_bad_units, nbad);

  uint8_t *seen = calloc (l.spare_units, 1);
  uint64_t u = 0, ok = 0;
  int r;
  struct remap_error err = { 0 };
  for (;; u++) {
    ck_assert_uint_lt (u, remap_size (e) / c->unit);
    remap_error_clear (&err);
    r = remap_remap (e, u, 0, &err);
    if (r)
      break;
    ok++;
    struct remap_mapping m = tl_lookup (e, u);
    REQ (m.state == REMAP_SLOT_MAPPED, "cfg %d unit %" PRIu64 ": state %d",
         _i, u, m.state);
    uint64_t s = m.spare_unit;
    REQ (s < l.spare_units, "cfg %d: spare unit %" PRIu64 " past N", _i, s);
    REQ (!remap_layout_is_reserved (&info.layout, s) && !own_reserved (&l, s),
         "cfg %d: unit %" PRIu64 " got reserved spare unit %" PRIu64, _i, u,
         s);
    REQ (!seen[s], "cfg %d: spare unit %" PRIu64 " handed out twice", _i, s);
    for (unsigned i = 0; i < nbad; i++)
      REQ (s != bad[i], "cfg %d: bad spare unit %" PRIu64 " handed out", _i,
           s);
    seen[s] = 1;
  }
  ck_assert_msg (r == -ENOSPC, "cfg %d: remap %" PRIu64 " ended with %d "
                 "(%s)", _i, u, r, err.msg);
  ck_assert_msg (strstr (err.msg, "full") != NULL, "message: %s", err.msg);
  ck_assert_uint_eq (ok, l.usable_units - nbad);
  struct remap_counters k = tl_counters (e);
  ck_assert_uint_eq (k.reallocated_units, ok);
  ck_assert_uint_eq (k.spare_free_units, 0);
  ck_assert_uint_eq (k.spare_usable_units, l.usable_units);
  ck_assert_uint_ge (k.enospc_events, 1);
  /* Still full after a retry; an already mapped unit is fine. */
  ck_assert_int_eq (remap_remap (e, u, 0, NULL), -ENOSPC);
  ck_assert_int_eq (remap_remap (e, 0, 0, NULL), 0);
  /* Data of every remapped unit came along. */
  uint8_t *buf = malloc (c->unit);
  for (uint64_t v = 0; v < ok; v++) {
    ck_assert_int_eq (remap_pread (e, buf, c->unit, v * c->unit, NULL), 0);
    REQ (memcmp (buf, remap_mem_data (origin) + v * c->unit, c->unit) == 0,
         "cfg %d: unit %" PRIu64 " data", _i, v);
  }
  ck_assert_int_eq (remap_close (e), 0);

  /* The same table after a reopen, and still full. */
  e = tl_open_ok (origin, spare, NULL);
  ck_assert_uint_eq (tl_counters (e).reallocated_units, ok);
  ck_assert_uint_eq (tl_counters (e).spare_bad_units, nbad);
  ck_assert_int_eq (remap_remap (e, u, 0, NULL), -ENOSPC);
  ck_assert_int_eq (remap_close (e), 0);

  free (buf);
  free (seen);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

/* ---- write storm ---------------------------------------------------------- */

static void
check_metadata (const struct acfg *c, const struct remap_layout *l,
                const uint8_t *spare_bytes, const uint8_t *sb_units,
                uint64_t want_mapped)
{
  uint32_t unit = c->unit, E = l->entries_per_block;
  struct remap_entry *ent = calloc (E, sizeof *ent);

  for (uint32_t i = 0; i < l->copies; i++) {
    const uint8_t *cp = spare_bytes + l->copy_offset[i] * unit;
    ck_assert_msg (memcmp (cp, sb_units + (size_t) i * unit, unit) == 0,
                   "copy %u: superblock unit changed since format", i);
    struct remap_sb sb;
    struct remap_error err = { 0 };
    ck_assert_msg (remap_sb_decode (cp, unit, &sb, &err) == 0, "copy %u: %s",
                   i, err.msg);
    uint64_t mapped = 0;
    /* Version 2: a block whose map bit is clear was never written and is
     * empty; one whose bit is set must validate.  Every block holding a
     * mapping is therefore claimed (the count below needs them). */
    for (uint64_t k = 0; k < l->table_blocks; k++) {
      struct remap_tb tb;
      remap_error_clear (&err);
      int r = tl_block_of (spare_bytes, &sb, i, k, &tb, ent, &err);
      REQ (r == 0 || r == 1, "copy %u block %" PRIu64 ": %d %s", i, k, r,
           err.msg);
      for (uint32_t j = 0; j < E; j++)
        mapped += ent[j].state == REMAP_SLOT_MAPPED;
    }
    REQ (mapped == want_mapped, "copy %u: %" PRIu64 " mapped entries, want %"
         PRIu64, i, mapped, want_mapped);
  }
  free (ent);
}

START_TEST (test_write_storm)
{
  const struct acfg *c = &acfgs[_i];
  struct remap_backend *origin, *spare, *ofault;
  struct remap_layout l;
  setup_cfg (c, &origin, &spare, &l);
  uint32_t unit = c->unit;
  uint64_t units = origin->size / unit;

  /* The superblock units right after format. */
  uint8_t *sb_units = malloc ((size_t) l.copies * unit);
  for (uint32_t i = 0; i < l.copies; i++)
    memcpy (sb_units + (size_t) i * unit,
            remap_mem_data (spare) + l.copy_offset[i] * unit, unit);

  /* Every origin write fails: each remap_pwrite moves its unit. */
  ck_assert_int_eq (remap_fault_create (tl_share (origin), true, &ofault), 0);
  struct remap_fault_rule rule = { .off = 0, .len = origin->size,
                                   .ops = REMAP_FAULT_WRITE, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (ofault, &rule), 0);
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_open (ofault, tl_share (spare), NULL, &e, &err), 0);

  uint8_t *buf = malloc (unit), *rbuf = malloc (unit);
  uint64_t u, written = 0;
  int r = 0;
  for (int round = 0; round < 2; round++) {
    for (u = 0; u < units; u++) {
      tl_pattern (buf, unit, 1000 * round + u + 7);
      remap_error_clear (&err);
      r = remap_pwrite (e, buf, unit, u * unit, 0, &err);
      if (r)
        break;
      if (round == 0)
        written++;
    }
    ck_assert_msg (r == -ENOSPC, "round %d unit %" PRIu64 ": %d %s", round,
                   u, r, err.msg);
    ck_assert_uint_eq (u, l.usable_units);
  }
  ck_assert_uint_eq (written, l.usable_units);
  ck_assert_uint_ge (tl_counters (e).write_errors, written);
  ck_assert_int_eq (remap_flush (e, NULL), 0);

  /* Every unit reads back its round-1 bytes, from its own spare unit. */
  for (u = 0; u < written; u++) {
    tl_pattern (buf, unit, 1000 + u + 7);
    ck_assert_int_eq (remap_pread (e, rbuf, unit, u * unit, NULL), 0);
    REQ (memcmp (buf, rbuf, unit) == 0, "cfg %d: unit %" PRIu64, _i, u);
    struct remap_mapping m = tl_lookup (e, u);
    REQ (memcmp (remap_mem_data (spare) + m.spare_unit * unit, buf, unit)
         == 0, "cfg %d: spare unit %" PRIu64, _i, m.spare_unit);
  }
  check_metadata (c, &l, remap_mem_data (spare), sb_units, written);
  ck_assert_int_eq (remap_close (e), 0);
  check_metadata (c, &l, remap_mem_data (spare), sb_units, written);

  /* And it all opens again with nothing to repair. */
  e = tl_open_ok (origin, spare, NULL);
  struct remap_counters k = tl_counters (e);
  ck_assert_uint_eq (k.repaired_blocks, 0);
  ck_assert_uint_eq (k.copies_valid, l.copies);
  ck_assert_uint_eq (k.reallocated_units, written);
  ck_assert_int_eq (remap_close (e), 0);

  free (buf);
  free (rbuf);
  free (sb_units);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

/* ---- next-fit cursor ---------------------------------------------------------- */

/* The first free, non-reserved spare unit after s (next-fit order). */
static uint64_t
next_after (const struct remap_layout *l, uint64_t s)
{
  for (uint64_t x = s + 1; x < l->spare_units; x++)
    if (!own_reserved (l, x))
      return x;
  return UINT64_MAX;
}

static uint64_t
remap_slot (struct remap_engine *e, uint64_t u)
{
  struct remap_error err = { 0 };
  int r = remap_remap (e, u, 0, &err);
  ck_assert_msg (r == 0, "remap %" PRIu64 ": %s", u, err.msg);
  return tl_lookup (e, u).spare_unit;
}

START_TEST (test_cursor_survives_reopen)
{
  /* 64 KiB of 512-byte units, minimal: copies at 0 and 6, data from 12. */
  const struct acfg c = { 512, 64 * KiB, REMAP_STRATEGY_AUTO, 0 };
  struct remap_backend *origin, *spare;
  struct remap_layout l;
  setup_cfg (&c, &origin, &spare, &l);
  uint64_t first = 0;
  while (own_reserved (&l, first))
    first++;

  struct remap_engine *e = tl_open_ok (origin, spare, NULL);
  uint64_t slot[12];
  for (uint64_t u = 0; u < 10; u++) {
    slot[u] = remap_slot (e, u);
    ck_assert_uint_eq (slot[u], u == 0 ? first : next_after (&l, slot[u - 1]));
  }
  /* Free the lowest five: a recycling allocator would hand them out. */
  for (uint64_t u = 0; u < 5; u++)
    ck_assert_int_eq (remap_unmap (e, u, 0, NULL), 0);
  ck_assert_int_eq (remap_close (e), 0);

  /* Last commit was an unmap: the cursor must still be past slot[9]. */
  e = tl_open_ok (origin, spare, NULL);
  slot[10] = remap_slot (e, 10);
  ck_assert_uint_eq (slot[10], next_after (&l, slot[9]));
  ck_assert_int_eq (remap_close (e), 0);

  e = tl_open_ok (origin, spare, NULL);
  slot[11] = remap_slot (e, 11);
  ck_assert_uint_eq (slot[11], next_after (&l, slot[10]));

  /* Fill to the end; then the cursor wraps to the holes. */
  uint64_t u = 12, last = slot[11];
  while (next_after (&l, last) != UINT64_MAX) {
    uint64_t s = remap_slot (e, u++);
    ck_assert_uint_eq (s, next_after (&l, last));
    last = s;
  }
  for (uint64_t k = 0; k < 5; k++)
    ck_assert_uint_eq (remap_slot (e, u++), slot[k]);
  ck_assert_int_eq (remap_remap (e, u, 0, NULL), -ENOSPC);
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

/* Bad units take capacity like mapped ones; a bad unit is skipped by
 * next-fit.  A pending unit holds a spare unit in version 1 (_i == 1,
 * a hand-made version 1 spare); in version 2 (_i == 0) it takes a
 * pending-only place (slot >= spare_units) and no capacity until it is
 * rewritten, when it gets a spare unit by next-fit and gives the place
 * back. */
START_TEST (test_bad_and_pending_take_space)
{
  const struct acfg c = { 4096, 600 * KiB, REMAP_STRATEGY_AUTO, 0 };
  struct remap_backend *origin, *spare;
  struct remap_layout l;
  bool v1 = _i == 1;
  if (v1) {
    origin = tl_mem (300 * 4096);
    spare = tl_mem (c.spare);
    tl_pattern (remap_mem_data (origin), origin->size, 1);
    tl_format_v1 (origin, spare, c.unit, c.s, c.copies, &l);
  }
  else
    setup_cfg (&c, &origin, &spare, &l);
  struct remap_engine *e = tl_open_ok (origin, spare, NULL);
  uint64_t first = 0;
  while (own_reserved (&l, first))
    first++;

  ck_assert_int_eq (remap_mark_spare_bad (e, first, NULL), 0);
  ck_assert_int_eq (remap_mark_spare_bad (e, first, NULL), 0);  /* again */
  ck_assert_uint_eq (remap_slot (e, 0), next_after (&l, first));
  uint64_t mapped0 = remap_slot (e, 0);
  ck_assert_int_eq (remap_mark_pending (e, 1, NULL), 0);
  struct remap_mapping m = tl_lookup (e, 1);
  ck_assert_int_eq (m.state, REMAP_SLOT_PENDING);
  struct remap_counters k = tl_counters (e);
  if (v1) {
    ck_assert (!own_reserved (&l, m.spare_unit));
    ck_assert_uint_lt (m.spare_unit, l.spare_units);
    ck_assert_uint_eq (k.spare_free_units, l.usable_units - 3);
  }
  else {
    /* The first pending-only place (its own next-fit starts there). */
    ck_assert_uint_eq (m.spare_unit, remap_layout_first_pending_slot (&l));
    ck_assert_uint_ge (m.spare_unit, l.spare_units);
    ck_assert_uint_eq (k.spare_free_units, l.usable_units - 2);
  }
  ck_assert_uint_eq (k.pending_units, 1);
  ck_assert_uint_eq (k.spare_bad_units, 1);
  if (v1)       /* A pending unit becomes mapped in its held slot. */
    ck_assert_uint_eq (remap_slot (e, 1), m.spare_unit);
  else {        /* It gets the next spare unit; the place is free again. */
    ck_assert_uint_eq (remap_slot (e, 1), next_after (&l, mapped0));
    ck_assert_uint_eq (tl_counters (e).pending_units, 0);
    ck_assert_int_eq (remap_mark_pending (e, 2, NULL), 0);
    ck_assert_uint_eq (tl_lookup (e, 2).spare_unit, m.spare_unit + 1);
    ck_assert_uint_eq (remap_slot (e, 2), next_after (&l, remap_slot (e, 1)));
  }
  ck_assert_uint_eq (tl_counters (e).spare_free_units, l.usable_units - 3
                     - !v1);

  uint64_t n = 0;
  for (uint64_t u = 3; remap_remap (e, u, 0, NULL) == 0; u++)
    n++;
  ck_assert_uint_eq (n, l.usable_units - 3 - !v1);
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

static Suite *
alloc_suite (void)
{
  Suite *s = suite_create ("alloc");
  TCase *full = tcase_create ("full");
  TCase *storm = tcase_create ("storm");
  TCase *cursor = tcase_create ("cursor");

  tcase_set_timeout (full, 300);
  tcase_set_timeout (storm, 300);
  tcase_add_loop_test (full, test_remap_until_full, 0, NACFGS);
  tcase_add_loop_test (storm, test_write_storm, 0, NACFGS);
  tcase_add_test (cursor, test_cursor_survives_reopen);
  tcase_add_loop_test (cursor, test_bad_and_pending_take_space, 0, 2);
  suite_add_tcase (s, full);
  suite_add_tcase (s, storm);
  suite_add_tcase (s, cursor);
  return s;
}

int
main (void)
{
  return tl_run (alloc_suite ());
}
