/* remap: benchmark of the metadata (SPEC 2.3).  Not a test: it measures
 * and prints, it never fails on a number.  scripts/bench-meta.sh runs it.
 *
 * Questions it answers, for a spare already holding 0, 1,000 and 100,000
 * remaps:
 *
 *   - what one remap commit costs: bytes written to the spare (data and
 *     metadata, counted by a wrapper backend) and wall time (median and
 *     90th percentile of 100 commits), on real files in a disk-backed
 *     directory (default /var/tmp: every commit is fdatasync'd there) and
 *     on mem backends (pure CPU);
 *   - how long remap_open takes (median of 5, page cache warm, and with
 *     the spare's pages dropped by posix_fadvise first);
 *   - how much memory an open engine holds per remap: heap in use
 *     (mallinfo2) and resident set (/proc/self/statm) after opening the
 *     spare with 100,000 remaps, minus the same for an empty spare of the
 *     same size.
 *
 * The existing remaps are made on mem backends (remap_remap in a loop costs
 * (copies + 1) flushes each, far too slow on a file for 100,000) and the
 * spare's bytes are then written to the file; nothing about the state
 * depends on how it was made.
 *
 *   bench_meta [-d DIR] [-u UNIT] [-s SPARE_MIB] [-o ORIGIN_MIB]
 *              [-n COMMITS] [-r N,N,...] [-k]
 *
 * -k keeps the files.  Defaults: /var/tmp, 4096, 512, 1024, 100,
 * 0,1000,100000.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "remap/remap.h"

static const char *dir = "/var/tmp";
static uint32_t unit = 4096;
static uint64_t spare_size = UINT64_C (512) << 20;
static uint64_t origin_size = UINT64_C (1) << 30;
static unsigned commits = 100;
static bool keep;

static void die (const char *what, int r, const struct remap_error *err)
  __attribute__ ((noreturn));

static void
die (const char *what, int r, const struct remap_error *err)
{
  fprintf (stderr, "bench_meta: %s: %s%s%s\n", what, strerror (-r),
           err && err->msg[0] ? ": " : "", err ? err->msg : "");
  exit (1);
}

static double
now (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
quantile (double *v, size_t n, double q)
{
  qsort (v, n, sizeof *v, cmp_double);
  size_t i = (size_t) (q * (double) (n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

/* ---- a counting wrapper backend ------------------------------------- */

struct counting {
  struct remap_backend base; /* first: the vtable base */
  struct remap_backend *inner;
  atomic_uint_fast64_t wbytes, writes, flushes;
};

static int
c_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  return remap_backend_pread (((struct counting *) b)->inner, buf, len, off);
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
  return remap_backend_flush (c->inner);
}

