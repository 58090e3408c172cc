/* remap: the data path: reads, writes, zero, trim, flush, and every way a
 * unit moves to the spare.
 *
 * A request is split at unit boundaries and walked in windows of up to
 * WINDOW units: the window's mappings are looked up under one shared hold
 * of the table lock, then consecutive units with the same destination are merged
 * into one backend call (a 1 MiB read of a healthy region is one pread).
 * When the table is empty (nindexed == 0) the whole request goes to the
 * origin with no lookup at all.
 *
 * Writes batch a window's pieces as reads do (remap_backend_submit, which
 * uses io_uring where the backends allow: O_DIRECT files; buffered writes
 * run one pwrite after another, because io_uring would hand each to a
 * worker thread, see core/io/file.c), and mapped units that sit on
 * consecutive spare units are one piece, for reads and writes alike.  Zero
 * and trim send one origin call per run of origin units in each chunk
 * (CHUNK_UNITS, the most one request holds locked at a time), and one
 * call in all when nothing is remapped (the lock-free fast path): a
 * 256 MiB trim is one call, not 65,536.
 *
 *   request   |----|=========|=========|=========|--|
 *   units       u0     u1        u2        u3     u4
 *   mapping   origin origin    SPARE     origin  origin
 *   calls     [ origin pread u0..u1 ][spare s][ origin pread u3..u4 ]
 *
 * Error policy (SPEC 3.2-3.5).  A failed origin call is retried unit by
 * unit so that only the units that really fail are acted on.  A unit that
 * fails a write moves to the spare (relocate), and the caller sees success.
 * A unit that fails every read attempt becomes pending and the caller gets
 * -EIO.  relocate() builds the whole unit in memory (the caller's bytes, the
 * rest read from where the unit lived, granules that cannot be read marked
 * lost), writes it to a fresh spare unit, flushes the spare, commits the
 * mapping, and only then returns: nothing is acknowledged before it is
 * durable, and no mapping ever points at data that was not written.
 *
 * Error classes (SPEC 3.10, docs/ERRORS.md).  All of the above happens
 * only for a MEDIA error (remap_error_class).  Any other error (no space,
 * a lost connection, a transient or permission error) fails the request
 * with its own errno and changes nothing: no remap, no pending mark, no
 * BAD spare unit, no lost granule.  A failed flush is a class of its own:
 * it says nothing about the unit or copy whose flush met it, so it blames
 * none; it fails the request with -EIO, and every later FLUSH and FUA
 * request too, until the next open (eng_flush, engine.c).
 *
 * Locks: see engine.h.  Every function here that ends in _locked expects the
 * unit's stripe held exclusive (shared for the read path's pending marks).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define WINDOW 256u             /* units looked up at once: 1 MiB at 4 KiB */
#define RELOCATE_ATTEMPTS 8

static const uint8_t zeros[REMAP_MAX_UNIT];

enum source { SRC_ORIGIN, SRC_SPARE, SRC_NONE };

/* ---- locking --------------------------------------------------------- */

static void
stripes (uint64_t first, uint64_t last, unsigned *a0, unsigned *a1,
         unsigned *b0, unsigned *b1)
{
  uint64_t g0 = first >> STRIPE_SHIFT, g1 = last >> STRIPE_SHIFT;
  if (g1 - g0 + 1 >= NSTRIPES) {
    *a0 = 0, *a1 = NSTRIPES - 1, *b0 = 1, *b1 = 0;
    return;
  }
  unsigned s0 = (unsigned) (g0 % NSTRIPES), s1 = (unsigned) (g1 % NSTRIPES);
  if (s0 <= s1)
    *a0 = s0, *a1 = s1, *b0 = 1, *b1 = 0;
  else                          /* wrapped: [0, s1] then [s0, end] */
    *a0 = 0, *a1 = s1, *b0 = s0, *b1 = NSTRIPES - 1;
}

static void
lock_units (struct remap_engine *e, uint64_t first, uint64_t last, bool excl)
{
  unsigned a0, a1, b0, b1;
  stripes (first, last, &a0, &a1, &b0, &b1);
  for (unsigned i = a0; i <= a1; i++)
    (excl ? pthread_rwlock_wrlock : pthread_rwlock_rdlock) (&e->stripe[i]);
  for (unsigned i = b0; i <= b1; i++)
    (excl ? pthread_rwlock_wrlock : pthread_rwlock_rdlock) (&e->stripe[i]);
}

static void
unlock_units (struct remap_engine *e, uint64_t first, uint64_t last)
{
  unsigned a0, a1, b0, b1;
  stripes (first, last, &a0, &a1, &b0, &b1);
  for (unsigned i = a0; i <= a1; i++)
    pthread_rwlock_unlock (&e->stripe[i]);
  for (unsigned i = b0; i <= b1; i++)
    pthread_rwlock_unlock (&e->stripe[i]);
}

/* ---- lookups --------------------------------------------------------- */

/* The table's own lock is taken inside these (table.h). */
static void
lookup_unit (struct remap_engine *e, uint64_t u, uint64_t *slot,
             uint64_t *word, uint64_t *lost)
{
  struct tmap m;
  table_lookup (e->t, u, &m);
  *slot = m.slot, *word = m.word, *lost = m.lost;
}

static void
lookup_window (struct remap_engine *e, uint64_t u0, unsigned n, struct tmap *m)
{
  table_lookup_run (e->t, u0, n, m);
}

/* ---- granules -------------------------------------------------------- */

/* Granules touched by [a, b) of a unit (b > a). */
static uint64_t
granules_touched (struct remap_engine *e, uint64_t a, uint64_t b)
{
  uint64_t g0 = a / e->granule, g1 = (b - 1) / e->granule;
  uint64_t m = 0;
  for (uint64_t g = g0; g <= g1; g++)
    m |= UINT64_C (1) << g;
  return m;
}

/* Granules wholly inside [a, b), counting a granule that reaches past the
 * end of the origin (valid) as wholly inside if [a, valid) covers its part. */
static uint64_t
granules_covered (struct remap_engine *e, uint64_t a, uint64_t b,
                  uint64_t valid)
{
  uint64_t m = 0;
  for (uint64_t g = 0; g < e->granules; g++) {
    uint64_t gs = g * e->granule, ge = gs + e->granule;
    if (ge > valid)
      ge = valid;
    if (gs >= ge)
      break;
    if (gs >= a && ge <= b)
      m |= UINT64_C (1) << g;
  }
  return m;
}

/* Bytes of unit u that lie inside the origin. */
static uint64_t
unit_valid (struct remap_engine *e, uint64_t u)
{
  uint64_t start = u * e->unit;
  uint64_t left = e->origin_size - start;
  return left < e->unit ? left : e->unit;
}

/* ---- error classes ---------------------------------------------------- */

/* Only a media error is a verdict on the unit that met it. */
static bool
media (int r)
{
  return remap_error_class (r) == REMAP_ERRCLASS_MEDIA;
}

/* Worth an immediate retry: the medium may answer the next time, or the
 * resource of the moment may be back.  A lost connection is the backend's
 * to re-establish; space, permission and other errors do not heal within
 * a back-off. */
static bool
retryable (int r)
{
  enum remap_errclass c = remap_error_class (r);
  return c == REMAP_ERRCLASS_MEDIA || c == REMAP_ERRCLASS_TRANSIENT;
}

static const char *
what_next (int r)
{
  switch (remap_error_class (r)) {
  case REMAP_ERRCLASS_NOSPACE:
    return "the file system or quota under it is full: free space there, "
      "or preallocate the spare, then retry";
  case REMAP_ERRCLASS_CONNECTION:
    return "it cannot be reached: retry once it is back";
  case REMAP_ERRCLASS_TRANSIENT:
    return "a passing condition: retry";
  case REMAP_ERRCLASS_PERMISSION:
    return "check that it is writable and that remap may access it";
  default:
    return "only media errors are remapped";
  }
}

/* Fail a request for a non-media error r of backend b, met by `op' (a
 * phrase: "read of", "write of") on origin unit u: the errno is kept so
 * the client can be told the right thing; nothing was changed. */
static int
not_media (struct remap_engine *e, struct remap_backend *b, const char *op,
           uint64_t u, int r, struct remap_error *err)
{
  return remap_set_error (err, r, "%s %s: %s unit %llu failed: %s (%s); "
                          "no unit changes state; %s",
                          b == e->origin ? "origin" : "spare", b->name, op,
                          (unsigned long long) u, strerror (-r),
                          remap_errclass_name (remap_error_class (r)),
                          what_next (r));
}

