/* Runs on the write side of the data path (core/datapath.c): trim and zero
 * send one origin call per run of units that live on the origin, writes
 * and reads send one spare call per run of mapped units on consecutive
 * spare units, and the pieces of a write go out as one batch.  A counting
 * backend wraps the mem backends: it counts every call by kind and fails
 * the calls that overlap a rule, so that the tests can check both how many
 * calls were made and that an error on one piece of a run or of a batch is
 * a verdict on that piece's unit only (media), or on none (anything else).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "remap/remap.h"
#include "../unit/testlib.h"
#include "../../core/io/testhooks.h"

#define UNIT 4096u
#define ORIGIN (64u << 20)      /* 16384 units: 32 chunks */
#define SPARE (8u << 20)
/* core/datapath.c CHUNK_UNITS: a request is served in chunks of this many
 * units, each under its own stripes; a run never spans two. */
#define CHUNK 512u

enum { OP_PREAD, OP_PWRITE, OP_ZERO, OP_TRIM, OP_FLUSH, NOPS };

struct rule {
  unsigned op;
  uint64_t a, b;                /* bytes [a, b) */
  int err;
};

struct cnt {
  struct remap_backend base;    /* first: the vtable base */
  struct remap_backend *inner;
  pthread_mutex_t lock;
  uint64_t calls[NOPS];
  struct rule rules[8];
  unsigned nrules;
  /* Gate: the first call of gate_op touching byte gate_off waits, once it
   * has arrived, until the test releases it. */
  pthread_cond_t cond;
  bool armed, arrived, released;
  unsigned gate_op;
  uint64_t gate_off;
};

static int
cnt_enter (struct remap_backend *b, unsigned op, uint64_t len, uint64_t off)
{
  struct cnt *c = (struct cnt *) b;
  int r = 0;
  pthread_mutex_lock (&c->lock);
  c->calls[op]++;
  if (c->armed && c->gate_op == op && off <= c->gate_off
      && c->gate_off < off + len) {
    c->armed = false;
    c->arrived = true;
    pthread_cond_broadcast (&c->cond);
    while (!c->released)
      pthread_cond_wait (&c->cond, &c->lock);
  }
  for (unsigned i = 0; i < c->nrules && !r; i++)
    if (c->rules[i].op == op && off < c->rules[i].b
        && c->rules[i].a < off + len)
      r = -c->rules[i].err;
  pthread_mutex_unlock (&c->lock);
  return r;
}

static int
cnt_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  int r = cnt_enter (b, OP_PREAD, len, off);
  return r ? r : remap_backend_pread (((struct cnt *) b)->inner, buf, len,
                                      off);
}

static int
cnt_pwrite (struct remap_backend *b, const void *buf, size_t len,
            uint64_t off)
{
  int r = cnt_enter (b, OP_PWRITE, len, off);
  return r ? r : remap_backend_pwrite (((struct cnt *) b)->inner, buf, len,
                                       off);
}

static int
cnt_zero (struct remap_backend *b, uint64_t len, uint64_t off, bool may_trim)
{
  int r = cnt_enter (b, OP_ZERO, len, off);
  return r ? r : remap_backend_zero (((struct cnt *) b)->inner, len, off,
                                     may_trim);
}

/* A trim that shows: the trimmed bytes read as zeroes afterwards. */
static int
cnt_trim (struct remap_backend *b, uint64_t len, uint64_t off)
{
  int r = cnt_enter (b, OP_TRIM, len, off);
  return r ? r : remap_backend_zero (((struct cnt *) b)->inner, len, off,
                                     true);
}

static int
cnt_flush (struct remap_backend *b)
{
  int r = cnt_enter (b, OP_FLUSH, 0, 0);
  return r ? r : remap_backend_flush (((struct cnt *) b)->inner);
}

static void
cnt_close (struct remap_backend *b)
{
  struct cnt *c = (struct cnt *) b;
  remap_backend_close (c->inner);
  pthread_mutex_destroy (&c->lock);
  pthread_cond_destroy (&c->cond);
  free (c);
}

static const struct remap_backend_ops cnt_ops = {
  .kind = "count", .pread = cnt_pread, .pwrite = cnt_pwrite,
  .zero = cnt_zero, .trim = cnt_trim, .flush = cnt_flush, .close = cnt_close,
};

