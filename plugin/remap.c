/* remap plugin for nbdkit: a thin adapter over the remap engine.
 *
 *   nbdkit ./build/remap.so origin=DISK spare=SPARE [format=yes] [...]
 *
 * Design:
 * - Everything that can fail for a user reason is checked before nbdkit
 *   forks: paths are resolved in .config, required keys and the badblocks
 *   file in .config_complete, and the backends, the (optional) format, the
 *   engine and the start-time remaps in .get_ready.  Any error there prints
 *   one line with nbdkit_error and nbdkit exits non-zero.
 * - There is one engine for the whole server (no per-connection state:
 *   .open returns NBDKIT_HANDLE_NOT_NEEDED).  The engine is thread-safe, so
 *   the thread model is PARALLEL and multi-conn is advertised: a flush on
 *   any connection makes origin, spare and metadata durable for all.
 * - Data callbacks translate engine errors by class (remap_error_to_client,
 *   docs/ERRORS.md) to errnos nbdkit passes to clients unchanged: ENOSPC
 *   (no space: the spare full, or the host under it; EIO with enospc=eio),
 *   EPERM (a backend refused us), and EIO (media errors, lost data, lost
 *   connections, failed flushes, everything else).  nbdkit would turn any
 *   other errno into EINVAL.
 * - nbdkit -r (cmdline.c finds it before anything is opened) opens origin
 *   and spare read-only and the engine read-only: no repair of damaged
 *   copies, pending units kept in memory, no format, no start-list remaps.
 * - format=yes formats only a spare that holds nothing resembling remap
 *   metadata: a spare with a valid table is opened as it is, and one with
 *   damaged metadata is handed to the engine unchanged, which refuses it
 *   and names the repair.  There is deliberately no way to reformat from
 *   the plugin.
 *
 * - origin= and spare= may be NBD URIs (remap_backend_open, libnbd): the
 *   spare or the origin can then live behind any NBD server.
 *
 * The control socket (control=) is plugin/control.c: it listens from
 * .get_ready, serves from .after_fork and is removed in .cleanup.
 * - Extents (block status) come from the engine (core/extents.c), which
 *   merges the origin's holes with the table: a remapped, pending or lost
 *   unit is always data, so a sparse copy never skips spare data.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "remap/import.h"
#include "remap/remap.h"
#include "unitlist.h"
#include "cmdline.h"
#include "control.h"
#include "rehearse.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* -D remap.meta=1: engine debug messages (metadata commits, repair). */
NBDKIT_DLL_PUBLIC int remap_debug_meta;

enum direct_mode { DIRECT_AUTO, DIRECT_YES, DIRECT_NO };

/* Configuration, filled by .config and .config_complete. */
static char *origin_path;               /* absolute */
static char *spare_path;                /* absolute */
static bool spare_missing;              /* spare did not exist at .config */
static bool format;
static int preallocate = -1;            /* -1: not given (yes) */
static uint32_t unit;                   /* 0: not given */
static enum remap_strategy strategy;    /* AUTO: not given */
static uint32_t copies;                 /* 0: not given */
static enum direct_mode direct = DIRECT_AUTO;
static const char *control_path;
static struct unit_list start_list;     /* remap= items */
static const char *badblocks_path;
static uint64_t badblocks_bs = 1024;
static unsigned read_retries = 2;
static unsigned read_retry_delay_ms = 10;
static bool enospc_as_eio;
static int origin_changed = -1;         /* 1 accept, 0 refuse, -1 not given */
static bool read_only;                  /* nbdkit -r: write nothing at all */
static int reconnect_timeout = -1;      /* seconds; -1: not given */

/* The engine, from .get_ready to .cleanup. */
static struct remap_engine *engine;

/* ---- configuration --------------------------------------------------- */

static int
config_path (const char *key, const char *value, char **out, bool *missing)
{
  if (*out) {
    nbdkit_error ("%s= given twice", key);
    return -1;
  }
  if (remap_is_nbd_uri (value))
    *out = strdup (value);      /* another NBD server's export, via libnbd */
  else if (access (value, F_OK) == 0)
    *out = nbdkit_realpath (value);
  else if (missing) {
    /* The spare may not exist yet: .config_complete explains. */
    *missing = true;
    *out = nbdkit_absolute_path (value);
  }
  else {
    nbdkit_error ("%s=%s: %m", key, value);
    return -1;
  }
  if (*out == NULL) {
    nbdkit_error ("%s=%s: %m", key, value);
    return -1;
  }
  return 0;
}

