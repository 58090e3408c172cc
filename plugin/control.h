/* remap plugin: the control socket (control=PATH), served by the admin
 * library (admin/server.c, protocol in admin/admin.h and remapctl.pod):
 * remapctl's commands on the plugin's engine, several clients at once,
 * every wait bounded.  The data path never waits for the control threads:
 * commands use the engine's thread-safe API.
 */
#ifndef REMAP_PLUGIN_CONTROL_H
#define REMAP_PLUGIN_CONTROL_H

#include "remap/error.h"

struct remap_engine;

/* In .get_ready: create the AF_UNIX socket at path, mode 0600, and listen.
 * Refuses (-EEXIST) if path exists and is not a stale socket (a socket
 * nobody listens on is replaced); -errno with a message in err. */
int remap_ctl_listen (const char *path, struct remap_error *err);

/* In .after_fork: start the thread serving the socket on engine e.
 * 0, or -1 after nbdkit_error.  No-op (0) if remap_ctl_listen was not
 * called. */
int remap_ctl_start (struct remap_engine *e);

/* In .cleanup (before the engine is closed): stop and join the threads
 * (at most one bounded step of a running command), close the socket and
 * remove its path.  Safe to call more than once, and when nothing was
 * started. */
void remap_ctl_stop (void);

#endif /* REMAP_PLUGIN_CONTROL_H */
