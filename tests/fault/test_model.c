/* Fault tests: the engine against a naive oracle, over thousands of seeded
 * random operations.
 *
 * The oracle is deliberately dumb: the bytes a reader must see (vis), the
 * bytes on the origin (orig), one state per origin unit (free / mapped /
 * pending, its spare unit, its lost granules) and one per spare unit, plus
 * the next-fit cursor.  Operations: write (unaligned, crossing units, FUA
 * or not), zero, trim, read and compare, flush, remap (with or without
 * copying), unmap (copy back or discard), mark pending, mark lost, mark a
 * random spare unit bad, and reopen (close + open on the shared bytes).
 *
 * Reads must equal the oracle, except that a read touching a lost granule
 * must fail with -EIO.  -ENOSPC is expected exactly when an operation needs
 * a fresh spare unit and the oracle has none left.  The spare unit the
 * engine picks must be the next-fit one (SPEC 1.4).  Version 2 (SPEC
 * 2.6): a pending mark takes a pending-only place (slots from Tr * E to
 * T * E) by its own next-fit, which starts over at the first place at
 * every open; rewriting such a unit gives it a spare unit by next-fit and
 * frees the place, or, with no spare unit free, writes the origin and
 * (whole unit written) drops the mark.  The table, the data
 * and the counters are compared in full every few dozen operations and
 * after every reopen.
 *
 * REMAP_SEED=n replays one seed; REMAP_OPS=n changes the operation count.
 */

#include "unit/testlib.h"

#define DEFAULT_SEEDS 20
#define DEFAULT_OPS 2000
#define CHECK_EVERY 64

enum { S_FREE, S_MAPPED, S_PENDING, S_BAD, S_RSV };

struct mcfg {
  uint32_t unit;
  uint64_t spare;
  enum remap_strategy s;
  uint32_t copies;
  uint64_t origin;
  bool v1;                      /* a hand-made version 1 spare */
};

static const struct mcfg mcfgs[] = {
  { 512, 40 * KiB, REMAP_STRATEGY_AUTO, 0, 1 * MiB, false },
  { 4096, 160 * KiB, REMAP_STRATEGY_AUTO, 0, 1 * MiB, false },
  { 4096, 600 * KiB, REMAP_STRATEGY_AUTO, 0, 1 * MiB - 1000, false },
  { 1024, 300 * KiB, REMAP_STRATEGY_MINIMAL, 3, 1 * MiB, false },
  { 4096, 160 * KiB, REMAP_STRATEGY_AUTO, 0, 1 * MiB, true },
};
#define NMCFGS (sizeof mcfgs / sizeof mcfgs[0])

struct model {
  const struct mcfg *c;
  uint64_t seed, st;
  int op;                       /* index of the current operation */
  char what[160];               /* the current operation, for messages */
  struct remap_layout l;
  uint32_t unit, granule;
  uint64_t size, units, N;
  uint8_t *vis, *orig;
  uint8_t *ust;                 /* per origin unit */
  uint64_t *uslot, *ulost;
  uint8_t *sst;                 /* per slot: spare units, then (v2)
                                   [first, S) pending-only places */
  uint64_t *sown;
  uint64_t S, first;            /* slots; first pending-only place */
  uint64_t cursor, pcursor;
  uint64_t unpersisted;         /* pending marks the spare had no room for */
  uint64_t enospc_seen, eio_reads, ebusy, max_used;
  struct remap_backend *omem, *smem;
  struct remap_engine *e;
  uint8_t *buf, *rbuf;
};

#define MREQ(m, cond, ...)                                              \
  do {                                                                  \
    if (!(cond)) {                                                      \
      char msg_[1024];                                                  \
      snprintf (msg_, sizeof msg_, __VA_ARGS__);                        \
      ck_abort_msg ("seed %" PRIu64 " (REMAP_SEED=%" PRIu64 ") op %d %s: %s", \
                    (m)->seed, (m)->seed, (m)->op, (m)->what, msg_);   \
    }                                                                   \
  } while (0)

/* ---- granules ------------------------------------------------------------ */