static int
c_zero (struct remap_backend *b, uint64_t len, uint64_t off, bool may_trim)
{
  struct counting *c = (struct counting *) b;
  atomic_fetch_add (&c->wbytes, len);
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

static void
c_close (struct remap_backend *b)
{
  remap_backend_close (((struct counting *) b)->inner);
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
};

static struct counting *
counting_wrap (struct remap_backend *inner)
{
  struct counting *c = calloc (1, sizeof *c);
  if (!c)
    die ("calloc", -ENOMEM, NULL);
  c->base = *inner; /* size, alignment, name */
  c->base.ops = &counting_ops;
  c->inner = inner;
  return c;
}

/* ---- building a spare with k remaps ------------------------------------ */

/* The i-th origin unit the benchmark remaps: a fixed walk that visits
 * every unit once, spread over the whole origin. */
static uint64_t
nth_unit (uint64_t i)
{
  uint64_t units = origin_size / unit;
  return (i * UINT64_C (40503)) % units; /* 40503 is odd: a bijection
                                                 for a power-of-two count */
}

static uint8_t *
build_state (uint64_t k)
{
  struct remap_backend *origin, *spare, *o2, *s2;
  struct remap_error err = { 0 };
  struct remap_format_opts fo;
  struct remap_engine *e;
  int r;

  if ((r = remap_mem_create (origin_size, &origin)) != 0 ||
      (r = remap_mem_create (spare_size, &spare)) != 0)
    die ("mem backend", r, NULL);
  remap_format_opts_init (&fo);
  fo.unit = unit;
  fo.origin_label = "bench-origin";
  if ((r = remap_format (origin, spare, &fo, &err)) != 0)
    die ("format", r, &err);
  remap_mem_share (origin, &o2);
  remap_mem_share (spare, &s2);
  struct remap_open_opts oo = { .no_lock = true };
  if ((r = remap_open (o2, s2, &oo, &e, &err)) != 0)
    die ("open (mem)", r, &err);
  double t0 = now ();
  for (uint64_t i = 0; i < k; i++)
    if ((r = remap_remap (e, nth_unit (i), 0, &err)) != 0)
      die ("remap (mem)", r, &err);
  double t = now () - t0;
  remap_close (e);
  if (k)
    fprintf (stderr, "bench_meta: built %llu remaps on mem in %.2f s\n",
             (unsigned long long) k, t);
  uint8_t *bytes = malloc (spare_size);
  if (!bytes)
    die ("malloc", -ENOMEM, NULL);
  memcpy (bytes, remap_mem_data (spare), spare_size);
  remap_backend_close (origin);
  remap_backend_close (spare);
  return bytes;
}

/* Write the image to path, skipping zero runs (the file is sparse). */
static void
write_sparse (const char *path, const uint8_t *bytes, uint64_t size)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    die (path, -errno, NULL);
  const size_t chunk = 65536;
  static const uint8_t zero[65536];
  for (uint64_t off = 0; off < size; off += chunk) {
    size_t n = size - off < chunk ? size - off : chunk;
    if (memcmp (bytes + off, zero, n) == 0)
      continue;
    if (pwrite (fd, bytes + off, n, off) != (ssize_t) n)
      die (path, -errno, NULL);
  }
  if (ftruncate (fd, size) != 0 || fsync (fd) != 0)
    die (path, -errno, NULL);
  close (fd);
}

static void
make_origin_file (const char *path)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate (fd, origin_size) != 0)
    die (path, -errno, NULL);
  close (fd);
}

/* ---- measurements ------------------------------------------------------ */

struct commit_result {
  double med_ms, p90_ms;
  double bytes; /* per commit, mean */
  uint64_t bytes_min, bytes_max;
  double meta_units, flushes; /* per commit, mean */
};

static struct remap_engine *
open_engine (bool file, const char *spath, const char *opath,
             const uint8_t *img, struct counting **cnt, double *secs)
{
  struct remap_backend *origin, *spare;
  struct remap_error err = { 0 };
  struct remap_engine *e;
  int r;

  if (file) {
    if ((r = remap_file_open (opath, 0, &origin, &err)) != 0 ||
        (r = remap_file_open (spath, 0, &spare, &err)) != 0)
      die ("file open", r, &err);
  }
  else {
    if ((r = remap_mem_create (origin_size, &origin)) != 0 ||
        (r = remap_mem_create (spare_size, &spare)) != 0)
      die ("mem backend", r, NULL);
    memcpy (remap_mem_data (spare), img, spare_size);
  }
  struct counting *c = counting_wrap (spare);
  if (cnt)
    *cnt = c;
  struct remap_open_opts oo = { .no_lock = !file };
  double t0 = now ();
  if ((r = remap_open (origin, &c->base, &oo, &e, &err)) != 0)
    die ("open", r, &err);
  if (secs)
    *secs = now () - t0;
  return e;
}

