/* remap: placement of metadata copies (SPEC 1.2).
 *
 * Design: the spare is N whole units.  One metadata copy is an extent of
 * L = 1 + T units: a superblock unit followed by T table blocks, where the
 * table has one 16-byte entry per spare unit (E entries per block).  The
 * extent size therefore follows from the real metadata size, never a guess.
 * A strategy places n extents:
 *
 *   minimal    p_i = i * L                        (packed at the start)
 *   linear     p_i = floor (i * (N - L) / (n - 1)) (first at 0, last at end)
 *   geometric  p_0 = 0, p_i = floor ((N - L) / 2^(n - 1 - i))
 *              (gaps double, the last copy ends at the end of the spare)
 *
 * Extents must not overlap and at least one unit must stay usable.  AUTO
 * picks the strategy from the spare's size in bytes (N * unit) and the
 * largest default copy count that fits; forced values that do not fit are
 * refused, never silently changed.  A copy count below 2 is refused
 * whatever the size: with one copy, one damaged unit loses the table.
 * Pure arithmetic: no I/O, no allocation.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "remap/layout.h"
#include "remap/format.h"

const char *
remap_strategy_name (enum remap_strategy s)
{
  switch (s) {
  case REMAP_STRATEGY_AUTO: return "auto";
  case REMAP_STRATEGY_MINIMAL: return "minimal";
  case REMAP_STRATEGY_LINEAR: return "linear";
  case REMAP_STRATEGY_GEOMETRIC: return "geometric";
  }
  return "unknown";
}

int
remap_strategy_parse (const char *s, enum remap_strategy *out)
{
  static const enum remap_strategy all[] = {
    REMAP_STRATEGY_AUTO, REMAP_STRATEGY_MINIMAL, REMAP_STRATEGY_LINEAR,
    REMAP_STRATEGY_GEOMETRIC,
  };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (strcmp (s, remap_strategy_name (all[i])) == 0) {
      *out = all[i];
      return 0;
    }
  return -EINVAL;
}

bool
remap_unit_valid (uint64_t unit)
{
  return unit >= REMAP_MIN_UNIT && unit <= REMAP_MAX_UNIT
    && (unit & (unit - 1)) == 0;
}

static uint32_t
default_copies (enum remap_strategy s)
{
  switch (s) {
  case REMAP_STRATEGY_MINIMAL: return 2;
  case REMAP_STRATEGY_LINEAR: return 4;
  default: return 5;
  }
}

static enum remap_strategy
strategy_for_bytes (uint64_t bytes)
{
  if (bytes < REMAP_LINEAR_BYTES)
    return REMAP_STRATEGY_MINIMAL;
  if (bytes < REMAP_GEOMETRIC_BYTES)
    return REMAP_STRATEGY_LINEAR;
  return REMAP_STRATEGY_GEOMETRIC;
}

/* Place n copies of L units on N units with strategy s.  Returns true if
 * they fit: inside the spare, disjoint, and one unit left over. */
static bool
place (enum remap_strategy s, uint64_t N, uint64_t L, uint32_t n,
       uint64_t off[REMAP_MAX_COPIES])
{
  if (n < REMAP_MIN_COPIES || n > REMAP_MAX_COPIES || L > N)
    return false;
  memset (off, 0, REMAP_MAX_COPIES * sizeof off[0]);
  for (uint32_t i = 0; i < n; i++) {
    switch (s) {
    case REMAP_STRATEGY_MINIMAL:
      off[i] = (uint64_t) i * L;
      break;
    case REMAP_STRATEGY_LINEAR:
      off[i] = (uint64_t) i * (N - L) / (n - 1);
      break;
    case REMAP_STRATEGY_GEOMETRIC:
      off[i] = i == 0 ? 0 : (N - L) >> (n - 1 - i);
      break;
    default:
      return false;
    }
  }
  for (uint32_t i = 0; i < n; i++) {
    if (off[i] + L > N)
      return false;
    if (i > 0 && off[i] < off[i - 1] + L)
      return false;
  }
  return (uint64_t) n * L < N;
}

static void
geometry (uint64_t N, uint32_t unit, struct remap_layout *l)
{
  memset (l, 0, sizeof *l);
  l->unit = unit;
  l->spare_units = N;
  l->entries_per_block = (unit - REMAP_TB_HEADER_SIZE) / REMAP_ENTRY_SIZE;
  l->table_blocks = (N + l->entries_per_block - 1) / l->entries_per_block;
  l->copy_units = 1 + l->table_blocks;
}

