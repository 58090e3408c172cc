/* Fault tests: the NBD backend when its server goes away and comes back
 * (core/io/nbd.c; issue 8, item 3; SPEC 3.10).
 *
 * The server is a real `nbdkit file' on a unix socket in a scratch
 * directory, killed (SIGKILL: no goodbye) and restarted on the same socket
 * by the test.  No network, no engine: what is checked is what the backend
 * promises the engine (include/remap/backend.h):
 *
 *   lost connection     -> -ENOTCONN, never -EIO; status unreachable, why
 *   reconnect-timeout   -> 0: fail at once; N: a request waits for a server
 *                          that comes back within N and then succeeds
 *   server back         -> status probes and reconnects; I/O works, bytes
 *                          intact; reconnects counted
 *   unflushed writes    -> the first flush after the loss fails with -EIO,
 *                          once
 *   threads             -> through two outages: only 0 or -ENOTCONN, the
 *                          bytes read are the bytes written
 *   another export size -> not accepted: stays unreachable, says why
 *   opened while down   -> remap_nbd_open_known_size: unreachable backend
 *                          that connects when the server appears
 *   extents             -> the server's base:allocation (holes of a sparse
 *                          file), -ENOTCONN while lost with nothing
 *                          reported, the same map after the reconnection
 *
 * Skips (77) without nbdkit or without libnbd in this build.
 */

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit/testlib.h"

#define SIZE (4 * MiB)

static char dir[4096], sock[4200], pidfile[4200], file[4200], file2[4200];
static char uri[4400];

static uint64_t
ms_now (void)
{
  struct timespec t;
  clock_gettime (CLOCK_MONOTONIC, &t);
  return (uint64_t) t.tv_sec * 1000 + (uint64_t) t.tv_nsec / 1000000;
}

/* nbdkit file PATH on sock; returns once it listens (nbdkit writes its
 * pid file after listen, so the socket file alone is not enough). */
static pid_t
server_start (const char *path)
{
  unlink (sock);
  unlink (pidfile);
  pid_t p = fork ();
  ck_assert_int_ge (p, 0);
  if (p == 0) {
    int null = open ("/dev/null", O_WRONLY);
    dup2 (null, 2);
    execlp ("nbdkit", "nbdkit", "-f", "--exit-with-parent", "-P", pidfile,
            "-U", sock, "file", path, (char *) NULL);
    _exit (127);
  }
  for (int i = 0; i < 400; i++) {
    struct stat st;
    if (stat (pidfile, &st) == 0 && st.st_size > 0)
      return p;
    ck_assert_msg (waitpid (p, NULL, WNOHANG) == 0, "nbdkit exited");
    usleep (25000);
  }
  ck_abort_msg ("nbdkit did not start on %s", sock);
  return -1;
}

static void
server_kill (pid_t p)
{
  kill (p, SIGKILL);
  waitpid (p, NULL, 0);
  unlink (sock);
}

static void
make_file (const char *path, uint64_t size, uint64_t tag)
{
  uint8_t *buf = malloc (size);
  tl_pattern (buf, size, tag);
  FILE *f = fopen (path, "w");
  ck_assert_msg (f != NULL, "%s: %m", path);
  ck_assert_uint_eq (fwrite (buf, 1, size, f), size);
  fclose (f);
  free (buf);
}

static struct remap_backend *
open_nbd (unsigned wait_ms)
{
  struct remap_backend *b = NULL;
  struct remap_error err = { 0 };
  int r = remap_nbd_open (uri, 0, &b, &err);
  ck_assert_msg (r == 0, "open %s: %s", uri, err.msg);
  ck_assert_int_eq (remap_nbd_set_reconnect_timeout (b, wait_ms), 0);
  return b;
}

static struct remap_backend_status
status_of (struct remap_backend *b)
{
  struct remap_backend_status st;
  remap_backend_status (b, &st);
  return st;
}

