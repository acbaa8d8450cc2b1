/* Tests of report (src/report, `ryz show`, `ryz plot`, `ryz report`): the
 * summary sentence and helpers in-process, then the binary named by RYZ_BIN
 * (default build/ryz) on a results file built in memory and written with
 * ryz_results_write. Plot checks need gnuplot and say so when skipped.
 * Every test works in its own temporary directory. */
#define _POSIX_C_SOURCE 200809L

#include "ryz/report.h"
#include "ryz/results.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define PATH_LEN 512
#define ALPHA_TP2                                                                                  \
    "TP=2: 1.86x decode speedup, 93% efficiency; all-reduce of 1.1 KiB p50 41 us; "                \
    "9% of decode time in communication; outputs agree (max abs error 2.1e-06)"

static char tmpdir[256];

/* ---- helpers ---- */

static char *in_tmp(char *buf, const char *name) {
    snprintf(buf, PATH_LEN, "%s/%s", tmpdir, name);
    return buf;
}

static void setup(void) {
    test_mkdtemp(tmpdir, sizeof tmpdir, "report");
}

static void teardown(void) {
    test_rm_tree(tmpdir);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static int gnuplot_present(void) {
    char path[PATH_LEN];
    int ok = ryz_plot_find_gnuplot(path, sizeof path) == RYZ_OK;
    if (!ok)
        fprintf(stderr, "SKIP: gnuplot not found, plot checks skipped (%s)\n", ryz_last_error());
    return ok;
}

/* What one run of the binary did. */
typedef struct {
    int code;        /* exit status, -1 if it did not exit */
    char *out, *err; /* malloc'd */
} run_result;

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
}

/* Runs the binary with args (NULL-terminated), optionally with env
 * NAME=VALUE set, capturing stdout and stderr through files in tmpdir. */
static run_result run_ryz(const char *env, const char *value, const char *const *args) {
    const char *bin = getenv("RYZ_BIN") && *getenv("RYZ_BIN") ? getenv("RYZ_BIN") : "build/ryz";
    ck_assert_msg(access(bin, X_OK) == 0, "%s is not an executable (run make first)", bin);
    char out[PATH_LEN], err[PATH_LEN];
    const char *argv[16] = {bin};
    for (int i = 0; args[i]; i++)
        argv[i + 1] = args[i];
    in_tmp(out, "stdout.txt"), in_tmp(err, "stderr.txt");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (env)
            setenv(env, value, 1);
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(126);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    run_result r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, test_slurp(out, NULL), test_slurp(err, NULL)};
    unlink(out), unlink(err);
    return r;
}

/* ---- the results file under test ---- */

static void add_correctness(ryz_results *r, const char *name, int tp, double max_abs) {
    ryz_row_correctness c = {.tp = tp,
                             .batch = 1,
                             .positions = 23,
                             .max_abs = max_abs,
                             .max_rel = max_abs / 4,
                             .min_cos = 1,
                             .top1_agree = 23,
                             .greedy_divergence = -1,
                             .pass = 1};
    snprintf(c.case_name, sizeof c.case_name, "%s", name);
    ck_assert_int_eq(ryz_results_add_correctness(r, &c), RYZ_OK);
}

static void add_timing(ryz_results *r, const char *name, int tp, double speedup, double comm) {
    const char *phases[] = {"prefill", "decode"};
    for (int i = 0; i < 2; i++) {
        ryz_row_timing t = {.tp = tp,
                            .runs = 3,
                            .median_s = 0.01 / speedup,
                            .p10_s = 0.009,
                            .p90_s = 0.011,
                            .tokens_per_s = 100 * speedup,
                            .speedup = speedup,
                            .efficiency = speedup / tp,
                            .comm_fraction = comm,
                            .roofline_fraction = i ? 0.3 : 0};
        snprintf(t.case_name, sizeof t.case_name, "%s", name);
        snprintf(t.phase, sizeof t.phase, "%s", phases[i]);
        ck_assert_int_eq(ryz_results_add_timing(r, &t), RYZ_OK);
    }
}

static void add_collective(ryz_results *r, const char *name, int tp, const char *op, uint64_t bytes,
                           uint64_t count, double p50) {
    ryz_row_collective c = {.tp = tp,
                            .bytes = bytes,
                            .count = count,
                            .p50_us = p50,
                            .p99_us = 2 * p50,
                            .mean_us = 1.2 * p50,
                            .algbw_gbs = bytes / p50 / 1e3,
                            .busbw_gbs = bytes / p50 / 1e3};
    snprintf(c.case_name, sizeof c.case_name, "%s", name);
    snprintf(c.op, sizeof c.op, "%s", op);
    ck_assert_int_eq(ryz_results_add_collective(r, &c), RYZ_OK);
}

