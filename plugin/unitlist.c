/* remap plugin: remap= lists and e2fsprogs badblocks files.
 *
 * Syntax of one remap= value: items separated by commas, each one of
 *
 *   U          origin unit U
 *   U-V        units U to V inclusive (U <= V)
 *   OFF+LEN    every unit touched by the bytes [OFF, OFF+LEN); OFF and LEN
 *              take size suffixes (b, s = 512 bytes, k, m, g, t, p, e)
 *
 * The grammar is core's (remap_list_parse, remap_parse_badblocks in
 * core/parse.c and core/badlist.c), the same remapctl uses: numbers are
 * decimal ("010" is ten, never octal) or 0x hexadecimal.  This file only
 * reads the file and keeps where each item came from.  Nothing here knows
 * the unit size; conversion happens in unit_item_units once the spare is
 * open.  Errors go to nbdkit_error, as every config-time error of the
 * plugin.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "remap/badlist.h"
#include "remap/parse.h"
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

int
unit_list_parse_remap (struct unit_list *l, const char *value)
{
  struct remap_list rl = { 0 };
  struct remap_error err = { 0 };
  int r = -1;

  if (remap_list_parse (value, "remap=", &rl, &err) < 0) {
    nbdkit_error ("%s", err.msg);
    return -1;
  }
  for (size_t i = 0; i < rl.n; i++) {
    struct unit_item it = { .bytes = rl.v[i].bytes, .first = rl.v[i].first,
                            .last = rl.v[i].last, .src = value };
    if (push (l, &it) == -1)
      goto out;
  }
  r = 0;
 out:
  remap_list_free (&rl);
  return r;
}

/* The whole file, malloc'ed, NUL bytes and all (the parser refuses them). */
static int
read_file (const char *path, char **text, size_t *len)
{
  FILE *fp = fopen (path, "re");
  char *buf = NULL;
  size_t n = 0, cap = 0;

  if (fp == NULL) {
    nbdkit_error ("badblocks=%s: %m", path);
    return -1;
  }
  for (;;) {
    if (n == cap) {
      char *p = cap < (1u << 30) ? realloc (buf, cap ? cap * 2 : 65536) : NULL;
      if (!p) {
        nbdkit_error ("badblocks=%s: out of memory (or larger than 1 GiB)",
                      path);
        goto err;
      }
      buf = p;
      cap = cap ? cap * 2 : 65536;
    }
    size_t got = fread (buf + n, 1, cap - n, fp);
    n += got;
    if (got == 0)
      break;
  }
  if (ferror (fp)) {
    nbdkit_error ("badblocks=%s: read error", path);
    goto err;
  }
  fclose (fp);
  *text = buf;
  *len = n;
  return 0;
 err:
  fclose (fp);
  free (buf);
  return -1;
}

int
unit_list_read_badblocks (struct unit_list *l, const char *path,
                          uint64_t block_size)
{
  struct remap_extents x = { 0 };
  struct remap_error err = { 0 };
  char *text = NULL;
  size_t len = 0;
  int r = -1;

  if (read_file (path, &text, &len) == -1)
    return -1;
  if (remap_parse_badblocks (text, len, path, block_size, &x, &err) < 0) {
    nbdkit_error ("badblocks=%s", err.msg);
    goto out;
  }
  /* Every range already ends below 2^64 (the parser checks). */
  for (size_t i = 0; i < x.n; i++) {
    struct unit_item it = { .bytes = true, .first = x.v[i].off,
                            .last = x.v[i].off + (x.v[i].len - 1),
                            .src = path, .from_file = true };
    if (push (l, &it) == -1)
      goto out;
  }
  r = 0;
 out:
  free (text);
  remap_extents_free (&x);
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
  if (it->from_file)
    snprintf (buf, len, "badblocks=%s (bytes %" PRIu64 "-%" PRIu64 ")",
              it->src, it->first, it->last);
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