static int
config_format (const char *value)
{
  int r;

  if (strcmp (value, "force") == 0) {
    nbdkit_error ("format=force is not supported: the plugin never "
                  "overwrites remap metadata; to destroy a spare's table on "
                  "purpose, run 'remapctl format ORIGIN SPARE --force'");
    return -1;
  }
  r = nbdkit_parse_bool (value);
  if (r == -1)
    return -1;
  format = r;
  return 0;
}

static int
config_unit (const char *value)
{
  int64_t r = nbdkit_parse_size (value);

  if (r == -1)
    return -1;
  if (!remap_unit_valid ((uint64_t) r)) {
    nbdkit_error ("unit=%s: the unit must be a power of two from %u to %u "
                  "bytes", value, REMAP_MIN_UNIT, REMAP_MAX_UNIT);
    return -1;
  }
  unit = (uint32_t) r;
  return 0;
}

static int
config_direct (const char *value)
{
  int r;

  if (strcmp (value, "auto") == 0) {
    direct = DIRECT_AUTO;
    return 0;
  }
  r = nbdkit_parse_bool (value);
  if (r == -1)
    return -1;
  direct = r ? DIRECT_YES : DIRECT_NO;
  return 0;
}

static int
config_numbers (const char *key, const char *value)
{
  if (strcmp (key, "copies") == 0) {
    if (nbdkit_parse_uint32_t ("copies", value, &copies) == -1)
      return -1;
    if (copies < REMAP_MIN_COPIES || copies > REMAP_MAX_COPIES) {
      nbdkit_error ("copies=%s: must be from %u to %u (remap keeps at least "
                    "two metadata copies, so that one damaged copy never "
                    "costs the table)", value, REMAP_MIN_COPIES,
                    REMAP_MAX_COPIES);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "read-retries") == 0) {
    if (nbdkit_parse_unsigned ("read-retries", value, &read_retries) == -1)
      return -1;
    if (read_retries > REMAP_MAX_READ_RETRIES) {
      nbdkit_error ("read-retries=%s: at most %u (each retry of a failing "
                    "unit waits twice as long as the one before, and the "
                    "client's read waits for all of them)", value,
                    REMAP_MAX_READ_RETRIES);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "reconnect-timeout") == 0) {
    unsigned v;
    if (nbdkit_parse_unsigned ("reconnect-timeout", value, &v) == -1)
      return -1;
    if (v > REMAP_NBD_MAX_RECONNECT_MS / 1000) {
      nbdkit_error ("reconnect-timeout=%s: at most %u seconds (a client "
                    "such as the kernel's nbd driver gives up on a request "
                    "after 30 s)", value, REMAP_NBD_MAX_RECONNECT_MS / 1000);
      return -1;
    }
    reconnect_timeout = (int) v;
    return 0;
  }
  if (strcmp (key, "read-retry-delay") == 0) {
    if (nbdkit_parse_unsigned ("read-retry-delay", value,
                               &read_retry_delay_ms) == -1)
      return -1;
    if (read_retry_delay_ms > REMAP_MAX_RETRY_DELAY_US / 1000) {
      nbdkit_error ("read-retry-delay=%s: at most %u ms (the first "
                    "back-off; later ones double, up to that bound)", value,
                    REMAP_MAX_RETRY_DELAY_US / 1000);
      return -1;
    }
    return 0;
  }
  /* badblocks-block-size */
  int64_t r = nbdkit_parse_size (value);
  if (r == -1)
    return -1;
  if (r < 1 || r > (int64_t) 1 << 30) {
    nbdkit_error ("badblocks-block-size=%s: must be from 1 byte to 1G",
                  value);
    return -1;
  }
  badblocks_bs = (uint64_t) r;
  return 0;
}

