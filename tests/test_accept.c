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
        {"[acceptance]\nmax_collective_ratio = 0\n",
         "x.ini:2: bad value '0' for max_collective_ratio (want a number > 0, e.g. 1.10)"},
        {"[acceptance]\nmax_collective_ratio = -1.1\n",
         "bad value '-1.1' for max_collective_ratio"},
        {"[acceptance]\nmax_collective_ratio = inf\n", "bad value 'inf' for max_collective_ratio"},
        {"[acceptance]\nmin_bandwidth_scaling = fast\n",
         "bad value 'fast' for min_bandwidth_scaling (want a number > 0, e.g. 0.95)"},
        {"[acceptance]\nmin_bandwidth_scaling = 0.95x\n",
         "bad value '0.95x' for min_bandwidth_scaling"},
        {"[acceptance]\nmin_bandwidth_scaling = 1\nmin_bandwidth_scaling = 2\n",
         "x.ini:3: duplicate key 'min_bandwidth_scaling' in [acceptance] (first set at line 2)"},
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

/* A threshold that could never be checked is refused before any run,
 * naming the key, its line and the TP: one for a TP no case runs sharded
 * (TP 1 included), and a TP given twice in one key (one value would
 * silently win). The cases may come after [acceptance]. */
START_TEST(test_parse_impossible_thresholds) {
    const char *bad[][2] = {
        {"min_speedup = 4:1.5", "x.ini:2: min_speedup: no case runs TP 4 (4:1.5), so it would "
                                "never be checked (the cases run TP 2 3;"},
        {"min_efficiency = 2:0.9 8:0.5", "x.ini:2: min_efficiency: no case runs TP 8 (8:0.5)"},
        {"min_speedup = 2:1.5 2:1.7", "x.ini:2: min_speedup gives TP 2 twice (1.5 and 1.7; "
                                      "give each TP once)"},
        {"min_efficiency = 0.9, 0.8", "x.ini:2: min_efficiency gives two values for every TP"},
        {"min_speedup = 1:1.5", "x.ini:2: min_speedup: TP 1 (1:1.5) is the baseline"},
    };
    ryz_suite s;
    char text[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "[acceptance]\n%s\n[case a]\nmodel = m\nprompt = 1\n"
                 "tp = 1 2\n[case b]\nmodel = m\nprompt = 1\ntp = 3\n", bad[i][0]);
        ck_assert_int_eq(ryz_suite_parse(text, "x.ini", &s), RYZ_EINVAL);
        ck_assert_msg(strstr(ryz_last_error(), bad[i][1]), "'%s' gave '%s'", bad[i][0],
                      ryz_last_error());
    }
    snprintf(text, sizeof text, "[acceptance]\nmin_speedup = 2:1.5 3:2\nmin_efficiency = 0.9\n"
             "[case a]\nmodel = m\nprompt = 1\ntp = 1 2 3\n");
    ck_assert_msg(ryz_suite_parse(text, "x.ini", &s) == RYZ_OK, "%s", ryz_last_error());
    ryz_suite_free(&s);
    /* 80 distinct TPs over 5 cases: the last one runs too */
    char many[2048];
    int n = snprintf(many, sizeof many, "[acceptance]\nmin_speedup = 81:2\n");
    for (int c = 0; c < 5; c++) {
        n += snprintf(many + n, sizeof many - (size_t)n, "[case c%d]\nmodel = m\nprompt = 1\ntp =",
                      c);
        for (int t = 0; t < 16; t++)
            n += snprintf(many + n, sizeof many - (size_t)n, " %d", 2 + 16 * c + t);
        n += snprintf(many + n, sizeof many - (size_t)n, "\n");
    }
    ck_assert_msg(ryz_suite_parse(many, "x.ini", &s) == RYZ_OK, "%s", ryz_last_error());
    ryz_suite_free(&s);
}
END_TEST

/* A figure a check needs that the run did not measure fails the check
 * with a note saying so: an all-reduce p99 at a size the run never sent
 * (naming the sizes it did), decode timing and memory rows missing. */
