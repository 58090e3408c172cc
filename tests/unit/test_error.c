/* Unit tests: the error context (core/error.c). */

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remap/error.h"

START_TEST (test_set_keeps_first)
{
  struct remap_error e;

  remap_error_clear (&e);
  ck_assert_int_eq (e.err, 0);
  ck_assert_str_eq (e.msg, "");
  ck_assert_int_eq (remap_set_error (&e, -EIO, "unit %d failed", 7), -EIO);
  ck_assert_int_eq (e.err, -EIO);
  ck_assert_str_eq (e.msg, "unit 7 failed");
  /* A later error is a consequence: the first one stays. */
  ck_assert_int_eq (remap_set_error (&e, -ENOSPC, "spare full"), -ENOSPC);
  ck_assert_int_eq (e.err, -EIO);
  ck_assert_str_eq (e.msg, "unit 7 failed");
  remap_error_clear (&e);
  ck_assert_int_eq (e.err, 0);
  ck_assert_str_eq (e.msg, "");
  /* NULL context: just the return value. */
  ck_assert_int_eq (remap_set_error (NULL, -EBADMSG, "x"), -EBADMSG);
  remap_error_clear (NULL);
}
END_TEST

START_TEST (test_prefix)
{
  struct remap_error e;

  remap_error_clear (&e);
  ck_assert_int_eq (remap_error_prefix (&e, -EIO, "opening %s", "spare"), -EIO);
  ck_assert_str_eq (e.msg, "opening spare");
  remap_error_clear (&e);
  remap_set_error (&e, -EBADMSG, "copy %u: crc mismatch", 2u);
  ck_assert_int_eq (remap_error_prefix (&e, -EUCLEAN, "opening spare"),
                    -EUCLEAN);
  ck_assert_str_eq (e.msg, "opening spare: copy 2: crc mismatch");
  ck_assert_int_eq (e.err, -EUCLEAN);
  ck_assert_int_eq (remap_error_prefix (NULL, -EIO, "x"), -EIO);
  /* Never a doubled separator: neither from a prefix that ends in one nor
   * from a message that starts with one ("done): : spare"). */
  remap_error_clear (&e);
  remap_set_error (&e, -ENOSPC, ": spare is full");
  remap_error_prefix (&e, -ENOSPC, "unit 7 (0 of 1 units done): ");
  ck_assert_str_eq (e.msg, "unit 7 (0 of 1 units done): spare is full");
  /* Nothing to append: no dangling separator either. */
  remap_error_clear (&e);
  remap_error_prefix (&e, -ENOSPC, "unit 7 (0 of 1 units done): ");
  ck_assert_str_eq (e.msg, "unit 7 (0 of 1 units done)");
}
END_TEST

START_TEST (test_truncation)
{
  struct remap_error e;
  char big[2 * REMAP_ERROR_MSG_MAX];

  memset (big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  remap_error_clear (&e);
  remap_set_error (&e, -EIO, "%s", big);
  ck_assert_uint_eq (strlen (e.msg), REMAP_ERROR_MSG_MAX - 1);
  remap_error_prefix (&e, -EIO, "prefix");
  ck_assert_uint_eq (strlen (e.msg), REMAP_ERROR_MSG_MAX - 1);
  ck_assert (strncmp (e.msg, "prefix: xxx", 11) == 0);
  remap_error_prefix (&e, -EIO, "%s", big);
  ck_assert_uint_eq (strlen (e.msg), REMAP_ERROR_MSG_MAX - 1);
  ck_assert (e.msg[0] == 'x');
}
END_TEST

static Suite *
error_suite (void)
{
  Suite *s = suite_create ("error");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_set_keeps_first);
  tcase_add_test (tc, test_prefix);
  tcase_add_test (tc, test_truncation);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (error_suite ());
  int failed;

  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
