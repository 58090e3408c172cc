/* remap: generator of the golden images in tests/data/ and of the seed
 * corpus of tests/fuzz/corpus/fuzz_meta/.
 *
 * Not part of the build and not a test: it is run by hand, once per format
 * version, and its output is checked in (tests/data/README.md says how).
 * It drives the real engine over mem backends with a fixed uuid and format
 * time (tests/data/golden.h), so the same engine always produces the same
 * bytes; tests/unit/test_golden.c then proves that every later engine still
 * reads them the same way.
 *
 *   mkgolden DATADIR [CORPUSDIR]
 *
 * writes DATADIR/golden-v2-4k.spare.gz (gzip -n, so byte-reproducible) and
 * DATADIR/golden-v2-512.spare.  Format writes version 2 only, so the
 * version 1 images (golden-v1-*) can no longer be made: they are kept as
 * they were written and only read here, for the fuzz seeds.  With
 * CORPUSDIR, a few seeds for the fuzzer: pieces of the images and
 * hand-damaged variants (bad checksums, unknown features, impossible
 * geometry, inconsistent table entries and map units, a lost first
 * superblock), those of version 1 derived from the checked-in v1 images
 * (the same bytes as when they were first written), those of version 2
 * (named v2-*) from the new ones.  Exits non-zero on any failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/format.h"
#include "remap/meta.h"
#include "remap/remap.h"

#include "golden.h"

static void
die (const char *what, int r, const struct remap_error *err)
{
  fprintf (stderr, "mkgolden: %s: %s (%s)\n", what, strerror (-r),
           err && err->msg[0] ? err->msg : "-");
  exit (1);
}

#define CHECK(what, expr)                                                      \
  do {                                                                         \
    int r_ = (expr);                                                           \
    if (r_ != 0)                                                               \
      die (what, r_, &err);                                                    \
  } while (0)

/* Build one golden spare: format, then run `ops' against the engine.
 * Returns a malloc'd copy of the spare's bytes. */
static uint8_t *
make (uint64_t spare_size, uint64_t origin_size, uint32_t unit,
      const char *label, const char *identity,
      void (*ops) (struct remap_engine *))
{
  struct remap_backend *origin, *spare, *o2, *s2;
  struct remap_error err = { 0 };
  struct remap_format_opts fo;
  struct remap_engine *e;

  CHECK ("mem origin", remap_mem_create (origin_size, &origin));
  CHECK ("mem spare", remap_mem_create (spare_size, &spare));
  uint8_t *od = remap_mem_data (origin);
  for (uint64_t u = 0; u * unit < origin_size; u++) {
    uint8_t buf[65536];
    golden_fill_unit (buf, unit, u);
    uint64_t n = origin_size - u * unit < unit ? origin_size - u * unit : unit;
    memcpy (od + u * unit, buf, n);
  }

  /* Recorded in every superblock's origin_id (version 2). */
  remap_backend_set_identity (origin, identity);
  if (strcmp (origin->identity, identity) != 0)
    die ("identity", -EINVAL, NULL);

  remap_format_opts_init (&fo);
  fo.unit = unit;
  memcpy (fo.uuid, golden_uuid, 16);
  fo.format_time = GOLDEN_FORMAT_TIME;
  fo.origin_label = label;
  CHECK ("format", remap_format (origin, spare, &fo, &err));

  CHECK ("share origin", remap_mem_share (origin, &o2));
  CHECK ("share spare", remap_mem_share (spare, &s2));
  struct remap_open_opts oo = { .no_lock = true };
  CHECK ("open", remap_open (o2, s2, &oo, &e, &err));
  ops (e);
  CHECK ("close", remap_close (e));

  uint8_t *copy = malloc (spare_size);
  if (!copy)
    die ("malloc", -ENOMEM, NULL);
  memcpy (copy, remap_mem_data (spare), spare_size);
  remap_backend_close (origin);
  remap_backend_close (spare);
  return copy;
}

/* The operations of the version 2 images (tests/data/README.md lists
 * what each one leaves in the table). */