START_TEST(test_unmeasured_has_note) {
    ryz_suite s;
    ryz_results r;
    ryz_checks c;
    ck_assert(ryz_suite_parse("[suite]\nname = acc\n[acceptance]\nallreduce_bytes = 12345\n"
                              "max_allreduce_p99_us = 1\nmin_speedup = 1.5\n"
                              "min_memory_efficiency = 0.9\n"
                              "[case a]\nmodel = synthetic:tiny\nprompt = 1\ntp = 1 2 4\n",
                              "acc.ini", &s) == RYZ_OK);
    make_results(&r, 0);
    r.n_timing = r.n_memory = 0; /* nothing timed, no memory rows */
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    const ryz_check *p99 = find(&c, 2, "allreduce_p99_us");
    ck_assert_msg(p99 && !p99->pass && isinf(p99->measured) &&
                      !strcmp(p99->note, "not measured: no all_reduce of 12345 bytes (measured: "
                                         "1024)"),
                  "note '%s'", p99 ? p99->note : "(no check)");
    const ryz_check *sp = find(&c, 4, "speedup"), *me = find(&c, 4, "memory_efficiency");
    ck_assert_msg(sp && !sp->pass && strstr(sp->note, "not measured"), "speedup note");
    ck_assert_msg(me && !me->pass && strstr(me->note, "not measured"), "memory note");
    ryz_checks_free(&c);
    ryz_results_free(&r);
    ryz_suite_free(&s);
}
END_TEST

/* max_logit_error gates IEEE fp32 cases only: a bf16 or tf32 case is held
 * to its own tolerance (outputs_within_tolerance), never to the fp32 bound. */
START_TEST(test_logit_error_fp32_only) {
    const char *extra[] = {"dtype = bf16\n", "backend = cuda\ntf32 = 1\n"};
    for (int i = 0; i < 2; i++) {
        char text[1024];
        snprintf(text, sizeof text, "%s%s", SUITE_TEXT, extra[i]);
        ryz_suite s;
        ryz_results r;
        ryz_checks c;
        ck_assert_msg(ryz_suite_parse(text, "acc.ini", &s) == RYZ_OK, "%s", ryz_last_error());
        make_results(&r, 0);
        ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
        ck_assert_int_eq(c.n, 3 * 1 + 2 * 5);
        ck_assert_ptr_null(find(&c, 2, "logit_error"));
        ck_assert_ptr_nonnull(find(&c, 2, "outputs_within_tolerance"));
        ryz_checks_free(&c);
        ryz_results_free(&r);
        ryz_suite_free(&s);
    }
}
END_TEST

static const char *COMM_TEXT =
    "[acceptance]\nmax_collective_ratio = 1.10\nmin_bandwidth_scaling = 0.95\n"
    "[case a]\nmodel = synthetic:tiny\nprompt = 1 2\ntp = 1 2 4\n";

/* Results for the communication checks: TP 2 scales with bandwidth
 * (speedup 1.9 over a bandwidth ratio of 1.9) and its worst collective is
 * 1.08x isolated; TP 4 reaches 0.75 of its bandwidth ratio and one of its
 * collectives is 1.5x isolated. */
static void make_comm_results(ryz_results *r) {
    ryz_results_init(r);
    const double speedup[] = {1.0, 1.9, 3.0}, bw[] = {10, 19, 40};
    for (int i = 0, tp = 1; tp <= 4; i++, tp *= 2) {
        ryz_row_correctness c = {.case_name = "a", .tp = tp, .pass = 1};
        ryz_results_add_correctness(r, &c);
        ryz_row_timing t = {.case_name = "a", .tp = tp, .phase = "decode", .speedup = speedup[i],
                            .read_bandwidth_gbs = bw[i]};
        ryz_results_add_timing(r, &t);
        if (tp == 1) continue;
        const double ratio[] = {tp == 2 ? 1.05 : 1.5, tp == 2 ? 1.08 : 1.02};
        for (int j = 0; j < 2; j++) {
            ryz_row_collective k = {.case_name = "a", .tp = tp, .op = "all_reduce",
                                    .bytes = 3072u << j, .p50_us = 10, .p50_last_us = 5 * ratio[j],
                                    .isolated_p50_us = 5, .last_over_isolated = ratio[j]};
            ryz_results_add_collective(r, &k);
        }
    }
}

