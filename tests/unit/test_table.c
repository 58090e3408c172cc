/* The in-memory table (core/table.c) against a plain model: an array of
 * one word per slot, as the table used to be.  Random applies, loads,
 * allocations, holds and claims; after each step every query the engine
 * makes (lookup by origin unit, slot words, counters, the allocator's
 * choice) must agree with the model.  Also: the memory the table holds
 * follows the number of entries, not the number of spare units.
 */
#include <check.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/table.h"
#include "testlib.h"

struct model {
  uint64_t N;
  uint32_t E;
  uint64_t *word, *lost;
  uint64_t *where;              /* origin unit -> slot, UINT64_MAX */
  bool *rsv, *claimed, *held;
};

static void
model_init (struct model *m, uint64_t N, uint32_t E)
{
  m->N = N;
  m->E = E;
  m->word = calloc (N, sizeof *m->word);
  m->where = malloc (2 * N * sizeof *m->where);
  for (uint64_t u = 0; u < 2 * N; u++)
    m->where[u] = UINT64_MAX;
  m->lost = calloc (N, sizeof *m->lost);
  m->rsv = calloc (N, 1);
  m->claimed = calloc (N, 1);
  m->held = calloc (N, 1);
}

static void
model_free (struct model *m)
{
  free (m->word);
  free (m->where);
  free (m->lost);
  free (m->rsv);
  free (m->claimed);
  free (m->held);
}

static bool
indexed (uint64_t w)
{
  return word_state (w) == REMAP_SLOT_MAPPED
    || word_state (w) == REMAP_SLOT_PENDING;
}

static uint64_t
model_find (const struct model *m, uint64_t u)
{
  return m->where[u];
}

static void
model_set (struct model *m, uint64_t s, uint64_t w, uint64_t lost)
{
  if (word_state (w) == REMAP_SLOT_FREE)
    w = 0;
  if (indexed (m->word[s]))
    m->where[word_origin (m->word[s])] = UINT64_MAX;
  if (indexed (w))
    m->where[word_origin (w)] = s;
  m->word[s] = w;
  m->lost[s] = word_state (w) == REMAP_SLOT_MAPPED ? lost : 0;
  m->claimed[s] = false;
}

static void
model_apply (struct model *m, const struct change *c, size_t n)
{
  for (size_t x = 0; x < n; x++) {
    if (indexed (c[x].word)) {
      uint64_t o = model_find (m, word_origin (c[x].word));
      if (o != UINT64_MAX && o != c[x].slot)
        model_set (m, o, make_word (REMAP_SLOT_BAD, 0), 0);
    }
    model_set (m, c[x].slot, c[x].word, c[x].lost);
  }
}

static uint64_t
model_alloc (struct model *m, uint64_t *cursor)
{
  uint64_t c = *cursor < m->N ? *cursor : 0;
  for (uint64_t i = 0; i < m->N; i++) {
    uint64_t s = (c + i) % m->N;
    if (!m->word[s] && !m->rsv[s] && !m->claimed[s] && !m->held[s]) {
      m->claimed[s] = true;
      *cursor = s + 1 < m->N ? s + 1 : 0;
      return s;
    }
  }
  return UINT64_MAX;
}