static uint64_t
valid_bytes (const struct model *m, uint64_t u)
{
  uint64_t left = m->size - u * m->unit;
  return left < m->unit ? left : m->unit;
}

static uint64_t
touched (const struct model *m, uint64_t a, uint64_t b)
{
  uint64_t r = 0;
  for (uint64_t g = a / m->granule; g * m->granule < b; g++)
    r |= UINT64_C (1) << g;
  return r;
}

/* Granules wholly rewritten by [a, b); the last granule of a short unit
 * counts as whole when [a, valid) covers its valid part. */
static uint64_t
covered (const struct model *m, uint64_t a, uint64_t b, uint64_t valid)
{
  uint64_t r = 0;
  for (uint64_t g = 0; g * m->granule < valid; g++) {
    uint64_t gs = g * m->granule, ge = gs + m->granule;
    if (ge > valid)
      ge = valid;
    if (gs >= a && ge <= b)
      r |= UINT64_C (1) << g;
  }
  return r;
}

/* ---- the oracle's allocator ------------------------------------------------ */

static bool
m_alloc (struct model *m, uint64_t *slot)
{
  uint64_t c = m->cursor < m->N ? m->cursor : 0;
  for (uint64_t k = 0; k < m->N; k++) {
    uint64_t s = (c + k) % m->N;
    if (m->sst[s] == S_FREE) {
      *slot = s;
      m->cursor = s + 1 < m->N ? s + 1 : 0;
      return true;
    }
  }
  return false;
}

/* Version 2: a pending-only place, next-fit over [first, S). */
static bool
m_palloc (struct model *m, uint64_t *slot)
{
  uint64_t n = m->S - m->first;
  uint64_t c = m->pcursor >= m->first && m->pcursor < m->S ? m->pcursor
    : m->first;
  for (uint64_t k = 0; k < n; k++) {
    uint64_t s = m->first + (c - m->first + k) % n;
    if (m->sst[s] == S_FREE) {
      *slot = s;
      m->pcursor = s + 1 < m->S ? s + 1 : m->first;
      return true;
    }
  }
  return false;
}

static bool
is_place (const struct model *m, uint64_t slot)
{
  return m->l.version >= 2 && slot >= m->N;
}

static void
set_unit (struct model *m, uint64_t u, int state, uint64_t slot,
          uint64_t lost)
{
  if (m->ust[u] != S_FREE && m->sst[m->uslot[u]] != S_BAD)
    m->sst[m->uslot[u]] = S_FREE;
  m->ust[u] = (uint8_t) state;
  m->uslot[u] = slot;
  m->ulost[u] = state == S_MAPPED ? lost : 0;
  if (state != S_FREE) {
    m->sst[slot] = (uint8_t) state;
    m->sown[slot] = u;
  }
}

/* ---- setup --------------------------------------------------------------- */

static void
m_open (struct model *m)
{
  struct remap_error err = { 0 };
  int r = tl_open (m->omem, m->smem, NULL, &m->e, &err);
  MREQ (m, r == 0, "open: %d %s", r, err.msg);
  m->unpersisted = 0;
  m->pcursor = m->first;
}

static void
m_init (struct model *m, uint64_t seed)
{
  memset (m, 0, sizeof *m);
  m->seed = m->st = seed;
  m->c = &mcfgs[seed % NMCFGS];
  m->unit = m->c->unit;
  m->granule = remap_lost_granule (m->unit);
  m->size = m->c->origin;
  m->units = (m->size + m->unit - 1) / m->unit;
  ck_assert_int_eq (remap_layout_compute_version (m->c->v1 ? 1 : 2,
                                                  m->c->spare, m->unit,
                                                  m->c->s, m->c->copies,
                                                  &m->l, NULL), 0);
  m->N = m->l.spare_units;
  m->S = m->l.table_blocks * m->l.entries_per_block;
  m->first = remap_layout_first_pending_slot (&m->l);
  if (m->l.version < 2)
    m->S = m->first = m->N;
  m->omem = tl_mem (m->size);
  m->smem = tl_mem (m->c->spare);
  tl_random_bytes (&m->st, remap_mem_data (m->omem), m->size);
  m->vis = malloc (m->size);
  m->orig = malloc (m->size);
  memcpy (m->vis, remap_mem_data (m->omem), m->size);
  memcpy (m->orig, m->vis, m->size);
  m->ust = calloc (m->units, 1);
  m->uslot = calloc (m->units, sizeof *m->uslot);
  m->ulost = calloc (m->units, sizeof *m->ulost);
  m->sst = calloc (m->S, 1);
  m->sown = calloc (m->S, sizeof *m->sown);
  for (uint64_t s = 0; s < m->first; s++)   /* also [N, first): no unit */
    if (s >= m->N || remap_layout_is_reserved (&m->l, s))
      m->sst[s] = S_RSV;
  m->buf = malloc (4 * m->unit);
  m->rbuf = malloc (4 * m->unit);
  if (m->c->v1)
    tl_format_v1 (m->omem, m->smem, m->unit, m->c->s, m->c->copies, NULL);
  else
    tl_format_ok (m->omem, m->smem, m->unit, m->c->s, m->c->copies);
  snprintf (m->what, sizeof m->what, "open");
  m_open (m);
}

