/* remap: the remap engine.
 *
 * The engine presents an origin disk whose bad units are redirected to a
 * spare.  It knows nothing of nbdkit: the plugin, remapctl, the tests and the
 * fuzzer all link it the same way.  It owns the two backends it is given and
 * closes them in remap_close.
 *
 * Thread safety: every function taking a struct remap_engine may be called
 * from several threads at once, except remap_close.  Each call takes its own
 * error context (may be NULL).
 */
#ifndef REMAP_REMAP_H
#define REMAP_REMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/backend.h"
#include "remap/error.h"
#include "remap/format.h"
#include "remap/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REMAP_VERSION_STRING "0.1.0"

struct remap_engine;

/* ---- formatting ------------------------------------------------------ */

struct remap_format_opts {
  uint32_t unit;                /* 0 = REMAP_DEFAULT_UNIT */
  enum remap_strategy strategy; /* AUTO = by size */
  uint32_t copies;              /* 0 = default for the strategy */
  bool force;                   /* overwrite existing remap metadata */
  bool sparse;                  /* do not preallocate a file spare */
  uint8_t uuid[16];             /* all zero = the caller forgot: -EINVAL */
  uint64_t format_time;         /* seconds since the epoch */
  const char *origin_label;     /* recorded for messages; may be NULL */
};

/* Fill opts with defaults, a random uuid and the current time (io layer). */
void remap_format_opts_init (struct remap_format_opts *opts);

/* Write fresh metadata (every copy: superblock and empty table) to spare for
 * origin, then flush.  Without force, refuses with -EEXIST if the spare
 * holds remap metadata (valid or damaged), and with the read's error if a
 * place where metadata could be cannot be read.  Does not take ownership
 * of the backends.  Unless opts->sparse, a spare that
 * is a regular file is first allocated in full (remap_backend_preallocate),
 * so that it cannot run out of host space later; -ENOSPC (nothing written)
 * when its file system lacks the room, with a message naming the space
 * needed. */
int remap_format (struct remap_backend *origin, struct remap_backend *spare,
                  const struct remap_format_opts *opts,
                  struct remap_error *err);

/* Record origin's identity (backend.h) and its name, as the label, in
 * every superblock of spare, for an origin that holds the same data as
 * the one the spare was formatted for but is another medium (a copied
 * image file, a cloned disk): opens then check against it (SPEC 2.7).
 * Takes the locks of both (-EWOULDBLOCK when a server holds them), finds
 * the spare's superblock as open does, and rewrites the superblocks one
 * copy at a time, copy 0 first, with sb_generation + 1 and a flush after
 * each: a crash leaves a spare that opens with the old identity or the
 * new one (core/rebind.c).  Nothing else on the spare changes.  Does not
 * take ownership of the backends.  0; -EOPNOTSUPP for a version 1 spare
 * (it records no identity); -ENODEV if the origin's size differs from the
 * recorded one; discover's errors (-ENOMEDIUM, -EUCLEAN, a read error);
 * a write or flush error naming the copy. */
int remap_rebind (struct remap_backend *origin, struct remap_backend *spare,
                  struct remap_error *err);

/* False only if every place where metadata could be was read and holds
 * none: damaged metadata, and places that cannot be read, count as
 * metadata (used to decide between "format" and "open"). */
bool remap_spare_has_metadata (struct remap_backend *spare);

/* ---- opening --------------------------------------------------------- */

/* ALERT: a warning the administrator must see without debug flags (the
 * free spare fell under 10 % or 1 %); not the failure of a request. */
enum remap_log_level { REMAP_LOG_DEBUG, REMAP_LOG_INFO, REMAP_LOG_WARN,
                       REMAP_LOG_ALERT, REMAP_LOG_ERROR };

typedef void (*remap_log_fn) (void *opaque, enum remap_log_level level,
                              const char *msg);

/* Bounds of the read retries (SPEC 3.3): a failing unit is read at most
 * 1 + REMAP_MAX_READ_RETRIES times, and no back-off is longer than
 * REMAP_MAX_RETRY_DELAY_US (the doubling stops there). */
#define REMAP_MAX_READ_RETRIES   10u
#define REMAP_MAX_RETRY_DELAY_US 10000000u      /* 10 s */

