/* Tests of the logit comparison of a sharded run against the baseline
 * (ryz_compare_logits, ryz_compare_near_tie; DESIGN section 4.3). */
#define _POSIX_C_SOURCE 200809L
#include "ryz/suite.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { ROWS = 3, VOCAB = 64 };
#define ATOL 1e-4
#define RTOL 1e-4

static float base[ROWS * VOCAB], cand[ROWS * VOCAB];

/* Baseline rows with a clear top-1 (column 5 + row, value 8) and values in
 * [-4, 4) elsewhere, so every row's range is 8; the candidate a copy. */
static void setup(void) {
    for (int r = 0; r < ROWS; r++)
        for (int v = 0; v < VOCAB; v++)
            base[r * VOCAB + v] = (float)((v * 37 + r * 11) % 64) / 8.0f - 4.0f;
    for (int r = 0; r < ROWS; r++)
        base[r * VOCAB + 5 + r] = 8.0f;
    memcpy(cand, base, sizeof cand);
}

/* The tolerance of one baseline element: atol * row range + rtol * |b|. */
static double tol_at(int row, int col) {
    double range = 0;
    for (int v = 0; v < VOCAB; v++)
        range = fmax(range, fabs(base[row * VOCAB + v]));
    return ATOL * range + RTOL * fabs(base[row * VOCAB + col]);
}

/* Compares cand against base with the default tolerance. */
static ryz_compare compare(void) {
    ryz_compare c;
    memset(&c, 0x5a, sizeof c);
    ryz_compare_logits(base, cand, ROWS, VOCAB, ATOL, RTOL, &c);
    return c;
}

/* Asserts the worst element is (row, col) with the given values. */
static void assert_worst(const ryz_compare *c, int row, int col, double b, double a) {
    ck_assert_msg(c->worst_row == row && c->worst_col == col,
                  "worst at (%d, %d), expected (%d, %d)", c->worst_row, c->worst_col, row, col);
    ck_assert_msg((c->worst_base == b || (isnan(b) && isnan(c->worst_base))) &&
                      (c->worst_cand == a || (isnan(a) && isnan(c->worst_cand))),
                  "worst values baseline %.9g candidate %.9g, expected %.9g and %.9g",
                  c->worst_base, c->worst_cand, b, a);
}

START_TEST(test_identical) {
    ryz_compare c = compare();
    ck_assert_int_eq(c.pass, 1);
    ck_assert_int_eq(c.rows, ROWS);
    ck_assert_msg(c.max_abs == 0 && c.max_rel == 0, "max_abs %g max_rel %g", c.max_abs, c.max_rel);
    ck_assert_msg(fabs(c.min_cos - 1.0) < 1e-12, "min_cos %.15f", c.min_cos);
    ck_assert_int_eq(c.top1_agree, ROWS);
    ck_assert_int_eq(c.top1_real_mismatch, 0);
    ck_assert_int_eq(c.out_of_tol, 0);
}
END_TEST

/* Moves cand (row, col) by `factor` times its tolerance and compares. */
static ryz_compare perturbed(int row, int col, double factor) {
    float b = base[row * VOCAB + col];
    cand[row * VOCAB + col] = (float)(b + factor * tol_at(row, col));
    return compare();
}

START_TEST(test_just_inside_tolerance) {
    ryz_compare c = perturbed(1, 20, 0.95);
    ck_assert_msg(c.pass == 1 && c.out_of_tol == 0, "pass %d, %d out of tolerance", c.pass,
                  c.out_of_tol);
    assert_worst(&c, 1, 20, base[VOCAB + 20], cand[VOCAB + 20]);
    double d = fabs((double)cand[VOCAB + 20] - base[VOCAB + 20]);
    ck_assert_msg(fabs(c.max_abs - d) < 1e-12, "max_abs %.9g, expected %.9g", c.max_abs, d);
    ck_assert_msg(fabs(c.max_rel - d / 8.0) < 1e-12, "max_rel %.9g, expected %.9g", c.max_rel,
                  d / 8.0);
    ck_assert_msg(c.min_cos > 0.999999 && c.min_cos <= 1.0 + 1e-12, "min_cos %.15f", c.min_cos);
}
END_TEST