/* An origin that grew after format (opened with ignore_origin_size) has
 * units past the origin_units the superblock records.  The format cannot
 * name them (a reader rejects such an entry, and with it the whole block
 * in every copy), so they are never remapped nor recorded pending. */
static bool
past_recorded_origin (const struct remap_engine *e, uint64_t u)
{
  return u >= e->sb.origin_units;
}

/* ---- origin reads with retries ---------------------------------------- */

/* Counters (SPEC 4.3): read_errors counts every origin read call that
 * failed; retries counts every call made because an earlier one failed,
 * including the unit-by-unit reads that isolate a failed request. */

/* Retries of client reads (SPEC 3.3): a unit whose read fails with a
 * media or transient error (retryable) is read again read_retries times, with a back-off that doubles, and the back-off
 * is never slept with a stripe held:
 *
 *   pass 0   [stripes]  read the chunk; a unit that fails is put aside
 *   sleep               delay, nothing held
 *   pass 1   [its stripe] look each unit put aside up again, read it
 *   ...      in the last pass a unit that still fails becomes pending
 *
 * While nothing is held a unit may be rewritten, remapped or unmapped, so
 * each pass looks it up afresh; its bytes always come from one read made
 * under its stripe, so a reader still gets old or new data, never a mix.
 * Units read fine in an earlier pass stay as they were read (NBD promises
 * no atomicity across units of one request).
 *
 * Relocation (fill_from) retries without back-off: it holds the unit's
 * stripe exclusive from the first read of the old data to the commit,
 * and nothing may sleep there. */
#define RETRY_WORDS 16u
struct retry {
  unsigned left;                /* passes after the current one */
  unsigned delay_us;            /* back-off before the next pass */
  uint64_t u0;                  /* first unit of the chunk */
  bool any;
  uint64_t aside[RETRY_WORDS];  /* bit u - u0: read u again */
};

/* One more read of [off, off+len) after a failure: a retry, and a read
 * error if it fails too. */
static int
origin_reread (struct remap_engine *e, void *buf, size_t len, uint64_t off)
{
  atomic_fetch_add (&e->c_retries, 1);
  int r = remap_backend_pread (e->origin, buf, len, off);
  if (r)
    atomic_fetch_add (&e->c_read_errors, 1);
  return r;
}

/* Read with up to read_retries extra attempts, one right after the other
 * (see above: the caller holds a stripe exclusive).  after_failure: this
 * call is itself a retry of a failed read. */
static int
origin_read_retry (struct remap_engine *e, void *buf, size_t len,
                   uint64_t off, bool after_failure)
{
  if (after_failure)
    atomic_fetch_add (&e->c_retries, 1);
  int r = remap_backend_pread (e->origin, buf, len, off);
  if (r)
    atomic_fetch_add (&e->c_read_errors, 1);
  for (unsigned i = 0; r && retryable (r) && i < e->opts.read_retries; i++)
    r = origin_reread (e, buf, len, off);
  return r;
}

/* Record u as pending (a read failed).  Stripe held (shared or exclusive). */
static int
mark_pending_unit (struct remap_engine *e, uint64_t u, struct remap_error *err)
{
  uint64_t s;
  int r = 0;

  struct tmap m;
  pthread_mutex_lock (&e->meta_lock);   /* one writer of the table */
  table_lookup (e->t, u, &m);
  if (m.word != 0)
    goto out;
  /* Never write, not even a pending mark, when read-only; and never
   * record a unit the format cannot name (past_recorded_origin): both stay
   * pending in memory only. */
  if (e->opts.readonly || past_recorded_origin (e, u)) {
    table_vpend_add (e->t, u);
    goto out;
  }
  /* Version 2 records a pending unit in a pending-only place, so that a
   * dead region never takes spare units; version 1 holds a spare unit. */
  const struct remap_layout *l = e->L;
  uint64_t first = remap_layout_first_pending_slot (l);
  if (l->version >= 2
      ? table_alloc (e->t, &e->pcursor, first,
                     l->table_blocks * l->entries_per_block, &s) != 0
      : table_alloc (e->t, &e->cursor, 0, l->spare_units, &s) != 0) {
    /* Full: the unit stays unreadable, counted but not persisted. */
    if (!table_vpend_has (e->t, u))
      eng_log (e, REMAP_LOG_WARN, "unit %llu is pending, but there is no "
             "free place left to record it (%s): not recorded on disk",
             (unsigned long long) u, l->version >= 2
             ? "every pending-only place is taken" : "the spare is full");
    table_vpend_add (e->t, u);
    goto out;
  }
  struct change c = { s, make_word (REMAP_SLOT_PENDING, u), 0 };
  atomic_fetch_add (&e->begun, 1);     /* a placement change (fast_ok) */
  r = commit_locked (e, &c, 1, err);
  atomic_fetch_add (&e->finished, 1);
  if (r)
    table_unalloc (e->t, s);    /* a held slot stays busy */
 out:
  pthread_mutex_unlock (&e->meta_lock);
  return r;
}

/* Unit u's part [pos, pend) of a read failed (r).  With passes left, put
 * the unit aside for the next one (0); in the last, record it pending and
 * fail -EIO.  Stripe held. */
static int
unit_read_failed (struct remap_engine *e, uint64_t u, uint64_t pos,
                  uint64_t pend, int r, struct retry *rt,
                  struct remap_error *err)
{
  /* Only a media error is a verdict; a transient one is worth the passes
   * left; anything else fails the request and changes nothing. */
  if (!retryable (r) || (!media (r) && rt->left == 0))
    return not_media (e, e->origin, "read of", u, r, err);
  if (rt->left) {
    rt->aside[(u - rt->u0) / 64] |= UINT64_C (1) << ((u - rt->u0) % 64);
    rt->any = true;
    return 0;
  }
  eng_log (e, REMAP_LOG_WARN, "origin %s: read error in unit %llu "
           "(bytes %llu..%llu): %s; unit marked pending",
           e->origin->name, (unsigned long long) u,
           (unsigned long long) pos, (unsigned long long) pend - 1,
           strerror (-r));
  mark_pending_unit (e, u, NULL);
  return remap_set_error (err, -EIO,
                          "origin %s: cannot read unit %llu (byte %llu): "
                          "%s; the unit is now pending and will be "
                          "remapped when it is rewritten",
                          e->origin->name, (unsigned long long) u,
                          (unsigned long long) pos, strerror (-r));
}

/* Read [off, off+len) of the origin, all of it inside locked units.  On
 * failure isolate the failing units: each is put aside for a later pass,
 * or in the last pass marked pending (-EIO).  A unit failing with a
 * non-media error fails the request with that error and no unit is
 * marked: it is no unit's fault (unit_read_failed). */
static int
read_origin (struct remap_engine *e, uint8_t *buf, size_t len, uint64_t off,
             bool after_failure, struct retry *rt, struct remap_error *err)
{
  if (after_failure)
    atomic_fetch_add (&e->c_read_errors, 1);
  else if (remap_backend_pread (e->origin, buf, len, off) == 0)
    return 0;
  else
    atomic_fetch_add (&e->c_read_errors, 1);

  int ret = 0;
  uint64_t end = off + len;
  for (uint64_t pos = off; pos < end;) {
    uint64_t u = pos / e->unit;
    uint64_t pend = (u + 1) * e->unit < end ? (u + 1) * e->unit : end;
    int r = origin_reread (e, buf + (pos - off), pend - pos, pos);
    if (r && (r = unit_read_failed (e, u, pos, pend, r, rt, err)) && !ret)
      ret = r;
    pos = pend;
  }
  return ret;
}

/* ---- relocation ------------------------------------------------------ */

/* Fill ubuf[a, b) of unit u from src at base.  Granules that fail with a
 * media error read as zeroes and join *lost; any other error fails the
 * relocation (its errno, with a message): a granule is recorded as lost
 * only when the medium lost it, never because it could not be reached. */
