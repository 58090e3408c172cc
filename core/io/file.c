/* remap: the file backend, for regular files and block devices.
 *
 * Plain pread/pwrite on one file descriptor, looped until the whole request
 * is transferred (EINTR retried, short transfers continued).  A read that
 * meets end of file before `len' bytes is -ENXIO: the file shrank under
 * us, which is no media error (a connection-class error: the file we
 * opened is gone as it was).  Media errors (EIO, ENODATA, EILSEQ, EBADMSG,
 * EREMOTEIO) all become -EIO; every other errno is returned as it is, so
 * that the engine can tell a full file system (ENOSPC, EDQUOT, EFBIG) or a
 * read-only one (EROFS) from a bad sector (docs/ERRORS.md).
 *
 * O_DIRECT (SPEC 3.9).  Block devices use it unless NODIRECT; regular files
 * only with DIRECT.  The kernel then wants buffer, offset and length aligned
 * to `dio' (the logical block of a device; 4096 for files, which is safe on
 * every common file system).  A request that is not aligned goes through a
 * posix_memalign bounce buffer covering the enclosing aligned range, in
 * chunks of at most 1 MiB:
 *
 *        a0        off                      off+len       a1
 *        |  head   |======= user data ========|    tail    |
 *        |<- dio ->|                          |<-  dio   ->|
 *
 * A write whose head or tail is partial reads those blocks first
 * (read-modify-write).  rmw_lock serialises every read-modify-write so two
 * sub-block writes to disjoint bytes of one block cannot undo each other.
 * It does not order an aligned write against a concurrent read-modify-write
 * of the same block: those overlap, and NBD leaves their result open.
 *
 * A regular file opened with DIRECT whose size is not a multiple of dio has
 * a partial last block that O_DIRECT cannot write without growing the file;
 * bytes from direct_end (size rounded down) up go through a second,
 * buffered descriptor (tail_fd).  fdatasync on either descriptor syncs the
 * inode, so flush covers both.
 *
 * Locking: pread/pwrite on one descriptor are thread-safe; only
 * read-modify-write takes rmw_lock.  The exclusive lock (flock) belongs to
 * the open file description of fd, so two opens of one path conflict even
 * inside one process, and closing tail_fd never drops it.
 *
 * Preallocation (file_preallocate, asked for by format): a regular file
 * gets every block allocated, after a check that the file system has the
 * room, so that a formatted spare cannot meet a full host file system
 * later (a sparse spare would then fail writes with ENOSPC).
 *
 * Identity (SPEC 2.7): identity.c, filled at open: a block device by its
 * WWN, serial or loop backing file, a regular file by its file system and
 * inode.
 *
 * Extents: a regular file reports its holes with lseek SEEK_DATA /
 * SEEK_HOLE (a hole reads as zeroes: HOLE|ZERO); a file system without
 * them answers "all data", which is true.  A block device reports all
 * data: it has no holes we could know of.  lseek moves the shared file
 * offset, which pread/pwrite never use, so it needs no lock.
 *
 * io_uring is in uring.c: file_raw_fd tells it which transfers it may
 * issue on fd as they are.  Not done here: growing a file on CREATE (the
 * header has no size for it: CREATE just creates an empty file).
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

#include "remap/backend.h"
#include "identity.h"

#define BOUNCE_CHUNK (1024u * 1024u)
#define FILE_DIO_ALIGN 4096u
#define KNOWN_FLAGS                                                            \
  (REMAP_FILE_READONLY | REMAP_FILE_DIRECT | REMAP_FILE_NODIRECT |             \
   REMAP_FILE_CREATE)

struct file {
  struct remap_backend base; /* first: the vtable base */
  int fd;                    /* O_DIRECT iff base.direct */
  int tail_fd;               /* buffered, for [direct_end, size); or -1 */
  bool readonly;
  uint32_t dio;        /* alignment fd needs (1 if not direct) */
  uint64_t direct_end; /* bytes below go through fd */
  pthread_mutex_t rmw_lock;
  bool no_punch; /* fallocate modes found unsupported */
  bool no_zero_range;
  bool no_zeroout;
};