static void
m_free (struct model *m)
{
  if (m->e)
    ck_assert_int_eq (remap_close (m->e), 0);
  remap_backend_close (m->omem);
  remap_backend_close (m->smem);
  free (m->vis);
  free (m->orig);
  free (m->ust);
  free (m->uslot);
  free (m->ulost);
  free (m->sst);
  free (m->sown);
  free (m->buf);
  free (m->rbuf);
}

/* ---- checks ------------------------------------------------------------------ */

static void
check_unit_map (struct model *m, uint64_t u)
{
  struct remap_mapping mp;
  ck_assert_int_eq (remap_lookup (m->e, u, &mp), 0);
  static const int want_state[] = { REMAP_SLOT_FREE, REMAP_SLOT_MAPPED,
                                    REMAP_SLOT_PENDING };
  MREQ (m, (int) mp.state == want_state[m->ust[u]],
        "unit %" PRIu64 ": state %d, oracle %d", u, mp.state, m->ust[u]);
  if (m->ust[u] != S_FREE)
    MREQ (m, mp.spare_unit == m->uslot[u], "unit %" PRIu64 ": spare unit %"
          PRIu64 ", next-fit oracle says %" PRIu64, u, mp.spare_unit,
          m->uslot[u]);
  MREQ (m, mp.lost == m->ulost[u], "unit %" PRIu64 ": lost %#" PRIx64
        ", oracle %#" PRIx64, u, mp.lost, m->ulost[u]);
}

static void
check_counters (struct model *m)
{
  uint64_t mapped = 0, pending = 0, bad = 0, lunits = 0, lgran = 0;
  uint64_t pspare = 0;          /* pending marks holding a spare unit */
  for (uint64_t u = 0; u < m->units; u++) {
    mapped += m->ust[u] == S_MAPPED;
    pending += m->ust[u] == S_PENDING;
    pspare += m->ust[u] == S_PENDING && !is_place (m, m->uslot[u]);
    lunits += m->ulost[u] != 0;
    lgran += (uint64_t) __builtin_popcountll (m->ulost[u]);
  }
  for (uint64_t s = 0; s < m->N; s++)
    bad += m->sst[s] == S_BAD;
  struct remap_counters k = tl_counters (m->e);
  MREQ (m, k.reallocated_units == mapped, "reallocated %" PRIu64 ", oracle %"
        PRIu64, k.reallocated_units, mapped);
  MREQ (m, k.spare_bad_units == bad, "bad %" PRIu64 ", oracle %" PRIu64,
        k.spare_bad_units, bad);
  MREQ (m, k.spare_free_units == m->l.usable_units - mapped - pspare - bad,
        "free %" PRIu64 ", oracle %" PRIu64, k.spare_free_units,
        m->l.usable_units - mapped - pspare - bad);
  MREQ (m, k.uncorrectable_units == lunits && k.lost_granules == lgran,
        "uncorrectable %" PRIu64 "/%" PRIu64 ", oracle %" PRIu64 "/%" PRIu64,
        k.uncorrectable_units, k.lost_granules, lunits, lgran);
  /* Pending marks the spare had no room for are counted by the engine in
   * its own way (see test_errors.c); compare only when there were none. */
  if (m->unpersisted == 0)
    MREQ (m, k.pending_units == pending, "pending %" PRIu64 ", oracle %"
          PRIu64, k.pending_units, pending);
  MREQ (m, k.copies_valid == m->l.copies, "copies valid %u", k.copies_valid);
  if (mapped + pspare + bad > m->max_used)
    m->max_used = mapped + pspare + bad;
}

