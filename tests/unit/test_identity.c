/* What identifies an origin beyond its size (SPEC 2.7, issue 9): the
 * backends' identity texts.
 *
 *  - remap_identity_fit: printable ASCII, at most 128 bytes, long texts
 *    shortened so that they still differ;
 *  - regular files: "file:fsid=..,ino=N" (or dev=), the same after a
 *    rename and after writes, another for a copy;
 *  - mem: ""; fault: its inner backend's;
 *  - block devices through a made-up sysfs and udev tree: WWN, serial,
 *    udev, dm, loop, partitions, nothing;
 *  - a real loop device (root and losetup needed; otherwise that case is
 *    left out and said so, and REMAP_REQUIRE_LOOP=1 makes that a failure).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "remap/backend.h"
#include "../../core/io/identity.h"

static char scratch[1024];           /* short enough for every path below */

static void
make_scratch (void)
{
  const char *dir = getenv ("REMAP_BUILD_DIR");
  snprintf (scratch, sizeof scratch, "%s/remap-ident-XXXXXX",
            dir ? dir : "/var/tmp");
  ck_assert_msg (mkdtemp (scratch) != NULL, "mkdtemp %s: %m", scratch);
}

static void
remove_scratch (void)
{
  char cmd[PATH_MAX + 32];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", scratch);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", scratch);
}

static void
write_file (const char *path, const char *text)
{
  FILE *f = fopen (path, "w");
  ck_assert_msg (f != NULL, "fopen %s: %m", path);
  fputs (text, f);
  ck_assert_int_eq (fclose (f), 0);
}

/* mkdir -p of dir under root. */
static void
mkdirs (const char *root, const char *dir)
{
  char path[PATH_MAX];
  snprintf (path, sizeof path, "%s/%s", root, dir);
  for (char *p = path + strlen (root) + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir (path, 0755);
      *p = '/';
    }
  mkdir (path, 0755);
}

static void
put (const char *root, const char *rel, const char *text)
{
  char path[2 * PATH_MAX];
  ck_assert_int_lt (snprintf (path, sizeof path, "%s/%s", root, rel),
                    (int) sizeof path);
  write_file (path, text);
}

static void
open_file (const char *path, struct remap_backend **b)
{
  struct remap_error err = { 0 };
  int r = remap_file_open (path, 0, b, &err);
  ck_assert_msg (r == 0, "open %s: %s", path, err.msg);
}

/* ---- remap_identity_fit ------------------------------------------- */

START_TEST (test_fit_short)
{
  char out[REMAP_IDENTITY_MAX + 1];

  remap_identity_fit ("wwn:naa.5000c500a1b2c3d4", out);
  ck_assert_str_eq (out, "wwn:naa.5000c500a1b2c3d4");
  remap_identity_fit ("  serial:AB 12\t\x01\x7f" "CD \n", out);
  ck_assert_str_eq (out, "serial:AB_12_CD");
  remap_identity_fit ("x\xc3\xa9y", out);       /* UTF-8 is not ASCII */
  ck_assert_str_eq (out, "x_y");
  remap_identity_fit (" \n\t", out);
  ck_assert_str_eq (out, "");
  remap_identity_fit (NULL, out);
  ck_assert_str_eq (out, "");

  char exact[REMAP_IDENTITY_MAX + 1];
  memset (exact, 'a', REMAP_IDENTITY_MAX);
  exact[REMAP_IDENTITY_MAX] = '\0';
  remap_identity_fit (exact, out);
  ck_assert_str_eq (out, exact);                /* 128: kept as it is */
}
END_TEST

