/* ryz project: TP decode scaling projected from a `ryz comm` results file
 * with the alpha-beta cost model (src/bench/costmodel.c). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ryz/bench.h"
#include "ryz/cli.h"
#include "ryz/model.h"

enum { MAX_TP = 32 };

typedef struct {
    const char *results, *model, *case_name, *out;
    int tp[MAX_TP], n_tp;
    double compute_s;                    /* 0: from the file or the roofline */
    double inter_alpha_us, inter_bw_gbs; /* 0: not given */
    int per_node;                        /* 0: not given */
} project_args;

static void project_usage(FILE *f) {
    fprintf(f,
            "usage: ryz project --results FILE.h5 [--tp 2,4,8,16,32,64] [--model SRC]\n"
            "                   [--compute-s S] [--case NAME] [-o OUT.h5]\n"
            "                   [--inter-node-alpha A_us --inter-node-bw B_GBs --gpus-per-node G]\n"
            "  Fits latency = alpha + beta * bytes to the all_reduce (and all_gather) p50\n"
            "  points of a `ryz comm -o FILE.h5` run and projects the per-token decode time\n"
            "  of SRC (default synthetic:110m) at each TP degree:\n"
            "    compute / k + (2 layers + 1) all-reduces of dim x 4 bytes\n"
            "                + 1 all-gather of the vocab x 4 bytes of logits,\n"
            "  each a ring (see docs/comm.md). compute, the TP=1 time per token, is\n"
            "  --compute-s, else the file's /timing decode row at tp 1, else a roofline\n"
            "  estimate. --case NAME takes that row from case NAME (a file of several\n"
            "  cases; default: the first with a decode row at tp 1). -o writes the file's\n"
            "  tables plus /timing rows 'decode_proj' (`ryz show --raw` lists them).\n");
}

/* Parses option o's value as a double in [lo, hi]. */
static ryz_status arg_double(const char *o, const char *v, double lo, double hi, double *out) {
    if (!v)
        return ryz_error(RYZ_EINVAL, "%s needs a value", o);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        return ryz_error(RYZ_EINVAL, "%s '%s': expected a number in [%g, %g]", o, v, lo, hi);
    *out = x;
    return RYZ_OK;
}

/* "2,4,8" into a->tp. */
static ryz_status parse_tp_list(const char *v, project_args *a) {
    if (!v)
        return ryz_error(RYZ_EINVAL, "--tp needs a list such as 2,4,8");
    char buf[512];
    snprintf(buf, sizeof buf, "%s", v);
    a->n_tp = 0;
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (a->n_tp == MAX_TP)
            return ryz_error(RYZ_EINVAL, "--tp: at most %d degrees", MAX_TP);
        ryz_status st = ryz_arg_int("--tp", tok, 1, 1 << 16, &a->tp[a->n_tp++]);
        if (st != RYZ_OK)
            return st;
        for (int i = 0; i + 1 < a->n_tp; i++)
            if (a->tp[i] == a->tp[a->n_tp - 1])
                return ryz_error(RYZ_EINVAL, "--tp '%s' lists %s twice (each once)", v, tok);
    }
    return a->n_tp ? RYZ_OK : ryz_error(RYZ_EINVAL, "--tp '%s' holds no degree", v);
}

/* One option with its value v; *used 0 when o is not an option. */
static ryz_status project_option(project_args *a, const char *o, const char *v, int *used) {
    *used = 1;
    if (!strcmp(o, "--tp"))
        return parse_tp_list(v, a);
    if (!strcmp(o, "--compute-s"))
        return arg_double(o, v, 1e-12, 1e6, &a->compute_s);
    if (!strcmp(o, "--inter-node-alpha"))
        return arg_double(o, v, 0, 1e9, &a->inter_alpha_us);
    if (!strcmp(o, "--inter-node-bw"))
        return arg_double(o, v, 1e-12, 1e9, &a->inter_bw_gbs);
    if (!strcmp(o, "--gpus-per-node"))
        return ryz_arg_int(o, v, 1, 1 << 16, &a->per_node);
    const char **s = !strcmp(o, "--results") ? &a->results
                     : !strcmp(o, "--model") ? &a->model
                     : !strcmp(o, "--case")  ? &a->case_name
                     : !strcmp(o, "-o")      ? &a->out
                                             : NULL;
    *used = s != NULL;
    if (s && !v)
        return ryz_error(RYZ_EINVAL, "%s needs a value", o);
    if (s)
        *s = v;
    return RYZ_OK;
}

