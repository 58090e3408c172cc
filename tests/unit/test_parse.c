/* Unit tests for the format parsers (core/parse.c, core/badlist.c,
 * core/faultspec.c, core/smartctl.c) and the import of a list into an
 * engine (core/import.c).
 *
 * Table-driven, grouped by kind: valid, boundary (2^64 - 1), overflow,
 * bogus (NUL, control bytes, signs, trailing text).  Every bad input must
 * leave the caller's list exactly as it was.
 */
#include "unit/testlib.h"

#include "remap/badlist.h"
#include "remap/import.h"
#include "remap/parse.h"

#define U 4096u

/* ---- numbers --------------------------------------------------------- */

START_TEST (test_numbers)
{
  static const struct { const char *s; unsigned flags; int r; uint64_t v; }
  t[] = {
    { "0", 0, 0, 0 },
    { "010", 0, 0, 10 },                        /* never octal */
    { "0x10", 0, 0, 16 },
    { "0XfF", 0, 0, 255 },
    { "18446744073709551615", 0, 0, UINT64_MAX },
    { "0xffffffffffffffff", 0, 0, UINT64_MAX },
    { "18446744073709551616", 0, -EINVAL, 0 },  /* 2^64 */
    { "99999999999999999999999", 0, -EINVAL, 0 },
    { "0x10000000000000000", 0, -EINVAL, 0 },
    { "4k", REMAP_NUM_SUFFIX, 0, 4096 },
    { "4K", REMAP_NUM_SUFFIX, 0, 4096 },
    { "1s", REMAP_NUM_SUFFIX, 0, 512 },
    { "7b", REMAP_NUM_SUFFIX, 0, 7 },
    { "2M", REMAP_NUM_SUFFIX, 0, 2 * MiB },
    { "3g", REMAP_NUM_SUFFIX, 0, 3 * GiB },
    { "1t", REMAP_NUM_SUFFIX, 0, TiB },
    { "1p", REMAP_NUM_SUFFIX, 0, UINT64_C (1) << 50 },
    { "15e", REMAP_NUM_SUFFIX, 0, UINT64_C (15) << 60 },
    { "16e", REMAP_NUM_SUFFIX, -EINVAL, 0 },    /* 2^64 */
    { "16777216t", REMAP_NUM_SUFFIX, -EINVAL, 0 },
    { "16777215t", REMAP_NUM_SUFFIX, 0, UINT64_C (16777215) << 40 },
    { "0x1b", REMAP_NUM_SUFFIX, 0, 27 },        /* hex: b is a digit */
    { "4KiB", REMAP_NUM_SUFFIX, 0, 4096 },
    { "2MB", REMAP_NUM_SUFFIX, 0, 2 * MiB },
    { "2Mi", REMAP_NUM_SUFFIX, -EINVAL, 0 },
    { "2MiB ", REMAP_NUM_SUFFIX, -EINVAL, 0 },
    { "2sB", REMAP_NUM_SUFFIX, -EINVAL, 0 },    /* B only after k to e */
    { "2bB", REMAP_NUM_SUFFIX, -EINVAL, 0 },
    { "0x1k", REMAP_NUM_SUFFIX, -EINVAL, 0 },   /* hex takes no suffix */
    { "4k", 0, -EINVAL, 0 },                    /* suffix not allowed */
    { "4kk", REMAP_NUM_SUFFIX, -EINVAL, 0 },
    { "4x", REMAP_NUM_SUFFIX, -EINVAL, 0 },
    { "", 0, -EINVAL, 0 },
    { "0x", 0, -EINVAL, 0 },
    { "-1", 0, -EINVAL, 0 },
    { "+1", 0, -EINVAL, 0 },
    { " 1", 0, -EINVAL, 0 },
    { "1 ", 0, -EINVAL, 0 },
    { "1\t", 0, -EINVAL, 0 },
    { "1.5", REMAP_NUM_SUFFIX, -EINVAL, 0 },
  };
  for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
    struct remap_error err = { 0 };
    uint64_t v = 12345;
    int r = remap_parse_u64 (t[i].s, t[i].flags, "n", &v, &err);
    ck_assert_msg (r == t[i].r, "\"%s\": got %d want %d (%s)", t[i].s, r,
                   t[i].r, err.msg);
    if (r == 0)
      ck_assert_msg (v == t[i].v, "\"%s\": %" PRIu64, t[i].s, v);
    else {
      ck_assert_msg (v == 12345, "\"%s\": output changed on error", t[i].s);
      ck_assert_msg (strstr (err.msg, "n \"") == err.msg, "%s", err.msg);
    }
  }
  /* The scanner tells overflow from "no number" and stops after it. */
  const char *s = "99999999999999999999,", *p = s;
  uint64_t v;
  ck_assert_int_eq (remap_scan_u64 (&p, s + strlen (s), 0, &v), -ERANGE);
  ck_assert_ptr_eq (p, s);
  s = "12,3";
  p = s;
  ck_assert_int_eq (remap_scan_u64 (&p, s + strlen (s), 0, &v), 0);
  ck_assert_ptr_eq (p, s + 2);
  ck_assert_uint_eq (v, 12);
  /* The end bound is honoured: "12" of "123". */
  s = "123";
  p = s;
  ck_assert_int_eq (remap_scan_u64 (&p, s + 2, 0, &v), 0);
  ck_assert_uint_eq (v, 12);
}
END_TEST

