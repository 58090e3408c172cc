/* remapctl: status --prometheus and map.
 *
 * Both read the executor's JSON replies with json-c (never with string
 * searches), turn them into the plain structs of admin/prom.h and
 * admin/map.h, and let those render.  A reply that lacks a key or holds
 * the wrong type is an error naming the key (-EPROTO): a server of another
 * version, not a number to guess.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <json-c/json.h>

#include "map.h"
#include "prom.h"
#include "remap/parse.h"
#include "view.h"
/* ---- reading replies --------------------------------------------------- */

static int
ask (view_run_fn run, void *opaque, const char *what, json_object **j,
     struct remap_error *err)
{
  char *argv[] = { (char *) what, (char *) "--json", NULL };
  struct remap_buf out = { 0 };
  enum json_tokener_error jerr = json_tokener_success;
  int r = run (opaque, 2, argv, &out, err);

  *j = NULL;
  if (r == 0) {
    *j = out.data ? json_tokener_parse_verbose (out.data, &jerr) : NULL;
    if (!*j || !json_object_is_type (*j, json_type_object)) {
      json_object_put (*j);
      *j = NULL;
      r = remap_set_error (err, -EPROTO, "the reply to \"%s --json\" is not "
                           "a JSON object (%s); is the server another "
                           "version of remap?", what,
                           json_tokener_error_desc (jerr));
    }
  }
  remap_buf_free (&out);
  return r;
}

/* The member at a dotted path ("counters.pending_units") of type t. */
static int
get (json_object *j, const char *path, json_type t, json_object **v,
     struct remap_error *err)
{
  char key[64];
  const char *p = path;

  while (j) {
    size_t n = strcspn (p, ".");
    snprintf (key, sizeof key, "%.*s", (int) n, p);
    if (!json_object_is_type (j, json_type_object)
        || !json_object_object_get_ex (j, key, &j))
      break;
    if (p[n] == '\0') {
      if (!json_object_is_type (j, t))
        break;
      *v = j;
      return 0;
    }
    p += n + 1;
  }
  return remap_set_error (err, -EPROTO, "the status reply has no %s \"%s\"; "
                          "is the server another version of remap?",
                          json_type_to_name (t), path);
}

static int
get_u64 (json_object *j, const char *path, uint64_t *v,
         struct remap_error *err)
{
  json_object *o;
  int r = get (j, path, json_type_int, &o, err);
  if (r == 0) {
    *v = json_object_get_uint64 (o);
    if (json_object_get_int64 (o) < 0)
      r = remap_set_error (err, -EPROTO, "\"%s\" is negative", path);
  }
  return r;
}

static int
get_bool (json_object *j, const char *path, bool *v, struct remap_error *err)
{
  json_object *o;
  int r = get (j, path, json_type_boolean, &o, err);
  if (r == 0)
    *v = json_object_get_boolean (o);
  return r;
}

static int
get_str (json_object *j, const char *path, const char **v,
         struct remap_error *err)
{
  json_object *o;
  int r = get (j, path, json_type_string, &o, err);
  if (r == 0)
    *v = json_object_get_string (o);
  return r;
}

/* ---- status --prometheus --------------------------------------------- */

static int
fill_prom (json_object *j, struct remap_prom_status *st,
           struct remap_error *err)
{
  static const struct {
    const char *key;
    size_t off;
    int width;
  } keys[] = {
#define K64(k) { "counters." #k, offsetof (struct remap_counters, k), 64 }
#define K32(k) { "counters." #k, offsetof (struct remap_counters, k), 32 }
    K64 (reallocated_units), K64 (reallocation_events), K64 (pending_units),
    K64 (uncorrectable_units), K64 (lost_granules), K64 (spare_bad_units),
    K64 (spare_free_units), K64 (spare_usable_units),
    K64 (spare_total_units), K64 (read_errors), K64 (write_errors),
    K64 (spare_errors), K64 (retries), K64 (enospc_events),
    K32 (copies_valid), K32 (copies_total), K64 (generation),
#undef K64
#undef K32
  };
  uint64_t v;
  int r = 0;