static void add_memory(ryz_results *r, const char *name, int tp) {
    for (int rank = 0; rank < tp; rank++) {
        ryz_row_memory m = {.tp = tp,
                            .rank = rank,
                            .weights = (uint64_t)(96 << 20) / tp,
                            .kv_cache = (uint64_t)(4 << 20) / tp,
                            .scratch = 3 << 20,
                            .peak_rss = 300u << 20,
                            .mem_efficiency = 0.99};
        snprintf(m.case_name, sizeof m.case_name, "%s", name);
        ck_assert_int_eq(ryz_results_add_memory(r, &m), RYZ_OK);
    }
}

/* One case: TP 1 baseline timing and memory, then checked degrees. */
static void add_case(ryz_results *r, const char *name, const int *tps, int n) {
    add_timing(r, name, 1, 1.0, 0.002);
    add_memory(r, name, 1);
    for (int i = 0; i < n; i++) {
        int tp = tps[i];
        add_correctness(r, name, tp, tp == 1 ? 0 : 2.1e-6);
        if (tp == 1)
            continue;
        add_timing(r, name, tp, tp == 2 ? 1.86 : 3.1, tp == 2 ? 0.09 : 0.2);
        add_memory(r, name, tp);
        add_collective(r, name, tp, "all_reduce", 1152, 1200, 41.0 * tp / 2);
        ryz_row_collective *c = &r->collectives[r->n_collectives - 1];
        c->p50_last_us = 30, c->wait_p50_us = 5, c->isolated_p50_us = 20;
        c->last_over_isolated = 1.5, c->streamed_bytes = 9u << 19;
        c->isolated_evict_p50_us = 25, c->last_over_evict = 1.2;
        add_collective(r, name, tp, "all_reduce", 9216, 40, 60.0 * tp / 2);
        add_collective(r, name, tp, "all_gather", 128000, 90, 110.0 * tp / 2);
    }
}

/* Builds the in-memory results: cases alpha (TP 1, 2) and beta (TP 2, 4). */
static void build_results(ryz_results *r, int oversubscribed, const char *suite_name) {
    static const char suite[] = "[suite]\nname = t\n\n[case alpha]\nmodel = synthetic:tiny\n"
                                "tp = 1 2\nprompt = 1 2 3\nnew_tokens = 8\n\n[case beta]\n"
                                "model = synthetic:tiny,heads=8\ntp = 2 4\nprompt = 4 5\n";
    const char *strs[][2] = {{"0.1.0", "abc123"},
                             {"2026-01-01T00:00:00Z", "hostA"},
                             {"cpu+mpi", "cpu"},
                             {"Test CPU 3000", suite_name}};
    char **fields[] = {&r->meta.tool_version, &r->meta.git_rev,   &r->meta.time_utc,
                       &r->meta.hosts,        &r->meta.backends,  &r->meta.device,
                       &r->meta.cpu_model,    &r->meta.suite_name};
    ryz_results_init(r);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(ryz_results_set_str(fields[i], strs[i / 2][i % 2]), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&r->meta.suite_text, suite), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&r->meta.blas, "OpenBLAS 0.3.21 Test|Core"), RYZ_OK);
    r->meta.world_size = 4, r->meta.cores = 8, r->meta.threads_per_rank = 1;
    r->meta.oversubscribed = oversubscribed, r->meta.read_bandwidth_gbs = 20.5;
    add_case(r, "alpha", (const int[]){1, 2}, 2);
    add_case(r, "beta", (const int[]){2, 4}, 2);
    ryz_row_sample s = {.tp = 2, .iter = 0, .value = 0.005};
    snprintf(s.case_name, sizeof s.case_name, "alpha");
    snprintf(s.metric, sizeof s.metric, "decode_s");
    ck_assert_int_eq(ryz_results_add_sample(r, &s), RYZ_OK);
}

/* Writes the results file TMPDIR/name and returns its path in buf. */
static char *write_file(char *buf, const char *name, int oversubscribed, const char *suite_name) {
    ryz_results r;
    build_results(&r, oversubscribed, suite_name);
    ck_assert_msg(ryz_results_write(&r, in_tmp(buf, name)) == RYZ_OK, "%s", ryz_last_error());
    ryz_results_free(&r);
    return buf;
}

