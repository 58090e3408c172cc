/* Adversarial tests: sequences of faults, restarts and requests under
 * which the engine loses data, invents data or keeps a wrong verdict.
 * Each test names the defect it demonstrates; see the commit that added
 * it for the explanation.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 1024u
#define ORIGIN_SIZE ((uint64_t) ORIGIN_UNITS * UNIT)

/* ---- environment ------------------------------------------------------- */

struct env {
  struct remap_backend *omem, *smem;    /* the bytes */
  struct remap_backend *ofault, *sfault; /* what the engine holds */
  struct remap_engine *e;
  struct remap_layout l;
  struct remap_open_opts opts;
};

static char logbuf[65536];
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static void
log_fn (void *opaque, enum remap_log_level lvl, const char *msg)
{
  (void) opaque;
  if (lvl < REMAP_LOG_WARN)
    return;
  pthread_mutex_lock (&log_lock);
  size_t n = strlen (logbuf);
  snprintf (logbuf + n, sizeof logbuf - n, "%s\n", msg);
  pthread_mutex_unlock (&log_lock);
}

/* Open the engine over fresh fault injectors; the spare's gets `rules'
 * before the open. */
static void
env_attach_rules (struct env *v, const struct remap_fault_rule *rules,
                  size_t n)
{
  ck_assert_int_eq (remap_fault_create (tl_share (v->omem), true,
                                        &v->ofault), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->smem), true,
                                        &v->sfault), 0);
  if (n)
    ck_assert_int_eq (remap_fault_set_rules (v->sfault, rules, n), 0);
  struct remap_open_opts o = v->opts;
  o.log = log_fn;
  logbuf[0] = '\0';
  struct remap_error err = { 0 };
  int r = remap_open (v->ofault, v->sfault, &o, &v->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
}

static void
env_attach (struct env *v)
{
  env_attach_rules (v, NULL, 0);
}

static void
env_open (struct env *v, uint64_t spare_bytes, uint32_t copies)
{
  memset (v, 0, sizeof *v);
  v->omem = tl_mem (ORIGIN_SIZE);
  v->smem = tl_mem (spare_bytes);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    tl_pattern (remap_mem_data (v->omem) + u * UNIT, UNIT, 1000000 + u);
  tl_format_ok (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, copies);
  ck_assert_int_eq (remap_layout_compute (spare_bytes, UNIT,
                                          REMAP_STRATEGY_AUTO, copies, &v->l,
                                          NULL), 0);
  env_attach (v);
}

static void
env_restart (struct env *v)
{
  remap_close (v->e);
  v->e = NULL;
  env_attach (v);
}

static void
env_close (struct env *v)
{
  if (v->e)
    remap_close (v->e);
  v->e = NULL;
  remap_backend_close (v->omem);
  remap_backend_close (v->smem);
}

static void
rule (struct remap_backend *fb, uint64_t off, uint64_t len, unsigned ops,
      int err, uint64_t after, uint64_t times)
{
  struct remap_fault_rule r = { .off = off, .len = len, .ops = ops,
                                .err = err, .after = after, .times = times };
  ck_assert_int_eq (remap_fault_add_rule (fb, &r), 0);
}

/* Fail the next write of table block k in every copy with err. */
static void
fail_block_writes (struct env *v, uint64_t k, int err, uint64_t times)
{
  for (uint32_t i = 0; i < v->l.copies; i++)
    rule (v->sfault, remap_layout_block_unit (&v->l, i, k) * UNIT, UNIT,
          REMAP_FAULT_WRITE, err, 0, times);
}

static void
write_tag (struct env *v, uint64_t u, uint64_t tag, unsigned flags, int want)
{
  uint8_t buf[UNIT];
  struct remap_error err = { 0 };
  tl_pattern (buf, UNIT, tag);
  int r = remap_pwrite (v->e, buf, UNIT, u * UNIT, flags, &err);
  ck_assert_msg (r == want, "write of unit %llu (tag %llu): %d (%s), want %d",
                 (unsigned long long) u, (unsigned long long) tag, r,
                 err.msg, want);
}

