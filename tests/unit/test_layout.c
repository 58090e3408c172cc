/* Unit tests: placement of the metadata copies (core/layout.c, SPEC 1.2-1.3).
 *
 * Every expectation is recomputed here by an independent implementation of
 * the documented rules, not by calling back into the engine:
 *
 *   N = floor (bytes / unit), E = (unit - 64) / 16, Tr = ceil (N / E);
 *   version 1: T = Tr, L = 1 + T;
 *   version 2 (SPEC 2.6): pending-only places are the slots from N on,
 *   at least ceil (N / 4) of them: the tail Tr * E - N of the last block
 *   of spare units, then Tp = ceil ((ceil (N / 4) - tail) / E) more
 *   blocks (0 if the tail is enough), T = Tr + Tp, B = (unit - 64) * 8, M = ceil (T / B), L = 1 + M + T,
 *   copy i = [sb at p_i][map units p_i + 1 ..][table blocks p_i + 1 + M ..];
 *   strategy from N * unit (< 512 KiB minimal, < 4 MiB linear,
 *   else geometric); default copies 2 / 4 / 5, lowered while they do not
 *   fit, never below 2;
 *   minimal   p_i = i * L
 *   linear    p_i = floor (i * (N - L) / (n - 1))
 *   geometric p_0 = 0, p_i = floor ((N - L) / 2^(n - 1 - i))
 *   "fits" = every extent inside the spare, no two overlap, n * L < N.
 *
 * Sweeps: for every unit size, every spare size from the minimum to 16 MiB
 * in unit steps, and 1,000 seeded random sizes up to 1 TiB.  Pure
 * arithmetic, so the sweep is cheap even for 512-byte units.
 */

#include "unit/testlib.h"

#define SWEEP_MAX (16 * MiB)
#define RANDOM_SIZES 1000

/* ---- the independent model ----------------------------------------------- */

/* The format version the model computes (the tests set it per loop). */
static uint32_t x_version = REMAP_SB_VERSION;

struct xl {
  uint64_t N, E, Tr, Tp, T, M, L;
  enum remap_strategy s;
  uint32_t n;
  uint64_t off[REMAP_MAX_COPIES];
};

static enum remap_strategy
x_strategy (uint64_t bytes)
{
  if (bytes < 512 * KiB)
    return REMAP_STRATEGY_MINIMAL;
  if (bytes < 4 * MiB)
    return REMAP_STRATEGY_LINEAR;
  return REMAP_STRATEGY_GEOMETRIC;
}

static uint32_t
x_default_copies (enum remap_strategy s)
{
  return s == REMAP_STRATEGY_MINIMAL ? 2 : s == REMAP_STRATEGY_LINEAR ? 4 : 5;
}

static void
x_geometry (uint64_t bytes, uint32_t unit, struct xl *x)
{
  memset (x, 0, sizeof *x);
  x->N = bytes / unit;
  x->E = (unit - 64) / 16;
  x->Tr = x->N / x->E + (x->N % x->E != 0);
  if (x_version >= 2) {
    uint64_t quarter = x->N / 4 + (x->N % 4 != 0);
    uint64_t tail = x->Tr * x->E - x->N;
    if (quarter > tail)
      x->Tp = (quarter - tail) / x->E + ((quarter - tail) % x->E != 0);
  }
  x->T = x->Tr + x->Tp;
  if (x_version >= 2) {
    uint64_t B = (uint64_t) (unit - 64) * 8;
    x->M = x->T / B + (x->T % B != 0);
  }
  x->L = 1 + x->M + x->T;
}

/* remap_layout_compute for the model's version. */
static int
x_compute (uint64_t bytes, uint32_t unit, enum remap_strategy s, uint32_t n,
           struct remap_layout *l, struct remap_error *err)
{
  if (x_version == REMAP_SB_VERSION)
    return remap_layout_compute (bytes, unit, s, n, l, err);
  return remap_layout_compute_version (x_version, bytes, unit, s, n, l, err);
}

/* Offsets by the formulas, then the fit test: inside, disjoint, one unit
 * left over. */
