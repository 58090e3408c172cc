/* Fault tests: crash consistency of remaps (SPEC 2.4).
 *
 * The spare is a fault injector in volatile mode: writes sit in a "cache"
 * until a flush.  A sequence of operations is run once to count the spare
 * writes W; then, for every crash index K < W and every crash mode
 * (DROP_ALL; KEEP_SOME and TEAR_ONE with several seeds), it is replayed
 * with the crash at write K, the process "dies" (no more operations), and
 * the engine is reopened on plain sharers of the surviving bytes.  Then:
 *
 *   - open succeeds, every copy is valid after repair, a second open is
 *     clean;
 *   - every remap whose remap_remap returned 0 is in the table;
 *   - every unit reads bytes that were written to it: the origin's old
 *     bytes, or a write that was issued; a write acknowledged as durable
 *     (FUA, or followed by a successful flush) reads back exactly; an
 *     unacknowledged one may be missing or, with TEAR_ONE, cut at a sector
 *     boundary; never zeros or garbage that nobody wrote;
 *   - no two units share a spare unit; no mapping points into metadata.
 *
 * Part two triggers the remaps with origin write errors (remap_pwrite to a
 * failing unit): every acknowledged write must read back after the crash.
 */

#include "unit/testlib.h"

#define MAXSTEPS 6
#define ORIGIN_UNITS 32u

struct ccfg {
  uint32_t unit;
  uint64_t spare;
  enum remap_strategy s;
  uint32_t copies;
};

static const struct ccfg ccfgs[] = {
  { 512, 64 * KiB, REMAP_STRATEGY_AUTO, 0 },            /* minimal, 2 */
  { 4096, 1 * MiB, REMAP_STRATEGY_AUTO, 0 },            /* linear, 4 */
  { 4096, 4 * MiB, REMAP_STRATEGY_AUTO, 0 },            /* geometric, 5 */
};
#define NCCFGS (sizeof ccfgs / sizeof ccfgs[0])

struct mode {
  enum remap_crash_mode m;
  uint64_t seed;
};

static const struct mode modes[] = {
  { REMAP_CRASH_DROP_ALL, 0 },
  { REMAP_CRASH_KEEP_SOME, 1 }, { REMAP_CRASH_KEEP_SOME, 2 },
  { REMAP_CRASH_KEEP_SOME, 3 },
  { REMAP_CRASH_TEAR_ONE, 1 }, { REMAP_CRASH_TEAR_ONE, 2 },
  { REMAP_CRASH_TEAR_ONE, 3 },
};
#define NMODES (sizeof modes / sizeof modes[0])
static const char *const mode_names[] = { "drop-all", "keep-some",
                                          "tear-one" };

/* Step kinds.  The data of step i is always pattern (tag (i)). */
enum kind {
  K_WRITE_THEN_REMAP,           /* pwrite to the origin, then remap */
  K_REMAP_THEN_FUA,             /* remap, then a whole-unit FUA pwrite */
  K_REMAP_THEN_PARTIAL,         /* remap, then an unaligned plain pwrite */
  K_UNMAP,                      /* remap, FUA pwrite, unmap */
  K_MOVE,                       /* remap, FUA pwrite, mark its spare unit
                                   bad (the data moves: a commit of two
                                   slots, maybe in two table blocks) */
  K_FAILING_WRITE,              /* part 2: pwrite to a unit whose origin
                                   writes fail (remapped by the engine) */
  K_FAILING_PARTIAL,            /* part 2: the same, unaligned */
  K_HEALTHY_WRITE,              /* part 2: pwrite to a healthy unit */
};

struct step {
  enum kind kind;
  uint64_t unit;
  uint64_t off, len;            /* the pwrite's range inside the unit */
};

struct result {
  bool ran_remap, ran_write, ran_third;
  int remap_r, write_r, third_r;
  uint64_t old_slot;            /* K_MOVE: the spare unit marked bad */
};