/* Which tag of tags[0..n) unit u reads; -1 for none, -2 for a read error. */
static int
read_which (struct env *v, uint64_t u, const uint64_t *tags, int n)
{
  uint8_t buf[UNIT], want[UNIT];
  if (remap_pread (v->e, buf, UNIT, u * UNIT, NULL) != 0)
    return -2;
  for (int i = 0; i < n; i++) {
    tl_pattern (want, UNIT, tags[i]);
    if (memcmp (buf, want, UNIT) == 0)
      return i;
  }
  return -1;
}

/* Remap other units until the allocator's next unit is in table block
 * >= k (so that the next relocation lands in another block than an
 * earlier one).  Units from `from' upward are used. */
static uint64_t
push_cursor_to_block (struct env *v, uint64_t k, uint64_t from)
{
  uint32_t E = v->l.entries_per_block;
  for (uint64_t u = from;; u++) {
    ck_assert_uint_lt (u, ORIGIN_UNITS);
    ck_assert_int_eq (remap_remap (v->e, u, 0, NULL), 0);
    if (tl_lookup (v->e, u).spare_unit / E >= k)
      return u + 1;
  }
}

/* ---- 1. a relocation's second block fails: the unit is not in doubt ----

   A relocation of a mapped unit (its spare unit failed a write) commits
   two changes: the new slot s1 := MAPPED u and the old slot s0 := BAD.
   When s1 and s0 are in different table blocks, the block of s1 is
   written and applied first; table_apply's relocation rule then turns s0
   BAD in memory.  If the block of s0 then fails in every copy (outcome
   unknown, here a non-media error so the copies stay in service),
   keep_in_doubt reads the *current* word of s0, which is already BAD, and
   so never puts u in doubt.  But on the disk s0 may still say MAPPED u.
   u keeps taking writes at s1; an unmap of u then writes the block of s1
   with s1 FREE, and after a restart the only slot naming u is s0: u reads
   its bytes from before the relocation, although a later write (FUA) and
   the unmap were both acknowledged. */
START_TEST (test_reloc_second_block_unknown_keeps_doubt)
{
  struct env v;
  env_open (&v, 4 * MiB, 2);
  uint32_t E = v.l.entries_per_block;
  const uint64_t u = 3;

  /* u mapped at s0 in table block k0, with bytes A. */
  ck_assert_int_eq (remap_remap (v.e, u, 0, NULL), 0);
  write_tag (&v, u, 0xA, REMAP_FUA, 0);
  uint64_t s0 = tl_lookup (v.e, u).spare_unit;
  uint64_t k0 = s0 / E;
  push_cursor_to_block (&v, k0 + 1, 100);

  /* The write of B fails on s0 (media): u moves to s1 (another block);
   * the block of s0 then fails in every copy with ENOSPC. */
  rule (v.sfault, s0 * UNIT, UNIT, REMAP_FAULT_WRITE, -EIO, 0, 0);
  fail_block_writes (&v, k0, -ENOSPC, 1);
  struct remap_error err = { 0 };
  uint8_t buf[UNIT];
  tl_pattern (buf, UNIT, 0xB);
  int r = remap_pwrite (v.e, buf, UNIT, u * UNIT, 0, &err);
  ck_assert_msg (r != 0, "the write was acknowledged although its commit "
                 "failed: %s", err.msg);
  uint64_t s1 = tl_lookup (v.e, u).spare_unit;
  ck_assert_uint_ne (s1 / E, k0);
  remap_fault_clear_rules (v.sfault);

  /* Either A or B may be what u holds now. */
  uint64_t tags[3] = { 0xA, 0xB, 0xC };
  int allowed_hi = 1;
  /* A later write; if acknowledged, only C is acceptable from now on. */
  tl_pattern (buf, UNIT, 0xC);
  bool c_acked = remap_pwrite (v.e, buf, UNIT, u * UNIT, REMAP_FUA, NULL)
    == 0;
  bool unmapped = remap_unmap (v.e, u, 0, NULL) == 0;
  int w = read_which (&v, u, tags, 3);
  if (c_acked)
    ck_assert_msg (w == 2, "before restart: unit %llu reads %d", 
                   (unsigned long long) u, w);

  env_restart (&v);
  w = read_which (&v, u, tags, 3);
  if (c_acked)
    ck_assert_msg (w == 2, "after restart unit %llu reads %s (write C and "
                   "unmap=%d were acknowledged; s0=%llu s1=%llu)",
                   (unsigned long long) u,
                   w == 0 ? "A, its bytes from before the relocation"
                   : w == 1 ? "B" : w == -2 ? "an error" : "foreign bytes",
                   unmapped, (unsigned long long) s0,
                   (unsigned long long) s1);
  else
    ck_assert_msg (w >= 0 && w <= allowed_hi, "after restart: %d", w);
  env_close (&v);
}
END_TEST

