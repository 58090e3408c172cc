/* remap admin: the commands that show the engine's state: status, list,
 * lookup, export.  Each gathers its data through the engine's API, then
 * renders it as text or as one JSON object on one line (json-c); the two
 * renderings sit side by side so they cannot drift apart.  list and export
 * stream their entries: their memory does not grow with the reply (the
 * sorted copy of the table they walk grows with the table only).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "remap/parse.h"
#include "remap/remap.h"

/* ---- shared helpers ---------------------------------------------------- */

uint64_t
cmd_origin_units (struct remap_engine *e)
{
  uint64_t U = remap_unit (e);
  return (remap_size (e) + U - 1) / U;
}

uint64_t
cmd_origin_sectors (struct remap_engine *e)
{
  return (remap_size (e) + REMAP_CONTROL_SECTOR - 1) / REMAP_CONTROL_SECTOR;
}

int
cmd_get_range (struct remap_engine *e, const struct remap_args *a,
               uint64_t *first, uint64_t *count, struct remap_error *err)
{
  uint64_t U = remap_unit (e), start, n = 1, limit;
  const char *what = a->units ? "unit" : "LBA";

  if (remap_parse_u64 (a->pos[0], 0, a->units ? "bad unit" : "bad LBA",
                       &start, err) != 0)
    return -EINVAL;
  if (a->npos > 1 && remap_parse_u64 (a->pos[1], 0, "bad count", &n, err))
    return -EINVAL;
  if (n == 0)
    return remap_set_error (err, -EINVAL, "bad count \"%.40s\": want a "
                            "positive number", a->pos[1]);
  limit = a->units ? cmd_origin_units (e) : cmd_origin_sectors (e);
  if (start >= limit || n > limit - start)
    return remap_set_error (err, -EINVAL, "%s %" PRIu64 " count %" PRIu64
                            " is past the end of the origin (%" PRIu64 " %s)",
                            what, start, n, limit,
                            a->units ? "units" : "512-byte sectors");
  if (a->units) {
    *first = start;
    *count = n;
  }
  else {
    uint64_t last = ((start + n) * REMAP_CONTROL_SECTOR - 1) / U;
    *first = start * REMAP_CONTROL_SECTOR / U;
    *count = last - *first + 1;
  }
  return 0;
}

static const char *
json_text (struct json_object *o, size_t *len)
{
  const char *t = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN
                                                  | JSON_C_TO_STRING_NOSLASHESCAPE);
  *len = t ? strlen (t) : 0;
  return t;
}

int
cmd_json_open_array (struct remap_out *out, struct json_object *head,
                     const char *key)
{
  size_t n;
  const char *t = json_text (head, &n);

  if (!t || n < 2)
    return out->err ? out->err : (out->err = -ENOMEM);
  remap_out_write (out, t, n - 1);      /* without the closing brace */
  return remap_out_printf (out, "%s\"%s\":[", n > 2 ? "," : "", key);
}

int
cmd_json_close_array (struct remap_out *out, struct json_object *tail)
{
  size_t n = 2;
  const char *t = tail ? json_text (tail, &n) : "{}";

  if (!t)
    return out->err ? out->err : (out->err = -ENOMEM);
  remap_out_write (out, "]", 1);
  if (n > 2) {
    remap_out_write (out, ",", 1);
    remap_out_write (out, t + 1, n - 1);
  }
  else
    remap_out_write (out, "}", 1);
  return remap_out_write (out, "\n", 1);
}

/* The LBAs of unit u (clipped at the end of the origin). */
static void
unit_lbas (struct remap_engine *e, uint64_t u, uint64_t *lba, uint64_t *n)
{
  uint64_t U = remap_unit (e), off = u * U, end = off + U;
  if (end > remap_size (e))
    end = remap_size (e);
  *lba = off / REMAP_CONTROL_SECTOR;
  *n = (end + REMAP_CONTROL_SECTOR - 1) / REMAP_CONTROL_SECTOR - *lba;
}

/* ---- status ---------------------------------------------------------- */

enum { C_DEGRADED = 1, C_NEARLY_FULL = 2, C_FULL = 4, C_UNCORRECTABLE = 8,
       C_PENDING = 16, C_ORIGIN_UNREACHABLE = 32, C_SPARE_UNREACHABLE = 64 };

