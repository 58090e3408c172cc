/* remap: scale benchmark (issue 9, "Benchmark").  Not a test: it measures
 * and prints, it never fails on a number.  scripts/bench-scale.sh runs it
 * over the matrix {64 GiB sparse file, 1 TiB NBD memory export} x {0,
 * 1,000, 1,000,000 remaps}.
 *
 *   bench_scale [options] ORIGIN SPARE
 *
 * ORIGIN and SPARE are paths or NBD URIs (remap_backend_open).  Options:
 *
 *   --unit N          unit in bytes (4096)
 *   --remaps LIST     remaps already in the table, comma-separated
 *                     (0,1000,1000000); one configuration each
 *   --commits C       remap commits timed per configuration (1000)
 *   --opens N         warm opens timed, the median is reported (5)
 *   --sparse          format a file spare without allocating it
 *                     (remap_format_opts.sparse: no host space needed)
 *   --populate MODE   copy (default: remap_remap with flags 0, the unit's
 *                     data is read from the origin, nothing is lost) or
 *                     nocopy (REMAP_REMAP_NOCOPY: no origin read, but every
 *                     granule of the unit is recorded as lost, and the
 *                     engine keeps lost masks in a side map: about 30 more
 *                     bytes per remap than real remaps cost)
 *   --label TEXT      what to call the spare in the output (its kind)
 *
 * For each configuration (R remaps), in this order:
 *
 *   format    remap_format (force, so the same spare can be reused) through
 *             a counting wrapper around the spare: wall time, bytes and
 *             writes sent to the spare, flushes, bytes read.
 *   populate  R remaps, NOT measured for the table: remap_remap of origin
 *             units u = i * stride (i < R) spread over the whole origin,
 *             through a wrapper whose flush is a no-op (one real flush at
 *             the end), which is what makes 1,000,000 commits affordable;
 *             its rate is printed.
 *   open      remap_open, then remap_close, with no wrapper: the first open
 *             after dropping the page cache (cold), then N more (warm,
 *             median).  Cold: posix_fadvise (DONTNEED) on a file spare (and
 *             a file origin) and, when root, /proc/sys/vm/drop_caches.  An
 *             NBD export has no cache on this side: every open is a fresh
 *             connection, and "cold" is just the first open after the
 *             population (on a fresh connection, like every other).
 *             The time to open the backends (connect) is reported apart.
 *   bytes     one more open with a counting wrapper around the spare:
 *             bytes and reads issued by remap_open.
 *   memory    a child process (this program, re-executed) opens the
 *             backends, then measures VmRSS (/proc/self/status) and the
 *             heap in use (mallinfo2: uordblks + hblkhd) before and after
 *             remap_open: the engine's own memory, without what earlier
 *             steps left in this process's heap.
 *   commits   on a freshly opened engine, C individual remap_remap calls
 *             (flags 0: copy from the origin; real flushes, no wrapper) on
 *             units the population did not touch: p50, p99, mean, and the
 *             metadata units written per commit (remap_get_counters).
 *
 * Each configuration prints one machine-readable line
 *   scale spare=... remaps=R key=value ...
 * and a human-readable block; when the list holds 0 and larger counts, a
 * line per larger count gives the memory per remap beyond the empty case.
 * Progress goes to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "remap/remap.h"

#define MAX_CONFIGS 16

static uint32_t unit = 4096;
static unsigned commits = 1000;
static unsigned nopens = 5;
static bool sparse;
static bool populate_copy = true;
static const char *label;

static void die (const char *what, int r, const struct remap_error *err)
  __attribute__ ((noreturn));

static void
die (const char *what, int r, const struct remap_error *err)
{
  fprintf (stderr, "bench_scale: %s: %s%s%s\n", what, strerror (-r),
           err && err->msg[0] ? ": " : "", err ? err->msg : "");
  exit (1);
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* q-quantile of v[0..n) (sorts v): nearest rank. */
static double
quantile (double *v, size_t n, double q)
{
  qsort (v, n, sizeof *v, cmp_double);
  size_t i = (size_t) (q * (double) (n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

/* ---- a counting wrapper backend ------------------------------------- *
 *
 * Counts what goes through it; with noflush, flush does nothing (the
 * population's shortcut) and close makes one real flush before closing
 * the inner backend. */

struct counting {
  struct remap_backend base;    /* first: the vtable base */
  struct remap_backend *inner;
  bool noflush;
  atomic_uint_fast64_t rbytes, reads, wbytes, writes, zbytes, flushes;
};

static int
c_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  struct counting *c = (struct counting *) b;
  atomic_fetch_add (&c->rbytes, len);
  atomic_fetch_add (&c->reads, 1);
  return remap_backend_pread (c->inner, buf, len, off);
}

static int
c_pwrite (struct remap_backend *b, const void *buf, size_t len, uint64_t off)
{
  struct counting *c = (struct counting *) b;
  atomic_fetch_add (&c->wbytes, len);
  atomic_fetch_add (&c->writes, 1);
  return remap_backend_pwrite (c->inner, buf, len, off);
}

static int
c_flush (struct remap_backend *b)
{
  struct counting *c = (struct counting *) b;
  atomic_fetch_add (&c->flushes, 1);
  return c->noflush ? 0 : remap_backend_flush (c->inner);
}

static int
c_zero (struct remap_backend *b, uint64_t len, uint64_t off, bool may_trim)
{
  struct counting *c = (struct counting *) b;
  atomic_fetch_add (&c->zbytes, len);
  atomic_fetch_add (&c->writes, 1);
  return remap_backend_zero (c->inner, len, off, may_trim);
}

static int
c_trim (struct remap_backend *b, uint64_t len, uint64_t off)
{
  return remap_backend_trim (((struct counting *) b)->inner, len, off);
}

static int
c_lock (struct remap_backend *b, struct remap_error *err)
{
  return remap_backend_lock (((struct counting *) b)->inner, err);
}

static int
c_preallocate (struct remap_backend *b, struct remap_error *err)
{
  return remap_backend_preallocate (((struct counting *) b)->inner, err);
}

static int
c_drop_cache (struct remap_backend *b, uint64_t len, uint64_t off)
{
  return remap_backend_drop_cache (((struct counting *) b)->inner, len, off);
}

static void
c_status (struct remap_backend *b, struct remap_backend_status *st)
{
  remap_backend_status (((struct counting *) b)->inner, st);
}

static void
c_close (struct remap_backend *b)
{
  struct counting *c = (struct counting *) b;
  if (c->noflush) {
    int r = remap_backend_flush (c->inner);
    if (r)
      die ("flush after the population", r, NULL);
  }
  remap_backend_close (c->inner);
  free (b);
}

static const struct remap_backend_ops counting_ops = {
  .kind = "counting",
  .pread = c_pread,
  .pwrite = c_pwrite,
  .flush = c_flush,
  .zero = c_zero,
  .trim = c_trim,
  .lock = c_lock,
  .close = c_close,
  .preallocate = c_preallocate,
  .drop_cache = c_drop_cache,
  .status = c_status,
};

/* Wrap inner; closing the wrapper closes inner. */
static struct counting *
counting_wrap (struct remap_backend *inner, bool noflush)
{
  struct counting *c = calloc (1, sizeof *c);
  if (!c)
    die ("calloc", -ENOMEM, NULL);
  c->base = *inner;             /* size, alignment, name, identity */
  c->base.ops = &counting_ops;
  c->inner = inner;
  c->noflush = noflush;
  return c;
}

/* ---- helpers ---------------------------------------------------------- */

static struct remap_backend *
open_backend (const char *spec)
{
  struct remap_backend *b;
  struct remap_error err = { 0 };
  int r = remap_backend_open (spec, 0, &b, &err);
  if (r)
    die (spec, r, &err);
  return b;
}

static void
open_both (const char *ospec, const char *sspec, struct remap_backend **o,
           struct remap_backend **s)
{
  *o = open_backend (ospec);
  *s = open_backend (sspec);
}

static struct remap_engine *
engine_open (struct remap_backend *o, struct remap_backend *s,
             const char *what)
{
  struct remap_engine *e;
  struct remap_error err = { 0 };
  struct remap_open_opts oo = { 0 };
  int r = remap_open (o, s, &oo, &e, &err);
  if (r) {
    fprintf (stderr, "bench_scale: remap_open (%s) failed\n", what);
    die ("open", r, &err);
  }
  return e;
}

static uint64_t
status_kib (const char *key)
{
  FILE *f = fopen ("/proc/self/status", "r");
  char line[256];
  size_t kl = strlen (key);
  uint64_t v = 0;
  if (!f)
    return 0;
  while (fgets (line, sizeof line, f))
    if (strncmp (line, key, kl) == 0 && line[kl] == ':') {
      v = strtoull (line + kl + 1, NULL, 10);
      break;
    }
  fclose (f);
  return v;
}

static uint64_t
heap_in_use (void)
{
  struct mallinfo2 mi = mallinfo2 ();
  return mi.uordblks + mi.hblkhd;
}

static bool
is_file (const char *spec)
{
  return !remap_is_nbd_uri (spec);
}

static void
fadvise_dontneed (const char *path)
{
  int fd = open (path, O_RDONLY);
  if (fd >= 0) {
    posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
    close (fd);
  }
}

/* Returns a description of what was done. */
static const char *
drop_caches (const char *ospec, const char *sspec)
{
  static char what[128];
  bool any_file = is_file (ospec) || is_file (sspec);
  if (!any_file)
    return "nbd: fresh connection, nothing cached on this side";
  sync ();
  if (is_file (sspec))
    fadvise_dontneed (sspec);
  if (is_file (ospec))
    fadvise_dontneed (ospec);
  snprintf (what, sizeof what, "posix_fadvise DONTNEED");
  if (geteuid () == 0) {
    int fd = open ("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd >= 0) {
      if (write (fd, "1", 1) == 1)
        snprintf (what, sizeof what, "posix_fadvise DONTNEED + drop_caches");
      close (fd);
    }
  }
  return what;
}

/* ---- the memory probe (a child process) ------------------------------- */

/* bench_scale --probe-open ORIGIN SPARE: open the backends, then the
 * engine, and print the engine's memory. */
static int
probe_open (const char *ospec, const char *sspec)
{
  struct remap_backend *o, *s;
  open_both (ospec, sspec, &o, &s);
  malloc_trim (0);
  uint64_t rss0 = status_kib ("VmRSS"), h0 = heap_in_use ();
  struct remap_engine *e = engine_open (o, s, "memory probe");
  uint64_t rss1 = status_kib ("VmRSS"), h1 = heap_in_use ();
  uint64_t hwm = status_kib ("VmHWM");
  printf ("rss_bytes=%lld heap_bytes=%lld rss_total_bytes=%llu "
          "hwm_total_bytes=%llu\n",
          (long long) (rss1 - rss0) * 1024, (long long) (h1 - h0),
          (unsigned long long) rss1 * 1024, (unsigned long long) hwm * 1024);
  remap_close (e);
  return 0;
}

struct mem {
  long long rss, heap;
  unsigned long long rss_total, hwm_total;
};

static struct mem
run_probe (const char *self, const char *ospec, const char *sspec)
{
  struct mem m = { -1, -1, 0, 0 };
  int pfd[2];
  if (pipe (pfd) != 0)
    die ("pipe", -errno, NULL);
  fflush (NULL);
  pid_t pid = fork ();
  if (pid < 0)
    die ("fork", -errno, NULL);
  if (pid == 0) {
    dup2 (pfd[1], 1);
    close (pfd[0]);
    close (pfd[1]);
    execl (self, self, "--probe-open", ospec, sspec, (char *) NULL);
    _exit (127);
  }
  close (pfd[1]);
  char buf[512] = "";
  size_t got = 0;
  ssize_t n;
  while (got < sizeof buf - 1
         && (n = read (pfd[0], buf + got, sizeof buf - 1 - got)) > 0)
    got += (size_t) n;
  buf[got] = 0;
  close (pfd[0]);
  int st;
  waitpid (pid, &st, 0);
  if (!WIFEXITED (st) || WEXITSTATUS (st) != 0
      || sscanf (buf, "rss_bytes=%lld heap_bytes=%lld rss_total_bytes=%llu "
                 "hwm_total_bytes=%llu", &m.rss, &m.heap, &m.rss_total,
                 &m.hwm_total) != 4)
    fprintf (stderr, "bench_scale: the memory probe failed (status %d)\n",
             st);
  return m;
}

/* ---- one configuration ------------------------------------------------ */

struct result {
  uint64_t remaps;
  /* format */
  double format_s;
  uint64_t format_wbytes, format_writes, format_zbytes, format_flushes;
  uint64_t format_rbytes;
  /* layout */
  uint64_t spare_units, table_blocks, map_units, copies, usable_units;
  /* populate */
  double populate_s;
  /* open */
  double connect_ms, open_cold_ms, open_warm_ms, open_warm_min_ms,
    open_warm_max_ms, close_ms;
  const char *cold_how;
  uint64_t open_rbytes, open_reads, open_wbytes;
  /* memory */
  struct mem mem;
  /* commits */
  double commit_p50_ms, commit_p99_ms, commit_mean_ms, commit_max_ms;
  double commit_meta_units;
  uint64_t mapped_after;
};

static uint64_t stride;

static uint64_t
nth_unit (uint64_t i)
{
  return i * stride;
}

static void
do_format (const char *ospec, const char *sspec, struct result *res)
{
  struct remap_backend *o, *s;
  struct remap_error err = { 0 };
  struct remap_format_opts fo;
  open_both (ospec, sspec, &o, &s);
  struct counting *c = counting_wrap (s, false);
  remap_format_opts_init (&fo);
  fo.unit = unit;
  fo.force = true;              /* the same spare serves every row */
  fo.sparse = sparse;
  fo.origin_label = "bench-scale-origin";
  double t0 = now ();
  int r = remap_format (o, &c->base, &fo, &err);
  res->format_s = now () - t0;
  if (r)
    die ("remap_format", r, &err);
  res->format_wbytes = atomic_load (&c->wbytes);
  res->format_zbytes = atomic_load (&c->zbytes);
  res->format_writes = atomic_load (&c->writes);
  res->format_flushes = atomic_load (&c->flushes);
  res->format_rbytes = atomic_load (&c->rbytes);
  remap_backend_close (&c->base);
  remap_backend_close (o);
}

static void
do_populate (const char *ospec, const char *sspec, struct result *res)
{
  struct remap_backend *o, *s;
  struct remap_error err = { 0 };
  uint64_t R = res->remaps;
  open_both (ospec, sspec, &o, &s);
  struct counting *co = counting_wrap (o, true);
  struct counting *cs = counting_wrap (s, true);
  struct remap_engine *e = engine_open (&co->base, &cs->base, "populate");
  struct remap_info info;
  remap_get_info (e, &info);
  res->spare_units = info.layout.spare_units;
  res->table_blocks = info.layout.table_blocks;
  res->map_units = info.layout.map_units;
  res->copies = info.layout.copies;
  res->usable_units = info.layout.usable_units;
  if (R + commits > info.layout.usable_units) {
    fprintf (stderr, "bench_scale: %llu remaps + %u commits do not fit "
             "%llu usable spare units\n", (unsigned long long) R, commits,
             (unsigned long long) info.layout.usable_units);
    exit (1);
  }
  unsigned flags = populate_copy ? 0 : REMAP_REMAP_NOCOPY;
  double t0 = now (), last = t0;
  for (uint64_t i = 0; i < R; i++) {
    int r = remap_remap (e, nth_unit (i), flags, &err);
    if (r) {
      fprintf (stderr, "bench_scale: populate: remap_remap (unit %llu, "
               "the %llu-th) failed\n", (unsigned long long) nth_unit (i),
               (unsigned long long) i + 1);
      die ("remap_remap", r, &err);
    }
    if ((i & 1023) == 1023) {
      double t = now ();
      if (t - last >= 10) {
        double rate = (double) (i + 1) / (t - t0);
        fprintf (stderr, "bench_scale:   populate %llu/%llu remaps, "
                 "%.0f/s, %.0f s left\n", (unsigned long long) i + 1,
                 (unsigned long long) R, rate, (double) (R - i - 1) / rate);
        last = t;
      }
    }
  }
  int r = remap_close (e);      /* closes the wrappers: one real flush */
  res->populate_s = now () - t0;
  if (r)
    die ("close after the population", r, NULL);
}

static void
do_opens (const char *ospec, const char *sspec, struct result *res)
{
  double *warm = calloc (nopens, sizeof *warm);
  double *conn = calloc (nopens + 1, sizeof *conn);
  double *closes = calloc (nopens + 1, sizeof *closes);
  if (!warm || !conn || !closes)
    die ("calloc", -ENOMEM, NULL);

  res->cold_how = drop_caches (ospec, sspec);
  for (unsigned i = 0; i <= nopens; i++) {
    struct remap_backend *o, *s;
    double t0 = now ();
    open_both (ospec, sspec, &o, &s);
    double t1 = now ();
    struct remap_engine *e = engine_open (o, s, i ? "warm" : "cold");
    double t2 = now ();
    int r = remap_close (e);
    double t3 = now ();
    if (r)
      die ("remap_close", r, NULL);
    conn[i] = (t1 - t0) * 1e3;
    closes[i] = (t3 - t2) * 1e3;
    if (i == 0)
      res->open_cold_ms = (t2 - t1) * 1e3;
    else
      warm[i - 1] = (t2 - t1) * 1e3;
  }
  res->open_warm_ms = quantile (warm, nopens, 0.5);
  res->open_warm_min_ms = warm[0];
  res->open_warm_max_ms = warm[nopens - 1];
  res->connect_ms = quantile (conn, nopens + 1, 0.5);
  res->close_ms = quantile (closes, nopens + 1, 0.5);
  free (warm);
  free (conn);
  free (closes);

  /* What an open reads: one more, through a counting wrapper. */
  struct remap_backend *o, *s;
  open_both (ospec, sspec, &o, &s);
  struct counting *c = counting_wrap (s, false);
  struct remap_engine *e = engine_open (o, &c->base, "counted");
  res->open_rbytes = atomic_load (&c->rbytes);
  res->open_reads = atomic_load (&c->reads);
  res->open_wbytes = atomic_load (&c->wbytes) + atomic_load (&c->zbytes);
  remap_close (e);
}

static void
do_commits (const char *ospec, const char *sspec, struct result *res)
{
  struct remap_backend *o, *s;
  struct remap_error err = { 0 };
  struct remap_counters c0, c1;
  double *ms = calloc (commits, sizeof *ms);
  double sum = 0;
  if (!ms)
    die ("calloc", -ENOMEM, NULL);
  open_both (ospec, sspec, &o, &s);
  struct remap_engine *e = engine_open (o, s, "commits");
  remap_get_counters (e, &c0);
  for (unsigned i = 0; i < commits; i++) {
    uint64_t u = nth_unit (res->remaps + i);
    double t0 = now ();
    int r = remap_remap (e, u, 0, &err);
    ms[i] = (now () - t0) * 1e3;
    sum += ms[i];
    if (r) {
      fprintf (stderr, "bench_scale: commit %u (unit %llu) failed\n", i,
               (unsigned long long) u);
      die ("remap_remap", r, &err);
    }
  }
  remap_get_counters (e, &c1);
  res->mapped_after = c1.reallocated_units;
  res->commit_meta_units =
    (double) (c1.meta_write_units - c0.meta_write_units) / commits;
  res->commit_mean_ms = sum / commits;
  res->commit_p50_ms = quantile (ms, commits, 0.5);
  res->commit_p99_ms = quantile (ms, commits, 0.99);
  res->commit_max_ms = ms[commits - 1];
  free (ms);
  int r = remap_close (e);
  if (r)
    die ("remap_close after the commits", r, NULL);
}

static void
human_bytes (double b, char *out, size_t n)
{
  const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
  int i = 0;
  while (b >= 1024 && i < 4) {
    b /= 1024;
    i++;
  }
  snprintf (out, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void
print_result (const char *spare_label, uint64_t spare_size,
              const struct result *r)
{
  printf ("scale spare=%s spare_bytes=%llu unit=%u remaps=%llu "
          "populate=%s sparse=%d commits=%u "
          "spare_units=%llu table_blocks=%llu map_units=%llu copies=%llu "
          "format_s=%.6f format_written_bytes=%llu format_zeroed_bytes=%llu "
          "format_writes=%llu format_flushes=%llu format_read_bytes=%llu "
          "populate_s=%.3f "
          "connect_ms=%.3f open_cold_ms=%.3f open_warm_ms=%.3f "
          "open_warm_min_ms=%.3f open_warm_max_ms=%.3f close_ms=%.3f "
          "open_read_bytes=%llu open_reads=%llu open_written_bytes=%llu "
          "rss_bytes=%lld heap_bytes=%lld rss_total_bytes=%llu "
          "commit_p50_ms=%.3f commit_p99_ms=%.3f commit_mean_ms=%.3f "
          "commit_max_ms=%.3f commit_meta_units=%.2f mapped_after=%llu\n",
          spare_label, (unsigned long long) spare_size, unit,
          (unsigned long long) r->remaps,
          populate_copy ? "copy" : "nocopy", sparse, commits,
          (unsigned long long) r->spare_units,
          (unsigned long long) r->table_blocks,
          (unsigned long long) r->map_units, (unsigned long long) r->copies,
          r->format_s, (unsigned long long) r->format_wbytes,
          (unsigned long long) r->format_zbytes,
          (unsigned long long) r->format_writes,
          (unsigned long long) r->format_flushes,
          (unsigned long long) r->format_rbytes, r->populate_s,
          r->connect_ms, r->open_cold_ms, r->open_warm_ms,
          r->open_warm_min_ms, r->open_warm_max_ms, r->close_ms,
          (unsigned long long) r->open_rbytes,
          (unsigned long long) r->open_reads,
          (unsigned long long) r->open_wbytes, r->mem.rss, r->mem.heap,
          r->mem.rss_total, r->commit_p50_ms, r->commit_p99_ms,
          r->commit_mean_ms, r->commit_max_ms, r->commit_meta_units,
          (unsigned long long) r->mapped_after);

  char fw[32], orb[32], rss[32], heap[32];
  human_bytes ((double) r->format_wbytes, fw, sizeof fw);
  human_bytes ((double) r->open_rbytes, orb, sizeof orb);
  human_bytes ((double) r->mem.rss, rss, sizeof rss);
  human_bytes ((double) r->mem.heap, heap, sizeof heap);
  printf ("#   %s, %llu remaps:\n"
          "#     format   %.3f s, %s written in %llu writes, %llu flushes\n"
          "#     populate %.1f s (%.0f remaps/s, %s, flush a no-op; "
          "not part of any figure)\n"
          "#     open     cold %.1f ms (%s), warm %.1f ms (median of %u, "
          "%.1f..%.1f), connect %.1f ms, close %.1f ms;"
          " reads %s in %llu reads\n"
          "#     memory   RSS +%s, heap +%s (engine only, child process)\n"
          "#     commit   p50 %.3f ms, p99 %.3f ms, mean %.3f ms, max %.3f ms,"
          " %.2f metadata units each (%u commits, real flushes)\n",
          spare_label, (unsigned long long) r->remaps, r->format_s, fw,
          (unsigned long long) r->format_writes,
          (unsigned long long) r->format_flushes, r->populate_s,
          r->populate_s > 0 ? (double) r->remaps / r->populate_s : 0.0,
          populate_copy ? "copy" : "NOCOPY", r->open_cold_ms, r->cold_how,
          r->open_warm_ms, nopens, r->open_warm_min_ms, r->open_warm_max_ms,
          r->connect_ms, r->close_ms, orb,
          (unsigned long long) r->open_reads, rss, heap, r->commit_p50_ms,
          r->commit_p99_ms, r->commit_mean_ms, r->commit_max_ms,
          r->commit_meta_units, commits);
  fflush (stdout);
}

/* ---- main ---------------------------------------------------------------- */

static void
usage (void)
{
  fprintf (stderr,
           "usage: bench_scale [--unit N] [--remaps N,N,...] [--commits C]\n"
           "                   [--opens N] [--sparse] [--populate nocopy|copy]"
           "\n                   [--label TEXT] ORIGIN SPARE\n");
  exit (2);
}

int
main (int argc, char **argv)
{
  uint64_t configs[MAX_CONFIGS] = { 0, 1000, 1000000 };
  size_t nconfigs = 3;
  static const struct option longopts[] = {
    { "unit", required_argument, NULL, 'u' },
    { "remaps", required_argument, NULL, 'r' },
    { "commits", required_argument, NULL, 'c' },
    { "opens", required_argument, NULL, 'n' },
    { "sparse", no_argument, NULL, 's' },
    { "populate", required_argument, NULL, 'p' },
    { "label", required_argument, NULL, 'l' },
    { "probe-open", no_argument, NULL, 'P' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  bool probe = false;
  int opt;

  while ((opt = getopt_long (argc, argv, "", longopts, NULL)) != -1) {
    switch (opt) {
    case 'u':
      unit = (uint32_t) strtoul (optarg, NULL, 0);
      break;
    case 'r':
      nconfigs = 0;
      for (char *p = optarg; *p && nconfigs < MAX_CONFIGS;) {
        configs[nconfigs++] = strtoull (p, &p, 0);
        if (*p == ',')
          p++;
        else if (*p)
          usage ();
      }
      break;
    case 'c':
      commits = (unsigned) strtoul (optarg, NULL, 0);
      break;
    case 'n':
      nopens = (unsigned) strtoul (optarg, NULL, 0);
      break;
    case 's':
      sparse = true;
      break;
    case 'p':
      if (strcmp (optarg, "copy") == 0)
        populate_copy = true;
      else if (strcmp (optarg, "nocopy") == 0)
        populate_copy = false;
      else
        usage ();
      break;
    case 'l':
      label = optarg;
      break;
    case 'P':
      probe = true;
      break;
    default:
      usage ();
    }
  }
  if (argc - optind != 2)
    usage ();
  const char *ospec = argv[optind], *sspec = argv[optind + 1];
  if (probe)
    return probe_open (ospec, sspec);
  if (commits == 0)
    commits = 1;
  if (nopens == 0)
    nopens = 1;

  /* /proc/self/exe: the memory probe re-executes this very binary. */
  char self[4096];
  ssize_t sl = readlink ("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0)
    die ("readlink /proc/self/exe", -errno, NULL);
  self[sl] = 0;

  struct remap_backend *o, *s;
  open_both (ospec, sspec, &o, &s);
  uint64_t origin_units = (o->size + unit - 1) / unit;
  uint64_t spare_size = s->size;
  if (!label)
    label = s->ops->kind;
  remap_backend_close (o);
  remap_backend_close (s);

  uint64_t need = 0;
  for (size_t i = 0; i < nconfigs; i++)
    need = configs[i] + commits > need ? configs[i] + commits : need;
  stride = origin_units / need;
  if (stride == 0)
    die ("the origin has fewer units than remaps + commits", -EINVAL, NULL);

  char ssz[32], osz[32];
  human_bytes ((double) spare_size, ssz, sizeof ssz);
  human_bytes ((double) origin_units * unit, osz, sizeof osz);
  printf ("# remap scale benchmark: spare %s (%s, %s), origin %s (%s), "
          "unit %u, %u commits timed, %u warm opens; origin units remapped: "
          "i * %llu\n", sspec, label, ssz, ospec, osz, unit, commits, nopens,
          (unsigned long long) stride);
  printf ("# population (not measured): remap_remap (%s) through a wrapper "
          "whose flush is a no-op, one real flush at the end\n",
          populate_copy ? "flags 0, copying from the origin"
          : "REMAP_REMAP_NOCOPY: every granule recorded as lost");
  fflush (stdout);

  struct result res[MAX_CONFIGS];
  memset (res, 0, sizeof res);
  for (size_t i = 0; i < nconfigs; i++) {
    struct result *r = &res[i];
    r->remaps = configs[i];
    fprintf (stderr, "bench_scale: [%s, %llu remaps] format\n", label,
             (unsigned long long) r->remaps);
    do_format (ospec, sspec, r);
    fprintf (stderr, "bench_scale: [%s, %llu remaps] format took %.3f s; "
             "populate\n", label, (unsigned long long) r->remaps,
             r->format_s);
    do_populate (ospec, sspec, r);
    fprintf (stderr, "bench_scale: [%s, %llu remaps] populated in %.1f s; "
             "opens\n", label, (unsigned long long) r->remaps, r->populate_s);
    do_opens (ospec, sspec, r);
    fprintf (stderr, "bench_scale: [%s, %llu remaps] memory probe\n", label,
             (unsigned long long) r->remaps);
    r->mem = run_probe (self, ospec, sspec);
    fprintf (stderr, "bench_scale: [%s, %llu remaps] %u commits\n", label,
             (unsigned long long) r->remaps, commits);
    do_commits (ospec, sspec, r);
    print_result (label, spare_size, r);
  }

  /* Memory per remap beyond the empty case. */
  const struct result *empty = NULL;
  for (size_t i = 0; i < nconfigs; i++)
    if (res[i].remaps == 0)
      empty = &res[i];
  for (size_t i = 0; empty && i < nconfigs; i++) {
    const struct result *r = &res[i];
    if (r->remaps == 0)
      continue;
    double n = (double) r->remaps;
    printf ("scale_per_remap spare=%s remaps=%llu "
            "rss_per_remap=%.2f heap_per_remap=%.2f\n", label,
            (unsigned long long) r->remaps,
            (double) (r->mem.rss - empty->mem.rss) / n,
            (double) (r->mem.heap - empty->mem.heap) / n);
  }
  return 0;
}