  memset (st, 0, sizeof *st);
  for (size_t i = 0; r == 0 && i < sizeof keys / sizeof *keys; i++) {
    char *p = (char *) &st->c + keys[i].off;
    if ((r = get_u64 (j, keys[i].key, &v, err)) != 0)
      break;
    if (keys[i].width == 32) {
      uint32_t v32 = v > UINT32_MAX ? UINT32_MAX : (uint32_t) v;
      memcpy (p, &v32, sizeof v32);
    }
    else
      memcpy (p, &v, sizeof v);
  }
  /* doubt_units is newer than some servers: absent means none. */
  json_object *o;
  if (json_object_object_get_ex (json_object_object_get (j, "counters"),
                                 "doubt_units", &o))
    st->c.doubt_units = json_object_get_uint64 (o);
  if (r == 0 && (r = get_u64 (j, "geometry.unit", &v, err)) == 0)
    st->unit = v > UINT32_MAX ? UINT32_MAX : (uint32_t) v;
  if (r == 0)
    r = get_u64 (j, "origin.size", &st->origin_size, err);
  if (r == 0)
    r = get_u64 (j, "origin.units", &st->origin_units, err);
  if (r == 0)
    r = get_bool (j, "origin.reachable", &st->origin_reachable, err);
  if (r == 0)
    r = get_bool (j, "spare.reachable", &st->spare_reachable, err);
  if (r == 0)
    r = get_str (j, "origin.name", &st->origin, err);
  if (r == 0)
    r = get_str (j, "spare.name", &st->spare, err);
  if (r == 0)
    r = get_str (j, "state", &st->state, err);
  return r;
}

int
view_prometheus (view_run_fn run, void *opaque, struct remap_buf *out,
                 struct remap_error *err)
{
  struct remap_prom_status st;
  json_object *j;
  int r = ask (run, opaque, "status", &j, err);

  if (r == 0)
    r = fill_prom (j, &st, err);
  if (r == 0 && remap_prom_render (&st, out) != 0)
    r = remap_set_error (err, -ENOMEM, "out of memory");
  json_object_put (j);
  return r;
}

/* ---- map ----------------------------------------------------------------- */

void
view_terminal_size (uint32_t *columns, uint32_t *lines)
{
  struct winsize ws;
  const char *c = getenv ("COLUMNS"), *l = getenv ("LINES");
  uint64_t v;

  *columns = 80;
  *lines = 24;
  if (isatty (STDOUT_FILENO) && ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0
      && ws.ws_col > 0 && ws.ws_row > 0) {
    *columns = ws.ws_col;
    *lines = ws.ws_row;
    return;
  }
  if (c && remap_parse_u64 (c, 0, "COLUMNS", &v, NULL) == 0 && v > 0
      && v <= 10000)
    *columns = (uint32_t) v;
  if (l && remap_parse_u64 (l, 0, "LINES", &v, NULL) == 0 && v > 0
      && v <= 10000)
    *lines = (uint32_t) v;
}

static int
parse_dim (const char *opt, const char *s, uint32_t *v,
           struct remap_error *err)
{
  uint64_t n;

  if (remap_parse_u64 (s, 0, opt, &n, NULL) != 0 || n == 0 || n > 10000)
    return remap_set_error (err, -EINVAL, "%s \"%s\": want a number of "
                            "cells from 1 to 10000", opt, s);
  *v = (uint32_t) n;
  return 0;
}

int
view_map_parse (int argc, char **argv, struct view_map_opts *o,
                struct remap_error *err)
{
  memset (o, 0, sizeof *o);
  o->color = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    bool has_val = strcmp (a, "--svg") == 0 || strcmp (a, "--columns") == 0
      || strcmp (a, "--rows") == 0;
    int r = 0;

    if (has_val && i + 1 == argc)
      return remap_set_error (err, -EINVAL, "%s needs a value; usage: map "
                              "[--svg FILE] [--columns N] [--rows N] "
                              "[--color|--no-color]", a);
    if (strcmp (a, "--svg") == 0)
      o->svg = argv[++i];
    else if (strcmp (a, "--columns") == 0)
      r = parse_dim (a, argv[++i], &o->columns, err);
    else if (strcmp (a, "--rows") == 0)
      r = parse_dim (a, argv[++i], &o->rows, err);
    else if (strcmp (a, "--color") == 0)
      o->color = 1;
    else if (strcmp (a, "--no-color") == 0)
      o->color = 0;
    else
      return remap_set_error (err, -EINVAL, "%s \"%s\"; usage: map "
                              "[--svg FILE] [--columns N] [--rows N] "
                              "[--color|--no-color]", a[0] == '-'
                              ? "unknown option" : "unexpected argument", a);
    if (r)
      return r;
  }
  if (o->svg && o->svg[0] == '\0')
    return remap_set_error (err, -EINVAL, "--svg needs a file name (or - "
                            "for standard output)");
  return 0;
}

struct runs {
  struct remap_map_run *v;
  size_t n;
};

/* list --json entries to runs: mapped (lost if lost_granules > 0) and
 * pending; bad spare units name no origin unit and are not drawn. */
static int
fill_runs (json_object *list, uint64_t units, struct runs *x,
           struct remap_error *err)
{
  json_object *ent;
  size_t n;