static struct cnt *
cnt_new (struct remap_backend *inner, const char *name)
{
  struct cnt *c = calloc (1, sizeof *c);
  ck_assert_ptr_nonnull (c);
  c->base.ops = &cnt_ops;
  c->base.size = inner->size;
  c->base.align = 1;
  c->base.logical_block = 512;
  strcpy (c->base.name, name);
  c->inner = inner;
  pthread_mutex_init (&c->lock, NULL);
  pthread_cond_init (&c->cond, NULL);
  return c;
}

static void
cnt_reset (struct cnt *c)
{
  pthread_mutex_lock (&c->lock);
  memset (c->calls, 0, sizeof c->calls);
  pthread_mutex_unlock (&c->lock);
}

static void
cnt_fail (struct cnt *c, unsigned op, uint64_t a, uint64_t b, int err)
{
  pthread_mutex_lock (&c->lock);
  ck_assert_uint_lt (c->nrules, 8);
  c->rules[c->nrules++] = (struct rule) { op, a, b, err };
  pthread_mutex_unlock (&c->lock);
}

static void
cnt_clear (struct cnt *c)
{
  pthread_mutex_lock (&c->lock);
  c->nrules = 0;
  pthread_mutex_unlock (&c->lock);
}

static uint64_t
cnt_calls (struct cnt *c, unsigned op)
{
  pthread_mutex_lock (&c->lock);
  uint64_t n = c->calls[op];
  pthread_mutex_unlock (&c->lock);
  return n;
}

/* ---- fixture -------------------------------------------------------- */

struct fx {
  struct remap_backend *omem, *smem;
  struct cnt *o, *s;
  struct remap_engine *e;
  uint8_t *truth;               /* what every byte of the disk must read */
};

