/* Unit tests: error classes (core/errclass.c, SPEC 3.10).
 *
 * Table-driven: every errno a backend can plausibly return, grouped by the
 * class it must land in; the client errno of each class; names both ways;
 * and the rule that an unknown errno is never a media error.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remap/error.h"

struct vec {
  int err;                      /* negative, as backends return it */
  enum remap_errclass cls;
  int client;                   /* what an NBD client must receive */
};

static const struct vec vecs[] = {
  /* media: the only class that moves data */
  { -EIO, REMAP_ERRCLASS_MEDIA, EIO },
  { -ENODATA, REMAP_ERRCLASS_MEDIA, EIO },      /* BLK_STS_MEDIUM, O_DIRECT */
  { -EILSEQ, REMAP_ERRCLASS_MEDIA, EIO },       /* BLK_STS_PROTECTION */
  { -EBADMSG, REMAP_ERRCLASS_MEDIA, EIO },
  { -EREMOTEIO, REMAP_ERRCLASS_MEDIA, EIO },    /* BLK_STS_TARGET */
  /* no space: ENOSPC to the client, whatever the host said */
  { -ENOSPC, REMAP_ERRCLASS_NOSPACE, ENOSPC },
  { -EDQUOT, REMAP_ERRCLASS_NOSPACE, ENOSPC },
  { -EFBIG, REMAP_ERRCLASS_NOSPACE, ENOSPC },
  /* connection: EIO to the client */
  { -ENOTCONN, REMAP_ERRCLASS_CONNECTION, EIO },
  { -ECONNRESET, REMAP_ERRCLASS_CONNECTION, EIO },
  { -ECONNREFUSED, REMAP_ERRCLASS_CONNECTION, EIO },
  { -EPIPE, REMAP_ERRCLASS_CONNECTION, EIO },
  { -ESHUTDOWN, REMAP_ERRCLASS_CONNECTION, EIO },
  { -ETIMEDOUT, REMAP_ERRCLASS_CONNECTION, EIO },
  { -EHOSTUNREACH, REMAP_ERRCLASS_CONNECTION, EIO },
  { -ENETDOWN, REMAP_ERRCLASS_CONNECTION, EIO },
  { -ENOLINK, REMAP_ERRCLASS_CONNECTION, EIO },  /* BLK_STS_TRANSPORT */
  { -ENODEV, REMAP_ERRCLASS_CONNECTION, EIO },   /* BLK_STS_OFFLINE */
  { -ENXIO, REMAP_ERRCLASS_CONNECTION, EIO },
  { -ENOMEDIUM, REMAP_ERRCLASS_CONNECTION, EIO },
  { -ESTALE, REMAP_ERRCLASS_CONNECTION, EIO },
  /* transient: EIO to the client */
  { -EAGAIN, REMAP_ERRCLASS_TRANSIENT, EIO },
  { -EWOULDBLOCK, REMAP_ERRCLASS_TRANSIENT, EIO },
  { -EINTR, REMAP_ERRCLASS_TRANSIENT, EIO },
  { -ENOMEM, REMAP_ERRCLASS_TRANSIENT, EIO },    /* BLK_STS_RESOURCE */
  { -EBUSY, REMAP_ERRCLASS_TRANSIENT, EIO },     /* BLK_STS_DEV_RESOURCE */
  { -ETIME, REMAP_ERRCLASS_TRANSIENT, EIO },
  /* permission: EPERM to the client (nbdkit's NBD_EPERM) */
  { -EPERM, REMAP_ERRCLASS_PERMISSION, EPERM },
  { -EACCES, REMAP_ERRCLASS_PERMISSION, EPERM },
  { -EROFS, REMAP_ERRCLASS_PERMISSION, EPERM },
  { -EBADE, REMAP_ERRCLASS_PERMISSION, EPERM },  /* reservation conflict */
  /* other: no verdict, EIO to the client (never EINVAL) */
  { -EINVAL, REMAP_ERRCLASS_OTHER, EIO },
  { -EOPNOTSUPP, REMAP_ERRCLASS_OTHER, EIO },
  { -EOVERFLOW, REMAP_ERRCLASS_OTHER, EIO },
  { -EUCLEAN, REMAP_ERRCLASS_OTHER, EIO },
  { -EMEDIUMTYPE, REMAP_ERRCLASS_OTHER, EIO },   /* unnamed: OTHER */
  { -ENOTTY, REMAP_ERRCLASS_OTHER, EIO },
  { -4095, REMAP_ERRCLASS_OTHER, EIO },          /* no such errno */
};

START_TEST (test_classes)
{
  for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
    const struct vec *v = &vecs[i];
    ck_assert_msg (remap_error_class (v->err) == v->cls,
                   "errno %d (%s): class %d, want %d", -v->err,
                   strerror (-v->err), (int) remap_error_class (v->err),
                   (int) v->cls);
    /* The sign does not matter. */
    ck_assert_int_eq (remap_error_class (-v->err), v->cls);
    ck_assert_msg (remap_error_to_client (v->err) == v->client,
                   "errno %d (%s): client gets %d, want %d", -v->err,
                   strerror (-v->err), remap_error_to_client (v->err),
                   v->client);
  }
  ck_assert_int_eq (remap_error_class (0), REMAP_ERRCLASS_NONE);
  ck_assert_int_eq (remap_error_to_client (0), 0);
}
END_TEST

/* Every errno a name maps to is one the classes list, and back. */
START_TEST (test_names)
{
  for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
    const char *n = remap_errno_name (vecs[i].err);
    if (n == NULL)
      continue;
    ck_assert_msg (n[0] == 'E', "name %s", n);
    int back = remap_errno_from_name (n, strlen (n));
    /* EWOULDBLOCK is EAGAIN on Linux: one name for both. */
    ck_assert_msg (back == vecs[i].err, "%s -> %d, want %d", n, back,
                   vecs[i].err);
  }
  ck_assert_str_eq (remap_errno_name (-EIO), "EIO");
  ck_assert_str_eq (remap_errno_name (ENOSPC), "ENOSPC");
  ck_assert_str_eq (remap_errno_name (-ENOTCONN), "ENOTCONN");
  ck_assert_ptr_null (remap_errno_name (-EMEDIUMTYPE));
  ck_assert_ptr_null (remap_errno_name (0));
  ck_assert_int_eq (remap_errno_from_name ("EAGAIN", 6), -EAGAIN);
  ck_assert_int_eq (remap_errno_from_name ("EIO,times=1", 3), -EIO);
  /* Exact names only: no prefixes, no case folding. */
  ck_assert_int_eq (remap_errno_from_name ("EI", 2), 0);
  ck_assert_int_eq (remap_errno_from_name ("eio", 3), 0);
  ck_assert_int_eq (remap_errno_from_name ("EIOX", 4), 0);
  ck_assert_int_eq (remap_errno_from_name ("", 0), 0);
}
END_TEST

START_TEST (test_class_names)
{
  for (int c = REMAP_ERRCLASS_NONE; c <= REMAP_ERRCLASS_OTHER; c++) {
    const char *n = remap_errclass_name ((enum remap_errclass) c);
    ck_assert_msg (n && *n && strcmp (n, "unknown error class") != 0,
                   "class %d has no name", c);
  }
  ck_assert_str_eq (remap_errclass_name (REMAP_ERRCLASS_NOSPACE),
                    "out of space");
}
END_TEST

static Suite *
errclass_suite (void)
{
  Suite *s = suite_create ("errclass");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_classes);
  tcase_add_test (tc, test_names);
  tcase_add_test (tc, test_class_names);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (errclass_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