static void
compare (struct table *t, const struct model *m, uint64_t origin_units,
         uint64_t step)
{
  struct table_counts k;
  table_get_counts (t, &k);
  uint64_t mapped = 0, pending = 0, bad = 0, lu = 0, lg = 0, held = 0;
  uint64_t *w = malloc (m->E * sizeof *w), *l = malloc (m->E * sizeof *l);
  for (uint64_t s0 = 0; s0 < m->N; s0 += m->E) {
    table_read_slots (t, s0, m->E, w, l);
    for (uint32_t j = 0; j < m->E; j++) {
      uint64_t s = s0 + j;
      uint64_t mw = s < m->N ? m->word[s] : 0, ml = s < m->N ? m->lost[s] : 0;
      REQ (w[j] == mw && l[j] == ml, "step %llu: slot %llu is %llx/%llx, "
           "model %llx/%llx", (unsigned long long) step,
           (unsigned long long) s, (unsigned long long) w[j],
           (unsigned long long) l[j], (unsigned long long) mw,
           (unsigned long long) ml);
      if (s >= m->N)
        continue;
      switch (word_state (mw)) {
      case REMAP_SLOT_MAPPED:
        mapped++;
        lu += ml != 0;
        lg += (uint64_t) __builtin_popcountll (ml);
        break;
      case REMAP_SLOT_PENDING: pending++; break;
      case REMAP_SLOT_BAD: bad++; break;
      default: held += m->held[s]; break;
      }
      REQ (table_is_reserved (t, s) == m->rsv[s], "step %llu: slot %llu "
           "reserved?", (unsigned long long) step, (unsigned long long) s);
    }
  }
  free (w);
  free (l);
  REQ (k.mapped == mapped && k.pending == pending && k.bad == bad
       && k.lost_units == lu && k.lost_granules == lg && k.held == held,
       "step %llu: counters %llu/%llu/%llu/%llu/%llu/%llu, model "
       "%llu/%llu/%llu/%llu/%llu/%llu", (unsigned long long) step,
       (unsigned long long) k.mapped, (unsigned long long) k.pending,
       (unsigned long long) k.bad, (unsigned long long) k.lost_units,
       (unsigned long long) k.lost_granules, (unsigned long long) k.held,
       (unsigned long long) mapped, (unsigned long long) pending,
       (unsigned long long) bad, (unsigned long long) lu,
       (unsigned long long) lg, (unsigned long long) held);
  REQ (table_nindexed (t) == mapped + pending, "step %llu: nindexed",
       (unsigned long long) step);
  struct tmap *run = malloc (origin_units * sizeof *run);
  table_lookup_run (t, 0, (unsigned) origin_units, run);
  for (uint64_t u = 0; u < origin_units; u++) {
    uint64_t s = model_find (m, u);
    /* One unit at a time answers as the run does (both ask the filter
     * first: it may never hide a unit the index holds). */
    struct tmap one;
    table_lookup (t, u, &one);
    REQ (one.slot == run[u].slot && one.word == run[u].word
         && one.lost == run[u].lost, "step %llu: unit %llu: lookup and "
         "lookup_run disagree", (unsigned long long) step,
         (unsigned long long) u);
    if (s == UINT64_MAX)
      REQ (run[u].word == 0, "step %llu: unit %llu found in slot %llu, "
           "model: nowhere", (unsigned long long) step,
           (unsigned long long) u, (unsigned long long) run[u].slot);
    else
      REQ (run[u].slot == s && run[u].word == m->word[s]
           && run[u].lost == m->lost[s], "step %llu: unit %llu in slot "
           "%llu, model %llu", (unsigned long long) step,
           (unsigned long long) u, (unsigned long long) run[u].slot,
           (unsigned long long) s);
  }
  free (run);
}