/* The two communication keys parse; bad values are in test_parse_acceptance. */
START_TEST(test_parse_comm_keys) {
    ryz_suite s;
    ck_assert_msg(ryz_suite_parse(COMM_TEXT, "c.ini", &s) == RYZ_OK, "%s", ryz_last_error());
    ck_assert(s.acc.max_collective_ratio == 1.10 && s.acc.min_bandwidth_scaling == 0.95);
    ryz_suite_free(&s);
    ck_assert(ryz_suite_parse(SUITE_TEXT, "acc.ini", &s) == RYZ_OK);
    ck_assert(isnan(s.acc.max_collective_ratio) && isnan(s.acc.min_bandwidth_scaling));
    ryz_suite_free(&s);
}
END_TEST

START_TEST(test_evaluate_comm) {
    ryz_suite s;
    ryz_results r;
    ryz_checks c;
    ck_assert(ryz_suite_parse(COMM_TEXT, "c.ini", &s) == RYZ_OK);
    make_comm_results(&r);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ck_assert_int_eq(c.n, 3 + 2 * 2); /* tolerance per TP; two thresholds per TP > 1 */
    const ryz_check *ratio2 = find(&c, 2, "collective_ratio");
    const ryz_check *ratio4 = find(&c, 4, "collective_ratio");
    const ryz_check *bw2 = find(&c, 2, "bandwidth_scaling");
    const ryz_check *bw4 = find(&c, 4, "bandwidth_scaling");
    ck_assert(ratio2 && ratio4 && bw2 && bw4);
    ck_assert(ratio2->pass && ratio2->measured == 1.08 && ratio2->threshold == 1.10);
    ck_assert(!ratio4->pass && ratio4->measured == 1.5 && !strcmp(ratio4->op, "<="));
    ck_assert_msg(strstr(ratio4->note, "all_reduce of 3072 bytes"), "%s", ratio4->note);
    ck_assert(bw2->pass && fabs(bw2->measured - 1.0) < 1e-12);
    ck_assert(!bw4->pass && fabs(bw4->measured - 0.75) < 1e-12 && !strcmp(bw4->op, ">="));
    ck_assert_int_eq(c.failed, 2);
    ck_assert_msg(!strstr(bw2->note, "decode's"), "%s", bw2->note);
    ryz_checks_free(&c);
    /* A probe that read less than decode streamed (TP 2 at 1.25x its
     * roofline) is not the machine's bandwidth: decode's 23.75 GB/s is,
     * and the speedup of 1.9 is only 0.8 of 23.75 / 10. At or below the
     * roofline (TP 1 at 0.9) the probe stands. */
    r.timing[1].roofline_fraction = 1.25, r.timing[0].roofline_fraction = 0.9;
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    bw2 = find(&c, 2, "bandwidth_scaling");
    ck_assert_msg(!bw2->pass && fabs(bw2->measured - 0.8) < 1e-12, "%g", bw2->measured);
    ck_assert_msg(strstr(bw2->note, "23.75 / 10.00 GB/s, decode's where higher"), "%s",
                  bw2->note);
    ryz_checks_free(&c);
    r.timing[1].roofline_fraction = 0;
    /* Where the reference after streaming was measured (schema 3), it is
     * the one gated: TP 4's 1.5x back to back is 0.9x of the op after
     * reading what the model read before it. */
    r.collectives[2].streamed_bytes = 9u << 20, r.collectives[2].isolated_evict_p50_us = 7.5 / 0.9;
    r.collectives[2].last_over_evict = 0.9;
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ratio4 = find(&c, 4, "collective_ratio");
    ck_assert_msg(ratio4->pass && ratio4->measured == 1.02, "%g", ratio4->measured);
    ck_assert_msg(strstr(ratio4->note, "all_reduce of 6144 bytes") &&
                      strstr(ratio4->note, "isolated 5.0 us back to back"), "%s", ratio4->note);
    r.collectives[2].last_over_evict = 1.25; /* and fails when it is over */
    ryz_checks_free(&c);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ratio4 = find(&c, 4, "collective_ratio");
    ck_assert(!ratio4->pass && ratio4->measured == 1.25);
    ck_assert_msg(strstr(ratio4->note, "3072 bytes, last-arriver 7.5 us / isolated 8.3 us after "
                                       "reading 9.0 MiB"), "%s", ratio4->note);
    ryz_checks_free(&c);
    r.collectives[2].last_over_evict = 0;
    /* Not measured is a failure that says so, not a pass. */
    for (size_t i = 0; i < r.n_collectives; i++) r.collectives[i].last_over_isolated = 0;
    r.timing[1].read_bandwidth_gbs = 0;
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ck_assert(!find(&c, 2, "collective_ratio")->pass && !find(&c, 2, "bandwidth_scaling")->pass);
    ck_assert(strstr(find(&c, 2, "collective_ratio")->note, "not measured"));
    ck_assert(strstr(find(&c, 2, "bandwidth_scaling")->note, "not measured"));
    ck_assert_int_eq(c.failed, 4);
    ryz_checks_free(&c);
    r.meta.oversubscribed = 1; /* timing checks: skipped */
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ck_assert_int_eq(c.failed, 0);
    ck_assert_int_eq(c.skipped, 4);
    ryz_checks_free(&c);
    ryz_results_free(&r);
    ryz_suite_free(&s);
}
END_TEST

