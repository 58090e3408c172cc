/* remapctl scan: a paced surface scan of the origin.
 *
 * The scan is a loop of executor "scan LBA COUNT --json" commands (offline
 * on remapctl's own engine, online through the control socket), one chunk
 * of a few MiB at a time: the engine reads the units that are not
 * remapped, retries, and marks the ones that still fail pending.  Every
 * unit a read found failing is reported, also one the engine could not
 * record on the spare (full, or a read-only server): those are listed as
 * unrecorded, since they are pending only until the server stops.  Between
 * chunks remapctl sleeps to keep to --rate, draws the progress, and (with
 * --state FILE) records where it is, so that --resume continues from there
 * after an interruption (SIGINT/SIGTERM stop cleanly after the current
 * chunk).
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "remap/parse.h"
#include "remap/remap.h"
#include "remapctl.h"

static volatile sig_atomic_t stop_requested;

static void
on_signal (int sig)
{
  (void) sig;
  stop_requested = 1;
}

static int
run1 (struct remap_engine *e, const char *ctl, int argc, char **argv,
      struct remap_buf *out, struct remap_error *err)
{
  if (e)
    return remap_control_exec (e, argc, argv, out, err);
  return ctl_request (ctl, argc, argv, out, err);
}

/* A number with an optional size suffix (remap_parse_u64's grammar:
 * k, m, g ... powers of 1024, "KiB" and "KB" alike, or 0x hex). */