/* Poll status (which reconnects when an attempt is due) until reachable. */
static void
wait_reachable (struct remap_backend *b)
{
  for (int i = 0; i < 200; i++) {
    if (status_of (b).state == REMAP_BACKEND_OK)
      return;
    usleep (50000);
  }
  ck_abort_msg ("still unreachable 10 s after the server came back: %s",
                status_of (b).detail);
}

static void
setup (void)
{
  const char *b = getenv ("REMAP_BUILD_DIR");
  snprintf (dir, sizeof dir, "%s/nbdre-XXXXXX", b ? b : "/var/tmp");
  ck_assert_msg (mkdtemp (dir) != NULL, "mkdtemp: %m");
  snprintf (sock, sizeof sock, "%s/s.sock", dir);
  snprintf (pidfile, sizeof pidfile, "%s/s.pid", dir);
  snprintf (file, sizeof file, "%s/disk.img", dir);
  snprintf (file2, sizeof file2, "%s/other.img", dir);
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
  make_file (file, SIZE, 1);
}

static void
teardown (void)
{
  unlink (sock);
  unlink (pidfile);
  unlink (file);
  unlink (file2);
  rmdir (dir);
}

/* ---- loss, status, return --------------------------------------------- */

START_TEST (test_loss_is_enotconn_then_resumes)
{
  pid_t p = server_start (file);
  struct remap_backend *b = open_nbd (0);
  uint8_t want[4096], got[4096];
  ck_assert_int_eq (remap_backend_pread (b, want, sizeof want, 8192), 0);
  ck_assert_int_eq (status_of (b).state, REMAP_BACKEND_OK);

  server_kill (p);
  uint64_t t0 = ms_now ();
  for (int i = 0; i < 20; i++) {
    int r = remap_backend_pread (b, got, sizeof got, 8192 * i);
    ck_assert_msg (r == -ENOTCONN, "read %d during the outage: %d (want "
                   "-ENOTCONN: a lost connection is not a bad sector)", i, r);
    r = remap_backend_pwrite (b, want, sizeof want, 8192 * i);
    ck_assert_msg (r == -ENOTCONN, "write %d: %d", i, r);
  }
  ck_assert_int_eq (remap_backend_flush (b), -ENOTCONN);
  ck_assert_int_eq (remap_backend_zero (b, 4096, 0, false), -ENOTCONN);
  ck_assert_msg (ms_now () - t0 < 3000, "failing took %" PRIu64 " ms with "
                 "reconnect timeout 0", ms_now () - t0);
  struct remap_backend_status st = status_of (b);
  ck_assert_int_eq (st.state, REMAP_BACKEND_UNREACHABLE);
  ck_assert_msg (strstr (st.detail, "connection lost"), "%s", st.detail);
  ck_assert_uint_eq (st.reconnects, 0);

  p = server_start (file);
  wait_reachable (b);
  st = status_of (b);
  ck_assert_uint_eq (st.reconnects, 1);
  ck_assert_str_eq (st.detail, "");
  ck_assert_int_eq (remap_backend_pread (b, got, sizeof got, 8192), 0);
  ck_assert (memcmp (want, got, sizeof got) == 0);
  /* Every slot of the pool works again (their handles were stale). */
  for (int i = 0; i < 16; i++)
    ck_assert_int_eq (remap_backend_pwrite (b, want, sizeof want, 4096 * i),
                      0);
  ck_assert_int_eq (remap_backend_flush (b), 0);   /* no write was lost */
  ck_assert_int_eq (status_of (b).reconnects, 1);
  remap_backend_close (b);
  server_kill (p);
}
END_TEST

/* ---- a short outage is waited out --------------------------------------- */

struct reader {
  struct remap_backend *b;
  int r;
  uint64_t ms;
};

static void *
read_now (void *arg)
{
  struct reader *x = arg;
  uint8_t buf[4096];
  uint64_t t0 = ms_now ();
  x->r = remap_backend_pread (x->b, buf, sizeof buf, 0);
  x->ms = ms_now () - t0;
  return NULL;
}