static void
ops_v2_4k (struct remap_engine *e)
{
  struct remap_error err = { 0 };
  CHECK ("remap 3", remap_remap (e, 3, 0, &err));
  CHECK ("remap 100", remap_remap (e, 100, 0, &err));
  CHECK ("remap 1000", remap_remap (e, 1000, 0, &err));
  CHECK ("pending 7", remap_mark_pending (e, 7, &err));
  CHECK ("lost 100", remap_mark_lost (e, 100, 1, &err));
  CHECK ("remap 500", remap_remap (e, G2_4K_UNMAPPED, 0, &err));
  CHECK ("unmap 500", remap_unmap (e, G2_4K_UNMAPPED, 0, &err));
  CHECK ("bad slot", remap_mark_spare_bad (e, G2_4K_BAD_SLOT, &err));
}

static void
ops_v2_512 (struct remap_engine *e)
{
  struct remap_error err = { 0 };
  CHECK ("remap 5", remap_remap (e, 5, 0, &err));
  CHECK ("remap 2047", remap_remap (e, 2047, 0, &err));
  CHECK ("pending 9", remap_mark_pending (e, 9, &err));
  CHECK ("bad slot", remap_mark_spare_bad (e, G2_512_BAD_SLOT, &err));
}

static void
write_file (const char *dir, const char *name, const uint8_t *p, size_t n,
            bool gz)
{
  char path[4096], cmd[8192];
  FILE *f;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  if (gz) {
    snprintf (cmd, sizeof cmd, "gzip -n -9 > '%s'", path);
    f = popen (cmd, "w");
  }
  else
    f = fopen (path, "wb");
  if (!f || fwrite (p, 1, n, f) != n ||
      (gz ? pclose (f) != 0 : fclose (f) != 0)) {
    fprintf (stderr, "mkgolden: writing %s failed\n", path);
    exit (1);
  }
}

/* ---- fuzz seeds ------------------------------------------------------- */

/* A seed without its trailing zeros (at least 512 bytes): the harness pads
 * an image whose first superblock decodes up to that superblock's spare
 * size, so the zeros need not be stored. */
static void
write_seed (const char *dir, const char *name, const uint8_t *p, size_t n)
{
  while (n > 512 && p[n - 1] == 0)
    n--;
  write_file (dir, name, p, n, false);
}

