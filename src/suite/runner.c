/* The suite runner: per case, a TP=1 baseline on rank 0, then each TP
 * degree teacher-forced (every position compared) and greedy (first
 * divergence classified), with one table per case printed by rank 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/model.h"
#include "ryz/suite.h"

/* What one case shares between the baseline and the sharded runs. */
typedef struct {
    const ryz_suite *s;
    const ryz_suite_case *c;
    const ryz_run_opts *opts;
    ryz_comm *world;
    ryz_model_config cfg;
    int B, P, len, rows;
    int *prompts;        /* (B, P) */
    int *base_ids;       /* (B, len), every rank */
    float *base_logits;  /* (B, rows, vocab), world rank 0 only */
    double base_decode;  /* baseline decode tokens/s (median) */
    double base_weights; /* baseline weight bytes */
} case_ctx;

/* Measurements of one run on a TP group, valid on its rank 0. */
typedef struct {
    double prefill_ms, decode_tps;
    float mem[3]; /* largest rank's weights, kv, scratch bytes */
} run_meas;

static double median(double *x, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
            double t = x[j];
            x[j] = x[j - 1], x[j - 1] = t;
        }
    return n ? (n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2])) : 0;
}

static void progress(const case_ctx *k, int tp, const char *phase) {
    if (k->opts->quiet || ryz_comm_rank(k->world) != 0) return;
    fprintf(stderr, "[ryz] case %ld/%d %s: tp=%d %s\n", (long)(k->c - k->s->cases) + 1,
            k->s->n_cases, k->c->name, tp, phase);
}

/* Greedy runs: warmup untimed, then repeat timed; ids from the last run. */
static ryz_status timed_greedy(case_ctx *k, ryz_model *m, int *ids, run_meas *out) {
    int n = k->s->repeat;
    double pre[64], dec[64];
    if (n > 64) n = 64;
    for (int i = -k->s->warmup; i < n; i++) {
        ryz_gen_timing t;
        ryz_status st = ryz_model_generate(m, k->prompts, k->B, k->P, k->c->new_tokens, NULL,
                                           ids, NULL, &t);
        if (st != RYZ_OK) return st;
        if (i < 0) continue;
        pre[i] = 1e3 * t.prefill_s;
        dec[i] = t.decode_s > 0 ? t.decode_steps * k->B / t.decode_s : 0;
    }
    out->prefill_ms = median(pre, n);
    out->decode_tps = median(dec, n);
    return RYZ_OK;
}

/* Largest rank's bytes per memory kind, on every rank of c. */
static ryz_status gather_memory(ryz_comm *c, run_meas *out) {
    float mine[3] = {(float)ryz_mem_bytes(RYZ_MEM_WEIGHTS), (float)ryz_mem_bytes(RYZ_MEM_KV),
                     (float)ryz_mem_bytes(RYZ_MEM_SCRATCH)};
    int n = ryz_comm_size(c);
    float *all = malloc((size_t)n * 3 * sizeof(float));
    if (!all) return ryz_error(RYZ_ENOMEM, "out of memory gathering memory");
    ryz_status st = ryz_comm_all_gather(c, mine, all, 3);
    for (int r = 0; st == RYZ_OK && r < n; r++)
        for (int j = 0; j < 3; j++)
            if (all[3 * r + j] > out->mem[j]) out->mem[j] = all[3 * r + j];
    free(all);
    return st;
}