static int
plugin_config (const char *key, const char *value)
{
  if (strcmp (key, "origin") == 0)
    return config_path (key, value, &origin_path, NULL);
  if (strcmp (key, "spare") == 0)
    return config_path (key, value, &spare_path, &spare_missing);
  if (strcmp (key, "format") == 0)
    return config_format (value);
  if (strcmp (key, "unit") == 0)
    return config_unit (value);
  if (strcmp (key, "preallocate") == 0) {
    if ((preallocate = nbdkit_parse_bool (value)) == -1)
      return -1;
    return 0;
  }
  if (strcmp (key, "strategy") == 0) {
    if (remap_strategy_parse (value, &strategy) < 0) {
      nbdkit_error ("strategy=%s: expected auto, minimal, linear or "
                    "geometric", value);
      return -1;
    }
    return 0;
  }
  if (strcmp (key, "direct") == 0)
    return config_direct (value);
  if (strcmp (key, "control") == 0) {
    control_path = value;
    return 0;
  }
  if (strcmp (key, "remap") == 0)
    return unit_list_parse_remap (&start_list, value);
  switch (rehearse_config (key, value)) {
  case 1: return 0;
  case -1: return -1;
  default: break;
  }
  if (strcmp (key, "badblocks") == 0) {
    if (badblocks_path) {
      nbdkit_error ("badblocks= given twice");
      return -1;
    }
    badblocks_path = value;
    return 0;
  }
  if (strcmp (key, "enospc") == 0) {
    if (strcmp (value, "enospc") != 0 && strcmp (value, "eio") != 0) {
      nbdkit_error ("enospc=%s: expected enospc or eio", value);
      return -1;
    }
    enospc_as_eio = strcmp (value, "eio") == 0;
    return 0;
  }
  if (strcmp (key, "origin-changed") == 0) {
    if (origin_changed != -1) {
      nbdkit_error ("origin-changed= given twice");
      return -1;
    }
    if (strcmp (value, "accept") != 0 && strcmp (value, "refuse") != 0) {
      nbdkit_error ("origin-changed=%s: expected accept or refuse", value);
      return -1;
    }
    origin_changed = strcmp (value, "accept") == 0;
    return 0;
  }
  if (strcmp (key, "copies") == 0 || strcmp (key, "read-retries") == 0
      || strcmp (key, "reconnect-timeout") == 0
      || strcmp (key, "read-retry-delay") == 0
      || strcmp (key, "badblocks-block-size") == 0)
    return config_numbers (key, value);

  nbdkit_error ("unknown parameter '%s' (see: nbdkit remap --help)", key);
  return -1;
}

static int
plugin_config_complete (void)
{
  if (origin_path == NULL || spare_path == NULL) {
    nbdkit_error ("both origin=DISK and spare=SPARE are required");
    return -1;
  }
  if (strcmp (origin_path, spare_path) == 0) {
    nbdkit_error ("origin and spare are the same file: %s", origin_path);
    return -1;
  }
  /* Checked again when the socket is made; here so that a wrong path is
   * refused before anything is opened or formatted. */
  struct stat cst;
  if (control_path && lstat (control_path, &cst) == 0
      && !S_ISSOCK (cst.st_mode)) {
    nbdkit_error ("control=%s exists and is not a socket; give a path "
                  "where remap may create its control socket", control_path);
    return -1;
  }
  if (reconnect_timeout != -1 && !remap_is_nbd_uri (origin_path)
      && !remap_is_nbd_uri (spare_path)) {
    nbdkit_error ("reconnect-timeout= applies to an origin or spare given "
                  "as an NBD URI, and neither is one: drop it");
    return -1;
  }
  if (preallocate != -1 && !format) {
    nbdkit_error ("preallocate=%s applies only with format=yes: a spare is "
                  "allocated when it is formatted.  Drop preallocate=, or "
                  "to allocate an existing spare file in full run "
                  "'fallocate -l $(stat -c %%s %s) %s' while remap is "
                  "stopped", preallocate ? "yes" : "no", spare_path,
                  spare_path);
    return -1;
  }
  if (spare_missing) {
    uint32_t u = unit ? unit : REMAP_DEFAULT_UNIT;
    nbdkit_error ("spare=%s does not exist: create it first, e.g. "
                  "'truncate -s 64M %s' (at least %" PRIu64 " bytes for "
                  "unit=%" PRIu32 "), then start with format=yes",
                  spare_path, spare_path, remap_layout_min_spare (u), u);
    return -1;
  }
  if (badblocks_path
      && unit_list_read_badblocks (&start_list, badblocks_path,
                                   badblocks_bs) == -1)
    return -1;
  read_only = cmdline_read_only ();
  return 0;
}

#define plugin_config_help \
  "origin=DISK          (required) The failing disk: file, block device\n" \
  "                     or NBD URI.\n" \
  "spare=SPARE          (required) Where remapped units and the table live\n" \
  "                     (file, block device or NBD URI).\n" \
  "format=yes           Format SPARE if it holds no remap metadata.\n" \
  "preallocate=no       With format=yes: leave a new spare file sparse\n" \
  "                     (default: allocate it in full, or refuse).\n" \
  "unit=SIZE            Remap unit of a new spare (512..64k, default 4k).\n" \
  "strategy=auto|minimal|linear|geometric  Placement of metadata copies.\n" \
  "copies=N             Number of metadata copies of a new spare (2..8).\n" \
  "direct=auto|yes|no   O_DIRECT I/O (auto: block devices only).\n" \
  "remap=LIST           Remap units at start: U, U-V or OFFSET+LENGTH, ...\n" \
  "badblocks=FILE       Remap the blocks of an e2fsprogs badblocks list.\n" \
  "badblocks-block-size=N  Block size of that list (default 1024).\n" \
  "read-retries=N       Extra origin read attempts (0..10, default 2).\n" \
  "read-retry-delay=MS  First retry back-off, doubled each time, at most\n" \
  "                     10000 (default 10).\n" \
  "enospc=enospc|eio    Error for a write the full spare cannot remap.\n" \
  "origin-changed=accept|refuse  Serve an origin whose identity (WWN,\n" \
  "                     serial, file, NBD export) differs from the one the\n" \
  "                     spare was formatted for (default refuse).\n" \
  "reconnect-timeout=S  NBD origin/spare: how long a request waits for a\n" \
  "                     lost connection to come back (default 5).\n" \
  "control=PATH         Control socket for remapctl --control (mode 0600).\n" \
  "fail=OPS:OFF[+LEN][,after=N][,times=N]  Rehearsal: make the origin fail\n" \
  "                     there (OPS read, write, rw, flush, extents); repeatable.\n" \
  "fail-file=PATH       Rehearsal rules, one per line, re-read on change."

