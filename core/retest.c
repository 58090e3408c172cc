/* remap: re-testing spare units marked BAD (remapctl spare-retest).
 *
 * A spare unit becomes BAD when a write to it fails (datapath.c), and a
 * BAD unit is never allocated again.  When the cause was not the medium,
 * or has been fixed (a loose cable, a full host file system under a sparse
 * spare, an NBD server that went away), the administrator asks for a
 * retest: each BAD unit of a range is written with a pattern of its own,
 * flushed, and read back from the medium (the page cache is dropped
 * first), then the same with zeroes.  A unit that passes both is committed
 * FREE through commit_locked and may be allocated again; a unit that
 * fails either (a media error, or bytes that differ) stays BAD.
 *
 *   BAD --pattern: write, flush, read, compare--> --zeroes: same--> FREE
 *    ^                 | media error / mismatch          |
 *    +-----------------+---------------------------------+
 *
 * Invariants, each held by the code's structure:
 * - Metadata units are never read or written: a reserved unit (rsv, fixed
 *   at open) is skipped before its slot is even looked at.
 * - Only a unit whose slot is BAD is written, and it stays BAD (so busy for
 *   the allocator, with no mapping pointing at it) until the commit that
 *   frees it has returned.
 * - One retest at a time in the process: retest_lock is held across the
 *   whole test of a unit, I/O included.  Without it, two retests of one
 *   unit could both start, the first free it, a remap place client data
 *   there, and the second write its pattern over that data.
 * - A commit that fails leaves the slot BAD in memory, out of use, whatever
 *   reached the disk: BAD and FREE are both safe for the next open to find.
 * - An error that is not a media error (a lost connection, a full file
 *   system, a permission) says nothing about the unit: the retest stops
 *   with that error and the unit stays BAD.
 *
 * Locking: retest_lock, then meta_lock, which is taken only to read a slot
 * and to commit, never across the I/O (commit_locked takes tab_lock).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static pthread_mutex_t retest_lock = PTHREAD_MUTEX_INITIALIZER;

/* The errnos a backend uses for a failing medium (backend.h: -EIO; the
 * others if a backend passes the device's own through). */
static bool
media_error (int r)
{
  return r == -EIO || r == -ENODATA || r == -EILSEQ || r == -EREMOTEIO;
}

/* A pattern that differs in every 8-byte word and from unit to unit, so
 * that a write landing on another unit, or a stale read, is seen. */
static void
fill_pattern (uint8_t *buf, uint32_t len, uint64_t s)
{
  uint64_t x = UINT64_C (0x5245544553545041)
    ^ (s * UINT64_C (0x9e3779b97f4a7c15));
  for (uint32_t i = 0; i + 8 <= len; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy (buf + i, &x, 8);
  }
}

/* Write want to spare unit s, flush, drop the cache, read it back and
 * compare.  0: passed; 1: failed (media error or mismatch, *why says
 * which); < 0: stop, not a verdict on the unit (*why says where). */
static int
write_verify (struct remap_engine *e, uint64_t s, const uint8_t *want,
              uint8_t *got, const char **why)
{
  uint64_t off = s * e->unit;
  int r;

  *why = "write";
  r = remap_backend_pwrite (e->spare, want, e->unit, off);
  if (r == 0) {
    *why = "flush";
    r = remap_backend_flush (e->spare);
  }
  if (r == 0) {
    *why = "dropping the cache";
    r = remap_backend_drop_cache (e->spare, e->unit, off);
  }
  if (r == 0) {
    *why = "read";
    r = remap_backend_pread (e->spare, got, e->unit, off);
  }
  if (r)
    return media_error (r) ? 1 : r;
  *why = "read back different bytes";
  return memcmp (want, got, e->unit) == 0 ? 0 : 1;
}

/* Test BAD unit s and free it if it passes.  0 passed and freed; 1 still
 * bad; < 0 with a message.  retest_lock held. */