/* Read [off, off + len) and compare; expect -EIO iff a lost granule is
 * touched. */
static void
check_read (struct model *m, uint64_t off, uint64_t len)
{
  bool lost = false;
  for (uint64_t p = off; p < off + len;) {
    uint64_t u = p / m->unit, ue = (u + 1) * m->unit;
    uint64_t q = ue < off + len ? ue : off + len;
    if (m->ust[u] == S_MAPPED
        && (m->ulost[u] & touched (m, p - u * m->unit, q - u * m->unit)))
      lost = true;
    p = q;
  }
  uint8_t *buf = len <= 4 * m->unit ? m->rbuf : malloc (len);
  struct remap_error err = { 0 };
  int r = remap_pread (m->e, buf, len, off, &err);
  if (lost) {
    MREQ (m, r == -EIO, "read %" PRIu64 "+%" PRIu64 " of lost data: %d", off,
          len, r);
    m->eio_reads++;
  }
  else {
    MREQ (m, r == 0, "read %" PRIu64 "+%" PRIu64 ": %d %s", off, len, r,
          err.msg);
    if (memcmp (buf, m->vis + off, len) != 0) {
      uint64_t i = 0;
      while (buf[i] == m->vis[off + i])
        i++;
      MREQ (m, false, "read %" PRIu64 "+%" PRIu64 ": byte %" PRIu64
            " (unit %" PRIu64 ", state %d) is %#x, oracle %#x", off, len,
            off + i, (off + i) / m->unit, m->ust[(off + i) / m->unit],
            buf[i], m->vis[off + i]);
    }
  }
  if (buf != m->rbuf)
    free (buf);
}

static void
check_all (struct model *m)
{
  for (uint64_t u = 0; u < m->units; u++) {
    check_unit_map (m, u);
    uint64_t valid = valid_bytes (m, u);
    if (m->ulost[u] == 0)
      check_read (m, u * m->unit, valid);
    else
      for (uint64_t g = 0; g * m->granule < valid; g++) {
        uint64_t a = g * m->granule;
        uint64_t b = a + m->granule < valid ? a + m->granule : valid;
        check_read (m, u * m->unit + a, b - a);
      }
  }
  for (uint64_t s = 0; s < m->S; s++)
    if (m->sst[s] == S_MAPPED || m->sst[s] == S_PENDING)
      MREQ (m, m->uslot[m->sown[s]] == s && m->ust[m->sown[s]] == m->sst[s],
            "oracle inconsistent at spare unit %" PRIu64, s);
  check_counters (m);
}

/* ---- operations ------------------------------------------------------------ */

static uint64_t
pick_unit (struct model *m)
{
  /* Phases: a hot set smaller than the spare (turnover, no exhaustion),
   * then one larger (the spare runs out). */
  uint64_t hot = (m->op / 500) % 2 ? m->l.usable_units + 24
    : m->l.usable_units / 2 + 4;
  if (hot > m->units)
    hot = m->units;
  return tl_below (&m->st, 5) ? tl_below (&m->st, hot)
    : tl_below (&m->st, m->units);
}

static void
pick_range (struct model *m, uint64_t *off, uint64_t *len)
{
  uint64_t u = pick_unit (m);
  *off = u * m->unit + tl_below (&m->st, m->unit);
  if (*off >= m->size)
    *off = m->size - 1;
  *len = 1 + tl_below (&m->st, tl_below (&m->st, 4) ? m->unit
                       : 3 * m->unit);
  if (*len > m->size - *off)
    *len = m->size - *off;
}

