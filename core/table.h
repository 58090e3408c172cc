/* remap: in-memory remap table (internal to core/).
 *
 * Three structures, all sized by the spare, none by the origin:
 *
 *   slot[N]     one 64-bit word per spare unit, the on-disk entry word:
 *               state in bits 56..63, origin unit in bits 0..55.
 *   busy, rsv   bitmaps over spare units: rsv = inside a metadata extent;
 *               busy = rsv | MAPPED | PENDING | BAD.  The allocator scans
 *               busy; a data write asserts !rsv (belt and braces).
 *   index       origin unit -> slot, open addressing with linear probing;
 *               buckets hold only a 32-bit slot number (the key is read
 *               back from slot[]), so a remap costs ~8 bytes of index at
 *               load <= 1/2, plus its 8-byte slot word.
 *   lost        slot -> lost-granule mask, a small map for the rare units
 *               with lost data.
 *
 * Locking is the caller's (see engine.h); these functions never block.
 */
#ifndef REMAP_CORE_TABLE_H
#define REMAP_CORE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/format.h"

#define SLOT_NONE UINT32_MAX

struct lostmap {
  uint64_t *keys;               /* slot + 1; 0 = empty */
  uint64_t *vals;
  size_t cap, count;            /* cap is a power of two or 0 */
};

struct table {
  uint64_t N;
  uint64_t *slot;
  uint64_t *busy;
  uint64_t *rsv;
  uint32_t *index;
  size_t index_cap, index_count;
  struct lostmap lost;
  struct lostmap vpend;         /* origin unit -> 1: pending, not on disk */
  struct lostmap doubt;         /* origin unit -> 1: state uncertain */
};

static inline enum remap_slot_state
word_state (uint64_t w)
{
  return (enum remap_slot_state) (w >> REMAP_ENTRY_STATE_SHIFT);
}

static inline uint64_t
word_origin (uint64_t w)
{
  return w & REMAP_ENTRY_ORIGIN_MASK;
}

static inline uint64_t
make_word (enum remap_slot_state s, uint64_t origin)
{
  return ((uint64_t) s << REMAP_ENTRY_STATE_SHIFT)
    | (origin & REMAP_ENTRY_ORIGIN_MASK);
}

static inline bool
bit_test (const uint64_t *bm, uint64_t i)
{
  return (bm[i / 64] >> (i % 64)) & 1;
}

static inline void
bit_set (uint64_t *bm, uint64_t i)
{
  bm[i / 64] |= UINT64_C (1) << (i % 64);
}

static inline void
bit_clear (uint64_t *bm, uint64_t i)
{
  bm[i / 64] &= ~(UINT64_C (1) << (i % 64));
}

/* Allocate an empty table for N spare units.  0 or -ENOMEM. */
int table_init (struct table *t, uint64_t N);
void table_free (struct table *t);

/* Find the slot holding origin unit u (MAPPED or PENDING); SLOT_NONE. */
uint32_t table_find (const struct table *t, uint64_t origin);

/* Set slot s to word w, keeping the index, busy bitmap and lost map in step
 * (lost applies to MAPPED only).  -ENOMEM if the index cannot grow (then
 * nothing changed). */
int table_set (struct table *t, uint64_t s, uint64_t w, uint64_t lost);

uint64_t table_lost (const struct table *t, uint64_t s);

/* Make room so that the next n table_set calls cannot fail.  0, -ENOMEM. */
int table_reserve (struct table *t, size_t n);

/* Next-fit: first slot >= *cursor (wrapping once) that is not busy.  Marks
 * it busy and advances *cursor past it.  -ENOSPC if none. */
int table_alloc (struct table *t, uint64_t *cursor, uint64_t *slot);
/* Undo table_alloc of a slot that never got an entry. */
void table_unalloc (struct table *t, uint64_t slot);

/* Small sets of origin units kept beside the table: units that failed a
 * read while nothing could be recorded (vpend) and units whose last commit
 * failed with an unknown outcome (doubt).  add: 0 or -ENOMEM. */
int table_uset_add (struct lostmap *m, uint64_t u);
bool table_uset_has (const struct lostmap *m, uint64_t u);
void table_uset_del (struct lostmap *m, uint64_t u);


#endif /* REMAP_CORE_TABLE_H */
