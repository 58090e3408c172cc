/* Fault tests: only a media error is a verdict (SPEC 3.10, docs/ERRORS.md).
 *
 * For every error class (two errnos each, one for "other") and every place
 * an error can meet the engine, the error is injected and the test checks
 * what the client gets and that nothing changed:
 *
 *   site                                 media error      any other class
 *   origin read                          -EIO, pending    its errno, no change
 *   origin write (and zero)              remapped, 0      its errno, no change
 *   spare write while remapping          unit BAD, next   its errno, no change
 *   spare write of a mapped unit         unit moves       its errno, no change
 *   origin read of the rest of a unit    lost granules    its errno, no change
 *   spare read of the rest of a unit     lost granules    its errno, no change
 *   spare read of a mapped unit          -EIO             its errno, no change
 *   spare flush while remapping          -EIO, no change, whatever the class
 *   client flush (origin or spare)       -EIO, and every later flush and
 *                                        FUA too, until the engine reopens
 *   commit flush of one copy / of all    the copy is not retired, no BAD
 *   FUA writes in threads, one flush failing: logged once, and no FUA
 *                                        succeeds after one has failed
 *
 * "No change" is: the counters of the table (reallocated, events, pending,
 * uncorrectable, lost, bad, free, copies valid, generation) and the whole
 * remap_foreach table are what they were, also after a reopen; and once
 * the fault is removed the same request succeeds.  The client's errno is
 * the engine's result through remap_error_to_client (what the plugin
 * sends).
 *
 * Then the sparse spare that runs out of host space (ENOSPC injected on
 * every data unit, and a real EFBIG from RLIMIT_FSIZE on a spare file):
 * ENOSPC to the client, no BAD unit, and the writes succeed once space
 * returns.
 */

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include "unit/testlib.h"

#define UNIT 4096u
#define ORIGIN_UNITS 64u
#define ORIGIN_SIZE (ORIGIN_UNITS * UNIT)

/* ---- the classes ------------------------------------------------------- */

struct cls {
  const char *name;
  int err;                      /* injected */
  int client;                   /* what an NBD client must receive */
  bool media;
};

static const struct cls classes[] = {
  { "EIO", -EIO, EIO, true },
  { "ENODATA", -ENODATA, EIO, true },
  { "ENOSPC", -ENOSPC, ENOSPC, false },
  { "EDQUOT", -EDQUOT, ENOSPC, false },
  { "ENOTCONN", -ENOTCONN, EIO, false },
  { "ETIMEDOUT", -ETIMEDOUT, EIO, false },
  { "EAGAIN", -EAGAIN, EIO, false },
  { "ENOMEM", -ENOMEM, EIO, false },
  { "EROFS", -EROFS, EPERM, false },
  { "EACCES", -EACCES, EPERM, false },
  { "EINVAL", -EINVAL, EIO, false },
};

#define NCLASSES ((int) (sizeof classes / sizeof classes[0]))

/* The engine's result and the client's errno for class c at a site where
 * a media error also fails the request. */
static void
expect_error (const struct cls *c, int r, const struct remap_error *err,
              const char *site)
{
  int want = c->media ? -EIO : c->err;
  ck_assert_msg (r == want, "%s, %s: engine returned %d (%s), want %d (%s); "
                 "message: %s", site, c->name, r, strerror (-r), want,
                 strerror (-want), err->msg);
  ck_assert_msg (remap_error_to_client (r) == c->client,
                 "%s, %s: the client would get %s, want %s", site, c->name,
                 strerror (remap_error_to_client (r)), strerror (c->client));
  ck_assert_msg (err->msg[0] != '\0', "%s, %s: no message", site, c->name);
  if (!c->media)
    ck_assert_msg (strstr (err->msg, strerror (-c->err)) != NULL,
                   "%s, %s: the message does not name the cause: %s", site,
                   c->name, err->msg);
}

/* ---- environment ------------------------------------------------------- */

struct env {
  struct remap_backend *omem, *smem;    /* the bytes */
  struct remap_backend *ofault, *sfault; /* what the engine holds */
  struct remap_engine *e;
  struct remap_layout l;
  struct remap_open_opts opts;
};

static char logbuf[16384];
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

static size_t
count_in_log (const char *what)
{
  size_t n = 0;
  pthread_mutex_lock (&log_lock);
  for (const char *p = logbuf; (p = strstr (p, what)) != NULL; p++)
    n++;
  pthread_mutex_unlock (&log_lock);
  return n;
}

/* Open the engine over fresh fault injectors (no rules) on the bytes. */
static void
env_attach (struct env *v)
{
  ck_assert_int_eq (remap_fault_create (tl_share (v->omem), true,
                                        &v->ofault), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (v->smem), true,
                                        &v->sfault), 0);
  struct remap_open_opts o = v->opts;
  o.log = log_fn;
  logbuf[0] = '\0';
  struct remap_error err = { 0 };
  int r = remap_open (v->ofault, v->sfault, &o, &v->e, &err);
  ck_assert_msg (r == 0, "open: %s", err.msg);
}

