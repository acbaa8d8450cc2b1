/* ryz bench: TP=1 decode and prefill speed of one model, per weight dtype
 * and thread count, each against its limit measured in the same run:
 * decode against the memory-bandwidth roofline, prefill against the sgemm
 * rate on its own shapes, bf16 logits against the fp32 model's. Timings
 * live here, never in tests. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "ryz/cli.h"
#include "ryz/cuda.h"
#include "ryz/info.h"
#include "ryz/model.h"
#include "ryz/results.h"
#include "ryz/suite.h"

#define RYZ_BENCH_MAX_RUNS 64
#define BENCH_MAX_LIST 8

/* Targets printed beside each ratio: issue 10 (cpu) and issue 7 (cuda,
 * decode against the HBM roofline of a copy kernel). */
#define TARGET_DECODE_ROOF 0.90
#define TARGET_DECODE_ROOF_CUDA 0.70
#define TARGET_PREFILL_GEMM 0.50
#define CUDA_PROBE_REPS 5

typedef struct {
    const char *model, *out;
    int threads[BENCH_MAX_LIST], n_threads;
    ryz_dtype dtype[BENCH_MAX_LIST];
    int n_dtype, repeat, prompt, new_tokens;
    int decode_prompt; /* context before decoding: short, so weights dominate */
    int probe_mib;     /* bandwidth probe buffer, larger than the caches */
    double bf16_tol;   /* atol and rtol of bf16 logits against f32 */
    ryz_backend_kind backend;
    int tf32;          /* cuda: fp32 GEMMs may use TF32 (held to RYZ_TF32_TOL) */
} bench_args;

/* The cpu roofline's probe reads a slice this long after every decode
 * step (less when --probe-mib is smaller), of a buffer of two slices. With
 * 8 slices, each read every 8th step, the slices read unsteadily on the
 * development VM (the runs' ratios spread 10-18 % against 1-2 % with two
 * slices, and most runs' decode read faster than their slices; why is
 * open: docs/performance.md, session 23). Two slices, 4x the 32 MiB L3,
 * read no faster than the probe over the whole M MiB after each run. */
#define PROBE_SLICE_MIB 64

/* Per-run samples of the phases (seconds) and the probes (bytes/s): bw is
 * the roofline's (cpu: the slices read between that run's decode steps;
 * cuda: a copy kernel after the run), after the cpu's probe after the run
 * with threads of its own (the roofline before the slices, for comparison). */
typedef struct {
    double bw[RYZ_BENCH_MAX_RUNS], after[RYZ_BENCH_MAX_RUNS];
    double dec_s[RYZ_BENCH_MAX_RUNS], pre_s[RYZ_BENCH_MAX_RUNS];
    double gemm[RYZ_BENCH_MAX_RUNS]; /* sgemm flop/s of the pass just before the prefill */
    /* shares of the host's CPU time during each decode (ryz_load_between;
     * NAN: unknown): the hypervisor's, and other processes' */
    double steal[RYZ_BENCH_MAX_RUNS], other[RYZ_BENCH_MAX_RUNS];
    int n;
} bench_samples;

/* The probe between the decode steps (cpu): a slice of buf after every
 * step on the backend's own threads, timed apart from the step
 * (ryz_model_set_step_hook), so that the roofline is read at the moments
 * the decode ran, under the scheduling it had. */
typedef struct {
    ryz_probe_slices ps;
    double seconds, read; /* this run's slices */
} slice_probe;

/* The targets met so far, a list of the missed ones, and how many
 * missed ones did not fit in it. */
typedef struct {
    int met, total, unlisted;
    char missed[1536]; /* 16 configurations' misses fit */
} bench_verdict;

/* Counts one ratio against its target; a miss joins v->missed. */
static void verdict_add(bench_verdict *v, const char *what, const char *name, double ratio,
                        double target) {
    v->total++;
    if (ratio >= target) {
        v->met++;
        return;
    }
    size_t at = strlen(v->missed), room = sizeof v->missed - at;
    int n = snprintf(v->missed + at, room, "%s%s %s %.2f%% < %.0f%%", at ? ", " : "", what, name,
                     100 * ratio, 100 * target);
    if (n < 0 || (size_t)n >= room) v->missed[at] = '\0', v->unlisted++;
}

/* One configuration (dtype, threads) of the bench. */
typedef struct {
    ryz_dtype dtype;
    int threads;
    char name[48]; /* the results file's case name */
} bench_config;

/* Splits option opt's comma-separated value v (copied into buf) into at
 * most BENCH_MAX_LIST items. */
static ryz_status split_list(const char *opt, const char *v, char *buf, size_t cap,
                             char **items, int *n) {
    *n = 0;
    if (!v) return ryz_error(RYZ_EINVAL, "%s needs a value (a comma-separated list)", opt);
    snprintf(buf, cap, "%s", v);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n == BENCH_MAX_LIST)
            return ryz_error(RYZ_EINVAL, "%s lists more than %d items", opt, BENCH_MAX_LIST);
        items[(*n)++] = t;
    }
    return *n ? RYZ_OK : ryz_error(RYZ_EINVAL, "%s '%s' lists nothing", opt, v);
}