static int
fill_from (struct remap_engine *e, enum source src, uint64_t u,
           uint64_t base, uint8_t *ubuf, uint64_t a, uint64_t b,
           uint64_t *lost, struct remap_error *err)
{
  if (a >= b)
    return 0;
  if (src == SRC_NONE) {
    memset (ubuf + a, 0, b - a);
    *lost |= granules_touched (e, a, b);
    return 0;
  }
  struct remap_backend *be = src == SRC_ORIGIN ? e->origin : e->spare;
  if (remap_backend_pread (be, ubuf + a, b - a, base + a) == 0)
    return 0;
  atomic_fetch_add (src == SRC_ORIGIN ? &e->c_read_errors
                    : &e->c_spare_errors, 1);
  for (uint64_t g = a / e->granule; g * e->granule < b; g++) {
    uint64_t ga = g * e->granule > a ? g * e->granule : a;
    uint64_t gb = (g + 1) * e->granule < b ? (g + 1) * e->granule : b;
    int r = src == SRC_ORIGIN
      ? origin_read_retry (e, ubuf + ga, gb - ga, base + ga, true)
      : remap_backend_pread (be, ubuf + ga, gb - ga, base + ga);
    if (r && src == SRC_SPARE)
      atomic_fetch_add (&e->c_spare_errors, 1);
    if (r && !media (r))
      return not_media (e, be, "reading the rest of", u, r, err);
    if (r) {
      memset (ubuf + ga, 0, gb - ga);
      *lost |= UINT64_C (1) << g;
    }
  }
  return 0;
}

struct reloc {
  uint64_t u;
  enum source src;              /* where the rest of the unit lives */
  struct tmap old;               /* current mapping (word 0 = none) */
  const uint8_t *data;          /* new bytes for [doff, doff+dlen), or NULL */
  uint64_t doff, dlen;
  uint64_t extra_lost;          /* granules to record lost anyway */
};

/* enospc=eio (SPEC 3.6): every lack of space, the spare's own or the
 * host's under either backend, is reported as EIO. */
static int
enospc (struct remap_engine *e, int r)
{
  return e->opts.enospc_as_eio
    && remap_error_class (r) == REMAP_ERRCLASS_NOSPACE ? -EIO : r;
}

/* Write ubuf to a spare unit and commit u -> it (meta_lock held).  Spare
 * units that fail the write with a media error are marked bad and another
 * is tried.  Any other write error, and any flush error, fails the
 * relocation and changes nothing: the unit keeps its old home, the new
 * slot goes back to the free pool, and no spare unit is blamed. */
static int
place_locked (struct remap_engine *e, struct reloc *rl, const uint8_t *ubuf,
              uint64_t lost, struct remap_error *err)
{
  enum remap_slot_state ost = word_state (rl->old.word);
  /* A pending unit that holds a spare unit (version 1) moves into it; one
   * in a pending-only place (version 2) gets a spare unit and gives the
   * place back in the same commit. */
  bool virt = ost == REMAP_SLOT_PENDING
    && rl->old.slot >= e->L->spare_units;
  bool reuse = ost == REMAP_SLOT_PENDING && !virt;

  for (int attempt = 0; attempt < RELOCATE_ATTEMPTS; attempt++) {
    uint64_t s;
    int r;
    if (reuse)
      s = rl->old.slot;
    else if ((r = alloc_locked (e, &s, err)) != 0)
      return r;
    if (table_is_reserved (e->t, s))  /* can't happen: rsv is busy */
      return remap_set_error (err, -EUCLEAN, "internal error: allocator "
                              "returned metadata unit %llu",
                              (unsigned long long) s);
    r = remap_backend_pwrite (e->spare, ubuf, e->unit, s * e->unit);
    if (r && !media (r)) {
      atomic_fetch_add (&e->c_spare_errors, 1);
      if (!reuse)
        table_unalloc (e->t, s);
      return not_media (e, e->spare, "writing the new spare unit of", rl->u,
                        r, err);
    }
    if (r == 0 && (r = eng_flush (e, e->spare, "a remap")) != 0) {
      if (!reuse)
        table_unalloc (e->t, s);
      return remap_set_error (err, -EIO, "spare %s: flush after writing "
                              "unit %llu to spare unit %llu failed (%s); "
                              "the unit was not remapped and no spare unit "
                              "is blamed", e->spare->name,
                              (unsigned long long) rl->u,
                              (unsigned long long) s, strerror (-r));
    }
    if (r) {
      atomic_fetch_add (&e->c_spare_errors, 1);
      eng_log (e, REMAP_LOG_WARN, "spare %s: write to unit %llu failed "
               "(%s); marking it bad", e->spare->name,
               (unsigned long long) s, strerror (-r));
      struct change bad = { s, make_word (REMAP_SLOT_BAD, 0), 0 };
      if ((r = commit_locked (e, &bad, 1, err)) != 0)
        return r;
      if (reuse)
        rl->old.word = 0;         /* the pending slot is gone */
      reuse = false;
      continue;
    }
    struct change c[2] = { { s, make_word (REMAP_SLOT_MAPPED, rl->u), lost } };
    size_t n = 1;
    if (ost == REMAP_SLOT_MAPPED && rl->old.slot != s)
      c[n++] = (struct change) { rl->old.slot, make_word (REMAP_SLOT_BAD, 0),
                                 0 };
    else if (virt && rl->old.word)
      c[n++] = (struct change) { rl->old.slot, 0, 0 };
    if ((r = commit_locked (e, c, n, err)) != 0) {
      if (!reuse)
        table_unalloc (e->t, s);  /* a held slot stays busy */
      return r;
    }
    atomic_fetch_add (&e->c_events, 1);
    eng_log (e, REMAP_LOG_DEBUG, "unit %llu -> spare unit %llu%s",
             (unsigned long long) rl->u, (unsigned long long) s,
             lost ? " (with lost data)" : "");
    return 0;
  }
  return remap_set_error (err, -EIO, "spare %s: %d spare units failed in a "
                          "row while remapping unit %llu; the spare is "
                          "failing", e->spare->name, RELOCATE_ATTEMPTS,
                          (unsigned long long) rl->u);
}

/* Move unit rl->u to a fresh spare unit (or its pending slot).  Stripe of
 * u held exclusive. */
static int relocate_inner (struct remap_engine *e, struct reloc *rl,
                           struct remap_error *err);

/* Every change of where data lives is bracketed by begun/finished, so that
 * the lock-free fast path can tell it overlapped one (see fast_ok). */
static int
relocate_raw (struct remap_engine *e, struct reloc *rl,
              struct remap_error *err)
{
  if (past_recorded_origin (e, rl->u))
    return remap_set_error (err, -EIO, "origin %s: unit %llu failed, but it "
                            "lies past the %llu units the spare was "
                            "formatted for (the origin has grown), so it "
                            "cannot be remapped; format a spare for the "
                            "origin's new size to protect all of it",
                            e->origin->name, (unsigned long long) rl->u,
                            (unsigned long long) e->sb.origin_units);
  atomic_fetch_add (&e->begun, 1);
  int r = relocate_inner (e, rl, err);
  atomic_fetch_add (&e->finished, 1);
  return r;
}

/* relocate_raw gives the errno as met (-ENOSPC for an exhausted spare
 * whatever enospc= says), so that a caller can tell exhaustion from an
 * -EIO; relocate reports it as configured. */
static int
relocate (struct remap_engine *e, struct reloc *rl, struct remap_error *err)
{
  return enospc (e, relocate_raw (e, rl, err));
}

static int
relocate_inner (struct remap_engine *e, struct reloc *rl,
                struct remap_error *err)
{
  uint64_t valid = unit_valid (e, rl->u);
  uint64_t base = rl->src == SRC_SPARE ? rl->old.slot * e->unit
    : rl->u * e->unit;
  uint64_t a = rl->data ? rl->doff : valid, b = rl->data ? rl->doff + rl->dlen
    : valid;
  uint64_t lost = 0;
  uint8_t *ubuf = eng_alloc_buf (e->unit);
  int r;

  if (!ubuf)
    return remap_set_error (err, -ENOMEM, "out of memory");
  if (!rl->data)
    a = b = 0;
  r = fill_from (e, rl->src, rl->u, base, ubuf, 0, a, &lost, err);
  if (r == 0)
    r = fill_from (e, rl->src, rl->u, base, ubuf, b, valid, &lost, err);
  if (r) {
    free (ubuf);
    return r;
  }
  memset (ubuf + valid, 0, e->unit - valid);
  if (rl->data)
    memcpy (ubuf + a, rl->data, b - a);
  uint64_t covered = b > a ? granules_covered (e, a, b, valid) : 0;
  if (rl->src == SRC_SPARE)
    lost |= rl->old.lost;
  lost = (lost | rl->extra_lost) & ~covered;