static void
env_open (struct env *v, uint64_t spare_bytes,
          const struct remap_open_opts *opts)
{
  memset (v, 0, sizeof *v);
  if (opts)
    v->opts = *opts;
  v->omem = tl_mem (ORIGIN_SIZE);
  v->smem = tl_mem (spare_bytes);
  tl_pattern (remap_mem_data (v->omem), ORIGIN_SIZE, 11);
  tl_format_ok (v->omem, v->smem, UNIT, REMAP_STRATEGY_AUTO, 0);
  ck_assert_int_eq (remap_layout_compute (spare_bytes, UNIT,
                                          REMAP_STRATEGY_AUTO, 0, &v->l,
                                          NULL), 0);
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

static void
fail_unit (struct remap_backend *fb, uint64_t u, unsigned ops, int err)
{
  rule (fb, u * UNIT, UNIT, ops, err, 0, 0);
}

/* Fail every data unit of the spare (everything but the metadata copies). */
static void
fail_data_area (struct env *v, unsigned ops, int err)
{
  const struct remap_layout *l = &v->l;
  for (uint32_t i = 0; i < l->copies; i++) {
    uint64_t a = l->copy_offset[i] + l->copy_units;
    uint64_t b = i + 1 < l->copies ? l->copy_offset[i + 1] : l->spare_units;
    ck_assert_uint_le (a, b);
    if (b > a)
      rule (v->sfault, a * UNIT, (b - a) * UNIT, ops, err, 0, 0);
  }
}

static uint8_t *
origin_bytes (struct env *v, uint64_t u)
{
  return remap_mem_data (v->omem) + u * UNIT;
}

/* ---- state snapshots ------------------------------------------------------ */

#define MAX_ROWS 256

struct state {
  struct remap_counters k;
  size_t n;
  struct remap_mapping m[MAX_ROWS];
};

static int
collect (void *opaque, const struct remap_mapping *m)
{
  struct state *s = opaque;
  ck_assert_uint_lt (s->n, MAX_ROWS);
  s->m[s->n++] = *m;
  return 0;
}

static void
take (struct remap_engine *e, struct state *s)
{
  memset (s, 0, sizeof *s);
  remap_get_counters (e, &s->k);
  ck_assert_int_eq (remap_foreach (e, collect, s), 0);
}

#define SAME(field)                                                     \
  ck_assert_msg (a->k.field == b->k.field, "%s, %s: " #field " changed "  \
                 "from %" PRIu64 " to %" PRIu64, site, c->name,          \
                 (uint64_t) a->k.field, (uint64_t) b->k.field)

/* The table is what it was.  in_memory: also the counters that only the
 * running engine keeps (events, generation, copies valid). */
static void
same (const struct state *a, const struct state *b, bool in_memory,
      const struct cls *c, const char *site)
{
  SAME (reallocated_units);
  SAME (pending_units);
  SAME (uncorrectable_units);
  SAME (lost_granules);
  SAME (spare_bad_units);
  SAME (spare_free_units);
  if (in_memory) {
    SAME (reallocation_events);
    SAME (copies_valid);
    SAME (generation);
  }
  ck_assert_msg (a->n == b->n, "%s, %s: %zu table rows, were %zu", site,
                 c->name, b->n, a->n);
  for (size_t i = 0; i < a->n; i++)
    ck_assert_msg (a->m[i].origin_unit == b->m[i].origin_unit
                   && a->m[i].state == b->m[i].state
                   && a->m[i].spare_unit == b->m[i].spare_unit
                   && a->m[i].lost == b->m[i].lost,
                   "%s, %s: table row %zu changed", site, c->name, i);
}

/* Unchanged in memory now, and on disk: close, reopen without faults,
 * compare, close; then attach fresh (rule-less) injectors again. */
static void
same_now_and_reopened (struct env *v, const struct state *s0,
                       const struct cls *c, const char *site)
{
  struct state s;
  take (v->e, &s);
  same (s0, &s, true, c, site);
  remap_close (v->e);
  v->e = tl_open_ok (v->omem, v->smem, NULL);
  take (v->e, &s);
  same (s0, &s, false, c, site);
  remap_close (v->e);
  v->e = NULL;
  env_attach (v);
}

static void
no_verdict_logged (const struct cls *c, const char *site)
{
  ck_assert_msg (strstr (logbuf, "pending") == NULL
                 && strstr (logbuf, "bad") == NULL
                 && strstr (logbuf, "retired") == NULL,
                 "%s, %s: a verdict was logged:\n%s", site, c->name, logbuf);
}

/* ---- origin reads --------------------------------------------------------- */

START_TEST (test_origin_read)
{
  const struct cls *c = &classes[_i];
  struct remap_open_opts o = { .read_retries = 1 };
  struct env v;
  struct state s0;
  struct remap_error err = { 0 };
  uint8_t buf[3 * UNIT];

  env_open (&v, 1 * MiB, &o);
  fail_unit (v.ofault, 5, REMAP_FAULT_READ, c->err);
  /* Empty table: the whole request goes to the origin. */
  take (v.e, &s0);
  int r = remap_pread (v.e, buf, sizeof buf, 4 * UNIT, &err);
  expect_error (c, r, &err, "origin read, empty table");
  if (c->media) {
    ck_assert_uint_eq (tl_counters (v.e).pending_units, 1);
    env_close (&v);
    return;
  }
  struct state s;
  take (v.e, &s);
  same (&s0, &s, true, c, "origin read, empty table");

  /* With a remapped unit: the windowed path, a batch of pieces. */
  ck_assert_int_eq (remap_remap (v.e, 40, 0, NULL), 0);
  take (v.e, &s0);
  remap_error_clear (&err);
  r = remap_pread (v.e, buf, sizeof buf, 4 * UNIT, &err);
  expect_error (c, r, &err, "origin read, table path");
  no_verdict_logged (c, "origin read");
  same_now_and_reopened (&v, &s0, c, "origin read");

  /* The fault gone, the same request succeeds. */
  ck_assert_int_eq (remap_pread (v.e, buf, sizeof buf, 4 * UNIT, NULL), 0);
  ck_assert_mem_eq (buf, origin_bytes (&v, 4), sizeof buf);
  env_close (&v);
}
END_TEST

/* ---- origin writes --------------------------------------------------------- */

START_TEST (test_origin_write)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct state s0;
  struct remap_error err = { 0 };
  uint8_t data[3 * UNIT], old[UNIT], rbuf[3 * UNIT];

  env_open (&v, 1 * MiB, NULL);
  tl_pattern (data, sizeof data, 77);
  memcpy (old, origin_bytes (&v, 5), UNIT);
  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, c->err);
  take (v.e, &s0);
  int r = remap_pwrite (v.e, data, sizeof data, 4 * UNIT, 0, &err);
  if (c->media) {
    ck_assert_msg (r == 0, "%s: %s", c->name, err.msg);
    ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_MAPPED);
    env_close (&v);
    return;
  }
  expect_error (c, r, &err, "origin write");
  ck_assert_mem_eq (origin_bytes (&v, 5), old, UNIT);
  /* A partial write, and a zero request, meet the same policy. */
  remap_error_clear (&err);
  r = remap_pwrite (v.e, data, 100, 5 * UNIT + 7, 0, &err);
  expect_error (c, r, &err, "origin partial write");
  remap_error_clear (&err);
  r = remap_zero (v.e, UNIT, 5 * UNIT, 0, &err);
  expect_error (c, r, &err, "origin zero");
  no_verdict_logged (c, "origin write");
  same_now_and_reopened (&v, &s0, c, "origin write");

  ck_assert_int_eq (remap_pwrite (v.e, data, sizeof data, 4 * UNIT, 0, NULL),
                    0);
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_FREE);
  ck_assert_mem_eq (origin_bytes (&v, 5), data + UNIT, UNIT);
  ck_assert_int_eq (remap_pread (v.e, rbuf, sizeof rbuf, 4 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, sizeof rbuf);
  env_close (&v);
}
END_TEST