static struct commit_result
measure_commits (struct remap_engine *e, struct counting *c, uint64_t k)
{
  double *ms = calloc (commits, sizeof *ms);
  uint64_t total = 0, bmin = UINT64_MAX, bmax = 0;
  struct remap_counters c0, c1;
  struct remap_error err = { 0 };
  uint64_t fl0 = atomic_load (&c->flushes);

  remap_get_counters (e, &c0);
  for (unsigned i = 0; i < commits; i++) {
    uint64_t w0 = atomic_load (&c->wbytes);
    double t0 = now ();
    int r = remap_remap (e, nth_unit (k + i), 0, &err);
    ms[i] = (now () - t0) * 1e3;
    if (r)
      die ("remap", r, &err);
    uint64_t b = atomic_load (&c->wbytes) - w0;
    total += b;
    bmin = b < bmin ? b : bmin;
    bmax = b > bmax ? b : bmax;
  }
  remap_get_counters (e, &c1);
  struct commit_result res = {
    .bytes = (double) total / commits,
    .bytes_min = bmin,
    .bytes_max = bmax,
    .meta_units =
      (double) (c1.meta_write_units - c0.meta_write_units) / commits,
    .flushes = (double) (atomic_load (&c->flushes) - fl0) / commits,
  };
  res.p90_ms = quantile (ms, commits, 0.9);
  res.med_ms = quantile (ms, commits, 0.5);
  free (ms);
  return res;
}

static void
drop_cache (const char *path)
{
  int fd = open (path, O_RDONLY);
  if (fd >= 0) {
    posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
    close (fd);
  }
}

struct open_result {
  double warm_ms, cold_ms;
  uint64_t heap, rss; /* bytes held by the open engine */
};

static uint64_t
heap_in_use (void)
{
  struct mallinfo2 mi = mallinfo2 ();
  return mi.uordblks + mi.hblkhd;
}

static uint64_t
rss_bytes (void)
{
  unsigned long size = 0, res = 0;
  FILE *f = fopen ("/proc/self/statm", "r");
  if (f) {
    if (fscanf (f, "%lu %lu", &size, &res) != 2)
      res = 0;
    fclose (f);
  }
  return (uint64_t) res * (uint64_t) sysconf (_SC_PAGESIZE);
}

static struct open_result
measure_open (const char *spath, const char *opath)
{
  struct open_result res = { 0 };
  double warm[5], cold[5];

  for (int i = 0; i < 5; i++) {
    double t;
    remap_close (open_engine (true, spath, opath, NULL, NULL, &t));
    warm[i] = t * 1e3;
    drop_cache (spath);
    remap_close (open_engine (true, spath, opath, NULL, NULL, &t));
    cold[i] = t * 1e3;
  }
  res.warm_ms = quantile (warm, 5, 0.5);
  res.cold_ms = quantile (cold, 5, 0.5);

  /* Memory: trim the heap first so freed blocks of earlier opens do not
   * hide the growth, then hold one engine open. */
  malloc_trim (0);
  uint64_t h0 = heap_in_use (), r0 = rss_bytes ();
  struct remap_engine *e = open_engine (true, spath, opath, NULL, NULL, NULL);
  res.heap = heap_in_use () - h0;
  res.rss = rss_bytes () - r0;
  remap_close (e);
  return res;
}

/* ---- main ---------------------------------------------------------------- */

#define MAX_STATES 8

