/* remap: the one parser of each text format administrators hand to remap.
 *
 * Every number, unit list, bad-block list (badlist.h), fault rule
 * (backend.h) and smartctl report goes through these functions, used alike
 * by the plugin's parameters, the admin library's commands and control
 * socket (admin/), remapctl and the tests, so one file or argument means
 * the same everywhere (nbdkit-remap-plugin(1) and remapctl(1) describe
 * them).
 *
 * Numbers: decimal ("010" is ten: a leading zero is never octal) or 0x
 * hexadecimal; no sign, no spaces.  With REMAP_NUM_SUFFIX a decimal number
 * may end in one size suffix: b (x1), s (x512, a sector), k, m, g, t, p, e
 * (powers of 1024), upper or lower case; k to e may be followed by "iB"
 * or "B", which change nothing ("4KiB" = "4KB" = "4k" = 4096).  A
 * hexadecimal number takes no
 * suffix ("0x1b" is 27).  Anything that does not fit in 64 bits is -ERANGE.
 *
 * Text files: lines end in LF or CRLF; a NUL or another control byte
 * (below 0x20 except TAB, and 0x7f) anywhere is an error, never text to
 * skip; bytes are shown escaped (\x00) in every message, with SRC:LINE.
 *
 * Pure C, libc only; nothing here prints or touches an engine.
 */
#ifndef REMAP_PARSE_H
#define REMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REMAP_NUM_SUFFIX 0x1u   /* accept a size suffix (decimal only) */

/* Scan one number at *p (not past end), advance *p past it.  0; -EINVAL
 * when *p holds no digit (or "0x" and no hex digit); -ERANGE when the value
 * (times its suffix) passes 2^64 - 1.  *p is left alone on error. */
int remap_scan_u64 (const char **p, const char *end, unsigned flags,
                    uint64_t *out);

/* Parse the whole string s as one number.  0, or -EINVAL with a message
 * naming `what' ("--block-size"), the text, escaped, and the grammar (or
 * that it passes 2^64 - 1). */
int remap_parse_u64 (const char *s, unsigned flags, const char *what,
                     uint64_t *out, struct remap_error *err);

/* Copy s[0..len) into out (size outlen >= 8, always NUL-terminated) with
 * every byte that is not printable ASCII, and the backslash, written as
 * \xNN; longer text ends in "...".  Returns out. */
char *remap_escape (const char *s, size_t len, char *out, size_t outlen);

/* ---- lines of a text file -------------------------------------------- */

struct remap_lines {
  const char *src;              /* for messages: the file name */
  const char *p, *end;          /* what is left */
  unsigned long no;             /* number of the current line, from 1 */
  const char *line;             /* the current line, without LF / CRLF */
  size_t len;
};

/* Start reading text[0..len) named src (not copied: both must outlive l;
 * NULL: messages say "line N:" instead of "SRC:N:"). */
void remap_lines_init (struct remap_lines *l, const char *src,
                       const char *text, size_t len);

/* Next line: 1, 0 at the end, or -EINVAL when the line holds a NUL or a
 * control byte (the message names SRC:LINE, the column and the byte). */
int remap_lines_next (struct remap_lines *l, struct remap_error *err);

/* -EINVAL with the message "SRC:LINE: <fmt> in \"<line, escaped>\"". */
int remap_lines_error (const struct remap_lines *l, struct remap_error *err,
                       const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* ---- unit lists (the plugin's remap=) -------------------------------- */

/* One item of a unit list: units first..last, or (bytes) the bytes
 * [first, last], both inclusive. */
struct remap_list_item {
  bool bytes;
  uint64_t first, last;
};

struct remap_list {
  struct remap_list_item *v;
  size_t n, cap;
};

/* Parse "U", "U-V" (units, no suffix) and "OFF+LEN" (bytes, with suffixes)
 * items separated by commas, and append them to out.  Every item is
 * checked before any is appended.  0, -EINVAL (the message names `what',
 * the item and the grammar), -ENOMEM. */
int remap_list_parse (const char *text, const char *what,
                      struct remap_list *out, struct remap_error *err);

void remap_list_free (struct remap_list *l);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_PARSE_H */
