/* Unit tests: the control socket server (admin/server.c) and its client
 * (admin/client.c), with real AF_UNIX sockets over a mem engine.
 *
 * One behaviour per test: a client that never reads a large reply blocks
 * only itself, until its send deadline; a silent client is dropped at its
 * request deadline and stalls nobody; many silent clients; past the
 * bounds a client is refused with a message, never left hanging; closing
 * the server while clients are stuck returns at once; a scan stops when
 * its client goes away; and many clients at once (run under TSan in CI)
 * leave the table exactly as the requests that succeeded say.
 */

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "admin.h"
#include "remap/remap.h"

#define U 4096u
#define ORIGIN_SIZE (16u << 20)         /* 4096 units */
#define SPARE_SIZE (2u << 20)

static struct remap_backend *origin_mem, *spare_mem, *ofault;
static struct remap_engine *e;
static struct remap_ctl_server *srv;
static char sock_path[108];
static char dir[64];

/* Messages of the server, for the tests that check what it did. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];

static void
test_log (int level, const char *msg)
{
  (void) level;
  pthread_mutex_lock (&log_lock);
  size_t n = strlen (log_text);
  snprintf (log_text + n, sizeof log_text - n, "%s\n", msg);
  pthread_mutex_unlock (&log_lock);
}

static bool
log_has (const char *s)
{
  pthread_mutex_lock (&log_lock);
  bool r = strstr (log_text, s) != NULL;
  pthread_mutex_unlock (&log_lock);
  return r;
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_us (unsigned us)
{
  usleep (us);
}

/* An engine over a fault-wrapped mem origin (rules added by the tests),
 * and a server on it. */
static void
start (unsigned workers, unsigned waiting, int req_ms, int send_ms)
{
  struct remap_format_opts fo;
  struct remap_backend *o, *s;
  struct remap_error err = { 0 };
  struct remap_open_opts oo = { .no_lock = true, .read_retries = 1,
                                .retry_delay_us = 20000,
                                .sleep_us = sleep_us };
  struct remap_ctl_config cfg = { .max_workers = workers,
                                  .max_waiting = waiting,
                                  .request_timeout_ms = req_ms,
                                  .send_timeout_ms = send_ms,
                                  .log = test_log };

  log_text[0] = '\0';
  ck_assert_int_eq (remap_mem_create (ORIGIN_SIZE, &origin_mem), 0);
  ck_assert_int_eq (remap_mem_create (SPARE_SIZE, &spare_mem), 0);
  remap_format_opts_init (&fo);
  fo.unit = U;
  fo.origin_label = "origin";
  ck_assert_msg (remap_format (origin_mem, spare_mem, &fo, &err) == 0,
                 "format: %s", err.msg);
  ck_assert_int_eq (remap_mem_share (origin_mem, &o), 0);
  ck_assert_int_eq (remap_mem_share (spare_mem, &s), 0);
  ck_assert_int_eq (remap_fault_create (o, true, &ofault), 0);
  ck_assert_msg (remap_open (ofault, s, &oo, &e, &err) == 0, "open: %s",
                 err.msg);

  snprintf (dir, sizeof dir, "/tmp/remap-ctlsock.XXXXXX");
  ck_assert_ptr_nonnull (mkdtemp (dir));
  snprintf (sock_path, sizeof sock_path, "%s/ctl.sock", dir);
  ck_assert_msg (remap_ctl_server_listen (sock_path, &srv, &err) == 0,
                 "listen: %s", err.msg);
  ck_assert_msg (remap_ctl_server_serve (srv, e, &cfg, &err) == 0,
                 "serve: %s", err.msg);
}

static void
stop (void)
{
  remap_ctl_server_close (srv, true);
  srv = NULL;
  ck_assert_int_eq (access (sock_path, F_OK), -1);
  rmdir (dir);
  remap_close (e);
  e = NULL;
  remap_backend_close (origin_mem);
  remap_backend_close (spare_mem);
}