int
main (int argc, char **argv)
{
  uint64_t states[MAX_STATES] = { 0, 1000, 100000 };
  size_t nstates = 3;
  int opt;

  while ((opt = getopt (argc, argv, "d:u:s:o:n:r:k")) != -1) {
    switch (opt) {
    case 'd':
      dir = optarg;
      break;
    case 'u':
      unit = (uint32_t) strtoul (optarg, NULL, 0);
      break;
    case 's':
      spare_size = strtoull (optarg, NULL, 0) << 20;
      break;
    case 'o':
      origin_size = strtoull (optarg, NULL, 0) << 20;
      break;
    case 'n':
      commits = (unsigned) strtoul (optarg, NULL, 0);
      break;
    case 'r': {
      nstates = 0;
      for (char *p = optarg; *p && nstates < MAX_STATES;) {
        states[nstates++] = strtoull (p, &p, 0);
        if (*p == ',')
          p++;
      }
      break;
    }
    case 'k':
      keep = true;
      break;
    default:
      fprintf (stderr,
               "usage: bench_meta [-d DIR] [-u UNIT] [-s SPARE_MIB] "
               "[-o ORIGIN_MIB] [-n COMMITS] [-r N,N,...] [-k]\n");
      return 2;
    }
  }
  if (commits == 0)
    commits = 1;

  char opath[4096], spath[MAX_STATES][4096];
  snprintf (opath, sizeof opath, "%s/remap-bench-%d-origin.img", dir,
            (int) getpid ());
  make_origin_file (opath);

  struct remap_layout l;
  struct remap_error err = { 0 };
  int r =
    remap_layout_compute (spare_size, unit, REMAP_STRATEGY_AUTO, 0, &l, &err);
  if (r)
    die ("layout", r, &err);
  printf ("# remap metadata benchmark: unit %u, spare %llu MiB (%llu units, "
          "%s, %u copies of %llu units), origin %llu MiB, files in %s\n",
          unit, (unsigned long long) (spare_size >> 20),
          (unsigned long long) l.spare_units, remap_strategy_name (l.strategy),
          l.copies, (unsigned long long) l.copy_units,
          (unsigned long long) (origin_size >> 20), dir);
  printf ("# per commit: the next %u remap_remap calls, each one unit of data"
          " + its table block in every copy, each write flushed\n",
          commits);
  printf ("%-9s %-5s %12s %10s %10s %11s %8s\n", "remaps", "back",
          "bytes/commit", "meta units", "flushes", "median ms", "p90 ms");

  struct open_result opens[MAX_STATES];
  for (size_t s = 0; s < nstates; s++) {
    uint64_t k = states[s];
    if (k + commits > l.usable_units) {
      fprintf (stderr,
               "bench_meta: %llu remaps do not fit %llu usable "
               "units\n",
               (unsigned long long) (k + commits),
               (unsigned long long) l.usable_units);
      return 1;
    }
    uint8_t *img = build_state (k);
    snprintf (spath[s], sizeof spath[s], "%s/remap-bench-%d-spare-%llu.img",
              dir, (int) getpid (), (unsigned long long) k);
    write_sparse (spath[s], img, spare_size);

    for (int file = 1; file >= 0; file--) {
      struct counting *c;
      struct remap_engine *e =
        open_engine (file, spath[s], opath, img, &c, NULL);
      struct commit_result cr = measure_commits (e, c, k);
      remap_close (e);
      printf ("%-9llu %-5s %12.0f %10.2f %10.2f %11.3f %8.3f\n",
              (unsigned long long) k, file ? "file" : "mem", cr.bytes,
              cr.meta_units, cr.flushes, cr.med_ms, cr.p90_ms);
      if (cr.bytes_min != cr.bytes_max)
        printf ("#   bytes per commit ranged %llu..%llu\n",
                (unsigned long long) cr.bytes_min,
                (unsigned long long) cr.bytes_max);
    }
    /* The commits above changed the file: put back the state measured. */
    write_sparse (spath[s], img, spare_size);
    free (img);
    opens[s] = measure_open (spath[s], opath);
  }

  printf ("\n%-9s %13s %13s %14s %14s\n", "remaps", "open warm ms",
          "open cold ms", "heap bytes", "rss bytes");
  for (size_t s = 0; s < nstates; s++)
    printf ("%-9llu %13.2f %13.2f %14llu %14llu\n",
            (unsigned long long) states[s], opens[s].warm_ms, opens[s].cold_ms,
            (unsigned long long) opens[s].heap,
            (unsigned long long) opens[s].rss);
  /* Per remap: the largest state against the empty one. */
  size_t big = 0, empty = SIZE_MAX;
  for (size_t s = 0; s < nstates; s++) {
    if (states[s] > states[big])
      big = s;
    if (states[s] == 0)
      empty = s;
  }
  if (empty != SIZE_MAX && states[big] > 0) {
    double n = (double) states[big];
    printf ("\nmemory per remap at %llu remaps: heap %.1f B (total %.1f B), "
            "rss %.1f B (total %.1f B)\n",
            (unsigned long long) states[big],
            ((double) opens[big].heap - (double) opens[empty].heap) / n,
            (double) opens[big].heap / n,
            ((double) opens[big].rss - (double) opens[empty].rss) / n,
            (double) opens[big].rss / n);
  }

  if (!keep) {
    unlink (opath);
    for (size_t s = 0; s < nstates; s++)
      unlink (spath[s]);
  }
  return 0;
}
