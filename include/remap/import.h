/* remap: importing a list of bad areas into an engine, all or nothing as
 * far as can be known in advance (core/import.c).
 *
 * One function serves every way in: remapctl import (offline, or online
 * through the plugin's control socket), the plugin's remap= and
 * badblocks= at start, and the tests.  It checks everything before it
 * changes anything: every range lies inside the origin, and the spare has
 * room for every unit the import would take (free spare units to remap;
 * free pending places, or free spare units on a version 1 spare, to mark
 * pending).  Then it applies unit by unit, in unit order.
 *
 * What cannot be known in advance: a remap that fails half way (the
 * origin's read fails with an error that is not a media error, the spare
 * fails, a commit fails, another client takes the last spare units
 * meanwhile).  Then the units done stay done (each was committed), the
 * error says how many, and the units after it are untouched.
 */
#ifndef REMAP_IMPORT_H
#define REMAP_IMPORT_H

#include <stdint.h>

#include "remap/badlist.h"
#include "remap/error.h"
#include "remap/parse.h"
#include "remap/remap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Origin units first..last, inclusive. */
struct remap_unit_range {
  uint64_t first, last;
};

#define REMAP_IMPORT_PENDING 0x1u  /* mark pending instead of remapping */
#define REMAP_IMPORT_DRY_RUN 0x2u  /* check and count, change nothing */

struct remap_import_result {
  uint64_t ranges;              /* runs of units, after merging */
  uint64_t units;               /* distinct units named */
  uint64_t already;             /* units already in the state asked (a
                                   mapped unit counts for pending too) */
  uint64_t needed;              /* places the import would take */
  uint64_t room;                /* free places before it */
  uint64_t changed;             /* units changed (0 on a dry run) */
};

/* Import the units of v[0..n) (sorted and merged in place; any order and
 * overlaps accepted).  `what' names the source in messages ("bad.txt";
 * NULL: none).
 * 0 with *res filled; -EINVAL (a unit past the origin's end: nothing
 * changed); -ENOSPC (no room, the message names needed and free: nothing
 * changed); -ENOMEM; or the error of the unit that failed, prefixed with
 * how many units were done before it.  res may be NULL. */
int remap_import_units (struct remap_engine *e, struct remap_unit_range *v,
                        size_t n, const char *what, unsigned flags,
                        struct remap_import_result *res,
                        struct remap_error *err);

/* Called before each unit is changed: 0 to go on, or -errno to stop there
 * (a server stopping, a client gone).  Must not block for long. */
typedef int remap_import_check_fn (void *opaque);

/* remap_import_units, asking check(opaque) before each unit (check may be
 * NULL).  A stop returns check's -errno, the message saying how many units
 * were done (they stay done) and that the rest are untouched. */
int remap_import_units_checked (struct remap_engine *e,
                                struct remap_unit_range *v, size_t n,
                                const char *what, unsigned flags,
                                remap_import_check_fn *check, void *opaque,
                                struct remap_import_result *res,
                                struct remap_error *err);

/* The same for byte ranges (a parsed badblocks list, ddrescue mapfile or
 * smartctl report): every unit a range touches.  A range past the origin's
 * end is -EINVAL naming the range and the origin's size. */
int remap_import_extents (struct remap_engine *e,
                          const struct remap_extents *x, const char *what,
                          unsigned flags, struct remap_import_result *res,
                          struct remap_error *err);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_IMPORT_H */
