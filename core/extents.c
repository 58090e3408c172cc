/* remap: extents (NBD block status) that know the remap.
 *
 * A client that copies the disk (qemu-img convert, nbdcopy) skips what
 * block status calls a hole or zeroes.  The origin's own allocation is
 * the truth only for units whose data is on the origin, so the origin's
 * extents are merged with the table:
 *
 *   origin      |  data  |     hole/zero     | data |   hole/zero    |
 *   units       |    |    |  M |    |  P |    |    |    |  M |    |    |
 *   reported    |  data  |data| h/z|  data   | data |h/z |data|  h/z   |
 *
 *   M mapped (its bytes are on the spare, whatever the origin holds),
 *   P pending, or with lost granules, or in doubt: data, because nobody
 *   knows that it reads as zeroes (a read may fail, which is not "zero").
 *
 * Only a hole or zero range of the origin inside units that live on the
 * origin keeps its type; a unit that is not wholly such a range gets the
 * origin's types piece by piece (an unaligned hole is reported as it is).
 *
 * One exception makes sparse copies cheap when units were remapped inside
 * the origin's holes (their spare copies are the hole's zeroes): a mapped
 * unit with no lost granule, not in doubt, over a range the origin calls
 * zero, has its spare copy read (once, under the stripe, so no write can
 * change it meanwhile) and the part that is all zero bytes is reported
 * ZERO (not HOLE: it is allocated on the spare).  Those are the bytes a
 * read returns, so the claim is exact; a spare read that fails makes it
 * data.  Units over origin data are never read: they are data.
 *
 * What this costs, and what was tried instead.  Each such unit splits its
 * hole in three extents, and clients that ask for one extent at a time
 * (qemu-img, with REQ_ONE) pay a round trip for each: on a 1 GiB
 * half-sparse origin with every 10th unit remapped, qemu-img convert made
 * about 26,000 block status calls and ran at 0.27x nbdkit's file plugin
 * (docs/BENCHMARKS.md).  Reporting the unit as the hole it replaced (hole
 * and zero: the map a healthy origin would give, the zero claim still
 * checked against the spare copy) brought that to 0.81, and was undone:
 * SPEC 3.7 and issue 12 ask for remapped units to be reported as data
 * (allocated), and a map that hides the spare's allocation is not what
 * they ask for.  Reporting the origin's holes around such units as
 * allocated zero would also merge the extents, at the price of a map
 * without holes wherever one unit of a run is remapped; not done either.
 *
 * The zero answer is remembered per spare unit (e->zc, a few thousand
 * entries: a copy walks the disk once, so only the units of the runs it
 * is in need to be there), because a
 * client asks again and again: qemu-img convert asks for one extent at a
 * time, each remapped unit inside a hole splits the hole in three, and so
 * a 1 GiB copy with every 100th unit remapped made 5,742 block status
 * calls, each of which read the spare copies of the candidates of its
 * run (server CPU 1.8x the file plugin's).  A remembered answer is only
 * as good as the spare's bytes, so it is tied to the spare backend's
 * write count (remap_backend_writes), which is raised before anything is
 * written to the spare: the count is read before the unit is read, and
 * the answer is kept only if the count has not moved by the time it is
 * stored, and used only while it still has not moved.  A write that
 * began before the first look cannot be in flight to the unit then (it
 * would hold the unit's stripe exclusive, and ours is held shared), and
 * one that begins after it moves the count.  Any spare write (data,
 * metadata, zero, trim) forgets every answer: cheap to redo, and no path
 * that changes the spare can be missed.  So do the spare's changes that
 * are no write of ours (backend.h, remap_backend_writes): a read of it
 * that failed (the unit may be the one that no longer reads: such a unit
 * is data, as above), a failed flush (writes it should have made durable
 * may be gone, and the old bytes read back), an NBD spare's lost
 * connection and new ones (the server may have lost acknowledged writes).
 * What is not seen is not forgotten: a unit that turns unreadable, or a
 * server that restarts, unnoticed by any request yet keeps its answer
 * until a request meets it, as it would had it changed just after this
 * call.  (Only the spare counts its
 * writes: the engine asks it to at open, remap_backend_track_writes, so
 * that the origin's writes pay for no shared atomic.)
 *
 * Locking.  The disk is walked in runs of RUN_UNITS units aligned to
 * RUN_UNITS (32 stripe groups: with the table's own lock taken under
 * them, a thread holds at most 33 locks, well under the 64 ThreadSanitizer
 * tracks, as datapath.c's chunks).  For each run the stripes are held
 * shared while the table is read and the origin asked for its extents;
 * every write, remap, unmap and trim holds its stripes exclusive, so no
 * data moves between the two looks: without this an unmap (copy back to
 * the origin, then free) racing the walk could be seen as "free unit,
 * origin hole", and a copy would skip data written long before.  What
 * may still change meanwhile is only what readers do under shared
 * stripes: a unit found unreadable becomes pending, concurrently with
 * this call, which promises nothing about it.  The run's pieces are kept
 * in a buffer and given to the caller's callback after the stripes are
 * released.
 *
 * A failing origin (its extents op returns an error: a lost connection,
 * an unsupported lseek) makes the rest of the run data: that is true, and
 * an extents error says nothing about the medium, so nothing is recorded.
 *
 * Not done: a lock-free fast path like the data path's; the stripes of a
 * run cost 64 uncontended rdlocks per 4 MiB (at 4 KiB units).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define RUN_UNITS ((uint64_t) 32 << STRIPE_SHIFT)
#define RUN_WORDS (RUN_UNITS / 64)
#define LOOKUP_WINDOW 256u

struct piece {
  uint64_t off, len;
  uint32_t type;
};

/* The pieces of one run, adjacent ones of one type merged. */
struct pieces {
  struct piece *v;
  size_t n, cap;
  bool nomem;
};

