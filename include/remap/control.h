/* remap: the administrator's command executor (remapctl and control=).
 *
 * One function runs one command against an open engine and appends its
 * output to a growable buffer.  remapctl calls it directly on an engine it
 * opened over the files (offline); the plugin calls it for every request on
 * its control socket (online).  Both therefore print exactly the same text,
 * and the same JSON, from the same code.
 *
 * Pure C, libc only: no sockets, no printing, no errno.
 *
 * Commands (argv[0]) and their arguments; every command accepts --json,
 * which makes its output ONE JSON object on one line (keys documented in
 * tools/remapctl/remapctl.pod, stable: new keys may be added, none removed):
 *
 *   status                         counters, state, geometry
 *   list                           the table: mapped, pending and bad slots
 *   lookup LBA                     where one LBA's unit lives
 *   remap LBA [COUNT]              move every unit touched to the spare
 *   unmap LBA [COUNT] [--discard-data]
 *                                  return units to the origin (data copied
 *                                  back unless --discard-data)
 *   pending LBA [COUNT]            record units as pending (as a failed read
 *                                  would)
 *   export --format badblocks --block-size N | --format ddrescue
 *                                  the table as a bad-block list / mapfile
 *   scan LBA [COUNT]               read the units that are not remapped;
 *                                  the engine marks failing ones pending
 *   spare-retest [FIRST [COUNT]]   re-test the bad spare units of a range
 *                                  (spare unit numbers; default: all) and
 *                                  free those that pass
 *   help                           the list of commands
 *
 * LBA and COUNT are 512-byte sectors unless -u/--unit-numbers is given, in
 * which case they are remap units.  COUNT defaults to 1.  Numbers are
 * decimal or 0x-prefixed hexadecimal.
 */
#ifndef REMAP_CONTROL_H
#define REMAP_CONTROL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct remap_engine;

/* The sector size of LBA arguments (like dmsetup and badblocks -b 512). */
#define REMAP_CONTROL_SECTOR 512u

/* Longest request line the control socket accepts, newline included. */
#define REMAP_CONTROL_MAX_LINE 4096u
/* Most arguments in one request. */
#define REMAP_CONTROL_MAX_ARGS 64u

/* A growable, always NUL-terminated byte buffer.  Zero-initialise it
 * (struct remap_buf b = { 0 };).  After an allocation failure `failed' is
 * set and further appends are ignored. */
struct remap_buf {
  char *data;                   /* NULL until the first append */
  size_t len;                   /* bytes, not counting the NUL */
  size_t cap;
  bool failed;                  /* an allocation failed */
};

/* Append; 0 or -ENOMEM. */
int remap_buf_append (struct remap_buf *b, const char *s, size_t n);
int remap_buf_printf (struct remap_buf *b, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
int remap_buf_vprintf (struct remap_buf *b, const char *fmt, va_list ap)
  __attribute__ ((format (printf, 2, 0)));
/* Append s as a JSON string literal (quotes included). */
int remap_buf_json_string (struct remap_buf *b, const char *s);
/* Empty it (keeps the memory). */
void remap_buf_reset (struct remap_buf *b);
/* Free the memory; b is empty and reusable afterwards. */
void remap_buf_free (struct remap_buf *b);

/* Run one command.  Returns 0, or a negative errno with a one-line message
 * in err: -EINVAL for a usage error (unknown command, bad number, LBA past
 * the end), anything else from the engine (-EIO, -ENOSPC, -EBUSY ...).  On
 * failure out may hold the output of the part that succeeded (for example
 * the units of a range remapped before the failure).  Thread-safe as far
 * as the engine is: several executors may run on one engine at once. */
int remap_control_exec (struct remap_engine *e, int argc, char *const *argv,
                        struct remap_buf *out, struct remap_error *err);

/* Split a request line in place into at most max arguments separated by
 * spaces or tabs (a trailing "\n" or "\r\n" is removed).  Returns the number
 * of arguments, or -EINVAL if there are more than max or the line holds a
 * control character. */
int remap_control_split (char *line, char **argv, int max);

/* Name of a slot state: "free", "mapped", "pending", "bad". */
const char *remap_slot_state_name (int state);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_CONTROL_H */
