/* Unit tests: the admin library's parts that need no engine: the command
 * table and its grammar (admin/commands.c), output sinks (admin/out.c)
 * and reading JSON with json-c (remap_json_*).  Table-driven, grouped by
 * kind: valid, bogus, boundary.
 */

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin.h"

/* ---- the command table --------------------------------------------------- */

START_TEST (test_table_is_consistent)
{
  size_t n = 0;

  for (const struct remap_command *c = remap_commands; c->name; c++, n++) {
    ck_assert_ptr_nonnull (c->fn);
    ck_assert_ptr_nonnull (c->summary);
    ck_assert_int_le (c->min_pos, c->max_pos);
    ck_assert_int_le (c->max_pos, REMAP_MAX_POS);
    ck_assert_ptr_eq (remap_command_find (c->name), c);
    for (const struct remap_command *d = c + 1; d->name; d++)
      ck_assert_str_ne (c->name, d->name);
  }
  ck_assert_uint_ge (n, 10);
  ck_assert_ptr_null (remap_command_find ("frobnicate"));
}
END_TEST

START_TEST (test_usage_from_table)
{
  char u[256];

  remap_command_usage (remap_command_find ("unmap"), u, sizeof u);
  ck_assert_str_eq (u, "unmap LBA [COUNT] [--json] [-u] [--discard-data]");
  remap_command_usage (remap_command_find ("export"), u, sizeof u);
  ck_assert_str_eq (u, "export [--format FORMAT] [--block-size N]");
  remap_command_usage (remap_command_find ("status"), u, sizeof u);
  ck_assert_str_eq (u, "status [--json]");
  /* Truncated, never overflowed. */
  char tiny[8];
  remap_command_usage (remap_command_find ("unmap"), tiny, sizeof tiny);
  ck_assert_str_eq (tiny, "unmap L");
}
END_TEST

static int
parse (const char *line, struct remap_args *a, struct remap_error *err)
{
  static char buf[256];
  char *argv[REMAP_CONTROL_MAX_ARGS];
  snprintf (buf, sizeof buf, "%s", line);
  int argc = remap_control_split (buf, argv, REMAP_CONTROL_MAX_ARGS);
  ck_assert_int_gt (argc, 0);
  remap_error_clear (err);
  return remap_command_parse (remap_command_find (argv[0]), argc, argv, a,
                              err);
}

START_TEST (test_parse_valid)
{
  struct remap_args a;
  struct remap_error err;

  ck_assert_int_eq (parse ("unmap 10 4 --discard-data -u --json", &a, &err),
                    0);
  ck_assert (a.discard && a.units && a.json);
  ck_assert_int_eq (a.npos, 2);
  ck_assert_str_eq (a.pos[0], "10");
  ck_assert_str_eq (a.pos[1], "4");
  ck_assert_int_eq (parse ("export -f badblocks -b 0x1000", &a, &err), 0);
  ck_assert_str_eq (a.format, "badblocks");
  ck_assert_uint_eq (a.block_size, 4096);
  ck_assert_int_eq (parse ("export -b 4k", &a, &err), 0);
  ck_assert_uint_eq (a.block_size, 4096);
  ck_assert_int_eq (parse ("import --pending 0x1000+0x1000 --json", &a, &err),
                    0);
  ck_assert (a.pending && a.json);
  ck_assert_int_eq (a.npos, 1);
  ck_assert_str_eq (a.pos[0], "0x1000+0x1000");
  ck_assert_int_eq (parse ("export --format ddrescue", &a, &err), 0);
  ck_assert_uint_eq (a.block_size, 0);
  ck_assert_int_eq (parse ("spare-retest", &a, &err), 0);
  ck_assert_int_eq (a.npos, 0);
}
END_TEST

