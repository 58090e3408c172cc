/* remap: engine internals shared by core/engine.c (open, format, commit,
 * recovery) and core/datapath.c (reads, writes, remaps).
 *
 * Locking, in the order they are taken:
 *
 *   stripe[]    rwlocks over groups of 16 origin units (hashed onto
 *               NSTRIPES).  Reads hold their units' stripes shared; writes,
 *               remaps and unmaps hold them exclusive.  A request takes its
 *               stripes in ascending index order, so requests never
 *               deadlock.  This is what makes a remap atomic for readers:
 *               they see the old data or the new, never a mix.
 *   meta_lock   mutex: the allocator, the commit writer, the counters of the
 *               table.  One commit at a time.
 *   the table's own rwlock (table.c): taken inside every table function,
 *               never held across I/O or across calls.  Readers cannot
 *               reach the table without it (struct table is opaque).
 *
 * A mapping becomes visible (table_set) only after the commit that makes
 * it durable has returned; the unit's stripe is held exclusive across both,
 * so nobody can observe the gap.
 *
 * Exception, the fast path (datapath.c, fast_ok): while the table is empty
 * and no placement change is under way, requests skip the stripes and go
 * straight to the origin; a request that overlapped the beginning of a
 * change (begun/finished counters) is done again with the stripes held.
 */
#ifndef REMAP_CORE_ENGINE_H
#define REMAP_CORE_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "remap/meta.h"
#include "remap/remap.h"
#include "table.h"

#define NSTRIPES     1024u
#define STRIPE_SHIFT 4u

struct remap_engine {
  struct remap_backend *origin, *spare;
  struct remap_open_opts opts;
  struct remap_sb sb;           /* copy_index is set per write */
  const struct remap_layout *L; /* = &sb.layout */
  uint64_t origin_size;
  uint32_t unit, granule, granules;

  bool locks_ready;
  pthread_rwlock_t stripe[NSTRIPES];
  pthread_mutex_t meta_lock;

  /* The in-memory table: its own lock, inside (table.h).  Changed only by
   * commits (meta_lock held, so one writer at a time) and at open. */
  struct table *t;

  /* Under meta_lock. */
  uint64_t cursor;
  uint64_t pcursor;             /* next-fit among pending-only places (v2) */
  uint64_t generation;
  /* The band of free spare last reported (0: at least 10 % of the usable
   * units free, 1: under 10 %, 2: under 1 %): a warning is logged when the
   * band falls, once per crossing (spare_watch_locked).  Under meta_lock. */
  int spare_band;
  uint64_t *block_gen;          /* [T]: generation of each table block */
  uint64_t *block_cursor;       /* [T]: the cursor each block recorded */
  bool copy_ok[REMAP_MAX_COPIES];
  uint8_t *meta_buf;            /* one unit, aligned, for commits */
  uint8_t *map_buf;             /* one unit, aligned, for map units */
  /* Version 2: per copy, which table blocks its map says were written
   * (T bits; bit set only once the map saying so is durable).  NULL for
   * version 1, where every block exists.  Under meta_lock. */
  uint8_t *written[REMAP_MAX_COPIES];
  struct remap_entry *ent_buf;  /* E entries, for encoding (meta_lock) */
  uint64_t *word_buf, *lost_buf; /* E words and lost masks (meta_lock) */

  /* Placement changes (remaps, unmaps, pending marks) begun and finished.
   * The lock-free fast path (datapath.c) runs only when the two are equal
   * and nothing is remapped, and redoes its request under the stripe
   * locks if `begun' moved while it ran. */
  atomic_uint_fast64_t begun, finished;

  atomic_uint_fast64_t c_events, c_read_errors, c_write_errors,
    c_spare_errors, c_retries, c_enospc, c_meta_units, c_repaired;

  /* The error of the first failed flush of each backend since open, or 0.
   * Set once by eng_flush, never cleared: the writes that flush should
   * have made durable may be gone, so every later FLUSH and FUA request
   * fails (eng_flush_failed) until the next open (docs/ERRORS.md). */
  atomic_int origin_flush_err, spare_flush_err;

  /* Spare units whose whole copy is known to be zero bytes (extents.c):
   * ZC_ENTRIES entries, direct-mapped by spare unit, each { spare unit + 1,
   * the spare's write count (remap_backend_writes) when it was read }.
   * An entry counts only while that count has not moved: any write to the
   * spare (data, metadata, zero, trim) makes every entry stale at once,
   * with nothing to clear.  Allocated on first use; under zc_lock. */
  pthread_mutex_t zc_lock;
  struct zc_entry { uint64_t slot1, gen; } *zc;
};

#define ZC_ENTRIES 4096u

/* ---- engine.c ---- */
void eng_log (struct remap_engine *e, enum remap_log_level lvl,
              const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

/* Most changes one commit takes (a relocation takes two). */
#define COMMIT_MAX 8u

/* Write the table blocks holding the changed slots (in the order given, one
 * generation each) to every healthy copy, one copy after another with a
 * flush after each, then apply the changes to the in-memory table.
 * meta_lock held.  0, or -EIO if no copy could be written (nothing applied). */
int commit_locked (struct remap_engine *e, const struct change *c, size_t n,
                   struct remap_error *err);

/* Log an ALERT when the free spare has fallen under 10 % or 1 % of the
 * usable units since the last call (once per crossing; rising above a
 * threshold again re-arms it).  meta_lock held.  Called after every commit
 * (the only way the free count changes) and at open. */
void spare_watch_locked (struct remap_engine *e);

/* -EIO with a message if a unit of [first, last] is in doubt. */
int check_doubt (struct remap_engine *e, uint64_t first, uint64_t last,
                 struct remap_error *err);

/* Allocate a spare unit (meta_lock held).  -ENOSPC with a message. */
int alloc_locked (struct remap_engine *e, uint64_t *slot,
                  struct remap_error *err);

/* Flush backend b (e->origin or e->spare) for `why' ("a remap", "a FLUSH
 * request").  A failure is logged, naming the flush, and remembered for
 * the rest of the engine's life; it blames no unit and no copy.  0 or the
 * backend's negative errno.  Any thread, any locks. */
int eng_flush (struct remap_engine *e, struct remap_backend *b,
               const char *why);

/* -EIO with a message if a flush of the origin or the spare has failed
 * since open; else 0. */
int eng_flush_failed (struct remap_engine *e, struct remap_error *err);

/* Aligned buffer of n bytes (free with free()).  NULL on ENOMEM. */
void *eng_alloc_buf (size_t n);

/* ---- datapath.c, for extents.c ---- */

/* Hold the stripes of units [first, last] shared (at most 64 stripe
 * groups: a run of 1024 units aligned to 1024), in the order every request
 * takes them; eng_unlock_units releases them. */
void eng_lock_units_shared (struct remap_engine *e, uint64_t first,
                            uint64_t last);
void eng_unlock_units (struct remap_engine *e, uint64_t first, uint64_t last);

#endif /* REMAP_CORE_ENGINE_H */