START_TEST (test_escape)
{
  char out[32];
  const char raw[] = "a\0b\x1b[31m\\\x7f\xff";

  remap_escape (raw, sizeof raw - 1, out, sizeof out);
  ck_assert_str_eq (out, "a\\x00b\\x1b[31m\\x5c\\x7f\\xff");
  remap_escape ("0123456789abcdef", 16, out, 12);
  ck_assert_str_eq (out, "01234567...");
  ck_assert_uint_lt (strlen (out), 12);
  /* A control byte in the text never reaches the message raw. */
  struct remap_error err = { 0 };
  uint64_t v;
  ck_assert_int_eq (remap_parse_u64 ("1\x1b[2J", 0, "--unit", &v, &err),
                    -EINVAL);
  ck_assert_ptr_null (strchr (err.msg, '\x1b'));
  ck_assert_ptr_nonnull (strstr (err.msg, "1\\x1b[2J"));
}
END_TEST

/* ---- unit lists ------------------------------------------------------- */

START_TEST (test_unit_lists)
{
  struct remap_list l = { 0 };
  struct remap_error err = { 0 };

  ck_assert_int_eq (remap_list_parse ("100,200-210,1M+64k,0x10,0x20-0x21,"
                                      "0x1000+0x200,7-7", "remap=", &l,
                                      &err), 0);
  ck_assert_uint_eq (l.n, 7);
  ck_assert (!l.v[0].bytes && l.v[0].first == 100 && l.v[0].last == 100);
  ck_assert (!l.v[1].bytes && l.v[1].first == 200 && l.v[1].last == 210);
  ck_assert (l.v[2].bytes && l.v[2].first == MiB
             && l.v[2].last == MiB + 64 * KiB - 1);
  ck_assert (!l.v[3].bytes && l.v[3].first == 16);
  ck_assert (!l.v[4].bytes && l.v[4].first == 32 && l.v[4].last == 33);
  ck_assert (l.v[5].bytes && l.v[5].first == 4096 && l.v[5].last == 4607);
  /* Boundary: the very last byte. */
  ck_assert_int_eq (remap_list_parse ("18446744073709551615+1", "x", &l,
                                      &err), 0);
  ck_assert_uint_eq (l.v[7].last, UINT64_MAX);

  static const char *const bad[] = {
    "", ",", "1,", ",1", "1,,2", "x7", "5-3", "1-", "-1", "1+0", "1+",
    "4k", "4k-5k", "1-2k", "18446744073709551615+2", "18446744073709551616",
    "1 ,2", "1\t", "1\n", "1;2", "0x", "+5", "1M", "1+1+1", "1-2-3",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    size_t n0 = l.n;
    remap_error_clear (&err);
    ck_assert_msg (remap_list_parse (bad[i], "remap=", &l, &err) == -EINVAL,
                   "\"%s\" accepted", bad[i]);
    ck_assert_msg (l.n == n0, "\"%s\": the list changed", bad[i]);
    ck_assert_msg (strncmp (err.msg, "remap=:", 7) == 0, "%s", err.msg);
  }
  /* The item is named, escaped. */
  remap_error_clear (&err);
  ck_assert_int_eq (remap_list_parse ("1,2,\x01x", "remap=", &l, &err),
                    -EINVAL);
  ck_assert_ptr_nonnull (strstr (err.msg, "item \"\\x01x\""));
  remap_list_free (&l);
}
END_TEST

