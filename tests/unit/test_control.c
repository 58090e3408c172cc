/* Unit tests: the command executor (admin/, the command table and its handlers) shared by remapctl and
 * the control socket, and the bad-list parsers (core/badlist.c).
 *
 * Every output is checked against the engine's own state: status counters
 * against remap_get_counters, list entries against remap_foreach and
 * remap_lookup, unmap against the origin's bytes.  JSON output is checked
 * by a small strict JSON parser, so a missing comma or quote fails.
 *
 * Self-contained (own helpers over the public API) so that it does not
 * depend on other tests' helper headers.
 */

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/badlist.h"
#include "admin.h"
#include "remap/remap.h"

#define U 4096u
#define ORIGIN_SIZE (4u << 20)          /* 1024 units, 8192 sectors */
#define SPARE_SIZE (1u << 20)

/* ---- a strict little JSON checker ------------------------------------ */

static const char *jv (const char *p);

static const char *
ws (const char *p)
{
  while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
    p++;
  return p;
}

static const char *
jstr (const char *p)
{
  if (*p != '"')
    return NULL;
  for (p++; *p && *p != '"'; p++) {
    if ((unsigned char) *p < 0x20)
      return NULL;
    if (*p == '\\') {
      p++;
      if (*p == 'u') {
        for (int i = 1; i <= 4; i++)
          if (!strchr ("0123456789abcdefABCDEF", p[i]) || !p[i])
            return NULL;
        p += 4;
      }
      else if (!*p || !strchr ("\"\\/bfnrt", *p))
        return NULL;
    }
  }
  return *p == '"' ? p + 1 : NULL;
}

static const char *
jv (const char *p)
{
  p = ws (p);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    bool obj = *p == '{';
    p = ws (p + 1);
    if (*p == close)
      return p + 1;
    for (;;) {
      if (obj) {
        if (!(p = jstr (ws (p))))
          return NULL;
        p = ws (p);
        if (*p++ != ':')
          return NULL;
      }
      if (!(p = jv (p)))
        return NULL;
      p = ws (p);
      if (*p == close)
        return p + 1;
      if (*p++ != ',')
        return NULL;
    }
  }
  if (*p == '"')
    return jstr (p);
  if (strncmp (p, "true", 4) == 0 || strncmp (p, "null", 4) == 0)
    return p + 4;
  if (strncmp (p, "false", 5) == 0)
    return p + 5;
  if (*p == '-')
    p++;
  if (*p < '0' || *p > '9')
    return NULL;
  while (*p >= '0' && *p <= '9')
    p++;
  return p;
}

static void
assert_json (const char *s)
{
  ck_assert_msg (s != NULL && *s == '{', "not a JSON object: %s", s);
  const char *end = jv (s);
  ck_assert_msg (end != NULL, "invalid JSON: %s", s);
  ck_assert_msg (strcmp (ws (end), "") == 0, "trailing bytes after JSON: %s",
                 end);
  ck_assert_msg (strchr (s, '\n') == s + strlen (s) - 1,
                 "JSON must be one line ending in a newline: %s", s);
}