/* The scaling note gives each term's spread over the runs: the speedup's
 * from the decode row's p90 and p10 times, the bandwidth ratio's from the
 * probes taken before each run. */
START_TEST(test_scaling_spread) {
    ryz_suite s;
    ryz_results r;
    ryz_checks c;
    ck_assert(ryz_suite_parse(COMM_TEXT, "c.ini", &s) == RYZ_OK);
    make_comm_results(&r);
    r.timing[1].median_s = 1.0, r.timing[1].p10_s = 0.95, r.timing[1].p90_s = 1.05;
    for (int i = 0; i < 11; i++) {
        ryz_row_sample x = {.case_name = "a", .tp = 2, .metric = "read_bandwidth_gbs", .iter = i,
                            .value = 15 + i};
        ryz_results_add_sample(&r, &x);
        x.value = 0.80 + 0.01 * i; /* the host's lock-step, run by run */
        snprintf(x.metric, sizeof x.metric, "lockstep_efficiency");
        ryz_results_add_sample(&r, &x);
    }
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    const ryz_check *bw2 = find(&c, 2, "bandwidth_scaling");
    const ryz_check *bw4 = find(&c, 4, "bandwidth_scaling");
    ck_assert_msg(strstr(bw2->note, "speedup 1.900 (runs 1.81-2.00) / bandwidth ratio 1.900 "
                                    "(probes 1.60-2.40) (19.00 / 10.00 GB/s) = 1.000; host "
                                    "lock-step 0.85 (0.81-0.89)"), "%s", bw2->note);
    ck_assert_msg(!strstr(bw2->note, "run by run"), "%s", bw2->note); /* no decode_s samples */
    ck_assert_msg(strstr(bw4->note, "speedup 3.000 / bandwidth ratio 4.000 (40.00"), "%s",
                  bw4->note); /* no spread known */
    ck_assert_msg(!strstr(bw4->note, "lock-step"), "%s", bw4->note);
    ryz_checks_free(&c);
    ryz_results_free(&r);
    ryz_suite_free(&s);
}
END_TEST

/* Adds run-by-run decode_s and read_bandwidth_gbs samples of (a, tp). */
static void add_runs(ryz_results *r, int tp, const double *dec, const double *bw, int n) {
    for (int i = 0; i < n; i++) {
        ryz_row_sample x = {.case_name = "a", .tp = tp, .metric = "decode_s", .iter = i,
                            .value = dec[i]};
        ryz_results_add_sample(r, &x);
        x.value = bw[i];
        snprintf(x.metric, sizeof x.metric, "read_bandwidth_gbs");
        ryz_results_add_sample(r, &x);
    }
}

