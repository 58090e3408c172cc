/* remap: libFuzzer target for the fault-rule grammar (core/faultspec.c):
 * remap_fault_parse_rules on the input as a rule file.  Checked: on
 * success every rule's range ends below 2^64 and names an operation; on
 * failure the count is 0 and the message holds no raw control byte. */
#include "fuzz_parse_common.h"
#include "remap/backend.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct remap_fault_rule rules[REMAP_FAULT_MAX_RULES];
  struct remap_error err = { 0 };
  size_t n = 99;

  if (remap_fault_parse_rules ((const char *) data, size, "fuzz", rules, &n,
                               &err) == 0) {
    if (n > REMAP_FAULT_MAX_RULES)
      abort ();
    for (size_t i = 0; i < n; i++)
      if (rules[i].ops == 0 || rules[i].len == 0
          || rules[i].off + rules[i].len < rules[i].off)
        abort ();
  }
  else {
    check_message (&err);
    if (n != 0)
      abort ();
  }
  return 0;
}
