/* remap: the text form of fault rules (rehearsal, SPEC 4.4).
 *
 * One syntax serves the plugin's fail= parameter, its watched rule file
 * and the tests: "OPS:OFFSET[+LENGTH][,key=value]...".  Pure parsing, no
 * I/O: the caller reads the file and hands the text over.  Every error
 * names the offending text (and line, for files) and what is accepted.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"

/* Parse a size: decimal digits and an optional suffix.  Returns the
 * position after it, or NULL. */
static const char *
parse_size (const char *p, uint64_t *out)
{
  if (!isdigit ((unsigned char) *p))
    return NULL;
  char *end;
  errno = 0;
  unsigned long long v = strtoull (p, &end, 10);
  if (errno)
    return NULL;
  unsigned shift = 0;
  switch (*end) {
  case 's': case 'S': shift = 9; end++; break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  case 'b': case 'B': end++; break;
  default: break;
  }
  if (shift && v > (UINT64_MAX >> shift))
    return NULL;
  *out = (uint64_t) v << shift;
  return end;
}

static int
bad (struct remap_error *err, const char *spec, const char *why)
{
  return remap_set_error (err, -EINVAL,
                          "fault rule '%s': %s (expected "
                          "OPS:OFFSET[+LENGTH][,after=N][,times=N]"
                          "[,error=ERRNO] with OPS read, write, rw, flush or "
                          "extents "
                          "and ERRNO a name such as EIO, ENODATA, ENOSPC, "
                          "ENOTCONN, EAGAIN or EPERM, e.g. "
                          "write:1m+4k,after=10)",
                          spec, why);
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
remap_fault_parse_rules (const char *text,
                         struct remap_fault_rule rules[REMAP_FAULT_MAX_RULES],
                         size_t *n, struct remap_error *err)
{
  size_t count = 0, line = 0;
  *n = 0;
  for (const char *p = text; *p;) {
    const char *eol = strchr (p, '\n');
    size_t len = eol ? (size_t) (eol - p) : strlen (p);
    char buf[256];
    line++;
    /* trim comments and blanks */
    size_t a = 0, b = len;
    const char *hash = memchr (p, '#', len);
    if (hash)
      b = hash - p;
    while (a < b && isspace ((unsigned char) p[a]))
      a++;
    while (b > a && isspace ((unsigned char) p[b - 1]))
      b--;
    if (b > a) {
      if (b - a >= sizeof buf)
        return remap_set_error (err, -EINVAL, "fault rules, line %zu: line "
                                "too long", line);
      if (count == REMAP_FAULT_MAX_RULES)
        return remap_set_error (err, -EINVAL, "fault rules, line %zu: more "
                                "than %d rules", line, REMAP_FAULT_MAX_RULES);
      memcpy (buf, p + a, b - a);
      buf[b - a] = '\0';
      int r = remap_fault_parse_rule (buf, &rules[count], err);
      if (r)
        return remap_error_prefix (err, r, "fault rules, line %zu: ", line);
      count++;
    }
    p += len + (eol != NULL);
  }
  *n = count;
  return 0;
}
