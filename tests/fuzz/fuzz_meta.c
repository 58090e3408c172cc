/* remap: libFuzzer target for the metadata decoder and for opening a spare.
 *
 * Each input is used twice:
 *
 *  (a) as a superblock: remap_sb_decode over the first bytes, and, when it
 *      decodes, over every copy's superblock unit, remap_map_decode over
 *      every copy's map units (version 2) and remap_tb_decode over every
 *      copy's table blocks, at the places of the superblock's version
 *      (those that lie wholly inside the input);
 *  (b) as a whole spare image: loaded into a mem backend and opened with
 *      remap_open, read-only and without locks, over a zeroed mem origin.
 *      The origin has the decoded superblock's origin_size when that is
 *      under 64 MiB, else 1 MiB.  When the input is shorter than the spare
 *      its superblock describes (up to 8 MiB), the mem spare is that size
 *      and the input fills its start, so a short input can still hold a
 *      whole first copy.  An engine that opens is read (lookups, foreach,
 *      counters, a read of the disk's first units), then closed.
 *
 *      Then the same image is opened read-write, which repairs it, and
 *      reopened read-only: the repair must not change what the table says
 *      (same mapped, pending, bad and lost counts) and must leave every
 *      copy valid.  A breach is a bug: the target aborts.
 *
 *      Random mutations rarely keep a CRC right, so (b) runs a second time
 *      on a copy whose checksums were recomputed (fix_crcs), which lets the
 *      fuzzer reach every check behind the checksums.
 *
 * The target must never crash, leak, hang or trip a sanitizer, whatever the
 * bytes.  Built as a libFuzzer binary with REMAP_FUZZ=ON (clang), and
 * otherwise with replay_main.c, which replays tests/fuzz/corpus/ under
 * ctest.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/meta.h"
#include "remap/remap.h"

#define MAX_ORIGIN (UINT64_C (64) << 20)
#define DEFAULT_ORIGIN (UINT64_C (1) << 20)
#define MAX_PAD_SPARE (UINT64_C (8) << 20)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static bool
inside (uint64_t unit_no, uint32_t unit, size_t size)
{
  return unit_no < size / unit && (unit_no + 1) * unit <= size;
}

static void
decode_only (const uint8_t *data, size_t size, const struct remap_sb *sb)
{
  const struct remap_layout *l = &sb->layout;
  uint32_t unit = l->unit;
  struct remap_entry *ent = malloc (l->entries_per_block * sizeof *ent);
  uint8_t *bits = malloc (unit);
  if (!ent || !bits)
    goto out;
  for (uint32_t i = 0; i < l->copies; i++) {
    struct remap_sb other;
    struct remap_error err = { 0 };
    uint64_t u = remap_layout_sb_unit (l, i);
    if (i > 0 && inside (u, unit, size))
      remap_sb_decode (data + u * unit, unit, &other, &err);
    for (uint64_t m = 0; m < l->map_units; m++) {
      struct remap_mapu h;
      u = remap_layout_map_unit (l, i, m);
      if (!inside (u, unit, size))
        break;
      remap_error_clear (&err);
      if (remap_map_decode (sb, data + u * unit, unit, m, &h, bits, &err) == 0
          && (h.map_index != m || h.generation == 0
              || h.generation > REMAP_MAX_GENERATION))
        abort ();
    }
    for (uint64_t k = 0; k < l->table_blocks; k++) {
      struct remap_tb tb;
      u = remap_layout_block_unit (l, i, k);
      if (!inside (u, unit, size))
        break;
      remap_error_clear (&err);
      if (remap_tb_decode (sb, data + u * unit, unit, k, &tb, ent, &err) == 0
          && (tb.block_index != k || tb.generation == 0
              || tb.generation > REMAP_MAX_GENERATION
              || tb.alloc_cursor >= l->spare_units))
        abort ();
    }
  }
out:
  free (bits);
  free (ent);
}

static int
count_fn (void *opaque, const struct remap_mapping *m)
{
  uint64_t *n = opaque;
  if (m->state == REMAP_SLOT_FREE)
    abort (); /* foreach lists non-free slots only */
  (*n)++;
  return 0;
}