struct world {
  const struct ccfg *c;
  struct remap_layout l;
  uint8_t *golden_origin, *golden_spare;
  uint64_t origin_size;
};

static void
world_init (struct world *w, const struct ccfg *c)
{
  memset (w, 0, sizeof *w);
  w->c = c;
  w->origin_size = (uint64_t) ORIGIN_UNITS * c->unit;
  ck_assert_int_eq (remap_layout_compute (c->spare, c->unit, c->s, c->copies,
                                          &w->l, NULL), 0);
  struct remap_backend *o = tl_mem (w->origin_size), *s = tl_mem (c->spare);
  tl_pattern (remap_mem_data (o), w->origin_size, 77);
  tl_format_ok (o, s, c->unit, c->s, c->copies);
  /* Where cheap, mark spare units bad so that the first allocation is the
   * last slot of a table block: a move then commits two blocks. */
  uint64_t first = 0, E = w->l.entries_per_block;
  while (remap_layout_is_reserved (&w->l, first))
    first++;
  uint64_t last = (first / E + 1) * E - 1;
  if (last - first < 64) {
    struct remap_engine *e = tl_open_ok (o, s, NULL);
    for (uint64_t x = first; x < last; x++)
      if (!remap_layout_is_reserved (&w->l, x))
        ck_assert_int_eq (remap_mark_spare_bad (e, x, NULL), 0);
    ck_assert_int_eq (remap_close (e), 0);
  }
  w->golden_origin = malloc (w->origin_size);
  w->golden_spare = malloc (c->spare);
  memcpy (w->golden_origin, remap_mem_data (o), w->origin_size);
  memcpy (w->golden_spare, remap_mem_data (s), c->spare);
  remap_backend_close (o);
  remap_backend_close (s);
}

static void
world_free (struct world *w)
{
  free (w->golden_origin);
  free (w->golden_spare);
}

static uint64_t
tag (size_t i)
{
  return 5000 + i;
}

/* Build the sequence: n steps of the given kinds on distinct units. */
static void
make_steps (const struct world *w, struct step *st, size_t n,
            const enum kind *kinds)
{
  uint32_t unit = w->c->unit;
  for (size_t i = 0; i < n; i++) {
    st[i].kind = kinds[i];
    st[i].unit = 1 + 4 * i;
    st[i].off = 0;
    st[i].len = unit;
    if (kinds[i] == K_REMAP_THEN_PARTIAL || kinds[i] == K_FAILING_PARTIAL) {
      st[i].off = 37 + (97 * i) % (unit / 4);
      st[i].len = unit - st[i].off - (unit / 8 + 13);
    }
  }
}

/* Run the steps against engine e, stopping once the spare has crashed,
 * or (stop_on_error) at the first call that fails: the process dies with
 * its spare. */
static void
run_steps (struct remap_engine *e, struct remap_backend *fb,
           const struct world *w, const struct step *st, size_t n,
           bool stop_on_error, struct result *res)
{
  uint32_t unit = w->c->unit;
  uint8_t *data = malloc (unit);
  memset (res, 0, n * sizeof *res);
  for (size_t i = 0; i < n && !remap_fault_crashed (fb); i++) {
    if (i > 0 && stop_on_error
        && (res[i - 1].remap_r || res[i - 1].write_r || res[i - 1].third_r))
      break;
    uint64_t u = st[i].unit;
    tl_pattern (data, unit, tag (i));
    const uint8_t *p = data + st[i].off;
    uint64_t off = u * unit + st[i].off;
    struct result *r = &res[i];
    switch (st[i].kind) {
    case K_WRITE_THEN_REMAP:
      r->ran_write = true;
      r->write_r = remap_pwrite (e, p, st[i].len, off, 0, NULL);
      if (remap_fault_crashed (fb) || (stop_on_error && r->write_r))
        break;
      r->ran_remap = true;
      r->remap_r = remap_remap (e, u, 0, NULL);
      break;
    case K_REMAP_THEN_FUA:
    case K_REMAP_THEN_PARTIAL:
    case K_UNMAP:
    case K_MOVE:
      r->ran_remap = true;
      r->remap_r = remap_remap (e, u, 0, NULL);
      if (remap_fault_crashed (fb) || (stop_on_error && r->remap_r))
        break;
      r->ran_write = true;
      r->write_r = remap_pwrite (e, p, st[i].len, off,
                                 st[i].kind == K_REMAP_THEN_PARTIAL
                                 ? 0 : REMAP_FUA, NULL);
      if (remap_fault_crashed (fb) || st[i].kind < K_UNMAP
          || (stop_on_error && r->write_r))
        break;
      r->ran_third = true;
      if (st[i].kind == K_UNMAP)
        r->third_r = remap_unmap (e, u, 0, NULL);
      else {
        struct remap_mapping m;
        remap_lookup (e, u, &m);
        r->old_slot = m.spare_unit;
        r->third_r = remap_mark_spare_bad (e, m.spare_unit, NULL);
      }
      break;
    case K_FAILING_WRITE:
    case K_FAILING_PARTIAL:
    case K_HEALTHY_WRITE:
      r->ran_write = true;
      r->write_r = remap_pwrite (e, p, st[i].len, off, 0, NULL);
      break;
    }
  }
  free (data);
}

