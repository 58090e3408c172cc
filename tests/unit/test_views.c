/* Unit tests: the admin renderers (admin/map.c, admin/prom.c) over plain
 * structs, no engine.
 *
 * map: the layout's arithmetic at the edges (one unit, a last cell that is
 * shorter, an origin of 2^40 units, more cells offered than units), the
 * worst state winning in a cell whatever the run order, and runs that lie
 * outside the origin refused with a message.  prom: label escaping of
 * quotes, backslashes, newlines, control bytes and bytes that are not
 * UTF-8, and a NULL label refused.
 */

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "map.h"
#include "prom.h"

static struct remap_map_input
input (uint64_t units, const struct remap_map_run *runs, size_t n)
{
  struct remap_map_input in = {
    .origin = "o", .origin_size = units * 4096, .unit = 4096, .units = units,
    .runs = runs, .nruns = n,
  };
  return in;
}

START_TEST (test_layout_edges)
{
  struct remap_map_grid g;
  struct remap_error err = { 0 };
  struct remap_map_input in = input (1, NULL, 0);

  ck_assert_int_eq (remap_map_layout (&in, 80, 20, &g, &err), 0);
  ck_assert_uint_eq (g.ncells, 1);
  ck_assert_uint_eq (g.columns, 1);
  ck_assert_uint_eq (g.rows, 1);
  ck_assert_uint_eq (g.units_per_cell, 1);
  remap_map_grid_free (&g);

  /* 10 units in at most 3x1 cells: 4 per cell, the last holds 2. */
  struct remap_map_run last = { 9, 1, REMAP_MAP_PENDING };
  in = input (10, &last, 1);
  ck_assert_int_eq (remap_map_layout (&in, 3, 1, &g, &err), 0);
  ck_assert_uint_eq (g.units_per_cell, 4);
  ck_assert_uint_eq (g.ncells, 3);
  ck_assert_int_eq (g.cell[2], REMAP_MAP_PENDING);
  ck_assert_uint_eq (g.count[REMAP_MAP_OK], 2);
  remap_map_grid_free (&g);

  /* 2^40 units in 80x20: no overflow, every unit covered. */
  struct remap_map_run end = { (UINT64_C (1) << 40) - 1, 1, REMAP_MAP_LOST };
  in = input (UINT64_C (1) << 40, &end, 1);
  ck_assert_int_eq (remap_map_layout (&in, 80, 20, &g, &err), 0);
  ck_assert_uint_le (g.ncells, 1600);
  ck_assert_uint_ge (g.ncells * g.units_per_cell, UINT64_C (1) << 40);
  ck_assert_uint_lt ((g.ncells - 1) * g.units_per_cell, UINT64_C (1) << 40);
  ck_assert_int_eq (g.cell[g.ncells - 1], REMAP_MAP_LOST);
  remap_map_grid_free (&g);

  /* 0 columns or rows count as 1. */
  in = input (5, NULL, 0);
  ck_assert_int_eq (remap_map_layout (&in, 0, 0, &g, &err), 0);
  ck_assert_uint_eq (g.ncells, 1);
  ck_assert_uint_eq (g.units_per_cell, 5);
  remap_map_grid_free (&g);
}
END_TEST

