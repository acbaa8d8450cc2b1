/* Tests of the `ryz` command line: exit codes (DESIGN 4.5), one-line
 * errors, generate at tp 1 and tp 2 (self-launched mpirun) agreeing, and the
 * suite gate passing and failing. Runs the binary named by RYZ_BIN (default
 * build/ryz) from the repository root; this process never calls MPI. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* realpath */

#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ryz/cuda.h"
#include "ryz/results.h"
#include "testutil.h"

/* A new empty temporary file; its path is written to `path` (32 bytes). */
static void temp_path(char *path) {
    strcpy(path, "/tmp/ryz_test_cli_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp failed");
    close(fd);
}

/* A new temporary file holding text; its path in `path` (32 bytes). */
static void temp_file_with(char *path, const char *text) {
    temp_path(path);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Number of lines of a captured stream. */
static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Runs ARGS expecting exit code `code` and an error of exactly one stderr
 * line containing `needle`, with nothing on stdout. */
static void expect_one_line_error(const char *args, int code, const char *needle) {
    test_run r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == code, "ryz %s: exit %d, expected %d; stderr:\n%s", args, r.code, code,
                  r.err);
    ck_assert_msg(count_lines(r.err) == 1, "ryz %s: %d stderr lines, expected 1:\n%s", args,
                  count_lines(r.err), r.err);
    ck_assert_msg(strstr(r.err, needle), "ryz %s: '%s' not in stderr '%s'", args, needle, r.err);
    ck_assert_msg(strncmp(r.err, "ryz: error", 10) == 0, "ryz %s: stderr '%s'", args, r.err);
    ck_assert_msg(r.out[0] == '\0', "ryz %s: unexpected stdout '%s'", args, r.out);
    test_run_free(&r);
}

/* ============================================================ usage */

START_TEST(test_no_args) {
    test_run r = test_run_ryz(NULL, "");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "usage: ryz"), "stderr '%s'", r.err);
    test_run_free(&r);
}
END_TEST

START_TEST(test_unknown_command) {
    test_run r = test_run_ryz(NULL, "frobnicate");
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strstr(r.err, "unknown command 'frobnicate'"), "stderr '%s'", r.err);
    test_run_free(&r);
}
END_TEST

START_TEST(test_help_and_version) {
    const char *helps[] = {"help", "--help", "-h"};
    for (int i = 0; i < 3; i++) {
        test_run r = test_run_ryz(NULL, helps[i]);
        ck_assert_msg(r.code == 0, "ryz %s: exit %d", helps[i], r.code);
        ck_assert_msg(strstr(r.out, "usage: ryz") && strstr(r.out, "suite") &&
                          strstr(r.out, "generate"),
                      "ryz %s: stdout '%s'", helps[i], r.out);
        test_run_free(&r);
    }
    test_run r = test_run_ryz(NULL, "generate --help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, "--prompt-ids"), "stdout '%s'", r.out);
    test_run_free(&r);
    r = test_run_ryz(NULL, "help compare"); /* a command's own help */
    ck_assert_msg(r.code == 0 && strncmp(r.out, "usage: ryz compare BASE.h5 NEW.h5", 33) == 0,
                  "exit %d, stdout '%s'", r.code, r.out);
    test_run_free(&r);
    r = test_run_ryz(NULL, "version");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strncmp(r.out, "ryz ", 4) == 0, "stdout '%s'", r.out);
    test_run_free(&r);
}
END_TEST

/* ========================================================= generate */

START_TEST(test_generate_tp_rule) {
    expect_one_line_error("generate --model synthetic:tiny,heads=4 --tp 3 --prompt-ids \"1 2\" "
                          "--new-tokens 4",
                          2, "n_heads 4 not divisible by tp 3");
}
END_TEST

START_TEST(test_generate_bad_input) {
    expect_one_line_error("generate --model synthetic:tiny --prompt-ids 1 --bogus", 2, "--bogus");
    expect_one_line_error("generate --model synthetic:nope --prompt-ids 1", 2, "nope");
    expect_one_line_error("generate --model stories15M.bin --prompt-ids 1", 2, "stories15M.bin");
    char junk[32];
    temp_file_with(junk, "not a checkpoint, but long enough to hold a llama2.c header.....");
    char args[96];
    snprintf(args, sizeof args, "generate --model %s --prompt-ids 1", junk);
    expect_one_line_error(args, 2, "(not a llama2.c checkpoint? docs/checkpoints.md lists");
    unlink(junk);
    expect_one_line_error("generate --model synthetic:tiny --prompt-ids \"1 512\"", 2, "512");
    expect_one_line_error("generate --model synthetic:tiny --prompt-ids \"1 x\"", 2, "x");
    expect_one_line_error("generate --prompt-ids 1", 2, "--model");
    expect_one_line_error("generate --model synthetic:tiny --prompt-ids 1 --new-tokens 0", 2,
                          "--new-tokens");
    expect_one_line_error("generate --model synthetic:tiny --prompt-ids 1 --new-tokens 200", 2,
                          "seq_len 128");
}
END_TEST

/* The "ids: ..." line of a generate run's stdout (malloc'd). */
static char *ids_line(const char *out) {
    const char *p = strstr(out, "ids:");
    ck_assert_msg(p != NULL, "no ids: line in '%s'", out);
    size_t n = strcspn(p, "\n");
    char *line = malloc(n + 1);
    ck_assert_ptr_nonnull(line);
    memcpy(line, p, n);
    line[n] = '\0';
    return line;
}

/* --backend and --comm: bad values and combinations are one-line usage
 * errors; cpu/mpi is the default; two ranks over shm give the same greedy
 * ids; cuda without a device (or in a build without CUDA) is refused
 * before any rank starts, and with one it must give the cpu run's ids. */