static int
retest_unit (struct remap_engine *e, uint64_t s, uint8_t *pat, uint8_t *got,
             struct remap_error *err)
{
  const char *why;
  int r;

  fill_pattern (pat, e->unit, s);
  r = write_verify (e, s, pat, got, &why);
  if (r == 0) {
    memset (pat, 0, e->unit);
    r = write_verify (e, s, pat, got, &why);
  }
  if (r < 0)
    return remap_set_error (err, r, "spare %s: retest of spare unit %llu "
                            "stopped at the %s: %s; this is not a media "
                            "error, so it says nothing about the unit, "
                            "which stays bad: fix the cause and retest",
                            e->spare->name, (unsigned long long) s, why,
                            strerror (-r));
  if (r == 1) {
    eng_log (e, REMAP_LOG_WARN, "spare %s: unit %llu still fails (%s); it "
             "stays bad", e->spare->name, (unsigned long long) s, why);
    return 1;
  }

  uint64_t w, lost;
  pthread_mutex_lock (&e->meta_lock);
  table_read_slots (e->t, s, 1, &w, &lost);
  if (word_state (w) == REMAP_SLOT_BAD) {
    struct change c = { s, make_word (REMAP_SLOT_FREE, 0), 0 };
    r = commit_locked (e, &c, 1, err);
  }
  pthread_mutex_unlock (&e->meta_lock);
  if (r)
    return remap_error_prefix (err, r, "spare unit %llu passed its retest, "
                               "but freeing it could not be recorded, so "
                               "it stays bad", (unsigned long long) s);
  eng_log (e, REMAP_LOG_INFO, "spare %s: unit %llu passed its retest; free "
           "again", e->spare->name, (unsigned long long) s);
  return 0;
}

int
remap_spare_retest (struct remap_engine *e, uint64_t first, uint64_t count,
                    uint64_t *cleared, struct remap_error *err)
{
  uint64_t N = e->L->spare_units, n = 0;
  int r = 0;

  if (cleared)
    *cleared = 0;
  if (count == 0 || first >= N || count > N - first)
    return remap_set_error (err, -EINVAL, "spare units %llu+%llu: not a "
                            "range inside the spare (%llu units, 0 to "
                            "%llu)", (unsigned long long) first,
                            (unsigned long long) count,
                            (unsigned long long) N,
                            (unsigned long long) N - 1);
  if (e->opts.readonly)
    return remap_set_error (err, -EROFS, "the engine is open read-only");
  uint8_t *pat = eng_alloc_buf (e->unit), *got = eng_alloc_buf (e->unit);
  if (!pat || !got) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  /* The BAD slots of the range, from a snapshot of the table (its cost
   * follows the number of entries, not the size of the range); each is
   * checked again under meta_lock before it is freed. */
  struct remap_mapping *snap = NULL;
  size_t ns = 0;
  /* The snapshot is taken with retest_lock held: only a retest turns a BAD
   * unit into anything else, so a unit BAD in it stays BAD until this
   * retest frees it, and a unit another retest freed (and a remap may
   * since have filled with data) is never written here.  Each one is
   * checked again all the same before its pattern is written. */
  pthread_mutex_lock (&retest_lock);
  if (table_snapshot (e->t, &snap, &ns) != 0) {
    pthread_mutex_unlock (&retest_lock);
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < ns && r >= 0; i++) {
    uint64_t s = snap[i].spare_unit, w, lost;
    if (snap[i].state != REMAP_SLOT_BAD || s < first || s - first >= count)
      continue;
    if (table_is_reserved (e->t, s))
      continue;                 /* metadata: never touched */
    table_read_slots (e->t, s, 1, &w, &lost);
    if (word_state (w) != REMAP_SLOT_BAD)
      continue;
    r = retest_unit (e, s, pat, got, err);
    n += r == 0;
  }
  pthread_mutex_unlock (&retest_lock);
  free (snap);
 out:
  free (pat);
  free (got);
  if (cleared)
    *cleared = n;
  return r < 0 ? r : 0;
}