static unsigned
conditions (const struct remap_counters *c,
            const struct remap_backend_status *ost,
            const struct remap_backend_status *sst)
{
  unsigned f = 0;
  if (ost->state == REMAP_BACKEND_UNREACHABLE)
    f |= C_ORIGIN_UNREACHABLE;
  if (sst->state == REMAP_BACKEND_UNREACHABLE)
    f |= C_SPARE_UNREACHABLE;
  if (c->copies_valid < c->copies_total)
    f |= C_DEGRADED;
  if (c->spare_free_units == 0)
    f |= C_FULL;
  else if (c->spare_free_units * 10 < c->spare_usable_units)
    f |= C_NEARLY_FULL;
  if (c->uncorrectable_units)
    f |= C_UNCORRECTABLE;
  if (c->pending_units)
    f |= C_PENDING;
  return f;
}

static const struct {
  unsigned flag;
  const char *name, *text;
} cond_names[] = {
  { C_ORIGIN_UNREACHABLE, "origin-unreachable",
    "origin unreachable: requests fail with EIO until its NBD server is "
    "back (remap reconnects by itself; nothing is remapped meanwhile)" },
  { C_SPARE_UNREACHABLE, "spare-unreachable",
    "spare unreachable: requests that need it fail with EIO until its NBD "
    "server is back (remap reconnects by itself)" },
  { C_FULL, "spare-full", "spare full: new bad units cannot be remapped" },
  { C_DEGRADED, "degraded-copies",
    "metadata copies damaged: run remapctl repair" },
  { C_NEARLY_FULL, "spare-nearly-full", "spare nearly full (<10% free)" },
  { C_UNCORRECTABLE, "uncorrectable-units",
    "some remapped units have lost data (reads of it fail until rewritten)" },
  { C_PENDING, "pending-units",
    "some units failed reads and wait for a write or remap" },
};

/* The overall state: the worst condition, or healthy. */
static const char *
state_name (unsigned f)
{
  if (f & (C_ORIGIN_UNREACHABLE | C_SPARE_UNREACHABLE))
    return "unreachable";
  if (f & C_FULL)
    return "spare-full";
  if (f & C_DEGRADED)
    return "degraded-copies";
  if (f & C_NEARLY_FULL)
    return "spare-nearly-full";
  return "healthy";
}

static void
add_reach (struct json_object *o, const struct remap_backend_status *st)
{
  jadd_bool (o, "reachable", st->state == REMAP_BACKEND_OK);
  jadd_u64 (o, "down_ms", st->down_ms);
  jadd_u64 (o, "reconnects", st->reconnects);
  jadd_str (o, "detail", st->detail);
}

static int
status_json (struct remap_engine *e, const struct cmd_status_data *d,
             struct remap_out *out)
{
  const struct remap_layout *l = &d->in.layout;
  const struct remap_counters *c = &d->c;
  struct json_object *o = json_object_new_object ();
  struct json_object *conds = json_object_new_array ();
  struct json_object *org = json_object_new_object ();
  struct json_object *sp = json_object_new_object ();
  struct json_object *g = json_object_new_object ();
  struct json_object *offs = json_object_new_array ();
  struct json_object *k = json_object_new_object ();
  int r;

  jadd_str (o, "version", REMAP_VERSION_STRING);
  jadd_str (o, "state", state_name (d->f));
  for (size_t i = 0; i < sizeof cond_names / sizeof *cond_names; i++)
    if (d->f & cond_names[i].flag)
      json_object_array_add (conds, json_object_new_string (cond_names[i].name));
  json_object_object_add (o, "conditions", conds);

  jadd_str (org, "name", d->in.origin_name);
  jadd_str (org, "label", d->in.origin_label);
  jadd_u64 (org, "size", remap_size (e));
  jadd_u64 (org, "units", cmd_origin_units (e));
  jadd_u64 (org, "sectors", cmd_origin_sectors (e));
  add_reach (org, &d->ost);
  json_object_object_add (o, "origin", org);

