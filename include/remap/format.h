/* remap: on-disk format, version 1.  Mirrors docs/FORMAT.md, which is
 * normative; every row of its tables has a _Static_assert here.
 *
 * All integers are little-endian on disk.  The structs below hold the
 * on-disk bytes (fields already in little-endian order); use the codec in
 * remap/meta.h, never memcpy them into host integers by hand.
 */
#ifndef REMAP_FORMAT_H
#define REMAP_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "remap/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REMAP_SB_MAGIC       "REMAPSP1"  /* 8 bytes, no NUL on disk */
#define REMAP_SB_VERSION     1u
#define REMAP_SB_SIZE        512u        /* bytes covered by the CRC */
#define REMAP_TB_MAGIC       0x42544d52u /* "RMTB" as le32 */
#define REMAP_TB_HEADER_SIZE 64u
#define REMAP_ENTRY_SIZE     16u
#define REMAP_LABEL_SIZE     64u

/* Generations (table blocks and superblocks) are 1 .. 2^63 - 1.  A commit
 * adds one per changed block: even a million commits a second would take
 * 290,000 years to reach the bound, so a value past it is corruption or a
 * crafted block.  Readers reject it; writers refuse to commit past it, so
 * `current + 1' can never wrap to an invalid 0. */
#define REMAP_MAX_GENERATION ((UINT64_C (1) << 63) - 1)

/* Feature bits.  A reader must refuse a spare with an unknown incompatible
 * bit, may open read-only one with an unknown ro_compat bit, and ignores
 * unknown compatible bits.  Version 1 defines none. */
#define REMAP_INCOMPAT_KNOWN  UINT64_C (0)
#define REMAP_RO_COMPAT_KNOWN UINT64_C (0)
#define REMAP_COMPAT_KNOWN    UINT64_C (0)

/* The superblock: the first 512 bytes of the first unit of every copy. */
struct remap_sb_disk {
  uint8_t  magic[8];            /*   0 "REMAPSP1" */
  uint32_t version;             /*   8 = 1 */
  uint32_t header_size;         /*  12 = 512 */
  uint64_t incompat;            /*  16 */
  uint64_t compat;              /*  24 */
  uint64_t ro_compat;           /*  32 */
  uint8_t  uuid[16];            /*  40 random at format: names this spare */
  uint64_t origin_size;         /*  56 bytes of the origin at format */
  uint64_t spare_size;          /*  64 bytes of the spare at format */
  uint32_t unit;                /*  72 unit size, power of 2, 512..65536 */
  uint32_t copy_index;          /*  76 which copy this is, 0..copies-1 */
  uint64_t spare_units;         /*  80 N = floor (spare_size / unit) */
  uint64_t origin_units;        /*  88 ceil (origin_size / unit) */
  uint32_t strategy;            /*  96 1 minimal, 2 linear, 3 geometric */
  uint32_t copies;              /* 100 n, 1..8 */
  uint64_t copy_units;          /* 104 L = 1 + T */
  uint64_t table_blocks;        /* 112 T = ceil (N / E) */
  uint32_t entries_per_block;   /* 120 E = (unit - 64) / 16 */
  uint32_t lost_granule;        /* 124 bytes per bit of an entry's lost mask */
  uint64_t copy_offset[8];      /* 128 first unit of each copy; 0 past n */
  uint64_t format_time;         /* 192 seconds since the epoch */
  uint64_t sb_generation;       /* 200 1 at format, +1 per rewrite of the sbs */
  uint8_t  origin_label[64];    /* 208 origin path at format, NUL-padded */
  uint8_t  reserved[236];       /* 272 zero */
  uint32_t crc;                 /* 508 CRC32C of bytes 0..507 */
};

