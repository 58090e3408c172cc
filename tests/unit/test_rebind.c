/* remap_rebind (core/rebind.c) on spares whose superblocks are written
 * here by hand (remap_sb_encode at every copy's place), so that these
 * tests do not depend on format or open:
 *
 *  - every copy gets the new identity and label, sb_generation + 1, the
 *    rest of its superblock unit zero; no other byte of the spare changes;
 *  - a version 1 spare, an origin of another size: refused, nothing
 *    written;
 *  - a crash at every write: each copy holds the old or the new
 *    superblock, no copy but 0 holds the new one unless copy 0 does, and
 *    discover picks the new one exactly when copy 0 has it.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remap/backend.h"
#include "remap/layout.h"
#include "remap/meta.h"
#include "remap/remap.h"
#include "../../core/discover.h"

#define SPARE_SIZE (4u << 20)
#define ORIGIN_SIZE (8u << 20)
#define UNIT 4096u

/* Write the superblocks of a spare formatted for an origin of ORIGIN_SIZE
 * with identity "file:old", version v; the other bytes are a pattern. */
static void
hand_format (struct remap_backend *spare, uint32_t v, struct remap_sb *out)
{
  struct remap_sb sb = { 0 };
  struct remap_error err = { 0 };
  uint8_t *d = remap_mem_data (spare);

  for (size_t i = 0; i < SPARE_SIZE; i++)
    d[i] = (uint8_t) (i * 7 + 3);
  ck_assert_int_eq (remap_layout_compute_version (v, SPARE_SIZE, UNIT,
                                                  REMAP_STRATEGY_AUTO, 0,
                                                  &sb.layout, &err), 0);
  sb.version = v;
  memset (sb.uuid, 0x42, 16);
  sb.origin_size = ORIGIN_SIZE;
  sb.spare_size = sb.layout.spare_units * UNIT;
  sb.origin_units = ORIGIN_SIZE / UNIT;
  sb.lost_granule = remap_lost_granule (UNIT);
  sb.format_time = 1700000000;
  sb.sb_generation = 1;
  snprintf (sb.origin_label, sizeof sb.origin_label, "/old/origin.img");
  if (v == 2)
    snprintf (sb.origin_id, sizeof sb.origin_id, "file:old");
  for (uint32_t i = 0; i < sb.layout.copies; i++) {
    struct remap_sb c = sb;
    c.copy_index = i;
    memset (d + sb.layout.copy_offset[i] * UNIT, 0, UNIT);
    remap_sb_encode (&c, d + sb.layout.copy_offset[i] * UNIT);
  }
  *out = sb;
}

/* Decode copy i's superblock from the bytes d. */
static int
copy_sb (const uint8_t *d, const struct remap_sb *sb, uint32_t i,
         struct remap_sb *c)
{
  struct remap_error err = { 0 };
  uint64_t off = sb->layout.copy_offset[i] * UNIT;
  return sb_decode_at (d + off, off, c, &err);
}

static bool
is_sb_unit (const struct remap_sb *sb, uint64_t u)
{
  for (uint32_t i = 0; i < sb->layout.copies; i++)
    if (sb->layout.copy_offset[i] == u)
      return true;
  return false;
}

START_TEST (test_rebind_all_copies)
{
  struct remap_backend *spare, *origin;
  struct remap_error err = { 0 };
  struct remap_sb sb, c;

  ck_assert_int_eq (remap_mem_create (SPARE_SIZE, &spare), 0);
  ck_assert_int_eq (remap_mem_create (ORIGIN_SIZE, &origin), 0);
  hand_format (spare, 2, &sb);
  ck_assert_uint_ge (sb.layout.copies, 2);
  uint8_t *before = malloc (SPARE_SIZE);
  memcpy (before, remap_mem_data (spare), SPARE_SIZE);

  remap_backend_set_identity (origin, "file:new,ino=7");
  snprintf (origin->name, sizeof origin->name, "/new/origin-copy.img");
  ck_assert_msg (remap_rebind (origin, spare, &err) == 0, "%s", err.msg);

  const uint8_t *d = remap_mem_data (spare);
  for (uint32_t i = 0; i < sb.layout.copies; i++) {
    ck_assert_int_eq (copy_sb (d, &sb, i, &c), 0);
    ck_assert_uint_eq (c.sb_generation, 2);
    ck_assert_str_eq (c.origin_id, "file:new,ino=7");
    ck_assert_str_eq (c.origin_label, "/new/origin-copy.img");
    ck_assert_int_eq (memcmp (c.uuid, sb.uuid, 16), 0);
    ck_assert_uint_eq (c.origin_size, sb.origin_size);
    ck_assert_uint_eq (c.format_time, sb.format_time);
    ck_assert_uint_eq (c.copy_index, i);
    const uint8_t *u = d + sb.layout.copy_offset[i] * UNIT;
    for (uint32_t k = REMAP_SB_SIZE; k < UNIT; k++)
      ck_assert_msg (u[k] == 0, "copy %u: byte %u of its unit not zero", i,
                     k);
  }
  for (uint64_t u = 0; u < SPARE_SIZE / UNIT; u++)
    if (!is_sb_unit (&sb, u))
      ck_assert_msg (memcmp (d + u * UNIT, before + u * UNIT, UNIT) == 0,
                     "unit %llu changed", (unsigned long long) u);

  /* Again: the generation keeps rising. */
  ck_assert_int_eq (remap_rebind (origin, spare, &err), 0);
  ck_assert_int_eq (copy_sb (d, &sb, 0, &c), 0);
  ck_assert_uint_eq (c.sb_generation, 3);
  free (before);
  remap_backend_close (spare);
  remap_backend_close (origin);
}
END_TEST