/* Write (data or zeroes) through the engine and into the oracle. */
static void
op_write (struct model *m, bool zero)
{
  uint64_t off, len;
  pick_range (m, &off, &len);
  unsigned flags = tl_below (&m->st, 4) == 0 ? REMAP_FUA : 0;
  if (zero && tl_below (&m->st, 2))
    flags |= REMAP_MAY_TRIM;
  snprintf (m->what, sizeof m->what, "%s %" PRIu64 "+%" PRIu64 " flags %u",
            zero ? "zero" : "write", off, len, flags);
  if (zero)
    memset (m->buf, 0, len);
  else
    tl_random_bytes (&m->st, m->buf, len);
  struct remap_error err = { 0 };
  int r = zero ? remap_zero (m->e, len, off, flags, &err)
    : remap_pwrite (m->e, m->buf, len, off, flags, &err);
  MREQ (m, r == 0, "%d %s", r, err.msg);

  for (uint64_t p = off; p < off + len;) {
    uint64_t u = p / m->unit, ue = (u + 1) * m->unit;
    uint64_t q = ue < off + len ? ue : off + len;
    uint64_t a = p - u * m->unit, b = q - u * m->unit;
    memcpy (m->vis + p, m->buf + (p - off), q - p);
    switch (m->ust[u]) {
    case S_FREE:
      memcpy (m->orig + p, m->buf + (p - off), q - p);
      break;
    case S_MAPPED:
      m->ulost[u] &= ~covered (m, a, b, valid_bytes (m, u));
      break;
    case S_PENDING: {
      uint64_t s;
      if (!is_place (m, m->uslot[u]))   /* into its held spare unit */
        set_unit (m, u, S_MAPPED, m->uslot[u], 0);
      else if (m_alloc (m, &s))         /* a spare unit; place freed */
        set_unit (m, u, S_MAPPED, s, 0);
      else {
        /* No spare unit: the origin takes it; a whole unit written is no
         * longer pending. */
        memcpy (m->orig + p, m->buf + (p - off), q - p);
        uint64_t valid = valid_bytes (m, u);
        if (covered (m, a, b, valid) == covered (m, 0, valid, valid))
          set_unit (m, u, S_FREE, 0, 0);
      }
      break;
    }
    }
    p = q;
  }
}

static void
op_read (struct model *m)
{
  uint64_t off, len;
  pick_range (m, &off, &len);
  snprintf (m->what, sizeof m->what, "read %" PRIu64 "+%" PRIu64, off, len);
  check_read (m, off, len);
}

static void
op_trim (struct model *m)
{
  uint64_t off, len;
  pick_range (m, &off, &len);
  snprintf (m->what, sizeof m->what, "trim %" PRIu64 "+%" PRIu64, off, len);
  /* Advisory; the mem origin keeps its bytes, remapped units are left
   * alone: nothing visible changes. */
  MREQ (m, remap_trim (m->e, len, off, 0, NULL) == 0, "failed");
}

static void
expect_enospc (struct model *m, int r, struct remap_error *err)
{
  MREQ (m, r == -ENOSPC, "oracle has no free spare unit, engine said %d",
        r);
  MREQ (m, err->msg[0] != '\0', "no message");
  m->enospc_seen++;
}

static void
op_remap (struct model *m)
{
  uint64_t u = pick_unit (m);
  bool nocopy = tl_below (&m->st, 6) == 0;
  snprintf (m->what, sizeof m->what, "remap %" PRIu64 "%s", u,
            nocopy ? " nocopy" : "");
  struct remap_error err = { 0 };
  int r = remap_remap (m->e, u, nocopy ? REMAP_REMAP_NOCOPY : 0, &err);
  uint64_t s;
  if (m->ust[u] == S_MAPPED) {
    MREQ (m, r == 0, "already mapped: %d", r);
    return;
  }
  if (m->ust[u] == S_PENDING && !is_place (m, m->uslot[u]))
    s = m->uslot[u];
  else if (!m_alloc (m, &s)) {
    expect_enospc (m, r, &err);
    return;
  }
  MREQ (m, r == 0, "%d %s", r, err.msg);
  uint64_t valid = valid_bytes (m, u);
  if (nocopy)
    memset (m->vis + u * m->unit, 0, valid);
  set_unit (m, u, S_MAPPED, s, nocopy ? touched (m, 0, valid) : 0);
  check_unit_map (m, u);
}