/* --threads 1,2 and --dtype f32,bf16. */
static ryz_status parse_list_option(const char *opt, const char *v, bench_args *a) {
    char buf[128], *items[BENCH_MAX_LIST];
    int n, thr = !strcmp(opt, "--threads");
    ryz_status st = split_list(opt, v, buf, sizeof buf, items, &n);
    for (int i = 0; st == RYZ_OK && i < n; i++)
        st = thr ? ryz_arg_int(opt, items[i], 1, 64, &a->threads[i])
                 : ryz_dtype_parse(items[i], &a->dtype[i]);
    for (int i = 0; st == RYZ_OK && i < n; i++) /* a repeat would bench and record it twice */
        for (int j = 0; st == RYZ_OK && j < i; j++)
            if (thr ? a->threads[i] == a->threads[j] : a->dtype[i] == a->dtype[j])
                st = ryz_error(RYZ_EINVAL, "%s '%s' lists %s twice (each once)", opt, v, items[i]);
    *(thr ? &a->n_threads : &a->n_dtype) = st == RYZ_OK ? n : 0;
    return st;
}

/* --bf16-tol: a number in (0, 1]. */
static ryz_status parse_tol(const char *v, double *out) {
    char *end = NULL;
    double x = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || !(x > 0 && x <= 1))
        return ryz_error(RYZ_EINVAL, "--bf16-tol '%s' is not a number in (0, 1] (default %g)",
                         v ? v : "", RYZ_BF16_TOL);
    *out = x;
    return RYZ_OK;
}

/* Options that only one backend has: --tf32 is cuda's, and cuda runs one
 * configuration per dtype (its threads are the GPU's). */
static ryz_status bench_check_backend(const bench_args *a) {
    if (a->tf32 && a->backend != RYZ_BACKEND_CUDA)
        return ryz_error(RYZ_EINVAL, "bench: --tf32 needs --backend cuda (the cpu backend "
                         "computes in IEEE fp32 only)");
    if (a->backend == RYZ_BACKEND_CUDA && (a->n_threads != 1 || a->threads[0] != 1))
        return ryz_error(RYZ_EINVAL, "bench: --threads is for the cpu backend; with --backend "
                         "cuda leave it out (one configuration per dtype)");
    return RYZ_OK;
}