static void
put32 (uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

static void
put64 (uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

static void
sb_recrc (uint8_t *sb)
{
  put32 (sb + 508, remap_crc32c (0, sb, 508));
}

static void
tb_recrc (uint8_t *tb, uint32_t unit)
{
  put32 (tb + 4, remap_crc32c (0, tb + 8, unit - 8));
}

struct seed {
  const char *name;
  size_t field; /* byte offset in the superblock */
  int width;    /* 4 or 8 */
  uint64_t value;
};

/* Version 1 seeds, from the checked-in v1 images. */
static void
corpus_v1 (const char *dir, const uint8_t *g4k, const uint8_t *g512)
{
  const size_t n512 = G512_SPARE_SIZE, U = G512_UNIT;
  uint8_t *b = malloc (n512);
  if (!b)
    die ("malloc", -ENOMEM, NULL);

  write_file (dir, "golden-4k-head4k", g4k, 4096, false);
  write_file (dir, "golden-512-head4k", g512, 4096, false);
  write_file (dir, "golden-512-whole", g512, n512, false);
  write_file (dir, "empty", g512, 0, false);
  write_file (dir, "sb-truncated", g512, 511, false);

  /* Superblock fields with legal-looking CRCs but illegal values. */
  static const struct seed seeds[] = {
    { "sb-version-2", 8, 4, 2 },
    { "sb-header-size", 12, 4, 1024 },
    { "sb-incompat", 16, 8, 1 },
    { "sb-ro-compat", 32, 8, 1 },
    { "sb-compat", 24, 8, UINT64_C (1) << 63 },
    { "sb-origin-zero", 56, 8, 0 },
    { "sb-spare-huge", 64, 8, UINT64_MAX },
    { "sb-unit-1000", 72, 4, 1000 },
    { "sb-unit-65536", 72, 4, 65536 },
    { "sb-copy-index", 76, 4, 2 },
    { "sb-strategy-0", 96, 4, 0 },
    { "sb-strategy-geo", 96, 4, 3 },
    { "sb-copies-9", 100, 4, 9 },
    { "sb-copies-1", 100, 4, 1 },
    { "sb-copy-units", 104, 8, 7 },
    { "sb-epb", 120, 4, 27 },
    { "sb-granule", 124, 4, 1024 },
    { "sb-offset-1", 136, 8, 7 },
    { "sb-offset-past", 144, 8, 12 },
    { "sb-gen-0", 200, 8, 0 },
    { "sb-gen-top-bit", 200, 8, UINT64_C (1) << 63 },
    { "sb-reserved", 300, 4, 1 },
  };
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    memcpy (b, g512, n512);
    if (seeds[i].width == 4)
      put32 (b + seeds[i].field, (uint32_t) seeds[i].value);
    else
      put64 (b + seeds[i].field, seeds[i].value);
    sb_recrc (b);
    write_seed (dir, seeds[i].name, b, n512);
  }

  /* These two keep their zeros: their first superblock does not decode,
   * so only the stored length makes copy 1 reachable. */
  /* A checksum mismatch in copy 0's superblock: found through copy 1. */
  memcpy (b, g512, n512);
  b[100] ^= 1;
  write_file (dir, "sb0-bad-crc", b, n512, false);
  /* Copy 0 erased: discovery by vote. */
  memset (b, 0, 6 * U);
  write_file (dir, "copy0-erased", b, n512, false);

  /* Table block 0 of copy 0 (unit 1): damaged entries, re-checksummed. */
  struct {
    const char *name;
    size_t off;
    uint64_t v;
  } ents[] = {
    { "tb-state-9", 64 + 16 * 12, UINT64_C (9) << 56 },
    { "tb-origin-range", 64 + 16 * 12, (UINT64_C (1) << 56) | 5000 },
    { "tb-lost-past", 64 + 16 * 12 + 8, 2 },
    { "tb-pending-lost", 64 + 16 * 14 + 8, 1 },
    { "tb-bad-origin", 64 + 16 * 20, (UINT64_C (3) << 56) | 1 },
    { "tb-free-dirty", 64 + 16 * 20 + 8, 1 },
    { "tb-reserved-slot", 64 + 16 * 3, (UINT64_C (1) << 56) | 1 },
    { "tb-dup-in-block", 64 + 16 * 20, (UINT64_C (1) << 56) | 5 },
    { "tb-cursor", 24, 1000 },
    { "tb-index", 16, 1 },
    { "tb-gen-0", 8, 0 },
    { "tb-gen-high", 8, 1000 },
    { "tb-gen-max", 8, UINT64_MAX },          /* 2^64 - 1: implausible */
    { "tb-gen-bound", 8, (UINT64_C (1) << 63) - 1 }, /* the largest valid */
  };
  for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
    memcpy (b, g512, n512);
    put64 (b + U + ents[i].off, ents[i].v);
    tb_recrc (b + U, U);
    write_seed (dir, ents[i].name, b, n512);
  }
  /* The same origin unit in two blocks, in both copies: the newer block
   * (block 1, generation 9) must win over block 0's slot 12. */
  memcpy (b, g512, n512);
  for (size_t c = 0; c < 2; c++) {
    uint8_t *tb1 = b + (c * 6 + 2) * U;
    put64 (tb1 + 8, 9);
    put64 (tb1 + 64 + 16 * 0, (UINT64_C (1) << 56) | 5);
    tb_recrc (tb1, U);
  }
  write_seed (dir, "tb-dup-across", b, n512);
  /* Copies disagree: copy 1 holds an older block 0 (generation 1). */
  memcpy (b, g512, n512);
  memcpy (b + 7 * U, b + 2 * U, U); /* block 1's bytes, wrong index */
  write_seed (dir, "tb-copy1-wrong", b, n512);

  /* The 4k image's first copy alone, padded by the harness. */
  write_file (dir, "golden-4k-copy0", g4k, 3 * 4096, false);
  free (b);
}

