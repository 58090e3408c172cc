/* remap admin: the commands that change the table or read the origin:
 * remap, unmap, pending (one unit per step), scan (one run of at most
 * 4 MiB per step) and spare-retest (one spare unit per step).
 *
 * Between steps each checks its sink (remap_out_check): when the client
 * has gone or the server is stopping, the command stops there with
 * -ECANCELED and says how far it got.  A step itself is never cut short:
 * a unit is either remapped (committed) or not.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "remap/parse.h"
#include "remap/remap.h"

#define P(...) remap_out_printf (out, __VA_ARGS__)

/* The message of a stop between steps. */
static int
stopped (struct remap_error *err, int r, const char *what, uint64_t done,
         uint64_t n)
{
  return remap_set_error (err, r == -ENOMEM ? r : -ECANCELED, "%s stopped "
                          "after %" PRIu64 " of %" PRIu64 " units: %s",
                          what, done, n, r == -ECANCELED ? "cancelled (the "
                          "client went away or the server is stopping)"
                          : strerror (-r));
}

/* ---- remap, unmap, pending ------------------------------------------- */

static int
range_step (struct remap_engine *e, int op, bool discard, uint64_t u,
            const struct remap_mapping *before, const char **res,
            struct remap_error *err)
{
  int r;

  switch (op) {
  case CMD_OP_REMAP:
    r = remap_remap (e, u, 0, err);
    *res = before->state == REMAP_SLOT_MAPPED ? "already-remapped"
      : "remapped";
    return r;
  case CMD_OP_PENDING:
    r = remap_mark_pending (e, u, err);
    *res = before->state == REMAP_SLOT_MAPPED ? "already-remapped"
      : before->state == REMAP_SLOT_PENDING ? "already-pending" : "pending";
    return r;
  default:
    r = remap_unmap (e, u, discard ? REMAP_UNMAP_DISCARD : 0, err);
    *res = before->state == REMAP_SLOT_FREE ? "not-remapped"
      : before->state == REMAP_SLOT_PENDING ? "released"
      : discard ? "discarded" : "copied-back";
    if (r == -EBUSY)
      remap_error_prefix (err, r, "unit %" PRIu64 " holds lost data; add "
                          "--discard-data to drop it", u);
    return r;
  }
}

static void
range_result (struct remap_engine *e, struct remap_out *out, bool json,
              bool first, uint64_t u, const char *res)
{
  struct remap_mapping m;

  remap_lookup (e, u, &m);
  if (json) {
    struct json_object *o = json_object_new_object ();
    jadd_u64 (o, "origin_unit", u);
    jadd_str (o, "result", res);
    jadd_str (o, "state", remap_slot_state_name (m.state));
    bool fr = m.state == REMAP_SLOT_FREE;
    json_object_object_add (o, "spare_unit",
                            fr ? NULL : json_object_new_uint64 (m.spare_unit));
    jadd_u64 (o, "lost_granules",
              fr ? 0 : (uint64_t) __builtin_popcountll (m.lost));
    if (!first)
      remap_out_write (out, ",", 1);
    remap_out_json (out, o);
    json_object_put (o);
    return;
  }
  P ("unit %" PRIu64 ": %s", u, res);
  if (m.state != REMAP_SLOT_FREE)
    P (" (%s on spare unit %" PRIu64 ")", remap_slot_state_name (m.state),
       m.spare_unit);
  if (m.lost)
    P (", %d granule(s) unreadable: recorded as lost",
       __builtin_popcountll (m.lost));
  P ("\n");
}

int
cmd_range (struct remap_engine *e, const struct remap_command *c,
           const struct remap_args *a, struct remap_out *out,
           struct remap_error *err)
{
  uint64_t first, n, done = 0, changed = 0;
  int r;