START_TEST (test_short_outage_is_waited_out)
{
  pid_t p = server_start (file);
  struct remap_backend *b = open_nbd (4000);
  server_kill (p);
  struct reader x = { .b = b };
  pthread_t t;
  ck_assert_int_eq (pthread_create (&t, NULL, read_now, &x), 0);
  usleep (500000);
  p = server_start (file);
  pthread_join (t, NULL);
  ck_assert_msg (x.r == 0, "a read during a short outage failed: %d", x.r);
  ck_assert_msg (x.ms >= 400 && x.ms < 4000, "it took %" PRIu64 " ms", x.ms);
  ck_assert_uint_eq (status_of (b).reconnects, 1);

  /* A longer one: the wait ends at the timeout, counted from the loss. */
  server_kill (p);
  uint64_t t0 = ms_now ();
  read_now (&x);
  ck_assert_int_eq (x.r, -ENOTCONN);
  ck_assert_msg (ms_now () - t0 >= 3500 && ms_now () - t0 < 8000,
                 "waited %" PRIu64 " ms for a 4000 ms timeout",
                 ms_now () - t0);
  t0 = ms_now ();
  read_now (&x);
  ck_assert_int_eq (x.r, -ENOTCONN);
  ck_assert_msg (ms_now () - t0 < 2500, "past the timeout, a read still "
                 "took %" PRIu64 " ms", ms_now () - t0);
  remap_backend_close (b);
}
END_TEST

/* ---- threads through outages -------------------------------------------- */

struct worker {
  struct remap_backend *b;
  int id;
  _Atomic bool *stop;
  int bad;                      /* first result that was neither 0 nor
                                   -ENOTCONN */
  _Atomic uint64_t ok, notconn;
};

static void *
work (void *arg)
{
  struct worker *w = arg;
  uint8_t buf[4096], got[4096];
  tl_pattern (buf, sizeof buf, 100 + w->id);
  uint64_t off = (uint64_t) w->id * 65536;
  while (!atomic_load (w->stop)) {
    int r = remap_backend_pwrite (w->b, buf, sizeof buf, off);
    if (r == 0)
      r = remap_backend_pread (w->b, got, sizeof got, off);
    if (r == 0 && memcmp (buf, got, sizeof got) != 0)
      r = -EBADMSG;
    if (r == 0)
      atomic_fetch_add (&w->ok, 1);
    else if (r == -ENOTCONN)
      atomic_fetch_add (&w->notconn, 1);
    else if (!w->bad)
      w->bad = r;
  }
  return NULL;
}

/* Four threads read and write through two outages: every request succeeds
 * or fails with -ENOTCONN, bytes read back are the bytes written, and all
 * work again at the end. */
START_TEST (test_threads_through_outages)
{
  pid_t p = server_start (file);
  struct remap_backend *b = open_nbd (300);
  _Atomic bool stop = false;
  struct worker w[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    w[i] = (struct worker) { .b = b, .id = i, .stop = &stop };
    ck_assert_int_eq (pthread_create (&t[i], NULL, work, &w[i]), 0);
  }
  for (int k = 0; k < 2; k++) {
    usleep (300000);
    server_kill (p);
    usleep (k == 0 ? 150000 : 900000);  /* within, then past the wait */
    p = server_start (file);
  }
  wait_reachable (b);
  uint64_t before = 0;
  for (int i = 0; i < 4; i++)
    before += atomic_load (&w[i].ok);
  usleep (300000);
  atomic_store (&stop, true);
  uint64_t after = 0, nc = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join (t[i], NULL);
    ck_assert_msg (w[i].bad == 0, "thread %d got %d", i, w[i].bad);
    after += atomic_load (&w[i].ok);
    nc += atomic_load (&w[i].notconn);
  }
  ck_assert_msg (after > before, "no request succeeded after the outages");
  ck_assert_msg (nc > 0, "the long outage failed no request");
  ck_assert_uint_ge (status_of (b).reconnects, 2);
  remap_backend_close (b);
  server_kill (p);
}
END_TEST

/* ---- durability across a loss ------------------------------------------- */

