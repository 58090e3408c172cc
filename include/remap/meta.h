/* remap: metadata codec (superblock, table blocks) and CRC32C.
 *
 * Pure functions over byte buffers: no I/O.  Decoders validate every field
 * against the format's constraints and return -EUCLEAN (corrupt),
 * -EBADMSG (checksum mismatch) or -EOPNOTSUPP (unknown incompatible
 * feature); they never assert on disk bytes and never read past `len'.
 */
#ifndef REMAP_META_H
#define REMAP_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/error.h"
#include "remap/format.h"
#include "remap/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CRC32C (Castagnoli, reflected, init ~0, final ~0).  Chain with
 * crc = remap_crc32c (crc, ...) starting from 0. */
uint32_t remap_crc32c (uint32_t crc, const void *buf, size_t len);

/* True if the n bytes at buf are all zero (n == 0: true). */
bool remap_all_zero (const void *buf, size_t n);

/* The superblock in host form. */
struct remap_sb {
  uint32_t version;
  uint64_t incompat, compat, ro_compat;
  uint8_t uuid[16];
  uint64_t origin_size;
  uint64_t spare_size;
  uint32_t copy_index;
  uint64_t origin_units;
  uint32_t lost_granule;
  uint64_t format_time;
  uint64_t sb_generation;
  char origin_label[REMAP_LABEL_SIZE + 1];
  char origin_id[REMAP_ORIGIN_ID_SIZE + 1]; /* v2: "" if unknown */
  struct remap_layout layout;   /* unit, N, E, T, L, strategy, copies, offsets */
};

/* Encode sb into buf[0..511] (the caller zeroes the rest of the unit). */
void remap_sb_encode (const struct remap_sb *sb, uint8_t buf[REMAP_SB_SIZE]);
/* Decode and validate buf[0..len-1] (len >= 512 needed).  Checks magic,
 * version, CRC, features, and that the geometry is exactly what
 * remap_layout_compute gives for (spare_size, unit, strategy, copies). */
int remap_sb_decode (const uint8_t *buf, size_t len, struct remap_sb *sb,
                     struct remap_error *err);

/* Lost-granule size for a unit: max (512, unit / 64). */
uint32_t remap_lost_granule (uint32_t unit);

/* One decoded table entry. */
struct remap_entry {
  enum remap_slot_state state;
  uint64_t origin_unit;
  uint64_t lost;
};

/* Table block header in host form. */
struct remap_tb {
  uint64_t generation;
  uint64_t block_index;
  uint64_t alloc_cursor;
  uint8_t uuid[16];
};

/* Encode a table block of `unit' bytes into buf: header + entries[0..n-1];
 * entries past n are written as FREE. n <= E. */
void remap_tb_encode (const struct remap_tb *tb, const struct remap_entry *e,
                      uint32_t n, uint32_t unit, uint8_t *buf);
/* Decode and validate a table block against sb: magic, CRC, uuid, index ==
 * expect_index, 1 <= generation <= REMAP_MAX_GENERATION, cursor < N, every entry well-formed (state
 * known, origin < origin_units, FREE/BAD/PENDING constraints, slots past N
 * FREE).  entries receives E entries. */
int remap_tb_decode (const struct remap_sb *sb, const uint8_t *buf,
                     size_t len, uint64_t expect_index, struct remap_tb *tb,
                     struct remap_entry *entries, struct remap_error *err);

/* ---- map units (version 2) ---------------------------------------- */

struct remap_mapu {
  uint64_t generation;
  uint64_t map_index;
};

/* Encode map unit h->map_index of sb's layout into buf (one unit); bits
 * holds its ceil (blocks / 8) bytes (bit j: block m * B + j written). */
void remap_map_encode (const struct remap_sb *sb, const struct remap_mapu *h,
                       const uint8_t *bits, uint8_t *buf);
/* Decode and validate map unit expect_index; its bits go to bits
 * (ceil (blocks / 8) bytes).  0, -EBADMSG (CRC), -EUCLEAN. */
int remap_map_decode (const struct remap_sb *sb, const uint8_t *buf,
                      size_t len, uint64_t expect_index,
                      struct remap_mapu *h, uint8_t *bits,
                      struct remap_error *err);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_META_H */
