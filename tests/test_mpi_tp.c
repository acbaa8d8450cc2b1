/* Tensor parallelism at TP degree k = MPI world size (1, 2 or 4): each TP
 * layer against a dense reference computed here with plain loops, the whole
 * model at TP=k against TP=1 (teacher forced), the same on a backend whose
 * memory the host cannot touch (tests/shadow_backend.h: collectives staged
 * through the host, as cuda with comm = mpi), the fault hook that must make
 * the gate fail, and per-rank weight memory against the shard plan.
 *
 * Run under mpirun with CK_FORK=no. Every rank runs the same tests in the
 * same order (they use collectives), and each test finishes its collectives
 * before it asserts on anything a single rank could disagree on. The exit
 * code is the same on every rank: non-zero when any rank had a failure. */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/backend.h"
#include "ryz/comm.h"
#include "ryz/model.h"
#include "ryz/suite.h"
#include "shadow_backend.h"
#include "testutil.h"

static ryz_comm *g_world; /* MPI_COMM_WORLD: the TP group under test */
static ryz_comm *g_self;  /* one-rank comm for the TP=1 baseline */
static ryz_backend g_be;  /* CPU backend, one thread */
static int g_rank, g_k;   /* world rank and size (the TP degree) */

#define LAYER_TOL 1e-4      /* abs tolerance of a TP layer vs the naive loop */
#define GATE_TOL 1e-4       /* atol = rtol of ryz_compare_logits */
#define INPUT_T 0x51510001u /* synthetic tensor id of the test activations */
#define LAYER_ROWS 3        /* activation rows fed to the layer tests */
/* Layer tests: hidden and vocab not divisible by 2 or 4 (uneven FFN split,
 * padded vocab). */
#define LAYER_SRC "synthetic:tiny,hidden=171,vocab=1001"

/* ---- helpers ---------------------------------------------------------- */

/* Parses a model source; fails the test with the library's message. */
static ryz_model_config parse_cfg(const char *src) {
    ryz_model_config c;
    ryz_status st = ryz_model_source_parse(src, &c);
    ck_assert_msg(st == RYZ_OK, "%s: %s", src, ryz_last_error());
    return c;
}

/* This rank's shard of cfg at TP = world size. */
static ryz_shard shard_of(const ryz_model_config *c) {
    ryz_shard s;
    ryz_shard_plan(c, g_k, g_rank, &s);
    return s;
}

/* Zeroed malloc of n floats; fails the test when out of memory. */
static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Deterministic activations x (n, dim) in [-1, 1), the same on every rank. */
static float *make_input(int n, int dim) {
    float *x = falloc((size_t)n * dim);
    ryz_synth_fill(7, INPUT_T, 1.0f, 0, n, INT64_MAX, 0, dim, dim, x);
    return x;
}

/* The whole tensor t (rows, cols), rows >= row_limit zero. */
static float *dense_tensor(uint64_t seed, uint32_t t, float scale, int rows, int64_t row_limit,
                           int cols) {
    float *w = falloc((size_t)rows * cols);
    ryz_synth_fill(seed, t, scale, 0, rows, row_limit, 0, cols, cols, w);
    return w;
}

/* The reference: y (n, out) = x (n, in) . W^T with W (out, in), accumulated
 * in double with plain loops (independent of the backend). */
static void naive_matmul(float *y, const float *x, const float *w, int n, int in, int out) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int j = 0; j < in; j++)
                acc += (double)x[(size_t)i * in + j] * w[(size_t)o * in + j];
            y[(size_t)i * out + o] = (float)acc;
        }
}

/* A (rows, cols) buffer between two NaN guard rows, so a read one row
 * outside it poisons the result; returns the first real row (free with
 * free_guarded). */
static float *guarded(int rows, int cols) {
    float *g = falloc((size_t)(rows + 2) * cols);
    for (int c = 0; c < cols; c++)
        g[c] = g[(size_t)(rows + 1) * cols + c] = NAN;
    return g + cols;
}

/* Frees a buffer from guarded(). */
static void free_guarded(float *p, int cols) {
    free(p - cols);
}

/* Columns [col0, col0 + ncols) of src (rows, ld) as a new (rows, ncols). */
static float *take_cols(const float *src, int rows, int ld, int col0, int ncols) {
    float *dst = falloc((size_t)rows * ncols);
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * ncols, src + (size_t)r * ld + col0, (size_t)ncols * sizeof *dst);
    return dst;
}

/* Fails, naming the worst element (index, both values), when got and want
 * differ anywhere by more than tol (NaN always fails). */
