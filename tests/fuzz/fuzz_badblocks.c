/* remap: libFuzzer target for remap_parse_badblocks (core/badlist.c).
 * The first byte picks the block size (1, 512, 1024, 4096 or a large odd
 * one, so that the 2^64 bound is reached); the rest is the list.  See
 * fuzz_parse_common.h for what is checked. */
#include "fuzz_parse_common.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const uint64_t sizes[] = { 1, 512, 1024, 4096,
                                    UINT64_C (0x7fffffffffff) };
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };

  if (size < 1)
    return 0;
  remap_extents_add (&x, 1, 1);
  int r = remap_parse_badblocks ((const char *) data + 1, size - 1, "fuzz",
                                 sizes[data[0] % 5], &x, &err);
  check_extents (r, &x, &err);
  remap_extents_free (&x);
  return 0;
}