/* Baseline on world rank 0, then its ids to every rank. */
static ryz_status run_baseline(case_ctx *k) {
    ryz_status st = RYZ_OK;
    if (ryz_comm_rank(k->world) == 0) {
        ryz_comm *self = NULL;
        ryz_backend be;
        ryz_model *m = NULL;
        run_meas meas = {0};
        ryz_model_opts o = {.max_batch = k->B, .max_chunk = k->P};
        progress(k, 1, "baseline");
        st = ryz_comm_init_self(&self);
        if (st == RYZ_OK) st = ryz_backend_init_cpu(k->s->threads, &be);
        if (st == RYZ_OK) st = ryz_model_build(&k->cfg, self, &be, &o, &m);
        if (st == RYZ_OK) k->base_weights = (double)ryz_mem_bytes(RYZ_MEM_WEIGHTS);
        if (st == RYZ_OK)
            st = ryz_model_generate(m, k->prompts, k->B, k->P, k->c->new_tokens, NULL,
                                    k->base_ids, k->base_logits, NULL);
        int *ids = malloc((size_t)k->B * k->len * sizeof(int));
        if (st == RYZ_OK && !ids) st = ryz_error(RYZ_ENOMEM, "out of memory");
        if (st == RYZ_OK) st = timed_greedy(k, m, ids, &meas);
        k->base_decode = meas.decode_tps;
        free(ids);
        ryz_model_free(m);
        ryz_comm_free(self);
    }
    int ok = st == RYZ_OK;
    ryz_status bs = ryz_comm_broadcast(k->world, &ok, sizeof ok, 0);
    if (bs != RYZ_OK) return bs;
    if (!ok) return st != RYZ_OK ? st : ryz_error(RYZ_EINVAL, "baseline failed on rank 0");
    return ryz_comm_broadcast(k->world, k->base_ids, (size_t)k->B * k->len * sizeof(int), 0);
}

/* First position where greedy ids left the baseline's, or -1. */
static int first_divergence(const case_ctx *k, const int *ids, int *seq) {
    for (int p = k->P; p < k->len; p++)
        for (int b = 0; b < k->B; b++)
            if (ids[(size_t)b * k->len + p] != k->base_ids[(size_t)b * k->len + p]) {
                *seq = b;
                return p;
            }
    return -1;
}

/* Prints one table row; returns 1 if this (case, tp) failed. */
static int report_row(const case_ctx *k, int tp, const ryz_compare *cmp, const int *greedy,
                      const run_meas *meas) {
    int seq = 0, div = first_divergence(k, greedy, &seq), tie = 0;
    char gtxt[48] = "identical";
    if (div >= 0) {
        const float *row = k->base_logits + ((size_t)seq * k->rows + div - 1) * k->cfg.vocab;
        tie = ryz_compare_near_tie(row, k->cfg.vocab, k->s->atol, k->s->rtol);
        snprintf(gtxt, sizeof gtxt, "%s@%d", tie ? "near-tie" : "MISMATCH", div);
    }
    int fail = !cmp->pass || (div >= 0 && !tie);
    double eff_mem = meas->mem[0] > 0 ? k->base_weights / tp / meas->mem[0] : 0;
    printf("  %3d  %9.3e  %9.3e  %9.7f  %5d/%-5d  %-16s %9.2f %10.1f %7.2f %10.1f %7.3f  %s\n",
           tp, cmp->max_abs, cmp->max_rel, cmp->min_cos, cmp->top1_agree, cmp->rows, gtxt,
           meas->prefill_ms, meas->decode_tps,
           meas->decode_tps > 0 ? meas->decode_tps / k->base_decode : 0,
           meas->mem[0] / 1048576.0, eff_mem, fail ? "FAIL" : "PASS");
    if (!cmp->pass && cmp->worst_row >= 0)
        printf("       worst: position %d logit %d baseline %.6g tp%d %.6g; %d elements out of "
               "tolerance, %d top-1 mismatches off near-ties\n",
               cmp->worst_row, cmp->worst_col, cmp->worst_base, tp, cmp->worst_cand,
               cmp->out_of_tol, cmp->top1_real_mismatch);
    fflush(stdout);
    return fail;
}

/* One TP degree on ranks 0..tp-1: teacher-forced, then greedy. */
static ryz_status run_tp_group(case_ctx *k, ryz_comm *tpc, int tp, int *failed) {
    int lead = ryz_comm_rank(tpc) == 0;
    ryz_backend be;
    ryz_model *m = NULL;
    run_meas meas = {0};
    ryz_model_opts o = {.max_batch = k->B, .max_chunk = k->P};
    size_t nlog = (size_t)k->B * k->rows * k->cfg.vocab;
    float *logits = lead ? malloc(nlog * sizeof(float)) : NULL;
    int *ids = malloc((size_t)k->B * k->len * sizeof(int));
    ryz_status st = ids && (logits || !lead) ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK) st = ryz_backend_init_cpu(k->s->threads, &be);
    if (st == RYZ_OK) st = ryz_model_build(&k->cfg, tpc, &be, &o, &m);
    if (st == RYZ_OK) st = gather_memory(tpc, &meas);
    progress(k, tp, "teacher-forced");
    if (st == RYZ_OK)
        st = ryz_model_generate(m, k->prompts, k->B, k->P, k->c->new_tokens, k->base_ids, ids,
                                logits, NULL);
    progress(k, tp, "greedy");
    if (st == RYZ_OK) st = timed_greedy(k, m, ids, &meas);
    if (st == RYZ_OK && lead) {
        ryz_compare cmp;
        ryz_compare_logits(k->base_logits, logits, k->B * k->rows, k->cfg.vocab, k->s->atol,
                           k->s->rtol, &cmp);
        *failed += report_row(k, tp, &cmp, ids, &meas);
    }
    ryz_model_free(m);
    free(logits);
    free(ids);
    return st;
}