START_TEST(test_generate_backend_options) {
    const char *base = "generate --model synthetic:tiny --prompt-ids \"1 2 3\" --new-tokens 8";
    char args[512];
    snprintf(args, sizeof args, "%s --backend gpu", base);
    expect_one_line_error(args, 2, "backend 'gpu' unknown (known: cpu, cuda)");
    snprintf(args, sizeof args, "%s --comm tcp", base);
    expect_one_line_error(args, 2, "--comm 'tcp' unknown (known: mpi, nccl, shm)");
    snprintf(args, sizeof args, "%s --comm nccl", base);
    expect_one_line_error(args, 2, "--comm nccl needs --backend cuda");
    snprintf(args, sizeof args, "%s --tf32", base);
    expect_one_line_error(args, 2, "--tf32 needs --backend cuda");
    char *ids[3];
    const char *opts[3] = {"", " --backend cpu --comm mpi", " --tp 2 --comm shm"};
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof args, "%s%s", base, opts[k]);
        test_run r = test_run_ryz(NULL, args);
        ck_assert_msg(r.code == 0, "ryz %s: exit %d; stderr:\n%s", args, r.code, r.err);
        ids[k] = ids_line(r.out);
        test_run_free(&r);
    }
    ck_assert_str_eq(ids[0], ids[1]);
    ck_assert_str_eq(ids[0], ids[2]);
    snprintf(args, sizeof args, "%s --backend cuda", base);
    test_run r = test_run_ryz(NULL, args);
    if (r.code == 0) { /* a CUDA build on a GPU */
        char *gpu = ids_line(r.out);
        ck_assert_str_eq(gpu, ids[0]);
        free(gpu);
    } else {
        ck_assert_msg(r.code == 2 && count_lines(r.err) == 1 &&
                          strstr(r.err, "ryz: error: no CUDA device: ") && r.out[0] == '\0',
                      "ryz %s: exit %d; stdout '%s'; stderr '%s'", args, r.code, r.out, r.err);
    }
    test_run_free(&r);
    free(ids[0]), free(ids[1]), free(ids[2]);
}
END_TEST

/* Asserts |a - b| <= 1e-4 * rowmax(|b|) + 1e-4 * |b| for (rows, vocab)
 * logits, naming the worst element. */
static void assert_logits_close(const float *a, const float *b, int rows, int vocab) {
    double excess = -INFINITY;
    int wr = 0, wc = 0;
    for (int r = 0; r < rows; r++) {
        const float *ar = a + (size_t)r * vocab, *br = b + (size_t)r * vocab;
        double range = 0;
        for (int v = 0; v < vocab; v++)
            range = fmax(range, fabs(br[v]));
        for (int v = 0; v < vocab; v++) {
            double d = fabs((double)ar[v] - br[v]);
            double e = isnan(d) ? INFINITY : d - (1e-4 * range + 1e-4 * fabs(br[v]));
            if (e > excess)
                excess = e, wr = r, wc = v;
        }
    }
    size_t w = (size_t)wr * vocab + wc;
    ck_assert_msg(excess <= 0, "logits differ most at position %d, logit %d: tp2 %.9g, tp1 %.9g",
                  wr, wc, (double)a[w], (double)b[w]);
}

START_TEST(test_generate_tp1_equals_tp2) {
    enum { ROWS = 3 + 16 - 1, VOCAB = 32000 };
    const char *base = "generate --model synthetic:15m --prompt-ids \"1 2 3\" --new-tokens 16";
    char dump[2][32], args[512];
    char *ids[2];
    float *logits[2];
    for (int k = 0; k < 2; k++) {
        temp_path(dump[k]);
        snprintf(args, sizeof args, "%s%s --dump-logits %s", base, k ? " --tp 2" : "", dump[k]);
        test_run r = test_run_ryz(NULL, args);
        ck_assert_msg(r.code == 0, "ryz %s: exit %d; stderr:\n%s", args, r.code, r.err);
        ids[k] = ids_line(r.out);
        test_run_free(&r);
        size_t len;
        logits[k] = (float *)test_slurp(dump[k], &len);
        unlink(dump[k]);
        ck_assert_msg(len == (size_t)ROWS * VOCAB * sizeof(float),
                      "%s: dump of %zu bytes, expected %d rows x %d floats", args, len, ROWS,
                      VOCAB);
    }
    ck_assert_str_eq(ids[1], ids[0]);
    int n_ids = 0;
    for (const char *p = ids[0]; *p; p++)
        n_ids += *p == ' ';
    ck_assert_int_eq(n_ids, 3 + 16);
    ck_assert_msg(strncmp(ids[0], "ids: 1 2 3 ", 11) == 0, "'%s'", ids[0]);
    assert_logits_close(logits[1], logits[0], ROWS, VOCAB);
    for (int k = 0; k < 2; k++)
        free(ids[k]), free(logits[k]);
}
END_TEST

/* ============================================================= suite */

/* Table rows of a suite run's stdout with TP degree `tp` (-1: any) and
 * result `result` ("PASS" or "FAIL"). */
static int count_rows(const char *out, int tp, const char *result) {
    int n = 0;
    for (const char *line = out; *line;) {
        size_t len = strcspn(line, "\n");
        int t;
        char first[16];
        if (sscanf(line, " %15s", first) == 1 && sscanf(first, "%d", &t) == 1 &&
            (tp < 0 || t == tp) && len >= 4 && strncmp(line + len - 4, result, 4) == 0)
            n++;
        line += len + (line[len] == '\n');
    }
    return n;
}

START_TEST(test_suite_unknown_key) {
    char path[32], args[64];
    temp_file_with(path, "[suite]\nrepeat = 1\n\n[case a]\nmodel = synthetic:tiny\nprompt = 1 2\n"
                         "tp = 1 2\nflavour = vanilla\n");
    snprintf(args, sizeof args, "suite %s", path);
    expect_one_line_error(args, 2, "flavour");
    unlink(path);
}
END_TEST

/* A bf16 case is held to bf16_atol/bf16_rtol against the f32 reference:
 * with a tolerance far below bf16's rounding it fails (exit 1). */
START_TEST(test_suite_bf16_tolerance) {
    char path[32], h5[32], args[128];
    temp_file_with(path, "[suite]\nrepeat = 1\nwarmup = 0\nbf16_atol = 1e-7\nbf16_rtol = 1e-7\n\n"
                         "[case b]\nmodel = synthetic:tiny\nprompt = 1 2 3\nnew_tokens = 4\n"
                         "dtype = bf16\n");
    temp_path(h5);
    snprintf(args, sizeof args, "suite %s --quiet -o %s", path, h5);
    test_run r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 1 && count_rows(r.out, 1, "FAIL") == 1 &&
                      strstr(r.out, "bf16 weights at every TP"),
                  "exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err);
    /* no [acceptance], but a check failed: the list names it (ryz_checks_listed) */
    ck_assert_msg(strstr(r.out, "\nacceptance: 1 checks, 1 failed, 0 skipped\n  FAIL b "),
                  "failed check not listed:\n%s", r.out);
    ck_assert_msg(!strstr(r.err, "loosens"), "a tightened tolerance noted:\n%s", r.err);
    test_run_free(&r);
    unlink(path);
    unlink(h5);
}
END_TEST

/* A suite that loosens a tolerance above its default says so on stderr,
 * once (rank 0 of the launched ranks), --quiet or not; the checks all
 * pass and the suite has no [acceptance], so the verdict stands alone. */