struct snapshot {
  uint64_t mapped, pending, bad, lost_units, lost_granules, listed;
  uint32_t valid, total;
};

static struct remap_engine *
open_spare (const uint8_t *bytes, uint64_t spare_size, uint64_t origin_size,
            bool readonly, struct remap_backend **share, int *rp)
{
  struct remap_backend *origin = NULL, *spare = NULL;
  struct remap_engine *e = NULL;
  struct remap_error err = { 0 };

  *rp = -ENOMEM;
  if (remap_mem_create (origin_size, &origin) != 0)
    return NULL;
  if (remap_mem_create (spare_size, &spare) != 0) {
    remap_backend_close (origin);
    return NULL;
  }
  memcpy (remap_mem_data (spare), bytes, spare_size);
  if (share && remap_mem_share (spare, share) != 0)
    *share = NULL;
  struct remap_open_opts oo = {
    .readonly = readonly,
    .no_lock = true,
    .ignore_origin_size = true,
  };
  *rp = remap_open (origin, spare, &oo, &e, &err);
  return e; /* NULL on failure: both backends closed */
}

static void
look (struct remap_engine *e, struct snapshot *s)
{
  struct remap_counters c;
  uint64_t listed = 0;
  struct remap_mapping m;
  uint8_t buf[4096];
  struct remap_error err = { 0 };

  remap_get_counters (e, &c);
  remap_foreach (e, count_fn, &listed);
  if (listed != c.reallocated_units + c.pending_units + c.spare_bad_units)
    abort ();
  for (uint64_t u = 0; u < 64; u++)
    remap_lookup (e, u, &m);
  uint64_t n = remap_size (e) < sizeof buf ? remap_size (e) : sizeof buf;
  remap_pread (e, buf, n, 0, &err);
  *s = (struct snapshot){
    .mapped = c.reallocated_units,
    .pending = c.pending_units,
    .bad = c.spare_bad_units,
    .lost_units = c.uncorrectable_units,
    .lost_granules = c.lost_granules,
    .listed = listed,
    .valid = c.copies_valid,
    .total = c.copies_total,
  };
}

/* (b): open the image read-only, then repair it and check the repair. */
static void
image (const uint8_t *data, size_t size)
{
  struct remap_sb sb;
  bool have_sb = remap_sb_decode (data, size, &sb, NULL) == 0;
  uint64_t origin_size =
    have_sb && sb.origin_size < MAX_ORIGIN ? sb.origin_size : DEFAULT_ORIGIN;
  if (origin_size == 0)
    origin_size = DEFAULT_ORIGIN;
  uint64_t spare_size = size;
  if (have_sb && sb.spare_size > size && sb.spare_size <= MAX_PAD_SPARE)
    spare_size = sb.spare_size;
  uint8_t *img = calloc (1, spare_size);
  if (!img)
    return;
  memcpy (img, data, size);

  int r;
  struct remap_engine *e =
    open_spare (img, spare_size, origin_size, true, NULL, &r);
  if (!e) {
    free (img);
    return;
  }
  struct snapshot before, after;
  look (e, &before);
  remap_close (e);

  /* Repair, then check that it kept the table and healed every copy. */
  struct remap_backend *share = NULL;
  e = open_spare (img, spare_size, origin_size, false, &share, &r);
  if (!e) {
    remap_backend_close (share);
    free (img);
    /* Unknown ro_compat features: read-only is all a reader may do. */
    if (r == -EOPNOTSUPP || r == -ENOMEM)
      return;
    fprintf (stderr, "fuzz_meta: opens read-only but not read-write (%d)\n", r);
    abort ();
  }
  if (!share)
    abort ();
  remap_close (e);
  e = open_spare (remap_mem_data (share), spare_size, origin_size, true, NULL,
                  &r);
  if (!e) {
    fprintf (stderr, "fuzz_meta: does not reopen after repair (%d)\n", r);
    abort ();
  }
  look (e, &after);
  remap_close (e);
  remap_backend_close (share);
  if (before.mapped != after.mapped || before.pending != after.pending ||
      before.bad != after.bad || before.lost_units != after.lost_units ||
      before.lost_granules != after.lost_granules ||
      after.valid != after.total) {
    fprintf (stderr,
             "fuzz_meta: repair changed the table: mapped %llu->%llu"
             " pending %llu->%llu bad %llu->%llu lost %llu->%llu, copies "
             "%u/%u\n",
             (unsigned long long) before.mapped,
             (unsigned long long) after.mapped,
             (unsigned long long) before.pending,
             (unsigned long long) after.pending,
             (unsigned long long) before.bad, (unsigned long long) after.bad,
             (unsigned long long) before.lost_units,
             (unsigned long long) after.lost_units, after.valid, after.total);
    abort ();
  }
  free (img);
}