  pthread_mutex_lock (&e->meta_lock);
  r = place_locked (e, rl, ubuf, lost, err);
  pthread_mutex_unlock (&e->meta_lock);
  free (ubuf);
  return r;
}

/* ---- writes ---------------------------------------------------------- */

/* Units of [off, off+len) that were written: no longer pending. */
static void
written (struct remap_engine *e, uint64_t off, uint64_t len)
{
  if (table_nvpend (e->t) == 0)
    return;
  pthread_mutex_lock (&e->meta_lock);
  for (uint64_t u = off / e->unit; u <= (off + len - 1) / e->unit; u++)
    if (granules_covered (e, off - u * e->unit, off + len - u * e->unit,
                          unit_valid (e, u))
        == granules_covered (e, 0, e->unit, unit_valid (e, u)))
      table_vpend_del (e->t, u);
  pthread_mutex_unlock (&e->meta_lock);
}

/* The unit-by-unit part of write_origin, after a write of the whole of
 * [off, off+len) failed: each unit's piece is written again on its own, a
 * unit that fails with a media error moves to the spare with the caller's
 * bytes, and a unit that fails otherwise fails the request with that
 * error, unmoved.  Units locked exclusive. */
static int
write_origin_units (struct remap_engine *e, const uint8_t *buf, size_t len,
                    uint64_t off, struct remap_error *err)
{
  uint64_t end = off + len;
  for (uint64_t pos = off; pos < end;) {
    uint64_t u = pos / e->unit;
    uint64_t pend = (u + 1) * e->unit < end ? (u + 1) * e->unit : end;
    int r = remap_backend_pwrite (e->origin, buf + (pos - off), pend - pos,
                                  pos);
    if (r && !media (r)) {
      atomic_fetch_add (&e->c_write_errors, 1);
      return not_media (e, e->origin, "write of", u, r, err);
    }
    if (r) {
      atomic_fetch_add (&e->c_write_errors, 1);
      eng_log (e, REMAP_LOG_INFO, "origin %s: write error in unit %llu: %s;"
               " remapping it", e->origin->name, (unsigned long long) u,
               strerror (-r));
      struct reloc rl = {
        .u = u, .src = SRC_ORIGIN, .data = buf + (pos - off),
        .doff = pos - u * e->unit, .dlen = pend - pos,
      };
      lookup_unit (e, u, &rl.old.slot, &rl.old.word, &rl.old.lost);
      if ((r = relocate (e, &rl, err)) != 0)
        return r;
    }
    else
      written (e, pos, pend - pos);
    pos = pend;
  }
  return 0;
}

/* Write [off, off+len) of the origin (units locked exclusive) in one call;
 * if it fails, find the failing units (write_origin_units). */
static int
write_origin (struct remap_engine *e, const uint8_t *buf, size_t len,
              uint64_t off, struct remap_error *err)
{
  if (remap_backend_pwrite (e->origin, buf, len, off) == 0) {
    written (e, off, len);
    return 0;
  }
  return write_origin_units (e, buf, len, off, err);
}

/* Zero [off, off+len) of the origin (units locked exclusive) in one call.
 * A failure is a verdict on no unit.  A non-media error (a lost
 * connection, no space, a transient error) fails the request with its
 * errno at once: writing the zeroes unit by unit instead would turn one
 * call into len / unit writes (16 million for 64 GiB: past the kernel
 * client's timeout) and allocate a sparse origin in full.  After a media
 * error zeroes are written unit by unit through write_origin, so that only
 * a unit whose own write fails with a media error moves to the spare. */
static int
zero_origin (struct remap_engine *e, uint64_t len, uint64_t off,
             bool may_trim, struct remap_error *err)
{
  int r = remap_backend_zero (e->origin, len, off, may_trim);
  if (r == 0) {
    written (e, off, len);
    return 0;
  }
  if (!media (r))
    return not_media (e, e->origin, "zero of", off / e->unit, r, err);
  for (uint64_t p = off; p < off + len;) {
    uint64_t q = p + e->unit - p % e->unit;
    q = q < off + len ? q : off + len;
    if ((r = write_origin (e, zeros, q - p, p, err)) != 0)
      return r;
    p = q;
  }
  return 0;
}

/* First unit of [u, last] that is not FREE, or last + 1: the end of the
 * run of origin units that starts at u.  Looked up a window at a time;
 * the caller holds the stripes of [u, last]. */
static uint64_t
free_run_end (struct remap_engine *e, uint64_t u, uint64_t last)
{
  struct tmap m[WINDOW];
  if (table_nindexed (e->t) == 0)
    return last + 1;
  while (u <= last) {
    unsigned n = last - u + 1 < WINDOW ? (unsigned) (last - u + 1) : WINDOW;
    lookup_window (e, u, n, m);
    for (unsigned i = 0; i < n; i++)
      if (word_state (m[i].word) != REMAP_SLOT_FREE)
        return u + i;
    u += n;
  }
  return u;
}

/* The write of a piece of mapped unit u to its spare unit returned r: a
 * media error moves the unit to another spare unit with the piece's bytes;
 * any other error fails the request, nothing moved; success clears the
 * lost granules the piece covered, once the bytes are durable. */
static int
mapped_written (struct remap_engine *e, uint64_t u, const struct tmap *m,
                const uint8_t *data, uint64_t doff, uint64_t dlen, int r,
                struct remap_error *err)
{
  if (r && !media (r)) {
    atomic_fetch_add (&e->c_spare_errors, 1);
    return not_media (e, e->spare, "write of", u, r, err);
  }
  if (r) {                      /* the spare unit failed: move the unit */
    atomic_fetch_add (&e->c_spare_errors, 1);
    struct reloc rl = { .u = u, .src = SRC_SPARE, .old = *m, .data = data,
                        .doff = doff, .dlen = dlen };
    return relocate (e, &rl, err);
  }
  uint64_t cov = granules_covered (e, doff, doff + dlen, unit_valid (e, u));
  if (m->lost & cov) {
    /* Lost data rewritten: the bytes must be durable before the mapping
     * stops calling them lost. */
    if ((r = eng_flush (e, e->spare, "a rewrite of lost data")) != 0)
      return remap_set_error (err, -EIO, "spare %s: flush after rewriting "
                              "lost data of unit %llu failed: %s; it stays "
                              "recorded as lost", e->spare->name,
                              (unsigned long long) u, strerror (-r));
    struct change c = { m->slot, m->word, m->lost & ~cov };
    pthread_mutex_lock (&e->meta_lock);
    r = commit_locked (e, &c, 1, err);
    pthread_mutex_unlock (&e->meta_lock);
  }
  return r;
}

/* Write a piece of a mapped unit to its spare unit. */
static int
write_mapped (struct remap_engine *e, uint64_t u, const struct tmap *m,
              const uint8_t *data, uint64_t doff, uint64_t dlen,
              struct remap_error *err)
{
  int r = remap_backend_pwrite (e->spare, data, dlen,
                                m->slot * e->unit + doff);
  return mapped_written (e, u, m, data, doff, dlen, r, err);
}

/* A pending unit recorded in a pending-only place (version 2) is rewritten
 * while no spare unit is free: the write goes to the origin instead, and
 * if the origin takes it and it covered the whole unit, the unit is no
 * longer pending (its place is given back).  A unit whose origin write
 * fails with a media error too keeps its place and the caller gets
 * ENOSPC: the spare is full (SPEC 3.6).  Any other origin error (a lost
 * connection, no space under the origin, a transient error) is reported
 * as it is and changes nothing (SPEC 3.10).  Stripe held. */
static int
pending_to_origin (struct remap_engine *e, uint64_t u, const struct tmap *m,
                   const uint8_t *data, uint64_t doff, uint64_t dlen,
                   struct remap_error *err)
{
  int r = remap_backend_pwrite (e->origin, data, dlen, u * e->unit + doff);
  if (r && !media (r)) {        /* SPEC 3.10: reported as it is */
    atomic_fetch_add (&e->c_write_errors, 1);
    return not_media (e, e->origin, "write of", u, r, err);
  }
  if (r)
    return enospc (e, -ENOSPC);
  uint64_t valid = unit_valid (e, u);
  if (granules_covered (e, doff, doff + dlen, valid)
      != granules_covered (e, 0, e->unit, valid))
    return 0;                   /* part of it: still pending */
  struct change c = { m->slot, 0, 0 };
  pthread_mutex_lock (&e->meta_lock);
  atomic_fetch_add (&e->begun, 1);
  r = commit_locked (e, &c, 1, err);
  atomic_fetch_add (&e->finished, 1);
  pthread_mutex_unlock (&e->meta_lock);
  if (r == 0)
    eng_log (e, REMAP_LOG_INFO, "unit %llu: rewritten on the origin (no "
             "spare unit free); no longer pending", (unsigned long long) u);
  return r;
}