START_TEST (test_fit_long)
{
  char a[400], b[400], oa[REMAP_IDENTITY_MAX + 1], ob[REMAP_IDENTITY_MAX + 1];

  snprintf (a, sizeof a, "loop:/srv/images/%0100d/%0200d/disk.img,offset=0",
            1, 0);
  snprintf (b, sizeof b, "loop:/srv/images/%0100d/%0200d/disk.img,offset=0",
            2, 0);
  remap_identity_fit (a, oa);
  remap_identity_fit (b, ob);
  ck_assert_uint_eq (strlen (oa), REMAP_IDENTITY_MAX);
  ck_assert_uint_eq (strlen (ob), REMAP_IDENTITY_MAX);
  /* The kind and the start, the end, and a hash of the whole between. */
  ck_assert (strncmp (oa, a, 40) == 0);
  ck_assert_str_eq (oa + REMAP_IDENTITY_MAX - 70, a + strlen (a) - 70);
  ck_assert_int_eq (oa[40], '~');
  ck_assert_int_eq (oa[57], '~');
  /* a and b differ only in a byte that neither the head nor the tail
   * keeps: the hash tells them apart. */
  ck_assert (strncmp (oa, ob, 40) == 0);
  ck_assert_str_eq (oa + 58, ob + 58);
  ck_assert_str_ne (oa, ob);
  /* Deterministic. */
  remap_identity_fit (a, ob);
  ck_assert_str_eq (oa, ob);
  for (const char *p = oa; *p; p++)
    ck_assert (*p >= 0x21 && *p <= 0x7e);
}
END_TEST

/* ---- regular files, mem, fault ------------------------------------ */

/* What the identity of path must be, computed here from stat/statfs. */
static void
expected_file_identity (const char *path, char *out, size_t n)
{
  struct stat st;
  struct statfs sf;

  ck_assert_int_eq (stat (path, &st), 0);
  ck_assert_int_eq (statfs (path, &sf), 0);
  if (sf.f_fsid.__val[0] || sf.f_fsid.__val[1])
    snprintf (out, n, "file:fsid=%08x%08x,ino=%llu",
              (unsigned) sf.f_fsid.__val[1], (unsigned) sf.f_fsid.__val[0],
              (unsigned long long) st.st_ino);
  else
    snprintf (out, n, "file:dev=%u:%u,ino=%llu", major (st.st_dev),
              minor (st.st_dev), (unsigned long long) st.st_ino);
}

START_TEST (test_regular_file)
{
  char a[PATH_MAX], moved[PATH_MAX], copy[PATH_MAX], want[256];
  char first[REMAP_IDENTITY_MAX + 1];
  struct remap_backend *b;
  char cmd[3 * PATH_MAX];

  make_scratch ();
  snprintf (a, sizeof a, "%s/origin.img", scratch);
  snprintf (moved, sizeof moved, "%s/renamed.img", scratch);
  snprintf (copy, sizeof copy, "%s/copy.img", scratch);
  write_file (a, "some origin data\n");

  open_file (a, &b);
  expected_file_identity (a, want, sizeof want);
  ck_assert_str_eq (b->identity, want);
  ck_assert (strncmp (b->identity, "file:", 5) == 0);
  snprintf (first, sizeof first, "%s", b->identity);
  /* Written through the backend: the same file, the same identity. */
  ck_assert_int_eq (remap_backend_pwrite (b, "X", 1, 0), 0);
  remap_backend_close (b);
  open_file (a, &b);
  ck_assert_str_eq (b->identity, first);
  remap_backend_close (b);

  /* Renamed inside its file system: the same. */
  ck_assert_int_eq (rename (a, moved), 0);
  open_file (moved, &b);
  ck_assert_str_eq (b->identity, first);
  remap_backend_close (b);

  /* A copy (cp: a new inode): another identity, although the bytes and
   * the size are the same. */
  snprintf (cmd, sizeof cmd, "cp '%s' '%s'", moved, copy);
  ck_assert_int_eq (system (cmd), 0);
  open_file (copy, &b);
  expected_file_identity (copy, want, sizeof want);
  ck_assert_str_eq (b->identity, want);
  ck_assert_str_ne (b->identity, first);
  remap_backend_close (b);
  remove_scratch ();
}
END_TEST