static const struct remap_backend_ops file_ops;

static int
media_errno (int e)
{
  switch (e) {
  case EIO:
  case ENODATA:
  case EILSEQ:
  case EBADMSG:
  case EREMOTEIO:
    return -EIO;
  default:
    return -e;
  }
}

/* Transfer buf[0..len) at off.  A read may stop at end of file once `need'
 * bytes are in; before that, end of file is -EIO. */
static int
full_read (int fd, void *buf, size_t len, uint64_t off, size_t need)
{
  size_t done = 0;

  while (done < len) {
    ssize_t r = pread (fd, (char *) buf + done, len - done, off + done);

    if (r < 0) {
      if (errno == EINTR)
        continue;
      return media_errno (errno);
    }
    if (r == 0)
      return done >= need ? 0 : -ENXIO; /* the file shrank */
    done += r;
  }
  return 0;
}

static int
full_write (int fd, const void *buf, size_t len, uint64_t off)
{
  size_t done = 0;

  while (done < len) {
    ssize_t r = pwrite (fd, (const char *) buf + done, len - done, off + done);

    if (r < 0) {
      if (errno == EINTR)
        continue;
      return media_errno (errno);
    }
    if (r == 0)
      return -EIO;
    done += r;
  }
  return 0;
}

static uint64_t
round_down (uint64_t x, uint32_t a)
{
  return x & ~(uint64_t) (a - 1);
}

static uint64_t
round_up (uint64_t x, uint32_t a)
{
  return round_down (x + a - 1, a);
}

static bool
is_aligned (const struct file *f, const void *buf, size_t len, uint64_t off)
{
  return (((uintptr_t) buf | len | off) & (f->dio - 1)) == 0;
}

static void *
bounce_alloc (const struct file *f, size_t len)
{
  void *p = NULL;
  size_t a = f->dio > 4096 ? f->dio : 4096;

  if (posix_memalign (&p, a, len) != 0)
    return NULL;
  return p;
}

/* ---- O_DIRECT: one chunk at a time through a bounce buffer ------------ */

/* Reads bounce through a buffer kept per thread (BOUNCE_CHUNK bytes,
 * 4096-aligned, freed when the thread exits): nbdkit's request buffers are
 * malloc'ed, so not aligned for O_DIRECT, and a fresh 1 MiB buffer per
 * request cost an mmap, 256 page faults and a munmap each time (issue 12:
 * direct=yes 1 MiB reads spent 1.7x the file plugin's CPU per GiB).  A
 * read holds the buffer only inside bounce_read, which calls nothing that
 * could take it again. */
static pthread_key_t bounce_key;
static pthread_once_t bounce_once = PTHREAD_ONCE_INIT;
static bool bounce_key_ok;

static void
bounce_key_init (void)
{
  bounce_key_ok = pthread_key_create (&bounce_key, free) == 0;
}

/* This thread's read bounce buffer of at least n bytes aligned for f, or
 * NULL (then the caller allocates one of its own). */
static void *
bounce_thread_buf (const struct file *f, size_t n)
{
  if (n > BOUNCE_CHUNK || f->dio > 4096)
    return NULL;
  pthread_once (&bounce_once, bounce_key_init);
  if (!bounce_key_ok)
    return NULL;
  void *p = pthread_getspecific (bounce_key);
  if (p == NULL) {
    if (posix_memalign (&p, 4096, BOUNCE_CHUNK) != 0)
      return NULL;
    if (pthread_setspecific (bounce_key, p) != 0) {
      free (p);
      return NULL;
    }
  }
  return p;
}

static int
bounce_read (struct file *f, void *buf, size_t len, uint64_t off)
{
  uint64_t a0 = round_down (off, f->dio);
  uint64_t a1 = round_up (off + len, f->dio);
  uint8_t *own = NULL, *b = bounce_thread_buf (f, a1 - a0);
  int r;

  if (b == NULL && (b = own = bounce_alloc (f, a1 - a0)) == NULL)
    return -ENOMEM;
  r = full_read (f->fd, b, a1 - a0, a0, a1 - a0);
  if (r == 0)
    memcpy (buf, b + (off - a0), len);
  free (own);
  return r;
}