/* ---- spare writes ----------------------------------------------------------- */

/* Unit 5 fails on the origin (a media error: it must move) and the spare
 * fails every data unit with the class under test. */
START_TEST (test_spare_write_remapping)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct state s0;
  struct remap_error err = { 0 };
  uint8_t data[UNIT], rbuf[UNIT];

  env_open (&v, 1 * MiB, NULL);
  tl_pattern (data, UNIT, 55);
  take (v.e, &s0);
  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  fail_data_area (&v, REMAP_FAULT_WRITE, c->err);
  int r = remap_pwrite (v.e, data, UNIT, 5 * UNIT, 0, &err);
  expect_error (c, r, &err, "spare write while remapping");
  if (c->media) {               /* every spare unit tried is BAD */
    ck_assert_uint_ge (tl_counters (v.e).spare_bad_units, 1);
    env_close (&v);
    return;
  }
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_FREE);
  no_verdict_logged (c, "spare write while remapping");
  same_now_and_reopened (&v, &s0, c, "spare write while remapping");

  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 5 * UNIT, 0, &err), 0);
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 5 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  ck_assert_uint_eq (tl_counters (v.e).spare_bad_units, 0);
  env_close (&v);
}
END_TEST

/* A write to a mapped unit whose spare unit fails. */
START_TEST (test_spare_write_mapped)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct state s0;
  struct remap_error err = { 0 };
  uint8_t data[UNIT], rbuf[UNIT];

  env_open (&v, 1 * MiB, NULL);
  ck_assert_int_eq (remap_remap (v.e, 7, 0, NULL), 0);
  uint64_t s = tl_lookup (v.e, 7).spare_unit;
  tl_pattern (data, UNIT, 70);
  ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 7 * UNIT, REMAP_FUA,
                                  NULL), 0);
  take (v.e, &s0);
  fail_unit (v.sfault, s, REMAP_FAULT_WRITE, c->err);
  uint8_t part[100];
  tl_pattern (part, sizeof part, 71);
  int r = remap_pwrite (v.e, part, sizeof part, 7 * UNIT + 300, 0, &err);
  if (c->media) {               /* the unit moves, the old one is BAD */
    ck_assert_msg (r == 0, "%s: %s", c->name, err.msg);
    ck_assert_uint_ne (tl_lookup (v.e, 7).spare_unit, s);
    ck_assert_uint_eq (tl_counters (v.e).spare_bad_units, 1);
    env_close (&v);
    return;
  }
  expect_error (c, r, &err, "spare write of a mapped unit");
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 7 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  no_verdict_logged (c, "spare write of a mapped unit");
  same_now_and_reopened (&v, &s0, c, "spare write of a mapped unit");

  ck_assert_int_eq (remap_pwrite (v.e, part, sizeof part, 7 * UNIT + 300, 0,
                                  NULL), 0);
  memcpy (data + 300, part, sizeof part);
  ck_assert_uint_eq (tl_lookup (v.e, 7).spare_unit, s);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 7 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  env_close (&v);
}
END_TEST

