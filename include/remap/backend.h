/* remap: storage backends.
 *
 * Every byte the engine reads or writes goes through a struct remap_backend:
 * a small vtable in the spirit of nbdcopy's `struct rw'.  A concrete backend
 * embeds `struct remap_backend' as its first member and casts back.
 *
 * Contract of every operation: transfer exactly `len' bytes or fail; return 0
 * on success and a negative errno on failure (-EIO for a media error, whatever
 * the OS said otherwise; -ENOTCONN when the backend cannot be reached, which
 * says nothing about the medium); never print; never set errno.  Operations may be
 * called from several threads at once; a backend that is not thread-safe must
 * lock internally.  Offsets and lengths need not be aligned: a backend that
 * needs alignment (O_DIRECT) bounces internally, and `align' tells the engine
 * which alignment avoids the bounce.
 */
#ifndef REMAP_BACKEND_H
#define REMAP_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct remap_backend;

/* Longest identity text (struct remap_backend.identity), the size of the
 * superblock field origin_id (REMAP_ORIGIN_ID_SIZE). */
#define REMAP_IDENTITY_MAX 128

/* Whether a backend can be reached now (remap_backend_status).  A local
 * file or device is always reachable; an NBD export is unreachable from
 * the moment its connection is lost until a reconnection succeeds, and
 * meanwhile its transfers fail with -ENOTCONN, never -EIO. */
enum remap_backend_state {
  REMAP_BACKEND_OK = 0,
  REMAP_BACKEND_UNREACHABLE = 1,
};

struct remap_backend_status {
  enum remap_backend_state state;
  uint64_t down_ms;             /* how long unreachable (0 when OK) */
  uint64_t reconnects;          /* connections re-established since open */
  char detail[256];             /* why, and what happens next ("" if OK) */
};

/* Extent types, as NBD's base:allocation context has them (and nbdkit's
 * NBDKIT_EXTENT_*): 0 is data (allocated, contents unknown); HOLE is
 * unallocated; ZERO reads as zeroes.  HOLE without ZERO is allowed (an
 * unallocated range that may read as anything). */
#define REMAP_EXTENT_HOLE 0x1u
#define REMAP_EXTENT_ZERO 0x2u

/* Receives one extent [off, off+len) of type (REMAP_EXTENT_*).  0 to go
 * on; anything else stops the walk, which returns that value. */
typedef int (*remap_extent_fn) (void *opaque, uint64_t off, uint64_t len,
                                uint32_t type);

struct remap_backend_ops {
  const char *kind;             /* "file", "mem", "fault", "nbd" */
  int (*pread) (struct remap_backend *b, void *buf, size_t len, uint64_t off);
  int (*pwrite) (struct remap_backend *b, const void *buf, size_t len,
                 uint64_t off);
  /* Make every completed write durable (fdatasync). */
  int (*flush) (struct remap_backend *b);
  /* Optional (NULL: not supported).  Write zeroes; may deallocate only if
   * may_trim.  -EOPNOTSUPP lets the caller fall back to pwrite of zeroes. */
  int (*zero) (struct remap_backend *b, uint64_t len, uint64_t off,
               bool may_trim);
  /* Optional.  Advisory discard. */
  int (*trim) (struct remap_backend *b, uint64_t len, uint64_t off);
  /* Optional.  Take (exclusive) an advisory lock that conflicts with any
   * other process holding one on the same file; -EWOULDBLOCK if held. */
  int (*lock) (struct remap_backend *b, struct remap_error *err);
  /* Release everything; b is invalid afterwards. */
  void (*close) (struct remap_backend *b);
  /* Optional.  The file descriptor on which this transfer can be issued
   * as it is (no bounce, no split), or -1.  Lets remap_backend_submit
   * hand transfers of several backends to one io_uring. */
  int (*raw_fd) (struct remap_backend *b, const void *buf, size_t len,
                 uint64_t off, bool write);
  /* Optional (NULL: there is nothing to allocate, as for a block device,
   * an NBD export or memory).  Give every byte of the backend its storage
   * now, without changing the contents, so that a later write cannot fail
   * for lack of host space.  0; -ENOSPC with a message naming the space
   * needed and the space free; another -errno with a message. */
  int (*preallocate) (struct remap_backend *b, struct remap_error *err);
  /* Optional (NULL: the backend caches nothing).  Forget cached copies of
   * [off, off+len), which the caller has written and flushed, so that the
   * next read of it comes from the medium and not from memory.  0 or
   * -errno. */
  int (*drop_cache) (struct remap_backend *b, uint64_t len, uint64_t off);
  /* Optional (NULL: always reachable).  Fill st.  May make one bounded
   * reconnection attempt when one is due, so that a server that came
   * back is seen without waiting for traffic. */
  void (*status) (struct remap_backend *b, struct remap_backend_status *st);
  /* Optional (NULL: everything is data, as for a block device).  Report
   * the allocation of a prefix of [off, off+len): one or more extents in
   * ascending order, contiguous, the first starting at off, none reaching
   * past off+len (the wrapper asks again for the rest).  0, fn's non-zero
   * value, or -errno (nothing to conclude about the medium: the caller
   * reports data). */
  int (*extents) (struct remap_backend *b, uint64_t len, uint64_t off,
                  remap_extent_fn fn, void *opaque);
};