static int
bounce_write (struct file *f, const void *buf, size_t len, uint64_t off)
{
  uint64_t a0 = round_down (off, f->dio);
  uint64_t a1 = round_up (off + len, f->dio);
  size_t n = a1 - a0;
  bool head = off != a0, tail = off + len != a1;
  uint8_t *b = bounce_alloc (f, n);
  int r = 0;

  if (b == NULL)
    return -ENOMEM;
  if (head || tail)
    pthread_mutex_lock (&f->rmw_lock);
  if (head)
    r = full_read (f->fd, b, f->dio, a0, f->dio);
  /* The tail block is the head block when n == dio: read once. */
  if (r == 0 && tail && !(head && n == f->dio))
    r = full_read (f->fd, b + n - f->dio, f->dio, a1 - f->dio, f->dio);
  if (r == 0) {
    memcpy (b + (off - a0), buf, len);
    r = full_write (f->fd, b, n, a0);
  }
  if (head || tail)
    pthread_mutex_unlock (&f->rmw_lock);
  free (b);
  return r;
}

/* Split [off, off+len) into chunks whose inner boundaries are multiples of
 * BOUNCE_CHUNK (so aligned), and run fn on each. */
static int
by_chunks (struct file *f, char *buf, size_t len, uint64_t off, bool write)
{
  while (len > 0) {
    size_t n = BOUNCE_CHUNK - off % BOUNCE_CHUNK;
    int r;

    if (n > len)
      n = len;
    r = write ? bounce_write (f, buf, n, off) : bounce_read (f, buf, n, off);
    if (r < 0)
      return r;
    buf += n;
    off += n;
    len -= n;
  }
  return 0;
}

/* ---- the vtable ------------------------------------------------------ */

/* Run one request: the part below direct_end through fd (bounced if
 * needed), the rest through the buffered tail_fd. */
static int
file_io (struct file *f, char *buf, size_t len, uint64_t off, bool write)
{
  size_t head_len;
  int r;

  if (!f->base.direct)
    return write ? full_write (f->fd, buf, len, off)
                 : full_read (f->fd, buf, len, off, len);

  head_len = off >= f->direct_end
    ? 0
    : (f->direct_end - off < len ? f->direct_end - off : len);
  if (head_len > 0) {
    if (is_aligned (f, buf, head_len, off))
      r = write ? full_write (f->fd, buf, head_len, off)
                : full_read (f->fd, buf, head_len, off, head_len);
    else
      r = by_chunks (f, buf, head_len, off, write);
    if (r < 0)
      return r;
  }
  if (head_len == len)
    return 0;
  if (f->tail_fd < 0) /* the file grew past its size at open */
    return -EIO;
  buf += head_len;
  off += head_len;
  len -= head_len;
  return write ? full_write (f->tail_fd, buf, len, off)
               : full_read (f->tail_fd, buf, len, off, len);
}

static int
file_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  return file_io ((struct file *) b, buf, len, off, false);
}

static int
file_pwrite (struct remap_backend *b, const void *buf, size_t len, uint64_t off)
{
  struct file *f = (struct file *) b;

  if (f->readonly)
    return -EROFS;
  /* file_io only reads from buf when writing. */
  return file_io (f, (char *) buf, len, off, true);
}

static int
file_flush (struct remap_backend *b)
{
  struct file *f = (struct file *) b;

  if (f->readonly)
    return 0;
  if (fdatasync (f->fd) == -1)
    return media_errno (errno);
  return 0;
}

/* fallocate(mode); -EOPNOTSUPP (remembered in *unsupported) if the file
 * system cannot. */
