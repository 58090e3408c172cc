/* remap: libFuzzer target for remap_parse_smartctl (core/smartctl.c, over
 * json-c).  The first byte picks the block size (0: the report's own,
 * else 512 or 4096); the rest is the report.  See fuzz_parse_common.h
 * for what is checked. */
#include "fuzz_parse_common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const uint64_t sizes[] = { 0, 512, 4096 };
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };
  uint64_t used = 0;

  if (size < 1)
    return 0;
  remap_extents_add (&x, 1, 1);
  int r = remap_parse_smartctl ((const char *) data + 1, size - 1, "fuzz",
                                sizes[data[0] % 3], &x, &used, &err);
  check_extents (r, &x, &err);
  if (r == 0 && (used == 0 || (data[0] % 3 && used != sizes[data[0] % 3])))
    abort ();                   /* the block size used is not reported */
  remap_extents_free (&x);
  return 0;
}
