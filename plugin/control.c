/* remap plugin: the control socket (control=PATH).  The server itself is
 * the admin library's (admin/server.c: bounded workers, timeouts, streamed
 * replies, a stop that never waits for a client); this file ties it to
 * nbdkit's lifecycle and log.
 *
 * Only the process that started the server removes the socket's path: the
 * parent of a daemonising nbdkit leaves it alone, and a path left behind
 * by a crash is recognised as stale and replaced.
 */

#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "admin.h"
#include "remap/remap.h"
#include "control.h"

static struct remap_ctl_server *server;
static bool serving;
static pid_t serving_pid;

static void
ctl_log (int level, const char *msg)
{
  if (level >= REMAP_LOG_ERROR)
    nbdkit_error ("%s", msg);
  else
    nbdkit_debug ("%s", msg);
}

int
remap_ctl_listen (const char *path, struct remap_error *err)
{
  int r = remap_ctl_server_listen (path, &server, err);
  if (r == 0)
    nbdkit_debug ("remap: control: listening on %s (mode 0600)", path);
  return r;
}

int
remap_ctl_start (struct remap_engine *e)
{
  struct remap_ctl_config cfg = { .log = ctl_log };
  struct remap_error err = { 0 };

  if (!server || serving)
    return 0;
  if (remap_ctl_server_serve (server, e, &cfg, &err) != 0) {
    nbdkit_error ("remap: control: %s", err.msg);
    return -1;
  }
  serving = true;
  serving_pid = getpid ();
  return 0;
}

void
remap_ctl_stop (void)
{
  bool owner = serving && serving_pid == getpid ();

  /* Not the owner (the parent of a daemonising nbdkit): its copy of the
   * server has no threads; close the descriptors, keep the path. */
  remap_ctl_server_close (server, owner);
  if (owner)
    nbdkit_debug ("remap: control: stopped");
  server = NULL;
  serving = false;
}
