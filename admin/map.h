/* remap admin: a picture of the origin, one cell per region, in the
 * manner of ddrescueview: a terminal grid of characters, or an SVG file.
 *
 * Input is a plain list of runs (origin unit range, state); output goes to
 * a struct remap_buf.  No I/O, no engine, no JSON.
 */
#ifndef REMAP_ADMIN_MAP_H
#define REMAP_ADMIN_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin.h"              /* struct remap_buf */
#include "remap/error.h"

/* Cell states, from best to worst: a cell shows the worst state of the
 * units it covers. */
enum remap_map_state {
  REMAP_MAP_OK = 0,             /* on the origin, nothing known against it */
  REMAP_MAP_REMAPPED,           /* moved to the spare, data intact */
  REMAP_MAP_PENDING,            /* a read failed; waits for write or remap */
  REMAP_MAP_LOST,               /* remapped, but some of its data was lost */
  REMAP_MAP_NSTATES
};

struct remap_map_run {
  uint64_t first, count;        /* origin units */
  enum remap_map_state state;
};

struct remap_map_input {
  const char *origin;           /* its name, for the title */
  uint64_t origin_size;         /* bytes */
  uint32_t unit;                /* bytes per remap unit */
  uint64_t units;               /* origin units: ceil (origin_size / unit) */
  const struct remap_map_run *runs;   /* any order; may overlap */
  size_t nruns;
};

struct remap_map_grid {
  uint64_t units_per_cell;
  uint64_t ncells;
  uint32_t columns;             /* cells per row */
  uint32_t rows;
  uint8_t *cell;                /* [ncells] enum remap_map_state */
  uint64_t count[REMAP_MAP_NSTATES];  /* cells of each state */
  uint64_t units[REMAP_MAP_NSTATES];  /* units of each state (no overlap
                                         counting: a unit counts once, at
                                         its worst) */
};

/* Lines the text picture takes besides the grid rows (title, scale,
 * legend), so a caller can fit it into a terminal of `lines'. */
#define REMAP_MAP_TEXT_EXTRA_LINES 4u

/* Lay the origin out in at most columns x rows cells (each at least 1),
 * as few units per cell as fit.  0; -EINVAL with a message for a run past
 * the end of the origin, a bad state, zero units or zero size; -ENOMEM.
 * Free the grid with remap_map_grid_free. */
int remap_map_layout (const struct remap_map_input *in, uint32_t columns,
                      uint32_t rows, struct remap_map_grid *g,
                      struct remap_error *err);
void remap_map_grid_free (struct remap_map_grid *g);

/* The terminal picture: a title line, the grid (one character per cell,
 * ANSI colours if color), the scale and a legend.  0 or -ENOMEM. */
int remap_map_text (const struct remap_map_input *in,
                    const struct remap_map_grid *g, bool color,
                    struct remap_buf *out);

/* The same picture as a standalone SVG document: one <rect> per cell with
 * class="ok|remapped|pending|lost", a title, the scale and a legend.
 * 0 or -ENOMEM. */
int remap_map_svg (const struct remap_map_input *in,
                   const struct remap_map_grid *g, struct remap_buf *out);

/* "ok", "remapped", "pending", "lost". */
const char *remap_map_state_name (enum remap_map_state s);

#endif /* REMAP_ADMIN_MAP_H */