/* ---- badblocks --------------------------------------------------------- */

static int
bb (const char *text, size_t len, uint64_t bs, struct remap_extents *x,
    struct remap_error *err)
{
  remap_error_clear (err);
  return remap_parse_badblocks (text, len, "bb.txt", bs, x, err);
}

#define BB(s, bs, x, err) bb ((s), sizeof (s) - 1, (bs), (x), (err))

START_TEST (test_badblocks)
{
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };

  /* Empty, blanks, comments, CRLF, hex, duplicates, overlaps. */
  ck_assert_int_eq (BB ("", 1024, &x, &err), 0);
  ck_assert_uint_eq (x.n, 0);
  ck_assert_int_eq (BB ("\n\n  \t\n# only a comment\n", 1024, &x, &err), 0);
  ck_assert_uint_eq (x.n, 0);
  ck_assert_int_eq (BB ("10\r\n11\r\n# c\r\n  12 # twelve\r\n0x28\n40\n12\n"
                        "13", 1024, &x, &err), 0);
  ck_assert_uint_eq (x.n, 2);
  ck_assert_uint_eq (x.v[0].off, 10 * 1024);
  ck_assert_uint_eq (x.v[0].len, 4 * 1024);
  ck_assert_uint_eq (x.v[1].off, 40 * 1024);
  ck_assert_uint_eq (x.v[1].len, 1024);
  remap_extents_free (&x);

  /* Boundary: the last whole block below 2^64, at block size 1 and 4096. */
  ck_assert_int_eq (BB ("8\n18446744073709551614\n", 1, &x, &err), 0);
  ck_assert_uint_eq (x.n, 2);
  ck_assert_uint_eq (x.v[1].off, UINT64_MAX - 1);
  remap_extents_free (&x);
  ck_assert_int_eq (BB ("4503599627370494\n", 4096, &x, &err), 0);
  remap_extents_free (&x);

  /* Bogus: each names bb.txt:LINE and leaves the list alone. */
  static const struct { const char *text; size_t len; const char *want; }
  bad[] = {
#define C(s, w) { s, sizeof (s) - 1, w }
    C ("1\n18446744073709551616\n", "bb.txt:2: the block number is larger"),
    C ("18446744073709551615\n", "bb.txt:1: block 18446744073709551615"),
    C ("1\n-1\n", "bb.txt:2: the block number is not a number"),
    C ("+1\n", "bb.txt:1: the block number is not a number"),
    C ("1 2\n", "bb.txt:1: one block number per line"),
    C ("12abc\n", "bb.txt:1: the block number is not a number"),
    C ("1\n2\0" "3\n", "bb.txt:2: column 2: control byte \\x00 (NUL)"),
    C ("1\n\0\n", "bb.txt:2: column 1: control byte \\x00"),
    C ("1\x1b[2J\n", "bb.txt:1: column 2: control byte \\x1b"),
    C ("1\r2\n", "bb.txt:1: column 2: control byte \\x0d"),
    C ("7\x7f\n", "bb.txt:1: column 2: control byte \\x7f"),
    C ("1k\n", "bb.txt:1: the block number is not a number"),
#undef C
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    ck_assert_int_eq (remap_extents_add (&x, 1, 1), 0);
    ck_assert_msg (bb (bad[i].text, bad[i].len, 1, &x, &err) == -EINVAL,
                   "case %zu accepted", i);
    ck_assert_msg (strncmp (err.msg, bad[i].want, strlen (bad[i].want)) == 0,
                   "case %zu: %s", i, err.msg);
    ck_assert_msg (x.n == 1 && x.v[0].off == 1, "case %zu changed the list",
                   i);
    ck_assert_msg (!memchr (err.msg, '\x1b', strlen (err.msg))
                   && !strchr (err.msg, '\r'), "raw byte in: %s", err.msg);
    remap_extents_free (&x);
  }
  /* 2^52 blocks of 4096 bytes end at 2^64: refused. */
  ck_assert_int_eq (BB ("4503599627370495\n", 4096, &x, &err), -EINVAL);
  ck_assert_int_eq (BB ("1\n", 0, &x, &err), -EINVAL);
}
END_TEST