  if ((r = cmd_get_range (e, a, &first, &n, err)))
    return r;
  if (a->json) {
    struct json_object *h = json_object_new_object ();
    jadd_str (h, "command", c->name);
    jadd_u64 (h, "unit", remap_unit (e));
    jadd_u64 (h, "first_unit", first);
    jadd_u64 (h, "units", n);
    cmd_json_open_array (out, h, "results");
    json_object_put (h);
  }
  for (uint64_t u = first; u < first + n; u++, done++) {
    struct remap_mapping before;
    const char *res;

    if ((r = remap_out_check (out)) != 0) {
      stopped (err, r, c->name, done, n);
      r = err->err;
      break;
    }
    if ((r = remap_lookup (e, u, &before)) != 0) {
      remap_set_error (err, r, "unit %" PRIu64 ": lookup failed", u);
      break;
    }
    r = range_step (e, c->op, a->discard, u, &before, &res, err);
    if (r) {
      remap_error_prefix (err, r, "unit %" PRIu64 " (%" PRIu64 " of %"
                          PRIu64 " units done)", u, done, n);
      break;
    }
    changed += strncmp (res, "already", 7) != 0
      && strcmp (res, "not-remapped") != 0;
    range_result (e, out, a->json, done == 0, u, res);
  }
  if (a->json) {
    struct json_object *t = json_object_new_object ();
    jadd_u64 (t, "changed", changed);
    if (r)
      jadd_str (t, "error", err->msg[0] ? err->msg : strerror (-r));
    cmd_json_close_array (out, t);
    json_object_put (t);
  }
  return r ? r : out->err;
}

/* ---- scan ------------------------------------------------------------ */

/* Most units read in one step (and at most 4 MiB). */
#define SCAN_RUN_UNITS 256u

struct scan {
  struct remap_engine *e;
  uint64_t run;                 /* units per read now: 1 at the start and
                                   after a failure, doubling after each
                                   clean read up to run_max (slow start),
                                   so that a step on failing media is one
                                   unit (its retries) and the scan stays
                                   quick to cancel */
  struct remap_out *out;
  bool json;
  uint64_t nread, skipped, nbad, nnew;
  struct json_object *unrec;    /* units pending in memory only */
  uint64_t nunrec;
};

static void
scan_report (struct scan *s, uint64_t v, bool was_pending, int p)
{
  struct remap_out *out = s->out;

  if (s->json)
    P ("%s%" PRIu64, s->nbad ? "," : "", v);
  else
    P ("unit %" PRIu64 ": bad (%s)%s\n", v, was_pending ? "known"
       : "new, now pending", p == 2 ? "; could not be recorded on the spare "
       "(it is full or read-only): pending in memory only, until remap "
       "stops" : "");
  s->nbad++;
  s->nnew += !was_pending;
  if (p == 2) {
    json_object_array_add (s->unrec, json_object_new_uint64 (v));
    s->nunrec++;
  }
}

/* One step: the run of units from u that are not remapped (at most
 * run_max), read at once.  Returns the end of the run, or u+1 for a
 * remapped unit (skipped).  *r gets an error that stops the scan. */
static uint64_t
scan_step (struct scan *s, uint64_t u, uint64_t end, uint64_t run_max,
           uint8_t *buf, int *r, struct remap_error *err)
{
  struct remap_engine *e = s->e;
  uint64_t U = remap_unit (e), size = remap_size (e), u1 = u;
  bool was_pending[SCAN_RUN_UNITS];
  struct remap_mapping m;

  if (s->run > run_max)
    s->run = run_max;
  if (s->run == 0)
    s->run = 1;
  while (u1 < end && u1 - u < s->run) {
    if (remap_lookup (e, u1, &m) == 0 && m.state == REMAP_SLOT_MAPPED)
      break;
    was_pending[u1 - u] = remap_unit_pending (e, u1) > 0;
    u1++;
  }
  if (u1 == u) {
    s->skipped++;
    return u + 1;
  }
  uint64_t off = u * U, stop = u1 * U < size ? u1 * U : size;
  struct remap_error rerr = { 0 };
  int rr = remap_pread (e, buf, stop - off, off, &rerr);
  if (rr && rr != -EIO) {
    /* Not a media error (lost connection, ...): reported, nothing
     * concluded about the units. */
    *r = remap_set_error (err, rr, "unit %" PRIu64 ": %s", u,
                          rerr.msg[0] ? rerr.msg : strerror (-rr));
    return u;
  }
  s->run = rr ? 1 : 2 * s->run;
  for (uint64_t v = u; v < u1; v++) {
    if (rr == 0 && !was_pending[v - u])
      continue;
    int p = remap_unit_pending (e, v);
    if (p > 0)
      scan_report (s, v, was_pending[v - u], p);
  }
  s->nread += u1 - u;
  return u1;
}