/* Whether `path` is a non-empty file starting with the PNG signature. */
static int is_png(const char *path) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8];
    FILE *f = fopen(path, "rb");
    int ok = f && fread(head, 1, 8, f) == 8 && !memcmp(head, sig, 8);
    if (f)
        fclose(f);
    return ok;
}

/* Number of PNG files in dir; asserts each has the signature. */
static int count_pngs(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no directory %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".png"))
            continue;
        char path[PATH_LEN];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ck_assert_msg(is_png(path), "%s is not a PNG", path);
        n++;
    }
    closedir(d);
    return n;
}

/* Expects exit 2 with exactly one "ryz: error" line and no stdout. */
static void expect_one_line_error(run_result *r, const char *what) {
    ck_assert_msg(r->code == 2, "%s: exit %d, stderr:\n%s", what, r->code, r->err);
    ck_assert_msg(count_lines(r->err) == 1, "%s: stderr has %d lines:\n%s", what,
                  count_lines(r->err), r->err);
    ck_assert_msg(!strncmp(r->err, "ryz: error", 10), "%s: stderr '%s'", what, r->err);
    ck_assert_msg(r->out[0] == '\0', "%s: unexpected stdout '%s'", what, r->out);
}

/* ---- in-process ---- */

START_TEST(test_summary_sentence) {
    ryz_results r;
    char buf[512];
    build_results(&r, 0, "t");
    ryz_report_summary(&r, "alpha", 2, buf, sizeof buf);
    ck_assert_str_eq(buf, ALPHA_TP2);
    ryz_report_summary(&r, "alpha", 1, buf, sizeof buf);
    ck_assert_str_eq(buf, "TP=1: 1.00x decode speedup, 100% efficiency; outputs agree (max abs "
                          "error 0.0e+00)");
    r.meta.oversubscribed = 1;
    ryz_report_summary(&r, "alpha", 2, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "efficiency not meaningful") && !strstr(buf, "93%"), "%s", buf);
    r.correctness[1].pass = 0, r.correctness[1].greedy_divergence = 7;
    r.correctness[1].greedy_class = 2;
    ryz_report_summary(&r, "alpha", 2, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "outputs DISAGREE") && strstr(buf, "MISMATCH at position 7"), "%s",
                  buf);
    ryz_results_free(&r);
}
END_TEST

START_TEST(test_helpers) {
    char buf[64];
    ck_assert_int_eq(ryz_plot_quote("it's \"x\"\nend", buf, sizeof buf), RYZ_OK);
    ck_assert_str_eq(buf, "it''s \"x\" end");
    ck_assert_int_eq(ryz_plot_quote("''''", buf, 8), RYZ_EINVAL);
    ck_assert_int_eq(ryz_report_default_dir("a/run.h5", "-plots", buf, sizeof buf), RYZ_OK);
    ck_assert_str_eq(buf, "a/run-plots");
    ck_assert_int_eq(ryz_report_default_dir("run", "-report", buf, sizeof buf), RYZ_OK);
    ck_assert_str_eq(buf, "run-report");
    ryz_report_format_bytes(1152, buf, sizeof buf);
    ck_assert_str_eq(buf, "1.1 KiB");
    ryz_report_format_bytes(256, buf, sizeof buf);
    ck_assert_str_eq(buf, "256 B");
    ryz_results r;
    build_results(&r, 0, "t");
    size_t pos = 0;
    ck_assert_str_eq(ryz_report_next_case(&r, &pos), "alpha");
    ck_assert_str_eq(ryz_report_next_case(&r, &pos), "beta");
    ck_assert_ptr_null(ryz_report_next_case(&r, &pos));
    int tps[4];
    ck_assert_int_eq(ryz_report_case_tps(&r, "beta", tps, 4), 3); /* 1 (baseline), 2, 4 */
    ck_assert_int_eq(tps[0], 1);
    ck_assert_int_eq(tps[2], 4);
    ryz_suite_case c;
    ryz_report_case_info(&r, "beta", &c);
    ck_assert_str_eq(c.model, "synthetic:tiny,heads=8");
    ck_assert_int_eq(c.prompt_len, 2);
    /* a bench file's rows (f32-t1, ...) take the model of its [case bench] */
    ryz_results_set_str(&r.meta.kind, RYZ_KIND_BENCH);
    ryz_results_set_str(&r.meta.suite_text, "[case bench]\nmodel = synthetic:15m ; c\n"
                                            "backend = cpu\nwork = --prompt-len 8\n");
    ryz_report_case_info(&r, "f32-t1", &c);
    ck_assert_str_eq(c.model, "synthetic:15m");
    ryz_results_free(&r);
}
END_TEST