static void assert_close(const char *what, const float *got, const float *want, size_t n,
                         double tol) {
    double worst = -1;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (isnan(d))
            d = INFINITY;
        if (d > worst)
            worst = d, at = i;
    }
    ck_assert_msg(n == 0 || worst <= tol,
                  "rank %d/%d %s: max abs error %g > %g at index %zu (got %.9g, want %.9g)", g_rank,
                  g_k, what, worst, tol, at, (double)got[at], (double)want[at]);
}

/* ---- 1. TP layers against their dense versions ------------------------ */

/* One sharded feature dimension: `total` features of which this rank owns
 * [start, start + local), with the tensor split column-parallel (rows) and
 * the one split row-parallel (columns) along it. */
typedef struct {
    const char *name;
    uint32_t col_tensor, row_tensor;
    int total, start, local;
} split;

/* Split i of the layer config: 0 = attention by whole heads (wq, wo),
 * 1 = FFN by hidden rows, uneven at hidden=171 (w1, w2). */
static split split_of(const ryz_model_config *c, int i) {
    ryz_shard s = shard_of(c);
    int hd = s.head_dim;
    if (i == 0)
        return (split){"heads (wq/wo)", RYZ_T_LAYER(0, RYZ_T_WQ), RYZ_T_LAYER(0, RYZ_T_WO),
                       c->n_heads * hd, s.head_start * hd,        s.heads * hd};
    return (split){"hidden (w1/w2)", RYZ_T_LAYER(0, RYZ_T_W1), RYZ_T_LAYER(0, RYZ_T_W2),
                   c->hidden,        s.hidden_start,           s.hidden};
}

/* Column-parallel: the rank's output equals the dense output's columns for
 * the rank's rows of W (total, dim). */
START_TEST(test_column_parallel) {
    ryz_model_config c = parse_cfg(LAYER_SRC);
    split sp = split_of(&c, _i);
    int n = LAYER_ROWS, dim = c.dim;
    float scale = 1.0f / sqrtf((float)dim);
    float *x = make_input(n, dim);
    float *w = dense_tensor(c.seed, sp.col_tensor, scale, sp.total, INT64_MAX, dim);
    float *w_local = falloc((size_t)sp.local * dim);
    ryz_synth_fill(c.seed, sp.col_tensor, scale, sp.start, sp.local, INT64_MAX, 0, dim, dim,
                   w_local);
    float *dense = falloc((size_t)n * sp.total), *got = falloc((size_t)n * sp.local);
    naive_matmul(dense, x, w, n, dim, sp.total);
    float *want = take_cols(dense, n, sp.total, sp.start, sp.local);
    ryz_tp_column(&g_be, got, x, ryz_matrix_f32(w_local), n, dim, sp.local);
    char what[96];
    snprintf(what, sizeof what, "column-parallel %s [%d, +%d)", sp.name, sp.start, sp.local);
    assert_close(what, got, want, (size_t)n * sp.local, LAYER_TOL);
    free(x), free(w), free(w_local), free(dense), free(got), free(want);
}
END_TEST

/* Row-parallel: with the input split by columns, the all-reduced output
 * equals the dense x . W^T, W (dim, total). */
START_TEST(test_row_parallel) {
    ryz_model_config c = parse_cfg(LAYER_SRC);
    split sp = split_of(&c, _i);
    int n = LAYER_ROWS, dim = c.dim;
    float scale = 1.0f / sqrtf((float)sp.total);
    float *x = make_input(n, sp.total);
    float *x_local = take_cols(x, n, sp.total, sp.start, sp.local);
    float *w = dense_tensor(c.seed, sp.row_tensor, scale, dim, INT64_MAX, sp.total);
    float *w_local = falloc((size_t)dim * sp.local);
    ryz_synth_fill(c.seed, sp.row_tensor, scale, 0, dim, INT64_MAX, sp.start, sp.local, sp.local,
                   w_local);
    float *want = falloc((size_t)n * dim), *got = falloc((size_t)n * dim);
    naive_matmul(want, x, w, n, sp.total, dim);
    ryz_status st = ryz_tp_row(&g_be, g_world, got, x_local, ryz_matrix_f32(w_local), n, sp.local,
                               dim, NULL);
    ck_assert_msg(st == RYZ_OK, "ryz_tp_row: %s", ryz_last_error());
    char what[96];
    snprintf(what, sizeof what, "row-parallel %s [%d, +%d)", sp.name, sp.start, sp.local);
    assert_close(what, got, want, (size_t)n * dim, LAYER_TOL);
    free(x), free(x_local), free(w), free(w_local), free(want), free(got);
}
END_TEST

/* Vocab-parallel embedding, vocab 1001 (padded at k = 2, 4): ids at both
 * ends of the vocab and on both sides of every shard boundary at k = 2, 4
 * come back as the dense rows, exactly (one rank adds, the others add 0;
 * a lookup one row outside a shard reads a NaN guard). */
