/* ryz bench: TP=1 decode and prefill speed of one model against the
 * memory-bandwidth roofline measured in the same run. Timings live here,
 * never in tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ryz/cli.h"
#include "ryz/model.h"

typedef struct {
    const char *model;
    int threads, repeat, prompt, new_tokens;
} bench_args;

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
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 1000, &a->repeat);
        else if (!strcmp(o, "--prompt-len"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 2, 1 << 16, &a->prompt);
        else if (!strcmp(o, "--new-tokens"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 2, 1 << 16, &a->new_tokens);
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

/* Interleaves bandwidth probes with model runs, so the roofline and the
 * speed come from the same minutes of the machine's life. */
static ryz_status bench_run(const bench_args *a, ryz_model *m, const ryz_model_config *cfg) {
    int n = a->repeat, P = a->prompt, len = P + a->new_tokens;
    double *bw = calloc((size_t)n, sizeof *bw), *dec = calloc((size_t)n, sizeof *dec),
           *pre = calloc((size_t)n, sizeof *pre);
    int *prompt = malloc((size_t)P * sizeof *prompt), *ids = malloc((size_t)len * sizeof *ids);
    ryz_status st = bw && dec && pre && prompt && ids ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    for (int i = 0; st == RYZ_OK && i < P; i++) prompt[i] = (1 + 7919 * i) % cfg->vocab;
    size_t probe = (size_t)512 << 20;
    for (int r = -1; st == RYZ_OK && r < n; r++) { /* r = -1: warm-up */
        ryz_gen_timing t;
        st = ryz_model_generate(m, prompt, 1, P, a->new_tokens, NULL, ids, NULL, &t);
        double b = ryz_mem_read_bandwidth(probe, a->threads, 2);
        if (st == RYZ_OK && b == 0) st = RYZ_ENOMEM;
        if (r < 0 || st != RYZ_OK) continue;
        fprintf(stderr, "[ryz] bench run %d/%d\n", r + 1, n);
        bw[r] = b, pre[r] = P / t.prefill_s, dec[r] = t.decode_steps / t.decode_s;
    }
    if (st == RYZ_OK) {
        ryz_shard sh;
        ryz_shard_plan(cfg, 1, 0, &sh);
        double bpt = (double)ryz_model_bytes_per_token(cfg, &sh), sbw, sdec, spre;
        double mbw = stats(bw, n, &sbw), mdec = stats(dec, n, &sdec), mpre = stats(pre, n, &spre);
        double roof = mbw / bpt;
        printf("bench %s, TP=1, %d thread(s), %d runs (median, spread = (p90-p10)/median)\n",
               a->model, a->threads, n);
        printf("  read bandwidth          %8.2f GB/s   spread %4.1f%%\n", mbw / 1e9, 100 * sbw);
        printf("  weight bytes per token  %8.1f MB\n", bpt / 1e6);
        printf("  decode roofline         %8.2f tok/s  (bandwidth / bytes per token)\n", roof);
        printf("  decode                  %8.2f tok/s  spread %4.1f%%  = %5.1f%% of roofline "
               "(target >= 85%%)\n", mdec, 100 * sdec, 100 * mdec / roof);
        printf("  prefill (%d tokens)    %8.2f tok/s  spread %4.1f%%  = %5.1fx decode "
               "(target >= 10x)\n", P, mpre, 100 * spre, mpre / mdec);
    }
    free(bw), free(dec), free(pre), free(prompt), free(ids);
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
               "                 [--new-tokens N]\n"
               "  TP=1 decode and prefill tokens/s against the memory-bandwidth roofline\n"
               "  (weight bytes per token / read bandwidth measured in the same run).\n");
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
    if (st == RYZ_OK) st = bench_run(&a, m, &cfg);
    ryz_model_free(m);
    ryz_comm_free(self);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