/* Text f wrote to a memstream, into *text (malloc'd). */
static char *render(ryz_results *r, int markdown) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    if (markdown)
        ck_assert_int_eq(ryz_report_markdown(r, NULL, f), RYZ_OK);
    else
        ck_assert_int_eq(ryz_report_show(r, 0, f), RYZ_OK);
    fclose(f);
    return text;
}

/* `ryz project -o`'s rows (phase decode_proj, named after the model) get
 * a summary of their own, said to be projected; they had none, under a
 * "(model not recorded)". */
START_TEST(test_report_projection) {
    ryz_results r;
    ryz_results_init(&r);
    ryz_results_set_str(&r.meta.kind, RYZ_KIND_COMM); /* a `ryz comm` file's tables, kept */
    ryz_row_timing t = {.tp = 4, .median_s = 0.005, .tokens_per_s = 200, .speedup = 3.5,
                        .efficiency = 0.875, .comm_fraction = 0.07};
    snprintf(t.case_name, sizeof t.case_name, "synthetic:110m");
    snprintf(t.phase, sizeof t.phase, "decode_proj");
    ck_assert_int_eq(ryz_results_add_timing(&r, &t), RYZ_OK);
    char *md = render(&r, 1);
    ck_assert_msg(strstr(md, "### synthetic:110m\n\n`synthetic:110m`, batch 1.") &&
                      strstr(md, "- TP=4, projected by `ryz project` (alpha-beta fit of the "
                                 "collectives, not measured): 200.0 tokens/s, 3.50x, efficiency "
                                 "88%, 7% of a token in collectives.") &&
                      !strstr(md, "not recorded"),
                  "%s", md);
    free(md);
    ryz_results_free(&r);
}
END_TEST

/* A run that failed an acceptance check (beta TP 4's speedup) reads as a
 * failure: `ryz show` prints the checks and the verdict as the suite did,
 * the report opens with FAIL and the failed check, the summary's TP 4
 * sentence names it, and the acceptance table lists it first. */
START_TEST(test_acceptance_verdict) {
    ryz_results r;
    build_results(&r, 0, "t");
    ck_assert_int_eq(ryz_results_set_str(&r.meta.kind, RYZ_KIND_SUITE), RYZ_OK);
    ryz_row_acceptance rows[] = {
        {.case_name = "alpha", .tp = 2, .check = "speedup", .measured = 1.86, .op = ">=",
         .threshold = 1.8, .pass = 1},
        {.case_name = "beta", .tp = 4, .check = "speedup", .measured = 3.1, .op = ">=",
         .threshold = 3.8, .pass = 0},
        {.case_name = "beta", .tp = 4, .check = "allreduce_p99_us", .measured = INFINITY,
         .op = "<=", .threshold = 1, .pass = 0, .note = "not measured: no all_reduce of 12 B"}};
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(ryz_results_add_acceptance(&r, &rows[i]), RYZ_OK);
    char *show = render(&r, 0), *md = render(&r, 1);
    const char *in_show[] = {
        "acceptance: 3 checks, 2 failed, 0 skipped",
        "  FAIL beta                 tp 4   speedup                             3.1 >= 3.8",
        "not measured: no all_reduce of 12 B",
        "\nsuite t: FAIL (2 failed checks of 3)\n"};
    test_assert_all_in(show, in_show, sizeof in_show / sizeof in_show[0]);
    const char *in_md[] = {"> **Verdict: FAIL.** 2 of 3 acceptance checks failed:",
                           "> - case `beta` TP=4: speedup 3.1, needs >= 3.8\n",
                           "**FAILED acceptance: speedup, allreduce_p99_us**",
                           "## Acceptance checks",
                           "| beta | 4 | speedup | 3.1 | >= 3.8 | **FAIL** |  |"};
    test_assert_all_in(md, in_md, sizeof in_md / sizeof in_md[0]);
    ck_assert_msg(strstr(md, "Verdict: FAIL") < strstr(md, "## Setup"), "verdict not first");
    const char *alpha2 = strstr(md, "- TP=2: 1.86x"); /* alpha's: passed every check */
    ck_assert_ptr_nonnull(alpha2);
    ck_assert_msg(!strncmp(alpha2 + strcspn(alpha2, "\n") - 5, "e-06)", 5), "%.200s", alpha2);
    free(show), free(md);
    r.acceptance[1].pass = r.acceptance[2].pass = 1;
    md = render(&r, 1);
    ck_assert_msg(strstr(md, "**Verdict: PASS.** All 3 acceptance checks passed."), "%s", md);
    free(md);
    ryz_results_free(&r);
}
END_TEST

