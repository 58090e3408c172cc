/* remap: lists of bad areas in the formats administrators already have.
 *
 * - e2fsprogs badblocks output (also what e2fsck -l reads): one decimal
 *   block number per line, in blocks of a size the user states (badblocks
 *   -b, default 1024).  Blank lines are ignored.
 * - GNU ddrescue mapfiles: '#' comment lines, then a status line
 *   "current_pos current_status [current_pass]", then one line per block
 *   "pos size status".  Numbers are 0x-prefixed hexadecimal or decimal.
 *   Status '-' (bad sector), '*' (non-trimmed) and '/' (non-scraped) are
 *   bad; '?' (non-tried) is bad only when asked; '+' (finished) is good.
 *
 * Pure C, libc only.  Parsers reject malformed lines with the line number.
 */
#ifndef REMAP_BADLIST_H
#define REMAP_BADLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A byte range [off, off + len). */
struct remap_extent {
  uint64_t off, len;
};

struct remap_extents {
  struct remap_extent *v;
  size_t n, cap;
};

/* Append a range; 0 or -ENOMEM (len 0 is ignored). */
int remap_extents_add (struct remap_extents *x, uint64_t off, uint64_t len);
/* Sort and merge overlapping or adjacent ranges. */
void remap_extents_normalize (struct remap_extents *x);
void remap_extents_free (struct remap_extents *x);

/* Parse badblocks output of `len' bytes (need not be NUL-terminated).
 * 0 or -EINVAL ("line N: ...") / -ENOMEM.  Ranges are appended in bytes
 * (block * block_size) and normalised. */
int remap_parse_badblocks (const char *text, size_t len, uint64_t block_size,
                           struct remap_extents *out, struct remap_error *err);

/* Parse a ddrescue mapfile.  0 or -EINVAL ("line N: ...") / -ENOMEM.  Bad
 * ranges are appended, normalised. */
int remap_parse_ddrescue (const char *text, size_t len, bool include_nontried,
                          struct remap_extents *out, struct remap_error *err);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_BADLIST_H */
