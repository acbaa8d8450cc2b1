/* Tests of the regression comparison (ryz/regress.h) and `ryz compare`. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "ryz/cli.h"
#include "ryz/regress.h"

enum { N = 20 };

/* Deterministic noise in [-1, 1). */
static double noise(unsigned *state) {
    *state = *state * 1103515245u + 12345u;
    return ((*state >> 8) & 0xffff) / 32768.0 - 1.0;
}

/* A run of suite "s", case "a" (model `model`) at TP 2: N decode samples
 * around `scale` seconds with +-`jitter` relative noise, one correctness row
 * (pass) and one memory row of `mem` bytes. */
static void make_run(ryz_results *r, const char *model, double scale, double jitter,
                     unsigned seed, int pass, uint64_t mem) {
    char text[128];
    ryz_results_init(r);
    snprintf(text, sizeof text, "[suite]\nname = s\n[case a]\nmodel = %s\nprompt = 1\n", model);
    ryz_results_set_str(&r->meta.suite_name, "s");
    ryz_results_set_str(&r->meta.suite_text, text);
    for (int i = 0; i < N; i++) {
        ryz_row_sample s = {.case_name = "a", .tp = 2, .metric = "decode_s", .iter = i};
        s.value = scale * (1 + jitter * noise(&seed));
        ryz_results_add_sample(r, &s);
    }
    ryz_row_correctness c = {.case_name = "a", .tp = 2, .max_abs = 1e-6, .pass = pass};
    ryz_results_add_correctness(r, &c);
    ryz_row_memory m = {.case_name = "a", .tp = 2, .rank = 0, .weights = mem};
    ryz_results_add_memory(r, &m);
}

/* Compares and returns the row of `metric`. */
static ryz_regress_row row_of(const ryz_results *b, const ryz_results *c, const char *metric,
                              int *regressions) {
    ryz_regress_opts o = {1.10, 0.01, 1.01, NULL};
    ryz_regress r;
    ck_assert_msg(ryz_regress_compare(b, c, &o, &r) == RYZ_OK, "%s", ryz_last_error());
    ryz_regress_row found = {0};
    for (size_t i = 0; i < r.n; i++)
        if (!strcmp(r.rows[i].metric, metric)) found = r.rows[i];
    *regressions = r.regressions;
    ryz_regress_free(&r);
    ck_assert_msg(found.metric[0], "no %s row", metric);
    return found;
}

START_TEST(test_mann_whitney_exact) {
    const double x[5] = {1, 2, 3, 4, 5}, y[5] = {6, 7, 8, 9, 10};
    double p = ryz_mann_whitney_greater(x, 5, y, 5);
    ck_assert_msg(fabs(p - 1.0 / 252) < 1e-12, "p %.17g, expected 1/252", p);
    ck_assert_msg(ryz_mann_whitney_greater(y, 5, x, 5) == 1.0, "reverse order not p = 1");
    ck_assert_msg(ryz_mann_whitney_greater(x, 0, y, 5) == 1.0, "empty side");
    const double t[4] = {1, 1, 1, 1}; /* all tied: no evidence */
    ck_assert_msg(ryz_mann_whitney_greater(t, 2, t + 2, 2) >= 0.5, "ties gave evidence");
}
END_TEST

START_TEST(test_flags_20_percent_slowdown) {
    ryz_results b, c;
    make_run(&b, "synthetic:tiny", 0.010, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.012, 0.05, 2, 1, 1000);
    int n;
    ryz_regress_row row = row_of(&b, &c, "decode_s", &n);
    ck_assert_msg(row.regression && n == 1, "20%% slowdown not flagged: ratio %.3f p %.3g",
                  row.ratio, row.p_value);
    ck_assert_msg(strstr(row.why, "slower"), "why: %s", row.why);
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

START_TEST(test_quiet_on_noise) {
    for (unsigned seed = 3; seed < 13; seed++) {
        ryz_results b, c;
        double shift = seed % 2 ? 1.05 : 0.95;
        make_run(&b, "synthetic:tiny", 0.010, 0.05, seed, 1, 1000);
        make_run(&c, "synthetic:tiny", 0.010 * shift, 0.05, seed + 100, 1, 1000);
        int n;
        ryz_regress_row row = row_of(&b, &c, "decode_s", &n);
        ck_assert_msg(n == 0, "+-5%% noise flagged (seed %u): ratio %.3f p %.3g", seed,
                      row.ratio, row.p_value);
        ryz_results_free(&b);
        ryz_results_free(&c);
    }
}
END_TEST

/* Asserts that b and c compare (needle NULL) or are refused as EINVAL with
 * a message holding needle, `ryz comm` files judged by same_comm (NULL:
 * word for word). */
static void expect_comparable_by(const ryz_results *b, const ryz_results *c,
                                 ryz_status (*same_comm)(const char *, const char *),
                                 const char *needle) {
    ryz_regress_opts o = {1.10, 0.01, 1.01, same_comm};
    ryz_regress r;
    ryz_status st = ryz_regress_compare(b, c, &o, &r);
    if (!needle) {
        ck_assert_msg(st == RYZ_OK, "%s: %s", c->meta.suite_text, ryz_last_error());
        ryz_regress_free(&r);
        return;
    }
    ck_assert_int_eq(st, RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), needle), "'%s' not in '%s'", needle, ryz_last_error());
}