/* A suite file from before schema 5 kept no checks, nor did an
 * interrupted run: `ryz show` and the report say so instead of reading as
 * a pass. */
START_TEST(test_acceptance_not_recorded) {
    ryz_results r;
    ck_assert_msg(ryz_results_read("tests/data/results-schema4.h5", &r) == RYZ_OK, "%s",
                  ryz_last_error());
    char *show = render(&r, 0), *md = render(&r, 1);
    ck_assert_msg(strstr(show, "acceptance: not recorded (a schema 4 file"), "%s", show);
    ck_assert_msg(strstr(md, "> **Verdict not recorded.** This file predates schema 5"), "%s",
                  md);
    free(show), free(md);
    ryz_results_free(&r);
    build_results(&r, 0, "t"); /* a run stopped before its checks were judged */
    r.meta.interrupted = 1;
    show = render(&r, 0);
    ck_assert_msg(strstr(show, "\nacceptance: not judged (the run was interrupted)\n"), "%s",
                  show);
    free(show);
    ryz_results_free(&r);
}
END_TEST

/* `ryz show` lists the checks where `ryz suite` did (ryz_checks_listed):
 * with the recorded suite's [acceptance], or when a check failed (never a
 * failure as a bare count); a suite without [acceptance] whose checks all
 * passed gets the verdict line alone. */
START_TEST(test_show_check_list) {
    static const char acc[] = "[suite]\nname = t\n[case alpha]\nmodel = synthetic:tiny\n"
                              "prompt = 1 2\n[acceptance]\nmax_logit_error = 1\n";
    ryz_results r;
    build_results(&r, 0, "t"); /* its suite text has no [acceptance] */
    ck_assert_int_eq(ryz_results_set_str(&r.meta.kind, RYZ_KIND_SUITE), RYZ_OK);
    for (int tp = 1; tp <= 2; tp++) {
        ryz_row_acceptance row = {.case_name = "alpha",
                                  .tp = tp,
                                  .check = "outputs_within_tolerance",
                                  .op = "<=",
                                  .pass = 1};
        ck_assert_int_eq(ryz_results_add_acceptance(&r, &row), RYZ_OK);
    }
    const char *verdict[] = {"\nsuite t: PASS (0 failed checks of 2)\n",
                             "\nsuite t: FAIL (1 failed check of 2)\n"};
    for (int failed = 0; failed < 2; failed++) { /* no [acceptance]: listed when one failed */
        r.acceptance[1].pass = !failed;
        char *show = render(&r, 0);
        ck_assert_msg(strstr(show, verdict[failed]), "no verdict:\n%.3000s", show);
        ck_assert_msg(!strstr(show, "\nacceptance: ") == !failed, "failed %d:\n%.3000s", failed,
                      show);
        free(show);
    }
    r.acceptance[1].pass = 1;
    const char *texts[] = {acc, "not a suite"}; /* [acceptance]; a suite not known */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(ryz_results_set_str(&r.meta.suite_text, texts[i]), RYZ_OK);
        char *show = render(&r, 0);
        ck_assert_msg(strstr(show, "\nacceptance: 2 checks, 0 failed, 0 skipped\n") &&
                          strstr(show, verdict[0]),
                      "text %d:\n%.3000s", i, show);
        free(show);
    }
    ryz_results_free(&r);
}
END_TEST

/* The report says, under the correctness table, which tolerances the
 * recorded suite loosened, as the run noted them; nothing when none. */
START_TEST(test_report_loosened) {
    ryz_results r;
    build_results(&r, 0, "t");
    char *md = render(&r, 1);
    ck_assert_msg(!strstr(md, "loosens"), "%.3000s", md);
    free(md);
    ck_assert_int_eq(ryz_results_set_str(&r.meta.suite_text,
                                         "[suite]\natol = 0.01\nbf16_rtol = 0.01\n"
                                         "[case alpha]\nmodel = synthetic:tiny\nprompt = 1\n"),
                     RYZ_OK);
    md = render(&r, 1);
    const char *note = strstr(md, "> - suite loosens atol to 0.01 (default 0.0001): outputs are "
                                  "judged against a looser bound than the fp32 default\n");
    const char *table = strstr(md, "## Correctness");
    ck_assert_msg(note && table && table < note && note < strstr(md, "## Timing"), "%.3000s",
                  table ? table : md);
    ck_assert_msg(!strstr(md, "bf16_rtol to"), "%.3000s", md); /* tightened: no note */
    free(md);
    ryz_results_free(&r);
}
END_TEST

