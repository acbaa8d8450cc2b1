/* ryz compare BASE.h5 NEW.h5: regression check between two runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/cli.h"
#include "ryz/regress.h"
#include "args.h"

static void compare_usage(FILE *f) {
    fprintf(f, "usage: ryz compare BASE.h5 NEW.h5 [--max-slowdown 1.10] [--alpha 0.01]\n"
               "                  [--max-mem-growth 1.01] [-J FILE.json]\n"
               "  For each (case, TP, metric): ratio of medians and a one-sided Mann-Whitney U\n"
               "  test on the raw samples; a slowdown is a regression only when it exceeds the\n"
               "  threshold AND is significant. Correctness and acceptance checks (PASS ->\n"
               "  FAIL) and memory growth are compared directly. A note above the table names\n"
               "  what the runs differ in besides the build (CPU, BLAS core, device, hosts,\n"
               "  cores, threads per rank, oversubscription). Exit 1 on any regression, 2\n"
               "  when the files cannot be compared: files of two commands (suite, bench,\n"
               "  comm), no case in common, another suite, or a case whose model, prompt\n"
               "  (ids, or text and tokenizer), batch, new_tokens, dtype, tf32, backend or\n"
               "  comm differs (`ryz comm` files: an option, in whatever order or spelling,\n"
               "  or the number of ranks; output files aside).\n");
}

/* A positive number option. */
static ryz_status opt_double(const char *opt, const char *v, double lo, double *out) {
    char *end;
    if (!v) return ryz_error(RYZ_EINVAL, "compare: %s needs a value", opt);
    double x = strtod(v, &end);
    if (end == v || *end || !(x > lo))
        return ryz_error(RYZ_EINVAL, "compare: %s '%s' must be a number > %g", opt, v, lo);
    *out = x;
    return RYZ_OK;
}

static ryz_status compare_args(int argc, char **argv, const char **files, const char **json,
                               ryz_regress_opts *o, int *help) {
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        ryz_status st = RYZ_OK;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) *help = 1;
        else if (!strcmp(a, "--max-slowdown")) st = opt_double(a, v, 1.0, &o->max_slowdown), i++;
        else if (!strcmp(a, "--alpha")) st = opt_double(a, v, 0.0, &o->alpha), i++;
        else if (!strcmp(a, "--max-mem-growth")) st = opt_double(a, v, 1.0, &o->max_mem_growth), i++;
        else if (!strcmp(a, "-J") || !strcmp(a, "--json")) {
            if (!v) return ryz_error(RYZ_EINVAL, "compare: %s needs a path", a);
            *json = v, i++;
        } else if (a[0] == '-') return ryz_error(RYZ_EINVAL, "compare: unknown option '%s'", a);
        else if (nf == 2) return ryz_error(RYZ_EINVAL, "compare: two files expected, got a third '%s'", a);
        else files[nf++] = a;
        if (st != RYZ_OK) return st;
    }
    if (!*help && nf != 2) return ryz_error(RYZ_EINVAL, "compare: BASE.h5 and NEW.h5 are required");
    if (o->alpha >= 1) return ryz_error(RYZ_EINVAL, "compare: --alpha must be below 1");
    return RYZ_OK;
}

int ryz_cmd_compare(int argc, char **argv) {
    const char *files[2] = {NULL, NULL}, *json = NULL;
    ryz_regress_opts o = {.max_slowdown = 1.10,
                          .alpha = 0.01,
                          .max_mem_growth = 1.01,
                          .same_comm_work = ryz_cli_comm_same_work};
    ryz_results base, cand;
    ryz_regress r = {0};
    int help = 0;
    ryz_results_init(&base);
    ryz_results_init(&cand);
    ryz_status st = compare_args(argc, argv, files, &json, &o, &help);
    if (st == RYZ_OK && help) {
        compare_usage(stdout);
        return 0;
    }
    const char *opts[] = {"BASE", "NEW", "-J"}, *paths[] = {files[0], files[1], json};
    if (st == RYZ_OK) st = ryz_args_distinct_files(3, 2, opts, paths);
    if (st == RYZ_OK && json) st = ryz_results_check_writable(json); /* before the table */
    if (st == RYZ_OK) st = ryz_results_read(files[0], &base);
    if (st == RYZ_OK) st = ryz_results_read(files[1], &cand);
    /* Files of different schema versions compare: the reader brings every
     * version it accepts to the current rows (columns added later read 0,
     * and regressions are judged on columns every version has). */
    if (st == RYZ_OK) st = ryz_regress_compare(&base, &cand, &o, &r);
    if (st == RYZ_OK) ryz_regress_print(&r, stdout);
    if (st == RYZ_OK && json) st = ryz_regress_write_json(&r, json);
    int code = st != RYZ_OK ? ryz_cli_fail(st == RYZ_EIO ? RYZ_EINVAL : st, NULL)
                            : r.regressions ? 1 : 0;
    ryz_regress_free(&r);
    ryz_results_free(&base);
    ryz_results_free(&cand);
    return code;
}
