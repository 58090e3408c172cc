/* remapctl: the administrator's tool for remap spares, offline (on the
 * files) and online (through the control socket of a running plugin).
 *
 *   remapctl COMMAND [--spare SPARE] [--origin ORIGIN | --control SOCK] ...
 *
 * Two tables drive parsing, help and dispatch: the admin library's
 * remap_commands[] (status, list, lookup, remap, unmap, pending, export,
 * spare-retest: admin/commands.c) for what a running server can also do,
 * and tool_commands[] below for what only this tool does (format, dump,
 * check, repair, rebind, import, scan).  An engine command runs offline on
 * an engine remapctl opens itself, or online in the plugin through the
 * control socket: the same code renders both, and the output streams to
 * stdout as it is produced.  import parses and checks its whole file
 * here (core/parse.c, core/smartctl.c) and sends the ranges as one engine
 * command "import" either way (admin/cmd_import.c: the room check, then
 * the units).  status --prometheus and
 * map (view.c) ask "status --json" and "list --json" the same way and
 * render them with admin/prom.c and admin/map.c.
 *
 * The manual is remapctl.pod next to this file.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "remap/badlist.h"
#include "remap/parse.h"
#include "remap/remap.h"
#include "remapctl.h"
#include "view.h"

static const char *progname = "remapctl";
static const char *cmd;

/* Global options, pulled out of the command line wherever they are. */
static const char *spare_path;
static const char *origin_path;
static const char *control_path;
static bool origin_readonly;            /* scan: the origin is only read */
static bool accept_origin_change;       /* --accept-origin-change */

/* The remaining arguments, in order (command-specific). */
static int nrest;
static char **rest;

static void __attribute__ ((format (printf, 1, 2)))
msg (const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "%s: %s%s", progname, cmd ? cmd : "", cmd ? ": " : "");
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fputc ('\n', stderr);
}

static int __attribute__ ((format (printf, 1, 2)))
usage_error (const char *fmt, ...)
{
  va_list ap;

  fprintf (stderr, "%s: %s%s", progname, cmd ? cmd : "", cmd ? ": " : "");
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\nTry '%s --help' or 'man remapctl'.\n", progname);
  return EXIT_USAGE;
}

struct tool_command {
  const char *name;
  const char *usage;            /* arguments and options */
  const char *summary;
  int (*fn) (void);
  bool online;                  /* also with --control SOCK */
};
static const struct tool_command tool_commands[];
static const struct tool_command *tool_find (const char *name);

static void
usage (FILE *f)
{
  const struct tool_command *t;
  char u[256];

  fprintf (f,
"usage: remapctl COMMAND [ARGS] [--spare SPARE] [--origin ORIGIN]\n"
"       remapctl COMMAND [ARGS] --control SOCK\n"
"\n"
"Offline (on the files; refused while a server holds them):\n");
  for (t = tool_commands; t->name; t++)
    if (!t->online)
      fprintf (f, "  %s %s\n      %s\n", t->name, t->usage, t->summary);
  fprintf (f, "Offline (-s SPARE -o ORIGIN) or online (-c SOCK):\n");
  for (const struct remap_command *c = remap_commands; c->name; c++) {
    if (strcmp (c->name, "help") == 0 || tool_find (c->name))
      continue;             /* scan, import: remapctl's own, below */
    remap_command_usage (c, u, sizeof u);
    fprintf (f, "  %s\n      %s\n", u, c->summary);
    if (strcmp (c->name, "status") == 0)
      fprintf (f, "  status --prometheus\n      the counters for "
               "node_exporter's textfile collector\n");
  }
  for (t = tool_commands; t->name; t++)
    if (t->online)
      fprintf (f, "  %s %s\n      %s\n", t->name, t->usage, t->summary);
  fprintf (f,
"status, list, map and export also take SPARE [ORIGIN] as positional\n"
"arguments.\n"
"--accept-origin-change: open a spare with an origin whose identity differs\n"
"                        from the recorded one (offline commands).\n"
"LBA and COUNT are 512-byte sectors, or remap units with -u.\n"
"Exit: 0 ok, 1 failed (check: repairable), 2 usage error (nothing changed),\n"
"      3 held by a running server (use --control), 4 control socket error,\n"
"      5 scan stopped before the end (resumable), 6 spare unusable\n"
"      (check: unusable: damaged beyond repair, resized, unknown format).\n");
}

int
remapctl_exit_code (int r)
{
  switch (-r) {
  case 0: return EXIT_OK;
  case EINVAL: return EXIT_USAGE;
  case EWOULDBLOCK: return EXIT_BUSY;
  case ECONNREFUSED: case ECONNRESET: case EPROTO: case E2BIG:
  case EUSERS:                  /* the server refused: busy, not run */
    return EXIT_CONTROL;
  case EUCLEAN: case EOPNOTSUPP:
    return EXIT_UNUSABLE;
  default: return EXIT_FAIL;
  }
}

#define exit_code remapctl_exit_code

/* A number as every remap parser reads it (remap_parse_u64: decimal with
 * an optional size suffix such as 4k, or 0x hexadecimal). */
static bool
parse_u64 (const char *s, uint64_t *out)
{
  return remap_parse_u64 (s, REMAP_NUM_SUFFIX, "number", out, NULL) == 0;
}

/* ---- opening the files ----------------------------------------------- */