/* Where both TP degrees' runs were probed one by one, the check holds
 * each run's decode time to the bandwidth of its own moments: TP=2 runs
 * that were slow when the machine read slowly could each have read the 10
 * GB TP=1's runs could, so they scale 1.0, though the rows' medians
 * (speedup 1.9 over 20 / 10 GB/s) say 0.95. A run that streamed more than
 * its probe read counts what it streamed (the row's 20 GB/s x 1.25 of the
 * roofline x 0.5 s median). Unpaired samples (a TP=2 run without its
 * bandwidth) leave the medians' ratio. */
/* The comm suite and its results with three TP=1 and four TP=2 runs
 * probed one by one: each could have read 10 GB, and the TP=2 decode row
 * says 0.5 s at 20 GB/s. */
static void make_probed_runs(ryz_suite *s, ryz_results *r) {
    ck_assert(ryz_suite_parse(COMM_TEXT, "c.ini", s) == RYZ_OK);
    make_comm_results(r);
    r->timing[1].read_bandwidth_gbs = 20, r->timing[1].median_s = 0.5;
    const double d1[] = {1, 1.25, 0.8}, b1[] = {10, 8, 12.5};
    const double d2[] = {0.5, 0.4, 0.625, 0.5}, b2[] = {20, 25, 16, 20};
    add_runs(r, 1, d1, b1, 3);
    add_runs(r, 2, d2, b2, 4);
}

START_TEST(test_scaling_run_by_run) {
    ryz_suite s;
    ryz_results r;
    ryz_checks c;
    make_probed_runs(&s, &r);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    const ryz_check *bw2 = find(&c, 2, "bandwidth_scaling");
    ck_assert_msg(bw2->pass && fabs(bw2->measured - 1.0) < 1e-12, "%g", bw2->measured);
    ck_assert_msg(strstr(bw2->note, "run by run: 10.00 GB readable in a TP=1 decode / 10.00 at "
                                    "TP=2; medians: speedup 1.900") &&
                      strstr(bw2->note, "(20.00 / 10.00 GB/s) = 0.950"), "%s", bw2->note);
    ryz_checks_free(&c);
    r.timing[1].roofline_fraction = 1.25;
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    bw2 = find(&c, 2, "bandwidth_scaling");
    ck_assert_msg(!bw2->pass && fabs(bw2->measured - 0.8) < 1e-12, "%g", bw2->measured);
    ryz_checks_free(&c);
    r.timing[1].roofline_fraction = 0;
    ryz_row_sample x = {.case_name = "a", .tp = 2, .metric = "decode_s", .iter = 4, .value = 0.5};
    ryz_results_add_sample(&r, &x);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    bw2 = find(&c, 2, "bandwidth_scaling");
    ck_assert_msg(fabs(bw2->measured - 0.95) < 1e-12 && !strstr(bw2->note, "run by run"),
                  "%g %s", bw2->measured, bw2->note);
    ryz_checks_free(&c);
    ryz_results_free(&r);
    ryz_suite_free(&s);
}
END_TEST

/* Adds `metric` samples of (a, tp), one per value. */
static void add_metric(ryz_results *r, int tp, const char *metric, const double *v, int n) {
    for (int i = 0; i < n; i++) {
        ryz_row_sample x = {.case_name = "a", .tp = tp, .iter = i, .value = v[i]};
        snprintf(x.metric, sizeof x.metric, "%s", metric);
        ryz_results_add_sample(r, &x);
    }
}

/* The bandwidth-scaling note ends with what the host's neighbours took
 * during the TP=1 and TP=2 runs (the medians of their samples), each part
 * only where both degrees have it, and the whole note fits its field with
 * every term at once. */