static bool
x_place (enum remap_strategy s, uint64_t N, uint64_t L, uint32_t n,
         uint64_t off[REMAP_MAX_COPIES])
{
  memset (off, 0, REMAP_MAX_COPIES * sizeof off[0]);
  if (n < 2 || n > REMAP_MAX_COPIES || L > N)
    return false;
  for (uint32_t i = 0; i < n; i++) {
    if (s == REMAP_STRATEGY_MINIMAL)
      off[i] = (uint64_t) i * L;
    else if (s == REMAP_STRATEGY_LINEAR)
      off[i] = i == 0 ? 0 : (uint64_t) i * (N - L) / (n - 1);
    else
      off[i] = i == 0 ? 0 : (N - L) / (UINT64_C (1) << (n - 1 - i));
  }
  for (uint32_t i = 0; i < n; i++) {
    if (off[i] + L > N)
      return false;
    for (uint32_t j = 0; j < i; j++)
      if (off[i] < off[j] + L && off[j] < off[i] + L)
        return false;
  }
  return (uint64_t) n * L < N;
}

/* Expected AUTO layout; false if the spare is too small. */
static bool
x_auto (uint64_t bytes, uint32_t unit, struct xl *x)
{
  x_geometry (bytes, unit, x);
  if (x->N * unit < 36 * KiB)
    return false;
  x->s = x_strategy (x->N * unit);
  for (uint32_t n = x_default_copies (x->s); n >= 2; n--)
    if (x_place (x->s, x->N, x->L, n, x->off)) {
      x->n = n;
      return true;
    }
  return false;
}

static bool
x_reserved (const struct xl *x, uint64_t u)
{
  for (uint32_t i = 0; i < x->n; i++)
    if (u >= x->off[i] && u < x->off[i] + x->L)
      return true;
  return false;
}

/* ---- checking one computed layout against the model ---------------------- */

