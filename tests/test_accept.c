/* Tests of acceptance gating: [acceptance] parsing, evaluation against
 * results, JUnit XML (well-formed, one testcase per check), and the CLI. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "ryz/suite.h"

static const char *SUITE_TEXT =
    "[suite]\nname = acc\n"
    "[acceptance]\n"
    "min_speedup = 2:1.8 4:3.8\nmin_efficiency = 0.9\nmax_allreduce_p99_us = 5000\n"
    "max_comm_fraction = 0.1\nmin_memory_efficiency = 0.95\nmax_logit_error = 1e-4\n"
    "[case a]\nmodel = synthetic:tiny\nprompt = 1 2\ntp = 1 2 4\n";

/* Results of case a at TP 1, 2, 4: TP 2 meets every threshold, TP 4 misses
 * the speedup (3.0 < 3.8) and the efficiency (0.75 < 0.9). */
static void make_results(ryz_results *r, int oversubscribed) {
    ryz_results_init(r);
    r->meta.oversubscribed = oversubscribed;
    for (int tp = 1; tp <= 4; tp *= 2) {
        ryz_row_correctness c = {.case_name = "a", .tp = tp, .max_abs = 1e-6, .pass = 1};
        ryz_results_add_correctness(r, &c);
        double sp = tp == 4 ? 3.0 : tp == 2 ? 1.9 : 1.0;
        ryz_row_timing t = {.case_name = "a", .tp = tp, .phase = "decode", .speedup = sp,
                            .efficiency = sp / tp, .comm_fraction = 0.05};
        ryz_results_add_timing(r, &t);
        ryz_row_collective k = {.case_name = "a", .tp = tp, .op = "all_reduce", .bytes = 1024,
                                .p99_us = 40};
        ryz_results_add_collective(r, &k);
        ryz_row_memory m = {.case_name = "a", .tp = tp, .mem_efficiency = 0.99};
        ryz_results_add_memory(r, &m);
    }
}

/* The check named `check` at tp, or NULL. */
static const ryz_check *find(const ryz_checks *c, int tp, const char *check) {
    for (int i = 0; i < c->n; i++)
        if (c->checks[i].tp == tp && !strcmp(c->checks[i].check, check)) return &c->checks[i];
    return NULL;
}