static void
random_run (uint64_t N, uint32_t E, uint64_t seed, uint64_t steps)
{
  struct table *t;
  struct model m;
  uint64_t st = seed, origin_units = N + N / 2;
  ck_assert_int_eq (table_create (N, N, E, &t), 0);
  model_init (&m, N, E);
  /* Two reserved extents, one of them crossing blocks. */
  uint64_t r0 = 0, n0 = 1 + tl_below (&st, E + 2 < N / 4 ? E + 2 : N / 4);
  uint64_t r1 = N / 2, n1 = 1 + tl_below (&st, 2 * E);
  if (r1 + n1 > N)
    n1 = N - r1;
  ck_assert_int_eq (table_reserve_units (t, r0, n0), 0);
  ck_assert_int_eq (table_reserve_units (t, r1, n1), 0);
  for (uint64_t s = r0; s < r0 + n0; s++)
    m.rsv[s] = true;
  for (uint64_t s = r1; s < r1 + n1; s++)
    m.rsv[s] = true;

  uint64_t tc = 0, mc = 0;      /* the two cursors */
  for (uint64_t step = 0; step < steps; step++) {
    uint64_t op = tl_below (&st, 10);
    if (op < 4) {               /* allocate and commit, as a remap does */
      uint64_t s, ms = model_alloc (&m, &mc);
      int r = table_alloc (t, &tc, 0, N, &s);
      if (ms == UINT64_MAX) {
        ck_assert_int_eq (r, -ENOSPC);
        continue;
      }
      ck_assert_int_eq (r, 0);
      REQ (s == ms, "step %llu: allocated %llu, model %llu",
           (unsigned long long) step, (unsigned long long) s,
           (unsigned long long) ms);
      ck_assert_uint_eq (tc, mc);
      uint64_t u = tl_below (&st, origin_units);
      enum remap_slot_state sst = tl_below (&st, 3) == 0
        ? REMAP_SLOT_PENDING : REMAP_SLOT_MAPPED;
      uint64_t lost = sst == REMAP_SLOT_MAPPED && tl_below (&st, 4) == 0
        ? tl_rand (&st) : 0;
      struct change c = { s, make_word (sst, u), lost };
      switch (tl_below (&st, 4)) {
      case 0:                   /* the commit failed: give it back */
        table_unalloc (t, s);
        m.claimed[s] = false;
        break;
      case 1:                   /* failed with an unknown outcome */
        ck_assert_int_eq (table_hold (t, s), 0);
        table_unalloc (t, s);
        m.held[s] = true;
        m.claimed[s] = false;
        break;
      default:
        ck_assert_int_eq (table_reserve (t, 1), 0);
        ck_assert_int_eq (table_apply (t, &c, 1), 0);
        model_apply (&m, &c, 1);
      }
    }
    else if (op < 7) {          /* change or free a random slot */
      uint64_t s = tl_below (&st, N);
      if (m.rsv[s] || m.claimed[s])
        continue;
      uint64_t w = 0, lost = 0;
      switch (tl_below (&st, 4)) {
      case 0: break;            /* unmap */
      case 1: w = make_word (REMAP_SLOT_BAD, 0); break;
      case 2:
        w = make_word (REMAP_SLOT_MAPPED, tl_below (&st, origin_units));
        lost = tl_below (&st, 2) ? tl_rand (&st) : 0;
        break;
      case 3:
        if (indexed (m.word[s]))  /* change the lost mask only */
          w = make_word (REMAP_SLOT_MAPPED, word_origin (m.word[s]));
        lost = tl_rand (&st) & 0xff;
        break;
      }
      /* Sometimes a relocation pair: new home, then the old one BAD. */
      struct change c[2] = { { s, w, lost } };
      size_t n = 1;
      uint64_t s2 = tl_below (&st, N);
      if (tl_below (&st, 3) == 0 && s2 != s && !m.rsv[s2] && !m.claimed[s2])
        c[n++] = (struct change) { s2, make_word (REMAP_SLOT_BAD, 0), 0 };
      ck_assert_int_eq (table_reserve (t, n), 0);
      ck_assert_int_eq (table_apply (t, c, n), 0);
      model_apply (&m, c, n);
    }
    else if (op < 8) {          /* a load, as at open */
      uint64_t s = tl_below (&st, N);
      if (m.rsv[s] || m.claimed[s])
        continue;
      uint64_t w = make_word (REMAP_SLOT_BAD, 0);
      if (indexed (m.word[s]) || model_find (&m, s) == UINT64_MAX)
        w = make_word (REMAP_SLOT_MAPPED, indexed (m.word[s])
                       ? word_origin (m.word[s]) : s);
      ck_assert_int_eq (table_load (t, s, w, 0), 0);
      model_set (&m, s, w, 0);
    }
    else if (op < 9) {          /* cursor jumps (a reopen) */
      tc = mc = tl_below (&st, N + 2);
    }
    else {
      uint64_t u = tl_below (&st, origin_units);
      ck_assert_int_eq (table_vpend_add (t, u), 0);
      ck_assert (table_vpend_has (t, u));
      table_vpend_del (t, u);
      ck_assert (!table_vpend_has (t, u));
    }
    if (step % 16 == 0 || step == steps - 1)
      compare (t, &m, origin_units, step);
  }
  table_destroy (t);
  model_free (&m);
}

START_TEST (test_table_against_model)
{
  bool seeded;
  uint64_t seed = tl_env_u64 ("REMAP_SEED", 0x7ab1e, &seeded);
  /* Small blocks fill up and empty again; odd sizes leave a short last
   * block; E of 252 is 4 KiB units. */
  static const struct { uint64_t N; uint32_t E; } geo[] = {
    { 37, 4 }, { 200, 7 }, { 1000, 252 }, { 5000, 60 }, { 64, 64 },
  };
  for (size_t g = 0; g < sizeof geo / sizeof geo[0]; g++)
    random_run (geo[g].N, geo[g].E, seed + g, 4000);
}
END_TEST