START_TEST (test_worst_wins)
{
  /* Every order of the same runs in one cell gives the worst. */
  struct remap_map_run r[3] = {
    { 0, 1, REMAP_MAP_REMAPPED }, { 1, 1, REMAP_MAP_LOST },
    { 2, 1, REMAP_MAP_PENDING },
  };
  static const int perm[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
                                  { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
  for (int p = 0; p < 6; p++) {
    struct remap_map_run v[3] = { r[perm[p][0]], r[perm[p][1]],
                                  r[perm[p][2]] };
    struct remap_map_input in = input (8, v, 3);
    struct remap_map_grid g;
    struct remap_error err = { 0 };
    ck_assert_int_eq (remap_map_layout (&in, 2, 1, &g, &err), 0);
    ck_assert_uint_eq (g.units_per_cell, 4);
    ck_assert_int_eq (g.cell[0], REMAP_MAP_LOST);
    ck_assert_int_eq (g.cell[1], REMAP_MAP_OK);
    ck_assert_uint_eq (g.units[REMAP_MAP_OK], 5);
    remap_map_grid_free (&g);
  }
  /* Pending beats remapped. */
  struct remap_map_run q[2] = { { 0, 1, REMAP_MAP_PENDING },
                                { 1, 1, REMAP_MAP_REMAPPED } };
  struct remap_map_input in = input (2, q, 2);
  struct remap_map_grid g;
  struct remap_error err = { 0 };
  ck_assert_int_eq (remap_map_layout (&in, 1, 1, &g, &err), 0);
  ck_assert_int_eq (g.cell[0], REMAP_MAP_PENDING);
  remap_map_grid_free (&g);
}
END_TEST

START_TEST (test_bad_runs)
{
  struct remap_map_grid g;
  struct remap_error err = { 0 };
  struct remap_map_run past = { 10, 1, REMAP_MAP_REMAPPED };
  struct remap_map_run wrap = { 5, UINT64_MAX, REMAP_MAP_REMAPPED };
  struct remap_map_run empty = { 0, 0, REMAP_MAP_REMAPPED };
  struct remap_map_run state = { 0, 1, (enum remap_map_state) 9 };
  struct remap_map_input in = input (10, &past, 1);

  ck_assert_int_eq (remap_map_layout (&in, 4, 4, &g, &err), -EINVAL);
  ck_assert_msg (strstr (err.msg, "outside the origin") != NULL, "%s",
                 err.msg);
  ck_assert_ptr_null (g.cell);
  in.runs = &wrap;
  ck_assert_int_eq (remap_map_layout (&in, 4, 4, &g, &err), -EINVAL);
  in.runs = &empty;
  ck_assert_int_eq (remap_map_layout (&in, 4, 4, &g, &err), -EINVAL);
  in.runs = &state;
  remap_error_clear (&err);     /* the first message set is kept */
  ck_assert_int_eq (remap_map_layout (&in, 4, 4, &g, &err), -EINVAL);
  ck_assert_msg (strstr (err.msg, "unknown state") != NULL, "%s", err.msg);
  in = input (0, NULL, 0);
  ck_assert_int_eq (remap_map_layout (&in, 4, 4, &g, &err), -EINVAL);
}
END_TEST

START_TEST (test_prom_escape)
{
  struct remap_buf b = { 0 };
  /* quote, backslash, newline, tab, DEL, a lone continuation byte, an
   * overlong encoding of '/', then valid UTF-8 (é, €). */
  ck_assert_int_eq (remap_prom_escape_label (&b, "a\"b\\c\nd\te\x7f"
                                             "f\x80g\xc0\xafh\xc3\xa9\xe2"
                                             "\x82\xac"), 0);
  ck_assert_str_eq (b.data, "a\\\"b\\\\c\\nd?e?f?g??h\xc3\xa9\xe2\x82\xac");
  remap_buf_free (&b);

  struct remap_prom_status st = { .origin = "o", .spare = NULL,
                                  .state = "healthy" };
  ck_assert_int_eq (remap_prom_render (&st, &b), -EINVAL);
  st.spare = "s";
  ck_assert_int_eq (remap_prom_render (&st, &b), 0);
  ck_assert_ptr_nonnull (strstr (b.data, "remap_state{origin=\"o\",spare="
                                 "\"s\",state=\"healthy\"} 1\n"));
  ck_assert_ptr_nonnull (strstr (b.data, "# TYPE remap_read_errors_total "
                                 "counter\n"));
  remap_buf_free (&b);
}
END_TEST

static Suite *
suite (void)
{
  Suite *s = suite_create ("admin");
  TCase *tc = tcase_create ("render");
  tcase_add_test (tc, test_layout_edges);
  tcase_add_test (tc, test_worst_wins);
  tcase_add_test (tc, test_bad_runs);
  tcase_add_test (tc, test_prom_escape);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  SRunner *sr = srunner_create (suite ());
  srunner_run_all (sr, CK_NORMAL);
  int nf = srunner_ntests_failed (sr);
  srunner_free (sr);
  return nf == 0 ? 0 : 1;
}
