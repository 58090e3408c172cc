/* remap: in-memory remap table (internal to core/).
 *
 * What it holds (table.c has the memory layout: it follows the number of
 * entries, not the size of the spare):
 *
 *   entries     the non-free slots (MAPPED, PENDING, BAD) and their words:
 *               state in bits 56..63, origin unit in bits 0..55, as on disk.
 *   index       origin unit -> slot, for MAPPED and PENDING slots.
 *   reserved    the extents of the metadata copies: never allocated.
 *   lost        slot -> lost-granule mask (rare).
 *   claimed     slots the allocator handed out that have no entry yet.
 *   vpend       origin units pending in memory only (nothing recorded).
 *   doubt       origin units whose last commit had an unknown outcome.
 *   held        slots that a commit of unknown outcome named: they stay out
 *               of the free pool until the next open settles what the disk
 *               holds (issue 8, item 2).
 *   counters    mapped, pending, bad, lost units and granules.
 *
 * Locking is the table's own and it is not optional: struct table is
 * opaque, and every function below takes the table's rwlock itself, shared
 * for the readers, exclusive for the writers.  No caller can reach the
 * index, the bitmaps or the maps except through these functions, so a
 * lookup can never walk an index that a writer is growing or freeing: the
 * rule lives in the structure of the code, not in a comment.  The lock is
 * held only for memory operations, never across I/O, and no function calls
 * another public one while holding it (so the writer-preferring lock
 * cannot deadlock against a recursive reader).
 *
 * What the lock does not give: atomicity across calls.  A caller that
 * looks up and then changes (commit) relies on the engine's own
 * serialisation (meta_lock for writers, the stripe locks for the data of
 * one unit); see engine.h.
 */
#ifndef REMAP_CORE_TABLE_H
#define REMAP_CORE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/format.h"
#include "remap/remap.h"

#define SLOT_NONE UINT32_MAX

struct table;

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

/* Where an origin unit lives: word 0 means on the origin (slot, lost 0). */
struct tmap {
  uint64_t slot, word, lost;
};

/* One change of a commit: slot gets word and lost mask. */
struct change {
  uint64_t slot, word, lost;
};

struct table_counts {
  uint64_t mapped, pending, bad;        /* slots in each state */
  uint64_t pending_spare;               /* PENDING slots that are spare
                                           units (not pending-only places) */
  uint64_t lost_units, lost_granules;   /* over MAPPED slots */
  uint64_t vpend;                       /* pending in memory only */
  uint64_t doubt;                       /* origin units in doubt */
  uint64_t held;                        /* FREE slots held (doubtful commit) */
};

/* ---- life ------------------------------------------------------------- */

/* An empty table of N slots (N < 2^32) in blocks of E entries (E <=
 * 65536): slots below Nreal are spare units, slots from Nreal on are
 * pending-only places (a relocation's loser there becomes FREE, not BAD).
 * 0, -EINVAL or -ENOMEM. */
int table_create (uint64_t N, uint64_t Nreal, uint32_t E,
                  struct table **out);
/* NULL is accepted.  No other thread may use t any more. */
void table_destroy (struct table *t);

/* ---- readers (shared lock) -------------------------------------------- */

/* Where origin unit u lives (MAPPED or PENDING slot, or word 0). */
void table_lookup (struct table *t, uint64_t u, struct tmap *m);
/* The same for units u0 .. u0+n-1, under one hold of the lock. */
void table_lookup_run (struct table *t, uint64_t u0, unsigned n,
                       struct tmap *m);
/* The words and lost masks of slots s0 .. s0+n-1 (0 past the end). */
void table_read_slots (struct table *t, uint64_t s0, unsigned n,
                       uint64_t *word, uint64_t *lost);
bool table_is_reserved (struct table *t, uint64_t s);
void table_get_counts (struct table *t, struct table_counts *c);
/* The first unit of [first, last] in doubt: true and *u, or false. */
bool table_doubt_find (struct table *t, uint64_t first, uint64_t last,
                       uint64_t *u);
bool table_vpend_has (struct table *t, uint64_t u);
/* Every non-free slot in slot order, in a malloc'd array the caller frees.
 * 0 or -ENOMEM. */
int table_snapshot (struct table *t, struct remap_mapping **out, size_t *n);

/* Lock-free hints (atomic loads; exact once the writer that changed them
 * has returned): MAPPED + PENDING slots, units in doubt, units pending in
 * memory only. */
uint64_t table_nindexed (const struct table *t);
uint64_t table_ndoubt (const struct table *t);
uint64_t table_nvpend (const struct table *t);

/* ---- writers (exclusive lock) ----------------------------------------- */

/* Mark [first, first+n) reserved (metadata): never allocated, never
 * written as data.  Done at open, before the first allocation.  At most 16
 * extents: 0 or -ENOSPC. */
int table_reserve_units (struct table *t, uint64_t first, uint64_t n);

/* Make room so that table_apply of n changes cannot fail.  0, -ENOMEM. */
int table_reserve (struct table *t, size_t n);

/* Apply the changes of a durable commit, in order, as one step for
 * readers.  A change that maps or marks pending origin unit u also clears u
 * from the memory-only pending set, and turns BAD any other slot that still
 * holds u (the old home of a relocation whose second block is not written
 * yet, as the next open would resolve it).  0 or -ENOMEM (nothing applied;
 * cannot happen after table_reserve (n)). */
int table_apply (struct table *t, const struct change *c, size_t n);

/* Set one slot as loaded from disk (open).  Same rules for the index,
 * busy, lost and counters as table_apply, without the relocation rule.
 * 0 or -ENOMEM (nothing changed). */
int table_load (struct table *t, uint64_t s, uint64_t word, uint64_t lost);

/* Open, fast path: fill empty block k from its E decoded words and lost
 * masks (no index yet).  0, -EBUSY (block not empty, or already indexed),
 * -ENOMEM. */
int table_load_block (struct table *t, uint64_t k, const uint64_t *word,
                      const uint64_t *lost);
/* Then build the origin index once, at its final size.  An origin unit
 * found in two slots keeps the one first_wins (opaque, a, b) prefers (a:
 * the slot already indexed, b: the new one); the other becomes BAD (a spare
 * slot) or FREE (a pending-only place) and is listed in losers (up to
 * max_losers; -E2BIG past that, the rest still resolved).  0 or -ENOMEM. */
int table_index_all (struct table *t,
                     bool (*first_wins) (void *opaque, uint64_t a,
                                         uint64_t b),
                     void *opaque, uint64_t *losers, size_t max_losers,
                     size_t *nlosers);

/* Next-fit in [lo, hi): the first free slot from *cursor (wrapping once
 * to lo).  Claims it and advances *cursor past it.  -ENOSPC if none. */
int table_alloc (struct table *t, uint64_t *cursor, uint64_t lo, uint64_t hi,
                 uint64_t *slot);
/* Give back a slot from table_alloc that never got an entry.  A held or
 * reserved slot stays busy. */
void table_unalloc (struct table *t, uint64_t s);
/* Keep slot s out of the free pool for the life of the table: a commit
 * naming it had an unknown outcome.  0 or -ENOMEM (then s is still busy
 * until something frees it: the caller logs and carries on). */
int table_hold (struct table *t, uint64_t s);

/* Origin unit u is in doubt (writes to it are refused until reopen). */
int table_doubt_add (struct table *t, uint64_t u);
/* Memory-only pending set.  add: 0 or -ENOMEM. */
int table_vpend_add (struct table *t, uint64_t u);
void table_vpend_del (struct table *t, uint64_t u);

#endif /* REMAP_CORE_TABLE_H */