static int
try_fallocate (struct file *f, int mode, uint64_t len, uint64_t off,
               bool *unsupported)
{
  if (__atomic_load_n (unsupported, __ATOMIC_RELAXED))
    return -EOPNOTSUPP;
  if (fallocate (f->fd, mode, off, len) == 0)
    return 0;
  switch (errno) {
  case EOPNOTSUPP:
  case ENOSYS:
  case ENODEV:
    __atomic_store_n (unsupported, true, __ATOMIC_RELAXED);
    return -EOPNOTSUPP;
  default:
    return media_errno (errno);
  }
}

static int
file_zero (struct remap_backend *b, uint64_t len, uint64_t off, bool may_trim)
{
  struct file *f = (struct file *) b;
  uint64_t range[2] = { off, len };
  int r;

  if (f->readonly)
    return -EROFS;
  if (!b->is_block_device) {
    if (may_trim) {
      r = try_fallocate (f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, len,
                         off, &f->no_punch);
      if (r != -EOPNOTSUPP)
        return r;
    }
    return try_fallocate (f, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, len,
                          off, &f->no_zero_range);
  }

  if (((off | len) & (b->logical_block - 1)) != 0 ||
      __atomic_load_n (&f->no_zeroout, __ATOMIC_RELAXED))
    return -EOPNOTSUPP;
  if (ioctl (f->fd, BLKZEROOUT, range) == 0)
    return 0;
  if (errno == EIO || errno == ENODATA || errno == EREMOTEIO)
    return -EIO;
  __atomic_store_n (&f->no_zeroout, true, __ATOMIC_RELAXED);
  return -EOPNOTSUPP;
}

static int
file_trim (struct remap_backend *b, uint64_t len, uint64_t off)
{
  struct file *f = (struct file *) b;
  int r;

  if (f->readonly)
    return -EROFS;
  if (!b->is_block_device)
    r = fallocate (f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
  else {
    /* Discard only the whole logical blocks inside the range. */
    uint64_t a0 = round_up (off, b->logical_block);
    uint64_t a1 = round_down (off + len, b->logical_block);
    uint64_t range[2] = { a0, a1 - a0 };

    if (a1 <= a0)
      return 0;
    r = ioctl (f->fd, BLKDISCARD, range);
  }
  /* Advisory: only a media error is worth reporting. */
  if (r == -1 && media_errno (errno) == -EIO)
    return -EIO;
  return 0;
}

/* The files this process holds locked, so that a lock refused because
 * this very process holds it (origin and spare are one file: hard links,
 * two paths to it, or the same path) is reported as that, not as another
 * process.  Entries live from a successful lock to file_close. */
#define MAX_LOCKED 64
static pthread_mutex_t locked_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  const struct file *f;
  dev_t dev;
  ino_t ino;
} locked[MAX_LOCKED];

static void
locked_add (const struct file *f)
{
  struct stat st;

  if (fstat (f->fd, &st) == -1)
    return;
  pthread_mutex_lock (&locked_lock);
  for (size_t i = 0; i < MAX_LOCKED; i++)
    if (!locked[i].f) {
      locked[i].f = f;
      locked[i].dev = st.st_dev;
      locked[i].ino = st.st_ino;
      break;
    }
  pthread_mutex_unlock (&locked_lock);
}

static void
locked_del (const struct file *f)
{
  pthread_mutex_lock (&locked_lock);
  for (size_t i = 0; i < MAX_LOCKED; i++)
    if (locked[i].f == f)
      locked[i].f = NULL;
  pthread_mutex_unlock (&locked_lock);
}

/* The name of the backend of this process that holds f's file locked
 * (copied into name), or false. */
static bool
locked_by_us (const struct file *f, char *name, size_t len)
{
  struct stat st;
  bool found = false;

  if (fstat (f->fd, &st) == -1)
    return false;
  pthread_mutex_lock (&locked_lock);
  for (size_t i = 0; i < MAX_LOCKED && !found; i++)
    if (locked[i].f && locked[i].f != f && locked[i].dev == st.st_dev
        && locked[i].ino == st.st_ino) {
      snprintf (name, len, "%s", locked[i].f->base.name);
      found = true;
    }
  pthread_mutex_unlock (&locked_lock);
  return found;
}

