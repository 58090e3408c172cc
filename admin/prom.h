/* remap admin: the status counters in the Prometheus text exposition
 * format, as node_exporter's textfile collector reads it.
 *
 * Input is a plain struct (filled by remapctl from `status --json', by a
 * test from constants); output goes to a struct remap_buf.  No I/O, no
 * engine, no JSON: a renderer only.
 */
#ifndef REMAP_ADMIN_PROM_H
#define REMAP_ADMIN_PROM_H

#include <stdbool.h>
#include <stdint.h>

#include "admin.h"              /* struct remap_buf */
#include "remap/remap.h"        /* struct remap_counters */

struct remap_prom_status {
  const char *origin;           /* label origin="..." (any bytes but NUL) */
  const char *spare;            /* label spare="..." */
  const char *state;            /* "healthy", "spare-full", ... */
  uint32_t unit;                /* remap unit size in bytes */
  uint64_t origin_size;         /* bytes */
  uint64_t origin_units;
  bool origin_reachable, spare_reachable;
  struct remap_counters c;
};

/* Append every metric family (HELP, TYPE, one sample each) for st to out.
 * 0, or -ENOMEM (out->failed) or -EINVAL (a label or the state is NULL). */
int remap_prom_render (const struct remap_prom_status *st,
                       struct remap_buf *out);

/* Append s as the inside of a Prometheus label value: backslash, double
 * quote and newline escaped as \\ \" \n; other bytes as they are. */
int remap_prom_escape_label (struct remap_buf *out, const char *s);

#endif /* REMAP_ADMIN_PROM_H */