  jadd_str (sp, "name", d->in.spare_name);
  jadd_u64 (sp, "size", d->in.spare_size);
  jadd_str (sp, "uuid", d->uuid);
  jadd_u64 (sp, "format_time", d->in.format_time);
  add_reach (sp, &d->sst);
  json_object_object_add (o, "spare", sp);

  jadd_u64 (g, "unit", l->unit);
  jadd_u64 (g, "sector", REMAP_CONTROL_SECTOR);
  jadd_str (g, "strategy", remap_strategy_name (l->strategy));
  jadd_u64 (g, "copies", l->copies);
  jadd_u64 (g, "copy_units", l->copy_units);
  jadd_u64 (g, "table_blocks", l->table_blocks);
  jadd_u64 (g, "entries_per_block", l->entries_per_block);
  for (uint32_t i = 0; i < l->copies; i++)
    json_object_array_add (offs, json_object_new_uint64 (l->copy_offset[i]));
  json_object_object_add (g, "copy_offsets", offs);
  jadd_u64 (g, "spare_units", l->spare_units);
  jadd_u64 (g, "reserved_units", l->reserved_units);
  jadd_u64 (g, "usable_units", l->usable_units);
  jadd_u64 (g, "lost_granule", d->in.lost_granule);
  json_object_object_add (o, "geometry", g);

  jadd_u64 (k, "reallocated_units", c->reallocated_units);
  jadd_u64 (k, "reallocation_events", c->reallocation_events);
  jadd_u64 (k, "pending_units", c->pending_units);
  jadd_u64 (k, "uncorrectable_units", c->uncorrectable_units);
  jadd_u64 (k, "lost_granules", c->lost_granules);
  jadd_u64 (k, "spare_bad_units", c->spare_bad_units);
  jadd_u64 (k, "spare_free_units", c->spare_free_units);
  jadd_u64 (k, "spare_usable_units", c->spare_usable_units);
  jadd_u64 (k, "spare_total_units", c->spare_total_units);
  jadd_u64 (k, "read_errors", c->read_errors);
  jadd_u64 (k, "write_errors", c->write_errors);
  jadd_u64 (k, "spare_errors", c->spare_errors);
  jadd_u64 (k, "retries", c->retries);
  jadd_u64 (k, "enospc_events", c->enospc_events);
  jadd_u64 (k, "copies_valid", c->copies_valid);
  jadd_u64 (k, "copies_total", c->copies_total);
  jadd_u64 (k, "generation", c->generation);
  jadd_u64 (k, "meta_write_units", c->meta_write_units);
  jadd_u64 (k, "repaired_blocks", c->repaired_blocks);
  json_object_object_add (o, "counters", k);

  remap_out_json (out, o);
  r = remap_out_write (out, "\n", 1);
  json_object_put (o);
  return r;
}

static void
put_reach_text (struct remap_out *out, const struct remap_backend_status *st)
{
  if (st->state == REMAP_BACKEND_OK)
    return;
  remap_out_printf (out, "             UNREACHABLE for %" PRIu64 ".%01" PRIu64
                    " s: %s\n", st->down_ms / 1000, st->down_ms % 1000 / 100,
                    st->detail);
}

#define P(...) remap_out_printf (out, __VA_ARGS__)

static int
status_text (struct remap_engine *e, const struct cmd_status_data *d,
             struct remap_out *out)
{
  const struct remap_layout *l = &d->in.layout;
  const struct remap_counters *c = &d->c;