/* ---- reads while building a relocated unit ------------------------------- */

/* A partial write to unit 5, whose origin write fails (media), so the
 * rest of the unit is read from the origin, which fails with the class. */
START_TEST (test_origin_read_relocating)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct state s0;
  struct remap_error err = { 0 };
  uint8_t part[100], want[UNIT], rbuf[UNIT];

  env_open (&v, 1 * MiB, NULL);
  tl_pattern (part, sizeof part, 50);
  memcpy (want, origin_bytes (&v, 5), UNIT);
  memcpy (want + 700, part, sizeof part);
  take (v.e, &s0);
  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  fail_unit (v.ofault, 5, REMAP_FAULT_READ, c->err);
  int r = remap_pwrite (v.e, part, sizeof part, 5 * UNIT + 700, 0, &err);
  if (c->media) {               /* moved, the unreadable rest is lost */
    ck_assert_msg (r == 0, "%s: %s", c->name, err.msg);
    struct remap_mapping m = tl_lookup (v.e, 5);
    ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
    ck_assert_uint_ne (m.lost, 0);
    env_close (&v);
    return;
  }
  expect_error (c, r, &err, "origin read while relocating");
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_FREE);
  no_verdict_logged (c, "origin read while relocating");
  same_now_and_reopened (&v, &s0, c, "origin read while relocating");

  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  ck_assert_int_eq (remap_pwrite (v.e, part, sizeof part, 5 * UNIT + 700, 0,
                                  &err), 0);
  struct remap_mapping m = tl_lookup (v.e, 5);
  ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
  ck_assert_uint_eq (m.lost, 0);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 5 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, want, UNIT);
  env_close (&v);
}
END_TEST

/* A mapped unit must move (its spare unit fails writes: media), and
 * reading the rest of it from its old spare unit fails with the class. */
START_TEST (test_spare_read_relocating)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct state s0;
  struct remap_error err = { 0 };
  uint8_t data[UNIT], part[100], rbuf[UNIT];

  env_open (&v, 1 * MiB, NULL);
  ck_assert_int_eq (remap_remap (v.e, 7, 0, NULL), 0);
  uint64_t s = tl_lookup (v.e, 7).spare_unit;
  tl_pattern (data, UNIT, 72);
  ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 7 * UNIT, REMAP_FUA,
                                  NULL), 0);
  tl_pattern (part, sizeof part, 73);
  take (v.e, &s0);
  fail_unit (v.sfault, s, REMAP_FAULT_WRITE, -EIO);
  fail_unit (v.sfault, s, REMAP_FAULT_READ, c->err);
  int r = remap_pwrite (v.e, part, sizeof part, 7 * UNIT + 300, 0, &err);
  if (c->media) {
    ck_assert_msg (r == 0, "%s: %s", c->name, err.msg);
    struct remap_mapping m = tl_lookup (v.e, 7);
    ck_assert_uint_ne (m.spare_unit, s);
    ck_assert_uint_ne (m.lost, 0);
    env_close (&v);
    return;
  }
  expect_error (c, r, &err, "spare read while relocating");
  no_verdict_logged (c, "spare read while relocating");
  same_now_and_reopened (&v, &s0, c, "spare read while relocating");

  fail_unit (v.sfault, s, REMAP_FAULT_WRITE, -EIO);
  ck_assert_int_eq (remap_pwrite (v.e, part, sizeof part, 7 * UNIT + 300, 0,
                                  &err), 0);
  memcpy (data + 300, part, sizeof part);
  struct remap_mapping m = tl_lookup (v.e, 7);
  ck_assert_uint_ne (m.spare_unit, s);
  ck_assert_uint_eq (m.lost, 0);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 7 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  env_close (&v);
}
END_TEST

