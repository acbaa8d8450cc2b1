/* ryz bench: TP=1 decode and prefill speed of one model against the
 * memory-bandwidth roofline measured in the same run. Timings live here,
 * never in tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ryz/cli.h"
#include "ryz/model.h"
#include "ryz/results.h"

typedef struct {
    const char *model, *out;
    int threads, repeat, prompt, new_tokens;
} bench_args;

#define RYZ_BENCH_MAX_RUNS 64

/* Per-run samples of the phases (seconds) and the probe (bytes/s). */
typedef struct {
    double *bw, *dec_s, *pre_s;
    int n, decode_steps;
} bench_samples;

static ryz_status bench_parse(int argc, char **argv, bench_args *a, int *help) {
    *a = (bench_args){.model = "synthetic:110m", .threads = 1, .repeat = 5, .prompt = 128,
                      .new_tokens = 32};
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v;
        ryz_status st = RYZ_OK;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) *help = 1;
        else if (!strcmp(o, "--model")) {
            if (!(v = ryz_arg_value(argc, argv, &i))) return ryz_error(RYZ_EINVAL, "--model needs a value");
            a->model = v;
        } else if (!strcmp(o, "--threads"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 64, &a->threads);
        else if (!strcmp(o, "--repeat"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, RYZ_BENCH_MAX_RUNS, &a->repeat);
        else if (!strcmp(o, "--prompt-len"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 2, 1 << 16, &a->prompt);
        else if (!strcmp(o, "--new-tokens"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 2, 1 << 16, &a->new_tokens);
        else if (!strcmp(o, "-o")) {
            if (!(v = ryz_arg_value(argc, argv, &i))) return ryz_error(RYZ_EINVAL, "-o needs a path");
            a->out = v;
        }
        else return ryz_error(RYZ_EINVAL, "bench: unknown option '%s' (see --help)", o);
        if (st != RYZ_OK) return st;
    }
    return RYZ_OK;
}

/* Median, and spread as (p90 - p10) / median, of n samples. */
static double stats(double *x, int n, double *spread) {
    ryz_stats st;
    ryz_stats_compute(x, (size_t)n, &st);
    *spread = st.median > 0 ? (st.p90 - st.p10) / st.median : 0;
    return st.median;
}

/* sgemm rate (flop/s) of the backend on one layer's prefill shapes: x (P,
 * in) times each of wq, wk, wv, wo, w1, w3, w2 (the largest weights a
 * prefill multiplies), best of 3 passes. */
static double sgemm_rate(ryz_backend *be, const ryz_model_config *c, int P) {
    int kvd = c->dim / c->n_heads * c->n_kv_heads, big = c->hidden > c->dim ? c->hidden : c->dim;
    int shapes[7][2] = {{c->dim, c->dim}, {kvd, c->dim},      {kvd, c->dim},   {c->dim, c->dim},
                        {c->hidden, c->dim}, {c->hidden, c->dim}, {c->dim, c->hidden}};
    float *w = calloc((size_t)big * big, sizeof *w), *x = calloc((size_t)P * big, sizeof *x),
          *y = calloc((size_t)P * big, sizeof *y);
    double best = 0;
    for (int rep = 0; w && x && y && rep < 3; rep++) {
        double flops = 0, t0 = ryz_time_now();
        for (int s = 0; s < 7; s++) {
            be->iface->matmul(be->ctx, y, x, w, P, shapes[s][1], shapes[s][0]);
            flops += 2.0 * P * shapes[s][0] * shapes[s][1];
        }
        double dt = ryz_time_now() - t0;
        if (dt > 0 && flops / dt > best) best = flops / dt;
    }
    free(w), free(x), free(y);
    return best;
}

/* Prefill flops of P tokens: every layer matrix, plus the LM head of the
 * last row (greedy prefill computes no other logits). */
static double prefill_flops(const ryz_model_config *c, int P) {
    double kvd = (double)c->dim / c->n_heads * c->n_kv_heads;
    double layer = 2.0 * c->dim * c->dim + 2.0 * kvd * c->dim + 3.0 * c->hidden * c->dim;
    return 2.0 * P * layer * c->n_layers + 2.0 * c->vocab * c->dim;
}

/* Writes the bench as a results file `ryz compare` can track: suite
 * "bench", case = the model, /timing rows and per-run /samples. */
static ryz_status bench_write(const bench_args *a, const bench_samples *s, double roof_frac,
                              double bw) {
    ryz_results r;
    char text[600];
    ryz_results_init(&r);
    snprintf(text, sizeof text, "[case bench]\nmodel = %s\n", a->model);
    ryz_status st = ryz_results_meta_machine(&r.meta, 1, a->threads, NULL, "cpu", "bench", text);
    r.meta.read_bandwidth_gbs = bw / 1e9;
    for (int ph = 0; st == RYZ_OK && ph < 2; ph++) {
        double x[RYZ_BENCH_MAX_RUNS], per = ph ? s->decode_steps : a->prompt;
        const double *v = ph ? s->dec_s : s->pre_s;
        ryz_stats q;
        memcpy(x, v, (size_t)s->n * sizeof *x);
        ryz_stats_compute(x, (size_t)s->n, &q);
        ryz_row_timing t = {.case_name = "bench", .tp = 1, .runs = s->n, .median_s = q.median,
                            .p10_s = q.p10, .p90_s = q.p90, .speedup = 1, .efficiency = 1,
                            .tokens_per_s = q.median > 0 ? per / q.median : 0,
                            .ttft_s = ph ? 0 : q.median, .roofline_fraction = ph ? roof_frac : 0};
        snprintf(t.phase, sizeof t.phase, "%s", ph ? "decode" : "prefill");
        st = ryz_results_add_timing(&r, &t);
        for (int i = 0; st == RYZ_OK && i < s->n; i++) {
            ryz_row_sample row = {.case_name = "bench", .tp = 1, .iter = i, .value = v[i]};
            snprintf(row.metric, sizeof row.metric, "%s", ph ? "decode_s" : "prefill_s");
            st = ryz_results_add_sample(&r, &row);
        }
    }
    if (st == RYZ_OK) st = ryz_results_write(&r, a->out);
    if (st == RYZ_OK) printf("results: %s\n", a->out);
    ryz_results_free(&r);
    return st;
}

/* Interleaves bandwidth probes with model runs, so the roofline and the
 * speed come from the same minutes of the machine's life. */
static ryz_status bench_runs(const bench_args *a, ryz_model *m, const ryz_model_config *cfg,
                             bench_samples *s) {
    int P = a->prompt, len = P + a->new_tokens;
    int *prompt = malloc((size_t)P * sizeof *prompt), *ids = malloc((size_t)len * sizeof *ids);
    ryz_status st = prompt && ids ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    for (int i = 0; st == RYZ_OK && i < P; i++) prompt[i] = (1 + 7919 * i) % cfg->vocab;
    for (int r = -1; st == RYZ_OK && r < s->n; r++) { /* r = -1: warm-up */
        ryz_gen_timing t;
        st = ryz_model_generate(m, prompt, 1, P, a->new_tokens, NULL, ids, NULL, &t);
        double b = ryz_mem_read_bandwidth((size_t)512 << 20, a->threads, 2);
        if (st == RYZ_OK && b == 0) st = RYZ_ENOMEM;
        if (r < 0 || st != RYZ_OK) continue;
        fprintf(stderr, "[ryz] bench run %d/%d\n", r + 1, s->n);
        s->bw[r] = b, s->pre_s[r] = t.prefill_s, s->dec_s[r] = t.decode_s / t.decode_steps;
        s->decode_steps = 1; /* dec_s is per token */
    }
    free(prompt), free(ids);
    return st;
}

static ryz_status bench_run(const bench_args *a, ryz_model *m, ryz_backend *be,
                            const ryz_model_config *cfg) {
    int n = a->repeat, P = a->prompt;
    double *mem = calloc(3 * (size_t)n, sizeof *mem), rate[3][RYZ_BENCH_MAX_RUNS];
    bench_samples s = {mem, mem + n, mem + 2 * (size_t)n, n, 0};
    ryz_status st = mem ? bench_runs(a, m, cfg, &s) : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK) {
        ryz_shard sh;
        ryz_shard_plan(cfg, 1, 0, &sh);
        for (int i = 0; i < n; i++)
            rate[0][i] = s.bw[i], rate[1][i] = 1 / s.dec_s[i], rate[2][i] = P / s.pre_s[i];
        double bpt = (double)ryz_model_bytes_per_token(cfg, &sh), sbw, sdec, spre;
        double mbw = stats(rate[0], n, &sbw), mdec = stats(rate[1], n, &sdec);
        double mpre = stats(rate[2], n, &spre), roof = mbw / bpt;
        double gemm = sgemm_rate(be, cfg, P), pre_flops = prefill_flops(cfg, P) * mpre / P;
        printf("bench %s, TP=1, %d thread(s), %d runs (median, spread = (p90-p10)/median)\n",
               a->model, a->threads, n);
        printf("  read bandwidth          %8.2f GB/s   spread %4.1f%%\n", mbw / 1e9, 100 * sbw);
        printf("  weight bytes per token  %8.1f MB\n", bpt / 1e6);
        printf("  decode roofline         %8.2f tok/s  (bandwidth / bytes per token)\n", roof);
        printf("  decode                  %8.2f tok/s  spread %4.1f%%  = %5.1f%% of roofline "
               "(target >= 85%%)\n", mdec, 100 * sdec, 100 * mdec / roof);
        printf("  prefill (%d tokens)    %8.2f tok/s  spread %4.1f%%  = %5.1fx decode "
               "(target >= 10x)\n", P, mpre, 100 * spre, mpre / mdec);
        printf("  prefill compute         %8.2f GFLOP/s = %5.1f%% of sgemm on its shapes "
               "(%.2f GFLOP/s; target >= 50%%)\n", pre_flops / 1e9, 100 * pre_flops / gemm,
               gemm / 1e9);
        if (a->out) st = bench_write(a, &s, mdec / roof, mbw);
    }
    free(mem);
    return st;
}

int ryz_cmd_bench(int argc, char **argv) {
    bench_args a;
    int help;
    ryz_model_config cfg;
    ryz_comm *self = NULL;
    ryz_backend be;
    ryz_model *m = NULL;
    ryz_status st = bench_parse(argc, argv, &a, &help);
    if (st == RYZ_OK && help) {
        printf("usage: ryz bench [--model SRC] [--threads T] [--repeat N] [--prompt-len P]\n"
               "                 [--new-tokens N] [-o RESULTS.h5]\n"
               "  TP=1 decode and prefill tokens/s against the memory-bandwidth roofline\n"
               "  (weight bytes per token / read bandwidth measured in the same run), and\n"
               "  prefill against the sgemm rate on its shapes. -o writes the runs as a\n"
               "  results file that `ryz compare` tracks.\n");
        return 0;
    }
    ryz_weights *w = NULL;
    if (st == RYZ_OK) st = ryz_model_source_open(a.model, 1, 0, &cfg, &w);
    ryz_weights_close(w);
    if (st == RYZ_OK && a.prompt + a.new_tokens - 1 > cfg.seq_len)
        st = ryz_error(RYZ_EINVAL, "prompt %d + new tokens %d exceed seq_len %d", a.prompt,
                       a.new_tokens, cfg.seq_len);
    if (st == RYZ_OK) st = ryz_comm_init_self(&self);
    if (st == RYZ_OK) st = ryz_backend_init_cpu(a.threads, &be);
    ryz_model_opts o = {.max_batch = 1, .max_chunk = a.prompt};
    if (st == RYZ_OK) st = ryz_model_open(a.model, self, &be, &o, &m);
    if (st == RYZ_OK) ryz_model_set_last_only_prefill(m, 1);
    if (st == RYZ_OK) st = bench_run(&a, m, &be, &cfg);
    ryz_model_free(m);
    ryz_comm_free(self);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
