/* remap admin: status counters as Prometheus metrics (text format 0.0.4,
 * the one node_exporter's textfile collector reads).
 *
 * Every family gets "# HELP" and "# TYPE" lines and exactly one sample
 * labelled origin="..." and spare="...", so several remap instances can
 * write their files side by side and a Prometheus rule can name the disk.
 * Values that only grow while the server runs (events, errors seen) are
 * counters named *_total; they restart at zero with the server, which
 * Prometheus' rate() already handles.  Everything else is a gauge.
 *
 * Label values: the format defines three escapes (\\, \" and \n).  A
 * file name may hold any byte, so other control bytes and bytes that are
 * not UTF-8 are written as '?' (a label is for people; the exact name is
 * in `remapctl status').  No timestamps: the textfile collector refuses
 * them.
 *
 * What it does not do: write the file.  The administrator redirects the
 * output to a temporary file and renames it into the collector's
 * directory, so node_exporter never reads half a file (remapctl(1)).
 */

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "prom.h"

/* Length of the UTF-8 sequence at s (1 to 4), or 0 if it is not one. */
static size_t
utf8_len (const unsigned char *s)
{
  size_t n;
  unsigned min;
  uint32_t cp;

  if (s[0] < 0x80)
    return 1;
  if ((s[0] & 0xe0) == 0xc0)
    n = 2, min = 0x80, cp = s[0] & 0x1f;
  else if ((s[0] & 0xf0) == 0xe0)
    n = 3, min = 0x800, cp = s[0] & 0x0f;
  else if ((s[0] & 0xf8) == 0xf0)
    n = 4, min = 0x10000, cp = s[0] & 0x07;
  else
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;                 /* also stops at the NUL */
    cp = cp << 6 | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

int
remap_prom_escape_label (struct remap_buf *out, const char *s)
{
  const unsigned char *p = (const unsigned char *) s;

  while (*p) {
    size_t n = utf8_len (p);
    if (*p == '\\')
      remap_buf_append (out, "\\\\", 2);
    else if (*p == '"')
      remap_buf_append (out, "\\\"", 2);
    else if (*p == '\n')
      remap_buf_append (out, "\\n", 2);
    else if (n == 0 || *p < 0x20 || *p == 0x7f)
      remap_buf_append (out, "?", 1);
    else
      remap_buf_append (out, (const char *) p, n);
    p += n ? n : 1;
  }
  return out->failed ? -ENOMEM : 0;
}

enum kind { GAUGE, COUNTER };

struct family {
  const char *name;             /* without the remap_ prefix */
  enum kind kind;
  const char *help;
  size_t off;                   /* in struct remap_counters */
  int width;                    /* 32 or 64 */
};

#define C64(field) offsetof (struct remap_counters, field), 64
#define C32(field) offsetof (struct remap_counters, field), 32

static const struct family families[] = {
  { "reallocated_units", GAUGE,
    "Origin units remapped to the spare (SMART 5 Reallocated_Sector_Ct).",
    C64 (reallocated_units) },
  { "pending_units", GAUGE,
    "Origin units whose last read failed, waiting for a write or a remap "
    "(SMART 197 Current_Pending_Sector).", C64 (pending_units) },
  { "uncorrectable_units", GAUGE,
    "Remapped units with lost data: reads of it fail until rewritten "
    "(SMART 198 Offline_Uncorrectable).", C64 (uncorrectable_units) },
  { "lost_granules", GAUGE,
    "Granules of remapped units whose data was lost.", C64 (lost_granules) },
  { "spare_free_units", GAUGE,
    "Spare units free for new remaps.", C64 (spare_free_units) },
  { "spare_usable_units", GAUGE,
    "Spare units usable for data (total less the metadata reservation).",
    C64 (spare_usable_units) },
  { "spare_total_units", GAUGE,
    "Spare units in all, metadata included.", C64 (spare_total_units) },
  { "spare_bad_units", GAUGE,
    "Spare units that failed and are out of use.", C64 (spare_bad_units) },
  { "doubt_units", GAUGE,
    "Units whose last commit had an unknown outcome; they refuse writes "
    "until the server is restarted.", C64 (doubt_units) },
  { "metadata_copies_valid", GAUGE,
    "Metadata copies in service.", C32 (copies_valid) },
  { "metadata_copies", GAUGE,
    "Metadata copies the spare was formatted with.", C32 (copies_total) },
  { "generation", GAUGE,
    "Newest committed generation of the remap table.", C64 (generation) },
  { "reallocation_events_total", COUNTER,
    "Remap commits since the server started (SMART 196 "
    "Reallocated_Event_Count).", C64 (reallocation_events) },
  { "read_errors_total", COUNTER,
    "Origin read errors seen since the server started.", C64 (read_errors) },
  { "write_errors_total", COUNTER,
    "Origin write errors seen since the server started.",
    C64 (write_errors) },
  { "spare_errors_total", COUNTER,
    "Spare data I/O errors seen since the server started.",
    C64 (spare_errors) },
  { "read_retries_total", COUNTER,
    "Origin read retries made since the server started.", C64 (retries) },
  { "remaps_refused_total", COUNTER,
    "Remaps refused because the spare was full, since the server started.",
    C64 (enospc_events) },
};

/* {origin="...",spare="..."[,state="..."]} */
static void
labels (struct remap_buf *out, const struct remap_prom_status *st,
        const char *state)
{
  remap_buf_append (out, "{origin=\"", 9);
  remap_prom_escape_label (out, st->origin);
  remap_buf_append (out, "\",spare=\"", 9);
  remap_prom_escape_label (out, st->spare);
  if (state) {
    remap_buf_append (out, "\",state=\"", 9);
    remap_prom_escape_label (out, state);
  }
  remap_buf_append (out, "\"}", 2);
}

static void
sample (struct remap_buf *out, const struct remap_prom_status *st,
        const char *name, enum kind kind, const char *help, uint64_t v)
{
  remap_buf_printf (out, "# HELP remap_%s %s\n# TYPE remap_%s %s\nremap_%s",
                    name, help, name, kind == GAUGE ? "gauge" : "counter",
                    name);
  labels (out, st, NULL);
  remap_buf_printf (out, " %" PRIu64 "\n", v);
}

/* The states `remapctl status' names; one 0/1 sample each. */
static const char *const states[] = {
  "healthy", "spare-nearly-full", "degraded-copies", "spare-full",
  "unreachable",
};

int
remap_prom_render (const struct remap_prom_status *st, struct remap_buf *out)
{
  if (!st->origin || !st->spare || !st->state)
    return -EINVAL;
  for (size_t i = 0; i < sizeof families / sizeof *families; i++) {
    const struct family *f = &families[i];
    const char *p = (const char *) &st->c + f->off;
    uint64_t v;
    if (f->width == 32) {
      uint32_t v32;
      memcpy (&v32, p, sizeof v32);
      v = v32;
    }
    else
      memcpy (&v, p, sizeof v);
    sample (out, st, f->name, f->kind, f->help, v);
  }
  sample (out, st, "unit_size_bytes", GAUGE,
          "Size of a remap unit in bytes.", st->unit);
  sample (out, st, "origin_size_bytes", GAUGE,
          "Size of the origin in bytes.", st->origin_size);
  sample (out, st, "origin_units", GAUGE,
          "Remap units of the origin.", st->origin_units);
  sample (out, st, "origin_up", GAUGE,
          "1 if the origin can be reached, 0 if not.", st->origin_reachable);
  sample (out, st, "spare_up", GAUGE,
          "1 if the spare can be reached, 0 if not.", st->spare_reachable);

  remap_buf_printf (out, "# HELP remap_state The overall state, as remapctl "
                    "status names it: 1 for the current one.\n"
                    "# TYPE remap_state gauge\n");
  for (size_t i = 0; i < sizeof states / sizeof *states; i++) {
    remap_buf_append (out, "remap_state", 11);
    labels (out, st, states[i]);
    remap_buf_printf (out, " %d\n", strcmp (st->state, states[i]) == 0);
  }
  return out->failed ? -ENOMEM : 0;
}