START_TEST(test_suite_loosened_note) {
    char path[32], h5[32], args[128];
    temp_file_with(path, "[suite]\nrepeat = 1\nwarmup = 0\natol = 0.01\nrtol = 1e-5\n\n"
                         "[case l]\nmodel = synthetic:tiny\nprompt = 1 2 3\nnew_tokens = 3\n"
                         "tp = 1 2\n");
    temp_path(h5);
    snprintf(args, sizeof args, "suite %s --quiet -o %s", path, h5);
    test_run r = test_run_ryz(NULL, args);
    const char *note = "ryz: note: suite loosens atol to 0.01 (default 0.0001): outputs are "
                       "judged against a looser bound than the fp32 default\n";
    const char *at = strstr(r.err, note);
    ck_assert_msg(r.code == 0 && at && !strstr(at + 1, note) && !strstr(r.err, "rtol"),
                  "exit %d; stderr:\n%s", r.code, r.err);
    ck_assert_msg(!strstr(r.out, "acceptance:"), "checks listed:\n%s", r.out);
    test_run_free(&r);
    unlink(path);
    unlink(h5);
}
END_TEST

enum { SPINNERS_MAX = 64 };

/* Runs `args` while a spinning process per CPU (up to SPINNERS_MAX) keeps
 * the machine busy. */
static test_run run_beside_spinners(const char *args) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    pid_t spin[SPINNERS_MAX];
    int n = 0;
    for (; n < cpus && n < SPINNERS_MAX; n++) spin[n] = test_spin_start();
    test_run r = test_run_ryz(NULL, args);
    for (int i = 0; i < n; i++) test_spin_stop(spin[i]);
    return r;
}

/* At least `least` host_other_load samples of (case, tp 1) in the results
 * at h5, which is then removed. */
static void expect_load_samples(const char *h5, const char *name, int least) {
    ryz_results res;
    int n = 0;
    ck_assert_int_eq(ryz_results_read(h5, &res), RYZ_OK);
    double *v = ryz_results_sample_values(&res, name, 1, "host_other_load", &n);
    ck_assert_msg(n >= least, "%s: %d host_other_load samples", name, n);
    free(v);
    ryz_results_free(&res);
    unlink(h5);
}

/* A suite timed while other processes keep every CPU busy says so on
 * stderr, --quiet or not, and records what they took run by run. */
START_TEST(test_suite_busy_note) {
    char path[32], h5[32], args[128];
    temp_file_with(path, "[suite]\nrepeat = 3\nwarmup = 0\n\n[case busy]\n"
                         "model = synthetic:15m\nprompt = 1 2 3\nnew_tokens = 200\ntp = 1\n");
    temp_path(h5);
    snprintf(args, sizeof args, "suite %s --quiet -o %s", path, h5);
    test_run r = run_beside_spinners(args);
    ck_assert_msg(r.code == 0 && strstr(r.err, "ryz: note: case busy tp=1: other processes ran ") &&
                      strstr(r.err, "these timings are a busy machine's\n"),
                  "exit %d; stderr:\n%s", r.code, r.err);
    expect_load_samples(h5, "busy", 2);
    test_run_free(&r);
    unlink(path);
}
END_TEST

/* The timed decode runs of (case, tp) in the results at h5, checked
 * against its host_other_load samples (one a run). */
static int timed_runs_of(const char *h5, const char *name, int tp) {
    ryz_results res;
    int runs = -1, n = 0;
    ck_assert_int_eq(ryz_results_read(h5, &res), RYZ_OK);
    for (size_t i = 0; i < res.n_timing; i++) {
        const ryz_row_timing *t = &res.timing[i];
        if (t->tp == tp && !strcmp(t->case_name, name) && !strcmp(t->phase, "decode"))
            runs = t->runs;
    }
    free(ryz_results_sample_values(&res, name, tp, "host_other_load", &n));
    ck_assert_int_eq(n, runs);
    ryz_results_free(&res);
    return runs;
}

/* Runs a 2-rank suite of tiny at TP 1 and 2 (3 runs, extra_runs 5) whose
 * timed runs' others' shares are `others` (RYZ_TEST_HOST_OTHER), gated on
 * bandwidth_scaling or not; the run's stderr, its TP=1 and TP=2 runs. */
static test_run run_extra(const char *others, int gated, int *runs1, int *runs2) {
    char path[32], h5[32], env[64], args[128], text[256];
    snprintf(text, sizeof text, "[suite]\nrepeat = 3\nextra_runs = 5\nwarmup = 0\n\n[case x]\n"
             "model = synthetic:tiny\nprompt = 1 2 3\nnew_tokens = 4\ntp = 1 2\n%s",
             gated ? "\n[acceptance]\nmin_bandwidth_scaling = 0.01\n" : "");
    temp_file_with(path, text);
    temp_path(h5);
    snprintf(env, sizeof env, "RYZ_TEST_HOST_OTHER=%s", others);
    snprintf(args, sizeof args, "suite %s --quiet -o %s", path, h5);
    test_run r = test_run_ryz(env, args);
    ck_assert_msg(r.code <= 1, "exit %d; stderr:\n%s", r.code, r.err);
    *runs1 = timed_runs_of(h5, "x", 1), *runs2 = timed_runs_of(h5, "x", 2);
    unlink(h5);
    unlink(path);
    return r;
}

/* With extra_runs, a (case, TP) times more runs while the host's
 * neighbours disturbed some and left fewer than 3 alone, up to extra_runs
 * more, at TP=1 on rank 0 and at TP=2 on both ranks alike, and says so
 * even under --quiet; none where no run was disturbed, nor where no
 * bandwidth_scaling check would judge them. */
START_TEST(test_suite_extra_runs) {
    int r1, r2;
    test_run r = run_extra("0.5,0.5,0.5,0", 1, &r1, &r2);
    ck_assert_int_eq(r1, 6);
    ck_assert_int_eq(r2, 6);
    const char *notes[] = {"ryz: note: case x tp=1: the host's neighbours disturbed 3 of the 3 "
                           "timed runs, so 3 more ran (extra_runs 5); 3 of 6 left alone\n",
                           "ryz: note: case x tp=2: the host's neighbours disturbed 3 of the 3"};
    test_assert_all_in(r.err, notes, 2);
    test_run_free(&r);
    r = run_extra("0.5", 1, &r1, &r2); /* every run disturbed: up to the cap */
    ck_assert_int_eq(r1, 8);
    ck_assert_int_eq(r2, 8);
    ck_assert_msg(strstr(r.err, "0 of 8 left alone: too few, so bandwidth_scaling judges every "
                                "run\n"), "%s", r.err);
    test_run_free(&r);
    r = run_extra("0.01", 1, &r1, &r2);
    ck_assert_msg(r1 == 3 && r2 == 3 && !strstr(r.err, "more ran"), "%d, %d: %s", r1, r2, r.err);
    test_run_free(&r);
    r = run_extra("0.5", 0, &r1, &r2);
    ck_assert_msg(r1 == 3 && r2 == 3 && !strstr(r.err, "more ran"), "%d, %d: %s", r1, r2, r.err);
    test_run_free(&r);
}
END_TEST

