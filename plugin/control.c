/* remap plugin: the control socket.  See control.h for the protocol and
 * tools/remapctl/remapctl.pod for the commands.
 *
 * One thread accepts connections one at a time and runs each request with
 * remap_control_exec on the engine; waits (accept, reading a slow client)
 * are poll()s that also watch a self-pipe, so remap_ctl_stop never waits
 * for a client.  Only the process that started the thread removes the
 * socket's path: the parent of a daemonising nbdkit leaves it alone, and a
 * path left behind by a crash is recognised as stale and replaced.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "remap/control.h"
#include "remap/remap.h"
#include "control.h"

#define CLIENT_TIMEOUT_MS 30000

static int listen_fd = -1;
static int wake[2] = { -1, -1 };
static char *sock_path;
static struct remap_engine *ctl_engine;
static pthread_t ctl_thread;
static bool running;
static pid_t running_pid;

int
remap_ctl_listen (const char *path, struct remap_error *err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct stat st;
  mode_t old;
  int fd, r;

  if (strlen (path) >= sizeof sun.sun_path)
    return remap_set_error (err, -ENAMETOOLONG, "socket path is too long "
                            "(at most %zu bytes)", sizeof sun.sun_path - 1);
  strcpy (sun.sun_path, path);
  if (lstat (path, &st) == 0) {
    if (!S_ISSOCK (st.st_mode))
      return remap_set_error (err, -EEXIST, "%s exists and is not a socket; "
                              "refusing to replace it", path);
    fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
      return remap_set_error (err, -errno, "socket: %s", strerror (errno));
    r = connect (fd, (struct sockaddr *) &sun, sizeof sun);
    r = r == 0 ? 0 : errno;
    close (fd);
    if (r == 0)
      return remap_set_error (err, -EADDRINUSE, "%s is in use by another "
                              "server; choose another path", path);
    if (r != ECONNREFUSED)
      return remap_set_error (err, -r, "%s exists and cannot be checked: %s",
                              path, strerror (r));
    nbdkit_debug ("remap: control: replacing stale socket %s", path);
    if (unlink (path) == -1)
      return remap_set_error (err, -errno, "cannot remove stale socket %s: "
                              "%s", path, strerror (errno));
  }
  else if (errno != ENOENT)
    return remap_set_error (err, -errno, "%s: %s", path, strerror (errno));

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return remap_set_error (err, -errno, "socket: %s", strerror (errno));
  old = umask (0177);
  r = bind (fd, (struct sockaddr *) &sun, sizeof sun);
  umask (old);
  if (r == -1) {
    r = -errno;
    close (fd);
    return remap_set_error (err, r, "bind %s: %s", path, strerror (-r));
  }
  if (chmod (path, 0600) == -1 || listen (fd, 16) == -1) {
    r = -errno;
    close (fd);
    unlink (path);
    return remap_set_error (err, r, "%s: %s", path, strerror (-r));
  }
  if (pipe2 (wake, O_CLOEXEC | O_NONBLOCK) == -1) {
    r = -errno;
    close (fd);
    unlink (path);
    return remap_set_error (err, r, "pipe: %s", strerror (-r));
  }
  /* Remember an absolute path: nbdkit may chdir ("/") when it forks into
   * the background, and .cleanup must still find the socket. */
  if (path[0] == '/')
    sock_path = strdup (path);
  else {
    char *cwd = getcwd (NULL, 0);
    if (cwd && asprintf (&sock_path, "%s/%s", cwd, path) == -1)
      sock_path = NULL;
    free (cwd);
  }
  if (!sock_path) {
    close (fd);
    unlink (path);
    return remap_set_error (err, -ENOMEM, "out of memory");
  }
  listen_fd = fd;
  nbdkit_debug ("remap: control: listening on %s (mode 0600)", path);
  return 0;
}

/* Wait until fd is readable or stop is asked.  1 readable, 0 stop or
 * timeout, -1 error. */
static int
wait_readable (int fd, int timeout_ms)
{
  struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
                         { .fd = wake[0], .events = POLLIN } };
  for (;;) {
    int r = poll (p, 2, timeout_ms);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1)
      return -1;
    if (r == 0 || p[1].revents)
      return 0;
    return 1;
  }
}