/* A plain read of a mapped unit whose spare unit fails: the error, never
 * a state change (for media errors too). */
START_TEST (test_spare_read)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct state s0;
  struct remap_error err = { 0 };
  uint8_t data[UNIT], rbuf[2 * UNIT];

  env_open (&v, 1 * MiB, NULL);
  ck_assert_int_eq (remap_remap (v.e, 7, 0, NULL), 0);
  uint64_t s = tl_lookup (v.e, 7).spare_unit;
  tl_pattern (data, UNIT, 74);
  ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 7 * UNIT, REMAP_FUA,
                                  NULL), 0);
  take (v.e, &s0);
  fail_unit (v.sfault, s, REMAP_FAULT_READ, c->err);
  int r = remap_pread (v.e, rbuf, sizeof rbuf, 6 * UNIT, &err);
  expect_error (c, r, &err, "spare read");
  same_now_and_reopened (&v, &s0, c, "spare read");
  ck_assert_int_eq (remap_pread (v.e, rbuf, sizeof rbuf, 6 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf + UNIT, data, UNIT);
  env_close (&v);
}
END_TEST

/* ---- flushes ----------------------------------------------------------------- */

/* After a failed flush, every FLUSH and FUA request fails until the engine
 * is reopened: the writes acknowledged before it may be gone (docs/
 * ERRORS.md).  Plain writes and reads go on. */
static void
expect_flush_sticky (struct env *v, const char *what)
{
  uint8_t data[UNIT];
  struct remap_error err = { 0 };
  tl_pattern (data, UNIT, 99);
  int r = remap_flush (v->e, &err);
  ck_assert_msg (r == -EIO, "%s: a later flush returned %d; it must fail "
                 "until the engine is reopened", what, r);
  ck_assert_msg (strstr (err.msg, "flush") != NULL, "%s: %s", what, err.msg);
  ck_assert_int_eq (remap_error_to_client (r), EIO);
  ck_assert_int_eq (remap_pwrite (v->e, data, UNIT, 30 * UNIT, REMAP_FUA,
                                  NULL), -EIO);
  ck_assert_int_eq (remap_pwrite (v->e, data, UNIT, 30 * UNIT, 0, NULL), 0);
  ck_assert_int_eq (remap_pread (v->e, data, UNIT, 30 * UNIT, NULL), 0);
}

/* The data flush of a relocation fails: the write fails with EIO, and no
 * spare unit is blamed for it. */
START_TEST (test_spare_flush_relocating)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct state s0;
  struct remap_error err = { 0 };
  uint8_t data[UNIT], rbuf[UNIT];

  env_open (&v, 1 * MiB, NULL);
  tl_pattern (data, UNIT, 56);
  take (v.e, &s0);
  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  rule (v.sfault, 0, 0, REMAP_FAULT_FLUSH, c->err, 0, 1);
  int r = remap_pwrite (v.e, data, UNIT, 5 * UNIT, 0, &err);
  ck_assert_msg (r == -EIO, "%s: write returned %d (%s); a failed flush of "
                 "the spare must fail the write", c->name, r, err.msg);
  ck_assert_int_eq (remap_error_to_client (r), EIO);
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_FREE);
  ck_assert_msg (strstr (logbuf, "flush") != NULL, "%s: the log does not "
                 "name the flush:\n%s", c->name, logbuf);
  no_verdict_logged (c, "spare flush while relocating");
  struct state s;
  take (v.e, &s);
  same (&s0, &s, true, c, "spare flush while relocating");
  if (c->err != -ENOTCONN)    /* it never reached a server: see eng_flush */
    expect_flush_sticky (&v, "spare flush while relocating");
  same_now_and_reopened (&v, &s0, c, "spare flush while relocating");

  ck_assert_int_eq (remap_flush (v.e, NULL), 0);
  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 5 * UNIT, REMAP_FUA,
                                  &err), 0);
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 5 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  env_close (&v);
}
END_TEST

/* The client's FLUSH, with the origin's or the spare's flush failing. */
START_TEST (test_client_flush)
{
  const struct cls *c = &classes[_i];
  for (int side = 0; side < 2; side++) {
    const char *name = side ? "spare" : "origin";
    struct env v;
    struct state s0;
    struct remap_error err = { 0 };

    env_open (&v, 1 * MiB, NULL);
    ck_assert_int_eq (remap_remap (v.e, 9, 0, NULL), 0);
    take (v.e, &s0);
    rule (side ? v.sfault : v.ofault, 0, 0, REMAP_FAULT_FLUSH, c->err, 0, 1);
    int r = remap_flush (v.e, &err);
    ck_assert_msg (r == -EIO, "%s flush, %s: %d", name, c->name, r);
    ck_assert_msg (strstr (err.msg, name) && strstr (err.msg, "flush"),
                   "%s flush, %s: message %s", name, c->name, err.msg);
    no_verdict_logged (c, "client flush");
    struct state s;
    take (v.e, &s);
    same (&s0, &s, true, c, "client flush");
    if (c->err != -ENOTCONN)  /* it never reached a server: see eng_flush */
      expect_flush_sticky (&v, name);
    else
      ck_assert_int_eq (remap_flush (v.e, NULL), 0);
    same_now_and_reopened (&v, &s0, c, "client flush");
    ck_assert_int_eq (remap_flush (v.e, NULL), 0);
    env_close (&v);
  }
}
END_TEST