static ryz_status project_parse(int argc, char **argv, project_args *a, int *help) {
    *a = (project_args){
        .model = "synthetic:110m", .tp = {2, 4, 8, 16, 32, 64}, .n_tp = 6, .inter_alpha_us = -1};
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int used;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            *help = 1;
            continue;
        }
        ryz_status st = project_option(a, o, ryz_arg_value(argc, argv, &i), &used);
        if (st != RYZ_OK)
            return st;
        if (!used)
            return ryz_error(RYZ_EINVAL, "project: unknown option '%s' (see --help)", o);
    }
    if (*help)
        return RYZ_OK;
    if (!a->results)
        return ryz_error(RYZ_EINVAL, "project: --results FILE.h5 is required");
    int given = (a->inter_alpha_us >= 0) + (a->inter_bw_gbs > 0) + (a->per_node > 0);
    if (given != 0 && given != 3)
        return ryz_error(RYZ_EINVAL, "project: --inter-node-alpha, --inter-node-bw and "
                                     "--gpus-per-node go together");
    return a->out ? ryz_results_check_writable(a->out) : RYZ_OK;
}

/* The TP=1 per-token time in us and where it came from. */
static ryz_status compute_time(const project_args *a, const ryz_results *res,
                               const ryz_model_config *cfg, double *us, char *from, size_t cap) {
    const ryz_row_timing *t = ryz_find_decode(res, a->case_name, 1);
    if (a->case_name && !t) /* the roofline would stand in for the row asked for */
        return ryz_error(RYZ_EINVAL, "--case '%s': %s has no decode row at tp 1 for that case",
                         a->case_name, a->results);
    if (a->compute_s > 0) {
        *us = 1e6 * a->compute_s;
        snprintf(from, cap, "--compute-s");
    } else if (t && t->tokens_per_s > 0) {
        *us = 1e6 / t->tokens_per_s;
        snprintf(from, cap, "/timing decode row at tp 1, case '%s' (1 / tokens_per_s)",
                 t->case_name);
    } else {
        ryz_shard sh;
        ryz_shard_plan(cfg, 1, 0, &sh);
        double bytes = (double)ryz_model_bytes_per_token(cfg, &sh),
               bw = res->meta.read_bandwidth_gbs;
        const char *bw_from = "from the file";
        if (!(bw > 0))
            bw = ryz_mem_read_bandwidth((size_t)256 << 20, 1, 3) / 1e9, bw_from = "measured now";
        if (!(bw > 0))
            return ryz_error(RYZ_EIO, "cannot measure memory bandwidth: %s", ryz_last_error());
        *us = bytes / (1e3 * bw);
        snprintf(from, cap,
                 "roofline estimate: %.1f MB of weights per token / %.2f GB/s read "
                 "bandwidth (%s); pass --compute-s for a measured value",
                 bytes / 1e6, bw, bw_from);
    }
    return RYZ_OK;
}

/* What fit_links found, for print_fits. */
typedef struct {
    ryz_fit ar, ag;
    int k_ar, k_ag, has_ag;
} link_fits;

/* Fits of all_reduce (required) and all_gather (its own fit when the file
 * has one, else the all_reduce link) into f; links into m. */