static void
plugin_dump_plugin (void)
{
  printf ("remap_version=%s\n", REMAP_VERSION_STRING);
  printf ("remap_unit_default=%u\n", REMAP_DEFAULT_UNIT);
#ifdef REMAP_HAVE_LIBURING
  printf ("remap_io_uring=yes\n");
#else
  printf ("remap_io_uring=no\n");
#endif
#ifdef REMAP_HAVE_LIBNBD
  printf ("remap_nbd_backend=yes\n");
#else
  printf ("remap_nbd_backend=no\n");
#endif
  printf ("remap_control=yes\n");
  printf ("remap_rehearsal=yes\n");
  printf ("remap_strategies=minimal,linear,geometric\n");
}

/* ---- start-up -------------------------------------------------------- */

/* Engine messages, told apart from the plugin's own by "remap: engine:". */
static void
engine_log (void *opaque, enum remap_log_level level, const char *msg)
{
  (void) opaque;
  switch (level) {
  case REMAP_LOG_DEBUG:
    if (remap_debug_meta)
      nbdkit_debug ("remap: engine: %s", msg);
    break;
  case REMAP_LOG_INFO:
    nbdkit_debug ("remap: engine: %s", msg);
    break;
  case REMAP_LOG_WARN:
    nbdkit_debug ("remap: engine: warning: %s", msg);
    break;
  case REMAP_LOG_ALERT:         /* shown without -v (free spare low) */
    nbdkit_error ("remap: warning: %s", msg);
    break;
  case REMAP_LOG_ERROR:
  default:
    nbdkit_error ("remap: %s", msg);
    break;
  }
}

static void
sleep_us (unsigned us)
{
  nbdkit_nanosleep (us / 1000000, (us % 1000000) * 1000);
}

/* Print the engine's message, or a fallback naming what failed. */
static void
report (const struct remap_error *err, int r, const char *what)
{
  if (err->msg[0])
    nbdkit_error ("%s", err->msg);
  else
    nbdkit_error ("%s: %s", what, strerror (-r));
}

/* Options given explicitly must match a spare that already existed. */
static int
check_geometry (struct remap_engine *e)
{
  struct remap_info info;

  remap_get_info (e, &info);
  if (unit && info.layout.unit != unit) {
    nbdkit_error ("spare %s was formatted with unit=%" PRIu32 " but unit=%"
                  PRIu32 " was given: drop unit= (it only applies to a new "
                  "spare) or use another spare", spare_path,
                  info.layout.unit, unit);
    return -1;
  }
  if (strategy != REMAP_STRATEGY_AUTO && info.layout.strategy != strategy) {
    nbdkit_error ("spare %s was formatted with strategy=%s but strategy=%s "
                  "was given: drop strategy= or use another spare",
                  spare_path, remap_strategy_name (info.layout.strategy),
                  remap_strategy_name (strategy));
    return -1;
  }
  if (copies && info.layout.copies != copies) {
    nbdkit_error ("spare %s was formatted with copies=%" PRIu32 " but copies=%"
                  PRIu32 " was given: drop copies= or use another spare",
                  spare_path, info.layout.copies, copies);
    return -1;
  }
  return 0;
}

static int
cmp_interval (const void *a, const void *b)
{
  const struct remap_unit_range *x = a, *y = b;
  return x->first < y->first ? -1 : x->first > y->first;
}

/* The start list as sorted, disjoint unit intervals.  Every item is
 * checked against the end of the origin first.  Returns the count, or -1
 * after nbdkit_error; *out is malloc'ed. */