/* Source of write data: a buffer, or zeroes. */
static const uint8_t *
src_at (const uint8_t *buf, uint64_t rel)
{
  return buf ? buf + rel : zeros;
}

/* One piece of a write window (write_range). */
enum wkind {
  W_ORIGIN,                     /* a run of origin units: one pwrite */
  W_ZERO,                       /* a run of origin units: one zero */
  W_SPARE,                      /* mapped units on consecutive spare units */
  W_RELOC,                      /* a pending unit: relocated */
};

struct wpiece {
  enum wkind kind;
  unsigned i;                   /* window index of its first unit */
  unsigned units;               /* W_SPARE: how many units */
  uint64_t pos, len;            /* its bytes of the request */
  size_t io;                    /* W_ORIGIN, W_SPARE: its transfer */
};

/* The transfer of a W_SPARE piece of mapped units came back (io).  On
 * success, or a non-media error, every unit is dealt with by
 * mapped_written; a media error on a piece of several units is no verdict
 * on any of them: each is written again alone, and only a unit whose own
 * write fails with a media error moves (mapped_written). */
static int
spare_piece_done (struct remap_engine *e, const uint8_t *buf, uint64_t off,
                  const struct tmap *m, uint64_t u0, const struct wpiece *pc,
                  const struct remap_io *io, struct remap_error *err)
{
  int res = io->result;
  if (res && pc->units > 1 && media (res)) {
    atomic_fetch_add (&e->c_spare_errors, 1);
    atomic_fetch_add (&e->c_retries, 1);
  }
  for (uint64_t pos = pc->pos; pos < pc->pos + pc->len;) {
    uint64_t u = pos / e->unit, i = u - u0;
    uint64_t uend = (u + 1) * e->unit < pc->pos + pc->len
      ? (u + 1) * e->unit : pc->pos + pc->len;
    uint64_t doff = pos - u * e->unit;
    const uint8_t *data = src_at (buf, pos - off);
    int r = res && pc->units > 1 && media (res)
      ? write_mapped (e, u, &m[i], data, doff, uend - pos, err)
      : mapped_written (e, u, &m[i], data, doff, uend - pos, res, err);
    if (r)
      return r;
    pos = uend;
  }
  return 0;
}

/* Write the pieces of one locked range; buf NULL means zeroes (then
 * origin runs are zeroed with the backend's zero, may_trim as given).
 *
 * The range is walked a window of WINDOW units at a time.  A window's
 * writes (runs of origin units, and runs of mapped units whose spare units
 * are consecutive) go out as one batch (remap_backend_submit: io_uring
 * where the backends allow it); then each piece's result is acted on in
 * order, exactly as if it had been written alone: a failed origin run is
 * written again unit by unit (write_origin_units), a failed spare run too
 * if the error was a media error, and the first error that is not handled
 * by a remap fails the request.  Zeroing a run of origin units is one
 * zero call however many windows it spans; pending units are relocated
 * one at a time. */
static int
write_range (struct remap_engine *e, const uint8_t *buf, uint64_t len,
             uint64_t off, bool may_trim, bool *touched_spare,
             struct remap_error *err)
{
  uint64_t end = off + len;
  uint64_t ulast = (end - 1) / e->unit;
  struct tmap m[WINDOW];
  struct remap_io io[WINDOW];
  struct wpiece pc[WINDOW];

  /* Nothing remapped: the whole range is one origin call, as the file
   * plugin would make it. */
  if (table_nindexed (e->t) == 0)
    return buf ? write_origin (e, buf, len, off, err)
      : zero_origin (e, len, off, may_trim, err);

  for (uint64_t pos = off; pos < end;) {
    uint64_t u0 = pos / e->unit;
    unsigned n = ulast - u0 + 1 < WINDOW ? (unsigned) (ulast - u0 + 1)
      : WINDOW;
    size_t n_io = 0, n_pc = 0;
    lookup_window (e, u0, n, m);
    for (unsigned i = 0; i < n && pos < end;) {
      uint64_t u = u0 + i;
      uint64_t uend = (u + 1) * e->unit < end ? (u + 1) * e->unit : end;
      enum remap_slot_state st = word_state (m[i].word);
      struct wpiece *p = &pc[n_pc];
      if (st == REMAP_SLOT_FREE) {
        unsigned j = i + 1;     /* merge a run of origin units */
        while (j < n && word_state (m[j].word) == REMAP_SLOT_FREE)
          j++;
        uint64_t rend_u = u0 + j;
        if (!buf && j == n)     /* a zero run goes on past the window */
          rend_u = free_run_end (e, u0 + n, ulast);
        uint64_t rend = rend_u * e->unit < end ? rend_u * e->unit : end;
        *p = (struct wpiece) { buf ? W_ORIGIN : W_ZERO, i, 0, pos,
                               rend - pos, n_io };
        if (buf)
          io[n_io++] = (struct remap_io) { e->origin,
                                           (void *) (buf + (pos - off)),
                                           rend - pos, pos, true, 0 };
        n_pc++;
        pos = rend;
        i = j;
      }
      else if (st == REMAP_SLOT_MAPPED) {
        uint64_t soff = m[i].slot * e->unit + (pos - u * e->unit);
        struct wpiece *q = n_pc ? &pc[n_pc - 1] : NULL;
        if (buf && q && q->kind == W_SPARE
            && io[q->io].off + io[q->io].len == soff) {
          io[q->io].len += uend - pos;  /* the next spare unit: merge */
          q->len += uend - pos;
          q->units++;
        }
        else {
          *p = (struct wpiece) { W_SPARE, i, 1, pos, uend - pos, n_io };
          io[n_io++] = (struct remap_io) { e->spare,
                                           (void *) src_at (buf, pos - off),
                                           uend - pos, soff, true, 0 };
          n_pc++;
        }
        *touched_spare = true;
        pos = uend;
        i++;
      }
      else {
        *p = (struct wpiece) { W_RELOC, i, 1, pos, uend - pos, 0 };
        n_pc++;
        *touched_spare = true;
        pos = uend;
        i++;
      }
    }

    remap_backend_submit (io, n_io);
    for (size_t k = 0; k < n_pc; k++) {
      struct wpiece *p = &pc[k];
      uint64_t u = u0 + p->i;
      const uint8_t *data = src_at (buf, p->pos - off);
      int r = 0;
      switch (p->kind) {
      case W_ORIGIN:
        if (io[p->io].result == 0)
          written (e, p->pos, p->len);
        else
          r = write_origin_units (e, data, p->len, p->pos, err);
        break;
      case W_ZERO:
        r = zero_origin (e, p->len, p->pos, may_trim, err);
        break;
      case W_SPARE:
        r = spare_piece_done (e, buf, off, m, u0, p, &io[p->io], err);
        break;
      case W_RELOC: {
        uint64_t doff = p->pos - u * e->unit;
        struct reloc rl = { .u = u, .src = SRC_ORIGIN, .old = m[p->i],
                            .data = data, .doff = doff, .dlen = p->len };
        /* Only a spare that had no room sends it to the origin: with
         * enospc=eio an -EIO from relocate (a failed flush or commit) is
         * not that, and neither is a commit that failed with -ENOSPC (the
         * file system under the spare full): that unit is in doubt, and
         * its homes must keep their bytes until the next open. */
        uint64_t du;
        r = relocate_raw (e, &rl, err);
        if (r == -ENOSPC && m[p->i].slot >= e->L->spare_units
            && !(table_ndoubt (e->t) > 0
                 && table_doubt_find (e->t, u, u, &du)))
          r = pending_to_origin (e, u, &m[p->i], data, doff, p->len, err);
        r = enospc (e, r);
        break;
      }
      }
      if (r)
        return r;
    }
  }
  return 0;
}

static int
check_range (struct remap_engine *e, uint64_t len, uint64_t off,
             struct remap_error *err)
{
  if (off > e->origin_size || len > e->origin_size - off)
    return remap_set_error (err, -EINVAL, "request of %llu bytes at offset "
                            "%llu is past the end of the disk (%llu bytes)",
                            (unsigned long long) len,
                            (unsigned long long) off,
                            (unsigned long long) e->origin_size);
  if (e->opts.readonly)
    return remap_set_error (err, -EROFS, "the engine is open read-only");
  return 0;
}