/* ---- ddrescue ---------------------------------------------------------- */

START_TEST (test_ddrescue)
{
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };
  const char map[] =
    "# Mapfile. Created by GNU ddrescue version 1.27\r\n"
    "# current_pos  current_status  current_pass\r\n"
    "0x00120000     ?               1\r\n"
    "0x00000000  0x00001000  +   # good\r\n"
    "0x00001000  0x00000200  -\r\n"
    "0x00001100  0x00000200  *\r\n"            /* overlaps the one above */
    "0x00010000  0x00001000  ?\r\n"
    "0xFFFFFFFFFFFFF000  0xFFF  -\r\n";         /* ends at 2^64 - 1 */

  ck_assert_int_eq (remap_parse_ddrescue (map, sizeof map - 1, "m", false,
                                          &x, &err), 0);
  ck_assert_uint_eq (x.n, 2);
  ck_assert_uint_eq (x.v[0].off, 0x1000);
  ck_assert_uint_eq (x.v[0].len, 0x300);
  ck_assert_uint_eq (x.v[1].off + x.v[1].len, UINT64_MAX);
  remap_extents_free (&x);

  static const struct { const char *text; size_t len; const char *want; }
  bad[] = {
#define C(s, w) { s, sizeof (s) - 1, w }
    C ("0 +\n0xFFFFFFFFFFFFF000 0x1000 -\n", "m:2: the block ends past"),
    C ("0 +\n0x10000000000000000 0x200 -\n", "m:2: the position is larger"),
    C ("0 +\n0 -5 -\n", "m:2: the size is not a number"),
    C ("0 +\n0 5 -\0junk\n", "m:2: column 6: control byte \\x00"),
    C ("0 +\n0 5 Q\n", "m:2: unknown block status 'Q'"),
    C ("0 +\n0 5\n", "m:2: expected \"pos size status\""),
    C ("0 X\n", "m:1: bad status line"),
    C ("# nothing\n", "m:1: no status line"),
    C ("", "m:0: no status line"),
#undef C
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    remap_error_clear (&err);
    ck_assert_msg (remap_parse_ddrescue (bad[i].text, bad[i].len, "m", true,
                                         &x, &err) == -EINVAL,
                   "case %zu accepted", i);
    ck_assert_msg (strncmp (err.msg, bad[i].want, strlen (bad[i].want)) == 0,
                   "case %zu: %s", i, err.msg);
    ck_assert_uint_eq (x.n, 0);
  }
  remap_extents_free (&x);
}
END_TEST

/* ---- fault rules --------------------------------------------------------- */