START_TEST(test_just_outside_tolerance) {
    perturbed(0, 3, 0.5); /* a smaller error elsewhere */
    ryz_compare c = perturbed(2, 40, -1.05);
    ck_assert_int_eq(c.pass, 0);
    ck_assert_int_eq(c.out_of_tol, 1);
    ck_assert_int_eq(c.top1_real_mismatch, 0);
    ck_assert_int_eq(c.top1_agree, ROWS);
    assert_worst(&c, 2, 40, base[2 * VOCAB + 40], cand[2 * VOCAB + 40]);
}
END_TEST

START_TEST(test_tolerance_scales_with_range) {
    /* The same absolute error passes in a row of range 8 scaled by 1000. */
    for (int i = 0; i < ROWS * VOCAB; i++)
        base[i] *= 1000.0f, cand[i] = base[i];
    cand[7] += 0.5f; /* atol * range = 0.8 */
    ryz_compare c = compare();
    ck_assert_int_eq(c.pass, 1);
    ck_assert_msg(fabs(c.max_rel - 0.5 / 8000.0) < 1e-9, "max_rel %.9g", c.max_rel);
}
END_TEST

START_TEST(test_nan_fails) {
    cand[VOCAB + 9] = NAN;
    ryz_compare c = compare();
    ck_assert_int_eq(c.pass, 0);
    ck_assert_int_ge(c.out_of_tol, 1);
    ck_assert_msg(isinf(c.max_abs) || isnan(c.max_abs), "max_abs %g", c.max_abs);
    assert_worst(&c, 1, 9, base[VOCAB + 9], NAN);
    ck_assert_msg(!(c.min_cos > 0.5), "min_cos %g with a NaN row", c.min_cos);
}
END_TEST

START_TEST(test_nan_in_baseline_fails) {
    base[2 * VOCAB + 3] = NAN;
    ryz_compare c = compare();
    ck_assert_int_eq(c.pass, 0);
    ck_assert_int_ge(c.out_of_tol, 1);
    assert_worst(&c, 2, 3, NAN, cand[2 * VOCAB + 3]);
}
END_TEST

START_TEST(test_cosine_of_equal_special_rows) {
    for (int v = 0; v < VOCAB; v++) base[v] = cand[v] = 0.0f;
    base[VOCAB + 7] = cand[VOCAB + 7] = -INFINITY;
    ryz_compare c = compare();
    ck_assert_int_eq(c.pass, 1);
    ck_assert_msg(c.min_cos > 1 - 1e-12, "min_cos %.17g for identical rows", c.min_cos);
}
END_TEST

START_TEST(test_top1_flip_at_near_tie) {
    /* Row 1: top-1 8 at column 6, runner-up just below at column 30; the
     * candidate swaps them by less than the tolerance. */
    double t = tol_at(1, 6);
    base[VOCAB + 30] = (float)(8.0 - 0.5 * t);
    cand[VOCAB + 30] = (float)(8.0 + 0.2 * t);
    cand[VOCAB + 6] = (float)(8.0 - 0.2 * t);
    ck_assert_int_eq(ryz_compare_near_tie(base + VOCAB, VOCAB, ATOL, RTOL), 1);
    ryz_compare c = compare();
    ck_assert_int_eq(c.out_of_tol, 0);
    ck_assert_int_eq(c.top1_agree, ROWS - 1);
    ck_assert_int_eq(c.top1_real_mismatch, 0);
    ck_assert_int_eq(c.pass, 1);
}
END_TEST

START_TEST(test_top1_flip_at_large_margin) {
    /* Row 2: top-1 8 at column 7, runner-up far below; candidate's argmax moves. */
    cand[2 * VOCAB + 50] = 9.0f;
    ck_assert_int_eq(ryz_compare_near_tie(base + 2 * VOCAB, VOCAB, ATOL, RTOL), 0);
    ryz_compare c = compare();
    ck_assert_int_eq(c.top1_agree, ROWS - 1);
    ck_assert_int_eq(c.top1_real_mismatch, 1);
    ck_assert_int_eq(c.pass, 0);
    assert_worst(&c, 2, 50, base[2 * VOCAB + 50], 9.0);
    /* A flip fails even when every element is inside the tolerance: with
     * rtol 2 and atol 0, -100 -> 2 is within 2 * |b| but overtakes the top-1
     * (1) whose own margin bound is only 2 * 2 * 1. */
    float b[VOCAB], a[VOCAB];
    for (int v = 0; v < VOCAB; v++)
        b[v] = -100.0f;
    b[7] = 1.0f;
    memcpy(a, b, sizeof a);
    a[50] = 2.0f;
    ryz_compare_logits(b, a, 1, VOCAB, 0.0, 2.0, &c);
    ck_assert_int_eq(c.out_of_tol, 0);
    ck_assert_int_eq(c.top1_real_mismatch, 1);
    ck_assert_int_eq(c.pass, 0);
}
END_TEST

