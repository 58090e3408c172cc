/* remap admin: the control socket server.
 *
 * Threads and what they own:
 *
 *   acceptor   one thread: a poll loop over the listening socket, the wake
 *              pipe and every connection still sending its request
 *              ("waiting", at most max_waiting; each with a deadline of
 *              request_timeout_ms).  A silent client costs a slot of that
 *              table and nothing else; it is dropped at its deadline.
 *              A complete request goes to a free worker; with none free,
 *              or the waiting table full, the client gets "ERR 87 ..." at
 *              once (never a hang).  87 is EUSERS, used for nothing
 *              else: a script tells "not run, the server is busy: try
 *              again" from a command that failed with EBUSY (a unit that
 *              holds lost data).
 *   workers    at most max_workers threads, one per running command.  A
 *              worker owns its connection: it runs the command with a
 *              streaming sink whose chunks leave through send() with a
 *              deadline of send_timeout_ms each, so a client that does not
 *              read blocks only its own worker, until that deadline.
 *
 * The worker slots are the only shared state: a slot's `state' moves
 * FREE -> RUNNING (acceptor, before pthread_create) -> DONE (worker, its
 * last action) -> FREE (acceptor or close, after pthread_join).  Nothing
 * else is shared but the engine, whose API is thread-safe, and `stopping',
 * read by everyone, written once by remap_ctl_server_close.
 *
 * Stopping: remap_ctl_server_close sets `stopping' and writes the wake pipe,
 * which nobody drains: every poll() of every thread sees it from then on,
 * so the acceptor leaves its loop, a worker blocked in send() stops within
 * its poll, and a running command stops at its next step (it checks its
 * sink between steps).  Then every thread is joined: the wait is one step
 * of one command at most (one unit, or a read of at most 4 MiB).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "remap/remap.h"

enum { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

struct worker {
  pthread_t tid;
  atomic_int state;
  int fd;
  char *line;
  struct remap_ctl_server *s;
};

/* How long a complete request waits for a worker before it is refused. */
#define BUSY_GRACE_MS 1000

struct waiting {
  int fd;                       /* -1: slot unused */
  size_t len;
  int64_t deadline;             /* ms, monotonic: request (or, once ready,
                                   worker) deadline */
  bool ready;                   /* the request is complete */
  char buf[REMAP_CONTROL_MAX_LINE + 1];
};

struct remap_ctl_server {
  int listen_fd;
  int wake[2];
  char *path;
  struct remap_engine *e;
  struct remap_ctl_config cfg;
  pthread_t acceptor;
  bool serving;
  atomic_bool stopping;
  struct worker *workers;       /* cfg.max_workers */
  struct waiting *waiting;      /* cfg.max_waiting */
  int64_t accept_pause;         /* ms, monotonic: accept() failed for lack
                                   of fds or memory; the listening socket
                                   is not polled until then (it stays
                                   readable: polling it would spin) */
  bool starved;                 /* that was logged; cleared by an accept */
};

/* How long accepting pauses after it failed for lack of resources. */
#define ACCEPT_PAUSE_MS 100

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void __attribute__ ((format (printf, 3, 4)))
logf_ (const struct remap_ctl_server *s, int level, const char *fmt, ...)
{
  char msg[REMAP_ERROR_MSG_MAX + 128];
  va_list ap;

  if (!s->cfg.log)
    return;
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  s->cfg.log (level, msg);
}

/* ---- listening ---------------------------------------------------------- */

static int
check_existing (const char *path, const struct sockaddr_un *sun,
                struct remap_error *err)
{
  struct stat st;
  int fd, r;

