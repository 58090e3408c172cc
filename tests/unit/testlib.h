/* Shared helpers for the engine's Check tests (tests/unit, tests/fault).
 *
 * A header of static inline functions, not a .c file: CMake turns every
 * tests/<label>/test_*.c into its own executable, so helpers that must be
 * shared are included, not linked.  Fault tests include it as
 * "unit/testlib.h" (tests/ is on the include path).
 *
 * What lives here: a seeded PRNG (splitmix64) so that every random test can
 * print and replay its seed, little-endian accessors and re-CRC helpers for
 * hand-made metadata, deterministic formatting (fixed uuid and time), and
 * opening an engine over mem backends that the test keeps (the engine gets
 * sharers, so the test can "reopen" or poke the bytes after it is gone).
 */
#ifndef REMAP_TESTS_TESTLIB_H
#define REMAP_TESTS_TESTLIB_H

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"
#include "remap/format.h"
#include "remap/layout.h"
#include "remap/meta.h"
#include "remap/remap.h"

#define KiB (UINT64_C (1) << 10)
#define MiB (UINT64_C (1) << 20)
#define GiB (UINT64_C (1) << 30)
#define TiB (UINT64_C (1) << 40)

/* Fail with a formatted message unless cond holds.  Cheaper than
 * ck_assert_* in loops of millions of checks. */
#define REQ(cond, ...)                                  \
  do {                                                  \
    if (!(cond))                                        \
      ck_abort_msg (__VA_ARGS__);                       \
  } while (0)

/* ---- PRNG ------------------------------------------------------------ */