static void
report_open_error (int r, const struct remap_error *err, const char *what)
{
  msg ("%s", err->msg[0] ? err->msg : strerror (-r));
  (void) what;
  if (r == -EWOULDBLOCK)
    fprintf (stderr, "%s: if a running nbdkit remap plugin holds them, talk "
             "to it instead: remapctl %s --control SOCK ... (the plugin's "
             "control=SOCK)\n", progname, cmd);
  else if (r == -ENOMEDIUM)
    fprintf (stderr, "%s: format it first: remapctl format ORIGIN SPARE\n",
             progname);
  else if (r == -EUCLEAN)
    fprintf (stderr, "%s: see remapctl check / dump\n", progname);
  else if (r == -ENODEV && strcmp (cmd, "rebind") != 0
           && strstr (err->msg, "identity"))
    fprintf (stderr, "%s: if this origin holds the same data (a copy of "
             "the image, a cloned disk), record it once with 'remapctl "
             "rebind -s %s -o %s', or add --accept-origin-change to this "
             "command\n", progname, spare_path, origin_path);
}

/* The origin recorded at format time (for read-only commands). */
static int
default_origin (char *buf, size_t len)
{
  struct remap_error err = { 0 };
  struct remap_backend *s;
  struct remap_inspect *in = calloc (1, sizeof *in);
  int r;

  if (!in)
    return -ENOMEM;
  r = remap_backend_open (spare_path, REMAP_FILE_READONLY, &s, &err);
  if (r == 0) {
    r = remap_inspect (s, in, &err);
    remap_backend_close (s);
  }
  if (r == 0 && (!in->found || in->info.origin_label[0] == '\0'))
    r = -ENOENT;
  if (r == 0)
    snprintf (buf, len, "%s", in->info.origin_label);
  free (in);
  return r;
}

/* An origin behind an NBD server that cannot be reached: for commands
 * that only read the table, open it unreachable, sized as the spare
 * recorded, so that status can say so (and the rest still works). */
static int
open_unreachable_origin (struct remap_backend *s, unsigned fl,
                         struct remap_backend **o, struct remap_error *err)
{
  struct remap_inspect *in = calloc (1, sizeof *in);
  struct remap_error ierr = { 0 };
  int r = -ENOTCONN;

  if (in && remap_inspect (s, in, &ierr) == 0 && in->found) {
    fprintf (stderr, "%s: %s: %s; reporting from the spare\n", progname,
             cmd, err->msg);
    remap_error_clear (err);
    r = remap_nbd_open_known_size (origin_path, fl, in->info.origin_size, o,
                                   err);
  }
  free (in);
  return r;
}

static int
open_engine (bool rw, bool need_origin, struct remap_engine **e)
{
  struct remap_error err = { 0 };
  struct remap_backend *o = NULL, *s = NULL;
  struct remap_open_opts oo = { .readonly = !rw, .read_retries = 2,
                                .accept_origin_change = accept_origin_change };
  static char label[PATH_MAX];
  unsigned fl = rw ? 0 : REMAP_FILE_READONLY;
  unsigned ofl = origin_readonly ? REMAP_FILE_READONLY : fl;
  int r;

  if (!spare_path)
    return usage_error ("%s", "the spare is required: --spare SPARE (or "
                        "--control SOCK to ask a running server)");
  if (!origin_path) {
    if (need_origin)
      return usage_error ("%s", "the origin is required: --origin ORIGIN "
                          "(the engine copies data from and to it)");
    if (default_origin (label, sizeof label) != 0)
      return usage_error ("%s", "the origin is required: --origin ORIGIN "
                          "(none recorded on the spare)");
    origin_path = label;
    fprintf (stderr, "%s: %s: using the origin recorded at format: %s\n",
             progname, cmd, origin_path);
  }
  r = remap_backend_open (spare_path, fl, &s, &err);
  if (r == 0)
    r = remap_backend_open (origin_path, ofl, &o, &err);
  if (r == -ENOTCONN && s && !rw && remap_is_nbd_uri (origin_path))
    r = open_unreachable_origin (s, ofl, &o, &err);
  if (r) {
    remap_backend_close (s);
    report_open_error (r, &err, "opening");
    return exit_code (r);
  }
  r = remap_open (o, s, &oo, e, &err);
  if (r) {
    report_open_error (r, &err, "opening");
    return r == -EINVAL ? EXIT_FAIL : exit_code (r);
  }
  return EXIT_OK;
}

/* ---- running executor commands offline or online --------------------- */

/* Run argv (argv[0] = command) on the engine or through the socket. */
static int
run (struct remap_engine *e, int argc, char **argv, struct remap_buf *out,
     struct remap_error *err)
{
  if (e)
    return remap_control_exec (e, argc, argv, out, err);
  return ctl_request (control_path, argc, argv, out, err);
}