struct run {
  struct remap_backend *omem, *smem;
  struct result res[MAXSTEPS];
  uint64_t writes, flushes;
};

/* One run: fresh images, fault spare in volatile mode, and either a crash
 * at write crash_at, or every flush from the flush_fail-th on failing (the
 * cache may or may not have reached the disk) and a crash after the last
 * step.  UINT64_MAX for both: no fault. */
static void
do_run (const struct world *w, const struct step *st, size_t n,
        uint64_t crash_at, uint64_t flush_fail, const struct mode *m,
        bool failing_origin, struct run *out)
{
  out->omem = tl_mem_copy (w->golden_origin, w->origin_size);
  out->smem = tl_mem_copy (w->golden_spare, w->c->spare);
  struct remap_backend *fb, *ob = tl_share (out->omem);
  ck_assert_int_eq (remap_fault_create (tl_share (out->smem), true, &fb), 0);
  remap_fault_set_volatile (fb, true);
  if (crash_at != UINT64_MAX)
    remap_fault_crash_at (fb, crash_at, m->m, m->seed);
  if (flush_fail != UINT64_MAX) {
    struct remap_fault_rule fr = { .ops = REMAP_FAULT_FLUSH, .err = -EIO,
                                   .after = flush_fail };
    ck_assert_int_eq (remap_fault_add_rule (fb, &fr), 0);
  }
  if (failing_origin) {
    struct remap_backend *ofb;
    ck_assert_int_eq (remap_fault_create (ob, true, &ofb), 0);
    for (size_t i = 0; i < n; i++)
      if (st[i].kind == K_FAILING_WRITE || st[i].kind == K_FAILING_PARTIAL) {
        struct remap_fault_rule r = { .off = st[i].unit * w->c->unit,
                                      .len = w->c->unit,
                                      .ops = REMAP_FAULT_WRITE,
                                      .err = -EIO };
        ck_assert_int_eq (remap_fault_add_rule (ofb, &r), 0);
      }
    ob = ofb;
  }
  struct remap_engine *e;
  struct remap_error err = { 0 };
  int r = remap_open (ob, fb, NULL, &e, &err);
  ck_assert_msg (r == 0, "open before the crash: %s", err.msg);
  run_steps (e, fb, w, st, n, flush_fail != UINT64_MAX, out->res);
  out->writes = remap_fault_writes (fb);
  out->flushes = remap_fault_flushes (fb);
  if (flush_fail != UINT64_MAX)
    remap_fault_crash_now (fb, m->m, m->seed);
  if (crash_at != UINT64_MAX)
    ck_assert_msg (remap_fault_crashed (fb), "crash at %" PRIu64 " of %"
                   PRIu64 " writes never came", crash_at, out->writes);
  remap_close (e);              /* after a crash its flush fails: fine */
}