  P ("state:       %s\n", state_name (d->f));
  for (size_t i = 0; i < sizeof cond_names / sizeof *cond_names; i++)
    if (d->f & cond_names[i].flag)
      P ("  warning:   %s\n", cond_names[i].text);
  P ("origin:      %s (%" PRIu64 " bytes, %" PRIu64 " units, %" PRIu64
     " sectors)\n", d->in.origin_name, remap_size (e), cmd_origin_units (e),
     cmd_origin_sectors (e));
  put_reach_text (out, &d->ost);
  P ("spare:       %s (%" PRIu64 " bytes, uuid %s)\n", d->in.spare_name,
     d->in.spare_size, d->uuid);
  put_reach_text (out, &d->sst);
  P ("geometry:    unit %" PRIu32 " bytes, strategy %s, %" PRIu32
     " copies of %" PRIu64 " units at spare units", l->unit,
     remap_strategy_name (l->strategy), l->copies, l->copy_units);
  for (uint32_t i = 0; i < l->copies; i++)
    P ("%s%" PRIu64, i ? ", " : " ", l->copy_offset[i]);
  P ("\n");
  P ("spare units: %" PRIu64 " total, %" PRIu64 " reserved, %" PRIu64
     " usable, %" PRIu64 " free, %" PRIu64 " bad\n", c->spare_total_units,
     l->reserved_units, c->spare_usable_units, c->spare_free_units,
     c->spare_bad_units);
  P ("metadata:    %" PRIu32 "/%" PRIu32 " copies valid, generation %"
     PRIu64 "\n", c->copies_valid, c->copies_total, c->generation);
  P ("counters (SMART equivalents):\n");
  P ("  reallocated units      %12" PRIu64 "   (5 Reallocated_Sector_Ct)\n",
     c->reallocated_units);
  P ("  reallocation events    %12" PRIu64 "   (196 Reallocated_Event_Count)"
     "\n", c->reallocation_events);
  P ("  pending units          %12" PRIu64 "   (197 Current_Pending_Sector)"
     "\n", c->pending_units);
  P ("  uncorrectable units    %12" PRIu64 "   (198 Offline_Uncorrectable)\n",
     c->uncorrectable_units);
  P ("  lost granules          %12" PRIu64 "\n", c->lost_granules);
  P ("  spare units free       %12" PRIu64 " of %" PRIu64 "\n",
     c->spare_free_units, c->spare_usable_units);
  P ("  spare units bad        %12" PRIu64 "\n", c->spare_bad_units);
  P ("  read errors            %12" PRIu64 "\n", c->read_errors);
  P ("  write errors           %12" PRIu64 "\n", c->write_errors);
  P ("  spare errors           %12" PRIu64 "\n", c->spare_errors);
  P ("  read retries           %12" PRIu64 "\n", c->retries);
  P ("  remaps refused (full)  %12" PRIu64 "\n", c->enospc_events);
  P ("  metadata copies valid  %12" PRIu32 " of %" PRIu32 "\n",
     c->copies_valid, c->copies_total);
  return P ("  generation             %12" PRIu64 "\n", c->generation);
}

void
cmd_status_gather (struct remap_engine *e, struct cmd_status_data *d)
{
  remap_get_counters (e, &d->c);
  remap_get_info (e, &d->in);
  remap_get_backend_status (e, &d->ost, &d->sst);
  remap_uuid_format (d->in.uuid, d->uuid);
  d->f = conditions (&d->c, &d->ost, &d->sst);
  d->state = state_name (d->f);
}

int
cmd_status (struct remap_engine *e, const struct remap_command *cmd,
            const struct remap_args *a, struct remap_out *out,
            struct remap_error *err)
{
  struct cmd_status_data d;

  (void) cmd; (void) err;
  cmd_status_gather (e, &d);
  return a->json ? status_json (e, &d, out) : status_text (e, &d, out);
}

/* ---- list ------------------------------------------------------------ */

struct maps {
  struct remap_mapping *v;
  size_t n, cap;
};

