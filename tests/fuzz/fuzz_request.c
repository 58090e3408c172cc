/* Fuzz target: one control request, as the control socket gets it, run by
 * the admin library on a small mem engine (admin/commands.c and the
 * handlers).  Properties checked beyond "no crash, no sanitizer report":
 *
 *   - a request is accepted or refused with a message, never silently;
 *   - every reply to --json that succeeds is one JSON value that json-c
 *     reads back strictly (remap_json_parse), ending in one newline;
 *   - the reply to a usage error (-EINVAL) is empty: nothing was done.
 *
 * The engine lives across inputs (its table fills and empties as inputs
 * remap and unmap), like a long-running server's.  Seeds in
 * tests/fuzz/corpus/fuzz_request/.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin.h"
#include "remap/remap.h"

static struct remap_engine *e;

static void
setup (void)
{
  struct remap_backend *o, *s;
  struct remap_format_opts fo;
  struct remap_open_opts oo = { .no_lock = true };
  struct remap_error err = { 0 };

  if (remap_mem_create (64 * 4096, &o) || remap_mem_create (256 * 1024, &s))
    abort ();
  remap_format_opts_init (&fo);
  fo.unit = 4096;
  fo.origin_label = "fuzz";
  if (remap_format (o, s, &fo, &err) || remap_open (o, s, &oo, &e, &err)) {
    fprintf (stderr, "fuzz_request: setup: %s\n", err.msg);
    abort ();
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char line[REMAP_CONTROL_MAX_LINE + 1];
  char *argv[REMAP_CONTROL_MAX_ARGS];
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  bool json = false;
  int argc, r;

  if (!e)
    setup ();
  if (size > REMAP_CONTROL_MAX_LINE)
    size = REMAP_CONTROL_MAX_LINE;
  memcpy (line, data, size);
  line[size] = '\0';
  argc = remap_control_split (line, argv, REMAP_CONTROL_MAX_ARGS);
  if (argc <= 0)
    return 0;
  /* Keep the steps few: a scan or range is at most the 64-unit origin,
   * spare-retest at most the spare. */
  for (int i = 0; i < argc; i++)
    json |= strcmp (argv[i], "--json") == 0;
  r = remap_control_exec (e, argc, argv, &out, &err);
  if (r && err.msg[0] == '\0') {
    fprintf (stderr, "fuzz_request: error %d without a message\n", r);
    abort ();
  }
  if (r == -EINVAL && out.len) {
    fprintf (stderr, "fuzz_request: a usage error printed: %s\n", out.data);
    abort ();
  }
  if (r == 0 && json) {
    struct json_object *o = remap_json_parse (out.data, out.len);
    if (!o || out.len == 0 || out.data[out.len - 1] != '\n'
        || memchr (out.data, '\n', out.len) != out.data + out.len - 1) {
      fprintf (stderr, "fuzz_request: not one JSON line: %s\n", out.data);
      abort ();
    }
    json_object_put (o);
  }
  remap_buf_free (&out);
  return 0;
}