/* Does buf equal old with a prefix of new's [a, b) applied, the prefix
 * ending at b or at a 512-byte boundary inside (a, b) (a torn write), or
 * nothing (a == end)?  exact: only "all of it". */
static bool
matches_write (const uint8_t *buf, const uint8_t *old, const uint8_t *new,
               uint64_t a, uint64_t b, uint32_t unit, bool exact,
               bool allow_none)
{
  uint64_t ends[130];
  size_t n = 0;
  ends[n++] = b;
  if (!exact) {
    if (allow_none)
      ends[n++] = a;
    for (uint64_t t = (a / 512 + 1) * 512; t < b; t += 512)
      ends[n++] = t;
  }
  for (size_t k = 0; k < n; k++) {
    uint64_t t = ends[k];
    if (memcmp (buf, old, a) == 0 && memcmp (buf + a, new + a, t - a) == 0
        && memcmp (buf + t, old + t, unit - t) == 0)
      return true;
  }
  return false;
}

struct slot_query {
  uint64_t slot;
  enum remap_slot_state state;
};

static int
slot_cb (void *opaque, const struct remap_mapping *m)
{
  struct slot_query *q = opaque;
  if (m->spare_unit == q->slot)
    q->state = m->state;
  return 0;
}

static enum remap_slot_state
slot_state (struct remap_engine *e, uint64_t slot)
{
  struct slot_query q = { slot, REMAP_SLOT_FREE };
  ck_assert_int_eq (remap_foreach (e, slot_cb, &q), 0);
  return q.state;
}

/* Did step j's successful calls flush the spare? */
static bool
flushes_spare (const struct step *st, const struct result *r)
{
  bool remapped = r->ran_remap && r->remap_r == 0;
  bool acked = r->ran_write && r->write_r == 0;
  switch (st->kind) {
  case K_WRITE_THEN_REMAP:
  case K_REMAP_THEN_PARTIAL:
    return remapped;
  case K_REMAP_THEN_FUA:
  case K_UNMAP:
  case K_MOVE:
    return remapped || (acked && r->remap_r == 0);
  case K_FAILING_WRITE:
  case K_FAILING_PARTIAL:
    return acked;
  default:
    return false;
  }
}

/* Check the invariants on the surviving bytes of a run. */
static void
check_after (const struct world *w, const struct step *st, size_t n,
             struct run *run, const char *ctx)
{
  uint32_t unit = w->c->unit;
  struct remap_engine *e = NULL;
  struct remap_error err = { 0 };
  int r = tl_open (run->omem, run->smem, NULL, &e, &err);
  ck_assert_msg (r == 0, "%s: open after the crash: %d %s", ctx, r, err.msg);
  struct remap_counters k = tl_counters (e);
  ck_assert_msg (k.copies_valid == w->l.copies, "%s: %u/%u copies valid",
                 ctx, k.copies_valid, w->l.copies);

