/* Fault tests: re-testing spare units marked bad (remap_spare_retest,
 * core/retest.c; issue 8, item 3: "remapctl can clear BAD marks on spare
 * units after the cause is fixed").
 *
 * Spare units are made bad the way it happens in service: writes to them
 * fail (a fault rule on the spare) while an origin unit is remapped.  Then
 * the rule is healed, or not, and the units retested:
 *
 *   healed               -> free again, durably, zeroed, and allocated again
 *                           (the spare is filled: a remap lands there and
 *                           its data reads back)
 *   still failing        -> stays bad (writes fail, reads fail, or the
 *                           bytes read back differ)
 *   metadata units       -> never read or written
 *   not a media error    -> the retest stops with it; the unit stays bad
 *   commit fails         -> the unit stays bad (out of use)
 *   bad range, read-only -> refused
 *   threads              -> retests racing remaps never overwrite client data
 */

#include <pthread.h>
#include <stdatomic.h>

#include "admin.h"
#include "unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 64u
#define ORIGIN_SIZE (ORIGIN_UNITS * UNIT)
#define SPARE_SIZE (64 * KiB)   /* 16 units, minimal strategy */

struct env {
  struct remap_backend *omem, *smem, *sfault;
  struct remap_engine *e;
  struct remap_layout l;
  uint64_t a;                   /* first unit allocation tries */
};

