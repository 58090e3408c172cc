/* remap plugin: parsing of remap= lists and e2fsprogs badblocks files.
 *
 * Syntax of one remap= value: items separated by commas, each one of
 *
 *   U          origin unit U (decimal)
 *   U-V        units U to V inclusive (decimal, U <= V)
 *   OFF+LEN    every unit touched by the bytes [OFF, OFF+LEN); OFF and LEN
 *              take nbdkit size suffixes (k, M, G, ..., s = 512 bytes)
 *
 * Numbers are strictly decimal: "010" is ten, not eight, so that lists
 * produced by other tools mean what they say.  Nothing here knows the unit
 * size; conversion happens in unit_item_units once the spare is open.
 * Errors go to nbdkit_error, as every config-time error of the plugin.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "unitlist.h"

static int
push (struct unit_list *l, const struct unit_item *it)
{
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct unit_item *v = realloc (l->v, cap * sizeof *v);
    if (v == NULL) {
      nbdkit_error ("realloc: %m");
      return -1;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = *it;
  return 0;
}

/* Strict decimal: digits only, no sign, no overflow.  0 or -1. */
static int
parse_dec (const char *s, size_t len, uint64_t *out)
{
  uint64_t v = 0;

  if (len == 0)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    unsigned d = (unsigned) (s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

/* OFF+LEN with nbdkit size suffixes. */
static int
parse_byte_range (const char *item, const char *plus, struct unit_item *it)
{
  char off_s[64], len_s[64];
  size_t off_n = (size_t) (plus - item), len_n = strlen (plus + 1);
  int64_t off, len;

  if (off_n == 0 || off_n >= sizeof off_s || len_n == 0
      || len_n >= sizeof len_s)
    return -1;
  memcpy (off_s, item, off_n);
  off_s[off_n] = '\0';
  memcpy (len_s, plus + 1, len_n + 1);
  off = nbdkit_parse_size (off_s);
  len = nbdkit_parse_size (len_s);
  if (off < 0 || len <= 0 || (uint64_t) off > UINT64_MAX - (uint64_t) len)
    return -1;
  it->bytes = true;
  it->first = (uint64_t) off;
  it->last = (uint64_t) off + (uint64_t) len - 1;
  return 0;
}

static int
parse_item (const char *item, struct unit_item *it)
{
  const char *plus = strchr (item, '+');
  const char *dash = strchr (item, '-');

  if (plus)
    return parse_byte_range (item, plus, it);
  it->bytes = false;
  if (dash == NULL) {
    if (parse_dec (item, strlen (item), &it->first) == -1)
      return -1;
    it->last = it->first;
    return 0;
  }
  if (parse_dec (item, (size_t) (dash - item), &it->first) == -1
      || parse_dec (dash + 1, strlen (dash + 1), &it->last) == -1
      || it->last < it->first)
    return -1;
  return 0;
}

int
unit_list_parse_remap (struct unit_list *l, const char *value)
{
  const char *p = value;

  if (*value == '\0') {
    nbdkit_error ("remap=: empty list");
    return -1;
  }
  for (;;) {
    const char *comma = strchr (p, ',');
    size_t n = comma ? (size_t) (comma - p) : strlen (p);
    char item[160];
    struct unit_item it = { .src = value, .line = 0 };
    int ok = n > 0 && n < sizeof item;

    if (ok) {
      memcpy (item, p, n);
      item[n] = '\0';
      ok = parse_item (item, &it) == 0;
    }
    if (!ok) {
      nbdkit_error ("remap=%s: item '%.*s' is not a unit U, a unit range U-V "
                    "or a byte range OFFSET+LENGTH", value, (int) n, p);
      return -1;
    }
    if (push (l, &it) == -1)
      return -1;
    if (comma == NULL)
      return 0;
    p = comma + 1;
  }
}

/* One line of a badblocks file: the block number, or blank/comment. */
static int
badblocks_line (struct unit_list *l, const char *path, uint64_t lineno,
                char *s, uint64_t block_size)
{
  struct unit_item it = { .bytes = true, .src = path, .line = lineno };
  uint64_t block;
  size_t n;

  while (*s == ' ' || *s == '\t')
    s++;
  n = strcspn (s, " \t\r\n#");
  if (n == 0 && (s[0] == '\0' || strchr ("\r\n#", s[0])))
    return 0;                   /* blank line or comment */
  if (parse_dec (s, n, &block) == -1 || s[n + strspn (s + n, " \t\r\n")] != '\0') {
    nbdkit_error ("badblocks=%s: line %" PRIu64 ": expected one decimal "
                  "block number, got: %.40s", path, lineno, s);
    return -1;
  }
  if (block > (UINT64_MAX - block_size + 1) / block_size) {
    nbdkit_error ("badblocks=%s: line %" PRIu64 ": block %" PRIu64
                  " overflows a 64-bit offset", path, lineno, block);
    return -1;
  }
  it.first = block * block_size;
  it.last = it.first + block_size - 1;
  return push (l, &it);
}

int
unit_list_read_badblocks (struct unit_list *l, const char *path,
                          uint64_t block_size)
{
  FILE *fp = fopen (path, "re");
  char *line = NULL;
  size_t cap = 0;
  uint64_t lineno = 0;
  int r = 0;

  if (fp == NULL) {
    nbdkit_error ("badblocks=%s: %m", path);
    return -1;
  }
  while (getline (&line, &cap, fp) != -1) {
    lineno++;
    if (badblocks_line (l, path, lineno, line, block_size) == -1) {
      r = -1;
      goto out;
    }
  }
  if (ferror (fp)) {
    nbdkit_error ("badblocks=%s: read error", path);
    r = -1;
  }
out:
  free (line);
  fclose (fp);
  return r;
}

void
unit_item_units (const struct unit_item *it, uint32_t unit, uint64_t *first,
                 uint64_t *last)
{
  if (it->bytes) {
    *first = it->first / unit;
    *last = it->last / unit;
  }
  else {
    *first = it->first;
    *last = it->last;
  }
}

void
unit_item_describe (const struct unit_item *it, char *buf, size_t len)
{
  if (it->line)
    snprintf (buf, len, "badblocks=%s line %" PRIu64, it->src, it->line);
  else
    snprintf (buf, len, "remap=%s", it->src);
}

void
unit_list_free (struct unit_list *l)
{
  free (l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}
