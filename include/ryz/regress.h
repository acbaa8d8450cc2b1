/* Regression comparison of two results files (part of results/): ratio of
 * medians and a one-sided Mann-Whitney U test on the raw samples, plus the
 * deterministic fields (correctness, acceptance checks, memory). */
#ifndef RYZ_REGRESS_H
#define RYZ_REGRESS_H

#include <stdio.h>

#include "ryz/results.h"

typedef struct {
    double max_slowdown; /* ratio of medians new/base above which a slowdown counts (1.10) */
    double alpha;        /* significance level of the one-sided test (0.01) */
    double max_mem_growth; /* memory ratio above which growth counts (1.01) */
    /* For `ryz comm` files: RYZ_OK when their command lines (suite_text)
     * did the same work, else EINVAL saying how not; NULL: the lines must
     * match word for word, output files aside. The results module cannot
     * parse a command line (the CLI's ryz_cli_comm_same_work does). */
    ryz_status (*same_comm_work)(const char *base, const char *cand);
} ryz_regress_opts;

/* One compared (case, tp, metric). */
typedef struct {
    char case_name[RYZ_NAME_LEN];
    int tp;
    char metric[40];     /* "decode_s", "prefill_s", "correctness", "memory_bytes",
                            "accept:speedup" (an acceptance check) */
    double base, cand;   /* medians (timing), values (others; NAN not in the new file) */
    double ratio;        /* cand / base (correctness, acceptance: 1 passes, 0 fails) */
    double p_value;      /* Mann-Whitney one-sided p (timing); 0 deterministic */
    int n_base, n_cand;  /* samples */
    int regression;      /* 1 when this row fails the comparison */
    char why[160];       /* what crossed which threshold, or why a slowdown is not one */
} ryz_regress_row;

/* One root attribute the runs' timings depend on besides the build, whose
 * values differ between the files. */
typedef struct {
    char name[24];              /* "cpu_model", "blas", "device", "hosts", "cores", ... */
    char base[256], cand[256];  /* the values ("" not recorded), longer ones cut with "..." */
    int text;                   /* a string, quoted when printed (not a count or yes/no) */
} ryz_regress_diff;

#define RYZ_REGRESS_MAX_DIFFS 8

typedef struct {
    ryz_regress_row *rows;
    size_t n;
    int regressions;
    /* What the runs ran on or how, where it differs: a time ratio across
     * machines, BLAS kernels or thread counts is theirs as much as the
     * build's. */
    ryz_regress_diff diffs[RYZ_REGRESS_MAX_DIFFS];
    int n_diffs;
} ryz_regress;

/* One-sided Mann-Whitney U test p-value that y tends to be larger than x
 * (exact distribution for n*m <= 2500 without ties, normal approximation
 * with tie correction otherwise). 1 when either side is empty. */
double ryz_mann_whitney_greater(const double *x, int n, const double *y, int m);

/* Compares cand against base. EINVAL when the files cannot be compared:
 * files of two commands (kind), different suites, a case whose model
 * differs, or no case in common (the message names each file's cases).
 * Rows are sorted worst first. */
ryz_status ryz_regress_compare(const ryz_results *base, const ryz_results *cand,
                               const ryz_regress_opts *opts, ryz_regress *out);
void ryz_regress_free(ryz_regress *r);
/* The differences of r->diffs on one line, "; " between them: "cpu_model
 * 'A' -> 'B'; blas (not recorded) -> 'C'; cores 2 -> 4" ("" when none). */
void ryz_regress_format_diffs(const ryz_regress *r, char *buf, size_t cap);
/* The machine note (when r->diffs has any), then the comparison table,
 * worst first. */
void ryz_regress_print(const ryz_regress *r, FILE *out);
/* The rows as a JSON document. EIO naming the path on failure. */
ryz_status ryz_regress_write_json(const ryz_regress *r, const char *path);

#endif