static int
push (struct pieces *p, uint64_t off, uint64_t len, uint32_t type)
{
  struct piece *last = p->n ? &p->v[p->n - 1] : NULL;

  if (last && last->type == type && last->off + last->len == off) {
    last->len += len;
    return 0;
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? 2 * p->cap : 64;
    struct piece *v = realloc (p->v, cap * sizeof *v);
    if (!v) {
      p->nomem = true;
      return -ENOMEM;
    }
    p->v = v;
    p->cap = cap;
  }
  p->v[p->n++] = (struct piece) { off, len, type };
  return 0;
}

/* One run being scanned: which of its units must be data. */
struct run {
  struct remap_engine *e;
  uint64_t u0;
  uint64_t forced[RUN_WORDS];   /* bit u - u0: report u as data */
  uint64_t zcand[RUN_WORDS];    /* ... unless its spare copy is zeroes */
  uint64_t slot[RUN_UNITS];     /* spare unit of each zcand unit */
  uint8_t *ubuf;                /* one unit, read from the spare */
  uint64_t ubuf_unit;           /* the unit in ubuf, or UINT64_MAX */
  int ubuf_err;                 /* its read's result */
  bool ubuf_zero;               /* ubuf's valid bytes are all zero */
  unsigned nforced;
  uint64_t pos;                 /* next byte the origin should report */
  struct pieces *p;
};

static void
force (struct run *rn, uint64_t u)
{
  uint64_t i = u - rn->u0, bit = UINT64_C (1) << (i % 64);

  if (!(rn->forced[i / 64] & bit)) {
    rn->forced[i / 64] |= bit;
    rn->nforced++;
  }
}

static bool
forced (const struct run *rn, uint64_t u)
{
  uint64_t i = u - rn->u0;

  return rn->forced[i / 64] >> (i % 64) & 1;
}

static bool
zcand (const struct run *rn, uint64_t u)
{
  uint64_t i = u - rn->u0;

  return rn->zcand[i / 64] >> (i % 64) & 1;
}

static void
zcand_clear (struct run *rn, uint64_t u)
{
  uint64_t i = u - rn->u0;

  rn->zcand[i / 64] &= ~(UINT64_C (1) << (i % 64));
}

/* Mark the units of [u0, u0+n) that are not plainly on the origin: mapped
 * or pending slots, pending in memory, in doubt.  Stripes held shared. */