static void expect_comparable(const ryz_results *b, const ryz_results *c, const char *needle) {
    expect_comparable_by(b, c, NULL, needle);
}

/* A slowdown over the threshold that is not significant says why, and
 * says when its samples are too few to ever reach alpha. */
START_TEST(test_slowdown_not_significant) {
    ryz_results b, c;
    make_run(&b, "synthetic:tiny", 0.010, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.015, 0.05, 2, 1, 1000);
    b.n_samples = c.n_samples = 3; /* the first 3 runs of each */
    int n;
    ryz_regress_row row = row_of(&b, &c, "decode_s", &n);
    ck_assert_int_eq(row.regression, 0);
    ck_assert_msg(strstr(row.why, "x slower, not significant: p 0.05 >= 0.01 (3 and 3 samples "
                                  "cannot go below 0.05: repeat more)"),
                  "why: %s", row.why);
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* Runs of one suite that did other work in a case are refused, naming
 * the key; a default left unsaid, blanks, quotes and inline comments are
 * not differences. */
START_TEST(test_refuses_other_work) {
    static const char base[] = "[suite]\nname = s\n[case a]\nmodel = synthetic:tiny\nprompt = 1\n";
    static const char *const same[] = {
        "[suite]\nname = s\n[case a]\nmodel = synthetic:tiny ; tiny\nprompt =  1\nbatch = 1\n",
        "[suite]\nname = s\n[case a]\n  model = \"synthetic:tiny\"\nprompt = 1\nnew_tokens = 16\n",
        "[suite]\nname = s\n; not [case a]\nmodel = other\n[ case  a ]\r\nmodel = synthetic:tiny\r\n"
        "prompt = 1,\r\ntp=1", /* a last line shorter than every key, no newline */
        "[suite]\nname = s\n[case a]\nmodel = synthetic:tiny\nprompt = \"1\"\ndtype = float32\n"
        "batch = 01\n",
        /* the preset's own shapes spelled out: the same model */
        "[suite]\nname = s\n[case a]\nmodel = synthetic:tiny,layers=2\nprompt = 1\n"};
    static const char *const other[][2] = {
        {"new_tokens = 8\n", "case a: different new_tokens: base '16', new '8'"},
        {"batch = 4\n", "different batch: base '1', new '4'"},
        {"comm = shm\n", "different comm: base 'mpi', new 'shm'"},
        {"dtype = bfloat16\n", "different dtype: base 'f32', new 'bf16'"}};
    ryz_results b, c;
    char text[256];
    make_run(&b, "synthetic:tiny", 0.01, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.01, 0.05, 2, 1, 1000);
    ryz_results_set_str(&b.meta.suite_text, base);
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        ryz_results_set_str(&c.meta.suite_text, same[i]);
        expect_comparable(&b, &c, NULL);
    }
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        snprintf(text, sizeof text, "%s%s", base, other[i][0]);
        ryz_results_set_str(&c.meta.suite_text, text);
        expect_comparable(&b, &c, other[i][1]);
    }
    ryz_results_set_str(&c.meta.suite_text, "[suite]\nname = s\n[case a]\n"
                                            "model = synthetic:tiny,layers=3\nprompt = 1\n");
    expect_comparable(&b, &c, "different model: base 'synthetic:tiny', new "
                              "'synthetic:tiny,layers=3'");
    char longer[2][1400]; /* prompts of 600 ids that differ in the last */
    for (int k = 0; k < 2; k++) {
        int n = snprintf(longer[k], sizeof longer[k], "[suite]\nname = s\n[case a]\nprompt = 1");
        for (int i = 0; i < 598; i++)
            n += snprintf(longer[k] + n, sizeof longer[k] - (size_t)n, " 1");
        snprintf(longer[k] + n, sizeof longer[k] - (size_t)n, " %d\n", 2 + k);
    }
    ryz_results_set_str(&b.meta.suite_text, longer[0]);
    ryz_results_set_str(&c.meta.suite_text, longer[1]);
    expect_comparable(&b, &c, "case a: different prompt");
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* A text prompt is work too: runs whose prompt_text or tokenizer differ
 * are refused, blanks inside the text included (the tokenizer encodes
 * "hello  world" otherwise), as are ids against text; the same text
 * quoted, or with a comment after it, is the same work. */