  if (get (list, "entries", json_type_array, &ent, err) != 0)
    return -EPROTO;
  n = json_object_array_length (ent);
  x->v = calloc (n ? n : 1, sizeof *x->v);
  if (!x->v)
    return remap_set_error (err, -ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    json_object *e = json_object_array_get_idx (ent, i);
    const char *state;
    uint64_t lost, u;
    int r;

    if ((r = get_str (e, "state", &state, err)) != 0)
      return r;
    if (strcmp (state, "bad") == 0)
      continue;
    if ((r = get_u64 (e, "origin_unit", &u, err)) != 0
        || (r = get_u64 (e, "lost_granules", &lost, err)) != 0)
      return r;
    if (u >= units)
      return remap_set_error (err, -EPROTO, "the table names origin unit %"
                              PRIu64 ", past the origin's %" PRIu64
                              " units", u, units);
    x->v[x->n].first = u;
    x->v[x->n].count = 1;
    if (strcmp (state, "mapped") == 0)
      x->v[x->n].state = lost ? REMAP_MAP_LOST : REMAP_MAP_REMAPPED;
    else if (strcmp (state, "pending") == 0)
      x->v[x->n].state = REMAP_MAP_PENDING;
    else
      return remap_set_error (err, -EPROTO, "unknown slot state \"%s\" in "
                              "the table; is the server another version of "
                              "remap?", state);
    x->n++;
  }
  return 0;
}

static int
write_file (const char *path, const struct remap_buf *b,
            struct remap_error *err)
{
  FILE *f = strcmp (path, "-") == 0 ? stdout : fopen (path, "w");
  int r = 0;

  if (!f)
    return remap_set_error (err, -errno, "cannot create %s: %s", path,
                            strerror (errno));
  if (b->len && fwrite (b->data, 1, b->len, f) != b->len)
    r = -errno;
  if (f == stdout ? fflush (f) != 0 : fclose (f) != 0)
    r = r ? r : -errno;
  if (r)
    return remap_set_error (err, r ? r : -EIO, "writing %s failed: %s", path,
                            strerror (-r));
  return 0;
}

int
view_map (view_run_fn run, void *opaque, const struct view_map_opts *o,
          struct remap_buf *out, struct remap_error *err)
{
  json_object *st = NULL, *list = NULL;
  struct remap_map_input in = { 0 };
  struct remap_map_grid g = { 0 };
  struct runs x = { 0 };
  uint32_t cols, lines;
  uint64_t v;
  int r;

  if ((r = ask (run, opaque, "status", &st, err)) != 0
      || (r = get_str (st, "origin.name", &in.origin, err)) != 0
      || (r = get_u64 (st, "origin.size", &in.origin_size, err)) != 0
      || (r = get_u64 (st, "origin.units", &in.units, err)) != 0
      || (r = get_u64 (st, "geometry.unit", &v, err)) != 0)
    goto out;
  in.unit = v > UINT32_MAX ? 0 : (uint32_t) v;
  if ((r = ask (run, opaque, "list", &list, err)) != 0
      || (r = fill_runs (list, in.units, &x, err)) != 0)
    goto out;
  in.runs = x.v;
  in.nruns = x.n;
  view_terminal_size (&cols, &lines);
  if (o->columns)
    cols = o->columns;
  lines = lines > REMAP_MAP_TEXT_EXTRA_LINES
    ? lines - REMAP_MAP_TEXT_EXTRA_LINES : 1;
  if (o->rows)
    lines = o->rows;
  if ((r = remap_map_layout (&in, cols, lines, &g, err)) != 0)
    goto out;
  if (o->svg) {
    struct remap_buf svg = { 0 };
    r = remap_map_svg (&in, &g, &svg);
    if (r == 0)
      r = write_file (o->svg, &svg, err);
    else
      remap_set_error (err, r, "out of memory");
    remap_buf_free (&svg);
    if (r == 0 && strcmp (o->svg, "-") != 0)
      remap_buf_printf (out, "wrote %s: %" PRIu64 " cells of %" PRIu64
                        " unit%s, %" PRIu32 " per row\n", o->svg, g.ncells,
                        g.units_per_cell, g.units_per_cell == 1 ? "" : "s",
                        g.columns);
  }
  else {
    bool color = o->color == 1
      || (o->color == -1 && isatty (STDOUT_FILENO) && !getenv ("NO_COLOR")
          && !(getenv ("TERM") && strcmp (getenv ("TERM"), "dumb") == 0));
    if ((r = remap_map_text (&in, &g, color, out)) != 0)
      remap_set_error (err, r, "out of memory");
  }
 out:
  remap_map_grid_free (&g);
  free (x.v);
  json_object_put (st);
  json_object_put (list);
  return r;
}