  /* Table sanity: unique slots per unit, nothing in metadata. */
  uint64_t *owner = calloc (w->l.spare_units, sizeof *owner);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++) {
    struct remap_mapping m = tl_lookup (e, u);
    if (m.state == REMAP_SLOT_FREE)
      continue;
    REQ (m.spare_unit < w->l.spare_units
         && !remap_layout_is_reserved (&w->l, m.spare_unit),
         "%s: unit %" PRIu64 " -> spare unit %" PRIu64, ctx, u, m.spare_unit);
    REQ (owner[m.spare_unit] == 0, "%s: units %" PRIu64 " and %" PRIu64
         " share spare unit %" PRIu64, ctx, owner[m.spare_unit] - 1, u,
         m.spare_unit);
    owner[m.spare_unit] = u + 1;
  }
  free (owner);

  /* Every step's unit. */
  uint8_t *buf = malloc (unit), *new = malloc (unit);
  for (size_t i = 0; i < n; i++) {
    const struct result *res = &run->res[i];
    uint64_t u = st[i].unit;
    const uint8_t *old = w->golden_origin + u * unit;
    struct remap_mapping m = tl_lookup (e, u);
    if (res->ran_remap && res->remap_r == 0 && st[i].kind != K_UNMAP)
      REQ (m.state == REMAP_SLOT_MAPPED, "%s: step %zu: acknowledged remap "
           "of unit %" PRIu64 " lost (state %d)", ctx, i, u, m.state);
    if (st[i].kind == K_UNMAP && res->ran_third && res->third_r == 0)
      REQ (m.state == REMAP_SLOT_FREE, "%s: step %zu: acknowledged unmap "
           "of unit %" PRIu64 " undone", ctx, i, u);
    if (st[i].kind == K_MOVE && res->ran_third && res->third_r == 0) {
      REQ (m.state == REMAP_SLOT_MAPPED && m.spare_unit != res->old_slot,
           "%s: step %zu: acknowledged move of unit %" PRIu64 " undone",
           ctx, i, u);
      REQ (slot_state (e, res->old_slot) == REMAP_SLOT_BAD, "%s: step %zu: "
           "spare unit %" PRIu64 " marked bad is %d", ctx, i, res->old_slot,
           slot_state (e, res->old_slot));
    }
    r = remap_pread (e, buf, unit, u * unit, &err);
    REQ (r == 0, "%s: step %zu: read unit %" PRIu64 ": %s", ctx, i, u,
         err.msg);
    tl_pattern (new, unit, tag (i));
    uint64_t a = st[i].off, b = st[i].off + st[i].len;
    bool acked = res->ran_write && res->write_r == 0;
    /* Durable once acknowledged: FUA, writes to the origin (plain mem),
     * relocations (flushed and committed before returning).  A plain
     * write to a spare unit only once a later call flushed the spare. */
    bool durable = acked && (st[i].kind != K_REMAP_THEN_PARTIAL
                             || res->remap_r != 0);
    for (size_t j = i + 1; j < n && acked && !durable; j++)
      durable = flushes_spare (&st[j], &run->res[j]);
    /* A relocation is all or nothing: the mapping follows the flush. */
    bool torn_ok = st[i].kind <= K_MOVE;
    bool ok;
    if (st[i].kind == K_WRITE_THEN_REMAP)
      /* The origin had the new bytes before any remap. */
      ok = !res->ran_write || matches_write (buf, old, new, a, b, unit,
                                             true, false);
    else if (!torn_ok && !durable)
      ok = matches_write (buf, old, new, a, b, unit, true, false)
        || memcmp (buf, old, unit) == 0;
    else
      ok = matches_write (buf, old, new, a, b, unit, durable, true);
    REQ (ok, "%s: step %zu (kind %d): unit %" PRIu64 " (%s, spare %" PRIu64
         ") holds bytes nobody wrote%s (remap %d, write %d)", ctx, i,
         st[i].kind, u, m.state == REMAP_SLOT_MAPPED ? "mapped" : "free",
         m.spare_unit, durable ? " or lost a durable write" : "",
         res->remap_r, res->write_r);
  }
  /* Units no step touched are untouched. */
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++) {
    bool touched = false;
    for (size_t i = 0; i < n; i++)
      touched |= st[i].unit == u;
    if (touched)
      continue;
    REQ (tl_lookup (e, u).state == REMAP_SLOT_FREE, "%s: unit %" PRIu64
         " mapped by nobody", ctx, u);
    r = remap_pread (e, buf, unit, u * unit, NULL);
    REQ (r == 0 && memcmp (buf, w->golden_origin + u * unit, unit) == 0,
         "%s: untouched unit %" PRIu64 " changed", ctx, u);
  }

  /* Reopen: nothing left to repair, same table. */
  struct remap_mapping before[ORIGIN_UNITS];
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++)
    before[u] = tl_lookup (e, u);
  ck_assert_int_eq (remap_close (e), 0);
  e = tl_open_ok (run->omem, run->smem, NULL);
  k = tl_counters (e);
  REQ (k.repaired_blocks == 0 && k.copies_valid == w->l.copies,
       "%s: second open repaired %" PRIu64 ", %u copies valid", ctx,
       k.repaired_blocks, k.copies_valid);
  for (uint64_t u = 0; u < ORIGIN_UNITS; u++) {
    struct remap_mapping m = tl_lookup (e, u);
    REQ (m.state == before[u].state && m.spare_unit == before[u].spare_unit,
         "%s: unit %" PRIu64 " changed between opens", ctx, u);
  }
  ck_assert_int_eq (remap_close (e), 0);
  free (buf);
  free (new);
}