static int
file_lock (struct remap_backend *b, struct remap_error *err)
{
  struct file *f = (struct file *) b;
  char buf[128], other[256];
  int e;

  do {
    if (flock (f->fd, LOCK_EX | LOCK_NB) == 0) {
      locked_add (f);
      return 0;
    }
    e = errno;
  } while (e == EINTR);
  if (e == EWOULDBLOCK && locked_by_us (f, other, sizeof other))
    return remap_set_error (err, -EINVAL, "origin and spare are the same "
                            "file (%s and %s: the same path, or hard links "
                            "to one file); give the spare a file of its own",
                            other, b->name);
  if (e == EWOULDBLOCK)
    return remap_set_error (err, -EWOULDBLOCK,
                            "%s is in use by another process (another nbdkit "
                            "or remapctl holds its lock); stop it first",
                            b->name);
  return remap_set_error (err, -e, "cannot lock %s: %s", b->name,
                          strerror_r (e, buf, sizeof buf));
}

static void
file_close (struct remap_backend *b)
{
  struct file *f = (struct file *) b;

  locked_del (f);
  if (f->tail_fd >= 0)
    close (f->tail_fd);
  if (f->fd >= 0)
    close (f->fd);
  pthread_mutex_destroy (&f->rmw_lock);
  free (f);
}

/* "12.3 GiB": sizes in messages a user can compare with df -h. */
static const char *
human (uint64_t bytes, char *buf, size_t n)
{
  static const char *const suffix[] = { "bytes", "KiB", "MiB", "GiB", "TiB",
                                        "PiB", "EiB" };
  double v = (double) bytes;
  unsigned i = 0;

  while (v >= 1024 && i + 1 < sizeof suffix / sizeof suffix[0]) {
    v /= 1024;
    i++;
  }
  if (i == 0)
    snprintf (buf, n, "%llu bytes", (unsigned long long) bytes);
  else
    snprintf (buf, n, "%.1f %s", v, suffix[i]);
  return buf;
}

/* Allocate every block of a regular file (a block device has its blocks
 * already).  The free space is checked first, so that a spare too large
 * for its file system is refused before it fills that file system to the
 * last block; posix_fallocate then reserves the blocks without writing
 * data (or, on a file system without fallocate, by writing one byte per
 * block, which glibc does for us). */
static int
file_preallocate (struct remap_backend *b, struct remap_error *err)
{
  struct file *f = (struct file *) b;
  const char *optout = "keep it sparse instead (remapctl format --sparse, "
                       "or preallocate=no with format=yes), accepting that "
                       "writes then fail with ENOSPC when the file system "
                       "fills up";
  char h1[32], h2[32], buf[128];
  struct statvfs vfs;
  struct stat st;
  uint64_t have, need, avail;
  int e;

  if (b->is_block_device || b->size == 0)
    return 0;
  if (f->readonly)
    return remap_set_error (err, -EROFS,
                            "%s: cannot allocate a file opened "
                            "read-only",
                            b->name);
  if (fstat (f->fd, &st) == -1 || fstatvfs (f->fd, &vfs) == -1) {
    e = errno;
    return remap_set_error (err, -e, "%s: stat: %s", b->name,
                            strerror_r (e, buf, sizeof buf));
  }
  have = (uint64_t) st.st_blocks * 512;
  need = b->size > have ? b->size - have : 0;
  avail = (uint64_t) vfs.f_bavail * vfs.f_frsize;
  if (need > avail)
    return remap_set_error (err, -ENOSPC,
                            "%s: allocating it in full needs %s (%llu "
                            "bytes) more, but its file system has only %s "
                            "(%llu bytes) free; free some space, give a "
                            "smaller spare (truncate -s SIZE %s), or %s",
                            b->name, human (need, h1, sizeof h1),
                            (unsigned long long) need,
                            human (avail, h2, sizeof h2),
                            (unsigned long long) avail, b->name, optout);
  do
    e = posix_fallocate (f->fd, 0, (off_t) b->size);
  while (e == EINTR);
  switch (e) {
  case 0:
    return 0;
  case ENOSPC:
  case EDQUOT:
    return remap_set_error (err, -ENOSPC,
                            "%s: allocating it in full (%s) ran out of "
                            "space%s; free some space, give a smaller "
                            "spare, or %s",
                            b->name, human (b->size, h1, sizeof h1),
                            e == EDQUOT ? " (disk quota exceeded)" : "",
                            optout);
  case EINVAL:
  case EOPNOTSUPP:
    if (b->direct)
      return remap_set_error (err, -e,
                              "%s: the file system cannot allocate "
                              "a file opened with O_DIRECT (no "
                              "fallocate); use direct=no, or %s",
                              b->name, optout);
    /* fall through */
  default:
    return remap_set_error (err, -e, "%s: cannot allocate it in full: %s; %s",
                            b->name, strerror_r (e, buf, sizeof buf),
                            optout);
  }
}