static void
op_mark_lost (struct model *m)
{
  uint64_t u = pick_unit (m);
  uint64_t mask = tl_below (&m->st, 3) ? UINT64_C (1) << tl_below (&m->st, 8)
    : tl_rand (&m->st);
  snprintf (m->what, sizeof m->what, "mark_lost %" PRIu64 " %#" PRIx64, u,
            mask);
  struct remap_error err = { 0 };
  int r = remap_mark_lost (m->e, u, mask, &err);
  mask &= touched (m, 0, valid_bytes (m, u));
  uint64_t s;
  if (m->ust[u] == S_MAPPED) {
    MREQ (m, r == 0, "%d %s", r, err.msg);
    m->ulost[u] |= mask;
    return;
  }
  if (m->ust[u] == S_PENDING && !is_place (m, m->uslot[u]))
    s = m->uslot[u];
  else if (!m_alloc (m, &s)) {
    expect_enospc (m, r, &err);
    return;
  }
  MREQ (m, r == 0, "%d %s", r, err.msg);
  set_unit (m, u, S_MAPPED, s, mask);
  check_unit_map (m, u);
}

static void
op_mark_pending (struct model *m)
{
  uint64_t u = pick_unit (m);
  snprintf (m->what, sizeof m->what, "mark_pending %" PRIu64, u);
  struct remap_error err = { 0 };
  int r = remap_mark_pending (m->e, u, &err);
  MREQ (m, r == 0, "%d %s", r, err.msg);
  uint64_t s;
  if (m->ust[u] != S_FREE)
    return;
  if (!(m->l.version >= 2 ? m_palloc (m, &s) : m_alloc (m, &s))) {
    m->unpersisted++;
    return;
  }
  set_unit (m, u, S_PENDING, s, 0);
  check_unit_map (m, u);
}

static void
op_unmap (struct model *m)
{
  uint64_t u = pick_unit (m);
  bool discard = tl_below (&m->st, 3) == 0;
  snprintf (m->what, sizeof m->what, "unmap %" PRIu64 "%s", u,
            discard ? " discard" : "");
  struct remap_error err = { 0 };
  int r = remap_unmap (m->e, u, discard ? REMAP_UNMAP_DISCARD : 0, &err);
  uint64_t p = u * m->unit, valid = valid_bytes (m, u);
  if (m->ust[u] == S_MAPPED && m->ulost[u] && !discard) {
    MREQ (m, r == -EBUSY, "unmap of a unit with lost data: %d", r);
    m->ebusy++;
    return;
  }
  MREQ (m, r == 0, "%d %s", r, err.msg);
  if (m->ust[u] == S_MAPPED) {
    if (discard)
      memcpy (m->vis + p, m->orig + p, valid);
    else
      memcpy (m->orig + p, m->vis + p, valid);
  }
  if (m->ust[u] != S_FREE)
    set_unit (m, u, S_FREE, 0, 0);
}

static void
op_mark_spare_bad (struct model *m)
{
  /* Mostly spare units in use (the data moves); free ones only now and
   * then, so that bad units do not eat the whole spare. */
  uint64_t s, nbad = 0;
  for (uint64_t x = 0; x < m->N; x++)
    nbad += m->sst[x] == S_BAD;
  bool allow_free = nbad < m->l.usable_units / 4 && tl_below (&m->st, 4) == 0;
  int tries = 0;
  do
    s = tl_below (&m->st, m->N);
  while (m->sst[s] == S_RSV || (m->sst[s] == S_FREE && !allow_free
                                && ++tries < 64));
  snprintf (m->what, sizeof m->what, "mark_spare_bad %" PRIu64 " (oracle "
            "state %d)", s, m->sst[s]);
  struct remap_error err = { 0 };
  int r = remap_mark_spare_bad (m->e, s, &err);
  uint64_t u = m->sown[s], s2;
  switch (m->sst[s]) {
  case S_FREE:
    MREQ (m, r == 0, "%d %s", r, err.msg);
    m->sst[s] = S_BAD;
    break;
  case S_BAD:
    MREQ (m, r == 0, "%d %s", r, err.msg);
    break;
  case S_MAPPED:
    if (!m_alloc (m, &s2)) {
      expect_enospc (m, r, &err);
      break;
    }
    MREQ (m, r == 0, "%d %s", r, err.msg);
    m->sst[s] = S_BAD;
    set_unit (m, u, S_MAPPED, s2, m->ulost[u]);
    check_unit_map (m, u);
    break;
  case S_PENDING:
    MREQ (m, r == 0, "%d %s", r, err.msg);
    m->sst[s] = S_BAD;
    if (m_alloc (m, &s2))
      set_unit (m, u, S_PENDING, s2, 0);
    else {
      set_unit (m, u, S_FREE, 0, 0);
      m->unpersisted++;
    }
    check_unit_map (m, u);
    break;
  }
}

