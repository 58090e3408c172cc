/* remap: metadata codec.
 *
 * Encodes and decodes the two on-disk structures of docs/FORMAT.md: the
 * superblock (512 bytes at the start of every copy) and the table block (one
 * unit: a 64-byte header and E 16-byte entries).  Every integer is converted
 * explicitly from and to little-endian, so the code is endian-neutral.
 *
 * Decoders trust nothing: every count, offset and size is checked against
 * the format's constraints before use, and a bad value yields -EUCLEAN with
 * a message, never an assert and never an access outside the buffer.  A
 * superblock's geometry must equal what remap_layout_compute derives from
 * its spare size, unit, strategy and copy count, so a reader and a writer
 * can never disagree on where the copies are.
 */
#include <errno.h>
#include <string.h>

#include "remap/meta.h"

/* ---- little-endian helpers ------------------------------------------- */

static inline void
put32 (uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

static inline void
put64 (uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

static inline uint32_t
get32 (const uint8_t *p)
{
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static inline uint64_t
get64 (const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

#define SB(field) offsetof (struct remap_sb_disk, field)
#define TB(field) offsetof (struct remap_tb_disk, field)

bool
remap_all_zero (const void *buf, size_t n)
{
  const uint8_t *p = buf;
  return n == 0 || (p[0] == 0 && memcmp (p, p + 1, n - 1) == 0);
}

uint32_t
remap_lost_granule (uint32_t unit)
{
  return unit / 64 > 512 ? unit / 64 : 512;
}

/* ---- superblock ------------------------------------------------------ */

void
remap_sb_encode (const struct remap_sb *sb, uint8_t buf[REMAP_SB_SIZE])
{
  const struct remap_layout *l = &sb->layout;

  memset (buf, 0, REMAP_SB_SIZE);
  memcpy (buf + SB (magic), REMAP_SB_MAGIC, 8);
  put32 (buf + SB (version), sb->version ? sb->version : REMAP_SB_VERSION);
  put32 (buf + SB (header_size), REMAP_SB_SIZE);
  put64 (buf + SB (incompat), sb->incompat);
  put64 (buf + SB (compat), sb->compat);
  put64 (buf + SB (ro_compat), sb->ro_compat);
  memcpy (buf + SB (uuid), sb->uuid, 16);
  put64 (buf + SB (origin_size), sb->origin_size);
  put64 (buf + SB (spare_size), sb->spare_size);
  put32 (buf + SB (unit), l->unit);
  put32 (buf + SB (copy_index), sb->copy_index);
  put64 (buf + SB (spare_units), l->spare_units);
  put64 (buf + SB (origin_units), sb->origin_units);
  put32 (buf + SB (strategy), (uint32_t) l->strategy);
  put32 (buf + SB (copies), l->copies);
  put64 (buf + SB (copy_units), l->copy_units);
  put64 (buf + SB (table_blocks), l->table_blocks);
  put32 (buf + SB (entries_per_block), l->entries_per_block);
  put32 (buf + SB (lost_granule), sb->lost_granule);
  for (uint32_t i = 0; i < l->copies && i < REMAP_MAX_COPIES; i++)
    put64 (buf + SB (copy_offset) + 8 * i, l->copy_offset[i]);
  put64 (buf + SB (format_time), sb->format_time);
  put64 (buf + SB (sb_generation), sb->sb_generation);
  size_t ll = strnlen (sb->origin_label, REMAP_LABEL_SIZE);
  memcpy (buf + SB (origin_label), sb->origin_label, ll);
  if (sb->version != REMAP_SB_VERSION_1) {
    put64 (buf + SB (map_units), l->map_units);
    put64 (buf + SB (pending_blocks), l->pending_blocks);
    size_t il = strnlen (sb->origin_id, REMAP_ORIGIN_ID_SIZE);
    memcpy (buf + SB (origin_id), sb->origin_id, il);
  }
  put32 (buf + SB (crc), remap_crc32c (0, buf, SB (crc)));
}

static int
sb_bad (struct remap_error *err, const char *what)
{
  return remap_set_error (err, -EUCLEAN, "superblock: %s", what);
}

int
remap_sb_decode (const uint8_t *buf, size_t len, struct remap_sb *sb,
                 struct remap_error *err)
{
  if (len < REMAP_SB_SIZE)
    return sb_bad (err, "truncated");
  if (memcmp (buf + SB (magic), REMAP_SB_MAGIC, 8) != 0)
    return sb_bad (err, "no remap magic");
  uint32_t crc = get32 (buf + SB (crc));
  if (crc != remap_crc32c (0, buf, SB (crc)))
    return remap_set_error (err, -EBADMSG,
                            "superblock: checksum mismatch (stored %08x)",
                            crc);

  memset (sb, 0, sizeof *sb);
  sb->version = get32 (buf + SB (version));
  if (sb->version != REMAP_SB_VERSION && sb->version != REMAP_SB_VERSION_1)
    return remap_set_error (err, -EOPNOTSUPP,
                            "superblock: format version %u is not supported "
                            "(this remap reads versions 1 and %u); use a "
                            "newer remap", sb->version, REMAP_SB_VERSION);
  if (get32 (buf + SB (header_size)) != REMAP_SB_SIZE)
    return sb_bad (err, "bad header size");
  sb->incompat = get64 (buf + SB (incompat));
  sb->compat = get64 (buf + SB (compat));
  sb->ro_compat = get64 (buf + SB (ro_compat));
  if (sb->incompat & ~REMAP_INCOMPAT_KNOWN)
    return remap_set_error (err, -EOPNOTSUPP,
                            "superblock: unknown incompatible features "
                            "0x%llx; use a newer remap",
                            (unsigned long long) (sb->incompat
                                                  & ~REMAP_INCOMPAT_KNOWN));
  memcpy (sb->uuid, buf + SB (uuid), 16);
  sb->origin_size = get64 (buf + SB (origin_size));
  sb->spare_size = get64 (buf + SB (spare_size));
  uint32_t unit = get32 (buf + SB (unit));
  sb->copy_index = get32 (buf + SB (copy_index));
  uint64_t N = get64 (buf + SB (spare_units));
  sb->origin_units = get64 (buf + SB (origin_units));
  uint32_t strategy = get32 (buf + SB (strategy));
  uint32_t copies = get32 (buf + SB (copies));
  sb->lost_granule = get32 (buf + SB (lost_granule));
  sb->format_time = get64 (buf + SB (format_time));
  sb->sb_generation = get64 (buf + SB (sb_generation));
  memcpy (sb->origin_label, buf + SB (origin_label), REMAP_LABEL_SIZE);
  sb->origin_label[REMAP_LABEL_SIZE] = '\0';

  if (!remap_unit_valid (unit))
    return sb_bad (err, "bad unit size");
  if (N != sb->spare_size / unit)
    return sb_bad (err, "spare units do not match the spare size");
  if (sb->origin_size == 0
      || sb->origin_units != (sb->origin_size - 1) / unit + 1
      || sb->origin_units > REMAP_MAX_ORIGIN_UNITS)
    return sb_bad (err, "origin units do not match the origin size");
  if (strategy < REMAP_STRATEGY_MINIMAL || strategy > REMAP_STRATEGY_GEOMETRIC)
    return sb_bad (err, "unknown placement strategy");
  if (copies < REMAP_MIN_COPIES || copies > REMAP_MAX_COPIES)
    return sb_bad (err, "copy count out of range (2 to 8)");
  if (sb->copy_index >= copies)
    return sb_bad (err, "copy index out of range");
  if (sb->lost_granule != remap_lost_granule (unit))
    return sb_bad (err, "bad lost granule");
  if (sb->sb_generation == 0)
    return sb_bad (err, "zero generation");
  if (sb->sb_generation > REMAP_MAX_GENERATION)
    return sb_bad (err, "implausible generation (above 2^63 - 1)");
  if (!remap_all_zero (buf + SB (reserved), sizeof ((struct remap_sb_disk *) 0)
                 ->reserved))
    return sb_bad (err, "reserved bytes are not zero");
  if (sb->version == REMAP_SB_VERSION_1
      && !remap_all_zero (buf + SB (map_units), SB (reserved) - SB (map_units)))
    return sb_bad (err, "version 1 superblock with version 2 fields");
  size_t il = strnlen ((const char *) buf + SB (origin_id),
                       REMAP_ORIGIN_ID_SIZE);
  if (!remap_all_zero (buf + SB (origin_id) + il, REMAP_ORIGIN_ID_SIZE - il))
    return sb_bad (err, "origin identity is not NUL-padded");
  memcpy (sb->origin_id, buf + SB (origin_id), REMAP_ORIGIN_ID_SIZE);
  sb->origin_id[REMAP_ORIGIN_ID_SIZE] = '\0';
  size_t ll = strnlen ((const char *) buf + SB (origin_label),
                       REMAP_LABEL_SIZE);
  if (!remap_all_zero (buf + SB (origin_label) + ll, REMAP_LABEL_SIZE - ll))
    return sb_bad (err, "origin label is not NUL-padded");

  struct remap_layout *l = &sb->layout;
  if (remap_layout_compute_version (sb->version, N * unit, unit,
                                    (enum remap_strategy) strategy, copies, l,
                                    NULL) != 0)
    return sb_bad (err, "geometry is impossible for its size");
  if (get64 (buf + SB (copy_units)) != l->copy_units
      || get64 (buf + SB (table_blocks)) != l->table_blocks
      || get32 (buf + SB (entries_per_block)) != l->entries_per_block
      || get64 (buf + SB (map_units)) != l->map_units
      || get64 (buf + SB (pending_blocks)) != l->pending_blocks)
    return sb_bad (err, "geometry does not match the placement rules");
  for (uint32_t i = 0; i < REMAP_MAX_COPIES; i++) {
    uint64_t off = get64 (buf + SB (copy_offset) + 8 * i);
    if (off != (i < copies ? l->copy_offset[i] : 0))
      return sb_bad (err, "copy offsets do not match the placement rules");
  }
  return 0;
}

/* ---- table blocks ---------------------------------------------------- */

static uint64_t
entry_word (const struct remap_entry *e)
{
  return ((uint64_t) e->state << REMAP_ENTRY_STATE_SHIFT)
    | (e->origin_unit & REMAP_ENTRY_ORIGIN_MASK);
}

void
remap_tb_encode (const struct remap_tb *tb, const struct remap_entry *e,
                 uint32_t n, uint32_t unit, uint8_t *buf)
{
  uint32_t E = (unit - REMAP_TB_HEADER_SIZE) / REMAP_ENTRY_SIZE;

  memset (buf, 0, unit);
  put32 (buf + TB (magic), REMAP_TB_MAGIC);
  put64 (buf + TB (generation), tb->generation);
  put64 (buf + TB (block_index), tb->block_index);
  put64 (buf + TB (alloc_cursor), tb->alloc_cursor);
  memcpy (buf + TB (uuid), tb->uuid, 16);
  put32 (buf + TB (entries), E);
  for (uint32_t j = 0; j < n && j < E; j++) {
    uint8_t *p = buf + REMAP_TB_HEADER_SIZE + (size_t) j * REMAP_ENTRY_SIZE;
    if (e[j].state == REMAP_SLOT_FREE)
      continue;
    put64 (p, entry_word (&e[j]));
    put64 (p + 8, e[j].lost);
  }
  put32 (buf + TB (crc), remap_crc32c (0, buf + 8, unit - 8));
}

static int
tb_bad (struct remap_error *err, uint64_t k, const char *what, uint64_t slot)
{
  if (slot == UINT64_MAX)
    return remap_set_error (err, -EUCLEAN, "table block %llu: %s",
                            (unsigned long long) k, what);
  return remap_set_error (err, -EUCLEAN, "table block %llu, slot %llu: %s",
                          (unsigned long long) k, (unsigned long long) slot,
                          what);
}

static int
check_entry (const struct remap_sb *sb, uint64_t k, uint64_t slot,
             const struct remap_entry *e, struct remap_error *err)
{
  const struct remap_layout *l = &sb->layout;
  uint32_t granules = l->unit / sb->lost_granule;
  uint64_t valid_lost = granules >= 64 ? UINT64_MAX
    : (UINT64_C (1) << granules) - 1;

  if (e->state == REMAP_SLOT_FREE)
    return e->origin_unit || e->lost
      ? tb_bad (err, k, "free entry is not zero", slot) : 0;
  if (slot >= remap_layout_first_pending_slot (l)) {
    /* A pending-only place (version 2): no spare unit behind it. */
    if (e->state != REMAP_SLOT_PENDING)
      return tb_bad (err, k, "pending-only slot holds another state", slot);
    if (e->origin_unit >= sb->origin_units)
      return tb_bad (err, k, "origin unit out of range", slot);
    return e->lost ? tb_bad (err, k, "pending entry with lost data", slot)
      : 0;
  }
  if (slot >= l->spare_units)
    return tb_bad (err, k, "entry past the end of the spare", slot);
  if (remap_layout_is_reserved (l, slot))
    return tb_bad (err, k, "entry for a metadata unit", slot);
  switch (e->state) {
  case REMAP_SLOT_MAPPED:
    if (e->origin_unit >= sb->origin_units)
      return tb_bad (err, k, "origin unit out of range", slot);
    if (e->lost & ~valid_lost)
      return tb_bad (err, k, "lost mask past the unit", slot);
    return 0;
  case REMAP_SLOT_PENDING:
    if (e->origin_unit >= sb->origin_units)
      return tb_bad (err, k, "origin unit out of range", slot);
    return e->lost ? tb_bad (err, k, "pending entry with lost data", slot) : 0;
  case REMAP_SLOT_BAD:
    return e->origin_unit || e->lost
      ? tb_bad (err, k, "bad-unit entry is not clean", slot) : 0;
  default:
    return tb_bad (err, k, "unknown entry state", slot);
  }
}

int
remap_tb_decode (const struct remap_sb *sb, const uint8_t *buf, size_t len,
                 uint64_t expect_index, struct remap_tb *tb,
                 struct remap_entry *entries, struct remap_error *err)
{
  const struct remap_layout *l = &sb->layout;
  uint64_t k = expect_index;

  if (len < l->unit)
    return tb_bad (err, k, "truncated", UINT64_MAX);
  if (get32 (buf + TB (magic)) != REMAP_TB_MAGIC)
    return tb_bad (err, k, "no table magic", UINT64_MAX);
  uint32_t crc = get32 (buf + TB (crc));
  if (crc != remap_crc32c (0, buf + 8, l->unit - 8))
    return remap_set_error (err, -EBADMSG,
                            "table block %llu: checksum mismatch",
                            (unsigned long long) k);
  tb->generation = get64 (buf + TB (generation));
  tb->block_index = get64 (buf + TB (block_index));
  tb->alloc_cursor = get64 (buf + TB (alloc_cursor));
  memcpy (tb->uuid, buf + TB (uuid), 16);
  if (memcmp (tb->uuid, sb->uuid, 16) != 0)
    return tb_bad (err, k, "belongs to another spare (uuid differs)",
                   UINT64_MAX);
  if (tb->block_index != expect_index || tb->block_index >= l->table_blocks)
    return tb_bad (err, k, "block index mismatch", UINT64_MAX);
  if (tb->generation == 0)
    return tb_bad (err, k, "zero generation", UINT64_MAX);
  if (tb->generation > REMAP_MAX_GENERATION)
    return tb_bad (err, k, "implausible generation (above 2^63 - 1)",
                   UINT64_MAX);
  if (tb->alloc_cursor >= l->spare_units)
    return tb_bad (err, k, "allocation cursor out of range", UINT64_MAX);
  if (get32 (buf + TB (entries)) != l->entries_per_block)
    return tb_bad (err, k, "entry count mismatch", UINT64_MAX);
  if (!remap_all_zero (buf + TB (reserved), 12))
    return tb_bad (err, k, "reserved bytes are not zero", UINT64_MAX);

  for (uint32_t j = 0; j < l->entries_per_block; j++) {
    const uint8_t *p = buf + REMAP_TB_HEADER_SIZE
      + (size_t) j * REMAP_ENTRY_SIZE;
    uint64_t word = get64 (p);
    struct remap_entry *e = &entries[j];
    e->state = (enum remap_slot_state) (word >> REMAP_ENTRY_STATE_SHIFT);
    e->origin_unit = word & REMAP_ENTRY_ORIGIN_MASK;
    e->lost = get64 (p + 8);
    int r = check_entry (sb, k, k * l->entries_per_block + j, e, err);
    if (r)
      return r;
  }
  /* Bytes after the last entry (unit - 64 is not always a multiple of 16
   * ... it is, since unit >= 512 is a multiple of 16; keep the check for
   * robustness should the entry size change). */
  size_t used = REMAP_TB_HEADER_SIZE
    + (size_t) l->entries_per_block * REMAP_ENTRY_SIZE;
  if (!remap_all_zero (buf + used, l->unit - used))
    return tb_bad (err, k, "trailing bytes are not zero", UINT64_MAX);
  return 0;
}

/* ---- map units (version 2) ------------------------------------------- */

#define MP(field) offsetof (struct remap_map_disk, field)

/* Table blocks that map unit m describes. */
static uint64_t
map_blocks (const struct remap_layout *l, uint64_t m)
{
  uint64_t B = remap_layout_blocks_per_map (l), first = m * B;
  return l->table_blocks - first < B ? l->table_blocks - first : B;
}

void
remap_map_encode (const struct remap_sb *sb, const struct remap_mapu *h,
                  const uint8_t *bits, uint8_t *buf)
{
  const struct remap_layout *l = &sb->layout;
  uint64_t n = map_blocks (l, h->map_index);

  memset (buf, 0, l->unit);
  put32 (buf + MP (magic), REMAP_MAP_MAGIC);
  put64 (buf + MP (generation), h->generation);
  put64 (buf + MP (map_index), h->map_index);
  memcpy (buf + MP (uuid), sb->uuid, 16);
  put64 (buf + MP (blocks), n);
  memcpy (buf + REMAP_MAP_HEADER_SIZE, bits, (size_t) (n + 7) / 8);
  if (n % 8)                    /* bits past the last block stay 0 */
    buf[REMAP_MAP_HEADER_SIZE + n / 8] &= (uint8_t) ((1u << (n % 8)) - 1);
  put32 (buf + MP (crc), remap_crc32c (0, buf + 8, l->unit - 8));
}

static int
map_bad (struct remap_error *err, uint64_t m, const char *what)
{
  return remap_set_error (err, -EUCLEAN, "map unit %llu: %s",
                          (unsigned long long) m, what);
}

int
remap_map_decode (const struct remap_sb *sb, const uint8_t *buf, size_t len,
                  uint64_t expect_index, struct remap_mapu *h, uint8_t *bits,
                  struct remap_error *err)
{
  const struct remap_layout *l = &sb->layout;
  uint64_t m = expect_index;

  if (l->version < 2 || m >= l->map_units)
    return map_bad (err, m, "no such map unit in this layout");
  if (len < l->unit)
    return map_bad (err, m, "truncated");
  if (get32 (buf + MP (magic)) != REMAP_MAP_MAGIC)
    return map_bad (err, m, "no map magic");
  uint32_t crc = get32 (buf + MP (crc));
  if (crc != remap_crc32c (0, buf + 8, l->unit - 8))
    return remap_set_error (err, -EBADMSG, "map unit %llu: checksum "
                            "mismatch", (unsigned long long) m);
  h->generation = get64 (buf + MP (generation));
  h->map_index = get64 (buf + MP (map_index));
  if (memcmp (buf + MP (uuid), sb->uuid, 16) != 0)
    return map_bad (err, m, "belongs to another spare (uuid differs)");
  if (h->map_index != m)
    return map_bad (err, m, "map index mismatch");
  if (h->generation == 0 || h->generation > REMAP_MAX_GENERATION)
    return map_bad (err, m, "implausible generation");
  uint64_t n = map_blocks (l, m);
  if (get64 (buf + MP (blocks)) != n)
    return map_bad (err, m, "block count mismatch");
  if (!remap_all_zero (buf + MP (reserved), 16))
    return map_bad (err, m, "reserved bytes are not zero");
  const uint8_t *b = buf + REMAP_MAP_HEADER_SIZE;
  size_t nb = (size_t) (n + 7) / 8;
  if ((n % 8 && (b[n / 8] >> (n % 8)) != 0)
      || !remap_all_zero (b + nb, l->unit - REMAP_MAP_HEADER_SIZE - nb))
    return map_bad (err, m, "bits set past the last block");
  memcpy (bits, b, nb);
  return 0;
}
