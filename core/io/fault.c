/* remap: the fault injector, a backend stacked on another one (tests).
 *
 * Three independent mechanisms, in the spirit of qemu's blkdebug and the
 * kernel's dm-flakey:
 *
 * Rules.  An access (pread, pwrite, flush) that matches a rule's ops and
 * overlaps its byte range is counted by that rule (flush ignores the range).
 * Once the rule has counted more than `after' accesses it fails them with
 * `err', `times' times (0: forever).  Every matching rule counts the
 * access; the first that fires decides the error.  A failed access does
 * nothing.
 *
 * Volatile mode.  Writes are held in memory, in arrival order, instead of
 * reaching the inner backend: the disk's volatile write cache.  Reads see
 * the inner data overlaid by the held writes in order.  flush applies them
 * to inner in order, then flushes inner.  Turning the mode off applies them
 * (without a flush).
 *
 * Crash.  Writes are numbered from 0 since create.  When the write whose
 * number is the crash point arrives (or remap_fault_crash_now is called),
 * that write is not performed and the held writes meet the crash mode:
 * DROP_ALL loses them all; KEEP_SOME applies a seeded random subset, in
 * order; TEAR_ONE does the same and applies one held write (chosen from the
 * seed) only up to a 512-byte boundary strictly inside it, nothing of it if
 * it has no such boundary.  From then on every operation fails with -EIO.
 * Without volatile mode writes already reached inner, and a crash only makes
 * later operations fail.
 *
 * Locking: one mutex serialises everything, including the calls to the
 * inner backend, while volatile mode or a crash point is set: slow, simple
 * and deterministic, which is what crash tests want.  Otherwise (rules
 * only, as in the plugin's rehearsal mode) the rules are checked under the
 * mutex and the inner call is made without it.
 *
 * Counters: writes counts every pwrite that arrived before the crash (the
 * crashing one included), flushes every flush call before the crash,
 * injected every access failed by a rule (not the crash's own -EIO).
 * zero and trim are not offered: the wrappers turn zero into pwrite of
 * zeroes, so it meets the rules and the crash like any write.
 *
 * Extents pass through to inner and meet rules with REMAP_FAULT_EXTENTS
 * (an injected error fails the whole call).  While writes are held
 * (volatile mode) inner's allocation is not what a read sees, so the
 * whole range is reported as data; after a crash every call fails.
 */

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"

#define MAX_RULES 64
#define TEAR_SECTOR 512u

struct rule {
  struct remap_fault_rule r;
  uint64_t count; /* matching accesses seen */
  uint64_t fired; /* accesses failed */
};

struct held {
  uint64_t off;
  size_t len;
  uint8_t *data;
};

struct fault {
  struct remap_backend base; /* first: the vtable base */
  struct remap_backend *inner;
  bool own_inner;
  pthread_mutex_t lock; /* protects everything below */
  struct rule rules[MAX_RULES];
  size_t nrules;
  bool volatile_mode;
  struct held *held;
  size_t nheld, held_cap;
  uint64_t crash_at; /* write index, UINT64_MAX: disarmed */
  enum remap_crash_mode crash_mode;
  uint64_t crash_seed;
  bool crashed;
  uint64_t writes, flushes, injected;
};

static const struct remap_backend_ops fault_ops;

/* The remap_fault_* functions accept only a backend made by
 * remap_fault_create: anything else is a bug in the test. */
static struct fault *
to_fault (const struct remap_backend *b)
{
  assert (b != NULL && b->ops == &fault_ops);
  return (struct fault *) b;
}

/* splitmix64: a tiny, good, seedable generator. */
static uint64_t
next_random (uint64_t *state)
{
  uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));

  z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* ---- rules ----------------------------------------------------------- */

static bool
overlaps (const struct remap_fault_rule *r, uint64_t len, uint64_t off)
{
  uint64_t rend = r->off + r->len < r->off ? UINT64_MAX : r->off + r->len;
  uint64_t end = off + len < off ? UINT64_MAX : off + len;

  return len > 0 && off < rend && r->off < end;
}

/* Count the access in every matching rule; 0 or the injected error. */
static int
check_rules_locked (struct fault *f, unsigned op, uint64_t len, uint64_t off)
{
  int ret = 0;
  size_t i;

  for (i = 0; i < f->nrules; i++) {
    struct rule *ru = &f->rules[i];

    if (!(ru->r.ops & op))
      continue;
    if (op != REMAP_FAULT_FLUSH && !overlaps (&ru->r, len, off))
      continue;
    ru->count++;
    if (ret == 0 && ru->count > ru->r.after &&
        (ru->r.times == 0 || ru->fired < ru->r.times)) {
      ru->fired++;
      ret = ru->r.err;
    }
  }
  if (ret != 0)
    f->injected++;
  return ret;
}