/* The flush after copy 0's table block fails (the data flush before it
 * passes): the commit goes on in the other copies, copy 0 is not retired,
 * no spare unit is BAD, and the next client flush fails. */
START_TEST (test_commit_flush_one_copy)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct remap_error err = { 0 };
  uint8_t data[UNIT], rbuf[UNIT];

  env_open (&v, 1 * MiB, NULL);
  tl_pattern (data, UNIT, 57);
  uint32_t copies = tl_counters (v.e).copies_valid;
  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  rule (v.sfault, 0, 0, REMAP_FAULT_FLUSH, c->err, 1, 1);
  int r = remap_pwrite (v.e, data, UNIT, 5 * UNIT, 0, &err);
  ck_assert_msg (r == 0, "%s: %s", c->name, err.msg);
  struct remap_counters k = tl_counters (v.e);
  ck_assert_msg (k.copies_valid == copies, "%s: a copy whose flush failed "
                 "was retired (%u of %u valid)", c->name, k.copies_valid,
                 copies);
  ck_assert_uint_eq (k.spare_bad_units, 0);
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_MAPPED);
  ck_assert_msg (strstr (logbuf, "flush") != NULL, "%s: the log does not "
                 "name the flush:\n%s", c->name, logbuf);
  /* Sticky, but for a flush that never reached a server (eng_flush). */
  ck_assert_int_eq (remap_flush (v.e, NULL), c->err == -ENOTCONN ? 0 : -EIO);
  remap_close (v.e);
  v.e = tl_open_ok (v.omem, v.smem, NULL);
  ck_assert_int_eq (tl_lookup (v.e, 5).state, REMAP_SLOT_MAPPED);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 5 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  ck_assert_int_eq (remap_flush (v.e, NULL), 0);
  env_close (&v);
}
END_TEST

/* Every copy's flush fails: the commit's outcome is unknown, the write
 * fails with EIO, and still no copy is retired and no unit is BAD. */
START_TEST (test_commit_flush_all_copies)
{
  const struct cls *c = &classes[_i];
  struct env v;
  struct remap_error err = { 0 };
  uint8_t data[UNIT], rbuf[UNIT];

  env_open (&v, 1 * MiB, NULL);
  tl_pattern (data, UNIT, 58);
  uint32_t copies = tl_counters (v.e).copies_valid;
  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  rule (v.sfault, 0, 0, REMAP_FAULT_FLUSH, c->err, 1, 0);
  int r = remap_pwrite (v.e, data, UNIT, 5 * UNIT, 0, &err);
  ck_assert_msg (r == -EIO, "%s: %d %s", c->name, r, err.msg);
  ck_assert_int_eq (remap_error_to_client (r), EIO);
  struct remap_counters k = tl_counters (v.e);
  ck_assert_msg (k.copies_valid == copies, "%s: copies whose flush failed "
                 "were retired (%u of %u valid)", c->name, k.copies_valid,
                 copies);
  ck_assert_uint_eq (k.spare_bad_units, 0);
  ck_assert_int_eq (remap_flush (v.e, NULL), -EIO);
  /* The next open settles what the disk holds; then the write goes in. */
  remap_close (v.e);
  v.e = NULL;
  env_attach (&v);
  ck_assert_uint_eq (tl_counters (v.e).spare_bad_units, 0);
  fail_unit (v.ofault, 5, REMAP_FAULT_WRITE, -EIO);
  ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 5 * UNIT, REMAP_FUA,
                                  &err), 0);
  ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 5 * UNIT, NULL), 0);
  ck_assert_mem_eq (rbuf, data, UNIT);
  env_close (&v);
}
END_TEST

/* Threads writing with FUA while one flush of the origin fails, once, in
 * the middle: the failure is logged once, and from the moment a thread
 * has seen a FUA fail, every FUA it makes fails too (no flush succeeds
 * after a failed one).  Run it under TSan. */
#define FLUSH_THREADS 4
#define FLUSH_WRITES 40

struct fctx {
  struct remap_engine *e;
  pthread_barrier_t *bar;
  unsigned id;
  int failed_at;                /* first failing write, or -1 */
  bool ok_after_failure;        /* a FUA succeeded after one failed */
};

static void *
fua_writer (void *p)
{
  struct fctx *c = p;
  uint8_t data[UNIT];
  pthread_barrier_wait (c->bar);
  for (int i = 0; i < FLUSH_WRITES; i++) {
    tl_pattern (data, UNIT, c->id * 1000 + (unsigned) i);
    uint64_t u = c->id * 8 + (unsigned) i % 8;
    int r = remap_pwrite (c->e, data, UNIT, u * UNIT, REMAP_FUA, NULL);
    if (r && c->failed_at < 0)
      c->failed_at = i;
    if (r == 0 && c->failed_at >= 0)
      c->ok_after_failure = true;
  }
  return NULL;
}