static ryz_status fit_links(const ryz_results *res, ryz_decode_model *m, link_fits *f) {
    ryz_status st = ryz_fit_collectives(res, RYZ_OP_ALL_REDUCE, &f->ar, &f->k_ar);
    if (st == RYZ_OK)
        st = ryz_link_from_fit(RYZ_OP_ALL_REDUCE, &f->ar, f->k_ar, &m->ar_intra);
    if (st != RYZ_OK)
        return st;
    m->ag_intra = m->ar_intra;
    f->has_ag = ryz_fit_collectives(res, RYZ_OP_ALL_GATHER, &f->ag, &f->k_ag) == RYZ_OK &&
                ryz_link_from_fit(RYZ_OP_ALL_GATHER, &f->ag, f->k_ag, &m->ag_intra) == RYZ_OK;
    ryz_error_clear();
    return RYZ_OK;
}

static void print_fits(const link_fits *f, const ryz_decode_model *m) {
    printf("fit: latency = alpha + beta * bytes over the p50 points of `ryz comm`\n"
           "     (least squares weighted by 1/p50^2, i.e. on relative error)\n");
    printf("  all_reduce   at %2d ranks: alpha %9.2f us   1/beta %8.3f GB/s   R^2 %.4f   (%zu "
           "sizes)\n",
           f->k_ar, f->ar.alpha_us, f->ar.bw_gbs, f->ar.r2, f->ar.n);
    if (f->has_ag)
        printf("  all_gather   at %2d ranks: alpha %9.2f us   1/beta %8.3f GB/s   R^2 %.4f   (%zu "
               "sizes)\n",
               f->k_ag, f->ag.alpha_us, f->ag.bw_gbs, f->ag.r2, f->ag.n);
    else
        printf("  all_gather: no sweep in the file; the all_reduce link is used for it\n");
    printf("ring link: all_reduce alpha %.3f us/step, %.3f GB/s; all_gather alpha %.3f us/step, "
           "%.3f GB/s\n",
           m->ar_intra.alpha_us, m->ar_intra.bw_gbs, m->ag_intra.alpha_us, m->ag_intra.bw_gbs);
}

static void print_assumptions(const project_args *a, const ryz_decode_model *m) {
    printf("assumptions:\n"
           "  - compute divides perfectly by k (same kernel efficiency at 1/k of the work);\n"
           "  - no overlap of communication and compute; batch 1, one token per step;\n"
           "  - per token: %d all-reduces of %.0f bytes (2 per layer + the embedding) and one\n"
           "    all-gather of the padded vocab x 4 bytes of logits (LM head);\n"
           "  - collectives are rings: all-reduce 2(k-1) alpha + 2(k-1)/k bytes / bw, all-gather\n"
           "    (k-1) alpha + (k-1)/k bytes / bw, alpha and bw per link derived from the fit\n"
           "    at the measured world size (reproduces the fit there);\n",
           2 * m->layers + 1, m->allreduce_bytes);
    if (a->per_node)
        printf("  - above %d ranks per node the whole ring runs at the inter-node link: alpha\n"
               "    %.2f us, %.2f GB/s;\n",
               a->per_node, a->inter_alpha_us, a->inter_bw_gbs);
    else
        printf("  - every TP degree runs on links like the measured ones (one node; pass\n"
               "    --inter-node-alpha/--inter-node-bw/--gpus-per-node for more).\n");
}

