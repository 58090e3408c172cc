/* remap: import a list of bad areas (see include/remap/import.h).
 *
 * Three phases, the first two without a change:
 *
 *   validate   sort and merge the unit ranges; every one must lie inside
 *              the origin (a range past its end is a wrong block size or
 *              the wrong disk, and nothing is imported)
 *   count      one pass over the table (remap_foreach): how many named
 *              units are already mapped or pending, how many places the
 *              import takes, how many are free
 *   apply      unit by unit through the engine's public calls, which take
 *              the engine's own locks; this file holds no lock and no
 *              state of its own.  A caller's check between units (the
 *              admin library's sink: client gone, server stopping) can
 *              stop it there; a unit is never left half done
 *
 * The room check uses the counters of the moment; a writer that takes
 * spare units between count and apply makes a later remap fail with
 * -ENOSPC, reported with the count of units done (each done unit was
 * committed before the next began).  Remapping a pending unit is counted
 * as taking a spare unit, even on a version 1 spare where its pending slot
 * may be reused: the check errs on the side of refusing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remap/import.h"

/* "WHAT: " before a message, or nothing when what is NULL. */
#define W(what) (what) ? (what) : "", (what) ? ": " : ""

static int
cmp_range (const void *a, const void *b)
{
  const struct remap_unit_range *x = a, *y = b;
  return x->first < y->first ? -1 : x->first > y->first;
}

/* Sort and merge overlapping or adjacent ranges; returns the new count. */
static size_t
merge (struct remap_unit_range *v, size_t n)
{
  size_t j = 0;

  if (n == 0)
    return 0;
  qsort (v, n, sizeof *v, cmp_range);
  for (size_t i = 1; i < n; i++) {
    if (v[j].last == UINT64_MAX || v[i].first <= v[j].last + 1) {
      if (v[i].last > v[j].last)
        v[j].last = v[i].last;
    }
    else
      v[++j] = v[i];
  }
  return j + 1;
}

struct tally {
  const struct remap_unit_range *v;
  size_t n;
  uint64_t spare_units;         /* N: slots from N are pending-only places */
  uint64_t mapped, pending;     /* named units in each state */
  uint64_t places_used;         /* pending-only places taken (any unit) */
};

static int
tally_slot (void *opaque, const struct remap_mapping *m)
{
  struct tally *t = opaque;
  size_t lo = 0, hi = t->n;

  if (m->state == REMAP_SLOT_PENDING && m->spare_unit >= t->spare_units)
    t->places_used++;
  if (m->state != REMAP_SLOT_MAPPED && m->state != REMAP_SLOT_PENDING)
    return 0;
  while (lo < hi) {             /* the first range with last >= unit */
    size_t mid = lo + (hi - lo) / 2;
    if (t->v[mid].last < m->origin_unit)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < t->n && t->v[lo].first <= m->origin_unit) {
    if (m->state == REMAP_SLOT_MAPPED)
      t->mapped++;
    else
      t->pending++;
  }
  return 0;
}

/* Count what the import needs and what is free. */
static int
count (struct remap_engine *e, const struct remap_unit_range *v, size_t n,
       unsigned flags, struct remap_import_result *res,
       struct remap_error *err)
{
  struct remap_info info;
  struct remap_counters c;
  struct tally t = { .v = v, .n = n };

  remap_get_info (e, &info);
  t.spare_units = info.layout.spare_units;
  if (remap_foreach (e, tally_slot, &t) < 0)
    return remap_set_error (err, -ENOMEM, "out of memory listing the table");
  remap_get_counters (e, &c);
  if (!(flags & REMAP_IMPORT_PENDING)) {
    res->already = t.mapped;
    res->needed = res->units - t.mapped;
    res->room = c.spare_free_units;
  }
  else {
    const struct remap_layout *l = &info.layout;
    res->already = t.mapped + t.pending;
    res->needed = res->units - res->already;
    if (l->version >= 2) {
      uint64_t places = l->table_blocks * l->entries_per_block
        - remap_layout_first_pending_slot (l);
      res->room = places > t.places_used ? places - t.places_used : 0;
    }
    else
      res->room = c.spare_free_units;
  }
  return 0;
}

struct stop {
  remap_import_check_fn *check;
  void *opaque;
};

static int
apply (struct remap_engine *e, const struct remap_unit_range *v, size_t n,
       const char *what, unsigned flags, const struct stop *stop,
       struct remap_import_result *res, struct remap_error *err)
{
  bool pending = flags & REMAP_IMPORT_PENDING;
  uint64_t done = 0;