/* The allocator never returns a reserved, used, claimed or held slot, and
 * returns every other slot exactly once before ENOSPC. */
START_TEST (test_alloc_exhausts_exactly)
{
  struct table *t;
  uint64_t N = 3000, E = 252, cursor = 2999, s;
  ck_assert_int_eq (table_create (N, N, (uint32_t) E, &t), 0);
  ck_assert_int_eq (table_reserve_units (t, 0, 300), 0);
  ck_assert_int_eq (table_reserve_units (t, 1000, 600), 0);
  struct change c = { 2000, make_word (REMAP_SLOT_BAD, 0), 0 };
  ck_assert_int_eq (table_apply (t, &c, 1), 0);
  ck_assert_int_eq (table_hold (t, 2001), 0);
  bool *seen = calloc (N, 1);
  uint64_t got = 0;
  while (table_alloc (t, &cursor, 0, N, &s) == 0) {
    ck_assert (s >= 300);
    ck_assert (s < 1000 || s >= 1600);
    ck_assert (s != 2000 && s != 2001);
    ck_assert (!seen[s]);
    seen[s] = true;
    got++;
  }
  ck_assert_uint_eq (got, N - 300 - 600 - 2);
  free (seen);
  table_destroy (t);
}
END_TEST

static size_t
heap_in_use (void)
{
  struct mallinfo2 mi = mallinfo2 ();
  return mi.uordblks + mi.hblkhd;
}

/* Memory follows the entries: a table for 2^28 spare units (1 TiB of
 * 4 KiB units) with nothing in it costs its block directory (8 bytes per
 * block of 252 entries, in pages that stay untouched), and entries cost at
 * most 32 bytes each, checked every 1,000 entries from 20,000 on (below
 * that, some 40 KB of small fixed costs dominate the average). */
START_TEST (test_memory_follows_entries)
{
  struct table *t;
  uint64_t N = UINT64_C (1) << 28;
  uint32_t E = 252;
  /* Under ASan, TSan or valgrind malloc is not glibc's: mallinfo2 does not
   * see it, so there is nothing to measure. */
  size_t probe0 = heap_in_use ();
  char *volatile probe = malloc (1 << 20);
  memset (probe, 1, 1 << 20);
  bool measurable = heap_in_use () >= probe0 + (1 << 20);
  free (probe);
  if (!measurable) {
    fprintf (stderr, "table: heap use cannot be measured here (sanitizer "
             "or valgrind malloc); memory check skipped\n");
    return;
  }
  size_t before = heap_in_use ();
  ck_assert_int_eq (table_create (N, N, E, &t), 0);
  size_t empty = heap_in_use () - before;
  ck_assert_uint_le (empty, (N / E + 1) * 8 + 4096);
  /* The worst moment is just after the index grew: look often. */
  uint64_t cursor = 0, s, n = 300000, worst_at = 0;
  double worst = 0;
  for (uint64_t i = 1; i <= n; i++) {
    ck_assert_int_eq (table_alloc (t, &cursor, 0, N, &s), 0);
    struct change c = { s, make_word (REMAP_SLOT_MAPPED, i * 7919), 0 };
    ck_assert_int_eq (table_apply (t, &c, 1), 0);
    if (i % 1000 == 0) {
      double per = (double) (heap_in_use () - before - empty) / (double) i;
      if (i >= 20000 && per > worst)
        worst = per, worst_at = i;
    }
  }
  fprintf (stderr, "table: %zu bytes empty for 2^28 units; at most %.1f "
           "bytes per entry (at %llu entries) from 20,000 to %llu\n", empty,
           worst, (unsigned long long) worst_at, (unsigned long long) n);
  ck_assert_msg (worst <= 32.0, "%.1f bytes per entry", worst);
  table_destroy (t);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("table");
  TCase *tc = tcase_create ("table");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_table_against_model);
  tcase_add_test (tc, test_alloc_exhausts_exactly);
  tcase_add_test (tc, test_memory_follows_entries);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