struct remap_backend {
  const struct remap_backend_ops *ops;
  uint64_t size;                /* bytes */
  uint32_t align;               /* preferred alignment of offset/len/buf (1 = any) */
  uint32_t logical_block;       /* smallest writable unit of the medium (512 for files) */
  bool is_block_device;
  bool direct;                  /* I/O bypasses the page cache */
  char name[256];               /* for messages: path, URI or "mem" */
  /* What identifies the medium beyond its size, recorded at format and
   * checked at open (SPEC 2.7): "wwn:...", "serial:...", "nbd:...",
   * "file:..."; "" when the backend cannot tell (then nothing is checked).
   * Filled by the backend's open. */
  char identity[REMAP_IDENTITY_MAX + 1];
  /* Calls that may have changed its bytes (pwrite, zero, trim, writes
   * in a batch), counted atomically by the wrappers below and by
   * remap_backend_submit *before* each is issued, once track_writes is
   * set; and events after which what it reads back is not known to be
   * what was last read, with no write of ours: a failed read (the medium
   * failing) or flush (the writes it should have made durable may be
   * gone), a lost connection and a new one (nbd.c: the server may have
   * lost acknowledged writes, or be another one).  A cache of what the
   * medium holds (extents.c) is valid only while this has not moved.
   * Read it with remap_backend_writes. */
  uint64_t writes;
  bool track_writes;            /* set before any I/O, never cleared */
};

/* Set b->identity from text, made fit for a superblock's origin_id
 * (nbdkit-remap-plugin(1), ORIGIN IDENTITY): surrounding white space removed, every run of
 * bytes that are not printable ASCII other than space (0x21..0x7e)
 * replaced by one '_', and text longer than REMAP_IDENTITY_MAX bytes
 * shortened to its first 40 bytes, '~', 16 hex digits of the FNV-1a
 * 64-bit hash of the whole (cleaned) text, '~' and its last 70 bytes: the
 * kind and the end of a long path stay readable, and two long texts that
 * differ anywhere still differ.  NULL or "" gives "" (unknown). */
void remap_backend_set_identity (struct remap_backend *b, const char *text);
/* The same into out. */
void remap_identity_fit (const char *text, char out[REMAP_IDENTITY_MAX + 1]);

/* Thin wrappers that also check the vtable and the range (-EINVAL past
 * size; 0 for a zero-length request); they never print.  `align', not
 * `logical_block', is what avoids a bounce buffer. */
int remap_backend_pread (struct remap_backend *b, void *buf, size_t len,
                         uint64_t off);
int remap_backend_pwrite (struct remap_backend *b, const void *buf,
                          size_t len, uint64_t off);
int remap_backend_flush (struct remap_backend *b);
/* b->writes, loaded atomically. */
uint64_t remap_backend_writes (const struct remap_backend *b);
/* Count a change of b's bytes about to be issued, or an event after
 * which they are not known (b->writes), if b tracks its writes. */
void remap_backend_count_write (struct remap_backend *b);
/* From now on count b's writes (b->writes).  Call before b is shared
 * between threads. */
void remap_backend_track_writes (struct remap_backend *b);
/* Zero [off, off+len): uses ops->zero when present, else writes zeroes in
 * bounded chunks. */
int remap_backend_zero (struct remap_backend *b, uint64_t len, uint64_t off,
                        bool may_trim);
int remap_backend_trim (struct remap_backend *b, uint64_t len, uint64_t off);
int remap_backend_lock (struct remap_backend *b, struct remap_error *err);
/* Allocate the whole backend (ops->preallocate); 0 when it has nothing to
 * allocate (block device, NBD export, memory). */
int remap_backend_preallocate (struct remap_backend *b,
                               struct remap_error *err);
/* Make the next read of [off, off+len) come from the medium (ops->
 * drop_cache); 0 when the backend caches nothing. */
int remap_backend_drop_cache (struct remap_backend *b, uint64_t len,
                              uint64_t off);
