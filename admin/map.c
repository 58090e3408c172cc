/* remap admin: the origin as a grid of cells (remapctl map).
 *
 * The origin's units are cut into ncells equal regions of units_per_cell
 * units (the last one may be shorter), laid out row by row.  A cell shows
 * the worst state of the units it covers (lost > pending > remapped > ok),
 * so one bad unit in a million is never averaged away: the point of the
 * picture is to show where the damage is, not how much of a cell it fills.
 *
 *   units:  0 1 2 3 | 4 5 6 7 | 8 9         units_per_cell = 4
 *   runs:     R         P P                 (R remapped, P pending)
 *   cells:  [  R    ] [  P    ] [ . ]
 *
 * The layout takes as few units per cell as fit into columns x rows, so a
 * small origin gets one cell per unit and never more cells than units.
 * The text and the SVG picture are drawn from the same grid.
 *
 * Pure: no I/O.  What it does not do: know where the runs come from
 * (remapctl reads them from `list --json', offline or online).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"

static const struct {
  const char *name;
  char mark;
  const char *ansi;             /* foreground colour */
  const char *fill;             /* SVG */
  const char *meaning;
} st_info[REMAP_MAP_NSTATES] = {
  [REMAP_MAP_OK] = { "ok", '.', "\033[32m", "#3c9a3c",
                     "on the origin, no error known" },
  [REMAP_MAP_REMAPPED] = { "remapped", 'R', "\033[34;1m", "#3a6fd8",
                           "remapped to the spare, data intact" },
  [REMAP_MAP_PENDING] = { "pending", 'P', "\033[33;1m", "#e0b000",
                          "a read failed: waits for a write or a remap" },
  [REMAP_MAP_LOST] = { "lost", 'X', "\033[31;1m", "#d02020",
                       "remapped, some data lost (reads fail until "
                       "rewritten)" },
};

const char *
remap_map_state_name (enum remap_map_state s)
{
  return (unsigned) s < REMAP_MAP_NSTATES ? st_info[s].name : "unknown";
}

void
remap_map_grid_free (struct remap_map_grid *g)
{
  free (g->cell);
  memset (g, 0, sizeof *g);
}

static uint64_t
div_up (uint64_t a, uint64_t b)
{
  return a / b + (a % b != 0);
}

static int
check_input (const struct remap_map_input *in, struct remap_error *err)
{
  if (in->units == 0 || in->unit == 0)
    return remap_set_error (err, -EINVAL, "the origin has no units to draw "
                            "(unit size %" PRIu32 ", %" PRIu64 " units)",
                            in->unit, in->units);
  for (size_t i = 0; i < in->nruns; i++) {
    const struct remap_map_run *r = &in->runs[i];
    if ((unsigned) r->state >= REMAP_MAP_NSTATES)
      return remap_set_error (err, -EINVAL, "run %zu: unknown state %d",
                              i, (int) r->state);
    if (r->count == 0 || r->first >= in->units
        || r->count > in->units - r->first)
      return remap_set_error (err, -EINVAL, "run %zu: units %" PRIu64
                              " count %" PRIu64 " lie outside the origin "
                              "(%" PRIu64 " units)", i, r->first, r->count,
                              in->units);
  }
  return 0;
}

int
remap_map_layout (const struct remap_map_input *in, uint32_t columns,
                  uint32_t rows, struct remap_map_grid *g,
                  struct remap_error *err)
{
  uint64_t max_cells;
  int r;