static ryz_status bench_parse(int argc, char **argv, bench_args *a, int *help) {
    *a = (bench_args){.model = "synthetic:110m", .threads = {1}, .n_threads = 1,
                      .dtype = {RYZ_DTYPE_F32}, .n_dtype = 1, .repeat = 5, .prompt = 256,
                      .new_tokens = 64, .decode_prompt = 16, .probe_mib = 512,
                      .bf16_tol = RYZ_BF16_TOL};
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v;
        ryz_status st = RYZ_OK;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) *help = 1;
        else if (!strcmp(o, "--model")) {
            if (!(v = ryz_arg_value(argc, argv, &i))) return ryz_error(RYZ_EINVAL, "--model needs a value");
            a->model = v;
        } else if (!strcmp(o, "--threads") || !strcmp(o, "--dtype"))
            st = parse_list_option(o, ryz_arg_value(argc, argv, &i), a);
        else if (!strcmp(o, "--repeat"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, RYZ_BENCH_MAX_RUNS, &a->repeat);
        else if (!strcmp(o, "--prompt-len"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 2, 1 << 16, &a->prompt);
        else if (!strcmp(o, "--new-tokens"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 2, 1 << 16, &a->new_tokens);
        else if (!strcmp(o, "--decode-prompt"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 1 << 16, &a->decode_prompt);
        else if (!strcmp(o, "--probe-mib"))
            st = ryz_arg_int(o, ryz_arg_value(argc, argv, &i), 1, 1 << 16, &a->probe_mib);
        else if (!strcmp(o, "--bf16-tol"))
            st = parse_tol(ryz_arg_value(argc, argv, &i), &a->bf16_tol);
        else if (!strcmp(o, "--backend")) {
            v = ryz_arg_value(argc, argv, &i);
            st = v ? ryz_backend_kind_parse(v, &a->backend)
                   : ryz_error(RYZ_EINVAL, "--backend needs a value (cpu or cuda)");
        } else if (!strcmp(o, "--tf32")) a->tf32 = 1;
        else if (!strcmp(o, "-o")) {
            if (!(v = ryz_arg_value(argc, argv, &i))) return ryz_error(RYZ_EINVAL, "-o needs a path");
            a->out = v;
        }
        else return ryz_error(RYZ_EINVAL, "bench: unknown option '%s' (see --help)", o);
        if (st != RYZ_OK) return st;
    }
    return *help ? RYZ_OK : bench_check_backend(a);
}

/* Statistics of n <= RYZ_BENCH_MAX_RUNS samples (v is left unsorted). */
static ryz_stats sample_stats(const double *v, int n) {
    double x[RYZ_BENCH_MAX_RUNS];
    ryz_stats st;
    memcpy(x, v, (size_t)n * sizeof *x);
    ryz_stats_compute(x, (size_t)n, &st);
    return st;
}

/* Median, and spread as (p90 - p10) / median, of n samples. */
static double stats(const double *v, int n, double *spread) {
    ryz_stats st = sample_stats(v, n);
    *spread = st.median > 0 ? (st.p90 - st.p10) / st.median : 0;
    return st.median;
}

/* The buffers of sgemm_pass in the backend's memory: W and x (P, in), y. */
typedef struct {
    float *w, *x, *y;
} sgemm_bufs;

/* The wider side of the largest layer matrix, which sizes every buffer of
 * the sgemm pass (sgemm_open allocates and sgemm_bytes counts by it). */
static size_t sgemm_big(const ryz_model_config *c) {
    return (size_t)(c->hidden > c->dim ? c->hidden : c->dim);
}

/* Bytes of the sgemm pass's buffers for cfg's shapes at P rows: W of the
 * largest layer matrix, x and y of P rows. */
static size_t sgemm_bytes(const ryz_model_config *c, int P) {
    size_t big = sgemm_big(c);
    return (big * (size_t)c->dim + 2 * (size_t)P * big) * sizeof(float);
}

static void sgemm_close(ryz_backend *be, sgemm_bufs *g);

/* The buffers for cfg's shapes at P rows, beside the model; on ENOMEM
 * none is left allocated and the message names the configuration. */
static ryz_status sgemm_open(ryz_backend *be, const bench_config *k, const ryz_model_config *c,
                             int P, sgemm_bufs *g) {
    const ryz_backend_iface *f = be->iface;
    size_t big = sgemm_big(c);
    g->w = f->alloc(be->ctx, RYZ_MEM_SCRATCH, big * c->dim * sizeof(float));
    g->x = f->alloc(be->ctx, RYZ_MEM_SCRATCH, (size_t)P * big * sizeof(float));
    g->y = f->alloc(be->ctx, RYZ_MEM_SCRATCH, (size_t)P * big * sizeof(float));
    if (g->w && g->x && g->y) return RYZ_OK;
    sgemm_close(be, g);
    return ryz_error(RYZ_ENOMEM, "bench %s: no %s memory for the sgemm pass's buffers (%.1f MB "
                     "at %d rows) beside the model: try a smaller --prompt-len", k->name,
                     f->name, (double)sgemm_bytes(c, P) / 1e6, P);
}

/* Frees what sgemm_open allocated (any of it). */
static void sgemm_close(ryz_backend *be, sgemm_bufs *g) {
    float *bufs[3] = {g->w, g->x, g->y};
    for (int i = 0; i < 3; i++)
        if (bufs[i]) be->iface->free(be->ctx, bufs[i]);
    *g = (sgemm_bufs){0};
}

/* One pass of sgemm (flop/s into *rate) on one layer's prefill shapes: x
 * (P, in) times each of wq, wk, wv, wo, w1, w3, w2 (the largest weights a
 * prefill multiplies), in fp32 (TF32 when the backend has it on), in the
 * backend's memory and waiting for it: the limit prefill is held to
 * whatever the weights' dtype; the seven again until SGEMM_PASS_S has
 * passed (one group on the cpu: 36 ms on 110m; a device's group is too
 * short for the wall clock and its sync). Timed just before each prefill
 * run, so that the two meet the same moments of a shared machine, as
 * decode and its probe slices do. */
#define SGEMM_PASS_S 0.010
static ryz_status sgemm_pass(ryz_backend *be, const sgemm_bufs *g, const ryz_model_config *c,
                             int P, double *rate) {
    const ryz_backend_iface *f = be->iface;
    int kvd = c->dim / c->n_heads * c->n_kv_heads;
    int shapes[7][2] = {{c->dim, c->dim}, {kvd, c->dim},      {kvd, c->dim},   {c->dim, c->dim},
                        {c->hidden, c->dim}, {c->hidden, c->dim}, {c->dim, c->hidden}};
    *rate = 0;
    ryz_status st = f->sync(be->ctx); /* nothing earlier in the time */
    double flops = 0, t0 = ryz_time_now(), dt = 0;
    while (st == RYZ_OK && dt < SGEMM_PASS_S) {
        for (int s = 0; s < 7; s++) {
            f->matmul(be->ctx, g->y, g->x, g->w, P, shapes[s][1], shapes[s][0]);
            flops += 2.0 * P * shapes[s][0] * shapes[s][1];
        }
        st = f->sync(be->ctx);
        dt = ryz_time_now() - t0;
    }
    if (st == RYZ_OK) *rate = flops / dt;
    return st == RYZ_OK ? st : ryz_error_wrap(st, "the sgemm pass before a prefill run");
}

/* Prefill flops of P tokens: every layer matrix, plus the LM head of the
 * last row (greedy prefill computes no other logits). */
static double prefill_flops(const ryz_model_config *c, int P) {
    double kvd = (double)c->dim / c->n_heads * c->n_kv_heads;
    double layer = 2.0 * c->dim * c->dim + 2.0 * kvd * c->dim + 3.0 * c->hidden * c->dim;
    return 2.0 * P * layer * c->n_layers + 2.0 * c->vocab * c->dim;
}

/* Adds n samples v[i] / per of `metric` for case k to the results, but
 * for the unknown (NAN) ones. */
static ryz_status bench_add_samples(ryz_results *r, const bench_config *k, const char *metric,
                                    const double *v, int n, double per) {
    ryz_status st = RYZ_OK;
    for (int i = 0; st == RYZ_OK && i < n; i++) {
        if (isnan(v[i])) continue;
        ryz_row_sample row = {.tp = 1, .iter = i, .value = v[i] / per};
        snprintf(row.case_name, sizeof row.case_name, "%s", k->name);
        snprintf(row.metric, sizeof row.metric, "%s", metric);
        st = ryz_results_add_sample(r, &row);
    }
    return st;
}

/* Adds one configuration's runs to the results: /timing rows for prefill
 * and decode (the case is the configuration) and per-run /samples, the
 * probes' among them (read_bandwidth_gbs and read_bandwidth_after_gbs, or
 * copy_bandwidth_gbs on cuda, and sgemm_gflops: `ryz compare` shows them,
 * never as regressions). */
static ryz_status bench_rows(const bench_config *k, const bench_args *a, const bench_samples *s,
                             double roof_frac, ryz_results *r) {
    int cuda = a->backend == RYZ_BACKEND_CUDA;
    ryz_status st = bench_add_samples(r, k, cuda ? "copy_bandwidth_gbs" : "read_bandwidth_gbs",
                                      s->bw, s->n, 1e9);
    if (st == RYZ_OK && !cuda)
        st = bench_add_samples(r, k, "read_bandwidth_after_gbs", s->after, s->n, 1e9);
    if (st == RYZ_OK) st = bench_add_samples(r, k, "sgemm_gflops", s->gemm, s->n, 1e9);
    if (st == RYZ_OK) st = bench_add_samples(r, k, "host_steal_fraction", s->steal, s->n, 1);
    if (st == RYZ_OK) st = bench_add_samples(r, k, "host_other_load", s->other, s->n, 1);
    for (int ph = 0; st == RYZ_OK && ph < 2; ph++) {
        const double *v = ph ? s->dec_s : s->pre_s;
        double per = ph ? 1 : a->prompt;
        ryz_stats q = sample_stats(v, s->n);
        ryz_row_timing t = {.tp = 1, .runs = s->n, .median_s = q.median, .p10_s = q.p10,
                            .p90_s = q.p90, .speedup = 1, .efficiency = 1,
                            .tokens_per_s = q.median > 0 ? per / q.median : 0,
                            .ttft_s = ph ? 0 : q.median, .roofline_fraction = ph ? roof_frac : 0};
        snprintf(t.case_name, sizeof t.case_name, "%s", k->name);
        snprintf(t.phase, sizeof t.phase, "%s", ph ? "decode" : "prefill");
        st = ryz_results_add_timing(r, &t);
        if (st == RYZ_OK) st = bench_add_samples(r, k, ph ? "decode_s" : "prefill_s", v, s->n, 1);
    }
    return st;
}

/* The synthetic prompt of n tokens. */
static void bench_prompt(int *p, int n, int vocab) {
    for (int i = 0; i < n; i++) p[i] = (1 + 7919 * i) % vocab;
}

/* The probe's slice in MiB: PROBE_SLICE_MIB, or --probe-mib where that is
 * smaller. */
static int slice_mib(const bench_args *a) {
    return a->probe_mib < PROBE_SLICE_MIB ? a->probe_mib : PROBE_SLICE_MIB;
}

/* The step hook: a stop on SIGINT/SIGTERM (within a decode step), else
 * the probe's next slice, its time and bytes added up. */
static ryz_status slice_probe_step(void *ctx) {
    slice_probe *p = ctx;
    double dt = 0;
    ryz_status st = ryz_interrupt_check();
    if (st != RYZ_OK) return st;
    st = ryz_probe_slices_read(&p->ps, &dt);
    p->seconds += dt, p->read += (double)p->ps.slice;
    return st;
}

/* The probe's buffer of two slices in the backend's memory, and its hook
 * set on m. */
static ryz_status slice_probe_open(const bench_args *a, ryz_backend *be, ryz_model *m,
                                   slice_probe *p) {
    *p = (slice_probe){0};
    ryz_status st = ryz_probe_slices_open(be, (size_t)slice_mib(a) << 21,
                                          (size_t)slice_mib(a) << 20, &p->ps);
    if (st == RYZ_OK) ryz_model_set_step_hook(m, slice_probe_step, p);
    return st;
}

/* The memory bandwidth decode is held to: the host's read bandwidth with
 * the configuration's threads (cpu), or the device's copy bandwidth, bytes
 * read plus written (cuda, best of CUDA_PROBE_REPS copies). */
static ryz_status bench_probe(const bench_args *a, const bench_config *k, ryz_backend *be,
                              double *bw) {
    size_t bytes = (size_t)a->probe_mib << 20;
    if (a->backend == RYZ_BACKEND_CUDA)
        return ryz_cuda_copy_bandwidth(be, bytes, CUDA_PROBE_REPS, bw);
    *bw = ryz_mem_read_bandwidth(bytes, k->threads, 2);
    return *bw > 0 ? RYZ_OK : ryz_error(RYZ_ENOMEM, "no memory for the bandwidth probe");
}

/* Interleaves bandwidth probes (with the configuration's thread count)
 * with model runs, so the roofline and the speed come from the same
 * minutes of the machine's life: on the cpu a probe slice between every
 * two decode steps (and the old probe after the run), on cuda a copy
 * kernel after the run; and an sgemm pass on the prefill's shapes just
 * before each prefill. Prefill is timed on the long prompt; decode after
 * the short one, so that the KV cache it reads stays small beside the
 * weights (bench_print reports its share). dec_s is per token. */
static ryz_status bench_runs(const bench_args *a, const bench_config *k, ryz_model *m,
                             ryz_backend *be, const ryz_model_config *cfg, bench_samples *s) {
    int P = a->prompt, D = a->decode_prompt, len = (P > D ? P : D) + a->new_tokens;
    int *prompt = malloc((size_t)len * sizeof *prompt), *ids = malloc((size_t)len * sizeof *ids);
    int cuda = a->backend == RYZ_BACKEND_CUDA;
    slice_probe sp = {0};
    sgemm_bufs g = {0};
    ryz_status st = prompt && ids ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK) bench_prompt(prompt, len, cfg->vocab);
    if (st == RYZ_OK) st = sgemm_open(be, k, cfg, P, &g);
    if (st == RYZ_OK && !cuda) st = slice_probe_open(a, be, m, &sp);
    for (int r = -1; st == RYZ_OK && r < s->n; r++) { /* r = -1: warm-up */
        ryz_gen_timing tp, td;
        ryz_load_mark l0, l1;
        int self = (int)getpid();
        double gemm = 0;
        sp.seconds = sp.read = 0;
        st = ryz_interrupt_check(); /* cuda has no step hook (the slice probe's, on the cpu) */
        if (st == RYZ_OK) st = sgemm_pass(be, &g, cfg, P, &gemm);
        if (st == RYZ_OK) st = ryz_model_generate(m, prompt, 1, P, 1, NULL, ids, NULL, &tp);
        ryz_load_mark_take(&self, 1, &l0);
        if (st == RYZ_OK) st = ryz_model_generate(m, prompt, 1, D, a->new_tokens, NULL, ids, NULL, &td);
        ryz_load_mark_take(&self, 1, &l1);
        double b = 0;
        if (st == RYZ_OK) st = bench_probe(a, k, be, &b);
        if (st != RYZ_OK) break;
        if (r < 0) continue;
        fprintf(stderr, "[ryz] bench %s run %d/%d\n", k->name, r + 1, s->n);
        s->bw[r] = cuda ? b : sp.read / sp.seconds, s->after[r] = cuda ? 0 : b;
        s->pre_s[r] = tp.prefill_s, s->dec_s[r] = td.decode_s / td.decode_steps;
        s->gemm[r] = gemm;
        ryz_load_between(&l0, &l1, &s->steal[r], &s->other[r]);
    }
    ryz_model_set_step_hook(m, NULL, NULL);
    ryz_probe_slices_free(&sp.ps);
    sgemm_close(be, &g);
    free(prompt), free(ids);
    return st;
}

/* The line of what the host's neighbours took during the decode runs
 * (medians), marked where it is past RYZ_LOAD_DISTURBED; none where no
 * run was long enough to tell. */
static void print_host_load(const bench_samples *s) {
    double steal = ryz_stats_known_median(s->steal, (size_t)s->n);
    double other = ryz_stats_known_median(s->other, (size_t)s->n);
    if (isnan(steal) || isnan(other)) return;
    printf("  host load during decode %8.1f %%      of the CPU time other processes ran; %.1f %% "
           "the hypervisor took%s\n", 100 * other, 100 * steal,
           ryz_load_disturbed(steal, other) ? " (a busy machine: these timings are not its best)"
                                            : "");
}

/* Prints one configuration against its limits; returns the decode
 * fraction of the roofline. On the cpu, the median over the runs of each
 * run's decode bytes/s over its own slices' (the line says how many runs
 * read faster than their slices: there the probe under-read the machine);
 * on cuda, the median decode rate over the median probe's roofline.
 * Prefill's fraction is the median over the runs of each run's flop/s
 * over the sgemm pass just before it. */
static double bench_print(const bench_args *a, const bench_config *k, const ryz_model_config *cfg,
                          const bench_samples *s, bench_verdict *v) {
    int n = s->n, P = a->prompt;
    double rate[7][RYZ_BENCH_MAX_RUNS], sbw, sdec, spre, sfr, saf, sgr, sgm;
    int over = 0; /* runs whose decode read faster than their probe */
    ryz_shard sh;
    ryz_shard_plan(cfg, 1, 0, &sh);
    double bpt = (double)ryz_model_bytes_per_token_as(cfg, &sh, k->dtype);
    for (int i = 0; i < n; i++) {
        rate[0][i] = s->bw[i], rate[1][i] = 1 / s->dec_s[i], rate[2][i] = P / s->pre_s[i];
        rate[3][i] = bpt / s->dec_s[i] / s->bw[i], rate[4][i] = s->after[i];
        rate[5][i] = prefill_flops(cfg, P) / s->pre_s[i] / s->gemm[i], rate[6][i] = s->gemm[i];
        over += rate[3][i] > 1;
    }
    double mbw = stats(rate[0], n, &sbw), mdec = stats(rate[1], n, &sdec);
    double mpre = stats(rate[2], n, &spre), roof = mbw / bpt;
    double pre = stats(rate[5], n, &sgr), gemm = stats(rate[6], n, &sgm);
    double frac = stats(rate[3], n, &sfr), after = stats(rate[4], n, &saf);
    int cuda = a->backend == RYZ_BACKEND_CUDA;
    if (cuda) frac = mdec / roof;
    /* Mean KV cache read per decoded token: keys and values of every
     * position so far, every layer, this rank's KV heads. */
    double ctx = a->decode_prompt + (a->new_tokens - 1) / 2.0;
    double kv = 2.0 * ctx * cfg->n_layers * sh.kv_heads * sh.head_dim * sizeof(float);
    double target = cuda ? TARGET_DECODE_ROOF_CUDA : TARGET_DECODE_ROOF;
    if (cuda)
        printf("%s: %s weights%s, cuda, %d runs (median, spread = (p90-p10)/median)\n", k->name,
               ryz_dtype_name(k->dtype), a->tf32 ? ", TF32 GEMMs" : "", n);
    else
        printf("%s: %s weights, %d thread(s), %d runs (median, spread = (p90-p10)/median)\n",
               k->name, ryz_dtype_name(k->dtype), k->threads, n);
    if (cuda)
        printf("  copy bandwidth (r+w)    %8.2f GB/s   spread %4.1f%%\n", mbw / 1e9, 100 * sbw);
    else
        printf("  read bandwidth          %8.2f GB/s   spread %4.1f%%  (%d MiB slices between the "
               "decode steps, on its threads)\n", mbw / 1e9, 100 * sbw, slice_mib(a));
    printf("  weight bytes per token  %8.1f MB\n", bpt / 1e6);
    printf("  KV cache per token      %8.1f MB     (%.1f%% more, not in the roofline: decode "
           "after a %d-token prompt)\n", kv / 1e6, 100 * kv / bpt, a->decode_prompt);
    printf("  decode roofline         %8.2f tok/s  (bandwidth / bytes per token)\n", roof);
    printf("  decode                  %8.2f tok/s  spread %4.1f%%  %6.1f%% of roofline   "
           "(target >= %.0f%%", mdec, 100 * sdec, 100 * frac, 100 * target);
    if (!cuda) printf("; the median of the runs' own ratios, spread %.1f%%", 100 * sfr);
    if (!cuda && over) printf("; %d of %d runs read faster than their slices", over, n);
    printf(")\n");
    if (!cuda)
        printf("  probe after each run    %8.2f GB/s   spread %4.1f%%  decode %.1f%% of it (the "
               "whole buffer, best of 2, on threads of its own)\n", after / 1e9, 100 * saf,
               100 * mdec * bpt / after);
    print_host_load(s);
    printf("  prefill (%d tokens)    %8.2f tok/s  spread %4.1f%%  %6.1f%% of sgemm rate "
           "(target >= %.0f%%; the median of the runs' own ratios, spread %.1f%%)\n", P, mpre,
           100 * spre, 100 * pre, 100 * TARGET_PREFILL_GEMM, 100 * sgr);
    printf("  sgemm before each run   %8.1f GFLOP/s spread %4.1f%%  (one layer's shapes at %d "
           "rows%s%s)\n", gemm / 1e9, 100 * sgm, P, cuda ? "" : ", OpenBLAS core ",
           cuda ? "" : ryz_blas_core());
    verdict_add(v, "decode", k->name, frac, target);
    verdict_add(v, "prefill", k->name, pre, TARGET_PREFILL_GEMM);
    return frac;
}

/* Full logits of the prompt (P rows of vocab) from a model of `dtype` on
 * the bench's backend with `threads` threads and TF32 `tf32`. */
static ryz_status prompt_logits(const bench_args *a, int threads, int tf32, ryz_comm *self,
                                ryz_dtype dtype, const ryz_model_config *cfg, float *out) {
    int P = a->prompt, *prompt = malloc((size_t)P * sizeof *prompt);
    ryz_model_opts o = {.max_batch = 1, .max_chunk = P, .dtype = dtype};
    ryz_backend_opts bo = {.threads = threads, .tf32 = tf32};
    ryz_backend be = {0};
    ryz_model *m = NULL;
    const float *lg;
    ryz_status st = prompt ? ryz_backend_init_opts(a->backend, &bo, &be)
                           : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK) st = ryz_model_open(a->model, self, &be, &o, &m);
    if (prompt) bench_prompt(prompt, P, cfg->vocab);
    if (st == RYZ_OK) st = ryz_model_forward(m, prompt, 1, P, 0, &lg);
    for (int r = 0; st == RYZ_OK && r < P; r++) /* rows are vocab_padded long */
        memcpy(out + (size_t)r * cfg->vocab, lg + (size_t)r * ryz_model_shard(m)->vocab_padded,
               (size_t)cfg->vocab * sizeof *out);
    ryz_model_free(m);
    ryz_backend_free(&be);
    free(prompt);
    return st;
}

