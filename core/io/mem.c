/* remap: the mem backend, an in-memory disk for tests.
 *
 * The bytes live in a refcounted `struct store' so that remap_mem_share can
 * hand out a second backend over the same bytes: a test "crashes" an engine,
 * throws it away, and reopens the same disk through the sharer.  The store
 * is freed when the last sharer is closed.
 *
 * Locking: one rwlock per store.  Reads take it shared, writes and zeroes
 * exclusive, so concurrent readers never see a torn write and the tests run
 * clean under TSan.  remap_mem_data bypasses the lock: tests that poke the
 * bytes directly must not race with I/O.
 *
 * Every access is bounds-checked (-EINVAL), also when called through the
 * vtable directly.  flush is a no-op; trim is advisory and keeps the data;
 * there is no lock op (sharing the bytes is the point).
 *
 * Extents: a grain (REMAP_MEM_EXTENT_GRAIN aligned bytes) whose bytes are
 * all zero is reported HOLE|ZERO, any other data, so a test shapes the
 * holes of an origin by what it writes.  One run of grains of one kind is
 * found under the lock and reported after it is dropped: the callback may
 * do I/O on the same store.
 */

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"

struct store {
  pthread_rwlock_t lock;
  pthread_mutex_t ref_lock;
  unsigned refs;
  uint64_t size;
  uint8_t *data;
};

struct mem {
  struct remap_backend base; /* first: the vtable base */
  struct store *store;
};

static const struct remap_backend_ops mem_ops;

static bool
in_range (const struct store *s, uint64_t len, uint64_t off)
{
  return off <= s->size && len <= s->size - off;
}

static int
mem_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  struct store *s = ((struct mem *) b)->store;

  if (!in_range (s, len, off))
    return -EINVAL;
  pthread_rwlock_rdlock (&s->lock);
  memcpy (buf, s->data + off, len);
  pthread_rwlock_unlock (&s->lock);
  return 0;
}

static int
mem_pwrite (struct remap_backend *b, const void *buf, size_t len, uint64_t off)
{
  struct store *s = ((struct mem *) b)->store;

  if (!in_range (s, len, off))
    return -EINVAL;
  pthread_rwlock_wrlock (&s->lock);
  memcpy (s->data + off, buf, len);
  pthread_rwlock_unlock (&s->lock);
  return 0;
}

static int
mem_flush (struct remap_backend *b)
{
  (void) b;
  return 0;
}

static int
mem_zero (struct remap_backend *b, uint64_t len, uint64_t off, bool may_trim)
{
  struct store *s = ((struct mem *) b)->store;

  (void) may_trim;
  if (!in_range (s, len, off))
    return -EINVAL;
  pthread_rwlock_wrlock (&s->lock);
  memset (s->data + off, 0, len);
  pthread_rwlock_unlock (&s->lock);
  return 0;
}

static int
mem_trim (struct remap_backend *b, uint64_t len, uint64_t off)
{
  struct store *s = ((struct mem *) b)->store;

  return in_range (s, len, off) ? 0 : -EINVAL;
}

static bool
grain_zero (const struct store *s, uint64_t g)
{
  uint64_t a = g * REMAP_MEM_EXTENT_GRAIN;
  uint64_t n = s->size - a < REMAP_MEM_EXTENT_GRAIN ? s->size - a
    : REMAP_MEM_EXTENT_GRAIN;

  for (uint64_t i = 0; i < n; i++)
    if (s->data[a + i])
      return false;
  return true;
}

static int
mem_extents (struct remap_backend *b, uint64_t len, uint64_t off,
             remap_extent_fn fn, void *opaque)
{
  struct store *s = ((struct mem *) b)->store;
  uint64_t end = off + len;

  if (!in_range (s, len, off))
    return -EINVAL;
  for (uint64_t pos = off; pos < end;) {
    uint64_t g = pos / REMAP_MEM_EXTENT_GRAIN, next;
    bool zero;

    pthread_rwlock_rdlock (&s->lock);
    zero = grain_zero (s, g);
    for (next = (g + 1) * REMAP_MEM_EXTENT_GRAIN;
         next < end && grain_zero (s, next / REMAP_MEM_EXTENT_GRAIN) == zero;
         next += REMAP_MEM_EXTENT_GRAIN)
      ;
    pthread_rwlock_unlock (&s->lock);
    if (next > end)
      next = end;
    int r = fn (opaque, pos, next - pos,
                zero ? REMAP_EXTENT_HOLE | REMAP_EXTENT_ZERO : 0);
    if (r)
      return r;
    pos = next;
  }
  return 0;
}

static void
store_put (struct store *s)
{
  unsigned refs;

  pthread_mutex_lock (&s->ref_lock);
  refs = --s->refs;
  pthread_mutex_unlock (&s->ref_lock);
  if (refs > 0)
    return;
  pthread_rwlock_destroy (&s->lock);
  pthread_mutex_destroy (&s->ref_lock);
  free (s->data);
  free (s);
}

static void
mem_close (struct remap_backend *b)
{
  struct mem *m = (struct mem *) b;

  store_put (m->store);
  free (m);
}

static const struct remap_backend_ops mem_ops = {
  .kind = "mem",
  .pread = mem_pread,
  .pwrite = mem_pwrite,
  .flush = mem_flush,
  .zero = mem_zero,
  .trim = mem_trim,
  .lock = NULL,
  .close = mem_close,
  .extents = mem_extents,
};

static struct mem *
mem_new (struct store *s)
{
  struct mem *m = calloc (1, sizeof *m);

  if (m == NULL)
    return NULL;
  m->base.ops = &mem_ops;
  m->base.size = s->size;
  m->base.align = 1;
  m->base.logical_block = 512;
  m->base.is_block_device = false;
  m->base.direct = false;
  strcpy (m->base.name, "mem");
  m->base.identity[0] = '\0';  /* nothing tells one mem from another */
  m->store = s;
  return m;
}

int
remap_mem_create (uint64_t size, struct remap_backend **out)
{
  struct store *s;
  struct mem *m;

  *out = NULL;
  if (size > SIZE_MAX)
    return -ENOMEM;
  s = calloc (1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->data = calloc (1, size > 0 ? (size_t) size : 1);
  if (s->data == NULL)
    goto err;
  s->size = size;
  s->refs = 1;
  if (pthread_rwlock_init (&s->lock, NULL) != 0)
    goto err;
  if (pthread_mutex_init (&s->ref_lock, NULL) != 0) {
    pthread_rwlock_destroy (&s->lock);
    goto err;
  }
  m = mem_new (s);
  if (m == NULL) {
    store_put (s);
    return -ENOMEM;
  }
  *out = &m->base;
  return 0;

err:
  free (s->data);
  free (s);
  return -ENOMEM;
}

uint8_t *
remap_mem_data (struct remap_backend *b)
{
  if (b == NULL || b->ops != &mem_ops)
    return NULL;
  return ((struct mem *) b)->store->data;
}

int
remap_mem_share (struct remap_backend *b, struct remap_backend **out)
{
  struct store *s;
  struct mem *m;

  *out = NULL;
  if (b == NULL || b->ops != &mem_ops)
    return -EINVAL;
  s = ((struct mem *) b)->store;
  m = mem_new (s);
  if (m == NULL)
    return -ENOMEM;
  pthread_mutex_lock (&s->ref_lock);
  s->refs++;
  pthread_mutex_unlock (&s->ref_lock);
  *out = &m->base;
  return 0;
}