/* Read the origin units of a range that are not remapped, so that the
 * engine finds the failing ones (it retries, then marks them pending).
 * Remapped units are skipped: their data is on the spare.  A unit is
 * reported bad when the engine holds it pending after the read, recorded
 * on the spare or, when it could not be (no place left, read-only engine),
 * in memory only: those are listed as unrecorded too.  Bad units are
 * streamed as they are found. */
int
cmd_scan (struct remap_engine *e, const struct remap_command *c,
          const struct remap_args *a, struct remap_out *out,
          struct remap_error *err)
{
  struct scan s = { .e = e, .out = out, .json = a->json };
  uint64_t first, n, U = remap_unit (e), u;
  uint64_t run_max = (4u << 20) / U ? (4u << 20) / U : 1;
  uint8_t *buf;
  int r;

  (void) c;
  if ((r = cmd_get_range (e, a, &first, &n, err)))
    return r;
  if (run_max > SCAN_RUN_UNITS)
    run_max = SCAN_RUN_UNITS;
  s.unrec = json_object_new_array ();
  buf = malloc (run_max * U);
  if (!buf || !s.unrec) {
    free (buf);
    json_object_put (s.unrec);
    return remap_set_error (err, -ENOMEM, "out of memory");
  }
  if (a->json) {
    struct json_object *h = json_object_new_object ();
    jadd_str (h, "command", "scan");
    jadd_u64 (h, "unit", U);
    jadd_u64 (h, "first_unit", first);
    jadd_u64 (h, "units", n);
    cmd_json_open_array (out, h, "bad_units");
    json_object_put (h);
  }
  for (u = first; u < first + n && r == 0; ) {
    if ((r = remap_out_check (out)) != 0) {
      r = stopped (err, r, "scan", u - first, n);
      break;
    }
    u = scan_step (&s, u, first + n, run_max, buf, &r, err);
  }
  free (buf);
  if (a->json) {
    struct json_object *t = json_object_new_object ();
    jadd_u64 (t, "read_units", s.nread);
    jadd_u64 (t, "skipped_units", s.skipped);
    jadd_u64 (t, "new_bad_units", s.nnew);
    json_object_object_add (t, "unrecorded_units", json_object_get (s.unrec));
    if (r)
      jadd_str (t, "error", err->msg[0] ? err->msg : strerror (-r));
    cmd_json_close_array (out, t);
    json_object_put (t);
  }
  else if (r == 0)
    P ("scanned units %" PRIu64 "-%" PRIu64 ": %" PRIu64 " read, %" PRIu64
       " skipped (remapped), %" PRIu64 " bad (%" PRIu64 " new)%s\n", first,
       first + n - 1, s.nread, s.skipped, s.nbad, s.nnew,
       s.nunrec ? "; some could not be recorded on the spare (see above)"
       : "");
  json_object_put (s.unrec);
  return r ? r : out->err;
}

/* ---- spare-retest ------------------------------------------------------ */

struct bad_units {
  uint64_t first, end;          /* the range asked for */
  uint64_t *v;
  size_t n, cap;
};

static int
collect_bad (void *opaque, const struct remap_mapping *m)
{
  struct bad_units *b = opaque;
  if (m->state != REMAP_SLOT_BAD || m->spare_unit < b->first
      || m->spare_unit >= b->end)
    return 0;
  if (b->n == b->cap) {
    size_t cap = b->cap ? 2 * b->cap : 64;
    uint64_t *v = realloc (b->v, cap * sizeof *v);
    if (!v)
      return -ENOMEM;
    b->v = v;
    b->cap = cap;
  }
  b->v[b->n++] = m->spare_unit;
  return 0;
}