START_TEST(test_embedding) {
    ryz_model_config c = parse_cfg(LAYER_SRC);
    ryz_shard s = shard_of(&c);
    static const int tokens[] = {0, 1, 250, 251, 500, 501, 502, 752, 753, 999, 1000};
    int n = (int)(sizeof tokens / sizeof tokens[0]), dim = c.dim;
    ck_assert_int_eq(tokens[n - 1], c.vocab - 1);
    float *dense = dense_tensor(c.seed, RYZ_T_EMBED, 1.0f, c.vocab, c.vocab, dim);
    float *local = guarded(s.vocab_local, dim);
    ryz_synth_fill(c.seed, RYZ_T_EMBED, 1.0f, s.vocab_start, s.vocab_local, c.vocab, 0, dim, dim,
                   local);
    float *got = falloc((size_t)n * dim), *want = falloc((size_t)n * dim);
    for (int i = 0; i < n; i++)
        memcpy(want + (size_t)i * dim, dense + (size_t)tokens[i] * dim, (size_t)dim * sizeof *want);
    ryz_status st =
        ryz_tp_embedding(&g_be, g_world, got, tokens, n, local, s.vocab_start, s.vocab_local,
                         dim, NULL);
    ck_assert_msg(st == RYZ_OK, "ryz_tp_embedding: %s", ryz_last_error());
    assert_close("embedding rows (index = token slot * dim + col)", got, want, (size_t)n * dim, 0);
    free(dense), free(got), free(want);
    free_guarded(local, dim);
}
END_TEST

/* Vocab-parallel LM head: logits equal the dense x . cls^T for columns below
 * vocab; the padded columns are -inf. */
START_TEST(test_lm_head) {
    ryz_model_config c = parse_cfg(LAYER_SRC);
    ryz_shard s = shard_of(&c);
    int n = LAYER_ROWS, dim = c.dim, vp = s.vocab_padded;
    float scale = 1.0f / sqrtf((float)dim);
    float *x = make_input(n, dim);
    float *cls = dense_tensor(c.seed, RYZ_T_CLS, scale, c.vocab, c.vocab, dim);
    float *cls_local = falloc((size_t)s.vocab_local * dim);
    ryz_synth_fill(c.seed, RYZ_T_CLS, scale, s.vocab_start, s.vocab_local, c.vocab, 0, dim, dim,
                   cls_local);
    float *logits = falloc((size_t)n * vp), *part = falloc((size_t)n * s.vocab_local);
    float *gather = falloc((size_t)n * vp), *want = falloc((size_t)n * c.vocab);
    naive_matmul(want, x, cls, n, dim, c.vocab);
    ryz_status st =
        ryz_tp_lm_head(&g_be, g_world, logits, x, ryz_matrix_f32(cls_local), n, dim, c.vocab, &s,
                       part, gather, NULL);
    ck_assert_msg(st == RYZ_OK, "ryz_tp_lm_head: %s", ryz_last_error());
    float *got = take_cols(logits, n, vp, 0, c.vocab);
    assert_close("lm head logits (index = row * vocab + col)", got, want, (size_t)n * c.vocab,
                 LAYER_TOL);
    for (int i = 0; i < n; i++)
        for (int v = c.vocab; v < vp; v++) {
            float l = logits[(size_t)i * vp + v];
            ck_assert_msg(isinf(l) && l < 0,
                          "rank %d/%d lm head: padded logit [%d][%d] = %g, want -inf", g_rank, g_k,
                          i, v, (double)l);
        }
    free(x), free(cls), free(cls_local), free(logits), free(part), free(gather), free(want),
        free(got);
}
END_TEST

/* Greedy ids from each rank's part of the logits equal ryz_argmax on the
 * gathered row, on rows made to trip it: a unique maximum, all equal, the
 * maximum in two shards (the first wins), NaN at global index 0 (where
 * ryz_argmax's scan starts and stays), NaN opening another shard, all
 * -inf; the padded columns of the last shard hold 1e30 and must not
 * count (vocab 1001 at k = 2 and 4 leaves padding). */
