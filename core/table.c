/* remap: in-memory remap table.  See table.h for the contract and the
 * locking rule.
 *
 * Memory follows the number of entries, not the size of the spare
 * (SPEC 2.6):
 *
 *   blk[T]     one pointer per table block (T = N / E, so a quarter of a
 *              bit per spare unit at 4 KiB units; calloc'd, so the pages
 *              of untouched regions are never resident).  A block that
 *              holds no entry has no array.  A block's array lists its
 *              non-free slots in slot order: a 16-bit offset in the block
 *              and the 64-bit entry word, 10 bytes per entry.
 *   index      origin unit -> slot: open addressing, linear probing, load
 *              1/2 to 3/4 (it grows by half); a bucket is the slot (32
 *              bits) and 32 bits of the origin's hash, so a probe rarely
 *              needs the word.  11 to 16 bytes per indexed entry.
 *   lost       slot -> lost-granule mask, for the rare units with lost data.
 *   claimed    slots handed out by table_alloc that have no entry yet.
 *   held       slots named by a commit of unknown outcome.
 *   vpend, doubt   origin units: pending in memory only, in doubt.
 *   filter     a quick "not remapped" test, asked before the index: one
 *              64-bit word per 16 index buckets (at most a byte an
 *              entry, within the 32 bytes test_table allows); a
 *              group of 64 origin units hashes to a word and each unit
 *              to one bit of it.  Bit clear: the unit is on the origin,
 *              with no index probe and no read of the block arrays (issue
 *              12: at 10 % remapped those were the read path's largest
 *              cost of its own).  Bits are only ever set: a unit that
 *              leaves the index keeps its bit until the filter is rebuilt
 *              with the index (growth, open), which only costs a probe.
 *   rsv        the reserved extents (metadata copies), at most 8.
 *
 * A slot is free for the allocator when it is in no reserved extent, has no
 * entry, and is neither claimed nor held.  The allocator is next-fit over
 * blocks: a block without an array is free from the offset asked, a full
 * block is skipped whole, otherwise the gaps of its sorted array are walked.
 *
 * Layout of this file: the unlocked helpers (index, small maps, blocks, one
 * slot) are static and named *_wl (write lock held) or take a const table
 * (read lock held); the public functions below them are the only places
 * that take the lock, and each takes it exactly once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

#define MAX_RSV 16
#define GROUP_SHIFT 6u          /* 64 origin units per filter word */

/* A small open-addressing map, key + 1 (0 = empty) -> value. */
struct umap {
  uint64_t *keys;
  uint64_t *vals;
  size_t cap, count;            /* cap is a power of two or 0 */
};

/* The non-free slots of one table block, in slot order. */
struct blk {
  uint32_t n, cap;
  uint16_t *off;                /* [cap] offset of the slot in the block */
  uint64_t *word;               /* [cap] its entry word */
};

struct bucket {
  uint32_t slot;                /* SLOT_NONE: empty */
  uint32_t tag;                 /* high half of the origin's hash */
};

struct table {
  pthread_rwlock_t lock;
  uint64_t N;                   /* slots */
  uint64_t Nreal;               /* slots below it are spare units; slots
                                   from it on are pending-only places */
  uint32_t E;                   /* entries per block */
  uint64_t T;                   /* blocks */
  struct blk **blk;             /* [T] */
  struct bucket *index;
  size_t index_cap, index_count;
  uint64_t *filter;             /* [filter_n], set with index; see above */
  size_t filter_n;
  struct umap lost;             /* slot -> lost mask */
  struct umap claimed;          /* slot -> 1 */
  struct umap held;             /* slot -> 1 */
  struct umap vpend;            /* origin unit -> 1 */
  struct umap doubt;            /* origin unit -> 1 */
  struct { uint64_t first, end; } rsv[MAX_RSV];
  unsigned nrsv;
  struct table_counts n;
  atomic_uint_fast64_t a_indexed, a_doubt, a_vpend;
};