START_TEST (test_flush_failure_threads)
{
  struct env v;
  pthread_barrier_t bar;
  pthread_t t[FLUSH_THREADS];
  struct fctx c[FLUSH_THREADS];

  env_open (&v, 1 * MiB, NULL);
  rule (v.ofault, 0, 0, REMAP_FAULT_FLUSH, -EIO, FLUSH_THREADS, 1);
  pthread_barrier_init (&bar, NULL, FLUSH_THREADS);
  for (unsigned i = 0; i < FLUSH_THREADS; i++) {
    c[i] = (struct fctx) { .e = v.e, .bar = &bar, .id = i, .failed_at = -1 };
    ck_assert_int_eq (pthread_create (&t[i], NULL, fua_writer, &c[i]), 0);
  }
  for (unsigned i = 0; i < FLUSH_THREADS; i++)
    pthread_join (t[i], NULL);
  pthread_barrier_destroy (&bar);
  unsigned saw = 0;
  for (unsigned i = 0; i < FLUSH_THREADS; i++) {
    saw += c[i].failed_at >= 0;
    ck_assert_msg (!c[i].ok_after_failure, "thread %u: a FUA write "
                   "succeeded after one had failed", i);
  }
  ck_assert_uint_ge (saw, 1);
  ck_assert_uint_eq (count_in_log ("flush failed during"), 1);
  ck_assert_int_eq (remap_flush (v.e, NULL), -EIO);
  ck_assert_uint_eq (tl_counters (v.e).reallocated_units, 0);
  env_close (&v);
}
END_TEST

/* ---- a sparse spare that runs out of host space ----------------------------- */

START_TEST (test_sparse_spare_enospc)
{
  for (int as_eio = 0; as_eio < 2; as_eio++) {
    const struct cls *c = &classes[2];          /* ENOSPC */
    struct remap_open_opts o = { .enospc_as_eio = as_eio };
    struct env v;
    struct state s0;
    uint8_t data[UNIT], rbuf[UNIT];

    env_open (&v, 1 * MiB, &o);
    take (v.e, &s0);
    fail_data_area (&v, REMAP_FAULT_WRITE, -ENOSPC);
    for (uint64_t u = 0; u < 20; u++)
      fail_unit (v.ofault, u, REMAP_FAULT_WRITE, -EIO);
    for (uint64_t u = 0; u < 20; u++) {
      struct remap_error err = { 0 };
      tl_pattern (data, UNIT, 100 + u);
      int r = remap_pwrite (v.e, data, UNIT, u * UNIT, 0, &err);
      ck_assert_msg (r == (as_eio ? -EIO : -ENOSPC), "unit %" PRIu64
                     ": %d %s", u, r, err.msg);
      ck_assert_int_eq (remap_error_to_client (r), as_eio ? EIO : ENOSPC);
    }
    struct remap_counters k = tl_counters (v.e);
    ck_assert_uint_eq (k.spare_bad_units, 0);
    ck_assert_uint_eq (k.reallocated_units, 0);
    ck_assert_uint_eq (k.spare_free_units, s0.k.spare_free_units);
    /* Everything else works, flush included (no flush failed). */
    ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, 30 * UNIT, 0, NULL), 0);
    ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, 3 * UNIT, NULL), 0);
    ck_assert_int_eq (remap_flush (v.e, NULL), 0);
    same_now_and_reopened (&v, &s0, c, "sparse spare");

    /* Space returns (the origin still fails): every write goes in. */
    for (uint64_t u = 0; u < 20; u++)
      fail_unit (v.ofault, u, REMAP_FAULT_WRITE, -EIO);
    for (uint64_t u = 0; u < 20; u++) {
      tl_pattern (data, UNIT, 100 + u);
      ck_assert_int_eq (remap_pwrite (v.e, data, UNIT, u * UNIT, 0, NULL), 0);
    }
    ck_assert_int_eq (remap_flush (v.e, NULL), 0);
    remap_close (v.e);
    v.e = tl_open_ok (v.omem, v.smem, NULL);
    k = tl_counters (v.e);
    ck_assert_uint_eq (k.reallocated_units, 20);
    ck_assert_uint_eq (k.spare_bad_units, 0);
    for (uint64_t u = 0; u < 20; u++) {
      tl_pattern (data, UNIT, 100 + u);
      ck_assert_int_eq (remap_pread (v.e, rbuf, UNIT, u * UNIT, NULL), 0);
      ck_assert_mem_eq (rbuf, data, UNIT);
    }
    env_close (&v);
  }
}
END_TEST

/* The same with a real errno from the kernel: the spare is a file, and
 * RLIMIT_FSIZE makes every write past the first metadata copy fail with
 * EFBIG (as a quota or a full file system would with EDQUOT/ENOSPC). */