  if (lstat (path, &st) == -1) {
    if (errno == ENOENT)
      return 0;
    return remap_set_error (err, -errno, "%s: %s", path, strerror (errno));
  }
  if (!S_ISSOCK (st.st_mode))
    return remap_set_error (err, -EEXIST, "%s exists and is not a socket; "
                            "refusing to replace it (give control= a path "
                            "where remap may create its socket)", path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1)
    return remap_set_error (err, -errno, "socket: %s", strerror (errno));
  r = connect (fd, (const struct sockaddr *) sun, sizeof *sun);
  r = r == 0 ? 0 : errno;
  close (fd);
  if (r == 0)
    return remap_set_error (err, -EADDRINUSE, "%s is in use by another "
                            "server; choose another path", path);
  if (r != ECONNREFUSED)
    return remap_set_error (err, -r, "%s exists and cannot be checked: %s",
                            path, strerror (r));
  if (unlink (path) == -1)
    return remap_set_error (err, -errno, "cannot remove the stale socket "
                            "%s: %s", path, strerror (errno));
  return 0;
}

int
remap_ctl_server_listen (const char *path, struct remap_ctl_server **sp,
                  struct remap_error *err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct remap_ctl_server *s;
  mode_t old;
  int r;

  *sp = NULL;
  if (strlen (path) >= sizeof sun.sun_path)
    return remap_set_error (err, -ENAMETOOLONG, "control socket path %s is "
                            "too long (at most %zu bytes); choose a shorter "
                            "one", path, sizeof sun.sun_path - 1);
  strcpy (sun.sun_path, path);
  if ((r = check_existing (path, &sun, err)) != 0)
    return r;
  s = calloc (1, sizeof *s);
  if (!s)
    return remap_set_error (err, -ENOMEM, "out of memory");
  s->wake[0] = s->wake[1] = -1;
  s->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                         0);
  if (s->listen_fd == -1) {
    r = remap_set_error (err, -errno, "socket: %s", strerror (errno));
    goto fail;
  }
  old = umask (0177);
  r = bind (s->listen_fd, (struct sockaddr *) &sun, sizeof sun);
  umask (old);
  if (r == -1) {
    r = remap_set_error (err, -errno, "bind %s: %s", path, strerror (errno));
    goto fail;
  }
  /* Each step named; the path printed from sun (the same bytes): with
   * "path" GCC's ASan build (-O1) warns that the argument may be null
   * (-Werror=format-overflow), and that build is part of the tests. */
  const char *step = NULL;
  if (chmod (path, 0600) == -1)
    step = "set the mode of";
  else if (listen (s->listen_fd, 64) == -1)
    step = "listen on";
  else if (pipe2 (s->wake, O_CLOEXEC | O_NONBLOCK) == -1)
    step = "create the wake pipe of";
  if (step) {
    int e = errno;
    r = remap_set_error (err, -e, "cannot %s the control socket %s: %s",
                         step, sun.sun_path, strerror (e));
    unlink (path);
    goto fail;
  }
  /* An absolute path: nbdkit may chdir ("/") when it forks into the
   * background, and close must still find the socket. */
  if (path[0] == '/')
    s->path = strdup (path);
  else {
    char *cwd = getcwd (NULL, 0);
    if (cwd && asprintf (&s->path, "%s/%s", cwd, path) == -1)
      s->path = NULL;
    free (cwd);
  }
  if (!s->path) {
    unlink (path);
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto fail;
  }
  *sp = s;
  return 0;
 fail:
  remap_ctl_server_close (s, false);
  return r;
}

const char *
remap_ctl_server_path (const struct remap_ctl_server *s)
{
  return s->path;
}

/* ---- sending with a deadline -------------------------------------------- */

/* Send all of p within timeout_ms.  0, -ECANCELED (stopping), -ETIMEDOUT,
 * -EPIPE (the client went away). */