START_TEST(test_refuses_other_text_prompt) {
    static const char head[] = "[suite]\nname = s\n[case a]\nmodel = synthetic:tiny\n";
    static const char base[] = "prompt_text = hello world\ntokenizer = t.bin\n";
    static const char *const same[] = {
        "prompt_text = \"hello world\"  ; quoted\ntokenizer = t.bin ; the fixture\n",
        "tokenizer = t.bin\nprompt_text =   hello world\t\n"};
    static const char *const other[][2] = {
        {"prompt_text = hello  world\ntokenizer = t.bin\n",
         "case a: different prompt_text: base 'hello world', new 'hello  world'"},
        {"prompt_text = \" hello world\"\ntokenizer = t.bin\n", "different prompt_text"},
        {"prompt_text = hello world\ntokenizer = other/t.bin\n",
         "case a: different tokenizer: base 't.bin', new 'other/t.bin'"},
        {"prompt = 1 268 276\n", "different prompt"}};
    ryz_results b, c;
    char text[256];
    make_run(&b, "synthetic:tiny", 0.01, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.01, 0.05, 2, 1, 1000);
    snprintf(text, sizeof text, "%s%s", head, base);
    ryz_results_set_str(&b.meta.suite_text, text);
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, same[i]);
        ryz_results_set_str(&c.meta.suite_text, text);
        expect_comparable(&b, &c, NULL);
    }
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, other[i][0]);
        ryz_results_set_str(&c.meta.suite_text, text);
        expect_comparable(&b, &c, other[i][1]);
    }
    /* "01" stays text: "1" is another prompt, not another spelling. */
    snprintf(text, sizeof text, "%sprompt_text = 1\ntokenizer = t.bin\n", head);
    ryz_results_set_str(&b.meta.suite_text, text);
    snprintf(text, sizeof text, "%sprompt_text = 01\ntokenizer = t.bin\n", head);
    ryz_results_set_str(&c.meta.suite_text, text);
    expect_comparable(&b, &c, "different prompt_text: base '1', new '01'");
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* Two runs b and c filed as `ryz comm` runs, b of command line base. */
static void comm_runs(ryz_results *b, ryz_results *c, const char *base) {
    make_run(b, "synthetic:tiny", 0.01, 0.05, 1, 1, 1000);
    make_run(c, "synthetic:tiny", 0.01, 0.05, 2, 1, 1000);
    ryz_results_set_str(&b->meta.suite_name, "comm");
    ryz_results_set_str(&c->meta.suite_name, "comm");
    ryz_results_set_str(&b->meta.suite_text, base);
}

/* `ryz comm` files compare when they ran the same command line, output
 * files aside. */