/* Flush the origin and, if asked, the spare (both, even if the first
 * fails), for `why' (a FLUSH or FUA request).  -EIO if one fails now or
 * any flush failed before: a failed flush is never forgotten, because the
 * writes it should have made durable may be gone (docs/ERRORS.md). */
static int
flush_backends (struct remap_engine *e, bool spare, const char *why,
                struct remap_error *err)
{
  int ro = eng_flush (e, e->origin, why);
  int rs = spare ? eng_flush (e, e->spare, why) : 0;
  if (ro || rs)
    return remap_set_error (err, -EIO, "%s %s: flush failed: %s; writes "
                            "acknowledged before it may not be on the disk",
                            ro ? "origin" : "spare",
                            ro ? e->origin->name : e->spare->name,
                            strerror (-(ro ? ro : rs)));
  return eng_flush_failed (e, err);
}

static int
fua (struct remap_engine *e, bool spare, struct remap_error *err)
{
  return flush_backends (e, spare, "a FUA request", err);
}

/* The lock-free fast path.  While nothing is remapped, pending or in
 * doubt, and no placement change is under way, a request can go straight
 * to the origin without stripe locks or lookups: that is what keeps remap
 * as cheap as nbdkit's file plugin on a healthy disk.  fast_ok samples the
 * change counters (finished before begun, so a change that completed is
 * also seen in nindexed); fast_still_ok says whether a change began while
 * the request ran, in which case the caller redoes it on the locked path
 * (a write is idempotent, a read is simply read again).  A change that
 * began before the sample either finished (and is visible in nindexed) or
 * is counted as under way. */
static bool
fast_ok (struct remap_engine *e, uint64_t *sample)
{
  uint64_t f = atomic_load (&e->finished);
  uint64_t b = atomic_load (&e->begun);
  *sample = b;
  return b == f && table_nindexed (e->t) == 0
    && table_ndoubt (e->t) == 0 && table_nvpend (e->t) == 0
    && !e->opts.readonly;
}

static bool
fast_still_ok (struct remap_engine *e, uint64_t sample)
{
  return atomic_load (&e->begun) == sample;
}

/* Requests are served in pieces of at most CHUNK_UNITS units, aligned to
 * stripe groups, each under its own stripe locks: a request never holds
 * more than 32 stripes, and NBD promises no atomicity across a request,
 * only per unit, which the stripes still give.  ThreadSanitizer's deadlock
 * detector aborts a thread that holds more than 64 locks, and a chunk's
 * stripes are not all a thread holds: the table's lock (every lookup), the
 * meta lock, the backends' own locks come on top.  With 64 stripes a
 * request of 4 MiB or more over remapped units took the 65th lock in
 * lookup_window and aborted the test under TSan. */
#define CHUNK_GROUPS 32u
#define CHUNK_UNITS ((uint64_t) CHUNK_GROUPS << STRIPE_SHIFT)
_Static_assert (CHUNK_GROUPS <= 32 && NSTRIPES % CHUNK_GROUPS == 0,
                "a chunk leaves ThreadSanitizer room for the locks taken "
                "while it is held, and never wraps the stripe array");

static uint64_t
chunk_end (struct remap_engine *e, uint64_t pos, uint64_t end)
{
  uint64_t u = pos / e->unit;
  uint64_t next = (u / CHUNK_UNITS + 1) * CHUNK_UNITS * e->unit;
  return next < end ? next : end;
}

/* Write (buf) or zero (buf NULL) [off, off+len) chunk by chunk, each under
 * its stripes, then FUA if asked. */
static int
write_chunks (struct remap_engine *e, const void *buf, uint64_t len,
              uint64_t off, unsigned flags, struct remap_error *err)
{
  bool spare = false;
  int r = 0;
  for (uint64_t pos = off; r == 0 && pos < off + len;) {
    uint64_t cend = chunk_end (e, pos, off + len);
    uint64_t first = pos / e->unit, last = (cend - 1) / e->unit;
    lock_units (e, first, last, true);
    r = check_doubt (e, first, last, err);
    if (r == 0)
      r = write_range (e, buf ? (const uint8_t *) buf + (pos - off) : NULL,
                       cend - pos, pos, !buf && (flags & REMAP_MAY_TRIM),
                       &spare, err);
    unlock_units (e, first, last);
    pos = cend;
  }
  if (r == 0 && (flags & REMAP_FUA))
    r = fua (e, spare, err);
  return enospc (e, r);
}

int
remap_pwrite (struct remap_engine *e, const void *buf, size_t len,
              uint64_t off, unsigned flags, struct remap_error *err)
{
  int r = check_range (e, len, off, err);
  uint64_t sample;
  if (r == 0 && len && fast_ok (e, &sample)
      && remap_backend_pwrite (e->origin, buf, len, off) == 0
      && fast_still_ok (e, sample))
    len = 0;                    /* done; only FUA is left */
  if (r == 0)
    r = write_chunks (e, buf, len, off, flags, err);
  return r;
}

int
remap_zero (struct remap_engine *e, uint64_t len, uint64_t off,
            unsigned flags, struct remap_error *err)
{
  int r = check_range (e, len, off, err);
  uint64_t sample;
  /* As remap_pwrite: with nothing remapped the whole range is one zero
   * of the origin; anything that moved meanwhile is zeroed again under
   * the stripes (zeroing twice is zeroing). */
  if (r == 0 && len && fast_ok (e, &sample)
      && remap_backend_zero (e->origin, len, off,
                             (flags & REMAP_MAY_TRIM) != 0) == 0
      && fast_still_ok (e, sample))
    len = 0;                    /* done; only FUA is left */
  return r ? r : write_chunks (e, NULL, len, off, flags, err);
}

/* Trim [off, off+len) of the origin where its units live on the origin,
 * chunk by chunk under the stripes: each run of FREE units of a chunk is
 * one trim call.  Trim is advisory: the data of a remapped unit stays
 * where it is, a pending unit is left alone, and errors are ignored. */
static void
trim_chunks (struct remap_engine *e, uint64_t len, uint64_t off)
{
  for (uint64_t pos = off; pos < off + len;) {
    uint64_t cend = chunk_end (e, pos, off + len);
    uint64_t first = pos / e->unit, last = (cend - 1) / e->unit;
    lock_units (e, first, last, true);
    while (pos < cend) {
      uint64_t u = pos / e->unit;
      uint64_t rend_u = free_run_end (e, u, last);
      uint64_t rend = rend_u * e->unit < cend ? rend_u * e->unit : cend;
      if (rend_u > u)
        remap_backend_trim (e->origin, rend - pos, pos);
      else                      /* remapped or pending: skip the unit */
        rend = (u + 1) * e->unit < cend ? (u + 1) * e->unit : cend;
      pos = rend;
    }
    unlock_units (e, first, last);
  }
}

int
remap_trim (struct remap_engine *e, uint64_t len, uint64_t off,
            unsigned flags, struct remap_error *err)
{
  int r = check_range (e, len, off, err);
  uint64_t sample;
  if (r)
    return r;
  /* Nothing remapped: one trim of the origin.  If a unit moved while it
   * ran, trim again under the stripes (a trim is advisory: trimming an
   * origin unit twice, or one that just moved to the spare, loses nothing
   * the client did not ask to discard). */
  if (len && fast_ok (e, &sample)) {
    remap_backend_trim (e->origin, len, off);
    if (fast_still_ok (e, sample))
      len = 0;
  }
  if (len)
    trim_chunks (e, len, off);
  if (flags & REMAP_FUA)
    r = fua (e, false, err);
  return r;
}

int
remap_flush (struct remap_engine *e, struct remap_error *err)
{
  return flush_backends (e, true, "a FLUSH request", err);
}

/* ---- reads ----------------------------------------------------------- */

static int
lost_error (struct remap_engine *e, uint64_t u, uint64_t doff,
            struct remap_error *err)
{
  return remap_set_error (err, -EIO, "unit %llu (byte %llu) holds data "
                          "that was lost when the origin failed; it reads "
                          "as an error until it is rewritten",
                          (unsigned long long) u,
                          (unsigned long long) (u * e->unit + doff));
}

/* One piece of a read window: where it goes and which unit it starts at;
 * a spare piece covers `units' mapped units on consecutive spare units. */
struct rpiece {
  uint64_t u;
  bool spare;
  uint64_t slot;
};