START_TEST (test_parse_bogus)
{
  static const struct { const char *line, *msg; } v[] = {
    { "remap", "missing argument; usage: remap LBA [COUNT]" },
    { "remap 1 2 3", "too many arguments" },
    { "remap 1 --discard-data", "does not apply" },
    { "status --frob", "unknown option --frob" },
    { "export --format", "--format needs a value (FORMAT)" },
    { "export --block-size 0", "positive" },
    { "export --block-size 18446744073709551616", "larger than 2^64 - 1" },
    { "export --block-size -1", "not a number" },
    { "export --block-size 4q", "not a number" },
    { "import", "missing argument; usage: import OFF+LEN[,...]" },
    { "import 0+4096 8192+4096", "too many arguments" },
    { "import 0+4096 -u", "does not apply" },
    { "lookup", "missing argument" },
    { "help now", "too many arguments" },
  };
  struct remap_args a;
  struct remap_error err;

  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    ck_assert_int_eq (parse (v[i].line, &a, &err), -EINVAL);
    ck_assert_msg (strstr (err.msg, v[i].msg), "%s: %s", v[i].line, err.msg);
    ck_assert_msg (strstr (err.msg, ": : ") == NULL, "%s", err.msg);
  }
}
END_TEST

START_TEST (test_split_bounds)
{
  char *argv[4];
  char a[] = "a b c d\n";
  ck_assert_int_eq (remap_control_split (a, argv, 4), 4);
  char b[] = "x\x7fy\n";
  ck_assert_int_eq (remap_control_split (b, argv, 4), -EINVAL);
  char c[] = "   \r\n";
  ck_assert_int_eq (remap_control_split (c, argv, 4), 0);
}
END_TEST

/* ---- sinks ------------------------------------------------------------- */

struct sink {
  size_t calls, bytes, max_chunk;
  int fail_at;                  /* fail the n-th flush (1-based), 0 never */
  int cancel;
};

static int
sink_flush (void *opaque, const char *p, size_t n)
{
  struct sink *s = opaque;
  (void) p;
  s->calls++;
  if (s->fail_at && (int) s->calls == s->fail_at)
    return -EPIPE;
  s->bytes += n;
  if (n > s->max_chunk)
    s->max_chunk = n;
  return 0;
}

static int
sink_cancelled (void *opaque)
{
  return ((struct sink *) opaque)->cancel;
}

START_TEST (test_stream_chunks)
{
  struct sink s = { 0 };
  struct remap_out o;
  char line[100];

  memset (line, 'x', sizeof line);
  remap_out_stream (&o, sink_flush, sink_cancelled, &s);
  for (int i = 0; i < 10000; i++)
    ck_assert_int_eq (remap_out_write (&o, line, sizeof line), 0);
  /* Bounded: no more than a chunk is ever held. */
  ck_assert_uint_le (o.b.cap, 2 * REMAP_OUT_CHUNK + 1);
  ck_assert_int_eq (remap_out_finish (&o), 0);
  ck_assert_uint_eq (s.bytes, 10000 * sizeof line);
  ck_assert_uint_eq (s.max_chunk, REMAP_OUT_CHUNK);
  ck_assert_uint_eq (s.calls, (10000 * sizeof line + REMAP_OUT_CHUNK - 1)
                     / REMAP_OUT_CHUNK);
}
END_TEST