static void
put32 (uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

/* Recompute every checksum that the first superblock points at (its own,
 * the other copies' superblocks, every map unit and table block that has
 * its magic, at the places of the superblock's version).
 * Random mutations almost never keep a CRC right; with this pass they
 * reach the checks that stand behind it.  Returns true if a byte changed. */
static bool
fix_crcs (uint8_t *img, size_t size)
{
  struct remap_sb sb;
  bool changed = false;

  if (size < REMAP_SB_SIZE || memcmp (img, REMAP_SB_MAGIC, 8) != 0)
    return false;
  uint8_t old[4];
  memcpy (old, img + 508, 4);
  put32 (img + 508, remap_crc32c (0, img, 508));
  changed |= memcmp (old, img + 508, 4) != 0;
  if (remap_sb_decode (img, size, &sb, NULL) != 0)
    return changed;
  const struct remap_layout *l = &sb.layout;
  for (uint32_t i = 0; i < l->copies; i++) {
    uint64_t base = l->copy_offset[i] * l->unit;
    if (i > 0 && base + REMAP_SB_SIZE <= size &&
        memcmp (img + base, REMAP_SB_MAGIC, 8) == 0) {
      memcpy (old, img + base + 508, 4);
      put32 (img + base + 508, remap_crc32c (0, img + base, 508));
      changed |= memcmp (old, img + base + 508, 4) != 0;
    }
    /* Map units (v2) then table blocks: one unit each, magic, CRC of
     * bytes 8..unit-1 at byte 4. */
    for (uint64_t k = 0; k < l->map_units + l->table_blocks; k++) {
      bool map = k < l->map_units;
      uint64_t u = map ? remap_layout_map_unit (l, i, k)
                       : remap_layout_block_unit (l, i, k - l->map_units);
      if (u >= size / l->unit)
        break;
      uint64_t b = u * l->unit;
      if (b + l->unit > size)
        break;
      if (memcmp (img + b, map ? "RMBM" : "RMTB", 4) != 0)
        continue;
      memcpy (old, img + b + 4, 4);
      put32 (img + b + 4, remap_crc32c (0, img + b + 8, l->unit - 8));
      changed |= memcmp (old, img + b + 4, 4) != 0;
    }
  }
  return changed;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct remap_sb sb;
  struct remap_error err = { 0 };

  /* (a) the decoders alone. */
  if (remap_sb_decode (data, size, &sb, &err) == 0)
    decode_only (data, size, &sb);
  if (size == 0)
    return 0;

  /* (b) the whole image, as given and with its checksums made right. */
  image (data, size);
  uint8_t *fixed = malloc (size);
  if (fixed) {
    memcpy (fixed, data, size);
    if (fix_crcs (fixed, size))
      image (fixed, size);
    free (fixed);
  }
  return 0;
}
