/* Unit tests: the metadata codec (core/meta.c) and CRC32C.
 *
 * Valid: superblock and table block round trips, and the encoded bytes
 * checked field by field against the on-disk table (format.h offsets read
 * with our own little-endian helpers).  Boundary: every single-bit flip of
 * an encoded superblock and table block is rejected.  Bogus: each field set
 * to an impossible value with the CRC recomputed, so that the decoder's own
 * validation (not the checksum) must catch it: -EUCLEAN, or -EOPNOTSUPP for
 * unknown versions and incompatible features.  Finally seeded random
 * garbage with a valid CRC: the decoder must answer, never crash (run this
 * file under ASan: buffers are heap blocks of the exact size).
 */

#include "unit/testlib.h"

/* ---- building valid structures ------------------------------------------ */

/* The format version make_sb builds (tests that cover both set it). */
static uint32_t mk_version = REMAP_SB_VERSION;

static void
make_sb (struct remap_sb *sb, uint64_t spare_bytes, uint32_t unit,
         enum remap_strategy s, uint32_t copies, uint64_t origin_size,
         uint32_t copy_index)
{
  struct remap_error err = { 0 };
  memset (sb, 0, sizeof *sb);
  int r = remap_layout_compute_version (mk_version, spare_bytes, unit, s,
                                        copies, &sb->layout, &err);
  ck_assert_msg (r == 0, "layout: %s", err.msg);
  sb->version = mk_version;
  if (mk_version >= 2)
    strcpy (sb->origin_id, "serial:WD-TEST1234");
  for (int i = 0; i < 16; i++)
    sb->uuid[i] = (uint8_t) (0xc0 + i * 3);
  sb->origin_size = origin_size;
  sb->spare_size = sb->layout.spare_units * unit;
  sb->copy_index = copy_index;
  sb->origin_units = (origin_size + unit - 1) / unit;
  sb->lost_granule = remap_lost_granule (unit);
  sb->format_time = 1700000123;
  sb->sb_generation = 1;
  strcpy (sb->origin_label, "/dev/disk/by-id/ata-OLD_DISK");
}

/* A heap block of exactly n bytes, so ASan sees any overread. */
static uint8_t *
encode_sb_heap (const struct remap_sb *sb)
{
  uint8_t *buf = malloc (REMAP_SB_SIZE);
  ck_assert_ptr_nonnull (buf);
  remap_sb_encode (sb, buf);
  return buf;
}

struct sbcase {
  uint64_t spare;
  uint32_t unit;
  enum remap_strategy s;
  uint32_t copies;
};

static const struct sbcase sbcases[] = {
  { 64 * KiB, 512, REMAP_STRATEGY_AUTO, 0 },           /* minimal, 2 */
  { 1 * MiB, 4096, REMAP_STRATEGY_AUTO, 0 },           /* linear, 4 */
  { 64 * MiB, 4096, REMAP_STRATEGY_AUTO, 0 },          /* geometric, 5 */
  { 2 * MiB, 4096, REMAP_STRATEGY_GEOMETRIC, 8 },
  { 1 * MiB, 512, REMAP_STRATEGY_MINIMAL, 3 },
  { 16 * MiB, 65536, REMAP_STRATEGY_LINEAR, 6 },
};
#define NSBCASES (sizeof sbcases / sizeof sbcases[0])

static void
sb_from_case (struct remap_sb *sb, const struct sbcase *c, uint32_t idx)
{
  make_sb (sb, c->spare, c->unit, c->s, c->copies, 3 * MiB + 1000, idx);
}

/* ---- CRC ----------------------------------------------------------------- */

START_TEST (test_crc_known_answers)
{
  uint8_t zeros[32] = { 0 }, ones[32];
  memset (ones, 0xff, sizeof ones);
  ck_assert_uint_eq (remap_crc32c (0, "123456789", 9), 0xE3069283u);
  ck_assert_uint_eq (remap_crc32c (0, zeros, 32), 0x8A9136AAu);
  ck_assert_uint_eq (remap_crc32c (0, ones, 32), 0x62A8AB43u);
  ck_assert_uint_eq (remap_crc32c (0, "", 0), 0);
  ck_assert_uint_eq (remap_crc32c (remap_crc32c (0, "12345", 5), "6789", 4),
                     0xE3069283u);
}
END_TEST

/* ---- superblock ------------------------------------------------------------ */

/* Loop index over sbcases, once per version: _i < NSBCASES is version 2,
 * the rest version 1. */
#define CASE_OF(i) (&sbcases[(i) % NSBCASES])
#define VERSION_OF(i) ((size_t) (i) < NSBCASES ? REMAP_SB_VERSION : 1u)

START_TEST (test_sb_round_trip)
{
  const struct sbcase *c = CASE_OF (_i);
  struct remap_sb sb;
  mk_version = VERSION_OF (_i);
  sb_from_case (&sb, c, 0);
  uint32_t v = mk_version;

  for (uint32_t idx = 0; idx < sb.layout.copies; idx++) {
    struct remap_sb in = sb, out;
    struct remap_error err = { 0 };
    in.copy_index = idx;
    uint8_t *buf = encode_sb_heap (&in);
    memset (&out, 0x5a, sizeof out);
    int r = remap_sb_decode (buf, REMAP_SB_SIZE, &out, &err);
    ck_assert_msg (r == 0, "case %d copy %u: %d %s", _i, idx, r, err.msg);
    ck_assert_uint_eq (out.version, v);
    ck_assert_uint_eq (out.incompat, 0);
    ck_assert_str_eq (out.origin_id, v >= 2 ? "serial:WD-TEST1234" : "");
    ck_assert_mem_eq (out.uuid, in.uuid, 16);
    ck_assert_uint_eq (out.origin_size, in.origin_size);
    ck_assert_uint_eq (out.spare_size, in.spare_size);
    ck_assert_uint_eq (out.copy_index, idx);
    ck_assert_uint_eq (out.origin_units, in.origin_units);
    ck_assert_uint_eq (out.lost_granule, in.lost_granule);
    ck_assert_uint_eq (out.format_time, in.format_time);
    ck_assert_uint_eq (out.sb_generation, 1);
    ck_assert_str_eq (out.origin_label, in.origin_label);
    const struct remap_layout *a = &in.layout, *b = &out.layout;
    ck_assert_uint_eq (b->unit, a->unit);
    ck_assert_uint_eq (b->spare_units, a->spare_units);
    ck_assert_uint_eq (b->entries_per_block, a->entries_per_block);
    ck_assert_uint_eq (b->table_blocks, a->table_blocks);
    ck_assert_uint_eq (b->version, v);
    ck_assert_uint_eq (b->real_blocks, a->real_blocks);
    ck_assert_uint_eq (b->pending_blocks, a->pending_blocks);
    ck_assert_uint_eq (b->map_units, a->map_units);
    ck_assert_uint_eq (b->copy_units, a->copy_units);
    ck_assert_uint_eq (b->copy_units, 1 + b->map_units + b->table_blocks);
    if (v == 1)
      ck_assert (b->map_units == 0 && b->pending_blocks == 0);
    else
      ck_assert (b->map_units >= 1
                 && b->table_blocks * b->entries_per_block - b->spare_units
                 >= (b->spare_units + 3) / 4);
    ck_assert_int_eq (b->strategy, a->strategy);
    ck_assert_uint_eq (b->copies, a->copies);
    ck_assert_mem_eq (b->copy_offset, a->copy_offset, sizeof a->copy_offset);
    ck_assert_uint_eq (b->reserved_units, a->reserved_units);
    ck_assert_uint_eq (b->usable_units, a->usable_units);

    /* The bytes, against the format table. */
    ck_assert_mem_eq (buf, "REMAPSP1", 8);
    ck_assert_uint_eq (tl_get32 (buf + 8), v);
    ck_assert_uint_eq (tl_get32 (buf + 12), 512);
    ck_assert_uint_eq (tl_get64 (buf + 16), 0);
    ck_assert_mem_eq (buf + 40, in.uuid, 16);
    ck_assert_uint_eq (tl_get64 (buf + 56), in.origin_size);
    ck_assert_uint_eq (tl_get64 (buf + 64), in.spare_size);
    ck_assert_uint_eq (tl_get32 (buf + 72), a->unit);
    ck_assert_uint_eq (tl_get32 (buf + 76), idx);
    ck_assert_uint_eq (tl_get64 (buf + 80), a->spare_units);
    ck_assert_uint_eq (tl_get64 (buf + 88), in.origin_units);
    ck_assert_uint_eq (tl_get32 (buf + 96), a->strategy);
    ck_assert_uint_eq (tl_get32 (buf + 100), a->copies);
    ck_assert_uint_eq (tl_get64 (buf + 104), a->copy_units);
    ck_assert_uint_eq (tl_get64 (buf + 112), a->table_blocks);
    ck_assert_uint_eq (tl_get32 (buf + 120), a->entries_per_block);
    ck_assert_uint_eq (tl_get32 (buf + 124), in.lost_granule);
    for (uint32_t i = 0; i < 8; i++)
      ck_assert_uint_eq (tl_get64 (buf + 128 + 8 * i),
                         i < a->copies ? a->copy_offset[i] : 0);
    ck_assert_uint_eq (tl_get64 (buf + 192), in.format_time);
    ck_assert_uint_eq (tl_get64 (buf + 200), 1);
    ck_assert_str_eq ((const char *) buf + 208, in.origin_label);
    /* Version 2 fields; all zero in version 1. */
    ck_assert_uint_eq (tl_get64 (buf + 272), v >= 2 ? a->map_units : 0);
    ck_assert_uint_eq (tl_get64 (buf + 280), v >= 2 ? a->pending_blocks : 0);
    if (v >= 2)
      ck_assert_str_eq ((const char *) buf + 288, "serial:WD-TEST1234");
    for (int i = v >= 2 ? 288 + (int) strlen ("serial:WD-TEST1234") : 288;
         i < 508; i++)
      ck_assert_uint_eq (buf[i], 0);
    ck_assert_uint_eq (tl_get32 (buf + 508), remap_crc32c (0, buf, 508));
    free (buf);
  }
}
END_TEST

