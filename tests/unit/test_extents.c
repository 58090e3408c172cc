/* remap_extents: the origin's extents merged with the table.
 *
 * The origin is a "script" backend: a mem disk for the bytes, and an
 * allocation map given by the test (a list of segments of any type,
 * unaligned ones too, HOLE without ZERO and ZERO without HOLE as an NBD
 * server may send them), reported at most per_call extents per call so
 * that remap_backend_extents has to ask again.  The expected answer comes
 * from an oracle that knows nothing of the engine: between any two
 * neighbouring boundaries (segment edges, unit edges, request edges) the
 * type is the segment's, or data if the unit is remapped, pending or has
 * lost granules, except that a mapped unit without lost granules over a
 * segment that reads as zero is ZERO where its bytes (read through the
 * engine) are zero; neighbours of one type are merged.  Hand-written
 * vectors check the oracle itself.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define UNIT 4096u
#define UNITS 32u
#define DISK ((uint64_t) UNITS * UNIT)
#define HZ (REMAP_EXTENT_HOLE | REMAP_EXTENT_ZERO)
#define H REMAP_EXTENT_HOLE
#define Z REMAP_EXTENT_ZERO
#define MAXX 256

struct seg {
  uint64_t off, len;
  uint32_t type;
};

struct script {
  struct remap_backend base;    /* first: the vtable base */
  struct remap_backend *inner;
  struct seg seg[MAXX];
  size_t nseg;
  unsigned per_call;            /* extents per call, 0: as many as asked */
  unsigned calls;
};

static int
sc_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  return remap_backend_pread (((struct script *) b)->inner, buf, len, off);
}

static int
sc_pwrite (struct remap_backend *b, const void *buf, size_t len,
           uint64_t off)
{
  return remap_backend_pwrite (((struct script *) b)->inner, buf, len, off);
}

static int
sc_flush (struct remap_backend *b)
{
  return remap_backend_flush (((struct script *) b)->inner);
}

static void
sc_close (struct remap_backend *b)
{
  remap_backend_close (((struct script *) b)->inner);
  free (b);
}

static int
sc_extents (struct remap_backend *b, uint64_t len, uint64_t off,
            remap_extent_fn fn, void *opaque)
{
  struct script *s = (struct script *) b;
  uint64_t end = off + len;
  unsigned n = 0;

  s->calls++;
  for (size_t i = 0; i < s->nseg && off < end; i++) {
    uint64_t se = s->seg[i].off + s->seg[i].len;
    if (se <= off)
      continue;
    uint64_t e = se < end ? se : end;
    int r = fn (opaque, off, e - off, s->seg[i].type);
    if (r)
      return r;
    off = e;
    if (s->per_call && ++n == s->per_call)
      break;
  }
  return 0;
}

static const struct remap_backend_ops script_ops = {
  .kind = "script",
  .pread = sc_pread,
  .pwrite = sc_pwrite,
  .flush = sc_flush,
  .close = sc_close,
  .extents = sc_extents,
};

/* Segments from a list of (length, type), from 0; the last reaches the
 * end of the disk. */
static void
sc_set (struct script *s, const uint64_t *lt, size_t n)
{
  uint64_t off = 0;

  s->nseg = 0;
  for (size_t i = 0; i < n && off < DISK; i++) {
    uint64_t len = i + 1 == n || off + lt[2 * i] > DISK ? DISK - off
      : lt[2 * i];
    s->seg[s->nseg++] = (struct seg) { off, len, (uint32_t) lt[2 * i + 1] };
    off += len;
  }
}

/* ---- a fixture: script origin, mem spare, engine ------------------------ */

struct fx {
  struct remap_backend *om, *sm;
  struct script *sc;
  struct remap_engine *e;
  bool forced[UNITS];           /* what the oracle must report as data */
  bool zc[UNITS];               /* ... unless its bytes are zero (mapped) */
};

