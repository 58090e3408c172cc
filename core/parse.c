/* remap: numbers, escaped text, lines and unit lists (see
 * include/remap/parse.h).
 *
 * Every check that can overflow is written as a comparison against what
 * is left below 2^64, never as a sum that could wrap.  Nothing is appended
 * to a caller's list until the whole input has been checked, so a bad item
 * anywhere changes nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/parse.h"

static int
hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static unsigned
suffix_shift (char c, bool *known)
{
  static const char letters[] = "bskmgtpe";
  static const unsigned shifts[] = { 0, 9, 10, 20, 30, 40, 50, 60 };
  const char *s = c ? strchr (letters, c | 0x20) : NULL;

  *known = s != NULL && (c | 0x20) >= 'a';
  return *known ? shifts[s - letters] : 0;
}

int
remap_scan_u64 (const char **pp, const char *end, unsigned flags,
                uint64_t *out)
{
  const char *p = *pp;
  unsigned base = 10;
  uint64_t v = 0;
  bool any = false, overflow = false;
  int d;

  if (end - p >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p += 2;
  }
  for (; p < end && (d = hexval (*p)) >= 0 && (unsigned) d < base; p++) {
    if (v > (UINT64_MAX - (unsigned) d) / base)
      overflow = true;
    v = v * base + (unsigned) d;
    any = true;
  }
  if (!any)
    return -EINVAL;
  if (base == 10 && (flags & REMAP_NUM_SUFFIX) && p < end) {
    bool known;
    unsigned shift = suffix_shift (*p, &known);
    if (known) {
      p++;
      /* "4KiB", "4KB" and "4K" are the same (powers of 1024 throughout). */
      if (shift >= 10 && end - p >= 2 && p[0] == 'i' && p[1] == 'B')
        p += 2;
      else if (shift >= 10 && p < end && p[0] == 'B')
        p++;
      if (shift && v > (UINT64_MAX >> shift))
        overflow = true;
      v <<= shift;
    }
  }
  if (overflow)
    return -ERANGE;
  *pp = p;
  *out = v;
  return 0;
}

char *
remap_escape (const char *s, size_t len, char *out, size_t outlen)
{
  size_t o = 0;

  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char) s[i];
    bool plain = c >= 0x20 && c < 0x7f && c != '\\';
    size_t need = plain ? 1 : 4;
    if (o + need + 4 > outlen) {        /* room for "..." and the NUL */
      memcpy (out + o, "...", 3);
      o += 3;
      break;
    }
    if (plain)
      out[o++] = (char) c;
    else
      o += (size_t) snprintf (out + o, outlen - o, "\\x%02x", c);
  }
  out[o] = '\0';
  return out;
}

int
remap_parse_u64 (const char *s, unsigned flags, const char *what,
                 uint64_t *out, struct remap_error *err)
{
  const char *p = s, *end = s + strlen (s);
  char esc[96];
  uint64_t v;
  int r = remap_scan_u64 (&p, end, flags, &v);

  if (r == 0 && p == end) {
    *out = v;
    return 0;
  }
  remap_escape (s, strlen (s), esc, sizeof esc);
  if (r == -ERANGE)
    return remap_set_error (err, -EINVAL, "%s \"%s\": the number is larger "
                            "than 2^64 - 1", what, esc);
  return remap_set_error (err, -EINVAL, "%s \"%s\": not a number (want "
                          "decimal or 0x hexadecimal%s, no sign)", what, esc,
                          flags & REMAP_NUM_SUFFIX
                          ? ", decimal with an optional suffix b, s, k, m, "
                          "g, t, p or e" : "");
}

/* ---- lines ----------------------------------------------------------- */

void
remap_lines_init (struct remap_lines *l, const char *src, const char *text,
                  size_t len)
{
  *l = (struct remap_lines) { .src = src, .p = text, .end = text + len };
}

