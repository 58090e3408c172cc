/* remap: error classes (SPEC 3.10; docs/ERRORS.md).
 *
 * A backend reports a failure as a negative errno.  Only some of them say
 * that the medium failed at the place that was accessed; the others say
 * that the medium could not be reached, had no room, refused us, or was
 * busy for a moment.  The engine acts on the difference: a MEDIA error
 * moves data, makes a unit pending, marks a spare unit bad or records lost
 * granules; every other class is reported to the client and changes no
 * state.  This file is the one place that decides which errno is which.
 *
 * The rule for an errno that is not listed: OTHER, i.e. no verdict.  An
 * error reported is recoverable (the client retries, the administrator
 * fixes the cause); a verdict written to the spare is not (a BAD mark is
 * for ever, a relocation with lost granules turns a passing fault into
 * lost data).  So an errno is MEDIA only if the kernel or an NBD server
 * uses it for "this I/O failed on the medium" (the block layer's
 * blk_errors table: BLK_STS_IOERR -> EIO, BLK_STS_MEDIUM -> ENODATA,
 * BLK_STS_PROTECTION -> EILSEQ, BLK_STS_TARGET -> EREMOTEIO; file systems
 * add EBADMSG for a failed checksum).
 *
 * Choices worth a word (the table below says the rest):
 *   ETIMEDOUT  CONNECTION: the device or server did not answer (block
 *              layer timeout, NBD socket timeout); nothing says the sector
 *              is bad.
 *   ENOLINK    CONNECTION: BLK_STS_TRANSPORT, the path to the device.
 *   ENODEV, ENXIO, ENOMEDIUM, ESTALE
 *              CONNECTION: the device, file or medium is gone as a whole
 *              (unplugged, offline, a stale NFS handle, a file that was
 *              truncated under us).
 *   EPROTO     CONNECTION: the conversation with the server broke down.
 *   EBADE      PERMISSION: BLK_STS_RESV_CONFLICT, another host holds a
 *              SCSI reservation.
 *   ENOMEM, ENOBUFS, EAGAIN, EINTR, EBUSY, ETIME, ECANCELED
 *              TRANSIENT: a resource of the moment (BLK_STS_RESOURCE,
 *              BLK_STS_DEV_RESOURCE, BLK_STS_AGAIN, duration limits).
 *   EUCLEAN    OTHER: from a backend it is a file system's own corruption
 *              report (XFS's EFSCORRUPTED), not the sector's.
 *   EINVAL, EOPNOTSUPP, EOVERFLOW ...
 *              OTHER: a request the backend would not take; a bug or a
 *              limit, never a medium.
 *
 * What the client sees (remap_error_to_client): EIO for media, connection,
 * transient and other errors, ENOSPC for no space, EPERM for permission:
 * the errnos nbdkit passes to an NBD client unchanged (its whitelist maps
 * ENOSPC/EDQUOT/EFBIG to NBD_ENOSPC and EPERM/EROFS to NBD_EPERM, and
 * anything it does not know to EINVAL, which clients take for a bug of
 * their own).  ESHUTDOWN is deliberately not used: it tells a client that
 * the server it talks to is shutting down, not that our backend went away.
 *
 * No locking: constant tables only.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "remap/error.h"

struct errinfo {
  int err;                      /* positive */
  const char *name;
  enum remap_errclass cls;
};