static int
finish (int r, struct remap_buf *out, const struct remap_error *err)
{
  if (out->len)
    fwrite (out->data, 1, out->len, stdout);
  fflush (stdout);
  if (r) {
    /* The command's own messages may start with its name: not twice. */
    const char *m = err->msg[0] ? err->msg : strerror (-r);
    size_t n = strlen (cmd);
    if (strncmp (m, cmd, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
      m += n + 2;
    msg ("%s", m);
    if (r == -EINVAL && strstr (err->msg, "usage:") != NULL)
      fprintf (stderr, "Try '%s --help' or 'man remapctl'.\n", progname);
  }
  return exit_code (r);
}

/* Close the engine (if any), fold a failed final flush into r, print the
 * output or the error, free the output.  Returns the exit status. */
static int
close_and_finish (struct remap_engine *e, int r, struct remap_buf *out,
                  struct remap_error *err)
{
  if (e) {
    int r2 = remap_close (e);
    if (r == 0 && r2 < 0)
      r = remap_set_error (err, r2, "final flush failed: %s",
                           strerror (-r2));
  }
  r = finish (r, out, err);
  remap_buf_free (out);
  return r;
}

/* Commands that change the table (the engine is opened read-write), and
 * of those the ones that move data to or from the origin (so the origin
 * must be named, not taken from the spare's label). */
static bool
cmd_moves_data (const char *c)
{
  return strcmp (c, "remap") == 0 || strcmp (c, "unmap") == 0
    || strcmp (c, "pending") == 0 || strcmp (c, "import") == 0;
}

static bool
cmd_rw (const char *c)
{
  return cmd_moves_data (c) || strcmp (c, "spare-retest") == 0;
}

/* Options of the executor that take a value (so their value is not a
 * positional SPARE/ORIGIN). */
static bool
takes_value (const char *a)
{
  return strcmp (a, "--format") == 0 || strcmp (a, "-f") == 0
    || strcmp (a, "--block-size") == 0 || strcmp (a, "-b") == 0;
}

/* status, list, export: positional SPARE [ORIGIN]. */
static int
take_positional_files (void)
{
  int j = 0, npos = 0;
  for (int i = 0; i < nrest; i++) {
    if (takes_value (rest[i]) && i + 1 < nrest) {
      rest[j++] = rest[i++];
      rest[j++] = rest[i];
      continue;
    }
    if (rest[i][0] != '-' || rest[i][1] == '\0') {
      if (npos == 0 && !spare_path && !control_path)
        spare_path = rest[i];
      else if (npos == 1 && !origin_path && !control_path)
        origin_path = rest[i];
      else
        return usage_error ("unexpected argument \"%s\"", rest[i]);
      npos++;
      continue;
    }
    rest[j++] = rest[i];
  }
  nrest = j;
  return EXIT_OK;
}

/* A sink that streams to stdout. */
static int
stdout_flush (void *opaque, const char *p, size_t n)
{
  (void) opaque;
  return fwrite (p, 1, n, stdout) == n ? 0 : -EIO;
}

/* Run argv on the engine (offline) or through the socket (online), the
 * output streamed to stdout as it is produced.  0 or -errno with err. */
static int
exec_stream (struct remap_engine *e, int argc, char **argv,
             struct remap_error *err)
{
  struct remap_out so;
  int r, w;

  remap_out_stream (&so, stdout_flush, NULL, NULL);
  if (e)
    r = remap_admin_exec (e, argc, argv, &so, err);
  else
    r = remap_ctl_request (control_path, argc, argv, &so, err);
  w = remap_out_finish (&so);
  if (r == 0 && w)
    r = remap_set_error (err, w, "writing the output: %s", strerror (-w));
  return r;
}

static int
do_exec (void)
{
  struct remap_engine *e = NULL;
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  char **argv;
  int r;

  if (strcmp (cmd, "status") == 0 || strcmp (cmd, "list") == 0
      || strcmp (cmd, "export") == 0)
    if ((r = take_positional_files ()) != EXIT_OK)
      return r;
  if (!control_path
      && (r = open_engine (cmd_rw (cmd), cmd_moves_data (cmd), &e)))
    return r;
  argv = calloc (nrest + 2, sizeof *argv);
  if (!argv) {
    remap_close (e);
    msg ("out of memory");
    return EXIT_FAIL;
  }
  argv[0] = (char *) cmd;
  memcpy (argv + 1, rest, nrest * sizeof *argv);
  r = exec_stream (e, nrest + 1, argv, &err);
  free (argv);
  return close_and_finish (e, r, &out, &err);
}

/* ---- views: status --prometheus, map (view.c) ------------------------ */
/* Hook of the admin views: they ask through run(), like do_exec, and
 * render with admin/prom.c and admin/map.c. */

static int
view_run (void *opaque, int argc, char **argv, struct remap_buf *out,
          struct remap_error *err)
{
  return run (opaque, argc, argv, out, err);
}

static bool
has_arg (const char *a)
{
  for (int i = 0; i < nrest; i++)
    if (strcmp (rest[i], a) == 0)
      return true;
  return false;
}

/* status --prometheus [SPARE [ORIGIN]] */
static int
do_prometheus (void)
{
  struct remap_engine *e = NULL;
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  int r;

  if ((r = take_positional_files ()) != EXIT_OK)
    return r;
  for (int i = 0; i < nrest; i++)
    if (strcmp (rest[i], "--prometheus") != 0)
      return usage_error ("%s does not go with --prometheus; usage: status "
                          "--prometheus [SPARE [ORIGIN]]", rest[i]);
  if (!control_path && (r = open_engine (false, false, &e)) != EXIT_OK)
    return r;
  r = view_prometheus (view_run, e, &out, &err);
  return close_and_finish (e, r, &out, &err);
}

/* map [SPARE [ORIGIN]] [--svg FILE] [--columns N] [--rows N] [--color] */
static int
do_map (void)
{
  struct remap_engine *e = NULL;
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  struct view_map_opts o;
  int j = 0, r;

  for (int i = 0; i < nrest; i++) {
    const char *a = rest[i];
    if ((strcmp (a, "--svg") == 0 || strcmp (a, "--columns") == 0
         || strcmp (a, "--rows") == 0) && i + 1 < nrest) {
      rest[j++] = rest[i++];
      rest[j++] = rest[i];
    }
    else if (a[0] == '-' && a[1] != '\0')
      rest[j++] = rest[i];
    else if (!spare_path && !control_path)
      spare_path = a;
    else if (!origin_path && !control_path)
      origin_path = a;
    else
      return usage_error ("unexpected argument \"%s\"", a);
  }
  nrest = j;
  if (view_map_parse (nrest, rest, &o, &err) != 0)
    return usage_error ("%s", err.msg);
  if (!control_path && (r = open_engine (false, false, &e)) != EXIT_OK)
    return r;
  r = view_map (view_run, e, &o, &out, &err);
  return close_and_finish (e, r, &out, &err);
}

/* ---- format ---------------------------------------------------------- */

static int
do_format (void)
{
  struct remap_format_opts fo;
  struct remap_error err = { 0 };
  struct remap_backend *o = NULL, *s = NULL;
  struct remap_layout l;
  char abs_origin[PATH_MAX];
  int npos = 0, r;

  remap_format_opts_init (&fo);
  for (int i = 0; i < nrest; i++) {
    const char *a = rest[i];
    uint64_t v;
    if (strcmp (a, "--force") == 0)
      fo.force = true;
    else if (strcmp (a, "--sparse") == 0)
      fo.sparse = true;
    else if (strcmp (a, "--unit") == 0 || strcmp (a, "--strategy") == 0
             || strcmp (a, "--copies") == 0) {
      if (i + 1 == nrest)
        return usage_error ("%s needs a value", a);
      const char *val = rest[++i];
      if (strcmp (a, "--strategy") == 0) {
        if (remap_strategy_parse (val, &fo.strategy))
          return usage_error ("unknown strategy \"%s\" (auto, minimal, "
                              "linear, geometric)", val);
      }
      else if (!parse_u64 (val, &v) || v > UINT32_MAX)
        return usage_error ("bad number \"%s\"", val);
      else if (strcmp (a, "--unit") == 0) {
        if (!remap_unit_valid (v))
          return usage_error ("bad unit \"%s\": a power of two from 512 to "
                              "65536", val);
        fo.unit = (uint32_t) v;
      }
      else if (v < REMAP_MIN_COPIES || v > REMAP_MAX_COPIES)
        return usage_error ("bad copy count \"%s\": from %u to %u (remap "
                            "keeps at least two metadata copies, so that one "
                            "damaged copy never costs the table)", val,
                            REMAP_MIN_COPIES, REMAP_MAX_COPIES);
      else
        fo.copies = (uint32_t) v;
    }
    else if (a[0] == '-' && a[1])
      return usage_error ("unknown option %s", a);
    else if (npos == 0 && !origin_path)
      origin_path = a, npos++;
    else if (npos <= 1 && !spare_path)
      spare_path = a, npos = 2;
    else
      return usage_error ("unexpected argument \"%s\"", a);
  }
  if (control_path)
    return usage_error ("%s", "format works on the files only, not through "
                        "--control");
  if (!origin_path || !spare_path)
    return usage_error ("%s", "usage: format ORIGIN SPARE [--unit N] "
                        "[--strategy S] [--copies N] [--sparse] [--force]");
  r = remap_backend_open (origin_path, REMAP_FILE_READONLY, &o, &err);
  if (r == 0)
    r = remap_backend_open (spare_path, 0, &s, &err);
  if (r == 0 && s->size == 0)
    r = remap_set_error (&err, -EINVAL, "spare %s is empty: give it a size "
                         "first (truncate -s 64M %s)", spare_path, spare_path);
  if (r == 0 && (r = remap_backend_lock (s, &err)) == 0)
    r = remap_backend_lock (o, &err);
  if (r == 0)
    r = remap_layout_compute (s->size, fo.unit ? fo.unit : REMAP_DEFAULT_UNIT,
                              fo.strategy, fo.copies, &l, &err);
  if (r == 0) {
    if (realpath (origin_path, abs_origin))
      fo.origin_label = abs_origin;
    else
      fo.origin_label = origin_path;
    r = remap_format (o, s, &fo, &err);
  }
  /* What the spare's space is now, for the last line. */
  const char *space = remap_is_nbd_uri (spare_path)
    ? "an NBD export needs no preallocation"
    : s && s->is_block_device ? "a block device needs no preallocation"
    : fo.sparse ? "left sparse (--sparse): it takes host space as it fills"
    : "allocated in full, so it cannot run out of host space";
  remap_backend_close (o);
  remap_backend_close (s);
  if (r) {
    msg ("%s", err.msg[0] ? err.msg : strerror (-r));
    if (r == -EWOULDBLOCK)
      fprintf (stderr, "%s: a running server holds the files; stop it "
               "before formatting\n", progname);
    else if (r == -EEXIST)
      fprintf (stderr, "%s: formatting would lose its table: use remapctl "
               "check/repair, or --force to overwrite it\n", progname);
    return r == -EINVAL ? EXIT_USAGE : exit_code (r);
  }
  printf ("formatted %s for origin %s: unit %" PRIu32 " bytes, strategy %s, "
          "%" PRIu32 " copies, %" PRIu64 " usable spare units; %s\n",
          spare_path, fo.origin_label, l.unit,
          remap_strategy_name (l.strategy), l.copies, l.usable_units,
          space);
  return EXIT_OK;
}

/* ---- dump, check, repair --------------------------------------------- */

static const char *
verdict_name (enum remap_verdict v)
{
  switch (v) {
  case REMAP_CLEAN: return "clean";
  case REMAP_REPAIRABLE: return "repairable";
  default: return "unusable";
  }
}

/* check's exit code for a verdict. */
static int
verdict_exit (enum remap_verdict v)
{
  return v == REMAP_CLEAN ? EXIT_OK : v == REMAP_REPAIRABLE ? EXIT_FAIL
    : EXIT_UNUSABLE;
}

static int
inspect_spare (struct remap_inspect *in)
{
  struct remap_error err = { 0 };
  struct remap_backend *s;
  int r = remap_backend_open (spare_path, REMAP_FILE_READONLY, &s, &err);

  if (r == 0) {
    r = remap_inspect (s, in, &err);
    remap_backend_close (s);
  }
  if (r)
    msg ("%s", err.msg[0] ? err.msg : strerror (-r));
  return r;
}

static bool
copy_valid (const struct remap_inspect *in, uint32_t i)
{
  const struct remap_copy_status *c = &in->copy[i];
  return c->sb_valid && c->blocks_damaged == 0 && c->blocks_stale == 0;
}

static void
render_inspect (const struct remap_inspect *in, bool json,
                struct remap_buf *out)
{
  const struct remap_layout *l = &in->info.layout;
  char uuid[37];

  remap_uuid_format (in->info.uuid, uuid);
  if (json) {
    struct json_object *o = json_object_new_object ();
    json_object_object_add (o, "spare", json_object_new_string (spare_path));
    json_object_object_add (o, "found", json_object_new_boolean (in->found));
    json_object_object_add (o, "verdict", json_object_new_string
                            (verdict_name (in->verdict)));
    json_object_object_add (o, "exit", json_object_new_int
                            (verdict_exit (in->verdict)));
    json_object_object_add (o, "reason", json_object_new_string (in->reason));
    if (in->found) {
      struct json_object *copies = json_object_new_array ();
#define U64(k, v) json_object_object_add (o, k, json_object_new_uint64 (v))
      json_object_object_add (o, "uuid", json_object_new_string (uuid));
      json_object_object_add (o, "origin_label", json_object_new_string
                              (in->info.origin_label));
      U64 ("origin_size", in->info.origin_size);
      U64 ("spare_size", in->info.spare_size);
      U64 ("unit", l->unit);
      json_object_object_add (o, "strategy", json_object_new_string
                              (remap_strategy_name (l->strategy)));
      U64 ("copies", l->copies);
      U64 ("table_blocks", l->table_blocks);
      U64 ("generation", in->generation);
      U64 ("blocks_lost", in->blocks_lost);
#undef U64
      for (uint32_t i = 0; i < l->copies; i++) {
        const struct remap_copy_status *c = &in->copy[i];
        struct json_object *x = json_object_new_object ();
#define U64(k, v) json_object_object_add (x, k, json_object_new_uint64 (v))
        U64 ("index", i);
        U64 ("first_unit", c->first_unit);
        json_object_object_add (x, "superblock_valid",
                                json_object_new_boolean (c->sb_valid));
        U64 ("blocks_current", c->blocks_current);
        U64 ("blocks_stale", c->blocks_stale);
        U64 ("blocks_damaged", c->blocks_damaged);
        U64 ("max_generation", c->max_generation);
#undef U64
        json_object_object_add (x, "valid", json_object_new_boolean
                                (copy_valid (in, i)));
        json_object_array_add (copies, x);
      }
      json_object_object_add (o, "copy", copies);
    }
    const char *t = json_object_to_json_string_ext
      (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    remap_buf_printf (out, "%s\n", t ? t : "{}");
    json_object_put (o);
    return;
  }
  remap_buf_printf (out, "spare:        %s\n", spare_path);
  remap_buf_printf (out, "verdict:      %s%s%s\n", verdict_name (in->verdict),
                    in->reason[0] ? ": " : "", in->reason);
  if (!in->found)
    return;
  remap_buf_printf (out, "uuid:         %s\n", uuid);
  remap_buf_printf (out, "origin:       %s (%" PRIu64 " bytes at format)\n",
                    in->info.origin_label, in->info.origin_size);
  remap_buf_printf (out, "geometry:     unit %" PRIu32 " bytes, %" PRIu64
                    " spare units, strategy %s, %" PRIu32 " copies, %" PRIu64
                    " table block(s) per copy\n", l->unit, l->spare_units,
                    remap_strategy_name (l->strategy), l->copies,
                    l->table_blocks);
  remap_buf_printf (out, "generation:   %" PRIu64 " (newest valid), %" PRIu64
                    " block(s) lost in every copy\n", in->generation,
                    in->blocks_lost);
  remap_buf_printf (out, "%4s  %10s  %10s  %8s  %6s  %8s  %14s  %s\n", "copy",
                    "first_unit", "superblock", "current", "stale", "damaged",
                    "max_generation", "valid");
  for (uint32_t i = 0; i < l->copies; i++) {
    const struct remap_copy_status *c = &in->copy[i];
    remap_buf_printf (out, "%4" PRIu32 "  %10" PRIu64 "  %10s  %8" PRIu64
                      "  %6" PRIu64 "  %8" PRIu64 "  %14" PRIu64 "  %s\n", i,
                      c->first_unit, c->sb_valid ? "valid" : "INVALID",
                      c->blocks_current, c->blocks_stale, c->blocks_damaged,
                      c->max_generation, copy_valid (in, i) ? "yes" : "NO");
  }
}

static int
parse_spare_only (bool *json, bool allow_origin)
{
  int npos = 0;
  for (int i = 0; i < nrest; i++) {
    const char *a = rest[i];
    if (strcmp (a, "--json") == 0)
      *json = true;
    else if (a[0] == '-' && a[1])
      return usage_error ("unknown option %s", a);
    else if (npos == 0 && !spare_path)
      spare_path = a, npos++;
    else if (allow_origin && npos <= 1 && !origin_path)
      origin_path = a, npos = 2;
    else
      return usage_error ("unexpected argument \"%s\"", a);
  }
  if (control_path)
    return usage_error ("%s", "this command reads the spare's metadata "
                        "copies directly; it has no --control form (use "
                        "status --control SOCK for a running server)");
  if (!spare_path)
    return usage_error ("%s", "the spare is required: SPARE or --spare "
                        "SPARE");
  return EXIT_OK;
}

static int
do_dump_check (bool check)
{
  struct remap_inspect *in = calloc (1, sizeof *in);
  struct remap_buf out = { 0 };
  bool json = false;
  int r;

  if (!in)
    return EXIT_FAIL;
  if ((r = parse_spare_only (&json, false)) != EXIT_OK) {
    free (in);
    return r;
  }
  if (inspect_spare (in)) {
    free (in);
    /* check: a spare that cannot be read is unusable from here. */
    return check ? EXIT_UNUSABLE : EXIT_FAIL;
  }
  if (check && !json)
    remap_buf_printf (&out, "%s: %s%s%s\n", spare_path,
                      verdict_name (in->verdict), in->reason[0] ? ": " : "",
                      in->reason);
  else
    render_inspect (in, json, &out);
  fwrite (out.data, 1, out.len, stdout);
  remap_buf_free (&out);
  r = check ? verdict_exit (in->verdict) : EXIT_OK;
  free (in);
  return r;
}

static int
do_repair (void)
{
  struct remap_inspect *in = calloc (1, sizeof *in);
  struct remap_engine *e = NULL;
  struct remap_counters c;
  bool json = false;
  int r;

  if (!in)
    return EXIT_FAIL;
  if ((r = parse_spare_only (&json, true)) != EXIT_OK)
    goto out;
  if (json) {
    r = usage_error ("%s", "repair has no --json; use check --json after");
    goto out;
  }
  if (inspect_spare (in)) {
    r = EXIT_FAIL;
    goto out;
  }
  printf ("before: %s%s%s\n", verdict_name (in->verdict),
          in->reason[0] ? ": " : "", in->reason);
  if (in->verdict == REMAP_UNUSABLE) {
    msg ("cannot repair: %s", in->reason);
    r = EXIT_UNUSABLE;
    goto out;
  }
  if ((r = open_engine (true, false, &e)) != EXIT_OK)
    goto out;
  remap_get_counters (e, &c);
  r = remap_close (e);
  if (r < 0) {
    msg ("final flush failed: %s", strerror (-r));
    r = EXIT_FAIL;
    goto out;
  }
  printf ("repaired: %" PRIu64 " metadata block(s) rewritten\n",
          c.repaired_blocks);
  if (inspect_spare (in)) {
    r = EXIT_FAIL;
    goto out;
  }
  printf ("after:  %s%s%s\n", verdict_name (in->verdict),
          in->reason[0] ? ": " : "", in->reason);
  r = verdict_exit (in->verdict);
 out:
  free (in);
  return r;
}

/* ---- rebind ---------------------------------------------------------- */

/* remapctl rebind -s SPARE -o ORIGIN: record ORIGIN's identity. */
static int
do_rebind (void)
{
  struct remap_error err = { 0 };
  struct remap_backend *o = NULL, *s = NULL;
  char abs_origin[PATH_MAX];
  const char *opath;
  int r;

  if (control_path)
    return usage_error ("%s", "rebind works on the files only: stop the "
                        "server, then remapctl rebind -s SPARE -o ORIGIN");
  for (int i = 0; i < nrest; i++) {
    if (rest[i][0] == '-')
      return usage_error ("unknown option \"%s\"", rest[i]);
    if (!spare_path)
      spare_path = rest[i];
    else if (!origin_path)
      origin_path = rest[i];
    else
      return usage_error ("unexpected argument \"%s\"", rest[i]);
  }
  if (!spare_path || !origin_path)
    return usage_error ("%s", "rebind needs both: -s SPARE -o ORIGIN");
  /* The label, as format records it: the absolute path of a file. */
  opath = origin_path;
  if (!remap_is_nbd_uri (origin_path) && realpath (origin_path, abs_origin))
    opath = abs_origin;
  r = remap_backend_open (opath, REMAP_FILE_READONLY, &o, &err);
  if (r == 0)
    r = remap_backend_open (spare_path, 0, &s, &err);
  if (r == 0)
    r = remap_rebind (o, s, &err);
  if (r == 0) {
    printf ("spare %s now belongs to origin %s, identity %s\n", spare_path,
            opath, o->identity[0] ? o->identity : "(none: its backend "
            "cannot tell one; checked by size only)");
    r = remap_backend_flush (s);
    if (r)
      remap_set_error (&err, r, "final flush of %s failed: %s", spare_path,
                       strerror (-r));
  }
  remap_backend_close (o);
  remap_backend_close (s);
  if (r) {
    report_open_error (r, &err, "rebind");
    return exit_code (r);
  }
  return EXIT_OK;
}

/* ---- import ---------------------------------------------------------- */

static int
read_all (const char *path, char **data, size_t *len)
{
  FILE *f = strcmp (path, "-") == 0 ? stdin : fopen (path, "r");
  struct remap_buf b = { 0 };
  char buf[65536];
  size_t n;

  if (!f)
    return -errno;
  while ((n = fread (buf, 1, sizeof buf, f)) > 0)
    remap_buf_append (&b, buf, n);
  int bad = ferror (f);
  if (f != stdin)
    fclose (f);
  if (bad || b.failed) {
    remap_buf_free (&b);
    return bad ? -EIO : -ENOMEM;
  }
  *data = b.data;
  *len = b.len;
  return 0;
}

/* The parsed list as the argument of the engine command "import"
 * (admin/cmd_import.c): "0xOFF+0xLEN,..." (malloc'ed), or NULL when out
 * of memory. */
static char *
extents_arg (const struct remap_extents *x)
{
  struct remap_buf b = { 0 };

  for (size_t i = 0; i < x->n; i++)
    remap_buf_printf (&b, "%s0x%" PRIx64 "+0x%" PRIx64, i ? "," : "",
                      x->v[i].off, x->v[i].len);
  if (b.failed || !b.data) {
    remap_buf_free (&b);
    return NULL;
  }
  return b.data;
}

static int
parse_list (const char *format, const char *file, const char *text,
            size_t len, uint64_t bs, bool nontried, struct remap_extents *x,
            struct remap_error *err)
{
  uint64_t used = 0;
  int r;

  if (strcmp (format, "badblocks") == 0)
    return remap_parse_badblocks (text, len, file, bs, x, err);
  if (strcmp (format, "ddrescue") == 0)
    return remap_parse_ddrescue (text, len, file, nontried, x, err);
  r = remap_parse_smartctl (text, len, file, bs, x, &used, err);
  if (r == 0)
    fprintf (stderr, "%s: %s: %s: %zu bad LBA range(s), in sectors of %"
             PRIu64 " bytes%s\n", progname, cmd, file, x->n, used,
             bs ? " (--block-size)" : "");
  return r;
}

/* A file that names no bad range: nothing to send. */
static int
import_nothing (const char *file, bool pending, bool json)
{
  if (json) {
    struct json_object *o = json_object_new_object ();
    json_object_object_add (o, "command", json_object_new_string ("import"));
    json_object_object_add (o, "mode", json_object_new_string
                            (pending ? "pending" : "remap"));
    json_object_object_add (o, "ranges", json_object_new_uint64 (0));
    json_object_object_add (o, "units", json_object_new_uint64 (0));
    json_object_object_add (o, "changed", json_object_new_uint64 (0));
    printf ("%s\n", json_object_to_json_string_ext (o,
                                                    JSON_C_TO_STRING_PLAIN));
    json_object_put (o);
  }
  else
    printf ("imported 0 bad range(s) from %s: nothing to do\n", file);
  return fflush (stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

static int
do_import (void)
{
  const char *file = NULL, *format = NULL;
  uint64_t bs = 0;
  bool nontried = false, pending = false, remap = false, json = false;
  struct remap_extents x = { 0 };
  struct remap_engine *e = NULL;
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  char *text = NULL, *list;
  size_t len = 0;
  int r;

  for (int i = 0; i < nrest; i++) {
    const char *a = rest[i];
    if (strcmp (a, "--format") == 0 || strcmp (a, "-f") == 0) {
      if (++i == nrest)
        return usage_error ("%s needs a value", a);
      format = rest[i];
    }
    else if (strcmp (a, "--block-size") == 0 || strcmp (a, "-b") == 0) {
      if (++i == nrest)
        return usage_error ("%s needs a value", a);
      if (remap_parse_u64 (rest[i], REMAP_NUM_SUFFIX, a, &bs, &err)
          || bs == 0)
        return usage_error ("%s", err.msg[0] ? err.msg
                            : "--block-size must be above 0");
    }
    else if (strcmp (a, "--include-nontried") == 0)
      nontried = true;
    else if (strcmp (a, "--pending") == 0)
      pending = true;
    else if (strcmp (a, "--remap") == 0)
      remap = true;
    else if (strcmp (a, "--json") == 0)
      json = true;
    else if (a[0] == '-' && a[1])
      return usage_error ("unknown option %s", a);
    else if (!file)
      file = a;
    else
      return usage_error ("unexpected argument \"%s\"", a);
  }
  if (!file || !format)
    return usage_error ("%s", "usage: import FILE --format badblocks "
                        "--block-size N | --format ddrescue "
                        "[--include-nontried] | --format smartctl "
                        "[--block-size N] [--pending | --remap]");
  if (pending && remap)
    return usage_error ("%s", "give --pending or --remap, not both");
  if (strcmp (format, "badblocks") == 0) {
    if (!bs)
      return usage_error ("%s", "--format badblocks needs --block-size N "
                          "(the -b of badblocks, or the filesystem block "
                          "size)");
  }
  else if (strcmp (format, "ddrescue") == 0) {
    if (bs)
      return usage_error ("%s", "--block-size applies to --format badblocks "
                          "and smartctl only");
  }
  else if (strcmp (format, "smartctl") == 0)
    pending = !remap;           /* a report is a suspicion: pending first */
  else
    return usage_error ("unknown format \"%s\" (badblocks, ddrescue or "
                        "smartctl)", format);
  if (nontried && strcmp (format, "ddrescue") != 0)
    return usage_error ("%s", "--include-nontried applies to ddrescue "
                        "mapfiles only");
  if ((r = read_all (file, &text, &len)) != 0) {
    msg ("%s: %s", file, strerror (-r));
    return EXIT_FAIL;
  }
  /* The whole file is checked before anything is opened or changed. */
  r = parse_list (format, file, text, len, bs, nontried, &x, &err);
  free (text);
  if (r) {
    msg ("%s", err.msg);
    remap_extents_free (&x);
    return r == -EINVAL ? EXIT_FAIL : exit_code (r);
  }
  if (x.n == 0) {
    remap_extents_free (&x);
    return import_nothing (file, pending, json);
  }
  list = extents_arg (&x);
  remap_extents_free (&x);
  if (!list) {
    msg ("out of memory");
    return EXIT_FAIL;
  }
  char *argv[] = { (char *) "import", list, NULL, NULL, NULL };
  int argc = 2;
  if (pending)
    argv[argc++] = (char *) "--pending";
  if (json)
    argv[argc++] = (char *) "--json";
  /* Online, the list travels in one request line (at most
   * REMAP_CONTROL_MAX_LINE bytes): all or nothing, never split. */
  size_t line = 0;
  for (int i = 0; i < argc; i++)
    line += strlen (argv[i]) + 1;       /* a space or the newline */
  if (control_path && line > REMAP_CONTROL_MAX_LINE) {
    msg ("%s: the list has too many separate ranges for one control "
         "request (%zu bytes, at most %u): stop the server and import "
         "offline (-s SPARE -o ORIGIN), or split the file", file, line,
         REMAP_CONTROL_MAX_LINE);
    free (list);
    return EXIT_FAIL;
  }
  if (!control_path && (r = open_engine (true, true, &e)) != EXIT_OK) {
    free (list);
    return r;
  }
  r = exec_stream (e, argc, argv, &err);
  free (list);
  if (r && !json)
    remap_error_prefix (&err, r, "%s: ", file);
  r = close_and_finish (e, r, &out, &err);
  /* The file was checked whole before: a list that does not fit the
   * origin or the spare is a failed import (1), not a usage error. */
  return r == EXIT_USAGE ? EXIT_FAIL : r;
}

/* ---- scan ------------------------------------------------------------ */

static int
do_scan (void)
{
  struct remap_engine *e = NULL;
  int r;

  origin_readonly = true;
  if (!control_path && (r = open_engine (true, true, &e)) != EXIT_OK)
    return r;
  r = scan_main (e, control_path, nrest, rest);
  if (e && remap_close (e) < 0 && r == EXIT_OK) {
    msg ("final flush failed");
    r = EXIT_FAIL;
  }
  return r;
}

/* ---- the command table ------------------------------------------------ */

static int do_dump (void) { return do_dump_check (false); }
static int do_check (void) { return do_dump_check (true); }

/* What only remapctl does; the engine commands come from the admin
 * library's remap_commands[].  A new tool command: a function and a row. */
static const struct tool_command tool_commands[] = {
  { "format", "ORIGIN SPARE [--unit N] [--strategy S] [--copies N] "
    "[--sparse] [--force]", "write a new spare (a file spare is allocated "
    "in full, unless --sparse)", do_format, false },
  { "dump", "SPARE [--json]", "every metadata copy, generation, validity",
    do_dump, false },
  { "check", "SPARE [--json]", "exit 0 clean, 1 repairable, 6 unusable",
    do_check, false },
  { "repair", "SPARE [ORIGIN]", "rewrite damaged copies from the best one",
    do_repair, false },
  { "rebind", "-s SPARE -o ORIGIN", "record ORIGIN's identity in the spare "
    "(the same data on another medium)", do_rebind, false },
  { "import", "FILE --format badblocks|ddrescue|smartctl [--block-size N] "
    "[--include-nontried] [--pending|--remap] [--json]", "remap (or mark "
    "pending) what a list names, checked whole first (a smartctl -j report: "
    "pending unless --remap)", do_import, true },
  { "scan", "[LBA [COUNT]] [-u] [--rate R] [--chunk N] [--state FILE "
    "[--resume]] [--json] [--progress|--no-progress]", "paced surface scan "
    "of the origin; failing units become pending", do_scan, true },
  { "map", "[SPARE [ORIGIN]] [--svg FILE] [--columns N] [--rows N] "
    "[--color|--no-color]", "a picture of the origin: remapped, pending and "
    "lost units", do_map, true },
  { NULL, NULL, NULL, NULL, false },
};

static const struct tool_command *
tool_find (const char *name)
{
  for (const struct tool_command *t = tool_commands; t->name; t++)
    if (strcmp (name, t->name) == 0)
      return t;
  return NULL;
}

/* ---- main ------------------------------------------------------------ */

static int
take_value (int argc, char **argv, int *i, const char **dst)
{
  const char *a = argv[*i], *eq = strchr (a, '=');
  if (a[1] == '-' && eq) {
    *dst = eq + 1;
    return 0;
  }
  if (*i + 1 >= argc)
    return -1;
  *dst = argv[++*i];
  return 0;
}

static bool
is_opt (const char *a, const char *s, const char *l)
{
  size_t n = strlen (l);
  return strcmp (a, s) == 0 || strcmp (a, l) == 0
    || (strncmp (a, l, n) == 0 && a[n] == '=');
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    usage (stderr);
    return EXIT_USAGE;
  }
  if (strcmp (argv[1], "-h") == 0 || strcmp (argv[1], "--help") == 0
      || strcmp (argv[1], "help") == 0) {
    usage (stdout);
    return EXIT_OK;
  }
  if (strcmp (argv[1], "--version") == 0 || strcmp (argv[1], "-V") == 0) {
    printf ("remapctl %s\n", REMAP_VERSION_STRING);
    return EXIT_OK;
  }
  cmd = argv[1];
  rest = calloc (argc, sizeof *rest);
  if (!rest)
    return EXIT_FAIL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char **dst = NULL;
    if (is_opt (a, "-s", "--spare"))
      dst = &spare_path;
    else if (is_opt (a, "-o", "--origin"))
      dst = &origin_path;
    else if (is_opt (a, "-c", "--control"))
      dst = &control_path;
    else if (strcmp (a, "--accept-origin-change") == 0) {
      accept_origin_change = true;
      continue;
    }
    else if (strcmp (a, "-h") == 0 || strcmp (a, "--help") == 0) {
      usage (stdout);
      return EXIT_OK;
    }
    if (!dst) {
      rest[nrest++] = argv[i];
      continue;
    }
    if (take_value (argc, argv, &i, dst) == -1)
      return usage_error ("%s needs a value", a);
  }
  if (control_path && (spare_path || origin_path))
    return usage_error ("%s", "give either --control SOCK (online) or the "
                        "files (offline), not both");

  if (strcmp (cmd, "status") == 0 && has_arg ("--prometheus"))
    return do_prometheus ();    /* a view of status (view.c) */
  const struct tool_command *t = tool_find (cmd);
  if (t)
    return t->fn ();
  if (remap_command_find (cmd) && strcmp (cmd, "help") != 0)
    return do_exec ();
  return usage_error ("unknown command \"%s\"", cmd);
}