/* ---- 2. repair at open takes a non-media error for a verdict ----------

   docs/ERRORS.md: only a media error of a metadata write retires a copy,
   and "a failed flush blames no one: ... no metadata copy is retired".
   repair() (engine.c) retires a copy for any error of its writes and for
   a failed flush.  A spare whose table needs a repair at open (here: a
   relocation whose second block was not written, so one block is
   rewritten in every copy) and a flush that fails at that moment (a
   timeout of an NBD spare, or any flush error) retire every copy: every
   later commit fails with "no metadata copy is left in service", so no
   unit can be remapped until the next restart, and status reports 0 valid
   copies.  The same with ENOSPC on the repair writes of a sparse spare. */

/* A spare on which unit 3 sits in two slots of two blocks (the newer wins
 * at open and the older block is dirty: rewritten in every copy). */
static void
make_dirty_spare (struct env *v)
{
  uint32_t E = v->l.entries_per_block;
  ck_assert_int_eq (remap_remap (v->e, 3, 0, NULL), 0);
  uint64_t s0 = tl_lookup (v->e, 3).spare_unit;
  push_cursor_to_block (v, s0 / E + 1, 100);
  rule (v->sfault, s0 * UNIT, UNIT, REMAP_FAULT_WRITE, -EIO, 0, 0);
  fail_block_writes (v, s0 / E, -ENOSPC, 1);
  write_tag (v, 3, 0xB, 0, -ENOSPC);
  remap_fault_clear_rules (v->sfault);
}

static void
repair_fault (const struct remap_fault_rule *rules, size_t n,
              const char *what)
{
  struct env v;
  env_open (&v, 4 * MiB, 2);
  make_dirty_spare (&v);
  remap_close (v.e);
  v.e = NULL;
  env_attach_rules (&v, rules, n);
  remap_fault_clear_rules (v.sfault);
  struct remap_counters k = tl_counters (v.e);
  struct remap_error err = { 0 };
  int r = remap_remap (v.e, 500, 0, &err);
  ck_assert_msg (k.copies_valid == k.copies_total && r == 0,
                 "%s during the repair at open: %u of %u copies valid, "
                 "and a remap afterwards returns %d (%s)", what,
                 k.copies_valid, k.copies_total, r, err.msg);
  env_close (&v);
}

START_TEST (test_repair_flush_failure_retires_no_copy)
{
  struct remap_fault_rule f = { .ops = REMAP_FAULT_FLUSH, .err = -EIO,
                                .times = 2 };
  repair_fault (&f, 1, "a flush failing (EIO) twice");
}
END_TEST

START_TEST (test_repair_enospc_retires_no_copy)
{
  struct env v;
  env_open (&v, 4 * MiB, 2);
  struct remap_fault_rule f[REMAP_MAX_COPIES];
  for (uint32_t i = 0; i < v.l.copies; i++)
    f[i] = (struct remap_fault_rule) {
      .off = v.l.copy_offset[i] * UNIT, .len = v.l.copy_units * UNIT,
      .ops = REMAP_FAULT_WRITE, .err = -ENOSPC, .times = 1 };
  uint32_t n = v.l.copies;
  env_close (&v);
  repair_fault (f, n, "ENOSPC on the repair writes");
}
END_TEST

/* ---- 3. a grown origin: a remap past the old end makes the spare
   unopenable ------------------------------------------------------------

   With ignore_origin_size (remap_open_opts: "accept an origin whose size
   changed"), the engine serves the origin's new size, but the table's
   decoder rejects any entry whose origin unit is past the superblock's
   origin_units.  A write past the old end that meets a media error is
   remapped and acknowledged; the commit writes an entry that no open will
   ever decode, so at the next open its table block is "damaged in every
   metadata copy" and the spare (with every other remap on it) refuses to
   open.  The API's own checks (check_unit) refuse such units; the data
   path does not.  (Issue 8, item 6.) */