/* So does a bench, in a line of each configuration. */
START_TEST(test_bench_busy_line) {
    char h5[32], args[160];
    temp_path(h5);
    snprintf(args, sizeof args, "bench --model synthetic:15m --repeat 2 --threads 1 "
             "--prompt-len 8 --new-tokens 200 -o %s", h5);
    test_run r = run_beside_spinners(args);
    const char *line = strstr(r.out, "\n  host load during decode ");
    ck_assert_msg(r.code <= 1 && line && strstr(line, "of the CPU time other processes ran") &&
                      strstr(line, "(a busy machine: these timings are not its best)\n"),
                  "exit %d; stdout:\n%s", r.code, r.out);
    expect_load_samples(h5, "f32-t1", 2);
    test_run_free(&r);
}
END_TEST

/* When mpirun itself dies of a signal (not a rank: mpirun exits 128 + N
 * then), the self-launch names mpirun and exits 3. The launcher runs
 * `mpirun` from PATH, so a stand-in that kills itself comes first. */
START_TEST(test_launch_mpirun_killed) {
    char dir[] = "/tmp/ryz_cli_mpirun_XXXXXX", fake[64], path[32], h5[32], env[128], args[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(fake, sizeof fake, "%s/mpirun", dir);
    FILE *f = fopen(fake, "w");
    ck_assert_ptr_nonnull(f);
    fputs("#!/bin/sh\nkill -9 $$\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(fake, 0755), 0);
    temp_file_with(path, "[case k]\nmodel = synthetic:tiny\nprompt = 1 2\ntp = 1 2\n");
    temp_path(h5);
    unlink(h5);
    snprintf(env, sizeof env, "PATH=%s:\"$PATH\"", dir);
    snprintf(args, sizeof args, "suite %s --quiet -o %s", path, h5);
    test_run r = test_run_ryz(env, args);
    ck_assert_msg(r.code == 3 && strstr(r.err, "ryz: error: mpirun died of signal 9 (Killed), "
                                               "ending the job (ryz's exit code is 3)\n"),
                  "exit %d; stderr:\n%s", r.code, r.err);
    ck_assert_msg(access(h5, F_OK) != 0, "results file %s written", h5);
    test_run_free(&r);
    unlink(path);
    test_rm_tree(dir);
}
END_TEST

/* A case's prompt_text runs as the ids its tokenizer gives: beside the
 * `prompt =` case of those ids, the same errors and greedy path at TP 1
 * and 2 (2 ranks launched), its header saying the prompt came from text.
 * Without a tokenizer a synthetic model's text case is exit 2 before any
 * rank starts, naming the file and line. */
START_TEST(test_suite_prompt_text) {
    char path[32], tok[32], h5[32], args[128], text[512];
    temp_path(tok);
    test_write_hello_tokenizer(tok);
    snprintf(text, sizeof text,
             "[suite]\nrepeat = 1\nwarmup = 0\n\n"
             "[case ids]\nmodel = synthetic:tiny,vocab=%d\nprompt = 1 268 276\nnew_tokens = 4\n"
             "tp = 1 2\n\n"
             "[case text]\nmodel = synthetic:tiny,vocab=%d\n"
             "prompt_text = hello world   ; \" hello\" \" world\" after BOS\n"
             "tokenizer = %s\nnew_tokens = 4\ntp = 1 2\n",
             TEST_HELLO_VOCAB, TEST_HELLO_VOCAB, tok);
    temp_file_with(path, text);
    temp_path(h5);
    snprintf(args, sizeof args, "suite %s --quiet -o %s", path, h5);
    test_run r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 0 && strstr(r.out, "batch 1  prompt 3 (text)  new_tokens 4"),
                  "exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err);
    ryz_results res;
    ck_assert_msg(ryz_results_read(h5, &res) == RYZ_OK, "%s", ryz_last_error());
    for (int tp = 1; tp <= 2; tp++) {
        const ryz_row_correctness *a = NULL, *b = NULL;
        for (size_t i = 0; i < res.n_correctness; i++) {
            const ryz_row_correctness *c = &res.correctness[i];
            if (c->tp == tp)
                *(strcmp(c->case_name, "ids") ? &b : &a) = c;
        }
        ck_assert_msg(a && b && a->positions == b->positions && a->max_abs == b->max_abs &&
                          a->top1_agree == b->top1_agree &&
                          a->greedy_divergence == b->greedy_divergence,
                      "tp %d: the text case did other work than the ids case:\n%s", tp, r.out);
    }
    ryz_results_free(&res);
    test_run_free(&r);
    unlink(path);
    unlink(h5);
    unlink(tok);
    temp_file_with(path, "[case a]\nmodel = synthetic:tiny\nprompt_text = Once upon a time\n");
    snprintf(args, sizeof args, "suite %s", path);
    snprintf(text, sizeof text, "%s:3: case a: prompt_text needs 'tokenizer = PATH'", path);
    expect_one_line_error(args, 2, text);
    unlink(path);
}
END_TEST

/* Runs `ryz suite` on a one-case file of `lines`, expecting exit 2 with
 * one error line containing needle. */
static void expect_suite_refused(const char *lines, const char *needle) {
    char path[32], text[256], args[64];
    snprintf(text, sizeof text, "[case a]\nmodel = synthetic:tiny\nprompt = 1 2\n%s\n", lines);
    temp_file_with(path, text);
    snprintf(args, sizeof args, "suite %s", path);
    expect_one_line_error(args, 2, needle);
    unlink(path);
}

/* backend = cuda and comm = nccl: combinations no machine runs are exit 2
 * naming the case; without a CUDA build or device a cuda case (bf16 too)
 * is exit 2 with the reason, before any rank starts
 * (suites/acceptance-4gpu.ini included); with fewer GPUs than its 4 ranks
 * it is refused for nccl. */
START_TEST(test_suite_cuda_refusals) {
    expect_suite_refused("comm = nccl", "case a: comm nccl needs backend = cuda");
    int devices = 0;
    if (ryz_cuda_device_count(&devices) != RYZ_OK) {
        expect_suite_refused("backend = cuda", "case a: backend cuda: no CUDA device: ");
        expect_suite_refused("backend = cuda\ndtype = bf16",
                             "case a: backend cuda: no CUDA device: ");
        expect_one_line_error("suite suites/acceptance-4gpu.ini", 2,
                              "case llama-7b-decode: backend cuda: no CUDA device: ");
    } else if (devices < 4) {
        expect_one_line_error("suite suites/acceptance-4gpu.ini", 2,
                              "case llama-7b-decode: comm nccl needs one GPU per rank");
    } /* 4 GPUs or more: it would run, for many minutes; not a unit test */
}
END_TEST

/* A 2-rank suite with `env` (a test hook that starves rank 1 of one
 * buffer, or fails its reads) stops with `needle` on stderr, and `also`
 * unless NULL, quickly (no rank waits for the watchdog), and writes no
 * results. */
static void expect_nomem_no_hang(const char *env, const char *needle, const char *also) {
    char path[32], h5[32], args[128];
    temp_file_with(path, "[suite]\nrepeat = 1\nwarmup = 0\n\n[case a]\nmodel = synthetic:tiny\n"
                         "prompt = 1 2 3\nnew_tokens = 2\ntp = 1 2\n");
    temp_path(h5);
    snprintf(args, sizeof args, "suite %s --quiet -o %s", path, h5);
    double t0 = ryz_time_now();
    test_run r = test_run_ryz(env, args);
    double dt = ryz_time_now() - t0;
    ck_assert_msg(r.code != 0 && r.code != 3 && strstr(r.err, needle) &&
                      (!also || strstr(r.err, also)),
                  "%s: exit %d after %.1f s; stderr:\n%s", env, r.code, dt, r.err);
    ck_assert_msg(dt < 30, "took %.1f s: a rank waited for the watchdog", dt);
    ryz_results res;
    ck_assert_msg(ryz_results_read(h5, &res) != RYZ_OK, "results written to %s after the failure",
                  h5);
    test_run_free(&r);
    unlink(path);
    unlink(h5);
}

/* A rank that cannot allocate its bandwidth probe, its lock-step probe
 * (taken before each TP=2 run, unless the 2 ranks oversubscribe the
 * cores), its probe between decode steps (the same) or a slice of it in
 * the middle of a run, or its buffers for the collective records, tells
 * the group,
 * which stops with the reason instead of waiting in a collective for the
 * watchdog. */
START_TEST(test_suite_nomem_no_hang) {
    expect_nomem_no_hang("RYZ_TEST_PROBE_NOMEM=1 RYZ_TIMEOUT=60",
                         "bandwidth probe: 1 of 2 ranks are out of memory", NULL);
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
        expect_nomem_no_hang("RYZ_TEST_LOCKSTEP_NOMEM=1 RYZ_TIMEOUT=60",
                             "lock-step probe: 1 of 2 ranks are out of memory", NULL);
        expect_nomem_no_hang("RYZ_TEST_STEP_PROBE_NOMEM=1 RYZ_TIMEOUT=60",
                             "step probe: 1 of 2 ranks are out of memory", NULL);
        expect_nomem_no_hang("RYZ_TEST_STEP_READ_NOMEM=1 RYZ_TIMEOUT=60",
                             "step probe: slice read failed",
                             "step probe: 1 of 2 ranks could not read a slice");
    } else
        printf("test_suite_nomem_no_hang: SKIP lock-step and step probes (1 core: no per-run "
               "probes)\n");
    expect_nomem_no_hang("RYZ_TEST_RECORDS_NOMEM=1 RYZ_TIMEOUT=60",
                         "out of memory on 1 rank(s) for the a collective records", NULL);
}
END_TEST

/* `ryz ARGS` (printf-style) refuses with one line holding `needle`, and
 * `path` still holds `text` (a missing file stays missing when text is
 * NULL). */
static void expect_kept(const char *path, const char *text, const char *needle, const char *fmt,
                        ...) {
    char args[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    expect_one_line_error(args, 2, needle);
    if (!text) {
        ck_assert_msg(access(path, F_OK) != 0, "ryz %s: wrote %s", args, path);
        return;
    }
    char *now = test_slurp(path, NULL);
    ck_assert_msg(!strcmp(now, text), "ryz %s: %s changed", args, path);
    free(now);
}

/* No output may land on an input or on another output (they were lost:
 * `compare -J BASE` wrote JSON over the baseline), and a bad --tokenizer
 * is refused before generating, naming the option. */
START_TEST(test_outputs_keep_inputs) {
    const char *ini = "[suite]\nname = t\n[case c]\nmodel = synthetic:tiny\nprompt = 1 2\n"
                      "tp = 1\n";
    char suite[32], other[32], tok[32];
    temp_file_with(suite, ini);
    temp_file_with(other, "kept");
    temp_path(tok);
    unlink(tok); /* a name no file has */
    expect_kept(suite, ini, "is the input FILE", "suite %s -o %s", suite, suite);
    expect_kept(tok, NULL, "-o and --junit name the same file", "suite %s -o %s --junit %s",
                suite, tok, tok);
    expect_kept(tok, NULL, "-o and -J name the same file", "comm -e 64 -o %s -J %s", tok, tok);
    expect_kept(other, "kept", "is the input BASE", "compare %s %s -J %s", other, suite, other);
    expect_kept(other, "kept", "is the input NEW", "compare %s %s -J /tmp/./%s", suite, other,
                other + 5 /* past "/tmp/": another spelling of one file */);
    expect_kept(other, "kept", "is the input --tokenizer",
                "generate --model synthetic:tiny --prompt-ids 1 --tokenizer %s --dump-logits %s",
                other, other);
    expect_kept(other, "kept", "tokenizer (--tokenizer): ",
                "generate --model synthetic:tiny --prompt-ids 1 --tokenizer %s", other);
    /* a checkpoint named as an output: bench -o, and a suite's -o over its case's model */
    char model[32], mini[32], text[128];
    temp_path(model);
    snprintf(text, sizeof text, "export --model synthetic:tiny --format llama2c --out %s", model);
    test_run r = test_run_ryz(NULL, text);
    ck_assert_msg(r.code == 0, "export: %s", r.err);
    test_run_free(&r);
    char *bytes = test_slurp(model, NULL);
    expect_kept(model, bytes, "is the input --model", "bench --model %s --prompt-len 8 -o %s",
                model, model);
    snprintf(text, sizeof text, "[suite]\n[case c]\nmodel = %s\nprompt = 1 2\ntp = 1\n", model);
    temp_file_with(mini, text);
    expect_kept(model, bytes, "is the input a case's model", "suite %s -o %s", mini, model);
    free(bytes);
    unlink(model);
    unlink(mini);
    unlink(suite);
    unlink(other);
}
END_TEST

/* --prompt's default tokenizer (./tokenizer.bin) is an input as much as a
 * named one: --dump-logits may not write over it. Run in a folder of its
 * own holding one, with the binary's absolute path. */
START_TEST(test_dump_keeps_default_tokenizer) {
    char cwd[4096], bin[4096], dir[256];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_ptr_nonnull(realpath(test_ryz_bin(), bin));
    const char *old_bin = getenv("RYZ_BIN");
    char *saved = old_bin ? strdup(old_bin) : NULL;
    setenv("RYZ_BIN", bin, 1);
    test_mkdtemp(dir, sizeof dir, "deftok");
    ck_assert_int_eq(chdir(dir), 0);
    test_write_hello_tokenizer("tokenizer.bin");
    char *bytes = test_slurp("tokenizer.bin", NULL);
    expect_kept("tokenizer.bin", bytes, "is the input --tokenizer tokenizer.bin",
                "generate --model synthetic:tiny,vocab=%d --prompt hello --new-tokens 1 "
                "--dump-logits ./tokenizer.bin", TEST_HELLO_VOCAB);
    free(bytes);
    unlink("tokenizer.bin");
    ck_assert_int_eq(chdir(cwd), 0);
    rmdir(dir);
    if (saved) setenv("RYZ_BIN", saved, 1);
    else unsetenv("RYZ_BIN");
    free(saved);
}
END_TEST

/* generate, bench and a suite of `model` each refused in one line (exit
 * 2) with RYZ_TEST_MEM_AVAILABLE=`avail` standing in for the memory
 * available, the line naming the model and holding `want` and `also`. */
static void expect_memory_refused(const char *model, const char *avail, const char *want,
                                  const char *also) {
    char suite[32], text[128], env[64], cmds[3][128];
    snprintf(text, sizeof text, "[suite]\n[case c]\nmodel = %s\nprompt = 1 2\ntp = 1\n", model);
    temp_file_with(suite, text);
    snprintf(env, sizeof env, "RYZ_TEST_MEM_AVAILABLE=%s", avail);
    snprintf(cmds[0], sizeof cmds[0], "generate --model %s --prompt-ids 1 --new-tokens 1", model);
    snprintf(cmds[1], sizeof cmds[1], "bench --model %s --prompt-len 8", model);
    snprintf(cmds[2], sizeof cmds[2], "suite %s", suite);
    for (int i = 0; i < 3; i++) {
        test_run r = test_run_ryz(env, cmds[i]);
        ck_assert_msg(r.code == 2 && count_lines(r.err) == 1 && strstr(r.err, model) &&
                          strstr(r.err, want) && strstr(r.err, also),
                      "ryz %s: exit %d\n%s", cmds[i], r.code, r.err);
        test_run_free(&r);
    }
    unlink(suite);
}

/* A model larger than the memory available is refused before any rank
 * builds it (the kernel killed a rank mid-load, with no message). */
START_TEST(test_model_too_large_for_memory) {
    expect_memory_refused("synthetic:tiny", "1000",
                          "more than the 0.0 MB this machine has available", "weights");
}
END_TEST

/* The KV cache counts too: a tiny model's 0.7 MB of weights fit in 2 MB,
 * but not with the 4.2 MB cache of 4096 positions. */
START_TEST(test_kv_cache_too_large_for_memory) {
    expect_memory_refused("synthetic:tiny,seq_len=4096", "2000000",
                          "more than the 2.0 MB this machine has available", "KV cache");
}
END_TEST

START_TEST(test_suite_missing_file) {
    expect_one_line_error("suite /nonexistent/ryz/none.ini", 2, "/nonexistent/ryz/none.ini");
    expect_one_line_error("suite", 2, "FILE");
}
END_TEST

START_TEST(test_suite_ci_passes) {
    char h5[32], args[128];
    temp_path(h5);
    snprintf(args, sizeof args, "suite suites/ci.ini --quiet -o %s", h5);
    test_run r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 0, "exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err);
    ck_assert_msg(count_rows(r.out, 4, "PASS") >= 3, "fewer than 3 PASS rows for tp 4:\n%s", r.out);
    ck_assert_msg(count_rows(r.out, -1, "FAIL") == 0, "FAIL rows:\n%s", r.out);
    ck_assert_msg(strstr(r.out, "suite ci: PASS"), "no verdict line:\n%s", r.out);
    ck_assert_msg(!strstr(r.err, "[ryz]"), "--quiet run printed progress:\n%s", r.err);
    ck_assert_msg(strstr(r.out, h5) && access(h5, R_OK) == 0, "results %s not written:\n%s", h5,
                  r.out);
    /* ci.ini runs 4 ranks x 1 thread: oversubscribed exactly when the
     * machine has fewer than 4 cores (the CI machine has 2). */
    ryz_results res;
    ck_assert_msg(ryz_results_read(h5, &res) == RYZ_OK, "%s", ryz_last_error());
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(res.meta.world_size, 4);
    ck_assert_int_eq(res.meta.cores, cores);
    ck_assert_int_eq(res.meta.oversubscribed, 4 > cores);
    ck_assert_msg(res.n_correctness == 16 && res.n_timing > 0 && res.n_memory > 0 &&
                      res.n_collectives > 0 && res.n_samples > 0,
                  "tables: %zu correctness, %zu timing, %zu memory, %zu collectives, %zu samples",
                  res.n_correctness, res.n_timing, res.n_memory, res.n_collectives, res.n_samples);
    ck_assert_msg(4 <= cores || strstr(r.out, "oversubscribed"), "no oversubscription note:\n%s",
                  r.out);
    ryz_results_free(&res);
    unlink(h5);
    test_run_free(&r);
}
END_TEST

START_TEST(test_suite_gate_fails_on_skew) {
    char h5[32], args[128];
    temp_path(h5);
    snprintf(args, sizeof args, "suite suites/ci.ini --quiet -o %s", h5);
    test_run r = test_run_ryz("RYZ_TEST_SHARD_SKEW=1", args);
    unlink(h5);
    ck_assert_msg(r.code == 1, "exit %d, expected 1; stdout:\n%s\nstderr:\n%s", r.code, r.out,
                  r.err);
    ck_assert_msg(strstr(r.out, "FAIL"), "no FAIL in stdout:\n%s", r.out);
    /* Only ranks > 0 are skewed: every tp 1 row still passes, no tp 4 row does. */
    ck_assert_msg(count_rows(r.out, 1, "FAIL") == 0 && count_rows(r.out, 1, "PASS") >= 1,
                  "tp 1 rows:\n%s", r.out);
    ck_assert_msg(count_rows(r.out, 4, "PASS") == 0 && count_rows(r.out, 4, "FAIL") >= 3,
                  "tp 4 rows:\n%s", r.out);
    test_run_free(&r);
}
END_TEST

/* Without -o the results go to results/<suite>-<time>.h5 under the current
 * directory, created when missing (and the relaunch argv is built in bounds:
 * the sanitizer build checks that). */
START_TEST(test_suite_default_output) {
    char dir[] = "/tmp/ryz_cli_cwd_XXXXXX", cwd[4096], args[8192], ini[4200];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(ini, sizeof ini, "%s/one.ini", dir);
    FILE *f = fopen(ini, "w");
    fputs("[case one]\nmodel = synthetic:tiny\nprompt = 1 2\nnew_tokens = 3\n", f);
    fclose(f);
    snprintf(args, sizeof args, "suite %s --quiet", ini);
    char *bin = realpath(test_ryz_bin(), NULL); /* RYZ_BIN may be relative */
    ck_assert_ptr_nonnull(bin);
    setenv("RYZ_BIN", bin, 1);
    free(bin);
    ck_assert_int_eq(chdir(dir), 0);
    test_run r = test_run_ryz(NULL, args);
    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_msg(r.code == 0 && strstr(r.out, "results: results/one-"), "exit %d: %s %s", r.code,
                  r.out, r.err);
    test_run_free(&r);
    test_rm_tree(dir);
}
END_TEST

/* Checks bench's closing "bench targets: N of `total` met" line against
 * the ratios printed before it (each "P% of roofline" or "P% of sgemm
 * rate" line, against the "(target >= T%" beside it): N counts every
 * ratio printed clearly above its target and none clearly below (a ratio
 * within 0.05 points may round either way), and the missed list names
 * the rest. */
static void expect_bench_verdict(const char *out, int total) {
    static const char *const limits[] = {"% of roofline", "% of sgemm rate"};
    int above = 0, near = 0, met = -1, listed = 0;
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        for (size_t k = 0; k < sizeof limits / sizeof *limits; k++) {
            const char *at = strstr(l, limits[k]), *eol = strchr(l, '\n');
            const char *tg = at ? strstr(at, "(target >= ") : NULL;
            if (!at || (eol && at > eol)) continue;
            ck_assert_msg(tg && (!eol || tg < eol), "no target beside: %.200s", l);
            const char *num = at;
            while (num > l && (num[-1] == '.' || (num[-1] >= '0' && num[-1] <= '9'))) num--;
            double pct = atof(num), target = atof(tg + strlen("(target >= "));
            above += pct > target + 0.05;
            near += fabs(pct - target) <= 0.05;
        }
    const char *v = strstr(out, "bench targets: ");
    ck_assert_msg(v && sscanf(v, "bench targets: %d of %*d met", &met) == 1, "no verdict:\n%s",
                  out);
    char want[48];
    snprintf(want, sizeof want, "of %d met", total);
    ck_assert_msg(strstr(v, want), "verdict not over %d targets: %.120s", total, v);
    ck_assert_msg(met >= above && met <= above + near,
                  "verdict says %d met; the printed ratios: %d above target, %d at it:\n%s", met,
                  above, near, out);
    const char *m = strstr(v, "; missed: "), *eol = strchr(v, '\n');
    ck_assert_msg(eol, "verdict line unterminated: %s", v);
    if (m > eol) m = NULL;
    for (const char *c = m; c && c < eol; c = strchr(c + 1, '<')) listed += *c == '<';
    ck_assert_msg((met == total) == !m && listed == total - met,
                  "%d met of %d, %d listed as missed: %.300s", met, total, listed, v);
}

/* ryz bench prints each figure against its limit for every (dtype,
 * threads) configuration, bf16 against fp32, the targets met, and writes
 * a results file that `ryz compare` accepts (no timing is asserted). */
START_TEST(test_bench_results) {
    char h5[32], args[256];
    temp_path(h5);
    snprintf(args, sizeof args,
             "bench --model synthetic:tiny --repeat 3 --prompt-len 8 --new-tokens 4 "
             "--threads 1,2 --dtype f32,bf16 --probe-mib 16 -o %s", h5);
    test_run r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 0 && strstr(r.out, "of roofline") && strstr(r.out, "of sgemm") &&
                      strstr(r.out, "(one layer's shapes at 8 rows, OpenBLAS core ") &&
                      strstr(r.out, "(target >= 90%; the median of the runs' own ratios") &&
                      strstr(r.out, "of sgemm rate (target >= 50%; the median of the runs' own "
                                    "ratios") &&
                      strstr(r.out, "16 MiB slices between the decode steps") &&
                      strstr(r.out, "probe after each run") &&
                      strstr(r.out, "bf16-t2: bf16 weights") &&
                      strstr(r.out, "bf16 against f32") && strstr(r.out, "PASS"),
                  "exit %d: %s %s", r.code, r.out, r.err);
    expect_bench_verdict(r.out, 8); /* 4 configurations x (decode, prefill) */
    test_run_free(&r);
    ryz_results res;
    ck_assert_msg(ryz_results_read(h5, &res) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_uint_eq(res.n_timing, 8); /* 4 configurations x (prefill, decode) */
    /* and 3 runs' (prefill, decode, probe between the steps, probe after,
     * sgemm pass before the prefill) each */
    ck_assert_uint_eq(res.n_samples, 60);
    int probes = 0, after = 0, gemm = 0;
    for (size_t i = 0; i < res.n_samples; i++) {
        probes += !strcmp(res.samples[i].metric, "read_bandwidth_gbs") && res.samples[i].value > 0;
        after += !strcmp(res.samples[i].metric, "read_bandwidth_after_gbs") &&
                 res.samples[i].value > 0;
        gemm += !strcmp(res.samples[i].metric, "sgemm_gflops") && res.samples[i].value > 0;
    }
    ck_assert_int_eq(probes, 12);
    ck_assert_int_eq(after, 12);
    ck_assert_int_eq(gemm, 12);
    ck_assert_str_eq(res.meta.suite_name, "bench");
    ck_assert_str_eq(res.meta.kind, RYZ_KIND_BENCH); /* what `ryz compare` judges it by */
    ck_assert_str_eq(res.timing[0].case_name, "f32-t1");
    ck_assert_str_eq(res.timing[7].case_name, "bf16-t2");
    ryz_results_free(&res);
    snprintf(args, sizeof args, "compare %s %s", h5, h5);
    r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 0 && strstr(r.out, "decode_s") && strstr(r.out, "not gated"),
                  "compare: %d %s", r.code, r.out);
    test_run_free(&r);
    unlink(h5);
}
END_TEST

START_TEST(test_bench_bad_options) {
    expect_one_line_error("bench --dtype f16", 2, "dtype 'f16' unknown (known: f32, bf16)");
    expect_one_line_error("bench --threads 0", 2, "--threads");
    expect_one_line_error("bench --threads 1,,x", 2, "--threads");
    expect_one_line_error("bench --threads", 2, "--threads needs a value");
    expect_one_line_error("bench --threads 1,2,3,4,5,6,7,8,9", 2, "more than 8");
    expect_one_line_error("bench --threads 1,2,01", 2, "--threads '1,2,01' lists 01 twice");
    expect_one_line_error("bench --dtype bf16,f32,bf16", 2, "lists bf16 twice");
    expect_one_line_error("project --results x.h5 --tp 2,4,2", 2, "--tp '2,4,2' lists 2 twice");
    expect_one_line_error("bench --model synthetic:tiny --decode-prompt 100 --new-tokens 64", 2,
                          "--decode-prompt 100 + --new-tokens 64, exceed synthetic:tiny's "
                          "seq_len 128 (pass smaller ones)");
    /* outputs that cannot be written are refused before any work */
    expect_one_line_error("bench --model synthetic:tiny --prompt-len 8 -o /nonexistent/b.h5", 2,
                          "directory /nonexistent: does not exist");
    expect_one_line_error("generate --model synthetic:tiny --prompt-ids 1 --new-tokens 2 "
                          "--dump-logits /nonexistent/x.bin", 2,
                          "directory /nonexistent: does not exist");
    expect_one_line_error("compare tests/data/results-schema3.h5 tests/data/results-schema3.h5 "
                          "-J /nonexistent/c.json", 2, "directory /nonexistent: does not exist");
    expect_one_line_error("generate --model synthetic:tiny --prompt-ids 1 --dtype f16", 2,
                          "dtype 'f16' unknown");
    expect_one_line_error("bench --bf16-tol 0", 2, "--bf16-tol '0' is not a number in (0, 1]");
    expect_one_line_error("bench --tf32", 2, "--tf32 needs --backend cuda");
    expect_one_line_error("bench --backend cuda --threads 2", 2, "--threads is for the cpu");
    expect_one_line_error("bench --backend tpu", 2, "backend 'tpu' unknown");
    if (ryz_backend_available(RYZ_BACKEND_CUDA) != RYZ_OK) /* else gpu-check's bench runs it */
        expect_one_line_error("bench --backend cuda --model synthetic:tiny", 2, "no CUDA device");
    /* bf16 logits held to a tolerance far below bf16's rounding: a wrong
     * output, exit 1 (a failed check), not a slow one. */
    test_run r = test_run_ryz(NULL, "bench --model synthetic:tiny --repeat 1 --prompt-len 8 "
                                    "--new-tokens 2 --dtype bf16 --probe-mib 4 --bf16-tol 1e-9");
    ck_assert_msg(r.code == 1 && strstr(r.out, "FAIL") &&
                      strstr(r.err, "ryz: error: bf16 logits outside tolerance against f32"),
                  "exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.out, r.err);
    test_run_free(&r);
}
END_TEST

START_TEST(test_info) {
    test_run r = test_run_ryz(NULL, "info");
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    const char *want[] = {"backends   cpu", "MPI ", "Open MPI", "BLAS ", "HDF5 ", "CUDA ", "CPU "};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(r.out, want[i]), "no '%s' in:\n%s", want[i], r.out);
    test_run_free(&r);
    r = test_run_ryz(NULL, "info extra");
    ck_assert_int_eq(r.code, 2);
    test_run_free(&r);
}
END_TEST

/* On an x86-64 CPU with AVX2 and FMA, ryz runs OpenBLAS (a DYNAMIC_ARCH
 * build) on kernels that use them, even where OpenBLAS took the CPU for a
 * generic one (0.3.21 on Emerald Rapids: Prescott), and `ryz info` says
 * so; a core the user names in OPENBLAS_CORETYPE stands. Run without the
 * caller's OPENBLAS_CORETYPE and RYZ_BLAS_CORE_WAS. */
START_TEST(test_info_blas_core) {
    static const char *const generic[] = {" Prescott ", " Core2 ", " Nehalem ", " Barcelona "};
    test_run r = test_run_ryz("env -u OPENBLAS_CORETYPE -u RYZ_BLAS_CORE_WAS", "info");
    ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
    char line[512] = "";
    const char *blas = strstr(r.out, "BLAS ");
    ck_assert_msg(blas, "no BLAS line in:\n%s", r.out);
    snprintf(line, sizeof line, "%.*s", (int)strcspn(blas, "\n"), blas);
    int avx2 = 0;
#if defined(__x86_64__)
    avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    if (!avx2 || !strstr(line, "DYNAMIC_ARCH")) {
        printf("test_info_blas_core: SKIP (not x86-64 with AVX2 and FMA, or OpenBLAS built for "
               "one core)\n");
        test_run_free(&r);
        return;
    }
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(!strstr(line, generic[i]), "OpenBLAS runs%sfor an AVX2 CPU:\n%s",
                      generic[i], r.out);
    if (!strstr(r.out, "asked for by ryz"))
        printf("test_info_blas_core: OpenBLAS chose its own core here (%s)\n", line);
    test_run_free(&r);
    r = test_run_ryz("env -u RYZ_BLAS_CORE_WAS OPENBLAS_CORETYPE=Prescott", "info");
    ck_assert_msg(r.code == 0 && strstr(r.out, " Prescott ") && !strstr(r.out, "asked for by ryz"),
                  "exit %d; OPENBLAS_CORETYPE=Prescott not kept:\n%s", r.code, r.out);
    test_run_free(&r);
}
END_TEST

static Suite *cli_suite(void) {
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_no_args);
    tcase_add_test(tc, test_unknown_command);
    tcase_add_test(tc, test_help_and_version);
    tcase_add_test(tc, test_generate_tp_rule);
    tcase_add_test(tc, test_generate_bad_input);
    tcase_add_test(tc, test_generate_backend_options);
    tcase_add_test(tc, test_generate_tp1_equals_tp2);
    tcase_add_test(tc, test_suite_unknown_key);
    tcase_add_test(tc, test_suite_missing_file);
    tcase_add_test(tc, test_outputs_keep_inputs);
    tcase_add_test(tc, test_model_too_large_for_memory);
    tcase_add_test(tc, test_kv_cache_too_large_for_memory);
    tcase_add_test(tc, test_dump_keeps_default_tokenizer);
    tcase_add_test(tc, test_suite_cuda_refusals);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_info_blas_core);
    tcase_add_test(tc, test_bench_results);
    tcase_add_test(tc, test_suite_bf16_tolerance);
    tcase_add_test(tc, test_suite_loosened_note);
    tcase_add_test(tc, test_launch_mpirun_killed);
    tcase_add_test(tc, test_suite_busy_note);
    tcase_add_test(tc, test_suite_extra_runs);
    tcase_add_test(tc, test_bench_busy_line);
    tcase_add_test(tc, test_suite_prompt_text);
    tcase_add_test(tc, test_suite_nomem_no_hang);
    tcase_add_test(tc, test_bench_bad_options);
    tcase_add_test(tc, test_suite_default_output);
    tcase_add_test(tc, test_suite_ci_passes);
    tcase_add_test(tc, test_suite_gate_fails_on_skew);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return test_run_suite(cli_suite());
}