START_TEST (test_fault_rules)
{
  struct remap_fault_rule rules[REMAP_FAULT_MAX_RULES], r;
  struct remap_error err = { 0 };
  size_t n = 99;

  ck_assert_int_eq (remap_fault_parse_rule ("read:0x1000+0x200,after=0x2", &r,
                                            &err), 0);
  ck_assert_uint_eq (r.off, 4096);
  ck_assert_uint_eq (r.len, 512);
  ck_assert_uint_eq (r.after, 2);
  ck_assert_int_eq (remap_fault_parse_rule ("write:1m+4k", &r, &err), 0);
  ck_assert_uint_eq (r.off, MiB);
  ck_assert_int_eq (remap_fault_parse_rule ("read:18446744073709551615+2",
                                            &r, &err), -EINVAL);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_fault_parse_rule ("read:\x1b", &r, &err), -EINVAL);
  ck_assert_ptr_null (strchr (err.msg, '\x1b'));

  /* Text after a NUL is not ignored: the NUL is an error. */
  const char f[] = "read:0\r\nwrite:4k # x\r\n\0read:8k\n";
  remap_error_clear (&err);
  ck_assert_int_eq (remap_fault_parse_rules (f, sizeof f - 1, "ff", rules, &n,
                                             &err), -EINVAL);
  ck_assert_msg (strstr (err.msg, "ff:3: column 1: control byte \\x00"),
                 "%s", err.msg);
  ck_assert_uint_eq (n, 0);
  ck_assert_int_eq (remap_fault_parse_rules (f, sizeof f - 12, "ff", rules,
                                             &n, &err), 0);
  ck_assert_uint_eq (n, 2);
  ck_assert_uint_eq (rules[1].off, 4096);
}
END_TEST

/* ---- smartctl ------------------------------------------------------------ */

static char *
slurp (const char *name, size_t *len)
{
  char path[4096];
  const char *dir = getenv ("REMAP_SOURCE_DIR");
  snprintf (path, sizeof path, "%s/tests/data/%s", dir ? dir : "..", name);
  FILE *f = fopen (path, "rb");
  ck_assert_msg (f != NULL, "%s: %s", path, strerror (errno));
  char *buf = malloc (1 << 20);
  ck_assert_ptr_nonnull (buf);
  *len = fread (buf, 1, 1 << 20, f);
  fclose (f);
  return buf;
}

