/* remap: lists of bad areas in the formats administrators already have.
 *
 * - e2fsprogs badblocks output (also what e2fsck -l reads): one block
 *   number per line, in blocks of a size the user states (badblocks -b,
 *   default 1024).  Blank lines and '#' comments are ignored.
 * - GNU ddrescue mapfiles: '#' comment lines, then a status line
 *   "current_pos current_status [current_pass]", then one line per block
 *   "pos size status".  Numbers are 0x-prefixed hexadecimal or decimal.
 *   Status '-' (bad sector), '*' (non-trimmed) and '/' (non-scraped) are
 *   bad; '?' (non-tried) is bad only when asked; '+' (finished) is good.
 *
 * - smartctl JSON reports (remap_parse_smartctl): the LBAs of failed
 *   self-tests and of uncorrectable errors.
 *
 * badblocks and ddrescue: decimal or 0x hexadecimal numbers, '#' comments, LF or CRLF; NUL
 * and control bytes are errors (the line grammar of remap/parse.h).
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

/* Parse badblocks output of `len' bytes (need not be NUL-terminated; a
 * NUL inside is an error) read from src (for messages; NULL: "line N").
 * 0, or -EINVAL ("SRC:N: ...") / -ENOMEM with out unchanged.  Ranges are
 * appended in bytes (block * block_size, which never passes 2^64 - 1) and
 * out is normalised. */
int remap_parse_badblocks (const char *text, size_t len, const char *src,
                           uint64_t block_size, struct remap_extents *out,
                           struct remap_error *err);

/* Parse a ddrescue mapfile, as remap_parse_badblocks.  Bad ranges are
 * appended, out normalised; no range ends past 2^64 - 1. */
int remap_parse_ddrescue (const char *text, size_t len, const char *src,
                          bool include_nontried, struct remap_extents *out,
                          struct remap_error *err);

/* Parse a smartctl JSON report (`smartctl -j -a DISK' or -x) named src:
 * the LBAs its self-test logs and its error logs report for media errors
 * (ATA and NVMe; core/smartctl.c lists the fields), as ranges of one
 * logical block each.  block_size 0 takes the report's logical_block_size;
 * *bs_used (may be NULL) gets the size used.  0 (no LBA at all is fine);
 * -EINVAL for text that is not JSON (SRC:LINE:COL), a report with no
 * self-test or error log, a field of the wrong type, no block size, or an
 * LBA past 2^64; -ENOMEM.  out is unchanged on error, else normalised. */
int remap_parse_smartctl (const char *text, size_t len, const char *src,
                          uint64_t block_size, struct remap_extents *out,
                          uint64_t *bs_used, struct remap_error *err);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_BADLIST_H */