/* A reduced precision against IEEE fp32 on the same backend: `what` is
 * "bf16" (weights stored as dtype bf16) or "tf32" (fp32 GEMMs on TF32
 * tensor cores), held to its own tolerance over every logit of the prompt. */
static ryz_status bench_precision(const bench_args *a, int threads, ryz_comm *self,
                                  const ryz_model_config *cfg, const char *what, ryz_dtype dtype,
                                  int tf32, double tol) {
    size_t n = (size_t)a->prompt * cfg->vocab;
    float *f = malloc(n * sizeof *f), *b = malloc(n * sizeof *b);
    ryz_status st = f && b ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory for the logits");
    if (st == RYZ_OK) st = ryz_interrupt_check(); /* a big model's passes take long */
    if (st == RYZ_OK) st = prompt_logits(a, threads, 0, self, RYZ_DTYPE_F32, cfg, f);
    if (st == RYZ_OK) st = ryz_interrupt_check();
    if (st == RYZ_OK) st = prompt_logits(a, threads, tf32, self, dtype, cfg, b);
    if (st == RYZ_OK) {
        ryz_compare c;
        ryz_compare_logits(f, b, a->prompt, cfg->vocab, tol, tol, &c);
        printf("%s against f32 over %d prompt positions (%s): max error %.2e of the logit range "
               "(tolerance %.0e), cosine %.6f, top-1 %d/%d  %s\n", what, a->prompt,
               ryz_backend_kind_name(a->backend), c.max_rel, tol, c.min_cos, c.top1_agree, c.rows,
               c.pass ? "PASS" : "FAIL");
        if (!c.pass) /* a wrong output, not a slow one: the bench fails */
            st = ryz_error(RYZ_EMISMATCH, "%s logits outside tolerance against f32: %d elements, "
                           "%d real top-1 mismatches", what, c.out_of_tol, c.top1_real_mismatch);
    }
    free(f), free(b);
    return st;
}

