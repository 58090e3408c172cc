/* remap: engine life cycle: format, open (discovery, recovery, repair),
 * commit, close, status.
 *
 * Metadata design (docs/FORMAT.md is normative): n copies, each an extent of
 * 1 + T units: a superblock, then T table blocks with one entry per spare
 * unit.  Every table block carries its own generation and CRC, so a commit
 * rewrites only the block(s) holding the changed slot(s): one unit per copy,
 * whatever the size of the table (SPEC 2.3).  Copies are written one after
 * another with a flush after each, so a crash tears at most one copy's
 * block; recovery takes, block by block, the valid version with the highest
 * generation, and rewrites every stale or damaged version from it (SPEC
 * 2.2).  Data reaches the spare and is flushed before the commit that points
 * at it (datapath.c), and the caller is acknowledged only after the commit
 * (SPEC 2.4).
 *
 * Discovery (discover.c) finds the superblock by place, never by vote, so
 * that nothing a client wrote into a data unit is taken for metadata; the
 * scan at open then refuses a spare whose copies hold metadata of another
 * identity, so repair and commits never write over it.  Format writes every
 * unit of every copy extent before the first superblock, after erasing the
 * superblocks of an earlier format (format by force), so a crash at any
 * point leaves the old spare, nothing, or the new one, never both.
 *
 * This file does no locking of its own beyond meta_lock around commits;
 * open and close run single-threaded.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discover.h"
#include "engine.h"

#define SCAN_CHUNK_UNITS 256u
#define GEN_SKIP (UINT64_C (1) << 32)

void
eng_log (struct remap_engine *e, enum remap_log_level lvl, const char *fmt,
         ...)
{
  char msg[512];
  va_list ap;

  if (!e->opts.log)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  e->opts.log (e->opts.log_opaque, lvl, msg);
}

void *
eng_alloc_buf (size_t n)
{
  void *p = NULL;
  if (posix_memalign (&p, 4096, n ? n : 1) != 0)
    return NULL;
  return p;
}

int
eng_flush (struct remap_engine *e, struct remap_backend *b, const char *why)
{
  int r = remap_backend_flush (b);
  if (r == 0)
    return 0;
  /* A flush that could not reach an NBD server (ENOTCONN: nbd.c) did
   * nothing: nothing was dropped yet.  The backend itself fails the first flush after it
   * reconnects if writes since its last good flush may be gone (nbd.c), so
   * this failure is reported, not remembered. */
  if (r == -ENOTCONN) {
    eng_log (e, REMAP_LOG_WARN, "%s %s: flush failed during %s: the NBD "
             "server cannot be reached (%s); it is tried again with the "
             "next flush", b == e->origin ? "origin" : "spare", b->name, why,
             strerror (-r));
    return r;
  }
  atomic_int *first = b == e->origin ? &e->origin_flush_err
    : &e->spare_flush_err;
  int none = 0;
  if (atomic_compare_exchange_strong (first, &none, r))
    eng_log (e, REMAP_LOG_ERROR, "%s %s: flush failed during %s (%s): "
             "writes acknowledged since its last good flush may be lost, "
             "so every FLUSH and FUA request fails from now on, until "
             "remap is restarted", b == e->origin ? "origin" : "spare",
             b->name, why, strerror (-r));
  return r;
}

int
eng_flush_failed (struct remap_engine *e, struct remap_error *err)
{
  int ro = atomic_load (&e->origin_flush_err);
  int rs = atomic_load (&e->spare_flush_err);
  if (ro == 0 && rs == 0)
    return 0;
  const char *side = ro ? "origin" : "spare";
  return remap_set_error (err, -EIO, "%s %s: an earlier flush failed (%s), "
                          "so writes acknowledged before it may have been "
                          "lost; every flush fails until remap is "
                          "restarted (check the %s's device or file "
                          "system, then restart the server)", side,
                          ro ? e->origin->name : e->spare->name,
                          strerror (-(ro ? ro : rs)), side);
}