START_TEST(test_scaling_note_host_load) {
    ryz_suite s;
    ryz_results r;
    ryz_checks c;
    make_probed_runs(&s, &r);
    r.timing[1].roofline_fraction = 1.25; /* "decode's where higher" too */
    const double lock[] = {0.91, 0.95, 0.97, 0.93};
    add_metric(&r, 2, "lockstep_efficiency", lock, 4);
    const double st1[] = {0.001, 0.004, 0.002}, st2[] = {0.06, 0.07, 0.05, 0.2};
    const double ot1[] = {0, 0.01, 0}, ot2[] = {0.38, 0.4, 0.36, 0.5};
    add_metric(&r, 1, "host_steal_fraction", st1, 3);
    add_metric(&r, 2, "host_steal_fraction", st2, 4);
    add_metric(&r, 2, "host_other_load", ot2, 4);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    const ryz_check *bw2 = find(&c, 2, "bandwidth_scaling");
    ck_assert_msg(strstr(bw2->note, "(0.91-0.97); steal 0.2 / 6.5 %") &&
                      !strstr(bw2->note, "others"), "%s", bw2->note);
    ryz_checks_free(&c);
    add_metric(&r, 1, "host_other_load", ot1, 3);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    bw2 = find(&c, 2, "bandwidth_scaling");
    size_t len = strlen(bw2->note);
    ck_assert_msg(len >= 6 && !strcmp(bw2->note + len - 6, "39.0 %") &&
                      strstr(bw2->note, "; steal 0.2 / 6.5 %, others 0.0 / 39.0 %") &&
                      strstr(bw2->note, "run by run (all runs: the host's neighbours took > 10 % "
                                        "in 0 of 3 at TP=1, 4 of 4 at TP=2): ") &&
                      strstr(bw2->note, "decode's where"),
                  "%s", bw2->note);
    ryz_checks_free(&c);
    ryz_results_free(&r);
    ryz_suite_free(&s);
}
END_TEST

/* Runs the neighbours disturbed are left out of the scaling check where
 * at least three runs of each degree are left: six TP=2 runs, three of
 * them (steal or others above 10 %) 30 % slower for the bytes they could
 * read, fail the check over all runs (median 11.5 GB against TP=1's 10)
 * and pass it over the three left alone (10); with two left alone, all
 * runs are judged and the note says why. */