static void
check_layout (const struct remap_layout *l, const struct xl *x,
              uint64_t bytes, uint32_t unit, bool full_scan)
{
#define CTX "spare %" PRIu64 " bytes, unit %u: "
  REQ (l->unit == unit, CTX "unit %u", bytes, unit, l->unit);
  REQ (l->spare_units == x->N, CTX "N %" PRIu64 " want %" PRIu64, bytes,
       unit, l->spare_units, x->N);
  REQ (l->entries_per_block == x->E, CTX "E %u", bytes, unit,
       l->entries_per_block);
  REQ (l->version == x_version, CTX "version %u want %u", bytes, unit,
       l->version, x_version);
  REQ (l->real_blocks == x->Tr, CTX "Tr %" PRIu64 " want %" PRIu64, bytes,
       unit, l->real_blocks, x->Tr);
  REQ (l->pending_blocks == x->Tp, CTX "Tp %" PRIu64 " want %" PRIu64, bytes,
       unit, l->pending_blocks, x->Tp);
  REQ (l->table_blocks == x->T, CTX "T %" PRIu64 " want %" PRIu64, bytes,
       unit, l->table_blocks, x->T);
  REQ (l->map_units == x->M, CTX "M %" PRIu64 " want %" PRIu64, bytes,
       unit, l->map_units, x->M);
  REQ (l->copy_units == x->L, CTX "L %" PRIu64 " want %" PRIu64, bytes,
       unit, l->copy_units, x->L);
  REQ (l->strategy == x->s, CTX "strategy %d want %d", bytes, unit,
       (int) l->strategy, (int) x->s);
  REQ (l->copies == x->n, CTX "copies %u want %u", bytes, unit, l->copies,
       x->n);
  REQ (l->copies >= 2 && l->copies <= 8, CTX "copies %u", bytes, unit,
       l->copies);
  for (uint32_t i = 0; i < REMAP_MAX_COPIES; i++)
    REQ (l->copy_offset[i] == x->off[i],
         CTX "copy %u at %" PRIu64 " want %" PRIu64, bytes, unit, i,
         l->copy_offset[i], x->off[i]);
  REQ (l->reserved_units == (uint64_t) x->n * x->L, CTX "reserved %" PRIu64,
       bytes, unit, l->reserved_units);
  REQ (l->usable_units == x->N - (uint64_t) x->n * x->L,
       CTX "usable %" PRIu64, bytes, unit, l->usable_units);
  REQ (l->usable_units >= 1, CTX "no usable unit", bytes, unit);
  REQ (remap_layout_blocks_per_map (l) == (uint64_t) (unit - 64) * 8,
       CTX "blocks per map %" PRIu64, bytes, unit,
       remap_layout_blocks_per_map (l));
  REQ (remap_layout_first_pending_slot (l)
       == (x_version >= 2 ? x->N : x->Tr * x->E),
       CTX "first pending slot %" PRIu64, bytes, unit,
       remap_layout_first_pending_slot (l));
  if (x_version >= 2)   /* at least a quarter of N places */
    REQ ((x->Tr + x->Tp) * x->E - x->N >= (x->N + 3) / 4,
         CTX "too few pending-only places", bytes, unit);
  /* Where things are in each extent: sb, maps, blocks, and the last block
   * is the extent's last unit. */
  for (uint32_t i = 0; i < l->copies; i++) {
    REQ (remap_layout_sb_unit (l, i) == x->off[i], CTX "copy %u sb", bytes,
         unit, i);
    for (uint64_t m = 0; m < x->M; m += (x->M > 4 ? x->M - 1 : 1))
      REQ (remap_layout_map_unit (l, i, m) == x->off[i] + 1 + m,
           CTX "copy %u map %" PRIu64, bytes, unit, i, m);
    uint64_t ks[4] = { 0, x->Tr - 1, x->Tr, x->T - 1 };
    for (int j = 0; j < 4; j++)
      if (ks[j] < x->T)
        REQ (remap_layout_block_unit (l, i, ks[j])
             == x->off[i] + 1 + x->M + ks[j],
             CTX "copy %u block %" PRIu64, bytes, unit, i, ks[j]);
    REQ (remap_layout_block_unit (l, i, x->T - 1) == x->off[i] + x->L - 1,
         CTX "copy %u: last block is not the extent's last unit", bytes,
         unit, i);
  }

  /* Inside the spare and pairwise disjoint, checked on the engine's own
   * numbers (the model agreeing is not enough if both are wrong). */
  for (uint32_t i = 0; i < l->copies; i++) {
    REQ (l->copy_offset[i] + l->copy_units <= l->spare_units,
         CTX "copy %u past the end", bytes, unit, i);
    for (uint32_t j = 0; j < i; j++)
      REQ (l->copy_offset[i] >= l->copy_offset[j] + l->copy_units
           || l->copy_offset[j] >= l->copy_offset[i] + l->copy_units,
           CTX "copies %u and %u overlap", bytes, unit, j, i);
  }

  /* remap_layout_is_reserved at every extent edge, or everywhere. */
  if (full_scan) {
    uint64_t nres = 0;
    for (uint64_t u = 0; u < x->N; u++) {
      bool r = remap_layout_is_reserved (l, u);
      REQ (r == x_reserved (x, u), CTX "is_reserved (%" PRIu64 ") = %d",
           bytes, unit, u, r);
      nres += r;
    }
    REQ (nres == l->reserved_units, CTX "%" PRIu64 " reserved units counted",
         bytes, unit, nres);
  }
  else
    for (uint32_t i = 0; i < l->copies; i++) {
      uint64_t edge[4] = { x->off[i], x->off[i] + x->L - 1,
                           x->off[i] + x->L, x->off[i] - 1 };
      for (int k = 0; k < 4; k++) {
        uint64_t u = edge[k];
        if (u >= x->N)          /* also catches off - 1 underflow */
          continue;
        REQ (remap_layout_is_reserved (l, u) == x_reserved (x, u),
             CTX "is_reserved (%" PRIu64 ")", bytes, unit, u);
      }
    }
#undef CTX
}