void
remap_uuid_format (const uint8_t u[16], char out[37])
{
  snprintf (out, 37,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
            u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* ---- writing metadata ------------------------------------------------ */

/* Extent offset k of copy i (0: the superblock). */
static uint64_t
copy_unit (const struct remap_layout *l, uint32_t i, uint64_t k)
{
  return l->copy_offset[i] + k;
}

/* Where table block k of copy i lives (after the map units in v2). */
static uint64_t
block_unit (const struct remap_layout *l, uint32_t i, uint64_t k)
{
  return remap_layout_block_unit (l, i, k);
}

static bool
bit_get (const uint8_t *bm, uint64_t i)
{
  return (bm[i / 8] >> (i % 8)) & 1;
}

static void
bit_put (uint8_t *bm, uint64_t i, bool v)
{
  if (v)
    bm[i / 8] |= (uint8_t) (1u << (i % 8));
  else
    bm[i / 8] &= (uint8_t) ~(1u << (i % 8));
}

static void
encode_sb_copy (const struct remap_sb *sb, uint32_t i, uint8_t *buf,
                uint32_t unit)
{
  struct remap_sb c = *sb;
  c.copy_index = i;
  memset (buf, 0, unit);
  remap_sb_encode (&c, buf);
}

/* Encode table block k from the in-memory table, with changes applied. */
static void
encode_block (struct remap_engine *e, uint64_t k, uint64_t gen,
              uint64_t cursor, const struct change *c, size_t n,
              uint8_t *buf)
{
  const struct remap_layout *l = e->L;
  uint32_t E = l->entries_per_block;
  struct remap_entry *ent = e->ent_buf;
  struct remap_tb tb = { .generation = gen, .block_index = k,
                         .alloc_cursor = cursor };

  memcpy (tb.uuid, e->sb.uuid, 16);
  table_read_slots (e->t, k * E, E, e->word_buf, e->lost_buf);
  for (uint32_t j = 0; j < E; j++) {
    uint64_t s = k * E + j;
    uint64_t w = e->word_buf[j], lost = e->lost_buf[j];
    for (size_t x = 0; x < n; x++)
      if (c[x].slot == s) {
        w = c[x].word;
        lost = c[x].lost;
      }
    ent[j].state = word_state (w);
    ent[j].origin_unit = word_origin (w);
    ent[j].lost = word_state (w) == REMAP_SLOT_MAPPED ? lost : 0;
  }
  remap_tb_encode (&tb, ent, E, l->unit, buf);
}

/* Write one metadata unit to copy i at extent offset k (0 = superblock),
 * then flush if asked.  Only a media error of the write retires the copy
 * (SPEC 3.10): its bytes there are now unknown.  Any other write error, and
 * a failed flush (which may belong to any earlier write of the spare, so it
 * proves nothing against this copy), leave it in use; the caller still
 * counts the copy as not written.  The log names which operation failed. */
static int
write_meta_unit (struct remap_engine *e, uint32_t i, uint64_t u,
                 const uint8_t *buf, bool flush)
{
  uint64_t off = u * e->unit;
  int r = remap_backend_pwrite (e->spare, buf, e->unit, off);
  atomic_fetch_add (&e->c_meta_units, 1);
  if (r && remap_error_class (r) == REMAP_ERRCLASS_MEDIA) {
    e->copy_ok[i] = false;
    eng_log (e, REMAP_LOG_WARN,
             "metadata copy %u: write of %u bytes at spare byte %llu failed "
             "(%s); copy retired until the next open repairs it", i, e->unit,
             (unsigned long long) off, strerror (-r));
    return r;
  }
  else if (r)
    eng_log (e, REMAP_LOG_WARN,
             "metadata copy %u: write of %u bytes at spare byte %llu failed "
             "(%s: %s); the copy stays in use", i, e->unit,
             (unsigned long long) off, strerror (-r),
             remap_errclass_name (remap_error_class (r)));
  else if (flush && (r = eng_flush (e, e->spare, "a commit")) != 0) {
    eng_log (e, REMAP_LOG_WARN,
             "metadata copy %u: flush of spare %s after writing spare byte "
             "%llu failed (%s); whether that write is durable is unknown; "
             "the copy stays in use", i, e->spare->name,
             (unsigned long long) off, strerror (-r));
    r = -EIO;                   /* a failed flush is EIO, whatever it said */
  }
  return r;
}

/* Write map unit m of copy i (version 2) from the written bits in memory,
 * then flush: the table blocks it claims were written and flushed before
 * (FORMAT.md 10.2), so a map never claims a block the disk lacks.  The
 * same error rules as write_meta_unit. */
static int
write_map_unit (struct remap_engine *e, uint32_t i, uint64_t m, uint64_t gen)
{
  const struct remap_layout *l = e->L;
  struct remap_mapu h = { .generation = gen, .map_index = m };
  uint64_t B = remap_layout_blocks_per_map (l);
  remap_map_encode (&e->sb, &h, e->written[i] + m * B / 8, e->map_buf);
  return write_meta_unit (e, i, remap_layout_map_unit (l, i, m), e->map_buf,
                          true);
}

/* A commit whose outcome is unknown: the block may or may not have
 * reached the disk in some copy, so the next open may find either
 * version.  Keep both possible until then: every slot the changes name
 * stays out of the free pool (a slot given to another unit now could be
 * read back as this unit's after a restart), and every origin unit they
 * name, before or after, refuses writes (its old and new homes must both
 * keep their bytes).  `before' holds each slot's word from before the
 * commit: an earlier block of the same commit may already have been
 * applied, and table_apply's relocation rule may have changed the word of
 * a slot named by a later block (a relocation's old home, turned BAD in
 * memory while the disk may still name the unit there). */
static void
keep_in_doubt (struct remap_engine *e, const struct change *c, size_t n,
               const uint64_t *before)
{
  for (size_t y = 0; y < n; y++) {
    uint64_t w[3] = { c[y].word, before[y], 0 }, lost;
    table_read_slots (e->t, c[y].slot, 1, &w[2], &lost);
    if (table_hold (e->t, c[y].slot) != 0)
      eng_log (e, REMAP_LOG_ERROR, "out of memory holding spare unit %llu "
               "after a failed commit", (unsigned long long) c[y].slot);
    for (int z = 0; z < 3; z++) {
      enum remap_slot_state st = word_state (w[z]);
      if ((st == REMAP_SLOT_MAPPED || st == REMAP_SLOT_PENDING)
          && table_doubt_add (e->t, word_origin (w[z])) != 0)
        eng_log (e, REMAP_LOG_ERROR, "out of memory recording unit %llu "
                 "in doubt", (unsigned long long) word_origin (w[z]));
    }
  }
}

/* Number of distinct table blocks that the changes touch. */
static size_t
blocks_changed (const struct remap_engine *e, const struct change *c,
                size_t n)
{
  uint32_t E = e->L->entries_per_block;
  size_t nb = 0;
  for (size_t x = 0; x < n; x++) {
    bool seen = false;
    for (size_t y = 0; y < x; y++)
      seen |= c[y].slot / E == c[x].slot / E;
    nb += !seen;
  }
  return nb;
}

/* Each changed block takes the next generation; past the format's bound a
 * reader would reject the block, so the change is refused before anything
 * is written (docs/FORMAT.md 10.1). */
static int
generation_exhausted (struct remap_engine *e, struct remap_error *err)
{
  return remap_set_error (err, -EOVERFLOW,
                          "%s: the remap table is at generation %llu, the "
                          "largest the format allows (2^63 - 1), so no "
                          "further change can be recorded; move the table "
                          "to a freshly formatted spare (remapctl export, "
                          "format, import)", e->spare->name,
                          (unsigned long long) e->generation);
}

/* Commit the changes block by block.  Each block is written to every
 * healthy copy (a flush after each) and, once durable in at least one,
 * its changes are applied to memory: memory never runs ahead of the disk,
 * and never lags behind it either, so a later write cannot go to a slot
 * that the next open would not choose.
 *
 * Every block written takes a new generation, whether its writes succeed
 * or not: a write that failed may still have reached the disk, and a later
 * commit of the same block must win over it at the next open, so a
 * generation is never given to two different contents. */
static int
commit_blocks_locked (struct remap_engine *e, const struct change *c,
                      size_t n, struct remap_error *err)
{
  uint32_t E = e->L->entries_per_block;

  if (n > COMMIT_MAX)
    return remap_set_error (err, -EINVAL, "internal error: a commit of %zu "
                            "changes (at most %u)", n, COMMIT_MAX);
  if (table_reserve (e->t, n) != 0)
    return remap_set_error (err, -ENOMEM, "out of memory updating the table");
  if (REMAP_MAX_GENERATION - e->generation
      < (uint64_t) blocks_changed (e, c, n))
    return generation_exhausted (e, err);
  uint64_t before[COMMIT_MAX];
  for (size_t x = 0; x < n; x++) {
    uint64_t lost;
    table_read_slots (e->t, c[x].slot, 1, &before[x], &lost);
  }
  for (size_t x = 0; x < n; x++) {
    uint64_t k = c[x].slot / E;
    bool seen = false;
    for (size_t y = 0; y < x; y++)
      seen |= c[y].slot / E == k;
    if (seen)
      continue;
    uint64_t gen = e->generation + 1;
    encode_block (e, k, gen, e->cursor, c, n, e->meta_buf);
    unsigned ok = 0, tried = 0;
    int why = 0;                    /* the first copy's error */
    for (uint32_t i = 0; i < e->L->copies; i++)
      if (e->copy_ok[i]) {
        tried++;
        e->generation = gen;        /* spent, even if the write fails */
        int r = write_meta_unit (e, i, block_unit (e->L, i, k), e->meta_buf,
                                 true);
        if (r == 0 && e->written[i] && !bit_get (e->written[i], k)) {
          /* First write of block k in this copy: only now may its map
           * say so; until that map is durable, the copy does not count. */
          bit_put (e->written[i], k, true);
          r = write_map_unit (e, i, k / remap_layout_blocks_per_map (e->L),
                              gen);
          if (r)
            bit_put (e->written[i], k, false);
        }
        if (r == 0)
          ok++;
        else if (why == 0)
          why = r;
      }
    if (ok == 0 && tried == 0)      /* nothing can have reached the disk */
      return remap_set_error (err, -EIO,
                              "%s: the remap table cannot be written: no "
                              "metadata copy is left in service (every one "
                              "failed a write); restart remap to repair "
                              "them", e->spare->name);
    if (ok == 0) {
      /* The outcome of this block is unknown; later blocks were never
       * written, earlier ones were applied, and all belong to the same
       * change: the whole commit is in doubt. */
      keep_in_doubt (e, c, n, before);
      return remap_set_error (err, remap_error_class (why)
                              == REMAP_ERRCLASS_MEDIA ? -EIO : why,
                              "%s: the remap table could not be made "
                              "durable in any metadata copy (%s); the "
                              "units it named refuse writes until remap is "
                              "restarted", e->spare->name, strerror (-why));
    }
    e->block_gen[k] = gen;
    e->block_cursor[k] = e->cursor;
    struct change blk[COMMIT_MAX];
    size_t nb = 0;
    for (size_t y = x; y < n; y++)
      if (c[y].slot / E == k)
        blk[nb++] = c[y];
    if (table_apply (e->t, blk, nb) != 0) {
      /* Cannot happen after table_reserve; if it did, memory would lag the
       * disk: stop trusting both until reopen. */
      keep_in_doubt (e, c, n, before);
      return remap_set_error (err, -ENOMEM, "out of memory applying a "
                              "commit; restart remap to reload the table");
    }
  }
  return 0;
}

/* Every change of the table, and so of the free spare, passes here:
 * a commit that failed may still have taken units (held in doubt), so the
 * watch runs whatever the outcome. */
int
commit_locked (struct remap_engine *e, const struct change *c, size_t n,
               struct remap_error *err)
{
  int r = commit_blocks_locked (e, c, n, err);
  spare_watch_locked (e);
  return r;
}

/* Free spare units: the usable ones that no mapping, pending mark, bad
 * mark or doubtful commit holds.  The one formula for the counters and the
 * low-spare warning. */
static uint64_t
free_of (const struct remap_engine *e, const struct table_counts *n)
{
  uint64_t used = n->mapped + n->pending_spare + n->bad + n->held;
  return used < e->L->usable_units ? e->L->usable_units - used : 0;
}

static uint64_t
spare_free_locked (struct remap_engine *e)
{
  struct table_counts n;

  table_get_counts (e->t, &n);
  return free_of (e, &n);
}

void
spare_watch_locked (struct remap_engine *e)
{
  uint64_t usable = e->L->usable_units, free_units;
  int band;

  if (usable == 0)
    return;
  free_units = spare_free_locked (e);
  band = free_units * 100 < usable ? 2 : free_units * 10 < usable ? 1 : 0;
  if (band > e->spare_band)
    eng_log (e, REMAP_LOG_ALERT, "spare %s: only %llu of %llu usable units "
             "free (%.1f %%, under %s): %s", e->spare->name,
             (unsigned long long) free_units, (unsigned long long) usable,
             100.0 * (double) free_units / (double) usable,
             band == 2 ? "1 %" : "10 %", band == 2
             ? "remaps will soon be refused; replace the origin disk now"
             : "the origin disk is failing; plan its replacement (remapctl "
             "status shows the counters)");
  else if (band < e->spare_band)
    eng_log (e, REMAP_LOG_INFO, "spare %s: %llu of %llu usable units free "
             "again (%s)", e->spare->name, (unsigned long long) free_units,
             (unsigned long long) usable,
             band == 0 ? "10 % or more" : "1 % or more");
  e->spare_band = band;
}

int
check_doubt (struct remap_engine *e, uint64_t first, uint64_t last,
             struct remap_error *err)
{
  uint64_t u;
  if (table_ndoubt (e->t) == 0 || !table_doubt_find (e->t, first, last, &u))
    return 0;
  return remap_set_error (err, -EIO, "unit %llu: recording its remap "
                          "failed on every metadata copy, so whether the "
                          "spare or the origin holds it is uncertain; it "
                          "refuses writes until remap is restarted and "
                          "repairs the spare", (unsigned long long) u);
}

int
alloc_locked (struct remap_engine *e, uint64_t *slot, struct remap_error *err)
{
  if (table_alloc (e->t, &e->cursor, 0, e->L->spare_units, slot) == 0)
    return 0;
  atomic_fetch_add (&e->c_enospc, 1);
  return remap_set_error (err, -ENOSPC,
                          "spare %s is full: all %llu usable units are in "
                          "use; replace the origin disk or give remap a "
                          "larger spare", e->spare->name,
                          (unsigned long long) e->L->usable_units);
}

/* ---- format ---------------------------------------------------------- */

/* Format, step 2: the map units of every copy, every bit clear ("no table
 * block was ever written": the table is empty without one block written),
 * then one flush.  That is all format writes besides the superblocks: its
 * cost follows M = ceil (T / ((unit - 64) * 8)), a few units per TiB of
 * spare, not the size of the table (SPEC 2.6).  The table blocks' units
 * keep whatever they held: nothing reads a block its map does not claim.
 * No superblock of this spare exists yet, so a crash here leaves nothing
 * that opens. */
static int
format_maps (struct remap_backend *spare, const struct remap_sb *sb,
             uint8_t *buf, uint32_t chunk)
{
  const struct remap_layout *l = &sb->layout;
  uint32_t unit = l->unit;
  uint8_t *zero = calloc (1, unit);
  struct remap_mapu h = { .generation = 1 };
  int r = 0;

  if (!zero)
    return -ENOMEM;
  for (uint32_t i = 0; i < l->copies && r == 0; i++)
    for (uint64_t m = 0; m < l->map_units && r == 0;) {
      uint32_t n = 0;
      for (; n < chunk && m < l->map_units; n++, m++) {
        h.map_index = m;
        remap_map_encode (sb, &h, zero, buf + (size_t) n * unit);
      }
      r = remap_backend_pwrite (spare, buf, (size_t) n * unit,
                                remap_layout_map_unit (l, i, m - n) * unit);
    }
  free (zero);
  return r ? r : remap_backend_flush (spare);
}

/* Format, step 3: the superblocks, copy after copy, a flush after each. */
static int
format_superblocks (struct remap_backend *spare, const struct remap_sb *sb,
                    uint8_t *buf)
{
  const struct remap_layout *l = &sb->layout;
  for (uint32_t i = 0; i < l->copies; i++) {
    encode_sb_copy (sb, i, buf, l->unit);
    int r = remap_backend_pwrite (spare, buf, l->unit,
                                  copy_unit (l, i, 0) * l->unit);
    if (r == 0)
      r = remap_backend_flush (spare);
    if (r)
      return r;
  }
  return 0;
}

/* Format without force touches only a spare where every place metadata
 * could be was read and holds none (SPEC 2.5): a table that could not be
 * read is not "no table". */
static int
check_blank (struct remap_backend *spare, struct remap_error *err)
{
  struct remap_sb old;
  struct remap_error derr = { 0 };
  int r = discover (spare, &old, &derr);
  if (r == -ENOMEDIUM)
    return 0;
  if (r == 0 || r == -EUCLEAN) {
    char u[37] = "unknown";
    if (r == 0)
      remap_uuid_format (old.uuid, u);
    return remap_set_error (err, -EEXIST,
                            "spare %s already holds remap metadata (uuid %s%s"
                            "%s); it is not formatted again.  To keep its "
                            "remaps, open it without formatting; to destroy "
                            "them, format with force",
                            spare->name, u, r == 0 ? ", origin " : "",
                            r == 0 ? old.origin_label : "");
  }
  /* A read failed where metadata could be (derr names the byte). */
  return remap_set_error (err, r, "%s; not formatting it (force would "
                          "format it regardless)", derr.msg);
}

int
remap_format (struct remap_backend *origin, struct remap_backend *spare,
              const struct remap_format_opts *o, struct remap_error *err)
{
  uint32_t unit = o->unit ? o->unit : REMAP_DEFAULT_UNIT;
  struct remap_sb sb = { 0 };
  int r;

  if (remap_all_zero (o->uuid, sizeof o->uuid))
    return remap_set_error (err, -EINVAL, "format: no uuid given "
                            "(call remap_format_opts_init first)");
  if (origin->size == 0)
    return remap_set_error (err, -EINVAL, "origin %s is empty (0 bytes)",
                            origin->name);
  r = remap_layout_compute (spare->size, unit, o->strategy, o->copies,
                            &sb.layout, err);
  if (r)
    return remap_error_prefix (err, r, "cannot format spare %s: ",
                               spare->name);
  if ((origin->size - 1) / unit + 1 > REMAP_MAX_ORIGIN_UNITS)
    return remap_set_error (err, -EINVAL,
                            "origin %s is too large for %u-byte units",
                            origin->name, unit);
  if ((r = remap_backend_lock (spare, err)) != 0)
    return r;

  if (!o->force && (r = check_blank (spare, err)) != 0)
    return r;

  /* Before the first byte is written: a spare that cannot get its space
   * is refused as it is. */
  if (!o->sparse && (r = remap_backend_preallocate (spare, err)) != 0)
    return remap_error_prefix (err, r, "cannot format");

  r = 0;
  sb.version = REMAP_SB_VERSION;
  memcpy (sb.uuid, o->uuid, 16);
  sb.origin_size = origin->size;
  sb.spare_size = sb.layout.spare_units * unit;
  sb.origin_units = (origin->size - 1) / unit + 1;
  sb.lost_granule = remap_lost_granule (unit);
  sb.format_time = o->format_time;
  sb.sb_generation = 1;
  const char *label = o->origin_label ? o->origin_label : origin->name;
  size_t ll = strlen (label);
  /* Keep the end of a long path: it is the part that tells disks apart. */
  if (ll > REMAP_LABEL_SIZE)
    label += ll - REMAP_LABEL_SIZE;
  memcpy (sb.origin_label, label, strlen (label) + 1);
  snprintf (sb.origin_id, sizeof sb.origin_id, "%s", origin->identity);

  /* Step 1, by force: no superblock of the old spare survives, so no
   * crash can leave two identities on the spare. */
  if (o->force && (r = wipe_superblocks (spare, err)) != 0)
    return r;

  uint32_t chunk = SCAN_CHUNK_UNITS;
  while ((size_t) chunk * unit > 4u << 20)
    chunk /= 2;
  uint8_t *buf = eng_alloc_buf ((size_t) chunk * unit);
  if (!buf)
    return remap_set_error (err, -ENOMEM, "out of memory");
  r = format_maps (spare, &sb, buf, chunk);
  if (r == 0)
    r = format_superblocks (spare, &sb, buf);
  free (buf);
  if (r)
    return remap_set_error (err, r, "format: writing metadata to %s: %s",
                            spare->name, strerror (-r));
  return 0;
}

/* ---- open ------------------------------------------------------------ */

/* What the scan found of table block used[x] in copy i (FORMAT.md 10.3):
 * never written (its map says so: empty, as good as generation 0), a
 * valid version of some generation, damaged (its map says it was written,
 * and it is not valid now), or unknown (its map is damaged and it is not
 * valid: it may never have been written; it is no evidence either way). */
enum bstate { B_NEVER = 0, B_VALID, B_DAMAGED, B_UNKNOWN };

struct scan {
  uint64_t nused, *used;        /* blocks some copy may hold, ascending */
  uint64_t *gen;                /* [copies * nused]: valid version's gen */
  uint8_t *st;                  /* [copies * nused]: enum bstate */
  bool sb_ok[REMAP_MAX_COPIES];
  bool *map_bad;                /* [copies * M]: map unit to rewrite */
  bool unreadable;              /* some metadata unit could not be read */
};

static void
scan_free (struct scan *sc)
{
  free (sc->used);
  free (sc->gen);
  free (sc->st);
  free (sc->map_bad);
  memset (sc, 0, sizeof *sc);
}

#define SC(sc, i, x) ((size_t) (i) * (sc)->nused + (x))

/* Copy i's superblock unit: is its superblock this spare's, current, at
 * its place; and does the unit hold metadata of another identity? */
static int
scan_superblock (struct remap_engine *e, struct scan *sc, uint32_t i,
                 uint8_t *buf, struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  uint64_t off = copy_unit (l, i, 0) * l->unit;
  struct remap_sb sb;

  sc->sb_ok[i] = false;
  if (remap_backend_pread (e->spare, buf, l->unit, off) != 0)
    return 0;
  sc->sb_ok[i] = sb_decode_at (buf, off, &sb, NULL) == 0
    && memcmp (sb.uuid, e->sb.uuid, 16) == 0
    && sb.layout.version == l->version
    && sb.layout.unit == l->unit && sb.layout.strategy == l->strategy
    && sb.layout.copies == l->copies
    && sb.layout.spare_units == l->spare_units
    && sb.copy_index == i && sb.sb_generation == e->sb.sb_generation;
  uint32_t skip = sc->sb_ok[i] ? REMAP_SB_SIZE : 0;
  return check_foreign (e->spare, &e->sb, buf + skip, l->unit - skip,
                        off + skip, i, err);
}

/* Version 2: read copy i's map units into e->written[i].  A map unit that
 * cannot be read or is not valid says nothing: every block it covers is
 * then read (and is damaged if not valid), and the unit is rewritten by
 * repair.  Metadata of another identity in it is a refusal, as anywhere
 * in the copies. */
static int
scan_maps (struct remap_engine *e, struct scan *sc, uint32_t i, uint8_t *buf,
           uint32_t chunk, struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  uint64_t B = remap_layout_blocks_per_map (l);
  int rd = 0;
  for (uint64_t m = 0, m0 = 0; m < l->map_units; m++) {
    if (m == m0 + chunk || m == 0) {  /* a run of map units, one read */
      m0 = m;
      uint64_t n = l->map_units - m < chunk ? l->map_units - m : chunk;
      rd = remap_backend_pread (e->spare, buf, (size_t) n * l->unit,
                                remap_layout_map_unit (l, i, m) * l->unit);
    }
    uint64_t at = remap_layout_map_unit (l, i, m) * l->unit;
    uint64_t nblk = l->table_blocks - m * B < B ? l->table_blocks - m * B : B;
    uint8_t *p = buf + (size_t) (m - m0) * l->unit;
    uint8_t *bits = e->written[i] + m * B / 8;
    struct remap_mapu h;
    /* A failed run read: this unit on its own. */
    int r = rd ? remap_backend_pread (e->spare, p, l->unit, at) : 0;
    sc->unreadable |= r != 0;
    if (r == 0 && remap_map_decode (&e->sb, p, l->unit, m, &h, bits,
                                    NULL) == 0) {
      e->generation = h.generation > e->generation ? h.generation
        : e->generation;
      continue;
    }
    sc->map_bad[(size_t) i * l->map_units + m] = true;
    memset (bits, 0xff, (size_t) (nblk + 7) / 8);
    if (nblk % 8)
      bits[nblk / 8] = (uint8_t) ((1u << (nblk % 8)) - 1);
    if (r == 0 && (r = check_foreign (e->spare, &e->sb, p, l->unit, at, i,
                                      err)) != 0)
      return r;
  }
  return 0;
}

/* The blocks any copy may hold: every block for version 1; for version 2
 * the union of what the maps claim.  Ascending. */
static int
collect_used (struct remap_engine *e, struct scan *sc)
{
  const struct remap_layout *l = e->L;
  uint64_t n = 0;
  for (int pass = 0; pass < 2; pass++) {
    uint64_t x = 0;
    for (uint64_t k = 0; k < l->table_blocks; k++) {
      bool any = l->version < 2;
      /* Whole zero bytes of every map are skipped 8 blocks at a time. */
      if (!any && k % 8 == 0) {
        bool zero = true;
        for (uint32_t i = 0; i < l->copies && zero; i++)
          zero = e->written[i][k / 8] == 0;
        if (zero) {
          k += 7;
          continue;
        }
      }
      for (uint32_t i = 0; i < l->copies && !any; i++)
        any = bit_get (e->written[i], k);
      if (!any)
        continue;
      if (pass == 1)
        sc->used[x] = k;
      x++;
    }
    if (pass == 0) {
      n = x;
      sc->nused = n;
      sc->used = malloc ((n ? n : 1) * sizeof *sc->used);
      sc->gen = calloc ((size_t) l->copies * (n ? n : 1), sizeof *sc->gen);
      sc->st = calloc ((size_t) l->copies * (n ? n : 1), 1);
      if (!sc->used || !sc->gen || !sc->st)
        return -ENOMEM;
    }
  }
  return 0;
}

/* Read copy i's version of every used block it holds, in runs of
 * consecutive blocks, and record each one's state and generation. */
static int
scan_blocks (struct remap_engine *e, struct scan *sc, uint32_t i,
             uint8_t *buf, uint32_t chunk, struct remap_entry *ent,
             struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  uint32_t unit = l->unit;
  int r = 0;
  for (uint64_t x = 0; x < sc->nused && r == 0;) {
    uint64_t k = sc->used[x];
    if (e->written[i] && !bit_get (e->written[i], k)) {
      sc->st[SC (sc, i, x)] = B_NEVER;
      x++;
      continue;
    }
    /* A run of consecutive used blocks that this copy holds. */
    uint32_t n = 1;
    while (n < chunk && x + n < sc->nused && sc->used[x + n] == k + n
           && (!e->written[i] || bit_get (e->written[i], k + n)))
      n++;
    uint64_t off = block_unit (l, i, k) * unit;
    int rd = remap_backend_pread (e->spare, buf, (size_t) n * unit, off);
    for (uint32_t j = 0; j < n && r == 0; j++) {
      uint8_t *p = buf + (size_t) j * unit;
      uint64_t at = off + (uint64_t) j * unit;
      size_t y = SC (sc, i, x + j);
      struct remap_tb tb;
      sc->st[y] = B_DAMAGED;
      /* A failed run read: retry block by block to isolate it. */
      if (rd && remap_backend_pread (e->spare, p, unit, at) != 0) {
        sc->unreadable = true;
        continue;
      }
      if (remap_tb_decode (&e->sb, p, unit, k + j, &tb, ent, NULL) == 0) {
        sc->st[y] = B_VALID;
        sc->gen[y] = tb.generation;
      }
      else
        r = check_foreign (e->spare, &e->sb, p, unit, at, i, err);
    }
    x += n;
  }
  /* Under a damaged map unit, a block that is not valid may as well never
   * have been written: unknown, and no longer claimed (the map that
   * repair writes claims only what this copy really holds). */
  uint64_t B = remap_layout_blocks_per_map (l);
  for (uint64_t x = 0; x < sc->nused && e->written[i]; x++) {
    uint64_t k = sc->used[x];
    size_t y = SC (sc, i, x);
    if (sc->map_bad[(size_t) i * l->map_units + k / B]
        && sc->st[y] != B_VALID) {
      sc->st[y] = B_UNKNOWN;
      bit_put (e->written[i], k, false);
    }
  }
  return r;
}

/* Read every copy: superblock, map units (v2), and every table block some
 * map claims.  Every unit read that is not this spare's valid metadata is
 * searched for metadata of another identity: if there is any, the copies
 * disagree on identity and the scan refuses (-EUCLEAN with a message), so
 * that open neither uses them nor repairs over them (discover.c says why).
 * Blocks no map claims are never read (FORMAT.md 10.3): the cost of the
 * scan follows the table's use, not its size. */
static int
scan_copies (struct remap_engine *e, struct scan *sc, struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  uint32_t unit = l->unit;
  uint32_t chunk = SCAN_CHUNK_UNITS;
  int r = 0;
  while ((size_t) chunk * unit > 4u << 20)
    chunk /= 2;
  uint8_t *buf = eng_alloc_buf ((size_t) chunk * unit);
  struct remap_entry *ent = malloc (l->entries_per_block * sizeof *ent);
  sc->map_bad = calloc ((size_t) l->copies * (l->map_units + 1), 1);
  if (!buf || !ent || !sc->map_bad) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  for (uint32_t i = 0; i < l->copies && r == 0; i++) {
    r = scan_superblock (e, sc, i, buf, err);
    if (r == 0 && l->version >= 2)
      r = scan_maps (e, sc, i, buf, chunk, err);
  }
  if (r == 0 && collect_used (e, sc) != 0)
    r = remap_set_error (err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < l->copies && r == 0; i++)
    r = scan_blocks (e, sc, i, buf, chunk, ent, err);
 out:
  free (buf);
  free (ent);
  return r;
}

/* The copy whose version of used block x is loaded: the highest
 * generation among the valid ones, ties to the lowest copy (FORMAT.md
 * 10.3).  *never: no valid version, but some copy never wrote the block
 * (it is empty).  UINT32_MAX if there is no valid version. */
static uint32_t
pick_copy (const struct remap_layout *l, const struct scan *sc, uint64_t x,
           bool *never)
{
  uint32_t bi = UINT32_MAX;
  *never = false;
  for (uint32_t i = 0; i < l->copies; i++) {
    size_t y = SC (sc, i, x);
    *never |= sc->st[y] == B_NEVER;
    if (sc->st[y] == B_VALID
        && (bi == UINT32_MAX || sc->gen[y] > sc->gen[SC (sc, bi, x)]))
      bi = i;
  }
  return bi;
}

/* Read back and decode the chosen version of used block x into tb and ent.
 * The scan saw it valid a moment ago, but the bytes are read again: a
 * version that now fails to read, or reads back as anything but what the
 * scan saw (another generation), is dropped exactly as if the scan had
 * found it damaged (repair then rewrites it), and the next best copy is
 * used.  1: no valid version, but the block was never written somewhere
 * (it is empty). */
static int
read_chosen_block (struct remap_engine *e, struct scan *sc, uint64_t x,
                   uint8_t *buf, struct remap_tb *tb, struct remap_entry *ent,
                   struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  struct remap_error derr = { 0 };
  uint64_t k = sc->used[x];
  uint32_t bi;
  bool never;

  while ((bi = pick_copy (l, sc, x, &never)) != UINT32_MAX) {
    size_t y = SC (sc, bi, x);
    remap_error_clear (&derr);  /* keep the last failure's message */
    int r = remap_backend_pread (e->spare, buf, l->unit,
                                 block_unit (l, bi, k) * l->unit);
    if (r)
      remap_set_error (&derr, r, "copy %u: reading it again failed (%s)",
                       bi, strerror (-r));
    else if ((r = remap_tb_decode (&e->sb, buf, l->unit, k, tb, ent,
                                   &derr)) == 0
             && tb->generation != sc->gen[y])
      r = remap_set_error (&derr, -EUCLEAN, "copy %u: read again, it has "
                           "generation %llu, not the %llu it had", bi,
                           (unsigned long long) tb->generation,
                           (unsigned long long) sc->gen[y]);
    if (r == 0)
      return 0;
    eng_log (e, REMAP_LOG_WARN, "%s: table block %llu: %s; using the next "
             "valid copy", e->spare->name, (unsigned long long) k, derr.msg);
    sc->st[y] = B_DAMAGED;
  }
  if (never)
    return 1;
  return remap_set_error (err, -EUCLEAN,
                          "%s: table block %llu is damaged in every "
                          "metadata copy%s%s%s; the remap table cannot be "
                          "read.  Inspect it with 'remapctl dump %s'",
                          e->spare->name, (unsigned long long) k,
                          derr.msg[0] ? " (last: " : "", derr.msg,
                          derr.msg[0] ? ")" : "", e->spare->name);
}

/* Load one decoded block version into the table (no index yet). */
static int
load_block (struct remap_engine *e, uint64_t k, const struct remap_entry *ent)
{
  uint32_t E = e->L->entries_per_block;
  for (uint32_t j = 0; j < E; j++) {
    e->word_buf[j] = make_word (ent[j].state, ent[j].origin_unit);
    e->lost_buf[j] = ent[j].lost;
  }
  return table_load_block (e->t, k, e->word_buf, e->lost_buf);
}

/* The same origin unit in two slots (a crash between the two blocks of a
 * relocation, FORMAT.md 10.4): the slot in the newer block wins; on a tie
 * the one indexed first. */
static bool
first_wins (void *opaque, uint64_t a, uint64_t b)
{
  struct remap_engine *e = opaque;
  uint32_t E = e->L->entries_per_block;
  return e->block_gen[a / E] >= e->block_gen[b / E];
}

/* Load the best version of every used table block into the table.  The
 * chosen versions are read again in runs (one read per run of consecutive
 * blocks chosen from the same copy); a block whose run read or decode does
 * not give what the scan saw goes through read_chosen_block, which drops
 * that version and tries the next copy.  The index is built once at the
 * end, at its final size, resolving duplicates.
 *
 * The current generation is the highest any valid version (or map unit)
 * had in the scan, also one dropped when it failed to read back: its bytes
 * may still be on the disk, and a later commit must outrank them.  A block
 * that no copy has valid but some copy never wrote is empty; if another
 * copy has it damaged, it is rewritten (dirty) so that the damage goes. */
static int
load_table (struct remap_engine *e, struct scan *sc, bool *dirty,
            struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  uint32_t unit = l->unit, E = l->entries_per_block;
  uint32_t chunk = SCAN_CHUNK_UNITS;
  while ((size_t) chunk * unit > 4u << 20)
    chunk /= 2;
  uint8_t *buf = eng_alloc_buf ((size_t) chunk * unit);
  struct remap_entry *ent = malloc (E * sizeof *ent);
  uint32_t *pick = malloc ((sc->nused ? sc->nused : 1) * sizeof *pick);
  uint64_t best_gen = 0, scanned_gen = e->generation;
  uint64_t losers[64];
  size_t nl = 0;
  int r = 0;

  if (!buf || !ent || !pick) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t y = 0; y < (size_t) l->copies * sc->nused; y++)
    scanned_gen = sc->gen[y] > scanned_gen ? sc->gen[y] : scanned_gen;
  for (uint64_t x = 0; x < sc->nused; x++) {
    bool never;
    pick[x] = pick_copy (l, sc, x, &never);
  }
  for (uint64_t x = 0; x < sc->nused;) {
    /* A run of consecutive blocks chosen from the same copy. */
    uint32_t n = 1;
    if (pick[x] != UINT32_MAX)
      while (n < chunk && x + n < sc->nused && pick[x + n] == pick[x]
             && sc->used[x + n] == sc->used[x] + n)
        n++;
    int rd = pick[x] == UINT32_MAX ? -1
      : remap_backend_pread (e->spare, buf, (size_t) n * unit,
                             block_unit (l, pick[x], sc->used[x]) * unit);
    for (uint32_t j = 0; j < n; j++, x++) {
      uint64_t k = sc->used[x];
      struct remap_tb tb;
      int d = -1;
      if (rd == 0)
        d = remap_tb_decode (&e->sb, buf + (size_t) j * unit, unit, k, &tb,
                             ent, NULL);
      if (d != 0 || tb.generation != sc->gen[SC (sc, pick[x], x)])
        d = read_chosen_block (e, sc, x, buf + (size_t) j * unit, &tb, ent,
                               err);
      if (d == 1) {             /* empty: never written where it counts */
        e->block_gen[k] = 0;
        for (uint32_t i = 0; i < l->copies; i++)
          dirty[k] |= sc->st[SC (sc, i, x)] == B_DAMAGED;
        continue;
      }
      if (d) {
        r = d;
        goto out;
      }
      e->block_gen[k] = tb.generation;
      e->block_cursor[k] = tb.alloc_cursor;
      if (tb.generation > best_gen) {
        best_gen = tb.generation;
        e->cursor = tb.alloc_cursor;
      }
      if (load_block (e, k, ent) != 0) {
        r = remap_set_error (err, -ENOMEM, "out of memory loading the "
                             "table");
        goto out;
      }
    }
  }
  int ri = table_index_all (e->t, first_wins, e, losers,
                            sizeof losers / sizeof losers[0], &nl);
  if (ri == -ENOMEM) {
    r = remap_set_error (err, -ENOMEM, "out of memory loading the table");
    goto out;
  }
  for (size_t i = 0; i < nl; i++)
    dirty[losers[i] / E] = true;
  if (ri == -E2BIG)             /* more than we listed: rewrite them all */
    for (uint64_t x = 0; x < sc->nused; x++)
      dirty[sc->used[x]] = true;
  e->generation = scanned_gen;        /* >= best_gen */
  /* A metadata unit that could not be read may hold a version written by
   * a commit that reported failure, with a generation above every one
   * seen; when it becomes readable again, the next commits must still
   * outrank it: skip far ahead (2^32 failed commits would be needed to
   * catch up), within the bound. */
  if (sc->unreadable && REMAP_MAX_GENERATION - e->generation > GEN_SKIP) {
    eng_log (e, REMAP_LOG_WARN, "%s: some metadata could not be read; "
             "generations skip ahead by %llu so that nothing it may hold "
             "can outrank later commits", e->spare->name,
             (unsigned long long) GEN_SKIP);
    e->generation += GEN_SKIP;
  }
 out:
  free (buf);
  free (ent);
  free (pick);
  return r;
}

/* Does copy i hold the version of used block x that was loaded? */
static bool
copy_current (const struct remap_engine *e, const struct scan *sc,
              uint32_t i, uint64_t x)
{
  size_t y = SC (sc, i, x);
  uint64_t want = e->block_gen[sc->used[x]];
  if (want == 0)
    return sc->st[y] != B_DAMAGED;    /* never written, or unknown */
  return sc->st[y] == B_VALID && sc->gen[y] == want;
}

/* Count a copy valid only if its superblock, its maps and every block are
 * current; nothing is written (read-only, no_repair). */
static void
report_copies (struct remap_engine *e, const struct scan *sc)
{
  const struct remap_layout *l = e->L;
  for (uint32_t i = 0; i < l->copies; i++) {
    bool ok = sc->sb_ok[i];
    for (uint64_t m = 0; m < l->map_units && ok; m++)
      ok = !sc->map_bad[(size_t) i * l->map_units + m];
    for (uint64_t x = 0; x < sc->nused && ok; x++)
      ok = copy_current (e, sc, i, x);
    e->copy_ok[i] = ok;
  }
}

/* Rewrite copy i's stale, damaged or missing blocks, then (version 2) the
 * map units that must now claim them or that were damaged, then its
 * superblock if it was not current; flushes between the steps, so that a
 * map never claims a block before the block is durable.  Counts the
 * units written in *n and the failures in *failed (first error *first). */
static void
repair_copy (struct remap_engine *e, struct scan *sc, const bool *dirty,
             uint32_t i, uint64_t *n, uint64_t *failed, int *first)
{
  const struct remap_layout *l = e->L;
  uint64_t B = remap_layout_blocks_per_map (l);
  bool *remap_map = l->version >= 2
    ? calloc (l->map_units + 1, sizeof *remap_map) : NULL;
  int r;

  for (uint64_t m = 0; remap_map && m < l->map_units; m++)
    remap_map[m] = sc->map_bad[(size_t) i * l->map_units + m];
  uint64_t wrote = 0;
  for (uint64_t x = 0; x < sc->nused && e->copy_ok[i]; x++) {
    uint64_t k = sc->used[x];
    if (!dirty[k] && copy_current (e, sc, i, x))
      continue;
    if (e->block_gen[k] == 0)
      continue;                 /* empty everywhere that counts */
    /* Same generation, same bytes as the copy it repairs (a block
     * changed while loading has a fresh generation and the current
     * cursor). */
    encode_block (e, k, e->block_gen[k], e->block_cursor[k], NULL, 0,
                  e->meta_buf);
    r = write_meta_unit (e, i, block_unit (l, i, k), e->meta_buf, false);
    if (r) {
      (*failed)++;
      *first = *first ? *first : r;
      if (e->written[i])        /* unknown now: read it if claimed */
        continue;
    }
    else {
      (*n)++;
      wrote++;
    }
    if (e->written[i] && r == 0 && !bit_get (e->written[i], k)) {
      bit_put (e->written[i], k, true);
      remap_map[k / B] = true;
    }
  }
  if (wrote && (r = eng_flush (e, e->spare, "the repair at open")) != 0) {
    /* Not known durable: no map may claim these blocks yet. */
    *failed += wrote;
    *n -= wrote;
    *first = *first ? *first : r;
    free (remap_map);
    return;
  }
  uint64_t maps = 0;
  for (uint64_t m = 0; remap_map && m < l->map_units && e->copy_ok[i]; m++) {
    if (!remap_map[m])
      continue;
    struct remap_mapu h = { .generation = e->generation ? e->generation : 1,
                            .map_index = m };
    remap_map_encode (&e->sb, &h, e->written[i] + m * B / 8, e->map_buf);
    r = write_meta_unit (e, i, remap_layout_map_unit (l, i, m), e->map_buf,
                         false);
    if (r) {
      (*failed)++;
      *first = *first ? *first : r;
    }
    else {
      (*n)++;
      maps++;
    }
  }
  if (e->copy_ok[i] && !sc->sb_ok[i]) {
    encode_sb_copy (&e->sb, i, e->meta_buf, e->unit);
    r = write_meta_unit (e, i, copy_unit (l, i, 0), e->meta_buf, false);
    if (r) {
      (*failed)++;
      *first = *first ? *first : r;
    }
    else {
      (*n)++;
      maps++;
    }
  }
  if (maps && (r = eng_flush (e, e->spare, "the repair at open")) != 0) {
    *failed += maps;
    *n -= maps;
    *first = *first ? *first : r;
  }
  free (remap_map);
}

/* Rewrite stale or damaged blocks, maps and superblocks of every copy, and
 * the blocks changed while loading (dirty: given a fresh generation).
 * Copy after copy.  It writes only inside the copy extents, which
 * scan_copies found free of any other identity's metadata where it read
 * (it refuses otherwise): repair never writes over another spare's copy. */
static void
repair (struct remap_engine *e, struct scan *sc, const bool *dirty)
{
  const struct remap_layout *l = e->L;
  uint64_t fixed = 0, ndirty = 0;

  for (uint64_t x = 0; x < sc->nused; x++)
    ndirty += dirty[sc->used[x]];
  if (REMAP_MAX_GENERATION - e->generation < ndirty) {
    /* Rewriting the resolved blocks would need generations past the
     * bound; leave every copy as it is (the next open resolves the same
     * way) and report the damaged ones. */
    eng_log (e, REMAP_LOG_WARN, "%s: not repaired: the table is at "
             "generation %llu, the largest the format allows",
             e->spare->name, (unsigned long long) e->generation);
    report_copies (e, sc);
    return;
  }
  for (uint64_t x = 0; x < sc->nused; x++) {
    uint64_t k = sc->used[x];
    if (dirty[k]) {
      e->block_gen[k] = ++e->generation;
      e->block_cursor[k] = e->cursor;
    }
  }
  /* As in a commit (write_meta_unit): only a media error of a write
   * retires a copy; any other error leaves it in service with that unit
   * unrepaired (its older version loses to the newest at every open), and
   * a failed flush blames no copy but is remembered (eng_flush). */
  for (uint32_t i = 0; i < l->copies; i++) {
    uint64_t n = 0, failed = 0;
    int first = 0;
    repair_copy (e, sc, dirty, i, &n, &failed, &first);
    if (!e->copy_ok[i])
      eng_log (e, REMAP_LOG_WARN, "metadata copy %u could not be repaired "
               "(%s); it stays retired", i, strerror (-first));
    else if (failed)
      eng_log (e, REMAP_LOG_WARN, "metadata copy %u: %llu unit(s) could not "
               "be repaired (%s); the copy stays in service", i,
               (unsigned long long) failed, strerror (-first));
    fixed += n;
  }
  atomic_store (&e->c_repaired, fixed);
  if (fixed)
    eng_log (e, REMAP_LOG_INFO, "repaired %llu metadata units on %s",
             (unsigned long long) fixed, e->spare->name);
}

static void
engine_free (struct remap_engine *e)
{
  if (!e)
    return;
  if (e->locks_ready) {
    for (unsigned i = 0; i < NSTRIPES; i++)
      pthread_rwlock_destroy (&e->stripe[i]);
    pthread_mutex_destroy (&e->meta_lock);
    pthread_mutex_destroy (&e->zc_lock);
  }
  free (e->zc);
  table_destroy (e->t);
  for (uint32_t i = 0; i < REMAP_MAX_COPIES; i++)
    free (e->written[i]);
  free (e->map_buf);
  free (e->block_gen);
  free (e->block_cursor);
  free (e->meta_buf);
  free (e->ent_buf);
  free (e->word_buf);
  free (e->lost_buf);
  remap_backend_close (e->origin);
  remap_backend_close (e->spare);
  free (e);
}

static int
check_identity (struct remap_engine *e, struct remap_error *err)
{
  const struct remap_sb *sb = &e->sb;
  if (e->origin->size != sb->origin_size && !e->opts.ignore_origin_size)
    return remap_set_error (err, -ENODEV,
                            "spare %s belongs to another origin: it was "
                            "formatted for %s (%llu bytes), but origin %s "
                            "has %llu bytes; give the right origin or "
                            "spare", e->spare->name, sb->origin_label,
                            (unsigned long long) sb->origin_size,
                            e->origin->name,
                            (unsigned long long) e->origin->size);
  /* The origin's identity (version 2): recorded at format when the backend
   * could tell it, checked when both sides know one.  A mismatch is
   * another disk of the same size, or the same data moved (a copied image
   * file): refuse, naming both and the override. */
  /* Identities of different kinds ("file:" recorded, "nbd:" now: the same
   * image served another way) cannot be compared: only warned about. */
  size_t kind = strcspn (sb->origin_id, ":");
  bool comparable = sb->origin_id[0] && e->origin->identity[0]
    && strncmp (sb->origin_id, e->origin->identity, kind + 1) == 0;
  if (comparable && strcmp (sb->origin_id, e->origin->identity) != 0
      && !e->opts.accept_origin_change)
    return remap_set_error (err, -ENODEV,
                            "spare %s belongs to another origin: it was "
                            "formatted for %s (identity %s), but origin %s "
                            "is %s; give the right origin, or if this is "
                            "the same data on another medium, accept it "
                            "(origin-changed=accept, or 'remapctl rebind')",
                            e->spare->name, sb->origin_label, sb->origin_id,
                            e->origin->name, e->origin->identity);
  if (sb->origin_id[0] && e->origin->identity[0]
      && strcmp (sb->origin_id, e->origin->identity) != 0)
    eng_log (e, REMAP_LOG_WARN, "origin %s is %s, but spare %s was "
             "formatted for %s; %s", e->origin->name, e->origin->identity,
             e->spare->name, sb->origin_id, comparable ? "accepted as asked"
             : "not the same kind of identity, so it cannot be checked");
  /* The copies' places follow from the spare's size in units, so a spare
   * that changed size by a unit or more could no longer be searched for
   * its copies should the first one be damaged: refuse it now, while
   * that copy still tells us the size it had. */
  if (e->spare->size / sb->layout.unit != sb->layout.spare_units)
    return remap_set_error (err, -ENODEV,
                            "spare %s has %s: it has %llu bytes, but was "
                            "formatted with %llu; restore its size "
                            "(truncate -s %llu %s); remap cannot use a "
                            "resized spare", e->spare->name,
                            e->spare->size < sb->spare_size ? "shrunk"
                            : "grown", (unsigned long long) e->spare->size,
                            (unsigned long long) sb->spare_size,
                            (unsigned long long) sb->spare_size,
                            e->spare->name);
  if (sb->ro_compat & ~REMAP_RO_COMPAT_KNOWN && !e->opts.readonly)
    return remap_set_error (err, -EOPNOTSUPP,
                            "spare %s uses features this remap cannot "
                            "write; open it read-only or use a newer remap",
                            e->spare->name);
  return 0;
}

static int
engine_init (struct remap_engine *e)
{
  const struct remap_layout *l = e->L;
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init (&a);
  pthread_rwlockattr_setkind_np (&a,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  for (unsigned i = 0; i < NSTRIPES; i++)
    pthread_rwlock_init (&e->stripe[i], &a);
  pthread_rwlockattr_destroy (&a);
  pthread_mutex_init (&e->meta_lock, NULL);
  pthread_mutex_init (&e->zc_lock, NULL);
  remap_backend_track_writes (e->spare);        /* for extents.c's zc */
  e->locks_ready = true;
  e->unit = l->unit;
  e->granule = e->sb.lost_granule;
  e->granules = e->unit / e->granule;
  e->origin_size = e->origin->size;
  for (uint32_t i = 0; i < l->copies; i++)
    e->copy_ok[i] = true;
  e->block_gen = calloc (l->table_blocks, sizeof *e->block_gen);
  e->block_cursor = calloc (l->table_blocks, sizeof *e->block_cursor);
  e->meta_buf = eng_alloc_buf (l->unit);
  e->map_buf = eng_alloc_buf (l->unit);
  e->ent_buf = malloc (l->entries_per_block * sizeof *e->ent_buf);
  e->word_buf = malloc (l->entries_per_block * sizeof *e->word_buf);
  e->lost_buf = malloc (l->entries_per_block * sizeof *e->lost_buf);
  if (!e->block_gen || !e->block_cursor || !e->meta_buf || !e->map_buf
      || !e->ent_buf || !e->word_buf || !e->lost_buf
      || table_create (l->table_blocks * l->entries_per_block,
                       l->spare_units, l->entries_per_block, &e->t) != 0)
    return -ENOMEM;
  e->pcursor = remap_layout_first_pending_slot (l);
  /* Written bits: whole map units' worth, so that a map unit's bitmap is
   * one slice of it. */
  for (uint32_t i = 0; i < l->copies && l->version >= 2; i++)
    if (!(e->written[i] = calloc (l->map_units
                                  * remap_layout_blocks_per_map (l) / 8, 1)))
      return -ENOMEM;
  for (uint32_t i = 0; i < l->copies; i++)
    if (table_reserve_units (e->t, l->copy_offset[i], l->copy_units) != 0)
      return -ENOMEM;
  return 0;
}

int
remap_open (struct remap_backend *origin, struct remap_backend *spare,
            const struct remap_open_opts *opts, struct remap_engine **out,
            struct remap_error *err)
{
  struct remap_engine *e = calloc (1, sizeof *e);
  struct scan sc = { 0 };
  bool *dirty = NULL;
  int r;

  *out = NULL;
  if (!e) {
    remap_backend_close (origin);
    remap_backend_close (spare);
    return remap_set_error (err, -ENOMEM, "out of memory");
  }
  e->origin = origin;
  e->spare = spare;
  if (opts)
    e->opts = *opts;
  e->L = &e->sb.layout;
  if (e->opts.read_retries > REMAP_MAX_READ_RETRIES
      || e->opts.retry_delay_us > REMAP_MAX_RETRY_DELAY_US) {
    r = remap_set_error (err, -EINVAL, "read retries: %u extra attempts "
                         "with a first back-off of %u us is past the "
                         "bounds (at most %u attempts and %u us); give "
                         "smaller values", e->opts.read_retries,
                         e->opts.retry_delay_us, REMAP_MAX_READ_RETRIES,
                         REMAP_MAX_RETRY_DELAY_US);
    goto fail_early;
  }

  if (!e->opts.no_lock
      && ((r = remap_backend_lock (spare, err)) != 0
          || (r = remap_backend_lock (origin, err)) != 0))
    goto fail_early;
  if ((r = discover (spare, &e->sb, err)) != 0)
    goto fail_early;
  if ((r = check_identity (e, err)) != 0)
    goto fail_early;
  if ((r = engine_init (e)) != 0) {
    remap_set_error (err, r, "out of memory");
    goto fail;
  }
  if ((r = scan_copies (e, &sc, err)) != 0)
    goto fail;
  dirty = calloc (e->L->table_blocks, sizeof *dirty);
  if (!dirty) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto fail;
  }
  if ((r = load_table (e, &sc, dirty, err)) != 0)
    goto fail;
  if (!e->opts.readonly && !e->opts.no_repair)
    repair (e, &sc, dirty);
  else
    report_copies (e, &sc);
  scan_free (&sc);
  free (dirty);
  pthread_mutex_lock (&e->meta_lock);
  spare_watch_locked (e);       /* already low at open: say so once */
  pthread_mutex_unlock (&e->meta_lock);
  *out = e;
  return 0;

 fail_early:
 fail:
  scan_free (&sc);
  free (dirty);
  engine_free (e);
  return r;
}

int
remap_close (struct remap_engine *e)
{
  if (!e)
    return 0;
  int r = 0;
  if (!e->opts.readonly) {
    r = remap_backend_flush (e->origin);
    int r2 = remap_backend_flush (e->spare);
    if (!r)
      r = r2;
  }
  engine_free (e);
  return r;
}

/* ---- status ---------------------------------------------------------- */

uint64_t
remap_size (const struct remap_engine *e)
{
  return e->origin_size;
}

uint32_t
remap_unit (const struct remap_engine *e)
{
  return e->unit;
}

void
remap_get_counters (struct remap_engine *e, struct remap_counters *c)
{
  struct table_counts n;
  memset (c, 0, sizeof *c);
  pthread_mutex_lock (&e->meta_lock);
  table_get_counts (e->t, &n);
  c->reallocated_units = n.mapped;
  c->pending_units = n.pending + n.vpend;
  c->uncorrectable_units = n.lost_units;
  c->lost_granules = n.lost_granules;
  c->spare_bad_units = n.bad;
  c->spare_usable_units = e->L->usable_units;
  c->spare_total_units = e->L->spare_units;
  c->spare_free_units = free_of (e, &n);
  c->doubt_units = n.doubt;
  c->held_spare_units = n.held;
  c->copies_total = e->L->copies;
  for (uint32_t i = 0; i < e->L->copies; i++)
    c->copies_valid += e->copy_ok[i];
  c->generation = e->generation;
  pthread_mutex_unlock (&e->meta_lock);
  c->reallocation_events = atomic_load (&e->c_events);
  c->read_errors = atomic_load (&e->c_read_errors);
  c->write_errors = atomic_load (&e->c_write_errors);
  c->spare_errors = atomic_load (&e->c_spare_errors);
  c->retries = atomic_load (&e->c_retries);
  c->enospc_events = atomic_load (&e->c_enospc);
  c->meta_write_units = atomic_load (&e->c_meta_units);
  c->repaired_blocks = atomic_load (&e->c_repaired);
}

void
remap_get_info (const struct remap_engine *e, struct remap_info *info)
{
  memset (info, 0, sizeof *info);
  info->layout = *e->L;
  memcpy (info->uuid, e->sb.uuid, 16);
  info->origin_size = e->sb.origin_size;
  info->spare_size = e->sb.spare_size;
  info->lost_granule = e->sb.lost_granule;
  info->format_time = e->sb.format_time;
  memcpy (info->origin_label, e->sb.origin_label, sizeof info->origin_label);
  snprintf (info->origin_name, sizeof info->origin_name, "%s",
            e->origin->name);
  snprintf (info->spare_name, sizeof info->spare_name, "%s", e->spare->name);
}

void
remap_get_backend_status (struct remap_engine *e,
                          struct remap_backend_status *origin,
                          struct remap_backend_status *spare)
{
  if (origin)
    remap_backend_status (e->origin, origin);
  if (spare)
    remap_backend_status (e->spare, spare);
}

int
remap_foreach (struct remap_engine *e,
               int (*fn) (void *opaque, const struct remap_mapping *m),
               void *opaque)
{
  struct remap_mapping *snap;
  size_t i;
  if (table_snapshot (e->t, &snap, &i) != 0)
    return -ENOMEM;
  int r = 0;
  for (size_t j = 0; j < i && r == 0; j++)
    r = fn (opaque, &snap[j]);
  free (snap);
  return r;
}

/* ---- inspection ------------------------------------------------------ */

int
remap_inspect (struct remap_backend *spare, struct remap_inspect *out,
               struct remap_error *err)
{
  struct remap_engine *e = calloc (1, sizeof *e);
  struct scan sc = { 0 };
  struct remap_error derr = { 0 };
  int r;

  memset (out, 0, sizeof *out);
  if (!e)
    return remap_set_error (err, -ENOMEM, "out of memory");
  e->spare = spare;
  e->L = &e->sb.layout;
  r = discover (spare, &e->sb, &derr);
  if (r == -ENOMEDIUM || r == -EUCLEAN) {
    out->verdict = REMAP_UNUSABLE;
    snprintf (out->reason, sizeof out->reason, "%s", derr.msg);
    free (e);
    return 0;
  }
  if (r) {
    free (e);
    return remap_set_error (err, r, "%s", derr.msg);
  }
  out->found = true;
  const struct remap_layout *l = e->L;
  e->block_gen = calloc (l->table_blocks, sizeof *e->block_gen);
  if (!e->block_gen)
    r = remap_set_error (&derr, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < l->copies && r == 0 && l->version >= 2; i++)
    if (!(e->written[i] = calloc (l->map_units
                                  * remap_layout_blocks_per_map (l) / 8, 1)))
      r = remap_set_error (&derr, -ENOMEM, "out of memory");
  if (r == 0)
    r = scan_copies (e, &sc, &derr);
  /* -EUCLEAN: the copies hold metadata of another identity. */
  if (r && r != -EUCLEAN) {
    r = remap_set_error (err, r, "%s", derr.msg);
    goto out;
  }

  out->info.layout = *l;
  memcpy (out->info.uuid, e->sb.uuid, 16);
  out->info.origin_size = e->sb.origin_size;
  out->info.spare_size = e->sb.spare_size;
  out->info.lost_granule = e->sb.lost_granule;
  out->info.format_time = e->sb.format_time;
  memcpy (out->info.origin_label, e->sb.origin_label,
          sizeof out->info.origin_label);
  snprintf (out->info.spare_name, sizeof out->info.spare_name, "%s",
            spare->name);
  if (r) {
    r = 0;
    out->verdict = REMAP_UNUSABLE;
    snprintf (out->reason, sizeof out->reason, "%s", derr.msg);
    goto out;
  }

  /* Blocks that no map claims are empty in every copy: current. */
  out->generation = e->generation;      /* the maps' */
  for (uint64_t x = 0; x < sc.nused; x++) {
    uint64_t best = 0;
    bool never = false;
    for (uint32_t i = 0; i < l->copies; i++) {
      size_t y = SC (&sc, i, x);
      never |= sc.st[y] == B_NEVER;
      if (sc.st[y] == B_VALID)
        best = sc.gen[y] > best ? sc.gen[y] : best;
    }
    e->block_gen[sc.used[x]] = best;
    out->blocks_lost += best == 0 && !never;
    out->generation = best > out->generation ? best : out->generation;
  }
  bool damaged = false;
  for (uint32_t i = 0; i < l->copies; i++) {
    struct remap_copy_status *c = &out->copy[i];
    c->first_unit = l->copy_offset[i];
    c->sb_valid = sc.sb_ok[i];
    damaged |= !c->sb_valid;
    for (uint64_t m = 0; m < l->map_units; m++)
      if (sc.map_bad[(size_t) i * l->map_units + m]) {
        c->blocks_damaged++;
        damaged = true;
      }
    c->blocks_current = l->table_blocks - sc.nused;
    for (uint64_t x = 0; x < sc.nused; x++) {
      size_t y = SC (&sc, i, x);
      uint64_t g = sc.gen[y];
      if (sc.st[y] == B_DAMAGED)
        c->blocks_damaged++;
      else if (copy_current (e, &sc, i, x))
        c->blocks_current++;
      else
        c->blocks_stale++;
      c->max_generation = g > c->max_generation ? g : c->max_generation;
    }
    damaged |= c->blocks_damaged || c->blocks_stale;
  }
  if (spare->size / l->unit != l->spare_units) {
    /* remap_open refuses it (the copies' places follow from the size in
     * units), so the verdict must say so too. */
    out->verdict = REMAP_UNUSABLE;
    snprintf (out->reason, sizeof out->reason,
              "the spare has %s: it has %llu bytes, but was formatted with "
              "%llu; restore its size (truncate -s %llu %s); remap cannot "
              "use a resized spare",
              spare->size < e->sb.spare_size ? "shrunk" : "grown",
              (unsigned long long) spare->size,
              (unsigned long long) e->sb.spare_size,
              (unsigned long long) e->sb.spare_size, spare->name);
  }
  else if (out->blocks_lost) {
    out->verdict = REMAP_UNUSABLE;
    snprintf (out->reason, sizeof out->reason,
              "%llu table block(s) are damaged in every copy",
              (unsigned long long) out->blocks_lost);
  }
  else if (damaged) {
    out->verdict = REMAP_REPAIRABLE;
    snprintf (out->reason, sizeof out->reason,
              "some copies are damaged or stale; every block still has a "
              "valid copy");
  }
 out:
  free (e->block_gen);
  for (uint32_t i = 0; i < REMAP_MAX_COPIES; i++)
    free (e->written[i]);
  scan_free (&sc);
  free (e);
  return r;
}
