/* remap: in-memory remap table.  See table.h for the structures.
 *
 * The index deletes by backward shift (no tombstones), so lookups stay
 * short however many remaps come and go.  Growth doubles the bucket array
 * and reinserts; it happens under the caller's exclusive lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

static inline size_t
hash64 (uint64_t x)
{
  x ^= x >> 33;
  x *= UINT64_C (0xff51afd7ed558ccd);
  x ^= x >> 33;
  x *= UINT64_C (0xc4ceb9fe1a85ec53);
  x ^= x >> 33;
  return (size_t) x;
}

int
table_init (struct table *t, uint64_t N)
{
  memset (t, 0, sizeof *t);
  t->N = N;
  size_t words = (size_t) (N + 63) / 64;
  t->slot = calloc (N ? N : 1, sizeof *t->slot);
  t->busy = calloc (words ? words : 1, sizeof *t->busy);
  t->rsv = calloc (words ? words : 1, sizeof *t->rsv);
  if (!t->slot || !t->busy || !t->rsv) {
    table_free (t);
    return -ENOMEM;
  }
  return 0;
}

void
table_free (struct table *t)
{
  free (t->slot);
  free (t->busy);
  free (t->rsv);
  free (t->index);
  free (t->lost.keys);
  free (t->lost.vals);
  free (t->vpend.keys);
  free (t->vpend.vals);
  free (t->doubt.keys);
  free (t->doubt.vals);
  memset (t, 0, sizeof *t);
}

/* ---- index ----------------------------------------------------------- */

uint32_t
table_find (const struct table *t, uint64_t origin)
{
  if (t->index_count == 0)
    return SLOT_NONE;
  size_t mask = t->index_cap - 1;
  for (size_t i = hash64 (origin) & mask;; i = (i + 1) & mask) {
    uint32_t s = t->index[i];
    if (s == SLOT_NONE)
      return SLOT_NONE;
    if (word_origin (t->slot[s]) == origin)
      return s;
  }
}

static void
index_put (uint32_t *idx, size_t cap, uint64_t origin, uint32_t s)
{
  size_t mask = cap - 1;
  size_t i = hash64 (origin) & mask;
  while (idx[i] != SLOT_NONE)
    i = (i + 1) & mask;
  idx[i] = s;
}

static int
index_grow (struct table *t)
{
  size_t cap = t->index_cap ? t->index_cap * 2 : 64;
  uint32_t *idx = malloc (cap * sizeof *idx);
  if (!idx)
    return -ENOMEM;
  memset (idx, 0xff, cap * sizeof *idx);
  for (size_t i = 0; i < t->index_cap; i++)
    if (t->index[i] != SLOT_NONE)
      index_put (idx, cap, word_origin (t->slot[t->index[i]]),
                 t->index[i]);
  free (t->index);
  t->index = idx;
  t->index_cap = cap;
  return 0;
}

/* Remove bucket holding slot s (origin o), shifting back the cluster. */
static void
index_del (struct table *t, uint64_t o, uint32_t s)
{
  size_t mask = t->index_cap - 1;
  size_t i = hash64 (o) & mask;
  while (t->index[i] != s)
    i = (i + 1) & mask;
  for (size_t j = (i + 1) & mask; t->index[j] != SLOT_NONE;
       j = (j + 1) & mask) {
    size_t home = hash64 (word_origin (t->slot[t->index[j]])) & mask;
    /* Move j back to i if its home is not in (i, j] cyclically. */
    bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      t->index[i] = t->index[j];
      i = j;
    }
  }
  t->index[i] = SLOT_NONE;
  t->index_count--;
}

/* ---- lost map -------------------------------------------------------- */

static size_t
lost_pos (const struct lostmap *m, uint64_t s, bool *found)
{
  size_t mask = m->cap - 1;
  size_t i = hash64 (s) & mask;
  while (m->keys[i] != 0 && m->keys[i] != s + 1)
    i = (i + 1) & mask;
  *found = m->keys[i] == s + 1;
  return i;
}

uint64_t
table_lost (const struct table *t, uint64_t s)
{
  bool found;
  if (t->lost.count == 0)
    return 0;
  size_t i = lost_pos (&t->lost, s, &found);
  return found ? t->lost.vals[i] : 0;
}

static int
lost_grow (struct lostmap *m)
{
  struct lostmap n = { .cap = m->cap ? m->cap * 2 : 16 };
  n.keys = calloc (n.cap, sizeof *n.keys);
  n.vals = calloc (n.cap, sizeof *n.vals);
  if (!n.keys || !n.vals) {
    free (n.keys);
    free (n.vals);
    return -ENOMEM;
  }
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i]) {
      bool found;
      size_t j = lost_pos (&n, m->keys[i] - 1, &found);
      n.keys[j] = m->keys[i];
      n.vals[j] = m->vals[i];
      n.count++;
    }
  free (m->keys);
  free (m->vals);
  *m = n;
  return 0;
}