static void
map_recrc (uint8_t *mu, uint32_t unit)
{
  put32 (mu + 4, remap_crc32c (0, mu + 8, unit - 8));
}

/* Version 2 seeds, from the new images.  Every place is computed from the
 * 512 image's layout (tests/data/README.md: 2 copies of L = 8 units, a
 * superblock, map unit 0, table blocks 0..5; slots 128..167 are
 * pending-only places, 128..139 in the tail of block 4, 140..167 block 5;
 * its map units claim blocks 0, 3 and 4). */
static void
corpus_v2 (const char *dir, const uint8_t *g4k, const uint8_t *g512)
{
  const size_t n512 = G512_SPARE_SIZE, U = G512_UNIT;
  struct remap_error err = { 0 };
  struct remap_sb sb;
  uint8_t *b = malloc (n512);
  if (!b)
    die ("malloc", -ENOMEM, NULL);

  CHECK ("v2 4k sb", remap_sb_decode (g4k, 512, &sb, &err));
  write_file (dir, "v2-golden-4k-head4k", g4k, 4096, false);
  write_file (dir, "v2-golden-4k-copy0", g4k,
              (size_t) sb.layout.copy_units * G4K_UNIT, false);
  CHECK ("v2 512 sb", remap_sb_decode (g512, 512, &sb, &err));
  const struct remap_layout *l = &sb.layout;
  const uint64_t T = l->table_blocks, E = l->entries_per_block;
  const uint64_t N = l->spare_units;
  if (l->copies != 2 || l->map_units != 1 || T >= 8 || N % E == 0)
    die ("v2 512 layout", -EINVAL, NULL);
  write_file (dir, "v2-golden-512-head4k", g512, 4096, false);
  write_file (dir, "v2-golden-512-whole", g512, n512, false);

  /* Superblock fields of version 2, with their CRC made right. */
  const struct seed seeds[] = {
    { "v2-sb-version-1", 8, 4, 1 },
    { "v2-sb-version-3", 8, 4, 3 },
    { "v2-sb-map-units-0", 272, 8, 0 },
    { "v2-sb-map-units-2", 272, 8, 2 },
    { "v2-sb-pending-more", 280, 8, l->pending_blocks + 1 },
    { "v2-sb-pending-huge", 280, 8, UINT64_MAX },
    { "v2-sb-table-blocks-less", 112, 8, T - 1 },
    { "v2-sb-copy-units-less", 104, 8, l->copy_units - 1 },
    { "v2-sb-id-unpadded", 288 + 20, 4, 0x78 },  /* a byte after its NUL */
    { "v2-sb-id-full", 288 + 120, 8, UINT64_C (0x4141414141414141) },
    { "v2-sb-reserved-416", 416, 4, 1 },
    { "v2-sb-reserved-500", 500, 8, UINT64_C (1) << 40 },
  };
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    memcpy (b, g512, n512);
    if (seeds[i].width == 4)
      put32 (b + seeds[i].field, (uint32_t) seeds[i].value);
    else
      put64 (b + seeds[i].field, seeds[i].value);
    if (strcmp (seeds[i].name, "v2-sb-id-full") == 0)
      memset (b + 288, 'A', REMAP_ORIGIN_ID_SIZE); /* no NUL at all */
    sb_recrc (b);
    write_seed (dir, seeds[i].name, b, n512);
  }

  /* Copy 0 damaged or erased: found through copy 1. */
  memcpy (b, g512, n512);
  b[300] ^= 1;
  write_file (dir, "v2-sb0-bad-crc", b, n512, false);
  memset (b, 0, l->copy_units * U);
  write_file (dir, "v2-copy0-erased", b, n512, false);

  /* Map unit 0 of copy 0, damaged field by field. */
  const size_t mu0 = remap_layout_map_unit (l, 0, 0) * U;
  const size_t mu1 = remap_layout_map_unit (l, 1, 0) * U;
  const uint8_t bits = g512[mu0 + 64]; /* blocks 0, 3, 4 */
  uint8_t never = 0;                   /* the first never-written block */
  while (bits >> never & 1)
    never++;
  const struct {
    const char *name;
    size_t off;
    int width;
    uint64_t v;
    bool both; /* in both copies */
  } maps[] = {
    { "v2-map-index", 16, 8, 1, false },
    { "v2-map-blocks-more", 40, 8, T + 1, false },
    { "v2-map-blocks-less", 40, 8, T - 1, false },
    { "v2-map-gen-0", 8, 8, 0, false },
    { "v2-map-gen-top-bit", 8, 8, UINT64_C (1) << 63, false },
    { "v2-map-gen-high", 8, 8, 1000, false },    /* valid: outranks blocks */
    { "v2-map-gen-high-both", 8, 8, 1000, true },
    { "v2-map-reserved", 50, 4, 1, false },
    { "v2-map-uuid", 30, 4, 0x12345678, false },
    { "v2-map-bit-past", 64, 4, bits | 1u << T, false },
    { "v2-map-claims-unwritten", 64, 4, bits | 1u << never, false },
    { "v2-map-claims-unwritten-both", 64, 4, bits | 1u << never, true },
    { "v2-map-claims-none", 64, 4, 0, false },   /* forgets its blocks */
    { "v2-map-claims-none-both", 64, 4, 0, true },
    { "v2-map-claims-all-both", 64, 4, (1u << T) - 1, true },
  };
  for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
    memcpy (b, g512, n512);
    for (int c = 0; c < (maps[i].both ? 2 : 1); c++) {
      uint8_t *mu = b + (c ? mu1 : mu0);
      if (maps[i].width == 4)
        put32 (mu + maps[i].off, (uint32_t) maps[i].v);
      else
        put64 (mu + maps[i].off, maps[i].v);
      map_recrc (mu, U);
    }
    write_seed (dir, maps[i].name, b, n512);
  }
  memcpy (b, g512, n512);
  b[mu0 + 64] ^= 0x80; /* a bit past the blocks, CRC left wrong */
  write_seed (dir, "v2-map-bad-crc", b, n512);
  b[mu1 + 64] ^= 0x80;
  write_seed (dir, "v2-map-bad-crc-both", b, n512);
  memcpy (b, g512, n512);
  memcpy (b + mu0, "XXXX", 4);
  write_seed (dir, "v2-map-magic", b, n512);

  /* A never-written block's unit holds bytes that must never be read: a
   * table block that would validate (generation 99, origin 33 mapped in
   * its first slot), a superblock of another spare. */
  const size_t tb0 = remap_layout_block_unit (l, 0, 0) * U;
  const size_t tbn = remap_layout_block_unit (l, 0, never) * U;
  memcpy (b, g512, n512);
  memcpy (b + tbn, b + tb0, U);
  memset (b + tbn + 64, 0, U - 64);
  put64 (b + tbn + 8, 99);
  put64 (b + tbn + 16, never);
  put64 (b + tbn + 64, (UINT64_C (1) << 56) | 33);
  tb_recrc (b + tbn, U);
  write_seed (dir, "v2-unwritten-valid-block", b, n512);
  memcpy (b + tbn, b, U);
  b[tbn + 40] ^= 0xff; /* another uuid */
  sb_recrc (b + tbn);
  write_seed (dir, "v2-unwritten-foreign-sb", b, n512);

  /* Entries of the block holding slot N (spare units, then the first
   * places: the pending mark is at place N) and of the block of the bad
   * unit (slot G2_512_BAD_SLOT). */
  const uint64_t kp = N / E, jp = N % E; /* place N: block kp, entry jp */
  const size_t tbp = remap_layout_block_unit (l, 0, kp) * U;
  const size_t tbb = remap_layout_block_unit (l, 0, G2_512_BAD_SLOT / E) * U;
  const size_t jb = G2_512_BAD_SLOT % E;