START_TEST (test_sb_label_full_width)
{
  struct remap_sb sb, out;
  mk_version = REMAP_SB_VERSION;  /* other tests leave it as they need */
  sb_from_case (&sb, &sbcases[1], 0);
  memset (sb.origin_label, 'x', REMAP_LABEL_SIZE);
  sb.origin_label[REMAP_LABEL_SIZE] = '\0';
  uint8_t *buf = encode_sb_heap (&sb);
  ck_assert_int_eq (remap_sb_decode (buf, REMAP_SB_SIZE, &out, NULL), 0);
  ck_assert_uint_eq (strlen (out.origin_label), REMAP_LABEL_SIZE);
  /* Did not spill into the next field (map_units). */
  ck_assert_uint_eq (tl_get64 (buf + 272), sb.layout.map_units);
  free (buf);
  /* The origin identity at full width (128 bytes, no NUL on disk) does
   * not spill into reserved either. */
  memset (sb.origin_id, 'y', REMAP_ORIGIN_ID_SIZE);
  sb.origin_id[REMAP_ORIGIN_ID_SIZE] = '\0';
  buf = encode_sb_heap (&sb);
  ck_assert_int_eq (remap_sb_decode (buf, REMAP_SB_SIZE, &out, NULL), 0);
  ck_assert_uint_eq (strlen (out.origin_id), REMAP_ORIGIN_ID_SIZE);
  for (int i = 416; i < 508; i++)
    ck_assert_uint_eq (buf[i], 0);
  free (buf);
}
END_TEST

START_TEST (test_sb_bit_flips)
{
  const struct sbcase *c = &sbcases[_i];
  struct remap_sb sb, out;
  sb_from_case (&sb, c, c->copies > 1 ? 1 : 0);
  uint8_t *buf = encode_sb_heap (&sb);

  ck_assert_int_eq (remap_sb_decode (buf, REMAP_SB_SIZE, &out, NULL), 0);
  for (unsigned bit = 0; bit < REMAP_SB_SIZE * 8; bit++) {
    struct remap_error err = { 0 };
    buf[bit / 8] ^= (uint8_t) (1u << (bit % 8));
    int r = remap_sb_decode (buf, REMAP_SB_SIZE, &out, &err);
    REQ (r < 0, "case %d: flip of bit %u accepted", _i, bit);
    REQ (r == -EBADMSG || r == -EUCLEAN, "case %d bit %u: r %d", _i, bit, r);
    REQ (err.msg[0] != '\0', "case %d bit %u: no message", _i, bit);
    buf[bit / 8] ^= (uint8_t) (1u << (bit % 8));
  }
  ck_assert_int_eq (remap_sb_decode (buf, REMAP_SB_SIZE, &out, NULL), 0);
  free (buf);
}
END_TEST

/* A field mutation applied to an encoded superblock (CRC redone after). */
struct sbmut {
  const char *name;
  int want;                     /* expected decode result */
  void (*fn) (uint8_t *b, const struct remap_sb *sb);
  uint32_t only;                /* 0: both versions; else only this one */
};

#define L_ (&sb->layout)
static void m_unit_1000 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 72, 1000); }
static void m_unit_256 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 72, 256); }
static void m_unit_128k (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 72, 131072); }
static void m_unit_0 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 72, 0); }
static void m_unit_other (uint8_t *b, const struct remap_sb *sb)
{ tl_put32 (b + 72, L_->unit == 512 ? 1024 : L_->unit / 2); }
static void m_copies_0 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 100, 0); }
static void m_copies_9 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 100, 9); }
static void m_copies_plus1 (uint8_t *b, const struct remap_sb *sb)
{ tl_put32 (b + 100, L_->copies + 1); }
static void m_copies_minus1 (uint8_t *b, const struct remap_sb *sb)
{ tl_put32 (b + 100, L_->copies - 1); tl_put32 (b + 76, 0); }
static void m_index_eq_copies (uint8_t *b, const struct remap_sb *sb)
{ tl_put32 (b + 76, L_->copies); }
static void m_index_huge (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 76, 0xffffffffu); }
static void m_spare_units_plus (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 80, L_->spare_units + 1); }
static void m_spare_units_minus (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 80, L_->spare_units - 1); }
static void m_spare_size_plus_unit (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 64, sb->spare_size + L_->unit); }
static void m_origin_units_plus (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 88, sb->origin_units + 1); }
static void m_origin_units_minus (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 88, sb->origin_units - 1); }
static void m_origin_size_0 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 56, 0); tl_put64 (b + 88, 0); }
static void m_origin_huge_ok (uint8_t *b, const struct remap_sb *sb)
{
  /* The largest origin a 64-bit size can describe, consistently. */
  tl_put64 (b + 56, UINT64_MAX);
  tl_put64 (b + 88, (UINT64_MAX - 1) / sb->layout.unit + 1);
}
static void m_strategy_0 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 96, 0); }
static void m_strategy_4 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 96, 4); }
static void m_strategy_other (uint8_t *b, const struct remap_sb *sb)
{ tl_put32 (b + 96, L_->strategy == 1 ? 2 : 1); }
static void m_offset_1_plus (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 136, L_->copy_offset[1] + 1); }
static void m_offset_0_nonzero (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 128, 1); }
static void m_offset_past_n (uint8_t *b, const struct remap_sb *sb)
{ if (L_->copies < 8) tl_put64 (b + 128 + 8 * L_->copies, 77);
  else tl_put64 (b + 128 + 56, L_->copy_offset[7] - 1); }
