/* More data-safety behaviours that the mutation campaign (scripts/mutate.sh,
 * docs/MUTATION.md) found unguarded.  Each test names the behaviour it
 * keeps and the mutant that it kills; each was checked to pass on the
 * unmutated tree and to fail with that mutant applied.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 64u
#define ORIGIN_SIZE ((uint64_t) ORIGIN_UNITS * UNIT)

struct env {
  struct remap_backend *omem, *smem;     /* the bytes */
  struct remap_backend *ofault, *sfault; /* what the engine holds */
  struct remap_engine *e;
  struct remap_layout l;
};

static void
env_open_v (struct env *v, uint64_t spare_bytes, uint32_t version)
{
  memset (v, 0, sizeof *v);
  v->omem = tl_mem (ORIGIN_SIZE);
  v->smem = tl_mem (spare_bytes);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    tl_pattern (remap_mem_data (v->omem) + u * UNIT, UNIT, u + 1);
  if (version == 1)            /* pending units hold spare units there */
    tl_format_v1 (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, 0, &v->l);
  else {
    tl_format_ok (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, 0);
    ck_assert_int_eq (remap_layout_compute (spare_bytes, UNIT,
                                            REMAP_STRATEGY_AUTO, 0, &v->l,
                                            NULL), 0);
  }
  ck_assert_int_eq (remap_fault_create (tl_share (v->omem), true,
                                        &v->ofault), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->smem), true,
                                        &v->sfault), 0);
  struct remap_error err = { 0 };
  int r = remap_open (v->ofault, v->sfault, NULL, &v->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
}

static void
env_open (struct env *v, uint64_t spare_bytes)
{
  env_open_v (v, spare_bytes, 2);
}

static void
env_close (struct env *v)
{
  if (v->e)
    remap_close (v->e);
  remap_backend_close (v->omem);
  remap_backend_close (v->smem);
}

static void
fail_range (struct remap_backend *fb, uint64_t off, uint64_t len,
            unsigned ops, uint64_t times)
{
  struct remap_fault_rule r = { .off = off, .len = len, .ops = ops,
                                .err = -EIO, .times = times };
  ck_assert_int_eq (remap_fault_add_rule (fb, &r), 0);
}

/* A unit that is pending in memory only (the spare was full when its read
 * failed) stops being pending once a commit maps it, here a remap by hand
 * after room was made: the counters no longer call it pending, and the
 * unit reads its data.  Kills apply-keeps-vpend. */
START_TEST (test_memory_pending_cleared_by_remap)
{
  struct env v;
  /* Format version 1: there a pending mark holds a spare unit, so a full
   * spare leaves it in memory only (version 2 records it in a place). */
  env_open_v (&v, 64 * KiB, 1);
  ck_assert_uint_ge (v.l.usable_units, 2);
  ck_assert_uint_le (v.l.usable_units, 40);
  for (uint64_t i = 0; i < v.l.usable_units; i++)
    ck_assert_int_eq (remap_remap (v.e, 20 + i, 0, NULL), 0);
  ck_assert_uint_eq (tl_counters (v.e).spare_free_units, 0);

  uint8_t got[UNIT], want[UNIT];
  fail_range (v.ofault, 9 * UNIT, UNIT, REMAP_FAULT_READ, 0);
  ck_assert_int_eq (remap_pread (v.e, got, UNIT, 9 * UNIT, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 1);
  ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_FREE);
  remap_fault_clear_rules (v.ofault);

  ck_assert_int_eq (remap_unmap (v.e, 20, 0, NULL), 0);
  ck_assert_uint_eq (tl_counters (v.e).spare_free_units, 1);
  ck_assert_int_eq (remap_remap (v.e, 9, 0, NULL), 0);
  ck_assert_int_eq (tl_lookup (v.e, 9).state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 0);
  tl_pattern (want, UNIT, 9 + 1);
  ck_assert_int_eq (remap_pread (v.e, got, UNIT, 9 * UNIT, NULL), 0);
  ck_assert (memcmp (got, want, UNIT) == 0);
  env_close (&v);
}
END_TEST

static struct remap_engine *
env_reopen_plain (struct env *v)
{
  if (v->e)
    remap_close (v->e);
  v->e = NULL;
  return tl_open_ok (v->omem, v->smem, NULL);
}