static void
fx_open (struct fx *f)
{
  uint64_t seed = 11;
  f->omem = tl_mem (ORIGIN);
  f->smem = tl_mem (SPARE);
  tl_random_bytes (&seed, remap_mem_data (f->omem), ORIGIN);
  tl_format_ok (f->omem, f->smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  f->o = cnt_new (tl_share (f->omem), "count-origin");
  f->s = cnt_new (tl_share (f->smem), "count-spare");
  struct remap_error err = { 0 };
  int r = remap_open (&f->o->base, &f->s->base,
                      &(struct remap_open_opts) { .no_lock = true },
                      &f->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
  f->truth = malloc (ORIGIN);
  memcpy (f->truth, remap_mem_data (f->omem), ORIGIN);
}

static void
fx_close (struct fx *f)
{
  ck_assert_int_eq (remap_close (f->e), 0);
  remap_backend_close (f->omem);
  remap_backend_close (f->smem);
  free (f->truth);
}

/* Every byte reads as f->truth says (units expected to fail excepted:
 * none here). */
static void
fx_check_all (struct fx *f)
{
  uint8_t *buf = malloc (ORIGIN);
  struct remap_error err = { 0 };
  int r = remap_pread (f->e, buf, ORIGIN, 0, &err);
  ck_assert_msg (r == 0, "read of the whole disk: %d %s", r, err.msg);
  for (uint64_t u = 0; u < ORIGIN / UNIT; u++)
    REQ (memcmp (buf + u * UNIT, f->truth + u * UNIT, UNIT) == 0,
         "unit %llu does not read what was written",
         (unsigned long long) u);
  free (buf);
}

/* The table, as remap_foreach lists it. */
struct snap {
  size_t n;
  struct remap_mapping m[256];
};

static int
snap_one (void *opaque, const struct remap_mapping *m)
{
  struct snap *s = opaque;
  ck_assert_uint_lt (s->n, 256);
  s->m[s->n++] = *m;
  return 0;
}

static void
snap_take (struct fx *f, struct snap *s)
{
  s->n = 0;
  ck_assert_int_eq (remap_foreach (f->e, snap_one, s), 0);
}

static void
snap_same (struct fx *f, const struct snap *before, const char *what)
{
  struct snap now;
  snap_take (f, &now);
  ck_assert_msg (now.n == before->n, "%s: the table had %zu entries, now "
                 "%zu", what, before->n, now.n);
  for (size_t i = 0; i < now.n; i++)
    ck_assert_msg (now.m[i].origin_unit == before->m[i].origin_unit
                   && now.m[i].state == before->m[i].state
                   && now.m[i].spare_unit == before->m[i].spare_unit
                   && now.m[i].lost == before->m[i].lost,
                   "%s: table entry %zu changed (unit %llu, state %d, "
                   "spare unit %llu; was unit %llu, state %d, spare unit "
                   "%llu)", what, i,
                   (unsigned long long) now.m[i].origin_unit,
                   (int) now.m[i].state,
                   (unsigned long long) now.m[i].spare_unit,
                   (unsigned long long) before->m[i].origin_unit,
                   (int) before->m[i].state,
                   (unsigned long long) before->m[i].spare_unit);
}

/* Runs of units in [u0, u1] that are not in `skip', split at chunk
 * boundaries: the origin calls a trim or zero of them must make. */
static uint64_t
expected_runs (uint64_t u0, uint64_t u1, const uint64_t *skip, size_t nskip)
{
  uint64_t runs = 0;
  bool in = false;
  for (uint64_t u = u0; u <= u1; u++) {
    bool s = false;
    for (size_t k = 0; k < nskip; k++)
      s |= skip[k] == u;
    if (u % CHUNK == 0)
      in = false;
    if (!s && !in)
      runs++;
    in = !s;
  }
  return runs;
}

/* ---- trim ------------------------------------------------------------ */

/* Nothing remapped: a trim of the whole disk is one origin call. */
START_TEST (test_trim_one_call)
{
  struct fx f;
  fx_open (&f);
  cnt_reset (f.o);
  ck_assert_int_eq (remap_trim (f.e, ORIGIN, 0, 0, NULL), 0);
  ck_assert_uint_eq (cnt_calls (f.o, OP_TRIM), 1);
  uint8_t z[UNIT] = { 0 };
  for (uint64_t u = 0; u < ORIGIN / UNIT; u += 97)
    ck_assert (memcmp (remap_mem_data (f.omem) + u * UNIT, z, UNIT) == 0);
  fx_close (&f);
}
END_TEST

/* Remapped and pending units inside the range: one trim per run of
 * origin units per chunk; the remapped units keep their data on the spare
 * and their old origin bytes, the pending unit keeps its origin bytes and
 * stays pending. */
START_TEST (test_trim_runs)
{
  struct fx f;
  fx_open (&f);
  uint64_t mapped[] = { 3, 1500, 1501, 9000 }, pending = 5000;
  for (size_t k = 0; k < 4; k++)
    ck_assert_int_eq (remap_remap (f.e, mapped[k], 0, NULL), 0);
  ck_assert_int_eq (remap_mark_pending (f.e, pending, NULL), 0);
  struct snap before;
  snap_take (&f, &before);
  uint8_t *orig = malloc (ORIGIN);
  memcpy (orig, remap_mem_data (f.omem), ORIGIN);

  uint64_t off = 2 * UNIT + 100, end = ORIGIN - 5 * UNIT - 7;
  cnt_reset (f.o);
  cnt_reset (f.s);
  ck_assert_int_eq (remap_trim (f.e, end - off, off, 0, NULL), 0);
  uint64_t skip[] = { 3, 1500, 1501, 9000, 5000 };
  uint64_t want = expected_runs (off / UNIT, (end - 1) / UNIT, skip, 5);
  ck_assert_msg (cnt_calls (f.o, OP_TRIM) == want, "%llu origin trims, "
                 "expected %llu (one per run and chunk)",
                 (unsigned long long) cnt_calls (f.o, OP_TRIM),
                 (unsigned long long) want);
  ck_assert_uint_eq (cnt_calls (f.s, OP_PWRITE), 0);
  ck_assert_uint_eq (cnt_calls (f.s, OP_TRIM), 0);
  snap_same (&f, &before, "trim");
  ck_assert_int_eq (remap_unit_pending (f.e, pending), 1);

  const uint8_t *now = remap_mem_data (f.omem);
  for (uint64_t b = 0; b < ORIGIN; b += 512) {
    uint64_t u = b / UNIT;
    bool kept = b + 512 <= off || b >= end;
    for (size_t k = 0; k < 5; k++)
      kept |= skip[k] == u;
    if (kept)
      REQ (memcmp (now + b, orig + b, 512) == 0, "byte %llu of the origin "
           "changed, but it was outside the trim or not on the origin",
           (unsigned long long) b);
    else if (b >= off && b + 512 <= end)
      REQ (now[b] == 0 && now[b + 511] == 0, "byte %llu was not trimmed",
           (unsigned long long) b);
  }
  /* The remapped units still read their data. */
  uint8_t buf[UNIT];
  for (size_t k = 0; k < 4; k++) {
    ck_assert_int_eq (remap_pread (f.e, buf, UNIT, mapped[k] * UNIT, NULL),
                      0);
    ck_assert (memcmp (buf, f.truth + mapped[k] * UNIT, UNIT) == 0);
  }
  free (orig);
  fx_close (&f);
}
END_TEST

/* ---- zero ------------------------------------------------------------ */

START_TEST (test_zero_one_call)
{
  struct fx f;
  fx_open (&f);
  cnt_reset (f.o);
  ck_assert_int_eq (remap_zero (f.e, ORIGIN - UNIT, UNIT, 0, NULL), 0);
  ck_assert_uint_eq (cnt_calls (f.o, OP_ZERO), 1);
  ck_assert_uint_eq (cnt_calls (f.o, OP_PWRITE), 0);
  memset (f.truth + UNIT, 0, ORIGIN - UNIT);
  fx_check_all (&f);
  fx_close (&f);
}
END_TEST

/* Remapped (one with lost granules) and pending units inside the range:
 * one zero per run of origin units per chunk, the spare copies zeroed, the
 * lost granules no longer lost, the pending unit rewritten (remapped). */
START_TEST (test_zero_runs)
{
  struct fx f;
  fx_open (&f);
  uint64_t mapped[] = { 3, 1500, 1501, 9000 }, lost = 7000, pending = 5000;
  for (size_t k = 0; k < 4; k++)
    ck_assert_int_eq (remap_remap (f.e, mapped[k], 0, NULL), 0);
  ck_assert_int_eq (remap_mark_lost (f.e, lost, 0x1, NULL), 0);
  ck_assert_int_eq (remap_mark_pending (f.e, pending, NULL), 0);
  ck_assert_uint_ne (tl_lookup (f.e, lost).lost, 0);

  uint64_t off = 2 * UNIT + 100, end = ORIGIN - 5 * UNIT - 7;
  cnt_reset (f.o);
  cnt_reset (f.s);
  ck_assert_int_eq (remap_zero (f.e, end - off, off, 0, NULL), 0);
  uint64_t skip[] = { 3, 1500, 1501, 9000, 5000, 7000 };
  uint64_t want = expected_runs (off / UNIT, (end - 1) / UNIT, skip, 6);
  ck_assert_msg (cnt_calls (f.o, OP_ZERO) == want, "%llu origin zeroes, "
                 "expected %llu (one per run and chunk)",
                 (unsigned long long) cnt_calls (f.o, OP_ZERO),
                 (unsigned long long) want);
  ck_assert_uint_eq (cnt_calls (f.o, OP_PWRITE), 0);
  memset (f.truth + off, 0, end - off);
  fx_check_all (&f);
  for (size_t k = 0; k < 4; k++)
    ck_assert_int_eq (tl_lookup (f.e, mapped[k]).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (tl_lookup (f.e, pending).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (remap_unit_pending (f.e, pending), 0);
  ck_assert_uint_eq (tl_lookup (f.e, lost).lost, 0);
  fx_close (&f);
}
END_TEST

/* The big zero fails with a media error, and so does the write of unit
 * 777 alone: only unit 777 moves to the spare; every other unit is zeroed
 * on the origin.  With one unit remapped elsewhere (the locked path) and
 * with none (the lock-free path first). */
static void
zero_media_middle (bool remapped)
{
  struct fx f;
  fx_open (&f);
  if (remapped)
    ck_assert_int_eq (remap_remap (f.e, 9000, 0, NULL), 0);
  uint64_t off = 100 * UNIT, end = 3000 * UNIT, bad = 777;
  cnt_fail (f.o, OP_ZERO, 0, ORIGIN, EIO);
  cnt_fail (f.o, OP_PWRITE, bad * UNIT + 1000, bad * UNIT + 1001, EIO);
  struct remap_error err = { 0 };
  int r = remap_zero (f.e, end - off, off, 0, &err);
  ck_assert_msg (r == 0, "zero: %d %s", r, err.msg);
  for (uint64_t u = 0; u < ORIGIN / UNIT; u++) {
    enum remap_slot_state want = u == bad || (remapped && u == 9000)
      ? REMAP_SLOT_MAPPED : REMAP_SLOT_FREE;
    REQ (tl_lookup (f.e, u).state == want, "unit %llu: state %d, expected "
         "%d: a failed zero of many units is a verdict on none of them",
         (unsigned long long) u, (int) tl_lookup (f.e, u).state, (int) want);
  }
  cnt_clear (f.o);
  memset (f.truth + off, 0, end - off);
  fx_check_all (&f);
  fx_close (&f);
}

START_TEST (test_zero_media_middle)
{
  zero_media_middle (false);
  zero_media_middle (true);
}
END_TEST

/* The big zero fails with a media error but every write of zeroes works:
 * no unit is remapped at all. */
START_TEST (test_zero_media_no_verdict)
{
  struct fx f;
  fx_open (&f);
  ck_assert_int_eq (remap_remap (f.e, 9000, 0, NULL), 0);
  struct snap before;
  snap_take (&f, &before);
  cnt_fail (f.o, OP_ZERO, 0, ORIGIN, EIO);
  ck_assert_int_eq (remap_zero (f.e, 2048 * UNIT, 0, 0, NULL), 0);
  snap_same (&f, &before, "a zero that failed as a whole");
  cnt_clear (f.o);
  memset (f.truth, 0, 2048 * UNIT);
  fx_check_all (&f);
  fx_close (&f);
}
END_TEST

/* Errors that are not media errors in the middle of a big zero: the
 * request fails with that error and no unit changes state. */
static void
zero_not_media (int e1, bool remapped)
{
  struct fx f;
  fx_open (&f);
  if (remapped)
    ck_assert_int_eq (remap_remap (f.e, 9000, 0, NULL), 0);
  struct snap before;
  snap_take (&f, &before);
  uint64_t off = 100 * UNIT, end = 3000 * UNIT, bad = 1777;
  cnt_fail (f.o, OP_ZERO, bad * UNIT, bad * UNIT + 1, e1);
  cnt_fail (f.o, OP_PWRITE, bad * UNIT, bad * UNIT + 1, e1);
  struct remap_error err = { 0 };
  int r = remap_zero (f.e, end - off, off, 0, &err);
  ck_assert_msg (r == -e1, "zero with %s at unit %llu: %d (%s)",
                 strerror (e1), (unsigned long long) bad, r, err.msg);
  ck_assert_msg (strstr (err.msg, "no unit changes state") != NULL,
                 "the message does not say nothing changed: %s", err.msg);
  snap_same (&f, &before, "a zero that failed with a non-media error");
  struct remap_counters c;
  remap_get_counters (f.e, &c);
  ck_assert_uint_eq (c.pending_units, 0);
  ck_assert_uint_eq (c.spare_bad_units, 0);
  fx_close (&f);
}

START_TEST (test_zero_not_media)
{
  zero_not_media (ENOSPC, false);
  zero_not_media (ENOSPC, true);
  zero_not_media (ENOTCONN, false);
  zero_not_media (ENOTCONN, true);
}
END_TEST

/* The big zero fails as a whole with an error that is not a media error
 * (the connection to an NBD origin is gone, the origin's file system is
 * full) while writes would work: the request fails with that error at
 * once, and no zeroes are written unit by unit (for 64 GiB that fallback
 * was 16 million writes, past the kernel client's timeout, and it
 * allocated a sparse origin in full). */
START_TEST (test_zero_not_media_no_fallback)
{
  static const int errs[] = { ENOTCONN, ENOSPC, EAGAIN };
  for (unsigned k = 0; k < sizeof errs / sizeof errs[0]; k++)
    for (int remapped = 0; remapped < 2; remapped++) {
      struct fx f;
      fx_open (&f);
      if (remapped)
        ck_assert_int_eq (remap_remap (f.e, 9000, 0, NULL), 0);
      struct snap before;
      snap_take (&f, &before);
      cnt_reset (f.o);
      cnt_fail (f.o, OP_ZERO, 0, ORIGIN, errs[k]);
      struct remap_error err = { 0 };
      int r = remap_zero (f.e, 2048 * UNIT, 0, 0, &err);
      ck_assert_msg (r == -errs[k], "zero failing with %s: %d (%s)",
                     strerror (errs[k]), r, err.msg);
      ck_assert_msg (cnt_calls (f.o, OP_PWRITE) == 0, "zero failing with "
                     "%s: %llu origin writes of zeroes instead of failing",
                     strerror (errs[k]),
                     (unsigned long long) cnt_calls (f.o, OP_PWRITE));
      snap_same (&f, &before, "a zero that failed with a non-media error");
      cnt_clear (f.o);
      fx_check_all (&f);
      fx_close (&f);
    }
}
END_TEST

struct zeroer {
  struct remap_engine *e;
  uint64_t len, off;
  int r;
};

static void *
zero_thread (void *p)
{
  struct zeroer *z = p;
  z->r = remap_zero (z->e, z->len, z->off, 0, NULL);
  return NULL;
}

/* A zero of the whole disk on the lock-free path (nothing remapped) is in
 * flight when unit 77 is remapped, which copies the origin's old bytes to
 * the spare: the zero must be done again under the stripes, so that unit
 * 77 reads as zeroes, as the acknowledged zero says. */
START_TEST (test_zero_races_remap)
{
  struct fx f;
  fx_open (&f);
  uint64_t u = 77;
  pthread_mutex_lock (&f.o->lock);
  f.o->gate_op = OP_ZERO;
  f.o->gate_off = u * UNIT;
  f.o->armed = true;
  pthread_mutex_unlock (&f.o->lock);
  struct zeroer z = { f.e, ORIGIN, 0, 1 };
  pthread_t t;
  pthread_create (&t, NULL, zero_thread, &z);
  pthread_mutex_lock (&f.o->lock);
  while (!f.o->arrived)
    pthread_cond_wait (&f.o->cond, &f.o->lock);
  pthread_mutex_unlock (&f.o->lock);

  ck_assert_int_eq (remap_remap (f.e, u, 0, NULL), 0);

  pthread_mutex_lock (&f.o->lock);
  f.o->released = true;
  pthread_cond_broadcast (&f.o->cond);
  pthread_mutex_unlock (&f.o->lock);
  pthread_join (t, NULL);
  ck_assert_int_eq (z.r, 0);
  ck_assert_int_eq (tl_lookup (f.e, u).state, REMAP_SLOT_MAPPED);
  memset (f.truth, 0, ORIGIN);
  fx_check_all (&f);
  fx_close (&f);
}
END_TEST

/* ---- writes and reads of runs of mapped units ------------------------ */

/* Units 100..107 remapped in order (consecutive spare units) and 200. */
static void
remap_run (struct fx *f)
{
  for (uint64_t u = 100; u < 108; u++)
    ck_assert_int_eq (remap_remap (f->e, u, 0, NULL), 0);
  ck_assert_int_eq (remap_remap (f->e, 200, 0, NULL), 0);
  for (uint64_t u = 101; u < 108; u++)
    ck_assert_uint_eq (tl_lookup (f->e, u).spare_unit,
                       tl_lookup (f->e, 100).spare_unit + u - 100);
  /* 200 follows 107 on the spare too, but not in a request: a piece that
   * merged them would write 108's bytes to 200's spare unit. */
  ck_assert_uint_eq (tl_lookup (f->e, 200).spare_unit,
                     tl_lookup (f->e, 107).spare_unit + 1);
}

#define WOFF (96 * UNIT + 300)
#define WLEN (250 * UNIT)

START_TEST (test_write_read_runs)
{
  struct fx f;
  fx_open (&f);
  remap_run (&f);
  uint8_t *data = malloc (WLEN);
  tl_pattern (data, WLEN, 0x5eed);
  cnt_reset (f.o);
  cnt_reset (f.s);
  ck_assert_int_eq (remap_pwrite (f.e, data, WLEN, WOFF, 0, NULL), 0);
  /* Origin: 96..99, 108..199, 201..346; spare: 100..107, 200. */
  ck_assert_uint_eq (cnt_calls (f.o, OP_PWRITE), 3);
  ck_assert_uint_eq (cnt_calls (f.s, OP_PWRITE), 2);
  memcpy (f.truth + WOFF, data, WLEN);

  cnt_reset (f.o);
  cnt_reset (f.s);
  uint8_t *back = malloc (WLEN);
  ck_assert_int_eq (remap_pread (f.e, back, WLEN, WOFF, NULL), 0);
  ck_assert (memcmp (back, data, WLEN) == 0);
  ck_assert_uint_eq (cnt_calls (f.o, OP_PREAD), 3);
  ck_assert_uint_eq (cnt_calls (f.s, OP_PREAD), 2);
  fx_check_all (&f);
  free (back);
  free (data);
  fx_close (&f);
}
END_TEST

/* A media error on the spare unit of 103, in the middle of a merged spare
 * run, and on the origin unit 150, in the middle of an origin run: only
 * 103 moves to another spare unit (its old one is BAD), only 150 is
 * remapped; everything reads what was written. */
START_TEST (test_write_media_middle)
{
  struct fx f;
  fx_open (&f);
  remap_run (&f);
  struct remap_mapping m100 = tl_lookup (f.e, 100);
  uint64_t s103 = tl_lookup (f.e, 103).spare_unit;
  cnt_fail (f.s, OP_PWRITE, s103 * UNIT, (s103 + 1) * UNIT, EIO);
  cnt_fail (f.o, OP_PWRITE, 150 * UNIT + 9, 150 * UNIT + 10, EIO);
  uint8_t *data = malloc (WLEN);
  tl_pattern (data, WLEN, 0xbad);
  struct remap_error err = { 0 };
  int r = remap_pwrite (f.e, data, WLEN, WOFF, 0, &err);
  ck_assert_msg (r == 0, "write: %d %s", r, err.msg);
  memcpy (f.truth + WOFF, data, WLEN);

  for (uint64_t u = 100; u < 108; u++) {
    struct remap_mapping m = tl_lookup (f.e, u);
    ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
    if (u == 103)
      ck_assert_uint_ne (m.spare_unit, s103);
    else
      ck_assert_uint_eq (m.spare_unit, m100.spare_unit + u - 100);
  }
  ck_assert_int_eq (tl_lookup (f.e, 150).state, REMAP_SLOT_MAPPED);
  for (uint64_t u = 0; u < ORIGIN / UNIT; u++)
    REQ (tl_lookup (f.e, u).state == REMAP_SLOT_FREE
         || (u >= 100 && u < 108) || u == 150 || u == 200,
         "unit %llu was remapped, but no error was its own",
         (unsigned long long) u);
  struct remap_counters c;
  remap_get_counters (f.e, &c);
  ck_assert_uint_eq (c.spare_bad_units, 1);
  ck_assert_uint_eq (c.reallocated_units, 10);
  cnt_clear (f.s);
  cnt_clear (f.o);
  fx_check_all (&f);
  free (data);
  fx_close (&f);
}
END_TEST

/* Errors that are not media errors on one piece in the middle of the
 * batch (the spare run, or an origin run): the write fails with that
 * error and the table does not change. */
static void
write_not_media (bool spare, int e1)
{
  struct fx f;
  fx_open (&f);
  remap_run (&f);
  struct snap before;
  snap_take (&f, &before);
  uint64_t s103 = tl_lookup (f.e, 103).spare_unit;
  if (spare)
    cnt_fail (f.s, OP_PWRITE, s103 * UNIT, (s103 + 1) * UNIT, e1);
  else
    cnt_fail (f.o, OP_PWRITE, 150 * UNIT, 150 * UNIT + 1, e1);
  uint8_t *data = malloc (WLEN);
  tl_pattern (data, WLEN, 0xbad);
  struct remap_error err = { 0 };
  int r = remap_pwrite (f.e, data, WLEN, WOFF, 0, &err);
  ck_assert_msg (r == -e1, "write with %s on the %s: %d (%s)", strerror (e1),
                 spare ? "spare" : "origin", r, err.msg);
  ck_assert_msg (strstr (err.msg, "no unit changes state") != NULL,
                 "the message does not say nothing changed: %s", err.msg);
  snap_same (&f, &before, "a write that failed with a non-media error");
  struct remap_counters c;
  remap_get_counters (f.e, &c);
  ck_assert_uint_eq (c.spare_bad_units, 0);
  ck_assert_uint_eq (c.pending_units, 0);
  free (data);
  fx_close (&f);
}

START_TEST (test_write_not_media)
{
  write_not_media (true, ENOSPC);
  write_not_media (true, ENOTCONN);
  write_not_media (false, ENOSPC);
  write_not_media (false, ENOTCONN);
}
END_TEST

/* The same batch on file backends (the counting backend above has no
 * raw_fd, so its batches run one call at a time).  With O_DIRECT,
 * io_uring serves the writes: the first wait for completions fails while
 * they are in flight (they are cancelled, reaped and written again).
 * Buffered, the writes do not go to the ring (io_uring would hand each to
 * a worker thread: core/io/file.c, file_raw_fd), so that wait is never
 * reached.  Either way the data reads back right, before and after a
 * reopen, and the origin under the mapped units keeps its old bytes. */
static struct remap_backend *
file_at (char *path, const char *tag, uint64_t size, unsigned flags)
{
  const char *dir = getenv ("REMAP_BUILD_DIR");
  snprintf (path, 256, "%s/runs-%s-%d.img", dir ? dir : "/var/tmp", tag,
            (int) getpid ());
  int fd = open (path, O_CREAT | O_TRUNC | O_RDWR, 0600);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, (off_t) size), 0);
  close (fd);
  struct remap_backend *b;
  struct remap_error err = { 0 };
  if (remap_file_open (path, flags, &b, &err) != 0) {
    ck_assert_msg (flags & REMAP_FILE_DIRECT, "%s", err.msg);
    fprintf (stderr, "test_write_batch_files: no O_DIRECT here (%s); "
             "that part skipped\n", err.msg);
    unlink (path);
    return NULL;
  }
  return b;
}

static void
write_batch_files (unsigned flags)
{
  bool direct = flags & REMAP_FILE_DIRECT;
  char po[256], ps[256];
  struct remap_backend *o = file_at (po, "origin", 16u << 20, flags);
  struct remap_backend *sp = o ? file_at (ps, "spare", 4u << 20, flags)
    : NULL;
  if (!sp) {
    if (o) {
      remap_backend_close (o);
      unlink (po);
    }
    return;
  }
  tl_format_ok (o, sp, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_msg (remap_open (o, sp, &(struct remap_open_opts) {
                               .no_lock = true }, &e, &err) == 0, "%s",
                 err.msg);
  for (uint64_t u = 10; u < 18; u++)
    ck_assert_int_eq (remap_remap (e, u, 0, NULL), 0);
  ck_assert_int_eq (remap_remap (e, 30, 0, NULL), 0);
  /* Aligned for O_DIRECT (unaligned pieces would be bounced one at a
   * time); buffered, any offset. */
  uint64_t off = direct ? 4 * UNIT : 4 * UNIT + 10, len = 60 * UNIT;
  uint8_t *data, *back;
  ck_assert_int_eq (posix_memalign ((void **) &data, 4096, len), 0);
  ck_assert_int_eq (posix_memalign ((void **) &back, 4096, len), 0);
  tl_pattern (data, len, 0xf11e);
  remap_uring_test_failed_waits = 1;
  ck_assert_int_eq (remap_pwrite (e, data, len, off, 0, &err), 0);
  if (strcmp (remap_backend_uring_status (), "io_uring") == 0)
    ck_assert_msg (remap_uring_test_failed_waits == (direct ? 0 : 1),
                   direct ? "the write's pieces did not go through io_uring "
                   "as one batch" : "buffered writes went to io_uring");
  else
    fprintf (stderr, "test_write_batch_files: %s\n",
             remap_backend_uring_status ());
  remap_uring_test_failed_waits = 0;
  ck_assert_int_eq (remap_pread (e, back, len, off, NULL), 0);
  ck_assert (memcmp (back, data, len) == 0);
  ck_assert_int_eq (remap_close (e), 0);     /* closes o and sp */

  /* The origin under 10..17 and 30 still holds zeroes (never written). */
  int fd = open (po, O_RDONLY);
  uint8_t z[UNIT], u0[UNIT];
  memset (z, 0, UNIT);
  for (uint64_t u = 10; u < 31; u += (u == 17 ? 13 : 1)) {
    ck_assert_int_eq (pread (fd, u0, UNIT, (off_t) (u * UNIT)), UNIT);
    REQ (memcmp (u0, z, UNIT) == 0, "the origin under mapped unit %llu "
         "was written", (unsigned long long) u);
  }
  close (fd);

  struct remap_backend *o2, *s2;
  ck_assert_int_eq (remap_file_open (po, flags, &o2, &err), 0);
  ck_assert_int_eq (remap_file_open (ps, flags, &s2, &err), 0);
  ck_assert_msg (remap_open (o2, s2, &(struct remap_open_opts) {
                               .no_lock = true }, &e, &err) == 0, "%s",
                 err.msg);
  memset (back, 0, len);
  ck_assert_int_eq (remap_pread (e, back, len, off, NULL), 0);
  ck_assert (memcmp (back, data, len) == 0);
  ck_assert_int_eq (remap_close (e), 0);
  unlink (po);
  unlink (ps);
  free (data);
  free (back);
}

START_TEST (test_write_batch_files)
{
  write_batch_files (0);
  write_batch_files (REMAP_FILE_DIRECT);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("runs");
  TCase *tc = tcase_create ("trim-zero");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_trim_one_call);
  tcase_add_test (tc, test_trim_runs);
  tcase_add_test (tc, test_zero_one_call);
  tcase_add_test (tc, test_zero_runs);
  tcase_add_test (tc, test_zero_media_middle);
  tcase_add_test (tc, test_zero_media_no_verdict);
  tcase_add_test (tc, test_zero_not_media);
  tcase_add_test (tc, test_zero_not_media_no_fallback);
  tcase_add_test (tc, test_zero_races_remap);
  suite_add_tcase (s, tc);
  tc = tcase_create ("write-read");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_write_read_runs);
  tcase_add_test (tc, test_write_media_middle);
  tcase_add_test (tc, test_write_not_media);
  tcase_add_test (tc, test_write_batch_files);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