_Static_assert (sizeof (struct remap_sb_disk) == REMAP_SB_SIZE, "sb size");
_Static_assert (offsetof (struct remap_sb_disk, magic) == 0, "sb");
_Static_assert (offsetof (struct remap_sb_disk, version) == 8, "sb");
_Static_assert (offsetof (struct remap_sb_disk, header_size) == 12, "sb");
_Static_assert (offsetof (struct remap_sb_disk, incompat) == 16, "sb");
_Static_assert (offsetof (struct remap_sb_disk, compat) == 24, "sb");
_Static_assert (offsetof (struct remap_sb_disk, ro_compat) == 32, "sb");
_Static_assert (offsetof (struct remap_sb_disk, uuid) == 40, "sb");
_Static_assert (offsetof (struct remap_sb_disk, origin_size) == 56, "sb");
_Static_assert (offsetof (struct remap_sb_disk, spare_size) == 64, "sb");
_Static_assert (offsetof (struct remap_sb_disk, unit) == 72, "sb");
_Static_assert (offsetof (struct remap_sb_disk, copy_index) == 76, "sb");
_Static_assert (offsetof (struct remap_sb_disk, spare_units) == 80, "sb");
_Static_assert (offsetof (struct remap_sb_disk, origin_units) == 88, "sb");
_Static_assert (offsetof (struct remap_sb_disk, strategy) == 96, "sb");
_Static_assert (offsetof (struct remap_sb_disk, copies) == 100, "sb");
_Static_assert (offsetof (struct remap_sb_disk, copy_units) == 104, "sb");
_Static_assert (offsetof (struct remap_sb_disk, table_blocks) == 112, "sb");
_Static_assert (offsetof (struct remap_sb_disk, entries_per_block) == 120, "sb");
_Static_assert (offsetof (struct remap_sb_disk, lost_granule) == 124, "sb");
_Static_assert (offsetof (struct remap_sb_disk, copy_offset) == 128, "sb");
_Static_assert (offsetof (struct remap_sb_disk, format_time) == 192, "sb");
_Static_assert (offsetof (struct remap_sb_disk, sb_generation) == 200, "sb");
_Static_assert (offsetof (struct remap_sb_disk, origin_label) == 208, "sb");
_Static_assert (offsetof (struct remap_sb_disk, reserved) == 272, "sb");
_Static_assert (offsetof (struct remap_sb_disk, crc) == 508, "sb");

/* The header of a table block.  Table block k of copy i fills the whole unit
 * copy_offset[i] + 1 + k; entries follow the header. */
struct remap_tb_disk {
  uint32_t magic;               /*  0 "RMTB" */
  uint32_t crc;                 /*  4 CRC32C of bytes 8..unit-1 */
  uint64_t generation;          /*  8 commit that wrote this block,
                                   1 .. REMAP_MAX_GENERATION */
  uint64_t block_index;         /* 16 k, 0..T-1 */
  uint64_t alloc_cursor;        /* 24 next-fit cursor after that commit */
  uint8_t  uuid[16];            /* 32 = the superblock's uuid */
  uint32_t entries;             /* 48 = E */
  uint8_t  reserved[12];        /* 52 zero */
};

_Static_assert (sizeof (struct remap_tb_disk) == REMAP_TB_HEADER_SIZE, "tb");
_Static_assert (offsetof (struct remap_tb_disk, magic) == 0, "tb");
_Static_assert (offsetof (struct remap_tb_disk, crc) == 4, "tb");
_Static_assert (offsetof (struct remap_tb_disk, generation) == 8, "tb");
_Static_assert (offsetof (struct remap_tb_disk, block_index) == 16, "tb");
_Static_assert (offsetof (struct remap_tb_disk, alloc_cursor) == 24, "tb");
_Static_assert (offsetof (struct remap_tb_disk, uuid) == 32, "tb");
_Static_assert (offsetof (struct remap_tb_disk, entries) == 48, "tb");
_Static_assert (offsetof (struct remap_tb_disk, reserved) == 52, "tb");

/* One table entry: describes spare unit (slot) k * E + j. */
struct remap_entry_disk {
  uint64_t word;                /* 0 bits 0..55 origin unit, 56..63 state */
  uint64_t lost;                /* 8 bit b: granule b of the unit is lost */
};

_Static_assert (sizeof (struct remap_entry_disk) == REMAP_ENTRY_SIZE, "entry");
_Static_assert (offsetof (struct remap_entry_disk, word) == 0, "entry");
_Static_assert (offsetof (struct remap_entry_disk, lost) == 8, "entry");

/* Entry states (bits 56..63 of word). */
enum remap_slot_state {
  REMAP_SLOT_FREE = 0,          /* word and lost are 0 */
  REMAP_SLOT_MAPPED = 1,        /* holds the data of origin unit */
  REMAP_SLOT_PENDING = 2,       /* held for origin unit, which failed a read;
                                   data still on the origin; lost is 0 */
  REMAP_SLOT_BAD = 3,           /* this spare unit failed; never used */
};

#define REMAP_ENTRY_ORIGIN_MASK ((UINT64_C (1) << 56) - 1)
#define REMAP_ENTRY_STATE_SHIFT 56

#ifdef __cplusplus
}
#endif

#endif /* REMAP_FORMAT_H */