START_TEST(test_greedy_ids) {
    enum { N = 6 };
    ryz_model_config c = parse_cfg(LAYER_SRC);
    ryz_shard s = shard_of(&c);
    int V = c.vocab, vl = s.vocab_local, ids[N];
    float *row = falloc((size_t)N * V), *part = falloc((size_t)N * vl);
    float *pairs = falloc((size_t)N * RYZ_GREEDY_FLOATS * (s.tp + 1));
    for (int i = 0; i < V; i++) {
        row[i] = (float)((i * 7919) % 1009) / 1009.0f;      /* unique maximum */
        row[V + i] = 0.5f;                                   /* all equal */
        row[2 * V + i] = (float)(i % 13);                    /* 12 at i = 12, 25, ... */
        row[3 * V + i] = (float)i;                           /* NaN at 0, below */
        row[4 * V + i] = (float)(i % 17);
        row[5 * V + i] = -INFINITY;
    }
    row[2 * V + V - 1] = 12;          /* the last shard ties the first */
    row[3 * V] = NAN;
    row[4 * V + V / 2] = NAN;                         /* mid-row */
    if (s.vocab_local < V) row[4 * V + s.vocab_local] = NAN; /* opens rank 1's shard */
    for (int r = 0; r < N; r++)
        for (int j = 0; j < vl; j++) {
            int g = s.vocab_start + j;
            part[(size_t)r * vl + j] = g < V ? row[(size_t)r * V + g] : 1e30f;
        }
    ryz_status st = ryz_tp_greedy_ids(g_world, part, N, V, &s, pairs, ids);
    ck_assert_msg(st == RYZ_OK, "%s", ryz_last_error());
    for (int r = 0; r < N; r++)
        ck_assert_msg(ids[r] == ryz_argmax(row + (size_t)r * V, V),
                      "rank %d/%d row %d: greedy id %d, ryz_argmax on the whole row %d", g_rank,
                      g_k, r, ids[r], ryz_argmax(row + (size_t)r * V, V));
    free(row), free(part), free(pairs);
}
END_TEST

/* ---- 2, 3. Whole model at TP=k against TP=1 --------------------------- */

/* A whole-model case: source, batch, prompt length, new tokens, the
 * prefill chunk of the TP=k run (chunk < prompt_len: chunked prefill), and
 * the weight storage of both runs (bf16 weights are the same numbers at
 * every TP, so fp32 tolerance still holds between TP degrees). */
typedef struct {
    const char *name, *src;
    int batch, prompt_len, new_tokens, chunk;
    ryz_dtype dtype;
} model_case;

/* Every shape is valid at k = 1, 2 and 4. */
static const model_case model_cases[] = {
    {"mha", "synthetic:tiny", 1, 5, 6, 5, RYZ_DTYPE_F32},
    {"gqa heads 8 kv 2", "synthetic:tiny,heads=8,kv_heads=2", 1, 5, 6, 5, RYZ_DTYPE_F32},
    {"gqa heads 4 kv 1", "synthetic:tiny,heads=4,kv_heads=1", 1, 5, 6, 5, RYZ_DTYPE_F32},
    {"vocab 1003", "synthetic:tiny,vocab=1003", 1, 5, 6, 5, RYZ_DTYPE_F32},
    {"hidden 170", "synthetic:tiny,hidden=170", 1, 5, 6, 5, RYZ_DTYPE_F32},
    {"batch 2", "synthetic:tiny,seed=3", 2, 5, 6, 5, RYZ_DTYPE_F32},
    {"chunked prefill 7 by 3", "synthetic:tiny,seed=5", 1, 7, 6, 3, RYZ_DTYPE_F32},
    {"kv groups straddle ranks", "synthetic:tiny,dim=96,heads=12,kv_heads=3", 1, 5, 6, 5,
     RYZ_DTYPE_F32},
    {"bf16 weights", "synthetic:tiny,dim=64,hidden=176,seed=4", 1, 5, 6, 5, RYZ_DTYPE_BF16},
    {"bf16 chunked, gqa, odd vocab", "synthetic:tiny,heads=8,kv_heads=2,vocab=1003,seed=6", 2, 7,
     6, 3, RYZ_DTYPE_BF16},
    {"all at once", "synthetic:tiny,heads=8,kv_heads=2,vocab=1003,hidden=171,seed=9", 2, 7, 6, 3,
     RYZ_DTYPE_F32},
};
#define N_MODEL_CASES ((int)(sizeof model_cases / sizeof model_cases[0]))
#define SKEW_CASE (N_MODEL_CASES - 1) /* "all at once": the fault-hook test's case */


/* The prompt (B, P): distinct ids per sequence, spanning the vocab, the last
 * id of the vocab included (it lives in the last, padded shard). */
static int *make_prompt(const model_case *mc, int vocab) {
    int n = mc->batch * mc->prompt_len;
    int *p = malloc((size_t)n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < n; i++)
        p[i] = (1 + 37 * i) % vocab;
    p[1] = vocab - 1;
    return p;
}

/* Builds cfg on comm and backend be with max_chunk `chunk`, generates the
 * case (teacher forced by `forced` when non-NULL) into *out, frees the
 * model. Returns the first failing status. */
