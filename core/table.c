/* remap: in-memory remap table.  See table.h for the structures and the
 * locking rule.
 *
 * Layout of this file: the unlocked helpers (index, small maps, one slot)
 * are static and named *_wl (write lock held) or take a const table (read
 * lock held); the public functions below them are the only places that
 * take the lock, and each takes it exactly once.
 *
 * The index deletes by backward shift (no tombstones), so lookups stay
 * short however many remaps come and go.  Growth doubles the bucket array
 * and reinserts, with the lock held exclusive: no reader can be walking
 * the old array when it is freed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

/* A small open-addressing map, key + 1 (0 = empty) -> value. */
struct umap {
  uint64_t *keys;
  uint64_t *vals;
  size_t cap, count;            /* cap is a power of two or 0 */
};

struct table {
  pthread_rwlock_t lock;
  uint64_t N;
  uint64_t *slot;
  uint64_t *busy;
  uint64_t *rsv;
  uint32_t *index;
  size_t index_cap, index_count;
  struct umap lost;             /* slot -> lost mask */
  struct umap vpend;            /* origin unit -> 1 */
  struct umap doubt;            /* origin unit -> 1 */
  struct umap held;             /* slot -> 1 */
  struct table_counts n;
  atomic_uint_fast64_t a_indexed, a_doubt, a_vpend;
};

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

/* ---- small maps (caller holds the lock as needed) ---------------------- */

static size_t
umap_pos (const struct umap *m, uint64_t k, bool *found)
{
  size_t mask = m->cap - 1;
  size_t i = hash64 (k) & mask;
  while (m->keys[i] != 0 && m->keys[i] != k + 1)
    i = (i + 1) & mask;
  *found = m->keys[i] == k + 1;
  return i;
}

static uint64_t
umap_get (const struct umap *m, uint64_t k)
{
  bool found;
  if (m->count == 0)
    return 0;
  size_t i = umap_pos (m, k, &found);
  return found ? m->vals[i] : 0;
}

static int
umap_grow_wl (struct umap *m)
{
  struct umap n = { .cap = m->cap ? m->cap * 2 : 16 };
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
      size_t j = umap_pos (&n, m->keys[i] - 1, &found);
      n.keys[j] = m->keys[i];
      n.vals[j] = m->vals[i];
      n.count++;
    }
  free (m->keys);
  free (m->vals);
  *m = n;
  return 0;
}

/* Room for `more' new keys. */
static int
umap_room_wl (struct umap *m, size_t more)
{
  while ((m->count + more) * 2 > m->cap)
    if (umap_grow_wl (m) != 0)
      return -ENOMEM;
  return 0;
}

