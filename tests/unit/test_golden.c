/* Unit tests: the golden images of tests/data/ (format versions 1 and 2).
 *
 * The images were written once by tests/data/mkgolden.c (README.md there).
 * Every engine from then on must read them exactly as they were written:
 * the layout, the identity, every mapping, state, lost mask and bad unit.
 * Re-encoding their superblocks and table blocks must give back the very
 * same bytes, so the codec cannot drift; opening them must not rewrite a
 * byte; and a copy must take one more remap, committed in the image's own
 * version (a version 1 spare keeps its layout: that is how "version 1
 * spares still open" is tested).  The expected values below are written
 * out by hand from docs/FORMAT.md, not computed by the code under test.
 */
#include <check.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/format.h"
#include "remap/meta.h"
#include "remap/remap.h"

#include "data/golden.h"

/* ---- loading --------------------------------------------------------- */

static char *
data_path (const char *name)
{
  static char path[4096];
  const char *src = getenv ("REMAP_SOURCE_DIR");
  char here[4096];

  if (src && *src)
    snprintf (path, sizeof path, "%s/tests/data/%s", src, name);
  else {
    /* __FILE__ is absolute under CMake: tests/unit/../data. */
    snprintf (here, sizeof here, "%s", __FILE__);
    snprintf (path, sizeof path, "%s/../data/%s", dirname (here), name);
  }
  return path;
}

/* Read a whole image (gunzipped if its name ends in .gz). */
static uint8_t *
load (const char *name, uint64_t size)
{
  const char *path = data_path (name);
  size_t n = strlen (path);
  bool gz = n > 3 && strcmp (path + n - 3, ".gz") == 0;
  char cmd[4200];
  FILE *f;

  if (gz) {
    snprintf (cmd, sizeof cmd, "gzip -dc '%s'", path);
    f = popen (cmd, "r");
  }
  else
    f = fopen (path, "rb");
  ck_assert_msg (f != NULL, "cannot open %s", path);
  uint8_t *buf = malloc (size + 1);
  ck_assert_ptr_nonnull (buf);
  size_t got = fread (buf, 1, size + 1, f);
  int rc = gz ? pclose (f) : fclose (f);
  ck_assert_msg (rc == 0, "reading %s failed", path);
  ck_assert_msg (got == size, "%s: %zu bytes, expected %llu", path, got,
                 (unsigned long long) size);
  return buf;
}

/* An engine over a mem copy of the image and a zeroed origin.  *spare_out
 * (optional) shares the spare's bytes and outlives the engine. */