/* The number after "key": (first occurrence after `from'). */
static uint64_t
jnum (const char *s, const char *key)
{
  char pat[80];
  snprintf (pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr (s, pat);
  ck_assert_msg (p != NULL, "key %s missing in %s", key, s);
  return strtoull (p + strlen (pat), NULL, 10);
}

/* ---- fixture --------------------------------------------------------- */

static struct remap_backend *origin_mem, *spare_mem;
static struct remap_engine *e;
static struct remap_buf out;

static uint8_t
pat (uint64_t off)
{
  return (uint8_t) (off * 7 + (off >> 12) * 13 + 1);
}

static void
setup (void)
{
  struct remap_format_opts fo;
  struct remap_backend *o, *s;
  struct remap_error err = { 0 };
  struct remap_open_opts oo = { .no_lock = true };

  ck_assert_int_eq (remap_mem_create (ORIGIN_SIZE, &origin_mem), 0);
  ck_assert_int_eq (remap_mem_create (SPARE_SIZE, &spare_mem), 0);
  uint8_t *d = remap_mem_data (origin_mem);
  for (uint64_t i = 0; i < ORIGIN_SIZE; i++)
    d[i] = pat (i);
  memset (&fo, 0, sizeof fo);
  fo.unit = U;
  for (int i = 0; i < 16; i++)
    fo.uuid[i] = (uint8_t) (i * 17 + 3);
  fo.format_time = 1700000000;
  fo.origin_label = "origin \"quoted\"";
  ck_assert_msg (remap_format (origin_mem, spare_mem, &fo, &err) == 0,
                 "format: %s", err.msg);
  ck_assert_int_eq (remap_mem_share (origin_mem, &o), 0);
  ck_assert_int_eq (remap_mem_share (spare_mem, &s), 0);
  ck_assert_msg (remap_open (o, s, &oo, &e, &err) == 0, "open: %s", err.msg);
  memset (&out, 0, sizeof out);
}

static void
teardown (void)
{
  remap_close (e);
  e = NULL;
  remap_backend_close (origin_mem);
  remap_backend_close (spare_mem);
  remap_buf_free (&out);
}

/* Run a command line (split like the control socket does); returns the
 * result, output in `out' (reset first), message in *errp. */
static int
run_err (const char *line, struct remap_error *errp)
{
  char buf[512], *argv[REMAP_CONTROL_MAX_ARGS];
  int argc;

  snprintf (buf, sizeof buf, "%s\n", line);
  argc = remap_control_split (buf, argv, REMAP_CONTROL_MAX_ARGS);
  ck_assert_int_gt (argc, 0);
  remap_buf_reset (&out);
  remap_error_clear (errp);
  return remap_control_exec (e, argc, argv, &out, errp);
}

static const char *
run_ok (const char *line)
{
  struct remap_error err = { 0 };
  int r = run_err (line, &err);
  ck_assert_msg (r == 0, "\"%s\" failed: %d %s", line, r, err.msg);
  ck_assert (!out.failed);
  ck_assert (out.data != NULL);
  return out.data;
}

struct maps {
  struct remap_mapping v[256];
  size_t n;
};

static int
collect (void *opaque, const struct remap_mapping *m)
{
  struct maps *x = opaque;
  ck_assert (x->n < 256);
  x->v[x->n++] = *m;
  return 0;
}

/* ---- tests ----------------------------------------------------------- */

START_TEST (test_status_matches_counters)
{
  struct remap_counters c;
  const char *s;

  run_ok ("remap 40 16");               /* units 5, 6 */
  run_ok ("remap -u 100 3");            /* units 100..102 */
  run_ok ("pending -u 200");
  remap_get_counters (e, &c);
  ck_assert_uint_eq (c.reallocated_units, 5);
  ck_assert_uint_eq (c.pending_units, 1);

  s = run_ok ("status --json");
  assert_json (s);
  ck_assert_uint_eq (jnum (s, "reallocated_units"), c.reallocated_units);
  ck_assert_uint_eq (jnum (s, "reallocation_events"), c.reallocation_events);
  ck_assert_uint_eq (jnum (s, "pending_units"), c.pending_units);
  ck_assert_uint_eq (jnum (s, "spare_free_units"), c.spare_free_units);
  ck_assert_uint_eq (jnum (s, "spare_total_units"), c.spare_total_units);
  ck_assert_uint_eq (jnum (s, "copies_valid"), c.copies_valid);
  ck_assert_uint_eq (jnum (s, "copies_total"), c.copies_total);
  ck_assert_uint_eq (jnum (s, "generation"), c.generation);
  ck_assert_uint_eq (jnum (strstr (s, "\"geometry\""), "unit"), U);
  ck_assert_uint_eq (jnum (strstr (s, "\"origin\""), "size"), ORIGIN_SIZE);
  ck_assert_uint_eq (jnum (strstr (s, "\"origin\""), "sectors"),
                     ORIGIN_SIZE / 512);
  static const char *const keys[] = {
    "\"version\":", "\"state\":\"healthy\"", "\"conditions\":[\"pending-units\"]",
    "\"uuid\":\"", "\"strategy\":", "\"copies\":", "\"copy_offsets\":[",
    "\"usable_units\":", "\"uncorrectable_units\":0", "\"read_errors\":0",
    "\"write_errors\":0", "\"retries\":0", "\"spare_bad_units\":0",
    "\"label\":\"origin \\\"quoted\\\"\"",
  };
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
    ck_assert_msg (strstr (s, keys[i]), "%s missing in %s", keys[i], s);

  /* Human output from the same data. */
  s = run_ok ("status");
  char line[128];
  snprintf (line, sizeof line, "reallocated units      %12" PRIu64,
            c.reallocated_units);
  ck_assert_msg (strstr (s, line), "\"%s\" missing in\n%s", line, s);
  snprintf (line, sizeof line, "pending units          %12" PRIu64,
            c.pending_units);
  ck_assert_msg (strstr (s, line), "\"%s\" missing in\n%s", line, s);
  ck_assert (strstr (s, "state:       healthy\n"));
}
END_TEST

START_TEST (test_list_matches_table)
{
  struct maps x = { .n = 0 };
  const char *s;
  char ent[256];

  run_ok ("remap 7 2");                 /* sectors 7..8: units 0 and 1 */
  run_ok ("remap 8191");                /* last sector: unit 1023 */
  run_ok ("pending -u 300 2");
  ck_assert_int_eq (remap_foreach (e, collect, &x), 0);
  ck_assert_uint_eq (x.n, 5);

  s = run_ok ("list --json");
  assert_json (s);
  ck_assert_uint_eq (jnum (s, "count"), x.n);
  for (size_t i = 0; i < x.n; i++) {
    struct remap_mapping m;
    ck_assert_int_eq (remap_lookup (e, x.v[i].origin_unit, &m), 0);
    ck_assert_uint_eq (m.spare_unit, x.v[i].spare_unit);
    snprintf (ent, sizeof ent, "{\"origin_unit\":%" PRIu64 ",\"lba\":%" PRIu64
              ",\"sectors\":8,\"spare_unit\":%" PRIu64 ",\"state\":\"%s\"",
              m.origin_unit, m.origin_unit * 8, m.spare_unit,
              remap_slot_state_name (m.state));
    ck_assert_msg (strstr (s, ent), "%s missing in %s", ent, s);
  }
  /* Sorted by origin unit. */
  ck_assert (strstr (s, "\"origin_unit\":0,")
             < strstr (s, "\"origin_unit\":1,"));
  ck_assert (strstr (s, "\"origin_unit\":301,")
             < strstr (s, "\"origin_unit\":1023,"));

  s = run_ok ("list");
  for (size_t i = 0; i < x.n; i++) {
    snprintf (ent, sizeof ent, "%12" PRIu64 "  ", x.v[i].origin_unit);
    ck_assert_msg (strstr (s, ent), "unit %" PRIu64 " missing in\n%s",
                   x.v[i].origin_unit, s);
  }
  ck_assert (strstr (s, "5 entries"));

  /* lookup agrees. */
  s = run_ok ("lookup 8 --json");
  assert_json (s);
  ck_assert_uint_eq (jnum (s, "origin_unit"), 1);
  ck_assert (strstr (s, "\"state\":\"mapped\""));
  s = run_ok ("lookup -u 2 --json");
  assert_json (s);
  ck_assert (strstr (s, "\"state\":\"free\",") && strstr (s,
                                                         "\"spare_unit\":null"));
}
END_TEST

START_TEST (test_remap_json_and_durable)
{
  const char *s = run_ok ("remap 40 9 --json");  /* sectors 40..48: 5, 6 */
  struct remap_mapping m;

  assert_json (s);
  ck_assert_uint_eq (jnum (s, "first_unit"), 5);
  ck_assert_uint_eq (jnum (s, "units"), 2);
  ck_assert_uint_eq (jnum (s, "changed"), 2);
  ck_assert (strstr (s, "\"result\":\"remapped\""));
  ck_assert_int_eq (remap_lookup (e, 6, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  /* The data was copied: the spare holds the origin's bytes. */
  const uint8_t *sp = remap_mem_data (spare_mem) + m.spare_unit * U;
  for (uint64_t i = 0; i < U; i++)
    ck_assert_uint_eq (sp[i], pat (6 * U + i));

  s = run_ok ("remap -u 5 --json");
  assert_json (s);
  ck_assert (strstr (s, "\"result\":\"already-remapped\""));
  ck_assert_uint_eq (jnum (s, "changed"), 0);
}
END_TEST

START_TEST (test_unmap_copies_back)
{
  struct remap_error err = { 0 };
  uint8_t buf[U];
  struct remap_mapping m;
  const char *s;

  run_ok ("remap -u 10 2");
  memset (buf, 0xa5, sizeof buf);
  ck_assert_int_eq (remap_pwrite (e, buf, U, 10 * U, REMAP_FUA, &err), 0);
  /* The write went to the spare, the origin still holds the old bytes. */
  ck_assert_uint_eq (remap_mem_data (origin_mem)[10 * U], pat (10 * U));

  s = run_ok ("unmap -u 10 --json");
  assert_json (s);
  ck_assert (strstr (s, "\"result\":\"copied-back\""));
  ck_assert_int_eq (remap_lookup (e, 10, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_FREE);
  const uint8_t *o = remap_mem_data (origin_mem);
  for (uint64_t i = 0; i < U; i++)
    ck_assert_uint_eq (o[10 * U + i], 0xa5);

  /* A free unit: nothing to do. */
  s = run_ok ("unmap -u 10");
  ck_assert (strstr (s, "unit 10: not-remapped"));

  /* Lost data: refused without --discard-data, with a hint. */
  ck_assert_int_eq (remap_mark_lost (e, 11, 1, &err), 0);
  ck_assert_int_eq (run_err ("unmap -u 11", &err), -EBUSY);
  ck_assert_msg (strstr (err.msg, "--discard-data"), "%s", err.msg);
  ck_assert_int_eq (remap_lookup (e, 11, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  s = run_ok ("unmap -u 11 --discard-data");
  ck_assert (strstr (s, "discarded"));
  ck_assert_int_eq (remap_lookup (e, 11, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_FREE);

  /* Counters follow. */
  s = run_ok ("status --json");
  ck_assert_uint_eq (jnum (s, "reallocated_units"), 0);
}
END_TEST

START_TEST (test_usage_errors)
{
  struct remap_error err;

  ck_assert_int_eq (run_err ("frobnicate", &err), -EINVAL);
  ck_assert (strstr (err.msg, "unknown command"));
  ck_assert_int_eq (run_err ("remap", &err), -EINVAL);
  ck_assert_int_eq (run_err ("remap 12abc", &err), -EINVAL);
  ck_assert_int_eq (run_err ("remap 8192", &err), -EINVAL);
  ck_assert (strstr (err.msg, "past the end"));
  ck_assert_int_eq (run_err ("remap 8190 3", &err), -EINVAL);
  ck_assert_int_eq (run_err ("remap -u 1024", &err), -EINVAL);
  ck_assert_int_eq (run_err ("remap 1 0", &err), -EINVAL);
  ck_assert_int_eq (run_err ("remap 1 --discard-data", &err), -EINVAL);
  ck_assert_int_eq (run_err ("status --bogus", &err), -EINVAL);
  ck_assert_int_eq (run_err ("status extra", &err), -EINVAL);
  ck_assert_int_eq (run_err ("export --format badblocks", &err), -EINVAL);
  ck_assert_int_eq (run_err ("export --format nope", &err), -EINVAL);
  /* Nothing changed. */
  struct remap_counters c;
  remap_get_counters (e, &c);
  ck_assert_uint_eq (c.reallocated_units, 0);
  /* Hex works. */
  run_ok ("remap 0x28");
  ck_assert_uint_eq (jnum (run_ok ("status --json"), "reallocated_units"), 1);
}
END_TEST

START_TEST (test_export_roundtrip)
{
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };
  const char *s;

  run_ok ("remap -u 3 2");
  run_ok ("pending -u 9");
  run_ok ("remap -u 1023");

  s = run_ok ("export --format badblocks --block-size 4096");
  ck_assert_str_eq (s, "3\n4\n9\n1023\n");
  s = run_ok ("export --format badblocks --block-size 1024");
  ck_assert_int_eq (remap_parse_badblocks (s, strlen (s), NULL, 1024, &x, &err), 0);
  ck_assert_uint_eq (x.n, 3);
  ck_assert_uint_eq (x.v[0].off, 3 * U);
  ck_assert_uint_eq (x.v[0].len, 2 * U);
  remap_extents_free (&x);

  s = run_ok ("export --format ddrescue");
  ck_assert_int_eq (remap_parse_ddrescue (s, strlen (s), NULL, false, &x, &err), 0);
  ck_assert_uint_eq (x.n, 3);
  ck_assert_uint_eq (x.v[0].off, 3 * U);
  ck_assert_uint_eq (x.v[0].len, 2 * U);
  ck_assert_uint_eq (x.v[1].off, 9 * U);
  ck_assert_uint_eq (x.v[2].off, 1023 * U);
  ck_assert_uint_eq (x.v[2].len, U);
  /* The mapfile covers the whole origin. */
  ck_assert (strstr (s, "0x00000000  0x00003000  +\n"));
  ck_assert (strstr (s, "0x00003000  0x00002000  -\n"));
  remap_extents_free (&x);
}
END_TEST

START_TEST (test_parsers)
{
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };
  const char *bb = "10\n11\n\n  12  \n40\n";

  ck_assert_int_eq (remap_parse_badblocks (bb, strlen (bb), NULL, 1024, &x, &err),
                    0);
  ck_assert_uint_eq (x.n, 2);
  ck_assert_uint_eq (x.v[0].off, 10240);
  ck_assert_uint_eq (x.v[0].len, 3072);
  ck_assert_uint_eq (x.v[1].off, 40960);
  remap_extents_free (&x);

  const char *bad = "10\n11\nxyz\n";
  ck_assert_int_eq (remap_parse_badblocks (bad, strlen (bad), NULL, 1024, &x, &err),
                    -EINVAL);
  ck_assert_msg (strncmp (err.msg, "line 3:", 7) == 0, "%s", err.msg);
  remap_extents_free (&x);
  remap_error_clear (&err);
  bad = "10 11\n";
  ck_assert_int_eq (remap_parse_badblocks (bad, strlen (bad), NULL, 1024, &x, &err),
                    -EINVAL);
  ck_assert_msg (strncmp (err.msg, "line 1:", 7) == 0, "%s", err.msg);
  remap_extents_free (&x);

  const char *map =
    "# Mapfile. Created by GNU ddrescue version 1.27\n"
    "# current_pos  current_status  current_pass\n"
    "0x00120000     ?               1\n"
    "#      pos        size  status\n"
    "0x00000000  0x00001000  +\n"
    "0x00001000  0x00000200  -\n"
    "0x00001200  0x00000200  *\n"
    "0x00001400  0x00000400  /\n"
    "0x00010000  0x00001000  ?\n"
    "65536000    512         -\n";
  remap_error_clear (&err);
  ck_assert_int_eq (remap_parse_ddrescue (map, strlen (map), NULL, false, &x, &err),
                    0);
  ck_assert_uint_eq (x.n, 2);
  ck_assert_uint_eq (x.v[0].off, 0x1000);
  ck_assert_uint_eq (x.v[0].len, 0x800);
  ck_assert_uint_eq (x.v[1].off, 65536000);
  remap_extents_free (&x);
  ck_assert_int_eq (remap_parse_ddrescue (map, strlen (map), NULL, true, &x, &err),
                    0);
  ck_assert_uint_eq (x.n, 3);
  ck_assert_uint_eq (x.v[1].off, 0x10000);
  remap_extents_free (&x);

  static const struct { const char *text; const char *line; } bads[] = {
    { "0 +\n0x0 0x10 X\n", "line 2:" },
    { "# c\n0 Q\n", "line 2:" },
    { "0 +\n0x0 0x10\n", "line 2:" },
    { "0 + 1\n0 10 - extra\n", "line 2:" },
    { "0 +\n0x0 zz -\n", "line 2:" },
    { "# only comments\n", "line 1:" },
  };
  for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
    remap_error_clear (&err);
    ck_assert_int_eq (remap_parse_ddrescue (bads[i].text,
                                            strlen (bads[i].text), NULL,
                                            false, &x, &err), -EINVAL);
    ck_assert_msg (strncmp (err.msg, bads[i].line, strlen (bads[i].line)) == 0,
                   "case %zu: %s", i, err.msg);
    remap_extents_free (&x);
  }
}
END_TEST

START_TEST (test_split_and_buf)
{
  char line[] = "  remap\t40  16 --json\r\n";
  char *argv[4];
  struct remap_buf b = { 0 };

  ck_assert_int_eq (remap_control_split (line, argv, 4), 4);
  ck_assert_str_eq (argv[0], "remap");
  ck_assert_str_eq (argv[1], "40");
  ck_assert_str_eq (argv[3], "--json");
  char l2[] = "a b c d e\n";
  ck_assert_int_eq (remap_control_split (l2, argv, 4), -EINVAL);
  char l3[] = "a\x01 b\n";
  ck_assert_int_eq (remap_control_split (l3, argv, 4), -EINVAL);

  for (int i = 0; i < 1000; i++)
    remap_buf_printf (&b, "%d,", i);
  ck_assert (!b.failed);
  ck_assert_uint_eq (b.len, strlen (b.data));
  ck_assert (strncmp (b.data, "0,1,2,", 6) == 0);
  remap_buf_reset (&b);
  remap_buf_json_string (&b, "a\"b\\c\n");
  ck_assert_str_eq (b.data, "\"a\\\"b\\\\c\\n\"");
  remap_buf_free (&b);
}
END_TEST

START_TEST (test_spare_full_state)
{
  struct remap_counters c;
  struct remap_error err = { 0 };
  char cmd[64];
  const char *s;

  remap_get_counters (e, &c);
  /* Fill the spare but one unit: nearly full. */
  snprintf (cmd, sizeof cmd, "remap -u 0 %" PRIu64, c.spare_usable_units - 1);
  run_ok (cmd);
  s = run_ok ("status --json");
  ck_assert_msg (strstr (s, "\"state\":\"spare-nearly-full\""), "%s", s);
  run_ok ("remap -u 1000");
  s = run_ok ("status --json");
  ck_assert_msg (strstr (s, "\"state\":\"spare-full\""), "%s", s);
  ck_assert_uint_eq (jnum (s, "spare_free_units"), 0);
  /* One more: ENOSPC, reported with the progress. */
  ck_assert_int_eq (run_err ("remap -u 1001 --json", &err), -ENOSPC);
  assert_json (out.data);
  ck_assert (strstr (out.data, "\"error\":"));
  ck_assert_msg (strstr (err.msg, "0 of 1 units done"), "%s", err.msg);
}
END_TEST

/* import OFF+LEN[,...] (admin/cmd_import.c): byte ranges to units, all
 * checked before any is changed; a refusal prints nothing and changes
 * nothing; a list too large for the spare is -ENOSPC with the numbers. */
START_TEST (test_import_command)
{
  struct remap_error err = { 0 };
  struct remap_counters c;
  struct remap_mapping m;
  char cmd[128];
  const char *s;

  /* Units 2 (bytes 8192..8193) and 10..11 (0xa000+0x2000), overlapping
   * items merged; unit 3 as a unit item. */
  s = run_ok ("import 8192+2,0xa000+0x2000,0xa800+1,3 --json");
  assert_json (s);
  ck_assert_uint_eq (jnum (s, "units"), 4);
  ck_assert_uint_eq (jnum (s, "changed"), 4);
  ck_assert_uint_eq (jnum (s, "ranges"), 2);
  ck_assert_msg (strstr (s, "\"mode\":\"remap\""), "%s", s);
  ck_assert_msg (strstr (s, "\"error\"") == NULL, "%s", s);
  ck_assert_int_eq (remap_lookup (e, 11, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  /* Again, pending: all already remapped. */
  s = run_ok ("import --pending 8192+2,0xa000+0x2000");
  ck_assert_msg (strstr (s, "0 marked pending now, 3 already remapped or "
                         "pending"), "%s", s);
  s = run_ok ("import --pending 0x64000+4096");      /* unit 100 */
  ck_assert_msg (strstr (s, "1 marked pending now"), "%s", s);
  ck_assert_int_eq (remap_unit_pending (e, 100), 1);

  /* Refusals: nothing printed, nothing changed. */
  remap_get_counters (e, &c);
  static const struct { const char *line, *msg; } bad[] = {
    { "import 0+4096,0x3ff000+0x1001 --json", "past the end of the origin" },
    { "import 0+4096,1024 --json", "past the end of the origin" },
    { "import 0+0", "import" },
    { "import 0+4096,,8192+1", "import" },
    { "import 18446744073709551615+2", "import" },
    { "import x --json", "import" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct remap_counters c2;
    ck_assert_int_eq (run_err (bad[i].line, &err), -EINVAL);
    ck_assert_msg (strstr (err.msg, bad[i].msg), "%s: %s", bad[i].line,
                   err.msg);
    ck_assert_msg (out.len == 0, "%s printed %s", bad[i].line, out.data);
    remap_get_counters (e, &c2);
    ck_assert_uint_eq (c2.reallocated_units, c.reallocated_units);
    ck_assert_uint_eq (c2.pending_units, c.pending_units);
  }
  ck_assert_int_eq (remap_lookup (e, 0, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_FREE);

  /* More units than the spare has free: -ENOSPC, the numbers in the
   * message and in the JSON, nothing changed. */
  snprintf (cmd, sizeof cmd, "import 0x100000+%" PRIu64 " --json",
            (c.spare_free_units + 1) * U);
  ck_assert_int_eq (run_err (cmd, &err), -ENOSPC);
  ck_assert_msg (strstr (err.msg, "but the spare has"), "%s", err.msg);
  assert_json (out.data);
  ck_assert_uint_eq (jnum (out.data, "needed"), c.spare_free_units + 1);
  ck_assert_uint_eq (jnum (out.data, "free"), c.spare_free_units);
  ck_assert_uint_eq (jnum (out.data, "changed"), 0);
  ck_assert (strstr (out.data, "\"error\":"));
  ck_assert_int_eq (remap_lookup (e, 0x100000 / U, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_FREE);
}
END_TEST

/* A sink cancelled after `after' checks (a client gone, a server
 * stopping, as the control socket's sink reports it). */
struct cancel_after {
  int calls, after;
};

static int
cancel_after_check (void *opaque)
{
  struct cancel_after *c = opaque;
  return ++c->calls > c->after ? -ECANCELED : 0;
}

static int
discard_flush (void *opaque, const char *p, size_t n)
{
  (void) opaque; (void) p; (void) n;
  return 0;
}

/* import stops between units when its sink is cancelled: the units done
 * stay done (committed), the rest untouched, the message says how far. */
START_TEST (test_import_cancelled)
{
  char a0[] = "import", a1[] = "0x1000+0x5000", a2[] = "--json";
  char *argv[] = { a0, a1, a2, NULL };
  struct cancel_after c = { .after = 2 };
  struct remap_error err = { 0 };
  struct remap_mapping m;
  struct remap_out so;
  int r;

  remap_out_stream (&so, discard_flush, cancel_after_check, &c);
  r = remap_admin_exec (e, 3, argv, &so, &err);
  remap_out_finish (&so);
  ck_assert_int_eq (r, -ECANCELED);
  ck_assert_msg (strstr (err.msg, "import cancelled") && strstr (err.msg,
                 "stopped before unit 3 (2 of 5 units done, the rest "
                 "untouched)"), "%s", err.msg);
  for (uint64_t u = 1; u <= 5; u++) {
    ck_assert_int_eq (remap_lookup (e, u, &m), 0);
    ck_assert_msg (m.state == (u < 3 ? REMAP_SLOT_MAPPED : REMAP_SLOT_FREE),
                   "unit %" PRIu64 ": state %d", u, m.state);
  }
  /* The same import again finishes the job: the two done are "already". */
  const char *s = run_ok ("import 0x1000+0x5000");
  ck_assert_msg (strstr (s, "3 remapped now, 2 already remapped"), "%s", s);
}
END_TEST

START_TEST (test_scan_finds_failing_units)
{
  struct remap_backend *o, *s, *f;
  struct remap_error err = { 0 };
  struct remap_open_opts oo = { .no_lock = true, .read_retries = 1 };
  struct remap_fault_rule rule = { .ops = REMAP_FAULT_READ, .err = -EIO };
  struct maps x = { .n = 0 };
  const char *out_s;

  /* Reopen the engine over a fault injector that fails units 7, 300
   * (one sector of it) and 301..302. */
  remap_close (e);
  e = NULL;
  ck_assert_int_eq (remap_mem_share (origin_mem, &o), 0);
  ck_assert_int_eq (remap_mem_share (spare_mem, &s), 0);
  ck_assert_int_eq (remap_fault_create (o, true, &f), 0);
  rule.off = 7 * U;
  rule.len = U;
  ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  rule.off = 300 * U + 1024;
  rule.len = 512;
  ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  rule.off = 301 * U;
  rule.len = 2 * U;
  ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  ck_assert_msg (remap_open (f, s, &oo, &e, &err) == 0, "open: %s", err.msg);

  run_ok ("remap -u 301");      /* already remapped: skipped, not bad */
  out_s = run_ok ("scan 0 4096 --json");        /* units 0..511 */
  assert_json (out_s);
  ck_assert_uint_eq (jnum (out_s, "units"), 512);
  ck_assert_uint_eq (jnum (out_s, "skipped_units"), 1);
  ck_assert_uint_eq (jnum (out_s, "read_units"), 511);
  ck_assert_msg (strstr (out_s, "\"bad_units\":[7,300,302]"), "%s", out_s);
  ck_assert_uint_eq (jnum (out_s, "new_bad_units"), 3);
  ck_assert_int_eq (remap_foreach (e, collect, &x), 0);
  size_t npend = 0;
  for (size_t i = 0; i < x.n; i++)
    if (x.v[i].state == REMAP_SLOT_PENDING) {
      npend++;
      ck_assert_msg (x.v[i].origin_unit == 7 || x.v[i].origin_unit == 300
                     || x.v[i].origin_unit == 302, "unit %" PRIu64
                     " pending", x.v[i].origin_unit);
    }
  ck_assert_uint_eq (npend, 3);
  ck_assert_uint_eq (jnum (run_ok ("status --json"), "pending_units"), 3);

  /* A second scan of a range: known bad units are reported again, not as
   * new; a healthy range finds nothing. */
  out_s = run_ok ("scan -u 0 8 --json");
  ck_assert_msg (strstr (out_s, "\"bad_units\":[7]"), "%s", out_s);
  ck_assert_uint_eq (jnum (out_s, "new_bad_units"), 0);
  out_s = run_ok ("scan -u 600 100");
  ck_assert_msg (strstr (out_s, "100 read, 0 skipped (remapped), 0 bad"),
                 "%s", out_s);
}
END_TEST

/* No free place to record a pending unit, so a unit whose reads fail
 * cannot be recorded pending: the engine holds it pending in memory.  The
 * scan must still report it bad (and new), and say that it is unrecorded.
 * Version 2 records pending units in pending-only places, not spare
 * units: a full spare still records them (checked first), so the places
 * are filled too. */
START_TEST (test_scan_reports_unrecorded_when_full)
{
  struct remap_backend *o, *s, *f;
  struct remap_error err = { 0 };
  struct remap_open_opts oo = { .no_lock = true, .read_retries = 1 };
  struct remap_fault_rule rule = { .off = 700 * U, .len = 2 * U,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  struct remap_counters c;
  char cmd[64];

  remap_get_counters (e, &c);
  snprintf (cmd, sizeof cmd, "remap -u 0 %" PRIu64, c.spare_usable_units);
  run_ok (cmd);
  remap_close (e);
  e = NULL;
  ck_assert_int_eq (remap_mem_share (origin_mem, &o), 0);
  ck_assert_int_eq (remap_mem_share (spare_mem, &s), 0);
  ck_assert_int_eq (remap_fault_create (o, true, &f), 0);
  ck_assert_int_eq (remap_fault_add_rule (f, &rule), 0);
  ck_assert_msg (remap_open (f, s, &oo, &e, &err) == 0, "open: %s", err.msg);
  ck_assert_uint_eq (jnum (run_ok ("status --json"), "spare_free_units"), 0);

  /* The spare is full, yet a pending mark is recorded (a pending-only
   * place); fill every place. */
  struct remap_info info;
  remap_get_info (e, &info);
  const struct remap_layout *l = &info.layout;
  uint64_t places = l->table_blocks * l->entries_per_block - l->spare_units;
  ck_assert_uint_eq (remap_layout_first_pending_slot (l), l->spare_units);
  uint64_t first = c.spare_usable_units;
  ck_assert_uint_lt (first + places, 690);
  for (uint64_t u = first; u < first + places; u++) {
    ck_assert_msg (remap_mark_pending (e, u, &err) == 0, "pending %" PRIu64
                   ": %s", u, err.msg);
    struct remap_mapping m;
    ck_assert_int_eq (remap_lookup (e, u, &m), 0);
    ck_assert_msg (remap_unit_pending (e, u) == 1
                   && m.state == REMAP_SLOT_PENDING
                   && m.spare_unit >= l->spare_units, "unit %" PRIu64
                   " not recorded in a pending-only place", u);
  }
  ck_assert_uint_eq (jnum (run_ok ("status --json"), "spare_free_units"), 0);

  const char *out_s = run_ok ("scan -u 690 20 --json");
  assert_json (out_s);
  ck_assert_msg (strstr (out_s, "\"bad_units\":[700,701]")
                 && strstr (out_s, "\"unrecorded_units\":[700,701]"),
                 "%s", out_s);
  ck_assert_uint_eq (jnum (out_s, "new_bad_units"), 2);
  ck_assert_uint_eq (jnum (out_s, "read_units"), 20);
  ck_assert_int_eq (remap_unit_pending (e, 700), 2);
  ck_assert_int_eq (remap_unit_pending (e, 699), 0);
  /* Again: known now, not new; and said in words. */
  out_s = run_ok ("scan -u 700 1");
  ck_assert_msg (strstr (out_s, "unit 700: bad (known)")
                 && strstr (out_s, "1 bad (0 new)")
                 && strstr (out_s, "could not be recorded"), "%s", out_s);
}
END_TEST

static Suite *
control_suite (void)
{
  Suite *s = suite_create ("control");
  TCase *tc = tcase_create ("exec");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_status_matches_counters);
  tcase_add_test (tc, test_list_matches_table);
  tcase_add_test (tc, test_remap_json_and_durable);
  tcase_add_test (tc, test_unmap_copies_back);
  tcase_add_test (tc, test_usage_errors);
  tcase_add_test (tc, test_export_roundtrip);
  tcase_add_test (tc, test_spare_full_state);
  tcase_add_test (tc, test_import_command);
  tcase_add_test (tc, test_import_cancelled);
  tcase_add_test (tc, test_scan_finds_failing_units);
  tcase_add_test (tc, test_scan_reports_unrecorded_when_full);
  suite_add_tcase (s, tc);
  TCase *tp = tcase_create ("parsers");
  tcase_add_test (tp, test_parsers);
  tcase_add_test (tp, test_split_and_buf);
  suite_add_tcase (s, tp);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (control_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