static void
check_auto (uint64_t bytes, uint32_t unit, bool full_scan)
{
  struct remap_layout l;
  struct remap_error err = { 0 };
  struct xl x;

  bool fits = x_auto (bytes, unit, &x);
  int r = x_compute (bytes, unit, REMAP_STRATEGY_AUTO, 0, &l, &err);
  if (!fits) {
    REQ (r == -ENOSPC, "spare %" PRIu64 " unit %u: want -ENOSPC, got %d",
         bytes, unit, r);
    return;
  }
  REQ (r == 0, "spare %" PRIu64 " bytes, unit %u: %d %s", bytes, unit, r,
       err.msg);
  check_layout (&l, &x, bytes, unit, full_scan);
}

/* ---- tests --------------------------------------------------------------- */

/* Loop index _i: unit 512 << (_i % 8), format version 1 + _i / 8. */
#define LOOP_UNIT(i) (REMAP_MIN_UNIT << ((i) % 8))
#define LOOP_VERSION(i) (1u + (uint32_t) (i) / 8)

START_TEST (test_sweep_every_size)
{
  uint32_t unit = LOOP_UNIT (_i);
  x_version = LOOP_VERSION (_i);
  /* remap_layout_min_spare is the current version's; version 1 sweeps
   * from below the absolute minimum (the model says what fits). */
  uint64_t min = x_version == REMAP_SB_VERSION
    ? remap_layout_min_spare (unit) : 32 * KiB;
  uint64_t n = 0;

  ck_assert_uint_gt (min, 0);
  for (uint64_t bytes = min; bytes <= SWEEP_MAX; bytes += unit, n++)
    /* A full is_reserved scan on a sample keeps the sweep fast. */
    check_auto (bytes, unit, n % 97 == 0 || bytes < min + 8 * unit);
  /* Non-multiples of the unit round down. */
  for (uint64_t bytes = min; bytes <= SWEEP_MAX; bytes += 7 * unit + 13)
    check_auto (bytes, unit, false);
  ck_assert_uint_gt (n, 0);
}
END_TEST

START_TEST (test_random_sizes)
{
  uint32_t unit = LOOP_UNIT (_i);
  x_version = LOOP_VERSION (_i);
  uint64_t seed = 0x1a7047 + _i, st = seed;

  for (int k = 0; k < RANDOM_SIZES; k++) {
    uint64_t bytes;
    switch (k % 4) {            /* spread over magnitudes */
    case 0: bytes = tl_below (&st, TiB) + 1; break;
    case 1: bytes = tl_below (&st, 4 * GiB) + 1; break;
    case 2: bytes = tl_below (&st, 64 * MiB) + 1; break;
    default: bytes = tl_below (&st, 1 * MiB) + 1; break;
    }
    struct remap_layout l;
    struct xl x;
    bool fits = x_auto (bytes, unit, &x);
    int r = x_compute (bytes, unit, REMAP_STRATEGY_AUTO, 0, &l, NULL);
    REQ (fits ? r == 0 : r == -ENOSPC,
         "seed %#" PRIx64 " k %d: spare %" PRIu64 " unit %u: r %d", seed, k,
         bytes, unit, r);
    if (fits)
      check_layout (&l, &x, bytes, unit, x.N <= 65536 && k % 16 == 0);
  }
}
END_TEST

/* The minimum: computed sizes below it are refused with a message that
 * names it; the minimum itself and the next sizes are accepted. */
