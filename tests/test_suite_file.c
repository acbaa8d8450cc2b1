/* Tests of suite files (INI parsing, loading) and ryz_parse_ids. */
#define _POSIX_C_SOURCE 200809L

#include "ryz/suite.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ryz/ckpt.h"
#include "ryz/model.h"
#include "testutil.h"

/* Asserts that parsing `text` fails with EINVAL, leaves the suite zeroed and
 * that the message contains each of the given substrings (NULL-terminated). */
static void expect_einval(const char *text, const char *const *needles) {
    ryz_suite s;
    memset(&s, 0xab, sizeof s);
    ryz_status st = ryz_suite_parse(text, "suites/x.ini", &s);
    ck_assert_int_eq(st, RYZ_EINVAL);
    ck_assert_ptr_null(s.cases);
    ck_assert_ptr_null(s.text);
    ck_assert_int_eq(s.n_cases, 0);
    for (int i = 0; needles[i]; i++)
        ck_assert_msg(strstr(ryz_last_error(), needles[i]), "'%s' not in '%s'", needles[i],
                      ryz_last_error());
    ryz_suite_free(&s);
}

#define EXPECT_EINVAL(text, ...)                                                                   \
    do {                                                                                           \
        const char *const needles_[] = {__VA_ARGS__, NULL};                                        \
        expect_einval(text, needles_);                                                             \
    } while (0)

#define CASE_OK "[case a]\nmodel = m\nprompt = 1\n"

static const char FULL[] = "; a full suite\n"
                           "  # indented comment\n"
                           "\n"
                           "[suite]\n"
                           "name = \"full suite\"\n"
                           "ranks = 8\n"
                           "repeat = 5\n"
                           "extra_runs = 7\n"
                           "warmup = 0\n"
                           "threads = 2\n"
                           "atol = 1e-5\n"
                           "rtol=2e-3\n"
                           "\n"
                           "[case big]\n"
                           "  model   =   \"synthetic:15m,layers=2\"  \n"
                           "tp = 1, 2 4,8\n"
                           "batch = 3\n"
                           "prompt = \"5, 6 7\t8\"\n"
                           "new_tokens = 32\n"
                           "backend = cuda\n"
                           "comm = nccl\n"
                           "[ case  small ]\r\n"
                           "model = synthetic:tiny\r\n"
                           "prompt = 0\r\n";

START_TEST(test_full_file) {
    ryz_suite s;
    ck_assert_int_eq(ryz_suite_parse(FULL, "suites/full.ini", &s), RYZ_OK);
    ck_assert_str_eq(s.name, "full suite");
    ck_assert_int_eq(s.ranks, 8);
    ck_assert_int_eq(s.repeat, 5);
    ck_assert_int_eq(s.extra_runs, 7);
    ck_assert_int_eq(s.warmup, 0);
    ck_assert_int_eq(s.threads, 2);
    ck_assert_double_eq(s.atol, 1e-5);
    ck_assert_double_eq(s.rtol, 2e-3);
    ck_assert_str_eq(s.text, FULL);
    ck_assert_int_eq(s.n_cases, 2);
    const ryz_suite_case *c = &s.cases[0];
    ck_assert_str_eq(c->name, "big");
    ck_assert_str_eq(c->model, "synthetic:15m,layers=2");
    ck_assert_int_eq(c->n_tp, 4);
    ck_assert_int_eq(c->tp[0], 1);
    ck_assert_int_eq(c->tp[1], 2);
    ck_assert_int_eq(c->tp[2], 4);
    ck_assert_int_eq(c->tp[3], 8);
    ck_assert_int_eq(c->batch, 3);
    ck_assert_int_eq(c->prompt_len, 4);
    ck_assert_int_eq(c->prompt[0], 5);
    ck_assert_int_eq(c->prompt[3], 8);
    ck_assert_int_eq(c->new_tokens, 32);
    ck_assert_str_eq(c->backend, "cuda");
    ck_assert_str_eq(c->comm, "nccl");
    c = &s.cases[1];
    ck_assert_str_eq(c->name, "small");
    ck_assert_str_eq(c->model, "synthetic:tiny");
    ck_assert_int_eq(c->n_tp, 1);
    ck_assert_int_eq(c->tp[0], 1);
    ck_assert_int_eq(c->batch, 1);
    ck_assert_int_eq(c->prompt_len, 1);
    ck_assert_int_eq(c->prompt[0], 0);
    ck_assert_int_eq(c->new_tokens, 16);
    ck_assert_str_eq(c->backend, "cpu");
    ck_assert_str_eq(c->comm, "mpi");
    ck_assert_int_eq(ryz_suite_max_tp(&s), 8);
    ryz_suite_free(&s);
    ryz_suite_free(&s);
    ck_assert_ptr_null(s.cases);
}
END_TEST