static void
run_run_free (struct run *run)
{
  remap_backend_close (run->omem);
  remap_backend_close (run->smem);
}

/* Every crash point and mode for one sequence.  Returns runs made. */
static unsigned
crash_everywhere (const struct world *w, const struct step *st, size_t n,
                  bool failing_origin)
{
  struct run dry;
  do_run (w, st, n, UINT64_MAX, UINT64_MAX, &modes[0], failing_origin,
          &dry);
  /* Without a crash everything is acknowledged. */
  for (size_t i = 0; i < n; i++) {
    ck_assert_msg (!dry.res[i].ran_remap || dry.res[i].remap_r == 0,
                   "dry run step %zu: remap %d", i, dry.res[i].remap_r);
    ck_assert_msg (dry.res[i].ran_write && dry.res[i].write_r == 0,
                   "dry run step %zu: write %d", i, dry.res[i].write_r);
  }
  check_after (w, st, n, &dry, "no crash");
  uint64_t W = dry.writes, F = dry.flushes;
  run_run_free (&dry);
  ck_assert_uint_gt (W, 0);

  unsigned runs = 0;
  for (uint64_t K = 0; K < W; K++)
    for (size_t mi = 0; mi < NMODES; mi++) {
      char ctx[200];
      snprintf (ctx, sizeof ctx, "unit %u %s x%u, %s origin, %zu steps, "
                "crash at write %" PRIu64 "/%" PRIu64 ", %s seed %" PRIu64,
                w->c->unit, remap_strategy_name (w->l.strategy),
                w->l.copies, failing_origin ? "failing" : "healthy", n, K, W,
                mode_names[modes[mi].m], modes[mi].seed);
      struct run run;
      do_run (w, st, n, K, UINT64_MAX, &modes[mi], failing_origin, &run);
      check_after (w, st, n, &run, ctx);
      run_run_free (&run);
      runs++;
    }
  /* Power lost while flushes fail: any subset of the cached writes may
   * have reached the disk, in any combination. */
  for (uint64_t K = 0; K < F; K++)
    for (size_t mi = 1; mi < NMODES; mi++) {
      char ctx[200];
      snprintf (ctx, sizeof ctx, "unit %u %s x%u, %s origin, %zu steps, "
                "flushes fail from %" PRIu64 "/%" PRIu64 ", %s seed %" PRIu64,
                w->c->unit, remap_strategy_name (w->l.strategy),
                w->l.copies, failing_origin ? "failing" : "healthy", n, K, F,
                mode_names[modes[mi].m], modes[mi].seed);
      struct run run;
      do_run (w, st, n, UINT64_MAX, K, &modes[mi], failing_origin, &run);
      check_after (w, st, n, &run, ctx);
      run_run_free (&run);
      runs++;
    }
  return runs;
}

START_TEST (test_crash_remap_sequences)
{
  struct world w;
  world_init (&w, &ccfgs[_i]);
  unsigned runs = 0;
  for (size_t n = 1; n <= MAXSTEPS; n++) {
    enum kind kinds[MAXSTEPS];
    for (size_t i = 0; i < n; i++)
      kinds[i] = (enum kind) ((i + n) % 5);
    struct step st[MAXSTEPS];
    make_steps (&w, st, n, kinds);
    runs += crash_everywhere (&w, st, n, false);
  }
  ck_assert_uint_gt (runs, 0);
  world_free (&w);
}
END_TEST

