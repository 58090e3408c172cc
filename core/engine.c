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

static uint64_t
copy_unit (const struct remap_layout *l, uint32_t i, uint64_t k)
{
  return l->copy_offset[i] + k;
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
write_meta_unit (struct remap_engine *e, uint32_t i, uint64_t k,
                 const uint8_t *buf, bool flush)
{
  uint64_t off = copy_unit (e->L, i, k) * e->unit;
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
int
commit_locked (struct remap_engine *e, const struct change *c, size_t n,
               struct remap_error *err)
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
        int r = write_meta_unit (e, i, 1 + k, e->meta_buf, true);
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
  if (table_alloc (e->t, &e->cursor, slot) == 0)
    return 0;
  atomic_fetch_add (&e->c_enospc, 1);
  return remap_set_error (err, -ENOSPC,
                          "spare %s is full: all %llu usable units are in "
                          "use; replace the origin disk or give remap a "
                          "larger spare", e->spare->name,
                          (unsigned long long) e->L->usable_units);
}

/* ---- format ---------------------------------------------------------- */

static bool
uuid_zero (const uint8_t u[16])
{
  for (int i = 0; i < 16; i++)
    if (u[i])
      return false;
  return true;
}

/* Format, step 2: every unit of every copy extent, the superblock unit
 * zeroed and the table blocks empty (generation 1), then one flush.  No
 * superblock of this spare exists yet, so a crash here leaves nothing that
 * opens; once the first one is written, every unit of every extent is
 * already this spare's, and the scan at open finds nothing foreign there. */
static int
format_extents (struct remap_backend *spare, const struct remap_sb *sb,
                uint8_t *buf, uint32_t chunk)
{
  const struct remap_layout *l = &sb->layout;
  uint32_t unit = l->unit;
  struct remap_tb tb = { .generation = 1 };
  memcpy (tb.uuid, sb->uuid, 16);

  for (uint32_t i = 0; i < l->copies; i++)
    for (uint64_t k = 0; k < l->copy_units;) {
      uint32_t n = 0;
      for (; n < chunk && k < l->copy_units; n++, k++) {
        uint8_t *p = buf + (size_t) n * unit;
        if (k == 0)
          memset (p, 0, unit);
        else {
          tb.block_index = k - 1;
          remap_tb_encode (&tb, NULL, 0, unit, p);
        }
      }
      uint64_t first = copy_unit (l, i, k - n);
      int r = remap_backend_pwrite (spare, buf, (size_t) n * unit,
                                    first * unit);
      if (r)
        return r;
    }
  return remap_backend_flush (spare);
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

  if (uuid_zero (o->uuid))
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
  r = format_extents (spare, &sb, buf, chunk);
  if (r == 0)
    r = format_superblocks (spare, &sb, buf);
  free (buf);
  if (r)
    return remap_set_error (err, r, "format: writing metadata to %s: %s",
                            spare->name, strerror (-r));
  return 0;
}

/* ---- open ------------------------------------------------------------ */

struct scan {
  uint64_t *gen;                /* [copies * T]: 0 = invalid */
  bool sb_ok[REMAP_MAX_COPIES];
};

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
    && sb.layout.unit == l->unit && sb.layout.strategy == l->strategy
    && sb.layout.copies == l->copies
    && sb.layout.spare_units == l->spare_units
    && sb.copy_index == i && sb.sb_generation == e->sb.sb_generation;
  uint32_t skip = sc->sb_ok[i] ? REMAP_SB_SIZE : 0;
  return check_foreign (e->spare, &e->sb, buf + skip, l->unit - skip,
                        off + skip, i, err);
}