START_TEST (test_mem_and_fault)
{
  struct remap_backend *m, *f, *fb;
  char path[PATH_MAX];

  ck_assert_int_eq (remap_mem_create (1 << 20, &m), 0);
  ck_assert_str_eq (m->identity, "");
  ck_assert_int_eq (remap_fault_create (m, true, &f), 0);
  ck_assert_str_eq (f->identity, "");
  remap_backend_close (f);

  make_scratch ();
  snprintf (path, sizeof path, "%s/inner.img", scratch);
  write_file (path, "inner");
  open_file (path, &fb);
  ck_assert (fb->identity[0] != '\0');
  ck_assert_int_eq (remap_fault_create (fb, true, &f), 0);
  ck_assert_str_eq (f->identity, fb->identity);
  remap_backend_close (f);

  /* remap_backend_set_identity cleans like remap_identity_fit. */
  ck_assert_int_eq (remap_mem_create (4096, &m), 0);
  remap_backend_set_identity (m, "nbd:my disk,size=4096\n");
  ck_assert_str_eq (m->identity, "nbd:my_disk,size=4096");
  remap_backend_set_identity (m, "");
  ck_assert_str_eq (m->identity, "");
  remap_backend_close (m);
  remove_scratch ();
}
END_TEST

/* ---- block devices through a made-up sysfs ------------------------ */

/* sysfs/dev/block/MAJ:MIN -> ../../devices/virtual/block/DISK[/PART]. */
static void
fake_dev (const char *sysfs, const char *majmin, const char *target)
{
  char link[PATH_MAX], to[PATH_MAX];
  snprintf (link, sizeof link, "%s/dev/block/%s", sysfs, majmin);
  snprintf (to, sizeof to, "../../devices/virtual/block/%s", target);
  ck_assert_msg (symlink (to, link) == 0, "symlink %s: %m", link);
}

static void
fake_disk (const char *sysfs, const char *disk, const char *majmin)
{
  char rel[PATH_MAX];
  snprintf (rel, sizeof rel, "devices/virtual/block/%s/device", disk);
  mkdirs (sysfs, rel);
  snprintf (rel, sizeof rel, "devices/virtual/block/%s/dev", disk);
  char line[64];
  snprintf (line, sizeof line, "%s\n", majmin);
  put (sysfs, rel, line);
  fake_dev (sysfs, majmin, disk);
}

static void
fake_part (const char *sysfs, const char *disk, const char *part,
           const char *num, const char *majmin)
{
  char rel[PATH_MAX], target[PATH_MAX];
  snprintf (rel, sizeof rel, "devices/virtual/block/%s/%s", disk, part);
  mkdirs (sysfs, rel);
  snprintf (rel, sizeof rel, "devices/virtual/block/%s/%s/partition", disk,
            part);
  put (sysfs, rel, num);
  snprintf (target, sizeof target, "%s/%s", disk, part);
  fake_dev (sysfs, majmin, target);
}

static void
blk_id (const char *sysfs, const char *udev, unsigned maj, unsigned min,
        char *out)
{
  memset (out, 'Z', REMAP_IDENTITY_MAX + 1);  /* must be overwritten */
  remap_identity_blockdev (sysfs, udev, maj, min, out);
}