static inline uint64_t
tl_rand (uint64_t *state)
{
  uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Uniform-ish in [0, n); 0 if n == 0. */
static inline uint64_t
tl_below (uint64_t *state, uint64_t n)
{
  return n ? tl_rand (state) % n : 0;
}

static inline void
tl_random_bytes (uint64_t *state, uint8_t *buf, size_t len)
{
  for (size_t i = 0; i < len; i += 8) {
    uint64_t v = tl_rand (state);
    for (size_t j = 0; j < 8 && i + j < len; j++)
      buf[i + j] = (uint8_t) (v >> (8 * j));
  }
}

/* A distinct, never-all-zero pattern for (tag, byte offset): two different
 * tags differ in (almost) every byte, so a misplaced unit is noticed. */
static inline void
tl_pattern (uint8_t *buf, size_t len, uint64_t tag)
{
  uint64_t s = tag * UINT64_C (0x2545f4914f6cdd1d) + 1;
  tl_random_bytes (&s, buf, len);
  for (size_t i = 0; i < len; i++)
    if (buf[i] == 0)
      buf[i] = 0xa5;
}

/* An environment override, e.g. REMAP_SEED=123.  *set says if it was given. */
static inline uint64_t
tl_env_u64 (const char *name, uint64_t dflt, bool *set)
{
  const char *v = getenv (name);
  if (set)
    *set = v && *v;
  if (!v || !*v)
    return dflt;
  return strtoull (v, NULL, 0);
}

/* ---- little-endian access and re-CRC ------------------------------------ */

static inline void
tl_put32 (uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

static inline void
tl_put64 (uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}

static inline uint32_t
tl_get32 (const uint8_t *p)
{
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

static inline uint64_t
tl_get64 (const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* Superblock: CRC32C of bytes 0..507, stored LE at 508. */
static inline void
tl_sb_recrc (uint8_t *sb)
{
  tl_put32 (sb + 508, remap_crc32c (0, sb, 508));
}

/* Table block: CRC32C of bytes 8..unit-1, stored LE at 4. */
static inline void
tl_tb_recrc (uint8_t *tb, uint32_t unit)
{
  tl_put32 (tb + 4, remap_crc32c (0, tb + 8, unit - 8));
}

/* ---- mem backends, format, open ---------------------------------------- */

static inline struct remap_backend *
tl_mem (uint64_t size)
{
  struct remap_backend *b;
  ck_assert_int_eq (remap_mem_create (size, &b), 0);
  return b;
}

static inline struct remap_backend *
tl_share (struct remap_backend *mem)
{
  struct remap_backend *b;
  ck_assert_int_eq (remap_mem_share (mem, &b), 0);
  return b;
}

/* A mem backend holding a copy of `src' bytes. */
static inline struct remap_backend *
tl_mem_copy (const uint8_t *src, uint64_t size)
{
  struct remap_backend *b = tl_mem (size);
  memcpy (remap_mem_data (b), src, size);
  return b;
}

static inline void
tl_format_opts (struct remap_format_opts *o, uint32_t unit,
                enum remap_strategy s, uint32_t copies, uint64_t uuid_seed)
{
  memset (o, 0, sizeof *o);
  o->unit = unit;
  o->strategy = s;
  o->copies = copies;
  for (int i = 0; i < 16; i++)
    o->uuid[i] = (uint8_t) (0x11 * (i + 1) + uuid_seed * 7 + (uuid_seed >> 8));
  o->uuid[0] |= 1;                /* never all zero */
  o->format_time = 1700000000;
  o->origin_label = "test-origin";
}

/* Format spare for origin (neither is taken over).  Returns the result. */
static inline int
tl_format (struct remap_backend *origin, struct remap_backend *spare,
           uint32_t unit, enum remap_strategy s, uint32_t copies, bool force,
           struct remap_error *err)
{
  struct remap_format_opts o;
  tl_format_opts (&o, unit, s, copies, 1);
  o.force = force;
  return remap_format (origin, spare, &o, err);
}

/* Format or fail the test with the message. */
static inline void
tl_format_ok (struct remap_backend *origin, struct remap_backend *spare,
              uint32_t unit, enum remap_strategy s, uint32_t copies)
{
  struct remap_error err = { 0 };
  int r = tl_format (origin, spare, unit, s, copies, false, &err);
  ck_assert_msg (r == 0, "format unit %u strategy %d copies %u: %d %s",
                 unit, (int) s, copies, r, err.msg);
}

/* ---- format versions (SPEC 2.6) ---------------------------------------- */

/* Build a version 1 spare by hand, as remap_format did before version 2:
 * every unit of every copy extent written (superblock unit zeroed past the
 * superblock, every table block empty at generation 1), then the
 * superblocks.  Same uuid, time and label as tl_format.  Returns the
 * layout.  Version 1 spares are still opened and committed to. */
static inline void
tl_format_v1 (struct remap_backend *origin, struct remap_backend *spare,
              uint32_t unit, enum remap_strategy s, uint32_t copies,
              struct remap_layout *out)
{
  struct remap_format_opts o;
  struct remap_error err = { 0 };
  struct remap_sb sb;
  tl_format_opts (&o, unit, s, copies, 1);
  memset (&sb, 0, sizeof sb);
  int r = remap_layout_compute_version (1, spare->size, unit, s, copies,
                                        &sb.layout, &err);
  ck_assert_msg (r == 0, "v1 layout: %s", err.msg);
  const struct remap_layout *l = &sb.layout;
  sb.version = REMAP_SB_VERSION_1;
  memcpy (sb.uuid, o.uuid, 16);
  sb.origin_size = origin->size;
  sb.spare_size = l->spare_units * unit;
  sb.origin_units = (origin->size - 1) / unit + 1;
  sb.lost_granule = remap_lost_granule (unit);
  sb.format_time = o.format_time;
  sb.sb_generation = 1;
  snprintf (sb.origin_label, sizeof sb.origin_label, "%s", o.origin_label);
  uint8_t *d = remap_mem_data (spare);
  struct remap_tb tb = { .generation = 1 };
  memcpy (tb.uuid, sb.uuid, 16);
  for (uint32_t i = 0; i < l->copies; i++) {
    uint8_t *cp = d + l->copy_offset[i] * unit;
    for (uint64_t k = 0; k < l->table_blocks; k++) {
      tb.block_index = k;
      remap_tb_encode (&tb, NULL, 0, unit, cp + (1 + k) * unit);
    }
    memset (cp, 0, unit);
    sb.copy_index = i;
    remap_sb_encode (&sb, cp);
  }
  if (out)
    *out = *l;
}

/* The superblock of copy i of a spare (bytes), or fail. */
static inline void
tl_sb_of (const uint8_t *spare, const struct remap_layout *l, uint32_t i,
          struct remap_sb *sb)
{
  struct remap_error err = { 0 };
  int r = remap_sb_decode (spare + remap_layout_sb_unit (l, i) * l->unit,
                           l->unit, sb, &err);
  ck_assert_msg (r == 0, "copy %u superblock: %s", i, err.msg);
}

/* Copy i's map bit for table block k: 1 written, 0 never written, -1 the
 * map unit does not validate.  Version 1 has no maps: always 1. */
static inline int
tl_map_bit (const uint8_t *spare, const struct remap_sb *sb, uint32_t i,
            uint64_t k)
{
  const struct remap_layout *l = &sb->layout;
  if (l->version < 2)
    return 1;
  uint64_t B = remap_layout_blocks_per_map (l), m = k / B;
  uint8_t *bits = calloc (1, l->unit);
  struct remap_mapu h;
  int r = remap_map_decode (sb, spare + remap_layout_map_unit (l, i, m)
                            * l->unit, l->unit, m, &h, bits, NULL);
  int bit = r ? -1 : (bits[(k % B) / 8] >> ((k % B) % 8)) & 1;
  free (bits);
  return bit;
}

/* Table block k of copy i as written on the spare: 0 and the entries if
 * it validates; 1 if its map says it was never written (empty: nothing
 * there to read); the decode error otherwise (damaged). */
static inline int
tl_block_of (const uint8_t *spare, const struct remap_sb *sb, uint32_t i,
             uint64_t k, struct remap_tb *tb, struct remap_entry *ent,
             struct remap_error *err)
{
  const struct remap_layout *l = &sb->layout;
  int bit = tl_map_bit (spare, sb, i, k);
  if (bit == 0) {
    memset (ent, 0, l->entries_per_block * sizeof *ent);
    return 1;
  }
  return remap_tb_decode (sb, spare + remap_layout_block_unit (l, i, k)
                          * l->unit, l->unit, k, tb, ent, err);
}

/* Set (or clear) copy i's map bit for block k in place, keeping the map
 * unit valid (CRC redone).  For hand-made cases only. */
static inline void
tl_map_set (uint8_t *spare, const struct remap_sb *sb, uint32_t i,
            uint64_t k, bool v)
{
  const struct remap_layout *l = &sb->layout;
  uint64_t B = remap_layout_blocks_per_map (l), m = k / B;
  uint8_t *p = spare + remap_layout_map_unit (l, i, m) * l->unit;
  uint8_t *b = p + REMAP_MAP_HEADER_SIZE + (k % B) / 8;
  if (v)
    *b |= (uint8_t) (1u << ((k % B) % 8));
  else
    *b &= (uint8_t) ~(1u << ((k % B) % 8));
  tl_put32 (p + 4, remap_crc32c (0, p + 8, l->unit - 8));
}

/* Open an engine over sharers of two backends the test keeps. */
static inline int
tl_open (struct remap_backend *origin_mem, struct remap_backend *spare_mem,
         const struct remap_open_opts *opts, struct remap_engine **e,
         struct remap_error *err)
{
  return remap_open (tl_share (origin_mem), tl_share (spare_mem), opts, e,
                     err);
}

static inline struct remap_engine *
tl_open_ok (struct remap_backend *origin_mem, struct remap_backend *spare_mem,
            const struct remap_open_opts *opts)
{
  struct remap_engine *e = NULL;
  struct remap_error err = { 0 };
  int r = tl_open (origin_mem, spare_mem, opts, &e, &err);
  ck_assert_msg (r == 0, "open: %d %s", r, err.msg);
  return e;
}

static inline struct remap_counters
tl_counters (struct remap_engine *e)
{
  struct remap_counters c;
  remap_get_counters (e, &c);
  return c;
}

static inline struct remap_mapping
tl_lookup (struct remap_engine *e, uint64_t u)
{
  struct remap_mapping m;
  ck_assert_int_eq (remap_lookup (e, u, &m), 0);
  return m;
}

/* ---- running a suite ---------------------------------------------------- */

static inline int
tl_run (Suite *s)
{
  SRunner *sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* REMAP_TESTS_TESTLIB_H */
