/* remap admin: import OFF+LEN[,...] [--pending] [--json], the way a parsed
 * bad-block list reaches an engine, offline or through the control socket.
 *
 * remapctl import parses the administrator's file (badblocks, ddrescue,
 * smartctl: core/parse.c, core/smartctl.c) and sends its byte ranges as one
 * argument in the unit-list grammar (remap_list_parse: "OFF+LEN" bytes,
 * "U" or "U-V" units).  The work is remap_import_units (core/import.c):
 * every range checked against the origin, the spare's room counted, and
 * only then the units changed, one at a time.
 *
 * Between units the sink is checked, so a client that goes away or a
 * server that stops ends the import there (-ECANCELED), each unit done
 * committed and the rest untouched.
 *
 * Output: a usage error (a bad list, a range past the origin) prints
 * nothing.  Otherwise one summary, in text or JSON; when the import stops
 * (no room, a failed remap half way) the JSON summary carries the error,
 * and a text summary is printed only if something had changed.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "remap/import.h"
#include "remap/parse.h"
#include "remap/remap.h"

/* The list's items as unit ranges; -EINVAL (nothing changed) for a byte
 * range past the origin's end. */
static int
to_units (struct remap_engine *e, const struct remap_list *l,
          struct remap_unit_range *v, struct remap_error *err)
{
  uint64_t U = remap_unit (e), size = remap_size (e);

  for (size_t i = 0; i < l->n; i++) {
    const struct remap_list_item *it = &l->v[i];
    if (it->bytes && it->last >= size)
      return remap_set_error (err, -EINVAL, "bad range at byte %" PRIu64
                              " (length %" PRIu64 ") is past the end of the "
                              "origin (%" PRIu64 " bytes): wrong block size, "
                              "or another disk's list?  Nothing was "
                              "imported", it->first,
                              it->last - it->first + 1, size);
    v[i] = it->bytes
      ? (struct remap_unit_range) { it->first / U, it->last / U }
      : (struct remap_unit_range) { it->first, it->last };
  }
  return 0;
}

/* Between units: stop when the sink is cancelled (remap_out_check). */
static int
check_out (void *opaque)
{
  return remap_out_check (opaque);
}

static void
summary (struct remap_engine *e, const struct remap_args *a,
         const struct remap_import_result *res, int r,
         const struct remap_error *err, struct remap_out *out)
{
  const char *mode = a->pending ? "pending" : "remap";

  if (a->json) {
    struct json_object *o = json_object_new_object ();
    jadd_str (o, "command", "import");
    jadd_str (o, "mode", mode);
    jadd_u64 (o, "unit", remap_unit (e));
    jadd_u64 (o, "ranges", res->ranges);
    jadd_u64 (o, "units", res->units);
    jadd_u64 (o, "already", res->already);
    jadd_u64 (o, "needed", res->needed);
    jadd_u64 (o, "free", res->room);
    jadd_u64 (o, "changed", res->changed);
    if (r)
      jadd_str (o, "error", err->msg[0] ? err->msg : strerror (-r));
    remap_out_json (out, o);
    remap_out_write (out, "\n", 1);
    json_object_put (o);
    return;
  }
  if (r && res->changed == 0)
    return;                     /* the error says it all */
  remap_out_printf (out, "imported %" PRIu64 " bad range(s): %" PRIu64
                    " unit(s), %" PRIu64 " %s now, %" PRIu64 " already %s\n",
                    res->ranges, res->units, res->changed,
                    a->pending ? "marked pending" : "remapped", res->already,
                    a->pending ? "remapped or pending" : "remapped");
}

int
cmd_import (struct remap_engine *e, const struct remap_command *c,
            const struct remap_args *a, struct remap_out *out,
            struct remap_error *err)
{
  struct remap_list l = { 0 };
  struct remap_unit_range *v = NULL;
  struct remap_import_result res = { 0 };
  int r;

  (void) c;
  if ((r = remap_list_parse (a->pos[0], "import", &l, err)) != 0)
    return r;
  v = malloc ((l.n ? l.n : 1) * sizeof *v);
  if (!v) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  if ((r = to_units (e, &l, v, err)) != 0)
    goto out;
  r = remap_import_units_checked (e, v, l.n, NULL,
                                  a->pending ? REMAP_IMPORT_PENDING : 0,
                                  check_out, out, &res, err);
  if (r == -ECANCELED)
    remap_error_prefix (err, r, "import cancelled (the client went away or "
                        "the server is stopping): ");
  if (r != -EINVAL)
    summary (e, a, &res, r, err, out);
 out:
  free (v);
  remap_list_free (&l);
  return r ? r : out->err;
}