/* A media error met by a spare piece (one or more units mapped to
 * consecutive spare units).  A piece of several units is read again unit
 * by unit, so that the message names the spare unit that fails; nothing
 * changes state either way (a failing spare unit moves only when it is
 * written).  -EIO, or 0 if every unit reads this time. */
static int
spare_read_failed (struct remap_engine *e, struct remap_io *io,
                   const struct rpiece *pc, struct remap_error *err)
{
  uint8_t *buf = io->buf;
  uint64_t off = io->off, end = io->off + io->len;
  int r = io->result;

  atomic_fetch_add (&e->c_spare_errors, 1);
  if (off / e->unit != (end - 1) / e->unit) {
    for (r = 0; off < end && r == 0;) {
      uint64_t uend = (off / e->unit + 1) * e->unit < end
        ? (off / e->unit + 1) * e->unit : end;
      r = remap_backend_pread (e->spare, buf, uend - off, off);
      if (r == 0) {
        buf += uend - off;
        off = uend;
      }
    }
    if (r == 0)
      return 0;
    if (!media (r))
      return not_media (e, e->spare, "read of",
                        pc->u + (off / e->unit - pc->slot), r, err);
  }
  return remap_set_error (err, -EIO, "spare %s: cannot read spare unit "
                          "%llu (data of unit %llu): %s", e->spare->name,
                          (unsigned long long) (off / e->unit),
                          (unsigned long long) (pc->u + off / e->unit
                                                - pc->slot),
                          strerror (-r));
}

/* Read the pieces of one window: build the batch (spare pieces and merged
 * origin runs), submit it in one go, then redo failed origin pieces through
 * read_origin, which retries unit by unit and records pending units. */
static int
read_window (struct remap_engine *e, uint8_t *buf, uint64_t off,
             uint64_t end, uint64_t *pos, uint64_t last, struct retry *rt,
             struct remap_error *err)
{
  struct tmap m[WINDOW];
  struct remap_io io[WINDOW];
  struct rpiece pc[WINDOW];
  size_t n_io = 0;
  int ret = 0;
  uint64_t u0 = *pos / e->unit;
  unsigned n = last - u0 + 1 < WINDOW ? (unsigned) (last - u0 + 1) : WINDOW;

  lookup_window (e, u0, n, m);
  for (unsigned i = 0; i < n && *pos < end;) {
    uint64_t u = u0 + i, p = *pos;
    uint64_t uend = (u + 1) * e->unit < end ? (u + 1) * e->unit : end;
    if (word_state (m[i].word) == REMAP_SLOT_MAPPED) {
      uint64_t doff = p - u * e->unit;
      if (m[i].lost & granules_touched (e, doff, uend - u * e->unit)) {
        if (!ret)
          ret = lost_error (e, u, doff, err);
      }
      else {
        /* Units mapped to consecutive spare units, none with lost data
         * in the part read, are one transfer. */
        unsigned j = i + 1;
        while (j < n && uend < end
               && word_state (m[j].word) == REMAP_SLOT_MAPPED
               && m[j].slot == m[j - 1].slot + 1) {
          uint64_t jend = uend + e->unit < end ? uend + e->unit : end;
          if (m[j].lost & granules_touched (e, 0, jend - uend))
            break;              /* its own piece reports the lost data */
          uend = jend;
          j++;
        }
        io[n_io] = (struct remap_io) { e->spare, buf + (p - off), uend - p,
                                       m[i].slot * e->unit + doff, false, 0 };
        pc[n_io++] = (struct rpiece) { u, true, m[i].slot };
        i = j - 1;
      }
      *pos = uend;
      i++;
    }
    else {                      /* origin: free or pending units */
      unsigned j = i + 1;
      while (j < n && word_state (m[j].word) != REMAP_SLOT_MAPPED)
        j++;
      uint64_t rend = (u0 + j) * e->unit < end ? (u0 + j) * e->unit : end;
      io[n_io] = (struct remap_io) { e->origin, buf + (p - off), rend - p, p,
                                     false, 0 };
      pc[n_io++] = (struct rpiece) { u, false, 0 };
      *pos = rend;
      i = j;
    }
  }
  if (remap_backend_submit (io, n_io) == 0)
    return ret;
  for (size_t k = 0; k < n_io; k++) {
    int r = 0;
    if (io[k].result == 0)
      continue;
    if (!pc[k].spare)
      r = read_origin (e, io[k].buf, io[k].len, io[k].off, true, rt, err);
    else if (!media (io[k].result)) {
      atomic_fetch_add (&e->c_spare_errors, 1);
      r = not_media (e, e->spare, "read of", pc[k].u, io[k].result, err);
    }
    else
      r = spare_read_failed (e, &io[k], &pc[k], err);
    if (r && !ret)
      ret = r;                  /* keep going: find every failing unit */
  }
  return ret;
}

_Static_assert (CHUNK_UNITS <= 64 * RETRY_WORDS,
                "a retry pass covers a whole chunk");

/* Read unit u's part [a, b) of the request again, in a pass of its own
 * (struct retry): under its stripe, looked up afresh. */
static int
reread_unit (struct remap_engine *e, uint8_t *buf, uint64_t off, uint64_t a,
             uint64_t b, struct retry *rt, struct remap_error *err)
{
  uint64_t u = a / e->unit, pos = a;
  struct tmap m = { 0 };
  int r;

  lock_units (e, u, u, false);
  if (table_nindexed (e->t))
    lookup_unit (e, u, &m.slot, &m.word, &m.lost);
  if (word_state (m.word) == REMAP_SLOT_MAPPED)  /* remapped meanwhile */
    r = read_window (e, buf, off, b, &pos, u, rt, err);
  else if ((r = origin_reread (e, buf + (a - off), b - a, a)) != 0)
    r = unit_read_failed (e, u, a, b, r, rt, err);
  unlock_units (e, u, u);
  return r;
}

/* The passes after the first over [cpos, end): back off with no stripe
 * held, then read each unit put aside again. */
static int
retry_put_aside (struct remap_engine *e, uint8_t *buf, uint64_t off,
                 uint64_t cpos, uint64_t end, struct retry *rt,
                 struct remap_error *err)
{
  int ret = 0;
  while (rt->any) {
    uint64_t aside[RETRY_WORDS];
    if (rt->delay_us && e->opts.sleep_us)
      e->opts.sleep_us (rt->delay_us);
    rt->delay_us = rt->delay_us > REMAP_MAX_RETRY_DELAY_US / 2
      ? REMAP_MAX_RETRY_DELAY_US : rt->delay_us * 2;
    rt->left--;
    memcpy (aside, rt->aside, sizeof aside);
    memset (rt->aside, 0, sizeof rt->aside);
    rt->any = false;
    for (unsigned i = 0; i < 64 * RETRY_WORDS; i++) {
      if (!(aside[i / 64] & (UINT64_C (1) << (i % 64))))
        continue;
      uint64_t u = rt->u0 + i;
      uint64_t a = u * e->unit > cpos ? u * e->unit : cpos;
      uint64_t b = (u + 1) * e->unit < end ? (u + 1) * e->unit : end;
      int r = reread_unit (e, buf, off, a, b, rt, err);
      if (r && !ret)
        ret = r;
    }
  }
  return ret;
}

int
remap_pread (struct remap_engine *e, void *vbuf, size_t len, uint64_t off,
             struct remap_error *err)
{
  uint8_t *buf = vbuf;
  if (off > e->origin_size || len > e->origin_size - off)
    return remap_set_error (err, -EINVAL, "read of %zu bytes at offset %llu "
                            "is past the end of the disk", len,
                            (unsigned long long) off);
  if (len == 0)
    return 0;
  uint64_t sample;
  if (fast_ok (e, &sample)
      && remap_backend_pread (e->origin, buf, len, off) == 0
      && fast_still_ok (e, sample))
    return 0;
  int ret = 0;
  for (uint64_t cpos = off; cpos < off + len;) {
    uint64_t end = chunk_end (e, cpos, off + len);
    uint64_t first = cpos / e->unit, last = (end - 1) / e->unit;
    struct retry rt = { .left = e->opts.read_retries,
                        .delay_us = e->opts.retry_delay_us, .u0 = first };
    lock_units (e, first, last, false);
    if (table_nindexed (e->t) == 0) {
      int r = read_origin (e, buf + (cpos - off), end - cpos, cpos, false,
                           &rt, err);
      if (r && !ret)
        ret = r;
    }
    else
      for (uint64_t pos = cpos; pos < end;) {
        int r = read_window (e, buf, off, end, &pos, last, &rt, err);
        if (r && !ret)
          ret = r;
      }
    unlock_units (e, first, last);
    int r = retry_put_aside (e, buf, off, cpos, end, &rt, err);
    if (r && !ret)
      ret = r;
    cpos = end;
  }
  return ret;
}