static void
lost_del (struct lostmap *m, uint64_t s)
{
  bool found;
  size_t mask = m->cap - 1;
  size_t i = lost_pos (m, s, &found);
  if (!found)
    return;
  for (size_t j = (i + 1) & mask; m->keys[j] != 0; j = (j + 1) & mask) {
    size_t home = hash64 (m->keys[j] - 1) & mask;
    bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      m->keys[i] = m->keys[j];
      m->vals[i] = m->vals[j];
      i = j;
    }
  }
  m->keys[i] = 0;
  m->vals[i] = 0;
  m->count--;
}

static int
lost_set (struct lostmap *m, uint64_t s, uint64_t v)
{
  bool found;
  if (v == 0) {
    if (m->count)
      lost_del (m, s);
    return 0;
  }
  if ((m->count + 1) * 2 > m->cap) {
    int r = lost_grow (m);
    if (r)
      return r;
  }
  size_t i = lost_pos (m, s, &found);
  if (!found) {
    m->keys[i] = s + 1;
    m->count++;
  }
  m->vals[i] = v;
  return 0;
}

int
table_uset_add (struct lostmap *m, uint64_t u)
{
  return lost_set (m, u, 1);
}

bool
table_uset_has (const struct lostmap *m, uint64_t u)
{
  bool found;
  if (m->count == 0)
    return false;
  lost_pos (m, u, &found);
  return found;
}

void
table_uset_del (struct lostmap *m, uint64_t u)
{
  if (m->count)
    lost_del (m, u);
}

/* ---- slots ----------------------------------------------------------- */

int
table_reserve (struct table *t, size_t n)
{
  while ((t->index_count + n) * 2 > t->index_cap)
    if (index_grow (t) != 0)
      return -ENOMEM;
  while ((t->lost.count + n) * 2 > t->lost.cap)
    if (lost_grow (&t->lost) != 0)
      return -ENOMEM;
  return 0;
}

static bool
indexed (uint64_t w)
{
  enum remap_slot_state st = word_state (w);
  return st == REMAP_SLOT_MAPPED || st == REMAP_SLOT_PENDING;
}

int
table_set (struct table *t, uint64_t s, uint64_t w, uint64_t lost)
{
  uint64_t old = t->slot[s];
  int r;

  if (word_state (w) != REMAP_SLOT_MAPPED)
    lost = 0;
  /* Reserve room first so that failure changes nothing. */
  if (indexed (w) && !indexed (old)
      && (t->index_count + 1) * 2 > t->index_cap) {
    if ((r = index_grow (t)) != 0)
      return r;
  }
  if (lost && (t->lost.count + 1) * 2 > t->lost.cap
      && table_lost (t, s) == 0) {
    if ((r = lost_grow (&t->lost)) != 0)
      return r;
  }

  if (indexed (old) && (!indexed (w) || word_origin (old) != word_origin (w)))
    index_del (t, word_origin (old), (uint32_t) s);
  bool add = indexed (w) && (!indexed (old)
                             || word_origin (old) != word_origin (w));
  t->slot[s] = w;
  if (add) {
    index_put (t->index, t->index_cap, word_origin (w), (uint32_t) s);
    t->index_count++;
  }
  lost_set (&t->lost, s, lost);     /* cannot fail: room reserved above */
  if (word_state (w) == REMAP_SLOT_FREE && !bit_test (t->rsv, s))
    bit_clear (t->busy, s);
  else
    bit_set (t->busy, s);
  return 0;
}

/* ---- allocator ------------------------------------------------------- */

/* First clear bit of busy in [from, to), or UINT64_MAX. */
static uint64_t
scan (const uint64_t *busy, uint64_t from, uint64_t to)
{
  uint64_t i = from;
  while (i < to) {
    uint64_t w = ~busy[i / 64] & (UINT64_MAX << (i % 64));
    if (w) {
      uint64_t b = (i & ~UINT64_C (63)) + (uint64_t) __builtin_ctzll (w);
      return b < to ? b : UINT64_MAX;
    }
    i = (i & ~UINT64_C (63)) + 64;
  }
  return UINT64_MAX;
}

int
table_alloc (struct table *t, uint64_t *cursor, uint64_t *slot)
{
  uint64_t c = *cursor < t->N ? *cursor : 0;
  uint64_t s = scan (t->busy, c, t->N);
  if (s == UINT64_MAX)
    s = scan (t->busy, 0, c);
  if (s == UINT64_MAX)
    return -ENOSPC;
  bit_set (t->busy, s);
  *slot = s;
  *cursor = s + 1 < t->N ? s + 1 : 0;
  return 0;
}

void
table_unalloc (struct table *t, uint64_t s)
{
  if (word_state (t->slot[s]) == REMAP_SLOT_FREE && !bit_test (t->rsv, s))
    bit_clear (t->busy, s);
}
