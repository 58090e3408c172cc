/* remap: parsers for badblocks lists and ddrescue mapfiles (see
 * include/remap/badlist.h).
 *
 * Both read lines through remap_lines (core/parse.c): NUL and control
 * bytes are errors, CRLF is a line end, and a '#' starts a comment on any
 * line of either format.  Numbers are decimal or 0x hexadecimal in both
 * (remap_scan_u64, no suffixes: they are block numbers and byte counts as
 * the tools wrote them).  A file is parsed whole into a private list and
 * only then appended: an error on the last line leaves `out' as it was.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "remap/badlist.h"
#include "remap/parse.h"

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

/* Append every range of src to dst, normalised; all or nothing. */
static int
append_all (struct remap_extents *dst, const struct remap_extents *src,
            struct remap_error *err)
{
  size_t n0 = dst->n;

  for (size_t i = 0; i < src->n; i++)
    if (remap_extents_add (dst, src->v[i].off, src->v[i].len)) {
      dst->n = n0;
      return remap_set_error (err, -ENOMEM, "out of memory");
    }
  remap_extents_normalize (dst);
  return 0;
}

void
remap_extents_free (struct remap_extents *x)
{
  free (x->v);
  x->v = NULL;
  x->n = x->cap = 0;
}

/* ---- shared line grammar ------------------------------------------- */

static const char *
skip_ws (const char *s, const char *end)
{
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  return s;
}

/* The end of the line's content: a '#' starts a comment, trailing blanks
 * go. */
static const char *
content_end (const struct remap_lines *l)
{
  const char *e = memchr (l->line, '#', l->len);

  if (!e)
    e = l->line + l->len;
  while (e > l->line && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  return e;
}

/* A number at *s (advanced), then a blank or the end.  0 or -EINVAL with
 * a message naming `what'. */
static int
line_num (const struct remap_lines *l, const char **s, const char *end,
          const char *what, uint64_t *out, struct remap_error *err)
{
  const char *p = *s;
  int r = remap_scan_u64 (&p, end, 0, out);

  if (r == 0 && p < end && *p != ' ' && *p != '\t')
    r = -EINVAL;
  if (r == -ERANGE)
    return remap_lines_error (l, err, "%s is larger than 2^64 - 1", what);
  if (r)
    return remap_lines_error (l, err, "%s is not a number (want decimal or "
                              "0x hexadecimal, no sign)", what);
  *s = skip_ws (p, end);
  return 0;
}

/* ---- badblocks ------------------------------------------------------- */

int
remap_parse_badblocks (const char *text, size_t len, const char *src,
                       uint64_t block_size, struct remap_extents *out,
                       struct remap_error *err)
{
  struct remap_extents tmp = { 0 };
  struct remap_lines l;
  int r;

  if (block_size == 0)
    return remap_set_error (err, -EINVAL, "block size must not be 0");
  remap_lines_init (&l, src, text, len);
  while ((r = remap_lines_next (&l, err)) == 1) {
    const char *end = content_end (&l), *s = skip_ws (l.line, end);
    uint64_t b;

    if (s == end)
      continue;                 /* blank or comment */
    if ((r = line_num (&l, &s, end, "the block number", &b, err)) != 0)
      goto out;
    if (s != end) {
      r = remap_lines_error (&l, err, "one block number per line expected");
      goto out;
    }
    /* (b + 1) * block_size must not pass 2^64. */
    if (b >= UINT64_MAX / block_size) {
      r = remap_lines_error (&l, err, "block %" PRIu64 " of %" PRIu64
                             " bytes ends past 2^64 (wrong block size?)", b,
                             block_size);
      goto out;
    }
    if (remap_extents_add (&tmp, b * block_size, block_size)) {
      r = remap_set_error (err, -ENOMEM, "out of memory");
      goto out;
    }
  }
  if (r == 0)
    r = append_all (out, &tmp, err);
 out:
  remap_extents_free (&tmp);
  return r;
}

/* ---- ddrescue -------------------------------------------------------- */

/* A one-character status field at *s: the character, or 0. */
static char
status_char (const char **s, const char *end)
{
  const char *p = *s;

  if (p == end || (p + 1 < end && p[1] != ' ' && p[1] != '\t'))
    return 0;
  *s = skip_ws (p + 1, end);
  return *p;
}

/* "current_pos current_status [current_pass]" */
static int
ddrescue_status_line (const struct remap_lines *l, const char *s,
                      const char *end, struct remap_error *err)
{
  uint64_t pos, pass;
  char st;
  int r;

  if ((r = line_num (l, &s, end, "the current position", &pos, err)))
    return r;
  st = status_char (&s, end);
  if (!st || !strchr ("?*/-FG+", st))
    return remap_lines_error (l, err, "bad status line (want \"pos status "
                              "[pass]\" with status one of ?*/-FG+)");
  if (s < end && (r = line_num (l, &s, end, "the pass", &pass, err)))
    return r;
  if (s != end)
    return remap_lines_error (l, err, "trailing text after the status line");
  return 0;
}

/* "pos size status": 1 and the range when it is bad, 0 when good. */
static int
ddrescue_block_line (const struct remap_lines *l, const char *s,
                     const char *end, bool include_nontried,
                     struct remap_extent *x, struct remap_error *err)
{
  char st;
  int r;

  if ((r = line_num (l, &s, end, "the position", &x->off, err))
      || (r = line_num (l, &s, end, "the size", &x->len, err)))
    return r;
  st = status_char (&s, end);
  if (!st || s != end)
    return remap_lines_error (l, err, "expected \"pos size status\"");
  /* off + len stays below 2^64, so that no sum of ranges wraps later. */
  if (x->len > UINT64_MAX - x->off)
    return remap_lines_error (l, err, "the block ends past 2^64 - 1");
  switch (st) {
  case '-': case '*': case '/':
    return 1;
  case '?':
    return include_nontried;
  case '+':
    return 0;
  default:
    return remap_lines_error (l, err, "unknown block status '%c' (want one "
                              "of ?*/-+)", st);
  }
}

int
remap_parse_ddrescue (const char *text, size_t len, const char *src,
                      bool include_nontried, struct remap_extents *out,
                      struct remap_error *err)
{
  struct remap_extents tmp = { 0 };
  struct remap_lines l;
  bool seen_status = false;
  int r;

  remap_lines_init (&l, src, text, len);
  while ((r = remap_lines_next (&l, err)) == 1) {
    const char *end = content_end (&l), *s = skip_ws (l.line, end);
    struct remap_extent x;

    if (s == end)
      continue;
    if (!seen_status) {
      if ((r = ddrescue_status_line (&l, s, end, err)))
        goto out;
      seen_status = true;
      continue;
    }
    r = ddrescue_block_line (&l, s, end, include_nontried, &x, err);
    if (r < 0)
      goto out;
    if (r == 1 && remap_extents_add (&tmp, x.off, x.len)) {
      r = remap_set_error (err, -ENOMEM, "out of memory");
      goto out;
    }
  }
  if (r == 0 && !seen_status) {
    r = remap_set_error (err, -EINVAL, "%s%s%lu: no status line: not a "
                         "ddrescue mapfile", src ? src : "line ",
                         src ? ":" : "", l.no);
    goto out;
  }
  if (r == 0)
    r = append_all (out, &tmp, err);
 out:
  remap_extents_free (&tmp);
  return r;
}
