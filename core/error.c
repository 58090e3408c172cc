/* remap: error context.
 *
 * A struct remap_error carries the first failure of an operation up to the
 * caller, as a negative errno plus one line of text.  remap_set_error keeps
 * the first error (later ones are consequences of it); remap_error_prefix
 * adds context on the way up ("opening spare: " + the cause).
 *
 * Locking: none.  A context belongs to one thread at a time (error.h).
 * Messages longer than REMAP_ERROR_MSG_MAX - 1 bytes are truncated, never
 * overflowed.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "remap/error.h"

void
remap_error_clear (struct remap_error *ctx)
{
  if (ctx == NULL)
    return;
  ctx->err = 0;
  ctx->msg[0] = '\0';
}

int
remap_set_error (struct remap_error *ctx, int err, const char *fmt, ...)
{
  va_list ap;

  if (ctx == NULL || ctx->err != 0)
    return err;

  va_start (ap, fmt);
  vsnprintf (ctx->msg, sizeof ctx->msg, fmt, ap);
  va_end (ap);
  ctx->err = err;
  return err;
}

int
remap_error_prefix (struct remap_error *ctx, int err, const char *fmt, ...)
{
  char old[REMAP_ERROR_MSG_MAX];
  va_list ap;
  size_t n;

  if (ctx == NULL)
    return err;

  /* Save the old message before overwriting the buffer with the prefix. */
  memcpy (old, ctx->msg, sizeof old);
  old[sizeof old - 1] = '\0';

  va_start (ap, fmt);
  vsnprintf (ctx->msg, sizeof ctx->msg, fmt, ap);
  va_end (ap);
  ctx->err = err;

  /* An old message that starts with a separator of its own (": cause")
   * must not print as "prefix: : cause". */
  const char *o = old;
  while (*o == ':' || *o == ' ')
    o++;

  /* Append ": " + old, truncating at the end of the buffer.  A prefix
   * that already ends in a separator (": ", " ") does not get a second,
   * and keeps none when there is nothing to append. */
  n = strlen (ctx->msg);
  while (n > 0 && (ctx->msg[n - 1] == ' ' || ctx->msg[n - 1] == ':'))
    ctx->msg[--n] = '\0';
  if (o[0] == '\0')
    return err;
  if (n + 2 < sizeof ctx->msg) {
    size_t room, oldlen;

    memcpy (ctx->msg + n, ": ", 2);
    n += 2;
    room = sizeof ctx->msg - 1 - n;
    oldlen = strlen (o);
    if (oldlen > room)
      oldlen = room;
    memcpy (ctx->msg + n, o, oldlen);
    ctx->msg[n + oldlen] = '\0';
  }
  return err;
}