int
remap_fault_add_rule (struct remap_backend *b,
                      const struct remap_fault_rule *rule)
{
  struct fault *f = to_fault (b);
  int r = 0;

  if (rule == NULL || rule->ops == 0 ||
      (rule->ops &
       ~(REMAP_FAULT_READ | REMAP_FAULT_WRITE | REMAP_FAULT_FLUSH
         | REMAP_FAULT_EXTENTS)) != 0 ||
      rule->err >= 0 ||
      (rule->len == 0 && (rule->ops & (REMAP_FAULT_READ | REMAP_FAULT_WRITE))))
    return -EINVAL;
  pthread_mutex_lock (&f->lock);
  if (f->nrules == MAX_RULES)
    r = -ENOSPC;
  else {
    memset (&f->rules[f->nrules], 0, sizeof f->rules[0]);
    f->rules[f->nrules++].r = *rule;
  }
  pthread_mutex_unlock (&f->lock);
  return r;
}

int
remap_fault_set_rules (struct remap_backend *b,
                       const struct remap_fault_rule *rules, size_t n)
{
  struct fault *f = to_fault (b);

  if (n > MAX_RULES)
    return -ENOSPC;
  for (size_t i = 0; i < n; i++)
    if (rules[i].ops == 0
        || (rules[i].ops & ~(REMAP_FAULT_READ | REMAP_FAULT_WRITE
                             | REMAP_FAULT_FLUSH | REMAP_FAULT_EXTENTS)) != 0
        || rules[i].err >= 0
        || (rules[i].len == 0
            && (rules[i].ops & (REMAP_FAULT_READ | REMAP_FAULT_WRITE))))
      return -EINVAL;
  pthread_mutex_lock (&f->lock);
  memset (f->rules, 0, sizeof f->rules);
  for (size_t i = 0; i < n; i++)
    f->rules[i].r = rules[i];
  f->nrules = n;
  pthread_mutex_unlock (&f->lock);
  return 0;
}

void
remap_fault_clear_rules (struct remap_backend *b)
{
  struct fault *f = to_fault (b);

  pthread_mutex_lock (&f->lock);
  f->nrules = 0;
  pthread_mutex_unlock (&f->lock);
}

/* ---- held writes (volatile mode) ---------------------------------------- */

static int
hold_locked (struct fault *f, const void *buf, size_t len, uint64_t off)
{
  struct held *h;

  if (f->nheld == f->held_cap) {
    size_t cap = f->held_cap ? f->held_cap * 2 : 16;
    struct held *p = realloc (f->held, cap * sizeof *p);

    if (p == NULL)
      return -ENOMEM;
    f->held = p;
    f->held_cap = cap;
  }
  h = &f->held[f->nheld];
  h->data = malloc (len);
  if (h->data == NULL)
    return -ENOMEM;
  memcpy (h->data, buf, len);
  h->off = off;
  h->len = len;
  f->nheld++;
  return 0;
}

/* Copy into buf (covering [off, off+len)) the parts of held writes that
 * overlap it, oldest first, so the newest wins. */
static void
overlay_locked (struct fault *f, uint8_t *buf, size_t len, uint64_t off)
{
  size_t i;

  for (i = 0; i < f->nheld; i++) {
    const struct held *h = &f->held[i];
    uint64_t s = h->off > off ? h->off : off;
    uint64_t e1 = h->off + h->len, e2 = off + len;
    uint64_t e = e1 < e2 ? e1 : e2;

    if (s < e)
      memcpy (buf + (s - off), h->data + (s - h->off), e - s);
  }
}

static void
drop_held_locked (struct fault *f, size_t n)
{
  size_t i;

  if (n == 0)
    return;
  for (i = 0; i < n; i++)
    free (f->held[i].data);
  if (n < f->nheld)
    memmove (f->held, f->held + n, (f->nheld - n) * sizeof *f->held);
  f->nheld -= n;
}

/* Apply every held write to inner, in order; applied ones are dropped even
 * if a later one fails. */
static int
apply_held_locked (struct fault *f)
{
  size_t i;
  int r = 0;

  for (i = 0; i < f->nheld; i++) {
    r = remap_backend_pwrite (f->inner, f->held[i].data, f->held[i].len,
                              f->held[i].off);
    if (r < 0)
      break;
  }
  drop_held_locked (f, i);
  return r;
}

/* ---- crash ------------------------------------------------------------ */

/* Bytes of h that a torn write leaves behind: up to a 512-byte boundary
 * strictly inside it, chosen from rng; 0 if it has none. */
