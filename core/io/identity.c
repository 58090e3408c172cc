/* remap: what identifies a file or a block device beyond its size
 * (SPEC 2.7).  The text is recorded in the spare's superblock at format
 * and compared at open; what each kind means and what it survives is
 * below, and for users in nbdkit-remap-plugin(1), ORIGIN IDENTITY.
 * Best effort throughout: whatever cannot be read gives "" (nothing is
 * then checked), never a failed open.
 *
 * Block devices, from sysfs for the device's major:minor.
 * /sys/dev/block/MAJ:MIN links to the device's directory; a partition
 * (it has a `partition' file) is named by its disk plus "-partN".  The
 * disk's identity is the first of:
 *
 *   loop/backing_file, loop/offset   "loop:PATH,offset=N"  (a loop device)
 *   wwid, device/wwid                "wwn:TEXT"            (SCSI, NVMe)
 *   dm/uuid                          "dm:UUID"             (LVM, dm-crypt)
 *   device/serial, serial            "serial:TEXT"         (ATA, virtio)
 *   udev's /run/udev/data/bMAJ:MIN   "wwn:" E:ID_WWN, else
 *                                    "serial:" E:ID_SERIAL
 *
 * using the disk's own major:minor for udev.  For example a partition of
 * a SAS disk: "wwn:naa.5000c500a1b2c3d4-part2".  Each of these follows the
 * medium (or, for a loop device, the image and where in it) and not the
 * name the kernel gave it this boot: /dev/sdb may be /dev/sdc next time
 * and keep its identity.
 *
 * Regular files: "file:fsid=HEX,ino=N", the file system's id (statfs
 * f_fsid) and the inode number; or "file:dev=MAJ:MIN,ino=N" (st_dev) on
 * a file system that reports no id.  See remap_identity_regular.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "remap/backend.h"
#include "identity.h"

#define ATTR_MAX 1024           /* longer sysfs/udev values are cut here */

/* The contents of dir/rel, surrounding white space removed, into buf;
 * true if that left something. */
static bool
read_attr (const char *dir, const char *rel, char *buf, size_t n)
{
  char path[PATH_MAX];
  size_t len = 0;
  int fd;

  buf[0] = '\0';
  if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, rel) >= sizeof path)
    return false;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return false;
  while (len + 1 < n) {
    ssize_t r = read (fd, buf + len, n - 1 - len);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t) r;
  }
  close (fd);
  buf[len] = '\0';
  while (len > 0 && (unsigned char) buf[len - 1] <= ' ')
    buf[--len] = '\0';
  size_t lead = strspn (buf, " \t\r\n");
  memmove (buf, buf + lead, len - lead + 1);
  return buf[0] != '\0';
}

/* The value of "E:KEY=value" in udev's database entry for block device
 * dev ("MAJ:MIN"), into buf; true if found and not empty. */
static bool
udev_prop (const char *udev, const char *dev, const char *key, char *buf,
           size_t n)
{
  char path[PATH_MAX], line[ATTR_MAX];
  size_t klen = strlen (key);
  bool found = false;
  FILE *f;

  if ((size_t) snprintf (path, sizeof path, "%s/data/b%s", udev, dev)
      >= sizeof path)
    return false;
  f = fopen (path, "re");
  if (f == NULL)
    return false;
  while (!found && fgets (line, sizeof line, f)) {
    if (strncmp (line, "E:", 2) != 0 || strncmp (line + 2, key, klen) != 0
        || line[2 + klen] != '=')
      continue;
    snprintf (buf, n, "%s", line + 3 + klen);
    buf[strcspn (buf, "\r\n")] = '\0';
    found = buf[0] != '\0';
  }
  fclose (f);
  return found;
}