START_TEST (test_minimum)
{
  uint32_t unit = REMAP_MIN_UNIT << _i;
  x_version = REMAP_SB_VERSION;
  uint64_t min = remap_layout_min_spare (unit);
  char want[32];

  ck_assert_uint_eq (min % unit, 0);
  ck_assert_uint_ge (min, 36 * KiB);
  snprintf (want, sizeof want, "%" PRIu64, min);
  for (uint64_t n = 0; n * unit < min; n++)
    for (int d = 0; d < 2; d++) {
      uint64_t bytes = n * unit + (d ? unit - 1 : 0);
      struct remap_layout l;
      struct remap_error err = { 0 };
      int r = remap_layout_compute (bytes, unit, REMAP_STRATEGY_AUTO, 0, &l,
                                    &err);
      REQ (r == -ENOSPC, "unit %u, spare %" PRIu64 " (< min %" PRIu64
           "): r %d", unit, bytes, min, r);
      REQ (strstr (err.msg, want) != NULL,
           "unit %u spare %" PRIu64 ": message does not say the minimum %s: "
           "%s", unit, bytes, want, err.msg);
    }
  struct remap_layout l;
  ck_assert_int_eq (remap_layout_compute (min, unit, REMAP_STRATEGY_AUTO, 0,
                                          &l, NULL), 0);
  ck_assert_int_eq (remap_layout_compute (min + unit - 1, unit,
                                          REMAP_STRATEGY_AUTO, 0, &l, NULL),
                    0);
  /* The model agrees that min is the first size that fits. */
  struct xl x;
  ck_assert (x_auto (min, unit, &x));
  ck_assert (!x_auto (min - unit, unit, &x));
}
END_TEST

START_TEST (test_strategy_thresholds)
{
  static const struct { uint64_t bytes; uint32_t unit;
                        enum remap_strategy s; } v[] = {
    { 512 * KiB - 512, 512, REMAP_STRATEGY_MINIMAL },
    { 512 * KiB, 512, REMAP_STRATEGY_LINEAR },
    { 512 * KiB + 511, 512, REMAP_STRATEGY_LINEAR },
    { 4 * MiB - 512, 512, REMAP_STRATEGY_LINEAR },
    { 4 * MiB, 512, REMAP_STRATEGY_GEOMETRIC },
    { 512 * KiB - 1, 4096, REMAP_STRATEGY_MINIMAL },   /* 127 units */
    { 512 * KiB, 4096, REMAP_STRATEGY_LINEAR },
    { 4 * MiB - 1, 4096, REMAP_STRATEGY_LINEAR },
    { 4 * MiB, 4096, REMAP_STRATEGY_GEOMETRIC },
    { 4 * MiB + 65535, 65536, REMAP_STRATEGY_GEOMETRIC },
    { 4 * MiB - 1, 65536, REMAP_STRATEGY_LINEAR },
    { 1 * TiB, 65536, REMAP_STRATEGY_GEOMETRIC },
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    struct remap_layout l;
    struct remap_error err = { 0 };
    int r = remap_layout_compute (v[i].bytes, v[i].unit, REMAP_STRATEGY_AUTO,
                                  0, &l, &err);
    ck_assert_msg (r == 0, "row %zu: %d %s", i, r, err.msg);
    ck_assert_msg (l.strategy == v[i].s, "row %zu: strategy %d want %d", i,
                   (int) l.strategy, (int) v[i].s);
  }
}
END_TEST

/* Forced strategy and copy count: accepted exactly when they fit, with the
 * formula's offsets; refused with -EINVAL and "at most K" naming the largest
 * count that fits; -ENOSPC when nothing fits at all. */
