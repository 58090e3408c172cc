/* remap: checks shared by the parser fuzz targets (fuzz_badblocks.c,
 * fuzz_ddrescue.c, fuzz_smartctl.c, fuzz_numbers.c, fuzz_faultrules.c).
 *
 * A breach of a parser's contract aborts, so libFuzzer (or the replay
 * driver under ctest) reports it: the list a parser returns is sorted,
 * merged, free of empty ranges and of ranges that wrap past 2^64; a
 * failed parse leaves the caller's list exactly as it was and leaves a
 * message without a raw control byte.
 */
#ifndef REMAP_FUZZ_PARSE_COMMON_H
#define REMAP_FUZZ_PARSE_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remap/badlist.h"
#include "remap/error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static inline void
check_message (const struct remap_error *err)
{
  if (err->err == 0 || err->msg[0] == '\0')
    abort ();                   /* an error without a message */
  for (const char *p = err->msg; *p; p++)
    if ((unsigned char) *p < 0x20 || *p == 0x7f)
      abort ();                 /* a raw control byte echoed */
}

/* After a parse into x that held one sentinel range {1, 1} before. */
static inline void
check_extents (int r, const struct remap_extents *x,
               const struct remap_error *err)
{
  if (r != 0) {
    check_message (err);
    if (x->n != 1 || x->v[0].off != 1 || x->v[0].len != 1)
      abort ();                 /* changed on error */
    return;
  }
  for (size_t i = 0; i < x->n; i++) {
    if (x->v[i].len == 0 || x->v[i].len > UINT64_MAX - x->v[i].off)
      abort ();                 /* empty, or wraps */
    if (i > 0 && x->v[i].off <= x->v[i - 1].off + x->v[i - 1].len)
      abort ();                 /* not sorted and merged */
  }
}

#endif