/* Read every copy and record the generation of each valid block.  Every
 * unit that is not this spare's valid metadata is searched for metadata of
 * another identity: if there is any, the copies disagree on identity and
 * the scan refuses (-EUCLEAN with a message), so that open neither uses
 * them nor repairs over them (discover.c says why). */
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
  sc->gen = calloc ((size_t) l->copies * l->table_blocks, sizeof *sc->gen);
  if (!buf || !ent || !sc->gen) {
    free (buf);
    free (ent);
    return remap_set_error (err, -ENOMEM, "out of memory");
  }

  for (uint32_t i = 0; i < l->copies && r == 0; i++) {
    r = scan_superblock (e, sc, i, buf, err);
    for (uint64_t k = 0; k < l->table_blocks && r == 0; k += chunk) {
      uint32_t n = l->table_blocks - k < chunk
        ? (uint32_t) (l->table_blocks - k) : chunk;
      uint64_t off = copy_unit (l, i, 1 + k) * unit;
      int rd = remap_backend_pread (e->spare, buf, (size_t) n * unit, off);
      for (uint32_t j = 0; j < n && r == 0; j++) {
        uint8_t *p = buf + (size_t) j * unit;
        uint64_t at = off + (uint64_t) j * unit;
        /* A failed chunk read: retry block by block to isolate it. */
        if (rd && remap_backend_pread (e->spare, p, unit, at) != 0)
          continue;
        struct remap_tb tb;
        if (remap_tb_decode (&e->sb, p, unit, k + j, &tb, ent, NULL) == 0)
          sc->gen[(size_t) i * l->table_blocks + k + j] = tb.generation;
        else
          r = check_foreign (e->spare, &e->sb, p, unit, at, i, err);
      }
    }
  }
  free (buf);
  free (ent);
  return r;
}

/* The copy whose version of block k is loaded: the highest generation
 * among the valid ones, ties to the lowest copy (FORMAT.md 10.3).
 * UINT32_MAX if no copy has a valid version left. */
static uint32_t
pick_copy (const struct remap_layout *l, const struct scan *sc, uint64_t k)
{
  uint32_t bi = UINT32_MAX;
  for (uint32_t i = 0; i < l->copies; i++) {
    uint64_t g = sc->gen[(size_t) i * l->table_blocks + k];
    if (g && (bi == UINT32_MAX
              || g > sc->gen[(size_t) bi * l->table_blocks + k]))
      bi = i;
  }
  return bi;
}

/* Read back and decode the chosen version of block k into tb and ent.  The
 * scan saw it valid a moment ago, but the bytes are read again: a version
 * that now fails to read, or reads back as anything but what the scan saw
 * (another generation), is dropped exactly as if the scan had found it
 * damaged (repair then rewrites it), and the next best copy is used. */
static int
read_chosen_block (struct remap_engine *e, struct scan *sc, uint64_t k,
                   uint8_t *buf, struct remap_tb *tb, struct remap_entry *ent,
                   struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  struct remap_error derr = { 0 };
  uint32_t bi;

  while ((bi = pick_copy (l, sc, k)) != UINT32_MAX) {
    uint64_t *g = &sc->gen[(size_t) bi * l->table_blocks + k];
    remap_error_clear (&derr);  /* keep the last failure's message */
    int r = remap_backend_pread (e->spare, buf, l->unit,
                                 copy_unit (l, bi, 1 + k) * l->unit);
    if (r)
      remap_set_error (&derr, r, "copy %u: reading it again failed (%s)",
                       bi, strerror (-r));
    else if ((r = remap_tb_decode (&e->sb, buf, l->unit, k, tb, ent,
                                   &derr)) == 0
             && tb->generation != *g)
      r = remap_set_error (&derr, -EUCLEAN, "copy %u: read again, it has "
                           "generation %llu, not the %llu it had", bi,
                           (unsigned long long) tb->generation,
                           (unsigned long long) *g);
    if (r == 0)
      return 0;
    eng_log (e, REMAP_LOG_WARN, "%s: table block %llu: %s; using the next "
             "valid copy", e->spare->name, (unsigned long long) k, derr.msg);
    *g = 0;
  }
  return remap_set_error (err, -EUCLEAN,
                          "%s: table block %llu is damaged in every "
                          "metadata copy%s%s%s; the remap table cannot be "
                          "read.  Inspect it with 'remapctl dump %s'",
                          e->spare->name, (unsigned long long) k,
                          derr.msg[0] ? " (last: " : "", derr.msg,
                          derr.msg[0] ? ")" : "", e->spare->name);
}