START_TEST(test_comm_command_lines) {
    ryz_results b, c;
    comm_runs(&b, &c, "ryz comm -e 4K -o a.h5");
    ryz_results_set_str(&c.meta.suite_text, "ryz comm  -J b.json -e 4K --json c.json");
    expect_comparable(&b, &c, NULL);
    ryz_results_set_str(&c.meta.suite_text, "ryz comm -e 4K --gap 200 -o a.h5");
    expect_comparable(&b, &c, "different ryz comm command lines: base 'ryz comm -e 4K -o a.h5', "
                              "new 'ryz comm -e 4K --gap 200 -o a.h5'");
    c.meta.world_size = b.meta.world_size + 2;
    ryz_results_set_str(&c.meta.suite_text, "ryz comm -e 4K -o a.h5");
    expect_comparable(&b, &c, "different ryz comm ranks");
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* With the CLI's parser (what `ryz compare` passes), `ryz comm` files
 * compare when their options agree in any order or spelling, defaults
 * said or not; an option that differs is named with both values. */
START_TEST(test_comm_options_parsed) {
    ryz_results b, c;
    comm_runs(&b, &c, "ryz comm -b 1K -e 4K -n 5 -o a.h5");
    static const struct {
        const char *cand, *needle;
    } cases[] = {
        {"ryz comm -n 5 -e 4096 -b 1024 --np 2 -c 1 -J x.json", NULL},
        {"ryz comm -e 4K -b 1K -n 5 --op allreduce -f 2 -w 5 --backend mpi", NULL},
        {"ryz comm -b 1K -e 4K", "-n 5 -> 20"},
        {"ryz comm -b 1K -e 4K -n 5 --backend shm --gap 200",
         "--gap (us) 0 -> 200, --backend shm 0 -> 1"},
        {"ryz comm -b 1K -e 4K -n 5 --frobnicate", "new file's command line"},
        {"ryz comm -b 1K -e 4K -n 5 --op all -w 1", "--op all_reduce -> all_reduce,"},
        {"ryz suite x.ini", "not a `ryz comm` command line"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ryz_results_set_str(&c.meta.suite_text, cases[i].cand);
        expect_comparable_by(&b, &c, ryz_cli_comm_same_work, cases[i].needle);
    }
    /* word for word, an option this ryz does not know (an older one's) */
    ryz_results_set_str(&b.meta.suite_text, "ryz comm --retired 3 -o a.h5");
    ryz_results_set_str(&c.meta.suite_text, "ryz comm --retired 3 -o b.h5");
    expect_comparable_by(&b, &c, ryz_cli_comm_same_work, NULL);
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* `ryz bench` files compare when they ran the same model, backend and
 * sizes; a file from before the sizes were recorded compares on the rest. */
START_TEST(test_bench_work) {
    static const char old[] = "[case bench]\nmodel = synthetic:15m\nbackend = cpu\n";
    ryz_results b, c;
    char text[2][160];
    make_run(&b, "synthetic:tiny", 0.01, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.01, 0.05, 2, 1, 1000);
    b.n_correctness = c.n_correctness = 0; /* as ryz bench writes them */
    ryz_results_set_str(&b.meta.suite_name, "bench");
    ryz_results_set_str(&c.meta.suite_name, "bench");
    for (int k = 0; k < 2; k++)
        snprintf(text[k], sizeof text[k], "%swork = --prompt-len %d --decode-prompt 16\n", old,
                 16 << k);
    ryz_results_set_str(&b.meta.suite_text, text[0]);
    ryz_results_set_str(&c.meta.suite_text, old);
    expect_comparable(&b, &c, NULL);
    ryz_results_set_str(&c.meta.suite_text, text[1]);
    expect_comparable(&b, &c, "case bench: different work: base '--prompt-len 16 --decode-prompt "
                              "16', new '--prompt-len 32 --decode-prompt 16'");
    ryz_results_set_str(&c.meta.suite_text, "[case bench]\nmodel = synthetic:110m\n");
    expect_comparable(&b, &c, "case bench: different model");
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* Adds the acceptance check (case a, tp 2, check) to r. */
static void add_check(ryz_results *r, const char *check, double measured, double threshold,
                      int pass, int skipped) {
    ryz_row_acceptance a = {.case_name = "a", .tp = 2, .measured = measured, .op = ">=",
                            .threshold = threshold, .pass = pass, .skipped = skipped};
    snprintf(a.check, sizeof a.check, "%s", check);
    ck_assert_int_eq(ryz_results_add_acceptance(r, &a), RYZ_OK);
}

/* An acceptance check that passed in base and fails in the new file is a
 * regression; one that failed in both, was skipped (oversubscribed), or
 * that the new file did not make is shown but is not; correctness stays
 * the correctness row's. */
START_TEST(test_acceptance_regression) {
    ryz_results b, c;
    make_run(&b, "synthetic:tiny", 0.010, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.010, 0.05, 1, 1, 1000);
    const char *checks[] = {"speedup", "efficiency", "comm_fraction", "memory_efficiency",
                            "outputs_within_tolerance"};
    const int base_pass[] = {1, 0, 1, 1, 1}, new_pass[] = {0, 0, 0, 0, 1};
    for (int i = 0; i < 5; i++) {
        add_check(&b, checks[i], 1.9, 1.8, base_pass[i], i == 2);
        if (i != 3) add_check(&c, checks[i], 1.2, i == 1 ? 1.5 : 1.8, new_pass[i], 0);
    }
    int n;
    ryz_regress_row sp = row_of(&b, &c, "accept:speedup", &n);
    ck_assert_msg(sp.regression && sp.base == 1.9 && sp.cand == 1.2 && sp.ratio == 0 &&
                      !strcmp(sp.why, "PASS -> FAIL (needs >= 1.8)"),
                  "speedup: %s", sp.why);
    ck_assert_int_eq(n, 1);
    ryz_regress_row ef = row_of(&b, &c, "accept:efficiency", &n);
    ck_assert_msg(!ef.regression && !strcmp(ef.why, "FAIL -> FAIL (needs >= 1.5; base's "
                                                    "threshold 1.8)"), "efficiency: %s", ef.why);
    ryz_regress_row cf = row_of(&b, &c, "accept:comm_fraction", &n);
    ck_assert_msg(!cf.regression && strstr(cf.why, "skipped in base file"), "%s", cf.why);
    ryz_regress_row me = row_of(&b, &c, "accept:memory_efficiency", &n);
    ck_assert_msg(!me.regression && isnan(me.cand) && !strcmp(me.why, "not checked in new file"),
                  "%s", me.why);
    ryz_regress r;
    ryz_regress_opts o = {1.10, 0.01, 1.01, NULL};
    ck_assert_int_eq(ryz_regress_compare(&b, &c, &o, &r), RYZ_OK);
    for (size_t i = 0; i < r.n; i++)
        ck_assert_msg(!strstr(r.rows[i].metric, "outputs_within"), "correctness compared twice");
    ryz_regress_free(&r);
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* Two `ryz bench` files that share no case (--threads 1 against
 * --threads 2) are refused, naming each file's cases: every row would
 * compare against nothing and pass. One case in common is enough. */
START_TEST(test_no_common_case) {
    ryz_results b, c;
    ryz_results *r[2] = {&b, &c};
    for (int k = 0; k < 2; k++) {
        make_run(r[k], "synthetic:tiny", 0.01, 0.05, 1 + k, 1, 1000);
        r[k]->n_correctness = 0; /* as ryz bench writes them */
        ryz_results_set_str(&r[k]->meta.suite_name, "bench");
        ryz_results_set_str(&r[k]->meta.kind, RYZ_KIND_BENCH);
        ryz_results_set_str(&r[k]->meta.suite_text, "[case bench]\nmodel = synthetic:tiny\n");
        for (size_t i = 0; i < r[k]->n_samples; i++)
            snprintf(r[k]->samples[i].case_name, RYZ_NAME_LEN, "f32-t%d", k + 1);
        snprintf(r[k]->memory[0].case_name, RYZ_NAME_LEN, "f32-t%d", k + 1);
    }
    expect_comparable(&b, &c, "no case in common: base has 'f32-t1', new has 'f32-t2'");
    ryz_row_sample s = {.case_name = "f32-t1", .tp = 2, .metric = "decode_s", .value = 0.01};
    ryz_results_add_sample(&c, &s); /* now they share f32-t1 */
    expect_comparable(&b, &c, NULL);
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* Files say what wrote them (kind): a suite named "bench" or "comm" is a
 * suite, judged case by case (two such suites of different models are
 * refused, as "different model", not as a bench or a command line), and a
 * suite file against a `ryz comm` file is refused, naming the latter. Files
 * without a kind (before schema 5) are told by name. */
START_TEST(test_kind_decides) {
    const char *names[] = {"bench", "comm"};
    for (int i = 0; i < 2; i++) {
        ryz_results b, c;
        make_run(&b, "synthetic:tiny", 0.01, 0.05, 1, 1, 1000);
        make_run(&c, "synthetic:15m", 0.01, 0.05, 2, 1, 1000);
        char text[2][128];
        for (int k = 0; k < 2; k++)
            snprintf(text[k], sizeof text[k], "[suite]\nname = %s\n[case a]\nmodel = %s\n"
                     "prompt = 1\n", names[i], k ? "synthetic:15m" : "synthetic:tiny");
        ryz_results *r[2] = {&b, &c};
        for (int k = 0; k < 2; k++) {
            ryz_results_set_str(&r[k]->meta.suite_name, names[i]);
            ryz_results_set_str(&r[k]->meta.suite_text, text[k]);
            ryz_results_set_str(&r[k]->meta.kind, RYZ_KIND_SUITE);
        }
        expect_comparable(&b, &c, "case a: different model: base 'synthetic:tiny', new "
                                  "'synthetic:15m'");
        expect_comparable_by(&b, &c, ryz_cli_comm_same_work, "case a: different model");
        ryz_results_set_str(&c.meta.suite_text, text[0]);
        expect_comparable_by(&b, &c, ryz_cli_comm_same_work, NULL);
        ryz_results_free(&b);
        ryz_results_free(&c);
    }
    ryz_results b, c;
    comm_runs(&b, &c, "ryz comm -e 4K -o a.h5");
    ryz_results_set_str(&c.meta.suite_text, "ryz comm -e 4K -o b.h5");
    ryz_results_set_str(&b.meta.kind, RYZ_KIND_SUITE);
    ryz_results_set_str(&c.meta.kind, RYZ_KIND_COMM);
    expect_comparable(&b, &c, "base is a `ryz suite` file, new is a `ryz comm` file");
    ryz_results_set_str(&b.meta.kind, NULL); /* before schema 5: by its name, comm */
    expect_comparable(&b, &c, NULL);
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* The suite's probes per run are the machine's figures, not times of
 * ours: the bandwidth row shows the machine reading twice as fast, the
 * lock-step row its ranks kept in step better, the host-load rows a
 * busier machine, and none is ever a regression. */
START_TEST(test_probe_rate_not_compared) {
    ryz_results r[2];
    for (int k = 0; k < 2; k++) {
        make_run(&r[k], "synthetic:tiny", 0.010, 0.01, 5 + k, 1, 1000);
        for (int i = 0; i < N; i++) {
            ryz_row_sample s = {.case_name = "a", .tp = 2, .metric = "read_bandwidth_gbs",
                                .iter = i, .value = (k + 1) * 50.0 + i};
            ryz_results_add_sample(&r[k], &s);
            s.value = 0.4 + 0.5 * k + 0.001 * i; /* the host kept its ranks in step better */
            snprintf(s.metric, sizeof s.metric, "lockstep_efficiency");
            ryz_results_add_sample(&r[k], &s);
            s.value = 0.01 + 0.3 * k + 0.001 * i; /* others ran 31x as much */
            snprintf(s.metric, sizeof s.metric, "host_other_load");
            ryz_results_add_sample(&r[k], &s);
            snprintf(s.metric, sizeof s.metric, "host_steal_fraction");
            ryz_results_add_sample(&r[k], &s);
            s.value = 100 + 200 * k + i; /* the sgemm before each prefill ran 3x as fast */
            snprintf(s.metric, sizeof s.metric, "sgemm_gflops");
            ryz_results_add_sample(&r[k], &s);
        }
    }
    ryz_regress_opts o = {1.10, 0.01, 1.01, NULL};
    ryz_regress g;
    ck_assert_msg(ryz_regress_compare(&r[0], &r[1], &o, &g) == RYZ_OK, "%s", ryz_last_error());
    const ryz_regress_row *bw = NULL;
    for (size_t i = 0; i < g.n; i++)
        if (!strcmp(g.rows[i].metric, "read_bandwidth_gbs")) bw = &g.rows[i];
    /* medians 59.5 and 109.5 of 50.. and 100.. */
    ck_assert_msg(bw && !bw->regression && fabs(bw->ratio - 109.5 / 59.5) < 1e-9 &&
                      strstr(bw->why, "not gated"),
                  "probe row: %s", bw ? bw->why : "missing");
    const ryz_regress_row *lock = NULL;
    for (size_t i = 0; i < g.n; i++)
        if (!strcmp(g.rows[i].metric, "lockstep_efficiency")) lock = &g.rows[i];
    ck_assert_msg(lock && !lock->regression && lock->ratio > 2 && strstr(lock->why, "not gated"),
                  "lock-step row: %s", lock ? lock->why : "missing");
    int host = 0;
    for (size_t i = 0; i < g.n; i++)
        if (!strncmp(g.rows[i].metric, "host_", 5)) {
            host++;
            ck_assert_msg(!g.rows[i].regression && g.rows[i].ratio > 10 &&
                              strstr(g.rows[i].why, "not gated"), "%s: %s", g.rows[i].metric,
                          g.rows[i].why);
        }
    ck_assert_int_eq(host, 2);
    const ryz_regress_row *gemm = NULL;
    for (size_t i = 0; i < g.n; i++)
        if (!strcmp(g.rows[i].metric, "sgemm_gflops")) gemm = &g.rows[i];
    ck_assert_msg(gemm && !gemm->regression && gemm->ratio > 2 && strstr(gemm->why, "not gated"),
                  "sgemm row: %s", gemm ? gemm->why : "missing");
    ck_assert_int_eq(g.regressions, 0);
    ryz_regress_free(&g);
    ryz_results_free(&r[0]);
    ryz_results_free(&r[1]);
}
END_TEST

START_TEST(test_correctness_and_memory) {
    ryz_results b, c;
    make_run(&b, "synthetic:tiny", 0.010, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.010, 0.05, 1, 0, 1100);
    int n;
    ck_assert_int_eq(row_of(&b, &c, "correctness", &n).regression, 1);
    ck_assert_int_eq(row_of(&b, &c, "memory_bytes", &n).regression, 1);
    ck_assert_int_eq(n, 2);
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

START_TEST(test_refuses_mismatch) {
    ryz_results b, c;
    make_run(&b, "synthetic:tiny", 0.01, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:15m", 0.01, 0.05, 1, 1, 1000);
    expect_comparable(&b, &c, "different model:");
    ryz_results_set_str(&c.meta.suite_name, "other");
    expect_comparable(&b, &c, "different suites");
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* Compares b with c and checks the machine note. */
static void assert_machine_diff(const ryz_results *b, const ryz_results *c, const char *want) {
    ryz_regress_opts o = {1.10, 0.01, 1.01, NULL};
    ryz_regress r;
    char got[4096];
    ck_assert_msg(ryz_regress_compare(b, c, &o, &r) == RYZ_OK, "%s", ryz_last_error());
    ryz_regress_format_diffs(&r, got, sizeof got);
    ck_assert_str_eq(got, want);
    ck_assert_int_eq(r.n_diffs == 0, *want == '\0');
    ryz_regress_free(&r);
}

/* Sets the machine attributes of r. */
static void set_machine(ryz_results *r, const char *cpu, const char *blas, const char *device,
                        const char *hosts, int cores, int threads) {
    ryz_results_set_str(&r->meta.cpu_model, cpu);
    ryz_results_set_str(&r->meta.blas, blas);
    ryz_results_set_str(&r->meta.device, device);
    ryz_results_set_str(&r->meta.hosts, hosts);
    r->meta.cores = cores, r->meta.threads_per_rank = threads;
}

/* The machine note names each attribute that differs, one a file did not
 * record as such, nothing when nothing differs, and not the threads of
 * `ryz bench` files (each row is keyed by its own). */
START_TEST(test_machine_diff) {
    ryz_results b, c;
    make_run(&b, "synthetic:tiny", 0.01, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.01, 0.05, 2, 1, 1000);
    set_machine(&b, "Xeon", NULL, "cpu", "n1", 2, 1); /* b's file predates blas */
    set_machine(&c, "Xeon", "OpenBLAS SkylakeX", "cpu", "n1", 2, 2);
    assert_machine_diff(&b, &c, "blas (not recorded) -> 'OpenBLAS SkylakeX'; "
                                "threads_per_rank 1 -> 2");
    set_machine(&b, "Xeon", "OpenBLAS Prescott", "cpu", "n1", 2, 1);
    set_machine(&c, "EPYC", "OpenBLAS Zen", "H100", "n1,n2", 4, 1);
    c.meta.oversubscribed = 1;
    assert_machine_diff(&b, &c, "cpu_model 'Xeon' -> 'EPYC'; blas 'OpenBLAS Prescott' -> "
                                "'OpenBLAS Zen'; device 'cpu' -> 'H100'; hosts 1 -> 2; "
                                "cores 2 -> 4; oversubscribed no -> yes");
    set_machine(&c, "Xeon", "OpenBLAS Prescott", "cpu", "n2", 2, 4);
    c.meta.oversubscribed = 0;
    ryz_results_set_str(&b.meta.suite_name, "bench");
    ryz_results_set_str(&c.meta.suite_name, "bench");
    ryz_results_set_str(&b.meta.kind, RYZ_KIND_BENCH); /* as ryz bench writes them */
    ryz_results_set_str(&c.meta.kind, RYZ_KIND_BENCH);
    assert_machine_diff(&b, &c, "");
    char long_blas[400];
    memset(long_blas, 'x', sizeof long_blas - 1);
    long_blas[sizeof long_blas - 1] = '\0';
    ryz_results_set_str(&c.meta.blas, long_blas);
    ryz_regress_opts o = {1.10, 0.01, 1.01, NULL};
    ryz_regress r;
    ck_assert_int_eq(ryz_regress_compare(&b, &c, &o, &r), RYZ_OK);
    ck_assert_int_eq(r.n_diffs, 1);
    ck_assert_uint_eq(strlen(r.diffs[0].cand), sizeof r.diffs[0].cand - 1);
    ck_assert_str_eq(r.diffs[0].cand + sizeof r.diffs[0].cand - 4, "...");
    ryz_regress_free(&r);
    ryz_results_free(&b);
    ryz_results_free(&c);
}
END_TEST

/* Runs `ryz compare ARGS`, returning the exit code and stdout in out. */
static int run_compare(const char *args, char *out, size_t cap) {
    const char *bin = getenv("RYZ_BIN") ? getenv("RYZ_BIN") : "build/ryz";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s compare %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    ck_assert(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_cli_compare) {
    ryz_results b, c, d;
    char pb[] = "/tmp/ryz_regress_bXXXXXX", pc[] = "/tmp/ryz_regress_cXXXXXX", out[8192], args[256];
    char pd[] = "/tmp/ryz_regress_dXXXXXX";
    close(mkstemp(pb)), close(mkstemp(pc)), close(mkstemp(pd));
    make_run(&b, "synthetic:tiny", 0.010, 0.05, 1, 1, 1000);
    make_run(&c, "synthetic:tiny", 0.013, 0.05, 2, 1, 1000);
    make_run(&d, "synthetic:15m", 0.010, 0.05, 1, 1, 1000);
    ryz_results_set_str(&b.meta.blas, "OpenBLAS 0.3.21 Prescott");
    ryz_results_set_str(&c.meta.blas, "OpenBLAS 0.3.21 SkylakeX");
    ck_assert(ryz_results_write(&b, pb) == RYZ_OK && ryz_results_write(&c, pc) == RYZ_OK &&
              ryz_results_write(&d, pd) == RYZ_OK);
    snprintf(args, sizeof args, "%s %s", pb, pb);
    ck_assert_msg(run_compare(args, out, sizeof out) == 0, "A vs A:\n%s", out);
    ck_assert_msg(!strstr(out, "note:"), "A vs A noted a machine change:\n%s", out);
    snprintf(args, sizeof args, "%s %s", pb, pc);
    ck_assert_msg(run_compare(args, out, sizeof out) == 1 && strstr(out, "decode_s") &&
                      strstr(out, "REGRESSION") &&
                      strstr(out, "note: the runs differ in machine or setup, so a time ratio "
                                  "is theirs too: blas 'OpenBLAS 0.3.21 Prescott' -> "
                                  "'OpenBLAS 0.3.21 SkylakeX'\n"),
                  "slowed copy on another BLAS core:\n%s", out);
    snprintf(args, sizeof args, "%s %s -J %s.json", pb, pc, pc);
    ck_assert_int_eq(run_compare(args, out, sizeof out), 1);
    snprintf(args, sizeof args, "%s.json", pc);
    char *json = test_slurp(args, NULL);
    ck_assert_msg(json && strstr(json, "\"machine_diff\": {\"blas\": {\"base\": \"OpenBLAS "
                                       "0.3.21 Prescott\", \"new\": \"OpenBLAS 0.3.21 SkylakeX\"}}"),
                  "%s", json ? json : "(no JSON)");
    free(json);
    unlink(args);
    snprintf(args, sizeof args, "%s %s", pb, pd);
    ck_assert_msg(run_compare(args, out, sizeof out) == 2 && strstr(out, "different model:"),
                  "other model:\n%s", out);
    ck_assert_msg(run_compare("/nonexistent.h5 /nonexistent.h5", out, sizeof out) == 2, "%s", out);
    unlink(pb), unlink(pc), unlink(pd);
    ryz_results_free(&b), ryz_results_free(&c), ryz_results_free(&d);
}
END_TEST

/* The JSON of a comparison stays JSON: quotes and backslashes in a case
 * name are escaped and a ratio that is not finite is null. */
START_TEST(test_json_escapes) {
    ryz_regress_row row = {.tp = 2, .base = 1, .cand = 2, .ratio = INFINITY, .p_value = NAN,
                           .n_base = 3, .n_cand = 3, .regression = 1};
    snprintf(row.case_name, sizeof row.case_name, "%s", "a\"b\\c");
    snprintf(row.metric, sizeof row.metric, "%s", "decode_s");
    snprintf(row.why, sizeof row.why, "%s", "tab\there");
    ryz_regress r = {.rows = &row, .n = 1, .regressions = 1};
    char path[] = "/tmp/ryz_regress_jXXXXXX";
    close(mkstemp(path));
    ck_assert_int_eq(ryz_regress_write_json(&r, path), RYZ_OK);
    char *text = test_slurp(path, NULL);
    unlink(path);
    ck_assert_ptr_nonnull(text);
    const char *want[] = {"\"case\": \"a\\\"b\\\\c\"", "\"ratio\": null", "\"p\": null",
                          "\"why\": \"tab\\u0009here\"", "\"base\": 1,", "\"regressions\": 1",
                          "\"machine_diff\": {}"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]), "no %s in:\n%s", want[i], text);
    free(text);
}
END_TEST

int main(void) {
    Suite *s = suite_create("regress");
    TCase *tc = tcase_create("regress");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_mann_whitney_exact);
    tcase_add_test(tc, test_flags_20_percent_slowdown);
    tcase_add_test(tc, test_quiet_on_noise);
    tcase_add_test(tc, test_probe_rate_not_compared);
    tcase_add_test(tc, test_correctness_and_memory);
    tcase_add_test(tc, test_refuses_mismatch);
    tcase_add_test(tc, test_refuses_other_work);
    tcase_add_test(tc, test_refuses_other_text_prompt);
    tcase_add_test(tc, test_comm_command_lines);
    tcase_add_test(tc, test_comm_options_parsed);
    tcase_add_test(tc, test_bench_work);
    tcase_add_test(tc, test_kind_decides);
    tcase_add_test(tc, test_no_common_case);
    tcase_add_test(tc, test_acceptance_regression);
    tcase_add_test(tc, test_slowdown_not_significant);
    tcase_add_test(tc, test_machine_diff);
    tcase_add_test(tc, test_cli_compare);
    tcase_add_test(tc, test_json_escapes);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