START_TEST (test_smartctl)
{
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };
  uint64_t bs = 0;
  size_t len;
  char *t = slurp ("smartctl-ata.json", &len);

  /* ATA -x: UNC errors at 1000 and 1001, self-test failures at 1001 and
   * 123456; the ICRC/ABRT and ABRT entries are not media errors. */
  ck_assert_msg (remap_parse_smartctl (t, len, "ata.json", 0, &x, &bs,
                                       &err) == 0, "%s", err.msg);
  ck_assert_uint_eq (bs, 512);
  ck_assert_uint_eq (x.n, 2);
  ck_assert_uint_eq (x.v[0].off, 1000 * 512);
  ck_assert_uint_eq (x.v[0].len, 2 * 512);
  ck_assert_uint_eq (x.v[1].off, 123456 * 512);
  ck_assert_uint_eq (x.v[1].len, 512);
  remap_extents_free (&x);
  /* --block-size overrides the report. */
  ck_assert_int_eq (remap_parse_smartctl (t, len, "ata.json", 4096, &x, &bs,
                                          &err), 0);
  ck_assert_uint_eq (x.v[0].off, 1000 * 4096);
  remap_extents_free (&x);
  /* Truncated: an error with line and column, nothing appended. */
  remap_error_clear (&err);
  ck_assert_int_eq (remap_parse_smartctl (t, len / 2, "ata.json", 0, &x,
                                          NULL, &err), -EINVAL);
  ck_assert_msg (strstr (err.msg, "ends too soon"), "%s", err.msg);
  ck_assert_uint_eq (x.n, 0);
  /* A NUL inside. */
  t[100] = '\0';
  remap_error_clear (&err);
  ck_assert_int_eq (remap_parse_smartctl (t, len, "ata.json", 0, &x, NULL,
                                          &err), -EINVAL);
  ck_assert_msg (strstr (err.msg, "ata.json:") && strstr (err.msg, "\\x00"),
                 "%s", err.msg);
  free (t);

  /* NVMe: the block size from the namespace; media error 5000, self-test
   * 5001; the invalid-field error is left out. */
  t = slurp ("smartctl-nvme.json", &len);
  ck_assert_msg (remap_parse_smartctl (t, len, "nvme.json", 0, &x, &bs,
                                       &err) == 0, "%s", err.msg);
  ck_assert_uint_eq (bs, 4096);
  ck_assert_uint_eq (x.n, 1);
  ck_assert_uint_eq (x.v[0].off, 5000 * 4096);
  ck_assert_uint_eq (x.v[0].len, 2 * 4096);
  remap_extents_free (&x);
  free (t);

  static const struct { const char *text; const char *want; } bad[] = {
    { "", "ends too soon" },
    { "[1,2]", "not an object" },
    { "{\"model_name\":\"x\",\"logical_block_size\":512}", "no self-test" },
    { "{\"ata_smart_self_test_log\":{\"standard\":{\"table\":[]}}}",
      "no logical_block_size" },
    { "{\"logical_block_size\":0,\"nvme_self_test_log\":{}}",
      "not a sector size" },
    { "{\"logical_block_size\":512,\"nvme_self_test_log\":{\"table\":[{"
      "\"lba\":-1}]}}", "is not a whole number" },
    { "{\"logical_block_size\":512,\"nvme_self_test_log\":{\"table\":[{"
      "\"lba\":\"7\"}]}}", "is not a whole number" },
    { "{\"logical_block_size\":512,\"nvme_self_test_log\":{\"table\":{}}}",
      "is not an array" },
    { "{\"logical_block_size\":512,\"nvme_self_test_log\":{\"table\":[{"
      "\"lba\":18446744073709551615}]}}", "past 2^64" },
    { "{\"logical_block_size\":512,\"nvme_self_test_log\":{}} x",
      "not JSON at \"x\"" },
    { "{\"logical_block_size\":512,\n\"a\":\"\x01\"}",
      "r:2:6: control byte \\x01" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    remap_error_clear (&err);
    ck_assert_msg (remap_parse_smartctl (bad[i].text, strlen (bad[i].text),
                                         "r", 0, &x, NULL, &err) == -EINVAL,
                   "case %zu accepted", i);
    ck_assert_msg (strstr (err.msg, bad[i].want), "case %zu: %s", i, err.msg);
    ck_assert_uint_eq (x.n, 0);
  }
  /* A report with logs but no failing LBA: nothing, and no error. */
  const char *clean = "{\"logical_block_size\":512,\"ata_smart_self_test_log\":"
    "{\"standard\":{\"table\":[{\"status\":{\"passed\":true}}]}}}\n";
  ck_assert_int_eq (remap_parse_smartctl (clean, strlen (clean), "r", 0, &x,
                                          NULL, &err), 0);
  ck_assert_uint_eq (x.n, 0);
}
END_TEST

/* ---- import -------------------------------------------------------------- */

static struct remap_backend *omem, *smem;

static struct remap_engine *
engine (uint64_t origin, uint64_t spare)
{
  omem = tl_mem (origin);
  smem = tl_mem (spare);
  tl_format_ok (omem, smem, U, REMAP_STRATEGY_MINIMAL, 2);
  struct remap_open_opts oo = { .no_lock = true };
  return tl_open_ok (omem, smem, &oo);
}

static void
done (struct remap_engine *e)
{
  remap_close (e);
  remap_backend_close (omem);
  remap_backend_close (smem);
}