/* Runs, prints and records one configuration. */
static ryz_status bench_config_run(const bench_args *a, const bench_config *k, ryz_comm *self,
                                   const ryz_model_config *cfg, ryz_results *res,
                                   bench_verdict *v) {
    ryz_backend be = {0};
    ryz_model *m = NULL;
    bench_samples s = {.n = a->repeat};
    ryz_model_opts o = {.max_batch = 1, .max_chunk = a->prompt, .dtype = k->dtype};
    ryz_backend_opts bo = {.threads = k->threads, .tf32 = a->tf32};
    ryz_status st = ryz_backend_init_opts(a->backend, &bo, &be);
    if (st == RYZ_OK) st = ryz_model_open(a->model, self, &be, &o, &m);
    if (st == RYZ_OK) ryz_model_set_last_only_prefill(m, 1);
    if (st == RYZ_OK) st = bench_runs(a, k, m, &be, cfg, &s);
    ryz_model_free(m);
    if (st == RYZ_OK) st = bench_rows(k, a, &s, bench_print(a, k, cfg, &s, v), res);
    ryz_backend_free(&be);
    return st;
}

/* The results file's case name of a configuration: dtype-tTHREADS on the
 * cpu, cuda-DTYPE[-tf32] on the GPU. */
static void bench_config_name(const bench_args *a, bench_config *k) {
    if (a->backend == RYZ_BACKEND_CUDA)
        snprintf(k->name, sizeof k->name, "cuda-%s%s", ryz_dtype_name(k->dtype),
                 a->tf32 ? "-tf32" : "");
    else
        snprintf(k->name, sizeof k->name, "%s-t%d", ryz_dtype_name(k->dtype), k->threads);
}

