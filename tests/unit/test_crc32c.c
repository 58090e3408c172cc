/* Unit tests: CRC32C known answers and chaining (core/crc32c.c). */

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "remap/meta.h"

START_TEST (test_known_answers)
{
  static const uint8_t zeros[32];
  uint8_t ones[32], inc[32];
  unsigned i;

  memset (ones, 0xff, sizeof ones);
  for (i = 0; i < sizeof inc; i++)
    inc[i] = i;

  ck_assert_uint_eq (remap_crc32c (0, "123456789", 9), 0xE3069283u);
  ck_assert_uint_eq (remap_crc32c (0, zeros, 32), 0x8A9136AAu);
  /* RFC 3720 B.4 vectors. */
  ck_assert_uint_eq (remap_crc32c (0, ones, 32), 0x62A8AB43u);
  ck_assert_uint_eq (remap_crc32c (0, inc, 32), 0x46DD794Eu);
  ck_assert_uint_eq (remap_crc32c (0, "", 0), 0u);
  ck_assert_uint_eq (remap_crc32c (0, "a", 1), 0xC1D04330u);
}
END_TEST

/* Bit-at-a-time reference, independent of the table code. */
static uint32_t
crc_slow (const uint8_t *p, size_t len)
{
  uint32_t c = 0xffffffffu;
  size_t i;
  int k;

  for (i = 0; i < len; i++) {
    c ^= p[i];
    for (k = 0; k < 8; k++)
      c = (c >> 1) ^ (0x82F63B78u & -(c & 1));
  }
  return ~c;
}

START_TEST (test_chaining_and_alignment)
{
  uint8_t buf[1031];
  size_t i, len, split, start;

  srand (12345);
  for (i = 0; i < sizeof buf; i++)
    buf[i] = rand ();

  /* Every start offset (alignment) and many lengths against the slow one. */
  for (start = 0; start < 9; start++)
    for (len = 0; len + start <= sizeof buf; len += 1 + len / 7)
      ck_assert_uint_eq (remap_crc32c (0, buf + start, len),
                         crc_slow (buf + start, len));

  /* Chaining at any split point equals one shot. */
  for (split = 0; split <= 100; split++) {
    uint32_t c = remap_crc32c (0, buf, split);

    c = remap_crc32c (c, buf + split, 100 - split);
    ck_assert_uint_eq (c, remap_crc32c (0, buf, 100));
  }
  {
    uint32_t c = remap_crc32c (0, "1234", 4);

    ck_assert_uint_eq (remap_crc32c (c, "56789", 5), 0xE3069283u);
  }
}
END_TEST

START_TEST (test_detects_change)
{
  uint8_t buf[512];
  uint32_t good;
  unsigned bit;

  memset (buf, 0x5a, sizeof buf);
  good = remap_crc32c (0, buf, sizeof buf);
  for (bit = 0; bit < sizeof buf * 8; bit += 61) {
    buf[bit / 8] ^= 1u << (bit % 8);
    ck_assert_uint_ne (remap_crc32c (0, buf, sizeof buf), good);
    buf[bit / 8] ^= 1u << (bit % 8);
  }
  ck_assert_uint_eq (remap_crc32c (0, buf, sizeof buf), good);
}
END_TEST

static Suite *
crc32c_suite (void)
{
  Suite *s = suite_create ("crc32c");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_known_answers);
  tcase_add_test (tc, test_chaining_and_alignment);
  tcase_add_test (tc, test_detects_change);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (crc32c_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