static int
retest_range (struct remap_engine *e, const struct remap_args *a,
              const struct remap_layout *l, uint64_t *first, uint64_t *count,
              struct remap_error *err)
{
  *first = 0;
  if (a->npos > 0
      && remap_parse_u64 (a->pos[0], 0, "bad spare unit", first, err))
    return -EINVAL;
  *count = *first < l->spare_units ? l->spare_units - *first : 0;
  if (a->npos > 1 && remap_parse_u64 (a->pos[1], 0, "bad count", count, err))
    return -EINVAL;
  if (a->npos > 1 && *count == 0)
    return remap_set_error (err, -EINVAL, "bad count \"%.40s\": want a "
                            "positive number", a->pos[1]);
  if (*first >= l->spare_units || *count > l->spare_units - *first)
    return remap_set_error (err, -EINVAL, "spare unit %" PRIu64 " count %"
                            PRIu64 " is past the end of the spare (%" PRIu64
                            " units, numbered from 0)", *first, *count,
                            l->spare_units);
  (void) e;
  return 0;
}

/* Re-test the bad spare units of a range (spare unit numbers, default the
 * whole spare), one at a time, so that each gets its own verdict.  Fails
 * with -EIO when some stay bad: a script can tell "all cleared" apart. */
int
cmd_spare_retest (struct remap_engine *e, const struct remap_command *c,
                  const struct remap_args *a, struct remap_out *out,
                  struct remap_error *err)
{
  struct remap_info in;
  struct bad_units b = { 0 };
  uint64_t first, count, reserved = 0, cleared = 0, still = 0;
  size_t i;
  int r;

  (void) c;
  remap_get_info (e, &in);
  const struct remap_layout *l = &in.layout;
  if ((r = retest_range (e, a, l, &first, &count, err)))
    return r;
  for (uint64_t s = first; s < first + count; s++)
    reserved += remap_layout_is_reserved (l, s);
  b.first = first;
  b.end = first + count;
  if ((r = remap_foreach (e, collect_bad, &b)) != 0) {
    free (b.v);
    return remap_set_error (err, r, "out of memory");
  }
  if (a->json) {
    struct json_object *h = json_object_new_object ();
    jadd_str (h, "command", "spare-retest");
    jadd_u64 (h, "unit", l->unit);
    jadd_u64 (h, "first_unit", first);
    jadd_u64 (h, "units", count);
    jadd_u64 (h, "reserved_skipped", reserved);
    cmd_json_open_array (out, h, "results");
    json_object_put (h);
  }
  for (i = 0; i < b.n && r == 0; i++) {
    uint64_t k = 0;
    if ((r = remap_out_check (out)) != 0) {
      r = stopped (err, r, "spare-retest", i, b.n);
      break;
    }
    r = remap_spare_retest (e, b.v[i], 1, &k, err);
    if (r)
      break;
    cleared += k;
    still += !k;
    if (a->json) {
      struct json_object *o = json_object_new_object ();
      jadd_u64 (o, "spare_unit", b.v[i]);
      jadd_str (o, "result", k ? "cleared" : "still-bad");
      if (i)
        remap_out_write (out, ",", 1);
      remap_out_json (out, o);
      json_object_put (o);
    }
    else
      P ("spare unit %" PRIu64 ": %s\n", b.v[i],
         k ? "cleared (passed the test; free again)"
         : "still bad (failed the test)");
  }
  if (r == 0 && still)
    r = remap_set_error (err, -EIO, "%" PRIu64 " of %zu bad spare units "
                         "still fail the test and stay bad; the spare's "
                         "medium is failing there", still, b.n);
  if (a->json) {
    struct json_object *t = json_object_new_object ();
    jadd_u64 (t, "tested", i);
    jadd_u64 (t, "cleared", cleared);
    jadd_u64 (t, "still_bad", still);
    if (r)
      jadd_str (t, "error", err->msg[0] ? err->msg : strerror (-r));
    cmd_json_close_array (out, t);
    json_object_put (t);
  }
  else if (b.n == 0)
    P ("no bad spare units in spare units %" PRIu64 "-%" PRIu64
       ": nothing to retest\n", first, first + count - 1);
  else
    P ("%zu bad spare unit%s retested: %" PRIu64 " cleared, %" PRIu64
       " still bad (spare units %" PRIu64 "-%" PRIu64 "; %" PRIu64
       " metadata units skipped)\n", i, i == 1 ? "" : "s", cleared, still,
       first, first + count - 1, reserved);
  free (b.v);
  return r ? r : out->err;
}