START_TEST (test_import_checks_first)
{
  struct remap_engine *e = engine (4 * MiB, 256 * KiB);
  struct remap_extents x = { 0 };
  struct remap_import_result res;
  struct remap_error err = { 0 };
  struct remap_counters c0 = tl_counters (e);

  /* Issue 10: "8" and "18446744073709551614" at block size 1 must not
   * remap unit 8 and then fail: the whole list is refused first. */
  const char t[] = "8\n18446744073709551614\n";
  ck_assert_int_eq (remap_parse_badblocks (t, sizeof t - 1, "bb", 1, &x,
                                           &err), 0);
  ck_assert_int_eq (remap_import_extents (e, &x, "bb", 0, &res, &err),
                    -EINVAL);
  ck_assert_msg (strstr (err.msg, "Nothing was imported"), "%s", err.msg);
  ck_assert_uint_eq (tl_lookup (e, 0).state, REMAP_SLOT_FREE);
  ck_assert_uint_eq (tl_counters (e).generation, c0.generation);
  remap_extents_free (&x);

  /* The spare's room: more units than free spare units is refused, with
   * the numbers, before anything changes. */
  uint64_t free0 = c0.spare_free_units;
  ck_assert_uint_gt (free0, 2);
  struct remap_unit_range v[] = { { 0, free0 } };       /* free0 + 1 */
  remap_error_clear (&err);
  ck_assert_int_eq (remap_import_units (e, v, 1, "list", 0, &res, &err),
                    -ENOSPC);
  char want[128];
  snprintf (want, sizeof want, "needs %" PRIu64 " free spare units, but the "
            "spare has %" PRIu64, free0 + 1, free0);
  ck_assert_msg (strstr (err.msg, want), "%s", err.msg);
  ck_assert_uint_eq (tl_counters (e).reallocated_units, 0);
  ck_assert_uint_eq (tl_counters (e).generation, c0.generation);

  /* Exactly full fits; overlapping and duplicate ranges count once. */
  struct remap_unit_range w[] = { { 2, free0 - 1 }, { 0, 1 }, { 1, 3 },
                                  { 2, 2 } };
  remap_error_clear (&err);
  ck_assert_msg (remap_import_units (e, w, 4, "list", REMAP_IMPORT_DRY_RUN,
                                     &res, &err) == 0, "%s", err.msg);
  ck_assert_uint_eq (res.units, free0);
  ck_assert_uint_eq (res.ranges, 1);
  ck_assert_uint_eq (res.changed, 0);
  ck_assert_uint_eq (tl_counters (e).reallocated_units, 0);
  done (e);
}
END_TEST