static void
check_forced (uint64_t bytes, uint32_t unit)
{
  for (int s = REMAP_STRATEGY_MINIMAL; s <= REMAP_STRATEGY_GEOMETRIC; s++) {
    struct xl x;
    x_geometry (bytes, unit, &x);
    x.s = (enum remap_strategy) s;
    uint32_t maxfit = 0;
    uint64_t tmp[REMAP_MAX_COPIES];
    for (uint32_t n = 2; n <= REMAP_MAX_COPIES; n++)
      if (x_place (x.s, x.N, x.L, n, tmp))
        maxfit = n;
    bool big = x.N * unit >= 36 * KiB;

    for (uint32_t n = 0; n <= REMAP_MAX_COPIES + 1; n++) {
      struct remap_layout l;
      struct remap_error err = { 0 };
      int r = x_compute (bytes, unit, x.s, n, &l, &err);
      const char *ctx = remap_strategy_name (x.s);
      if (n > REMAP_MAX_COPIES || n == 1) {
        REQ (r == -EINVAL, "%s copies %u spare %" PRIu64 " unit %u: r %d",
             ctx, n, bytes, unit, r);
        continue;
      }
      if (n == 0) {             /* default count for the forced strategy */
        x.n = 0;
        for (uint32_t m = x_default_copies (x.s); m >= 2 && big; m--)
          if (x_place (x.s, x.N, x.L, m, x.off)) {
            x.n = m;
            break;
          }
        if (x.n == 0) {
          REQ (r == -ENOSPC, "%s default copies, spare %" PRIu64
               " unit %u: r %d", ctx, bytes, unit, r);
          continue;
        }
      }
      else {
        x.n = n;
        if (!big || !x_place (x.s, x.N, x.L, n, x.off)) {
          if (big && maxfit > 0) {
            char want[32];
            snprintf (want, sizeof want, "at most %u", maxfit);
            REQ (r == -EINVAL && strstr (err.msg, want),
                 "%s copies %u spare %" PRIu64 " unit %u: r %d msg '%s', "
                 "want -EINVAL '%s'", ctx, n, bytes, unit, r, err.msg, want);
          }
          else
            REQ (r == -ENOSPC, "%s copies %u spare %" PRIu64 " unit %u: "
                 "r %d, want -ENOSPC", ctx, n, bytes, unit, r);
          continue;
        }
      }
      REQ (r == 0, "%s copies %u spare %" PRIu64 " unit %u: %d %s", ctx, n,
           bytes, unit, r, err.msg);
      check_layout (&l, &x, bytes, unit, x.N <= 4096);
    }
  }
}

START_TEST (test_forced)
{
  uint32_t unit = LOOP_UNIT (_i);
  x_version = LOOP_VERSION (_i);
  uint64_t seed = 0xf0ced + _i, st = seed;
  uint64_t min = remap_layout_min_spare (unit);
  static const uint64_t fixed[] = {
    36 * KiB, 64 * KiB, 300 * KiB, 512 * KiB, 1 * MiB, 4 * MiB, 8 * MiB,
    64 * MiB, 1 * GiB, 100 * GiB,
  };

  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    check_forced (fixed[i], unit);
  for (uint64_t b = min > 4 * unit ? min - 4 * unit : 0; b < min + 64 * unit;
       b += unit)
    check_forced (b, unit);
  for (int k = 0; k < 300; k++)
    check_forced (tl_below (&st, k % 2 ? 256 * MiB : 8 * MiB) + 1, unit);
}
END_TEST

START_TEST (test_bad_arguments)
{
  struct remap_layout l;
  struct remap_error err = { 0 };
  /* Multiples of 512 that are not powers of two too (1536, 3072, 12288,
   * 65024): a unit size is a power of two, not just sector-aligned. */
  static const uint32_t bad_units[] = { 0, 1, 256, 511, 513, 1000, 3000,
                                        1536, 3072, 12288, 65024,
                                        131072, 0x80000000u };

  for (size_t i = 0; i < sizeof bad_units / sizeof bad_units[0]; i++) {
    ck_assert_int_eq (remap_layout_compute (16 * MiB, bad_units[i],
                                            REMAP_STRATEGY_AUTO, 0, &l, NULL),
                      -EINVAL);
    ck_assert (!remap_unit_valid (bad_units[i]));
    ck_assert_uint_eq (remap_layout_min_spare (bad_units[i]), 0);
  }
  for (uint32_t u = 512; u <= 65536; u *= 2)
    ck_assert (remap_unit_valid (u));
  ck_assert_int_eq (remap_layout_compute (16 * MiB, 4096,
                                          (enum remap_strategy) 4, 0, &l,
                                          NULL), -EINVAL);
  ck_assert_int_eq (remap_layout_compute (16 * MiB, 4096,
                                          (enum remap_strategy) 9, 3, &l,
                                          NULL), -EINVAL);
  /* More units than a slot number holds. */
  ck_assert_int_eq (remap_layout_compute (UINT64_C (0xffffffff) * 512, 512,
                                          REMAP_STRATEGY_AUTO, 0, &l, &err),
                    -EINVAL);
  ck_assert_msg (err.msg[0] != '\0', "no message");
  ck_assert_int_eq (remap_layout_compute (UINT64_C (0xfffffffe) * 512, 512,
                                          REMAP_STRATEGY_AUTO, 0, &l, NULL),
                    0);
  ck_assert_int_eq (remap_layout_compute (UINT64_MAX, 65536,
                                          REMAP_STRATEGY_AUTO, 0, &l, NULL),
                    -EINVAL);
}
END_TEST