static inline uint64_t
hash64 (uint64_t x)
{
  x ^= x >> 33;
  x *= UINT64_C (0xff51afd7ed558ccd);
  x ^= x >> 33;
  x *= UINT64_C (0xc4ceb9fe1a85ec53);
  x ^= x >> 33;
  return x;
}

/* ---- small maps (caller holds the lock as needed) ---------------------- */

static size_t
umap_pos (const struct umap *m, uint64_t k, bool *found)
{
  size_t mask = m->cap - 1;
  size_t i = (size_t) hash64 (k) & mask;
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
    size_t home = (size_t) hash64 (m->keys[j] - 1) & mask;
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

/* ---- blocks -------------------------------------------------------------- */

/* Position of offset o in block b: the index where it is or would go. */
static uint32_t
blk_pos (const struct blk *b, uint32_t o, bool *found)
{
  uint32_t lo = 0, hi = b->n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (b->off[mid] < o)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < b->n && b->off[lo] == o;
  return lo;
}

/* The word of slot s (0: free). */
static uint64_t
word_of (const struct table *t, uint64_t s)
{
  const struct blk *b = t->blk[s / t->E];
  bool found;
  if (!b)
    return 0;
  uint32_t i = blk_pos (b, (uint32_t) (s % t->E), &found);
  return found ? b->word[i] : 0;
}

/* Make sure block k can take `more' more entries.  0 or -ENOMEM. */
static int
blk_room_wl (struct table *t, uint64_t k, uint32_t more)
{
  struct blk *b = t->blk[k];
  if (b && b->n + more <= b->cap)
    return 0;
  if (!b) {
    b = calloc (1, sizeof *b);
    if (!b)
      return -ENOMEM;
    t->blk[k] = b;
  }
  /* Small steps: memory stays close to 10 bytes per entry. */
  uint32_t cap = b->cap + (b->cap < 32 ? 4 : b->cap / 4);
  if (cap < b->n + more)
    cap = b->n + more;
  if (cap > t->E)
    cap = t->E;
  uint16_t *off = realloc (b->off, cap * sizeof *off);
  if (!off)
    return -ENOMEM;
  b->off = off;
  uint64_t *word = realloc (b->word, cap * sizeof *word);
  if (!word)
    return -ENOMEM;
  b->word = word;
  b->cap = cap;
  return 0;
}

/* Set the word of slot s (0 removes it); room made by blk_room_wl. */
static void
blk_set_wl (struct table *t, uint64_t s, uint64_t w)
{
  uint64_t k = s / t->E;
  uint32_t o = (uint32_t) (s % t->E);
  struct blk *b = t->blk[k];
  bool found;
  uint32_t i = b ? blk_pos (b, o, &found) : 0;
  if (!b)
    found = false;
  if (w == 0) {
    if (!found)
      return;
    memmove (b->off + i, b->off + i + 1, (b->n - i - 1) * sizeof *b->off);
    memmove (b->word + i, b->word + i + 1, (b->n - i - 1) * sizeof *b->word);
    if (--b->n == 0) {
      free (b->off);
      free (b->word);
      free (b);
      t->blk[k] = NULL;
    }
    return;
  }
  if (found) {
    b->word[i] = w;
    return;
  }
  memmove (b->off + i + 1, b->off + i, (b->n - i) * sizeof *b->off);
  memmove (b->word + i + 1, b->word + i, (b->n - i) * sizeof *b->word);
  b->off[i] = (uint16_t) o;
  b->word[i] = w;
  b->n++;
}

static bool
reserved (const struct table *t, uint64_t s)
{
  for (unsigned i = 0; i < t->nrsv; i++)
    if (s >= t->rsv[i].first && s < t->rsv[i].end)
      return true;
  return false;
}

/* ---- index ------------------------------------------------------------- */

/* The home bucket of a hash: its low half scaled to [0, cap), so that cap
 * need not be a power of two and the index can grow by half instead of
 * doubling (memory: 8 bytes per bucket at a load of 1/2 to 3/4). */
static inline size_t
home_of (uint64_t h, size_t cap)
{
  return (size_t) (((h & UINT32_MAX) * (uint64_t) cap) >> 32);
}

static inline size_t
next_of (size_t i, size_t cap)
{
  return i + 1 < cap ? i + 1 : 0;
}

static uint32_t
find (const struct table *t, uint64_t origin)
{
  if (t->index_count == 0)
    return SLOT_NONE;
  uint64_t h = hash64 (origin);
  uint32_t tag = (uint32_t) (h >> 32);
  for (size_t i = home_of (h, t->index_cap);; i = next_of (i, t->index_cap)) {
    const struct bucket *bk = &t->index[i];
    if (bk->slot == SLOT_NONE)
      return SLOT_NONE;
    if (bk->tag == tag && word_origin (word_of (t, bk->slot)) == origin)
      return bk->slot;
  }
}

/* ---- filter ---------------------------------------------------------------- */

static size_t
filter_words (size_t index_cap)
{
  return index_cap / 16 ? index_cap / 16 : 1;
}

static inline size_t
filter_pos (uint64_t u, size_t n)
{
  return home_of (hash64 (u >> GROUP_SHIFT), n);
}

static inline uint64_t
filter_bit (uint64_t u)
{
  return UINT64_C (1) << (u & ((1u << GROUP_SHIFT) - 1));
}

static void
filter_add (uint64_t *f, size_t n, uint64_t u)
{
  f[filter_pos (u, n)] |= filter_bit (u);
}

/* False if origin unit u is certainly in no bucket of the index. */
static inline bool
filter_may_have (const struct table *t, uint64_t u)
{
  return t->filter_n
    && (t->filter[filter_pos (u, t->filter_n)] & filter_bit (u)) != 0;
}

static void
index_put (struct bucket *idx, size_t cap, uint64_t origin, uint32_t s)
{
  uint64_t h = hash64 (origin);
  size_t i = home_of (h, cap);
  while (idx[i].slot != SLOT_NONE)
    i = next_of (i, cap);
  idx[i] = (struct bucket) { s, (uint32_t) (h >> 32) };
}

static int
index_grow_wl (struct table *t)
{
  size_t cap = t->index_cap ? t->index_cap + t->index_cap / 2 : 64;
  if (cap >= UINT32_MAX)
    return -ENOMEM;
  struct bucket *idx = malloc (cap * sizeof *idx);
  size_t fn = filter_words (cap);
  uint64_t *f = calloc (fn, sizeof *f);
  if (!idx || !f) {
    free (idx);
    free (f);
    return -ENOMEM;
  }
  for (size_t i = 0; i < cap; i++)
    idx[i].slot = SLOT_NONE;
  for (size_t i = 0; i < t->index_cap; i++)
    if (t->index[i].slot != SLOT_NONE) {
      uint64_t o = word_origin (word_of (t, t->index[i].slot));
      index_put (idx, cap, o, t->index[i].slot);
      filter_add (f, fn, o);
    }
  free (t->index);
  free (t->filter);
  t->index = idx;
  t->index_cap = cap;
  t->filter = f;
  t->filter_n = fn;
  return 0;
}

/* Remove the bucket holding slot s (origin o), shifting back the cluster.
 * Called while slot s still holds its old word. */
static void
index_del_wl (struct table *t, uint64_t o, uint32_t s)
{
  size_t cap = t->index_cap;
  size_t i = home_of (hash64 (o), cap);
  while (t->index[i].slot != s)
    i = next_of (i, cap);
  for (size_t j = next_of (i, cap); t->index[j].slot != SLOT_NONE;
       j = next_of (j, cap)) {
    uint64_t oj = word_origin (word_of (t, t->index[j].slot));
    size_t home = home_of (hash64 (oj), cap);
    /* Move j back to i if its home is not in (i, j] cyclically. */
    bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!between) {
      t->index[i] = t->index[j];
      i = j;
    }
  }
  t->index[i].slot = SLOT_NONE;
  t->index_count--;
}

