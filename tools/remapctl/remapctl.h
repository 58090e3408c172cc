/* remapctl: shared declarations of the tool's source files. */
#ifndef REMAPCTL_H
#define REMAPCTL_H

#include "admin.h"
#include "remap/error.h"

/* Exit codes (documented in remapctl.pod, EXIT STATUS).  A script can tell
 * a typo (2) from a dead spare (6) and a busy one (3). */
#define EXIT_OK        0        /* success; check: clean */
#define EXIT_FAIL      1        /* the operation failed; check: repairable */
#define EXIT_USAGE     2        /* bad arguments: nothing was changed */
#define EXIT_BUSY      3        /* the files are held by a running server */
#define EXIT_CONTROL   4        /* the control socket cannot be used */
#define EXIT_STOPPED   5        /* scan interrupted (resumable) */
#define EXIT_UNUSABLE  6        /* the spare is unusable: damaged beyond
                                   repair, not formatted, or of an unknown
                                   format; check: unusable */

struct remap_engine;

/* Send one command over the control socket at sock, append its output to
 * out.  0, the server's -errno (with its message in err), or
 * -ECONNREFUSED / -ECONNRESET / -EPROTO / -E2BIG for socket problems. */
int ctl_request (const char *sock, int argc, char *const *argv,
                 struct remap_buf *out, struct remap_error *err);

/* The exit code for a -errno (0 for 0). */
int remapctl_exit_code (int r);

/* remapctl scan: argv are the arguments after "scan".  e is the engine
 * (offline) or NULL with ctl the control socket (online).  Returns an exit
 * code. */
int scan_main (struct remap_engine *e, const char *ctl, int argc,
               char **argv);

#endif /* REMAPCTL_H */