/* SPEC 1.2: 2 to 8 copies.  One copy is refused whatever the size and
 * strategy, with a message that names the range and the fix; the
 * decoder rejects a superblock that records one copy. */
START_TEST (test_one_copy_refused)
{
  static const uint64_t sizes[] = { 36 * KiB, 1 * MiB, 64 * MiB, 1 * TiB };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    for (int s = REMAP_STRATEGY_AUTO; s <= REMAP_STRATEGY_GEOMETRIC; s++) {
      struct remap_layout l;
      struct remap_error err = { 0 };
      int r = remap_layout_compute (sizes[i], 4096, (enum remap_strategy) s,
                                    1, &l, &err);
      ck_assert_msg (r == -EINVAL, "size %" PRIu64 " strategy %d: r %d",
                     sizes[i], s, r);
      ck_assert_msg (strstr (err.msg, "copies=1 is refused")
                     && strstr (err.msg, "2 to 8")
                     && strstr (err.msg, "copies=2 or more"),
                     "message: %s", err.msg);
    }

  /* A superblock that says "1 copy" (its geometry otherwise consistent
   * with one copy at unit 0) is not a spare remap accepts. */
  struct remap_layout l;
  ck_assert_int_eq (remap_layout_compute (1 * MiB, 4096,
                                          REMAP_STRATEGY_LINEAR, 2, &l,
                                          NULL), 0);
  struct remap_sb sb = { .version = REMAP_SB_VERSION, .layout = l,
                         .origin_size = 1 * MiB, .spare_size = 1 * MiB,
                         .origin_units = 256, .sb_generation = 1,
                         .lost_granule = remap_lost_granule (4096) };
  sb.uuid[0] = 1;
  uint8_t buf[REMAP_SB_SIZE];
  remap_sb_encode (&sb, buf);
  struct remap_sb out;
  ck_assert_int_eq (remap_sb_decode (buf, sizeof buf, &out, NULL), 0);
  tl_put32 (buf + 100, 1);                  /* copies */
  tl_put64 (buf + 136, 0);                  /* copy_offset[1] */
  tl_sb_recrc (buf);
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_sb_decode (buf, sizeof buf, &out, &err), -EUCLEAN);
  ck_assert_msg (strstr (err.msg, "copy count"), "message: %s", err.msg);
}
END_TEST

START_TEST (test_deterministic_and_names)
{
  uint64_t st = 99;
  for (int k = 0; k < 200; k++) {
    uint64_t bytes = tl_below (&st, 1 * GiB) + 40 * KiB;
    uint32_t unit = REMAP_MIN_UNIT << tl_below (&st, 8);
    struct remap_layout a, b;
    memset (&a, 0x55, sizeof a);
    memset (&b, 0xaa, sizeof b);
    int ra = remap_layout_compute (bytes, unit, REMAP_STRATEGY_AUTO, 0, &a,
                                   NULL);
    int rb = remap_layout_compute (bytes, unit, REMAP_STRATEGY_AUTO, 0, &b,
                                   NULL);
    ck_assert_int_eq (ra, rb);
    if (ra)
      continue;
    ck_assert_uint_eq (a.spare_units, b.spare_units);
    ck_assert_uint_eq (a.copies, b.copies);
    ck_assert_int_eq (a.strategy, b.strategy);
    ck_assert_mem_eq (a.copy_offset, b.copy_offset, sizeof a.copy_offset);
    ck_assert_uint_eq (a.usable_units, b.usable_units);
  }
  static const char *names[] = { "auto", "minimal", "linear", "geometric" };
  for (int s = 0; s < 4; s++) {
    enum remap_strategy p;
    ck_assert_str_eq (remap_strategy_name ((enum remap_strategy) s),
                      names[s]);
    ck_assert_int_eq (remap_strategy_parse (names[s], &p), 0);
    ck_assert_int_eq (p, s);
  }
  enum remap_strategy p;
  ck_assert_int_eq (remap_strategy_parse ("spiral", &p), -EINVAL);
  ck_assert_int_eq (remap_strategy_parse ("", &p), -EINVAL);
}
END_TEST