/* Load the best version of every table block into the table.  The current
 * generation is the highest any valid version had in the scan, also one
 * dropped when it failed to read back: its bytes may still be on the
 * disk, and a later commit must outrank them. */
static int
load_table (struct remap_engine *e, struct scan *sc, bool *dirty,
            struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  uint32_t unit = l->unit, E = l->entries_per_block;
  uint8_t *buf = eng_alloc_buf (unit);
  struct remap_entry *ent = malloc (E * sizeof *ent);
  uint64_t best_gen = 0, scanned_gen = 0;
  int r = 0;

  if (!buf || !ent) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t x = 0; x < (size_t) l->copies * l->table_blocks; x++)
    scanned_gen = sc->gen[x] > scanned_gen ? sc->gen[x] : scanned_gen;
  for (uint64_t k = 0; k < l->table_blocks; k++) {
    struct remap_tb tb;
    if ((r = read_chosen_block (e, sc, k, buf, &tb, ent, err)) != 0)
      goto out;
    e->block_gen[k] = tb.generation;
    e->block_cursor[k] = tb.alloc_cursor;
    if (tb.generation > best_gen) {
      best_gen = tb.generation;
      e->cursor = tb.alloc_cursor;
    }
    for (uint32_t j = 0; j < E; j++) {
      uint64_t s = k * E + j;
      if (ent[j].state == REMAP_SLOT_FREE)
        continue;
      uint64_t w = make_word (ent[j].state, ent[j].origin_unit);
      if (ent[j].state != REMAP_SLOT_BAD) {
        struct tmap m;
        table_lookup (e->t, ent[j].origin_unit, &m);
        uint64_t o = m.slot;
        if (m.word != 0) {
          /* The same origin unit in two slots: a crash between the two
           * blocks of a relocation.  The newer block wins; the other slot
           * was the unit's failing old home and becomes BAD (rewritten by
           * repair below). */
          if (e->block_gen[o / E] >= tb.generation) {
            w = make_word (REMAP_SLOT_BAD, 0);
            dirty[k] = true;
          }
          else {
            if (table_load (e->t, o, make_word (REMAP_SLOT_BAD, 0), 0) != 0) {
              r = remap_set_error (err, -ENOMEM, "out of memory loading "
                                   "the table");
              goto out;
            }
            dirty[o / E] = true;
          }
        }
      }
      if (table_load (e->t, s, w, ent[j].lost) != 0) {
        r = remap_set_error (err, -ENOMEM, "out of memory loading the table");
        goto out;
      }
    }
  }
  e->generation = scanned_gen;        /* >= best_gen */
 out:
  free (buf);
  free (ent);
  return r;
}

/* Count a copy valid only if its superblock and every block are current;
 * nothing is written (read-only, no_repair). */
static void
report_copies (struct remap_engine *e, const struct scan *sc)
{
  for (uint32_t i = 0; i < e->L->copies; i++) {
    bool ok = sc->sb_ok[i];
    for (uint64_t k = 0; k < e->L->table_blocks && ok; k++)
      ok = sc->gen[(size_t) i * e->L->table_blocks + k] == e->block_gen[k];
    e->copy_ok[i] = ok;
  }
}

/* Rewrite stale or damaged blocks and superblocks of every copy, and the
 * blocks changed while loading (dirty: given a fresh generation).  One
 * flush per copy, copy after copy.  It writes only inside the copy
 * extents, which scan_copies found free of any other identity's metadata
 * (it refuses otherwise): repair never writes over another spare's copy. */