#define ENT(j) (64 + 16 * (j))
  const struct {
    const char *name;
    size_t blk, off;
    uint64_t v;
    bool both;
  } ents[] = {
    { "v2-place-mapped", tbp, ENT (jp + 1), (UINT64_C (1) << 56) | 40, false },
    { "v2-place-bad", tbp, ENT (jp + 1), UINT64_C (3) << 56, false },
    { "v2-place-state-9", tbp, ENT (jp + 1), UINT64_C (9) << 56, false },
    { "v2-place-origin-range", tbp, ENT (jp + 1),
      (UINT64_C (2) << 56) | 2048, false },
    { "v2-place-lost", tbp, ENT (jp) + 8, 1, false },
    { "v2-place-free-dirty", tbp, ENT (jp + 3) + 8, 1, false },
    { "v2-place-cursor", tbp, 24, N, false },
    { "v2-place-index", tbp, 16, kp + 1, false },
    /* PENDING in a spare slot (what version 1 writes): valid. */
    { "v2-pending-in-slot", tbp, ENT (jp - 1), (UINT64_C (2) << 56) | 41,
      true },
    /* Origin 5 (slot 16, block 0) also PENDING in a newer place. */
    { "v2-place-dup-newer", tbp, ENT (jp + 1), (UINT64_C (2) << 56) | 5,
      true },
    /* Origin 9 (place N) also MAPPED in the bad unit's block, newer. */
    { "v2-dup-slot-newer", tbb, ENT (jb - 10), (UINT64_C (1) << 56) | 9,
      true },
    /* The same, with that block older than the place's. */
    { "v2-dup-slot-older", tbb, ENT (jb - 10), (UINT64_C (1) << 56) | 9,
      true },
  };
