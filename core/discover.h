/* remap: finding a spare's metadata, and keeping client data from being
 * taken for it (core/discover.c; docs/FORMAT.md sections 12 and 13).
 *
 * Used by engine.c (open, format, inspect).  No locking: these run before
 * an engine exists, or with the spare locked by the caller.
 */
#ifndef REMAP_CORE_DISCOVER_H
#define REMAP_CORE_DISCOVER_H

#include <stdint.h>

#include "remap/backend.h"
#include "remap/error.h"
#include "remap/meta.h"

/* Decode the superblock in buf[0..511], read at spare byte off, and check
 * that its own layout puts copy copy_index exactly there.  0 or the
 * decoder's -errno (-EUCLEAN when misplaced), with a message. */
int sb_decode_at (const uint8_t *buf, uint64_t off, struct remap_sb *sb,
                  struct remap_error *err);

/* Find the superblock that describes the spare.  0: *best is it.
 * -ENOMEDIUM: every place a superblock could be was read and none holds
 * remap metadata.  -EUCLEAN: metadata is there, but no valid superblock, or
 * superblocks of more than one spare or layout (the message names them;
 * there is no vote).  Another -errno: a read failed where metadata could
 * be and nothing valid was found (the message names the byte). */
int discover (struct remap_backend *spare, struct remap_sb *best,
              struct remap_error *err);

/* buf holds the spare's bytes [base, base + len), which lie inside the
 * copy extents of sb's layout (len a multiple of 512).  Look there for
 * remap metadata that is not sb's spare's: a superblock or a table block
 * with a valid CRC and another uuid, or the same uuid under another
 * layout.  copy names the copy in the message.  0, or -EUCLEAN with a
 * message naming both uuids.  Bytes it must read beyond buf and cannot
 * are no evidence either way. */
int check_foreign (struct remap_backend *spare, const struct remap_sb *sb,
                   const uint8_t *buf, uint64_t len, uint64_t base,
                   uint32_t copy, struct remap_error *err);

/* Format with force, first step: zero the superblock at every place any
 * layout of this spare could put one, wherever it holds the remap magic
 * or cannot be read, then flush.  0 or -errno with a message. */
int wipe_superblocks (struct remap_backend *spare, struct remap_error *err);

#endif /* REMAP_CORE_DISCOVER_H */