START_TEST (test_grown_origin_remap_keeps_spare_openable)
{
  const uint64_t old_units = 64, new_units = 96;
  struct remap_backend *om = tl_mem (old_units * UNIT);
  struct remap_backend *sm = tl_mem (1 * MiB);
  tl_format_ok (om, sm, UNIT, REMAP_STRATEGY_AUTO, 0);
  remap_backend_close (om);
  om = tl_mem (new_units * UNIT);             /* the origin grew */
  struct remap_open_opts o = { .ignore_origin_size = true };

  struct remap_backend *of;
  ck_assert_int_eq (remap_fault_create (tl_share (om), true, &of), 0);
  struct remap_fault_rule fr = { .off = 80 * UNIT, .len = UNIT,
                                 .ops = REMAP_FAULT_WRITE, .err = -EIO };
  ck_assert_int_eq (remap_fault_add_rule (of, &fr), 0);
  struct remap_engine *e;
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_open (of, tl_share (sm), &o, &e, &err), 0);
  ck_assert_int_eq (remap_remap (e, 5, 0, NULL), 0);  /* another remap */
  uint8_t buf[UNIT];
  tl_pattern (buf, UNIT, 80);
  int wr = remap_pwrite (e, buf, UNIT, 80 * UNIT, REMAP_FUA, &err);
  char wmsg[sizeof err.msg];
  snprintf (wmsg, sizeof wmsg, "%s", err.msg);
  remap_close (e);

  remap_error_clear (&err);
  int r = tl_open (om, sm, &o, &e, &err);
  ck_assert_msg (r == 0, "the write past the old end returned %d%s%s; "
                 "the spare no longer opens: %s", wr, wmsg[0] ? ": " : "",
                 wmsg, err.msg);
  ck_assert_int_eq (tl_lookup (e, 5).state, REMAP_SLOT_MAPPED);
  remap_close (e);
  remap_backend_close (om);
  remap_backend_close (sm);
}
END_TEST

/* ---- 4. a zero request does not clear memory-only pending marks -------

   A pending unit that could only be recorded in memory (the spare is
   full) is cleared when the unit is rewritten (written(), datapath.c) --
   but only by remap_pwrite: remap_zero of the whole unit (NBD
   WRITE_ZEROES, what mkfs and qemu issue) rewrites it through the
   backend's zero and never calls written().  The unit stays counted as
   pending for the life of the engine, and the lock-free fast path stays
   off (fast_ok requires no memory-only pending unit). */
START_TEST (test_zero_clears_memory_pending)
{
  struct env v;
  env_open (&v, 1 * MiB, 2);
  for (uint64_t s = 0; s < v.l.spare_units; s++)
    if (!remap_layout_is_reserved (&v.l, s))
      ck_assert_int_eq (remap_mark_spare_bad (v.e, s, NULL), 0);
  ck_assert_uint_eq (tl_counters (v.e).spare_free_units, 0);

  rule (v.ofault, 9 * UNIT, UNIT, REMAP_FAULT_READ, -EIO, 0, 0);
  uint8_t got[UNIT], zero[UNIT] = { 0 };
  ck_assert_int_eq (remap_pread (v.e, got, UNIT, 9 * UNIT, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (v.e).pending_units, 1);
  remap_fault_clear_rules (v.ofault);

  ck_assert_int_eq (remap_zero (v.e, UNIT, 9 * UNIT, 0, NULL), 0);
  ck_assert_int_eq (remap_pread (v.e, got, UNIT, 9 * UNIT, NULL), 0);
  ck_assert (memcmp (got, zero, UNIT) == 0);
  ck_assert_msg (tl_counters (v.e).pending_units == 0, "unit 9 was zeroed "
                 "and reads back, but is still counted pending");
  env_close (&v);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("adversary");
  TCase *tc = tcase_create ("adversary");
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_reloc_second_block_unknown_keeps_doubt);
  tcase_add_test (tc, test_repair_flush_failure_retires_no_copy);
  tcase_add_test (tc, test_repair_enospc_retires_no_copy);
  tcase_add_test (tc, test_grown_origin_remap_keeps_spare_openable);
  tcase_add_test (tc, test_zero_clears_memory_pending);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