/* Report the allocation of all of [off, off+len) through fn, extents in
 * ascending order, contiguous, clipped to the range (ops->extents, called
 * again for what it left; one data extent without it).  A backend that
 * reports out of order, a gap or nothing gets -EPROTO.  0, fn's non-zero
 * value, -EINVAL past size, or the backend's -errno (the part reported
 * before it stands). */
int remap_backend_extents (struct remap_backend *b, uint64_t len,
                           uint64_t off, remap_extent_fn fn, void *opaque);
/* Whether b can be reached now (ops->status; OK without one). */
void remap_backend_status (struct remap_backend *b,
                           struct remap_backend_status *st);
/* NULL is accepted. */
void remap_backend_close (struct remap_backend *b);

/* One transfer of a batch. */
struct remap_io {
  struct remap_backend *b;
  void *buf;
  size_t len;
  uint64_t off;
  bool write;
  int result;                   /* out: 0 or a negative errno */
};

/* Run n independent transfers, possibly on different backends, and set
 * every ios[i].result.  Transfers that a backend can issue as they are
 * (raw_fd) go to the kernel together through a per-thread io_uring when
 * there are two or more of them; the rest run one after another.  Returns
 * 0 if all succeeded, else the first failure's result. */
int remap_backend_submit (struct remap_io *ios, size_t n);

/* How remap_backend_submit issues batches here: "io_uring", or
 * "pread/pwrite (io_uring unavailable: REASON)". */
const char *remap_backend_uring_status (void);

/* ---- mem: an in-memory disk, for tests ---------------------- */

/* Create a zero-filled memory backend of `size' bytes.  0 or -ENOMEM. */
int remap_mem_create (uint64_t size, struct remap_backend **out);
/* Its extents: every aligned REMAP_MEM_EXTENT_GRAIN bytes that are all
 * zero are a HOLE|ZERO extent, the rest data (so a test shapes holes by
 * what it writes). */
#define REMAP_MEM_EXTENT_GRAIN 4096u
/* Direct access to the bytes (tests compare and damage them). */
uint8_t *remap_mem_data (struct remap_backend *b);
/* A second backend sharing the same bytes (to "reopen" after a crash);
 * the bytes live until the last sharer is closed. */
int remap_mem_share (struct remap_backend *b, struct remap_backend **out);

/* ---- file: regular files and block devices --------------------------- */

#define REMAP_FILE_READONLY  0x1u
#define REMAP_FILE_DIRECT    0x2u   /* O_DIRECT (aligned bounce buffers) */
#define REMAP_FILE_NODIRECT  0x4u   /* never O_DIRECT, even on a block device */
#define REMAP_FILE_CREATE    0x8u   /* create an empty file if missing */

/* Open `path'.  Block devices use O_DIRECT unless NODIRECT is given
 * (SPEC 3.9).  0 or -errno with a message in err. */
int remap_file_open (const char *path, unsigned flags,
                     struct remap_backend **out, struct remap_error *err);

/* ---- nbd: an export of any NBD server, through libnbd ----------------- */

/* True if spec looks like an NBD URI (nbd://, nbds://, nbd+unix://, ...). */
bool remap_is_nbd_uri (const char *spec);

/* Connect to the NBD URI (flags: REMAP_FILE_READONLY).  Up to 4
 * connections when the server allows multi-conn, else one.  -ENOTCONN
 * with a message if the server cannot be reached; -ENOTSUP with a message
 * if remap was built without libnbd.
 *
 * A connection lost later is re-established on demand with back-off
 * (100 ms doubling to 5 s between attempts, each attempt at most 2 s),
 * and never given up.  While it is lost, a request waits for it at most
 * the reconnect timeout (default 5 s: a short server restart is not
 * seen), and not at all once the outage is older than that: requests then
 * fail at once with -ENOTCONN; remap_backend_status says unreachable, and
 * why.  A
 * reconnection is accepted only to an export of the same size.  If writes
 * completed since the last flush when the connection was lost, the next
 * flush fails once with -EIO: they may not have reached stable storage. */
int remap_nbd_open (const char *uri, unsigned flags,
                    struct remap_backend **out, struct remap_error *err);

/* Like remap_nbd_open, for an export known to have `size' bytes (a
 * spare's superblock records its origin's size): if the server cannot be
 * reached now, the backend is still returned, unreachable from the start
 * (status says why), and connects when the server is there.  Lets
 * remapctl report on a spare whose origin server is down. */
int remap_nbd_open_known_size (const char *uri, unsigned flags,
                               uint64_t size, struct remap_backend **out,
                               struct remap_error *err);

/* How long a request waits for a lost connection (the plugin's
 * reconnect-timeout=).  0, or -EINVAL if b is not an NBD backend. */