static void m_offsets_swapped (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 128, L_->copy_offset[1]); tl_put64 (b + 136, 0); }
static void m_copy_units (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 104, L_->copy_units + 1); }
static void m_table_blocks (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 112, L_->table_blocks - 1); }
static void m_epb (uint8_t *b, const struct remap_sb *sb)
{ tl_put32 (b + 120, L_->entries_per_block + 1); }
static void m_granule (uint8_t *b, const struct remap_sb *sb)
{ tl_put32 (b + 124, sb->lost_granule * 2); }
static void m_granule_0 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 124, 0); }
static void m_gen_0 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 200, 0); }
static void m_gen_top_bit (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 200, UINT64_C (1) << 63); }
static void m_gen_max (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 200, UINT64_MAX); }
static void m_gen_bound (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 200, REMAP_MAX_GENERATION); }
static void m_reserved_first (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; b[416] = 1; }
static void m_map_units_plus (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 272, L_->map_units + 1); }
static void m_map_units_0 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 272, 0); }
static void m_map_units_1 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 272, 1); }
static void m_pending_minus (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 280, L_->pending_blocks - 1); }
static void m_pending_plus (uint8_t *b, const struct remap_sb *sb)
{ tl_put64 (b + 280, L_->pending_blocks + 1); }
static void m_origin_id_unpadded (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; b[288] = 0; b[300] = 'z'; }
static void m_origin_id_v1 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; b[288] = 's'; }
static void m_version_other (uint8_t *b, const struct remap_sb *sb)
{ tl_put32 (b + 8, sb->version == 1 ? 2 : 1); }
static void m_reserved_last (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; b[507] = 0x80; }
static void m_header_size (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 12, 256); }
static void m_header_size_big (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 12, 4096); }
static void m_magic (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; b[7] = '2'; }
static void m_incompat_1 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 16, 1); }
static void m_incompat_63 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 16, UINT64_C (1) << 63); }
static void m_version_3 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 8, 3); }
static void m_version_0 (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 8, 0); }
static void m_version_huge (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put32 (b + 8, 0xffffffffu); }
static void m_compat_bit (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 24, UINT64_C (1) << 40); }
static void m_ro_compat_bit (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 32, 4); }
static void m_time (uint8_t *b, const struct remap_sb *sb)
{ (void) sb; tl_put64 (b + 192, 0); }
#undef L_

static const struct sbmut sbmuts[] = {
  { "unit 1000", -EUCLEAN, m_unit_1000, 0 },
  { "unit 256", -EUCLEAN, m_unit_256, 0 },
  { "unit 131072", -EUCLEAN, m_unit_128k, 0 },
  { "unit 0", -EUCLEAN, m_unit_0, 0 },
  { "unit valid but different", -EUCLEAN, m_unit_other, 0 },
  { "copies 0", -EUCLEAN, m_copies_0, 0 },
  { "copies 9", -EUCLEAN, m_copies_9, 0 },
  { "copies + 1", -EUCLEAN, m_copies_plus1, 0 },
  { "copies - 1", -EUCLEAN, m_copies_minus1, 0 },
  { "copy_index == copies", -EUCLEAN, m_index_eq_copies, 0 },
  { "copy_index 0xffffffff", -EUCLEAN, m_index_huge, 0 },
  { "spare_units + 1", -EUCLEAN, m_spare_units_plus, 0 },
  { "spare_units - 1", -EUCLEAN, m_spare_units_minus, 0 },
  { "spare_size + unit", -EUCLEAN, m_spare_size_plus_unit, 0 },
  { "origin_units + 1", -EUCLEAN, m_origin_units_plus, 0 },
  { "origin_units - 1", -EUCLEAN, m_origin_units_minus, 0 },
  { "origin_size 0", -EUCLEAN, m_origin_size_0, 0 },
  { "origin_size 2^64 - 1", 0, m_origin_huge_ok, 0 },
  { "strategy 0", -EUCLEAN, m_strategy_0, 0 },
  { "strategy 4", -EUCLEAN, m_strategy_4, 0 },
  { "strategy of another placement", -EUCLEAN, m_strategy_other, 0 },
  { "copy_offset[1] + 1", -EUCLEAN, m_offset_1_plus, 0 },
  { "copy_offset[0] != 0", -EUCLEAN, m_offset_0_nonzero, 0 },
  { "offset past n / wrong last", -EUCLEAN, m_offset_past_n, 0 },
  { "offsets swapped", -EUCLEAN, m_offsets_swapped, 0 },
  { "copy_units + 1", -EUCLEAN, m_copy_units, 0 },
  { "table_blocks - 1", -EUCLEAN, m_table_blocks, 0 },
  { "entries_per_block + 1", -EUCLEAN, m_epb, 0 },
  { "lost_granule * 2", -EUCLEAN, m_granule, 0 },
  { "lost_granule 0", -EUCLEAN, m_granule_0, 0 },
  { "sb_generation 0", -EUCLEAN, m_gen_0, 0 },
  { "sb_generation 2^63", -EUCLEAN, m_gen_top_bit, 0 },
  { "sb_generation 2^64 - 1", -EUCLEAN, m_gen_max, 0 },
  { "sb_generation 2^63 - 1", 0, m_gen_bound, 0 },
  { "reserved byte 416", -EUCLEAN, m_reserved_first, 0 },
  { "map_units + 1", -EUCLEAN, m_map_units_plus, 2 },
  { "map_units 0", -EUCLEAN, m_map_units_0, 2 },
  { "map_units 1 in version 1", -EUCLEAN, m_map_units_1, 1 },
  { "pending_blocks - 1", -EUCLEAN, m_pending_minus, 2 },
  { "pending_blocks + 1", -EUCLEAN, m_pending_plus, 0 },
  { "origin_id not NUL-padded", -EUCLEAN, m_origin_id_unpadded, 2 },
  { "origin_id in version 1", -EUCLEAN, m_origin_id_v1, 1 },
  { "the other version, same fields", -EUCLEAN, m_version_other, 0 },
  { "reserved byte 507", -EUCLEAN, m_reserved_last, 0 },
  { "header_size 256", -EUCLEAN, m_header_size, 0 },
  { "header_size 4096", -EUCLEAN, m_header_size_big, 0 },
  { "magic", -EUCLEAN, m_magic, 0 },
  { "incompat bit 0", -EOPNOTSUPP, m_incompat_1, 0 },
  { "incompat bit 63", -EOPNOTSUPP, m_incompat_63, 0 },
  { "version 3", -EOPNOTSUPP, m_version_3, 0 },
  { "version 0", -EOPNOTSUPP, m_version_0, 0 },
  { "version 0xffffffff", -EOPNOTSUPP, m_version_huge, 0 },
  /* Unknown compatible bits are ignored; unknown ro_compat bits are the
   * opener's business (read-only), not the decoder's. */
  { "compat bit", 0, m_compat_bit, 0 },
  { "ro_compat bit", 0, m_ro_compat_bit, 0 },
  { "format_time 0", 0, m_time, 0 },
};