static int
connect_raw (void)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  ck_assert_int_ge (fd, 0);
  strcpy (sun.sun_path, sock_path);
  ck_assert_int_eq (connect (fd, (struct sockaddr *) &sun, sizeof sun), 0);
  return fd;
}

static void
send_line (int fd, const char *line)
{
  size_t n = strlen (line);
  ck_assert_int_eq (send (fd, line, n, MSG_NOSIGNAL), (ssize_t) n);
}

/* Everything until EOF (at most max bytes, within timeout_s); returns the
 * bytes read, -1 on timeout. */
static ssize_t
read_all (int fd, char *buf, size_t max, double timeout_s)
{
  size_t len = 0;
  double end = now_s () + timeout_s;

  for (;;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int left = (int) ((end - now_s ()) * 1000);
    if (left <= 0 || poll (&p, 1, left) != 1)
      return -1;
    ssize_t n = recv (fd, buf + len, max - len - 1, 0);
    if (n <= 0) {
      buf[len] = '\0';
      return (ssize_t) len;
    }
    len += (size_t) n;
    if (len == max - 1) {
      buf[len] = '\0';
      return (ssize_t) len;
    }
  }
}

/* A request through the client library, output in *out (reset first). */
static int
request (const char *line, struct remap_buf *out, struct remap_error *err)
{
  char buf[256], *argv[REMAP_CONTROL_MAX_ARGS];
  struct remap_out o;
  int argc, r;

  snprintf (buf, sizeof buf, "%s", line);
  argc = remap_control_split (buf, argv, REMAP_CONTROL_MAX_ARGS);
  ck_assert_int_gt (argc, 0);
  remap_buf_reset (out);
  remap_error_clear (err);
  remap_out_memory (&o, out);
  r = remap_ctl_request (sock_path, argc, argv, &o, err);
  remap_out_finish (&o);
  return r;
}

/* status --json through the socket answers, parsed by json-c, in less
 * than max_s seconds. */
static void
assert_status_fast (double max_s)
{
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  double t0 = now_s ();
  int r = request ("status --json", &out, &err);
  double dt = now_s () - t0;
  struct json_object *o;
  uint64_t unit;

  ck_assert_msg (r == 0, "status: %d %s", r, err.msg);
  ck_assert_msg (dt < max_s, "status took %.2f s (want < %.2f)", dt, max_s);
  o = remap_json_parse (out.data, out.len);
  ck_assert_msg (o && remap_json_u64 (o, "geometry.unit", &unit)
                 && unit == U, "status: %s", out.data);
  json_object_put (o);
  remap_buf_free (&out);
}

/* ---- tests ------------------------------------------------------------- */

/* 100 remapped units exported with --block-size 1 is 409600 lines (about
 * 2.7 MB).  A client that asks for it and never reads keeps only its own
 * worker, until the send deadline; others are served meanwhile. */
START_TEST (test_stuck_reader)
{
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };

  start (2, 16, 2000, 700);
  ck_assert_int_eq (request ("remap -u 0 100", &out, &err), 0);
  int stuck = connect_raw ();
  int rcv = 4096;
  setsockopt (stuck, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  send_line (stuck, "export --format badblocks --block-size 1\n");
  usleep (100000);
  for (int i = 0; i < 5; i++)
    assert_status_fast (1.0);
  /* The stuck worker gives up at its send deadline. */
  double t0 = now_s ();
  while (!log_has ("did not read it in time") && now_s () - t0 < 3)
    usleep (20000);
  ck_assert_msg (log_has ("did not read it in time"), "log:\n%s", log_text);
  /* Its slot is free again: two commands at once still work. */
  assert_status_fast (1.0);
  close (stuck);

  /* A client that reads gets the whole reply, streamed. */
  ck_assert_int_eq (request ("export --format badblocks --block-size 1",
                             &out, &err), 0);
  ck_assert_uint_eq (out.len, 2756090);      /* sum of "n\n", n < 409600 */
  ck_assert (strncmp (out.data, "0\n1\n2\n", 6) == 0);
  ck_assert (strcmp (out.data + out.len - 7, "409599\n") == 0);
  remap_buf_free (&out);
  stop ();
}
END_TEST