/* After a stop signal (st says so): with -o, the configurations finished,
 * marked interrupted; none finished, nothing is written, so that an
 * earlier file at that path stays. Returns st, or why nothing was
 * written. */
static ryz_status bench_write_partial(ryz_results *res, const char *out, ryz_status st) {
    int sig = ryz_interrupted();
    if (!out) return st;
    if (res->n_timing == 0)
        return ryz_error(RYZ_ECOMM, "interrupted by signal %d before any configuration "
                         "finished; nothing written to %s", sig, out);
    ryz_status ws = ryz_cli_write_interrupted(res, out);
    if (ws == RYZ_OK) return st;
    return ryz_error_wrap(ws, "interrupted by signal %d, no results written", sig);
}

static ryz_status bench_all(const bench_args *a, const ryz_model_config *cfg, ryz_comm *self) {
    ryz_results res;
    bench_verdict v = {0};
    char text[600];
    int has_bf16 = 0, threads = 1;
    const char *kind = ryz_backend_kind_name(a->backend);
    ryz_results_init(&res);
    for (int i = 0; i < a->n_threads; i++) threads = a->threads[i] > threads ? a->threads[i] : threads;
    snprintf(text, sizeof text, "[case bench]\nmodel = %s\nbackend = %s\n%s"
             "work = --prompt-len %d --decode-prompt %d --new-tokens %d\n", a->model, kind,
             a->tf32 ? "tf32 = 1\n" : "", a->prompt, a->decode_prompt, a->new_tokens);
    ryz_status st = ryz_results_meta_machine(&res.meta, 1, threads, NULL, kind, "bench", text);
    if (st == RYZ_OK) st = ryz_results_set_str(&res.meta.kind, RYZ_KIND_BENCH);
    if (st == RYZ_OK && a->backend == RYZ_BACKEND_CUDA) /* which GPU made these numbers */
        st = ryz_results_meta_set_cuda_device(&res.meta);
    for (int d = 0; st == RYZ_OK && d < a->n_dtype; d++)
        for (int t = 0; st == RYZ_OK && t < a->n_threads; t++) {
            bench_config k = {a->dtype[d], a->threads[t], ""};
            bench_config_name(a, &k);
            has_bf16 |= k.dtype == RYZ_DTYPE_BF16;
            st = bench_config_run(a, &k, self, cfg, &res, &v);
        }
    if (st == RYZ_OK && has_bf16)
        st = bench_precision(a, threads, self, cfg, "bf16", RYZ_DTYPE_BF16, 0, a->bf16_tol);
    if (st == RYZ_OK && a->tf32)
        st = bench_precision(a, threads, self, cfg, "tf32", RYZ_DTYPE_F32, 1, RYZ_TF32_TOL);
    if (st == RYZ_OK) st = ryz_interrupt_check(); /* a signal at the end still counts */
    /* A miss is reported, not an error: timings on a shared machine
     * move from run to run (a wrong bf16 output is an error). */
    if (st == RYZ_OK)
        printf("bench targets: %d of %d met%s%s", v.met, v.total, v.missed[0] ? "; missed: " : "",
               v.missed);
    if (st == RYZ_OK) printf(v.unlisted ? " and %d more\n" : "\n", v.unlisted);
    if (st == RYZ_OK && a->out) st = ryz_results_write(&res, a->out);
    if (st == RYZ_OK && a->out) printf("results: %s\n", a->out);
    if (st != RYZ_OK && ryz_interrupted()) st = bench_write_partial(&res, a->out, st);
    ryz_results_free(&res);
    return st;
}

