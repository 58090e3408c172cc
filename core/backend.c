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
 * (it caches nothing); status without an op is "reachable"; extents
 * without an op is one data extent (nothing is claimed about zeroes).
 *
 * No locking: the wrappers hold no state; backends are thread-safe
 * themselves (backend.h).
 */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"
#include "remap/format.h"

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
  int r = b->ops->pread (b, buf, len, off);
  if (r < 0)
    remap_backend_count_write (b);      /* what it holds is unknown now */
  return r;
}

int
remap_backend_pwrite (struct remap_backend *b, const void *buf, size_t len,
                      uint64_t off)
{
  if (!valid (b) || b->ops->pwrite == NULL || !in_range (b, len, off))
    return -EINVAL;
  if (len == 0)
    return 0;
  remap_backend_count_write (b);
  return b->ops->pwrite (b, buf, len, off);
}

uint64_t
remap_backend_writes (const struct remap_backend *b)
{
  return __atomic_load_n (&b->writes, __ATOMIC_SEQ_CST);
}

void
remap_backend_count_write (struct remap_backend *b)
{
  if (b->track_writes)
    __atomic_fetch_add (&b->writes, 1, __ATOMIC_SEQ_CST);
}

void
remap_backend_track_writes (struct remap_backend *b)
{
  if (valid (b))
    b->track_writes = true;
}

int
remap_backend_flush (struct remap_backend *b)
{
  if (!valid (b))
    return -EINVAL;
  if (b->ops->flush == NULL)
    return 0;
  int r = b->ops->flush (b);
  /* Writes it should have made durable may be gone (docs/ERRORS.md):
   * what it reads back may change without another write. */
  if (r < 0)
    remap_backend_count_write (b);
  return r;
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
  remap_backend_count_write (b);
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
  remap_backend_count_write (b);
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

/* Between remap_backend_extents and a backend's op: holds the backend to
 * its contract (ascending, contiguous, inside the range) so that a buggy
 * backend cannot make the engine report a range twice or skip one. */
struct ext_guard {
  remap_extent_fn fn;
  void *opaque;
  uint64_t pos, end;            /* next byte expected; end of the request */
  bool broken;                  /* the backend broke the contract */
};

static int
ext_guard_fn (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct ext_guard *g = opaque;

  if (off != g->pos || len == 0 || len > g->end - off) {
    g->broken = true;
    return 1;
  }
  g->pos = off + len;
  return g->fn (g->opaque, off, len,
                type & (REMAP_EXTENT_HOLE | REMAP_EXTENT_ZERO));
}

int
remap_backend_extents (struct remap_backend *b, uint64_t len, uint64_t off,
                       remap_extent_fn fn, void *opaque)
{
  struct ext_guard g = { fn, opaque, off, off + len, false };

  if (!valid (b) || fn == NULL || !in_range (b, len, off))
    return -EINVAL;
  if (len == 0)
    return 0;
  if (b->ops->extents == NULL)
    return fn (opaque, off, len, 0);
  while (g.pos < g.end) {
    uint64_t start = g.pos;
    int r = b->ops->extents (b, g.end - g.pos, g.pos, ext_guard_fn, &g);

    if (g.broken)
      return -EPROTO;
    if (r != 0)
      return r;
    if (g.pos == start)
      return -EPROTO;
  }
  return 0;
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

/* ---- identity (SPEC 2.7) ---------------------------------------------- */

_Static_assert (REMAP_IDENTITY_MAX == REMAP_ORIGIN_ID_SIZE,
                "an identity fills the superblock's origin_id");

#define ID_HEAD 40u             /* kept from the start of a long text */
#define ID_TAIL 70u             /* kept from its end */
_Static_assert (ID_HEAD + 1 + 16 + 1 + ID_TAIL == REMAP_IDENTITY_MAX,
                "a shortened identity is exactly REMAP_IDENTITY_MAX bytes");

static uint64_t
fnv1a64 (const char *s, size_t n)
{
  uint64_t h = UINT64_C (0xcbf29ce484222325);
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char) s[i];
    h *= UINT64_C (0x100000001b3);
  }
  return h;
}

void
remap_identity_fit (const char *text, char out[REMAP_IDENTITY_MAX + 1])
{
  size_t n = 0, len;
  char *clean;

  out[0] = '\0';
  if (text == NULL)
    return;
  while (*text && (unsigned char) *text <= ' ')
    text++;
  len = strlen (text);
  while (len > 0 && (unsigned char) text[len - 1] <= ' ')
    len--;
  if (len == 0)
    return;
  clean = malloc (len + 1);
  if (clean == NULL)
    return;                     /* unknown: nothing is checked */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char) text[i];
    if (c >= 0x21 && c <= 0x7e)
      clean[n++] = (char) c;
    else if (n == 0 || clean[n - 1] != '_')
      clean[n++] = '_';
  }
  clean[n] = '\0';
  if (n <= REMAP_IDENTITY_MAX)
    memcpy (out, clean, n + 1);
  else
    snprintf (out, REMAP_IDENTITY_MAX + 1, "%.*s~%016llx~%s", (int) ID_HEAD,
              clean, (unsigned long long) fnv1a64 (clean, n),
              clean + n - ID_TAIL);
  free (clean);
}

void
remap_backend_set_identity (struct remap_backend *b, const char *text)
{
  if (b)
    remap_identity_fit (text, b->identity);
}