static void
umap_del_wl (struct umap *m, uint64_t k)
{
  bool found;
  if (m->count == 0)
    return;
  size_t mask = m->cap - 1;
  size_t i = umap_pos (m, k, &found);
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

/* Set k -> v (v == 0 deletes).  -ENOMEM only if k is new and there is no
 * room (umap_room_wl first makes that impossible). */
static int
umap_set_wl (struct umap *m, uint64_t k, uint64_t v)
{
  bool found;
  if (v == 0) {
    umap_del_wl (m, k);
    return 0;
  }
  if (umap_room_wl (m, 1) != 0)
    return -ENOMEM;
  size_t i = umap_pos (m, k, &found);
  if (!found) {
    m->keys[i] = k + 1;
    m->count++;
  }
  m->vals[i] = v;
  return 0;
}

static void
umap_free (struct umap *m)
{
  free (m->keys);
  free (m->vals);
}

/* ---- index ------------------------------------------------------------- */

static uint32_t
find (const struct table *t, uint64_t origin)
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
index_grow_wl (struct table *t)
{
  size_t cap = t->index_cap ? t->index_cap * 2 : 64;
  uint32_t *idx = malloc (cap * sizeof *idx);
  if (!idx)
    return -ENOMEM;
  memset (idx, 0xff, cap * sizeof *idx);
  for (size_t i = 0; i < t->index_cap; i++)
    if (t->index[i] != SLOT_NONE)
      index_put (idx, cap, word_origin (t->slot[t->index[i]]), t->index[i]);
  free (t->index);
  t->index = idx;
  t->index_cap = cap;
  return 0;
}

/* Remove the bucket holding slot s (origin o), shifting back the cluster. */
static void
index_del_wl (struct table *t, uint64_t o, uint32_t s)
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

/* ---- one slot ---------------------------------------------------------- */

static bool
indexed (uint64_t w)
{
  enum remap_slot_state st = word_state (w);
  return st == REMAP_SLOT_MAPPED || st == REMAP_SLOT_PENDING;
}

/* Room for n more indexed slots and lost masks. */
static int
reserve_wl (struct table *t, size_t n)
{
  while ((t->index_count + n) * 2 > t->index_cap)
    if (index_grow_wl (t) != 0)
      return -ENOMEM;
  return umap_room_wl (&t->lost, n);
}

static void
free_if_unused_wl (struct table *t, uint64_t s)
{
  if (word_state (t->slot[s]) == REMAP_SLOT_FREE && !bit_test (t->rsv, s)
      && umap_get (&t->held, s) == 0)
    bit_clear (t->busy, s);
}

static void
count_wl (struct table *t, uint64_t w, uint64_t lost, int sign)
{
  struct table_counts *n = &t->n;
  uint64_t d = (uint64_t) (int64_t) sign;
  switch (word_state (w)) {
  case REMAP_SLOT_MAPPED:
    n->mapped += d;
    n->lost_units += lost ? d : 0;
    n->lost_granules += d * (uint64_t) __builtin_popcountll (lost);
    break;
  case REMAP_SLOT_PENDING: n->pending += d; break;
  case REMAP_SLOT_BAD: n->bad += d; break;
  default: break;
  }
}

/* Set slot s; room reserved (reserve_wl (t, 1)), so this cannot fail. */
static void
set_wl (struct table *t, uint64_t s, uint64_t w, uint64_t lost)
{
  uint64_t old = t->slot[s];
  if (word_state (w) != REMAP_SLOT_MAPPED)
    lost = 0;
  count_wl (t, old, umap_get (&t->lost, s), -1);
  if (indexed (old) && (!indexed (w) || word_origin (old) != word_origin (w)))
    index_del_wl (t, word_origin (old), (uint32_t) s);
  bool add = indexed (w) && (!indexed (old)
                             || word_origin (old) != word_origin (w));
  t->slot[s] = w;
  if (add) {
    index_put (t->index, t->index_cap, word_origin (w), (uint32_t) s);
    t->index_count++;
  }
  umap_set_wl (&t->lost, s, lost);      /* room reserved */
  count_wl (t, w, lost, +1);
  if (word_state (w) == REMAP_SLOT_FREE)
    free_if_unused_wl (t, s);
  else
    bit_set (t->busy, s);
}

static void
publish_wl (struct table *t)
{
  atomic_store (&t->a_indexed, t->n.mapped + t->n.pending);
  atomic_store (&t->a_doubt, (uint64_t) t->doubt.count);
  atomic_store (&t->a_vpend, (uint64_t) t->vpend.count);
}

/* ---- life -------------------------------------------------------------- */

int
table_create (uint64_t N, struct table **out)
{
  *out = NULL;
  if (N >= SLOT_NONE)
    return -EINVAL;
  struct table *t = calloc (1, sizeof *t);
  if (!t)
    return -ENOMEM;
  size_t words = (size_t) (N + 63) / 64;
  t->N = N;
  t->slot = calloc (N ? N : 1, sizeof *t->slot);
  t->busy = calloc (words ? words : 1, sizeof *t->busy);
  t->rsv = calloc (words ? words : 1, sizeof *t->rsv);
  if (!t->slot || !t->busy || !t->rsv) {
    free (t->slot);
    free (t->busy);
    free (t->rsv);
    free (t);
    return -ENOMEM;
  }
  /* Writer-preferring: a commit is not starved by a stream of readers.
   * Safe because no reader ever takes the lock twice (see table.h). */
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init (&a);
  pthread_rwlockattr_setkind_np (&a,
                                 PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init (&t->lock, &a);
  pthread_rwlockattr_destroy (&a);
  *out = t;
  return 0;
}

void
table_destroy (struct table *t)
{
  if (!t)
    return;
  pthread_rwlock_destroy (&t->lock);
  free (t->slot);
  free (t->busy);
  free (t->rsv);
  free (t->index);
  umap_free (&t->lost);
  umap_free (&t->vpend);
  umap_free (&t->doubt);
  umap_free (&t->held);
  free (t);
}

/* ---- readers ----------------------------------------------------------- */

static void
lookup_rl (const struct table *t, uint64_t u, struct tmap *m)
{
  uint32_t s = find (t, u);
  if (s == SLOT_NONE) {
    m->slot = m->word = m->lost = 0;
    return;
  }
  m->slot = s;
  m->word = t->slot[s];
  m->lost = umap_get (&t->lost, s);
}

void
table_lookup (struct table *t, uint64_t u, struct tmap *m)
{
  pthread_rwlock_rdlock (&t->lock);
  lookup_rl (t, u, m);
  pthread_rwlock_unlock (&t->lock);
}

void
table_lookup_run (struct table *t, uint64_t u0, unsigned n, struct tmap *m)
{
  pthread_rwlock_rdlock (&t->lock);
  for (unsigned i = 0; i < n; i++)
    lookup_rl (t, u0 + i, &m[i]);
  pthread_rwlock_unlock (&t->lock);
}

void
table_read_slots (struct table *t, uint64_t s0, unsigned n, uint64_t *word,
                  uint64_t *lost)
{
  pthread_rwlock_rdlock (&t->lock);
  for (unsigned i = 0; i < n; i++) {
    uint64_t s = s0 + i;
    word[i] = s < t->N ? t->slot[s] : 0;
    lost[i] = s < t->N ? umap_get (&t->lost, s) : 0;
  }
  pthread_rwlock_unlock (&t->lock);
}

bool
table_is_reserved (struct table *t, uint64_t s)
{
  pthread_rwlock_rdlock (&t->lock);
  bool r = s < t->N && bit_test (t->rsv, s);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

void
table_get_counts (struct table *t, struct table_counts *c)
{
  pthread_rwlock_rdlock (&t->lock);
  *c = t->n;
  c->vpend = t->vpend.count;
  c->doubt = t->doubt.count;
  c->held = 0;                  /* held slots the table calls free */
  for (size_t i = 0; i < t->held.cap && t->held.count; i++)
    if (t->held.keys[i]
        && word_state (t->slot[t->held.keys[i] - 1]) == REMAP_SLOT_FREE)
      c->held++;
  pthread_rwlock_unlock (&t->lock);
}

bool
table_doubt_find (struct table *t, uint64_t first, uint64_t last,
                  uint64_t *u)
{
  bool r = false;
  pthread_rwlock_rdlock (&t->lock);
  const struct umap *m = &t->doubt;
  for (size_t i = 0; i < m->cap && m->count; i++) {
    uint64_t k = m->keys[i] - 1;
    if (m->keys[i] && k >= first && k <= last && (!r || k < *u)) {
      *u = k;
      r = true;
    }
  }
  pthread_rwlock_unlock (&t->lock);
  return r;
}

bool
table_vpend_has (struct table *t, uint64_t u)
{
  pthread_rwlock_rdlock (&t->lock);
  bool r = umap_get (&t->vpend, u) != 0;
  pthread_rwlock_unlock (&t->lock);
  return r;
}

int
table_snapshot (struct table *t, struct remap_mapping **out, size_t *n)
{
  pthread_rwlock_rdlock (&t->lock);
  size_t cap = t->n.mapped + t->n.pending + t->n.bad, i = 0;
  struct remap_mapping *snap = malloc ((cap ? cap : 1) * sizeof *snap);
  if (!snap) {
    pthread_rwlock_unlock (&t->lock);
    return -ENOMEM;
  }
  for (uint64_t s = 0; s < t->N && i < cap; s++) {
    uint64_t w = t->slot[s];
    if (word_state (w) == REMAP_SLOT_FREE)
      continue;
    snap[i++] = (struct remap_mapping) {
      .origin_unit = word_origin (w), .state = word_state (w),
      .spare_unit = s, .lost = umap_get (&t->lost, s),
    };
  }
  pthread_rwlock_unlock (&t->lock);
  *out = snap;
  *n = i;
  return 0;
}

uint64_t
table_nindexed (const struct table *t)
{
  return atomic_load (&t->a_indexed);
}

uint64_t
table_ndoubt (const struct table *t)
{
  return atomic_load (&t->a_doubt);
}

uint64_t
table_nvpend (const struct table *t)
{
  return atomic_load (&t->a_vpend);
}

/* ---- writers ----------------------------------------------------------- */

void
table_reserve_units (struct table *t, uint64_t first, uint64_t n)
{
  pthread_rwlock_wrlock (&t->lock);
  for (uint64_t s = first; s < first + n && s < t->N; s++) {
    bit_set (t->rsv, s);
    bit_set (t->busy, s);
  }
  pthread_rwlock_unlock (&t->lock);
}

int
table_reserve (struct table *t, size_t n)
{
  pthread_rwlock_wrlock (&t->lock);
  int r = reserve_wl (t, n);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

int
table_apply (struct table *t, const struct change *c, size_t n)
{
  pthread_rwlock_wrlock (&t->lock);
  /* Each change can add one indexed slot and one lost mask. */
  int r = reserve_wl (t, n);
  for (size_t x = 0; x < n && r == 0; x++) {
    if (c[x].slot >= t->N)
      continue;                 /* the caller's bug: never a stray write */
    if (indexed (c[x].word)) {
      uint64_t u = word_origin (c[x].word);
      uint32_t o = find (t, u);
      if (o != SLOT_NONE && o != c[x].slot)
        set_wl (t, o, make_word (REMAP_SLOT_BAD, 0), 0);
      umap_del_wl (&t->vpend, u);
    }
    set_wl (t, c[x].slot, c[x].word, c[x].lost);
  }
  publish_wl (t);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

int
table_load (struct table *t, uint64_t s, uint64_t word, uint64_t lost)
{
  if (s >= t->N)
    return -EINVAL;
  pthread_rwlock_wrlock (&t->lock);
  int r = reserve_wl (t, 1);
  if (r == 0)
    set_wl (t, s, word, lost);
  publish_wl (t);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

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
  pthread_rwlock_wrlock (&t->lock);
  uint64_t c = *cursor < t->N ? *cursor : 0;
  uint64_t s = scan (t->busy, c, t->N);
  if (s == UINT64_MAX)
    s = scan (t->busy, 0, c);
  int r = -ENOSPC;
  if (s != UINT64_MAX) {
    bit_set (t->busy, s);
    *slot = s;
    *cursor = s + 1 < t->N ? s + 1 : 0;
    r = 0;
  }
  pthread_rwlock_unlock (&t->lock);
  return r;
}

void
table_unalloc (struct table *t, uint64_t s)
{
  if (s >= t->N)
    return;
  pthread_rwlock_wrlock (&t->lock);
  free_if_unused_wl (t, s);
  pthread_rwlock_unlock (&t->lock);
}

int
table_hold (struct table *t, uint64_t s)
{
  if (s >= t->N)
    return -EINVAL;
  pthread_rwlock_wrlock (&t->lock);
  bit_set (t->busy, s);
  int r = umap_set_wl (&t->held, s, 1);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

static int
uset_add (struct table *t, struct umap *m, uint64_t u)
{
  pthread_rwlock_wrlock (&t->lock);
  int r = umap_set_wl (m, u, 1);
  publish_wl (t);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

int
table_doubt_add (struct table *t, uint64_t u)
{
  return uset_add (t, &t->doubt, u);
}

int
table_vpend_add (struct table *t, uint64_t u)
{
  return uset_add (t, &t->vpend, u);
}

void
table_vpend_del (struct table *t, uint64_t u)
{
  pthread_rwlock_wrlock (&t->lock);
  umap_del_wl (&t->vpend, u);
  publish_wl (t);
  pthread_rwlock_unlock (&t->lock);
}
