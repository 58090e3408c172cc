/* remapctl: views drawn from the engine's JSON replies (status
 * --prometheus, map).  They ask through a run function, so the same code
 * serves an engine remapctl opened itself (offline) and the control socket
 * of a running server (online).
 */
#ifndef REMAPCTL_VIEW_H
#define REMAPCTL_VIEW_H

#include <stdbool.h>
#include <stdint.h>

#include "admin.h"
#include "remap/error.h"

/* Run one executor command (argv[0] = its name); output in out. */
typedef int (*view_run_fn) (void *opaque, int argc, char **argv,
                            struct remap_buf *out, struct remap_error *err);

/* status --prometheus: asks "status --json", renders admin/prom.c. */
int view_prometheus (view_run_fn run, void *opaque, struct remap_buf *out,
                     struct remap_error *err);

struct view_map_opts {
  const char *svg;              /* write the SVG here ("-": stdout) */
  uint32_t columns, rows;       /* 0: from the terminal */
  int color;                    /* -1 auto, 0 never, 1 always */
};

/* Parse map's own options (argv[0] is the first option, not "map").
 * 0, or -EINVAL with a message. */
int view_map_parse (int argc, char **argv, struct view_map_opts *o,
                    struct remap_error *err);

/* Asks "status --json" and "list --json", lays out the grid and draws it
 * into out (text) or into o->svg.  0 or a negative errno with a message. */
int view_map (view_run_fn run, void *opaque, const struct view_map_opts *o,
              struct remap_buf *out, struct remap_error *err);

/* The terminal's size: TIOCGWINSZ on stdout, else $COLUMNS and $LINES,
 * else 80x24. */
void view_terminal_size (uint32_t *columns, uint32_t *lines);

#endif /* REMAPCTL_VIEW_H */