START_TEST(test_scaling_leaves_out_disturbed_runs) {
    ryz_suite s;
    ryz_results r;
    ryz_checks c;
    ck_assert(ryz_suite_parse(COMM_TEXT, "c.ini", &s) == RYZ_OK);
    make_comm_results(&r);
    r.timing[1].read_bandwidth_gbs = 20, r.timing[1].median_s = 0.5;
    const double d1[] = {1, 1, 1}, b1[] = {10, 10, 10};
    const double d2[] = {0.5, 0.5, 0.65, 0.5, 0.65, 0.65}, b2[] = {20, 20, 20, 20, 20, 20};
    add_runs(&r, 1, d1, b1, 3);
    add_runs(&r, 2, d2, b2, 6);
    const double steal[] = {0.01, 0.02, 0.15, 0.0, 0.05, 0.12}, other[] = {0, 0, 0, 0, 0.2, 0};
    add_metric(&r, 2, "host_steal_fraction", steal, 6);
    add_metric(&r, 2, "host_other_load", other, 6);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    const ryz_check *bw2 = find(&c, 2, "bandwidth_scaling");
    ck_assert_msg(bw2->pass && fabs(bw2->measured - 1.0) < 1e-12 &&
                      strstr(bw2->note, "run by run (the runs the host's neighbours left alone: "
                                        "3 of 3 at TP=1, 3 of 6 at TP=2): 10.00 GB readable"),
                  "%g %s", bw2->measured, bw2->note);
    ryz_checks_free(&c);
    const double more[] = {0, 0, 0.5, 0.5, 0.5, 0.5}; /* two left alone */
    add_metric(&r, 2, "host_other_load", more, 6);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    bw2 = find(&c, 2, "bandwidth_scaling");
    ck_assert_msg(!bw2->pass && fabs(bw2->measured - 10.0 / 11.5) < 1e-12 &&
                      strstr(bw2->note, "run by run (all runs: the host's neighbours took > 10 % "
                                        "in 0 of 3 at TP=1, 4 of 6 at TP=2): "),
                  "%g %s", bw2->measured, bw2->note);
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
    ryz_checks_free(&c);
    ryz_suite_free(&s);
    ryz_results_free(&r);
    /* A failed communication check carries its note (which op and size). */
    ck_assert(ryz_suite_parse(COMM_TEXT, "c.ini", &s) == RYZ_OK);
    make_comm_results(&r);
    ck_assert_int_eq(ryz_acceptance_evaluate(&s, &r, &c), RYZ_OK);
    ck_assert_int_eq(ryz_checks_write_junit(&c, "acc", path), RYZ_OK);
    ck_assert_int_eq(count_in_file(path, "<failure "), 2);
    ck_assert_int_eq(count_in_file(path, "collective_ratio: measured 1.5, threshold &lt;= 1.1 "
                                         "(worst: all_reduce of 3072 bytes"),
                     2);
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

/* A 2-rank suite whose [acceptance] fails (a decode speedup of 100 at TP
 * 2), written to a temporary file; the path in ini[cap], a results path
 * beside it in h5[cap]. */
static void failing_suite(char *dir, char *ini, char *h5, size_t cap) {
    test_mkdtemp(dir, cap, "acc");
    snprintf(ini, cap, "%s/acc.ini", dir);
    snprintf(h5, cap, "%s/acc.h5", dir);
    FILE *f = fopen(ini, "w");
    ck_assert_ptr_nonnull(f);
    fputs("[suite]\nname = acc\nrepeat = 2\n"
          "[case tiny]\nmodel = synthetic:tiny\ntp = 1 2\nprompt = 1 2 3\nnew_tokens = 3\n"
          "[acceptance]\nmin_speedup = 2:100\nmax_logit_error = 1\n",
          f);
    fclose(f);
}

/* `ryz suite -o F` keeps its checks in F's /acceptance table, as it
 * printed them (the speedup failed, correctness and the logit error
 * passed), with kind suite. */
START_TEST(test_cli_stores_acceptance) {
    char dir[256], ini[320], h5[320], args[1024];
    failing_suite(dir, ini, h5, sizeof ini);
    snprintf(args, sizeof args, "suite %s --quiet -o %s", ini, h5);
    test_run r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 1, "exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err);
    ck_assert_msg(strstr(r.out, "suite acc: FAIL (1 failed check of 5)"), "%s", r.out);
    ryz_results res;
    ck_assert_msg(ryz_results_read(h5, &res) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_str_eq(ryz_results_kind(&res.meta), RYZ_KIND_SUITE);
    ck_assert_str_eq(res.meta.kind, RYZ_KIND_SUITE);
    ck_assert_uint_eq(res.n_acceptance, 5);
    ryz_checks c;
    ck_assert_int_eq(ryz_checks_from_results(&res, &c), RYZ_OK);
    ck_assert_int_eq(c.n, 5);
    ck_assert_int_eq(c.failed, 1);
    const ryz_check *sp = find(&c, 2, "speedup");
    ck_assert_msg(sp && !sp->pass && !sp->skipped && sp->threshold == 100 && sp->measured > 0 &&
                      !strcmp(sp->op, ">="),
                  "speedup row");
    ck_assert(find(&c, 1, "outputs_within_tolerance") && find(&c, 2, "logit_error"));
    ryz_checks_free(&c);
    ryz_results_free(&res);
    test_run_free(&r);
    test_rm_tree(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("accept");
    TCase *tc = tcase_create("accept");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_parse_acceptance);
    tcase_add_test(tc, test_evaluate);
    tcase_add_test(tc, test_parse_impossible_thresholds);
    tcase_add_test(tc, test_unmeasured_has_note);
    tcase_add_test(tc, test_logit_error_fp32_only);
    tcase_add_test(tc, test_parse_comm_keys);
    tcase_add_test(tc, test_evaluate_comm);
    tcase_add_test(tc, test_scaling_spread);
    tcase_add_test(tc, test_scaling_run_by_run);
    tcase_add_test(tc, test_scaling_note_host_load);
    tcase_add_test(tc, test_scaling_leaves_out_disturbed_runs);
    tcase_add_test(tc, test_junit);
    tcase_add_test(tc, test_cli_junit);
    tcase_add_test(tc, test_cli_stores_acceptance);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