static int
send_all (struct remap_ctl_server *s, int fd, const char *p, size_t n,
          int timeout_ms)
{
  int64_t deadline = now_ms () + timeout_ms;

  while (n) {
    ssize_t w = send (fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= (size_t) w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return -EPIPE;
    if (atomic_load (&s->stopping))
      return -ECANCELED;
    int64_t left = deadline - now_ms ();
    if (left <= 0)
      return -ETIMEDOUT;
    struct pollfd pf[2] = { { .fd = fd, .events = POLLOUT },
                            { .fd = s->wake[0], .events = POLLIN } };
    if (poll (pf, 2, (int) left) == -1 && errno != EINTR)
      return -EPIPE;
    if (pf[1].revents)
      return -ECANCELED;
    if (pf[0].revents & (POLLERR | POLLHUP | POLLNVAL))
      return -EPIPE;
  }
  return 0;
}

struct conn {
  struct remap_ctl_server *s;
  int fd;
};

/* The sink's flush: one "D <n>\n" frame. */
static int
conn_flush (void *opaque, const char *p, size_t n)
{
  struct conn *c = opaque;
  char head[32];
  int r, len = snprintf (head, sizeof head, "D %zu\n", n);

  r = send_all (c->s, c->fd, head, (size_t) len, c->s->cfg.send_timeout_ms);
  return r ? r : send_all (c->s, c->fd, p, n, c->s->cfg.send_timeout_ms);
}

/* Between steps: stop when the server stops or the client hung up (closed
 * its end: POLLHUP; a client that only shut down its sending side, as
 * remapctl does, is still there). */
static int
conn_cancelled (void *opaque)
{
  struct conn *c = opaque;
  struct pollfd pf = { .fd = c->fd, .events = 0 };

  if (atomic_load (&c->s->stopping))
    return -ECANCELED;
  if (poll (&pf, 1, 0) == 1 && (pf.revents & (POLLHUP | POLLERR)))
    return -EPIPE;
  return 0;
}

/* "ERR <errno> <message>\n", the message on one line. */
static size_t
err_line (char *buf, size_t len, int r, const char *msg)
{
  size_t h;

  if (!msg || !msg[0])
    msg = strerror (-r);
  snprintf (buf, len, "ERR %d ", -r);
  h = strlen (buf);
  for (; *msg && h < len - 2; msg++)
    buf[h++] = ((unsigned char) *msg < 0x20 || *msg == 0x7f) ? ' ' : *msg;
  buf[h++] = '\n';
  buf[h] = '\0';
  return h;
}

/* Refuse a connection at once (best effort: its socket buffer is empty). */
static void
refuse (struct remap_ctl_server *s, int fd, int r, const char *msg)
{
  char line[REMAP_ERROR_MSG_MAX + 32];
  size_t n = err_line (line, sizeof line, r, msg);

  logf_ (s, REMAP_LOG_WARN, "remap: control: refused a client: %s", msg);
  send (fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  close (fd);
}

/* ---- workers -------------------------------------------------------------- */

/* The request as the log shows it: up to its end of line, at most 120
 * bytes, control bytes and bytes >= 0x7f as \xNN (a request is the
 * client's text: it must not write raw escape sequences into the log). */
static const char *
escaped (const char *line, char *buf, size_t len)
{
  size_t h = 0, i;

  for (i = 0; line[i] && line[i] != '\n' && line[i] != '\r' && i < 120
       && h + 5 < len; i++) {
    unsigned char c = (unsigned char) line[i];
    if (c < 0x20 || c >= 0x7f)
      h += (size_t) snprintf (buf + h, len - h, "\\x%02x", c);
    else
      buf[h++] = (char) c;
  }
  if (line[i] && line[i] != '\n' && line[i] != '\r' && h + 4 < len) {
    memcpy (buf + h, "...", 3);
    h += 3;
  }
  buf[h] = '\0';
  return buf;
}

static void *
worker_main (void *arg)
{
  struct worker *w = arg;
  struct remap_ctl_server *s = w->s;
  struct conn c = { .s = s, .fd = w->fd };
  struct remap_error err = { 0 };
  char *argv[REMAP_CONTROL_MAX_ARGS];
  char status[REMAP_ERROR_MSG_MAX + 32];
  struct remap_out out;
  char shown[4 * 120 + 8];
  int argc, r, sent;

  logf_ (s, REMAP_LOG_DEBUG, "remap: control: request: %s",
         escaped (w->line, shown, sizeof shown));
  argc = remap_control_split (w->line, argv, REMAP_CONTROL_MAX_ARGS);
  remap_out_stream (&out, conn_flush, conn_cancelled, &c);
  if (argc < 0)
    r = remap_set_error (&err, -EINVAL, "malformed request (control "
                         "characters, or more than %u arguments)",
                         REMAP_CONTROL_MAX_ARGS);
  else
    r = remap_admin_exec (s->e, argc, argv, &out, &err);
  sent = remap_out_finish (&out);
  /* The status line goes out unless the client cannot take it (gone, or
   * not reading); when the server is stopping it is tried once, without
   * waiting. */
  if (sent == 0 || sent == -ENOMEM || sent == -ECANCELED) {
    if (r == 0 && sent)
      r = remap_set_error (&err, sent, "%s", sent == -ENOMEM
                           ? "out of memory" : "cancelled: the server is "
                           "stopping");
    if (r == 0)
      snprintf (status, sizeof status, "OK\n");
    else
      err_line (status, sizeof status, r, err.msg);
    sent = send_all (s, c.fd, status, strlen (status),
                     s->cfg.send_timeout_ms);
  }
  if (r)
    logf_ (s, REMAP_LOG_DEBUG, "remap: control: %s failed: %s",
           argc > 0 ? argv[0] : "request", err.msg[0] ? err.msg
           : strerror (-r));
  if (sent)
    logf_ (s, REMAP_LOG_DEBUG, "remap: control: reply not delivered: %s",
           sent == -ETIMEDOUT ? "the client did not read it in time"
           : sent == -ECANCELED ? "the server is stopping"
           : "the client went away");
  free (w->line);
  w->line = NULL;
  /* Done before the client sees the end of its reply, so that its next
   * request finds the slot free (the acceptor's join waits for the few
   * instructions left). */
  atomic_store (&w->state, SLOT_DONE);
  close (c.fd);
  return NULL;
}

/* Join the workers that finished. */
static void
reap (struct remap_ctl_server *s, bool all)
{
  for (unsigned i = 0; i < s->cfg.max_workers; i++) {
    struct worker *w = &s->workers[i];
    int st = atomic_load (&w->state);
    if (st == SLOT_DONE || (all && st == SLOT_RUNNING)) {
      pthread_join (w->tid, NULL);
      atomic_store (&w->state, SLOT_FREE);
    }
  }
}

/* Hand a complete request to a free worker.  With none free it waits
 * (polled by the acceptor) up to BUSY_GRACE_MS, then it is refused: a
 * client that sends its next request as soon as it read the previous
 * reply must not be refused because that worker has not quite ended. */
static void
dispatch (struct remap_ctl_server *s, struct waiting *q)
{
  struct worker *w = NULL;
  char msg[160];

  /* The request is a C string from here on: a NUL byte would end it
   * early and the rest would be dropped without a word (the command run
   * would not be the one sent). */
  if (memchr (q->buf, '\0', q->len)) {
    refuse (s, q->fd, -EINVAL, "malformed request: it holds a NUL byte; "
            "send one line of text ending with a newline");
    q->fd = -1;
    return;
  }
  reap (s, false);
  for (unsigned i = 0; i < s->cfg.max_workers && !w; i++)
    if (atomic_load (&s->workers[i].state) == SLOT_FREE)
      w = &s->workers[i];
  if (!w && !q->ready) {
    q->ready = true;
    q->deadline = now_ms () + BUSY_GRACE_MS;
    return;
  }
  if (!w && now_ms () < q->deadline)
    return;
  if (!w) {
    snprintf (msg, sizeof msg, "the control socket runs at most %u commands "
              "at once and all are busy; try again when one has finished",
              s->cfg.max_workers);
    refuse (s, q->fd, -EUSERS, msg);
    q->fd = -1;
    return;
  }
  q->buf[q->len] = '\0';
  w->line = strdup (q->buf);
  w->fd = q->fd;
  w->s = s;
  q->fd = -1;
  atomic_store (&w->state, SLOT_RUNNING);
  int r = w->line ? pthread_create (&w->tid, NULL, worker_main, w) : ENOMEM;
  if (r) {
    atomic_store (&w->state, SLOT_FREE);
    free (w->line);
    w->line = NULL;
    refuse (s, w->fd, -r, "cannot start a thread for the command");
  }
}

/* ---- the acceptor ---------------------------------------------------------- */

/* Read what a waiting client sent.  true when the slot is settled
 * (dispatched, refused or dropped). */
static bool
read_request (struct remap_ctl_server *s, struct waiting *q)
{
  for (;;) {
    ssize_t n = recv (q->fd, q->buf + q->len, REMAP_CONTROL_MAX_LINE - q->len,
                      MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return false;
    if (n <= 0) {               /* closed (or an error) */
      /* A line without its newline is a request cut short (a client that
       * died mid-send, or a Ctrl-C in nc -U): "unmap --discard-data -u
       * 12" may be the start of "... -u 123".  Never run it. */
      if (q->len > 0 && n == 0) {
        refuse (s, q->fd, -EINVAL, "request cut short: the connection "
                "ended before its newline; nothing was run (end the "
                "request with a newline)");
        q->fd = -1;
        return true;
      }
      close (q->fd);
      q->fd = -1;
      return true;
    }
    char *nl = memchr (q->buf + q->len, '\n', (size_t) n);
    q->len += (size_t) n;
    if (nl) {
      q->len = (size_t) (nl - q->buf) + 1;
      dispatch (s, q);
      return true;
    }
    if (q->len == REMAP_CONTROL_MAX_LINE) {
      char msg[96];
      snprintf (msg, sizeof msg, "request longer than %u bytes",
                REMAP_CONTROL_MAX_LINE);
      refuse (s, q->fd, -E2BIG, msg);
      q->fd = -1;
      return true;
    }
  }
}

static void
accept_new (struct remap_ctl_server *s)
{
  for (;;) {
    int fd = accept4 (s->listen_fd, NULL, NULL,
                      SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd == -1 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
                     || errno == ENOMEM)) {
      /* The client stays in the backlog: it is served when fds are
       * free again, or its own timeout ends its wait. */
      if (!s->starved)
        logf_ (s, REMAP_LOG_WARN, "remap: control: cannot accept a control "
               "connection: %s (%s); retrying every %d ms (raise the limit "
               "of open files, ulimit -n, or close connections)",
               errno == ENOBUFS || errno == ENOMEM ? "out of memory"
               : "out of file descriptors", strerror (errno),
               ACCEPT_PAUSE_MS);
      s->starved = true;
      s->accept_pause = now_ms () + ACCEPT_PAUSE_MS;
      return;
    }
    if (fd == -1)
      return;                   /* EAGAIN, or a client gone already */
    if (s->starved)
      logf_ (s, REMAP_LOG_WARN, "remap: control: accepting connections "
             "again");
    s->starved = false;
    struct waiting *q = NULL;
    for (unsigned i = 0; i < s->cfg.max_waiting && !q; i++)
      if (s->waiting[i].fd == -1)
        q = &s->waiting[i];
    if (!q) {
      char msg[160];
      snprintf (msg, sizeof msg, "too many control connections (%u are "
                "still sending their request); try again in a few seconds",
                s->cfg.max_waiting);
      refuse (s, fd, -EUSERS, msg);
      continue;
    }
    q->fd = fd;
    q->len = 0;
    q->ready = false;
    q->deadline = now_ms () + s->cfg.request_timeout_ms;
  }
}

static void *
acceptor_main (void *arg)
{
  struct remap_ctl_server *s = arg;
  unsigned nw = s->cfg.max_waiting;
  struct pollfd *pf = calloc (nw + 2, sizeof *pf);
  struct waiting **idx = calloc (nw, sizeof *idx);

  if (!pf || !idx) {
    logf_ (s, REMAP_LOG_ERROR, "remap: control: out of memory; the control "
           "socket is not served");
    goto out;
  }
  while (!atomic_load (&s->stopping)) {
    int64_t now = now_ms (), next = -1;
    nfds_t n = 2;

    pf[0] = (struct pollfd) { .fd = s->wake[0], .events = POLLIN };
    pf[1] = (struct pollfd) { .fd = s->listen_fd, .events = POLLIN };
    if (s->accept_pause > now) {
      pf[1].fd = -1;            /* ignored by poll */
      next = s->accept_pause - now;
    }
    for (unsigned i = 0; i < nw; i++) {
      struct waiting *q = &s->waiting[i];
      if (q->fd != -1 && q->ready) {
        dispatch (s, q);        /* a worker free now?  or refused */
        if (q->fd != -1)
          next = next == -1 || next > 10 ? 10 : next;
        continue;
      }
      if (q->fd == -1)
        continue;
      if (q->deadline <= now) {
        logf_ (s, REMAP_LOG_DEBUG, "remap: control: dropped a client that "
               "sent no complete request in %d ms", s->cfg.request_timeout_ms);
        close (q->fd);
        q->fd = -1;
        continue;
      }
      if (next == -1 || q->deadline - now < next)
        next = q->deadline - now;
      idx[n - 2] = q;
      pf[n++] = (struct pollfd) { .fd = q->fd, .events = POLLIN };
    }
    int r = poll (pf, n, (int) next);
    if (r == -1 && errno != EINTR) {
      logf_ (s, REMAP_LOG_ERROR, "remap: control: poll: %s", strerror (errno));
      break;
    }
    if (r <= 0)
      continue;
    if (pf[0].revents)
      break;
    for (nfds_t i = 2; i < n; i++)
      if (pf[i].revents)
        read_request (s, idx[i - 2]);
    if (pf[1].revents)
      accept_new (s);
  }
 out:
  for (unsigned i = 0; i < nw; i++)
    if (s->waiting[i].fd != -1) {
      close (s->waiting[i].fd);
      s->waiting[i].fd = -1;
    }
  free (pf);
  free (idx);
  return NULL;
}

int
remap_ctl_server_serve (struct remap_ctl_server *s, struct remap_engine *e,
                 const struct remap_ctl_config *cfg, struct remap_error *err)
{
  int r;

  if (s->serving)
    return 0;
  s->e = e;
  if (cfg)
    s->cfg = *cfg;
  if (!s->cfg.max_workers)
    s->cfg.max_workers = 4;
  if (!s->cfg.max_waiting)
    s->cfg.max_waiting = 64;
  if (s->cfg.request_timeout_ms <= 0)
    s->cfg.request_timeout_ms = 5000;
  if (s->cfg.send_timeout_ms <= 0)
    s->cfg.send_timeout_ms = 10000;
  s->workers = calloc (s->cfg.max_workers, sizeof *s->workers);
  s->waiting = calloc (s->cfg.max_waiting, sizeof *s->waiting);
  if (!s->workers || !s->waiting)
    return remap_set_error (err, -ENOMEM, "out of memory");
  for (unsigned i = 0; i < s->cfg.max_waiting; i++)
    s->waiting[i].fd = -1;
  r = pthread_create (&s->acceptor, NULL, acceptor_main, s);
  if (r)
    return remap_set_error (err, -r, "cannot start the control thread: %s",
                            strerror (r));
  s->serving = true;
  logf_ (s, REMAP_LOG_DEBUG, "remap: control: serving %s (%u workers, "
         "request timeout %d ms, send timeout %d ms)", s->path,
         s->cfg.max_workers, s->cfg.request_timeout_ms,
         s->cfg.send_timeout_ms);
  return 0;
}

void
remap_ctl_server_close (struct remap_ctl_server *s, bool unlink_path)
{
  if (!s)
    return;
  if (s->serving) {
    ssize_t w;
    atomic_store (&s->stopping, true);
    do
      w = write (s->wake[1], "x", 1);
    while (w == -1 && errno == EINTR);
    pthread_join (s->acceptor, NULL);
    reap (s, true);
    s->serving = false;
  }
  if (s->listen_fd >= 0)
    close (s->listen_fd);
  for (int i = 0; i < 2; i++)
    if (s->wake[i] >= 0)
      close (s->wake[i]);
  if (s->path && unlink_path)
    unlink (s->path);
  free (s->path);
  free (s->workers);
  free (s->waiting);
  free (s);
}
