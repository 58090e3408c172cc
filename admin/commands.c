/* remap admin: the command table, its grammar and dispatch.
 *
 * remap_commands[] is the one description of every engine command: its
 * name, positional arguments, accepted options, help line and handler.
 * remap_command_parse reads argv by it, remap_command_usage and the help
 * command print from it, remap_admin_exec dispatches through it.  To add
 * a command: write a handler (any file of admin/, declared in cmd.h) and
 * add one entry below; remapctl and the control socket pick it up.  A new
 * option: a REMAP_OPT_* bit (admin.h), a field in struct remap_args and a
 * row in remap_options[].
 *
 * The handlers (cmd_*.c) gather data through the engine's thread-safe API
 * and render text or JSON (json-c) to a sink, one bounded step at a time.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "cmd.h"
#include "remap/parse.h"
#include "remap/remap.h"

const struct remap_option remap_options[] = {
  { REMAP_OPT_JSON, "--json", NULL, NULL,
    "one JSON object on one line" },
  { REMAP_OPT_UNITS, "--unit-numbers", "-u", NULL,
    "LBA and COUNT are remap units, not 512-byte sectors" },
  { REMAP_OPT_DISCARD, "--discard-data", NULL, NULL,
    "drop the spare's copy instead of copying it back" },
  { REMAP_OPT_FORMAT, "--format", "-f", "FORMAT",
    "badblocks or ddrescue" },
  { REMAP_OPT_BLOCK_SIZE, "--block-size", "-b", "N",
    "block size of a badblocks list (its -b)" },
  { REMAP_OPT_PENDING, "--pending", NULL, NULL,
    "mark the units pending instead of remapping them" },
  { 0, NULL, NULL, NULL, NULL },
};

const struct remap_command remap_commands[] = {
  { "status", "", REMAP_OPT_JSON, 0, 0,
    "counters, state and geometry", cmd_status, 0 },
  { "list", "", REMAP_OPT_JSON, 0, 0,
    "the table: mapped, pending and bad slots", cmd_list, 0 },
  { "lookup", "LBA", REMAP_OPT_JSON | REMAP_OPT_UNITS, 1, 1,
    "where one LBA's unit lives", cmd_lookup, 0 },
  { "remap", "LBA [COUNT]", REMAP_OPT_JSON | REMAP_OPT_UNITS, 1, 2,
    "move every unit touched to the spare", cmd_range, CMD_OP_REMAP },
  { "unmap", "LBA [COUNT]",
    REMAP_OPT_JSON | REMAP_OPT_UNITS | REMAP_OPT_DISCARD, 1, 2,
    "return units to the origin (data copied back)", cmd_range,
    CMD_OP_UNMAP },
  { "pending", "LBA [COUNT]", REMAP_OPT_JSON | REMAP_OPT_UNITS, 1, 2,
    "record units as pending (as a failed read would)", cmd_range,
    CMD_OP_PENDING },
  { "export", "", REMAP_OPT_FORMAT | REMAP_OPT_BLOCK_SIZE, 0, 0,
    "the table as a badblocks list (--block-size N) or ddrescue mapfile",
    cmd_export, 0 },
  { "scan", "LBA [COUNT]", REMAP_OPT_JSON | REMAP_OPT_UNITS, 1, 2,
    "read the units that are not remapped; failing ones become pending",
    cmd_scan, 0 },
  { "spare-retest", "[FIRST [COUNT]]", REMAP_OPT_JSON, 0, 2,
    "re-test bad spare units (spare unit numbers); free those that pass",
    cmd_spare_retest, 0 },
  { "import", "OFF+LEN[,...]", REMAP_OPT_JSON | REMAP_OPT_PENDING, 1, 1,
    "remap (or mark pending) the units these byte ranges touch, all "
    "checked first", cmd_import, 0 },
  { "help", "", 0, 0, 0, "this list", cmd_help, 0 },
  { NULL, NULL, 0, 0, 0, NULL, NULL, 0 },
};

const struct remap_command *
remap_command_find (const char *name)
{
  for (const struct remap_command *c = remap_commands; c->name; c++)
    if (strcmp (c->name, name) == 0)
      return c;
  return NULL;
}

void
remap_command_usage (const struct remap_command *c, char *buf, size_t len)
{
  size_t n;

  snprintf (buf, len, "%s%s%s", c->name, c->args[0] ? " " : "", c->args);
  for (const struct remap_option *o = remap_options; o->flag; o++) {
    if (!(c->options & o->flag))
      continue;
    n = strlen (buf);
    /* A switch by its short name (-u), a valued option by its long one
     * (--format FORMAT): what the help has always shown. */
    snprintf (buf + n, len - n, " [%s%s%s]",
              o->short_name && !o->value ? o->short_name : o->long_name,
              o->value ? " " : "", o->value ? o->value : "");
  }
}