static size_t
torn_prefix (const struct held *h, uint64_t *rng)
{
  uint64_t first = (h->off / TEAR_SECTOR + 1) * TEAR_SECTOR;
  uint64_t end = h->off + h->len;
  uint64_t nb;

  if (first >= end)
    return 0;
  nb = (end - 1 - first) / TEAR_SECTOR + 1; /* boundaries in (off, end) */
  return first + (next_random (rng) % nb) * TEAR_SECTOR - h->off;
}

static void
crash_locked (struct fault *f, enum remap_crash_mode mode, uint64_t seed)
{
  uint64_t rng = seed;
  size_t i, torn = SIZE_MAX;

  if (mode == REMAP_CRASH_TEAR_ONE && f->nheld > 0)
    torn = next_random (&rng) % f->nheld;
  for (i = 0; mode != REMAP_CRASH_DROP_ALL && i < f->nheld; i++) {
    const struct held *h = &f->held[i];
    size_t n = h->len;

    if (i == torn)
      n = torn_prefix (h, &rng);
    else if ((next_random (&rng) & 1) == 0)
      continue;
    /* The inner disk survives the crash: errors here are its own. */
    if (n > 0)
      (void) remap_backend_pwrite (f->inner, h->data, n, h->off);
  }
  drop_held_locked (f, f->nheld);
  f->crashed = true;
}

void
remap_fault_crash_at (struct remap_backend *b, uint64_t write_index,
                      enum remap_crash_mode mode, uint64_t seed)
{
  struct fault *f = to_fault (b);

  pthread_mutex_lock (&f->lock);
  f->crash_at = write_index;
  f->crash_mode = mode;
  f->crash_seed = seed;
  pthread_mutex_unlock (&f->lock);
}

void
remap_fault_crash_now (struct remap_backend *b, enum remap_crash_mode mode,
                       uint64_t seed)
{
  struct fault *f = to_fault (b);

  pthread_mutex_lock (&f->lock);
  if (!f->crashed)
    crash_locked (f, mode, seed);
  pthread_mutex_unlock (&f->lock);
}

void
remap_fault_set_volatile (struct remap_backend *b, bool on)
{
  struct fault *f = to_fault (b);

  pthread_mutex_lock (&f->lock);
  if (!on && !f->crashed)
    (void) apply_held_locked (f);
  f->volatile_mode = on;
  pthread_mutex_unlock (&f->lock);
}

/* ---- the vtable ------------------------------------------------------ */

/* Neither volatile nor armed for a crash: the inner call needs no lock, so
 * a rehearsal origin (the plugin's fail= rules) keeps its parallelism. */
static bool
passthrough_locked (const struct fault *f)
{
  return !f->volatile_mode && f->crash_at == UINT64_MAX && !f->crashed;
}

static int
fault_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  struct fault *f = to_fault (b);
  int r;

  pthread_mutex_lock (&f->lock);
  if (f->crashed)
    r = -EIO;
  else if ((r = check_rules_locked (f, REMAP_FAULT_READ, len, off)) == 0) {
    if (passthrough_locked (f)) {
      pthread_mutex_unlock (&f->lock);
      return remap_backend_pread (f->inner, buf, len, off);
    }
    r = remap_backend_pread (f->inner, buf, len, off);
    if (r == 0)
      overlay_locked (f, buf, len, off);
  }
  pthread_mutex_unlock (&f->lock);
  return r;
}

static int
fault_pwrite (struct remap_backend *b, const void *buf, size_t len,
              uint64_t off)
{
  struct fault *f = to_fault (b);
  int r;

  pthread_mutex_lock (&f->lock);
  if (f->crashed)
    r = -EIO;
  else if (f->writes++ == f->crash_at) {
    crash_locked (f, f->crash_mode, f->crash_seed);
    r = -EIO;
  }
  else if ((r = check_rules_locked (f, REMAP_FAULT_WRITE, len, off)) == 0) {
    if (passthrough_locked (f)) {
      pthread_mutex_unlock (&f->lock);
      return remap_backend_pwrite (f->inner, buf, len, off);
    }
    if (f->volatile_mode)
      r = hold_locked (f, buf, len, off);
    else
      r = remap_backend_pwrite (f->inner, buf, len, off);
  }
  pthread_mutex_unlock (&f->lock);
  return r;
}

static int
fault_flush (struct remap_backend *b)
{
  struct fault *f = to_fault (b);
  int r;

  pthread_mutex_lock (&f->lock);
  if (f->crashed)
    r = -EIO;
  else {
    f->flushes++;
    r = check_rules_locked (f, REMAP_FAULT_FLUSH, 0, 0);
    if (r == 0)
      r = apply_held_locked (f);
    if (r == 0)
      r = remap_backend_flush (f->inner);
  }
  pthread_mutex_unlock (&f->lock);
  return r;
}