static void
send_all (int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = send (fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;                   /* the client went away */
    p += w;
    n -= (size_t) w;
  }
}

static void
serve (int c)
{
  char line[REMAP_CONTROL_MAX_LINE + 1];
  char *argv[REMAP_CONTROL_MAX_ARGS];
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  size_t len = 0;
  char head[REMAP_ERROR_MSG_MAX + 32];
  int argc, r;

  /* Read one line. */
  while (!memchr (line, '\n', len)) {
    ssize_t n;
    if (len == REMAP_CONTROL_MAX_LINE) {
      r = remap_set_error (&err, -E2BIG, "request longer than %u bytes",
                           REMAP_CONTROL_MAX_LINE);
      goto reply;
    }
    if (wait_readable (c, CLIENT_TIMEOUT_MS) != 1)
      return;
    n = recv (c, line + len, REMAP_CONTROL_MAX_LINE - len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return;
    if (n == 0)
      break;
    len += (size_t) n;
  }
  line[len] = '\0';
  {
    char *nl = strchr (line, '\n');
    if (nl)
      nl[1] = '\0';
  }
  nbdkit_debug ("remap: control: request: %.*s", (int) strcspn (line, "\n"),
                line);
  argc = remap_control_split (line, argv, REMAP_CONTROL_MAX_ARGS);
  if (argc < 0)
    r = remap_set_error (&err, -EINVAL, "malformed request (control "
                         "characters or more than %u arguments)",
                         REMAP_CONTROL_MAX_ARGS);
  else
    r = remap_control_exec (ctl_engine, argc, argv, &out, &err);
  if (r == 0 && out.failed)
    r = remap_set_error (&err, -ENOMEM, "out of memory");

 reply:
  if (r == 0)
    snprintf (head, sizeof head, "OK\n");
  else {
    const char *m = err.msg[0] ? err.msg : strerror (-r);
    snprintf (head, sizeof head, "ERR %d ", -r);
    size_t h = strlen (head);
    for (; *m && h < sizeof head - 2; m++)
      head[h++] = (*m == '\n' || *m == '\r') ? ' ' : *m;
    head[h++] = '\n';
    head[h] = '\0';
    nbdkit_debug ("remap: control: %s", head);
  }
  send_all (c, head, strlen (head));
  if (out.len)
    send_all (c, out.data, out.len);
  remap_buf_free (&out);
}

static void *
thread_main (void *arg)
{
  (void) arg;
  for (;;) {
    int r = wait_readable (listen_fd, -1);
    if (r == 0)
      break;                    /* stop */
    if (r == -1) {
      nbdkit_error ("remap: control: poll: %m");
      break;
    }
    int c = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c == -1)
      continue;
    serve (c);
    close (c);
  }
  return NULL;
}

int
remap_ctl_start (struct remap_engine *e)
{
  int r;

  if (listen_fd == -1 || running)
    return 0;
  ctl_engine = e;
  r = pthread_create (&ctl_thread, NULL, thread_main, NULL);
  if (r) {
    nbdkit_error ("remap: control: cannot start the control thread: %s",
                  strerror (r));
    return -1;
  }
  running = true;
  running_pid = getpid ();
  return 0;
}

void
remap_ctl_stop (void)
{
  bool owner = running && running_pid == getpid ();

  if (owner) {
    ssize_t w;
    do
      w = write (wake[1], "x", 1);
    while (w == -1 && errno == EINTR);
    pthread_join (ctl_thread, NULL);
    running = false;
  }
  if (listen_fd >= 0) {
    close (listen_fd);
    listen_fd = -1;
  }
  for (int i = 0; i < 2; i++)
    if (wake[i] >= 0) {
      close (wake[i]);
      wake[i] = -1;
    }
  if (sock_path) {
    if (owner) {
      unlink (sock_path);
      nbdkit_debug ("remap: control: removed %s", sock_path);
    }
    free (sock_path);
    sock_path = NULL;
  }
  ctl_engine = NULL;
}