static struct remap_engine *
open_image (const uint8_t *img, uint64_t spare_size, uint64_t origin_size,
            bool readonly, struct remap_backend **spare_out)
{
  struct remap_backend *origin, *spare;
  struct remap_engine *e;
  struct remap_error err = { 0 };

  ck_assert_int_eq (remap_mem_create (origin_size, &origin), 0);
  ck_assert_int_eq (remap_mem_create (spare_size, &spare), 0);
  memcpy (remap_mem_data (spare), img, spare_size);
  if (spare_out)
    ck_assert_int_eq (remap_mem_share (spare, spare_out), 0);
  struct remap_open_opts oo = { .readonly = readonly, .no_lock = true };
  int r = remap_open (origin, spare, &oo, &e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
  return e;
}

/* ---- little-endian readers, independent of core/meta.c ---------------- */

static uint64_t
le (const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* ---- what each image holds ------------------------------------------ */

struct expect_map {
  uint64_t slot;
  enum remap_slot_state state;
  uint64_t origin; /* unused for BAD */
  uint64_t lost;
};

struct golden {
  const char *name;
  uint32_t version;
  uint64_t spare_size, origin_size;
  uint32_t unit;
  const char *label;
  const char *origin_id; /* v2: recorded at format; v1: "" */
  /* layout */
  uint64_t N, Tr, Tp, T, M, L;
  uint32_t E;
  enum remap_strategy strategy;
  uint32_t copies;
  uint64_t off[REMAP_MAX_COPIES];
  /* table */
  uint64_t gen[8]; /* generation of each table block; v2: 0 = never written */
  uint64_t cursor; /* of the newest block */
  uint64_t map_gen;  /* v2: generation of map unit 0 in every copy */
  uint64_t map_bits; /* v2: its bitmap (bit k: block k written) */
  uint64_t bad_slot;
  size_t nmaps;
  struct expect_map maps[8];
};

static const struct golden g4k = {
  .name = G4K_NAME, .version = 1, .spare_size = G4K_SPARE_SIZE,
  .origin_size = G4K_ORIGIN_SIZE, .unit = 4096, .label = G4K_LABEL,
  .origin_id = "",
  .N = 256, .Tr = 2, .Tp = 0, .T = 2, .M = 0, .L = 3, .E = 252,
  .strategy = REMAP_STRATEGY_LINEAR, .copies = 4, .off = { 0, 84, 168, 253 },
  /* format = 1; remap 3, 100, 1000 = 2, 3, 4; pending 7 = 5; lost 100 = 6
   * (all block 0); bad 252 = 7 (block 1). */
  .gen = { 6, 7 }, .cursor = 7, .bad_slot = G4K_BAD_SLOT,
  .nmaps = 5,
  .maps = {
    { 3, REMAP_SLOT_MAPPED, 3, 0 },
    { 4, REMAP_SLOT_MAPPED, 100, 1 },
    { 5, REMAP_SLOT_MAPPED, 1000, 0 },
    { 6, REMAP_SLOT_PENDING, 7, 0 },
    { G4K_BAD_SLOT, REMAP_SLOT_BAD, 0, 0 },
  },
};

static const struct golden g512 = {
  .name = G512_NAME, .version = 1, .spare_size = G512_SPARE_SIZE,
  .origin_size = G512_ORIGIN_SIZE, .unit = 512, .label = G512_LABEL,
  .origin_id = "",
  .N = 128, .Tr = 5, .Tp = 0, .T = 5, .M = 0, .L = 6, .E = 28,
  .strategy = REMAP_STRATEGY_MINIMAL, .copies = 2, .off = { 0, 6 },
  /* remap 5, 2047 = 2, 3; pending 9 = 4 (block 0); bad 100 = 5 (block 3). */
  .gen = { 4, 1, 1, 5, 1 }, .cursor = 15, .bad_slot = G512_BAD_SLOT,
  .nmaps = 4,
  .maps = {
    { 12, REMAP_SLOT_MAPPED, 5, 0 },
    { 13, REMAP_SLOT_MAPPED, 2047, 0 },
    { 14, REMAP_SLOT_PENDING, 9, 0 },
    { G512_BAD_SLOT, REMAP_SLOT_BAD, 0, 0 },
  },
};

/* Version 2, 1 MiB of 4096-byte units: N = 256, E = 252, Tr = 2; the last
 * block's tail (slots 256..503) holds 248 places, at least ceil (256 / 4)
 * = 64, so Tp = 0; T = 2, M = 1, L = 4; linear, 4 copies at
 * floor (i * 252 / 3) = 0, 84, 168, 252.  Block 1: slots 252..255 (all in
 * copy 3's extent), then places 256..503. */
static const struct golden g2_4k = {
  .name = G2_4K_NAME, .version = 2, .spare_size = G4K_SPARE_SIZE,
  .origin_size = G4K_ORIGIN_SIZE, .unit = 4096, .label = G4K_LABEL,
  .origin_id = GOLDEN_ORIGIN_ID,
  .N = 256, .Tr = 2, .Tp = 0, .T = 2, .M = 1, .L = 4, .E = 252,
  .strategy = REMAP_STRATEGY_LINEAR, .copies = 4, .off = { 0, 84, 168, 252 },
  /* remap 3, 100, 1000 = 2, 3, 4 (block 0); pending 7 = 5 (place 256,
   * block 1); lost 100 = 6; remap 500 = 7 (slot 7); unmap 500 = 8; bad
   * 200 = 9 (block 0).  The map units claim blocks 0 (at 2) and 1 (at
   * 5). */
  .gen = { 9, 5 }, .cursor = 8, .map_gen = 5, .map_bits = 0x3,
  .bad_slot = G2_4K_BAD_SLOT,
  .nmaps = 5,
  .maps = {
    { 4, REMAP_SLOT_MAPPED, 3, 0 },
    { 5, REMAP_SLOT_MAPPED, 100, 1 },
    { 6, REMAP_SLOT_MAPPED, 1000, 0 },
    { G2_4K_BAD_SLOT, REMAP_SLOT_BAD, 0, 0 },
    { 256, REMAP_SLOT_PENDING, 7, 0 },
  },
};

/* Version 2, 64 KiB of 512-byte units: N = 128, E = 28, Tr = 5; the last
 * block's tail holds places 128..139 (12), so Tp = ceil ((32 - 12) / 28)
 * = 1 more block (places 140..167); T = 6, M = 1, L = 8; minimal, 2
 * copies at 0, 8. */
static const struct golden g2_512 = {
  .name = G2_512_NAME, .version = 2, .spare_size = G512_SPARE_SIZE,
  .origin_size = G512_ORIGIN_SIZE, .unit = 512, .label = G512_LABEL,
  .origin_id = GOLDEN_ORIGIN_ID,
  .N = 128, .Tr = 5, .Tp = 1, .T = 6, .M = 1, .L = 8, .E = 28,
  .strategy = REMAP_STRATEGY_MINIMAL, .copies = 2, .off = { 0, 8 },
  /* remap 5, 2047 = 2, 3 (block 0); pending 9 = 4 (place 128, block 4);
   * bad 100 = 5 (block 3).  Blocks 1, 2 and 5 were never written. */
  .gen = { 3, 0, 0, 5, 4, 0 }, .cursor = 18, .map_gen = 5,
  .map_bits = 0x19, .bad_slot = G2_512_BAD_SLOT,
  .nmaps = 4,
  .maps = {
    { 16, REMAP_SLOT_MAPPED, 5, 0 },
    { 17, REMAP_SLOT_MAPPED, 2047, 0 },
    { G2_512_BAD_SLOT, REMAP_SLOT_BAD, 0, 0 },
    { 128, REMAP_SLOT_PENDING, 9, 0 },
  },
};

#define NGOLDEN 4
static const struct golden *const goldens[NGOLDEN] = {
  &g4k, &g512, &g2_4k, &g2_512,
};

/* The layout of g, computed by the code (for remap_layout_block_unit and
 * friends), checked against the values written out above. */
static struct remap_layout
layout_of (const struct golden *g)
{
  struct remap_layout l;
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_layout_compute_version (g->version, g->spare_size,
                                                  g->unit, g->strategy,
                                                  g->copies, &l, &err),
                    0);
  ck_assert_uint_eq (l.version, g->version);
  ck_assert_uint_eq (l.spare_units, g->N);
  ck_assert_uint_eq (l.entries_per_block, g->E);
  ck_assert_uint_eq (l.real_blocks, g->Tr);
  ck_assert_uint_eq (l.pending_blocks, g->Tp);
  ck_assert_uint_eq (l.table_blocks, g->T);
  ck_assert_uint_eq (l.map_units, g->M);
  ck_assert_uint_eq (l.copy_units, g->L);
  /* v2: places from N on; v1: none (the first "place" is past the
   * table). */
  ck_assert_uint_eq (remap_layout_first_pending_slot (&l),
                     g->version >= 2 ? g->N : g->Tr * g->E);
  for (uint32_t i = 0; i < REMAP_MAX_COPIES; i++)
    ck_assert_uint_eq (l.copy_offset[i], g->off[i]);
  for (uint32_t i = 0; i < g->copies; i++) {
    ck_assert_uint_eq (remap_layout_sb_unit (&l, i), g->off[i]);
    for (uint64_t m = 0; m < g->M; m++)
      ck_assert_uint_eq (remap_layout_map_unit (&l, i, m), g->off[i] + 1 + m);
    for (uint64_t k = 0; k < g->T; k++)
      ck_assert_uint_eq (remap_layout_block_unit (&l, i, k),
                         g->off[i] + 1 + g->M + k);
  }
  return l;
}

/* Mappings that hold a spare unit (places do not). */
static uint64_t
spare_held (const struct golden *g)
{
  uint64_t n = 0;
  for (size_t m = 0; m < g->nmaps; m++)
    n += g->maps[m].slot < g->N;
  return n;
}

/* ---- raw bytes, read without the codec ---------------------------------- */

static void
check_raw (const struct golden *g, const uint8_t *img)
{
  struct remap_layout l = layout_of (g);

  for (uint32_t i = 0; i < g->copies; i++) {
    const uint8_t *sb = img + remap_layout_sb_unit (&l, i) * g->unit;
    ck_assert_mem_eq (sb, "REMAPSP1", 8);
    ck_assert_uint_eq (le (sb + 8, 4), g->version);
    ck_assert_uint_eq (le (sb + 12, 4), 512); /* header_size */
    ck_assert_uint_eq (le (sb + 16, 8), 0);   /* incompat */
    ck_assert_uint_eq (le (sb + 24, 8), 0);   /* compat */
    ck_assert_uint_eq (le (sb + 32, 8), 0);   /* ro_compat */
    ck_assert_mem_eq (sb + 40, golden_uuid, 16);
    ck_assert_uint_eq (le (sb + 56, 8), g->origin_size);
    ck_assert_uint_eq (le (sb + 64, 8), g->spare_size);
    ck_assert_uint_eq (le (sb + 72, 4), g->unit);
    ck_assert_uint_eq (le (sb + 76, 4), i); /* copy_index */
    ck_assert_uint_eq (le (sb + 80, 8), g->N);
    ck_assert_uint_eq (le (sb + 88, 8), g->origin_size / g->unit);
    ck_assert_uint_eq (le (sb + 96, 4), g->strategy);
    ck_assert_uint_eq (le (sb + 100, 4), g->copies);
    ck_assert_uint_eq (le (sb + 104, 8), g->L);
    ck_assert_uint_eq (le (sb + 112, 8), g->T);
    ck_assert_uint_eq (le (sb + 120, 4), g->E);
    ck_assert_uint_eq (le (sb + 124, 4), 512); /* lost_granule */
    for (uint32_t c = 0; c < 8; c++)
      ck_assert_uint_eq (le (sb + 128 + 8 * c, 8), g->off[c]);
    ck_assert_uint_eq (le (sb + 192, 8), GOLDEN_FORMAT_TIME);
    ck_assert_uint_eq (le (sb + 200, 8), 1); /* sb_generation */
    ck_assert_str_eq ((const char *) sb + 208, g->label);
    for (uint32_t b = 208 + strlen (g->label); b < 272; b++)
      ck_assert_uint_eq (sb[b], 0);
    ck_assert_uint_eq (le (sb + 272, 8), g->M);  /* map_units, v1: 0 */
    ck_assert_uint_eq (le (sb + 280, 8), g->Tp); /* pending_blocks, v1: 0 */
    ck_assert_str_eq ((const char *) sb + 288, g->origin_id);
    for (uint32_t b = 288 + strlen (g->origin_id); b < 508; b++)
      ck_assert_uint_eq (sb[b], 0); /* NUL padding, reserved */
    ck_assert_uint_eq (le (sb + 508, 4), remap_crc32c (0, sb, 508));
    for (uint32_t b = 512; b < g->unit; b++)
      ck_assert_uint_eq (sb[b], 0);

    /* v2: the map units say which blocks this copy ever wrote. */
    for (uint64_t m = 0; m < g->M; m++) {
      const uint8_t *mu = img + remap_layout_map_unit (&l, i, m) * g->unit;
      ck_assert_mem_eq (mu, "RMBM", 4);
      ck_assert_uint_eq (le (mu, 4), 0x4d424d52u);
      ck_assert_uint_eq (le (mu + 4, 4),
                         remap_crc32c (0, mu + 8, g->unit - 8));
      ck_assert_uint_eq (le (mu + 8, 8), g->map_gen);
      ck_assert_uint_eq (le (mu + 16, 8), m);
      ck_assert_mem_eq (mu + 24, golden_uuid, 16);
      ck_assert_uint_eq (le (mu + 40, 8), g->T); /* blocks: one map unit */
      for (uint32_t b = 48; b < 64; b++)
        ck_assert_uint_eq (mu[b], 0);
      for (uint32_t b = 64; b < g->unit; b++)
        ck_assert_msg (mu[b] == (b < 72 ? (uint8_t) (g->map_bits >> 8 * (b - 64))
                                         : 0),
                       "copy %u map byte %u: %02x", i, b, mu[b]);
    }

    for (uint64_t k = 0; k < g->T; k++) {
      const uint8_t *tb = img + remap_layout_block_unit (&l, i, k) * g->unit;
      if (g->gen[k] == 0) {
        /* v2: never written; its unit kept what was there (zeros). */
        ck_assert_uint_eq (g->map_bits >> k & 1, 0);
        for (uint32_t b = 0; b < g->unit; b++)
          ck_assert_uint_eq (tb[b], 0);
        continue;
      }
      if (g->version >= 2)
        ck_assert_uint_eq (g->map_bits >> k & 1, 1);
      ck_assert_uint_eq (le (tb, 4), 0x42544d52u); /* "RMTB" */
      ck_assert_mem_eq (tb, "RMTB", 4);
      ck_assert_uint_eq (le (tb + 4, 4), remap_crc32c (0, tb + 8, g->unit - 8));
      ck_assert_uint_eq (le (tb + 8, 8), g->gen[k]);
      ck_assert_uint_eq (le (tb + 16, 8), k);
      ck_assert_uint_lt (le (tb + 24, 8), g->N);
      ck_assert_mem_eq (tb + 32, golden_uuid, 16);
      ck_assert_uint_eq (le (tb + 48, 4), g->E);
      for (uint32_t b = 52; b < 64; b++)
        ck_assert_uint_eq (tb[b], 0);
      for (uint32_t j = 0; j < g->E; j++) {
        uint64_t s = k * g->E + j;
        uint64_t word = le (tb + 64 + 16 * j, 8);
        uint64_t lost = le (tb + 64 + 16 * j + 8, 8);
        uint64_t ew = 0, el = 0;
        for (size_t m = 0; m < g->nmaps; m++)
          if (g->maps[m].slot == s) {
            ew = (uint64_t) g->maps[m].state << 56 | g->maps[m].origin;
            el = g->maps[m].lost;
          }
        ck_assert_msg (word == ew && lost == el,
                       "copy %u slot %llu: word %016llx lost %llx, expected "
                       "%016llx %llx",
                       i, (unsigned long long) s, (unsigned long long) word,
                       (unsigned long long) lost, (unsigned long long) ew,
                       (unsigned long long) el);
      }
    }
  }
  /* Every listed mapping is in a block that was written. */
  for (size_t m = 0; m < g->nmaps; m++)
    ck_assert_uint_ne (g->gen[g->maps[m].slot / g->E], 0);
  /* The newest block carries the allocation cursor. */
  uint64_t newest = 0;
  for (uint64_t k = 1; k < g->T; k++)
    if (g->gen[k] > g->gen[newest])
      newest = k;
  ck_assert_uint_eq (
    le (img + remap_layout_block_unit (&l, 0, newest) * g->unit + 24, 8),
    g->cursor);
}

START_TEST (test_raw_bytes)
{
  const struct golden *g = goldens[_i];
  uint8_t *img = load (g->name, g->spare_size);
  check_raw (g, img);
  free (img);
}
END_TEST

/* ---- the codec gives back the same bytes -------------------------------- */

START_TEST (test_reencode)
{
  const struct golden *g = goldens[_i];
  uint8_t *img = load (g->name, g->spare_size);
  uint8_t *buf = malloc (g->unit);
  struct remap_entry *ent = calloc (g->E, sizeof *ent);
  struct remap_error err = { 0 };
  struct remap_layout l = layout_of (g);
  struct remap_sb sb;

  ck_assert_ptr_nonnull (buf);
  ck_assert_ptr_nonnull (ent);
  for (uint32_t i = 0; i < g->copies; i++) {
    const uint8_t *p = img + remap_layout_sb_unit (&l, i) * g->unit;
    ck_assert_msg (remap_sb_decode (p, 512, &sb, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq (sb.copy_index, i);
    ck_assert_uint_eq (sb.version, g->version);
    ck_assert_str_eq (sb.origin_id, g->origin_id);
    ck_assert_str_eq (sb.origin_label, g->label);
    ck_assert_uint_eq (sb.layout.map_units, g->M);
    ck_assert_uint_eq (sb.layout.pending_blocks, g->Tp);
    remap_sb_encode (&sb, buf);
    ck_assert_mem_eq (buf, p, 512);
    for (uint64_t m = 0; m < g->M; m++) {
      const uint8_t *q = img + remap_layout_map_unit (&l, i, m) * g->unit;
      uint8_t bits[8192] = { 0 };
      struct remap_mapu h;
      ck_assert_msg (remap_map_decode (&sb, q, g->unit, m, &h, bits, &err) == 0,
                     "%s", err.msg);
      ck_assert_uint_eq (h.generation, g->map_gen);
      ck_assert_uint_eq (h.map_index, m);
      for (uint64_t k = 0; k < g->T; k++)
        ck_assert_uint_eq (bits[k / 8] >> (k % 8) & 1, g->map_bits >> k & 1);
      memset (buf, 0xa5, g->unit);
      remap_map_encode (&sb, &h, bits, buf);
      ck_assert_mem_eq (buf, q, g->unit);
    }
    for (uint64_t k = 0; k < g->T; k++) {
      const uint8_t *q = img + remap_layout_block_unit (&l, i, k) * g->unit;
      struct remap_tb tb;
      if (g->gen[k] == 0) {
        /* Never written: the codec must not take zeros for a block. */
        ck_assert_int_ne (remap_tb_decode (&sb, q, g->unit, k, &tb, ent, &err),
                          0);
        continue;
      }
      ck_assert_msg (remap_tb_decode (&sb, q, g->unit, k, &tb, ent, &err) == 0,
                     "%s", err.msg);
      ck_assert_uint_eq (tb.generation, g->gen[k]);
      memset (buf, 0xa5, g->unit);
      remap_tb_encode (&tb, ent, g->E, g->unit, buf);
      ck_assert_mem_eq (buf, q, g->unit);
    }
  }
  free (ent);
  free (buf);
  free (img);
}
END_TEST

/* ---- the engine reads what was written ---------------------------------- */

struct collect {
  size_t n;
  struct remap_mapping m[16];
};

static int
collect_fn (void *opaque, const struct remap_mapping *m)
{
  struct collect *c = opaque;
  if (c->n < 16)
    c->m[c->n] = *m;
  c->n++;
  return 0;
}

/* extra: generations added since the image was made (by a repair). */
static void
check_engine (const struct golden *g, struct remap_engine *e, uint64_t extra)
{
  struct remap_info info;
  struct remap_counters c;

  remap_get_info (e, &info);
  const struct remap_layout *l = &info.layout;
  ck_assert_uint_eq (l->version, g->version);
  ck_assert_uint_eq (l->unit, g->unit);
  ck_assert_uint_eq (l->spare_units, g->N);
  ck_assert_uint_eq (l->entries_per_block, g->E);
  ck_assert_uint_eq (l->real_blocks, g->Tr);
  ck_assert_uint_eq (l->pending_blocks, g->Tp);
  ck_assert_uint_eq (l->map_units, g->M);
  ck_assert_uint_eq (l->table_blocks, g->T);
  ck_assert_uint_eq (l->copy_units, g->L);
  ck_assert_int_eq (l->strategy, g->strategy);
  ck_assert_uint_eq (l->copies, g->copies);
  for (uint32_t i = 0; i < REMAP_MAX_COPIES; i++)
    ck_assert_uint_eq (l->copy_offset[i], g->off[i]);
  ck_assert_uint_eq (l->reserved_units, g->copies * g->L);
  ck_assert_uint_eq (l->usable_units, g->N - g->copies * g->L);
  ck_assert_mem_eq (info.uuid, golden_uuid, 16);
  char u[37];
  remap_uuid_format (info.uuid, u);
  ck_assert_str_eq (u, GOLDEN_UUID_STR);
  ck_assert_uint_eq (info.origin_size, g->origin_size);
  ck_assert_uint_eq (info.spare_size, g->spare_size);
  ck_assert_uint_eq (info.lost_granule, 512);
  ck_assert_uint_eq (info.format_time, GOLDEN_FORMAT_TIME);
  ck_assert_str_eq (info.origin_label, g->label);
  ck_assert_uint_eq (remap_size (e), g->origin_size);
  ck_assert_uint_eq (remap_unit (e), g->unit);

  /* Every non-free slot, in spare-unit order, and nothing else. */
  struct collect col = { 0 };
  ck_assert_int_eq (remap_foreach (e, collect_fn, &col), 0);
  ck_assert_uint_eq (col.n, g->nmaps);
  uint64_t mapped = 0, pending = 0, lostu = 0, lostg = 0;
  for (size_t m = 0; m < g->nmaps; m++) {
    const struct expect_map *x = &g->maps[m];
    ck_assert_uint_eq (col.m[m].spare_unit, x->slot);
    ck_assert_int_eq (col.m[m].state, x->state);
    ck_assert_uint_eq (col.m[m].lost, x->lost);
    if (x->state == REMAP_SLOT_BAD)
      continue;
    ck_assert_uint_eq (col.m[m].origin_unit, x->origin);
    struct remap_mapping mp;
    ck_assert_int_eq (remap_lookup (e, x->origin, &mp), 0);
    ck_assert_int_eq (mp.state, x->state);
    ck_assert_uint_eq (mp.spare_unit, x->slot);
    ck_assert_uint_eq (mp.lost, x->lost);
    mapped += x->state == REMAP_SLOT_MAPPED;
    pending += x->state == REMAP_SLOT_PENDING;
    lostu += x->lost != 0;
    lostg += (uint64_t) __builtin_popcountll (x->lost);
  }
  /* Some units that were never touched. */
  static const uint64_t untouched[] = { 0, 1, 2, 4, 6, 8, 99, 101, 500, 999 };
  for (size_t i = 0; i < sizeof untouched / sizeof untouched[0]; i++) {
    struct remap_mapping mp;
    bool listed = false;
    for (size_t m = 0; m < g->nmaps; m++)
      listed |=
        g->maps[m].state != REMAP_SLOT_BAD && g->maps[m].origin == untouched[i];
    if (listed)
      continue;
    ck_assert_int_eq (remap_lookup (e, untouched[i], &mp), 0);
    ck_assert_int_eq (mp.state, REMAP_SLOT_FREE);
  }
  struct remap_mapping mp;
  ck_assert_int_eq (remap_lookup (e, g->origin_size / g->unit, &mp), -EINVAL);

  remap_get_counters (e, &c);
  ck_assert_uint_eq (c.reallocated_units, mapped);
  ck_assert_uint_eq (c.pending_units, pending);
  ck_assert_uint_eq (c.uncorrectable_units, lostu);
  ck_assert_uint_eq (c.lost_granules, lostg);
  ck_assert_uint_eq (c.spare_bad_units, 1);
  ck_assert_uint_eq (c.spare_total_units, g->N);
  ck_assert_uint_eq (c.spare_usable_units, g->N - g->copies * g->L);
  /* A pending-only place (v2) holds no spare unit. */
  ck_assert_uint_eq (c.spare_free_units,
                     g->N - g->copies * g->L - spare_held (g));
  ck_assert_uint_eq (c.copies_valid, g->copies);
  ck_assert_uint_eq (c.copies_total, g->copies);
  uint64_t maxgen = 0;
  for (uint64_t k = 0; k < g->T; k++)
    maxgen = g->gen[k] > maxgen ? g->gen[k] : maxgen;
  ck_assert_uint_ge (maxgen, g->map_gen);
  ck_assert_uint_eq (c.generation, maxgen + extra);
  ck_assert_uint_eq (c.meta_write_units, 0);
  ck_assert_uint_eq (c.repaired_blocks, 0);
}

/* The spare's copy of every mapped unit holds the origin's bytes of the
 * day; lost granules fail; pending units read the (zeroed) origin. */
static void
check_data (const struct golden *g, struct remap_engine *e)
{
  uint8_t *want = malloc (g->unit), *got = malloc (g->unit);
  struct remap_error err = { 0 };

  for (size_t m = 0; m < g->nmaps; m++) {
    const struct expect_map *x = &g->maps[m];
    uint64_t off = x->origin * g->unit;
    if (x->state == REMAP_SLOT_BAD)
      continue;
    if (x->state == REMAP_SLOT_PENDING) {
      memset (want, 0, g->unit);
      ck_assert_int_eq (remap_pread (e, got, g->unit, off, &err), 0);
      ck_assert_mem_eq (got, want, g->unit);
      continue;
    }
    golden_fill_unit (want, g->unit, x->origin);
    for (uint32_t gr = 0; gr < g->unit / 512; gr++) {
      remap_error_clear (&err);
      int r = remap_pread (e, got, 512, off + gr * 512, &err);
      if (x->lost >> gr & 1)
        ck_assert_int_eq (r, -EIO);
      else {
        ck_assert_msg (r == 0, "%s", err.msg);
        ck_assert_mem_eq (got, want + gr * 512, 512);
      }
    }
  }
  free (want);
  free (got);
}

START_TEST (test_open)
{
  const struct golden *g = goldens[_i % NGOLDEN];
  bool readonly = _i >= NGOLDEN;
  uint8_t *img = load (g->name, g->spare_size);
  struct remap_backend *spare;
  struct remap_engine *e =
    open_image (img, g->spare_size, g->origin_size, readonly, &spare);
  check_engine (g, e, 0);
  check_data (g, e);
  ck_assert_int_eq (remap_close (e), 0);
  /* Opening a clean image writes nothing: not one byte changed. */
  ck_assert_int_eq (memcmp (remap_mem_data (spare), img, g->spare_size), 0);
  remap_backend_close (spare);
  free (img);
}
END_TEST

/* ---- a copy takes one more remap ---------------------------------------- */

START_TEST (test_remap_more)
{
  const struct golden *g = goldens[_i];
  uint8_t *img = load (g->name, g->spare_size);
  struct remap_backend *spare, *origin, *o2, *s2;
  struct remap_error err = { 0 };
  struct remap_engine *e;
  struct remap_counters c;
  uint64_t u = 50; /* free in both images */
  uint8_t *want = malloc (g->unit), *got = malloc (g->unit);

  ck_assert_int_eq (remap_mem_create (g->origin_size, &origin), 0);
  ck_assert_int_eq (remap_mem_create (g->spare_size, &spare), 0);
  memcpy (remap_mem_data (spare), img, g->spare_size);
  golden_fill_unit (want, g->unit, u);
  memcpy (remap_mem_data (origin) + u * g->unit, want, g->unit);
  ck_assert_int_eq (remap_mem_share (origin, &o2), 0);
  ck_assert_int_eq (remap_mem_share (spare, &s2), 0);

  struct remap_open_opts oo = { .no_lock = true };
  ck_assert_int_eq (remap_open (o2, s2, &oo, &e, &err), 0);
  remap_get_counters (e, &c);
  uint64_t gen0 = c.generation;
  ck_assert_int_eq (remap_remap (e, u, 0, &err), 0);
  struct remap_mapping mp;
  ck_assert_int_eq (remap_lookup (e, u, &mp), 0);
  ck_assert_int_eq (mp.state, REMAP_SLOT_MAPPED);
  /* Next fit from the recorded cursor. */
  ck_assert_uint_eq (mp.spare_unit, g->cursor);
  remap_get_counters (e, &c);
  ck_assert_uint_eq (c.generation, gen0 + 1);
  /* One table block per copy, whatever the table holds (SPEC 2.3). */
  ck_assert_uint_eq (c.meta_write_units, g->copies);
  ck_assert_int_eq (remap_close (e), 0);

  /* The spare's bytes alone now carry the new mapping and its data. */
  memset (remap_mem_data (origin), 0, g->origin_size);
  ck_assert_int_eq (remap_mem_share (origin, &o2), 0);
  ck_assert_int_eq (remap_mem_share (spare, &s2), 0);
  oo.readonly = true;
  ck_assert_int_eq (remap_open (o2, s2, &oo, &e, &err), 0);
  ck_assert_int_eq (remap_lookup (e, u, &mp), 0);
  ck_assert_int_eq (mp.state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (mp.spare_unit, g->cursor);
  ck_assert_int_eq (remap_pread (e, got, g->unit, u * g->unit, &err), 0);
  ck_assert_mem_eq (got, want, g->unit);
  remap_get_counters (e, &c);
  uint64_t mapped = 0;
  for (size_t m = 0; m < g->nmaps; m++)
    mapped += g->maps[m].state == REMAP_SLOT_MAPPED;
  ck_assert_uint_eq (c.reallocated_units, mapped + 1);
  ck_assert_uint_eq (c.copies_valid, g->copies);
  ck_assert_uint_eq (c.generation, gen0 + 1);
  for (size_t m = 0; m < g->nmaps; m++)
    if (g->maps[m].state != REMAP_SLOT_BAD) {
      ck_assert_int_eq (remap_lookup (e, g->maps[m].origin, &mp), 0);
      ck_assert_uint_eq (mp.spare_unit, g->maps[m].slot);
      ck_assert_int_eq (mp.state, g->maps[m].state);
    }
  ck_assert_int_eq (remap_close (e), 0);

  /* The commit is in the image's own version: the superblocks did not
   * change (a v1 spare stays v1), the map units neither (v2: the block
   * was already claimed), and the block holding the new slot is at its
   * place of that version in every copy, generation gen0 + 1. */
  struct remap_layout l = layout_of (g);
  const uint8_t *now = remap_mem_data (spare);
  uint64_t k = g->cursor / g->E, j = g->cursor % g->E;
  for (uint32_t i = 0; i < g->copies; i++) {
    ck_assert_mem_eq (now + g->off[i] * g->unit, img + g->off[i] * g->unit,
                      g->unit);
    for (uint64_t m = 0; m < g->M; m++) {
      size_t at = remap_layout_map_unit (&l, i, m) * g->unit;
      ck_assert_mem_eq (now + at, img + at, g->unit);
    }
    const uint8_t *tb = now + remap_layout_block_unit (&l, i, k) * g->unit;
    ck_assert_mem_eq (tb, "RMTB", 4);
    ck_assert_uint_eq (le (tb + 8, 8), gen0 + 1);
    ck_assert_uint_eq (le (tb + 16, 8), k);
    ck_assert_uint_eq (le (tb + 64 + 16 * j, 8),
                       (UINT64_C (1) << 56) | u); /* MAPPED 50 */
  }
  remap_backend_close (origin);
  remap_backend_close (spare);
  free (want);
  free (got);
  free (img);
}
END_TEST

/* ---- a lost first copy is found and rebuilt ------------------------------- */

START_TEST (test_copy0_lost)
{
  const struct golden *g = goldens[_i];
  uint8_t *img = load (g->name, g->spare_size);
  uint8_t *bad = malloc (g->spare_size);
  struct remap_backend *spare;
  struct remap_counters c;

  memcpy (bad, img, g->spare_size);
  memset (bad, 0, g->L * g->unit); /* copy 0, all of it */
  struct remap_engine *e =
    open_image (bad, g->spare_size, g->origin_size, false, &spare);
  remap_get_counters (e, &c);
  ck_assert_int_eq (remap_close (e), 0);
  /* v1: the superblock and every block.  v2 (FORMAT.md 14): the
   * superblock, the blocks the other copies wrote, and the map unit; copy
   * 0's map unit is gone, so the blocks no copy wrote are of unknown
   * history there, and not valid: damaged.  Each of them gets a fresh
   * generation (current + 1, + 2, ... in block order) and is written empty
   * to every copy, and every copy's map unit then claims it (without such
   * blocks only copy 0's map unit is written). */
  uint64_t written = 0, never = 0, maxgen = 0;
  for (uint64_t k = 0; k < g->T; k++) {
    written += g->gen[k] != 0;
    never += g->gen[k] == 0;
    maxgen = g->gen[k] > maxgen ? g->gen[k] : maxgen;
  }
  ck_assert_uint_eq (c.repaired_blocks, 1 + written + g->copies * never
                                          + (never ? g->copies : 1) * g->M);
  ck_assert_uint_eq (c.generation, maxgen + never);

  const uint8_t *rep = remap_mem_data (spare);
  struct remap_layout l = layout_of (g);
  for (uint32_t i = 0; i < g->copies; i++) {
    uint64_t fresh = maxgen;
    /* The superblock comes back byte for byte. */
    ck_assert_mem_eq (rep + g->off[i] * g->unit, img + g->off[i] * g->unit,
                      g->unit);
    for (uint64_t k = 0; k < g->T; k++) {
      size_t at = remap_layout_block_unit (&l, i, k) * g->unit;
      if (g->gen[k] != 0) {
        /* A written block, byte for byte (in copy 0: the chosen version). */
        ck_assert_mem_eq (rep + at, img + at, g->unit);
        continue;
      }
      ck_assert_mem_eq (rep + at, "RMTB", 4);
      ck_assert_uint_eq (le (rep + at + 8, 8), ++fresh);
      for (uint32_t b = 64; b < g->unit; b++)
        ck_assert_uint_eq (rep[at + b], 0); /* empty */
    }
    for (uint64_t m = 0; m < g->M; m++) {
      const uint8_t *mu = rep + remap_layout_map_unit (&l, i, m) * g->unit;
      ck_assert_mem_eq (mu, "RMBM", 4);
      /* A rewritten map unit carries the current generation (FORMAT.md
       * 14 does not say which; this is what the engine writes). */
      ck_assert_uint_eq (le (mu + 8, 8),
                         i == 0 || never ? maxgen + never : g->map_gen);
      ck_assert_uint_eq (le (mu + 64, 8), (UINT64_C (1) << g->T) - 1);
    }
  }
  memcpy (bad, rep, g->spare_size);
  remap_backend_close (spare);

  e = open_image (bad, g->spare_size, g->origin_size, true, NULL);
  check_engine (g, e, never);
  ck_assert_int_eq (remap_close (e), 0);
  free (bad);
  free (img);
}
END_TEST

/* ---- v2: the first write of a never-written block ------------------------ */

/* Marking spare unit 30 of the v2 512 image bad writes table block 1,
 * which no copy wrote before: each copy gets the block, then its map unit
 * with bit 1 set (FORMAT.md 10.2). */
START_TEST (test_v2_first_write)
{
  const struct golden *g = &g2_512;
  uint8_t *img = load (g->name, g->spare_size);
  struct remap_backend *spare;
  struct remap_error err = { 0 };
  struct remap_counters c;
  struct remap_layout l = layout_of (g);

  struct remap_engine *e =
    open_image (img, g->spare_size, g->origin_size, false, &spare);
  ck_assert_int_eq (remap_mark_spare_bad (e, 30, &err), 0);
  remap_get_counters (e, &c);
  ck_assert_uint_eq (c.generation, 6);
  ck_assert_uint_eq (c.meta_write_units, 2 * g->copies); /* block + map */
  ck_assert_int_eq (remap_close (e), 0);
  const uint8_t *now = remap_mem_data (spare);
  for (uint32_t i = 0; i < g->copies; i++) {
    const uint8_t *tb = now + remap_layout_block_unit (&l, i, 1) * g->unit;
    ck_assert_mem_eq (tb, "RMTB", 4);
    ck_assert_uint_eq (le (tb + 8, 8), 6);
    ck_assert_uint_eq (le (tb + 64 + 16 * 2, 8), UINT64_C (3) << 56);
    const uint8_t *mu = now + remap_layout_map_unit (&l, i, 0) * g->unit;
    ck_assert_uint_eq (le (mu + 4, 4), remap_crc32c (0, mu + 8, g->unit - 8));
    ck_assert_uint_eq (le (mu + 8, 8), 6);
    ck_assert_uint_eq (le (mu + 64, 8), g->map_bits | 0x2);
  }
  uint8_t *after = malloc (g->spare_size);
  memcpy (after, now, g->spare_size);
  remap_backend_close (spare);

  e = open_image (after, g->spare_size, g->origin_size, true, NULL);
  remap_get_counters (e, &c);
  ck_assert_uint_eq (c.spare_bad_units, 2);
  ck_assert_uint_eq (c.generation, 6);
  ck_assert_uint_eq (c.copies_valid, g->copies);
  ck_assert_int_eq (remap_close (e), 0);
  free (after);
  free (img);
}
END_TEST

/* ---- v2: what the map units decide ------------------------------------ */

static void
put64 (uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

static void
recrc (uint8_t *p, uint32_t unit) /* map unit or table block */
{
  uint32_t c = remap_crc32c (0, p + 8, unit - 8);
  for (int i = 0; i < 4; i++)
    p[4 + i] = (uint8_t) (c >> (8 * i));
}

/* On the v2 512 image (FORMAT.md 6.5, 10.3, 11.4): _i 0: a never-written
 * block's unit holds a table block that would validate (generation 99,
 * origin 33 at slot 28): it is never read, the table is unchanged; 1:
 * copy 0's map unit also claims block 1, whose unit is zero: damaged
 * there, the other copy's "never written" wins; 2: both maps claim it:
 * no valid version, the spare is refused (-EUCLEAN); 3: both maps are
 * invalid: every block is read, the never-written ones do not validate,
 * refused; 4: copy 0's map claims nothing: its versions are empty
 * (generation 0), copy 1's win. */
START_TEST (test_v2_maps_decide)
{
  const struct golden *g = &g2_512;
  struct remap_layout l = layout_of (g);
  uint8_t *img = load (g->name, g->spare_size);
  const uint32_t U = g->unit;
  uint8_t *mu0 = img + remap_layout_map_unit (&l, 0, 0) * U;
  uint8_t *mu1 = img + remap_layout_map_unit (&l, 1, 0) * U;
  uint8_t *tb1 = img + remap_layout_block_unit (&l, 0, 1) * U;

  switch (_i) {
  case 0:
    memcpy (tb1, img + remap_layout_block_unit (&l, 0, 0) * U, U);
    put64 (tb1 + 8, 99);
    put64 (tb1 + 16, 1);
    put64 (tb1 + 64, (UINT64_C (1) << 56) | 33);
    recrc (tb1, U);
    break;
  case 1:
  case 2:
    mu0[64] |= 0x2;
    recrc (mu0, U);
    if (_i == 2) {
      mu1[64] |= 0x2;
      recrc (mu1, U);
    }
    break;
  case 3:
    mu0[64] ^= 0x40; /* CRCs left wrong */
    mu1[64] ^= 0x40;
    break;
  case 4:
    mu0[64] = 0;
    recrc (mu0, U);
    break;
  }

  struct remap_backend *origin, *spare;
  struct remap_engine *e = NULL;
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_mem_create (g->origin_size, &origin), 0);
  ck_assert_int_eq (remap_mem_create (g->spare_size, &spare), 0);
  memcpy (remap_mem_data (spare), img, g->spare_size);
  struct remap_open_opts oo = { .readonly = true, .no_lock = true };
  int r = remap_open (origin, spare, &oo, &e, &err);
  if (_i == 2 || _i == 3) {
    ck_assert_int_eq (r, -EUCLEAN);
    free (img);
    return;
  }
  ck_assert_msg (r == 0, "%s", err.msg);
  struct remap_counters c;
  struct remap_mapping mp;
  remap_get_counters (e, &c);
  ck_assert_uint_eq (c.reallocated_units, 2);
  ck_assert_uint_eq (c.pending_units, 1);
  ck_assert_uint_eq (c.spare_bad_units, 1);
  ck_assert_uint_eq (c.generation, 5);
  ck_assert_uint_eq (c.copies_valid, _i == 0 ? 2 : 1);
  ck_assert_int_eq (remap_lookup (e, 33, &mp), 0);
  ck_assert_int_eq (mp.state, REMAP_SLOT_FREE);
  ck_assert_int_eq (remap_lookup (e, 5, &mp), 0);
  ck_assert_uint_eq (mp.spare_unit, g->maps[0].slot);
  ck_assert_int_eq (remap_close (e), 0);
  free (img);
}
END_TEST

/* ---- v2: the recorded origin identity ---------------------------------- */

/* _i: 0 the same identity opens, 1 another is refused (-ENODEV), 2 an
 * unknown one opens (nothing to check); a v1 image records none, so any
 * identity opens it. */
START_TEST (test_identity)
{
  static const char *const ids[] = { GOLDEN_ORIGIN_ID, "file:other", "" };
  for (int v = 0; v < 2; v++) {
    const struct golden *g = v ? &g2_4k : &g4k;
    uint8_t *img = load (g->name, g->spare_size);
    struct remap_backend *origin, *spare;
    struct remap_engine *e = NULL;
    struct remap_error err = { 0 };
    ck_assert_int_eq (remap_mem_create (g->origin_size, &origin), 0);
    ck_assert_int_eq (remap_mem_create (g->spare_size, &spare), 0);
    memcpy (remap_mem_data (spare), img, g->spare_size);
    remap_backend_set_identity (origin, ids[_i]);
    struct remap_open_opts oo = { .readonly = true, .no_lock = true };
    int r = remap_open (origin, spare, &oo, &e, &err);
    if (v == 1 && _i == 1) {
      ck_assert_int_eq (r, -ENODEV);
      ck_assert_ptr_nonnull (strstr (err.msg, GOLDEN_ORIGIN_ID));
      ck_assert_ptr_nonnull (strstr (err.msg, "file:other"));
    }
    else {
      ck_assert_msg (r == 0, "%s: %s", g->name, err.msg);
      ck_assert_int_eq (remap_close (e), 0);
    }
    free (img);
  }
}
END_TEST

static Suite *
golden_suite (void)
{
  Suite *s = suite_create ("golden");
  TCase *tc = tcase_create ("v1+v2");

  tcase_add_loop_test (tc, test_raw_bytes, 0, NGOLDEN);
  tcase_add_loop_test (tc, test_reencode, 0, NGOLDEN);
  tcase_add_loop_test (tc, test_open, 0, 2 * NGOLDEN);
  tcase_add_loop_test (tc, test_remap_more, 0, NGOLDEN);
  tcase_add_loop_test (tc, test_copy0_lost, 0, NGOLDEN);
  tcase_add_test (tc, test_v2_first_write);
  tcase_add_loop_test (tc, test_v2_maps_decide, 0, 5);
  tcase_add_loop_test (tc, test_identity, 0, 3);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (golden_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