  memset (g, 0, sizeof *g);
  if ((r = check_input (in, err)) != 0)
    return r;
  if (columns == 0)
    columns = 1;
  if (rows == 0)
    rows = 1;
  max_cells = (uint64_t) columns * rows;
  g->units_per_cell = div_up (in->units, max_cells);
  g->ncells = div_up (in->units, g->units_per_cell);
  g->columns = g->ncells < columns ? (uint32_t) g->ncells : columns;
  g->rows = (uint32_t) div_up (g->ncells, g->columns);
  g->cell = calloc (g->ncells, 1);
  if (!g->cell)
    return remap_set_error (err, -ENOMEM, "out of memory for %" PRIu64
                            " cells", g->ncells);
  for (size_t i = 0; i < in->nruns; i++) {
    const struct remap_map_run *run = &in->runs[i];
    uint64_t c0 = run->first / g->units_per_cell;
    uint64_t c1 = (run->first + run->count - 1) / g->units_per_cell;
    for (uint64_t c = c0; c <= c1; c++)
      if (g->cell[c] < run->state)
        g->cell[c] = (uint8_t) run->state;
    g->units[run->state] += run->count;
  }
  g->units[REMAP_MAP_OK] = in->units;
  for (int s = 1; s < REMAP_MAP_NSTATES; s++)
    g->units[REMAP_MAP_OK] -= g->units[s] < g->units[REMAP_MAP_OK]
      ? g->units[s] : g->units[REMAP_MAP_OK];
  for (uint64_t c = 0; c < g->ncells; c++)
    g->count[g->cell[c]]++;
  return 0;
}

/* "8 KiB", "1.5 GiB": for the scale line, next to the exact bytes. */
static void
human (uint64_t b, char *buf, size_t len)
{
  static const char *const sfx[] = { "bytes", "KiB", "MiB", "GiB", "TiB",
                                     "PiB", "EiB" };
  int i = 0;
  double v = (double) b;

  while (v >= 1024 && i < 6) {
    v /= 1024;
    i++;
  }
  if (i == 0)
    snprintf (buf, len, "%" PRIu64 " bytes", b);
  else if (v == (double) (uint64_t) v)
    snprintf (buf, len, "%" PRIu64 " %s", (uint64_t) v, sfx[i]);
  else
    snprintf (buf, len, "%.1f %s", v, sfx[i]);
}

static uint64_t
cell_bytes (const struct remap_map_input *in, const struct remap_map_grid *g)
{
  return g->units_per_cell * in->unit;
}

/* "scale: 1 cell = 4 units (16 KiB), 16 cells per row (256 KiB)": short
 * enough for a 64-column terminal with any numbers. */
static void
scale_line (const struct remap_map_input *in, const struct remap_map_grid *g,
            struct remap_buf *out)
{
  char h1[32], h2[32];
  uint64_t cb = cell_bytes (in, g);

  human (cb, h1, sizeof h1);
  human (cb * g->columns, h2, sizeof h2);
  remap_buf_printf (out, "scale: 1 cell = %" PRIu64 " unit%s (%s), %" PRIu32
                    " cells per row (%s)\n", g->units_per_cell,
                    g->units_per_cell == 1 ? "" : "s", h1, g->columns, h2);
}

int
remap_map_text (const struct remap_map_input *in,
                const struct remap_map_grid *g, bool color,
                struct remap_buf *out)
{
  char h[32];

  human (in->origin_size, h, sizeof h);
  remap_buf_printf (out, "map of %s: %s, %" PRIu64 " units of %" PRIu32
                    " bytes\n", in->origin, h, in->units, in->unit);
  for (uint64_t c = 0; c < g->ncells; c++) {
    int s = g->cell[c];
    if (color)
      remap_buf_printf (out, "%s%c\033[0m", st_info[s].ansi, st_info[s].mark);
    else
      remap_buf_append (out, &st_info[s].mark, 1);
    if ((c + 1) % g->columns == 0 || c + 1 == g->ncells)
      remap_buf_append (out, "\n", 1);
  }
  scale_line (in, g, out);
  remap_buf_printf (out, "legend:");
  for (int s = 0; s < REMAP_MAP_NSTATES; s++) {
    if (color)
      remap_buf_printf (out, " %s%c\033[0m", st_info[s].ansi, st_info[s].mark);
    else
      remap_buf_printf (out, " %c", st_info[s].mark);
    remap_buf_printf (out, " %s %" PRIu64 "%s", st_info[s].name,
                      g->units[s], s + 1 < REMAP_MAP_NSTATES ? "," : "");
  }
  remap_buf_printf (out, " (units)\n");
  return out->failed ? -ENOMEM : 0;
}

/* ---- SVG ------------------------------------------------------------- */

#define CELL 10                 /* px, a cell and the gap after it */
#define GAP 1
#define MARGIN 10
#define LINE 18                 /* px per text line */

