/* ryz suite FILE: the main job. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>

#include "ryz/ckpt.h"
#include "ryz/cli.h"
#include "ryz/results.h"
#include "ryz/suite.h"
#include "args.h"

typedef struct {
    const char *file, *out, *junit;
    ryz_run_opts run;
} suite_args;

static void suite_usage(FILE *f) {
    fprintf(f, "usage: ryz suite FILE [-o RESULTS.h5] [--junit FILE.xml] [--quiet|-q]\n"
               "  Runs every case of the suite file: TP=1 baseline, then each TP degree\n"
               "  teacher-forced and greedy, compared position by position, timed.\n"
               "  Writes RESULTS.h5 (default results/<suite>-<UTC time>.h5, results/ created\n"
               "  in the current directory). Launches its\n"
               "  own ranks (mpirun) when started outside mpirun. Correctness and the suite's\n"
               "  [acceptance] thresholds are checks; --junit writes them as JUnit XML.\n"
               "  --quiet leaves out the progress lines (\"[ryz] case 1/2 ...: tp=2 greedy\")\n"
               "  on stderr; the tables and the verdict still print.\n"
               "  A case with backend = cuda runs each rank on its GPU (a CUDA build and a\n"
               "  device; f32), checked against the cpu backend's f32 TP=1 reference;\n"
               "  comm = nccl (cuda only) needs one GPU per rank; comm = shm uses ryz's own\n"
               "  shared-memory collectives (all ranks on one node) instead of Open MPI's.\n"
               "  Exit: 0 all pass, 1 a check failed, 2 bad input, 3 communication failure.\n");
}

static ryz_status suite_parse_args(int argc, char **argv, suite_args *a, int *help) {
    *help = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) *help = 1;
        else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) a->run.quiet = 1;
        else if (!strcmp(argv[i], "--junit")) {
            if (i + 1 >= argc) return ryz_error(RYZ_EINVAL, "suite: --junit needs a path");
            a->junit = argv[++i];
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) {
            if (i + 1 >= argc) return ryz_error(RYZ_EINVAL, "suite: %s needs a path", argv[i]);
            a->out = argv[++i];
        } else if (argv[i][0] == '-')
            return ryz_error(RYZ_EINVAL, "suite: unknown option '%s' (see --help)", argv[i]);
        else if (a->file)
            return ryz_error(RYZ_EINVAL, "suite: one FILE expected, got '%s' and '%s'", a->file,
                             argv[i]);
        else a->file = argv[i];
    }
    if (!a->file && !*help) return ryz_error(RYZ_EINVAL, "suite: FILE is required (see --help)");
    return RYZ_OK;
}

/* The default results path: results/<suite>-<UTC time>.h5. */
static void default_output(const ryz_suite *s, char *buf, size_t cap) {
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(buf, cap, "results/%s-%s.h5", s->name, when);
}

/* EINVAL when -o or --junit would write over the suite file, a case's
 * checkpoint or tokenizer (its key, or where a text prompt's default one
 * lies), or each other. */
static ryz_status check_outputs(const suite_args *a, const ryz_suite *s, const char *out) {
    int n = 1, max = 3 + 2 * s->n_cases;
    const char **opts = malloc((size_t)max * sizeof *opts);
    const char **paths = malloc((size_t)max * sizeof *paths);
    char(*tok)[RYZ_SUITE_PATH_MAX + 16] = malloc((size_t)s->n_cases * sizeof *tok);
    if (!opts || !paths || !tok) {
        free(opts), free(paths), free(tok);
        return ryz_error(RYZ_ENOMEM, "out of memory checking the output paths");
    }
    opts[0] = "FILE", paths[0] = a->file;
    for (int i = 0; i < s->n_cases; i++) {
        const ryz_suite_case *c = &s->cases[i];
        if (strncmp(c->model, "synthetic:", 10)) opts[n] = "a case's model", paths[n++] = c->model;
        if (!c->prompt_text[0]) continue;
        if (!c->tokenizer[0]) ryz_tokenizer_default(c->model, tok[i], sizeof tok[i]);
        opts[n] = "a case's tokenizer", paths[n++] = c->tokenizer[0] ? c->tokenizer : tok[i];
    }
    int n_in = n;
    opts[n] = "-o", paths[n++] = out;
    opts[n] = "--junit", paths[n++] = a->junit;
    ryz_status st = ryz_args_distinct_files(n, n_in, opts, paths);
    free(opts), free(paths), free(tok);
    return st;
}

