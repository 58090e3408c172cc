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

#include "remap/control.h"
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

static bool
json_u64 (const char *s, const char *key, uint64_t *v)
{
  char pat[64];
  const char *p;

  snprintf (pat, sizeof pat, "\"%s\":", key);
  p = s ? strstr (s, pat) : NULL;
  if (!p)
    return false;
  *v = strtoull (p + strlen (pat), NULL, 10);
  return true;
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

/* Append the JSON array `key' of a chunk's answer ("u,u,u") to list. */
static void
add_units (const char *answer, const char *key, struct remap_buf *list,
           uint64_t *n)
{
  char pat[64];
  const char *b;

  snprintf (pat, sizeof pat, "\"%s\":[", key);
  b = answer ? strstr (answer, pat) : NULL;
  if (!b)
    return;
  b += strlen (pat);
  size_t len = strcspn (b, "]");
  if (len == 0)
    return;
  if (list->len)
    remap_buf_append (list, ",", 1);
  remap_buf_append (list, b, len);
  ++*n;
  for (size_t k = 0; k < len; k++)
    *n += b[k] == ',';
}

/* Count the items of "u,u,u". */
static uint64_t
count_units (const char *s)
{
  uint64_t n = *s != '\0';
  for (; *s; s++)
    n += *s == ',';
  return n;
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
  bool magic = false;

  if (!f)
    return -errno;
  while (fgets (line, sizeof line, f)) {
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
      remap_buf_printf (&st->bad, "%s", line + 4);
      st->nbad = count_units (line + 4);
    }
    else if (strncmp (line, "unrecorded ", 11) == 0 && line[11]) {
      remap_buf_printf (&st->unrec, "%s", line + 11);
      st->nunrec = count_units (line + 11);
    }
  }
  fclose (f);
  return magic ? 0 : -EINVAL;
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
    const char *g = out.data ? strstr (out.data, "\"geometry\":") : NULL;
    const char *u = out.data ? strstr (out.data, "\"uuid\":\"") : NULL;
    if (r == 0 && (!g || !u || !json_u64 (g, "unit", &unit)
                   || !json_u64 (out.data, "sectors", &sectors)))
      r = remap_set_error (&err, -EPROTO, "status --json lacks the geometry");
    if (r) {
      fprintf (stderr, "remapctl: scan: %s\n", err.msg);
      remap_buf_free (&out);
      return r == -EWOULDBLOCK ? EXIT_BUSY
        : r == -ECONNREFUSED || r == -EPROTO ? EXIT_CONTROL : EXIT_FAIL;
    }
    snprintf (uuid, sizeof uuid, "%.36s", u + 8);
    remap_buf_free (&out);
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
      rc = r == -ECONNREFUSED || r == -ECONNRESET || r == -EPROTO
        ? EXIT_CONTROL : EXIT_FAIL;
      break;
    }
    if (json_u64 (out.data, "read_units", &v))
      st.read += v;
    if (json_u64 (out.data, "skipped_units", &v))
      st.skipped += v;
    add_units (out.data, "bad_units", &st.bad, &st.nbad);
    add_units (out.data, "unrecorded_units", &st.unrec, &st.nunrec);
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
  if (json)
    printf ("{\"command\":\"scan\",\"complete\":%s,\"start_lba\":%" PRIu64
            ",\"end_lba\":%" PRIu64 ",\"next_lba\":%" PRIu64 ",\"read_units\":%"
            PRIu64 ",\"skipped_units\":%" PRIu64 ",\"bad_units\":[%s],"
            "\"unrecorded_units\":[%s]}\n", complete ? "true" : "false",
            st.start, st.end, st.next, st.read, st.skipped,
            st.bad.data ? st.bad.data : "", st.unrec.data ? st.unrec.data : "");
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