static void print_case_header(const case_ctx *k) {
    if (ryz_comm_rank(k->world) != 0) return;
    printf("\ncase %s: %s  batch %d  prompt %d  new_tokens %d  (%d positions compared)\n",
           k->c->name, k->c->model, k->B, k->P, k->c->new_tokens, k->B * k->rows);
    printf("   tp    max_abs    max_rel    min_cos    top1         greedy           "
           "prefill_ms decode_tok/s speedup weights_MiB mem_eff  result\n");
    fflush(stdout);
}

/* Sets up the shared inputs of a case: config and per-sequence prompts
 * (sequence b's ids shifted by 97 * b, so batch rows differ). */
static ryz_status case_prepare(case_ctx *k) {
    ryz_status st = ryz_model_source_parse(k->c->model, &k->cfg);
    if (st != RYZ_OK) return st;
    k->B = k->c->batch, k->P = k->c->prompt_len, k->len = k->P + k->c->new_tokens;
    k->rows = k->len - 1;
    k->prompts = malloc((size_t)k->B * k->P * sizeof(int));
    k->base_ids = malloc((size_t)k->B * k->len * sizeof(int));
    if (ryz_comm_rank(k->world) == 0)
        k->base_logits = malloc((size_t)k->B * k->rows * k->cfg.vocab * sizeof(float));
    if (!k->prompts || !k->base_ids || (ryz_comm_rank(k->world) == 0 && !k->base_logits))
        return ryz_error(RYZ_ENOMEM, "out of memory for case %s", k->c->name);
    for (int b = 0; b < k->B; b++)
        for (int i = 0; i < k->P; i++)
            k->prompts[b * k->P + i] = (k->c->prompt[i] + 97 * b) % k->cfg.vocab;
    return RYZ_OK;
}

static ryz_status run_case(case_ctx *k, int *failed) {
    ryz_status st = case_prepare(k);
    if (st == RYZ_OK) print_case_header(k);
    if (st == RYZ_OK) st = run_baseline(k);
    for (int i = 0; st == RYZ_OK && i < k->c->n_tp; i++) {
        ryz_comm *tpc = NULL;
        st = ryz_comm_split_first(k->world, k->c->tp[i], &tpc);
        if (st == RYZ_OK && tpc) st = run_tp_group(k, tpc, k->c->tp[i], failed);
        ryz_comm_free(tpc);
        if (st == RYZ_OK) st = ryz_comm_barrier(k->world);
    }
    free(k->prompts);
    free(k->base_ids);
    free(k->base_logits);
    return st;
}

ryz_status ryz_suite_run(const ryz_suite *s, ryz_comm *world, const ryz_run_opts *opts,
                         int *failed) {
    *failed = 0;
    int need = ryz_suite_max_tp(s);
    if (ryz_comm_size(world) < need)
        return ryz_error(RYZ_EINVAL, "suite %s needs %d ranks (largest tp) but the world has %d",
                         s->name, need, ryz_comm_size(world));
    for (int i = 0; i < s->n_cases; i++) {
        case_ctx k = {.s = s, .c = &s->cases[i], .opts = opts, .world = world};
        ryz_status st = run_case(&k, failed);
        if (st != RYZ_OK) return st;
    }
    /* Only rank 0 compared; everyone returns its verdict. */
    return ryz_comm_broadcast(world, failed, sizeof *failed, 0);
}