/* A client that connects and sends nothing is dropped at its deadline and
 * stalls no one meanwhile. */
START_TEST (test_silent_client)
{
  char buf[256];

  start (1, 16, 2000, 1000);
  int silent = connect_raw ();
  double t0 = now_s ();
  assert_status_fast (1.0);
  ssize_t n = read_all (silent, buf, sizeof buf, 5);
  double dt = now_s () - t0;
  ck_assert_msg (n == 0, "the silent client got %zd bytes", n);
  ck_assert_msg (dt > 1.9 && dt < 3.5, "dropped after %.2f s (deadline "
                 "2 s)", dt);
  close (silent);
  /* Half a request, then silence: dropped too. */
  silent = connect_raw ();
  send_line (silent, "stat");
  ck_assert_int_eq (read_all (silent, buf, sizeof buf, 5), 0);
  close (silent);
  stop ();
}
END_TEST

/* 20 silent clients (more than the old listen backlog of 16): every one is
 * held without a worker, others are still served at once. */
START_TEST (test_many_silent_clients)
{
  int fds[20];
  char buf[256];

  start (2, 64, 2500, 1000);
  for (int i = 0; i < 20; i++)
    fds[i] = connect_raw ();
  for (int i = 0; i < 3; i++)
    assert_status_fast (1.0);   /* well before the silent ones' 2.5 s */
  for (int i = 0; i < 20; i++) {
    ck_assert_int_eq (read_all (fds[i], buf, sizeof buf, 5), 0);
    close (fds[i]);
  }
  stop ();
}
END_TEST

/* Past the bounds: refused at once with a message that says why. */
START_TEST (test_refused_past_bounds)
{
  int fds[6];
  char buf[512];
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };

  start (1, 4, 3000, 4000);
  for (int i = 0; i < 4; i++)
    fds[i] = connect_raw ();
  usleep (100000);
  double t0 = now_s ();
  fds[4] = connect_raw ();
  ssize_t n = read_all (fds[4], buf, sizeof buf, 2);
  ck_assert_msg (n > 0 && now_s () - t0 < 1.0, "no refusal: %zd", n);
  ck_assert_msg (strncmp (buf, "ERR 87 too many control connections", 35)
                 == 0, "%s", buf);
  close (fds[4]);
  /* Through the client: -EUSERS (not -EBUSY, which a command that ran
   * may return) and the message. */
  ck_assert_int_eq (request ("status", &out, &err), -EUSERS);
  ck_assert_msg (strstr (err.msg, "try again"), "%s", err.msg);
  for (int i = 0; i < 4; i++)
    close (fds[i]);
  usleep (100000);

  /* One worker, busy with a stuck reader: the next command is refused. */
  ck_assert_int_eq (request ("remap -u 0 100", &out, &err), 0);
  int rcv = 4096;
  fds[5] = connect_raw ();
  setsockopt (fds[5], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  send_line (fds[5], "export --format badblocks --block-size 1\n");
  usleep (100000);
  double t1 = now_s ();
  int r = request ("status", &out, &err);
  if (r != -EUSERS)
    fprintf (stderr, "log:\n%s", log_text);
  ck_assert_msg (r == -EUSERS, "status: %d %s", r, err.msg);
  /* after the grace of a second for a worker to end */
  ck_assert_msg (now_s () - t1 > 0.9 && now_s () - t1 < 2.5, "refused "
                 "after %.2f s", now_s () - t1);
  ck_assert_msg (strstr (err.msg, "at most 1 commands at once"), "%s",
                 err.msg);
  close (fds[5]);
  remap_buf_free (&out);
  stop ();
}
END_TEST