/* A commit whose writes all failed still spends its generation: a failed
 * write (here: written, but its flush failed) may be on the disk, and the
 * next commit of that block must win over it at open.  Copy 0 keeps the
 * failed commit's block (the next commit's write to it fails), copy 1 gets
 * the next commit's: with one generation for both, open would take copy
 * 0's and lose the acknowledged remap of unit 5.  A first remap writes
 * block 0 in both copies, so that both maps claim it (version 2: a map
 * is written only after its block's write and flush succeed).  Kills
 * commit-gen-spent-only-on-success. */
START_TEST (test_failed_commit_spends_generation)
{
  struct env v;
  env_open (&v, 64 * KiB);
  ck_assert_uint_eq (v.l.copies, 2);
  ck_assert_uint_eq (v.l.table_blocks, 1);
  ck_assert_int_eq (remap_remap (v.e, 2, 0, NULL), 0);

  /* The data flush of the remap passes, both commit flushes fail. */
  struct remap_fault_rule fl = { .ops = REMAP_FAULT_FLUSH, .err = -EIO,
                                 .after = 1, .times = 2 };
  ck_assert_int_eq (remap_fault_add_rule (v.sfault, &fl), 0);
  ck_assert_int_ne (remap_remap (v.e, 3, 0, NULL), 0);
  remap_fault_clear_rules (v.sfault);

  /* Copy 0's table block fails its next write (a media error retires the
   * copy); copy 1 takes the commit. */
  fail_range (v.sfault, remap_layout_block_unit (&v.l, 0, 0) * UNIT, UNIT,
              REMAP_FAULT_WRITE, 1);
  ck_assert_int_eq (remap_remap (v.e, 5, 0, NULL), 0);
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_MAPPED);

  struct remap_engine *e = env_reopen_plain (&v);
  ck_assert_msg (tl_lookup (e, 5).state == REMAP_SLOT_MAPPED,
                 "the acknowledged remap of unit 5 is gone after reopen");
  uint8_t got[UNIT], want[UNIT];
  tl_pattern (want, UNIT, 5 + 1);
  ck_assert_int_eq (remap_pread (e, got, UNIT, 5 * UNIT, NULL), 0);
  ck_assert (memcmp (got, want, UNIT) == 0);
  remap_close (e);
  env_close (&v);
}
END_TEST

/* A superblock of another spare inside our copy extents is a refusal at
 * open, also when this remap cannot decode it (here: a newer remap's, with
 * an incompatible feature bit), and nothing is repaired over it.  Kills
 * foreign-sb-uuid-ignored. */
START_TEST (test_undecodable_foreign_superblock_refused)
{
  struct env v;
  env_open (&v, 1 * MiB);
  remap_close (v.e);
  v.e = NULL;
  uint8_t *sp = remap_mem_data (v.smem);
  uint8_t sb[512];
  memcpy (sb, sp, 512);
  sb[40] ^= 0xff;                       /* another uuid */
  tl_put64 (sb + 16, 1);                /* a feature this remap lacks */
  tl_sb_recrc (sb);
  uint64_t at = v.l.copy_offset[1] * UNIT + 512;
  memcpy (sp + at, sb, 512);
  uint8_t *before = malloc (1 * MiB);
  ck_assert_ptr_nonnull (before);
  memcpy (before, sp, 1 * MiB);

  struct remap_engine *e = NULL;
  struct remap_error err = { 0 };
  int r = tl_open (v.omem, v.smem, NULL, &e, &err);
  if (r == 0)
    remap_close (e);
  ck_assert_msg (r == -EUCLEAN, "open: %d %s", r, err.msg);
  ck_assert_msg (memcmp (before, sp, 1 * MiB) == 0,
                 "open wrote to a spare it refused");
  free (before);
  env_close (&v);
}
END_TEST

/* A table block of another spare where our copy 1's superblock should be
 * (the superblock is gone, so the whole unit is searched, from its first
 * byte, the first byte of the extent): open refuses and repairs nothing,
 * rather than writing our superblock over another spare's table.  Kills
 * discover-extent-start-outside (inside_extents at an extent's start). */