int
remap_lines_next (struct remap_lines *l, struct remap_error *err)
{
  const char *nl;
  size_t n;

  if (l->p >= l->end)
    return 0;
  nl = memchr (l->p, '\n', (size_t) (l->end - l->p));
  n = (size_t) ((nl ? nl : l->end) - l->p);
  l->line = l->p;
  l->len = n;
  l->no++;
  l->p = nl ? nl + 1 : l->end;
  if (l->len && l->line[l->len - 1] == '\r')
    l->len--;
  for (size_t i = 0; i < l->len; i++) {
    unsigned char c = (unsigned char) l->line[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return remap_lines_error (l, err, "column %zu: control byte \\x%02x%s "
                                "(a text file holds none: is this the right "
                                "file, or a binary one?)", i + 1, c,
                                c == 0 ? " (NUL)" : "");
  }
  return 1;
}

int
remap_lines_error (const struct remap_lines *l, struct remap_error *err,
                   const char *fmt, ...)
{
  char why[256], esc[128];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (why, sizeof why, fmt, ap);
  va_end (ap);
  remap_escape (l->line, l->len, esc, sizeof esc);
  if (!l->src)
    return remap_set_error (err, -EINVAL, "line %lu: %s in \"%s\"", l->no,
                            why, esc);
  return remap_set_error (err, -EINVAL, "%s:%lu: %s in \"%s\"", l->src,
                          l->no, why, esc);
}

/* ---- unit lists ------------------------------------------------------ */

static int
list_push (struct remap_list *l, const struct remap_list_item *it)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct remap_list_item *v = realloc (l->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = *it;
  return 0;
}

/* One item p[0..n): 0, or -EINVAL / -ERANGE with *why saying what is
 * wrong.  Units take no suffix ("4k" is no unit number); an OFFSET does. */
static int
list_item (const char *p, size_t n, struct remap_list_item *it,
           const char **why)
{
  const char *end = p + n, *q = p;
  uint64_t a, b;
  int r;

  *why = "not a unit U, a unit range U-V or a byte range OFFSET+LENGTH";
  r = remap_scan_u64 (&q, end, 0, &a);
  if (r == 0 && q < end && *q != '-') {
    q = p;
    r = remap_scan_u64 (&q, end, REMAP_NUM_SUFFIX, &a);
    if (r == 0 && (q == end || *q != '+'))
      r = -EINVAL;
  }
  if (r == 0 && q == end) {
    *it = (struct remap_list_item) { false, a, a };
    return 0;
  }
  if (r == 0) {
    char sep = *q++;
    r = remap_scan_u64 (&q, end, sep == '+' ? REMAP_NUM_SUFFIX : 0, &b);
    if (r == 0 && q != end)
      r = -EINVAL;
    if (r == 0 && sep == '-') {
      if (b >= a) {
        *it = (struct remap_list_item) { false, a, b };
        return 0;
      }
      *why = "a unit range U-V needs U <= V";
      return -EINVAL;
    }
    if (r == 0 && b == 0) {
      *why = "a byte range OFFSET+LENGTH needs a LENGTH above 0";
      return -EINVAL;
    }
    if (r == 0 && a > UINT64_MAX - (b - 1))
      r = -ERANGE;
    if (r == 0) {
      *it = (struct remap_list_item) { true, a, a + (b - 1) };
      return 0;
    }
  }
  if (r == -ERANGE)
    *why = "a number or the range's end is past 2^64 - 1";
  return r;
}

int
remap_list_parse (const char *text, const char *what, struct remap_list *out,
                  struct remap_error *err)
{
  struct remap_list tmp = { 0 };
  const char *p = text;
  int r = 0;

  if (*text == '\0')
    return remap_set_error (err, -EINVAL, "%s: empty list (want items such "
                            "as 100,200-210,1M+64k)", what);
  for (;;) {
    const char *comma = strchr (p, ',');
    size_t n = comma ? (size_t) (comma - p) : strlen (p);
    struct remap_list_item it;
    const char *why;
    char esc[96];

    if ((r = list_item (p, n, &it, &why)) != 0) {
      remap_escape (p, n, esc, sizeof esc);
      r = remap_set_error (err, -EINVAL, "%s: item \"%s\": %s (items are U, U-V "
                           "or OFFSET+LENGTH, separated by commas: numbers "
                           "decimal or 0x hex, OFFSET and LENGTH may end in "
                           "b, s, k, m, g, t, p or e)", what, esc, why);
      goto out;
    }
    if (list_push (&tmp, &it)) {
      r = remap_set_error (err, -ENOMEM, "%s: out of memory", what);
      goto out;
    }
    if (!comma)
      break;
    p = comma + 1;
  }
  for (size_t i = 0; i < tmp.n; i++)
    if (list_push (out, &tmp.v[i])) {
      out->n -= i;              /* all or nothing */
      r = remap_set_error (err, -ENOMEM, "%s: out of memory", what);
      goto out;
    }
 out:
  remap_list_free (&tmp);
  return r;
}

void
remap_list_free (struct remap_list *l)
{
  free (l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}