static bool
parse_size (const char *s, uint64_t *out)
{
  return remap_parse_u64 (s, REMAP_NUM_SUFFIX, "number", out, NULL) == 0;
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
fmt_eta (double s, char *buf, size_t len)
{
  if (s < 0 || s > 360000)
    snprintf (buf, len, "--:--:--");
  else
    snprintf (buf, len, "%u:%02u:%02u", (unsigned) s / 3600,
              (unsigned) s / 60 % 60, (unsigned) s % 60);
}

struct state {
  char uuid[40];
  uint64_t start, end, next, read, skipped;
  struct remap_buf bad;         /* "u,u,u" */
  uint64_t nbad;
  struct remap_buf unrec;       /* bad units not recorded on the spare */
  uint64_t nunrec;
};

/* Append the units of the array `key' of a chunk's answer to list
 * ("u,u,u").  false if the array is missing or holds something else. */
static bool
add_units (struct json_object *answer, const char *key,
           struct remap_buf *list, uint64_t *n)
{
  struct json_object *a = remap_json_array (answer, key);

  if (!a)
    return false;
  for (size_t i = 0; i < json_object_array_length (a); i++) {
    struct json_object *x = json_object_array_get_idx (a, i);
    uint64_t v;
    if (!json_object_is_type (x, json_type_int)
        || json_object_get_int64 (x) < 0)
      return false;
    v = json_object_get_uint64 (x);
    remap_buf_printf (list, "%s%" PRIu64, list->len ? "," : "", v);
    ++*n;
  }
  return true;
}

/* Read the list "u,u,u" (numbers by remap_scan_u64, no suffix), adding
 * each to a when a is not NULL.  The number of items, or -1 when the list
 * is damaged (a state file edited by hand or cut short). */
static int64_t
unit_list (const char *s, struct json_object *a)
{
  const char *p = s, *end = s + strlen (s);
  int64_t n = 0;
  uint64_t v;

  while (p < end) {
    if (remap_scan_u64 (&p, end, 0, &v) != 0)
      return -1;
    if (a)
      json_object_array_add (a, json_object_new_uint64 (v));
    n++;
    if (p < end && (*p != ',' || ++p == end))
      return -1;
  }
  return n;
}

/* "u,u,u" (already checked by load_state, or written by this file) as a
 * JSON array of numbers. */
static struct json_object *
unit_array (const char *list)
{
  struct json_object *a = json_object_new_array ();

  if (list)
    unit_list (list, a);
  return a;
}

static int
save_state (const char *path, const struct state *st)
{
  char tmp[4096];
  FILE *f;

  snprintf (tmp, sizeof tmp, "%s.tmp", path);
  f = fopen (tmp, "w");
  if (!f)
    return -errno;
  fprintf (f, "remap-scan 1\nuuid %s\nstart %" PRIu64 "\nend %" PRIu64
           "\nnext %" PRIu64 "\nread %" PRIu64 "\nskipped %" PRIu64
           "\nbad %s\nunrecorded %s\n", st->uuid, st->start, st->end,
           st->next, st->read, st->skipped, st->bad.data ? st->bad.data : "",
           st->unrec.data ? st->unrec.data : "");
  if (fflush (f) != 0 || fsync (fileno (f)) != 0) {
    int e = errno;
    fclose (f);
    return -e;
  }
  fclose (f);
  return rename (tmp, path) == 0 ? 0 : -errno;
}

/* "KEY NUMBER": 1 and *v set when line starts with key, 0 when it does
 * not, -1 when the number is damaged. */
static int
state_num (const char *line, const char *key, uint64_t *v)
{
  size_t n = strlen (key);

  if (strncmp (line, key, n) != 0 || line[n] != ' ')
    return 0;
  return remap_parse_u64 (line + n + 1, 0, key, v, NULL) == 0 ? 1 : -1;
}

static int
load_state (const char *path, struct state *st)
{
  const struct { const char *key; uint64_t *v; } nums[] = {
    { "start", &st->start }, { "end", &st->end }, { "next", &st->next },
    { "read", &st->read }, { "skipped", &st->skipped },
  };
  char line[1 << 16];
  FILE *f = fopen (path, "r");
  bool magic = false, damaged = false;

  if (!f)
    return -errno;
  while (!damaged && fgets (line, sizeof line, f)) {
    int found = 0;
    line[strcspn (line, "\n")] = '\0';
    for (size_t i = 0; i < sizeof nums / sizeof *nums && !found; i++)
      found = state_num (line, nums[i].key, nums[i].v);
    if (found < 0) {
      fclose (f);
      return -EINVAL;           /* a damaged number: not our state file */
    }
    if (found)
      ;
    else if (strcmp (line, "remap-scan 1") == 0)
      magic = true;
    else if (strncmp (line, "uuid ", 5) == 0)
      snprintf (st->uuid, sizeof st->uuid, "%.36s", line + 5);
    else if (strncmp (line, "bad ", 4) == 0 && line[4]) {
      int64_t n = unit_list (line + 4, NULL);
      damaged = n < 0;          /* a damaged list: refused below */
      remap_buf_printf (&st->bad, "%s", line + 4);
      st->nbad = (uint64_t) n;
    }
    else if (strncmp (line, "unrecorded ", 11) == 0 && line[11]) {
      int64_t n = unit_list (line + 11, NULL);
      damaged = n < 0;
      remap_buf_printf (&st->unrec, "%s", line + 11);
      st->nunrec = (uint64_t) n;
    }
  }
  fclose (f);
  return magic && !damaged ? 0 : -EINVAL;
}

int
scan_main (struct remap_engine *e, const char *ctl, int argc, char **argv)
{
  const char *pos[2] = { NULL, NULL }, *state_path = NULL;
  bool units = false, resume = false, json = false;
  uint64_t rate = 0, chunk = 4u << 20, unit = 0, sectors = 0, v;
  struct remap_error err = { 0 };
  struct remap_buf out = { 0 };
  struct state st = { .uuid = "" };
  char uuid[40] = "";
  int npos = 0, r, rc = EXIT_OK;
  bool tty = isatty (STDERR_FILENO);

  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp (a, "-u") == 0 || strcmp (a, "--unit-numbers") == 0)
      units = true;
    else if (strcmp (a, "--resume") == 0)
      resume = true;
    else if (strcmp (a, "--json") == 0)
      json = true;
    else if (strcmp (a, "--progress") == 0)
      tty = true;
    else if (strcmp (a, "--no-progress") == 0)
      tty = false;
    else if (strcmp (a, "--rate") == 0 || strcmp (a, "--chunk") == 0
             || strcmp (a, "--state") == 0) {
      if (i + 1 == argc) {
        fprintf (stderr, "remapctl: scan: %s needs a value\n", a);
        return EXIT_USAGE;
      }
      const char *val = argv[++i];
      if (strcmp (a, "--state") == 0)
        state_path = val;
      else if (!parse_size (val, strcmp (a, "--rate") == 0 ? &rate : &chunk)
               || (a[2] == 'c' && chunk < 512)) {
        fprintf (stderr, "remapctl: scan: bad size \"%s\" for %s (a number "
                 "with an optional K, M or G suffix)\n", val, a);
        return EXIT_USAGE;
      }
    }
    else if (a[0] == '-' && a[1]) {
      fprintf (stderr, "remapctl: scan: unknown option %s\n", a);
      return EXIT_USAGE;
    }
    else if (npos < 2)
      pos[npos++] = a;
    else {
      fprintf (stderr, "remapctl: scan: unexpected argument \"%s\"\n", a);
      return EXIT_USAGE;
    }
  }
  if (resume && !state_path) {
    fprintf (stderr, "remapctl: scan: --resume needs --state FILE (the file "
             "the interrupted scan wrote)\n");
    return EXIT_USAGE;
  }

  /* Geometry and identity. */
  {
    char *sa[] = { (char *) "status", (char *) "--json", NULL };
    r = run1 (e, ctl, 2, sa, &out, &err);
    struct json_object *st_json = r ? NULL
      : remap_json_parse (out.data, out.len);
    const char *u = remap_json_str (st_json, "spare.uuid");
    if (r == 0 && (!u || !remap_json_u64 (st_json, "geometry.unit", &unit)
                   || !remap_json_u64 (st_json, "origin.sectors", &sectors)
                   || unit < 512))
      r = remap_set_error (&err, -EPROTO, "status --json lacks the geometry "
                           "(spare.uuid, geometry.unit, origin.sectors)");
    if (r == 0)
      snprintf (uuid, sizeof uuid, "%.36s", u);
    json_object_put (st_json);
    remap_buf_free (&out);
    if (r) {
      fprintf (stderr, "remapctl: scan: %s\n", err.msg);
      return remapctl_exit_code (r);
    }
  }
  uint64_t spu = unit / 512;   /* sectors per unit */
  uint64_t start = 0, count = sectors;
  if (npos >= 1 && !parse_size (pos[0], &start)) {
    fprintf (stderr, "remapctl: scan: bad LBA \"%s\"\n", pos[0]);
    return EXIT_USAGE;
  }
  if (npos == 2 && (!parse_size (pos[1], &count) || count == 0)) {
    fprintf (stderr, "remapctl: scan: bad count \"%s\"\n", pos[1]);
    return EXIT_USAGE;
  }
  if (units) {
    /* Units to sectors, without wrapping 2^64 (2^61 units of 4 KiB were
     * LBA 0). */
    if (start > UINT64_MAX / spu || (npos == 2 && count > UINT64_MAX / spu)) {
      fprintf (stderr, "remapctl: scan: unit %s%s%s is past the end of the "
               "origin (%" PRIu64 " units)\n", pos[0], npos == 2 ? " count "
               : "", npos == 2 ? pos[1] : "", sectors / spu);
      return EXIT_USAGE;
    }
    start *= spu;
    count = npos == 2 ? count * spu : sectors;
  }
  if (start >= sectors) {
    fprintf (stderr, "remapctl: scan: start %" PRIu64 " is past the end of "
             "the origin (%" PRIu64 " sectors)\n", start, sectors);
    return EXIT_USAGE;
  }
  if (npos < 2 || count > sectors - start)
    count = sectors - start;

  st.start = start;
  st.end = start + count;
  st.next = start;
  snprintf (st.uuid, sizeof st.uuid, "%s", uuid);
  if (resume) {
    struct state old = { .uuid = "" };
    r = load_state (state_path, &old);
    if (r) {
      fprintf (stderr, "remapctl: scan: cannot resume from %s: %s\n",
               state_path, r == -EINVAL ? "not a scan state file"
               : strerror (-r));
      remap_buf_free (&old.bad);
      remap_buf_free (&old.unrec);
      return EXIT_FAIL;
    }
    if (strcmp (old.uuid, uuid) != 0) {
      fprintf (stderr, "remapctl: scan: %s belongs to another spare (uuid "
               "%s, this one is %s)\n", state_path, old.uuid, uuid);
      remap_buf_free (&old.bad);
      remap_buf_free (&old.unrec);
      return EXIT_FAIL;
    }
    if (npos == 0) {            /* the range of the interrupted scan */
      st.start = old.start;
      st.end = old.end > sectors ? sectors : old.end;
    }
    else if (old.start != st.start || old.end != st.end) {
      fprintf (stderr, "remapctl: scan: %s is for LBA %" PRIu64 "-%" PRIu64
               ", not this range; give no range to resume it\n", state_path,
               old.start, old.end - 1);
      remap_buf_free (&old.bad);
      remap_buf_free (&old.unrec);
      return EXIT_USAGE;
    }
    st.next = old.next < st.start ? st.start : old.next;
    st.read = old.read;
    st.skipped = old.skipped;
    st.bad = old.bad;
    st.nbad = old.nbad;
    st.unrec = old.unrec;
    st.nunrec = old.nunrec;
    if (!json)
      printf ("resuming the scan at LBA %" PRIu64 " (%" PRIu64 " bad units "
              "found before)\n", st.next, st.nbad);
  }

  struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;
  sigaction (SIGINT, &sa, &old_int);
  sigaction (SIGTERM, &sa, &old_term);

  /* With a rate, at most a quarter of a second of it per request, so the
   * pace is smooth and a stop is quick. */
  if (rate && chunk > rate / 4)
    chunk = rate / 4;
  uint64_t chunk_sectors = chunk / 512 < spu ? spu : chunk / 512;
  uint64_t resumed_at = st.next, total = st.end - st.start;
  double t0 = now_s (), last_line = t0;
  int last_decile = -1;

  while (st.next < st.end && !stop_requested) {
    uint64_t cend = st.next + chunk_sectors;
    cend = (cend + spu - 1) / spu * spu;        /* end on a unit boundary */
    if (cend > st.end)
      cend = st.end;
    char lba[32], cnt[32];
    char *ca[] = { (char *) "scan", lba, cnt, (char *) "--json", NULL };
    snprintf (lba, sizeof lba, "%" PRIu64, st.next);
    snprintf (cnt, sizeof cnt, "%" PRIu64, cend - st.next);
    remap_buf_reset (&out);
    r = run1 (e, ctl, 4, ca, &out, &err);
    if (r) {
      fprintf (stderr, "%sremapctl: scan: at LBA %" PRIu64 ": %s\n",
               tty ? "\n" : "", st.next, err.msg);
      /* The control socket's statuses as for any command (a refused
       * request, ERR 87, is 4 too); anything else is a failed scan. */
      rc = remapctl_exit_code (r) == EXIT_CONTROL ? EXIT_CONTROL : EXIT_FAIL;
      break;
    }
    struct json_object *ans = remap_json_parse (out.data, out.len);
    bool good = ans != NULL;
    if (good && remap_json_u64 (ans, "read_units", &v))
      st.read += v;
    else
      good = false;
    if (good && remap_json_u64 (ans, "skipped_units", &v))
      st.skipped += v;
    else
      good = false;
    good = good && add_units (ans, "bad_units", &st.bad, &st.nbad)
      && add_units (ans, "unrecorded_units", &st.unrec, &st.nunrec);
    json_object_put (ans);
    if (!good) {
      fprintf (stderr, "%sremapctl: scan: at LBA %" PRIu64 ": the answer "
               "is not the JSON of a scan (a server of another version?)\n",
               tty ? "\n" : "", st.next);
      rc = EXIT_CONTROL;
      break;
    }
    st.next = cend;
    if (state_path && (r = save_state (state_path, &st)) != 0) {
      fprintf (stderr, "remapctl: scan: cannot write %s: %s\n", state_path,
               strerror (-r));
      rc = EXIT_FAIL;
      break;
    }

    /* Progress. */
    double t = now_s (), el = t - t0;
    double done = (double) (st.next - st.start) / (double) total;
    double rate_now = el > 0 ? (st.next - resumed_at) * 512.0 / el : 0;
    double eta = rate_now > 0 ? (st.end - st.next) * 512.0 / rate_now : -1;
    char etas[32];
    fmt_eta (eta, etas, sizeof etas);
    if (tty) {
      char bar[41];
      int fill = (int) (done * 40);
      for (int k = 0; k < 40; k++)
        bar[k] = k < fill ? '#' : '.';
      bar[40] = '\0';
      fprintf (stderr, "\r[%s] %5.1f%%  %7.1f MiB/s  ETA %s  bad %" PRIu64
               "  ", bar, done * 100, rate_now / 1048576, etas, st.nbad);
    }
    else if ((int) (done * 10) != last_decile || t - last_line >= 10) {
      last_decile = (int) (done * 10);
      last_line = t;
      fprintf (stderr, "scan: %.1f%% (LBA %" PRIu64 " of %" PRIu64 "), %.1f "
               "MiB/s, ETA %s, bad units %" PRIu64 "\n", done * 100,
               st.next, st.end, rate_now / 1048576, etas, st.nbad);
    }

    /* Pace. */
    if (rate && st.next < st.end) {
      double want = (st.next - resumed_at) * 512.0 / (double) rate;
      double ahead = want - (now_s () - t0);
      while (ahead > 0 && !stop_requested) {
        double s = ahead > 0.2 ? 0.2 : ahead;
        struct timespec ts = { (time_t) s, (long) ((s - (time_t) s) * 1e9) };
        nanosleep (&ts, NULL);
        ahead -= s;
      }
    }
  }
  if (tty)
    fputc ('\n', stderr);
  sigaction (SIGINT, &old_int, NULL);
  sigaction (SIGTERM, &old_term, NULL);

  bool complete = st.next >= st.end;
  if (json) {
    struct json_object *o = json_object_new_object ();
    json_object_object_add (o, "command", json_object_new_string ("scan"));
    json_object_object_add (o, "complete", json_object_new_boolean (complete));
    json_object_object_add (o, "start_lba", json_object_new_uint64 (st.start));
    json_object_object_add (o, "end_lba", json_object_new_uint64 (st.end));
    json_object_object_add (o, "next_lba", json_object_new_uint64 (st.next));
    json_object_object_add (o, "read_units", json_object_new_uint64 (st.read));
    json_object_object_add (o, "skipped_units",
                            json_object_new_uint64 (st.skipped));
    json_object_object_add (o, "bad_units", unit_array (st.bad.data));
    json_object_object_add (o, "unrecorded_units",
                            unit_array (st.unrec.data));
    const char *t = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
    printf ("%s\n", t ? t : "{}");
    json_object_put (o);
  }
  else {
    printf ("scan %s: LBA %" PRIu64 "-%" PRIu64 ", %" PRIu64 " units read, %"
            PRIu64 " skipped (already remapped), %" PRIu64 " bad unit(s)%s%s\n",
            complete ? "complete" : "stopped", st.start, st.next - 1, st.read,
            st.skipped, st.nbad, st.nbad ? " now pending: " : "",
            st.bad.data ? st.bad.data : "");
    if (st.nunrec)
      printf ("%" PRIu64 " of them could not be recorded on the spare (it is "
              "full, or the server is read-only) and are pending only until "
              "the engine stops: %s\n", st.nunrec, st.unrec.data);
  }
  if (!complete && rc == EXIT_OK) {
    rc = EXIT_STOPPED;
    if (state_path)
      fprintf (stderr, "remapctl: scan: stopped at LBA %" PRIu64 "; resume "
               "with: remapctl scan --resume --state %s ...\n", st.next,
               state_path);
    else
      fprintf (stderr, "remapctl: scan: stopped at LBA %" PRIu64 "; continue "
               "with: remapctl scan %" PRIu64 " %" PRIu64 " ...\n", st.next,
               st.next, st.end - st.next);
  }
  if (complete && state_path)
    unlink (state_path);
  remap_buf_free (&st.bad);
  remap_buf_free (&st.unrec);
  remap_buf_free (&out);
  return rc;
}