START_TEST (test_sb_bogus_fields)
{
  const struct sbcase *c = CASE_OF (_i);
  struct remap_sb sb;
  mk_version = VERSION_OF (_i);
  sb_from_case (&sb, c, 0);

  for (size_t k = 0; k < sizeof sbmuts / sizeof sbmuts[0]; k++) {
    if (sbmuts[k].only && sbmuts[k].only != mk_version)
      continue;
    struct remap_sb out;
    struct remap_error err = { 0 };
    uint8_t *buf = encode_sb_heap (&sb);
    sbmuts[k].fn (buf, &sb);
    tl_sb_recrc (buf);
    int r = remap_sb_decode (buf, REMAP_SB_SIZE, &out, &err);
    ck_assert_msg (r == sbmuts[k].want,
                   "case %d (v%u %s, %u copies): '%s' decoded to %d, want "
                   "%d (%s)", _i, mk_version, remap_strategy_name (sb.layout.strategy),
                   sb.layout.copies, sbmuts[k].name, r, sbmuts[k].want,
                   err.msg);
    if (r)
      ck_assert_msg (err.msg[0] != '\0', "'%s': no message", sbmuts[k].name);
    free (buf);
  }
}
END_TEST

START_TEST (test_sb_truncated)
{
  struct remap_sb sb, out;
  sb_from_case (&sb, &sbcases[0], 0);
  uint8_t *full = encode_sb_heap (&sb);
  for (size_t len = 0; len < REMAP_SB_SIZE; len += len < 16 ? 1 : 61) {
    uint8_t *buf = malloc (len ? len : 1);
    memcpy (buf, full, len);
    ck_assert_int_eq (remap_sb_decode (buf, len, &out, NULL), -EUCLEAN);
    free (buf);
  }
  free (full);
}
END_TEST

/* ---- table blocks ------------------------------------------------------------ */

/* An sb whose last table block is partly past N (N % E != 0), with a few
 * origin units. */
static void
tb_sb (struct remap_sb *sb, uint32_t unit)
{
  uint64_t E = (unit - 64) / 16;
  /* Pick N with N % E != 0 and at least 3 table blocks. */
  uint64_t N = 3 * E + E / 2;
  if (N * unit < 512 * KiB)     /* keep it out of minimal: offsets differ */
    N = (512 * KiB / unit / E + 2) * E + E / 3;
  make_sb (sb, N * unit, unit, REMAP_STRATEGY_AUTO, 0, 1000 * (uint64_t) unit
           + 17, 0);
  ck_assert_uint_ne (sb->layout.spare_units % E, 0);
}

/* A block k of the table, with non-free entries where they are legal. */
static void
tb_entries (const struct remap_sb *sb, uint64_t k, struct remap_entry *e,
            uint64_t seed)
{
  const struct remap_layout *l = &sb->layout;
  uint32_t E = l->entries_per_block;
  uint32_t granules = l->unit / sb->lost_granule;
  uint64_t st = seed;
  memset (e, 0, E * sizeof *e);
  for (uint32_t j = 0; j < E; j++) {
    uint64_t slot = k * E + j;
    if (slot >= remap_layout_first_pending_slot (l)) {
      /* A pending-only place (version 2): PENDING or FREE only. */
      if (tl_below (&st, 2)) {
        e[j].state = REMAP_SLOT_PENDING;
        e[j].origin_unit = tl_below (&st, sb->origin_units);
      }
      continue;
    }
    if (slot >= l->spare_units || remap_layout_is_reserved (l, slot))
      continue;
    switch (tl_below (&st, 5)) {
    case 0: case 1:
      e[j].state = REMAP_SLOT_MAPPED;
      e[j].origin_unit = tl_below (&st, sb->origin_units);
      if (tl_below (&st, 3) == 0)
        e[j].lost = tl_rand (&st)
          & (granules >= 64 ? UINT64_MAX : (UINT64_C (1) << granules) - 1);
      break;
    case 2:
      e[j].state = REMAP_SLOT_PENDING;
      e[j].origin_unit = tl_below (&st, sb->origin_units);
      break;
    case 3:
      e[j].state = REMAP_SLOT_BAD;
      break;
    default:
      break;
    }
  }
}

static uint8_t *
encode_tb_heap (const struct remap_sb *sb, uint64_t k, uint64_t gen,
                uint64_t cursor, const struct remap_entry *e)
{
  struct remap_tb tb = { .generation = gen, .block_index = k,
                         .alloc_cursor = cursor };
  memcpy (tb.uuid, sb->uuid, 16);
  uint8_t *buf = malloc (sb->layout.unit);
  ck_assert_ptr_nonnull (buf);
  remap_tb_encode (&tb, e, sb->layout.entries_per_block, sb->layout.unit,
                   buf);
  return buf;
}

START_TEST (test_tb_round_trip)
{
  uint32_t unit = 512u << _i;
  struct remap_sb sb;
  tb_sb (&sb, unit);
  const struct remap_layout *l = &sb.layout;
  uint32_t E = l->entries_per_block;
  struct remap_entry *in = calloc (E, sizeof *in);
  struct remap_entry *out = calloc (E, sizeof *out);

  /* E fills the unit exactly: the format has no trailing bytes. */
  ck_assert_uint_eq (64 + (uint64_t) E * 16, unit);
  for (uint64_t k = 0; k < l->table_blocks; k++) {
    tb_entries (&sb, k, in, k + 1);
    uint8_t *buf = encode_tb_heap (&sb, k, 1000 + k, k % l->spare_units, in);
    struct remap_tb tb;
    struct remap_error err = { 0 };
    int r = remap_tb_decode (&sb, buf, unit, k, &tb, out, &err);
    ck_assert_msg (r == 0, "unit %u block %" PRIu64 ": %d %s", unit, k, r,
                   err.msg);
    ck_assert_uint_eq (tb.generation, 1000 + k);
    ck_assert_uint_eq (tb.block_index, k);
    ck_assert_uint_eq (tb.alloc_cursor, k % l->spare_units);
    ck_assert_mem_eq (tb.uuid, sb.uuid, 16);
    for (uint32_t j = 0; j < E; j++) {
      ck_assert_int_eq (out[j].state, in[j].state);
      ck_assert_uint_eq (out[j].origin_unit, in[j].origin_unit);
      ck_assert_uint_eq (out[j].lost, in[j].lost);
    }
    /* Bytes against the format table. */
    ck_assert_uint_eq (tl_get32 (buf), REMAP_TB_MAGIC);
    ck_assert_mem_eq (buf, "RMTB", 4);
    ck_assert_uint_eq (tl_get32 (buf + 4),
                       remap_crc32c (0, buf + 8, unit - 8));
    ck_assert_uint_eq (tl_get64 (buf + 8), 1000 + k);
    ck_assert_uint_eq (tl_get64 (buf + 16), k);
    ck_assert_uint_eq (tl_get32 (buf + 48), E);
    for (uint32_t j = 0; j < E; j++) {
      const uint8_t *p = buf + 64 + 16 * j;
      ck_assert_uint_eq (tl_get64 (p), ((uint64_t) in[j].state << 56)
                         | in[j].origin_unit);
      ck_assert_uint_eq (tl_get64 (p + 8), in[j].lost);
    }
    free (buf);
  }
  /* Fewer entries than E: the rest is written FREE. */
  tb_entries (&sb, 1, in, 77);
  uint8_t *buf = encode_tb_heap (&sb, 1, 5, 0, in);
  struct remap_tb tb0 = { .generation = 5, .block_index = 1 };
  memcpy (tb0.uuid, sb.uuid, 16);
  remap_tb_encode (&tb0, in, E / 2, unit, buf);
  ck_assert_int_eq (remap_tb_decode (&sb, buf, unit, 1, &tb0, out, NULL), 0);
  for (uint32_t j = E / 2; j < E; j++)
    ck_assert_int_eq (out[j].state, REMAP_SLOT_FREE);
  free (buf);
  free (in);
  free (out);
}
END_TEST