static void
op_reopen (struct model *m)
{
  snprintf (m->what, sizeof m->what, "reopen");
  MREQ (m, remap_close (m->e) == 0, "close failed");
  m->e = NULL;
  m_open (m);
  struct remap_counters k = tl_counters (m->e);
  MREQ (m, k.repaired_blocks == 0, "clean reopen repaired %" PRIu64,
        k.repaired_blocks);
  check_all (m);
}

static void
run_seed (uint64_t seed, int ops, uint64_t *enospc)
{
  struct model m;
  m_init (&m, seed);
  for (m.op = 0; m.op < ops; m.op++) {
    unsigned x = (unsigned) tl_below (&m.st, 100);
    if (x < 28)
      op_write (&m, false);
    else if (x < 50)
      op_read (&m);
    else if (x < 61)
      op_remap (&m);
    else if (x < 68)
      op_unmap (&m);
    else if (x < 73)
      op_mark_pending (&m);
    else if (x < 79)
      op_write (&m, true);
    else if (x < 82)
      op_trim (&m);
    else if (x < 85) {
      snprintf (m.what, sizeof m.what, "flush");
      MREQ (&m, remap_flush (m.e, NULL) == 0, "failed");
    }
    else if (x < 90)
      op_mark_lost (&m);
    else if (x < 96)
      op_mark_spare_bad (&m);
    else if (x < 98)
      op_reopen (&m);
    else
      check_all (&m);
    if (m.op % CHECK_EVERY == 0)
      check_all (&m);
    else
      check_counters (&m);
  }
  snprintf (m.what, sizeof m.what, "final check");
  check_all (&m);
  op_reopen (&m);
  *enospc += m.enospc_seen;
  if (getenv ("REMAP_MODEL_STATS"))
    fprintf (stderr, "seed %" PRIu64 ": unit %u, %" PRIu64 " usable, max %"
             PRIu64 " used, %" PRIu64 " ENOSPC, %" PRIu64 " EIO reads, %"
             PRIu64 " EBUSY\n", seed, m.unit, m.l.usable_units, m.max_used,
             m.enospc_seen, m.eio_reads, m.ebusy);
  m_free (&m);
}

START_TEST (test_model)
{
  bool set;
  uint64_t one = tl_env_u64 ("REMAP_SEED", 0, &set);
  int ops = (int) tl_env_u64 ("REMAP_OPS", DEFAULT_OPS, NULL);
  uint64_t enospc = 0;
  if (set) {
    if (_i == 0)
      run_seed (one, ops, &enospc);
    return;
  }
  /* Each loop iteration runs a batch of seeds. */
  for (uint64_t k = 0; k < DEFAULT_SEEDS / 4; k++)
    run_seed (1000 + (uint64_t) _i * (DEFAULT_SEEDS / 4) + k, ops, &enospc);
  /* The small spares must have run out now and then. */
  ck_assert_msg (enospc > 0, "no -ENOSPC in this batch: the oracle's "
                 "exhaustion path went untested");
}
END_TEST

static Suite *
model_suite (void)
{
  Suite *s = suite_create ("model");
  TCase *tc = tcase_create ("model");
  tcase_set_timeout (tc, 600);
  tcase_add_loop_test (tc, test_model, 0, 4);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return tl_run (model_suite ());
}