static void
find_forced (struct run *rn, unsigned n)
{
  struct remap_engine *e = rn->e;
  struct tmap m[LOOKUP_WINDOW];

  if (table_nindexed (e->t) > 0)
    for (unsigned i = 0; i < n; i += LOOKUP_WINDOW) {
      unsigned w = n - i < LOOKUP_WINDOW ? n - i : LOOKUP_WINDOW;
      table_lookup_run (e->t, rn->u0 + i, w, m);
      for (unsigned j = 0; j < w; j++) {
        if (m[j].word == 0)     /* on the origin */
          continue;
        force (rn, rn->u0 + i + j);     /* MAPPED or PENDING */
        if (word_state (m[j].word) == REMAP_SLOT_MAPPED && m[j].lost == 0) {
          rn->zcand[(i + j) / 64] |= UINT64_C (1) << ((i + j) % 64);
          rn->slot[i + j] = m[j].slot;
        }
      }
    }
  if (table_nvpend (e->t) > 0)
    for (unsigned i = 0; i < n; i++)
      if (table_vpend_has (e->t, rn->u0 + i)) {
        force (rn, rn->u0 + i);
        zcand_clear (rn, rn->u0 + i);
      }
  uint64_t u, last = rn->u0 + n - 1;
  for (uint64_t first = rn->u0; table_ndoubt (e->t) > 0 && first <= last
       && table_doubt_find (e->t, first, last, &u); first = u + 1) {
    force (rn, u);
    zcand_clear (rn, u);
  }
}

/* Is spare unit s known to read as zeroes (see the top of this file)? */
static bool
zc_known (struct remap_engine *e, uint64_t s)
{
  bool r = false;

  pthread_mutex_lock (&e->zc_lock);
  if (e->zc) {
    const struct zc_entry *z = &e->zc[s % ZC_ENTRIES];
    r = z->slot1 == s + 1 && z->gen == remap_backend_writes (e->spare);
  }
  pthread_mutex_unlock (&e->zc_lock);
  return r;
}

/* Spare unit s read as zeroes, read after the spare's write count was
 * gen: remember it if the count is still gen (whoever held the entry
 * before is forgotten). */
static void
zc_note (struct remap_engine *e, uint64_t s, uint64_t gen)
{
  pthread_mutex_lock (&e->zc_lock);
  if (!e->zc)
    e->zc = calloc (ZC_ENTRIES, sizeof *e->zc);
  if (e->zc && gen == remap_backend_writes (e->spare))
    e->zc[s % ZC_ENTRIES] = (struct zc_entry) { s + 1, gen };
  pthread_mutex_unlock (&e->zc_lock);
}

/* Is [a, b) of mapped unit u all zero bytes on the spare?  Reads the
 * unit's spare copy once per unit (stripes held shared), unless its
 * whole copy is known to be zeroes. */
static bool
spare_zero (struct run *rn, uint64_t u, uint64_t a, uint64_t b)
{
  struct remap_engine *e = rn->e;
  uint64_t start = u * e->unit, s = rn->slot[u - rn->u0];

  if (rn->ubuf_unit != u) {
    if (zc_known (e, s))
      return true;
    if (!rn->ubuf && !(rn->ubuf = eng_alloc_buf (e->unit)))
      return false;
    uint64_t valid = e->origin_size - start < e->unit
      ? e->origin_size - start : e->unit;
    uint64_t gen = remap_backend_writes (e->spare);
    rn->ubuf_unit = u;
    rn->ubuf_err = remap_backend_pread (e->spare, rn->ubuf, valid,
                                        s * e->unit);
    rn->ubuf_zero = rn->ubuf_err == 0 && remap_all_zero (rn->ubuf, valid);
    if (rn->ubuf_zero)
      zc_note (e, s, gen);
  }
  if (rn->ubuf_err)
    return false;
  return rn->ubuf_zero || remap_all_zero (rn->ubuf + (a - start), b - a);
}

/* The type of [a, b) of a unit that is not plainly on the origin, where
 * the origin says `type'. */
static uint32_t
forced_type (struct run *rn, uint64_t u, uint64_t a, uint64_t b,
             uint32_t type)
{
  if ((type & REMAP_EXTENT_ZERO) && zcand (rn, u) && spare_zero (rn, u, a, b))
    return REMAP_EXTENT_ZERO;
  return 0;
}

