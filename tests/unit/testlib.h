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