struct remap_open_opts {
  bool readonly;                /* no writes at all, no repair */
  bool no_repair;               /* open, but leave damaged copies alone */
  bool no_lock;                 /* skip the exclusive locks (tests only) */
  bool enospc_as_eio;           /* exhaustion reported as -EIO (SPEC 3.6) */
  bool accept_origin_change;    /* accept an origin whose recorded
                                   identity differs (SPEC 2.7) */
  bool ignore_origin_size;      /* accept an origin whose size changed;
                                   units past the recorded size are served
                                   but never remapped (FORMAT.md 11.3) */
  unsigned read_retries;        /* extra origin read attempts (SPEC 3.3),
                                   at most REMAP_MAX_READ_RETRIES */
  unsigned retry_delay_us;      /* first back-off, doubled each retry up to
                                   REMAP_MAX_RETRY_DELAY_US; slept with no
                                   lock held */
  void (*sleep_us) (unsigned us); /* how to wait (NULL: no wait) */
  remap_log_fn log;             /* may be NULL */
  void *log_opaque;
};

/* Open an engine over origin and spare (ownership passes to the engine, also
 * on failure).  Locks both, loads the newest valid generation of every table
 * block, repairs stale or damaged copies (unless readonly/no_repair), and
 * checks the identity.  -EUCLEAN: no valid copy, or copies of more than one
 * spare or layout (docs/FORMAT.md 11.4, 12); -ENODEV: identity mismatch;
 * -EWOULDBLOCK: held by another process; -ENOMEDIUM: no remap metadata; a
 * read error: no valid superblock, and a place where one could be could
 * not be read; -EINVAL: retry options past their bounds. */
int remap_open (struct remap_backend *origin, struct remap_backend *spare,
                const struct remap_open_opts *opts, struct remap_engine **out,
                struct remap_error *err);

/* Flush and free.  Returns the flush result.  NULL is accepted. */
int remap_close (struct remap_engine *e);

/* ---- data path ------------------------------------------------------- */

#define REMAP_FUA       0x1u    /* durable before return */
#define REMAP_MAY_TRIM  0x2u    /* zero may deallocate */

/* Size of the exported disk (= origin size). */
uint64_t remap_size (const struct remap_engine *e);
uint32_t remap_unit (const struct remap_engine *e);

/* Read/write any byte range inside the disk.  0 or -errno (-EIO for media
 * errors and lost data, -ENOSPC when a remap was needed and the spare is
 * full).  The request is split at unit boundaries. */
int remap_pread (struct remap_engine *e, void *buf, size_t len, uint64_t off,
                 struct remap_error *err);
int remap_pwrite (struct remap_engine *e, const void *buf, size_t len,
                  uint64_t off, unsigned flags, struct remap_error *err);
/* Write zeroes; remapped units are zeroed on the spare. */
int remap_zero (struct remap_engine *e, uint64_t len, uint64_t off,
                unsigned flags, struct remap_error *err);
/* Advisory discard; remapped units and reserved spare units are left alone
 * (the data of a remapped unit is kept).  */
int remap_trim (struct remap_engine *e, uint64_t len, uint64_t off,
                unsigned flags, struct remap_error *err);
/* Make origin, spare and metadata durable. */
int remap_flush (struct remap_engine *e, struct remap_error *err);

/* Report the allocation of [off, off+len) of the disk through fn
 * (backend.h: remap_extent_fn), in ascending, contiguous, maximal extents
 * (neighbours differ in type) that cover the range exactly.  Only a range
 * the origin reports as a hole or zeroes, in units whose data is on the
 * origin, keeps the origin's type; every remapped unit (its bytes are on
 * the spare), pending unit, unit with lost data or unit in doubt is data,
 * except that the part of a mapped unit (no lost granule, not in doubt)
 * over an origin zero range whose bytes on the spare are zero (read under
 * the stripe) is ZERO.
 * If the origin cannot tell (its extents fail), the rest of the range is
 * data, with a warning in the log: never a verdict on the medium.  Each
 * run of at most 1024 units is looked at with its stripes held shared, so
 * no write, remap or unmap moves data while it is; fn is called with no
 * lock held.  0; fn's non-zero value (fn stopped the walk); -EINVAL with
 * a message for a range past the end; -ENOMEM. */