  for (size_t i = 0; i < n; i++)
    for (uint64_t u = v[i].first;; u++) {
      struct remap_mapping m;
      int r = stop->check ? stop->check (stop->opaque) : 0;
      if (r < 0)
        return remap_set_error (err, r, "%s%sstopped before unit %" PRIu64
                                " (%" PRIu64 " of %" PRIu64 " units done, "
                                "the rest untouched)", W (what), u, done,
                                res->units);
      r = remap_lookup (e, u, &m);
      bool skip = r == 0 && (m.state == REMAP_SLOT_MAPPED
                             || (pending && m.state == REMAP_SLOT_PENDING));
      if (r == 0 && !skip)
        r = pending ? remap_mark_pending (e, u, err)
          : remap_remap (e, u, 0, err);
      if (r)
        return remap_error_prefix (err, r, "%s%sunit %" PRIu64 " (%" PRIu64
                                   " of %" PRIu64 " units done, the rest "
                                   "untouched): ", W (what), u, done, res->units);
      done++;
      res->changed += !skip;
      if (u == v[i].last)
        break;
    }
  return 0;
}

int
remap_import_units (struct remap_engine *e, struct remap_unit_range *v,
                    size_t n, const char *what, unsigned flags,
                    struct remap_import_result *res, struct remap_error *err)
{
  return remap_import_units_checked (e, v, n, what, flags, NULL, NULL, res,
                                     err);
}

int
remap_import_units_checked (struct remap_engine *e,
                            struct remap_unit_range *v, size_t n,
                            const char *what, unsigned flags,
                            remap_import_check_fn *check, void *opaque,
                            struct remap_import_result *res,
                            struct remap_error *err)
{
  const struct stop stop = { check, opaque };
  struct remap_import_result dummy;
  uint64_t U = remap_unit (e), units = (remap_size (e) + U - 1) / U;
  int r;

  if (!res)
    res = &dummy;
  memset (res, 0, sizeof *res);
  n = merge (v, n);
  for (size_t i = 0; i < n; i++) {
    if (v[i].last >= units)
      return remap_set_error (err, -EINVAL, "%s%sunit %" PRIu64 " is past "
                              "the end of the origin (%" PRIu64 " units of %"
                              PRIu64 " bytes): wrong block size, or another "
                              "disk's list?  Nothing was imported", W (what),
                              v[i].last, units, U);
    res->units += v[i].last - v[i].first + 1;
  }
  res->ranges = n;
  if ((r = count (e, v, n, flags, res, err)))
    return r;
  if (res->needed > res->room)
    return remap_set_error (err, -ENOSPC, "%s%s%s %" PRIu64 " units (%"
                            PRIu64 " named, %" PRIu64 " already %s) needs %"
                            PRIu64 " free %s, but the spare has %" PRIu64
                            ": nothing was imported; give a larger spare or "
                            "a shorter list", W (what),
                            flags & REMAP_IMPORT_PENDING ? "marking pending"
                            : "remapping", res->needed, res->units,
                            res->already,
                            flags & REMAP_IMPORT_PENDING ? "remapped or "
                            "pending" : "remapped", res->needed,
                            flags & REMAP_IMPORT_PENDING
                            ? "pending places" : "spare units", res->room);
  if (flags & REMAP_IMPORT_DRY_RUN)
    return 0;
  return apply (e, v, n, what, flags, &stop, res, err);
}

int
remap_import_extents (struct remap_engine *e, const struct remap_extents *x,
                      const char *what, unsigned flags,
                      struct remap_import_result *res,
                      struct remap_error *err)
{
  uint64_t U = remap_unit (e), size = remap_size (e);
  struct remap_unit_range *v;
  int r;

  v = malloc ((x->n ? x->n : 1) * sizeof *v);
  if (!v)
    return remap_set_error (err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < x->n; i++) {
    const struct remap_extent *ex = &x->v[i];
    if (ex->len == 0 || ex->off >= size || ex->len > size - ex->off) {
      free (v);
      return remap_set_error (err, -EINVAL, "%s%sbad range at byte %" PRIu64
                              " (length %" PRIu64 ") is past the end of the "
                              "origin (%" PRIu64 " bytes): wrong block size, "
                              "or another disk's list?  Nothing was imported",
                              W (what), ex->off, ex->len, size);
    }
    v[i].first = ex->off / U;
    v[i].last = (ex->off + (ex->len - 1)) / U;
  }
  r = remap_import_units (e, v, x->n, what, flags, res, err);
  free (v);
  return r;
}
