/* remap: rebind, recording the current origin's identity (and label) in
 * every superblock of a spare (SPEC 2.7; `remapctl rebind').
 *
 * For the same data on another medium: an image file that was copied or
 * restored (a new inode), a disk cloned onto a new one, an export moved
 * to another name.  The open refuses such an origin (check_identity in
 * engine.c) unless told to accept it; rebind makes the acceptance
 * permanent, so that later opens check against the new identity.
 *
 * Only the superblocks change; the table, the map units and the data are
 * not touched.  Each copy's superblock unit (spare unit
 * sb.layout.copy_offset[i]) is rewritten whole: the superblock with
 * sb_generation one above every valid superblock's, the rest of the unit
 * zero, as format writes it.
 *
 * Crash safety.  The copies are rewritten one at a time, copy 0 first,
 * each write followed by a flush before the next copy is touched.  So a
 * crash (or a failed write) leaves at most one superblock torn, and every
 * other copy holding either the old superblock or the new one, both valid
 * and of this spare (same uuid and layout: discover groups them as one
 * spare); and no copy but 0 holds the new one unless copy 0's new one is
 * durable.  The next open settles it either way:
 *   - copy 0's superblock is the new one: discover takes it (byte 0 is
 *     never data), and the open treats every superblock of another
 *     sb_generation as stale and rewrites it from the chosen one: the
 *     rebind completes;
 *   - copy 0's is still the old one (the crash came before it reached the
 *     disk): no other copy was touched: as if rebind had not run;
 *   - copy 0's is torn: discover takes the valid superblock of highest
 *     sb_generation among the others, all old, and the open repairs
 *     copy 0 from it: as if rebind had not run.
 * The spare opens, with the old or the new identity, never a mix, and
 * running rebind again finishes the job.
 *
 * Locking: like remap_format, the spare's lock (and the origin's, as
 * remap_open takes it), so that no running server or remapctl is using
 * them.  The backends stay the caller's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"
#include "remap/format.h"
#include "remap/meta.h"
#include "remap/remap.h"
#include "discover.h"
#include "engine.h"

int
remap_rebind (struct remap_backend *origin, struct remap_backend *spare,
              struct remap_error *err)
{
  struct remap_sb sb;
  uint8_t *buf = NULL;
  int r;

  if (origin == NULL || spare == NULL || origin->ops == NULL
      || spare->ops == NULL)
    return remap_set_error (err, -EINVAL, "rebind: no origin or spare");
  if ((r = remap_backend_lock (spare, err)) != 0
      || (r = remap_backend_lock (origin, err)) != 0)
    return r;
  if ((r = discover (spare, &sb, err)) != 0)
    return remap_error_prefix (err, r, "rebind: ");

  const struct remap_layout *l = &sb.layout;
  uint32_t unit = l->unit;
  if (sb.version != REMAP_SB_VERSION)
    return remap_set_error (err, -EOPNOTSUPP,
                            "rebind: spare %s is of format version %u, which "
                            "records no origin identity (it is checked by "
                            "the origin's size only), so there is nothing to "
                            "rebind; rebind needs a version %u spare",
                            spare->name, sb.version, REMAP_SB_VERSION);
  if (origin->size != sb.origin_size)
    return remap_set_error (err, -ENODEV,
                            "rebind: origin %s has %llu bytes, but spare %s "
                            "was formatted for an origin of %llu bytes (%s); "
                            "rebind records a new identity for the same "
                            "data, not another disk: give the origin the "
                            "spare belongs to", origin->name,
                            (unsigned long long) origin->size, spare->name,
                            (unsigned long long) sb.origin_size,
                            sb.origin_label);

  buf = eng_alloc_buf (unit);
  if (!buf)
    return remap_set_error (err, -ENOMEM, "out of memory");

  /* Before writing anything: every copy's superblock unit holds this
   * spare's superblock, a damaged one, or nothing, never another spare's
   * metadata (repair never writes over a copy of another identity, SPEC
   * 2.7); and the new generation is above every valid one. */
  uint64_t gen = sb.sb_generation;
  for (uint32_t i = 0; i < l->copies; i++) {
    uint64_t off = l->copy_offset[i] * unit;
    struct remap_sb c;
    struct remap_error derr = { 0 };

    if (remap_backend_pread (spare, buf, unit, off) != 0)
      continue;                 /* unreadable: rewriting it repairs it */
    if ((r = check_foreign (spare, &sb, buf, unit, off, i, err)) != 0) {
      remap_error_prefix (err, r, "rebind: nothing written: ");
      goto out;
    }
    if (sb_decode_at (buf, off, &c, &derr) == 0
        && memcmp (c.uuid, sb.uuid, 16) == 0 && c.sb_generation > gen)
      gen = c.sb_generation;
  }
  if (gen >= REMAP_MAX_GENERATION) {
    r = remap_set_error (err, -EOVERFLOW, "rebind: spare %s: superblock "
                         "generation %llu is at its limit", spare->name,
                         (unsigned long long) gen);
    goto out;
  }

  sb.sb_generation = gen + 1;
  snprintf (sb.origin_id, sizeof sb.origin_id, "%s", origin->identity);
  /* The label as format records it: the end of a long name. */
  const char *label = origin->name;
  size_t ll = strlen (label);
  if (ll > REMAP_LABEL_SIZE)
    label += ll - REMAP_LABEL_SIZE;
  memset (sb.origin_label, 0, sizeof sb.origin_label);
  memcpy (sb.origin_label, label, strlen (label));

  for (uint32_t i = 0; i < l->copies; i++) {
    struct remap_sb c = sb;
    c.copy_index = i;
    memset (buf, 0, unit);
    remap_sb_encode (&c, buf);
    r = remap_backend_pwrite (spare, buf, unit, l->copy_offset[i] * unit);
    if (r == 0)
      r = remap_backend_flush (spare);
    if (r) {
      remap_set_error (err, r, "rebind: writing the superblock of copy %u "
                       "of %u to %s (byte %llu) failed: %s.  %s", i,
                       l->copies, spare->name,
                       (unsigned long long) (l->copy_offset[i] * unit),
                       strerror (-r), i == 0
                       ? "The spare still opens with its old identity (or, "
                         "if the write reached the disk, with the new one); "
                         "run rebind again once the cause is fixed"
                       : "The new identity is recorded in copy 0, and the "
                         "next open rewrites the other copies from it; run "
                         "rebind again (or remapctl repair) to finish now");
      goto out;
    }
  }
  r = 0;
 out:
  free (buf);
  return r;
}