int remap_extents (struct remap_engine *e, uint64_t len, uint64_t off,
                   remap_extent_fn fn, void *opaque, struct remap_error *err);

/* ---- the table ------------------------------------------------------- */

struct remap_mapping {
  uint64_t origin_unit;
  enum remap_slot_state state;  /* FREE: not remapped, data on the origin */
  uint64_t spare_unit;          /* valid unless FREE */
  uint64_t lost;                /* lost granules (MAPPED only) */
};

/* Look up one origin unit.  0, or -EINVAL if out of range. */
int remap_lookup (struct remap_engine *e, uint64_t unit,
                  struct remap_mapping *m);

/* Is unit (of the exported disk) pending, i.e. did its last read fail?
 * 1: yes, recorded on the spare (a PENDING slot); 2: yes, but held in
 * memory only, because it could not be recorded (no place is left: every
 * pending-only place taken in format version 2, the spare full in version
 * 1; the engine is read-only; or the unit lies past the origin size
 * recorded at format); 0: no; -EINVAL: past the end of the disk. */
int remap_unit_pending (struct remap_engine *e, uint64_t unit);

#define REMAP_REMAP_NOCOPY 0x1u /* do not copy origin data (it is lost) */

/* Remap origin unit `unit' to a fresh spare unit: copy its data from the
 * origin (granules that cannot be read are recorded as lost), write it to
 * the spare, flush, commit the mapping, return.  Already mapped: 0.
 * A pending unit becomes mapped.  -ENOSPC when the spare is full. */
int remap_remap (struct remap_engine *e, uint64_t unit, unsigned flags,
                 struct remap_error *err);

/* Record `unit' as pending (a read failed).  Format version 2 records it
 * in a pending-only place, which takes no spare unit (docs/FORMAT.md 6.4;
 * remap_lookup then reports that place's slot, >= spare_units, as
 * spare_unit); version 1 holds a spare unit for it.  Already mapped: 0. */
int remap_mark_pending (struct remap_engine *e, uint64_t unit,
                        struct remap_error *err);

/* Record granules of a mapped unit as lost (reads of them fail with EIO
 * until rewritten).  An unmapped unit is remapped first (REMAP_REMAP_NOCOPY
 * for the lost granules). */
int remap_mark_lost (struct remap_engine *e, uint64_t unit, uint64_t mask,
                     struct remap_error *err);

/* Record spare unit `spare_unit' as bad.  If it holds data, the data moves to
 * another spare unit first.  Reserved (metadata) units: -EINVAL. */
int remap_mark_spare_bad (struct remap_engine *e, uint64_t spare_unit,
                          struct remap_error *err);

/* Re-test the spare units of [first, first+count) that are marked bad,
 * once the cause is fixed: each is written with a test pattern, flushed
 * and read back from the medium, then the same with zeroes; a unit that
 * passes is freed (durably, through a commit) and may be allocated again,
 * one that fails stays bad.  Reserved (metadata) units and units that are
 * not bad are never touched.  *cleared (may be NULL) counts the units
 * freed.  0 when every bad unit was tested (whatever the verdicts);
 * -EINVAL for a range outside the spare; -EROFS read-only; another
 * -errno with a message when an error that is not a media error (lost
 * connection, full file system ...) or a failed commit stops the retest:
 * the unit being tested then stays bad. */
int remap_spare_retest (struct remap_engine *e, uint64_t first,
                        uint64_t count, uint64_t *cleared,
                        struct remap_error *err);

#define REMAP_UNMAP_DISCARD 0x1u /* drop the spare's data instead of copying */

/* Return a unit to the origin: copy its data back (unless DISCARD), flush,
 * then free the spare unit.  Refuses with -EIO if the copy back fails, and
 * with -EBUSY when data would be lost (lost granules) without DISCARD. */
int remap_unmap (struct remap_engine *e, uint64_t unit, unsigned flags,
                 struct remap_error *err);

/* Call fn for every non-free slot in slot order (snapshot taken under the
 * lock, callback called without it): spare units first, then (format
 * version 2) pending-only places, whose spare_unit is the place's slot
 * number, >= spare_units.  Stops early if fn returns != 0 and returns that
 * value. */