static void
env_open (struct env *v, bool readonly)
{
  memset (v, 0, sizeof *v);
  v->omem = tl_mem (ORIGIN_SIZE);
  v->smem = tl_mem (SPARE_SIZE);
  tl_pattern (remap_mem_data (v->omem), ORIGIN_SIZE, 3);
  tl_format_ok (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_layout_compute (SPARE_SIZE, UNIT,
                                          REMAP_STRATEGY_AUTO, 0, &v->l,
                                          NULL), 0);
  while (remap_layout_is_reserved (&v->l, v->a))
    v->a++;
  ck_assert_int_eq (remap_fault_create (tl_share (v->smem), true,
                                        &v->sfault), 0);
  struct remap_open_opts o = { .readonly = readonly };
  struct remap_error err = { 0 };
  int r = remap_open (tl_share (v->omem), v->sfault, &o, &v->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
}

static void
env_close (struct env *v)
{
  if (v->e)
    remap_close (v->e);
  remap_backend_close (v->omem);
  remap_backend_close (v->smem);
}

static void
fail_spare (struct env *v, uint64_t s, uint64_t n, unsigned ops, int e)
{
  struct remap_fault_rule r = { .off = s * UNIT, .len = n * UNIT, .ops = ops,
                                .err = e };
  ck_assert_int_eq (remap_fault_add_rule (v->sfault, &r), 0);
}

struct find {
  uint64_t s;
  enum remap_slot_state st;
};

static int
find_slot (void *opaque, const struct remap_mapping *m)
{
  struct find *x = opaque;
  if (m->spare_unit == x->s)
    x->st = m->state;
  return 0;
}

/* The state of spare unit s (remap_foreach lists the slots not free). */
static enum remap_slot_state
spare_state (struct remap_engine *e, uint64_t s)
{
  struct find f = { s, REMAP_SLOT_FREE };
  ck_assert_int_eq (remap_foreach (e, find_slot, &f), 0);
  return f.st;
}

/* Remap origin unit u while spare units a and a+1 fail writes: both become
 * bad, u lands on a+2. */
static void
make_two_bad (struct env *v, uint64_t u)
{
  struct remap_error err = { 0 };
  fail_spare (v, v->a, 2, REMAP_FAULT_WRITE, -EIO);
  int r = remap_remap (v->e, u, 0, &err);
  ck_assert_msg (r == 0, "remap: %s", err.msg);
  ck_assert_int_eq (spare_state (v->e, v->a), REMAP_SLOT_BAD);
  ck_assert_int_eq (spare_state (v->e, v->a + 1), REMAP_SLOT_BAD);
  ck_assert_uint_eq (tl_counters (v->e).spare_bad_units, 2);
  ck_assert_uint_eq (tl_lookup (v->e, u).spare_unit, v->a + 2);
}

static void
check_origin_unit (struct remap_engine *e, uint64_t u, const uint8_t *want)
{
  uint8_t got[UNIT];
  struct remap_error err = { 0 };
  int r = remap_pread (e, got, UNIT, u * UNIT, &err);
  ck_assert_msg (r == 0, "read unit %" PRIu64 ": %s", u, err.msg);
  ck_assert_msg (memcmp (got, want, UNIT) == 0, "unit %" PRIu64 " reads "
                 "wrong data", u);
}

/* ---- the cause is fixed ------------------------------------------------ */

START_TEST (test_retest_clears_healed_unit)
{
  struct env v;
  env_open (&v, false);
  make_two_bad (&v, 9);
  struct remap_error err = { 0 };
  uint64_t cleared = 99;

  /* Nothing fixed yet: both stay bad, and that is not an error. */
  int r = remap_spare_retest (v.e, 0, v.l.spare_units, &cleared, &err);
  ck_assert_msg (r == 0, "retest: %s", err.msg);
  ck_assert_uint_eq (cleared, 0);
  ck_assert_uint_eq (tl_counters (v.e).spare_bad_units, 2);

  /* Unit a is fixed, a+1 still fails. */
  remap_fault_clear_rules (v.sfault);
  fail_spare (&v, v.a + 1, 1, REMAP_FAULT_WRITE, -EIO);
  struct remap_counters before = tl_counters (v.e);
  r = remap_spare_retest (v.e, 0, v.l.spare_units, &cleared, &err);
  ck_assert_msg (r == 0, "retest: %s", err.msg);
  ck_assert_uint_eq (cleared, 1);
  ck_assert_int_eq (spare_state (v.e, v.a), REMAP_SLOT_FREE);
  ck_assert_int_eq (spare_state (v.e, v.a + 1), REMAP_SLOT_BAD);
  struct remap_counters after = tl_counters (v.e);
  ck_assert_uint_eq (after.spare_bad_units, 1);
  ck_assert_uint_eq (after.spare_free_units, before.spare_free_units + 1);
  ck_assert_uint_gt (after.generation, before.generation);
  const uint8_t *sp = remap_mem_data (v.smem) + v.a * UNIT;
  for (uint32_t i = 0; i < UNIT; i++)
    REQ (sp[i] == 0, "retested unit not left zeroed at byte %u", i);

  /* Durable: a plain reopen sees the same. */
  remap_close (v.e);
  v.e = tl_open_ok (v.omem, v.smem, NULL);
  ck_assert_int_eq (spare_state (v.e, v.a), REMAP_SLOT_FREE);
  ck_assert_int_eq (spare_state (v.e, v.a + 1), REMAP_SLOT_BAD);
  ck_assert_uint_eq (tl_counters (v.e).spare_bad_units, 1);

  /* Usable: fill the spare; one remap lands on a and reads back. */
  bool used = false;
  uint8_t want[ORIGIN_UNITS][UNIT];
  uint64_t u;
  for (u = 20; u < ORIGIN_UNITS; u++) {
    tl_pattern (want[u], UNIT, 1000 + u);
    r = remap_remap (v.e, u, REMAP_REMAP_NOCOPY, &err);
    if (r == -ENOSPC)
      break;
    ck_assert_msg (r == 0, "remap %" PRIu64 ": %s", u, err.msg);
    ck_assert_int_eq (remap_pwrite (v.e, want[u], UNIT, u * UNIT, 0, &err),
                      0);
    used |= tl_lookup (v.e, u).spare_unit == v.a;
  }
  ck_assert_msg (r == -ENOSPC, "the spare never filled");
  ck_assert_msg (used, "spare unit %" PRIu64 " was never allocated again",
                 v.a);
  for (uint64_t w = 20; w < u; w++)
    check_origin_unit (v.e, w, want[w]);
  env_close (&v);
}
END_TEST

/* A unit that still fails its read-back stays bad. */
START_TEST (test_retest_read_failure_stays_bad)
{
  struct env v;
  env_open (&v, false);
  make_two_bad (&v, 4);
  remap_fault_clear_rules (v.sfault);
  fail_spare (&v, v.a, 1, REMAP_FAULT_READ, -EIO);
  struct remap_error err = { 0 };
  uint64_t cleared;
  int r = remap_spare_retest (v.e, v.a, 2, &cleared, &err);
  ck_assert_msg (r == 0, "retest: %s", err.msg);
  ck_assert_uint_eq (cleared, 1);
  ck_assert_int_eq (spare_state (v.e, v.a), REMAP_SLOT_BAD);
  ck_assert_int_eq (spare_state (v.e, v.a + 1), REMAP_SLOT_FREE);
  env_close (&v);
}
END_TEST

/* A backend that reads back one byte wrong in [lie_off, lie_off+UNIT): a
 * medium that accepts writes and returns other bytes. */
struct liar {
  struct remap_backend base;
  struct remap_backend *inner;
  uint64_t lie_off;
};

static int
liar_pread (struct remap_backend *b, void *buf, size_t len, uint64_t off)
{
  struct liar *l = (struct liar *) b;
  int r = remap_backend_pread (l->inner, buf, len, off);
  if (r == 0 && off <= l->lie_off + 100 && l->lie_off + 100 < off + len)
    ((uint8_t *) buf)[l->lie_off + 100 - off] ^= 0x10;
  return r;
}

static int
liar_pwrite (struct remap_backend *b, const void *buf, size_t len,
             uint64_t off)
{
  return remap_backend_pwrite (((struct liar *) b)->inner, buf, len, off);
}

static int
liar_flush (struct remap_backend *b)
{
  return remap_backend_flush (((struct liar *) b)->inner);
}

static void
liar_close (struct remap_backend *b)
{
  remap_backend_close (((struct liar *) b)->inner);
  free (b);
}

static const struct remap_backend_ops liar_ops = {
  .kind = "liar", .pread = liar_pread, .pwrite = liar_pwrite,
  .flush = liar_flush, .close = liar_close,
};

/* Bytes that read back different: the unit stays bad. */
START_TEST (test_retest_mismatch_stays_bad)
{
  struct env v;
  env_open (&v, false);
  make_two_bad (&v, 8);
  remap_close (v.e);
  struct liar *l = calloc (1, sizeof *l);
  l->inner = tl_share (v.smem);
  l->base = *l->inner;              /* size, name ... of a mem backend */
  l->base.ops = &liar_ops;
  l->lie_off = (v.a + 1) * UNIT;
  struct remap_error err = { 0 };
  v.e = NULL;
  int r = remap_open (tl_share (v.omem), &l->base, NULL, &v.e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
  uint64_t cleared;
  r = remap_spare_retest (v.e, 0, v.l.spare_units, &cleared, &err);
  ck_assert_msg (r == 0, "retest: %s", err.msg);
  ck_assert_uint_eq (cleared, 1);
  ck_assert_int_eq (spare_state (v.e, v.a), REMAP_SLOT_FREE);
  ck_assert_int_eq (spare_state (v.e, v.a + 1), REMAP_SLOT_BAD);
  env_close (&v);
}
END_TEST

/* ---- metadata units ----------------------------------------------------- */

START_TEST (test_retest_never_touches_metadata)
{
  struct env v;
  env_open (&v, false);
  make_two_bad (&v, 7);
  remap_fault_clear_rules (v.sfault);

  /* Reads of metadata fail loudly: a retest that read one would stop. */
  for (uint32_t i = 0; i < v.l.copies; i++)
    fail_spare (&v, v.l.copy_offset[i], v.l.copy_units, REMAP_FAULT_READ,
                -EPERM);
  /* With nothing bad in it, a range over every unit writes nothing. */
  uint8_t *before = malloc (SPARE_SIZE);
  memcpy (before, remap_mem_data (v.smem), SPARE_SIZE);
  struct remap_error err = { 0 };
  uint64_t cleared;
  uint64_t injected = remap_fault_injected (v.sfault);
  uint64_t writes = remap_fault_writes (v.sfault);
  for (uint64_t s = 0; s < v.l.spare_units; s++)
    if (s != v.a && s != v.a + 1) {
      int r = remap_spare_retest (v.e, s, 1, &cleared, &err);
      ck_assert_msg (r == 0 && cleared == 0, "unit %" PRIu64 ": %d %s", s, r,
                     err.msg);
    }
  ck_assert_uint_eq (remap_fault_writes (v.sfault), writes);
  ck_assert (memcmp (before, remap_mem_data (v.smem), SPARE_SIZE) == 0);

  /* The whole spare, two bad units in it: only they and the table blocks
   * of the commits are written; no metadata unit is read. */
  int r = remap_spare_retest (v.e, 0, v.l.spare_units, &cleared, &err);
  ck_assert_msg (r == 0, "retest: %s", err.msg);
  ck_assert_uint_eq (cleared, 2);
  ck_assert_uint_eq (remap_fault_injected (v.sfault), injected);
  const uint8_t *now = remap_mem_data (v.smem);
  for (uint64_t s = 0; s < v.l.spare_units; s++)
    if (!remap_layout_is_reserved (&v.l, s) && s != v.a && s != v.a + 1)
      REQ (memcmp (before + s * UNIT, now + s * UNIT, UNIT) == 0,
           "spare unit %" PRIu64 " changed", s);
  free (before);
  env_close (&v);
}
END_TEST

/* ---- errors that are not verdicts ---------------------------------------- */

START_TEST (test_retest_stops_on_other_errors)
{
  static const int errs[] = { -ENOTCONN, -ENOSPC, -EPERM };
  for (size_t k = 0; k < sizeof errs / sizeof errs[0]; k++) {
    struct env v;
    env_open (&v, false);
    make_two_bad (&v, 5);
    remap_fault_clear_rules (v.sfault);
    fail_spare (&v, v.a, 1, REMAP_FAULT_WRITE, errs[k]);
    struct remap_error err = { 0 };
    uint64_t cleared = 99;
    uint64_t writes = remap_fault_writes (v.sfault);
    int r = remap_spare_retest (v.e, 0, v.l.spare_units, &cleared, &err);
    ck_assert_msg (r == errs[k], "error %d: retest returned %d (%s)",
                   errs[k], r, err.msg);
    ck_assert_msg (strstr (err.msg, "not a media error"), "%s", err.msg);
    ck_assert_uint_eq (cleared, 0);
    ck_assert_int_eq (spare_state (v.e, v.a), REMAP_SLOT_BAD);
    /* Stopped: a+1 was not tested (no write after the refused one). */
    ck_assert_int_eq (spare_state (v.e, v.a + 1), REMAP_SLOT_BAD);
    ck_assert_uint_eq (remap_fault_writes (v.sfault), writes + 1);
    env_close (&v);
  }
}
END_TEST

/* Freeing could not be recorded: the unit stays bad, in memory and on
 * disk, and the error names it. */
START_TEST (test_retest_failed_commit_keeps_unit_bad)
{
  struct env v;
  env_open (&v, false);
  make_two_bad (&v, 6);
  remap_fault_clear_rules (v.sfault);
  for (uint32_t i = 0; i < v.l.copies; i++)
    fail_spare (&v, v.l.copy_offset[i], v.l.copy_units, REMAP_FAULT_WRITE,
                -EIO);
  struct remap_counters before = tl_counters (v.e);
  struct remap_error err = { 0 };
  uint64_t cleared = 99;
  int r = remap_spare_retest (v.e, v.a, 1, &cleared, &err);
  ck_assert_int_eq (r, -EIO);
  ck_assert_msg (strstr (err.msg, "stays bad"), "%s", err.msg);
  ck_assert_uint_eq (cleared, 0);
  ck_assert_int_eq (spare_state (v.e, v.a), REMAP_SLOT_BAD);
  ck_assert_uint_eq (tl_counters (v.e).spare_free_units,
                     before.spare_free_units);
  remap_close (v.e);
  v.e = tl_open_ok (v.omem, v.smem, NULL);
  ck_assert_int_eq (spare_state (v.e, v.a), REMAP_SLOT_BAD);
  env_close (&v);
}
END_TEST

START_TEST (test_retest_refuses_bad_requests)
{
  struct env v;
  env_open (&v, false);
  struct remap_error err = { 0 };
  uint64_t c, N = v.l.spare_units;
  ck_assert_int_eq (remap_spare_retest (v.e, 0, 0, &c, &err), -EINVAL);
  ck_assert_int_eq (remap_spare_retest (v.e, N, 1, &c, NULL), -EINVAL);
  ck_assert_int_eq (remap_spare_retest (v.e, 1, N, &c, NULL), -EINVAL);
  ck_assert_int_eq (remap_spare_retest (v.e, 2, UINT64_MAX, &c, NULL),
                    -EINVAL);
  ck_assert_msg (strstr (err.msg, "inside the spare"), "%s", err.msg);
  env_close (&v);

  env_open (&v, true);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_spare_retest (v.e, 0, N, &c, &err), -EROFS);
  env_close (&v);
}
END_TEST

/* ---- the command (remapctl spare-retest, offline and online) ------------- */

static int
exec_line (struct remap_engine *e, const char *line, struct remap_buf *out,
           struct remap_error *err)
{
  char buf[256], *argv[REMAP_CONTROL_MAX_ARGS];
  snprintf (buf, sizeof buf, "%s", line);
  int argc = remap_control_split (buf, argv, REMAP_CONTROL_MAX_ARGS);
  ck_assert_int_gt (argc, 0);
  remap_buf_reset (out);
  remap_error_clear (err);
  return remap_control_exec (e, argc, argv, out, err);
}

START_TEST (test_retest_command)
{
  struct env v;
  env_open (&v, false);
  make_two_bad (&v, 10);
  remap_fault_clear_rules (v.sfault);
  fail_spare (&v, v.a + 1, 1, REMAP_FAULT_WRITE, -EIO);
  struct remap_buf out = { 0 };
  struct remap_error err = { 0 };
  char want[256];

  /* One clears, one stays bad: the command fails (exit 1) and says so. */
  int r = exec_line (v.e, "spare-retest --json", &out, &err);
  ck_assert_int_eq (r, -EIO);
  ck_assert_msg (strstr (err.msg, "1 of 2 bad spare units still fail"), "%s",
                 err.msg);
  snprintf (want, sizeof want, "\"results\":[{\"spare_unit\":%" PRIu64
            ",\"result\":\"cleared\"},{\"spare_unit\":%" PRIu64
            ",\"result\":\"still-bad\"}],\"tested\":2,\"cleared\":1,"
            "\"still_bad\":1,\"error\":", v.a, v.a + 1);
  ck_assert_msg (out.data && strstr (out.data, want), "json: %s\nwant: %s",
                 out.data, want);
  snprintf (want, sizeof want, "\"first_unit\":0,\"units\":%" PRIu64
            ",\"reserved_skipped\":%" PRIu64, v.l.spare_units,
            v.l.reserved_units);
  ck_assert_msg (strstr (out.data, want), "json: %s\nwant: %s", out.data,
                 want);
  ck_assert_msg (out.data[out.len - 1] == '\n'
                 && strchr (out.data, '\n') == out.data + out.len - 1,
                 "not one line: %s", out.data);

  /* Healed: text form, the range given explicitly. */
  remap_fault_clear_rules (v.sfault);
  snprintf (want, sizeof want, "spare-retest %" PRIu64 " 1", v.a + 1);
  r = exec_line (v.e, want, &out, &err);
  ck_assert_msg (r == 0, "%s: %s", want, err.msg);
  snprintf (want, sizeof want, "spare unit %" PRIu64 ": cleared", v.a + 1);
  ck_assert_msg (strstr (out.data, want), "text: %s", out.data);
  ck_assert_msg (strstr (out.data, "1 bad spare unit retested: 1 cleared, "
                         "0 still bad"), "text: %s", out.data);
  r = exec_line (v.e, "spare-retest", &out, &err);
  ck_assert_msg (r == 0 && strstr (out.data, "no bad spare units"),
                 "%d %s %s", r, out.data, err.msg);

  /* Usage errors name the problem. */
  static const char *const bad[][2] = {
    { "spare-retest 16", "past the end of the spare" },
    { "spare-retest 0 17", "past the end of the spare" },
    { "spare-retest x", "bad spare unit" },
    { "spare-retest 0 0", "bad count" },
    { "spare-retest -u", "does not apply" },
    { "spare-retest 1 2 3", "too many arguments" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = exec_line (v.e, bad[i][0], &out, &err);
    ck_assert_msg (r == -EINVAL && strstr (err.msg, bad[i][1]),
                   "%s: %d %s", bad[i][0], r, err.msg);
  }
  remap_buf_free (&out);
  env_close (&v);
}
END_TEST

/* ---- threads ------------------------------------------------------------ */

struct race {
  struct env *v;
  atomic_bool stop;
};

static void *
retester (void *arg)
{
  struct race *x = arg;
  while (!atomic_load (&x->stop)) {
    uint64_t c;
    ck_assert_int_eq (remap_spare_retest (x->v->e, 0, x->v->l.spare_units,
                                          &c, NULL), 0);
  }
  return NULL;
}

/* Two retesters run while units go bad and get remapped: every remapped
 * unit keeps its data (a retest never writes over a unit in use). */
START_TEST (test_retest_races_remaps)
{
  struct env v;
  env_open (&v, false);
  struct race x = { .v = &v };
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq (pthread_create (&t[i], NULL, retester, &x), 0);
  uint8_t want[ORIGIN_UNITS][UNIT];
  uint64_t seed = 77, queue[ORIGIN_UNITS], head = 0, tail = 0;
  uint64_t last = v.a - 1;      /* the slot the last remap took */
  for (uint64_t u = 0; u < 40; u++) {
    struct remap_error err = { 0 };
    /* Now and then a spare unit fails writes, healed at the next step:
     * remaps mark it bad while the retesters free it again.  Every sixth
     * step it is the one next-fit hands out next, so that units surely do
     * go bad (a random unit may never be written: the extents of version
     * 2 take more of the spare). */
    remap_fault_clear_rules (v.sfault);
    uint64_t f = tl_below (&seed, v.l.spare_units);
    if (u % 6 == 0) {
      f = last + 1;
      while (f < v.l.spare_units && remap_layout_is_reserved (&v.l, f))
        f++;
    }
    /* On the sixth steps, the next four units, so that the allocator
     * meets one even if a unit it would have taken is busy (a relocation
     * tries up to 8 spare units). */
    uint64_t nf = u % 6 == 0 ? 4 : 1;
    bool data = f + nf <= v.l.spare_units;
    for (uint64_t j = 0; j < nf && data; j++)
      data = !remap_layout_is_reserved (&v.l, f + j);
    if (u % 3 == 0 && data)
      fail_spare (&v, f, nf, REMAP_FAULT_WRITE, -EIO);
    tl_pattern (want[u], UNIT, 5000 + u);
    int r = remap_pwrite (v.e, want[u], UNIT, u * UNIT, 0, &err);
    ck_assert_msg (r == 0, "write %" PRIu64 ": %s", u, err.msg);
    if (u % 2)
      continue;
    while ((r = remap_remap (v.e, u, 0, &err)) == -ENOSPC && head < tail) {
      remap_error_clear (&err);     /* full: return the oldest one */
      r = remap_unmap (v.e, queue[head++], 0, &err);
      ck_assert_msg (r == 0, "unmap: %d %s", r, err.msg);
    }
    ck_assert_msg (r == 0, "remap %" PRIu64 ": %d %s", u, r, err.msg);
    last = tl_lookup (v.e, u).spare_unit;
    queue[tail++] = u;
  }
  atomic_store (&x.stop, true);
  for (int i = 0; i < 2; i++)
    pthread_join (t[i], NULL);
  remap_fault_clear_rules (v.sfault);
  for (uint64_t u = 0; u < 40; u++)
    check_origin_unit (v.e, u, want[u]);
  /* Not vacuous: units did go bad, and all of them can be cleared. */
  ck_assert_uint_gt (tl_counters (v.e).spare_errors, 0);
  uint64_t c;
  ck_assert_int_eq (remap_spare_retest (v.e, 0, v.l.spare_units, &c, NULL),
                    0);
  ck_assert_uint_eq (tl_counters (v.e).spare_bad_units, 0);
  env_close (&v);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("retest");
  TCase *tc = tcase_create ("retest");
  tcase_add_test (tc, test_retest_clears_healed_unit);
  tcase_add_test (tc, test_retest_read_failure_stays_bad);
  tcase_add_test (tc, test_retest_mismatch_stays_bad);
  tcase_add_test (tc, test_retest_never_touches_metadata);
  tcase_add_test (tc, test_retest_stops_on_other_errors);
  tcase_add_test (tc, test_retest_failed_commit_keeps_unit_bad);
  tcase_add_test (tc, test_retest_refuses_bad_requests);
  tcase_add_test (tc, test_retest_command);
  tcase_add_test (tc, test_retest_races_remaps);
  suite_add_tcase (s, tc);
  return tl_run (s);
}