#undef ENT
  const size_t stride = l->copy_offset[1] * U;
  for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
    memcpy (b, g512, n512);
    for (int c = 0; c < (ents[i].both ? 2 : 1); c++) {
      uint8_t *tb = b + ents[i].blk + c * stride;
      put64 (tb + ents[i].off, ents[i].v);
      if (ents[i].both)
        put64 (tb + 8, strstr (ents[i].name, "older") ? 2 : 9);
      tb_recrc (tb, U);
    }
    write_seed (dir, ents[i].name, b, n512);
  }
  free (b);
}

/* Read a checked-in image (gunzipped if its name ends in .gz). */
static uint8_t *
load (const char *dir, const char *name, uint64_t size)
{
  char path[4096], cmd[8192];
  size_t n;
  bool gz;
  FILE *f;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  n = strlen (path);
  gz = n > 3 && strcmp (path + n - 3, ".gz") == 0;
  if (gz) {
    snprintf (cmd, sizeof cmd, "gzip -dc '%s'", path);
    f = popen (cmd, "r");
  }
  else
    f = fopen (path, "rb");
  uint8_t *buf = malloc (size + 1);
  if (!f || !buf || fread (buf, 1, size + 1, f) != size
      || (gz ? pclose (f) != 0 : fclose (f) != 0)) {
    fprintf (stderr, "mkgolden: reading %s failed\n", path);
    exit (1);
  }
  return buf;
}

int
main (int argc, char **argv)
{
  if (argc < 2 || argc > 3) {
    fprintf (stderr, "usage: mkgolden DATADIR [CORPUSDIR]\n");
    return 2;
  }
  uint8_t *v2_4k = make (G4K_SPARE_SIZE, G4K_ORIGIN_SIZE, G4K_UNIT, G4K_LABEL,
                         GOLDEN_ORIGIN_ID, ops_v2_4k);
  uint8_t *v2_512 = make (G512_SPARE_SIZE, G512_ORIGIN_SIZE, G512_UNIT,
                          G512_LABEL, GOLDEN_ORIGIN_ID, ops_v2_512);
  write_file (argv[1], G2_4K_NAME, v2_4k, G4K_SPARE_SIZE, true);
  write_file (argv[1], G2_512_NAME, v2_512, G512_SPARE_SIZE, false);
  if (argc == 3) {
    uint8_t *v1_4k = load (argv[1], G4K_NAME, G4K_SPARE_SIZE);
    uint8_t *v1_512 = load (argv[1], G512_NAME, G512_SPARE_SIZE);
    corpus_v1 (argv[2], v1_4k, v1_512);
    corpus_v2 (argv[2], v2_4k, v2_512);
    free (v1_4k);
    free (v1_512);
  }
  free (v2_4k);
  free (v2_512);
  return 0;
}