START_TEST(test_defaults) {
    ryz_suite s;
    ck_assert_int_eq(ryz_suite_parse(CASE_OK, "suites/quick.ini", &s), RYZ_OK);
    ck_assert_str_eq(s.name, "quick");
    ck_assert_int_eq(s.ranks, 0);
    ck_assert_int_eq(s.repeat, 3);
    ck_assert_int_eq(s.extra_runs, 0);
    ck_assert_int_eq(s.warmup, 1);
    ck_assert_int_eq(s.threads, 1);
    ck_assert_double_eq(s.atol, 1e-4);
    ck_assert_double_eq(s.rtol, 1e-4);
    ck_assert_double_eq(s.bf16_atol, 2e-2);
    ck_assert_double_eq(s.bf16_rtol, 2e-2);
    ck_assert_int_eq(s.cases[0].dtype, RYZ_DTYPE_F32);
    ck_assert_int_eq(s.n_cases, 1);
    ck_assert_int_eq(ryz_suite_max_tp(&s), 1);
    ryz_suite_free(&s);
    ck_assert_int_eq(ryz_suite_parse(CASE_OK, "plain", &s), RYZ_OK);
    ck_assert_str_eq(s.name, "plain");
    ryz_suite_free(&s);
    ck_assert_int_eq(ryz_suite_parse(CASE_OK, "dir.d/.hidden", &s), RYZ_OK);
    ck_assert_str_eq(s.name, "hidden"); /* a name may not begin with '.' */
    ryz_suite_free(&s);
}
END_TEST

START_TEST(test_unknown_key) {
    EXPECT_EINVAL("[suite]\nname = q\n\n[case a]\nmodel = m\nprompt = 1\nfoo = 3\n",
                  "suites/x.ini:7:", "unknown key 'foo'", "[case a]", "model, tp");
    EXPECT_EINVAL("[suite]\nrepeats = 3\n" CASE_OK, "suites/x.ini:2:", "'repeats'", "[suite]",
                  "repeat");
}
END_TEST

START_TEST(test_unknown_section) {
    EXPECT_EINVAL(CASE_OK "[cases b]\n", "suites/x.ini:4:", "unknown section '[cases b]'",
                  "[case NAME]");
    EXPECT_EINVAL("[Suite]\n" CASE_OK, "suites/x.ini:1:", "[Suite]");
    EXPECT_EINVAL("[suite\n" CASE_OK, "suites/x.ini:1:", "malformed section header");
}
END_TEST

START_TEST(test_key_before_section) {
    EXPECT_EINVAL("# comment\nname = q\n" CASE_OK, "suites/x.ini:2:", "key 'name'",
                  "before any section");
}
END_TEST

START_TEST(test_duplicate_key) {
    EXPECT_EINVAL("[case a]\nmodel = m\nprompt = 1\nmodel = n\n",
                  "suites/x.ini:4:", "duplicate key 'model'", "line 2");
    EXPECT_EINVAL("[suite]\natol = 1\natol = 2\n" CASE_OK, "suites/x.ini:3:", "'atol'");
}
END_TEST

START_TEST(test_duplicate_sections) {
    EXPECT_EINVAL(CASE_OK "[case a]\nmodel = m\nprompt = 1\n",
                  "suites/x.ini:4:", "duplicate case name 'a'", "line 1");
    EXPECT_EINVAL("[suite]\n[suite]\n" CASE_OK, "suites/x.ini:2:", "duplicate [suite]");
    /* The same key in two different sections is fine. */
    ryz_suite s;
    ck_assert_int_eq(ryz_suite_parse(CASE_OK "[case b]\nmodel = m\nprompt = 2\n", "x", &s), RYZ_OK);
    ck_assert_int_eq(s.n_cases, 2);
    ryz_suite_free(&s);
}
END_TEST

START_TEST(test_bad_numbers) {
    EXPECT_EINVAL("[suite]\nrepeat = 3x\n" CASE_OK, "suites/x.ini:2:", "'3x'", "repeat",
                  "integer >= 1");
    EXPECT_EINVAL("[suite]\nrepeat = 0\n" CASE_OK, "repeat", "integer >= 1");
    EXPECT_EINVAL("[suite]\nextra_runs = -1\n" CASE_OK, "extra_runs", "integer >= 0");
    EXPECT_EINVAL("[suite]\nranks = -1\n" CASE_OK, "ranks", "integer >= 0");
    EXPECT_EINVAL("[suite]\nthreads = 99999999999999999999\n" CASE_OK, "threads");
    EXPECT_EINVAL("[suite]\nwarmup = 1.5\n" CASE_OK, "warmup");
    EXPECT_EINVAL("[suite]\natol = 0\n" CASE_OK, "atol", "number > 0");
    EXPECT_EINVAL("[suite]\nrtol = abc\n" CASE_OK, "'abc'", "rtol");
    EXPECT_EINVAL("[suite]\nrtol = inf\n" CASE_OK, "rtol");
    EXPECT_EINVAL(CASE_OK "batch = 0\n", "suites/x.ini:4:", "batch");
    EXPECT_EINVAL(CASE_OK "new_tokens = ten\n", "new_tokens", "'ten'");
}
END_TEST

/* A ";" or "#" after a blank starts a comment, in a value too, unless
 * quoted; one with no blank before it is text. */