START_TEST (test_spare_file_size_limit)
{
  char path[] = "/tmp/remap-errclass-XXXXXX";
  int fd = mkstemp (path);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (ftruncate (fd, 1 * MiB), 0);
  close (fd);

  struct remap_backend *omem = tl_mem (ORIGIN_SIZE), *spare, *ofault;
  struct remap_error err = { 0 };
  tl_pattern (remap_mem_data (omem), ORIGIN_SIZE, 12);
  ck_assert_int_eq (remap_file_open (path, 0, &spare, &err), 0);
  unlink (path);                /* gone with the descriptor, whatever fails */
  tl_format_ok (omem, spare, UNIT, REMAP_STRATEGY_AUTO, 0);
  struct remap_layout l;
  ck_assert_int_eq (remap_layout_compute (1 * MiB, UNIT, REMAP_STRATEGY_AUTO,
                                          0, &l, NULL), 0);
  ck_assert_int_eq (remap_fault_create (tl_share (omem), true, &ofault), 0);
  struct remap_engine *e;
  struct remap_open_opts o = { .log = log_fn };
  ck_assert_int_eq (remap_open (ofault, spare, &o, &e, &err), 0);
  struct remap_counters k0 = tl_counters (e);

  struct rlimit old, lim;
  ck_assert_int_eq (getrlimit (RLIMIT_FSIZE, &old), 0);
  lim = old;
  lim.rlim_cur = l.copy_units * UNIT;           /* copy 0 stays writable */
  signal (SIGXFSZ, SIG_IGN);
  ck_assert_int_eq (setrlimit (RLIMIT_FSIZE, &lim), 0);
  for (uint64_t u = 0; u < 4; u++)
    fail_unit (ofault, u, REMAP_FAULT_WRITE, -EIO);
  uint8_t data[UNIT], rbuf[UNIT];
  for (uint64_t u = 0; u < 4; u++) {
    remap_error_clear (&err);
    tl_pattern (data, UNIT, 200 + u);
    int r = remap_pwrite (e, data, UNIT, u * UNIT, 0, &err);
    ck_assert_msg (r == -EFBIG, "unit %" PRIu64 ": %d %s", u, r, err.msg);
    ck_assert_int_eq (remap_error_to_client (r), ENOSPC);
  }
  struct remap_counters k = tl_counters (e);
  ck_assert_uint_eq (k.spare_bad_units, 0);
  ck_assert_uint_eq (k.reallocated_units, 0);
  ck_assert_uint_eq (k.spare_free_units, k0.spare_free_units);

  ck_assert_int_eq (setrlimit (RLIMIT_FSIZE, &old), 0);
  for (uint64_t u = 0; u < 4; u++) {
    tl_pattern (data, UNIT, 200 + u);
    ck_assert_int_eq (remap_pwrite (e, data, UNIT, u * UNIT, 0, NULL), 0);
    ck_assert_int_eq (remap_pread (e, rbuf, UNIT, u * UNIT, NULL), 0);
    ck_assert_mem_eq (rbuf, data, UNIT);
  }
  k = tl_counters (e);
  ck_assert_uint_eq (k.reallocated_units, 4);
  ck_assert_uint_eq (k.spare_bad_units, 0);
  ck_assert_uint_eq (k.copies_valid, l.copies);
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (omem);
}
END_TEST

static Suite *
errclass_suite (void)
{
  Suite *s = suite_create ("errclass");
  TCase *io = tcase_create ("data");
  TCase *fl = tcase_create ("flush");
  TCase *sp = tcase_create ("space");

  tcase_add_loop_test (io, test_origin_read, 0, NCLASSES);
  tcase_add_loop_test (io, test_origin_write, 0, NCLASSES);
  tcase_add_loop_test (io, test_spare_write_remapping, 0, NCLASSES);
  tcase_add_loop_test (io, test_spare_write_mapped, 0, NCLASSES);
  tcase_add_loop_test (io, test_origin_read_relocating, 0, NCLASSES);
  tcase_add_loop_test (io, test_spare_read_relocating, 0, NCLASSES);
  tcase_add_loop_test (io, test_spare_read, 0, NCLASSES);
  tcase_add_loop_test (fl, test_spare_flush_relocating, 0, NCLASSES);
  tcase_add_loop_test (fl, test_client_flush, 0, NCLASSES);
  tcase_add_loop_test (fl, test_commit_flush_one_copy, 0, NCLASSES);
  tcase_add_loop_test (fl, test_commit_flush_all_copies, 0, NCLASSES);
  tcase_add_test (fl, test_flush_failure_threads);
  tcase_add_test (sp, test_sparse_spare_enospc);
  tcase_add_test (sp, test_spare_file_size_limit);
  suite_add_tcase (s, io);
  suite_add_tcase (s, fl);
  suite_add_tcase (s, sp);
  return s;
}

int
main (void)
{
  return tl_run (errclass_suite ());
}