int remap_nbd_set_reconnect_timeout (struct remap_backend *b, unsigned ms);

#define REMAP_NBD_DEFAULT_RECONNECT_MS 5000u
#define REMAP_NBD_MAX_RECONNECT_MS 300000u

/* Open `spec': an NBD URI with remap_nbd_open, anything else with
 * remap_file_open. */
int remap_backend_open (const char *spec, unsigned flags,
                        struct remap_backend **out, struct remap_error *err);

/* ---- fault: a fault injector stacked on another backend -------------- */

#define REMAP_FAULT_READ   0x1u
#define REMAP_FAULT_WRITE  0x2u
#define REMAP_FAULT_FLUSH  0x4u
#define REMAP_FAULT_EXTENTS 0x8u  /* extents calls (the range applies) */

struct remap_fault_rule {
  uint64_t off, len;       /* byte range; an access fails if it overlaps */
  unsigned ops;            /* REMAP_FAULT_* mask */
  int err;                 /* negative errno to return, usually -EIO */
  uint64_t after;          /* let this many matching accesses pass first */
  uint64_t times;          /* fail this many times, then pass (0 = forever) */
};

enum remap_crash_mode {
  REMAP_CRASH_DROP_ALL,    /* every unflushed write is lost */
  REMAP_CRASH_KEEP_SOME,   /* a seeded random subset of them survives */
  REMAP_CRASH_TEAR_ONE,    /* like KEEP_SOME, and one write is torn */
};

/* Stack a fault injector on `inner'; inner is closed with it if own_inner.
 * 0 or -ENOMEM. */
int remap_fault_create (struct remap_backend *inner, bool own_inner,
                        struct remap_backend **out);
/* Add a rule; 0, -EINVAL (bad rule), -ENOSPC (too many rules). */
int remap_fault_add_rule (struct remap_backend *b,
                          const struct remap_fault_rule *rule);
void remap_fault_clear_rules (struct remap_backend *b);
/* Replace every rule at once (counts restart).  0, -EINVAL, -ENOSPC. */
int remap_fault_set_rules (struct remap_backend *b,
                           const struct remap_fault_rule *rules, size_t n);

#define REMAP_FAULT_MAX_RULES 64

/* Parse one rehearsal rule (SPEC 4.4), as the plugin's fail= takes it:
 *
 *   OPS:OFFSET[+LENGTH][,after=N][,times=N][,error=ERRNO]
 *
 * OPS is read, write, rw (both), flush or extents (block status: the
 * engine then reports the range as data).  OFFSET and LENGTH are bytes,
 * decimal with an optional suffix b, s (512-byte sectors), k, m, g, t, p
 * or e (powers of 1024), or 0x hexadecimal (remap/parse.h); LENGTH
 * defaults to 512.  after=N lets N matching accesses pass
 * first ("fail from the N+1-th access"); times=N fails N accesses and then
 * heals (default 0: forever).  ERRNO is any name remap_errno_from_name
 * knows (EIO, the default, ENODATA, ENOSPC, ENOTCONN, EAGAIN, EPERM ...):
 * one per error class and more.  0 or -EINVAL with a message. */
int remap_fault_parse_rule (const char *spec, struct remap_fault_rule *out,
                            struct remap_error *err);

/* Parse a rule file of len bytes named src (NULL: "line N"): one rule
 * per line, blank lines and '#' comments ignored, NUL and control bytes
 * refused.  Errors name SRC:LINE; rules and *n (the count) are written
 * only on success. */
int remap_fault_parse_rules (const char *text, size_t len, const char *src,
                             struct remap_fault_rule rules[REMAP_FAULT_MAX_RULES],
                             size_t *n, struct remap_error *err);
/* Volatile mode: writes are held in memory (visible to reads) until flush;
 * a crash loses them as `mode' says. */
void remap_fault_set_volatile (struct remap_backend *b, bool on);
/* Crash when the write with 0-based index `write_index' (counted since
 * create) arrives: that write and every later operation fail with -EIO and
 * the held writes meet `mode', seeded by `seed'.  UINT64_MAX disarms. */
void remap_fault_crash_at (struct remap_backend *b, uint64_t write_index,
                           enum remap_crash_mode mode, uint64_t seed);
/* Crash now (as if the next write were the crash point). */
void remap_fault_crash_now (struct remap_backend *b,
                            enum remap_crash_mode mode, uint64_t seed);
bool remap_fault_crashed (const struct remap_backend *b);
uint64_t remap_fault_writes (const struct remap_backend *b);
uint64_t remap_fault_flushes (const struct remap_backend *b);
uint64_t remap_fault_injected (const struct remap_backend *b);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_BACKEND_H */