static ssize_t
start_intervals (uint32_t u, uint64_t size, struct remap_unit_range **out)
{
  uint64_t units = (size + u - 1) / u;
  struct remap_unit_range *v =
    malloc ((start_list.n ? start_list.n : 1) * sizeof *v);
  size_t n = 0;

  if (v == NULL) {
    nbdkit_error ("malloc: %m");
    return -1;
  }
  for (size_t i = 0; i < start_list.n; i++) {
    char what[300];

    unit_item_units (&start_list.v[i], u, &v[i].first, &v[i].last);
    if (v[i].last >= units) {
      unit_item_describe (&start_list.v[i], what, sizeof what);
      nbdkit_error ("%s: unit %" PRIu64 " is past the end of the origin "
                    "(%" PRIu64 " units of %" PRIu32 " bytes)", what,
                    v[i].last, units, u);
      free (v);
      return -1;
    }
  }
  qsort (v, start_list.n, sizeof *v, cmp_interval);
  for (size_t i = 0; i < start_list.n; i++) {
    if (n > 0 && v[i].first <= v[n - 1].last + 1) {
      if (v[i].last > v[n - 1].last)
        v[n - 1].last = v[i].last;
    }
    else
      v[n++] = v[i];
  }
  *out = v;
  return (ssize_t) n;
}

static uint64_t
interval_units (const struct remap_unit_range *v, ssize_t n)
{
  uint64_t total = 0;

  for (ssize_t i = 0; i < n; i++)
    total += v[i].last - v[i].first + 1;
  return total;
}

static int
check_room (uint64_t needed, uint64_t free_units)
{
  if (needed <= free_units)
    return 0;
  nbdkit_error ("remap=/badblocks= name %" PRIu64 " units that are not "
                "remapped yet, but spare %s has only %" PRIu64 " free units: "
                "give a larger spare or a shorter list", needed, spare_path,
                free_units);
  return -1;
}

/* Before formatting a new spare: would the start list fit at all?  This
 * keeps a refused start from leaving a freshly formatted spare behind. */
static int
precheck_new_spare (const struct remap_layout *l, uint64_t origin_size)
{
  struct remap_unit_range *v = NULL;
  ssize_t n;
  int r;

  if (start_list.n == 0)
    return 0;
  n = start_intervals (l->unit, origin_size, &v);
  if (n < 0)
    return -1;
  r = check_room (interval_units (v, n), l->usable_units);
  free (v);
  return r;
}

/* Debug lines for the start list (the e2e tests read them): before the
 * import (after == false) the units already mapped, remembered in was[];
 * after it, where every other unit went. */
static void
log_units (struct remap_engine *e, const struct remap_unit_range *v,
           ssize_t n, uint8_t *was, bool after)
{
  size_t k = 0;

  for (ssize_t i = 0; i < n; i++)
    for (uint64_t u = v[i].first; u <= v[i].last; u++, k++) {
      struct remap_mapping m;
      if (remap_lookup (e, u, &m) != 0 || m.state != REMAP_SLOT_MAPPED)
        continue;
      if (!after && (was[k] = 1))
        nbdkit_debug ("remap: unit %" PRIu64 " already on spare unit %"
                      PRIu64, u, m.spare_unit);
      else if (after && !was[k])
        nbdkit_debug ("remap: unit %" PRIu64 " -> spare unit %" PRIu64, u,
                      m.spare_unit);
    }
}

/* remap= and badblocks=: all or nothing as far as can be known in advance:
 * every item is checked against the origin here, then remap_import_units
 * (core/import.c) checks the spare's room for every unit not yet
 * remapped before the first remap is made. */
static int
apply_start_list (struct remap_engine *e)
{
  struct remap_import_result res;
  struct remap_error err = { 0 };
  struct remap_unit_range *v = NULL;
  uint8_t *was = NULL;
  ssize_t n;
  int r = -1;

  if (start_list.n == 0)
    return 0;
  n = start_intervals (remap_unit (e), remap_size (e), &v);
  if (n < 0)
    return -1;
  if (remap_import_units (e, v, (size_t) n, "remap=/badblocks=",
                          REMAP_IMPORT_DRY_RUN, &res, &err) < 0) {
    nbdkit_error ("%s (spare %s)", err.msg, spare_path);
    goto out;
  }
  if (read_only && res.needed > 0) {
    nbdkit_error ("remap=/badblocks= name %" PRIu64 " units that are not "
                  "remapped yet, but nbdkit -r forbids writing to spare %s: "
                  "start without -r to remap them, or drop remap= and "
                  "badblocks=", res.needed, spare_path);
    goto out;
  }
  if ((was = calloc (res.units ? res.units : 1, 1)) == NULL) {
    nbdkit_error ("calloc: %m");
    goto out;
  }
  log_units (e, v, n, was, false);
  if (remap_import_units (e, v, (size_t) n, "remap=/badblocks=", 0, &res,
                          &err) < 0) {
    nbdkit_error ("remapping at start: %s (spare %s)", err.msg, spare_path);
    goto out;
  }
  log_units (e, v, n, was, true);
  nbdkit_debug ("remap: start list: %" PRIu64 " units, %" PRIu64
                " remapped now", res.units, res.changed);
  r = 0;
out:
  free (was);
  free (v);
  return r;
}