static ryz_status run_model_on(ryz_backend *be, const ryz_model_config *cfg, ryz_comm *comm,
                               const model_case *mc, int chunk, const int *prompt,
                               const int *forced, test_gen *out) {
    int len = mc->prompt_len + mc->new_tokens;
    out->ids = malloc((size_t)mc->batch * len * sizeof *out->ids);
    out->logits = falloc((size_t)mc->batch * (len - 1) * cfg->vocab);
    ck_assert_ptr_nonnull(out->ids);
    ryz_model_opts opts = {.max_batch = mc->batch, .max_chunk = chunk, .dtype = mc->dtype};
    ryz_model *m = NULL;
    ryz_status st = ryz_model_build(cfg, comm, be, &opts, &m);
    if (st == RYZ_OK)
        st = ryz_model_generate(m, prompt, mc->batch, mc->prompt_len, mc->new_tokens, forced,
                                out->ids, out->logits, NULL);
    ryz_model_free(m);
    return st;
}

/* run_model_on the cpu backend. */
static ryz_status run_model(const ryz_model_config *cfg, ryz_comm *comm, const model_case *mc,
                            int chunk, const int *prompt, const int *forced, test_gen *out) {
    return run_model_on(&g_be, cfg, comm, mc, chunk, prompt, forced, out);
}

/* How a candidate run agrees with the baseline run. */
typedef struct {
    ryz_compare cmp;
    int id_mismatch; /* first index where the greedy ids differ, -1 if none */
    int base_id, cand_id;
} agreement;

/* Compares a candidate run with the baseline: the gate over every logit
 * position, and the greedy ids. */
static agreement agree(const test_gen *base, const test_gen *cand, const model_case *mc,
                       int vocab) {
    agreement a = {.id_mismatch = -1};
    int len = mc->prompt_len + mc->new_tokens;
    ryz_compare_logits(base->logits, cand->logits, mc->batch * (len - 1), vocab, GATE_TOL, GATE_TOL,
                       &a.cmp);
    for (int i = 0; i < mc->batch * len && a.id_mismatch < 0; i++)
        if (base->ids[i] != cand->ids[i])
            a.id_mismatch = i, a.base_id = base->ids[i], a.cand_id = cand->ids[i];
    return a;
}

/* Fails unless the logits pass the gate and the greedy ids are identical,
 * naming the worst logit. */
static void assert_agree(const char *what, const agreement *a) {
    const ryz_compare *c = &a->cmp;
    ck_assert_msg(c->pass,
                  "rank %d/%d %s: logits fail the gate: %d out of tolerance, %d real top-1 "
                  "mismatches; max abs error %g at row %d col %d (base %.9g, cand %.9g)",
                  g_rank, g_k, what, c->out_of_tol, c->top1_real_mismatch, c->max_abs, c->worst_row,
                  c->worst_col, c->worst_base, c->worst_cand);
    ck_assert_msg(a->id_mismatch < 0, "rank %d/%d %s: greedy id [%d] is %d at TP=1, %d at TP=k",
                  g_rank, g_k, what, a->id_mismatch, a->base_id, a->cand_id);
}

/* Runs the TP=1 baseline of a case on the self comm, unchunked. The status
 * is the same on every rank (no communication). */
static test_gen run_baseline(const ryz_model_config *cfg, const model_case *mc, const int *prompt) {
    test_gen base = {0};
    ryz_status st = run_model(cfg, g_self, mc, mc->prompt_len, prompt, NULL, &base);
    ck_assert_msg(st == RYZ_OK, "%s TP=1: %s", mc->name, ryz_last_error());
    return base;
}

/* The model at TP=k, teacher forced by the TP=1 ids, agrees with TP=1; for
 * a chunked case the TP=1 chunked prefill also agrees with unchunked. */
START_TEST(test_model_tp_vs_tp1) {
    const model_case *mc = &model_cases[_i];
    ryz_model_config cfg = parse_cfg(mc->src);
    int *prompt = make_prompt(mc, cfg.vocab);
    test_gen base = run_baseline(&cfg, mc, prompt), cand = {0}, chunked = {0};
    ryz_status st_tp = run_model(&cfg, g_world, mc, mc->chunk, prompt, base.ids, &cand);
    ryz_status st_chunk = RYZ_OK;
    if (mc->chunk < mc->prompt_len)
        st_chunk = run_model(&cfg, g_self, mc, mc->chunk, prompt, NULL, &chunked);
    agreement tp = agree(&base, &cand, mc, cfg.vocab);
    agreement ch = chunked.ids ? agree(&base, &chunked, mc, cfg.vocab)
                               : (agreement){.cmp.pass = 1, .id_mismatch = -1};
    test_gen_free(&base), test_gen_free(&cand), test_gen_free(&chunked), free(prompt);
    char what[128];
    snprintf(what, sizeof what, "%s: TP=%d vs TP=1", mc->name, g_k);
    ck_assert_msg(st_tp == RYZ_OK, "%s: %s", what, ryz_last_error());
    assert_agree(what, &tp);
    snprintf(what, sizeof what, "%s: TP=1 chunk %d vs unchunked", mc->name, mc->chunk);
    ck_assert_msg(st_chunk == RYZ_OK, "%s: %s", what, ryz_last_error());
    assert_agree(what, &ch);
}
END_TEST

