/* Tests of the text form of fault rules (core/faultspec.c) and of rules
 * set at run time on a fault backend (what the plugin's fail= and its
 * watched rule file do). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"
#include "testlib.h"

START_TEST (test_valid)
{
  struct remap_fault_rule r;
  struct remap_error err = { 0 };

  ck_assert_int_eq (remap_fault_parse_rule ("read:4096", &r, &err), 0);
  ck_assert_uint_eq (r.ops, REMAP_FAULT_READ);
  ck_assert_uint_eq (r.off, 4096);
  ck_assert_uint_eq (r.len, 512);
  ck_assert_int_eq (r.err, -EIO);
  ck_assert_uint_eq (r.after, 0);
  ck_assert_uint_eq (r.times, 0);

  ck_assert_int_eq (remap_fault_parse_rule ("rw:8s+2k,after=3,times=2,"
                                            "error=ENOSPC", &r, &err), 0);
  ck_assert_uint_eq (r.ops, REMAP_FAULT_READ | REMAP_FAULT_WRITE);
  ck_assert_uint_eq (r.off, 4096);
  ck_assert_uint_eq (r.len, 2048);
  ck_assert_uint_eq (r.after, 3);
  ck_assert_uint_eq (r.times, 2);
  ck_assert_int_eq (r.err, -ENOSPC);

  ck_assert_int_eq (remap_fault_parse_rule ("write:1m+1g", &r, &err), 0);
  ck_assert_uint_eq (r.off, 1u << 20);
  ck_assert_uint_eq (r.len, 1u << 30);
  ck_assert_int_eq (remap_fault_parse_rule ("flush:0", &r, &err), 0);
  ck_assert_uint_eq (r.ops, REMAP_FAULT_FLUSH);
  ck_assert_int_eq (remap_fault_parse_rule ("extents:4k+1m,error=ENOTCONN",
                                            &r, &err), 0);
  ck_assert_uint_eq (r.ops, REMAP_FAULT_EXTENTS);
  ck_assert_uint_eq (r.off, 4096);
  ck_assert_uint_eq (r.len, 1u << 20);
  ck_assert_int_eq (r.err, -ENOTCONN);

  /* One errno name per error class, and more (core/errclass.c). */
  static const struct { const char *spec; int err; } names[] = {
    { "read:0,error=ENODATA", -ENODATA }, { "read:0,error=EDQUOT", -EDQUOT },
    { "read:0,error=ENOTCONN", -ENOTCONN }, { "read:0,error=EAGAIN", -EAGAIN },
    { "read:0,error=EROFS", -EROFS }, { "read:0,error=EINVAL", -EINVAL },
    { "write:0,error=ETIMEDOUT,times=1", -ETIMEDOUT },
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    ck_assert_msg (remap_fault_parse_rule (names[i].spec, &r, &err) == 0,
                   "%s: %s", names[i].spec, err.msg);
    ck_assert_int_eq (r.err, names[i].err);
  }
  ck_assert_uint_eq (r.times, 1);
}
END_TEST

START_TEST (test_invalid)
{
  static const char *bad[] = {
    "", "read", "reed:0", "read:", "read:x", "read:0+0", "read:0+",
    "read:0,after", "read:0,after=x", "read:0,color=1", "read:0,error=EFOO",
    "read:0,error=eio", "read:0,error=", "read:0,error=5",
    "read:0 junk", "read:-1", "read:18446744073709551615t",
    "read:18446744073709551615+2",
    /* 2^64 is not 2^64 - 1: strtoull's ERANGE is an error, in every field
     * (an offset of 2^64 would also fail as "range overflows"; a length,
     * after= or times= would not). */
    "read:0+18446744073709551616", "read:0,after=18446744073709551616",
    "read:0,times=18446744073709551616",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct remap_fault_rule r;
    struct remap_error err = { 0 };
    ck_assert_msg (remap_fault_parse_rule (bad[i], &r, &err) == -EINVAL,
                   "accepted '%s'", bad[i]);
    ck_assert_msg (strstr (err.msg, "expected") != NULL, "%s", err.msg);
  }
}
END_TEST

START_TEST (test_file)
{
  struct remap_fault_rule rules[REMAP_FAULT_MAX_RULES];
  struct remap_error err = { 0 };
  size_t n;

  const char *t = "# rehearsal\n\nread:0\n  write:4096+4096 # unit 1\n";
  ck_assert_int_eq (remap_fault_parse_rules (t, strlen (t), NULL, rules, &n,
                                             &err), 0);
  ck_assert_uint_eq (n, 2);
  ck_assert_uint_eq (rules[1].ops, REMAP_FAULT_WRITE);
  ck_assert_uint_eq (rules[1].off, 4096);

  t = "read:0\n\nbogus\n";
  ck_assert_int_eq (remap_fault_parse_rules (t, strlen (t), NULL, rules, &n,
                                             &err), -EINVAL);
  ck_assert_msg (strstr (err.msg, "line 3") != NULL, "%s", err.msg);
}
END_TEST

START_TEST (test_set_rules_live)
{
  struct remap_backend *mem, *f;
  char buf[512];
  struct remap_fault_rule rules[2];
  struct remap_error err = { 0 };

  ck_assert_int_eq (remap_mem_create (1 << 20, &mem), 0);
  ck_assert_int_eq (remap_fault_create (mem, true, &f), 0);
  ck_assert_int_eq (remap_backend_pread (f, buf, 512, 4096), 0);
  ck_assert_int_eq (remap_fault_parse_rule ("read:4096,after=1", &rules[0],
                                            &err), 0);
  ck_assert_int_eq (remap_fault_parse_rule ("write:0+4k,times=1", &rules[1],
                                            &err), 0);
  ck_assert_int_eq (remap_fault_set_rules (f, rules, 2), 0);
  ck_assert_int_eq (remap_backend_pread (f, buf, 512, 4096), 0);   /* after */
  ck_assert_int_eq (remap_backend_pread (f, buf, 512, 4096), -EIO);
  ck_assert_int_eq (remap_backend_pread (f, buf, 512, 8192), 0);
  ck_assert_int_eq (remap_backend_pwrite (f, buf, 512, 1024), -EIO);
  ck_assert_int_eq (remap_backend_pwrite (f, buf, 512, 1024), 0);  /* healed */
  /* Replacing the rules heals everything at once. */
  ck_assert_int_eq (remap_fault_set_rules (f, NULL, 0), 0);
  ck_assert_int_eq (remap_backend_pread (f, buf, 512, 4096), 0);
  rules[0].err = 0;
  ck_assert_int_eq (remap_fault_set_rules (f, rules, 1), -EINVAL);
  remap_backend_close (f);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("faultspec");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_valid);
  tcase_add_test (tc, test_invalid);
  tcase_add_test (tc, test_file);
  tcase_add_test (tc, test_set_rules_live);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