/* ---- one slot ---------------------------------------------------------- */

static bool
indexed (uint64_t w)
{
  enum remap_slot_state st = word_state (w);
  return st == REMAP_SLOT_MAPPED || st == REMAP_SLOT_PENDING;
}

/* Room for n changes: n more indexed slots and lost masks, a free place in
 * n blocks cannot be promised here (blocks are per slot), see set_wl. */
static int
reserve_wl (struct table *t, size_t n)
{
  while ((t->index_count + n) * 4 > t->index_cap * 3)
    if (index_grow_wl (t) != 0)
      return -ENOMEM;
  return umap_room_wl (&t->lost, n);
}

static void
count_wl (struct table *t, uint64_t s, uint64_t w, uint64_t lost, int sign)
{
  struct table_counts *n = &t->n;
  uint64_t d = (uint64_t) (int64_t) sign;
  if (word_state (w) == REMAP_SLOT_PENDING && s < t->Nreal)
    n->pending_spare += d;
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

/* Set slot s (< N).  Fails only with -ENOMEM, before changing anything:
 * the index and lost room come from reserve_wl, the block's from
 * blk_room_wl here. */
static int
set_wl (struct table *t, uint64_t s, uint64_t w, uint64_t lost)
{
  uint64_t old = word_of (t, s);
  if (word_state (w) == REMAP_SLOT_FREE)
    w = 0;
  if (word_state (w) != REMAP_SLOT_MAPPED)
    lost = 0;
  if (w && !old && blk_room_wl (t, s / t->E, 1) != 0)
    return -ENOMEM;
  count_wl (t, s, old, umap_get (&t->lost, s), -1);
  if (indexed (old) && (!indexed (w) || word_origin (old) != word_origin (w)))
    index_del_wl (t, word_origin (old), (uint32_t) s);
  bool add = indexed (w) && (!indexed (old)
                             || word_origin (old) != word_origin (w));
  blk_set_wl (t, s, w);
  if (add) {
    index_put (t->index, t->index_cap, word_origin (w), (uint32_t) s);
    filter_add (t->filter, t->filter_n, word_origin (w));
    t->index_count++;
  }
  umap_set_wl (&t->lost, s, lost);      /* room reserved */
  count_wl (t, s, w, lost, +1);
  umap_del_wl (&t->claimed, s);         /* it has an entry, or is free */
  return 0;
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
table_create (uint64_t N, uint64_t Nreal, uint32_t E, struct table **out)
{
  *out = NULL;
  if (N >= SLOT_NONE || Nreal > N || E == 0 || E > 65536)
    return -EINVAL;
  struct table *t = calloc (1, sizeof *t);
  if (!t)
    return -ENOMEM;
  t->N = N;
  t->Nreal = Nreal;
  t->E = E;
  t->T = (N + E - 1) / E;
  t->blk = calloc (t->T ? t->T : 1, sizeof *t->blk);
  if (!t->blk) {
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
  for (uint64_t k = 0; k < t->T; k++)
    if (t->blk[k]) {
      free (t->blk[k]->off);
      free (t->blk[k]->word);
      free (t->blk[k]);
    }
  free (t->blk);
  free (t->index);
  free (t->filter);
  umap_free (&t->lost);
  umap_free (&t->claimed);
  umap_free (&t->held);
  umap_free (&t->vpend);
  umap_free (&t->doubt);
  free (t);
}

/* ---- readers ----------------------------------------------------------- */

static void
lookup_rl (const struct table *t, uint64_t u, struct tmap *m)
{
  uint32_t s = filter_may_have (t, u) ? find (t, u) : SLOT_NONE;
  if (s == SLOT_NONE) {
    m->slot = m->word = m->lost = 0;
    return;
  }
  m->slot = s;
  m->word = word_of (t, s);
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
  uint64_t g = UINT64_MAX, word = 0;
  for (unsigned i = 0; i < n; i++) {
    uint64_t u = u0 + i;
    if (u >> GROUP_SHIFT != g && t->filter_n) {   /* one hash per group */
      g = u >> GROUP_SHIFT;
      word = t->filter[filter_pos (u, t->filter_n)];
    }
    if (word & filter_bit (u))
      lookup_rl (t, u, &m[i]);
    else
      m[i].slot = m[i].word = m[i].lost = 0;
  }
  pthread_rwlock_unlock (&t->lock);
}

void
table_read_slots (struct table *t, uint64_t s0, unsigned n, uint64_t *word,
                  uint64_t *lost)
{
  pthread_rwlock_rdlock (&t->lock);
  for (unsigned i = 0; i < n; i++) {
    uint64_t s = s0 + i;
    word[i] = s < t->N ? word_of (t, s) : 0;
    lost[i] = word[i] ? umap_get (&t->lost, s) : 0;
  }
  pthread_rwlock_unlock (&t->lock);
}

bool
table_is_reserved (struct table *t, uint64_t s)
{
  pthread_rwlock_rdlock (&t->lock);
  bool r = s < t->N && reserved (t, s);
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
    if (t->held.keys[i] && t->held.keys[i] - 1 < t->Nreal
        && word_of (t, t->held.keys[i] - 1) == 0)
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
  for (uint64_t k = 0; k < t->T && i < cap; k++) {
    const struct blk *b = t->blk[k];
    for (uint32_t j = 0; b && j < b->n && i < cap; j++) {
      uint64_t s = k * t->E + b->off[j], w = b->word[j];
      snap[i++] = (struct remap_mapping) {
        .origin_unit = word_origin (w), .state = word_state (w),
        .spare_unit = s, .lost = umap_get (&t->lost, s),
      };
    }
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

int
table_reserve_units (struct table *t, uint64_t first, uint64_t n)
{
  int r = -ENOSPC;
  pthread_rwlock_wrlock (&t->lock);
  if (t->nrsv < MAX_RSV) {
    t->rsv[t->nrsv].first = first;
    t->rsv[t->nrsv].end = first + n;
    t->nrsv++;
    r = 0;
  }
  pthread_rwlock_unlock (&t->lock);
  return r;
}

int
table_reserve (struct table *t, size_t n)
{
  pthread_rwlock_wrlock (&t->lock);
  int r = reserve_wl (t, n);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

/* Does change c add an entry to its block? */
static bool
adds_entry (const struct table *t, const struct change *c)
{
  return word_state (c->word) != REMAP_SLOT_FREE && word_of (t, c->slot) == 0;
}

int
table_apply (struct table *t, const struct change *c, size_t n)
{
  pthread_rwlock_wrlock (&t->lock);
  /* Each change can add one indexed slot, one lost mask and one entry to
   * a block (a relocation's BAD mark reuses its slot's entry).  Make room
   * for all of them first, so that the changes apply as one step or not at
   * all. */
  int r = reserve_wl (t, n);
  for (size_t x = 0; x < n && r == 0; x++)
    if (c[x].slot >= t->N)
      r = -EINVAL;              /* the caller's bug: never a stray write */
  for (size_t x = 0; x < n && r == 0; x++) {
    uint32_t more = 0;          /* new entries of c[x]'s block, up to x */
    for (size_t y = 0; y <= x; y++)
      more += c[y].slot / t->E == c[x].slot / t->E && adds_entry (t, &c[y]);
    if (more)
      r = blk_room_wl (t, c[x].slot / t->E, more);
  }
  for (size_t x = 0; x < n && r == 0; x++) {
    if (indexed (c[x].word)) {
      uint64_t u = word_origin (c[x].word);
      uint32_t o = find (t, u);
      if (o != SLOT_NONE && o != c[x].slot)   /* a place has no unit */
        set_wl (t, o, o < t->Nreal ? make_word (REMAP_SLOT_BAD, 0) : 0, 0);
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
    r = set_wl (t, s, word, lost);
  publish_wl (t);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

int
table_load_block (struct table *t, uint64_t k, const uint64_t *word,
                  const uint64_t *lost)
{
  if (k >= t->T)
    return -EINVAL;
  uint32_t n = 0;
  for (uint32_t j = 0; j < t->E; j++)
    n += word_state (word[j]) != REMAP_SLOT_FREE && k * t->E + j < t->N;
  pthread_rwlock_wrlock (&t->lock);
  int r = 0;
  if (t->blk[k] || t->index_count) {
    r = -EBUSY;                 /* only into an empty block, before indexing */
    goto out;
  }
  if (n == 0)
    goto out;
  if ((r = blk_room_wl (t, k, n)) != 0)
    goto out;
  struct blk *b = t->blk[k];
  for (uint32_t j = 0; j < t->E; j++) {
    uint64_t s = k * t->E + j, w = word[j];
    if (word_state (w) == REMAP_SLOT_FREE || s >= t->N)
      continue;
    uint64_t l = word_state (w) == REMAP_SLOT_MAPPED ? lost[j] : 0;
    if (l && umap_set_wl (&t->lost, s, l) != 0) {
      r = -ENOMEM;
      goto out;
    }
    b->off[b->n] = (uint16_t) j;
    b->word[b->n++] = w;
    count_wl (t, s, w, l, +1);
  }
 out:
  publish_wl (t);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

int
table_index_all (struct table *t,
                 bool (*first_wins) (void *opaque, uint64_t a, uint64_t b),
                 void *opaque, uint64_t *losers, size_t max_losers,
                 size_t *nlosers)
{
  pthread_rwlock_wrlock (&t->lock);
  int r = 0;
  size_t indexed_n = t->n.mapped + t->n.pending;
  *nlosers = 0;
  /* One index of the right size: no growth while loading. */
  size_t cap = 64;
  while (indexed_n * 4 > cap * 3)
    cap += cap / 2;
  struct bucket *idx = malloc (cap * sizeof *idx);
  size_t fn = filter_words (cap);
  uint64_t *filt = calloc (fn, sizeof *filt);
  if (!idx || !filt) {
    free (idx);
    free (filt);
    r = -ENOMEM;
    goto out;
  }
  for (size_t i = 0; i < cap; i++)
    idx[i].slot = SLOT_NONE;
  free (t->index);
  free (t->filter);
  t->index = idx;
  t->index_cap = cap;
  t->index_count = 0;
  t->filter = filt;
  t->filter_n = fn;
  for (uint64_t k = 0; k < t->T; k++) {
    struct blk *b = t->blk[k];
    for (uint32_t j = 0; b && j < b->n; j++) {
      uint64_t s = k * t->E + b->off[j], w = b->word[j];
      if (!indexed (w))
        continue;
      uint32_t o = find (t, word_origin (w));
      if (o == SLOT_NONE) {
        index_put (t->index, t->index_cap, word_origin (w), (uint32_t) s);
        filter_add (t->filter, t->filter_n, word_origin (w));
        t->index_count++;
        continue;
      }
      /* The same origin unit in two slots: one loses (FORMAT.md 10.4). */
      uint64_t loser = first_wins (opaque, o, s) ? s : o;
      if (*nlosers < max_losers)
        losers[(*nlosers)++] = loser;
      else
        r = -E2BIG;
      if (loser == o) {           /* the bucket now names the winner */
        size_t cap2 = t->index_cap;
        size_t i = home_of (hash64 (word_origin (w)), cap2);
        while (t->index[i].slot != o)
          i = next_of (i, cap2);
        t->index[i].slot = (uint32_t) s;
      }
      uint64_t lw = loser < t->Nreal ? make_word (REMAP_SLOT_BAD, 0) : 0;
      uint64_t ol = umap_get (&t->lost, loser);
      count_wl (t, loser, word_of (t, loser), ol, -1);
      umap_del_wl (&t->lost, loser);
      blk_set_wl (t, loser, lw);
      count_wl (t, loser, lw, 0, +1);
      /* Either change may have moved entries of this block (a FREE loser
       * leaves it): carry on after slot s, wherever it is now. */
      b = t->blk[k];
      if (!b)
        break;
      bool f;
      uint32_t pos = blk_pos (b, (uint32_t) (s % t->E), &f);
      j = f ? pos : pos - 1;      /* unsigned: -1 + 1 is 0 */
    }
  }
 out:
  publish_wl (t);
  pthread_rwlock_unlock (&t->lock);
  return r;
}

static bool
taken (const struct table *t, uint64_t s)
{
  return umap_get (&t->claimed, s) || umap_get (&t->held, s);
}

/* The first free slot in [from, to) of block k (to within the block), or
 * UINT64_MAX.  Reserved extents are skipped whole. */
static uint64_t
free_in_block (const struct table *t, uint64_t k, uint64_t from, uint64_t to)
{
  const struct blk *b = t->blk[k];
  if (b && b->n == t->E)
    return UINT64_MAX;
  bool found;
  uint32_t i = b ? blk_pos (b, (uint32_t) (from - k * t->E), &found) : 0;
  for (uint64_t s = from; s < to;) {
    bool busy = false;
    for (unsigned x = 0; x < t->nrsv; x++)
      if (s >= t->rsv[x].first && s < t->rsv[x].end) {
        s = t->rsv[x].end;
        busy = true;
        break;
      }
    if (busy)
      continue;
    while (b && i < b->n && k * t->E + b->off[i] < s)
      i++;
    if (b && i < b->n && k * t->E + b->off[i] == s) {
      s++;
      continue;
    }
    if (!taken (t, s))
      return s;
    s++;
  }
  return UINT64_MAX;
}

/* First free slot in [from, to), block by block. */
static uint64_t
scan (const struct table *t, uint64_t from, uint64_t to)
{
  for (uint64_t s = from; s < to;) {
    bool skipped = false;
    for (unsigned x = 0; x < t->nrsv; x++)
      if (s >= t->rsv[x].first && s < t->rsv[x].end) {
        s = t->rsv[x].end;      /* a whole metadata copy at once */
        skipped = true;
      }
    if (skipped)
      continue;
    uint64_t k = s / t->E;
    uint64_t end = (k + 1) * t->E < to ? (k + 1) * t->E : to;
    uint64_t f = free_in_block (t, k, s, end);
    if (f != UINT64_MAX)
      return f;
    s = end;
  }
  return UINT64_MAX;
}

int
table_alloc (struct table *t, uint64_t *cursor, uint64_t lo, uint64_t hi,
             uint64_t *slot)
{
  pthread_rwlock_wrlock (&t->lock);
  hi = hi < t->N ? hi : t->N;
  uint64_t c = *cursor >= lo && *cursor < hi ? *cursor : lo;
  uint64_t s = scan (t, c, hi);
  if (s == UINT64_MAX)
    s = scan (t, lo, c);
  int r = -ENOSPC;
  if (s != UINT64_MAX && umap_set_wl (&t->claimed, s, 1) == 0) {
    *slot = s;
    *cursor = s + 1 < hi ? s + 1 : lo;
    r = 0;
  }
  else if (s != UINT64_MAX)
    r = -ENOMEM;
  pthread_rwlock_unlock (&t->lock);
  return r;
}

void
table_unalloc (struct table *t, uint64_t s)
{
  if (s >= t->N)
    return;
  pthread_rwlock_wrlock (&t->lock);
  umap_del_wl (&t->claimed, s);
  pthread_rwlock_unlock (&t->lock);
}

int
table_hold (struct table *t, uint64_t s)
{
  if (s >= t->N)
    return -EINVAL;
  pthread_rwlock_wrlock (&t->lock);
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