/* An extent of the origin: kept where its units are on the origin. */
static int
on_origin (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct run *rn = opaque;
  uint64_t unit = rn->e->unit, end = off + len;

  rn->pos = end;
  if (type == 0 || rn->nforced == 0)
    return push (rn->p, off, len, type) ? 1 : 0;
  for (uint64_t a = off; a < end;) {
    uint64_t u = a / unit, b = (u + 1) * unit < end ? (u + 1) * unit : end;
    if (push (rn->p, a, b - a,
              forced (rn, u) ? forced_type (rn, u, a, b, type) : type))
      return 1;
    a = b;
  }
  return 0;
}

/* The pieces of [cs, ce), which lies inside one run. */
static void
scan_run (struct remap_engine *e, uint64_t cs, uint64_t ce, struct pieces *p)
{
  uint64_t u0 = cs / e->unit, u1 = (ce - 1) / e->unit;
  unsigned n = (unsigned) (u1 - u0 + 1);
  struct run *rn = calloc (1, sizeof *rn);
  int r = 0;

  if (!rn) {
    p->nomem = true;
    return;
  }
  *rn = (struct run) { .e = e, .u0 = u0, .pos = cs, .p = p,
                       .ubuf_unit = UINT64_MAX };

  eng_lock_units_shared (e, u0, u1);
  find_forced (rn, n);
  /* Every unit forced and none a zero candidate: the origin has no say. */
  bool any_zcand = false;
  for (unsigned i = 0; i < RUN_WORDS; i++)
    any_zcand |= rn->zcand[i] != 0;
  if (rn->nforced < n || any_zcand)
    r = remap_backend_extents (e->origin, ce - cs, cs, on_origin, rn);
  if (r < 0)
    eng_log (e, REMAP_LOG_WARN, "origin %s: cannot tell its allocation at "
             "bytes %llu..%llu (%s): reported as data", e->origin->name,
             (unsigned long long) rn->pos, (unsigned long long) ce - 1,
             strerror (-r));
  if (!p->nomem && rn->pos < ce)
    push (p, rn->pos, ce - rn->pos, 0);
  eng_unlock_units (e, u0, u1);
  free (rn->ubuf);
  free (rn);
}

/* Hands the merged extents to the caller: holds the last one back until
 * one of another type (or the end) shows that it is maximal. */
struct emitter {
  remap_extent_fn fn;
  void *opaque;
  bool have;
  struct piece cur;
};

static int
emit (struct emitter *em, const struct piece *pc)
{
  if (em->have && em->cur.type == pc->type) {
    em->cur.len += pc->len;
    return 0;
  }
  int r = em->have ? em->fn (em->opaque, em->cur.off, em->cur.len,
                             em->cur.type) : 0;
  em->cur = *pc;
  em->have = true;
  return r;
}

int
remap_extents (struct remap_engine *e, uint64_t len, uint64_t off,
               remap_extent_fn fn, void *opaque, struct remap_error *err)
{
  uint64_t end = off + len, run = RUN_UNITS * e->unit;
  struct pieces p = { 0 };
  struct emitter em = { fn, opaque, false, { 0, 0, 0 } };
  int r = 0;

  if (off > e->origin_size || len > e->origin_size - off)
    return remap_set_error (err, -EINVAL, "block status of %llu bytes at "
                            "offset %llu is past the end of the disk (%llu "
                            "bytes)", (unsigned long long) len,
                            (unsigned long long) off,
                            (unsigned long long) e->origin_size);
  for (uint64_t pos = off; r == 0 && pos < end;) {
    uint64_t ce = (pos / run + 1) * run < end ? (pos / run + 1) * run : end;
    p.n = 0;
    scan_run (e, pos, ce, &p);
    if (p.nomem) {
      r = remap_set_error (err, -ENOMEM, "out of memory");
      break;
    }
    for (size_t i = 0; r == 0 && i < p.n; i++)
      r = emit (&em, &p.v[i]);
    pos = ce;
  }
  if (r == 0 && em.have)
    r = fn (opaque, em.cur.off, em.cur.len, em.cur.type);
  free (p.v);
  return r;
}