/* remap_layout_compute is version 2's; version 1 is computed on request
 * and has neither maps nor pending-only blocks; other versions are
 * refused.  Version 2 extents are larger: a size can fit version 1 and
 * not version 2, never the reverse. */
START_TEST (test_versions)
{
  uint64_t st = 0x7e75;
  struct remap_layout a, b;
  struct remap_error err = { 0 };

  for (uint32_t v = 0; v < 5; v++) {
    if (v == 1 || v == 2)
      continue;
    ck_assert_int_eq (remap_layout_compute_version (v, 16 * MiB, 4096,
                                                    REMAP_STRATEGY_AUTO, 0,
                                                    &a, &err), -EINVAL);
  }
  for (int k = 0; k < 2000; k++) {
    uint64_t bytes = tl_below (&st, k % 2 ? 64 * MiB : 2 * MiB) + 16 * KiB;
    uint32_t unit = REMAP_MIN_UNIT << tl_below (&st, 8);
    int r2 = remap_layout_compute (bytes, unit, REMAP_STRATEGY_AUTO, 0, &a,
                                   NULL);
    int rv = remap_layout_compute_version (2, bytes, unit,
                                           REMAP_STRATEGY_AUTO, 0, &b, NULL);
    REQ (r2 == rv, "%" PRIu64 "/%u: %d vs %d", bytes, unit, r2, rv);
    if (r2 == 0) {
      REQ (a.version == 2 && b.version == 2, "version");
      REQ (a.copy_units == b.copy_units && a.copies == b.copies
           && memcmp (a.copy_offset, b.copy_offset, sizeof a.copy_offset)
           == 0, "%" PRIu64 "/%u: compute != compute_version (2)", bytes,
           unit);
      REQ (a.map_units >= 1, "v2 without maps");
      REQ (a.table_blocks * a.entries_per_block - a.spare_units
           >= (a.spare_units + 3) / 4, "v2: too few pending-only places");
    }
    int r1 = remap_layout_compute_version (1, bytes, unit,
                                           REMAP_STRATEGY_AUTO, 0, &b, NULL);
    REQ (r2 != 0 || r1 == 0, "%" PRIu64 "/%u: fits v2 but not v1", bytes,
         unit);
    if (r1 == 0) {
      REQ (b.version == 1 && b.map_units == 0 && b.pending_blocks == 0
           && b.table_blocks == b.real_blocks
           && b.copy_units == 1 + b.table_blocks, "%" PRIu64 "/%u: v1 "
           "geometry", bytes, unit);
      REQ (remap_layout_block_unit (&b, b.copies - 1, 0)
           == b.copy_offset[b.copies - 1] + 1, "v1 block 0 at sb + 1");
    }
  }
}
END_TEST

static Suite *
layout_suite (void)
{
  Suite *s = suite_create ("layout");
  TCase *sweep = tcase_create ("sweep");
  TCase *rules = tcase_create ("rules");

  tcase_set_timeout (sweep, 600);
  tcase_set_timeout (rules, 300);
  /* One loop iteration per unit size 512 << i. */
  tcase_add_loop_test (sweep, test_sweep_every_size, 0, 16);
  tcase_add_loop_test (sweep, test_random_sizes, 0, 16);
  tcase_add_loop_test (rules, test_minimum, 0, 8);
  tcase_add_loop_test (rules, test_forced, 0, 16);
  tcase_add_test (rules, test_versions);
  tcase_add_test (rules, test_strategy_thresholds);
  tcase_add_test (rules, test_bad_arguments);
  tcase_add_test (rules, test_one_copy_refused);
  tcase_add_test (rules, test_deterministic_and_names);
  suite_add_tcase (s, sweep);
  suite_add_tcase (s, rules);
  return s;
}

int
main (void)
{
  return tl_run (layout_suite ());
}