/* format=yes: format the spare unless it holds remap metadata.  The
 * engine's remap_spare_has_metadata is true for damaged metadata too (the
 * magic of a superblock or table block at any place a copy could be), and
 * such a spare is left for remap_open to diagnose: the plugin never formats
 * over anything that may be a remap table.  Everything that can be checked
 * is checked before the first byte is written. */
static int
prepare_spare (struct remap_backend *origin, struct remap_backend *spare)
{
  struct remap_error err = { 0 };
  struct remap_format_opts fo;
  struct remap_layout l;
  int r;

  if (remap_spare_has_metadata (spare)) {
    nbdkit_debug ("remap: spare %s holds remap metadata: not formatting it",
                  spare_path);
    return 0;
  }
  if (read_only) {
    nbdkit_error ("format=yes: spare %s holds no remap metadata, and nbdkit "
                  "-r forbids writing to it: format it first (start once "
                  "without -r, or 'remapctl format ORIGIN SPARE')",
                  spare_path);
    return -1;
  }
  remap_format_opts_init (&fo);
  fo.unit = unit;
  fo.strategy = strategy;
  fo.copies = copies;
  fo.origin_label = origin_path;
  fo.sparse = preallocate == 0;
  r = remap_layout_compute (spare->size, unit ? unit : REMAP_DEFAULT_UNIT,
                            strategy, copies, &l, &err);
  if (r < 0) {
    nbdkit_error ("cannot format spare %s: %s", spare_path,
                  err.msg[0] ? err.msg : strerror (-r));
    return -1;
  }
  if (precheck_new_spare (&l, origin->size) == -1)
    return -1;
  r = remap_format (origin, spare, &fo, &err);
  if (r < 0) {
    report (&err, r, "formatting the spare");
    return -1;
  }
  nbdkit_debug ("remap: formatted spare %s for origin %s: unit %" PRIu32
                ", strategy %s, %" PRIu32 " copies, %" PRIu64 " usable "
                "units, %s", spare_path, origin_path, l.unit,
                remap_strategy_name (l.strategy), l.copies, l.usable_units,
                remap_is_nbd_uri (spare_path) || spare->is_block_device
                ? "nothing to preallocate"
                : fo.sparse ? "left sparse (preallocate=no)"
                : "allocated in full");
  return 0;
}

static void
log_status (struct remap_engine *e, const char *when)
{
  struct remap_counters c;

  remap_get_counters (e, &c);
  nbdkit_debug ("remap: %s: reallocated=%" PRIu64 " events=%" PRIu64
                " pending=%" PRIu64 " uncorrectable=%" PRIu64
                " spare_free=%" PRIu64 "/%" PRIu64 " spare_bad=%" PRIu64
                " read_errors=%" PRIu64 " write_errors=%" PRIu64
                " spare_errors=%" PRIu64 " retries=%" PRIu64
                " enospc=%" PRIu64 " copies=%" PRIu32 "/%" PRIu32
                " generation=%" PRIu64, when, c.reallocated_units,
                c.reallocation_events, c.pending_units, c.uncorrectable_units,
                c.spare_free_units, c.spare_usable_units, c.spare_bad_units,
                c.read_errors, c.write_errors, c.spare_errors, c.retries,
                c.enospc_events, c.copies_valid, c.copies_total,
                c.generation);
}

static unsigned
file_flags (void)
{
  unsigned ro = read_only ? REMAP_FILE_READONLY : 0;
  switch (direct) {
  case DIRECT_YES: return ro | REMAP_FILE_DIRECT;
  case DIRECT_NO: return ro | REMAP_FILE_NODIRECT;
  case DIRECT_AUTO: default: return ro;
  }
}