static void
repair (struct remap_engine *e, struct scan *sc, const bool *dirty)
{
  const struct remap_layout *l = e->L;
  uint64_t fixed = 0, ndirty = 0;

  for (uint64_t k = 0; k < l->table_blocks; k++)
    ndirty += dirty[k];
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
  for (uint64_t k = 0; k < l->table_blocks; k++)
    if (dirty[k]) {
      e->block_gen[k] = ++e->generation;
      e->block_cursor[k] = e->cursor;
    }
  /* As in a commit (write_meta_unit): only a media error of a write
   * retires a copy; any other error leaves it in service with that unit
   * unrepaired (its older version loses to the newest at every open), and
   * a failed flush blames no copy but is remembered (eng_flush). */
  for (uint32_t i = 0; i < l->copies; i++) {
    uint64_t n = 0, failed = 0;
    int r = 0, first = 0;
    for (uint64_t k = 0; k < l->table_blocks && e->copy_ok[i]; k++) {
      if (!dirty[k]
          && sc->gen[(size_t) i * l->table_blocks + k] == e->block_gen[k])
        continue;
      /* Same generation, same bytes as the copy it repairs (a block
       * changed while loading has a fresh generation and the current
       * cursor). */
      encode_block (e, k, e->block_gen[k], e->block_cursor[k], NULL, 0,
                    e->meta_buf);
      r = write_meta_unit (e, i, 1 + k, e->meta_buf, false);
      if (r) {
        failed++;
        first = first ? first : r;
      }
      else
        n++;
    }
    if (e->copy_ok[i] && !sc->sb_ok[i]) {
      encode_sb_copy (&e->sb, i, e->meta_buf, e->unit);
      r = write_meta_unit (e, i, 0, e->meta_buf, false);
      if (r) {
        failed++;
        first = first ? first : r;
      }
      else
        n++;
    }
    if (n && (r = eng_flush (e, e->spare, "the repair at open")) != 0) {
      failed += n;
      first = first ? first : r;
      n = 0;
    }
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
  }
  table_destroy (e->t);
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
  e->ent_buf = malloc (l->entries_per_block * sizeof *e->ent_buf);
  e->word_buf = malloc (l->entries_per_block * sizeof *e->word_buf);
  e->lost_buf = malloc (l->entries_per_block * sizeof *e->lost_buf);
  if (!e->block_gen || !e->block_cursor || !e->meta_buf || !e->ent_buf
      || !e->word_buf || !e->lost_buf
      || table_create (l->spare_units, l->entries_per_block, &e->t) != 0)
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
  free (sc.gen);
  free (dirty);
  *out = e;
  return 0;

 fail_early:
 fail:
  free (sc.gen);
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
  c->spare_free_units = e->L->usable_units - n.mapped - n.pending - n.bad
    - n.held;
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
  else
    r = scan_copies (e, &sc, &derr);
  /* -EUCLEAN: the copies hold metadata of another identity. */
  if (r && r != -EUCLEAN) {
    free (e->block_gen);
    free (sc.gen);
    free (e);
    return remap_set_error (err, r, "%s", derr.msg);
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
    out->verdict = REMAP_UNUSABLE;
    snprintf (out->reason, sizeof out->reason, "%s", derr.msg);
    goto out;
  }

  for (uint64_t k = 0; k < l->table_blocks; k++) {
    uint64_t best = 0;
    for (uint32_t i = 0; i < l->copies; i++) {
      uint64_t g = sc.gen[(size_t) i * l->table_blocks + k];
      best = g > best ? g : best;
    }
    e->block_gen[k] = best;
    out->blocks_lost += best == 0;
    out->generation = best > out->generation ? best : out->generation;
  }
  bool damaged = false;
  for (uint32_t i = 0; i < l->copies; i++) {
    struct remap_copy_status *c = &out->copy[i];
    c->first_unit = l->copy_offset[i];
    c->sb_valid = sc.sb_ok[i];
    damaged |= !c->sb_valid;
    for (uint64_t k = 0; k < l->table_blocks; k++) {
      uint64_t g = sc.gen[(size_t) i * l->table_blocks + k];
      if (g == 0)
        c->blocks_damaged++;
      else if (g == e->block_gen[k])
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
  free (sc.gen);
  free (e);
  return 0;
}