/* The projection table, and /timing rows "decode_proj" into res. */
static ryz_status project_table(const project_args *a, const ryz_decode_model *m,
                                const ryz_model_config *cfg, ryz_results *res) {
    /* a copy: adding rows below moves res->timing */
    const ryz_row_timing *base = ryz_find_decode(res, a->case_name, 1);
    char case_buf[RYZ_NAME_LEN];
    snprintf(case_buf, sizeof case_buf, "%s", base ? base->case_name : "");
    const char *case_name = base ? case_buf : a->case_name;
    printf("\n%5s %12s %12s %14s %9s %11s %13s  %s\n", "TP", "compute us", "comm us",
           "predicted us", "speedup", "efficiency", "measured us", "note");
    ryz_status st = RYZ_OK;
    for (int i = 0; st == RYZ_OK && i < a->n_tp; i++) {
        ryz_projection p;
        ryz_project_decode(m, a->tp[i], &p);
        const ryz_row_timing *meas = ryz_find_decode(res, case_name, a->tp[i]);
        char measured[32] = "-", note[128] = "";
        if (meas && meas->tokens_per_s > 0)
            snprintf(measured, sizeof measured, "%.2f", 1e6 / meas->tokens_per_s);
        if (ryz_config_validate(cfg, a->tp[i]) != RYZ_OK)
            snprintf(note, sizeof note, "not shardable: %.*s", (int)strcspn(ryz_last_error(), "\n"),
                     ryz_last_error());
        printf("%5d %12.2f %12.2f %14.2f %9.2f %10.1f%% %13s  %s\n", p.tp, p.compute_us, p.comm_us,
               p.total_us, p.speedup, 100 * p.efficiency, measured, note);
        ryz_row_timing row = {.tp = p.tp,
                              .runs = 0,
                              .median_s = 1e-6 * p.total_us,
                              .p10_s = 1e-6 * p.total_us,
                              .p90_s = 1e-6 * p.total_us,
                              .tokens_per_s = 1e6 / p.total_us,
                              .speedup = p.speedup,
                              .efficiency = p.efficiency,
                              .comm_fraction = p.comm_us / p.total_us};
        snprintf(row.case_name, sizeof row.case_name, "%s", a->model);
        snprintf(row.phase, sizeof row.phase, "decode_proj"); /* phase is char[16] */
        st = ryz_results_add_timing(res, &row);
    }
    return st;
}

/* Everything after parsing; res holds the file and gets the projection. */
static ryz_status project_run(const project_args *a, ryz_results *res) {
    ryz_model_config cfg;
    ryz_decode_model m = {.embed_allreduce = 1, .per_node = a->per_node};
    link_fits fits;
    char from[512];
    ryz_status st = ryz_model_source_parse(a->model, &cfg);
    if (st == RYZ_OK)
        st = ryz_results_read(a->results, res);
    if (st == RYZ_OK)
        st = fit_links(res, &m, &fits);
    if (st == RYZ_OK)
        st = compute_time(a, res, &cfg, &m.compute_us, from, sizeof from);
    if (st != RYZ_OK)
        return st; /* before any output: an error is the only line */
    printf("ryz project: %s (dim %d, %d layers, %d heads, vocab %d) from %s (%d rank%s, %s)\n",
           a->model, cfg.dim, cfg.n_layers, cfg.n_heads, cfg.vocab, a->results,
           res->meta.world_size, res->meta.world_size == 1 ? "" : "s",
           res->meta.hosts && *res->meta.hosts ? res->meta.hosts : "?");
    print_fits(&fits, &m);
    m.layers = cfg.n_layers, m.vocab = cfg.vocab, m.allreduce_bytes = 4.0 * cfg.dim;
    m.ar_inter = m.ag_inter = (ryz_link){.alpha_us = a->inter_alpha_us, .bw_gbs = a->inter_bw_gbs};
    printf("compute: TP=1 decode %.2f us/token, %s\n", m.compute_us, from);
    print_assumptions(a, &m);
    st = project_table(a, &m, &cfg, res);
    if (st == RYZ_OK && a->out)
        st = ryz_results_write(res, a->out);
    if (st == RYZ_OK && a->out)
        printf("results: %s\n", a->out);
    return st;
}

int ryz_cmd_project(int argc, char **argv) {
    project_args a;
    int help;
    ryz_status st = project_parse(argc, argv, &a, &help);
    if (st == RYZ_OK && help) {
        project_usage(stdout);
        return 0;
    }
    ryz_results res;
    ryz_results_init(&res);
    if (st == RYZ_OK)
        st = project_run(&a, &res);
    ryz_results_free(&res);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
