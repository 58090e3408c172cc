/* remap: libFuzzer target for remap_parse_ddrescue (core/badlist.c).
 * The first byte's low bit is include_nontried; the rest is the mapfile.
 * See fuzz_parse_common.h for what is checked. */
#include "fuzz_parse_common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };

  if (size < 1)
    return 0;
  remap_extents_add (&x, 1, 1);
  int r = remap_parse_ddrescue ((const char *) data + 1, size - 1, "fuzz",
                                data[0] & 1, &x, &err);
  check_extents (r, &x, &err);
  remap_extents_free (&x);
  return 0;
}