static int
open_engine (struct remap_engine **out)
{
  struct remap_error err = { 0 };
  struct remap_backend *origin = NULL, *spare = NULL;
  struct remap_open_opts oo = {
    .readonly = read_only,
    .enospc_as_eio = enospc_as_eio,
    .accept_origin_change = origin_changed == 1,
    .read_retries = read_retries,
    .retry_delay_us = read_retry_delay_ms * 1000,
    .sleep_us = sleep_us,
    .log = engine_log,
  };
  int r;

  r = remap_backend_open (origin_path, file_flags (), &origin, &err);
  if (r < 0) {
    report (&err, r, origin_path);
    return -1;
  }
  r = remap_backend_open (spare_path, file_flags (), &spare, &err);
  if (r < 0) {
    report (&err, r, spare_path);
    remap_backend_close (origin);
    return -1;
  }
  if (reconnect_timeout != -1) {
    unsigned ms = (unsigned) reconnect_timeout * 1000;
    if (remap_is_nbd_uri (origin_path))
      remap_nbd_set_reconnect_timeout (origin, ms);
    if (remap_is_nbd_uri (spare_path))
      remap_nbd_set_reconnect_timeout (spare, ms);
  }
  if (format && prepare_spare (origin, spare) == -1) {
    remap_backend_close (origin);
    remap_backend_close (spare);
    return -1;
  }
  if (rehearse_wrap (&origin) == -1) {
    remap_backend_close (spare);
    return -1;
  }
  /* From here the engine owns both backends, also on failure. */
  r = remap_open (origin, spare, &oo, out, &err);
  if (r < 0) {
    report (&err, r, "opening the spare");
    return -1;
  }
  return 0;
}

static int
plugin_get_ready (void)
{
  struct remap_engine *e = NULL;
  struct remap_info info;
  char uuid[37];

  if (open_engine (&e) == -1)
    return -1;
  if (check_geometry (e) == -1 || apply_start_list (e) == -1) {
    remap_close (e);
    return -1;
  }
  if (control_path) {
    struct remap_error cerr = { 0 };
    if (remap_ctl_listen (control_path, &cerr) < 0) {
      nbdkit_error ("control=%s: %s", control_path, cerr.msg);
      remap_close (e);
      return -1;
    }
  }
  remap_get_info (e, &info);
  remap_uuid_format (info.uuid, uuid);
  nbdkit_debug ("remap: serving %s (%" PRIu64 " bytes) with spare %s: "
                "uuid %s, unit %" PRIu32 ", strategy %s, %" PRIu32 " copies",
                origin_path, remap_size (e), spare_path, uuid,
                info.layout.unit, remap_strategy_name (info.layout.strategy),
                info.layout.copies);
  nbdkit_debug ("remap: I/O batches: %s", remap_backend_uring_status ());
  if (read_only)
    nbdkit_debug ("remap: read-only (nbdkit -r): origin and spare are "
                  "opened read-only; no repair, no pending marks");
  log_status (e, "start");
  engine = e;
  return 0;
}

static void
plugin_cleanup (void)
{
  int r;

  remap_ctl_stop ();
  rehearse_stop ();
  if (engine == NULL)
    return;
  log_status (engine, "exit");
  r = remap_close (engine);
  engine = NULL;
  if (r < 0)
    nbdkit_error ("remap: final flush failed: %s", strerror (-r));
}

static int
plugin_after_fork (void)
{
  if (rehearse_start () == -1)
    return -1;
  return remap_ctl_start (engine);
}

static void
plugin_unload (void)
{
  /* .cleanup is skipped if nbdkit never reached .after_fork. */
  plugin_cleanup ();
  free (origin_path);
  free (spare_path);
  unit_list_free (&start_list);
}

/* ---- connections and data -------------------------------------------- */

static void *
plugin_open (int readonly)
{
  (void) readonly;
  return NBDKIT_HANDLE_NOT_NEEDED;
}

static int64_t
plugin_get_size (void *h)
{
  (void) h;
  return (int64_t) remap_size (engine);
}

/* The engine accepts any alignment (it does the read-modify-write), but
 * sub-sector requests only cost: advertise 512, prefer whole units. */
static int
plugin_block_size (void *h, uint32_t *minimum, uint32_t *preferred,
                   uint32_t *maximum)
{
  (void) h;
  *minimum = remap_size (engine) % 512 == 0 ? 512 : 1;
  *preferred = remap_unit (engine);
  *maximum = 0xffffffff;
  return 0;
}

static int
plugin_can_fua (void *h)
{
  (void) h;
  return NBDKIT_FUA_NATIVE;
}

static int
plugin_can_cache (void *h)
{
  (void) h;
  return NBDKIT_CACHE_NONE;
}

static int
plugin_true (void *h)
{
  (void) h;
  return 1;
}

/* A failed request: log the engine's message, give the client the errno
 * of the error's class: EIO, ENOSPC or EPERM and nothing else (nbdkit
 * sends EINVAL for other errnos). */
static int
io_failed (const char *op, const struct remap_error *err, int r)
{
  if (err->msg[0])
    nbdkit_error ("%s", err->msg);
  else
    nbdkit_error ("%s: %s", op, strerror (-r));
  nbdkit_set_error (remap_error_to_client (r));
  return -1;
}

static unsigned
engine_flags (uint32_t flags)
{
  unsigned f = 0;

  if (flags & NBDKIT_FLAG_FUA)
    f |= REMAP_FUA;
  if (flags & NBDKIT_FLAG_MAY_TRIM)
    f |= REMAP_MAY_TRIM;
  return f;
}