static void bench_usage(void) {
    printf("usage: ryz bench [--model SRC] [--threads T[,T...]] [--dtype f32[,bf16]]\n"
           "                 [--backend cpu|cuda [--tf32]] [--repeat N] [--prompt-len P]\n"
           "                 [--decode-prompt D] [--new-tokens N] [--probe-mib M]\n"
           "                 [--bf16-tol T] [-o F.h5]\n"
           "  TP=1 decode and prefill of SRC (default synthetic:110m) for each dtype and\n"
           "  thread count: prefill of a P-token prompt (default 256) against the sgemm\n"
           "  rate on its own shapes (a pass just before each run, the median of the\n"
           "  runs' own ratios); N decode steps (default 64) after a D-token prompt\n"
           "  (default 16) against the memory-bandwidth roofline (weight bytes per token /\n"
           "  read bandwidth: a 64 MiB slice, of two taken in turn, read after every\n"
           "  decode step on the decode's own threads and timed apart; the\n"
           "  fraction is the median of the runs' own ratios, with a count of the runs\n"
           "  that read faster than their slices; also printed: a probe over M MiB,\n"
           "  default 512, after each run on threads of its own); bf16 logits against\n"
           "  fp32 with bf16's tolerance T (default 2e-2 of the logit range; exit 1 when\n"
           "  outside it, as a failed check).\n"
           "  Each ratio is printed beside its target, and a last line counts the\n"
           "  targets met and names the missed ones (a miss leaves the exit status 0:\n"
           "  timings move between runs). -o writes the runs (case = dtype-tTHREADS)\n"
           "  as a results file that `ryz compare` tracks. SIGINT or SIGTERM stops the\n"
           "  bench within a decode step (on cuda, before the next run; a prefill or a\n"
           "  model load runs to its end): -o then keeps the configurations finished,\n"
           "  marked interrupted (none finished: nothing is written); exit 130 on\n"
           "  SIGINT, 143 on SIGTERM.\n"
           "  --backend cuda: the same on this process's GPU (no --threads; cases\n"
           "  cuda-DTYPE[-tf32]), decode against the HBM roofline of a copy kernel (bytes\n"
           "  read + written per second over 2 x M MiB, best of 5; target >= 70%%).\n"
           "  --tf32 lets every configuration's fp32 GEMMs use TF32 and checks fp32 with\n"
           "  TF32 against IEEE fp32 (tolerance 1e-2); bf16's check runs with TF32 off.\n");
}