static int
collect (void *opaque, const struct remap_mapping *m)
{
  struct maps *x = opaque;
  if (x->n == x->cap) {
    size_t cap = x->cap ? 2 * x->cap : 64;
    struct remap_mapping *v = realloc (x->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    x->v = v;
    x->cap = cap;
  }
  x->v[x->n++] = *m;
  return 0;
}

/* Origin order; bad spare units (no origin unit) last, in spare order. */
static int
cmp_map (const void *pa, const void *pb)
{
  const struct remap_mapping *a = pa, *b = pb;
  bool ba = a->state == REMAP_SLOT_BAD, bb = b->state == REMAP_SLOT_BAD;
  if (ba != bb)
    return ba ? 1 : -1;
  if (ba)
    return a->spare_unit < b->spare_unit ? -1 : a->spare_unit > b->spare_unit;
  return a->origin_unit < b->origin_unit ? -1
    : a->origin_unit > b->origin_unit;
}

static int
get_maps (struct remap_engine *e, struct maps *x, struct remap_error *err)
{
  int r = remap_foreach (e, collect, x);
  if (r) {
    free (x->v);
    x->v = NULL;
    return remap_set_error (err, r, "out of memory");
  }
  if (x->n > 1)
    qsort (x->v, x->n, sizeof *x->v, cmp_map);
  return 0;
}

static struct json_object *
mapping_json (struct remap_engine *e, const struct remap_mapping *m)
{
  struct json_object *o = json_object_new_object ();
  bool bad = m->state == REMAP_SLOT_BAD, free_ = m->state == REMAP_SLOT_FREE;
  uint64_t lba = 0, n = 0;
  char mask[24];

  if (!bad)
    unit_lbas (e, m->origin_unit, &lba, &n);
  json_object_object_add (o, "origin_unit",
                          bad ? NULL : json_object_new_uint64 (m->origin_unit));
  json_object_object_add (o, "lba", bad ? NULL : json_object_new_uint64 (lba));
  json_object_object_add (o, "sectors",
                          bad ? NULL : json_object_new_uint64 (n));
  json_object_object_add (o, "spare_unit",
                          free_ ? NULL : json_object_new_uint64 (m->spare_unit));
  jadd_str (o, "state", remap_slot_state_name (m->state));
  snprintf (mask, sizeof mask, "0x%" PRIx64, free_ ? 0 : m->lost);
  jadd_str (o, "lost_mask", mask);
  jadd_u64 (o, "lost_granules",
            free_ ? 0 : (uint64_t) __builtin_popcountll (m->lost));
  return o;
}

static void
mapping_text (struct remap_engine *e, struct remap_out *out,
              const struct remap_mapping *m)
{
  int lost = __builtin_popcountll (m->lost);
  uint64_t lba, n;
  char range[48];

  if (m->state == REMAP_SLOT_BAD) {
    P ("%12s  %-23s  %10" PRIu64 "  %-7s  -\n", "-", "-", m->spare_unit,
       "bad");
    return;
  }
  unit_lbas (e, m->origin_unit, &lba, &n);
  snprintf (range, sizeof range, "%" PRIu64 "-%" PRIu64, lba, lba + n - 1);
  P ("%12" PRIu64 "  %-23s  %10" PRIu64 "  %-7s  ", m->origin_unit, range,
     m->spare_unit, remap_slot_state_name (m->state));
  if (lost)
    P ("%d (0x%" PRIx64 ")\n", lost, m->lost);
  else
    P ("-\n");
}

int
cmd_list (struct remap_engine *e, const struct remap_command *cmd,
          const struct remap_args *a, struct remap_out *out,
          struct remap_error *err)
{
  struct maps x = { 0 };
  int r;

  (void) cmd;
  if ((r = get_maps (e, &x, err)))
    return r;
  if (a->json) {
    struct json_object *h = json_object_new_object ();
    jadd_u64 (h, "unit", remap_unit (e));
    jadd_u64 (h, "sector", REMAP_CONTROL_SECTOR);
    jadd_u64 (h, "count", x.n);
    cmd_json_open_array (out, h, "entries");
    json_object_put (h);
    for (size_t i = 0; i < x.n && !out->err; i++) {
      struct json_object *m = mapping_json (e, &x.v[i]);
      if (i)
        remap_out_write (out, ",", 1);
      remap_out_json (out, m);
      json_object_put (m);
    }
    cmd_json_close_array (out, NULL);
  }
  else {
    P ("%12s  %-23s  %10s  %-7s  %s\n", "origin_unit", "lba_range",
       "spare_unit", "state", "lost_granules");
    for (size_t i = 0; i < x.n && !out->err; i++)
      mapping_text (e, out, &x.v[i]);
    P ("%zu entr%s (unit %" PRIu32 " bytes, LBAs of 512 bytes)\n", x.n,
       x.n == 1 ? "y" : "ies", remap_unit (e));
  }
  free (x.v);
  return out->err;
}

/* ---- lookup ---------------------------------------------------------- */

int
cmd_lookup (struct remap_engine *e, const struct remap_command *cmd,
            const struct remap_args *a, struct remap_out *out,
            struct remap_error *err)
{
  struct remap_mapping m;
  uint64_t first, n;
  int r;

  (void) cmd;
  if ((r = cmd_get_range (e, a, &first, &n, err)))
    return r;
  r = remap_lookup (e, first, &m);
  if (r)
    return remap_set_error (err, r, "unit %" PRIu64 ": lookup failed", first);
  m.origin_unit = first;
  if (a->json) {
    struct json_object *o = mapping_json (e, &m);
    remap_out_json (out, o);
    json_object_put (o);
    return remap_out_write (out, "\n", 1);
  }
  if (m.state == REMAP_SLOT_FREE)
    return P ("unit %" PRIu64 ": not remapped (data on the origin)\n", first);
  P ("unit %" PRIu64 ": %s, spare unit %" PRIu64, first,
     remap_slot_state_name (m.state), m.spare_unit);
  if (m.lost)
    P (", %d lost granule(s) (mask 0x%" PRIx64 ")",
       __builtin_popcountll (m.lost), m.lost);
  return P ("\n");
}

/* ---- export ---------------------------------------------------------- */

int
cmd_export (struct remap_engine *e, const struct remap_command *cmd,
            const struct remap_args *a, struct remap_out *out,
            struct remap_error *err)
{
  struct maps x = { 0 };
  uint64_t U = remap_unit (e), size = remap_size (e);
  bool bb;
  int r;

  (void) cmd;
  if (!a->format)
    return remap_set_error (err, -EINVAL, "export: --format is required "
                            "(badblocks with --block-size N, or ddrescue)");
  bb = strcmp (a->format, "badblocks") == 0;
  if (!bb && strcmp (a->format, "ddrescue") != 0)
    return remap_set_error (err, -EINVAL, "export: unknown format \"%.40s\" "
                            "(badblocks or ddrescue)", a->format);
  if (bb && a->block_size == 0)
    return remap_set_error (err, -EINVAL, "export: --format badblocks needs "
                            "--block-size N (the block size of the "
                            "filesystem or of badblocks -b)");
  if (!bb && a->block_size)
    return remap_set_error (err, -EINVAL, "export: --block-size applies to "
                            "--format badblocks only");
  if ((r = get_maps (e, &x, err)))
    return r;

  /* Bad origin units (mapped or pending), as merged byte ranges. */
  uint64_t next_block = 0, pos = 0;
  bool any_block = false;
  if (!bb) {
    P ("# Mapfile. Created by remapctl %s (remap table of the origin)\n",
       REMAP_VERSION_STRING);
    P ("# current_pos  current_status  current_pass\n");
    P ("0x00000000     +               1\n");
    P ("#      pos        size  status\n");
  }
  for (size_t i = 0; i < x.n && !out->err; ) {
    if (x.v[i].state == REMAP_SLOT_BAD)
      break;                    /* sorted last */
    uint64_t u0 = x.v[i].origin_unit, u1 = u0 + 1;
    for (i++; i < x.n && x.v[i].state != REMAP_SLOT_BAD
           && x.v[i].origin_unit == u1; i++)
      u1++;
    uint64_t off = u0 * U, end = u1 * U;
    if (end > size)
      end = size;
    if (off >= end)
      continue;
    if (bb) {
      uint64_t b = off / a->block_size;
      uint64_t last = (end - 1) / a->block_size;
      if (any_block && b < next_block)
        b = next_block;
      /* Stops at the first failed write: a client gone, a send timed
       * out, the server stopping. */
      for (; b <= last && !out->err; b++)
        P ("%" PRIu64 "\n", b);
      next_block = last + 1;
      any_block = true;
    }
    else {
      if (off > pos)
        P ("0x%08" PRIX64 "  0x%08" PRIX64 "  +\n", pos, off - pos);
      P ("0x%08" PRIX64 "  0x%08" PRIX64 "  -\n", off, end - off);
      pos = end;
    }
  }
  if (!bb && pos < size)
    P ("0x%08" PRIX64 "  0x%08" PRIX64 "  +\n", pos, size - pos);
  free (x.v);
  return out->err;
}