START_TEST (test_crash_failing_origin)
{
  struct world w;
  world_init (&w, &ccfgs[_i]);
  unsigned runs = 0;
  static const enum kind pool[] = { K_FAILING_WRITE, K_FAILING_PARTIAL,
                                    K_FAILING_WRITE, K_HEALTHY_WRITE,
                                    K_FAILING_PARTIAL, K_FAILING_WRITE };
  for (size_t n = 1; n <= MAXSTEPS; n++) {
    enum kind kinds[MAXSTEPS];
    for (size_t i = 0; i < n; i++)
      kinds[i] = pool[(i + n) % 6];
    struct step st[MAXSTEPS];
    make_steps (&w, st, n, kinds);
    runs += crash_everywhere (&w, st, n, true);
  }
  ck_assert_uint_gt (runs, 0);
  world_free (&w);
}
END_TEST

/* A remap whose commit fails on every copy (here: every flush fails) has
 * an unknown outcome: the table blocks were written, and may reach the
 * disk anyway.  The engine treats the unit as not remapped and sends the
 * next write to the origin.  If the cached table block then reaches the
 * disk (the cache is written back without a flush, or power is lost after
 * it was), the unit reopens as remapped, with the bytes copied before the
 * write: an acknowledged FUA write reverts (SPEC 2.4). */
START_TEST (test_failed_commit_outcome)
{
  struct world w;
  world_init (&w, &ccfgs[0]);
  uint32_t unit = w.c->unit;
  struct remap_backend *omem = tl_mem_copy (w.golden_origin, w.origin_size);
  struct remap_backend *smem = tl_mem_copy (w.golden_spare, w.c->spare);
  struct remap_backend *fb;
  ck_assert_int_eq (remap_fault_create (tl_share (smem), true, &fb), 0);
  remap_fault_set_volatile (fb, true);
  /* The data flush of the remap passes; every later flush fails. */
  struct remap_fault_rule fr = { .ops = REMAP_FAULT_FLUSH, .err = -EIO,
                                 .after = 1 };
  ck_assert_int_eq (remap_fault_add_rule (fb, &fr), 0);
  struct remap_engine *e;
  ck_assert_int_eq (remap_open (tl_share (omem), fb, NULL, &e, NULL), 0);
  uint64_t u = 3;
  int rr = remap_remap (e, u, 0, NULL);
  ck_assert_int_ne (rr, 0);
  uint8_t *data = malloc (unit), *buf = malloc (unit);
  tl_pattern (data, unit, 0xf0a);
  int wr = remap_pwrite (e, data, unit, u * unit, REMAP_FUA, NULL);
  /* The spare's cache is written back after all. */
  remap_fault_clear_rules (fb);
  remap_fault_set_volatile (fb, false);
  remap_close (e);

  e = tl_open_ok (omem, smem, NULL);
  ck_assert_int_eq (remap_pread (e, buf, unit, u * unit, NULL), 0);
  if (wr == 0)
    ck_assert_msg (memcmp (buf, data, unit) == 0,
                   "acknowledged FUA write to unit %" PRIu64 " reverted: the "
                   "failed remap's table block reached the disk (state %d), "
                   "so the unit reads the bytes copied before the write",
                   u, tl_lookup (e, u).state);
  remap_close (e);
  free (data);
  free (buf);
  remap_backend_close (omem);
  remap_backend_close (smem);
  world_free (&w);
}
END_TEST

static Suite *
crash_suite (void)
{
  Suite *s = suite_create ("crash");
  TCase *tc = tcase_create ("crash");
  tcase_set_timeout (tc, 600);
  tcase_add_loop_test (tc, test_crash_remap_sequences, 0, NCCFGS);
  tcase_add_loop_test (tc, test_crash_failing_origin, 0, NCCFGS);
  tcase_add_test (tc, test_failed_commit_outcome);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return tl_run (crash_suite ());
}
