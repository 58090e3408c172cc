/* Fault tests: adversarial review 2 (issue 8 follow-up).
 *
 *   forgery_inside_sb_unit
 *       The real spare R (65536-byte units, minimal, 2 copies) has both its
 *       superblocks damaged; its table blocks are intact.  Alone, that is a
 *       refusal ("every metadata copy is damaged").  A client has written,
 *       into a remapped unit, copy 1 of a forged 512-byte layout F whose
 *       copy 0 ([0, 38400)) fits inside R's superblock unit, so no byte of
 *       R's table lies in F's extents and nothing refutes F.  Open adopts F,
 *       serves the client's table (every real remap reads stale origin
 *       bytes) and repair writes F's superblock over byte 0, making the
 *       loss permanent.  Expected: a refusal, or R's table.
 */

#include "unit/testlib.h"

#define R_UNIT 65536u
#define F_UNIT 512u
#define SPARE_SIZE (1 * MiB)
#define ORIGIN_SIZE (2 * MiB)

START_TEST (test_forgery_inside_sb_unit)
{
  struct remap_backend *origin = tl_mem (ORIGIN_SIZE);
  struct remap_backend *spare = tl_mem (SPARE_SIZE);
  struct remap_error err = { 0 };
  struct remap_format_opts fo;
  struct remap_layout rl, fl;

  ck_assert_int_eq (remap_layout_compute (SPARE_SIZE, R_UNIT,
                                          REMAP_STRATEGY_MINIMAL, 2, &rl,
                                          NULL), 0);
  ck_assert_int_eq (remap_layout_compute (SPARE_SIZE, F_UNIT,
                                          REMAP_STRATEGY_LINEAR, 2, &fl,
                                          NULL), 0);
  /* F's copy 0 lies inside R's superblock unit; F's copy 1 inside one
   * data unit of R. */
  ck_assert (fl.copy_units * F_UNIT <= R_UNIT);
  uint64_t f1 = fl.copy_offset[1] * F_UNIT;
  uint64_t f1len = fl.copy_units * F_UNIT;
  uint64_t rs = f1 / R_UNIT;
  ck_assert ((f1 + f1len - 1) / R_UNIT == rs);
  ck_assert (!remap_layout_is_reserved (&rl, rs));

  /* The real spare. */
  tl_format_opts (&fo, R_UNIT, REMAP_STRATEGY_MINIMAL, 2, 1);
  ck_assert_int_eq (remap_format (origin, spare, &fo, &err), 0);

  /* The forgery, made by a real format of a scratch spare (another uuid). */
  struct remap_backend *scratch = tl_mem (SPARE_SIZE);
  tl_format_opts (&fo, F_UNIT, REMAP_STRATEGY_LINEAR, 2, 99);
  ck_assert_int_eq (remap_format (origin, scratch, &fo, &err), 0);
  const uint8_t *forged = remap_mem_data (scratch) + f1;

  /* Remap every usable unit with distinct data, then the client writes
   * the forgery into the origin unit that lives in spare unit rs. */
  struct remap_engine *e = tl_open_ok (origin, spare, NULL);
  uint64_t ounits = ORIGIN_SIZE / R_UNIT;
  uint8_t *buf = malloc (R_UNIT), *expect = malloc (ORIGIN_SIZE);
  for (uint64_t u = 0; u < ounits; u++) {
    tl_pattern (expect + u * R_UNIT, R_UNIT, 1000 + u);
    ck_assert_int_eq (remap_pwrite (e, expect + u * R_UNIT, R_UNIT,
                                    u * R_UNIT, 0, &err), 0);
  }
  uint64_t owner = UINT64_MAX, nmapped = 0;
  for (uint64_t u = 0; u < rl.usable_units; u++) {
    ck_assert_msg (remap_remap (e, u, 0, &err) == 0, "remap %" PRIu64 ": %s",
                   u, err.msg);
    struct remap_mapping m = tl_lookup (e, u);
    ck_assert_int_eq (m.state, REMAP_SLOT_MAPPED);
    nmapped++;
    if (m.spare_unit == rs)
      owner = u;
  }
  ck_assert_msg (owner != UINT64_MAX, "no origin unit in spare unit %" PRIu64,
                 rs);
  /* New data for the remapped units (so the origin holds stale bytes),
   * the forgery inside the owner's data. */
  for (uint64_t u = 0; u < rl.usable_units; u++) {
    tl_pattern (expect + u * R_UNIT, R_UNIT, 5000 + u);
    if (u == owner)
      memcpy (expect + u * R_UNIT + (f1 - rs * R_UNIT), forged, f1len);
    ck_assert_int_eq (remap_pwrite (e, expect + u * R_UNIT, R_UNIT,
                                    u * R_UNIT, REMAP_FUA, &err), 0);
  }
  ck_assert_int_eq (remap_close (e), 0);
  remap_backend_close (scratch);

  /* Both real superblocks damaged (one flipped byte each). */
  uint8_t *img = remap_mem_data (spare);
  for (uint32_t i = 0; i < rl.copies; i++)
    img[rl.copy_offset[i] * R_UNIT + 100] ^= 0xff;

  /* Without the forgery this spare is refused; with it, open must not
   * adopt the client's layout. */
  e = NULL;
  memset (&err, 0, sizeof err);
  int r = tl_open (origin, spare, NULL, &e, &err);
  if (r == 0) {
    struct remap_info info;
    remap_get_info (e, &info);
    bool real = info.layout.unit == R_UNIT;
    uint64_t bad = 0;
    for (uint64_t u = 0; u < ounits; u++) {
      memset (&err, 0, sizeof err);
      if (remap_pread (e, buf, R_UNIT, u * R_UNIT, &err) != 0
          || memcmp (buf, expect + u * R_UNIT, R_UNIT) != 0)
        bad++;
    }
    remap_close (e);
    uint8_t b0[REMAP_SB_SIZE];
    struct remap_sb sb0;
    memcpy (b0, remap_mem_data (spare), REMAP_SB_SIZE);
    bool f_at_0 = remap_sb_decode (b0, REMAP_SB_SIZE, &sb0, NULL) == 0
      && sb0.layout.unit == F_UNIT;
    ck_assert_msg (real && bad == 0,
                   "open adopted a forged layout (unit %u, %u copies) "
                   "planted by a client in spare unit %" PRIu64 ": %" PRIu64
                   " of %" PRIu64 " units read wrong data (%" PRIu64
                   " were remapped); byte 0 now holds the forged "
                   "superblock: %s", info.layout.unit, info.layout.copies,
                   rs, bad, ounits, nmapped, f_at_0 ? "yes" : "no");
  }
  else
    ck_assert_msg (r == -EUCLEAN, "open: %d %s", r, err.msg);
  free (buf);
  free (expect);
  remap_backend_close (origin);
  remap_backend_close (spare);
}
END_TEST

static Suite *
suite (void)
{
  Suite *s = suite_create ("adversary2");
  TCase *tc = tcase_create ("discovery");
  tcase_add_test (tc, test_forgery_inside_sb_unit);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return tl_run (suite ());
}