static void
fx_open (struct fx *f)
{
  memset (f, 0, sizeof *f);
  f->om = tl_mem (DISK);
  f->sm = tl_mem (1 * MiB);
  tl_format_ok (f->om, f->sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  f->sc = calloc (1, sizeof *f->sc);
  ck_assert_ptr_nonnull (f->sc);
  f->sc->base.ops = &script_ops;
  f->sc->base.size = DISK;
  f->sc->base.align = 1;
  f->sc->base.logical_block = 512;
  strcpy (f->sc->base.name, "script");
  f->sc->inner = tl_share (f->om);
  uint64_t all[] = { DISK, HZ };
  sc_set (f->sc, all, 1);
  struct remap_error err = { 0 };
  int r = remap_open (&f->sc->base, tl_share (f->sm), NULL, &f->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
}

static void
fx_close (struct fx *f)
{
  remap_close (f->e);
  remap_backend_close (f->om);
  remap_backend_close (f->sm);
}

enum how { MAP, PEND, LOST };

static void
fx_remap (struct fx *f, uint64_t u, enum how how)
{
  struct remap_error err = { 0 };
  int r = how == MAP ? remap_remap (f->e, u, 0, &err)
    : how == PEND ? remap_mark_pending (f->e, u, &err)
    : remap_mark_lost (f->e, u, 1, &err);
  ck_assert_msg (r == 0, "unit %llu (%d): %s", (unsigned long long) u,
                 (int) how, err.msg);
  f->forced[u] = true;
  f->zc[u] = how == MAP;
}

/* Write a non-zero pattern into [off, off+len) through the engine. */
static void
fx_fill (struct fx *f, uint64_t off, uint64_t len, uint64_t tag)
{
  uint8_t *buf = malloc (len);
  ck_assert_ptr_nonnull (buf);
  tl_pattern (buf, len, tag);
  ck_assert_int_eq (remap_pwrite (f->e, buf, len, off, 0, NULL), 0);
  free (buf);
}

/* ---- collecting and comparing ----------------------------------------- */

struct list {
  struct seg x[4 * MAXX];
  size_t n;
  unsigned stop_after;          /* 0: never */
};

static int
collect (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct list *l = opaque;

  REQ (l->n < 4 * MAXX, "too many extents");
  l->x[l->n++] = (struct seg) { off, len, type };
  return l->stop_after && l->n == l->stop_after ? 7 : 0;
}

static bool
reads_zero (const struct fx *f, uint64_t a, uint64_t b)
{
  uint8_t buf[UNIT];
  ck_assert_int_eq (remap_pread (f->e, buf, b - a, a, NULL), 0);
  for (uint64_t i = 0; i < b - a; i++)
    if (buf[i])
      return false;
  return true;
}

/* The type of [a, b), which lies in one unit and one segment. */
static uint32_t
oracle_type (const struct fx *f, uint64_t a, uint64_t b)
{
  uint32_t t = UINT32_MAX;
  for (size_t i = 0; i < f->sc->nseg; i++)
    if (a >= f->sc->seg[i].off && a < f->sc->seg[i].off + f->sc->seg[i].len)
      t = f->sc->seg[i].type;
  REQ (t != UINT32_MAX, "byte %llu not in any segment", (unsigned long long) a);
  if (!f->forced[a / UNIT])
    return t;
  if ((t & Z) && f->zc[a / UNIT] && reads_zero (f, a, b))
    return Z;
  return 0;
}

static void
oracle (const struct fx *f, uint64_t off, uint64_t len, struct list *out)
{
  uint64_t end = off + len;

  out->n = 0;
  for (uint64_t a = off; a < end;) {
    uint64_t b = (a / UNIT + 1) * UNIT;         /* next unit edge */
    for (size_t i = 0; i < f->sc->nseg; i++) {  /* or segment edge */
      uint64_t s = f->sc->seg[i].off, e = s + f->sc->seg[i].len;
      if (s > a && s < b)
        b = s;
      if (e > a && e < b)
        b = e;
    }
    if (b > end)
      b = end;
    uint32_t t = oracle_type (f, a, b);
    if (out->n && out->x[out->n - 1].type == t)
      out->x[out->n - 1].len += b - a;
    else
      out->x[out->n++] = (struct seg) { a, b - a, t };
    a = b;
  }
}

static void
show (char *buf, size_t n, const struct list *l)
{
  size_t k = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < l->n && k + 40 < n; i++)
    k += (size_t) snprintf (buf + k, n - k, " %llu+%llu:%u",
                            (unsigned long long) l->x[i].off,
                            (unsigned long long) l->x[i].len, l->x[i].type);
}

static void
same (const char *what, const struct list *got, const struct list *want)
{
  bool eq = got->n == want->n;
  for (size_t i = 0; eq && i < got->n; i++)
    eq = got->x[i].off == want->x[i].off && got->x[i].len == want->x[i].len
      && got->x[i].type == want->x[i].type;
  if (!eq) {
    char g[2048], w[2048];
    show (g, sizeof g, got);
    show (w, sizeof w, want);
    ck_abort_msg ("%s:\n got %s\nwant %s", what, g, w);
  }
}

/* remap_extents of [off, off+len) agrees with the oracle. */
static void
check (struct fx *f, uint64_t off, uint64_t len, const char *what)
{
  struct list got = { .n = 0 }, want;
  struct remap_error err = { 0 };
  int r = remap_extents (f->e, len, off, collect, &got, &err);
  ck_assert_msg (r == 0, "%s: %d %s", what, r, err.msg);
  oracle (f, off, len, &want);
  same (what, &got, &want);
}

/* ---- hand-written vectors (they check the oracle too) ------------------ */

START_TEST (test_remapped_unit_in_hole_is_data)
{
  struct fx f;
  fx_open (&f);
  fx_remap (&f, 3, MAP);
  fx_fill (&f, 3 * UNIT + 4000, 10, 3);  /* not all zero any more */
  struct list got = { .n = 0 };
  ck_assert_int_eq (remap_extents (f.e, DISK, 0, collect, &got, NULL), 0);
  struct list want = { .x = { { 0, 3 * UNIT, HZ }, { 3 * UNIT, UNIT, 0 },
                              { 4 * UNIT, DISK - 4 * UNIT, HZ } }, .n = 3 };
  same ("unit 3 remapped in an all-hole origin", &got, &want);
  check (&f, 0, DISK, "oracle agrees");
  fx_close (&f);
}
END_TEST

START_TEST (test_unaligned_request_and_edges)
{
  struct fx f;
  fx_open (&f);
  /* data [0, 1000), hole [1000, 9000), zero-only [9000, 20000), data. */
  uint64_t lt[] = { 1000, 0, 8000, HZ, 11000, Z, 0, 0 };
  sc_set (f.sc, lt, 4);
  fx_remap (&f, 1, MAP);                /* bytes 4096..8191, in the hole */
  fx_fill (&f, UNIT, UNIT, 1);
  struct list got = { .n = 0 };
  /* From the middle of unit 0 to the middle of unit 4. */
  ck_assert_int_eq (remap_extents (f.e, 17000 - 500, 500, collect, &got,
                                   NULL), 0);
  struct list want = { .x = { { 500, 500, 0 }, { 1000, 3096, HZ },
                              { 4096, 4096, 0 }, { 8192, 808, HZ },
                              { 9000, 8000, Z } }, .n = 5 };
  same ("unaligned request over a remapped unit", &got, &want);
  /* A request that starts and ends inside the remapped unit. */
  got.n = 0;
  ck_assert_int_eq (remap_extents (f.e, 100, 5000, collect, &got, NULL), 0);
  struct list one = { .x = { { 5000, 100, 0 } }, .n = 1 };
  same ("inside the remapped unit", &got, &one);
  for (uint64_t a = 0; a < 6 * UNIT; a += 700)
    for (uint64_t l = 1; a + l <= DISK && l < 7 * UNIT; l += 1500)
      check (&f, a, l, "unaligned sweep");
  fx_close (&f);
}
END_TEST

START_TEST (test_pending_and_lost_are_data)
{
  struct fx f;
  fx_open (&f);
  fx_remap (&f, 5, PEND);
  fx_remap (&f, 6, LOST);
  fx_remap (&f, 8, MAP);
  fx_remap (&f, 9, MAP);
  fx_fill (&f, 8 * UNIT, 2 * UNIT, 8);
  struct list got = { .n = 0 };
  ck_assert_int_eq (remap_extents (f.e, 12 * UNIT, 4 * UNIT, collect, &got,
                                   NULL), 0);
  struct list want = { .x = { { 4 * UNIT, UNIT, HZ }, { 5 * UNIT, 2 * UNIT, 0 },
                              { 7 * UNIT, UNIT, HZ }, { 8 * UNIT, 2 * UNIT, 0 },
                              { 10 * UNIT, 6 * UNIT, HZ } }, .n = 5 };
  same ("pending 5, lost 6, mapped 8 and 9", &got, &want);
  ck_assert_int_eq (remap_unit_pending (f.e, 5), 1);
  ck_assert_uint_ne (tl_lookup (f.e, 6).lost, 0);
  fx_close (&f);
}
END_TEST

/* A mapped unit whose spare copy is zeroes, over an origin hole, is ZERO
 * (not HOLE: it is allocated on the spare); the part of it that is not
 * zero, or that lies over origin data, is data; with a lost granule, or
 * pending, it is data. */
START_TEST (test_mapped_zero_unit_in_hole_is_zero)
{
  struct fx f;
  fx_open (&f);
  /* HZ, then data from 4.5 units on. */
  uint64_t lt[] = { 4 * UNIT + 2048, HZ, 0, 0 };
  sc_set (f.sc, lt, 2);
  fx_remap (&f, 1, MAP);                /* zeroes */
  fx_remap (&f, 2, MAP);
  fx_fill (&f, 2 * UNIT + 100, 1, 2);   /* one byte */
  fx_remap (&f, 4, MAP);                /* half over the hole, half data */
  fx_remap (&f, 6, LOST);
  struct list got = { .n = 0 };
  ck_assert_int_eq (remap_extents (f.e, 7 * UNIT, 0, collect, &got, NULL), 0);
  struct list want = { .x = { { 0, UNIT, HZ }, { UNIT, UNIT, Z },
                              { 2 * UNIT, UNIT, 0 }, { 3 * UNIT, UNIT, HZ },
                              { 4 * UNIT, 2048, Z },
                              { 4 * UNIT + 2048, 3 * UNIT - 2048, 0 } },
                       .n = 6 };
  same ("zero units on the spare", &got, &want);
  /* A request inside unit 2 that misses the written byte is zero. */
  got.n = 0;
  ck_assert_int_eq (remap_extents (f.e, 50, 2 * UNIT, collect, &got, NULL), 0);
  struct list one = { .x = { { 2 * UNIT, 50, Z } }, .n = 1 };
  same ("the zero part of unit 2", &got, &one);
  check (&f, 0, DISK, "oracle agrees");
  fx_close (&f);
}
END_TEST

/* The zero answer is remembered per spare unit, and forgotten when the
 * spare changes: a one-unit write, a batched write over several mapped
 * units, and a spare unit given back and reused by another unit with
 * other bytes (the place a stale answer would show: the new unit lies
 * over an origin hole too, so only the spare's bytes decide). */
START_TEST (test_zero_answer_forgotten)
{
  struct fx f;
  fx_open (&f);
  for (uint64_t u = 1; u <= 6; u++)
    fx_remap (&f, u, MAP);
  check (&f, 0, DISK, "six zero units");        /* remembered now */
  check (&f, 0, DISK, "six zero units, again");
  fx_fill (&f, 2 * UNIT + 4000, 1, 9);          /* one unit */
  check (&f, 0, DISK, "unit 2 written");
  fx_fill (&f, 3 * UNIT + 10, 2 * UNIT, 10);    /* 3, 4, 5 in one write */
  check (&f, 0, DISK, "units 3-5 written");
  check (&f, 0, 7 * UNIT, "units 3-5 written, again");
  /* Unit 6's spare unit is given back, then unit 20 (bytes of its own on
   * the origin, which says HZ everywhere) is remapped and unmapped until
   * the allocator (next fit) hands it that spare unit. */
  tl_pattern (remap_mem_data (f.om) + 20 * UNIT, UNIT, 20);
  struct remap_mapping mp, m20;
  ck_assert_int_eq (remap_lookup (f.e, 6, &mp), 0);
  check (&f, 0, DISK, "before unit 6 is unmapped");
  ck_assert_int_eq (remap_unmap (f.e, 6, REMAP_UNMAP_DISCARD, NULL), 0);
  f.forced[6] = false;
  for (unsigned i = 0;; i++) {
    ck_assert_uint_lt (i, 1000);
    fx_remap (&f, 20, MAP);
    ck_assert_int_eq (remap_lookup (f.e, 20, &m20), 0);
    if (m20.spare_unit == mp.spare_unit)
      break;
    ck_assert_int_eq (remap_unmap (f.e, 20, REMAP_UNMAP_DISCARD, NULL), 0);
  }
  ck_assert (!reads_zero (&f, 20 * UNIT, 21 * UNIT));
  check (&f, 0, DISK, "unit 20 on unit 6's old spare unit");
  struct list got = { .n = 0 };
  ck_assert_int_eq (remap_extents (f.e, UNIT, 20 * UNIT, collect, &got,
                                   NULL), 0);
  struct list data = { .x = { { 20 * UNIT, UNIT, 0 } }, .n = 1 };
  same ("unit 20 is data", &got, &data);
  fx_close (&f);
}
END_TEST

/* A hole without ZERO (an NBD server may say so) keeps its type; a unit
 * unmapped again goes back to the origin's type. */
START_TEST (test_types_pass_through_and_unmap)
{
  struct fx f;
  fx_open (&f);
  uint64_t lt[] = { 8 * UNIT, H, 8 * UNIT, Z, 8 * UNIT, 0, 0, HZ };
  sc_set (f.sc, lt, 4);
  fx_remap (&f, 2, MAP);
  fx_remap (&f, 27, MAP);
  check (&f, 0, DISK, "H, Z, data, HZ with 2 and 27 mapped");
  struct list got = { .n = 0 };
  ck_assert_int_eq (remap_extents (f.e, DISK, 0, collect, &got, NULL), 0);
  ck_assert_uint_eq (got.n, 8);
  ck_assert_int_eq (remap_unmap (f.e, 27, REMAP_UNMAP_DISCARD, NULL), 0);
  f.forced[27] = false;
  check (&f, 0, DISK, "27 unmapped");
  fx_close (&f);
}
END_TEST

/* The origin answers one extent per call: the wrapper asks again. */
START_TEST (test_origin_answers_piecemeal)
{
  struct fx f;
  fx_open (&f);
  uint64_t lt[] = { 3000, HZ, 5000, 0, 100, HZ, 20000, 0, 0, HZ };
  sc_set (f.sc, lt, 5);
  f.sc->per_call = 1;
  fx_remap (&f, 7, MAP);
  f.sc->calls = 0;
  check (&f, 0, DISK, "one extent per call");
  ck_assert_uint_ge (f.sc->calls, 5);
  fx_close (&f);
}
END_TEST

/* fn's non-zero value stops the walk and is returned: the caller (req_one)
 * gets exactly one extent, and it is maximal. */
START_TEST (test_callback_stops)
{
  struct fx f;
  fx_open (&f);
  fx_remap (&f, 20, MAP);
  struct list got = { .n = 0, .stop_after = 1 };
  ck_assert_int_eq (remap_extents (f.e, DISK - 100, 100, collect, &got, NULL),
                    7);
  struct list want = { .x = { { 100, 20 * UNIT - 100, HZ } }, .n = 1 };
  same ("first extent only", &got, &want);
  got.n = 0;
  got.stop_after = 2;
  ck_assert_int_eq (remap_extents (f.e, DISK, 0, collect, &got, NULL), 7);
  ck_assert_uint_eq (got.n, 2);
  fx_close (&f);
}
END_TEST

START_TEST (test_bad_range)
{
  struct fx f;
  fx_open (&f);
  struct list got = { .n = 0 };
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_extents (f.e, 2, DISK - 1, collect, &got, &err),
                    -EINVAL);
  ck_assert_ptr_nonnull (strstr (err.msg, "past the end"));
  ck_assert_int_eq (remap_extents (f.e, 1, UINT64_MAX, collect, &got, NULL),
                    -EINVAL);
  ck_assert_uint_eq (got.n, 0);
  ck_assert_int_eq (remap_extents (f.e, 0, DISK, collect, &got, NULL), 0);
  ck_assert_uint_eq (got.n, 0);
  fx_close (&f);
}
END_TEST

