/* remap: placement of the metadata copies on the spare (SPEC 1.2).
 *
 * Pure arithmetic, no I/O: given the spare size, the unit size and optional
 * forced strategy / copy count, compute where every metadata copy lives.
 * docs/FORMAT.md section "Placement" states the same rules as formulas.
 */
#ifndef REMAP_LAYOUT_H
#define REMAP_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "remap/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REMAP_MIN_UNIT        512u
#define REMAP_MAX_UNIT        65536u
#define REMAP_DEFAULT_UNIT    4096u
#define REMAP_MAX_COPIES      8u
#define REMAP_MIN_COPIES      2u
/* Spare size thresholds, in bytes (of whole units). */
#define REMAP_MIN_SPARE_BYTES (36u * 1024u)
#define REMAP_LINEAR_BYTES    (512u * 1024u)
#define REMAP_GEOMETRIC_BYTES (4u * 1024u * 1024u)
/* Slots are 32-bit in memory: a spare may have at most this many units. */
#define REMAP_MAX_SPARE_UNITS 0xfffffffeu
/* Origin units must fit in 56 bits (table entry encoding). */
#define REMAP_MAX_ORIGIN_UNITS (UINT64_C (1) << 56)

enum remap_strategy {
  REMAP_STRATEGY_AUTO = 0,      /* choose from the spare size */
  REMAP_STRATEGY_MINIMAL = 1,
  REMAP_STRATEGY_LINEAR = 2,
  REMAP_STRATEGY_GEOMETRIC = 3,
};

struct remap_layout {
  uint32_t unit;                /* bytes per unit */
  uint64_t spare_units;         /* N: whole units on the spare */
  uint32_t entries_per_block;   /* E = (unit - 64) / 16 */
  uint64_t table_blocks;        /* T = ceil (N / E) */
  uint64_t copy_units;          /* L = 1 + T: one copy's extent */
  enum remap_strategy strategy; /* never AUTO once computed */
  uint32_t copies;              /* n, 2..8 */
  uint64_t copy_offset[REMAP_MAX_COPIES]; /* first unit of each copy */
  uint64_t reserved_units;      /* n * L */
  uint64_t usable_units;        /* N - n * L */
};

/* Name of a strategy ("minimal", ...) or "auto". */
const char *remap_strategy_name (enum remap_strategy s);
/* Parse a strategy name; 0 or -EINVAL. */
int remap_strategy_parse (const char *s, enum remap_strategy *out);
/* True if unit is a power of two in [512, 65536]. */
bool remap_unit_valid (uint64_t unit);

/* Compute the layout.  strategy AUTO and copies 0 mean "default for this
 * size".  Returns 0, or -EINVAL (bad unit, copies 1 or above 8, forced
 * copies that do not fit the strategy) or -ENOSPC (spare too small), with a message that
 * says the minimum.  Deterministic: same inputs, same layout. */
int remap_layout_compute (uint64_t spare_bytes, uint32_t unit,
                          enum remap_strategy strategy, uint32_t copies,
                          struct remap_layout *out, struct remap_error *err);

/* Smallest spare size in bytes that remap_layout_compute accepts for this
 * unit with default strategy and copies. */
uint64_t remap_layout_min_spare (uint32_t unit);

/* True if spare unit u lies inside some copy's extent. */
bool remap_layout_is_reserved (const struct remap_layout *l, uint64_t u);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_LAYOUT_H */