int remap_foreach (struct remap_engine *e,
                   int (*fn) (void *opaque, const struct remap_mapping *m),
                   void *opaque);

/* ---- status ---------------------------------------------------------- */

struct remap_counters {
  uint64_t reallocated_units;   /* MAPPED slots (SMART 5) */
  uint64_t reallocation_events; /* remap commits since open (SMART 196) */
  uint64_t pending_units;       /* PENDING slots + unpersisted (SMART 197) */
  uint64_t uncorrectable_units; /* mapped units with lost granules (198) */
  uint64_t lost_granules;
  uint64_t spare_bad_units;
  uint64_t spare_free_units;
  uint64_t spare_usable_units;  /* N - reserved */
  uint64_t spare_total_units;   /* N */
  uint64_t read_errors;         /* origin read errors seen */
  uint64_t write_errors;        /* origin write errors seen */
  uint64_t spare_errors;        /* spare data I/O errors seen */
  uint64_t retries;             /* origin read retries made */
  uint64_t enospc_events;       /* remaps refused for lack of space */
  uint32_t copies_valid;
  uint32_t copies_total;
  uint64_t generation;          /* newest committed table generation */
  uint64_t meta_write_units;    /* metadata units written since open */
  uint64_t repaired_blocks;     /* table blocks/superblocks rewritten at open */
  uint64_t doubt_units;         /* units whose last commit had an unknown
                                   outcome: writes refused until reopen */
  uint64_t held_spare_units;    /* free spare units kept out of use until
                                   reopen (named by such a commit) */
};

void remap_get_counters (struct remap_engine *e, struct remap_counters *c);

struct remap_info {
  struct remap_layout layout;
  uint8_t uuid[16];
  uint64_t origin_size;
  uint64_t spare_size;
  uint32_t lost_granule;
  uint64_t format_time;
  char origin_label[REMAP_LABEL_SIZE + 1];
  char origin_name[256];
  char spare_name[256];
};

void remap_get_info (const struct remap_engine *e, struct remap_info *info);

/* Whether the origin and the spare can be reached now (an NBD export
 * whose connection is lost cannot: its transfers fail with -ENOTCONN
 * until it is back).  Either pointer may be NULL.  May make one bounded
 * reconnection attempt per backend (backend.h). */
void remap_get_backend_status (struct remap_engine *e,
                               struct remap_backend_status *origin,
                               struct remap_backend_status *spare);

/* ---- offline inspection (remapctl dump / check) ----------------------- */

struct remap_copy_status {
  uint64_t first_unit;          /* where the copy's extent starts */
  bool sb_valid;                /* superblock decodes and matches */
  uint64_t blocks_current;      /* valid, newest generation */
  uint64_t blocks_stale;        /* valid, older generation */
  uint64_t blocks_damaged;      /* unreadable or invalid */
  uint64_t max_generation;      /* highest valid block generation */
};

enum remap_verdict {
  REMAP_CLEAN = 0,              /* every copy valid and current */
  REMAP_REPAIRABLE = 1,         /* damage, but every block has a valid copy */
  REMAP_UNUSABLE = 2,           /* no superblock, a block lost in all, or
                                   a spare resized since format */
};

struct remap_inspect {
  struct remap_info info;       /* valid if verdict != UNUSABLE or found */
  bool found;                   /* a valid superblock was found */
  uint64_t generation;          /* newest valid block generation */
  uint64_t blocks_lost;         /* blocks with no valid version anywhere */
  struct remap_copy_status copy[REMAP_MAX_COPIES];
  enum remap_verdict verdict;
  char reason[REMAP_ERROR_MSG_MAX]; /* why not clean ("" if clean) */
};

/* Read every metadata copy of spare without changing anything and without
 * locking.  0 (see out->verdict), or -errno for I/O failures / ENOMEM. */
int remap_inspect (struct remap_backend *spare, struct remap_inspect *out,
                   struct remap_error *err);

/* Format a uuid as 36 characters + NUL. */
void remap_uuid_format (const uint8_t uuid[16], char out[37]);

#ifdef __cplusplus
}
#endif

#endif /* REMAP_REMAP_H */
