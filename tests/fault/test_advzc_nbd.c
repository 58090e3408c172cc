/* Adversary of the remembered zero answers of block status (core/extents.c,
 * e->zc; issue 12), with the spare behind an NBD server that goes away and
 * comes back without a write it had acknowledged.
 *
 * core/io/nbd.c says it itself: a write the server acknowledged on a
 * connection that was then lost may not have reached its stable storage
 * (the first flush after the reconnection fails for that reason,
 * docs/ERRORS.md).  So after a reconnection the spare may hold other bytes
 * than the ones the engine wrote, with no write of the engine in between:
 * a zero answer remembered from before the loss must not survive it.
 *
 * The server is a real `nbdkit file' on a unix socket in a scratch
 * directory, killed with SIGKILL; the lost write is played by putting the
 * old bytes back into its file before it is started again.
 *
 * Skips (77) without nbdkit or without libnbd in this build.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit/testlib.h"

#define UNIT 4096u
#define UNITS 64u
#define DISK ((uint64_t) UNITS * UNIT)
#define SPARE (1 * MiB)

static char dir[4096], sock[4200], pidfile[4200], file[4200], uri[4400];

/* nbdkit file `file' on sock, once it listens (it writes its pid file
 * after listening). */
static pid_t
server_start (void)
{
  unlink (sock);
  unlink (pidfile);
  pid_t p = fork ();
  ck_assert_int_ge (p, 0);
  if (p == 0) {
    int null = open ("/dev/null", O_WRONLY);
    dup2 (null, 2);
    execlp ("nbdkit", "nbdkit", "-f", "--exit-with-parent", "-P", pidfile,
            "-U", sock, "file", file, (char *) NULL);
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

/* Bytes [off, off+len) of the server's file, the server stopped. */
static void
file_put (const uint8_t *buf, size_t len, uint64_t off)
{
  int fd = open (file, O_WRONLY);
  ck_assert_msg (fd >= 0, "%s: %m", file);
  ck_assert_int_eq (pwrite (fd, buf, len, (off_t) off), (ssize_t) len);
  ck_assert_int_eq (fsync (fd), 0);
  close (fd);
}

static void
setup (void)
{
  const char *b = getenv ("REMAP_BUILD_DIR");
  snprintf (dir, sizeof dir, "%s/advzc-XXXXXX", b ? b : "/var/tmp");
  ck_assert_msg (mkdtemp (dir) != NULL, "mkdtemp: %m");
  snprintf (sock, sizeof sock, "%s/s.sock", dir);
  snprintf (pidfile, sizeof pidfile, "%s/s.pid", dir);
  snprintf (file, sizeof file, "%s/spare.img", dir);
  snprintf (uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
  uint8_t *buf = malloc (SPARE);
  tl_pattern (buf, SPARE, 3);   /* a used disk: no zeroes anywhere */
  int fd = open (file, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  ck_assert_msg (fd >= 0, "%s: %m", file);
  ck_assert_int_eq (write (fd, buf, SPARE), (ssize_t) SPARE);
  close (fd);
  free (buf);
}

static void
teardown (void)
{
  unlink (sock);
  unlink (pidfile);
  unlink (file);
  rmdir (dir);
}

/* Reported as reading zeroes (ZERO, with HOLE or without: a zero spare
 * copy over a hole is ZERO or keeps the hole's type, as extents.c has
 * it). */
static bool
zero_typed (uint32_t t)
{
  return (t & REMAP_EXTENT_ZERO) != 0;
}

struct list {
  uint64_t off[256], len[256];
  uint32_t type[256];
  size_t n;
};

static int
collect (void *opaque, uint64_t off, uint64_t len, uint32_t type)
{
  struct list *l = opaque;
  if (l->n == 256)
    return -1;
  l->off[l->n] = off;
  l->len[l->n] = len;
  l->type[l->n++] = type;
  return 0;
}

static uint32_t
type_of_unit (struct remap_engine *e, uint64_t u)
{
  struct list l = { .n = 0 };
  struct remap_error err = { 0 };
  int r = remap_extents (e, DISK, 0, collect, &l, &err);
  ck_assert_msg (r == 0, "remap_extents: %d %s", r, err.msg);
  for (size_t i = 0; i < l.n; i++)
    if (u * UNIT >= l.off[i] && u * UNIT < l.off[i] + l.len[i])
      return l.type[i];
  ck_abort_msg ("unit %llu not reported", (unsigned long long) u);
  return 0;
}

/* Unit 5 (over the origin's hole) holds data D on the NBD spare, durable.
 * A client zeroes it, no FUA: block status says ZERO and remembers it.
 * The server dies before that write reached its disk (the file gets D
 * back) and comes back.  A read returns D: block status must say data. */
START_TEST (test_reconnect_forgets_zero)
{
  pid_t p = server_start ();
  struct remap_backend *nb = NULL, *om = tl_mem (DISK);
  struct remap_error err = { 0 };
  ck_assert_msg (remap_nbd_open (uri, 0, &nb, &err) == 0, "%s", err.msg);
  ck_assert_int_eq (remap_nbd_set_reconnect_timeout (nb, 5000), 0);
  tl_format_ok (om, nb, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_engine *e = NULL;
  struct remap_open_opts o = { .no_lock = true };
  ck_assert_msg (remap_open (tl_share (om), nb, &o, &e, &err) == 0, "%s",
                 err.msg);

  ck_assert_int_eq (remap_remap (e, 5, 0, NULL), 0);
  struct remap_mapping m;
  ck_assert_int_eq (remap_lookup (e, 5, &m), 0);
  uint8_t d[UNIT], got[UNIT];
  tl_pattern (d, UNIT, 55);
  ck_assert_int_eq (remap_pwrite (e, d, UNIT, 5 * UNIT, REMAP_FUA, NULL), 0);
  ck_assert_uint_eq (type_of_unit (e, 5), 0);
  ck_assert_int_eq (remap_zero (e, UNIT, 5 * UNIT, 0, NULL), 0);
  ck_assert (zero_typed (type_of_unit (e, 5)));
  ck_assert (zero_typed (type_of_unit (e, 5)));

  server_kill (p);
  file_put (d, UNIT, m.spare_unit * UNIT);      /* the zeroes were lost */
  p = server_start ();

  ck_assert_int_eq (remap_pread (e, got, UNIT, 5 * UNIT, &err), 0);
  ck_assert_msg (memcmp (got, d, UNIT) == 0, "unit 5 does not read as D");
  struct remap_backend_status st;
  remap_get_backend_status (e, NULL, &st);
  ck_assert_uint_eq (st.reconnects, 1);
  ck_assert_msg (type_of_unit (e, 5) == 0, "unit 5 reads as data after the "
                 "reconnection, but block status still calls it ZERO");
  remap_close (e);              /* its flush fails: writes were lost */
  remap_backend_close (om);
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
  Suite *s = suite_create ("advzc_nbd");
  TCase *tc = tcase_create ("advzc_nbd");
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_reconnect_forgets_zero);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