/* A (case, TP) whose timed runs the host's neighbours took more than 10 %
 * of (the median of its runs) says so in its summary line; one below it,
 * or with no such samples, does not. */
START_TEST(test_report_busy_machine) {
    ryz_results r;
    build_results(&r, 0, "t");
    const double steal[] = {0.02, 0.15, 0.13}, other[] = {0, 0.01, 0.3};
    for (int i = 0; i < 3; i++) {
        ryz_row_sample s = {.case_name = "alpha", .tp = 2, .metric = "host_steal_fraction",
                            .iter = i, .value = steal[i]};
        ryz_results_add_sample(&r, &s);
        s.value = other[i], s.tp = 1;
        snprintf(s.metric, sizeof s.metric, "host_other_load");
        ryz_results_add_sample(&r, &s);
    }
    char *md = render(&r, 1);
    const char *tp2 = strstr(md, "- TP=2: "), *tp1 = strstr(md, "- TP=1: ");
    ck_assert_msg(tp2 && tp1, "%.3000s", md);
    const char *busy = strstr(tp2, "; timed on a busy machine (the hypervisor took 13% of the "
                                   "CPU time its CPUs wanted, other processes ran 0% of it");
    ck_assert_msg(busy && busy < strchr(tp2, '\n'), "%.3000s", md);
    ck_assert_msg(strstr(tp1, "busy") == NULL || strstr(tp1, "busy") > strchr(tp1, '\n'),
                  "TP=1 (others' median 1%%) called busy:\n%.3000s", md);
    free(md);
    ryz_results_free(&r);
}
END_TEST

/* ---- the binary ---- */

START_TEST(test_show) {
    char file[PATH_LEN];
    write_file(file, "t.h5", 0, "t");
    run_result r = run_ryz(NULL, NULL, (const char *[]){"show", file, NULL});
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    const char *needles[] = {"suite_name: t",
                             "cpu_model: Test CPU 3000",
                             "case alpha: synthetic:tiny  batch 1  prompt 3  new_tokens 8",
                             "case beta: synthetic:tiny,heads=8",
                             "decode_tok/s",
                             " base ",
                             "PASS",
                             "/collectives: 9 rows",
                             "all_gather",
                             "/memory: 10 rows",
                             "/samples: 1 row"};
    test_assert_all_in(r.out, needles, sizeof needles / sizeof needles[0]);
    ck_assert_msg(strstr(r.out, "case alpha") < strstr(r.out, "case beta"), "case order");
    ck_assert_msg(!strstr(r.out, "/correctness:"), "raw correctness table printed");
    run_free(&r);
    r = run_ryz(NULL, NULL, (const char *[]){"show", "--raw", file, NULL});
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, "/correctness: 4 rows") && strstr(r.out, "decode_s"), "%s", r.out);
    run_free(&r);
}
END_TEST

START_TEST(test_bad_files) {
    char missing[PATH_LEN], text[PATH_LEN];
    in_tmp(missing, "missing.h5");
    FILE *f = fopen(in_tmp(text, "text.h5"), "w");
    ck_assert_ptr_nonnull(f);
    fputs("not an HDF5 file\n", f);
    fclose(f);
    const char *cmds[] = {"show", "plot", "report"};
    for (int i = 0; i < 3; i++) {
        run_result r = run_ryz(NULL, NULL, (const char *[]){cmds[i], missing, NULL});
        expect_one_line_error(&r, cmds[i]);
        ck_assert_msg(strstr(r.err, "missing.h5"), "%s", r.err);
        run_free(&r);
        r = run_ryz(NULL, NULL, (const char *[]){cmds[i], text, NULL});
        expect_one_line_error(&r, cmds[i]);
        run_free(&r);
        r = run_ryz(NULL, NULL, (const char *[]){cmds[i], tmpdir, NULL});
        expect_one_line_error(&r, cmds[i]);
        ck_assert_msg(strstr(r.err, "is a directory"), "%s", r.err);
        run_free(&r);
        r = run_ryz(NULL, NULL, (const char *[]){cmds[i], NULL});
        expect_one_line_error(&r, cmds[i]);
        run_free(&r);
    }
}
END_TEST