START_TEST(test_inline_comments) {
    ryz_suite s;
    ck_assert_int_eq(ryz_suite_parse("[suite]\nname = foo   ; my suite\nrepeat = 4 # four\n"
                                     "[case a]\nmodel = m\t; tabbed\nprompt = 1 2 ; ids\n"
                                     "[case b;c]\nmodel = \"x ; y\" ; quoted\nprompt = 3\n",
                                     "x", &s),
                     RYZ_OK);
    ck_assert_str_eq(s.name, "foo");
    ck_assert_int_eq(s.repeat, 4);
    ck_assert_str_eq(s.cases[0].model, "m");
    ck_assert_int_eq(s.cases[0].prompt_len, 2);
    ck_assert_str_eq(s.cases[1].model, "x ; y");
    ryz_suite_free(&s);
    ck_assert_int_eq(ryz_suite_parse("[suite]\nname = a;b#c\n" CASE_OK, "x", &s), RYZ_OK);
    ck_assert_str_eq(s.name, "a;b#c");
    ryz_suite_free(&s);
    EXPECT_EINVAL("[suite]\nrepeat = ; none\n" CASE_OK, "x.ini:2:", "empty value for repeat");
}
END_TEST

/* The suite file README.md shows parses, with its comments, as written. */
START_TEST(test_readme_example) {
    char *readme = test_slurp("README.md", NULL);
    ck_assert_ptr_nonnull(readme);
    char *start = strstr(readme, "```ini\n[suite]"), *end = start ? strstr(start + 6, "```") : NULL;
    ck_assert_msg(start && end, "no ```ini [suite] block in README.md");
    *end = '\0';
    ryz_suite s;
    ck_assert_msg(ryz_suite_parse(start + 7, "README.md", &s) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_str_eq(s.name, "quick");
    ck_assert_int_eq(s.threads, 1);
    ck_assert_str_eq(s.cases[0].comm, "mpi");
    ck_assert_str_eq(s.cases[0].backend, "cpu");
    ryz_suite_free(&s);
    free(readme);
}
END_TEST

START_TEST(test_bad_tp) {
    EXPECT_EINVAL(CASE_OK "tp = 1, 0\n", "suites/x.ini:4:", "bad tp degree '0'", "tp = 1, 2, 4");
    EXPECT_EINVAL(CASE_OK "tp = 1, 2, 02\n", "suites/x.ini:4:", "tp 2 listed twice");
    /* a results file's text from before these rules still reads */
    ryz_suite rec;
    const char *old = "[suite]\nname = a/b\n[case a]\nmodel = m\nprompt = 1\ntp = 1, 2, 2\n"
                      "[acceptance]\nmin_speedup = 4:3 4:3.5\n";
    ck_assert_msg(ryz_suite_parse_recorded(old, "suite_text", &rec) == RYZ_OK, "%s",
                  ryz_last_error());
    ck_assert_str_eq(rec.cases[0].model, "m");
    ryz_suite_free(&rec);
    ck_assert_int_eq(ryz_suite_parse(old, "x.ini", &rec), RYZ_EINVAL);
    /* and one from a later ryz, with keys this one lacks */
    const char *later = "[suite]\nrepeat = 4\nfuture_key = 2\n[case a]\nmodel = m\nprompt = 1\n"
                        "future_case_key = x\n[acceptance]\nfuture_check = 3\n";
    ck_assert_msg(ryz_suite_parse_recorded(later, "suite_text", &rec) == RYZ_OK, "%s",
                  ryz_last_error());
    ck_assert_int_eq(rec.repeat, 4);
    ryz_suite_free(&rec);
    ck_assert_int_eq(ryz_suite_parse(later, "x.ini", &rec), RYZ_EINVAL);
    /* a default name loses its leading dots, as a given one may not have them */
    ck_assert_int_eq(ryz_suite_parse(CASE_OK, "dir/.hidden.ini", &rec), RYZ_OK);
    ck_assert_str_eq(rec.name, "hidden");
    ryz_suite_free(&rec);
    EXPECT_EINVAL("[suite]\nname = a/b\n" CASE_OK, "suites/x.ini:2:", "may not hold '/'");
    EXPECT_EINVAL("[suite]\nname = ..\n" CASE_OK, "suites/x.ini:2:", "begin with '.'");
    EXPECT_EINVAL(CASE_OK "tp = 1,x\n", "'x'");
    EXPECT_EINVAL(CASE_OK "tp = -2\n", "'-2'");
    EXPECT_EINVAL(CASE_OK "tp = , ,\n", "empty tp list");
    EXPECT_EINVAL(CASE_OK "tp = 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n", "too many tp", "16");
    ryz_suite s;
    ck_assert_int_eq(
        ryz_suite_parse(CASE_OK "tp = 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", "x", &s), RYZ_OK);
    ck_assert_int_eq(s.cases[0].n_tp, RYZ_SUITE_MAX_TP);
    ck_assert_int_eq(ryz_suite_max_tp(&s), 16);
    ryz_suite_free(&s);
}
END_TEST

START_TEST(test_missing_required) {
    EXPECT_EINVAL("[suite]\n[case a]\nprompt = 1\n", "suites/x.ini:2:", "[case a] has no model");
    EXPECT_EINVAL("[case a]\nmodel = m\n[case b]\nmodel = m\nprompt = 1\n",
                  "suites/x.ini:1:", "[case a] has no prompt");
    EXPECT_EINVAL(CASE_OK "[case b]\nmodel = m\n", "suites/x.ini:4:", "[case b] has no prompt");
}
END_TEST

START_TEST(test_no_cases) {
    EXPECT_EINVAL("[suite]\nname = q\n", "suites/x.ini:2:", "no [case NAME]");
    EXPECT_EINVAL("", "suites/x.ini:1:", "no [case NAME]");
    EXPECT_EINVAL("; only a comment\n", "no [case NAME]");
}
END_TEST

START_TEST(test_dtype) {
    ryz_suite s;
    ck_assert_int_eq(ryz_suite_parse("[suite]\nbf16_atol = 0.05\nbf16_rtol = 1e-3\n" CASE_OK
                                     "dtype = bfloat16\n", "x", &s), RYZ_OK);
    ck_assert_int_eq(s.cases[0].dtype, RYZ_DTYPE_BF16);
    ck_assert_double_eq(s.bf16_atol, 0.05);
    ck_assert_double_eq(s.bf16_rtol, 1e-3);
    ryz_suite_free(&s);
    EXPECT_EINVAL(CASE_OK "dtype = fp16\n", "suites/x.ini:4:", "bad dtype 'fp16'", "f32 or bf16");
    EXPECT_EINVAL("[suite]\nbf16_atol = -1\n" CASE_OK, "suites/x.ini:2:", "bf16_atol",
                  "e.g. 2e-2");
}
END_TEST

/* tf32 = 1 (cuda's TF32 GEMMs) and its own tolerance keys. */
START_TEST(test_tf32) {
    ryz_suite s;
    ck_assert_int_eq(ryz_suite_parse(CASE_OK, "x", &s), RYZ_OK);
    ck_assert_int_eq(s.cases[0].tf32, 0);
    ck_assert_double_eq(s.tf32_atol, RYZ_TF32_TOL);
    ck_assert_double_eq(s.tf32_rtol, RYZ_TF32_TOL);
    ryz_suite_free(&s);
    ck_assert_int_eq(ryz_suite_parse("[suite]\ntf32_atol = 3e-3\ntf32_rtol = 4e-3\n" CASE_OK
                                     "backend = cuda\ntf32 = 1\n", "x", &s), RYZ_OK);
    ck_assert_int_eq(s.cases[0].tf32, 1);
    ck_assert_double_eq(s.tf32_atol, 3e-3);
    ck_assert_double_eq(s.tf32_rtol, 4e-3);
    ryz_suite_free(&s);
    EXPECT_EINVAL(CASE_OK "tf32 = yes\n", "suites/x.ini:4:", "bad tf32 'yes'", "0 or 1");
    /* Each case's tolerance: fp32's, bf16's, tf32's, the larger of both. */
    ryz_suite t = {.atol = 1, .rtol = 2, .bf16_atol = 30, .bf16_rtol = 4,
                   .tf32_atol = 5, .tf32_rtol = 60};
    ryz_suite_case c = {.dtype = RYZ_DTYPE_F32};
    double want[4][2] = {{1, 2}, {30, 4}, {5, 60}, {30, 60}}, atol, rtol;
    for (int k = 0; k < 4; k++) {
        c.dtype = k & 1 ? RYZ_DTYPE_BF16 : RYZ_DTYPE_F32, c.tf32 = k >> 1;
        ryz_suite_case_tol(&t, &c, &atol, &rtol);
        ck_assert_msg(atol == want[k][0] && rtol == want[k][1], "case %d: %g %g", k, atol, rtol);
    }
    EXPECT_EINVAL("[suite]\ntf32_rtol = 0\n" CASE_OK, "suites/x.ini:2:", "tf32_rtol",
                  "e.g. 1e-2");
}
END_TEST

/* ryz_suite_loosened: one line per key set above its default, in the
 * order of the file format; a key at or below its default says nothing. */
START_TEST(test_loosened) {
    ryz_suite s;
    char out[RYZ_SUITE_LOOSENED_MAX], small[40];
    ck_assert_int_eq(ryz_suite_parse(CASE_OK, "x", &s), RYZ_OK);
    ck_assert_int_eq(ryz_suite_loosened(&s, "> ", out, sizeof out), 0);
    ck_assert_str_eq(out, "");
    ryz_suite_free(&s);
    ck_assert_int_eq(
        ryz_suite_parse("[suite]\ntf32_rtol = 0.05\nrtol = 1e-4\natol = 0.01\n"
                        "bf16_atol = 0.02\nbf16_rtol = 3e-2\ntf32_atol = 1e-3\n" CASE_OK,
                        "x", &s),
        RYZ_OK);
    ck_assert_int_eq(ryz_suite_loosened(&s, "ryz: note: ", out, sizeof out), 3);
    ck_assert_str_eq(out, "ryz: note: suite loosens atol to 0.01 (default 0.0001): outputs are "
                          "judged against a looser bound than the fp32 default\n"
                          "ryz: note: suite loosens bf16_rtol to 0.03 (default 0.02): bf16 cases "
                          "are judged against a looser bound than bf16's default\n"
                          "ryz: note: suite loosens tf32_rtol to 0.05 (default 0.01): tf32 cases "
                          "are judged against a looser bound than tf32's default\n");
    ck_assert_int_eq(ryz_suite_loosened(&s, "", small, sizeof small), 3); /* cut, terminated */
    ck_assert_int_eq(strlen(small), sizeof small - 1);
    ryz_suite_free(&s);
}
END_TEST

START_TEST(test_bad_values) {
    EXPECT_EINVAL(CASE_OK "backend = gpu\n", "suites/x.ini:4:", "'gpu'", "cpu or cuda");
    EXPECT_EINVAL(CASE_OK "comm = gloo\n", "'gloo'", "mpi, nccl or shm");
    EXPECT_EINVAL("[case a]\nmodel = m\nprompt = 1 two\n", "suites/x.ini:3:", "prompt", "'two'");
    EXPECT_EINVAL("[case a]\nmodel = \"m\nprompt = 1\n", "suites/x.ini:2:", "unterminated quote");
    EXPECT_EINVAL("[case a]\nmodel =\nprompt = 1\n", "suites/x.ini:2:", "empty value", "model");
    EXPECT_EINVAL("[case a]\nmodel = \"\"\nprompt = 1\n", "empty value");
    EXPECT_EINVAL(CASE_OK "just words\n", "suites/x.ini:4:", "key = value");
    EXPECT_EINVAL(CASE_OK " = 3\n", "missing key");
    EXPECT_EINVAL("[case]\nmodel = m\nprompt = 1\n", "suites/x.ini:1:", "needs a name");
    EXPECT_EINVAL("[case 0123456789012345678901234567890123456789012345678901234567890123]\n",
                  "too long", "63");
    char longmodel[400] = "[case a]\nprompt = 1\nmodel = ";
    memset(longmodel + strlen(longmodel), 'm', 300);
    EXPECT_EINVAL(longmodel, "suites/x.ini:3:", "model", "too long");
}
END_TEST

START_TEST(test_parse_ids) {
    int *ids = NULL, n = -1;
    ck_assert_int_eq(ryz_parse_ids("1 2,3\t4", &ids, &n), RYZ_OK);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[3], 4);
    free(ids);
    ck_assert_int_eq(ryz_parse_ids(",, 007 ,,", &ids, &n), RYZ_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(ids[0], 7);
    free(ids);
    ck_assert_int_eq(ryz_parse_ids("0 2147483647", &ids, &n), RYZ_OK);
    ck_assert_int_eq(ids[0], 0);
    ck_assert_int_eq(ids[1], 2147483647);
    free(ids);
    const char *bad[] = {"2147483648", "1 -1", "+3", "12a", "99999999999999999999", "1;2"};
    const char *tok[] = {"'2147483648'",           "'-1'", "'+3'", "'12a'",
                         "'99999999999999999999'", "'1;2'"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(ryz_parse_ids(bad[i], &ids, &n), RYZ_EINVAL);
        ck_assert_ptr_null(ids);
        ck_assert_int_eq(n, 0);
        ck_assert_msg(strstr(ryz_last_error(), tok[i]), "'%s' not in '%s'", tok[i],
                      ryz_last_error());
    }
    const char *empty[] = {"", "   ", " , ,\t"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        ck_assert_int_eq(ryz_parse_ids(empty[i], &ids, &n), RYZ_EINVAL);
        ck_assert_ptr_null(ids);
        ck_assert_ptr_nonnull(strstr(ryz_last_error(), "empty id list"));
    }
}
END_TEST

START_TEST(test_max_tp_and_free) {
    ryz_suite s;
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(ryz_suite_max_tp(&s), 1);
    ryz_suite_free(&s);
    ryz_suite_free(&s);
    ck_assert_int_eq(
        ryz_suite_parse("[case a]\nmodel=m\nprompt=1\ntp=2 1\n[case b]\nmodel=m\nprompt=1\ntp=4",
                        "x", &s),
        RYZ_OK);
    ck_assert_int_eq(ryz_suite_max_tp(&s), 4);
    ryz_suite_free(&s);
    ck_assert_int_eq(ryz_suite_max_tp(&s), 1);
}
END_TEST

/* Writes `len` bytes of `data` to a new temp file; its path goes to path. */
static void write_temp(char *path, const char *data, size_t len) {
    strcpy(path, "/tmp/ryz_suite_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

START_TEST(test_load) {
    char path[64];
    ryz_suite s;
    write_temp(path, FULL, strlen(FULL));
    ck_assert_int_eq(ryz_suite_load(path, &s), RYZ_OK);
    ck_assert_str_eq(s.name, "full suite");
    ck_assert_int_eq(s.n_cases, 2);
    ck_assert_str_eq(s.text, FULL);
    ryz_suite_free(&s);
    unlink(path);

    write_temp(path, "[case a]\nmodel = m\nbogus = 1\n", 29);
    ck_assert_int_eq(ryz_suite_load(path, &s), RYZ_EINVAL);
    ck_assert_ptr_nonnull(strstr(ryz_last_error(), path));
    ck_assert_ptr_nonnull(strstr(ryz_last_error(), ":3: unknown key 'bogus'"));
    ck_assert_ptr_null(s.cases);
    ck_assert_ptr_null(s.text);
    unlink(path);

    write_temp(path, "[case a]\nmodel = m\0\nprompt = 1\n", 31);
    ck_assert_int_eq(ryz_suite_load(path, &s), RYZ_EINVAL);
    ck_assert_ptr_nonnull(strstr(ryz_last_error(), "NUL byte"));
    unlink(path);

    size_t big = 1024 * 1024 + 1;
    char *data = malloc(big);
    ck_assert_ptr_nonnull(data);
    memset(data, '\n', big);
    write_temp(path, data, big);
    free(data);
    ck_assert_int_eq(ryz_suite_load(path, &s), RYZ_EINVAL);
    ck_assert_ptr_nonnull(strstr(ryz_last_error(), "too large"));
    ck_assert_ptr_null(s.text);
    unlink(path);
}
END_TEST

START_TEST(test_load_missing) {
    ryz_suite s;
    const char *path = "/nonexistent/dir/suite.ini";
    ck_assert_int_eq(ryz_suite_load(path, &s), RYZ_EIO);
    ck_assert_ptr_nonnull(strstr(ryz_last_error(), path));
    ck_assert_ptr_nonnull(strstr(ryz_last_error(), "No such file"));
    ck_assert_ptr_null(s.cases);
    ck_assert_ptr_null(s.text);
    ryz_suite_free(&s);
    ck_assert_int_eq(ryz_suite_load("/tmp", &s), RYZ_EIO);
    char dir[256], fifo[256]; /* refused at once, not read forever */
    test_mkfifo(dir, fifo, sizeof fifo, "suite.ini");
    ck_assert_int_eq(ryz_suite_load(fifo, &s), RYZ_EIO);
    ck_assert_msg(strstr(ryz_last_error(), "not a regular file"), "%s", ryz_last_error());
    test_rmfifo(dir, fifo);
}
END_TEST

/* Parses one [case] of `model` with `extra` lines (and [suite] lines
 * `suite`), then expects ryz_suite_validate to fail with `needle`. */
static void expect_invalid(const char *suite, const char *model, const char *extra,
                           const char *needle) {
    char text[1024];
    snprintf(text, sizeof text, "[suite]\n%s\n[case c1]\nmodel = %s\nprompt = 1 2 3\n%s\n",
             suite, model, extra);
    ryz_suite s = {0};
    ck_assert_msg(ryz_suite_parse(text, "v.ini", &s) == RYZ_OK, "parse: %s", ryz_last_error());
    ryz_status st = ryz_suite_validate(&s);
    ck_assert_msg(st == RYZ_EINVAL && strstr(ryz_last_error(), needle),
                  "validate gave %d '%s', expected EINVAL with '%s'", st, ryz_last_error(),
                  needle);
    ryz_suite_free(&s);
}

START_TEST(test_validate) {
    const char *tiny = "synthetic:tiny";
    expect_invalid("", tiny, "tp = 1 3", "case c1: n_heads 4 not divisible by tp 3");
    expect_invalid("", tiny, "comm = nccl", "case c1: comm nccl needs backend = cuda");
    expect_invalid("", tiny, "tf32 = 1", "case c1: tf32 = 1 needs backend = cuda");
    if (ryz_backend_available(RYZ_BACKEND_CUDA) != RYZ_OK) /* bf16 on cuda: only the device */
        expect_invalid("", tiny, "backend = cuda\ndtype = bf16",
                       "case c1: backend cuda: no CUDA device: ");
    expect_invalid("", "synthetic:nope", "", "case c1: unknown synthetic preset 'nope'");
    expect_invalid("", "synthetic:tiny,vocab=3", "", "prompt id 3 outside vocab [0, 3)");
    expect_invalid("", tiny, "new_tokens = 127", "exceed seq_len 128");
    expect_invalid("ranks = 2", tiny, "tp = 4", "ranks 2 smaller than its largest tp 4");
    expect_invalid("repeat = 65", tiny, "", "repeat 65 above the 64 timed runs");
    expect_invalid("repeat = 9\nextra_runs = 56", tiny, "",
                   "repeat 9 + extra_runs 56 above the 64 timed runs kept per phase");
    ryz_suite s = {0};
    ck_assert(ryz_suite_parse("[case ok]\nmodel = synthetic:tiny\nprompt = 1\ntp = 1 2 4\n",
                              "ok.ini", &s) == RYZ_OK);
    ck_assert_msg(ryz_suite_validate(&s) == RYZ_OK, "valid suite rejected: %s",
                  ryz_last_error());
    ryz_suite_free(&s);
}
END_TEST

/* backend = cuda needs a CUDA build and a device: without them the case
 * is refused with the reason, before any rank starts (test_cuda checks
 * the GPU side: one GPU per rank for comm = nccl). */
START_TEST(test_validate_cuda) {
    if (ryz_backend_available(RYZ_BACKEND_CUDA) == RYZ_OK) {
        printf("test_validate_cuda: a CUDA device is present; refusals covered by test_cuda\n");
        return;
    }
    const char *tiny = "synthetic:tiny";
    expect_invalid("", tiny, "backend = cuda", "case c1: backend cuda: no CUDA device: ");
    expect_invalid("", tiny, "backend = cuda\ncomm = nccl\ntp = 1 2",
                   "case c1: backend cuda: no CUDA device: ");
}
END_TEST

/* prompt_text holds text as written (quotes keep blanks and ";", an inline
 * comment after a blank goes, digits stay text), beside an optional
 * tokenizer; the ids come only from validation. */
START_TEST(test_prompt_text_parse) {
    ryz_suite s;
    ck_assert_msg(ryz_suite_parse("[case a]\nmodel = m\nprompt_text = Once upon a time ; text\n"
                                  "tokenizer = \"dir/tok.bin\"\n"
                                  "[case b]\nmodel = m\nprompt_text = \"  1 2 ; 3  \"\n"
                                  "[case c]\nmodel = m\nprompt = 1 2 3\n",
                                  "t.ini", &s) == RYZ_OK,
                  "%s", ryz_last_error());
    ck_assert_str_eq(s.cases[0].prompt_text, "Once upon a time");
    ck_assert_str_eq(s.cases[0].tokenizer, "dir/tok.bin");
    ck_assert_int_eq(s.cases[0].prompt_line, 3);
    ck_assert_int_eq(s.cases[0].tokenizer_line, 4);
    ck_assert_ptr_null(s.cases[0].prompt);
    ck_assert_int_eq(s.cases[0].prompt_len, 0);
    ck_assert_str_eq(s.cases[1].prompt_text, "  1 2 ; 3  ");
    ck_assert_str_eq(s.cases[1].tokenizer, "");
    ck_assert_ptr_null(s.cases[1].prompt);
    ck_assert_str_eq(s.cases[2].prompt_text, ""); /* "1 2 3" as prompt stays ids */
    ck_assert_int_eq(s.cases[2].prompt_len, 3);
    ck_assert_int_eq(s.cases[2].prompt[2], 3);
    ck_assert_str_eq(s.where, "t.ini");
    ryz_suite_free(&s);
    /* A prompt_text line longer than the field is refused, naming the limit. */
    size_t n = RYZ_SUITE_TEXT_MAX + 64;
    char *big = malloc(n + 64);
    ck_assert_ptr_nonnull(big);
    int at = snprintf(big, n + 64, "[case a]\nmodel = m\nprompt_text = ");
    memset(big + at, 'x', RYZ_SUITE_TEXT_MAX);
    strcpy(big + at + RYZ_SUITE_TEXT_MAX, "\n");
    EXPECT_EINVAL(big, "suites/x.ini:3:", "value of prompt_text too long");
    free(big);
}
END_TEST

/* One prompt per case, ids or text; a tokenizer only beside text. */
START_TEST(test_prompt_text_errors) {
    EXPECT_EINVAL("[case a]\nmodel = m\nprompt = 1 2\nprompt_text = hi\n",
                  "suites/x.ini:4:", "[case a] has both prompt (line 3) and prompt_text (line 4)",
                  "give one");
    EXPECT_EINVAL("[case a]\nmodel = m\nprompt_text = hi\nprompt = 1\n[case b]\n",
                  "suites/x.ini:4:", "has both prompt");
    EXPECT_EINVAL("[case a]\nmodel = m\ntokenizer = t.bin\n",
                  "suites/x.ini:1:", "[case a] has no prompt", "prompt_text = Once upon a time");
    EXPECT_EINVAL("[case a]\nmodel = m\nprompt = 1\ntokenizer = t.bin\n",
                  "suites/x.ini:4:", "tokenizer without prompt_text");
    EXPECT_EINVAL("[case a]\nmodel = m\nprompt_text = \"\"\n",
                  "suites/x.ini:3:", "empty value for prompt_text");
    EXPECT_EINVAL("[case a]\nmodel = m\nprompt_text = a\nprompt_text = b\n",
                  "suites/x.ini:4:", "duplicate key 'prompt_text'");
    EXPECT_EINVAL("[case a]\nmodel = m\nprompt = Once upon a time\n",
                  "suites/x.ini:3:", "bad id 'Once'");
}
END_TEST

/* Parses `text` as "v.ini" and validates it, expecting status `want` and
 * each needle (NULL-terminated) in the message. */
static void expect_validate(const char *text, ryz_status want, const char *const *needles) {
    ryz_suite s;
    ck_assert_msg(ryz_suite_parse(text, "v.ini", &s) == RYZ_OK, "parse: %s", ryz_last_error());
    ryz_status st = ryz_suite_validate(&s);
    ck_assert_msg(st == want, "validate gave %d '%s', expected %d", st, ryz_last_error(), want);
    for (int i = 0; needles[i]; i++)
        ck_assert_msg(strstr(ryz_last_error(), needles[i]), "'%s' not in '%s'", needles[i],
                      ryz_last_error());
    ryz_suite_free(&s);
}
#define EXPECT_VALIDATE(text, want, ...)                                                           \
    do {                                                                                           \
        const char *const needles_[] = {__VA_ARGS__, NULL};                                        \
        expect_validate(text, want, needles_);                                                     \
    } while (0)

/* Validation encodes prompt_text with the fixture tokenizer (testutil.h)
 * into the ids a `prompt =` case gives by hand, BOS first; the tokenizer
 * defaults to tokenizer.bin beside a checkpoint; problems name file, line
 * and case. */
START_TEST(test_prompt_text_validate) {
    char dir[256], tok[512], text[2048], model[512];
    test_mkdtemp(dir, sizeof dir, "suite-text");
    snprintf(tok, sizeof tok, "%s/hello.bin", dir);
    test_write_hello_tokenizer(tok);
    snprintf(text, sizeof text,
             "[case ids]\nmodel = synthetic:tiny,vocab=%d\nprompt = 1 268 276\n"
             "[case text]\nmodel = synthetic:tiny,vocab=%d\nprompt_text = hello world\n"
             "tokenizer = %s\ntp = 1 2\n",
             TEST_HELLO_VOCAB, TEST_HELLO_VOCAB, tok);
    ryz_suite s;
    ck_assert_int_eq(ryz_suite_parse(text, "v.ini", &s), RYZ_OK);
    ck_assert_msg(ryz_suite_validate(&s) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_int_eq(s.cases[1].prompt_len, s.cases[0].prompt_len);
    ck_assert_int_eq(memcmp(s.cases[1].prompt, s.cases[0].prompt, 3 * sizeof(int)), 0);
    int *first = s.cases[1].prompt; /* validated again: encoded once, kept */
    ck_assert_msg(ryz_suite_validate(&s) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_ptr_eq(s.cases[1].prompt, first);
    ryz_suite_free(&s);

    /* A synthetic model has no tokenizer: the key is required. */
    EXPECT_VALIDATE("[case a]\nmodel = synthetic:tiny\n\nprompt_text = hello\n", RYZ_EINVAL,
                    "v.ini:4: case a: prompt_text needs 'tokenizer = PATH'", "synthetic");
    /* A tokenizer that is not there: the file and the key's line. */
    EXPECT_VALIDATE("[case a]\nmodel = synthetic:tiny\nprompt_text = hello\n"
                    "tokenizer = /nonexistent/ryz/tok.bin\n",
                    RYZ_EIO, "v.ini:4: case a: prompt_text", "/nonexistent/ryz/tok.bin");
    /* Text too long for seq_len once encoded (3 tokens + 127 > 128). */
    snprintf(text, sizeof text,
             "[case a]\nmodel = synthetic:tiny,vocab=%d\nprompt_text = hello world\n"
             "tokenizer = %s\nnew_tokens = 127\n",
             TEST_HELLO_VOCAB, tok);
    EXPECT_VALIDATE(text, RYZ_EINVAL, "v.ini:3: case a: prompt_text 3 + new_tokens 127",
                    "exceed seq_len 128");
    /* A tokenizer of fewer tokens than the model's vocab. */
    snprintf(text, sizeof text,
             "[case a]\nmodel = synthetic:tiny,vocab=%d\nprompt_text = hi\ntokenizer = %s\n",
             TEST_HELLO_VOCAB + 5, tok);
    EXPECT_VALIDATE(text, RYZ_EINVAL, "v.ini:4: case a: prompt_text", "vocab 283", tok);

    /* A llama2.c checkpoint: tokenizer.bin in its directory by default. */
    ryz_model_config cfg;
    ryz_weights *w = NULL;
    snprintf(model, sizeof model, "%s/m.bin", dir);
    snprintf(text, sizeof text, "synthetic:tiny,vocab=%d", TEST_HELLO_VOCAB);
    ck_assert_int_eq(ryz_model_source_open(text, 1, 0, &cfg, &w), RYZ_OK);
    ck_assert_msg(ryz_ckpt_export_llama2c(model, &cfg, w) == RYZ_OK, "%s", ryz_last_error());
    ryz_weights_close(w);
    snprintf(text, sizeof text, "[case a]\nmodel = %s\nprompt_text = hello world\n", model);
    if (access("tokenizer.bin", F_OK) != 0) /* else ./tokenizer.bin would stand in */
        EXPECT_VALIDATE(text, RYZ_EINVAL, "v.ini:3: case a: prompt_text: no tokenizer",
                        "neither tokenizer.bin beside", "tokenizer = PATH");
    snprintf(tok, sizeof tok, "%s/tokenizer.bin", dir);
    test_write_hello_tokenizer(tok);
    ck_assert_int_eq(ryz_suite_parse(text, "v.ini", &s), RYZ_OK);
    ck_assert_msg(ryz_suite_validate(&s) == RYZ_OK, "%s", ryz_last_error());
    int want[] = {1, 268, 276};
    ck_assert_int_eq(s.cases[0].prompt_len, 3);
    ck_assert_int_eq(memcmp(s.cases[0].prompt, want, sizeof want), 0);
    ryz_suite_free(&s);
    test_rm_tree(dir);
}
END_TEST

static Suite *suite_file_suite(void) {
    Suite *s = suite_create("suite_file");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_full_file);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_unknown_key);
    tcase_add_test(tc, test_unknown_section);
    tcase_add_test(tc, test_key_before_section);
    tcase_add_test(tc, test_duplicate_key);
    tcase_add_test(tc, test_duplicate_sections);
    tcase_add_test(tc, test_bad_numbers);
    tcase_add_test(tc, test_bad_tp);
    tcase_add_test(tc, test_missing_required);
    tcase_add_test(tc, test_no_cases);
    tcase_add_test(tc, test_bad_values);
    tcase_add_test(tc, test_dtype);
    tcase_add_test(tc, test_tf32);
    tcase_add_test(tc, test_loosened);
    tcase_add_test(tc, test_parse_ids);
    tcase_add_test(tc, test_max_tp_and_free);
    tcase_add_test(tc, test_load);
    tcase_add_test(tc, test_load_missing);
    tcase_add_test(tc, test_inline_comments);
    tcase_add_test(tc, test_readme_example);
    tcase_add_test(tc, test_validate);
    tcase_add_test(tc, test_validate_cuda);
    tcase_add_test(tc, test_prompt_text_parse);
    tcase_add_test(tc, test_prompt_text_errors);
    tcase_add_test(tc, test_prompt_text_validate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return test_run_suite(suite_file_suite());
}