START_TEST (test_foreign_table_block_at_extent_start_refused)
{
  struct env v;
  env_open (&v, 1 * MiB);
  remap_close (v.e);
  v.e = NULL;
  struct remap_backend *other = tl_mem (1 * MiB);
  struct remap_format_opts o;
  tl_format_opts (&o, UNIT, REMAP_STRATEGY_AUTO, 0, 2);
  struct remap_error err = { 0 };
  ck_assert_msg (remap_format (v.omem, other, &o, &err) == 0, "%s",
                 err.msg);
  uint8_t *sp = remap_mem_data (v.smem);
  const uint8_t *op = remap_mem_data (other);
  ck_assert (memcmp (sp + 40, op + 40, 16) != 0);       /* two uuids */
  memcpy (sp + v.l.copy_offset[1] * UNIT, op + 1 * UNIT, UNIT);
  uint8_t *before = malloc (1 * MiB);
  ck_assert_ptr_nonnull (before);
  memcpy (before, sp, 1 * MiB);

  struct remap_engine *e = NULL;
  int r = tl_open (v.omem, v.smem, NULL, &e, &err);
  if (r == 0)
    remap_close (e);
  ck_assert_msg (r == -EUCLEAN, "open: %d %s", r, err.msg);
  ck_assert_msg (memcmp (before, sp, 1 * MiB) == 0,
                 "open wrote to a spare it refused");
  free (before);
  remap_backend_close (other);
  env_close (&v);
}
END_TEST

/* Format writes no superblock before the copy extents are durable: when
 * the flush after the extents fails, format stops there, so a crash can
 * never leave a valid superblock over table blocks that did not reach the
 * disk.  Kills format-extents-no-flush. */
