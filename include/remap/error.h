/* remap: error context.
 *
 * The engine and the backends never print and never set errno.  A function
 * that fails returns -errno and, when it was given an error context, leaves a
 * one-line message in it that names the problem and, where there is one, the
 * fix.  The caller (plugin, remapctl, tests) decides where the message goes.
 *
 * An error context belongs to one thread at a time: each request of the
 * plugin uses its own, so no locking is needed.
 */
#ifndef REMAP_ERROR_H
#define REMAP_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REMAP_ERROR_MSG_MAX 512

struct remap_error {
  int err;                        /* negative errno of the first error, 0 if none */
  char msg[REMAP_ERROR_MSG_MAX];  /* NUL-terminated, "" if none */
};

/* Clear ctx (may be NULL). */
void remap_error_clear (struct remap_error *ctx);

/* Record err (a negative errno) and a printf-style message in ctx, unless ctx
 * is NULL or already holds an error (the first error is the cause; later ones
 * are consequences).  Returns err, so that `return remap_set_error (...)'
 * reads naturally.
 */
int remap_set_error (struct remap_error *ctx, int err, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* Like remap_set_error, but replaces a message already present, prefixing the
 * new text to it ("opening spare: " + old message).  Returns err.
 */
int remap_error_prefix (struct remap_error *ctx, int err, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif /* REMAP_ERROR_H */
