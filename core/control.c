/* remap: the command executor shared by remapctl (offline) and the plugin's
 * control socket (online).  See include/remap/control.h; the output of
 * every command, human and JSON, is documented in tools/remapctl/remapctl.pod.
 *
 * Every command first gathers its data through the engine's thread-safe API
 * (remap_get_counters, remap_get_info, remap_foreach, remap_lookup,
 * remap_remap, remap_unmap, remap_mark_pending, remap_spare_retest), then
 * renders it either as text or as one JSON object on one line: the two
 * renderings sit next to each other in one function, so they cannot drift
 * apart.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/control.h"
#include "remap/import.h"
#include "remap/parse.h"
#include "remap/remap.h"

/* ---- buffers --------------------------------------------------------- */

static int
buf_reserve (struct remap_buf *b, size_t extra)
{
  size_t need, cap;
  char *p;

  if (b->failed)
    return -ENOMEM;
  need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  p = realloc (b->data, cap);
  if (!p) {
    b->failed = true;
    return -ENOMEM;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int
remap_buf_append (struct remap_buf *b, const char *s, size_t n)
{
  if (buf_reserve (b, n))
    return -ENOMEM;
  memcpy (b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int
remap_buf_vprintf (struct remap_buf *b, const char *fmt, va_list ap)
{
  va_list ap2;
  int n;

  va_copy (ap2, ap);
  n = vsnprintf (NULL, 0, fmt, ap2);
  va_end (ap2);
  if (n < 0 || buf_reserve (b, (size_t) n))
    return -ENOMEM;
  vsnprintf (b->data + b->len, (size_t) n + 1, fmt, ap);
  b->len += (size_t) n;
  return 0;
}

int
remap_buf_printf (struct remap_buf *b, const char *fmt, ...)
{
  va_list ap;
  int r;

  va_start (ap, fmt);
  r = remap_buf_vprintf (b, fmt, ap);
  va_end (ap);
  return r;
}

int
remap_buf_json_string (struct remap_buf *b, const char *s)
{
  int r = remap_buf_append (b, "\"", 1);

  for (; *s && r == 0; s++) {
    unsigned char c = (unsigned char) *s;
    if (c == '"' || c == '\\')
      r = remap_buf_printf (b, "\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      r = remap_buf_printf (b, "\\u%04x", c);
    else
      r = remap_buf_append (b, (const char *) &c, 1);
  }
  return r ? r : remap_buf_append (b, "\"", 1);
}

void
remap_buf_reset (struct remap_buf *b)
{
  b->len = 0;
  b->failed = false;
  if (b->data)
    b->data[0] = '\0';
}

void
remap_buf_free (struct remap_buf *b)
{
  free (b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->failed = false;
}

#define P(...) remap_buf_printf (out, __VA_ARGS__)
#define JS(s) remap_buf_json_string (out, (s))

/* ---- helpers --------------------------------------------------------- */

const char *
remap_slot_state_name (int state)
{
  switch (state) {
  case REMAP_SLOT_FREE: return "free";
  case REMAP_SLOT_MAPPED: return "mapped";
  case REMAP_SLOT_PENDING: return "pending";
  case REMAP_SLOT_BAD: return "bad";
  default: return "unknown";
  }
}

int
remap_control_split (char *line, char **argv, int max)
{
  int n = 0;
  char *p = line;
  size_t len = strlen (line);

  if (len && line[len - 1] == '\n')
    line[--len] = '\0';
  if (len && line[len - 1] == '\r')
    line[--len] = '\0';
  for (char *q = line; *q; q++)
    if ((unsigned char) *q < 0x20 && *q != '\t')
      return -EINVAL;
  for (;;) {
    while (*p == ' ' || *p == '\t')
      *p++ = '\0';
    if (*p == '\0')
      break;
    if (n == max)
      return -EINVAL;
    argv[n++] = p;
    while (*p && *p != ' ' && *p != '\t')
      p++;
  }
  return n;
}

/* Decimal or 0x hexadecimal, the whole string (remap_parse_u64, no
 * suffix: these are sector, unit and block numbers). */
static bool
parse_u64 (const char *s, uint64_t *out)
{
  return remap_parse_u64 (s, 0, "number", out, NULL) == 0;
}

/* Options every command may see; which ones a command accepts is checked
 * by a mask. */
#define O_JSON     0x01u
#define O_UNITS    0x02u
#define O_DISCARD  0x04u
#define O_FORMAT   0x08u
#define O_BS       0x10u

struct args {
  bool json, units, discard;
  const char *format;
  uint64_t block_size;          /* 0: not given */
  int npos;
  const char *pos[4];
};

static int
parse_args (int argc, char *const *argv, unsigned allowed, int min_pos,
            int max_pos, const char *usage, struct args *a,
            struct remap_error *err)
{
  memset (a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    unsigned which = 0;

    if (strcmp (s, "--json") == 0)
      which = O_JSON, a->json = true;
    else if (strcmp (s, "-u") == 0 || strcmp (s, "--unit-numbers") == 0)
      which = O_UNITS, a->units = true;
    else if (strcmp (s, "--discard-data") == 0)
      which = O_DISCARD, a->discard = true;
    else if (strcmp (s, "--format") == 0 || strcmp (s, "-f") == 0) {
      which = O_FORMAT;
      if (++i == argc)
        return remap_set_error (err, -EINVAL, "%s: --format needs a value; "
                                "usage: %s", argv[0], usage);
      a->format = argv[i];
    }
    else if (strcmp (s, "--block-size") == 0 || strcmp (s, "-b") == 0) {
      which = O_BS;
      if (++i == argc || !parse_u64 (argv[i], &a->block_size)
          || a->block_size == 0)
        return remap_set_error (err, -EINVAL, "%s: --block-size needs a "
                                "positive number; usage: %s", argv[0], usage);
    }
    else if (s[0] == '-' && s[1] != '\0')
      return remap_set_error (err, -EINVAL, "%s: unknown option %s; usage: "
                              "%s", argv[0], s, usage);
    else {
      if (a->npos == max_pos)
        return remap_set_error (err, -EINVAL, "%s: too many arguments; "
                                "usage: %s", argv[0], usage);
      a->pos[a->npos++] = s;
      continue;
    }
    if (!(which & allowed))
      return remap_set_error (err, -EINVAL, "%s: option %s does not apply; "
                              "usage: %s", argv[0], s, usage);
  }
  if (a->npos < min_pos)
    return remap_set_error (err, -EINVAL, "%s: missing argument; usage: %s",
                            argv[0], usage);
  return 0;
}

static uint64_t
origin_units (struct remap_engine *e)
{
  uint64_t U = remap_unit (e);
  return (remap_size (e) + U - 1) / U;
}

static uint64_t
origin_sectors (struct remap_engine *e)
{
  return (remap_size (e) + REMAP_CONTROL_SECTOR - 1) / REMAP_CONTROL_SECTOR;
}

/* LBA [COUNT] (sectors, or units with -u) to the units touched. */
static int
get_range (struct remap_engine *e, const struct args *a, uint64_t *first,
           uint64_t *count, struct remap_error *err)
{
  uint64_t U = remap_unit (e), start, n = 1, limit;
  const char *what = a->units ? "unit" : "LBA";

  if (!parse_u64 (a->pos[0], &start))
    return remap_set_error (err, -EINVAL, "bad %s \"%s\": want a decimal or "
                            "0x hexadecimal number", what, a->pos[0]);
  if (a->npos > 1 && (!parse_u64 (a->pos[1], &n) || n == 0))
    return remap_set_error (err, -EINVAL, "bad count \"%s\": want a positive "
                            "number", a->pos[1]);
  limit = a->units ? origin_units (e) : origin_sectors (e);
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

/* Reachability of a backend, inside its status object. */
static void
put_reach_json (struct remap_buf *out, const struct remap_backend_status *st)
{
  P (",\"reachable\":%s,\"down_ms\":%" PRIu64 ",\"reconnects\":%" PRIu64
     ",\"detail\":", st->state == REMAP_BACKEND_OK ? "true" : "false",
     st->down_ms, st->reconnects);
  JS (st->detail);
}

static void
put_reach_text (struct remap_buf *out, const struct remap_backend_status *st)
{
  if (st->state == REMAP_BACKEND_OK)
    return;
  P ("             UNREACHABLE for %" PRIu64 ".%01" PRIu64 " s: %s\n",
     st->down_ms / 1000, st->down_ms % 1000 / 100, st->detail);
}

static int
cmd_status (struct remap_engine *e, int argc, char *const *argv,
            struct remap_buf *out, struct remap_error *err)
{
  struct args a;
  struct remap_counters c;
  struct remap_info in;
  struct remap_backend_status ost, sst;
  const struct remap_layout *l = &in.layout;
  char uuid[37];
  unsigned f;
  int r = parse_args (argc, argv, O_JSON, 0, 0, "status [--json]", &a, err);

  if (r)
    return r;
  remap_get_counters (e, &c);
  remap_get_info (e, &in);
  remap_get_backend_status (e, &ost, &sst);
  remap_uuid_format (in.uuid, uuid);
  f = conditions (&c, &ost, &sst);

  if (a.json) {
    P ("{\"version\":\"%s\",\"state\":\"%s\",\"conditions\":[",
       REMAP_VERSION_STRING, state_name (f));
    bool first = true;
    for (size_t i = 0; i < sizeof cond_names / sizeof *cond_names; i++)
      if (f & cond_names[i].flag) {
        P ("%s\"%s\"", first ? "" : ",", cond_names[i].name);
        first = false;
      }
    P ("],\"origin\":{\"name\":");
    JS (in.origin_name);
    P (",\"label\":");
    JS (in.origin_label);
    P (",\"size\":%" PRIu64 ",\"units\":%" PRIu64 ",\"sectors\":%" PRIu64,
       remap_size (e), origin_units (e), origin_sectors (e));
    put_reach_json (out, &ost);
    P ("},\"spare\":{\"name\":");
    JS (in.spare_name);
    P (",\"size\":%" PRIu64 ",\"uuid\":\"%s\",\"format_time\":%" PRIu64,
       in.spare_size, uuid, in.format_time);
    put_reach_json (out, &sst);
    P ("}");
    P (",\"geometry\":{\"unit\":%" PRIu32 ",\"sector\":%u,\"strategy\":\"%s\""
       ",\"copies\":%" PRIu32 ",\"copy_units\":%" PRIu64 ",\"table_blocks\":%"
       PRIu64 ",\"entries_per_block\":%" PRIu32 ",\"copy_offsets\":[",
       l->unit, REMAP_CONTROL_SECTOR, remap_strategy_name (l->strategy),
       l->copies, l->copy_units, l->table_blocks, l->entries_per_block);
    for (uint32_t i = 0; i < l->copies; i++)
      P ("%s%" PRIu64, i ? "," : "", l->copy_offset[i]);
    P ("],\"spare_units\":%" PRIu64 ",\"reserved_units\":%" PRIu64
       ",\"usable_units\":%" PRIu64 ",\"lost_granule\":%" PRIu32 "}",
       l->spare_units, l->reserved_units, l->usable_units, in.lost_granule);
    P (",\"counters\":{\"reallocated_units\":%" PRIu64
       ",\"reallocation_events\":%" PRIu64 ",\"pending_units\":%" PRIu64
       ",\"uncorrectable_units\":%" PRIu64 ",\"lost_granules\":%" PRIu64
       ",\"spare_bad_units\":%" PRIu64 ",\"spare_free_units\":%" PRIu64
       ",\"spare_usable_units\":%" PRIu64 ",\"spare_total_units\":%" PRIu64
       ",\"read_errors\":%" PRIu64 ",\"write_errors\":%" PRIu64
       ",\"spare_errors\":%" PRIu64 ",\"retries\":%" PRIu64
       ",\"enospc_events\":%" PRIu64 ",\"copies_valid\":%" PRIu32
       ",\"copies_total\":%" PRIu32 ",\"generation\":%" PRIu64
       ",\"meta_write_units\":%" PRIu64 ",\"repaired_blocks\":%" PRIu64 "}}\n",
       c.reallocated_units, c.reallocation_events, c.pending_units,
       c.uncorrectable_units, c.lost_granules, c.spare_bad_units,
       c.spare_free_units, c.spare_usable_units, c.spare_total_units,
       c.read_errors, c.write_errors, c.spare_errors, c.retries,
       c.enospc_events, c.copies_valid, c.copies_total, c.generation,
       c.meta_write_units, c.repaired_blocks);
  }
  else {
    P ("state:       %s\n", state_name (f));
    for (size_t i = 0; i < sizeof cond_names / sizeof *cond_names; i++)
      if (f & cond_names[i].flag)
        P ("  warning:   %s\n", cond_names[i].text);
    P ("origin:      %s (%" PRIu64 " bytes, %" PRIu64 " units, %" PRIu64
       " sectors)\n", in.origin_name, remap_size (e), origin_units (e),
       origin_sectors (e));
    put_reach_text (out, &ost);
    P ("spare:       %s (%" PRIu64 " bytes, uuid %s)\n", in.spare_name,
       in.spare_size, uuid);
    put_reach_text (out, &sst);
    P ("geometry:    unit %" PRIu32 " bytes, strategy %s, %" PRIu32
       " copies of %" PRIu64 " units at spare units", l->unit,
       remap_strategy_name (l->strategy), l->copies, l->copy_units);
    for (uint32_t i = 0; i < l->copies; i++)
      P ("%s%" PRIu64, i ? ", " : " ", l->copy_offset[i]);
    P ("\n");
    P ("spare units: %" PRIu64 " total, %" PRIu64 " reserved, %" PRIu64
       " usable, %" PRIu64 " free, %" PRIu64 " bad\n", c.spare_total_units,
       l->reserved_units, c.spare_usable_units, c.spare_free_units,
       c.spare_bad_units);
    P ("metadata:    %" PRIu32 "/%" PRIu32 " copies valid, generation %"
       PRIu64 "\n", c.copies_valid, c.copies_total, c.generation);
    P ("counters (SMART equivalents):\n");
    P ("  reallocated units      %12" PRIu64 "   (5 Reallocated_Sector_Ct)\n",
       c.reallocated_units);
    P ("  reallocation events    %12" PRIu64 "   (196 Reallocated_Event_Count)"
       "\n", c.reallocation_events);
    P ("  pending units          %12" PRIu64 "   (197 Current_Pending_Sector)"
       "\n", c.pending_units);
    P ("  uncorrectable units    %12" PRIu64 "   (198 Offline_Uncorrectable)\n",
       c.uncorrectable_units);
    P ("  lost granules          %12" PRIu64 "\n", c.lost_granules);
    P ("  spare units free       %12" PRIu64 " of %" PRIu64 "\n",
       c.spare_free_units, c.spare_usable_units);
    P ("  spare units bad        %12" PRIu64 "\n", c.spare_bad_units);
    P ("  read errors            %12" PRIu64 "\n", c.read_errors);
    P ("  write errors           %12" PRIu64 "\n", c.write_errors);
    P ("  spare errors           %12" PRIu64 "\n", c.spare_errors);
    P ("  read retries           %12" PRIu64 "\n", c.retries);
    P ("  remaps refused (full)  %12" PRIu64 "\n", c.enospc_events);
    P ("  metadata copies valid  %12" PRIu32 " of %" PRIu32 "\n",
       c.copies_valid, c.copies_total);
    P ("  generation             %12" PRIu64 "\n", c.generation);
  }
  return out->failed ? remap_set_error (err, -ENOMEM, "out of memory") : 0;
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

static void
put_mapping (struct remap_engine *e, struct remap_buf *out, bool json,
             const struct remap_mapping *m)
{
  bool bad = m->state == REMAP_SLOT_BAD;
  uint64_t lba = 0, n = 0;
  int lost = __builtin_popcountll (m->lost);

  if (!bad)
    unit_lbas (e, m->origin_unit, &lba, &n);
  if (json) {
    if (bad)
      P ("{\"origin_unit\":null,\"lba\":null,\"sectors\":null");
    else
      P ("{\"origin_unit\":%" PRIu64 ",\"lba\":%" PRIu64 ",\"sectors\":%"
         PRIu64, m->origin_unit, lba, n);
    P (",\"spare_unit\":%" PRIu64 ",\"state\":\"%s\",\"lost_mask\":\"0x%"
       PRIx64 "\",\"lost_granules\":%d}", m->spare_unit,
       remap_slot_state_name (m->state), m->lost, lost);
  }
  else if (bad)
    P ("%12s  %-23s  %10" PRIu64 "  %-7s  -\n", "-", "-", m->spare_unit,
       "bad");
  else {
    char range[48];
    snprintf (range, sizeof range, "%" PRIu64 "-%" PRIu64, lba, lba + n - 1);
    P ("%12" PRIu64 "  %-23s  %10" PRIu64 "  %-7s  ", m->origin_unit, range,
       m->spare_unit, remap_slot_state_name (m->state));
    if (lost)
      P ("%d (0x%" PRIx64 ")\n", lost, m->lost);
    else
      P ("-\n");
  }
}

static int
cmd_list (struct remap_engine *e, int argc, char *const *argv,
          struct remap_buf *out, struct remap_error *err)
{
  struct args a;
  struct maps x = { 0 };
  int r = parse_args (argc, argv, O_JSON, 0, 0, "list [--json]", &a, err);

  if (r || (r = get_maps (e, &x, err)))
    return r;
  if (a.json) {
    P ("{\"unit\":%" PRIu32 ",\"sector\":%u,\"count\":%zu,\"entries\":[",
       remap_unit (e), REMAP_CONTROL_SECTOR, x.n);
    for (size_t i = 0; i < x.n; i++) {
      if (i)
        P (",");
      put_mapping (e, out, true, &x.v[i]);
    }
    P ("]}\n");
  }
  else {
    P ("%12s  %-23s  %10s  %-7s  %s\n", "origin_unit", "lba_range",
       "spare_unit", "state", "lost_granules");
    for (size_t i = 0; i < x.n; i++)
      put_mapping (e, out, false, &x.v[i]);
    P ("%zu entr%s (unit %" PRIu32 " bytes, LBAs of 512 bytes)\n", x.n,
       x.n == 1 ? "y" : "ies", remap_unit (e));
  }
  free (x.v);
  return out->failed ? remap_set_error (err, -ENOMEM, "out of memory") : 0;
}

/* ---- lookup ---------------------------------------------------------- */

static int
cmd_lookup (struct remap_engine *e, int argc, char *const *argv,
            struct remap_buf *out, struct remap_error *err)
{
  struct args a;
  struct remap_mapping m;
  uint64_t first, n;
  int r = parse_args (argc, argv, O_JSON | O_UNITS, 1, 1,
                      "lookup LBA [-u] [--json]", &a, err);

  if (r || (r = get_range (e, &a, &first, &n, err)))
    return r;
  r = remap_lookup (e, first, &m);
  if (r)
    return remap_set_error (err, r, "unit %" PRIu64 ": lookup failed", first);
  if (a.json) {
    if (m.state == REMAP_SLOT_FREE) {
      uint64_t lba, cnt;
      unit_lbas (e, first, &lba, &cnt);
      P ("{\"origin_unit\":%" PRIu64 ",\"lba\":%" PRIu64 ",\"sectors\":%"
         PRIu64 ",\"spare_unit\":null,\"state\":\"free\",\"lost_mask\":"
         "\"0x0\",\"lost_granules\":0}\n", first, lba, cnt);
    }
    else {
      put_mapping (e, out, true, &m);
      P ("\n");
    }
  }
  else if (m.state == REMAP_SLOT_FREE)
    P ("unit %" PRIu64 ": not remapped (data on the origin)\n", first);
  else {
    P ("unit %" PRIu64 ": %s, spare unit %" PRIu64, first,
       remap_slot_state_name (m.state), m.spare_unit);
    if (m.lost)
      P (", %d lost granule(s) (mask 0x%" PRIx64 ")",
         __builtin_popcountll (m.lost), m.lost);
    P ("\n");
  }
  return out->failed ? remap_set_error (err, -ENOMEM, "out of memory") : 0;
}

/* ---- remap, unmap, pending ------------------------------------------- */

enum op { OP_REMAP, OP_UNMAP, OP_PENDING };

static int
cmd_range (struct remap_engine *e, enum op op, int argc, char *const *argv,
           struct remap_buf *out, struct remap_error *err)
{
  static const char *const usage[] = {
    "remap LBA [COUNT] [-u] [--json]",
    "unmap LBA [COUNT] [-u] [--discard-data] [--json]",
    "pending LBA [COUNT] [-u] [--json]",
  };
  struct args a;
  uint64_t first, n, done = 0, changed = 0;
  int r = parse_args (argc, argv,
                      O_JSON | O_UNITS | (op == OP_UNMAP ? O_DISCARD : 0),
                      1, 2, usage[op], &a, err);

  if (r || (r = get_range (e, &a, &first, &n, err)))
    return r;
  if (a.json)
    P ("{\"command\":\"%s\",\"unit\":%" PRIu32 ",\"first_unit\":%" PRIu64
       ",\"units\":%" PRIu64 ",\"results\":[", argv[0], remap_unit (e),
       first, n);
  for (uint64_t u = first; u < first + n; u++, done++) {
    struct remap_mapping before, after;
    const char *res;

    if ((r = remap_lookup (e, u, &before)) != 0) {
      remap_set_error (err, r, "unit %" PRIu64 ": lookup failed", u);
      break;
    }
    switch (op) {
    case OP_REMAP:
      r = remap_remap (e, u, 0, err);
      res = before.state == REMAP_SLOT_MAPPED ? "already-remapped"
        : "remapped";
      break;
    case OP_PENDING:
      r = remap_mark_pending (e, u, err);
      res = before.state == REMAP_SLOT_MAPPED ? "already-remapped"
        : before.state == REMAP_SLOT_PENDING ? "already-pending" : "pending";
      break;
    case OP_UNMAP: default:
      r = remap_unmap (e, u, a.discard ? REMAP_UNMAP_DISCARD : 0, err);
      res = before.state == REMAP_SLOT_FREE ? "not-remapped"
        : before.state == REMAP_SLOT_PENDING ? "released"
        : a.discard ? "discarded" : "copied-back";
      if (r == -EBUSY)
        remap_error_prefix (err, r, "(add --discard-data to drop it) ");
      break;
    }
    if (r) {
      remap_error_prefix (err, r, "unit %" PRIu64 " (%" PRIu64 " of %" PRIu64
                          " units done): ", u, done, n);
      break;
    }
    changed += strncmp (res, "already", 7) != 0
      && strcmp (res, "not-remapped") != 0;
    remap_lookup (e, u, &after);
    if (a.json) {
      P ("%s{\"origin_unit\":%" PRIu64 ",\"result\":\"%s\",\"state\":\"%s\"",
         done ? "," : "", u, res, remap_slot_state_name (after.state));
      if (after.state == REMAP_SLOT_FREE)
        P (",\"spare_unit\":null,\"lost_granules\":0}");
      else
        P (",\"spare_unit\":%" PRIu64 ",\"lost_granules\":%d}",
           after.spare_unit, __builtin_popcountll (after.lost));
    }
    else {
      P ("unit %" PRIu64 ": %s", u, res);
      if (after.state != REMAP_SLOT_FREE)
        P (" (%s on spare unit %" PRIu64 ")",
           remap_slot_state_name (after.state), after.spare_unit);
      if (after.lost)
        P (", %d granule(s) unreadable: recorded as lost",
           __builtin_popcountll (after.lost));
      P ("\n");
    }
  }
  if (a.json) {
    P ("],\"changed\":%" PRIu64, changed);
    if (r) {
      P (",\"error\":");
      JS (err && err->msg[0] ? err->msg : strerror (-r));
    }
    P ("}\n");
  }
  if (out->failed && !r)
    r = remap_set_error (err, -ENOMEM, "out of memory");
  return r;
}

/* ---- export ---------------------------------------------------------- */

static int
cmd_export (struct remap_engine *e, int argc, char *const *argv,
            struct remap_buf *out, struct remap_error *err)
{
  static const char usage[] =
    "export --format badblocks --block-size N | --format ddrescue";
  struct args a;
  struct maps x = { 0 };
  uint64_t U = remap_unit (e), size = remap_size (e);
  int r = parse_args (argc, argv, O_FORMAT | O_BS, 0, 0, usage, &a, err);
  bool bb;

  if (r)
    return r;
  if (!a.format)
    return remap_set_error (err, -EINVAL, "export: --format is required; "
                            "usage: %s", usage);
  bb = strcmp (a.format, "badblocks") == 0;
  if (!bb && strcmp (a.format, "ddrescue") != 0)
    return remap_set_error (err, -EINVAL, "export: unknown format \"%s\" "
                            "(badblocks or ddrescue)", a.format);
  if (bb && a.block_size == 0)
    return remap_set_error (err, -EINVAL, "export: --format badblocks needs "
                            "--block-size N (the block size of the "
                            "filesystem or of badblocks -b)");
  if (!bb && a.block_size)
    return remap_set_error (err, -EINVAL, "export: --block-size applies to "
                            "--format badblocks only");
  if ((r = get_maps (e, &x, err)))
    return r;

  /* Bad origin units (mapped or pending), as merged byte ranges. */
  uint64_t next_block = 0, pos = 0;
  bool any_block = false;
  if (!bb) {
    P ("# Mapfile. Created by remapctl %s (remap table of %s)\n",
       REMAP_VERSION_STRING, "the origin");
    P ("# current_pos  current_status  current_pass\n");
    P ("0x00000000     +               1\n");
    P ("#      pos        size  status\n");
  }
  for (size_t i = 0; i < x.n; ) {
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
      uint64_t b = off / a.block_size;
      uint64_t last = (end - 1) / a.block_size;
      if (any_block && b < next_block)
        b = next_block;
      for (; b <= last; b++)
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
  return out->failed ? remap_set_error (err, -ENOMEM, "out of memory") : 0;
}

/* ---- scan ------------------------------------------------------------ */

/* Read the origin units of a range that are not remapped, so that the
 * engine finds the failing ones (it retries, then marks them pending).
 * Remapped units are skipped: their data is on the spare.  A unit is
 * reported bad when the engine holds it pending after the read, recorded
 * on the spare or, when it could not be (spare full, read-only engine),
 * in memory only: those are listed as unrecorded too. */
static int
cmd_scan (struct remap_engine *e, int argc, char *const *argv,
          struct remap_buf *out, struct remap_error *err)
{
  struct args a;
  uint64_t first, n, U = remap_unit (e), size = remap_size (e);
  uint64_t run_max = (4u << 20) / U ? (4u << 20) / U : 1;
  uint64_t nread = 0, skipped = 0, nbad = 0, nnew = 0, nunrec = 0;
  struct remap_buf bad = { 0 }, unrec = { 0 };
  uint8_t *buf;
  int r = parse_args (argc, argv, O_JSON | O_UNITS, 1, 2,
                      "scan LBA [COUNT] [-u] [--json]", &a, err);

  if (r || (r = get_range (e, &a, &first, &n, err)))
    return r;
  buf = malloc (run_max * U);
  if (!buf)
    return remap_set_error (err, -ENOMEM, "out of memory");
  for (uint64_t u = first; u < first + n && r == 0; ) {
    struct remap_mapping m;
    uint64_t u1 = u;
    bool was_pending[256];

    /* A run of units that are not remapped. */
    while (u1 < first + n && u1 - u < run_max && u1 - u < 256) {
      if (remap_lookup (e, u1, &m) == 0 && m.state == REMAP_SLOT_MAPPED)
        break;
      was_pending[u1 - u] = remap_unit_pending (e, u1) > 0;
      u1++;
    }
    if (u1 == u) {
      skipped++;
      u++;
      continue;
    }
    uint64_t off = u * U, end = u1 * U < size ? u1 * U : size;
    struct remap_error rerr = { 0 };
    int rr = remap_pread (e, buf, end - off, off, &rerr);
    if (rr && rr != -EIO) {
      r = remap_set_error (err, rr, "unit %" PRIu64 ": %s", u,
                           rerr.msg[0] ? rerr.msg : strerror (-rr));
      break;
    }
    for (uint64_t v = u; v < u1; v++) {
      if (rr == 0 && !was_pending[v - u])
        continue;
      int p = remap_unit_pending (e, v);
      if (p > 0) {
        remap_buf_printf (&bad, "%s%" PRIu64, nbad ? "," : "", v);
        nbad++;
        nnew += !was_pending[v - u];
      }
      if (p == 2)
        remap_buf_printf (&unrec, "%s%" PRIu64, nunrec++ ? "," : "", v);
    }
    nread += u1 - u;
    u = u1;
  }
  free (buf);
  if ((bad.failed || unrec.failed) && !r)
    r = remap_set_error (err, -ENOMEM, "out of memory");
  if (r) {
    remap_buf_free (&bad);
    remap_buf_free (&unrec);
    return r;
  }
  if (a.json)
    P ("{\"command\":\"scan\",\"unit\":%" PRIu64 ",\"first_unit\":%" PRIu64
       ",\"units\":%" PRIu64 ",\"read_units\":%" PRIu64 ",\"skipped_units\":%"
       PRIu64 ",\"new_bad_units\":%" PRIu64 ",\"bad_units\":[%s],"
       "\"unrecorded_units\":[%s]}\n", U, first, n, nread, skipped, nnew,
       bad.data ? bad.data : "", unrec.data ? unrec.data : "");
  else {
    P ("scanned units %" PRIu64 "-%" PRIu64 ": %" PRIu64 " read, %" PRIu64
       " skipped (remapped), %" PRIu64 " bad (%" PRIu64 " new)", first,
       first + n - 1, nread, skipped, nbad, nnew);
    if (nbad)
      P (": units %s (now pending)", bad.data);
    if (nunrec)
      P ("; units %s could not be recorded on the spare (it is full or "
         "read-only): they are pending in memory only, until remap stops",
         unrec.data);
    P ("\n");
  }
  remap_buf_free (&bad);
  remap_buf_free (&unrec);
  return out->failed ? remap_set_error (err, -ENOMEM, "out of memory") : 0;
}

/* ---- spare-retest ------------------------------------------------------ */

struct bad_units {
  uint64_t first, end;          /* the range asked for */
  uint64_t *v;
  size_t n, cap;
};

static int
collect_bad (void *opaque, const struct remap_mapping *m)
{
  struct bad_units *b = opaque;
  if (m->state != REMAP_SLOT_BAD || m->spare_unit < b->first
      || m->spare_unit >= b->end)
    return 0;
  if (b->n == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 64;
    uint64_t *v = realloc (b->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    b->v = v;
    b->cap = cap;
  }
  b->v[b->n++] = m->spare_unit;
  return 0;
}

/* Re-test the bad spare units of a range (spare unit numbers, default the
 * whole spare), one at a time, so that each gets its own verdict.  Exits
 * with -EIO when some stay bad: a script can tell "all cleared" apart. */
static int
cmd_spare_retest (struct remap_engine *e, int argc, char *const *argv,
                  struct remap_buf *out, struct remap_error *err)
{
  static const char usage[] = "spare-retest [FIRST [COUNT]] [--json]";
  struct args a;
  struct remap_info in;
  struct bad_units b = { 0 };
  uint64_t first = 0, count, reserved = 0, cleared = 0, still = 0;
  size_t i;
  int r = parse_args (argc, argv, O_JSON, 0, 2, usage, &a, err);

  if (r)
    return r;
  remap_get_info (e, &in);
  const struct remap_layout *l = &in.layout;
  if (a.npos > 0 && !parse_u64 (a.pos[0], &first))
    return remap_set_error (err, -EINVAL, "bad spare unit \"%s\": want a "
                            "decimal or 0x hexadecimal number", a.pos[0]);
  count = first < l->spare_units ? l->spare_units - first : 0;
  if (a.npos > 1 && (!parse_u64 (a.pos[1], &count) || count == 0))
    return remap_set_error (err, -EINVAL, "bad count \"%s\": want a positive "
                            "number", a.pos[1]);
  if (first >= l->spare_units || count > l->spare_units - first)
    return remap_set_error (err, -EINVAL, "spare unit %" PRIu64 " count %"
                            PRIu64 " is past the end of the spare (%" PRIu64
                            " units, numbered from 0); usage: %s", first,
                            count, l->spare_units, usage);
  for (uint64_t s = first; s < first + count; s++)
    reserved += remap_layout_is_reserved (l, s);
  b.first = first;
  b.end = first + count;
  if ((r = remap_foreach (e, collect_bad, &b)) != 0) {
    free (b.v);
    return remap_set_error (err, r, "out of memory");
  }
  if (a.json)
    P ("{\"command\":\"spare-retest\",\"unit\":%" PRIu32 ",\"first_unit\":%"
       PRIu64 ",\"units\":%" PRIu64 ",\"reserved_skipped\":%" PRIu64
       ",\"results\":[", l->unit, first, count, reserved);
  for (i = 0; i < b.n && r == 0; i++) {
    uint64_t c = 0;
    r = remap_spare_retest (e, b.v[i], 1, &c, err);
    if (r)
      break;
    cleared += c;
    still += !c;
    if (a.json)
      P ("%s{\"spare_unit\":%" PRIu64 ",\"result\":\"%s\"}", i ? "," : "",
         b.v[i], c ? "cleared" : "still-bad");
    else
      P ("spare unit %" PRIu64 ": %s\n", b.v[i],
         c ? "cleared (passed the test; free again)"
         : "still bad (failed the test)");
  }
  if (r == 0 && still)
    r = remap_set_error (err, -EIO, "%" PRIu64 " of %zu bad spare units "
                         "still fail the test and stay bad; the spare's "
                         "medium is failing there", still, b.n);
  if (a.json) {
    P ("],\"tested\":%zu,\"cleared\":%" PRIu64 ",\"still_bad\":%" PRIu64,
       i, cleared, still);
    if (r) {
      P (",\"error\":");
      JS (err && err->msg[0] ? err->msg : strerror (-r));
    }
    P ("}\n");
  }
  else if (b.n == 0)
    P ("no bad spare units in spare units %" PRIu64 "-%" PRIu64
       ": nothing to retest\n", first, first + count - 1);
  else
    P ("%zu bad spare unit%s retested: %" PRIu64 " cleared, %" PRIu64
       " still bad (spare units %" PRIu64 "-%" PRIu64 "; %" PRIu64
       " metadata units skipped)\n", i, i == 1 ? "" : "s", cleared, still,
       first, first + count - 1, reserved);
  free (b.v);
  if (out->failed && !r)
    r = remap_set_error (err, -ENOMEM, "out of memory");
  return r;
}

/* ---- import ---------------------------------------------------------- */

/* import [--pending] [--json] LIST: the byte ranges of a parsed bad-block
 * list (OFF+LEN items of the unit-list grammar, core/parse.c), applied by
 * remap_import_units (core/import.c): checked whole, then applied.  This
 * is how remapctl import reaches an engine, offline or online. */
static int
cmd_import (struct remap_engine *e, int argc, char *const *argv,
            struct remap_buf *out, struct remap_error *err)
{
  static const char usage[] = "import [--pending] [--json] OFF+LEN[,...]";
  struct remap_list l = { 0 };
  struct remap_unit_range *v = NULL;
  struct remap_import_result res = { 0 };
  unsigned flags = 0;
  bool json = false;
  const char *list = NULL;
  uint64_t U = remap_unit (e);
  int r = 0;

  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--pending") == 0)
      flags |= REMAP_IMPORT_PENDING;
    else if (strcmp (argv[i], "--json") == 0)
      json = true;
    else if (argv[i][0] == '-' || list)
      return remap_set_error (err, -EINVAL, "import: unexpected argument "
                              "\"%.40s\"; usage: %s", argv[i], usage);
    else
      list = argv[i];
  }
  if (!list)
    return remap_set_error (err, -EINVAL, "import: missing list; usage: %s",
                            usage);
  if ((r = remap_list_parse (list, "import", &l, err)))
    return r;
  v = malloc ((l.n ? l.n : 1) * sizeof *v);
  if (!v) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < l.n; i++)
    if (l.v[i].bytes && l.v[i].last >= remap_size (e)) {
      r = remap_set_error (err, -EINVAL, "bad range at byte %"
                           PRIu64 " (length %" PRIu64 ") is past the end of "
                           "the origin (%" PRIu64 " bytes): wrong block size, "
                           "or another disk's list?  Nothing was imported",
                           l.v[i].first, l.v[i].last - l.v[i].first + 1,
                           remap_size (e));
      goto out;
    }
  for (size_t i = 0; i < l.n; i++)
    v[i] = l.v[i].bytes
      ? (struct remap_unit_range) { l.v[i].first / U, l.v[i].last / U }
      : (struct remap_unit_range) { l.v[i].first, l.v[i].last };
  r = remap_import_units (e, v, l.n, NULL, flags, &res, err);
  if (r && res.changed == 0 && !json)
    goto out;
  if (json) {
    P ("{\"command\":\"import\",\"mode\":\"%s\",\"unit\":%" PRIu64
       ",\"ranges\":%" PRIu64 ",\"units\":%" PRIu64 ",\"already\":%" PRIu64
       ",\"needed\":%" PRIu64 ",\"free\":%" PRIu64 ",\"changed\":%" PRIu64,
       flags & REMAP_IMPORT_PENDING ? "pending" : "remap", U, res.ranges,
       res.units, res.already, res.needed, res.room, res.changed);
    if (r) {
      P (",\"error\":");
      JS (err && err->msg[0] ? err->msg : strerror (-r));
    }
    P ("}\n");
  }
  else
    P ("imported %" PRIu64 " bad range(s): %" PRIu64 " unit(s), %" PRIu64
       " %s now, %" PRIu64 " already %s\n", res.ranges, res.units,
       res.changed, flags & REMAP_IMPORT_PENDING ? "marked pending"
       : "remapped", res.already, flags & REMAP_IMPORT_PENDING
       ? "remapped or pending" : "remapped");
  if (out->failed && !r)
    r = remap_set_error (err, -ENOMEM, "out of memory");
 out:
  free (v);
  remap_list_free (&l);
  return r;
}

/* ---- dispatch -------------------------------------------------------- */

static int
cmd_help (struct remap_engine *e, int argc, char *const *argv,
          struct remap_buf *out, struct remap_error *err)
{
  (void) e; (void) argc; (void) argv; (void) err;
  P ("commands:\n"
     "  status [--json]\n"
     "  list [--json]\n"
     "  lookup LBA [-u] [--json]\n"
     "  remap LBA [COUNT] [-u] [--json]\n"
     "  unmap LBA [COUNT] [-u] [--discard-data] [--json]\n"
     "  pending LBA [COUNT] [-u] [--json]\n"
     "  export --format badblocks --block-size N | --format ddrescue\n"
     "  scan LBA [COUNT] [-u] [--json]\n"
     "  spare-retest [FIRST [COUNT]] [--json]   (spare unit numbers)\n"
     "  import [--pending] [--json] OFF+LEN[,...]   (bytes; remapctl import\n"
     "         sends a parsed badblocks, ddrescue or smartctl list this way)\n"
     "LBA and COUNT are 512-byte sectors, or remap units with -u.\n");
  return 0;
}

static int
cmd_remap (struct remap_engine *e, int argc, char *const *argv,
           struct remap_buf *out, struct remap_error *err)
{
  return cmd_range (e, OP_REMAP, argc, argv, out, err);
}

static int
cmd_unmap (struct remap_engine *e, int argc, char *const *argv,
           struct remap_buf *out, struct remap_error *err)
{
  return cmd_range (e, OP_UNMAP, argc, argv, out, err);
}

static int
cmd_pending (struct remap_engine *e, int argc, char *const *argv,
             struct remap_buf *out, struct remap_error *err)
{
  return cmd_range (e, OP_PENDING, argc, argv, out, err);
}

static const struct {
  const char *name;
  int (*fn) (struct remap_engine *, int, char *const *, struct remap_buf *,
             struct remap_error *);
} commands[] = {
  { "status", cmd_status },
  { "list", cmd_list },
  { "lookup", cmd_lookup },
  { "remap", cmd_remap },
  { "unmap", cmd_unmap },
  { "pending", cmd_pending },
  { "export", cmd_export },
  { "scan", cmd_scan },
  { "spare-retest", cmd_spare_retest },
  { "import", cmd_import },
  { "help", cmd_help },
};

int
remap_control_exec (struct remap_engine *e, int argc, char *const *argv,
                    struct remap_buf *out, struct remap_error *err)
{
  if (argc < 1 || argv[0] == NULL)
    return remap_set_error (err, -EINVAL, "no command given (try help)");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (strcmp (argv[0], commands[i].name) == 0)
      return commands[i].fn (e, argc, argv, out, err);
  return remap_set_error (err, -EINVAL, "unknown command \"%.40s\" (commands: "
                          "status, list, lookup, remap, unmap, pending, "
                          "export, scan, spare-retest, import, help)", argv[0]);
}