START_TEST (test_tb_bit_flips)
{
  uint32_t unit = _i == 0 ? 512 : 4096;
  struct remap_sb sb;
  tb_sb (&sb, unit);
  uint32_t E = sb.layout.entries_per_block;
  struct remap_entry *in = calloc (E, sizeof *in), *out = calloc (E,
                                                                  sizeof *out);
  tb_entries (&sb, 1, in, 3);
  uint8_t *buf = encode_tb_heap (&sb, 1, 42, 7, in);
  struct remap_tb tb;

  ck_assert_int_eq (remap_tb_decode (&sb, buf, unit, 1, &tb, out, NULL), 0);
  for (unsigned bit = 0; bit < unit * 8; bit++) {
    buf[bit / 8] ^= (uint8_t) (1u << (bit % 8));
    int r = remap_tb_decode (&sb, buf, unit, 1, &tb, out, NULL);
    REQ (r < 0, "unit %u: flip of bit %u accepted", unit, bit);
    REQ (r == -EBADMSG || r == -EUCLEAN, "unit %u bit %u: r %d", unit, bit,
         r);
    buf[bit / 8] ^= (uint8_t) (1u << (bit % 8));
  }
  ck_assert_int_eq (remap_tb_decode (&sb, buf, unit, 1, &tb, out, NULL), 0);
  free (buf);
  free (in);
  free (out);
}
END_TEST

/* Mutations of a table block; ctx gives the slots a test needs. */
struct tbctx {
  const struct remap_sb *sb;
  uint64_t k;                   /* block being mutated */
  uint32_t free_j;              /* a FREE entry of a usable slot */
  uint32_t reserved_j;          /* an entry whose slot is reserved (k = 0) */
  uint32_t past_j;              /* an entry past N (last real block) */
  uint32_t place_j;             /* v2: a pending-only place (BLK_PEND) */
};

static uint8_t *
entry_at (uint8_t *b, uint32_t j)
{
  return b + 64 + 16 * (size_t) j;
}

#define SB_ (c->sb)
static void t_index (uint8_t *b, const struct tbctx *c)
{ tl_put64 (b + 16, c->k + 1); }
static void t_index_huge (uint8_t *b, const struct tbctx *c)
{ (void) c; tl_put64 (b + 16, UINT64_MAX); }
static void t_gen_0 (uint8_t *b, const struct tbctx *c)
{ (void) c; tl_put64 (b + 8, 0); }
static void t_gen_top_bit (uint8_t *b, const struct tbctx *c)
{ (void) c; tl_put64 (b + 8, UINT64_C (1) << 63); }
static void t_gen_max (uint8_t *b, const struct tbctx *c)
{ (void) c; tl_put64 (b + 8, UINT64_MAX); }
static void t_gen_bound (uint8_t *b, const struct tbctx *c)
{ (void) c; tl_put64 (b + 8, REMAP_MAX_GENERATION); }
static void t_cursor_n (uint8_t *b, const struct tbctx *c)
{ tl_put64 (b + 24, SB_->layout.spare_units); }
static void t_cursor_max (uint8_t *b, const struct tbctx *c)
{ (void) c; tl_put64 (b + 24, UINT64_MAX); }
static void t_cursor_last (uint8_t *b, const struct tbctx *c)
{ tl_put64 (b + 24, SB_->layout.spare_units - 1); }
static void t_uuid (uint8_t *b, const struct tbctx *c)
{ (void) c; b[40] ^= 0x10; }
static void t_entries_field (uint8_t *b, const struct tbctx *c)
{ tl_put32 (b + 48, SB_->layout.entries_per_block + 1); }
static void t_reserved (uint8_t *b, const struct tbctx *c)
{ (void) c; b[63] = 1; }
static void t_magic (uint8_t *b, const struct tbctx *c)
{ (void) c; b[0] ^= 1; }
static void t_state (uint8_t *b, const struct tbctx *c, unsigned state)
{ tl_put64 (entry_at (b, c->free_j), ((uint64_t) state << 56) | 1); }
static void t_state_7 (uint8_t *b, const struct tbctx *c)
{ t_state (b, c, 7); }
static void t_state_4 (uint8_t *b, const struct tbctx *c)
{ t_state (b, c, 4); }
static void t_state_ff (uint8_t *b, const struct tbctx *c)
{ t_state (b, c, 0xff); }
static void t_mapped_origin (uint8_t *b, const struct tbctx *c, uint64_t o,
                             unsigned state)
{ tl_put64 (entry_at (b, c->free_j), ((uint64_t) state << 56) | o); }
static void t_mapped_oob (uint8_t *b, const struct tbctx *c)
{ t_mapped_origin (b, c, SB_->origin_units, REMAP_SLOT_MAPPED); }
static void t_mapped_max (uint8_t *b, const struct tbctx *c)
{ t_mapped_origin (b, c, REMAP_ENTRY_ORIGIN_MASK, REMAP_SLOT_MAPPED); }
static void t_mapped_last_ok (uint8_t *b, const struct tbctx *c)
{ t_mapped_origin (b, c, SB_->origin_units - 1, REMAP_SLOT_MAPPED); }
static void t_pending_oob (uint8_t *b, const struct tbctx *c)
{ t_mapped_origin (b, c, SB_->origin_units, REMAP_SLOT_PENDING); }
static void t_free_origin (uint8_t *b, const struct tbctx *c)
{ tl_put64 (entry_at (b, c->free_j), 5); }
static void t_free_lost (uint8_t *b, const struct tbctx *c)
{ tl_put64 (entry_at (b, c->free_j) + 8, 1); }
static void t_bad_origin (uint8_t *b, const struct tbctx *c)
{ t_mapped_origin (b, c, 9, REMAP_SLOT_BAD); }
static void t_bad_lost (uint8_t *b, const struct tbctx *c)
{ t_mapped_origin (b, c, 0, REMAP_SLOT_BAD);
  tl_put64 (entry_at (b, c->free_j) + 8, 1); }
static void t_bad_ok (uint8_t *b, const struct tbctx *c)
{ t_mapped_origin (b, c, 0, REMAP_SLOT_BAD); }
static void t_pending_lost (uint8_t *b, const struct tbctx *c)
{ t_mapped_origin (b, c, 3, REMAP_SLOT_PENDING);
  tl_put64 (entry_at (b, c->free_j) + 8, 1); }
/* With 64 granules (unit 65536) every mask bit is inside the unit: then the
 * "past the unit" case degenerates to an always-bad pending-with-lost. */