int
remap_layout_compute (uint64_t spare_bytes, uint32_t unit,
                      enum remap_strategy strategy, uint32_t copies,
                      struct remap_layout *out, struct remap_error *err)
{
  if (!remap_unit_valid (unit))
    return remap_set_error (err, -EINVAL,
                            "unit size %u is not a power of two between "
                            "512 and 65536", unit);
  if (copies > REMAP_MAX_COPIES)
    return remap_set_error (err, -EINVAL,
                            "copies=%u is more than the maximum of %u",
                            copies, REMAP_MAX_COPIES);
  if (copies != 0 && copies < REMAP_MIN_COPIES)
    return remap_set_error (err, -EINVAL,
                            "copies=%u is refused: remap keeps %u to %u "
                            "metadata copies, so that one damaged copy "
                            "never costs the table; give copies=%u or more",
                            copies, REMAP_MIN_COPIES, REMAP_MAX_COPIES,
                            REMAP_MIN_COPIES);
  if (strategy != REMAP_STRATEGY_AUTO && strategy != REMAP_STRATEGY_MINIMAL
      && strategy != REMAP_STRATEGY_LINEAR
      && strategy != REMAP_STRATEGY_GEOMETRIC)
    return remap_set_error (err, -EINVAL, "unknown placement strategy %d",
                            (int) strategy);

  uint64_t N = spare_bytes / unit;
  if (N > REMAP_MAX_SPARE_UNITS)
    return remap_set_error (err, -EINVAL,
                            "spare of %llu bytes has more than %u units of "
                            "%u bytes; use a larger unit",
                            (unsigned long long) spare_bytes,
                            REMAP_MAX_SPARE_UNITS, unit);
  if (N * unit < REMAP_MIN_SPARE_BYTES)
    goto too_small;

  struct remap_layout l;
  geometry (N, unit, &l);
  enum remap_strategy s = strategy;
  if (s == REMAP_STRATEGY_AUTO)
    s = strategy_for_bytes (N * unit);
  l.strategy = s;

  if (copies != 0) {
    if (!place (s, N, l.copy_units, copies, l.copy_offset)) {
      uint32_t fit = 0;
      uint64_t tmp[REMAP_MAX_COPIES];
      for (uint32_t n = REMAP_MIN_COPIES; n <= REMAP_MAX_COPIES; n++)
        if (place (s, N, l.copy_units, n, tmp))
          fit = n;
      if (fit == 0)
        goto too_small;
      return remap_set_error (err, -EINVAL,
                              "copies=%u does not fit on a spare of %llu "
                              "units of %u bytes with strategy %s "
                              "(each copy needs %llu units); at most %u fit",
                              copies, (unsigned long long) N, unit,
                              remap_strategy_name (s),
                              (unsigned long long) l.copy_units, fit);
    }
    l.copies = copies;
  }
  else {
    uint32_t n = default_copies (s);
    while (n >= REMAP_MIN_COPIES && !place (s, N, l.copy_units, n,
                                            l.copy_offset))
      n--;
    if (n < REMAP_MIN_COPIES)
      goto too_small;
    l.copies = n;
  }
  l.reserved_units = (uint64_t) l.copies * l.copy_units;
  l.usable_units = N - l.reserved_units;
  *out = l;
  return 0;

 too_small:
  {
    uint64_t min = remap_layout_min_spare (unit);
    return remap_set_error (err, -ENOSPC,
                            "spare of %llu bytes is too small: with %u-byte "
                            "units it must be at least %llu bytes (%llu KiB) "
                            "to hold two metadata copies and one spare unit",
                            (unsigned long long) spare_bytes, unit,
                            (unsigned long long) min,
                            (unsigned long long) ((min + 1023) / 1024));
  }
}

uint64_t
remap_layout_min_spare (uint32_t unit)
{
  if (!remap_unit_valid (unit))
    return 0;
  uint64_t N = (REMAP_MIN_SPARE_BYTES + unit - 1) / unit;
  for (;; N++) {
    struct remap_layout l;
    uint64_t off[REMAP_MAX_COPIES];
    geometry (N, unit, &l);
    if (place (strategy_for_bytes (N * unit), N, l.copy_units,
               REMAP_MIN_COPIES, off))
      return N * unit;
  }
}

bool
remap_layout_is_reserved (const struct remap_layout *l, uint64_t u)
{
  for (uint32_t i = 0; i < l->copies; i++)
    if (u >= l->copy_offset[i] && u < l->copy_offset[i] + l->copy_units)
      return true;
  return false;
}