static const struct remap_option *
find_option (const char *s)
{
  for (const struct remap_option *o = remap_options; o->flag; o++)
    if (strcmp (s, o->long_name) == 0
        || (o->short_name && strcmp (s, o->short_name) == 0))
      return o;
  return NULL;
}

int
remap_command_parse (const struct remap_command *c, int argc,
                     char *const *argv, struct remap_args *a,
                     struct remap_error *err)
{
  char usage[256];

  memset (a, 0, sizeof *a);
  remap_command_usage (c, usage, sizeof usage);
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    const struct remap_option *o;

    if (s[0] != '-' || s[1] == '\0') {
      if (a->npos == c->max_pos || a->npos == REMAP_MAX_POS)
        return remap_set_error (err, -EINVAL, "%s: too many arguments "
                                "(\"%.40s\" is one more); usage: %s",
                                c->name, s, usage);
      a->pos[a->npos++] = s;
      continue;
    }
    o = find_option (s);
    if (!o)
      return remap_set_error (err, -EINVAL, "%s: unknown option %.40s; "
                              "usage: %s", c->name, s, usage);
    if (!(c->options & o->flag))
      return remap_set_error (err, -EINVAL, "%s: option %s does not apply "
                              "to this command; usage: %s", c->name, s,
                              usage);
    if (o->value && ++i == argc)
      return remap_set_error (err, -EINVAL, "%s: %s needs a value (%s); "
                              "usage: %s", c->name, s, o->value, usage);
    switch (o->flag) {
    case REMAP_OPT_JSON: a->json = true; break;
    case REMAP_OPT_UNITS: a->units = true; break;
    case REMAP_OPT_DISCARD: a->discard = true; break;
    case REMAP_OPT_PENDING: a->pending = true; break;
    case REMAP_OPT_FORMAT: a->format = argv[i]; break;
    case REMAP_OPT_BLOCK_SIZE:
      /* A size, as remapctl import's: "4096", "4k", "0x1000". */
      if (remap_parse_u64 (argv[i], REMAP_NUM_SUFFIX, s, &a->block_size,
                           err) != 0)
        return remap_error_prefix (err, -EINVAL, "%s: ", c->name);
      if (a->block_size == 0)
        return remap_set_error (err, -EINVAL, "%s: %s must be a positive "
                                "size, not %.40s; usage: %s", c->name, s,
                                argv[i], usage);
      break;
    default: break;
    }
  }
  if (a->npos < c->min_pos)
    return remap_set_error (err, -EINVAL, "%s: missing argument; usage: %s",
                            c->name, usage);
  return 0;
}

int
cmd_help (struct remap_engine *e, const struct remap_command *c,
          const struct remap_args *a, struct remap_out *out,
          struct remap_error *err)
{
  char usage[256];

  (void) e; (void) c; (void) a; (void) err;
  remap_out_printf (out, "commands:\n");
  for (const struct remap_command *k = remap_commands; k->name; k++) {
    remap_command_usage (k, usage, sizeof usage);
    remap_out_printf (out, "  %-48s %s\n", usage, k->summary);
  }
  remap_out_printf (out, "LBA and COUNT are 512-byte sectors, or remap units "
                    "with -u; numbers are decimal or 0x hexadecimal.\n"
                    "import takes byte ranges OFF+LEN (remapctl import sends "
                    "a parsed badblocks,\nddrescue or smartctl list this "
                    "way).\n");
  return out->err;
}

int
remap_admin_exec (struct remap_engine *e, int argc, char *const *argv,
                  struct remap_out *out, struct remap_error *err)
{
  const struct remap_command *c;
  struct remap_args a;
  int r;

  if (argc < 1 || argv[0] == NULL)
    return remap_set_error (err, -EINVAL, "no command given (try help)");
  c = remap_command_find (argv[0]);
  if (!c) {
    char names[256] = "";
    for (const struct remap_command *k = remap_commands; k->name; k++) {
      size_t n = strlen (names);
      snprintf (names + n, sizeof names - n, "%s%s", n ? ", " : "", k->name);
    }
    return remap_set_error (err, -EINVAL, "unknown command \"%.40s\" "
                            "(commands: %s)", argv[0], names);
  }
  if ((r = remap_command_parse (c, argc, argv, &a, err)) != 0)
    return r;
  r = c->fn (e, c, &a, out, err);
  if (r == 0 && out->err)
    r = remap_set_error (err, out->err, "output: %s", strerror (-out->err));
  return r;
}

int
remap_control_exec (struct remap_engine *e, int argc, char *const *argv,
                    struct remap_buf *mem, struct remap_error *err)
{
  struct remap_out out;
  int r;

  remap_out_memory (&out, mem);
  r = remap_admin_exec (e, argc, argv, &out, err);
  remap_out_finish (&out);
  return r;
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
    if (((unsigned char) *q < 0x20 && *q != '\t') || *q == 0x7f)
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