START_TEST (test_rebind_refusals)
{
  struct remap_backend *spare, *origin, *small;
  struct remap_error err = { 0 };
  struct remap_sb sb;

  ck_assert_int_eq (remap_mem_create (SPARE_SIZE, &spare), 0);
  ck_assert_int_eq (remap_mem_create (ORIGIN_SIZE, &origin), 0);
  ck_assert_int_eq (remap_mem_create (ORIGIN_SIZE / 2, &small), 0);
  uint8_t *before = malloc (SPARE_SIZE);

  hand_format (spare, 1, &sb);
  memcpy (before, remap_mem_data (spare), SPARE_SIZE);
  ck_assert_int_eq (remap_rebind (origin, spare, &err), -EOPNOTSUPP);
  ck_assert_msg (strstr (err.msg, "version 1") != NULL, "%s", err.msg);
  ck_assert (memcmp (before, remap_mem_data (spare), SPARE_SIZE) == 0);

  hand_format (spare, 2, &sb);
  memcpy (before, remap_mem_data (spare), SPARE_SIZE);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_rebind (small, spare, &err), -ENODEV);
  ck_assert_msg (strstr (err.msg, "8388608 bytes") != NULL, "%s", err.msg);
  ck_assert (memcmp (before, remap_mem_data (spare), SPARE_SIZE) == 0);

  /* No metadata at all. */
  memset (remap_mem_data (spare), 0, SPARE_SIZE);
  remap_error_clear (&err);
  ck_assert_int_eq (remap_rebind (origin, spare, &err), -ENOMEDIUM);
  free (before);
  remap_backend_close (spare);
  remap_backend_close (origin);
  remap_backend_close (small);
}
END_TEST

START_TEST (test_rebind_crash_at_every_write)
{
  struct remap_backend *spare, *origin, *view, *f;
  struct remap_error err = { 0 };
  struct remap_sb sb, c, best;

  ck_assert_int_eq (remap_mem_create (SPARE_SIZE, &spare), 0);
  ck_assert_int_eq (remap_mem_create (ORIGIN_SIZE, &origin), 0);
  remap_backend_set_identity (origin, "file:new");
  hand_format (spare, 2, &sb);
  uint32_t n = sb.layout.copies;
  uint8_t *fresh = malloc (SPARE_SIZE);
  memcpy (fresh, remap_mem_data (spare), SPARE_SIZE);

  for (uint32_t k = 0; k <= n; k++) {
    memcpy (remap_mem_data (spare), fresh, SPARE_SIZE);
    ck_assert_int_eq (remap_mem_share (spare, &view), 0);
    ck_assert_int_eq (remap_fault_create (view, true, &f), 0);
    remap_fault_set_volatile (f, true);
    remap_fault_crash_at (f, k, REMAP_CRASH_DROP_ALL, k);
    remap_error_clear (&err);
    int r = remap_rebind (origin, f, &err);
    ck_assert_int_eq (r != 0, k < n);
    remap_backend_close (f);

    const uint8_t *d = remap_mem_data (spare);
    for (uint32_t i = 0; i < n; i++) {
      ck_assert_msg (copy_sb (d, &sb, i, &c) == 0, "crash %u: copy %u", k, i);
      bool is_new = c.sb_generation == 2;
      ck_assert_msg (is_new == (i < k), "crash at write %u: copy %u is %s",
                     k, i, is_new ? "new" : "old");
      ck_assert_str_eq (c.origin_id, is_new ? "file:new" : "file:old");
    }
    remap_error_clear (&err);
    ck_assert_int_eq (discover (spare, &best, &err), 0);
    ck_assert_str_eq (best.origin_id, k >= 1 ? "file:new" : "file:old");
  }

  /* Copy 0 torn after a crash at write 1 (its new superblock only half
   * there): discover takes the others, all old. */
  memcpy (remap_mem_data (spare), fresh, SPARE_SIZE);
  ck_assert_int_eq (remap_mem_share (spare, &view), 0);
  ck_assert_int_eq (remap_fault_create (view, true, &f), 0);
  remap_fault_crash_at (f, 1, REMAP_CRASH_DROP_ALL, 1);
  remap_error_clear (&err);
  ck_assert_int_ne (remap_rebind (origin, f, &err), 0);
  remap_backend_close (f);
  uint8_t *d0 = remap_mem_data (spare) + sb.layout.copy_offset[0] * UNIT;
  memcpy (d0 + 256, fresh + sb.layout.copy_offset[0] * UNIT + 256, 256);
  ck_assert_int_ne (copy_sb (remap_mem_data (spare), &sb, 0, &c), 0);
  remap_error_clear (&err);
  ck_assert_msg (discover (spare, &best, &err) == 0, "%s", err.msg);
  ck_assert_str_eq (best.origin_id, "file:old");
  free (fresh);
  remap_backend_close (spare);
  remap_backend_close (origin);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("rebind");
  TCase *tc = tcase_create ("rebind");
  tcase_add_test (tc, test_rebind_all_copies);
  tcase_add_test (tc, test_rebind_refusals);
  tcase_add_test (tc, test_rebind_crash_at_every_write);
  suite_add_tcase (s, tc);
  SRunner *sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