START_TEST(test_plot) {
    char file[PATH_LEN], dir[PATH_LEN], svg[PATH_LEN + 16];
    write_file(file, "t.h5", 0, "it's a \"quoted\" suite");
    if (!gnuplot_present())
        return;
    run_result r =
        run_ryz(NULL, NULL, (const char *[]){"plot", file, "-o", in_tmp(dir, "p"), NULL});
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    int n = count_pngs(dir);
    ck_assert_msg(n >= 4, "%d PNGs in %s", n, dir);
    ck_assert_int_eq(count_lines(r.out), n * 2 + 4); /* PNG + SVG each, 4 .dat */
    snprintf(svg, sizeof svg, "%s/speedup.svg", dir);
    ck_assert_msg(access(svg, R_OK) == 0 && strstr(r.out, svg), "%s", r.out);
    run_free(&r);
    r = run_ryz(NULL, NULL, (const char *[]){"plot", file, NULL}); /* default: t-plots */
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    ck_assert_int_eq(count_pngs(in_tmp(dir, "t-plots")), n);
    run_free(&r);
}
END_TEST

/* A file whose cases ran at one TP degree (`ryz bench`'s) has no scaling
 * to plot: no speedup or efficiency plot, and no gnuplot warning. */
START_TEST(test_plot_single_tp) {
    char file[PATH_LEN], dir[PATH_LEN], svg[PATH_LEN + 16];
    ryz_results res;
    ryz_results_init(&res);
    ck_assert_int_eq(ryz_results_set_str(&res.meta.suite_name, "bench"), RYZ_OK);
    add_timing(&res, "f32-t1", 1, 1.0, 0.002); /* no correctness rows, as bench writes */
    add_memory(&res, "f32-t1", 1);
    ck_assert_int_eq(ryz_results_write(&res, in_tmp(file, "single.h5")), RYZ_OK);
    ryz_results_free(&res);
    if (!gnuplot_present())
        return;
    run_result r =
        run_ryz(NULL, NULL, (const char *[]){"plot", file, "-o", in_tmp(dir, "single"), NULL});
    ck_assert_msg(r.code == 0 && !strstr(r.err, "arning"), "exit %d: %s", r.code, r.err);
    snprintf(svg, sizeof svg, "%s/speedup.svg", dir);
    ck_assert_msg(access(svg, F_OK) != 0, "%s plotted for one TP degree", svg);
    run_free(&r);
}
END_TEST

/* A file with nothing to plot (`ryz bench`'s timing rows alone): a line
 * saying so, exit 0, and no empty folder left behind. */
START_TEST(test_plot_nothing) {
    char file[PATH_LEN], dir[PATH_LEN];
    ryz_results res;
    ryz_results_init(&res);
    add_timing(&res, "f32-t1", 1, 1.0, 0.002);
    ck_assert_int_eq(ryz_results_write(&res, in_tmp(file, "nothing.h5")), RYZ_OK);
    ryz_results_free(&res);
    if (!gnuplot_present())
        return;
    run_result r =
        run_ryz(NULL, NULL, (const char *[]){"plot", file, "-o", in_tmp(dir, "none"), NULL});
    ck_assert_msg(r.code == 0 && strstr(r.err, "nothing to plot in") && !*r.out,
                  "exit %d: %s%s", r.code, r.out, r.err);
    ck_assert_msg(access(dir, F_OK) != 0, "%s left behind", dir);
    run_free(&r);
}
END_TEST

START_TEST(test_plot_without_gnuplot) {
    char file[PATH_LEN], dir[PATH_LEN];
    write_file(file, "t.h5", 0, "t");
    run_result r = run_ryz("RYZ_GNUPLOT", "/nonexistent/gnuplot",
                           (const char *[]){"plot", file, "-o", in_tmp(dir, "p"), NULL});
    expect_one_line_error(&r, "plot without gnuplot");
    ck_assert_msg(strstr(r.err, "gnuplot-nox"), "%s", r.err);
    run_free(&r);
}
END_TEST

START_TEST(test_plot_gnuplot_fails) {
    char file[PATH_LEN], tpl[PATH_LEN], out[PATH_LEN], gp[PATH_LEN];
    write_file(file, "t.h5", 0, "t");
    if (!gnuplot_present())
        return;
    mkdir(in_tmp(tpl, "tpl"), 0700);
    FILE *f = fopen(in_tmp(gp, "tpl/speedup.gp"), "w");
    ck_assert_ptr_nonnull(f);
    fputs("plot no_such_function(x)\n", f);
    fclose(f);
    run_result r =
        run_ryz("RYZ_PLOTS_DIR", tpl, (const char *[]){"plot", file, "-o", in_tmp(out, "p"), NULL});
    ck_assert_msg(r.code == 2, "exit %d: %s", r.code, r.err);
    ck_assert_msg(strstr(r.err, "gnuplot failed") && strstr(r.err, "no_such_function"), "%s",
                  r.err);
    run_free(&r);
}
END_TEST

