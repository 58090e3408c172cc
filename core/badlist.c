/* remap: parsers for badblocks lists and ddrescue mapfiles (see
 * include/remap/badlist.h). */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remap/badlist.h"

int
remap_extents_add (struct remap_extents *x, uint64_t off, uint64_t len)
{
  if (len == 0)
    return 0;
  if (x->n == x->cap) {
    size_t cap = x->cap ? x->cap * 2 : 64;
    struct remap_extent *v = realloc (x->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    x->v = v;
    x->cap = cap;
  }
  x->v[x->n++] = (struct remap_extent) { off, len };
  return 0;
}

static int
cmp_extent (const void *a, const void *b)
{
  const struct remap_extent *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

void
remap_extents_normalize (struct remap_extents *x)
{
  size_t i, j = 0;

  if (x->n < 2)
    return;
  qsort (x->v, x->n, sizeof *x->v, cmp_extent);
  for (i = 1; i < x->n; i++) {
    struct remap_extent *last = &x->v[j];
    uint64_t end = last->off + last->len;
    if (x->v[i].off <= end) {
      uint64_t e2 = x->v[i].off + x->v[i].len;
      if (e2 > end)
        last->len = e2 - last->off;
    }
    else
      x->v[++j] = x->v[i];
  }
  x->n = j + 1;
}

void
remap_extents_free (struct remap_extents *x)
{
  free (x->v);
  x->v = NULL;
  x->n = x->cap = 0;
}

/* ---- line reading ---------------------------------------------------- */

struct lines {
  const char *p, *end;
  unsigned long no;
  char buf[1024];
  bool too_long;
};

/* Next line into l->buf (NUL-terminated, without the newline).  False at
 * the end. */
static bool
next_line (struct lines *l)
{
  const char *nl;
  size_t n;

  if (l->p >= l->end)
    return false;
  nl = memchr (l->p, '\n', l->end - l->p);
  n = (nl ? nl : l->end) - l->p;
  l->too_long = n >= sizeof l->buf;
  if (l->too_long)
    n = sizeof l->buf - 1;
  memcpy (l->buf, l->p, n);
  l->buf[n] = '\0';
  if (n && l->buf[n - 1] == '\r')
    l->buf[n - 1] = '\0';
  l->p = nl ? nl + 1 : l->end;
  l->no++;
  return true;
}

static const char *
skip_ws (const char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

/* Parse an unsigned number: 0x hex, else decimal (a leading 0 is not
 * octal).  Advances *s.  False if there is no number or it overflows. */
static bool
parse_num (const char **s, uint64_t *out)
{
  const char *p = *s;
  unsigned base = 10;
  uint64_t v = 0;
  bool any = false;

  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p += 2;
  }
  for (;; p++) {
    unsigned d;
    if (*p >= '0' && *p <= '9')
      d = *p - '0';
    else if (base == 16 && *p >= 'a' && *p <= 'f')
      d = *p - 'a' + 10;
    else if (base == 16 && *p >= 'A' && *p <= 'F')
      d = *p - 'A' + 10;
    else
      break;
    if (v > (UINT64_MAX - d) / base)
      return false;
    v = v * base + d;
    any = true;
  }
  if (!any)
    return false;
  *s = p;
  *out = v;
  return true;
}

/* ---- badblocks ------------------------------------------------------- */

int
remap_parse_badblocks (const char *text, size_t len, uint64_t block_size,
                       struct remap_extents *out, struct remap_error *err)
{
  struct lines l = { .p = text, .end = text + len };

  if (block_size == 0)
    return remap_set_error (err, -EINVAL, "block size must not be 0");
  while (next_line (&l)) {
    const char *s = skip_ws (l.buf);
    uint64_t b;

    if (l.too_long)
      return remap_set_error (err, -EINVAL, "line %lu: line too long",
                              l.no);
    if (*s == '\0')
      continue;
    if (!parse_num (&s, &b) || *skip_ws (s) != '\0')
      return remap_set_error (err, -EINVAL, "line %lu: expected one block "
                              "number, got \"%.60s\"", l.no, l.buf);
    if (b > UINT64_MAX / block_size - 1)
      return remap_set_error (err, -EINVAL, "line %lu: block %llu is too "
                              "large for block size %llu", l.no,
                              (unsigned long long) b,
                              (unsigned long long) block_size);
    if (remap_extents_add (out, b * block_size, block_size))
      return remap_set_error (err, -ENOMEM, "out of memory");
  }
  remap_extents_normalize (out);
  return 0;
}

/* ---- ddrescue -------------------------------------------------------- */

int
remap_parse_ddrescue (const char *text, size_t len, bool include_nontried,
                      struct remap_extents *out, struct remap_error *err)
{
  struct lines l = { .p = text, .end = text + len };
  bool seen_status = false;

  while (next_line (&l)) {
    const char *s = skip_ws (l.buf);
    uint64_t pos, size, pass;
    char st;

    if (l.too_long)
      return remap_set_error (err, -EINVAL, "line %lu: line too long",
                              l.no);
    if (*s == '#' || *s == '\0')
      continue;
    if (!parse_num (&s, &pos))
      return remap_set_error (err, -EINVAL, "line %lu: expected a position, "
                              "got \"%.60s\"", l.no, l.buf);
    if (!seen_status) {
      /* current_pos current_status [current_pass] */
      s = skip_ws (s);
      if (!strchr ("?*/-FG+", *s) || *s == '\0'
          || (s[1] != '\0' && s[1] != ' ' && s[1] != '\t'))
        return remap_set_error (err, -EINVAL, "line %lu: bad status line "
                                "\"%.60s\" (want \"pos status [pass]\" with "
                                "status one of ?*/-FG+)", l.no, l.buf);
      s = skip_ws (s + 1);
      if (*s && (!parse_num (&s, &pass) || *skip_ws (s) != '\0'))
        return remap_set_error (err, -EINVAL, "line %lu: bad pass number in "
                                "status line \"%.60s\"", l.no, l.buf);
      seen_status = true;
      continue;
    }
    s = skip_ws (s);
    if (!parse_num (&s, &size))
      return remap_set_error (err, -EINVAL, "line %lu: expected \"pos size "
                              "status\", got \"%.60s\"", l.no, l.buf);
    s = skip_ws (s);
    st = *s;
    if (st == '\0' || *skip_ws (s + 1) != '\0'
        || (s[1] != '\0' && s[1] != ' ' && s[1] != '\t'))
      return remap_set_error (err, -EINVAL, "line %lu: expected \"pos size "
                              "status\", got \"%.60s\"", l.no, l.buf);
    if (pos + size < pos)
      return remap_set_error (err, -EINVAL, "line %lu: block ends past "
                              "2^64", l.no);
    switch (st) {
    case '-': case '*': case '/':
      break;
    case '?':
      if (include_nontried)
        break;
      continue;
    case '+':
      continue;
    default:
      return remap_set_error (err, -EINVAL, "line %lu: unknown block status "
                              "'%c' (want one of ?*/-+)", l.no, st);
    }
    if (remap_extents_add (out, pos, size))
      return remap_set_error (err, -ENOMEM, "out of memory");
  }
  if (!seen_status)
    return remap_set_error (err, -EINVAL, "line %lu: no status line: not a "
                            "ddrescue mapfile", l.no);
  remap_extents_normalize (out);
  return 0;
}