static void
xml_text (struct remap_buf *out, const char *s)
{
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    switch (*p) {
    case '&': remap_buf_append (out, "&amp;", 5); break;
    case '<': remap_buf_append (out, "&lt;", 4); break;
    case '>': remap_buf_append (out, "&gt;", 4); break;
    case '"': remap_buf_append (out, "&quot;", 6); break;
    case '\'': remap_buf_append (out, "&apos;", 6); break;
    default:
      /* XML 1.0 allows no control bytes but tab and newline, and the
       * document is declared UTF-8: anything else becomes '?'. */
      if (*p < 0x20 || *p == 0x7f || *p >= 0x80)
        remap_buf_append (out, "?", 1);
      else
        remap_buf_append (out, (const char *) p, 1);
    }
}

int
remap_map_svg (const struct remap_map_input *in,
               const struct remap_map_grid *g, struct remap_buf *out)
{
  unsigned grid_w = g->columns * CELL, grid_h = g->rows * CELL;
  unsigned top = MARGIN + 2 * LINE, width = 2 * MARGIN + grid_w;
  unsigned legend_y = top + grid_h + LINE / 2;
  unsigned height = legend_y + REMAP_MAP_NSTATES * LINE + MARGIN;
  struct remap_buf line = { 0 };
  char h[32];

  if (width < 560)
    width = 560;                /* room for the scale and legend text */
  remap_buf_printf (out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" "
                    "width=\"%u\" height=\"%u\" viewBox=\"0 0 %u %u\">\n",
                    width, height, width, height);
  remap_buf_printf (out, "<style>text{font-family:monospace;font-size:12px}");
  for (int s = 0; s < REMAP_MAP_NSTATES; s++)
    remap_buf_printf (out, ".%s{fill:%s}", st_info[s].name, st_info[s].fill);
  remap_buf_printf (out, "</style>\n<title>remap map of ");
  xml_text (out, in->origin);
  human (in->origin_size, h, sizeof h);
  remap_buf_printf (out, "</title>\n<text x=\"%u\" y=\"%u\">map of ", MARGIN,
                    MARGIN + 12);
  xml_text (out, in->origin);
  remap_buf_printf (out, ": %s, %" PRIu64 " units of %" PRIu32 " bytes"
                    "</text>\n<text x=\"%u\" y=\"%u\">", h, in->units,
                    in->unit, MARGIN, MARGIN + LINE + 12);
  scale_line (in, g, &line);
  if (line.failed)
    out->failed = true;
  else {
    if (line.len && line.data[line.len - 1] == '\n')
      line.data[--line.len] = '\0';
    xml_text (out, line.data);
  }
  remap_buf_free (&line);
  remap_buf_printf (out, "</text>\n<g id=\"cells\">\n");
  for (uint64_t c = 0; c < g->ncells; c++)
    remap_buf_printf (out, "<rect x=\"%u\" y=\"%u\" width=\"%d\" "
                      "height=\"%d\" class=\"%s\"/>\n",
                      MARGIN + (unsigned) (c % g->columns) * CELL,
                      top + (unsigned) (c / g->columns) * CELL, CELL - GAP,
                      CELL - GAP, st_info[g->cell[c]].name);
  remap_buf_printf (out, "</g>\n<g id=\"legend\">\n");
  for (int s = 0; s < REMAP_MAP_NSTATES; s++) {
    unsigned y = legend_y + s * LINE;
    remap_buf_printf (out, "<rect x=\"%u\" y=\"%u\" width=\"%d\" "
                      "height=\"%d\" class=\"%s\"/><text x=\"%u\" y=\"%u\">"
                      "%s: %" PRIu64 " unit%s, %" PRIu64 " cell%s (%s)"
                      "</text>\n", MARGIN, y, CELL - GAP, CELL - GAP,
                      st_info[s].name, MARGIN + 2 * CELL, y + 9,
                      st_info[s].name, g->units[s],
                      g->units[s] == 1 ? "" : "s", g->count[s],
                      g->count[s] == 1 ? "" : "s", st_info[s].meaning);
  }
  remap_buf_printf (out, "</g>\n</svg>\n");
  return out->failed ? -ENOMEM : 0;
}