static void t_lost_past_unit (uint8_t *b, const struct tbctx *c)
{
  uint32_t granules = SB_->layout.unit / SB_->lost_granule;
  if (granules >= 64) {
    t_mapped_origin (b, c, 3, REMAP_SLOT_PENDING);
    tl_put64 (entry_at (b, c->free_j) + 8, UINT64_MAX);
    return;
  }
  t_mapped_origin (b, c, 3, REMAP_SLOT_MAPPED);
  tl_put64 (entry_at (b, c->free_j) + 8, UINT64_C (1) << granules);
}
static void t_lost_all_ok (uint8_t *b, const struct tbctx *c)
{
  uint32_t granules = SB_->layout.unit / SB_->lost_granule;
  t_mapped_origin (b, c, 3, REMAP_SLOT_MAPPED);
  tl_put64 (entry_at (b, c->free_j) + 8, granules >= 64 ? UINT64_MAX
            : (UINT64_C (1) << granules) - 1);
}
static void t_reserved_mapped (uint8_t *b, const struct tbctx *c)
{ tl_put64 (entry_at (b, c->reserved_j), ((uint64_t) 1 << 56) | 2); }
static void t_reserved_bad (uint8_t *b, const struct tbctx *c)
{ tl_put64 (entry_at (b, c->reserved_j), (uint64_t) 3 << 56); }
static void t_past_mapped (uint8_t *b, const struct tbctx *c)
{ tl_put64 (entry_at (b, c->past_j), ((uint64_t) 1 << 56) | 2); }
static void t_past_bad (uint8_t *b, const struct tbctx *c)
{ tl_put64 (entry_at (b, c->past_j), (uint64_t) 3 << 56); }
static void t_past_pending (uint8_t *b, const struct tbctx *c)
{ tl_put64 (entry_at (b, c->past_j), ((uint64_t) 2 << 56) | 2); }
/* Entry 0 of a pending-only block (version 2): no spare unit behind it. */
static void t_place (uint8_t *b, const struct tbctx *c, unsigned state,
                     uint64_t o, uint64_t lost)
{ tl_put64 (entry_at (b, c->place_j), ((uint64_t) state << 56) | o);
  tl_put64 (entry_at (b, c->place_j) + 8, lost); }
static void t_place_pending (uint8_t *b, const struct tbctx *c)
{ t_place (b, c, REMAP_SLOT_PENDING, SB_->origin_units - 1, 0); }
static void t_place_mapped (uint8_t *b, const struct tbctx *c)
{ t_place (b, c, REMAP_SLOT_MAPPED, 2, 0); }
static void t_place_bad (uint8_t *b, const struct tbctx *c)
{ t_place (b, c, REMAP_SLOT_BAD, 0, 0); }
static void t_place_lost (uint8_t *b, const struct tbctx *c)
{ t_place (b, c, REMAP_SLOT_PENDING, 2, 1); }
static void t_place_oob (uint8_t *b, const struct tbctx *c)
{ t_place (b, c, REMAP_SLOT_PENDING, SB_->origin_units, 0); }
static void t_place_free_origin (uint8_t *b, const struct tbctx *c)
{ t_place (b, c, REMAP_SLOT_FREE, 4, 0); }
static void t_place_free (uint8_t *b, const struct tbctx *c)
{ t_place (b, c, REMAP_SLOT_FREE, 0, 0); }
#undef SB_

/* BLK_LAST: the last block of spare units (Tr - 1); BLK_PEND (version 2
 * only): the block of the last pending-only place (slots from N on). */
enum which { BLK_MID, BLK_FIRST, BLK_LAST, BLK_PEND };

/* want: 0 or an error; WANT_V1_BAD: valid in version 2, -EUCLEAN in 1. */
#define WANT_V1_BAD 1

struct tbmut {
  const char *name;
  int want;
  enum which blk;
  void (*fn) (uint8_t *b, const struct tbctx *c);
};

static const struct tbmut tbmuts[] = {
  { "block_index + 1", -EUCLEAN, BLK_MID, t_index },
  { "block_index huge", -EUCLEAN, BLK_MID, t_index_huge },
  { "generation 0", -EUCLEAN, BLK_MID, t_gen_0 },
  { "generation 2^63 (implausible)", -EUCLEAN, BLK_MID, t_gen_top_bit },
  { "generation 2^64 - 1 (implausible)", -EUCLEAN, BLK_MID, t_gen_max },
  { "generation 2^63 - 1 (the bound)", 0, BLK_MID, t_gen_bound },
  { "cursor == N", -EUCLEAN, BLK_MID, t_cursor_n },
  { "cursor UINT64_MAX", -EUCLEAN, BLK_MID, t_cursor_max },
  { "cursor N - 1", 0, BLK_MID, t_cursor_last },
  { "uuid", -EUCLEAN, BLK_MID, t_uuid },
  { "entries field", -EUCLEAN, BLK_MID, t_entries_field },
  { "reserved header byte", -EUCLEAN, BLK_MID, t_reserved },
  { "magic", -EUCLEAN, BLK_MID, t_magic },
  { "entry state 7", -EUCLEAN, BLK_MID, t_state_7 },
  { "entry state 4", -EUCLEAN, BLK_MID, t_state_4 },
  { "entry state 0xff", -EUCLEAN, BLK_MID, t_state_ff },
  { "mapped origin == origin_units", -EUCLEAN, BLK_MID, t_mapped_oob },
  { "mapped origin 2^56 - 1", -EUCLEAN, BLK_MID, t_mapped_max },
  { "mapped origin origin_units - 1", 0, BLK_MID, t_mapped_last_ok },
  { "pending origin == origin_units", -EUCLEAN, BLK_MID, t_pending_oob },
  { "free entry with origin", -EUCLEAN, BLK_MID, t_free_origin },
  { "free entry with lost", -EUCLEAN, BLK_MID, t_free_lost },
  { "bad entry with origin", -EUCLEAN, BLK_MID, t_bad_origin },
  { "bad entry with lost", -EUCLEAN, BLK_MID, t_bad_lost },
  { "bad entry clean", 0, BLK_MID, t_bad_ok },
  { "pending entry with lost", -EUCLEAN, BLK_MID, t_pending_lost },
  { "lost mask past the unit", -EUCLEAN, BLK_MID, t_lost_past_unit },
  { "lost mask whole unit", 0, BLK_MID, t_lost_all_ok },
  { "mapped entry for a reserved unit", -EUCLEAN, BLK_FIRST,
    t_reserved_mapped },
  { "bad entry for a reserved unit", -EUCLEAN, BLK_FIRST, t_reserved_bad },
  { "mapped entry past N", -EUCLEAN, BLK_LAST, t_past_mapped },
  { "bad entry past N", -EUCLEAN, BLK_LAST, t_past_bad },
  /* Version 2: the slots from N on are pending-only places. */
  { "pending entry past N", WANT_V1_BAD, BLK_LAST, t_past_pending },
  { "pending in a pending-only place", 0, BLK_PEND, t_place_pending },
  { "free pending-only place", 0, BLK_PEND, t_place_free },
  { "mapped in a pending-only place", -EUCLEAN, BLK_PEND, t_place_mapped },
  { "bad in a pending-only place", -EUCLEAN, BLK_PEND, t_place_bad },
  { "pending-only place with lost", -EUCLEAN, BLK_PEND, t_place_lost },
  { "pending-only place, origin == origin_units", -EUCLEAN, BLK_PEND,
    t_place_oob },
  { "free pending-only place with origin", -EUCLEAN, BLK_PEND,
    t_place_free_origin },
};

