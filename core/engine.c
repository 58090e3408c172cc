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
 * Discovery: copy 0 is at unit 0 under every strategy, so its superblock is
 * at byte 0.  When that one is damaged, every location any (unit, strategy,
 * copies) combination could use for this spare size is probed, and the
 * superblocks found vote by uuid.
 *
 * This file does no locking of its own beyond meta_lock around commits;
 * open and close run single-threaded.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define MAX_CANDIDATES (1 + 8 * 3 * 36)
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

void
remap_uuid_format (const uint8_t u[16], char out[37])
{
  snprintf (out, 37,
            "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
            "%02x%02x%02x%02x%02x%02x",
            u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
            u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* ---- discovery ------------------------------------------------------- */

static int
cmp_u64 (const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
  return x < y ? -1 : x > y;
}

/* Every byte offset where some layout of this spare puts a superblock. */
static size_t
candidates (uint64_t spare_bytes, uint64_t *out)
{
  size_t n = 0;
  out[n++] = 0;
  for (uint32_t u = REMAP_MIN_UNIT; u <= REMAP_MAX_UNIT; u *= 2)
    for (int s = REMAP_STRATEGY_MINIMAL; s <= REMAP_STRATEGY_GEOMETRIC; s++)
      for (uint32_t c = 1; c <= REMAP_MAX_COPIES; c++) {
        struct remap_layout l;
        if (remap_layout_compute (spare_bytes, u, (enum remap_strategy) s, c,
                                  &l, NULL) != 0)
          continue;
        for (uint32_t i = 1; i < c; i++)
          out[n++] = l.copy_offset[i] * u;
      }
  qsort (out, n, sizeof *out, cmp_u64);
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (m == 0 || out[m - 1] != out[i])
      out[m++] = out[i];
  return m;
}

struct found {
  struct remap_sb sb;
  int votes;
};

/* Read and decode the superblock at byte offset off.  Returns 0, -EUCLEAN
 * family from the decoder, or the I/O error.  *magic says if the bytes
 * carried the remap magic at all. */
static int
read_sb (struct remap_backend *spare, uint64_t off, struct remap_sb *sb,
         bool *magic, struct remap_error *err)
{
  uint8_t buf[REMAP_SB_SIZE];
  *magic = false;
  if (off + REMAP_SB_SIZE > spare->size)
    return -EINVAL;
  int r = remap_backend_pread (spare, buf, sizeof buf, off);
  if (r)
    return r;
  *magic = memcmp (buf, REMAP_SB_MAGIC, 8) == 0;
  r = remap_sb_decode (buf, sizeof buf, sb, err);
  if (r)
    return r;
  /* A superblock is only valid where its own layout says it is. */
  if (sb->layout.copy_offset[sb->copy_index] * sb->layout.unit != off)
    return remap_set_error (err, -EUCLEAN,
                            "superblock at byte %llu is not where its layout "
                            "puts copy %u", (unsigned long long) off,
                            sb->copy_index);
  return 0;
}

/* Find the best superblock on the spare.  0; -ENOMEDIUM (nothing that looks
 * like remap metadata); -EUCLEAN (remap magic seen, nothing valid). */
static int
discover (struct remap_backend *spare, struct remap_sb *best,
          struct remap_error *err)
{
  struct remap_error first = { 0 };
  bool magic, any_magic = false;

  if (read_sb (spare, 0, best, &magic, &first) == 0)
    return 0;
  any_magic |= magic;

  uint64_t *cand = malloc (MAX_CANDIDATES * sizeof *cand);
  struct found *f = calloc (MAX_CANDIDATES, sizeof *f);
  size_t nf = 0;
  if (!cand || !f) {
    free (cand);
    free (f);
    return remap_set_error (err, -ENOMEM, "out of memory");
  }
  size_t nc = candidates (spare->size, cand);
  for (size_t i = 1; i < nc; i++) {
    struct remap_sb sb;
    if (read_sb (spare, cand[i], &sb, &magic, &first) != 0) {
      any_magic |= magic;
      continue;
    }
    any_magic = true;
    size_t j;
    for (j = 0; j < nf; j++)
      if (memcmp (f[j].sb.uuid, sb.uuid, 16) == 0)
        break;
    if (j == nf)
      f[nf++].sb = sb;
    f[j].votes++;
    if (sb.sb_generation > f[j].sb.sb_generation)
      f[j].sb = sb;
  }
  int r;
  if (nf == 0) {
    /* Table blocks without any superblock still mean "metadata here". */
    for (uint32_t u = REMAP_MIN_UNIT; u <= REMAP_MAX_UNIT && !any_magic;
         u *= 2) {
      uint8_t m[4];
      if (u + 4 <= spare->size
          && remap_backend_pread (spare, m, 4, u) == 0
          && m[0] == 'R' && m[1] == 'M' && m[2] == 'T' && m[3] == 'B')
        any_magic = true;
    }
    if (any_magic)
      r = remap_set_error (err, -EUCLEAN,
                           "%s: every metadata copy is damaged (%s); the "
                           "remap table cannot be read.  Inspect it with "
                           "'remapctl dump %s'; do not format it unless "
                           "its remaps may be lost", spare->name,
                           first.msg[0] ? first.msg : "no valid superblock",
                           spare->name);
    else
      r = remap_set_error (err, -ENOMEDIUM,
                           "%s holds no remap metadata; format it first "
                           "(format=yes, or 'remapctl format')",
                           spare->name);
  }
  else {
    size_t b = 0;
    for (size_t j = 1; j < nf; j++)
      if (f[j].votes > f[b].votes
          || (f[j].votes == f[b].votes
              && (f[j].sb.sb_generation > f[b].sb.sb_generation
                  || (f[j].sb.sb_generation == f[b].sb.sb_generation
                      && f[j].sb.format_time > f[b].sb.format_time))))
        b = j;
    *best = f[b].sb;
    r = 0;
  }
  free (cand);
  free (f);
  return r;
}

bool
remap_spare_has_metadata (struct remap_backend *spare)
{
  struct remap_sb sb;
  int r = discover (spare, &sb, NULL);
  return r != -ENOMEDIUM;
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
  for (uint32_t j = 0; j < E; j++) {
    uint64_t s = k * E + j;
    uint64_t w = s < l->spare_units ? e->t.slot[s] : 0;
    uint64_t lost = s < l->spare_units ? table_lost (&e->t, s) : 0;
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
 * then flush if asked.  A failure retires the copy. */
static int
write_meta_unit (struct remap_engine *e, uint32_t i, uint64_t k,
                 const uint8_t *buf, bool flush)
{
  uint64_t off = copy_unit (e->L, i, k) * e->unit;
  int r = remap_backend_pwrite (e->spare, buf, e->unit, off);
  if (r == 0 && flush)
    r = remap_backend_flush (e->spare);
  atomic_fetch_add (&e->c_meta_units, 1);
  if (r) {
    e->copy_ok[i] = false;
    eng_log (e, REMAP_LOG_WARN,
             "metadata copy %u: write at spare byte %llu failed (%s); copy "
             "retired until the next open repairs it", i,
             (unsigned long long) off, strerror (-r));
  }
  return r;
}

/* Set slot s in memory, keeping the counters in step.  tab_lock held
 * exclusive; room reserved (table_reserve) so table_set cannot fail. */
static void
set_slot (struct remap_engine *e, uint64_t s, uint64_t w, uint64_t lost)
{
  uint64_t old = e->t.slot[s], oldlost = table_lost (&e->t, s);
  table_set (&e->t, s, w, lost);
  enum remap_slot_state os = word_state (old), ns = word_state (w);
  e->n_mapped += (ns == REMAP_SLOT_MAPPED) - (os == REMAP_SLOT_MAPPED);
  e->n_pending += (ns == REMAP_SLOT_PENDING) - (os == REMAP_SLOT_PENDING);
  e->n_bad += (ns == REMAP_SLOT_BAD) - (os == REMAP_SLOT_BAD);
  uint64_t nl = ns == REMAP_SLOT_MAPPED ? lost : 0;
  e->n_lost_units += (nl != 0) - (oldlost != 0);
  e->n_lost_granules += (uint64_t) __builtin_popcountll (nl)
    - (uint64_t) __builtin_popcountll (oldlost);
}

/* Apply one durable change.  If another slot still holds the same origin
 * unit, that slot is the old home of a relocation whose second block is
 * not written yet (or never will be): it becomes BAD in memory, exactly as
 * the next open would resolve the pair (the newer block wins, the loser
 * is a spare unit that failed). */
static void
apply_change (struct remap_engine *e, const struct change *c)
{
  enum remap_slot_state ns = word_state (c->word);
  if (ns == REMAP_SLOT_MAPPED || ns == REMAP_SLOT_PENDING) {
    uint32_t o = table_find (&e->t, word_origin (c->word));
    if (o != SLOT_NONE && o != c->slot)
      set_slot (e, o, make_word (REMAP_SLOT_BAD, 0), 0);
    table_uset_del (&e->t.vpend, word_origin (c->word));
    atomic_store (&e->nvpend, e->t.vpend.count);
  }
  set_slot (e, c->slot, c->word, c->lost);
}

/* Commit the changes block by block.  Each block is written to every
 * healthy copy (a flush after each) and, once durable in at least one,
 * its changes are applied to memory: memory never runs ahead of the disk,
 * and never lags behind it either, so a later write cannot go to a slot
 * that the next open would not choose. */
int
commit_locked (struct remap_engine *e, const struct change *c, size_t n,
               struct remap_error *err)
{
  uint32_t E = e->L->entries_per_block;

  if (table_reserve (&e->t, n) != 0)
    return remap_set_error (err, -ENOMEM, "out of memory updating the table");
  for (size_t x = 0; x < n; x++) {
    uint64_t k = c[x].slot / E;
    bool seen = false;
    for (size_t y = 0; y < x; y++)
      seen |= c[y].slot / E == k;
    if (seen)
      continue;
    uint64_t gen = e->generation + 1;
    encode_block (e, k, gen, e->cursor, c, n, e->meta_buf);
    unsigned ok = 0;
    for (uint32_t i = 0; i < e->L->copies; i++)
      if (e->copy_ok[i] && write_meta_unit (e, i, 1 + k, e->meta_buf, true) == 0)
        ok++;
    if (ok == 0) {
      /* Some of these writes may still reach the disk: the units named
       * by this and later changes are in doubt until the next open. */
      for (size_t y = x; y < n; y++) {
        uint64_t ws[2] = { c[y].word, e->t.slot[c[y].slot] };
        for (int z = 0; z < 2; z++) {
          enum remap_slot_state st = word_state (ws[z]);
          if (st == REMAP_SLOT_MAPPED || st == REMAP_SLOT_PENDING)
            table_uset_add (&e->t.doubt, word_origin (ws[z]));
        }
      }
      atomic_store (&e->ndoubt, e->t.doubt.count);
      return remap_set_error (err, -EIO,
                              "%s: the remap table could not be written to "
                              "any metadata copy; the spare is failing",
                              e->spare->name);
    }
    e->generation = gen;
    e->block_gen[k] = gen;
    e->block_cursor[k] = e->cursor;
    pthread_rwlock_wrlock (&e->tab_lock);
    for (size_t y = x; y < n; y++)
      if (c[y].slot / E == k)
        apply_change (e, &c[y]);
    atomic_store (&e->nindexed, e->n_mapped + e->n_pending);
    pthread_rwlock_unlock (&e->tab_lock);
  }
  return 0;
}

int
check_doubt (struct remap_engine *e, uint64_t first, uint64_t last,
             struct remap_error *err)
{
  if (atomic_load (&e->ndoubt) == 0)
    return 0;
  int r = 0;
  pthread_mutex_lock (&e->meta_lock);
  const struct lostmap *m = &e->t.doubt;
  for (size_t i = 0; i < m->cap && r == 0; i++) {
    uint64_t u = m->keys[i] - 1;
    if (m->keys[i] && u >= first && u <= last)
      r = remap_set_error (err, -EIO, "unit %llu: recording its remap "
                           "failed on every metadata copy, so whether the "
                           "spare or the origin holds it is uncertain; it "
                           "refuses writes until remap is restarted and "
                           "repairs the spare", (unsigned long long) u);
  }
  pthread_mutex_unlock (&e->meta_lock);
  return r;
}

int
alloc_locked (struct remap_engine *e, uint64_t *slot, struct remap_error *err)
{
  if (table_alloc (&e->t, &e->cursor, slot) == 0)
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

/* Write copy i of a fresh spare: empty table blocks, then the superblock. */
static int
format_copy (struct remap_backend *spare, const struct remap_sb *sb,
             uint32_t i, uint8_t *buf, uint32_t chunk)
{
  const struct remap_layout *l = &sb->layout;
  uint32_t unit = l->unit;
  struct remap_tb tb = { .generation = 1 };
  memcpy (tb.uuid, sb->uuid, 16);

  for (uint64_t k = 0; k < l->table_blocks;) {
    uint32_t n = 0;
    for (; n < chunk && k < l->table_blocks; n++, k++) {
      tb.block_index = k;
      remap_tb_encode (&tb, NULL, 0, unit, buf + (size_t) n * unit);
    }
    uint64_t first = copy_unit (l, i, 1 + k - n);
    int r = remap_backend_pwrite (spare, buf, (size_t) n * unit,
                                  first * unit);
    if (r)
      return r;
  }
  int r = remap_backend_flush (spare);
  if (r)
    return r;
  encode_sb_copy (sb, i, buf, unit);
  r = remap_backend_pwrite (spare, buf, unit, copy_unit (l, i, 0) * unit);
  if (r)
    return r;
  return remap_backend_flush (spare);
}

/* Zero every superblock of an older format that the new one will not
 * overwrite, so that discovery can never resurrect it. */
static int
wipe_old (struct remap_backend *spare, const struct remap_layout *nl)
{
  uint64_t *cand = malloc (MAX_CANDIDATES * sizeof *cand);
  if (!cand)
    return -ENOMEM;
  size_t nc = candidates (spare->size, cand);
  uint8_t zero[REMAP_SB_SIZE] = { 0 };
  int r = 0;
  for (size_t i = 0; i < nc && r == 0; i++) {
    struct remap_sb sb;
    bool magic;
    if (read_sb (spare, cand[i], &sb, &magic, NULL) != 0 && !magic)
      continue;
    if (cand[i] % nl->unit == 0
        && remap_layout_is_reserved (nl, cand[i] / nl->unit))
      continue;
    r = remap_backend_pwrite (spare, zero, sizeof zero, cand[i]);
  }
  free (cand);
  return r;
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

  struct remap_sb old;
  r = discover (spare, &old, NULL);
  if (r != -ENOMEDIUM && !o->force) {
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

  if (o->force && (r = wipe_old (spare, &sb.layout)) != 0)
    return remap_set_error (err, r, "format: wiping old metadata on %s: %s",
                            spare->name, strerror (-r));

  uint32_t chunk = SCAN_CHUNK_UNITS;
  while ((size_t) chunk * unit > 4u << 20)
    chunk /= 2;
  uint8_t *buf = eng_alloc_buf ((size_t) chunk * unit);
  if (!buf)
    return remap_set_error (err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < sb.layout.copies && r == 0; i++)
    r = format_copy (spare, &sb, i, buf, chunk);
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

/* Read every copy and record the generation of each valid block. */
static int
scan_copies (struct remap_engine *e, struct scan *sc, struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  uint32_t unit = l->unit;
  uint32_t chunk = SCAN_CHUNK_UNITS;
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

  for (uint32_t i = 0; i < l->copies; i++) {
    struct remap_sb sb;
    bool magic;
    sc->sb_ok[i] = read_sb (e->spare, copy_unit (l, i, 0) * unit, &sb, &magic,
                            NULL) == 0
      && memcmp (sb.uuid, e->sb.uuid, 16) == 0 && sb.copy_index == i
      && sb.sb_generation == e->sb.sb_generation;
    for (uint64_t k = 0; k < l->table_blocks; k += chunk) {
      uint32_t n = l->table_blocks - k < chunk
        ? (uint32_t) (l->table_blocks - k) : chunk;
      uint64_t off = copy_unit (l, i, 1 + k) * unit;
      int r = remap_backend_pread (e->spare, buf, (size_t) n * unit, off);
      for (uint32_t j = 0; j < n; j++) {
        uint8_t *p = buf + (size_t) j * unit;
        /* A failed chunk read: retry block by block to isolate it. */
        if (r && remap_backend_pread (e->spare, p, unit,
                                      off + (uint64_t) j * unit) != 0)
          continue;
        struct remap_tb tb;
        if (remap_tb_decode (&e->sb, p, unit, k + j, &tb, ent, NULL) == 0)
          sc->gen[(size_t) i * l->table_blocks + k + j] = tb.generation;
      }
    }
  }
  free (buf);
  free (ent);
  return 0;
}

/* Load the best version of every table block into the table. */
static int
load_table (struct remap_engine *e, struct scan *sc, bool *dirty,
            struct remap_error *err)
{
  const struct remap_layout *l = e->L;
  uint32_t unit = l->unit, E = l->entries_per_block;
  uint8_t *buf = eng_alloc_buf (unit);
  struct remap_entry *ent = malloc (E * sizeof *ent);
  uint64_t best_gen = 0;
  int r = 0;

  if (!buf || !ent) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  for (uint64_t k = 0; k < l->table_blocks; k++) {
    uint32_t bi = UINT32_MAX;
    for (uint32_t i = 0; i < l->copies; i++) {
      uint64_t g = sc->gen[(size_t) i * l->table_blocks + k];
      if (g && (bi == UINT32_MAX
                || g > sc->gen[(size_t) bi * l->table_blocks + k]))
        bi = i;
    }
    struct remap_tb tb;
    struct remap_error derr = { 0 };
    if (bi == UINT32_MAX
        || remap_backend_pread (e->spare, buf, unit,
                                copy_unit (l, bi, 1 + k) * unit) != 0
        || remap_tb_decode (&e->sb, buf, unit, k, &tb, ent, &derr) != 0) {
      r = remap_set_error (err, -EUCLEAN,
                           "%s: table block %llu is damaged in every "
                           "metadata copy%s%s; the remap table cannot be "
                           "read.  Inspect it with 'remapctl dump %s'",
                           e->spare->name, (unsigned long long) k,
                           derr.msg[0] ? ": " : "", derr.msg, e->spare->name);
      goto out;
    }
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
        uint32_t o = table_find (&e->t, ent[j].origin_unit);
        if (o != SLOT_NONE) {
          /* The same origin unit in two slots: a crash between the two
           * blocks of a relocation.  The newer block wins; the other slot
           * was the unit's failing old home and becomes BAD (rewritten by
           * repair below). */
          if (e->block_gen[o / E] >= tb.generation) {
            w = make_word (REMAP_SLOT_BAD, 0);
            dirty[k] = true;
          }
          else {
            table_set (&e->t, o, make_word (REMAP_SLOT_BAD, 0), 0);
            dirty[o / E] = true;
          }
        }
      }
      if (table_set (&e->t, s, w, ent[j].lost) != 0) {
        r = remap_set_error (err, -ENOMEM, "out of memory loading the table");
        goto out;
      }
    }
  }
  e->generation = best_gen;
 out:
  free (buf);
  free (ent);
  return r;
}

static void
count_table (struct remap_engine *e)
{
  e->n_mapped = e->n_pending = e->n_bad = 0;
  e->n_lost_units = e->n_lost_granules = 0;
  for (uint64_t s = 0; s < e->t.N; s++) {
    switch (word_state (e->t.slot[s])) {
    case REMAP_SLOT_MAPPED: {
      e->n_mapped++;
      uint64_t lost = table_lost (&e->t, s);
      e->n_lost_units += lost != 0;
      e->n_lost_granules += (uint64_t) __builtin_popcountll (lost);
      break;
    }
    case REMAP_SLOT_PENDING: e->n_pending++; break;
    case REMAP_SLOT_BAD: e->n_bad++; break;
    default: break;
    }
  }
  atomic_store (&e->nindexed, e->n_mapped + e->n_pending);
}

/* Rewrite stale or damaged blocks and superblocks of every copy, and the
 * blocks changed while loading (dirty: given a fresh generation).  One
 * flush per copy, copy after copy. */
static void
repair (struct remap_engine *e, struct scan *sc, const bool *dirty)
{
  const struct remap_layout *l = e->L;
  uint64_t fixed = 0;

  for (uint64_t k = 0; k < l->table_blocks; k++)
    if (dirty[k]) {
      e->block_gen[k] = ++e->generation;
      e->block_cursor[k] = e->cursor;
    }
  for (uint32_t i = 0; i < l->copies; i++) {
    uint64_t n = 0;
    int r = 0;
    for (uint64_t k = 0; k < l->table_blocks && r == 0; k++) {
      if (!dirty[k]
          && sc->gen[(size_t) i * l->table_blocks + k] == e->block_gen[k])
        continue;
      /* Same generation, same bytes as the copy it repairs (a block
       * changed while loading has a fresh generation and the current
       * cursor). */
      encode_block (e, k, e->block_gen[k], e->block_cursor[k], NULL, 0,
                    e->meta_buf);
      r = write_meta_unit (e, i, 1 + k, e->meta_buf, false);
      n++;
    }
    if (r == 0 && !sc->sb_ok[i]) {
      encode_sb_copy (&e->sb, i, e->meta_buf, e->unit);
      r = write_meta_unit (e, i, 0, e->meta_buf, false);
      n++;
    }
    if (r == 0 && n)
      r = remap_backend_flush (e->spare);
    if (r) {
      e->copy_ok[i] = false;
      eng_log (e, REMAP_LOG_WARN, "metadata copy %u could not be repaired "
               "(%s); it stays retired", i, strerror (-r));
    }
    else
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
    pthread_rwlock_destroy (&e->tab_lock);
  }
  table_free (&e->t);
  free (e->block_gen);
  free (e->block_cursor);
  free (e->meta_buf);
  free (e->ent_buf);
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
  pthread_rwlock_init (&e->tab_lock, NULL);
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
  if (!e->block_gen || !e->block_cursor || !e->meta_buf || !e->ent_buf || table_init (&e->t, l->spare_units))
    return -ENOMEM;
  for (uint32_t i = 0; i < l->copies; i++)
    for (uint64_t u = 0; u < l->copy_units; u++) {
      bit_set (e->t.rsv, l->copy_offset[i] + u);
      bit_set (e->t.busy, l->copy_offset[i] + u);
    }
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
  count_table (e);
  if (!e->opts.readonly && !e->opts.no_repair)
    repair (e, &sc, dirty);
  else {
    /* Report damaged copies without touching them. */
    for (uint32_t i = 0; i < e->L->copies; i++) {
      bool ok = sc.sb_ok[i];
      for (uint64_t k = 0; k < e->L->table_blocks && ok; k++)
        ok = sc.gen[(size_t) i * e->L->table_blocks + k] == e->block_gen[k];
      e->copy_ok[i] = ok;
    }
  }
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
  memset (c, 0, sizeof *c);
  pthread_mutex_lock (&e->meta_lock);
  c->reallocated_units = e->n_mapped;
  c->pending_units = e->n_pending + e->t.vpend.count;
  c->uncorrectable_units = e->n_lost_units;
  c->lost_granules = e->n_lost_granules;
  c->spare_bad_units = e->n_bad;
  c->spare_usable_units = e->L->usable_units;
  c->spare_total_units = e->L->spare_units;
  c->spare_free_units = e->L->usable_units - e->n_mapped - e->n_pending
    - e->n_bad;
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
  pthread_mutex_lock (&e->meta_lock);
  size_t n = e->n_mapped + e->n_pending + e->n_bad, i = 0;
  struct remap_mapping *snap = malloc ((n ? n : 1) * sizeof *snap);
  if (!snap) {
    pthread_mutex_unlock (&e->meta_lock);
    return -ENOMEM;
  }
  for (uint64_t s = 0; s < e->t.N && i < n; s++) {
    uint64_t w = e->t.slot[s];
    if (word_state (w) == REMAP_SLOT_FREE)
      continue;
    snap[i++] = (struct remap_mapping) {
      .origin_unit = word_origin (w), .state = word_state (w),
      .spare_unit = s, .lost = table_lost (&e->t, s),
    };
  }
  pthread_mutex_unlock (&e->meta_lock);
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
  if (!e->block_gen || (r = scan_copies (e, &sc, err)) != 0) {
    free (e->block_gen);
    free (sc.gen);
    free (e);
    return r ? r : remap_set_error (err, -ENOMEM, "out of memory");
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
  if (out->blocks_lost) {
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
  free (e->block_gen);
  free (sc.gen);
  free (e);
  return 0;
}