static int
plugin_pread (void *h, void *buf, uint32_t count, uint64_t offset,
              uint32_t flags)
{
  struct remap_error err;        /* not zero-filled: hot path */
  int r;

  remap_error_clear (&err);
  (void) h;
  (void) flags;
  r = remap_pread (engine, buf, count, offset, &err);
  return r < 0 ? io_failed ("read", &err, r) : 0;
}

static int
plugin_pwrite (void *h, const void *buf, uint32_t count, uint64_t offset,
               uint32_t flags)
{
  struct remap_error err;        /* not zero-filled: hot path */
  int r;

  remap_error_clear (&err);
  (void) h;
  r = remap_pwrite (engine, buf, count, offset, engine_flags (flags), &err);
  return r < 0 ? io_failed ("write", &err, r) : 0;
}

static int
plugin_flush (void *h, uint32_t flags)
{
  struct remap_error err;        /* not zero-filled: hot path */
  int r;

  remap_error_clear (&err);
  (void) h;
  (void) flags;
  r = remap_flush (engine, &err);
  return r < 0 ? io_failed ("flush", &err, r) : 0;
}

static int
plugin_trim (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct remap_error err;        /* not zero-filled: hot path */
  int r;

  remap_error_clear (&err);
  (void) h;
  r = remap_trim (engine, count, offset, engine_flags (flags), &err);
  return r < 0 ? io_failed ("trim", &err, r) : 0;
}

/* The engine cannot promise that zeroing is faster than writing (the
 * origin may have no zero-range support, and remapped units are written),
 * so a FAST_ZERO request fails at once, before touching anything: the
 * client then writes the zeroes itself or skips pre-zeroing. */
static int
plugin_zero (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct remap_error err;        /* not zero-filled: hot path */
  int r;

  remap_error_clear (&err);
  (void) h;
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    nbdkit_set_error (ENOTSUP);
    return -1;
  }
  r = remap_zero (engine, count, offset, engine_flags (flags), &err);
  return r < 0 ? io_failed ("zero", &err, r) : 0;
}

/* What plugin_extents' callback has done. */
struct extents_ctx {
  struct nbdkit_extents *ext;
  bool req_one;
};

#define EXTENTS_STOP 1          /* req_one: the first extent is there */
#define EXTENTS_FAILED 2        /* nbdkit_add_extent failed (error set) */

static int
add_extent (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct extents_ctx *x = opaque;
  uint32_t t = 0;

  if (type & REMAP_EXTENT_HOLE)
    t |= NBDKIT_EXTENT_HOLE;
  if (type & REMAP_EXTENT_ZERO)
    t |= NBDKIT_EXTENT_ZERO;
  if (nbdkit_add_extent (x->ext, off, len, t) == -1)
    return EXTENTS_FAILED;
  return x->req_one ? EXTENTS_STOP : 0;
}

static int
plugin_extents (void *h, uint32_t count, uint64_t offset, uint32_t flags,
                struct nbdkit_extents *ext)
{
  struct remap_error err;
  struct extents_ctx x = { ext, (flags & NBDKIT_FLAG_REQ_ONE) != 0 };
  int r;

  remap_error_clear (&err);
  (void) h;
  r = remap_extents (engine, count, offset, add_extent, &x, &err);
  if (r == EXTENTS_FAILED)
    return -1;
  return r < 0 ? io_failed ("block status", &err, r) : 0;
}

static struct nbdkit_plugin plugin = {
  .name = "remap",
  .longname = "nbdkit bad-sector remapping plugin",
  .version = REMAP_VERSION_STRING,
  .description = "Serve a failing disk, sending its bad units to a spare.",
  .magic_config_key = "origin",
  .config = plugin_config,
  .config_complete = plugin_config_complete,
  .config_help = plugin_config_help,
  .dump_plugin = plugin_dump_plugin,
  .get_ready = plugin_get_ready,
  .after_fork = plugin_after_fork,
  .cleanup = plugin_cleanup,
  .unload = plugin_unload,
  .open = plugin_open,
  .get_size = plugin_get_size,
  .block_size = plugin_block_size,
  .can_write = plugin_true,
  .can_flush = plugin_true,
  .can_fua = plugin_can_fua,
  .can_multi_conn = plugin_true,
  .can_trim = plugin_true,
  .can_zero = plugin_true,
  .can_fast_zero = plugin_true,
  .can_extents = plugin_true,
  .can_cache = plugin_can_cache,
  .pread = plugin_pread,
  .pwrite = plugin_pwrite,
  .flush = plugin_flush,
  .trim = plugin_trim,
  .zero = plugin_zero,
  .extents = plugin_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