static const struct errinfo table[] = {
  /* media: the access failed on the medium */
  { EIO, "EIO", REMAP_ERRCLASS_MEDIA },
  { ENODATA, "ENODATA", REMAP_ERRCLASS_MEDIA },
  { EILSEQ, "EILSEQ", REMAP_ERRCLASS_MEDIA },
  { EBADMSG, "EBADMSG", REMAP_ERRCLASS_MEDIA },
  { EREMOTEIO, "EREMOTEIO", REMAP_ERRCLASS_MEDIA },
  /* no room on the backing store */
  { ENOSPC, "ENOSPC", REMAP_ERRCLASS_NOSPACE },
  { EDQUOT, "EDQUOT", REMAP_ERRCLASS_NOSPACE },
  { EFBIG, "EFBIG", REMAP_ERRCLASS_NOSPACE },
  /* the backend cannot be reached, or is gone as a whole */
  { ENOTCONN, "ENOTCONN", REMAP_ERRCLASS_CONNECTION },
  { ECONNRESET, "ECONNRESET", REMAP_ERRCLASS_CONNECTION },
  { ECONNREFUSED, "ECONNREFUSED", REMAP_ERRCLASS_CONNECTION },
  { ECONNABORTED, "ECONNABORTED", REMAP_ERRCLASS_CONNECTION },
  { EPIPE, "EPIPE", REMAP_ERRCLASS_CONNECTION },
  { ESHUTDOWN, "ESHUTDOWN", REMAP_ERRCLASS_CONNECTION },
  { ETIMEDOUT, "ETIMEDOUT", REMAP_ERRCLASS_CONNECTION },
  { EHOSTUNREACH, "EHOSTUNREACH", REMAP_ERRCLASS_CONNECTION },
  { EHOSTDOWN, "EHOSTDOWN", REMAP_ERRCLASS_CONNECTION },
  { ENETDOWN, "ENETDOWN", REMAP_ERRCLASS_CONNECTION },
  { ENETUNREACH, "ENETUNREACH", REMAP_ERRCLASS_CONNECTION },
  { ENETRESET, "ENETRESET", REMAP_ERRCLASS_CONNECTION },
  { ENOLINK, "ENOLINK", REMAP_ERRCLASS_CONNECTION },
  { ECOMM, "ECOMM", REMAP_ERRCLASS_CONNECTION },
  { EPROTO, "EPROTO", REMAP_ERRCLASS_CONNECTION },
  { ENODEV, "ENODEV", REMAP_ERRCLASS_CONNECTION },
  { ENXIO, "ENXIO", REMAP_ERRCLASS_CONNECTION },
  { ENOMEDIUM, "ENOMEDIUM", REMAP_ERRCLASS_CONNECTION },
  { ESTALE, "ESTALE", REMAP_ERRCLASS_CONNECTION },
  /* a resource of the moment */
  { EAGAIN, "EAGAIN", REMAP_ERRCLASS_TRANSIENT },
  { EINTR, "EINTR", REMAP_ERRCLASS_TRANSIENT },
  { ENOMEM, "ENOMEM", REMAP_ERRCLASS_TRANSIENT },
  { ENOBUFS, "ENOBUFS", REMAP_ERRCLASS_TRANSIENT },
  { EBUSY, "EBUSY", REMAP_ERRCLASS_TRANSIENT },
  { ETIME, "ETIME", REMAP_ERRCLASS_TRANSIENT },
  { ECANCELED, "ECANCELED", REMAP_ERRCLASS_TRANSIENT },
  /* refused */
  { EPERM, "EPERM", REMAP_ERRCLASS_PERMISSION },
  { EACCES, "EACCES", REMAP_ERRCLASS_PERMISSION },
  { EROFS, "EROFS", REMAP_ERRCLASS_PERMISSION },
  { EBADE, "EBADE", REMAP_ERRCLASS_PERMISSION },
  { ENOKEY, "ENOKEY", REMAP_ERRCLASS_PERMISSION },
  { EKEYEXPIRED, "EKEYEXPIRED", REMAP_ERRCLASS_PERMISSION },
  { EKEYREVOKED, "EKEYREVOKED", REMAP_ERRCLASS_PERMISSION },
  /* named so that rules and messages can use them; no verdict */
  { EINVAL, "EINVAL", REMAP_ERRCLASS_OTHER },
  { EOPNOTSUPP, "EOPNOTSUPP", REMAP_ERRCLASS_OTHER },
  { EOVERFLOW, "EOVERFLOW", REMAP_ERRCLASS_OTHER },
  { EUCLEAN, "EUCLEAN", REMAP_ERRCLASS_OTHER },
  { EBADF, "EBADF", REMAP_ERRCLASS_OTHER },
  { EFAULT, "EFAULT", REMAP_ERRCLASS_OTHER },
};

#define NTABLE (sizeof table / sizeof table[0])

static const struct errinfo *
find (int err)
{
  if (err < 0)
    err = -err;
  for (size_t i = 0; i < NTABLE; i++)
    if (table[i].err == err)
      return &table[i];
  return NULL;
}

enum remap_errclass
remap_error_class (int err)
{
  if (err == 0)
    return REMAP_ERRCLASS_NONE;
  const struct errinfo *x = find (err);
  return x ? x->cls : REMAP_ERRCLASS_OTHER;
}

const char *
remap_errclass_name (enum remap_errclass c)
{
  switch (c) {
  case REMAP_ERRCLASS_NONE: return "no error";
  case REMAP_ERRCLASS_MEDIA: return "media error";
  case REMAP_ERRCLASS_NOSPACE: return "out of space";
  case REMAP_ERRCLASS_CONNECTION: return "connection lost";
  case REMAP_ERRCLASS_TRANSIENT: return "transient error";
  case REMAP_ERRCLASS_PERMISSION: return "permission denied";
  case REMAP_ERRCLASS_OTHER: return "not a media error";
  }
  return "unknown error class";
}

int
remap_error_to_client (int err)
{
  switch (remap_error_class (err)) {
  case REMAP_ERRCLASS_NONE: return 0;
  case REMAP_ERRCLASS_NOSPACE: return ENOSPC;
  case REMAP_ERRCLASS_PERMISSION: return EPERM;
  default: return EIO;
  }
}

const char *
remap_errno_name (int err)
{
  const struct errinfo *x = find (err);
  return x ? x->name : NULL;
}

int
remap_errno_from_name (const char *name, size_t len)
{
  for (size_t i = 0; i < NTABLE; i++)
    if (strlen (table[i].name) == len
        && strncmp (table[i].name, name, len) == 0)
      return -table[i].err;
  return 0;
}