START_TEST (test_unflushed_writes_fail_next_flush)
{
  pid_t p = server_start (file);
  struct remap_backend *b = open_nbd (4000);
  uint8_t buf[4096];
  tl_pattern (buf, sizeof buf, 9);

  /* Flushed writes, then a loss: nothing is suspect. */
  ck_assert_int_eq (remap_backend_pwrite (b, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (remap_backend_flush (b), 0);
  server_kill (p);
  p = server_start (file);
  ck_assert_int_eq (remap_backend_pread (b, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (remap_backend_flush (b), 0);

  /* A write not flushed, then a loss: the next flush says so, once. */
  ck_assert_int_eq (remap_backend_pwrite (b, buf, sizeof buf, 4096), 0);
  server_kill (p);
  p = server_start (file);
  ck_assert_int_eq (remap_backend_flush (b), -EIO);
  ck_assert_int_eq (remap_backend_flush (b), 0);
  ck_assert_uint_eq (status_of (b).reconnects, 2);
  remap_backend_close (b);
  server_kill (p);
}
END_TEST

/* ---- another disk on the same socket ------------------------------------ */

START_TEST (test_other_size_not_accepted)
{
  make_file (file2, SIZE + 4096, 2);
  pid_t p = server_start (file);
  struct remap_backend *b = open_nbd (0);
  server_kill (p);
  p = server_start (file2);
  uint8_t buf[512];
  for (int i = 0; i < 10; i++) {
    ck_assert_int_eq (remap_backend_pread (b, buf, sizeof buf, 0), -ENOTCONN);
    usleep (120000);
  }
  struct remap_backend_status st = status_of (b);
  ck_assert_int_eq (st.state, REMAP_BACKEND_UNREACHABLE);
  ck_assert_msg (strstr (st.detail, "another disk"), "%s", st.detail);
  server_kill (p);
  p = server_start (file);
  wait_reachable (b);
  ck_assert_int_eq (remap_backend_pread (b, buf, sizeof buf, 0), 0);
  remap_backend_close (b);
  server_kill (p);
}
END_TEST

/* ---- opened while the server is down ------------------------------------ */

START_TEST (test_open_known_size_while_down)
{
  struct remap_backend *b = NULL;
  struct remap_error err = { 0 };
  unlink (sock);
  ck_assert_int_eq (remap_nbd_open (uri, 0, &b, &err), -ENOTCONN);
  ck_assert_msg (strstr (err.msg, "cannot connect to NBD server"), "%s",
                 err.msg);
  remap_error_clear (&err);
  int r = remap_nbd_open_known_size (uri, 0, SIZE, &b, &err);
  ck_assert_msg (r == 0, "%s", err.msg);
  ck_assert_uint_eq (b->size, SIZE);
  ck_assert_int_eq (remap_nbd_set_reconnect_timeout (b, 0), 0);
  struct remap_backend_status st = status_of (b);
  ck_assert_int_eq (st.state, REMAP_BACKEND_UNREACHABLE);
  ck_assert_msg (strstr (st.detail, "cannot connect"), "%s", st.detail);
  uint8_t buf[512];
  ck_assert_int_eq (remap_backend_pread (b, buf, sizeof buf, 0), -ENOTCONN);

  pid_t p = server_start (file);
  wait_reachable (b);
  ck_assert_int_eq (remap_backend_pread (b, buf, sizeof buf, 0), 0);
  remap_backend_close (b);

  /* Known size wrong: refused when the server is there ... */
  ck_assert_int_eq (remap_nbd_open_known_size (uri, 0, SIZE * 2, &b, &err),
                    -ENODEV);
  ck_assert_msg (strstr (err.msg, "another disk"), "%s", err.msg);
  /* ... and never accepted when it comes later. */
  server_kill (p);
  ck_assert_int_eq (remap_nbd_open_known_size (uri, 0, SIZE * 2, &b, &err),
                    0);
  ck_assert_int_eq (remap_nbd_set_reconnect_timeout (b, 0), 0);
  p = server_start (file);
  for (int i = 0; i < 10; i++) {
    ck_assert_int_eq (remap_backend_pread (b, buf, sizeof buf, 0),
                      -ENOTCONN);
    usleep (120000);
  }
  st = status_of (b);
  ck_assert_int_eq (st.state, REMAP_BACKEND_UNREACHABLE);
  ck_assert_msg (strstr (st.detail, "another disk"), "%s", st.detail);
  remap_backend_close (b);
  server_kill (p);

  /* The setter refuses other backends and absurd timeouts. */
  struct remap_backend *m = tl_mem (4096);
  ck_assert_int_eq (remap_nbd_set_reconnect_timeout (m, 0), -EINVAL);
  remap_backend_close (m);
}
END_TEST

/* ---- extents ------------------------------------------------------------ */

struct xlist {
  uint64_t off[16], len[16];
  uint32_t type[16];
  size_t n;
};

static int
xcollect (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct xlist *l = opaque;
  REQ (l->n < 16, "too many extents");
  l->off[l->n] = off;
  l->len[l->n] = len;
  l->type[l->n++] = type;
  return 0;
}

static void
expect_sparse_map (struct remap_backend *b)
{
  struct xlist l = { .n = 0 };
  const uint32_t hz = REMAP_EXTENT_HOLE | REMAP_EXTENT_ZERO;
  ck_assert_int_eq (remap_backend_extents (b, SIZE, 0, xcollect, &l), 0);
  ck_assert_uint_eq (l.n, 3);
  ck_assert_msg (l.off[0] == 0 && l.len[0] == MiB && l.type[0] == hz
                 && l.off[1] == MiB && l.len[1] == 64 * KiB && l.type[1] == 0
                 && l.off[2] == MiB + 64 * KiB && l.type[2] == hz,
                 "map: %llu+%llu:%u %llu+%llu:%u %llu+%llu:%u",
                 (unsigned long long) l.off[0], (unsigned long long) l.len[0],
                 l.type[0], (unsigned long long) l.off[1],
                 (unsigned long long) l.len[1], l.type[1],
                 (unsigned long long) l.off[2], (unsigned long long) l.len[2],
                 l.type[2]);
}

START_TEST (test_extents_through_outage)
{
  /* A sparse file: 64 KiB of data at 1 MiB, holes around it. */
  int fd = open (file2, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, SIZE), 0);
  static uint8_t data[64 * KiB];
  tl_pattern (data, sizeof data, 7);
  ck_assert_int_eq (pwrite (fd, data, sizeof data, MiB), (ssize_t) sizeof data);
  fsync (fd);
  close (fd);
  pid_t p = server_start (file2);
  struct remap_backend *b = open_nbd (0);
  expect_sparse_map (b);

  server_kill (p);
  struct xlist l = { .n = 0 };
  ck_assert_int_eq (remap_backend_extents (b, SIZE, 0, xcollect, &l),
                    -ENOTCONN);
  ck_assert_uint_eq (l.n, 0);

  p = server_start (file2);
  wait_reachable (b);
  expect_sparse_map (b);
  remap_backend_close (b);
  server_kill (p);
}
END_TEST

int
main (void)
{
  if (system ("nbdkit --version >/dev/null 2>&1") != 0) {
    fprintf (stderr, "SKIP: nbdkit not installed\n");
    return 77;
  }
  struct remap_backend *b = NULL;
  if (remap_nbd_open ("nbd+unix:///?socket=/nonexistent", 0, &b, NULL)
      == -ENOTSUP) {
    fprintf (stderr, "SKIP: remap built without libnbd\n");
    return 77;
  }
  Suite *s = suite_create ("nbd_reconnect");
  TCase *tc = tcase_create ("nbd_reconnect");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_loss_is_enotconn_then_resumes);
  tcase_add_test (tc, test_short_outage_is_waited_out);
  tcase_add_test (tc, test_threads_through_outages);
  tcase_add_test (tc, test_unflushed_writes_fail_next_flush);
  tcase_add_test (tc, test_other_size_not_accepted);
  tcase_add_test (tc, test_open_known_size_while_down);
  tcase_add_test (tc, test_extents_through_outage);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
