/* remap admin: what the command handlers share (private to admin/). */
#ifndef REMAP_ADMIN_CMD_H
#define REMAP_ADMIN_CMD_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "admin.h"
#include "remap/remap.h"

struct remap_engine;

enum { CMD_OP_REMAP, CMD_OP_UNMAP, CMD_OP_PENDING };

/* The handlers of remap_commands[] (commands.c). */
remap_command_fn cmd_status, cmd_list, cmd_lookup, cmd_export, cmd_range,
  cmd_scan, cmd_spare_retest, cmd_import, cmd_help;

/* What status shows, gathered once; a new rendering of it (another
 * format) takes this and writes to a sink. */
struct cmd_status_data {
  struct remap_counters c;
  struct remap_info in;
  struct remap_backend_status ost, sst;   /* origin, spare */
  char uuid[37];
  unsigned f;                   /* conditions (bits, cmd_show.c) */
  const char *state;            /* "healthy", "spare-full", ... */
};
void cmd_status_gather (struct remap_engine *e, struct cmd_status_data *d);

/* Numbers are read by the core's one parser, remap_parse_u64
 * (include/remap/parse.h): decimal or 0x hexadecimal, no sign, no
 * overflow; sizes (--block-size) may take a suffix. */

/* Units and sectors of the origin. */
uint64_t cmd_origin_units (struct remap_engine *e);
uint64_t cmd_origin_sectors (struct remap_engine *e);

/* LBA [COUNT] (sectors, or units with -u) of a to the units touched.
 * 0 or -EINVAL with a message. */
int cmd_get_range (struct remap_engine *e, const struct remap_args *a,
                   uint64_t *first, uint64_t *count, struct remap_error *err);

/* Streaming a JSON object with one large array: head's members, then
 * "key":[ ... elements ... ], then tail's members (tail may be NULL), and
 * a newline.  head and tail are built with json-c; each element is
 * written with remap_out_json after cmd_json_sep. */
int cmd_json_open_array (struct remap_out *out, struct json_object *head,
                         const char *key);
int cmd_json_close_array (struct remap_out *out, struct json_object *tail);

/* Shorthands for building objects. */
static inline void
jadd_u64 (struct json_object *o, const char *k, uint64_t v)
{
  json_object_object_add (o, k, json_object_new_uint64 (v));
}
static inline void
jadd_str (struct json_object *o, const char *k, const char *v)
{
  json_object_object_add (o, k, json_object_new_string (v));
}
static inline void
jadd_bool (struct json_object *o, const char *k, bool v)
{
  json_object_object_add (o, k, json_object_new_boolean (v));
}

#endif /* REMAP_ADMIN_CMD_H */