START_TEST (test_stream_error_sticks)
{
  struct sink s = { .fail_at = 2 };
  struct remap_out o;
  char big[REMAP_OUT_CHUNK];

  memset (big, 'y', sizeof big);
  remap_out_stream (&o, sink_flush, sink_cancelled, &s);
  ck_assert_int_eq (remap_out_write (&o, big, sizeof big), 0);
  ck_assert_int_eq (remap_out_write (&o, big, sizeof big), -EPIPE);
  ck_assert_int_eq (remap_out_printf (&o, "%d", 5), -EPIPE);
  ck_assert_int_eq (remap_out_check (&o), -EPIPE);
  ck_assert_int_eq (remap_out_finish (&o), -EPIPE);
  ck_assert_uint_eq (s.calls, 2);       /* nothing after the failure */

  /* A cancel stops the command (check keeps saying so, also once the
   * cause is gone), but what it wrote before and after still goes out:
   * the account of the steps done reaches a client that is still there. */
  struct sink c = { 0 };
  remap_out_stream (&o, sink_flush, sink_cancelled, &c);
  ck_assert_int_eq (remap_out_write (&o, "unit 1: done\n", 13), 0);
  ck_assert_int_eq (remap_out_check (&o), 0);
  c.cancel = -ECANCELED;
  ck_assert_int_eq (remap_out_check (&o), -ECANCELED);
  c.cancel = 0;
  ck_assert_int_eq (remap_out_check (&o), -ECANCELED);
  ck_assert_int_eq (remap_out_write (&o, "z", 1), 0);
  ck_assert_int_eq (remap_out_finish (&o), 0);
  ck_assert_uint_eq (c.bytes, 14);
}
END_TEST

START_TEST (test_memory_sink_and_long_printf)
{
  struct remap_buf b = { 0 };
  struct remap_out o;
  char big[2000];

  memset (big, 'q', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  remap_out_memory (&o, &b);
  ck_assert_int_eq (remap_out_printf (&o, "<%s>", big), 0);
  ck_assert_int_eq (remap_out_finish (&o), 0);
  ck_assert_uint_eq (b.len, sizeof big + 1);
  ck_assert_int_eq (b.data[0], '<');
  ck_assert_int_eq (b.data[b.len - 1], '>');
  remap_buf_free (&b);
}
END_TEST

/* ---- reading JSON ------------------------------------------------------ */

START_TEST (test_json_read)
{
  const char *t = "{\"a\":{\"b\":18446744073709551615,\"neg\":-1,"
    "\"f\":1.5,\"s\":\"x\"},\"arr\":[1,2]}\n";
  struct json_object *o = remap_json_parse (t, strlen (t));
  uint64_t v;

  ck_assert_ptr_nonnull (o);
  ck_assert (remap_json_u64 (o, "a.b", &v));
  ck_assert_uint_eq (v, UINT64_MAX);
  ck_assert (!remap_json_u64 (o, "a.neg", &v));
  ck_assert (!remap_json_u64 (o, "a.f", &v));
  ck_assert (!remap_json_u64 (o, "a.s", &v));
  ck_assert (!remap_json_u64 (o, "a.missing", &v));
  ck_assert (!remap_json_u64 (o, "arr.x", &v));
  ck_assert_str_eq (remap_json_str (o, "a.s"), "x");
  ck_assert_ptr_null (remap_json_str (o, "a.b"));
  ck_assert_ptr_nonnull (remap_json_array (o, "arr"));
  ck_assert_ptr_null (remap_json_array (o, "a"));
  json_object_put (o);

  /* Not one JSON value: refused. */
  static const char *const bad[] = { "", "{", "{\"a\":1} x", "{\"a\":1}{}",
                                     "nul", "{\"a\":1,}" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    o = remap_json_parse (bad[i], strlen (bad[i]));
    ck_assert_msg (o == NULL, "accepted \"%s\"", bad[i]);
  }
  ck_assert_ptr_null (remap_json_parse (NULL, 0));
}
END_TEST

static Suite *
admin_suite (void)
{
  Suite *s = suite_create ("admin");
  TCase *tc = tcase_create ("table");
  tcase_add_test (tc, test_table_is_consistent);
  tcase_add_test (tc, test_usage_from_table);
  tcase_add_test (tc, test_parse_valid);
  tcase_add_test (tc, test_parse_bogus);
  tcase_add_test (tc, test_split_bounds);
  suite_add_tcase (s, tc);
  tc = tcase_create ("out");
  tcase_add_test (tc, test_stream_chunks);
  tcase_add_test (tc, test_stream_error_sticks);
  tcase_add_test (tc, test_memory_sink_and_long_printf);
  tcase_add_test (tc, test_json_read);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (admin_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