START_TEST(test_cosine) {
    /* Row 0 negated: cosine -1; rows 1, 2 untouched. */
    for (int v = 0; v < VOCAB; v++)
        cand[v] = -base[v];
    ryz_compare c = compare();
    ck_assert_msg(fabs(c.min_cos + 1.0) < 1e-9, "min_cos %.12f, expected -1", c.min_cos);
    ck_assert_int_eq(c.pass, 0);
    /* Row 1 scaled by 2: cosine 1, but out of tolerance. */
    setup();
    for (int v = 0; v < VOCAB; v++)
        cand[VOCAB + v] = 2.0f * base[VOCAB + v];
    c = compare();
    ck_assert_msg(fabs(c.min_cos - 1.0) < 1e-9, "min_cos %.12f, expected 1", c.min_cos);
    ck_assert_int_eq(c.pass, 0);
    ck_assert_int_eq(c.worst_row, 1);
    ck_assert_int_eq(c.top1_agree, ROWS);
}
END_TEST

START_TEST(test_no_rows) {
    ryz_compare c;
    ryz_compare_logits(base, cand, 0, VOCAB, ATOL, RTOL, &c);
    ck_assert_int_eq(c.pass, 1);
    ck_assert_int_eq(c.rows, 0);
    ck_assert(c.min_cos == 1.0);
}
END_TEST

START_TEST(test_near_tie) {
    /* Row of range 10: bound = 2 * (1e-4 * 10 + 1e-4 * 10) = 4e-3. */
    float row[6] = {1.0f, 10.0f, -10.0f, 9.99f, 0.0f, 3.0f};
    ck_assert_int_eq(ryz_compare_near_tie(row, 6, ATOL, RTOL), 0); /* margin 1e-2 */
    row[3] = 9.997f;                                               /* margin 3e-3 */
    ck_assert_int_eq(ryz_compare_near_tie(row, 6, ATOL, RTOL), 1);
    row[3] = 9.995f; /* margin 5e-3 */
    ck_assert_int_eq(ryz_compare_near_tie(row, 6, ATOL, RTOL), 0);
    ck_assert_int_eq(ryz_compare_near_tie(row, 6, 0, 0), 0);
    row[3] = 10.0f; /* exact tie */
    ck_assert_int_eq(ryz_compare_near_tie(row, 6, 0, 0), 1);
    /* Top-1 first or last, and negative rows. */
    const float first[4] = {5.0f, 4.9999f, 1.0f, 0.0f}, last[4] = {0.0f, 1.0f, 4.9999f, 5.0f};
    ck_assert_int_eq(ryz_compare_near_tie(first, 4, ATOL, RTOL), 1);
    ck_assert_int_eq(ryz_compare_near_tie(last, 4, ATOL, RTOL), 1);
    const float neg[3] = {-3.0f, -2.0f, -2.5f};
    ck_assert_int_eq(ryz_compare_near_tie(neg, 3, ATOL, RTOL), 0);
    ck_assert_int_eq(ryz_compare_near_tie(neg, 3, 0.2, 0), 1); /* bound 2 * 0.2 * 3 */
    /* A single logit has no runner-up. */
    ck_assert_int_eq(ryz_compare_near_tie(first, 1, ATOL, RTOL), 0);
}
END_TEST

static Suite *compare_suite(void) {
    Suite *s = suite_create("compare");
    TCase *tc = tcase_create("compare");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_identical);
    tcase_add_test(tc, test_just_inside_tolerance);
    tcase_add_test(tc, test_just_outside_tolerance);
    tcase_add_test(tc, test_tolerance_scales_with_range);
    tcase_add_test(tc, test_nan_fails);
    tcase_add_test(tc, test_nan_in_baseline_fails);
    tcase_add_test(tc, test_cosine_of_equal_special_rows);
    tcase_add_test(tc, test_top1_flip_at_near_tie);
    tcase_add_test(tc, test_top1_flip_at_large_margin);
    tcase_add_test(tc, test_cosine);
    tcase_add_test(tc, test_no_rows);
    tcase_add_test(tc, test_near_tie);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return test_run_suite(compare_suite());
}
