/* Unit tests: preallocation of a file spare (remap_backend_preallocate,
 * core/io/file.c; remap_format's default, core/engine.c).
 *
 * Issue 8, item 3: a sparse spare file on a host file system that fills up
 * failed every later write.  By default format now allocates a file spare
 * in full, or refuses (writing nothing) with a message that names the
 * space needed; opts.sparse keeps the old behaviour on request.
 *
 * Scratch files live in $REMAP_BUILD_DIR (set by ctest), else /var/tmp.
 * "Allocated" is read from st_blocks, as du(1) does.
 */

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "unit/testlib.h"

#define SPARE_SIZE (4 * MiB)

static void
scratch (char *path, size_t n, uint64_t size)
{
  const char *dir = getenv ("REMAP_BUILD_DIR");
  snprintf (path, n, "%s/remap-prealloc-XXXXXX", dir ? dir : "/var/tmp");
  int fd = mkstemp (path);
  ck_assert_msg (fd >= 0, "mkstemp %s: %m", path);
  ck_assert_int_eq (ftruncate (fd, (off_t) size), 0);
  close (fd);
}

static uint64_t
allocated (const char *path)
{
  struct stat st;
  ck_assert_int_eq (stat (path, &st), 0);
  return (uint64_t) st.st_blocks * 512;
}

static struct remap_backend *
open_file (const char *path, unsigned flags)
{
  struct remap_backend *b = NULL;
  struct remap_error err = { 0 };
  int r = remap_file_open (path, flags, &b, &err);
  ck_assert_msg (r == 0, "open %s: %s", path, err.msg);
  return b;
}

/* Every byte gets its block; bytes already written stay as they were. */
START_TEST (test_preallocate_file)
{
  char path[4096];
  uint8_t pat[4096], got[4096];
  scratch (path, sizeof path, SPARE_SIZE);
  struct remap_backend *b = open_file (path, 0);
  tl_pattern (pat, sizeof pat, 7);
  ck_assert_int_eq (remap_backend_pwrite (b, pat, sizeof pat, 1 * MiB), 0);
  ck_assert_int_eq (remap_backend_flush (b), 0);
  ck_assert_uint_lt (allocated (path), SPARE_SIZE / 2);

  struct remap_error err = { 0 };
  int r = remap_backend_preallocate (b, &err);
  ck_assert_msg (r == 0, "preallocate: %d %s", r, err.msg);
  ck_assert_uint_ge (allocated (path), SPARE_SIZE);
  ck_assert_int_eq (remap_backend_pread (b, got, sizeof got, 1 * MiB), 0);
  ck_assert (memcmp (got, pat, sizeof pat) == 0);
  ck_assert_int_eq (remap_backend_pread (b, got, sizeof got, 0), 0);
  for (size_t i = 0; i < sizeof got; i++)
    REQ (got[i] == 0, "byte %zu of a hole became %u", i, got[i]);
  remap_backend_close (b);
  unlink (path);
}
END_TEST

/* Format allocates a file spare by default; sparse keeps it sparse. */
START_TEST (test_format_preallocates)
{
  for (int sparse = 0; sparse <= 1; sparse++) {
    char path[4096];
    scratch (path, sizeof path, SPARE_SIZE);
    struct remap_backend *origin = tl_mem (64 * MiB);
    struct remap_backend *spare = open_file (path, 0);
    struct remap_format_opts o;
    struct remap_error err = { 0 };
    tl_format_opts (&o, 4096, REMAP_STRATEGY_AUTO, 0, 1);
    o.sparse = sparse;
    int r = remap_format (origin, spare, &o, &err);
    ck_assert_msg (r == 0, "format (sparse %d): %s", sparse, err.msg);
    if (sparse)
      ck_assert_msg (allocated (path) < SPARE_SIZE / 2,
                     "a sparse format allocated %" PRIu64 " bytes",
                     allocated (path));
    else
      ck_assert_msg (allocated (path) >= SPARE_SIZE,
                     "format allocated only %" PRIu64 " of %" PRIu64
                     " bytes", allocated (path), SPARE_SIZE);
    ck_assert (remap_spare_has_metadata (spare));
    remap_backend_close (spare);
    remap_backend_close (origin);
    unlink (path);
  }
}
END_TEST

/* A spare larger than the free space of its file system: refused before
 * anything is allocated or written, with both sizes in the message. */
START_TEST (test_format_refuses_without_room)
{
  char path[4096];
  struct statvfs vfs;
  const char *dir = getenv ("REMAP_BUILD_DIR");
  ck_assert_int_eq (statvfs (dir ? dir : "/var/tmp", &vfs), 0);
  uint64_t avail = (uint64_t) vfs.f_bavail * vfs.f_frsize;
  uint64_t size = (avail + 1 * GiB + 4095) / 4096 * 4096;
  scratch (path, sizeof path, size);
  struct remap_backend *origin = tl_mem (64 * MiB);
  struct remap_backend *spare = open_file (path, 0);
  struct remap_format_opts o;
  struct remap_error err = { 0 };
  tl_format_opts (&o, 4096, REMAP_STRATEGY_AUTO, 0, 1);
  int r = remap_format (origin, spare, &o, &err);
  ck_assert_msg (r == -ENOSPC, "format of %" PRIu64 " bytes with %" PRIu64
                 " free: %d %s", size, avail, r, err.msg);
  ck_assert_msg (strstr (err.msg, "needs") && strstr (err.msg, "free")
                 && strstr (err.msg, "--sparse")
                 && strstr (err.msg, "preallocate=no"),
                 "message does not name the space and the opt-out: %s",
                 err.msg);
  ck_assert_msg (allocated (path) < 1 * MiB, "a refused format allocated %"
                 PRIu64 " bytes", allocated (path));
  ck_assert (!remap_spare_has_metadata (spare));

  remap_backend_close (spare);
  remap_backend_close (origin);
  unlink (path);
}
END_TEST

/* Backends with nothing to allocate succeed; a read-only file refuses. */
START_TEST (test_preallocate_others)
{
  struct remap_backend *m = tl_mem (1 * MiB), *f;
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_backend_preallocate (m, &err), 0);
  ck_assert_int_eq (remap_fault_create (m, true, &f), 0);
  ck_assert_int_eq (remap_backend_preallocate (f, &err), 0);
  remap_backend_close (f);

  char path[4096];
  scratch (path, sizeof path, SPARE_SIZE);
  struct remap_backend *ro = open_file (path, REMAP_FILE_READONLY);
  ck_assert_int_eq (remap_backend_preallocate (ro, &err), -EROFS);
  ck_assert_msg (strstr (err.msg, "read-only"), "%s", err.msg);
  remap_backend_close (ro);
  ck_assert_uint_lt (allocated (path), SPARE_SIZE / 2);
  unlink (path);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("prealloc");
  TCase *tc = tcase_create ("prealloc");
  tcase_add_test (tc, test_preallocate_file);
  tcase_add_test (tc, test_format_preallocates);
  tcase_add_test (tc, test_format_refuses_without_room);
  tcase_add_test (tc, test_preallocate_others);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