/* On a backend the host cannot touch, with its collectives staged through
 * host buffers at k > 1 (the cuda backend's path with comm = mpi), the
 * model at TP=k gives the cpu backend's ids and logits at TP=k bit for bit,
 * bf16 cases too (their rows packed on the host and uploaded). */
START_TEST(test_model_staged) {
    const model_case *mc = &model_cases[_i];
    ryz_model_config cfg = parse_cfg(mc->src);
    int *prompt = make_prompt(mc, cfg.vocab);
    ryz_backend sb;
    shadow_init(&sb);
    test_gen cpu = {0}, dev = {0};
    ryz_status st_cpu = run_model(&cfg, g_world, mc, mc->chunk, prompt, NULL, &cpu);
    ryz_status st_dev = run_model_on(&sb, &cfg, g_world, mc, mc->chunk, prompt, NULL, &dev);
    int len = mc->prompt_len + mc->new_tokens, staged = ryz_tp_staged(&sb, g_world);
    int same_ids = !memcmp(cpu.ids, dev.ids, (size_t)mc->batch * len * sizeof *cpu.ids);
    int same_logits =
        !memcmp(cpu.logits, dev.logits, (size_t)mc->batch * (len - 1) * cfg.vocab * sizeof(float));
    test_gen_free(&cpu), test_gen_free(&dev), free(prompt);
    ryz_backend_free(&sb);
    ck_assert_msg(st_cpu == RYZ_OK && st_dev == RYZ_OK, "%s: %s", mc->name, ryz_last_error());
    ck_assert_int_eq(staged, g_k > 1);
    ck_assert_msg(same_ids && same_logits,
                  "rank %d/%d %s: staged shadow backend differs from cpu (ids %s, logits %s)",
                  g_rank, g_k, mc->name, same_ids ? "same" : "differ",
                  same_logits ? "same" : "differ");
}
END_TEST

/* As the suite runner does: only rank 0 keeps logits, and greedy runs set
 * last-only prefill on every rank (at TP > 1 the ids then come from each
 * rank's part of the logits, ryz_tp_greedy_ids). Both must complete (no
 * mismatched collective) and give the baseline's ids. */
START_TEST(test_logits_on_lead_only) {
    const model_case *mc = &model_cases[SKEW_CASE];
    ryz_model_config cfg = parse_cfg(mc->src);
    int *prompt = make_prompt(mc, cfg.vocab), len = mc->prompt_len + mc->new_tokens;
    test_gen base = run_baseline(&cfg, mc, prompt);
    int *ids = malloc((size_t)mc->batch * len * sizeof *ids);
    float *logits = g_rank == 0 ? falloc((size_t)mc->batch * (len - 1) * cfg.vocab) : NULL;
    ryz_model_opts opts = {.max_batch = mc->batch, .max_chunk = mc->chunk};
    ryz_model *m = NULL;
    ryz_status st = ryz_model_build(&cfg, g_world, &g_be, &opts, &m);
    if (st == RYZ_OK)
        st = ryz_model_generate(m, prompt, mc->batch, mc->prompt_len, mc->new_tokens, NULL, ids,
                                logits, NULL);
    int same_full = st == RYZ_OK && !memcmp(ids, base.ids, (size_t)mc->batch * len * sizeof *ids);
    if (st == RYZ_OK) {
        ryz_model_set_last_only_prefill(m, 1);
        ryz_comm_records_clear(g_world);
        st = ryz_model_generate(m, prompt, mc->batch, mc->prompt_len, mc->new_tokens, NULL, ids,
                                NULL, NULL);
    }
    size_t gathers = 0, vocab_gathers = 0; /* last-only greedy gathers ids, not logits */
    for (size_t i = 0; i < ryz_comm_record_count(g_world); i++) {
        const ryz_comm_record *r = ryz_comm_record_at(g_world, i);
        gathers += r->op == RYZ_OP_ALL_GATHER;
        vocab_gathers += r->op == RYZ_OP_ALL_GATHER && r->bytes >= (size_t)cfg.vocab / g_k * 4;
    }
    ck_assert_uint_eq(vocab_gathers, 0);
    ck_assert_uint_eq(gathers, g_k > 1 ? (size_t)mc->new_tokens : 0);
    int same_last = st == RYZ_OK && !memcmp(ids, base.ids, (size_t)mc->batch * len * sizeof *ids);
    ryz_model_free(m);
    free(ids), free(logits), free(prompt), test_gen_free(&base);
    ck_assert_msg(st == RYZ_OK, "TP=%d: %s", g_k, ryz_last_error());
    ck_assert_msg(same_full && same_last, "greedy ids differ from TP=1 (full %d, last-only %d)",
                  same_full, same_last);
}
END_TEST