/* _i: unit 512 << (_i % 8), version 2 then (_i >= 8) version 1. */
START_TEST (test_tb_bogus_fields)
{
  uint32_t unit = 512u << (_i % 8);
  mk_version = _i >= 8 ? 1 : 2;
  struct remap_sb sb;
  tb_sb (&sb, unit);
  const struct remap_layout *l = &sb.layout;
  uint32_t E = l->entries_per_block;
  struct remap_entry *in = calloc (E, sizeof *in), *out = calloc (E,
                                                                  sizeof *out);

  for (size_t m = 0; m < sizeof tbmuts / sizeof tbmuts[0]; m++) {
    struct tbctx c = { .sb = &sb };
    if (tbmuts[m].blk == BLK_PEND && l->version < 2)
      continue;
    c.k = tbmuts[m].blk == BLK_FIRST ? 0
      : tbmuts[m].blk == BLK_LAST ? l->real_blocks - 1
      : tbmuts[m].blk == BLK_PEND ? l->table_blocks - 1 : 1;
    ck_assert_uint_lt (c.k, l->table_blocks);
    c.place_j = E - 1;          /* the last place of the table */
    int want = tbmuts[m].want;
    if (want == WANT_V1_BAD)
      want = l->version < 2 ? -EUCLEAN : 0;
    tb_entries (&sb, c.k, in, m);
    /* A free, usable slot in block k for entry mutations. */
    c.free_j = UINT32_MAX;
    for (uint32_t j = 0; j < E; j++) {
      uint64_t s = c.k * E + j;
      if (s < l->spare_units && !remap_layout_is_reserved (l, s)) {
        memset (&in[j], 0, sizeof in[j]);
        c.free_j = j;
        break;
      }
    }
    c.reserved_j = 0;           /* slot 0: copy 0's superblock */
    c.past_j = (uint32_t) (l->spare_units % E);
    ck_assert (remap_layout_is_reserved (l, 0));
    if (tbmuts[m].blk == BLK_MID)
      ck_assert_uint_ne (c.free_j, UINT32_MAX);

    uint8_t *buf = encode_tb_heap (&sb, c.k, 9, 1, in);
    tbmuts[m].fn (buf, &c);
    tl_tb_recrc (buf, unit);
    struct remap_tb tb;
    struct remap_error err = { 0 };
    int r = remap_tb_decode (&sb, buf, unit, c.k, &tb, out, &err);
    ck_assert_msg (r == want, "v%u unit %u: '%s' decoded to %d, want "
                   "%d (%s)", l->version, unit, tbmuts[m].name, r, want,
                   err.msg);
    if (r)
      ck_assert_msg (err.msg[0] != '\0', "'%s': no message", tbmuts[m].name);
    free (buf);
  }

  /* Decoding a good block as another index. */
  tb_entries (&sb, 1, in, 1);
  uint8_t *buf = encode_tb_heap (&sb, 1, 9, 1, in);
  struct remap_tb tb;
  ck_assert_int_eq (remap_tb_decode (&sb, buf, unit, 1, &tb, out, NULL), 0);
  ck_assert_int_eq (remap_tb_decode (&sb, buf, unit, 2, &tb, out, NULL),
                    -EUCLEAN);
  ck_assert_int_eq (remap_tb_decode (&sb, buf, unit, 0, &tb, out, NULL),
                    -EUCLEAN);
  /* Truncated. */
  ck_assert_int_eq (remap_tb_decode (&sb, buf, unit - 1, 1, &tb, out, NULL),
                    -EUCLEAN);
  ck_assert_int_eq (remap_tb_decode (&sb, buf, 0, 1, &tb, out, NULL),
                    -EUCLEAN);
  /* A block index past T, consistently claimed. */
  tl_put64 (buf + 16, l->table_blocks);
  tl_tb_recrc (buf, unit);
  ck_assert_int_eq (remap_tb_decode (&sb, buf, unit, l->table_blocks, &tb,
                                     out, NULL), -EUCLEAN);
  free (buf);
  free (in);
  free (out);
}
END_TEST

/* ---- map units (version 2) ------------------------------------------------- */

/* Round trip, bytes against the format table, every bit flip rejected,
 * and each field set wrong with the CRC redone.  A spare with more than
 * one map unit (unit 512: B = 3584 blocks) so that the last one is
 * partial. */
START_TEST (test_map_codec)
{
  uint32_t unit = _i == 0 ? 512 : 4096;
  struct remap_sb sb;
  mk_version = 2;
  uint64_t bytes = unit == 512 ? 300 * MiB : 64 * MiB;
  make_sb (&sb, bytes, unit, REMAP_STRATEGY_AUTO, 0, 1 * MiB, 0);
  const struct remap_layout *l = &sb.layout;
  uint64_t B = remap_layout_blocks_per_map (l);
  ck_assert_uint_eq (B, (uint64_t) (unit - 64) * 8);
  if (unit == 512)
    ck_assert_uint_ge (l->map_units, 2);
  uint8_t *bits = calloc (1, unit), *got = calloc (1, unit);
  uint8_t *buf = malloc (unit);
  uint64_t st = 0x3a9 + _i;

  for (uint64_t m = 0; m < l->map_units; m++) {
    uint64_t n = l->table_blocks - m * B < B ? l->table_blocks - m * B : B;
    tl_random_bytes (&st, bits, unit);  /* bits past n must be dropped */
    struct remap_mapu h = { .generation = 77 + m, .map_index = m }, o;
    remap_map_encode (&sb, &h, bits, buf);
    ck_assert_uint_eq (tl_get32 (buf), REMAP_MAP_MAGIC);
    ck_assert_mem_eq (buf, "RMBM", 4);
    ck_assert_uint_eq (tl_get32 (buf + 4), remap_crc32c (0, buf + 8,
                                                         unit - 8));
    ck_assert_uint_eq (tl_get64 (buf + 8), 77 + m);
    ck_assert_uint_eq (tl_get64 (buf + 16), m);
    ck_assert_mem_eq (buf + 24, sb.uuid, 16);
    ck_assert_uint_eq (tl_get64 (buf + 40), n);
    for (int i = 48; i < 64; i++)
      ck_assert_uint_eq (buf[i], 0);
    for (uint64_t k = 0; k < (uint64_t) (unit - 64) * 8; k++) {
      int want = k < n ? (bits[k / 8] >> (k % 8)) & 1 : 0;
      REQ (((buf[64 + k / 8] >> (k % 8)) & 1) == want, "map %" PRIu64
           " bit %" PRIu64, m, k);
    }
    memset (got, 0, unit);
    struct remap_error err = { 0 };
    ck_assert_msg (remap_map_decode (&sb, buf, unit, m, &o, got, &err) == 0,
                   "map %" PRIu64 ": %s", m, err.msg);
    ck_assert_uint_eq (o.generation, 77 + m);
    ck_assert_uint_eq (o.map_index, m);
    for (uint64_t k = 0; k < n; k++)
      REQ (((got[k / 8] >> (k % 8)) & 1) == ((bits[k / 8] >> (k % 8)) & 1),
           "decoded bit %" PRIu64, k);
    /* As another index, truncated, against a version 1 superblock. */
    ck_assert_int_eq (remap_map_decode (&sb, buf, unit, m + 1, &o, got,
                                        NULL), -EUCLEAN);
    ck_assert_int_eq (remap_map_decode (&sb, buf, unit - 1, m, &o, got,
                                        NULL), -EUCLEAN);
  }
  struct remap_sb sb1;
  mk_version = 1;
  make_sb (&sb1, bytes, unit, REMAP_STRATEGY_AUTO, 0, 1 * MiB, 0);
  struct remap_mapu h0 = { .generation = 5, .map_index = 0 }, o;
  memset (bits, 0, unit);
  bits[0] = 0x5;
  remap_map_encode (&sb, &h0, bits, buf);
  ck_assert_int_eq (remap_map_decode (&sb1, buf, unit, 0, &o, got, NULL),
                    -EUCLEAN);

  /* Every bit flip of a valid map unit is rejected. */
  ck_assert_int_eq (remap_map_decode (&sb, buf, unit, 0, &o, got, NULL), 0);
  for (unsigned bit = 0; bit < unit * 8; bit++) {
    buf[bit / 8] ^= (uint8_t) (1u << (bit % 8));
    int r = remap_map_decode (&sb, buf, unit, 0, &o, got, NULL);
    REQ (r == -EBADMSG || r == -EUCLEAN, "unit %u: map bit flip %u: r %d",
         unit, bit, r);
    buf[bit / 8] ^= (uint8_t) (1u << (bit % 8));
  }
  /* Fields, CRC redone. */
  uint64_t last = l->map_units - 1;
  uint64_t nlast = l->table_blocks - last * B;
  for (int f = 0; f < 9; f++) {
    struct remap_mapu h = { .generation = 5, .map_index = last };
    remap_map_encode (&sb, &h, bits, buf);
    int want = -EUCLEAN;
    switch (f) {
    case 0: buf[0] ^= 1; break;                         /* magic */
    case 1: tl_put64 (buf + 8, 0); break;               /* generation 0 */
    case 2: tl_put64 (buf + 8, UINT64_C (1) << 63); break;
    case 3: tl_put64 (buf + 16, last + 1); break;       /* index */
    case 4: buf[24] ^= 0x40; break;                     /* uuid */
    case 5: tl_put64 (buf + 40, nlast + 1); break;      /* blocks */
    case 6: buf[48] = 1; break;                         /* reserved */
    case 7:                                             /* bit past n */
      if (nlast < (uint64_t) (unit - 64) * 8)
        buf[64 + nlast / 8] |= (uint8_t) (1u << (nlast % 8));
      else
        want = 0;
      break;
    default: tl_put64 (buf + 8, REMAP_MAX_GENERATION); want = 0; break;
    }
    tl_tb_recrc (buf, unit);    /* same CRC rule as a table block */
    struct remap_error err = { 0 };
    int r = remap_map_decode (&sb, buf, unit, last, &o, got, &err);
    ck_assert_msg (r == want, "unit %u map field case %d: %d want %d (%s)",
                   unit, f, r, want, err.msg);
  }
  free (bits);
  free (got);
  free (buf);
}
END_TEST