START_TEST (test_blockdev_sysfs)
{
  char sysfs[PATH_MAX], udev[PATH_MAX], id[REMAP_IDENTITY_MAX + 1];
  const char *V = "devices/virtual/block";
  char rel[PATH_MAX];

  make_scratch ();
  snprintf (sysfs, sizeof sysfs, "%s/sys", scratch);
  snprintf (udev, sizeof udev, "%s/udev", scratch);
  mkdirs (scratch, "sys/dev/block");
  mkdirs (scratch, "udev/data");

  /* A SCSI disk with a WWID, and its second partition. */
  fake_disk (sysfs, "sda", "8:0");
  fake_part (sysfs, "sda", "sda2", "2\n", "8:2");
  snprintf (rel, sizeof rel, "%s/sda/device/wwid", V);
  put (sysfs, rel, "naa.5000c500a1b2c3d4\n");
  blk_id (sysfs, udev, 8, 0, id);
  ck_assert_str_eq (id, "wwn:naa.5000c500a1b2c3d4");
  blk_id (sysfs, udev, 8, 2, id);
  ck_assert_str_eq (id, "wwn:naa.5000c500a1b2c3d4-part2");
  /* The serial does not matter when there is a WWID. */
  snprintf (rel, sizeof rel, "%s/sda/device/serial", V);
  put (sysfs, rel, "SERIAL-A\n");
  blk_id (sysfs, udev, 8, 0, id);
  ck_assert_str_eq (id, "wwn:naa.5000c500a1b2c3d4");

  /* NVMe: wwid on the disk itself; an ATA-style t10 text with blanks. */
  fake_disk (sysfs, "nvme0n1", "259:0");
  snprintf (rel, sizeof rel, "%s/nvme0n1/wwid", V);
  put (sysfs, rel, "t10.ATA     Samsung SSD 850      S21NNX123\n");
  blk_id (sysfs, udev, 259, 0, id);
  ck_assert_str_eq (id, "wwn:t10.ATA_Samsung_SSD_850_S21NNX123");

  /* Only a serial (device/serial, or virtio's serial). */
  fake_disk (sysfs, "sdb", "8:16");
  snprintf (rel, sizeof rel, "%s/sdb/device/serial", V);
  put (sysfs, rel, "  WD-WCC4E1234567 \n");
  blk_id (sysfs, udev, 8, 16, id);
  ck_assert_str_eq (id, "serial:WD-WCC4E1234567");
  fake_disk (sysfs, "vda", "254:0");
  snprintf (rel, sizeof rel, "%s/vda/serial", V);
  put (sysfs, rel, "\n");       /* empty: says nothing */
  blk_id (sysfs, udev, 254, 0, id);
  ck_assert_str_eq (id, "");
  put (sysfs, rel, "vserial7\n");
  blk_id (sysfs, udev, 254, 0, id);
  ck_assert_str_eq (id, "serial:vserial7");

  /* Nothing in sysfs: udev's database, of the disk even for a
   * partition; ID_WWN before ID_SERIAL. */
  fake_disk (sysfs, "sdc", "8:32");
  fake_part (sysfs, "sdc", "sdc1", "1", "8:33");
  blk_id (sysfs, udev, 8, 32, id);
  ck_assert_str_eq (id, "");
  put (udev, "data/b8:33", "E:ID_SERIAL=not-the-disk\n");  /* ignored */
  put (udev, "data/b8:32", "S:disk/by-id/x\nE:ID_SERIAL_SHORT=short\n"
       "E:ID_SERIAL=ST4000DM004_ZFN0ABCD\nG:systemd\n");
  blk_id (sysfs, udev, 8, 33, id);
  ck_assert_str_eq (id, "serial:ST4000DM004_ZFN0ABCD-part1");
  put (udev, "data/b8:32", "E:ID_SERIAL=ST4000DM004_ZFN0ABCD\n"
       "E:ID_WWN_WITH_EXTENSION=0x5000c500deadbeef\n"
       "E:ID_WWN=0x5000c500deadbeef\n");
  blk_id (sysfs, udev, 8, 32, id);
  ck_assert_str_eq (id, "wwn:0x5000c500deadbeef");

  /* Device mapper (LVM): its uuid. */
  fake_disk (sysfs, "dm-0", "252:0");
  snprintf (rel, sizeof rel, "%s/dm-0/dm", V);
  mkdirs (sysfs, rel);
  snprintf (rel, sizeof rel, "%s/dm-0/dm/uuid", V);
  put (sysfs, rel, "LVM-abcdefABCDEF0123\n");
  blk_id (sysfs, udev, 252, 0, id);
  ck_assert_str_eq (id, "dm:LVM-abcdefABCDEF0123");

  /* A loop device: its backing file and offset, and a partition of it. */
  fake_disk (sysfs, "loop3", "7:3");
  fake_part (sysfs, "loop3", "loop3p1", "1\n", "259:9");
  snprintf (rel, sizeof rel, "%s/loop3/loop", V);
  mkdirs (sysfs, rel);
  snprintf (rel, sizeof rel, "%s/loop3/loop/backing_file", V);
  put (sysfs, rel, "/srv/images/disk one.img\n");
  snprintf (rel, sizeof rel, "%s/loop3/loop/offset", V);
  put (sysfs, rel, "1048576\n");
  blk_id (sysfs, udev, 7, 3, id);
  ck_assert_str_eq (id, "loop:/srv/images/disk_one.img,offset=1048576");
  blk_id (sysfs, udev, 259, 9, id);
  ck_assert_str_eq (id, "loop:/srv/images/disk_one.img,offset=1048576-part1");
  /* A loop device with nothing attached says nothing. */
  fake_disk (sysfs, "loop4", "7:4");
  blk_id (sysfs, udev, 7, 4, id);
  ck_assert_str_eq (id, "");

  /* No such device, or no sysfs at all: "". */
  blk_id (sysfs, udev, 99, 99, id);
  ck_assert_str_eq (id, "");
  blk_id ("/nonexistent-sysfs", "/nonexistent-udev", 8, 0, id);
  ck_assert_str_eq (id, "");
  remove_scratch ();
}
END_TEST

