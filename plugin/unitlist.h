/* remap plugin: lists of origin units to remap at start.
 *
 * remap=LIST and badblocks=FILE are parsed while nbdkit reads its command
 * line, but the unit size is only known once the spare is open, so a list
 * keeps what the user wrote (unit ranges or byte ranges) and turns it into
 * units later.  Every item remembers where it came from so that an error
 * can name the parameter or the file and line.
 */
#ifndef REMAP_PLUGIN_UNITLIST_H
#define REMAP_PLUGIN_UNITLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct unit_item {
  bool bytes;             /* false: units first..last; true: bytes [first, last] */
  uint64_t first, last;   /* inclusive */
  const char *src;        /* remap= value or badblocks path (not owned) */
  bool from_file;         /* from badblocks=, not remap= */
};

struct unit_list {
  struct unit_item *v;
  size_t n, cap;
};

/* Append the items of one remap= value ("100,200-210,1M+64k").  0, or -1
 * after nbdkit_error.  value must outlive the list (nbdkit's strings do). */
int unit_list_parse_remap (struct unit_list *l, const char *value);

/* Append the blocks of an e2fsprogs badblocks list (block numbers, one
 * per line, in units of block_size bytes; remap_parse_badblocks' grammar).
 * The whole file is checked first: on error nothing is appended.  path
 * must outlive the list.  0, or -1 after nbdkit_error. */
int unit_list_read_badblocks (struct unit_list *l, const char *path,
                              uint64_t block_size);

/* The units item covers for a unit size of `unit' bytes. */
void unit_item_units (const struct unit_item *it, uint32_t unit,
                      uint64_t *first, uint64_t *last);

/* Describe where it came from ("remap=100-200", "badblocks=FILE (bytes
 * A-B)"). */
void unit_item_describe (const struct unit_item *it, char *buf, size_t len);

void unit_list_free (struct unit_list *l);

#endif /* REMAP_PLUGIN_UNITLIST_H */