/* Everything that can fail on bad input, before any rank is launched. */
static ryz_status suite_prepare(suite_args *a, ryz_suite *s, char *out, size_t cap) {
    ryz_status st = ryz_suite_load(a->file, s);
    if (st == RYZ_OK) st = ryz_suite_validate(s);
    if (st != RYZ_OK) return st;
    if (a->out) snprintf(out, cap, "%s", a->out);
    else if (default_output(s, out, cap), mkdir("results", 0755) != 0 && errno != EEXIST)
        return ryz_error(RYZ_EIO, "cannot create the results directory: %s (use -o FILE)",
                         strerror(errno));
    st = check_outputs(a, s, out);
    if (st == RYZ_OK) st = ryz_results_check_writable(out);
    if (st == RYZ_OK && a->junit) st = ryz_results_check_writable(a->junit);
    return st;
}

/* Rank 0 after a completed run: the checks (correctness, [acceptance]),
 * listed where ryz_checks_listed says, JUnit XML when asked, the results
 * file (the checks in its /acceptance table) and the verdict. *failed
 * gets the number of failed checks. */
static ryz_status suite_finish(const suite_args *a, const ryz_suite *s, ryz_results *res,
                               const char *out, int *failed) {
    ryz_checks checks;
    ryz_status st = ryz_acceptance_evaluate(s, res, &checks);
    if (st != RYZ_OK) return st;
    if (ryz_checks_listed(s, &checks, a->junit != NULL))
        ryz_checks_print(&checks, stdout);
    if (a->junit) st = ryz_checks_write_junit(&checks, s->name, a->junit);
    if (st == RYZ_OK) st = ryz_checks_store(&checks, res);
    if (st == RYZ_OK) st = ryz_results_write(res, out);
    if (st == RYZ_OK) {
        *failed = checks.failed;
        ryz_checks_print_verdict(&checks, s->name, stdout);
        printf("results: %s\n", out);
        if (a->junit) printf("junit: %s\n", a->junit);
    }
    ryz_checks_free(&checks);
    return st;
}

/* Rank 0 after a run stopped by SIGINT/SIGTERM (st says so): the tables so
 * far, marked interrupted, through the same atomic writer, but only when
 * every rank still answers: a rank that died means the job failed rather
 * than was stopped. Returns st, or why nothing was written. */
static ryz_status suite_write_interrupted(ryz_comm *world, ryz_results *res, const char *out,
                                          ryz_status st) {
    ryz_status ws = ryz_comm_check_peers(world, 0.5);
    if (ws == RYZ_OK) ws = ryz_cli_write_interrupted(res, out);
    return ws == RYZ_OK ? st : ryz_error_wrap(ws, "interrupted by signal %d, no results written",
                                              ryz_interrupted());
}

int ryz_cmd_suite(int argc, char **argv) {
    suite_args a = {0};
    ryz_suite s = {0};
    ryz_results res;
    char out[4096];
    int help, code, failed = 0;
    ryz_status st = suite_parse_args(argc, argv, &a, &help);
    if (st == RYZ_OK && help) {
        suite_usage(stdout);
        return 0;
    }
    if (st == RYZ_OK) st = suite_prepare(&a, &s, out, sizeof out);
    if (st != RYZ_OK) {
        ryz_suite_free(&s);
        return ryz_cli_fail(st, NULL);
    }
    ryz_comm *world = NULL;
    ryz_results_init(&res);
    int np = s.ranks ? s.ranks : ryz_suite_max_tp(&s);
    /* The relaunched ranks must agree on the file name: pass it down. */
    char *sub_argv[argc + 4]; /* argv[-1], argv[0..argc), "-o", out, NULL */
    int sub_argc = 0;
    sub_argv[sub_argc++] = argv[-1];
    for (int i = 0; i < argc; i++) sub_argv[sub_argc++] = argv[i];
    if (!a.out) sub_argv[sub_argc++] = "-o", sub_argv[sub_argc++] = out;
    sub_argv[sub_argc] = NULL;
    st = ryz_cli_world(np, sub_argc, sub_argv, &world, &code);
    if (st == RYZ_OK && !world) { /* the job ran under mpirun, launched from here */
        ryz_suite_free(&s);
        return code;
    }
    if (st == RYZ_OK && ryz_suite_needs_comm(&s, "nccl"))
        st = ryz_cli_comm_world("nccl", &a.run.nccl);
    if (st == RYZ_OK && ryz_suite_needs_comm(&s, "shm")) st = ryz_cli_comm_world("shm", &a.run.shm);
    if (st == RYZ_OK) st = ryz_suite_run(&s, world, &a.run, &res, &failed);
    int lead = world && ryz_comm_rank(world) == 0;
    if (st == RYZ_OK && lead) st = suite_finish(&a, &s, &res, out, &failed);
    else if (lead && ryz_interrupted()) st = suite_write_interrupted(world, &res, out, st);
    if (st != RYZ_OK) code = ryz_cli_fail(st, world);
    else code = failed ? 1 : 0;
    ryz_comm_free(a.run.nccl);
    ryz_comm_free(a.run.shm);
    ryz_cli_world_free(world);
    ryz_results_free(&res);
    ryz_suite_free(&s);
    return code;
}