/* Drop the page cache over a flushed range, so that the spare retest
 * reads the medium.  O_DIRECT bytes were never cached; the buffered tail
 * (tail_fd) may be. */
static int
file_drop_cache (struct remap_backend *b, uint64_t len, uint64_t off)
{
  struct file *f = (struct file *) b;
  int e = 0;

  if (!b->direct)
    e = posix_fadvise (f->fd, (off_t) off, (off_t) len, POSIX_FADV_DONTNEED);
  else if (f->tail_fd >= 0 && off + len > f->direct_end) {
    uint64_t a = off > f->direct_end ? off : f->direct_end;
    e = posix_fadvise (f->tail_fd, (off_t) a, (off_t) (off + len - a),
                       POSIX_FADV_DONTNEED);
  }
  return -e;
}

/* A transfer that can go to the kernel's ring as it is: a buffered read,
 * or a direct transfer aligned below direct_end.
 *
 * Buffered writes are not: io_uring cannot write into the page cache of
 * most file systems without blocking (ext4 has no non-blocking buffered
 * write), so it hands every such write to an io-wq worker thread.  Profiled
 * (perf, 1 MiB sequential writes with every 100th unit remapped): 15 worker
 * threads woken per batch, spinning on the file's i_rwsem against each
 * other (rwsem_spin_on_owner 4.8 %, finish_task_switch 5.4 % of the
 * server's CPU), 1.25x the file plugin's CPU per GiB, where pwrite one
 * piece after another does the same page-cache copy in the calling thread
 * and the writes to one file are serialized by that lock anyway. */
static int
file_raw_fd (struct remap_backend *b, const void *buf, size_t len,
             uint64_t off, bool write)
{
  struct file *f = (struct file *) b;

  if (write && (f->readonly || !f->base.direct))
    return -1;
  if (!f->base.direct)
    return f->fd;
  if (off + len <= f->direct_end && is_aligned (f, buf, len, off))
    return f->fd;
  return -1;
}

/* Where the next data at or after pos starts (end if none before it). */
static int
next_data (int fd, uint64_t pos, uint64_t end, uint64_t *d)
{
  off_t r = lseek (fd, (off_t) pos, SEEK_DATA);

  if (r == -1 && errno == ENXIO) {     /* a hole up to the end of file */
    *d = end;
    return 0;
  }
  if (r == -1)
    return -errno;
  *d = (uint64_t) r < end ? (uint64_t) r : end;
  return 0;
}