START_TEST(test_parse_acceptance) {
    ryz_suite s;
    ck_assert_msg(ryz_suite_parse(SUITE_TEXT, "acc.ini", &s) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_int_eq(s.acc.present, 1);
    ck_assert_int_eq(s.acc.n_min_speedup, 2);
    ck_assert_int_eq(s.acc.min_speedup[1].tp, 4);
    ck_assert(s.acc.min_speedup[1].value == 3.8);
    ck_assert_int_eq(s.acc.min_efficiency[0].tp, 0); /* every TP > 1 */
    ck_assert(s.acc.max_comm_fraction == 0.1 && s.acc.max_logit_error == 1e-4);
    ck_assert(isnan(s.acc.allreduce_bytes) == 0 && s.acc.allreduce_bytes == 0);
    ryz_suite_free(&s);
    const char *bad[][2] = {
        {"[acceptance]\nmin_speedup = 4:\n", "bad value in min_speedup"},
        {"[acceptance]\nmin_speedup = x:3\n", "bad TP 'x'"},
        {"[acceptance]\nmax_comm = 0.1\n", "unknown key 'max_comm' in [acceptance]"},
        {"[acceptance]\n[acceptance]\n", "duplicate [acceptance]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "%s[case a]\nmodel = m\nprompt = 1\n", bad[i][0]);
        ck_assert_int_eq(ryz_suite_parse(text, "x.ini", &s), RYZ_EINVAL);
        ck_assert_msg(strstr(ryz_last_error(), bad[i][1]), "'%s' gave '%s'", bad[i][0],
                      ryz_last_error());
    }
}
END_TEST

START_TEST(test_evaluate) {
    ryz_suite s;
    ryz_results r;
    ryz_checks c;
    ck_assert(ryz_suite_parse(SUITE_TEXT, "acc.ini", &s) == RYZ_OK);
    make_results(&r, 0);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    /* per TP: tolerance + logit error; per TP > 1: 5 thresholds */
    ck_assert_int_eq(c.n, 3 * 2 + 2 * 5);
    ck_assert_int_eq(c.failed, 2);
    ck_assert(find(&c, 2, "speedup")->pass && !find(&c, 4, "speedup")->pass);
    ck_assert(!find(&c, 4, "efficiency")->pass && find(&c, 4, "allreduce_p99_us")->pass);
    ck_assert(find(&c, 4, "speedup")->measured == 3.0 && find(&c, 4, "speedup")->threshold == 3.8);
    ryz_checks_free(&c);
    r.correctness[1].pass = 0; /* a correctness failure is always a failed check */
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ck_assert_int_eq(c.failed, 3);
    ryz_checks_free(&c);
    ryz_results_free(&r);
    make_results(&r, 1); /* oversubscribed: timing skipped, memory still checked */
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ck_assert_int_eq(c.failed, 0);
    ck_assert_int_eq(c.skipped, 2 * 4);
    ck_assert(!find(&c, 4, "memory_efficiency")->skipped);
    ryz_checks_free(&c);
    ryz_results_free(&r);
    ryz_suite_free(&s);
}
END_TEST

/* Number of occurrences of needle in the file at path. */
static int count_in_file(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    ck_assert(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        for (char *p = line; (p = strstr(p, needle)); p++) n++;
    fclose(f);
    return n;
}

START_TEST(test_junit) {
    ryz_suite s;
    ryz_results r;
    ryz_checks c;
    char path[] = "/tmp/ryz_junit_XXXXXX";
    close(mkstemp(path));
    ck_assert(ryz_suite_parse(SUITE_TEXT, "acc.ini", &s) == RYZ_OK);
    make_results(&r, 0);
    snprintf(r.correctness[0].case_name, sizeof r.correctness[0].case_name, "a<&>\"'");
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ck_assert_int_eq(ryz_checks_write_junit(&c, "acc", path), RYZ_OK);
    ck_assert_int_eq(count_in_file(path, "<testcase "), c.n);
    ck_assert_int_eq(count_in_file(path, "<failure "), c.failed);
    ck_assert_int_eq(count_in_file(path, "measured 3, threshold &gt;= 3.8"), 2);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v xmllint >/dev/null || exit 0; xmllint --noout %s", path);
    ck_assert_msg(system(cmd) == 0, "xmllint rejects %s", path);
    ck_assert_int_eq(ryz_checks_write_junit(&c, "acc", "/nonexistent/dir/j.xml"), RYZ_EIO);
    unlink(path);
    ryz_checks_free(&c);
    ryz_results_free(&r);
    ryz_suite_free(&s);
}
END_TEST

/* `ryz suite suites/ci.ini --junit F`: exit 0, a well-formed file whose
 * testcase count matches the checks the run printed. */
START_TEST(test_cli_junit) {
    const char *bin = getenv("RYZ_BIN") ? getenv("RYZ_BIN") : "build/ryz";
    char xml[] = "/tmp/ryz_junit_cli_XXXXXX", h5[] = "/tmp/ryz_junit_h5_XXXXXX", cmd[512];
    close(mkstemp(xml)), close(mkstemp(h5));
    snprintf(cmd, sizeof cmd, "%s suite suites/ci.ini --quiet -o %s --junit %s", bin, h5, xml);
    FILE *p = popen(cmd, "r");
    char line[512];
    int checks = -1;
    while (fgets(line, sizeof line, p)) sscanf(line, "acceptance: %d checks", &checks);
    int st = pclose(p);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "suite exit %d", WEXITSTATUS(st));
    ck_assert_msg(checks > 0 && count_in_file(xml, "<testcase ") == checks,
                  "%d checks printed, %d testcases", checks, count_in_file(xml, "<testcase "));
    snprintf(cmd, sizeof cmd, "command -v xmllint >/dev/null || exit 0; xmllint --noout %s", xml);
    ck_assert_int_eq(system(cmd), 0);
    unlink(xml), unlink(h5);
}
END_TEST

int main(void) {
    Suite *s = suite_create("accept");
    TCase *tc = tcase_create("accept");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_parse_acceptance);
    tcase_add_test(tc, test_evaluate);
    tcase_add_test(tc, test_junit);
    tcase_add_test(tc, test_cli_junit);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
