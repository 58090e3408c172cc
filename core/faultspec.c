/* remap: the text form of fault rules (rehearsal, SPEC 4.4).
 *
 * One syntax serves the plugin's fail= parameter, its watched rule file
 * and the tests: "OPS:OFFSET[+LENGTH][,key=value]...".  Numbers are
 * remap_scan_u64's (decimal with a suffix, or 0x hex); a rule file is read
 * with remap_lines (NUL and control bytes are errors).  Pure parsing, no
 * I/O: the caller reads the file and hands the text over.  Every error
 * names the offending text (and line, for files) and what is accepted.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"
#include "remap/parse.h"

/* A size at p (remap_scan_u64 with suffixes, up to the next ',', '+' or
 * the end).  Returns the position after it, or NULL. */
static const char *
parse_size (const char *p, uint64_t *out)
{
  const char *q = p;

  if (remap_scan_u64 (&q, p + strlen (p), REMAP_NUM_SUFFIX, out) != 0)
    return NULL;
  return q;
}

static int
bad (struct remap_error *err, const char *spec, const char *why)
{
  char esc[160];

  remap_escape (spec, strlen (spec), esc, sizeof esc);
  return remap_set_error (err, -EINVAL,
                          "fault rule '%s': %s (expected "
                          "OPS:OFFSET[+LENGTH][,after=N][,times=N]"
                          "[,error=ERRNO] with OPS read, write, rw, flush or "
                          "extents "
                          "and ERRNO a name such as EIO, ENODATA, ENOSPC, "
                          "ENOTCONN, EAGAIN or EPERM, e.g. "
                          "write:1m+4k,after=10)",
                          esc, why);
}

int
remap_fault_parse_rule (const char *spec, struct remap_fault_rule *out,
                        struct remap_error *err)
{
  static const struct { const char *name; unsigned ops; } opnames[] = {
    { "read", REMAP_FAULT_READ }, { "write", REMAP_FAULT_WRITE },
    { "rw", REMAP_FAULT_READ | REMAP_FAULT_WRITE },
    { "flush", REMAP_FAULT_FLUSH }, { "extents", REMAP_FAULT_EXTENTS },
  };
  struct remap_fault_rule r = { .len = 512, .err = -EIO };
  const char *colon = strchr (spec, ':');
  const char *p;

  if (!colon)
    return bad (err, spec, "no ':' after the operation");
  for (size_t i = 0; i < sizeof opnames / sizeof opnames[0]; i++)
    if (strlen (opnames[i].name) == (size_t) (colon - spec)
        && strncmp (spec, opnames[i].name, colon - spec) == 0)
      r.ops = opnames[i].ops;
  if (!r.ops)
    return bad (err, spec, "unknown operation");
  if (!(p = parse_size (colon + 1, &r.off)))
    return bad (err, spec, "bad offset");
  if (*p == '+') {
    if (!(p = parse_size (p + 1, &r.len)) || r.len == 0)
      return bad (err, spec, "bad length");
  }
  if (r.off + r.len < r.off)
    return bad (err, spec, "range overflows");
  while (*p == ',') {
    p++;
    const char *eq = strchr (p, '=');
    if (!eq)
      return bad (err, spec, "option without '='");
    size_t klen = eq - p;
    const char *v = eq + 1;
    if (klen == 5 && strncmp (p, "after", 5) == 0)
      p = parse_size (v, &r.after);
    else if (klen == 5 && strncmp (p, "times", 5) == 0)
      p = parse_size (v, &r.times);
    else if (klen == 5 && strncmp (p, "error", 5) == 0) {
      /* Any errno the error classes name (core/errclass.c), so that a
       * rehearsal can fail with every class, not only media errors. */
      size_t n = strcspn (v, ",");
      if ((r.err = remap_errno_from_name (v, n)) == 0)
        return bad (err, spec, "unknown error name");
      p = v + n;
    }
    else
      return bad (err, spec, "unknown option");
    if (!p)
      return bad (err, spec, "bad option value");
  }
  if (*p != '\0')
    return bad (err, spec, "trailing characters");
  *out = r;
  return 0;
}

int
remap_fault_parse_rules (const char *text, size_t len, const char *src,
                         struct remap_fault_rule rules[REMAP_FAULT_MAX_RULES],
                         size_t *n, struct remap_error *err)
{
  struct remap_fault_rule tmp[REMAP_FAULT_MAX_RULES];
  struct remap_lines l;
  size_t count = 0;
  int r;

  *n = 0;
  remap_lines_init (&l, src, text, len);
  while ((r = remap_lines_next (&l, err)) == 1) {
    /* trim comments and blanks */
    size_t a = 0, b = l.len;
    const char *hash = memchr (l.line, '#', l.len);
    char buf[256];
    if (hash)
      b = (size_t) (hash - l.line);
    while (a < b && isspace ((unsigned char) l.line[a]))
      a++;
    while (b > a && isspace ((unsigned char) l.line[b - 1]))
      b--;
    if (b == a)
      continue;
    if (b - a >= sizeof buf)
      return remap_lines_error (&l, err, "line longer than %zu bytes",
                                sizeof buf - 1);
    if (count == REMAP_FAULT_MAX_RULES)
      return remap_lines_error (&l, err, "more than %d rules",
                                REMAP_FAULT_MAX_RULES);
    memcpy (buf, l.line + a, b - a);
    buf[b - a] = '\0';
    r = remap_fault_parse_rule (buf, &tmp[count], err);
    if (r)
      return remap_error_prefix (err, r, "%s%s%lu: ", src ? src : "line ",
                                 src ? ":" : "", l.no);
    count++;
  }
  if (r < 0)
    return r;
  memcpy (rules, tmp, count * sizeof *tmp);
  *n = count;
  return 0;
}