static int
file_extents (struct remap_backend *b, uint64_t len, uint64_t off,
              remap_extent_fn fn, void *opaque)
{
  struct file *f = (struct file *) b;
  uint64_t end = off + len;

  if (b->is_block_device)
    return fn (opaque, off, len, 0);
  for (uint64_t pos = off; pos < end;) {
    uint64_t d = end, h;
    off_t r;
    int e = next_data (f->fd, pos, end, &d);

    if (e)
      return e;
    if (d > pos) {
      e = fn (opaque, pos, d - pos, REMAP_EXTENT_HOLE | REMAP_EXTENT_ZERO);
      if (e)
        return e;
      pos = d;
      continue;
    }
    r = lseek (f->fd, (off_t) pos, SEEK_HOLE);
    if (r == -1 && errno != ENXIO)
      return -errno;
    /* ENXIO, or no hole after data at pos (the file changed between the
     * two calls): data, which is never a false claim. */
    h = r == -1 || (uint64_t) r <= pos || (uint64_t) r > end ? end
      : (uint64_t) r;
    e = fn (opaque, pos, h - pos, 0);
    if (e)
      return e;
    pos = h;
  }
  return 0;
}

static const struct remap_backend_ops file_ops = {
  .kind = "file",
  .raw_fd = file_raw_fd,
  .pread = file_pread,
  .pwrite = file_pwrite,
  .flush = file_flush,
  .zero = file_zero,
  .trim = file_trim,
  .lock = file_lock,
  .close = file_close,
  .preallocate = file_preallocate,
  .drop_cache = file_drop_cache,
  .extents = file_extents,
};

/* ---- opening --------------------------------------------------------- */

static int
open_error (const char *path, int e, bool readonly, struct remap_error *err)
{
  char buf[128];
  const char *text = strerror_r (e, buf, sizeof buf);

  switch (e) {
  case ENOENT:
    return remap_set_error (err, -e,
                            "cannot open %s: no such file or "
                            "directory (check the path)",
                            path);
  case EACCES:
  case EPERM:
    return remap_set_error (err, -e,
                            "cannot open %s%s: permission denied "
                            "(check its permissions, or run as a user "
                            "allowed to %s it; block devices usually need "
                            "root or the disk group)",
                            path, readonly ? "" : " for writing",
                            readonly ? "read" : "write");
  case EROFS:
    return remap_set_error (err, -e,
                            "cannot open %s for writing: read-only "
                            "file system (open it read-only, or remount "
                            "it read-write)",
                            path);
  case EBUSY:
    return remap_set_error (err, -e,
                            "cannot open %s: device or resource "
                            "busy (is it mounted or claimed by another "
                            "program?)",
                            path);
  case EISDIR:
    return remap_set_error (err, -e,
                            "cannot open %s: it is a directory "
                            "(give a file or a block device)",
                            path);
  default:
    return remap_set_error (err, -e, "cannot open %s: %s", path, text);
  }
}

/* Fill size/logical_block from the open descriptor. */
static int
probe (struct file *f, const char *path, const struct stat *st,
       struct remap_error *err)
{
  if (S_ISREG (st->st_mode)) {
    f->base.size = st->st_size;
    f->base.logical_block = 512;
    return 0;
  }
  if (S_ISBLK (st->st_mode)) {
    char buf[128];
    uint64_t size;
    int lb, e;

    if (ioctl (f->fd, BLKGETSIZE64, &size) == -1) {
      e = errno;
      return remap_set_error (err, -e,
                              "%s: cannot get the size of the "
                              "block device: %s",
                              path, strerror_r (e, buf, sizeof buf));
    }
    if (ioctl (f->fd, BLKSSZGET, &lb) == -1) {
      e = errno;
      return remap_set_error (err, -e,
                              "%s: cannot get the logical "
                              "block size: %s",
                              path, strerror_r (e, buf, sizeof buf));
    }
    if (lb < 512 || lb > 65536 || (lb & (lb - 1)) != 0)
      return remap_set_error (err, -EINVAL,
                              "%s: unsupported logical block "
                              "size %d",
                              path, lb);
    f->base.size = size;
    f->base.logical_block = lb;
    f->base.is_block_device = true;
    return 0;
  }
  return remap_set_error (err, -EINVAL,
                          "%s is not a regular file or a "
                          "block device",
                          path);
}

/* Turn on O_DIRECT for fd, opening the buffered tail descriptor first if
 * the size is not a multiple of the alignment. */