START_TEST (test_format_flushes_extents_before_superblocks)
{
  struct remap_backend *origin = tl_mem (ORIGIN_SIZE);
  struct remap_backend *spare = tl_mem (1 * MiB);
  struct remap_backend *fb;
  ck_assert_int_eq (remap_fault_create (tl_share (spare), true, &fb), 0);
  struct remap_fault_rule fl = { .ops = REMAP_FAULT_FLUSH, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (fb, &fl), 0);
  struct remap_error err = { 0 };
  ck_assert_int_ne (tl_format (origin, fb, UNIT, REMAP_STRATEGY_AUTO, 0,
                               false, &err), 0);
  ck_assert_uint_ge (remap_fault_writes (fb), 1);   /* the extents */
  struct remap_layout l;
  ck_assert_int_eq (remap_layout_compute (1 * MiB, UNIT, REMAP_STRATEGY_AUTO,
                                          0, &l, NULL), 0);
  for (uint32_t i = 0; i < l.copies; i++) {
    const uint8_t *p = remap_mem_data (spare) + l.copy_offset[i] * UNIT;
    for (size_t b = 0; b < REMAP_SB_SIZE; b++)
      ck_assert_msg (p[b] == 0, "superblock %u written although the "
                     "extents' flush failed", i);
  }
  remap_backend_close (fb);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

/* A block changed while loading (the same origin unit in two slots: the
 * older slot became BAD) is repaired with a fresh generation, never with
 * the generation of the content it replaces.  Here copy 0 keeps the old
 * content (its repair write fails); after the unit is unmapped, the next
 * open must not take copy 0's old block back (at one generation it would:
 * ties go to the lowest copy) and revive the unit at its stale slot.
 * Kills repair-dirty-not-bumped. */
START_TEST (test_dirty_block_repaired_with_fresh_generation)
{
  struct env v;
  /* Version 1: block 1 of copy i is unit copy_offset[i] + 2, written at
   * format, so the block written by hand below is read at open. */
  env_open_v (&v, 1 * MiB, 1);
  const struct remap_layout *l = &v.l;
  uint32_t E = l->entries_per_block;
  ck_assert_uint_ge (l->table_blocks, 2);
  const uint64_t U = 11;
  ck_assert_int_eq (remap_remap (v.e, U, 0, NULL), 0);
  uint64_t a = tl_lookup (v.e, U).spare_unit;
  ck_assert_uint_lt (a, E);                              /* block 0 */
  remap_close (v.e);
  v.e = NULL;

  /* Block 1 of every copy: a newer generation that maps U at slot b, as a
   * crash between the two blocks of a relocation leaves it. */
  uint64_t b = UINT64_MAX;
  for (uint64_t s = E; s < l->spare_units && b == UINT64_MAX; s++)
    if (!remap_layout_is_reserved (l, s))
      b = s;
  ck_assert_uint_ne (b, UINT64_MAX);
  ck_assert_uint_lt (b, 2 * (uint64_t) E);
  uint8_t *sp = remap_mem_data (v.smem);
  struct remap_entry *ent = calloc (E, sizeof *ent);
  ck_assert_ptr_nonnull (ent);
  ent[b - E] = (struct remap_entry) { REMAP_SLOT_MAPPED, U, 0 };
  struct remap_tb tb = { .generation = 10, .block_index = 1,
                         .alloc_cursor = 0 };
  memcpy (tb.uuid, sp + 40, 16);
  uint8_t blk[UNIT];
  remap_tb_encode (&tb, ent, E, UNIT, blk);
  for (uint32_t i = 0; i < l->copies; i++)
    memcpy (sp + (l->copy_offset[i] + 2) * UNIT, blk, UNIT);
  free (ent);

  /* Open: slot a becomes BAD (block 0 dirty); its repair write to copy 0
   * fails, so copy 0 keeps block 0 with U at a. */
  struct remap_backend *fs;
  ck_assert_int_eq (remap_fault_create (tl_share (v.smem), true, &fs), 0);
  fail_range (fs, (l->copy_offset[0] + 1) * UNIT, UNIT, REMAP_FAULT_WRITE,
              1);
  struct remap_error err = { 0 };
  struct remap_engine *e = NULL;
  int r = remap_open (tl_share (v.omem), fs, NULL, &e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
  ck_assert_uint_eq (tl_lookup (e, U).spare_unit, b);
  ck_assert_int_eq (remap_unmap (e, U, REMAP_UNMAP_DISCARD, NULL), 0);
  ck_assert_int_eq (tl_lookup (e, U).state, REMAP_SLOT_FREE);
  remap_close (e);

  e = tl_open_ok (v.omem, v.smem, NULL);
  struct remap_mapping m = tl_lookup (e, U);
  ck_assert_msg (m.state == REMAP_SLOT_FREE, "unmapped unit %llu is back, "
                 "state %d at spare unit %llu", (unsigned long long) U,
                 (int) m.state, (unsigned long long) m.spare_unit);
  remap_close (e);
  env_close (&v);
}
END_TEST

/* Rewritten lost data must be durable before the mapping stops calling
 * it lost: when the flush of the rewritten bytes fails, the write fails
 * and the granule stays lost (a crash could otherwise leave a table that
 * calls stale bytes valid).  Kills lost-rewrite-not-flushed. */
START_TEST (test_lost_rewrite_flushed_before_commit)
{
  struct env v;
  env_open (&v, 1 * MiB);
  struct remap_info info;
  remap_get_info (v.e, &info);
  uint32_t g = info.lost_granule;
  ck_assert_int_eq (remap_mark_lost (v.e, 7, 0x1, NULL), 0);
  ck_assert_uint_eq (tl_lookup (v.e, 7).lost, 0x1);

  struct remap_fault_rule fl = { .ops = REMAP_FAULT_FLUSH, .err = -EIO,
                                 .times = 1 };
  ck_assert_int_eq (remap_fault_add_rule (v.sfault, &fl), 0);
  uint8_t x[UNIT], got[UNIT];
  tl_pattern (x, g, 0x57);
  ck_assert_int_ne (remap_pwrite (v.e, x, g, 7 * UNIT, 0, NULL), 0);
  ck_assert_msg (tl_lookup (v.e, 7).lost == 0x1, "the granule is no longer "
                 "lost although its new bytes were never made durable");
  ck_assert_int_eq (remap_pread (v.e, got, g, 7 * UNIT, NULL), -EIO);
  env_close (&v);
}
END_TEST

/* read-retries=R gives a granule that must be read while a unit moves
 * (the rest of a partly written unit whose origin write failed) exactly R
 * more attempts after the read that isolated it: a granule whose reads
 * fail 1 + 1 + R times is lost, one whose reads fail once fewer is
 * recovered.  Kills read-retries-one-extra. */
static uint64_t
lost_after_failed_reads (uint64_t fails, unsigned retries)
{
  struct env v;
  memset (&v, 0, sizeof v);
  v.omem = tl_mem (ORIGIN_SIZE);
  v.smem = tl_mem (1 * MiB);
  tl_format_ok (v.omem, v.smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v.omem), true,
                                        &v.ofault), 0);
  struct remap_open_opts o = { .read_retries = retries };
  struct remap_error err = { 0 };
  int r = remap_open (v.ofault, tl_share (v.smem), &o, &v.e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
  struct remap_info info;
  remap_get_info (v.e, &info);
  uint32_t g = info.lost_granule;
  ck_assert_uint_ge (UNIT / g, 2);

  const uint64_t U = 6;
  fail_range (v.ofault, U * UNIT, UNIT, REMAP_FAULT_WRITE, 0);
  fail_range (v.ofault, U * UNIT + g, g, REMAP_FAULT_READ, fails);
  uint8_t x[UNIT];
  tl_pattern (x, g, 0x58);
  ck_assert_int_eq (remap_pwrite (v.e, x, g, U * UNIT, 0, NULL), 0);
  struct remap_mapping m = tl_lookup (v.e, U);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  env_close (&v);
  return m.lost;
}

START_TEST (test_relocation_read_retries_exact)
{
  for (unsigned retries = 0; retries <= 3; retries++) {
    /* The read of the whole rest, the granule's own read, its retries. */
    uint64_t reads = 1 + 1 + retries;
    ck_assert_msg (lost_after_failed_reads (reads - 1, retries) == 0,
                   "read-retries=%u: a granule that failed %u times was "
                   "not recovered", retries, (unsigned) (reads - 1));
    ck_assert_msg (lost_after_failed_reads (reads, retries) == 0x2,
                   "read-retries=%u: a granule that failed all %u reads is "
                   "not lost (more reads than asked)", retries,
                   (unsigned) reads);
  }
}
END_TEST

/* A transient origin read error (EAGAIN: a resource of the moment) is
 * worth the retries a client read has, like a media error: a read whose
 * first three attempts (the lock-free try, the request, the unit alone)
 * fail with EAGAIN and whose next works returns the data, and no unit is
 * marked.  Kills transient-not-retried. */
START_TEST (test_transient_read_error_retried)
{
  struct env v;
  memset (&v, 0, sizeof v);
  v.omem = tl_mem (ORIGIN_SIZE);
  v.smem = tl_mem (1 * MiB);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    tl_pattern (remap_mem_data (v.omem) + u * UNIT, UNIT, u + 1);
  tl_format_ok (v.omem, v.smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v.omem), true,
                                        &v.ofault), 0);
  struct remap_open_opts o = { .read_retries = 3 };
  struct remap_error err = { 0 };
  int r = remap_open (v.ofault, tl_share (v.smem), &o, &v.e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);

  struct remap_fault_rule fr = { .ops = REMAP_FAULT_READ, .off = 4 * UNIT,
                                 .len = UNIT, .err = -EAGAIN, .times = 3 };
  ck_assert_int_eq (remap_fault_add_rule (v.ofault, &fr), 0);
  uint8_t got[UNIT], want[UNIT];
  tl_pattern (want, UNIT, 4 + 1);
  remap_error_clear (&err);
  r = remap_pread (v.e, got, UNIT, 4 * UNIT, &err);
  ck_assert_msg (r == 0, "a read that failed three times with EAGAIN, "
                 "with retries left, returned %d: %s", r, err.msg);
  ck_assert (memcmp (got, want, UNIT) == 0);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 0);
  ck_assert_int_eq (tl_lookup (v.e, 4).state, REMAP_SLOT_FREE);
  env_close (&v);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("guards2");
  TCase *tc = tcase_create ("guards2");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_memory_pending_cleared_by_remap);
  tcase_add_test (tc, test_failed_commit_spends_generation);
  tcase_add_test (tc, test_undecodable_foreign_superblock_refused);
  tcase_add_test (tc, test_foreign_table_block_at_extent_start_refused);
  tcase_add_test (tc, test_format_flushes_extents_before_superblocks);
  tcase_add_test (tc, test_dirty_block_repaired_with_fresh_generation);
  tcase_add_test (tc, test_lost_rewrite_flushed_before_commit);
  tcase_add_test (tc, test_relocation_read_retries_exact);
  tcase_add_test (tc, test_transient_read_error_retried);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