static int
fault_extents (struct remap_backend *b, uint64_t len, uint64_t off,
               remap_extent_fn fn, void *opaque)
{
  struct fault *f = to_fault (b);
  bool held;
  int r;

  pthread_mutex_lock (&f->lock);
  if (f->crashed)
    r = -EIO;
  else
    r = check_rules_locked (f, REMAP_FAULT_EXTENTS, len, off);
  held = f->nheld > 0;
  pthread_mutex_unlock (&f->lock);
  if (r)
    return r;
  if (held)
    return fn (opaque, off, len, 0);
  return remap_backend_extents (f->inner, len, off, fn, opaque);
}

static int
fault_lock (struct remap_backend *b, struct remap_error *err)
{
  struct fault *f = to_fault (b);

  return remap_backend_lock (f->inner, err);
}

static void
fault_close (struct remap_backend *b)
{
  struct fault *f = to_fault (b);

  drop_held_locked (f, f->nheld);
  free (f->held);
  if (f->own_inner)
    remap_backend_close (f->inner);
  pthread_mutex_destroy (&f->lock);
  free (f);
}

/* Not a fault point: allocation is the inner backend's business. */
static int
fault_preallocate (struct remap_backend *b, struct remap_error *err)
{
  return remap_backend_preallocate (to_fault (b)->inner, err);
}

static int
fault_drop_cache (struct remap_backend *b, uint64_t len, uint64_t off)
{
  return remap_backend_drop_cache (to_fault (b)->inner, len, off);
}

static void
fault_status (struct remap_backend *b, struct remap_backend_status *st)
{
  remap_backend_status (to_fault (b)->inner, st);
}

static const struct remap_backend_ops fault_ops = {
  .kind = "fault",
  .pread = fault_pread,
  .pwrite = fault_pwrite,
  .flush = fault_flush,
  .zero = NULL,
  .trim = NULL,
  .lock = fault_lock,
  .close = fault_close,
  .preallocate = fault_preallocate,
  .drop_cache = fault_drop_cache,
  .status = fault_status,
  .extents = fault_extents,
};

int
remap_fault_create (struct remap_backend *inner, bool own_inner,
                    struct remap_backend **out)
{
  struct fault *f;
  size_t n;

  *out = NULL;
  if (inner == NULL || inner->ops == NULL)
    return -EINVAL;
  f = calloc (1, sizeof *f);
  if (f == NULL)
    return -ENOMEM;
  if (pthread_mutex_init (&f->lock, NULL) != 0) {
    free (f);
    return -ENOMEM;
  }
  f->base.ops = &fault_ops;
  f->base.size = inner->size;
  f->base.align = inner->align;
  f->base.logical_block = inner->logical_block;
  f->base.is_block_device = inner->is_block_device;
  f->base.direct = inner->direct;
  /* "fault:" + inner name, truncated: it is only a label. */
  n = strnlen (inner->name, sizeof inner->name);
  if (n > sizeof f->base.name - sizeof "fault:")
    n = sizeof f->base.name - sizeof "fault:";
  memcpy (f->base.name, "fault:", 6);
  memcpy (f->base.name + 6, inner->name, n);
  f->base.name[6 + n] = '\0';
  /* The medium is the inner one: its identity, not the injector's. */
  memcpy (f->base.identity, inner->identity, sizeof f->base.identity);
  f->inner = inner;
  f->own_inner = own_inner;
  f->crash_at = UINT64_MAX;
  *out = &f->base;
  return 0;
}

/* ---- counters ---------------------------------------------------------- */

static uint64_t
read_counter (const struct remap_backend *b, const uint64_t *field)
{
  struct fault *f = to_fault (b);
  uint64_t v;

  pthread_mutex_lock (&f->lock);
  v = *field;
  pthread_mutex_unlock (&f->lock);
  return v;
}

bool
remap_fault_crashed (const struct remap_backend *b)
{
  struct fault *f = to_fault (b);
  bool v;

  pthread_mutex_lock (&f->lock);
  v = f->crashed;
  pthread_mutex_unlock (&f->lock);
  return v;
}

uint64_t
remap_fault_writes (const struct remap_backend *b)
{
  return read_counter (b, &to_fault (b)->writes);
}

uint64_t
remap_fault_flushes (const struct remap_backend *b)
{
  return read_counter (b, &to_fault (b)->flushes);
}

uint64_t
remap_fault_injected (const struct remap_backend *b)
{
  return read_counter (b, &to_fault (b)->injected);
}