/* The identity of a whole disk whose sysfs directory is disk, into raw. */
static void
disk_identity (const char *disk, const char *udev, char *raw, size_t n)
{
  char v[ATTR_MAX], off[64], dev[64];

  raw[0] = '\0';
  if (read_attr (disk, "loop/backing_file", v, sizeof v)) {
    if (!read_attr (disk, "loop/offset", off, sizeof off))
      snprintf (off, sizeof off, "0");
    snprintf (raw, n, "loop:%s,offset=%s", v, off);
  }
  else if (read_attr (disk, "wwid", v, sizeof v)
           || read_attr (disk, "device/wwid", v, sizeof v))
    snprintf (raw, n, "wwn:%s", v);
  else if (read_attr (disk, "dm/uuid", v, sizeof v))
    snprintf (raw, n, "dm:%s", v);
  else if (read_attr (disk, "device/serial", v, sizeof v)
           || read_attr (disk, "serial", v, sizeof v))
    snprintf (raw, n, "serial:%s", v);
  else if (read_attr (disk, "dev", dev, sizeof dev)) {
    if (udev_prop (udev, dev, "ID_WWN", v, sizeof v))
      snprintf (raw, n, "wwn:%s", v);
    else if (udev_prop (udev, dev, "ID_SERIAL", v, sizeof v))
      snprintf (raw, n, "serial:%s", v);
  }
}

void
remap_identity_blockdev (const char *sysfs, const char *udev, unsigned maj,
                         unsigned min, char *out)
{
  char link[PATH_MAX], dir[PATH_MAX], part[32];
  char raw[2 * ATTR_MAX + 64];
  unsigned partno = 0;

  out[0] = '\0';
  if (sysfs == NULL)
    sysfs = "/sys";
  if (udev == NULL)
    udev = "/run/udev";
  if ((size_t) snprintf (link, sizeof link, "%s/dev/block/%u:%u", sysfs, maj,
                         min) >= sizeof link
      || realpath (link, dir) == NULL)
    return;
  if (read_attr (dir, "partition", part, sizeof part)) {
    char *slash = strrchr (dir, '/');
    char *end;
    unsigned long p = strtoul (part, &end, 10);

    if (slash == NULL || slash == dir || *end != '\0' || p == 0
        || p > 1000000)
      return;
    *slash = '\0';              /* the disk holding the partition */
    partno = (unsigned) p;
  }
  disk_identity (dir, udev, raw, sizeof raw - 32);
  if (raw[0] == '\0')
    return;
  if (partno)
    snprintf (raw + strlen (raw), 32, "-part%u", partno);
  remap_identity_fit (raw, out);
}

/* Why the file system's id before st_dev: st_dev is the number the kernel
 * gave the file system's device at mount, and changes when the disks are
 * enumerated in another order (sdb1 becoming sdc1) and, for btrfs, NFS
 * and other file systems without a block device of their own, at each
 * mount.  f_fsid comes from the file system's UUID on ext4 and btrfs (per
 * subvolume), so it survives reboots; on XFS it is st_dev again.  A file
 * system that reports none (0) gives st_dev.
 *
 * What it survives: renames and moves inside the file system, writes,
 * truncation, reboots where f_fsid is stable.  What it does not: copying
 * or restoring the file (cp, rsync, a backup: a new inode), moving it to
 * another file system, recreating the file system; there the identity
 * changes and the user accepts it (origin-changed=accept, remapctl
 * rebind).  An identical clone of the whole file system (dd of the
 * partition, same UUID) keeps it: that is the same data on another
 * medium, which the check cannot tell apart. */
void
remap_identity_regular (int fd, const struct stat *st, char *out)
{
  char raw[128];
  struct statfs sf;

  out[0] = '\0';
  if (fstatfs (fd, &sf) == 0
      && (sf.f_fsid.__val[0] != 0 || sf.f_fsid.__val[1] != 0))
    snprintf (raw, sizeof raw, "file:fsid=%08x%08x,ino=%llu",
              (unsigned) sf.f_fsid.__val[1], (unsigned) sf.f_fsid.__val[0],
              (unsigned long long) st->st_ino);
  else
    snprintf (raw, sizeof raw, "file:dev=%u:%u,ino=%llu",
              major (st->st_dev), minor (st->st_dev),
              (unsigned long long) st->st_ino);
  remap_identity_fit (raw, out);
}
