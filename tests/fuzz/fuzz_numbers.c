/* remap: libFuzzer target for the number and unit-list grammar
 * (core/parse.c): remap_parse_u64 with and without suffixes, and
 * remap_list_parse, on the input as one NUL-terminated string.
 *
 * Checked: a parsed number printed back in decimal parses to itself; a
 * parsed list's items are ordered (first <= last); a failure leaves the
 * output alone and its message holds no raw control byte. */
#include <inttypes.h>
#include <stdio.h>

#include "fuzz_parse_common.h"
#include "remap/parse.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = malloc (size + 1);
  struct remap_error err = { 0 };
  struct remap_list l = { 0 };
  uint64_t v = 7, w;
  char back[32];

  if (!s)
    return 0;
  memcpy (s, data, size);
  s[size] = '\0';
  for (unsigned flags = 0; flags <= REMAP_NUM_SUFFIX; flags++) {
    remap_error_clear (&err);
    v = 7;
    if (remap_parse_u64 (s, flags, "n", &v, &err) == 0) {
      snprintf (back, sizeof back, "%" PRIu64, v);
      if (remap_parse_u64 (back, 0, "n", &w, NULL) != 0 || w != v)
        abort ();
    }
    else {
      check_message (&err);
      if (v != 7)
        abort ();
    }
  }
  remap_error_clear (&err);
  if (remap_list_parse (s, "remap=", &l, &err) == 0) {
    for (size_t i = 0; i < l.n; i++)
      if (l.v[i].first > l.v[i].last)
        abort ();
  }
  else {
    check_message (&err);
    if (l.n != 0)
      abort ();
  }
  remap_list_free (&l);
  free (s);
  return 0;
}
