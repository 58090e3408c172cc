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

/* ---- error classes (core/errclass.c; docs/ERRORS.md) ------------------
 *
 * Only a MEDIA error moves data, makes a unit pending, marks a spare unit
 * bad or records lost granules (SPEC 3.10); every other class is reported
 * and changes nothing.  An errno that is not known is OTHER. */
enum remap_errclass {
  REMAP_ERRCLASS_NONE = 0,      /* 0: not an error */
  REMAP_ERRCLASS_MEDIA,         /* EIO, ENODATA, EILSEQ, EBADMSG, EREMOTEIO */
  REMAP_ERRCLASS_NOSPACE,       /* ENOSPC, EDQUOT, EFBIG */
  REMAP_ERRCLASS_CONNECTION,    /* ENOTCONN, ECONNRESET, EPIPE, ETIMEDOUT ... */
  REMAP_ERRCLASS_TRANSIENT,     /* EAGAIN, EINTR, ENOMEM, EBUSY ... */
  REMAP_ERRCLASS_PERMISSION,    /* EPERM, EACCES, EROFS ... */
  REMAP_ERRCLASS_OTHER,         /* everything else: EINVAL, EOPNOTSUPP ... */
};

/* The class of a negative errno as backends return it (the sign is
 * ignored). */
enum remap_errclass remap_error_class (int err);

/* "media error", "out of space", "connection lost", ... (static). */
const char *remap_errclass_name (enum remap_errclass c);

/* The positive errno an NBD client should receive for an engine error:
 * ENOSPC (no space), EPERM (permission), else EIO; 0 for 0.  These are
 * errnos nbdkit passes through to clients unchanged. */
int remap_error_to_client (int err);

/* "EIO", "ENOSPC", ... for the errnos the classes list (sign ignored);
 * NULL for others. */
const char *remap_errno_name (int err);

/* The negative errno named by name[0..len) ("ENOTCONN"), or 0 if the name
 * is not one remap_errno_name knows. */
int remap_errno_from_name (const char *name, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_ERROR_H */