/* Closing the server while clients are stuck (one not reading, one
 * silent, one half-way through a slow scan) takes well under a second. */
START_TEST (test_close_with_stuck_clients)
{
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  struct remap_fault_rule rule = { .off = 0, .len = ORIGIN_SIZE,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };

  start (4, 16, 10000, 10000);
  ck_assert_int_eq (request ("remap -u 0 100", &out, &err), 0);
  int rcv = 4096;
  int a = connect_raw ();
  setsockopt (a, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  send_line (a, "export --format badblocks --block-size 1\n");
  int b = connect_raw ();
  ck_assert_int_eq (remap_fault_add_rule (ofault, &rule), 0);
  int c = connect_raw ();
  send_line (c, "scan -u 200 2000\n");
  usleep (300000);
  double t0 = now_s ();
  remap_ctl_server_close (srv, true);
  srv = NULL;
  double dt = now_s () - t0;
  ck_assert_msg (dt < 1.0, "close took %.2f s", dt);
  /* The scan stopped early: the last units were never read. */
  ck_assert_int_eq (remap_unit_pending (e, 2199), 0);
  /* Its client learns it was cancelled. */
  char buf[4096];
  ssize_t n = read_all (c, buf, sizeof buf, 2);
  ck_assert_msg (n > 0 && strstr (buf, "ERR 125 scan stopped after"),
                 "%s", n > 0 ? buf : "(nothing)");
  close (a);
  close (b);
  close (c);
  remap_fault_clear_rules (ofault);
  srv = NULL;
  rmdir (dir);
  unlink (sock_path);
  remap_close (e);
  e = NULL;
  remap_backend_close (origin_mem);
  remap_backend_close (spare_mem);
  remap_buf_free (&out);
}
END_TEST

/* A scan whose client goes away stops at its next step. */
START_TEST (test_scan_cancelled_by_client)
{
  struct remap_fault_rule rule = { .off = 0, .len = ORIGIN_SIZE,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };

  start (2, 16, 2000, 2000);
  ck_assert_int_eq (remap_fault_add_rule (ofault, &rule), 0);
  int c = connect_raw ();
  send_line (c, "scan -u 0 4096 --json\n");
  shutdown (c, SHUT_WR);        /* as remapctl does: still there */
  usleep (300000);
  ck_assert_msg (!log_has ("scan stopped"), "stopped while the client "
                 "was still there:\n%s", log_text);
  close (c);
  double t0 = now_s ();
  while (!log_has ("scan stopped after") && now_s () - t0 < 3)
    usleep (20000);
  ck_assert_msg (log_has ("scan stopped after"), "log:\n%s", log_text);
  ck_assert_int_eq (remap_unit_pending (e, 4095), 0);
  remap_fault_clear_rules (ofault);
  assert_status_fast (1.0);
  stop ();
}
END_TEST

/* Many clients at once changing and reading the table (TSan runs this):
 * each unit ends remapped exactly when its last successful command was a
 * remap. */
#define NCLIENTS 8
#define NROUNDS 25

static atomic_int busy_refusals;

static void *
client_thread (void *arg)
{
  int id = (int) (intptr_t) arg;
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  char line[64];

  for (int i = 0; i < NROUNDS; i++) {
    int unit = 1000 + id;
    static const char *const what[] = { "remap", "unmap", "status --json",
                                        "list --json" };
    const char *w = what[(id + i) % 4];
    if (w[0] == 'r' || w[0] == 'u')
      snprintf (line, sizeof line, "%s -u %d", w, unit);
    else
      snprintf (line, sizeof line, "%s", w);
    int r;
    do {
      r = request (line, &out, &err);
      if (r == -EUSERS)
        atomic_fetch_add (&busy_refusals, 1);
    } while (r == -EUSERS);
    ck_assert_msg (r == 0, "%s: %d %s", line, r, err.msg);
    if (w[0] == 's' || w[0] == 'l') {
      struct json_object *o = remap_json_parse (out.data, out.len);
      ck_assert_msg (o != NULL, "%s: not JSON: %s", line, out.data);
      json_object_put (o);
    }
  }
  remap_buf_free (&out);
  return NULL;
}

START_TEST (test_concurrent_clients)
{
  pthread_t t[NCLIENTS];

  start (4, 64, 2000, 2000);
  for (int i = 0; i < NCLIENTS; i++)
    ck_assert_int_eq (pthread_create (&t[i], NULL, client_thread,
                                      (void *) (intptr_t) i), 0);
  for (int i = 0; i < NCLIENTS; i++)
    pthread_join (t[i], NULL);
  /* The last command on unit 1000+id was what[(id + NROUNDS-1) % 4] or
   * the last remap/unmap before it. */
  for (int id = 0; id < NCLIENTS; id++) {
    const char *last = NULL;
    for (int i = 0; i < NROUNDS; i++) {
      int k = (id + i) % 4;
      if (k == 0)
        last = "remap";
      else if (k == 1)
        last = "unmap";
    }
    struct remap_mapping m;
    ck_assert_int_eq (remap_lookup (e, 1000 + id, &m), 0);
    ck_assert_int_eq (m.state, strcmp (last, "remap") == 0
                      ? REMAP_SLOT_MAPPED : REMAP_SLOT_FREE);
  }
  stop ();
}
END_TEST

/* A request with a NUL byte in it is refused whole, and changes nothing:
 * the text after the NUL is not silently dropped (it ran as "remap -u 7"
 * before).  Numbers that wrap 2^64 (LBA + COUNT, units * 8 sectors) are
 * refused as past the end, and change nothing either. */
START_TEST (test_request_bad_bytes)
{
  static const char nul[] = "remap -u 7\0 junk\n";
  static const char *const wrap[] = {
    "remap -u 18446744073709551615 2", "remap -u 4095 18446744073709551615",
    "pending 18446744073709551615", "pending 8 18446744073709551608",
    "unmap -u 0xffffffffffffffff 0x2", "remap -u 18446744073709551616",
    "scan -u 4000 18446744073709551615", "spare-retest 1 18446744073709551615",
  };
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  struct remap_mapping m;
  struct remap_counters cn;
  char buf[512];

  start (2, 16, 2000, 2000);
  int c = connect_raw ();
  ck_assert_int_eq (send (c, nul, sizeof nul - 1, MSG_NOSIGNAL),
                    (ssize_t) (sizeof nul - 1));
  shutdown (c, SHUT_WR);
  ssize_t n = read_all (c, buf, sizeof buf, 3.0);
  close (c);
  ck_assert_msg (n > 0 && strncmp (buf, "ERR 22 ", 7) == 0
                 && strstr (buf, "NUL") != NULL, "reply: %s",
                 n > 0 ? buf : "(none)");
  ck_assert_int_eq (remap_lookup (e, 7, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_FREE);
  /* An escape sequence: refused, and the log shows it escaped. */
  c = connect_raw ();
  send_line (c, "remap -u 9 \x1b[2J\n");
  shutdown (c, SHUT_WR);
  n = read_all (c, buf, sizeof buf, 3.0);
  close (c);
  ck_assert_msg (n > 0 && strncmp (buf, "ERR 22 ", 7) == 0, "reply: %s",
                 n > 0 ? buf : "(none)");
  ck_assert_msg (log_has ("\\x1b[2J"), "log:\n%s", log_text);
  pthread_mutex_lock (&log_lock);
  bool raw = strchr (log_text, 0x1b) != NULL;
  pthread_mutex_unlock (&log_lock);
  ck_assert_msg (!raw, "raw ESC in the log");
  ck_assert_int_eq (remap_lookup (e, 9, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_FREE);
  for (size_t i = 0; i < sizeof wrap / sizeof wrap[0]; i++) {
    int r = request (wrap[i], &out, &err);
    ck_assert_msg (r == -EINVAL, "%s: %d %s", wrap[i], r, err.msg);
    ck_assert_msg (out.len == 0, "%s printed: %s", wrap[i], out.data);
  }
  remap_get_counters (e, &cn);
  ck_assert_uint_eq (cn.reallocated_units, 0);
  ck_assert_uint_eq (cn.pending_units, 0);
  remap_buf_free (&out);
  assert_status_fast (1.0);
  stop ();
}
END_TEST

/* Out of file descriptors: accept() fails (EMFILE) while the client
 * waits in the backlog.  The acceptor must not spin on the listening
 * socket (it stayed readable: 100 % of a core for as long as the fds are
 * short); once fds are free again the waiting client is served. */
START_TEST (test_accept_emfile)
{
  struct rlimit rl;
  struct timespec c0, c1;
  int fds[4096], nfds = 0;

  /* valgrind keeps descriptors of its own and emulates RLIMIT_NOFILE:
   * under it the limit does not bound the client's socket as it does
   * natively, and the test would measure valgrind.  It runs natively, under
   * ASan and under TSan. */
  const char *pre = getenv ("LD_PRELOAD");
  if (pre && strstr (pre, "vgpreload")) {
    fprintf (stderr, "test_accept_emfile: skipped under valgrind\n");
    return;
  }
  start (2, 16, 5000, 2000);
  ck_assert_int_eq (getrlimit (RLIMIT_NOFILE, &rl), 0);
  /* Fill every fd but one (the client's socket) under a limit of 256. */
  struct rlimit low = { 256, rl.rlim_max };
  ck_assert_int_eq (setrlimit (RLIMIT_NOFILE, &low), 0);
  for (;;) {
    int fd = dup (0);
    if (fd == -1)
      break;
    fds[nfds++] = fd;
  }
  ck_assert_int_gt (nfds, 0);
  close (fds[--nfds]);
  int c = connect_raw ();       /* the last fd: the server cannot accept */
  send_line (c, "status\n");
  usleep (100000);
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &c0);
  usleep (500000);
  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &c1);
  double cpu = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
  while (nfds)
    close (fds[--nfds]);
  ck_assert_int_eq (setrlimit (RLIMIT_NOFILE, &rl), 0);
  ck_assert_msg (cpu < 0.05, "the server used %.2f s of CPU in 0.5 s while "
                 "it could not accept", cpu);
  char buf[4096];
  ssize_t n = read_all (c, buf, sizeof buf, 3.0);
  close (c);
  ck_assert_msg (n > 0 && strstr (buf, "\nOK\n") != NULL, "reply: %s",
                 n > 0 ? buf : "(none)");
  ck_assert_msg (log_has ("file descriptors"), "log:\n%s", log_text);
  stop ();
}
END_TEST

/* The server stops in the middle of a scan whose client is still there:
 * the client gets what the scan found so far (its JSON, with the bad
 * units, all pending on the spare now, and the error), then ERR 125.
 * Before, the cancel dropped the output: only the ERR line came. */
START_TEST (test_stop_delivers_partial_reply)
{
  struct remap_fault_rule rule = { .off = 0, .len = ORIGIN_SIZE,
                                   .ops = REMAP_FAULT_READ, .err = -EIO };
  static char buf[1 << 16];

  start (2, 16, 2000, 2000);
  ck_assert_int_eq (remap_fault_add_rule (ofault, &rule), 0);
  int c = connect_raw ();
  send_line (c, "scan -u 0 4096 --json\n");
  shutdown (c, SHUT_WR);
  double t0 = now_s ();
  while (remap_unit_pending (e, 2) <= 0 && now_s () - t0 < 5)
    usleep (10000);
  ck_assert_int_gt (remap_unit_pending (e, 2), 0);
  remap_ctl_server_close (srv, true);
  srv = NULL;
  ssize_t n = read_all (c, buf, sizeof buf, 3.0);
  close (c);
  ck_assert_msg (n > 0, "no reply");
  /* "D <len>\n<json>" then "ERR 125 ...". */
  ck_assert_msg (strncmp (buf, "D ", 2) == 0, "reply: %s", buf);
  char *json = strchr (buf, '\n') + 1, *end;
  size_t len = strtoul (buf + 2, &end, 10);
  ck_assert_msg (json + len < buf + n, "reply: %s", buf);
  ck_assert_msg (strncmp (json + len, "ERR 125 ", 8) == 0, "status: %s",
                 json + len);
  struct json_object *o = remap_json_parse (json, len), *bad;
  ck_assert_msg (o != NULL, "not JSON: %.*s", (int) len, json);
  ck_assert (json_object_object_get_ex (o, "bad_units", &bad));
  ck_assert_int_ge (json_object_array_length (bad), 3);
  for (size_t i = 0; i < json_object_array_length (bad); i++) {
    uint64_t u = json_object_get_uint64 (json_object_array_get_idx (bad, i));
    ck_assert_msg (remap_unit_pending (e, u) > 0, "unit %" PRIu64 " reported "
                   "bad, not pending", u);
  }
  ck_assert_msg (remap_json_str (o, "error") != NULL, "%.*s", (int) len, json);
  json_object_put (o);
  remap_fault_clear_rules (ofault);
  rmdir (dir);
  remap_close (e);
  e = NULL;
  remap_backend_close (origin_mem);
  remap_backend_close (spare_mem);
}
END_TEST

/* A request whose connection ends before its newline is cut short: it is
 * not run ("unmap --discard-data -u 12" may be the start of "-u 123"),
 * whether the client only shut down its sending side (it reads the
 * refusal) or went away. */
START_TEST (test_request_cut_short)
{
  struct remap_mapping m;
  char buf[512];

  start (2, 16, 2000, 2000);
  int c = connect_raw ();
  ck_assert_int_eq (send (c, "remap -u 12", 11, MSG_NOSIGNAL), 11);
  shutdown (c, SHUT_WR);
  ssize_t n = read_all (c, buf, sizeof buf, 3.0);
  close (c);
  ck_assert_msg (n > 0 && strncmp (buf, "ERR 22 request cut short", 24) == 0,
                 "reply: %s", n > 0 ? buf : "(none)");
  c = connect_raw ();
  ck_assert_int_eq (send (c, "pending -u 13", 13, MSG_NOSIGNAL), 13);
  close (c);
  usleep (300000);
  assert_status_fast (1.0);     /* the server is still serving */
  ck_assert_int_eq (remap_lookup (e, 12, &m), 0);
  ck_assert_int_eq (m.state, REMAP_SLOT_FREE);
  ck_assert_int_eq (remap_unit_pending (e, 13), 0);
  stop ();
}
END_TEST

static Suite *
ctlsock_suite (void)
{
  Suite *s = suite_create ("ctlsock");
  TCase *tc = tcase_create ("server");
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_stuck_reader);
  tcase_add_test (tc, test_silent_client);
  tcase_add_test (tc, test_many_silent_clients);
  tcase_add_test (tc, test_refused_past_bounds);
  tcase_add_test (tc, test_close_with_stuck_clients);
  tcase_add_test (tc, test_scan_cancelled_by_client);
  tcase_add_test (tc, test_concurrent_clients);
  tcase_add_test (tc, test_request_bad_bytes);
  tcase_add_test (tc, test_accept_emfile);
  tcase_add_test (tc, test_stop_delivers_partial_reply);
  tcase_add_test (tc, test_request_cut_short);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (ctlsock_suite ());
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