/* Checks report.md in dir: the sentence `needle`, a link to every PNG
 * there and none to a PNG that is not. */
static void check_report(const char *dir, const char *needle) {
    static const char *stems[] = {"speedup", "efficiency",  "error",
                                  "memory",  "collectives", "busbw"};
    char path[PATH_LEN + 32], link[64];
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = test_slurp(path, NULL);
    ck_assert_msg(strstr(md, needle), "'%s' not in report.md:\n%s", needle, md);
    ck_assert_msg(strstr(md, "## Setup") && strstr(md, "Test CPU 3000") && strstr(md, "abc123"),
                  "%s", md);
    ck_assert_msg(strstr(md, "| BLAS | OpenBLAS 0.3.21 Test\\|Core |\n"), "%s", md);
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.png", dir, stems[i]);
        snprintf(link, sizeof link, "](%s.png)", stems[i]);
        int exists = access(path, R_OK) == 0, linked = strstr(md, link) != NULL;
        ck_assert_msg(exists == linked, "%s: exists %d, linked %d", path, exists, linked);
    }
    free(md);
}

START_TEST(test_report) {
    char file[PATH_LEN], dir[PATH_LEN];
    write_file(file, "t.h5", 0, "t");
    int gp = gnuplot_present();
    run_result r =
        run_ryz(NULL, NULL, (const char *[]){"report", file, "-o", in_tmp(dir, "r"), NULL});
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "report.md"), "%s", r.out);
    if (gp)
        ck_assert_int_ge(count_pngs(dir), 4);
    check_report(dir, ALPHA_TP2);
    char *md = test_slurp(in_tmp(file, "r/report.md"), NULL); /* last, wait, isolated, read */
    ck_assert_msg(strstr(md, "| 30.0 | 5.0 | 20.0 | 4.5 | 25.0 | 1.20 |\n") &&
                      strstr(md, "| - | - | - | - | - | - |\n"), /* rows not measured */
                  "collective columns not as expected in %s", file);
    free(md);
    run_free(&r);
}
END_TEST

START_TEST(test_report_without_gnuplot) {
    char file[PATH_LEN], dir[PATH_LEN];
    write_file(file, "t.h5", 1, "t");
    run_result r = run_ryz("RYZ_GNUPLOT", "/nonexistent/gnuplot",
                           (const char *[]){"report", file, NULL}); /* default: t-report */
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    ck_assert_msg(strstr(r.err, "warning") && strstr(r.err, "gnuplot-nox"), "%s", r.err);
    ck_assert_int_eq(count_pngs(in_tmp(dir, "t-report")), 0);
    check_report(dir, "oversubscribed: efficiency not meaningful");
    run_free(&r);
}
END_TEST

static Suite *report_suite(void) {
    Suite *s = suite_create("report");
    TCase *lib = tcase_create("library"), *cli = tcase_create("cli");
    tcase_add_checked_fixture(lib, setup, teardown);
    tcase_add_checked_fixture(cli, setup, teardown);
    tcase_set_timeout(cli, 120);
    tcase_add_test(lib, test_summary_sentence);
    tcase_add_test(lib, test_report_projection);
    tcase_add_test(lib, test_helpers);
    tcase_add_test(lib, test_acceptance_verdict);
    tcase_add_test(lib, test_acceptance_not_recorded);
    tcase_add_test(lib, test_show_check_list);
    tcase_add_test(lib, test_report_loosened);
    tcase_add_test(lib, test_report_busy_machine);
    tcase_add_test(cli, test_show);
    tcase_add_test(cli, test_bad_files);
    tcase_add_test(cli, test_plot);
    tcase_add_test(cli, test_plot_single_tp);
    tcase_add_test(cli, test_plot_without_gnuplot);
    tcase_add_test(cli, test_plot_nothing);
    tcase_add_test(cli, test_plot_gnuplot_fails);
    tcase_add_test(cli, test_report);
    tcase_add_test(cli, test_report_without_gnuplot);
    suite_add_tcase(s, lib);
    suite_add_tcase(s, cli);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(report_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