static int
setup_direct (struct file *f, const char *path, int oflags,
              const struct stat *st, struct remap_error *err)
{
  char buf[128];
  int fl, e;

  f->base.direct = true;
  f->dio = f->base.is_block_device ? f->base.logical_block : FILE_DIO_ALIGN;
  f->base.align = f->base.logical_block > 4096 ? f->base.logical_block : 4096;
  f->direct_end = round_down (f->base.size, f->dio);

  if (f->direct_end < f->base.size) {
    struct stat st2;

    f->tail_fd = open (path, oflags & ~O_CREAT);
    if (f->tail_fd == -1)
      return open_error (path, errno, f->readonly, err);
    if (fstat (f->tail_fd, &st2) == -1 || st2.st_dev != st->st_dev ||
        st2.st_ino != st->st_ino)
      return remap_set_error (err, -ESTALE,
                              "%s changed while it was being "
                              "opened",
                              path);
  }

  fl = fcntl (f->fd, F_GETFL);
  if (fl == -1 || fcntl (f->fd, F_SETFL, fl | O_DIRECT) == -1) {
    e = errno;
    if (e == EINVAL)
      return remap_set_error (err, -EINVAL,
                              "%s: the file system does not "
                              "support O_DIRECT (tmpfs?); use direct=false "
                              "or put the file elsewhere",
                              path);
    return remap_set_error (err, -e, "%s: cannot enable O_DIRECT: %s", path,
                            strerror_r (e, buf, sizeof buf));
  }
  return 0;
}

int
remap_file_open (const char *path, unsigned flags, struct remap_backend **out,
                 struct remap_error *err)
{
  struct file *f;
  struct stat st;
  int oflags, r;

  *out = NULL;
  if (path == NULL || path[0] == '\0')
    return remap_set_error (err, -EINVAL, "no file name given");
  if ((flags & ~KNOWN_FLAGS) != 0 ||
      ((flags & REMAP_FILE_DIRECT) && (flags & REMAP_FILE_NODIRECT)) ||
      ((flags & REMAP_FILE_READONLY) && (flags & REMAP_FILE_CREATE)))
    return remap_set_error (err, -EINVAL, "%s: invalid open flags 0x%x", path,
                            flags);

  f = calloc (1, sizeof *f);
  if (f == NULL)
    return remap_set_error (err, -ENOMEM, "%s: out of memory", path);
  f->fd = f->tail_fd = -1;
  f->dio = 1;
  f->base.ops = &file_ops;
  f->base.align = 1;
  f->readonly = flags & REMAP_FILE_READONLY;
  pthread_mutex_init (&f->rmw_lock, NULL);
  snprintf (f->base.name, sizeof f->base.name, "%.*s",
            (int) sizeof f->base.name - 1, path);

  oflags = (f->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  if (flags & REMAP_FILE_CREATE)
    oflags |= O_CREAT;
  f->fd = open (path, oflags, 0644);
  if (f->fd == -1) {
    r = open_error (path, errno, f->readonly, err);
    goto err;
  }
  if (fstat (f->fd, &st) == -1) {
    char buf[128];
    int e = errno;

    r = remap_set_error (err, -e, "%s: stat: %s", path,
                         strerror_r (e, buf, sizeof buf));
    goto err;
  }
  r = probe (f, path, &st, err);
  if (r < 0)
    goto err;

  if ((flags & REMAP_FILE_DIRECT) ||
      (f->base.is_block_device && !(flags & REMAP_FILE_NODIRECT))) {
    r = setup_direct (f, path, oflags, &st, err);
    if (r < 0)
      goto err;
  }

  /* What identifies the medium (SPEC 2.7; identity.c): best effort, never
   * a reason to fail the open. */
  if (f->base.is_block_device)
    remap_identity_blockdev (NULL, NULL, major (st.st_rdev),
                             minor (st.st_rdev), f->base.identity);
  else
    remap_identity_regular (f->fd, &st, f->base.identity);

  *out = &f->base;
  return 0;

err:
  file_close (&f->base);
  return r;
}