/* The gate can fail: with the shard-skew hook on, TP=k (k > 1) must fail
 * the comparison and TP=1 is unaffected; with it off again, TP=k passes. */
START_TEST(test_gate_catches_shard_skew) {
    const model_case *mc = &model_cases[SKEW_CASE];
    ryz_model_config cfg = parse_cfg(mc->src);
    int *prompt = make_prompt(mc, cfg.vocab);
    test_gen base = run_baseline(&cfg, mc, prompt), skewed = {0}, fixed = {0};
    ryz_test_set_shard_skew(1);
    ryz_status st_skew = run_model(&cfg, g_world, mc, mc->chunk, prompt, base.ids, &skewed);
    ryz_test_set_shard_skew(0);
    ryz_status st_fixed = run_model(&cfg, g_world, mc, mc->chunk, prompt, base.ids, &fixed);
    agreement a_skew = agree(&base, &skewed, mc, cfg.vocab);
    agreement a_fixed = agree(&base, &fixed, mc, cfg.vocab);
    test_gen_free(&base), test_gen_free(&skewed), test_gen_free(&fixed), free(prompt);
    ck_assert_msg(st_skew == RYZ_OK && st_fixed == RYZ_OK, "%s", ryz_last_error());
    if (g_k > 1)
        ck_assert_msg(!a_skew.cmp.pass,
                      "rank %d/%d: skewed wo shards passed the gate (max abs error %g)", g_rank,
                      g_k, a_skew.cmp.max_abs);
    else
        assert_agree("skew hook at TP=1 (must have no effect)", &a_skew);
    assert_agree("after resetting the skew hook", &a_fixed);
}
END_TEST

/* Resets the fault hook even when a test fails midway. */
static void reset_skew(void) {
    ryz_test_set_shard_skew(0);
}

/* ---- 4. Weight memory per rank ---------------------------------------- */

/* Checks the shard plan of every rank against first principles: query
 * heads and hidden rows split contiguously with nothing lost or repeated,
 * vocab padded to the next multiple of k, each rank holding exactly the KV
 * heads its query heads read (a group of n_heads / n_kv_heads query heads
 * shares one), and kv_replicated set when some KV head is held by more than
 * one rank (always when n_kv_heads < k). */
static void check_plan(const ryz_model_config *c, const char *name) {
    int heads_next = 0, hidden_next = 0, kv_held = 0, vp = (c->vocab + g_k - 1) / g_k * g_k;
    int group = c->n_heads / c->n_kv_heads, heads = c->n_heads / g_k;
    for (int r = 0; r < g_k; r++)
        kv_held += (r * heads + heads - 1) / group - r * heads / group + 1;
    for (int r = 0; r < g_k; r++) {
        ryz_shard s;
        ryz_shard_plan(c, g_k, r, &s);
        int kv_first = heads_next / group, kv_last = (heads_next + heads - 1) / group;
        int ok = s.head_start == heads_next && s.heads == heads && s.hidden_start == hidden_next &&
                 abs(s.hidden * g_k - c->hidden) < g_k && s.vocab_padded == vp &&
                 s.vocab_local == vp / g_k && s.vocab_start == r * (vp / g_k) &&
                 s.kv_start == kv_first && s.kv_heads == kv_last - kv_first + 1 &&
                 s.kv_mul == group && s.kv_replicated == (kv_held > c->n_kv_heads);
        ck_assert_msg(ok,
                      "%s: plan of rank %d/%d: heads %d@%d hidden %d@%d vocab %d@%d of %d, "
                      "kv %d@%d (mul %d, replicated %d)",
                      name, r, g_k, s.heads, s.head_start, s.hidden, s.hidden_start, s.vocab_local,
                      s.vocab_start, s.vocab_padded, s.kv_heads, s.kv_start, s.kv_mul,
                      s.kv_replicated);
        heads_next += s.heads, hidden_next += s.hidden;
    }
    ck_assert_msg(hidden_next == c->hidden, "%s: hidden rows %d of %d", name, hidden_next,
                  c->hidden);
    ck_assert_msg(c->n_kv_heads >= g_k || kv_held > c->n_kv_heads,
                  "%s: n_kv_heads %d < k %d but no KV head replicated", name, c->n_kv_heads, g_k);
}

/* Weight bytes a rank holds by its shard: per layer two replicated norms,
 * wq and wo for its query heads, wk and wv for its (maybe replicated) KV
 * heads, w1, w3 and w2 for its hidden rows; then its padded vocab rows of
 * the embedding and LM head and the replicated final norm. */