/* ---- seeded garbage with valid checksums ----------------------------------- */

START_TEST (test_sb_random_garbage)
{
  uint64_t seed = 0x5eed0001, st = seed;
  int accepted = 0;

  for (int it = 0; it < 20000; it++) {
    struct remap_sb sb, out;
    sb_from_case (&sb, &sbcases[tl_below (&st, NSBCASES)], 0);
    uint8_t *buf = encode_sb_heap (&sb);
    /* A few random byte or bit edits anywhere but the label. */
    int edits = 1 + (int) tl_below (&st, 4);
    for (int k = 0; k < edits; k++) {
      size_t at;
      do
        at = 8 + tl_below (&st, 500);
      while (at >= 208 && at < 272);
      if (tl_below (&st, 2))
        buf[at] ^= (uint8_t) (1u << tl_below (&st, 8));
      else
        buf[at] = (uint8_t) tl_rand (&st);
    }
    tl_sb_recrc (buf);
    int r = remap_sb_decode (buf, REMAP_SB_SIZE, &out, NULL);
    REQ (r == 0 || r == -EUCLEAN || r == -EOPNOTSUPP,
         "seed %#" PRIx64 " it %d: r %d", seed, it, r);
    if (r == 0) {
      /* What decodes re-encodes to the same bytes. */
      uint8_t again[REMAP_SB_SIZE];
      remap_sb_encode (&out, again);
      REQ (memcmp (again, buf, REMAP_SB_SIZE) == 0,
           "seed %#" PRIx64 " it %d: decode/encode not canonical", seed, it);
      accepted++;
    }
    free (buf);
  }
  ck_assert_int_gt (accepted, 0);       /* some edits are harmless */
}
END_TEST

START_TEST (test_tb_random_garbage)
{
  uint64_t seed = 0x5eed0002 + _i, st = seed;
  uint32_t unit = _i == 0 ? 512 : 4096;
  struct remap_sb sb;
  tb_sb (&sb, unit);
  uint32_t E = sb.layout.entries_per_block;
  struct remap_entry *in = calloc (E, sizeof *in), *out = calloc (E,
                                                                  sizeof *out);
  int accepted = 0;

  for (int it = 0; it < 3000; it++) {
    uint64_t k = tl_below (&st, sb.layout.table_blocks);
    tb_entries (&sb, k, in, tl_rand (&st));
    uint8_t *buf = encode_tb_heap (&sb, k, 1 + tl_below (&st, 100),
                                   tl_below (&st, sb.layout.spare_units), in);
    int edits = 1 + (int) tl_below (&st, 3);
    for (int x = 0; x < edits; x++) {
      size_t at = 8 + tl_below (&st, unit - 8);
      if (tl_below (&st, 2))
        buf[at] ^= (uint8_t) (1u << tl_below (&st, 8));
      else
        buf[at] = (uint8_t) tl_rand (&st);
    }
    tl_tb_recrc (buf, unit);
    struct remap_tb tb;
    int r = remap_tb_decode (&sb, buf, unit, k, &tb, out, NULL);
    REQ (r == 0 || r == -EUCLEAN, "seed %#" PRIx64 " it %d: r %d", seed, it,
         r);
    if (r == 0) {
      uint8_t *again = malloc (unit);
      remap_tb_encode (&tb, out, E, unit, again);
      REQ (memcmp (again, buf, unit) == 0,
           "seed %#" PRIx64 " it %d: decode/encode not canonical", seed, it);
      free (again);
      accepted++;
    }
    free (buf);
  }
  ck_assert_int_gt (accepted, 0);
  free (in);
  free (out);
}
END_TEST

static Suite *
meta_suite (void)
{
  Suite *s = suite_create ("meta");
  TCase *valid = tcase_create ("valid");
  TCase *flips = tcase_create ("flips");
  TCase *bogus = tcase_create ("bogus");

  tcase_set_timeout (flips, 300);
  tcase_set_timeout (bogus, 300);
  tcase_add_test (valid, test_crc_known_answers);
  tcase_add_loop_test (valid, test_sb_round_trip, 0, 2 * NSBCASES);
  tcase_add_test (valid, test_sb_label_full_width);
  tcase_add_loop_test (valid, test_tb_round_trip, 0, 8);
  tcase_add_loop_test (flips, test_sb_bit_flips, 0, NSBCASES);
  tcase_add_loop_test (flips, test_tb_bit_flips, 0, 2);
  tcase_add_loop_test (bogus, test_sb_bogus_fields, 0, 2 * NSBCASES);
  tcase_add_test (bogus, test_sb_truncated);
  tcase_add_loop_test (bogus, test_tb_bogus_fields, 0, 16);
  tcase_add_test (bogus, test_sb_random_garbage);
  tcase_add_loop_test (bogus, test_tb_random_garbage, 0, 2);
  tcase_add_loop_test (bogus, test_map_codec, 0, 2);
  suite_add_tcase (s, valid);
  suite_add_tcase (s, flips);
  suite_add_tcase (s, bogus);
  return s;
}

int
main (void)
{
  return tl_run (meta_suite ());
}
