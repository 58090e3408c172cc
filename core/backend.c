/* remap: the backend vtable wrappers.
 *
 * Every caller goes through these instead of b->ops->... so that the checks
 * live in one place: a NULL or op-less backend is -EINVAL, a range outside
 * [0, size) is -EINVAL (a bug in the caller, never sent to the medium), and a
 * zero-length transfer succeeds without touching the backend.
 *
 * Optional operations get their defined fallbacks here: zero writes zeroes
 * in chunks of at most 1 MiB when the backend cannot (ops->zero NULL or
 * -EOPNOTSUPP); trim and lock without an op succeed (both are advisory), and
 * so does preallocate (the backend has nothing to allocate) and drop_cache
 * (it caches nothing); status without an op is "reachable".
 *
 * No locking: the wrappers hold no state; backends are thread-safe
 * themselves (backend.h).
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "remap/backend.h"

#define ZERO_CHUNK (1024u * 1024u)

/* Read-only in practice: never written after load.  Page-aligned so that an
 * O_DIRECT backend can use it without a bounce buffer. */
static uint8_t zero_chunk[ZERO_CHUNK] __attribute__ ((aligned (4096)));

static bool
valid (const struct remap_backend *b)
{
  return b != NULL && b->ops != NULL;
}

/* True if [off, off+len) lies inside the backend, without overflow. */
static bool
in_range (const struct remap_backend *b, uint64_t len, uint64_t off)
{
  return off <= b->size && len <= b->size - off;
}

int
remap_backend_pread (struct remap_backend *b, void *buf, size_t len,
                     uint64_t off)
{
  if (!valid (b) || b->ops->pread == NULL || !in_range (b, len, off))
    return -EINVAL;
  if (len == 0)
    return 0;
  return b->ops->pread (b, buf, len, off);
}

int
remap_backend_pwrite (struct remap_backend *b, const void *buf, size_t len,
                      uint64_t off)
{
  if (!valid (b) || b->ops->pwrite == NULL || !in_range (b, len, off))
    return -EINVAL;
  if (len == 0)
    return 0;
  return b->ops->pwrite (b, buf, len, off);
}

int
remap_backend_flush (struct remap_backend *b)
{
  if (!valid (b))
    return -EINVAL;
  if (b->ops->flush == NULL)
    return 0;
  return b->ops->flush (b);
}

static int
zero_by_writing (struct remap_backend *b, uint64_t len, uint64_t off)
{
  while (len > 0) {
    size_t n = len < ZERO_CHUNK ? (size_t) len : ZERO_CHUNK;
    int r = b->ops->pwrite (b, zero_chunk, n, off);

    if (r < 0)
      return r;
    len -= n;
    off += n;
  }
  return 0;
}

int
remap_backend_zero (struct remap_backend *b, uint64_t len, uint64_t off,
                    bool may_trim)
{
  if (!valid (b) || b->ops->pwrite == NULL || !in_range (b, len, off))
    return -EINVAL;
  if (len == 0)
    return 0;
  if (b->ops->zero != NULL) {
    int r = b->ops->zero (b, len, off, may_trim);

    if (r != -EOPNOTSUPP)
      return r;
  }
  return zero_by_writing (b, len, off);
}

int
remap_backend_trim (struct remap_backend *b, uint64_t len, uint64_t off)
{
  if (!valid (b) || !in_range (b, len, off))
    return -EINVAL;
  if (len == 0 || b->ops->trim == NULL)
    return 0;
  return b->ops->trim (b, len, off);
}

int
remap_backend_lock (struct remap_backend *b, struct remap_error *err)
{
  if (!valid (b))
    return remap_set_error (err, -EINVAL, "lock: invalid backend");
  if (b->ops->lock == NULL)
    return 0;
  return b->ops->lock (b, err);
}

int
remap_backend_preallocate (struct remap_backend *b, struct remap_error *err)
{
  if (!valid (b))
    return remap_set_error (err, -EINVAL, "preallocate: invalid backend");
  if (b->ops->preallocate == NULL)
    return 0;
  return b->ops->preallocate (b, err);
}

int
remap_backend_drop_cache (struct remap_backend *b, uint64_t len, uint64_t off)
{
  if (!valid (b) || !in_range (b, len, off))
    return -EINVAL;
  if (len == 0 || b->ops->drop_cache == NULL)
    return 0;
  return b->ops->drop_cache (b, len, off);
}

void
remap_backend_status (struct remap_backend *b,
                      struct remap_backend_status *st)
{
  memset (st, 0, sizeof *st);
  if (valid (b) && b->ops->status != NULL)
    b->ops->status (b, st);
}

void
remap_backend_close (struct remap_backend *b)
{
  if (valid (b) && b->ops->close != NULL)
    b->ops->close (b);
}
