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
 * writes DATADIR/golden-v1-4k.spare.gz (gzip -n, so byte-reproducible),
 * DATADIR/golden-v1-512.spare, and with CORPUSDIR a few seeds for the fuzzer:
 * pieces of the images and hand-damaged variants (bad checksums, unknown
 * features, impossible geometry, inconsistent table entries, a lost first
 * superblock).  Exits non-zero on any failure.
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
      const char *label, void (*ops) (struct remap_engine *))
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

static void
ops_4k (struct remap_engine *e)
{
  struct remap_error err = { 0 };
  CHECK ("remap 3", remap_remap (e, 3, 0, &err));
  CHECK ("remap 100", remap_remap (e, 100, 0, &err));
  CHECK ("remap 1000", remap_remap (e, 1000, 0, &err));
  CHECK ("pending 7", remap_mark_pending (e, 7, &err));
  CHECK ("lost 100", remap_mark_lost (e, 100, 1, &err));
  CHECK ("bad slot", remap_mark_spare_bad (e, G4K_BAD_SLOT, &err));
}

static void
ops_512 (struct remap_engine *e)
{
  struct remap_error err = { 0 };
  CHECK ("remap 5", remap_remap (e, 5, 0, &err));
  CHECK ("remap 2047", remap_remap (e, 2047, 0, &err));
  CHECK ("pending 9", remap_mark_pending (e, 9, &err));
  CHECK ("bad slot", remap_mark_spare_bad (e, G512_BAD_SLOT, &err));
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

static void
corpus (const char *dir, const uint8_t *g4k, const uint8_t *g512)
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

int
main (int argc, char **argv)
{
  if (argc < 2 || argc > 3) {
    fprintf (stderr, "usage: mkgolden DATADIR [CORPUSDIR]\n");
    return 2;
  }
  uint8_t *g4k =
    make (G4K_SPARE_SIZE, G4K_ORIGIN_SIZE, G4K_UNIT, G4K_LABEL, ops_4k);
  uint8_t *g512 =
    make (G512_SPARE_SIZE, G512_ORIGIN_SIZE, G512_UNIT, G512_LABEL, ops_512);
  write_file (argv[1], G4K_NAME, g4k, G4K_SPARE_SIZE, true);
  write_file (argv[1], G512_NAME, g512, G512_SPARE_SIZE, false);
  if (argc == 3)
    corpus (argv[2], g4k, g512);
  free (g4k);
  free (g512);
  return 0;
}