START_TEST (test_import_applies)
{
  struct remap_engine *e = engine (4 * MiB, 1 * MiB);
  struct remap_import_result res;
  struct remap_error err = { 0 };
  struct remap_extents x = { 0 };

  /* Byte ranges: every unit touched, past-the-end bytes refused. */
  ck_assert_int_eq (remap_extents_add (&x, 5 * U + 100, 2 * U), 0);
  ck_assert_int_eq (remap_import_extents (e, &x, "x", 0, &res, &err), 0);
  ck_assert_uint_eq (res.units, 3);
  ck_assert_uint_eq (res.changed, 3);
  for (uint64_t u = 5; u <= 7; u++)
    ck_assert_uint_eq (tl_lookup (e, u).state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (tl_lookup (e, 8).state, REMAP_SLOT_FREE);
  /* Again: already done, nothing changes. */
  ck_assert_int_eq (remap_import_extents (e, &x, "x", 0, &res, &err), 0);
  ck_assert_uint_eq (res.already, 3);
  ck_assert_uint_eq (res.changed, 0);
  remap_extents_free (&x);
  ck_assert_int_eq (remap_extents_add (&x, 4 * MiB - 512, 513), 0);
  ck_assert_int_eq (remap_import_extents (e, &x, "x", 0, &res, &err),
                    -EINVAL);
  remap_extents_free (&x);

  /* Pending: units become pending, mapped ones stay mapped. */
  struct remap_unit_range v[] = { { 7, 9 } };
  remap_error_clear (&err);
  ck_assert_msg (remap_import_units (e, v, 1, "p", REMAP_IMPORT_PENDING, &res,
                                     &err) == 0, "%s", err.msg);
  ck_assert_uint_eq (res.already, 1);
  ck_assert_uint_eq (res.changed, 2);
  ck_assert_uint_eq (tl_lookup (e, 7).state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (tl_lookup (e, 8).state, REMAP_SLOT_PENDING);
  ck_assert_uint_eq (tl_lookup (e, 9).state, REMAP_SLOT_PENDING);
  /* Past the origin in units. */
  struct remap_unit_range far[] = { { 1, 1 }, { 1024, 1024 } };
  ck_assert_int_eq (remap_import_units (e, far, 2, "p", 0, &res, &err),
                    -EINVAL);
  ck_assert_uint_eq (tl_lookup (e, 1).state, REMAP_SLOT_FREE);
  done (e);
}
END_TEST

/* A failure half way (the spare fails every write from now on) is
 * reported with the count done; nothing after it is touched. */
START_TEST (test_import_fails_half_way)
{
  struct remap_backend *o = tl_mem (4 * MiB), *s = tl_mem (1 * MiB);
  struct remap_backend *fs;
  struct remap_engine *e;
  struct remap_error err = { 0 };
  struct remap_import_result res;

  tl_format_ok (o, s, U, REMAP_STRATEGY_MINIMAL, 2);
  ck_assert_int_eq (remap_fault_create (tl_share (s), true, &fs), 0);
  struct remap_open_opts oo = { .no_lock = true };
  ck_assert_int_eq (remap_open (tl_share (o), fs, &oo, &e, &err), 0);
  struct remap_unit_range v[] = { { 10, 11 } };
  ck_assert_int_eq (remap_import_units (e, v, 1, "l", 0, &res, &err), 0);
  struct remap_fault_rule rule = { .off = 0, .len = MiB,
                                   .ops = REMAP_FAULT_WRITE, .err = -ENOSPC };
  ck_assert_int_eq (remap_fault_add_rule (fs, &rule), 0);
  struct remap_unit_range w[] = { { 10, 14 } };
  remap_error_clear (&err);
  int r = remap_import_units (e, w, 1, "l", 0, &res, &err);
  ck_assert_int_ne (r, 0);
  ck_assert_msg (strstr (err.msg, "l: unit 12 (2 of 5 units done, the rest "
                         "untouched)"), "%s", err.msg);
  remap_fault_clear_rules (fs);
  ck_assert_uint_eq (tl_lookup (e, 13).state, REMAP_SLOT_FREE);
  ck_assert_uint_eq (tl_lookup (e, 14).state, REMAP_SLOT_FREE);
  /* ENOSPC is no media error: unit 12 is not marked anything. */
  ck_assert_uint_ne (tl_lookup (e, 12).state, REMAP_SLOT_MAPPED);
  remap_close (e);
  remap_backend_close (o);
  remap_backend_close (s);
}
END_TEST

static Suite *
parse_suite (void)
{
  Suite *s = suite_create ("parse");
  TCase *tc = tcase_create ("parse");

  tcase_add_test (tc, test_numbers);
  tcase_add_test (tc, test_escape);
  tcase_add_test (tc, test_unit_lists);
  tcase_add_test (tc, test_badblocks);
  tcase_add_test (tc, test_ddrescue);
  tcase_add_test (tc, test_fault_rules);
  tcase_add_test (tc, test_smartctl);
  tcase_add_test (tc, test_import_checks_first);
  tcase_add_test (tc, test_import_applies);
  tcase_add_test (tc, test_import_fails_half_way);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return tl_run (parse_suite ());
}