static size_t shard_weight_bytes(const ryz_model_config *c, const ryz_shard *s) {
    size_t dim = (size_t)c->dim, hd = (size_t)s->head_dim;
    size_t layer = 2 * dim + 2 * (size_t)s->heads * hd * dim + 2 * (size_t)s->kv_heads * hd * dim +
                   3 * (size_t)s->hidden * dim;
    return (layer * c->n_layers + 2 * (size_t)s->vocab_local * dim + dim) * sizeof(float);
}

/* Bytes every rank holds in full: the norms, and wk, wv when replicated. */
static size_t replicated_bytes(const ryz_model_config *c, const ryz_shard *s) {
    size_t dim = (size_t)c->dim,
           kv = s->kv_replicated ? 2 * (size_t)s->kv_heads * s->head_dim * dim : 0;
    return ((2 * dim + kv) * c->n_layers + dim) * sizeof(float);
}

/* Weight bytes counted while building the TP=k model equal the shard plan's
 * exactly, and are at most total/k * 1.05 plus the replicated parts. */
START_TEST(test_weight_memory) {
    const model_case *mc = &model_cases[_i];
    ryz_model_config cfg = parse_cfg(mc->src);
    ryz_shard s = shard_of(&cfg);
    check_plan(&cfg, mc->name);
    ryz_model_opts opts = {.max_batch = 1, .max_chunk = 1};
    ryz_model *m = NULL;
    size_t before = ryz_mem_bytes(RYZ_MEM_WEIGHTS);
    ryz_status st = ryz_model_build(&cfg, g_world, &g_be, &opts, &m);
    size_t got = ryz_mem_bytes(RYZ_MEM_WEIGHTS) - before;
    ryz_model_free(m);
    ck_assert_msg(st == RYZ_OK, "%s: %s", mc->name, ryz_last_error());
    size_t want = shard_weight_bytes(&cfg, &s), total = ryz_model_weight_bytes(&cfg);
    ck_assert_msg(got == want, "rank %d/%d %s: %zu weight bytes, plan says %zu", g_rank, g_k,
                  mc->name, got, want);
    double bound = (double)total / g_k * 1.05 + (double)replicated_bytes(&cfg, &s);
    ck_assert_msg((double)got <= bound,
                  "rank %d/%d %s: %zu weight bytes > %.0f (total %zu / k * 1.05 + replicated)",
                  g_rank, g_k, mc->name, got, bound, total);
    ck_assert_msg(ryz_mem_bytes(RYZ_MEM_WEIGHTS) == before, "%s: weights leaked by free", mc->name);
}
END_TEST

/* ---- runner ----------------------------------------------------------- */

/* Layer tests first, then the model tests (the fault-hook test resets the
 * hook in a checked teardown, so a failure cannot leak it). */
static Suite *tp_suite(void) {
    Suite *s = suite_create("mpi_tp");
    TCase *layers = tcase_create("layers");
    tcase_add_loop_test(layers, test_column_parallel, 0, 2);
    tcase_add_loop_test(layers, test_row_parallel, 0, 2);
    tcase_add_test(layers, test_embedding);
    tcase_add_test(layers, test_lm_head);
    tcase_add_test(layers, test_greedy_ids);
    suite_add_tcase(s, layers);
    TCase *model = tcase_create("model");
    tcase_add_checked_fixture(model, NULL, reset_skew);
    tcase_add_loop_test(model, test_model_tp_vs_tp1, 0, N_MODEL_CASES);
    tcase_add_loop_test(model, test_model_staged, 0, N_MODEL_CASES);
    tcase_add_test(model, test_gate_catches_shard_skew);
    tcase_add_test(model, test_logits_on_lead_only);
    tcase_add_loop_test(model, test_weight_memory, 0, N_MODEL_CASES);
    suite_add_tcase(s, model);
    return s;
}

int main(int argc, char **argv) {
    if (test_mpi_setup(&argc, &argv, "test_mpi_tp", &g_world)) return EXIT_FAILURE;
    if (ryz_comm_init_self(&g_self) != RYZ_OK || ryz_backend_init_cpu(1, &g_be) != RYZ_OK) {
        fprintf(stderr, "test_mpi_tp: setup failed: %s\n", ryz_last_error());
        ryz_mpi_finalize();
        return EXIT_FAILURE;
    }
    g_rank = ryz_comm_rank(g_world);
    g_k = ryz_comm_size(g_world);
    int code = test_run_mpi_suite(tp_suite(), g_world, "test_mpi_tp", NULL);
    ryz_comm_free(g_self);
    ryz_comm_free(g_world);
    ryz_backend_free(&g_be);
    ryz_mpi_finalize();
    return code;
}