/* ---- table operations of the API --------------------------------------- */

static int
check_unit (struct remap_engine *e, uint64_t u, struct remap_error *err)
{
  if (u >= e->sb.origin_units)
    return remap_set_error (err, -EINVAL, "unit %llu is past the end of the "
                            "origin (%llu units)", (unsigned long long) u,
                            (unsigned long long) e->sb.origin_units);
  if (e->opts.readonly)
    return remap_set_error (err, -EROFS, "the engine is open read-only");
  return check_doubt (e, u, u, err);
}

int
remap_lookup (struct remap_engine *e, uint64_t u, struct remap_mapping *mp)
{
  if (u >= e->sb.origin_units)
    return -EINVAL;
  struct tmap m;
  lookup_unit (e, u, &m.slot, &m.word, &m.lost);
  mp->origin_unit = u;
  mp->state = word_state (m.word);
  mp->spare_unit = m.slot;
  mp->lost = m.lost;
  return 0;
}

int
remap_unit_pending (struct remap_engine *e, uint64_t u)
{
  if (u > (e->origin_size - 1) / e->unit)
    return -EINVAL;
  if (u < e->sb.origin_units) {
    struct tmap m;
    table_lookup (e->t, u, &m);
    if (word_state (m.word) == REMAP_SLOT_PENDING)
      return 1;
  }
  if (table_nvpend (e->t) == 0)
    return 0;
  return table_vpend_has (e->t, u) ? 2 : 0;
}

int
remap_remap (struct remap_engine *e, uint64_t u, unsigned flags,
             struct remap_error *err)
{
  int r = check_unit (e, u, err);
  if (r)
    return r;
  lock_units (e, u, u, true);
  struct reloc rl = { .u = u,
                      .src = flags & REMAP_REMAP_NOCOPY ? SRC_NONE
                      : SRC_ORIGIN };
  lookup_unit (e, u, &rl.old.slot, &rl.old.word, &rl.old.lost);
  if (word_state (rl.old.word) != REMAP_SLOT_MAPPED)
    r = relocate (e, &rl, err);
  unlock_units (e, u, u);
  return r;
}

int
remap_mark_pending (struct remap_engine *e, uint64_t u,
                    struct remap_error *err)
{
  int r = check_unit (e, u, err);
  if (r)
    return r;
  lock_units (e, u, u, true);
  r = mark_pending_unit (e, u, err);
  unlock_units (e, u, u);
  return r;
}

int
remap_mark_lost (struct remap_engine *e, uint64_t u, uint64_t mask,
                 struct remap_error *err)
{
  int r = check_unit (e, u, err);
  if (r)
    return r;
  uint64_t valid = unit_valid (e, u);
  mask &= granules_touched (e, 0, valid);
  lock_units (e, u, u, true);
  struct reloc rl = { .u = u, .src = SRC_ORIGIN, .extra_lost = mask };
  lookup_unit (e, u, &rl.old.slot, &rl.old.word, &rl.old.lost);
  if (word_state (rl.old.word) == REMAP_SLOT_MAPPED) {
    if ((rl.old.lost | mask) != rl.old.lost) {
      struct change c = { rl.old.slot, rl.old.word, rl.old.lost | mask };
      pthread_mutex_lock (&e->meta_lock);
      r = commit_locked (e, &c, 1, err);
      pthread_mutex_unlock (&e->meta_lock);
    }
  }
  else
    r = relocate (e, &rl, err);
  unlock_units (e, u, u);
  return r;
}

int
remap_mark_spare_bad (struct remap_engine *e, uint64_t s,
                      struct remap_error *err)
{
  if (s >= e->L->spare_units)
    return remap_set_error (err, -EINVAL, "spare unit %llu is past the end "
                            "of the spare (%llu units)",
                            (unsigned long long) s,
                            (unsigned long long) e->L->spare_units);
  if (table_is_reserved (e->t, s))
    return remap_set_error (err, -EINVAL, "spare unit %llu holds metadata; "
                            "a damaged metadata copy is repaired, not marked "
                            "bad", (unsigned long long) s);
  if (e->opts.readonly)
    return remap_set_error (err, -EROFS, "the engine is open read-only");

  pthread_mutex_lock (&e->meta_lock);
  uint64_t w, lost;
  table_read_slots (e->t, s, 1, &w, &lost);
  int r = 0;
  if (word_state (w) == REMAP_SLOT_FREE) {
    struct change c = { s, make_word (REMAP_SLOT_BAD, 0), 0 };
    r = commit_locked (e, &c, 1, err);
  }
  pthread_mutex_unlock (&e->meta_lock);
  if (word_state (w) != REMAP_SLOT_MAPPED
      && word_state (w) != REMAP_SLOT_PENDING)
    return r;

  uint64_t u = word_origin (w);
  lock_units (e, u, u, true);
  struct reloc rl = { .u = u };
  lookup_unit (e, u, &rl.old.slot, &rl.old.word, &rl.old.lost);
  if (rl.old.slot == s && word_state (rl.old.word) == REMAP_SLOT_MAPPED) {
    rl.src = SRC_SPARE;
    r = relocate (e, &rl, err);
  }
  else if (rl.old.slot == s) {  /* pending: move the hold elsewhere */
    struct change c = { s, make_word (REMAP_SLOT_BAD, 0), 0 };
    pthread_mutex_lock (&e->meta_lock);
    r = commit_locked (e, &c, 1, err);
    pthread_mutex_unlock (&e->meta_lock);
    if (r == 0)
      r = mark_pending_unit (e, u, err);
  }
  unlock_units (e, u, u);
  return r;
}

int
remap_unmap (struct remap_engine *e, uint64_t u, unsigned flags,
             struct remap_error *err)
{
  int r = check_unit (e, u, err);
  if (r)
    return r;
  lock_units (e, u, u, true);
  atomic_fetch_add (&e->begun, 1);
  struct tmap m;
  lookup_unit (e, u, &m.slot, &m.word, &m.lost);
  enum remap_slot_state st = word_state (m.word);
  if (st == REMAP_SLOT_FREE)
    goto out;
  if (st == REMAP_SLOT_MAPPED && !(flags & REMAP_UNMAP_DISCARD)) {
    if (m.lost) {
      r = remap_set_error (err, -EBUSY, "unit %llu has lost data; unmapping "
                           "it would turn the loss into stale origin bytes. "
                           "Rewrite the unit first, or discard its data",
                           (unsigned long long) u);
      goto out;
    }
    uint64_t valid = unit_valid (e, u);
    uint8_t *ubuf = eng_alloc_buf (e->unit);
    if (!ubuf) {
      r = remap_set_error (err, -ENOMEM, "out of memory");
      goto out;
    }
    r = remap_backend_pread (e->spare, ubuf, valid, m.slot * e->unit);
    if (r == 0)
      r = remap_backend_pwrite (e->origin, ubuf, valid, u * e->unit);
    if (r == 0)
      r = eng_flush (e, e->origin, "an unmap");
    free (ubuf);
    if (r) {
      r = remap_set_error (err, -EIO, "unit %llu: copying its data back to "
                           "the origin failed (%s); it stays remapped",
                           (unsigned long long) u, strerror (-r));
      goto out;
    }
  }
  struct change c = { m.slot, 0, 0 };
  pthread_mutex_lock (&e->meta_lock);
  r = commit_locked (e, &c, 1, err);
  pthread_mutex_unlock (&e->meta_lock);
 out:
  atomic_fetch_add (&e->finished, 1);
  unlock_units (e, u, u);
  return r;
}

/* ---- stripes for the other files of core/ --------------------------------- */

/* core/extents.c holds the stripes of a run of units shared while it reads
 * the origin's allocation and the table, so that no write, remap or unmap
 * (all exclusive) moves data in between.  Same order as every request. */
void
eng_lock_units_shared (struct remap_engine *e, uint64_t first, uint64_t last)
{
  lock_units (e, first, last, false);
}

void
eng_unlock_units (struct remap_engine *e, uint64_t first, uint64_t last)
{
  unlock_units (e, first, last);
}