/* ---- a real loop device -------------------------------------------- */

static bool
loop_ready (const char **why)
{
  if (geteuid () != 0) {
    *why = "not root";
    return false;
  }
  if (system ("losetup -f >/dev/null 2>&1") != 0) {
    *why = "no free loop device (losetup -f failed)";
    return false;
  }
  return true;
}

/* losetup ARGS IMG; the device name into dev. */
static void
loop_attach (const char *args, const char *img, char *dev, size_t n)
{
  char cmd[2 * PATH_MAX];
  snprintf (cmd, sizeof cmd, "losetup -f --show %s '%s'", args, img);
  FILE *p = popen (cmd, "r");
  ck_assert (p != NULL);
  ck_assert_msg (fgets (dev, (int) n, p) != NULL, "%s printed nothing", cmd);
  dev[strcspn (dev, "\n")] = '\0';
  ck_assert_int_eq (pclose (p), 0);
}

static void
loop_detach (const char *dev)
{
  char cmd[PATH_MAX];
  snprintf (cmd, sizeof cmd, "losetup -d '%s'", dev);
  ck_assert_int_eq (system (cmd), 0);
}

START_TEST (test_loop_device)
{
  char img[PATH_MAX], real[PATH_MAX], dev[PATH_MAX], want[2 * PATH_MAX];
  char first[REMAP_IDENTITY_MAX + 1];
  struct remap_backend *b;
  char cmd[2 * PATH_MAX];

  make_scratch ();
  snprintf (img, sizeof img, "%s/loop.img", scratch);
  snprintf (cmd, sizeof cmd, "truncate -s 4M '%s'", img);
  ck_assert_int_eq (system (cmd), 0);
  ck_assert (realpath (img, real) != NULL);

  loop_attach ("", img, dev, sizeof dev);
  open_file (dev, &b);
  ck_assert (b->is_block_device);
  snprintf (want, sizeof want, "loop:%s,offset=0", real);
  char fitted[REMAP_IDENTITY_MAX + 1];
  remap_identity_fit (want, fitted);
  ck_assert_str_eq (b->identity, fitted);
  snprintf (first, sizeof first, "%s", b->identity);
  remap_backend_close (b);
  loop_detach (dev);

  /* Attached again (perhaps as another loopN): the same identity. */
  loop_attach ("", img, dev, sizeof dev);
  open_file (dev, &b);
  ck_assert_str_eq (b->identity, first);
  remap_backend_close (b);
  loop_detach (dev);

  /* Another offset into the same image is another disk. */
  loop_attach ("-o 1048576", img, dev, sizeof dev);
  open_file (dev, &b);
  snprintf (want, sizeof want, "loop:%s,offset=1048576", real);
  remap_identity_fit (want, fitted);
  ck_assert_str_eq (b->identity, fitted);
  remap_backend_close (b);
  loop_detach (dev);
  remove_scratch ();
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("identity");
  TCase *fit = tcase_create ("fit");
  TCase *file = tcase_create ("file");
  TCase *blk = tcase_create ("blockdev");
  const char *why = NULL;
  bool loop = loop_ready (&why);
  int failed;

  tcase_add_test (fit, test_fit_short);
  tcase_add_test (fit, test_fit_long);
  tcase_add_test (file, test_regular_file);
  tcase_add_test (file, test_mem_and_fault);
  tcase_add_test (blk, test_blockdev_sysfs);
  if (loop)
    tcase_add_test (blk, test_loop_device);
  suite_add_tcase (s, fit);
  suite_add_tcase (s, file);
  suite_add_tcase (s, blk);

  SRunner *sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  if (!loop) {
    fprintf (stderr, "test_loop_device: SKIPPED (%s); the identity of a "
             "real loop device was not checked\n", why);
    if (getenv ("REMAP_REQUIRE_LOOP"))
      return EXIT_FAILURE;
  }
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
