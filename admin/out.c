/* remap admin: output buffers and sinks, and the JSON helpers (json-c).
 *
 * A sink gathers a command's output.  In memory it simply grows; streamed
 * it holds at most REMAP_OUT_CHUNK bytes and hands them to its flush
 * function when full, so a reply of megabytes costs 64 KiB.  The first
 * error sticks: once a flush failed (client gone, send timed out) later
 * writes are dropped and remap_out_check tells the command to stop.
 *
 * JSON is written and read with json-c only: objects are built with it
 * and printed compact on one line; replies are parsed with it and read by
 * dotted paths.  No JSON is ever searched with strstr.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "admin.h"

/* ---- buffers --------------------------------------------------------- */

static int
buf_reserve (struct remap_buf *b, size_t extra)
{
  size_t need, cap;
  char *p;

  if (b->failed)
    return -ENOMEM;
  need = b->len + extra + 1;
  if (need < extra) {
    b->failed = true;
    return -ENOMEM;
  }
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
  struct json_object *o = json_object_new_string (s);
  const char *t;
  int r;

  if (!o) {
    b->failed = true;
    return -ENOMEM;
  }
  t = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN
                                      | JSON_C_TO_STRING_NOSLASHESCAPE);
  r = t ? remap_buf_append (b, t, strlen (t)) : -ENOMEM;
  json_object_put (o);
  return r;
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

/* ---- sinks ------------------------------------------------------------- */

void
remap_out_memory (struct remap_out *o, struct remap_buf *mem)
{
  memset (o, 0, sizeof *o);
  o->mem = mem;
}

void
remap_out_stream (struct remap_out *o,
                  int (*flush) (void *, const char *, size_t),
                  int (*cancelled) (void *), void *opaque)
{
  memset (o, 0, sizeof *o);
  o->flush = flush;
  o->cancelled = cancelled;
  o->opaque = opaque;
}

static int
out_flush (struct remap_out *o)
{
  if (o->err || o->b.len == 0)
    return o->err;
  int r = o->flush (o->opaque, o->b.data, o->b.len);
  remap_buf_reset (&o->b);
  if (r)
    o->err = r;
  return o->err;
}

int
remap_out_write (struct remap_out *o, const char *p, size_t n)
{
  if (o->err)
    return o->err;
  if (o->mem) {
    if (remap_buf_append (o->mem, p, n))
      o->err = -ENOMEM;
    return o->err;
  }
  while (n) {
    size_t room = REMAP_OUT_CHUNK - o->b.len;
    size_t k = n < room ? n : room;
    if (remap_buf_append (&o->b, p, k)) {
      o->err = -ENOMEM;
      return o->err;
    }
    p += k;
    n -= k;
    if (o->b.len == REMAP_OUT_CHUNK && out_flush (o))
      return o->err;
  }
  return 0;
}

int
remap_out_printf (struct remap_out *o, const char *fmt, ...)
{
  char small[512];
  va_list ap;
  int n;

  if (o->err)
    return o->err;
  va_start (ap, fmt);
  n = vsnprintf (small, sizeof small, fmt, ap);
  va_end (ap);
  if (n < 0)
    return o->err = -EINVAL;
  if ((size_t) n < sizeof small)
    return remap_out_write (o, small, (size_t) n);
  char *big = malloc ((size_t) n + 1);
  if (!big)
    return o->err = -ENOMEM;
  va_start (ap, fmt);
  vsnprintf (big, (size_t) n + 1, fmt, ap);
  va_end (ap);
  int r = remap_out_write (o, big, (size_t) n);
  free (big);
  return r;
}

int
remap_out_json (struct remap_out *o, struct json_object *obj)
{
  const char *t = json_object_to_json_string_ext (obj,
                                                  JSON_C_TO_STRING_PLAIN
                                                  | JSON_C_TO_STRING_NOSLASHESCAPE);
  if (!t)
    return o->err ? o->err : (o->err = -ENOMEM);
  return remap_out_write (o, t, strlen (t));
}

int
remap_out_check (struct remap_out *o)
{
  if (o->err || o->stop)
    return o->err ? o->err : o->stop;
  if (o->cancelled)
    o->stop = o->cancelled (o->opaque);
  return o->stop;
}

int
remap_out_finish (struct remap_out *o)
{
  if (!o->mem)
    out_flush (o);
  remap_buf_free (&o->b);
  return o->err;
}

/* ---- reading JSON ------------------------------------------------------ */

struct json_object *
remap_json_parse (const char *text, size_t len)
{
  struct json_tokener *tok;
  struct json_object *o;
  size_t used;

  if (!text || len > (size_t) INT32_MAX)
    return NULL;
  tok = json_tokener_new ();
  if (!tok)
    return NULL;
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT);
  o = json_tokener_parse_ex (tok, text, (int) len);
  used = json_tokener_get_parse_end (tok);
  if (json_tokener_get_error (tok) != json_tokener_success) {
    json_object_put (o);
    o = NULL;
  }
  json_tokener_free (tok);
  /* Only white space may follow the value. */
  for (; o && used < len; used++)
    if (!strchr (" \t\r\n", text[used])) {
      json_object_put (o);
      o = NULL;
    }
  return o;
}

/* The member at a dotted path, or NULL. */
static struct json_object *
at_path (struct json_object *o, const char *path)
{
  char key[128];

  while (o && *path) {
    size_t n = strcspn (path, ".");
    if (n >= sizeof key || !json_object_is_type (o, json_type_object))
      return NULL;
    memcpy (key, path, n);
    key[n] = '\0';
    if (!json_object_object_get_ex (o, key, &o))
      return NULL;
    path += n + (path[n] == '.');
  }
  return o;
}

bool
remap_json_u64 (struct json_object *o, const char *path, uint64_t *v)
{
  struct json_object *x = at_path (o, path);

  if (!x || !json_object_is_type (x, json_type_int))
    return false;
  if (json_object_get_int64 (x) < 0)
    return false;
  errno = 0;
  *v = json_object_get_uint64 (x);
  return errno == 0;
}

const char *
remap_json_str (struct json_object *o, const char *path)
{
  struct json_object *x = at_path (o, path);
  return x && json_object_is_type (x, json_type_string)
    ? json_object_get_string (x) : NULL;
}

struct json_object *
remap_json_array (struct json_object *o, const char *path)
{
  struct json_object *x = at_path (o, path);
  return x && json_object_is_type (x, json_type_array) ? x : NULL;
}