/* ---- random: segments x remaps x requests against the oracle ----------- */

START_TEST (test_random_against_oracle)
{
  bool given;
  uint64_t seed0 = tl_env_u64 ("REMAP_SEED", 0x5eed, &given);
  for (unsigned round = 0; round < 40; round++) {
    uint64_t seed = seed0 + round, s = seed;
    struct fx f;
    fx_open (&f);
    uint64_t lt[2 * 40];
    size_t n = 1 + tl_below (&s, 40);
    static const uint32_t types[] = { 0, HZ, H, Z };
    for (size_t i = 0; i < n; i++) {
      /* Mostly sector-aligned, sometimes any byte. */
      lt[2 * i] = 1 + (tl_below (&s, 4) ? 512 * tl_below (&s, 24)
                       : tl_below (&s, 9000));
      lt[2 * i + 1] = types[tl_below (&s, 4)];
    }
    sc_set (f.sc, lt, n);
    f.sc->per_call = (unsigned) tl_below (&s, 3);
    for (unsigned k = tl_below (&s, 10); k > 0; k--) {
      uint64_t u = tl_below (&s, UNITS);
      if (!f.forced[u]) {
        enum how how = (enum how) tl_below (&s, 3);
        fx_remap (&f, u, how);
        if (how == MAP && tl_below (&s, 2)) {   /* some bytes, or none */
          uint64_t a = tl_below (&s, UNIT);
          fx_fill (&f, u * UNIT + a, 1 + tl_below (&s, UNIT - a), u + 1);
        }
      }
      /* Asking between changes fills the remembered zero answers that
       * the next change must make stale. */
      if (tl_below (&s, 2))
        check (&f, 0, DISK, "between changes");
    }
    char what[80];
    snprintf (what, sizeof what, "seed %llu (REMAP_SEED=%llu, round %u)",
              (unsigned long long) seed, (unsigned long long) seed0, round);
    check (&f, 0, DISK, what);
    for (unsigned q = 0; q < 30; q++) {
      uint64_t off = tl_below (&s, DISK), len = 1 + tl_below (&s, DISK - off);
      check (&f, off, len, what);
    }
    fx_close (&f);
  }
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("extents");
  TCase *tc = tcase_create ("merge");
  tcase_add_test (tc, test_remapped_unit_in_hole_is_data);
  tcase_add_test (tc, test_unaligned_request_and_edges);
  tcase_add_test (tc, test_pending_and_lost_are_data);
  tcase_add_test (tc, test_mapped_zero_unit_in_hole_is_zero);
  tcase_add_test (tc, test_zero_answer_forgotten);
  tcase_add_test (tc, test_types_pass_through_and_unmap);
  tcase_add_test (tc, test_origin_answers_piecemeal);
  tcase_add_test (tc, test_callback_stops);
  tcase_add_test (tc, test_bad_range);
  tcase_add_test (tc, test_random_against_oracle);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