int ryz_cmd_bench(int argc, char **argv) {
    bench_args a;
    int help;
    ryz_model_config cfg;
    ryz_comm *self = NULL;
    ryz_weights *w = NULL;
    ryz_status st = bench_parse(argc, argv, &a, &help);
    if (st == RYZ_OK && help) {
        bench_usage();
        return 0;
    }
    ryz_signals_install(); /* SIGINT/SIGTERM: stop, keeping the configurations done */
    if (st == RYZ_OK) st = ryz_backend_available(a.backend);
    if (st == RYZ_OK) st = ryz_model_source_open(a.model, 1, 0, &cfg, &w);
    ryz_weights_close(w);
    if (st == RYZ_OK && (a.prompt > cfg.seq_len || a.decode_prompt + a.new_tokens - 1 > cfg.seq_len))
        st = ryz_error(RYZ_EINVAL, "--prompt-len %d, or --decode-prompt %d + --new-tokens %d, "
                       "exceed %s's seq_len %d (pass smaller ones)", a.prompt, a.decode_prompt,
                       a.new_tokens, a.model, cfg.seq_len);
    if (st == RYZ_OK && a.backend == RYZ_BACKEND_CPU) { /* the f32 model at least */
        char what[160];
        snprintf(what, sizeof what, "%s: its f32 weights and KV cache, and the sgemm pass's "
                 "buffers", a.model);
        st = ryz_mem_check_available(ryz_model_weight_bytes(&cfg) + ryz_model_kv_bytes(&cfg, 1) +
                                         sgemm_bytes(&cfg, a.prompt),
                                     what);
    }
    const char *opts[] = {"--model", "-o"}, *paths[] = {a.model, a.out};
    if (st == RYZ_OK) st = ryz_args_distinct_files(2, 1, opts, paths);
    if (st == RYZ_OK && a.out) st = ryz_results_check_writable(a.out); /* before the runs */
    if (st == RYZ_OK) st = ryz_comm_init_self(&self);
    if (st == RYZ_OK) st = bench_all(&a, &cfg, self);
    ryz_comm_free(self);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
