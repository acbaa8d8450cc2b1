/* The CPU backend: single-threaded OpenBLAS sgemm on each of the
 * backend's own threads for prefill, an AVX2 GEMV on the same threads for
 * decode (fp32 or bf16 weights), the rest in llama2.c's math (8 lanes
 * at a time where a loop showed in a decode step's profile). Its memory
 * is the host's, so the data-movement ops are plain copies. The kernels
 * are in cpu_kernels.c; this file holds the ops that pick among them, the
 * threads, the scratch memory and the BLAS calls. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"
#include "pool.h"
#include "rows.h"
#include "ryz/backend.h"

void openblas_set_num_threads(int);
int openblas_get_parallel(void);

/* RoPE's rotation of one position, kept from call to call: a decode step
 * rotates q and k of every layer at the same position, and a powf and a
 * sincosf per pair each time were 0.6 % of a 110m bf16 token (perf).
 * Head dims above 2 ROPE_MEMO_PAIRS are rotated pair by pair instead. */
#define ROPE_MEMO_PAIRS 256
typedef struct {
    int head_dim, pos; /* head_dim 0: nothing kept yet */
    float base;
    float freq[ROPE_MEMO_PAIRS], cos[ROPE_MEMO_PAIRS], sin[ROPE_MEMO_PAIRS];
} rope_memo;

/* The backend's state: its threads, and bf16 weight rows widened to fp32
 * for sgemm (prefill), grown once to the largest block and then reused. */
typedef struct {
    ryz_pool *pool;
    ryz_rows *rows; /* decode GEMVs on the pool (rows.h) */
    float *wide;    /* bf16 prefill: a block of W as fp32 per thread */
    size_t wide_floats;
    float *scores;  /* prefill attention: threads 1.. each a (T, L) block */
    size_t scores_floats;
    float *xperm;   /* bf16 decode: x in the kernel's lane order */
    size_t xperm_floats;
    float *attn_part; /* decode attention: chunks 1.. of the output */
    size_t attn_part_floats;
    float *probe_y; /* read probe: a float per row, the rows' sums */
    size_t probe_y_floats;
    int blas_threads; /* threads that may call OpenBLAS at once (blas_run) */
    rope_memo rope;
} cpu_ctx;

/* *buf with room for `want` floats, grown (once per size, never in the
 * steady state of a run; the contents are not kept) and counted as
 * scratch memory; NULL when out of memory, *buf then unchanged. A late
 * GEMV worker may still read the old buffer (xperm, its x), so the pool
 * is quiesced before one is freed. */
static float *scratch_grow(cpu_ctx *c, float **buf, size_t *cap, size_t want) {
    if (*cap < want) {
        float *p = ryz_mem_alloc(RYZ_MEM_SCRATCH, want, sizeof *p);
        if (!p) return NULL;
        ryz_pool_quiesce(c->pool);
        ryz_mem_free(*buf);
        *buf = p, *cap = want;
    }
    return *buf;
}

static void *cpu_alloc(void *ctx, ryz_mem_kind kind, size_t bytes) {
    (void)ctx;
    return ryz_mem_alloc(kind, bytes, 1);
}

static void cpu_free(void *ctx, void *p) {
    cpu_ctx *c = ctx;
    ryz_pool_quiesce(c->pool); /* a late GEMV worker may still read p (matmul) */
    ryz_mem_free(p);
}

/* Rows [*r0, *r1) of `total` for thread t of n: contiguous bands whose
 * starts are multiples of 4; empty when r0 >= r1. */
static void band_of(int total, int t, int n, int *r0, int *r1) {
    int per = ((total + n - 1) / n + 3) & ~3;
    *r0 = t * per;
    *r1 = *r0 + per < total ? *r0 + per : total;
}

/* Below this many rows per thread the wake-up costs more than it saves. */
#define GEMV_MIN_ROWS_PER_THREAD 64
/* The smallest claim is a (n * GEMV_TAIL_CLAIMS)-th of the rows: short
 * beside a GEMV, yet a stream long enough to be worth starting (768 rows
 * at 2 threads: 48 rows, 72 KiB of bf16, 144 KiB of fp32). With 16, half
 * that, bf16 decode of a model that reads fast (in and near the L3) ran
 * 2-4 % slower; fp32 on two layers of 110m ran as fast (0.998;
 * docs/performance.md, session 24). */
#define GEMV_TAIL_CLAIMS 8

/* One thread takes the whole matrix as one chunk: nothing to balance, and
 * the kernel's four bands stay as long as they can be (1-thread decode of
 * 110m: 91-100 % of the roofline against 81-86 % in 8 chunks, three A/B
 * pairs). More threads claim chunks of rows until none are left
 * (ryz_rows_run): two ranks' threads sharing one memory bus stream at
 * rates that differ from call to call, so equal fixed bands left the
 * faster thread spinning at the end of every GEMV (9 % of a 2-thread
 * decode's samples). The claims shrink as the rows run out, so the first
 * ones are long sequential streams and the last ones short: against 8
 * equal claims per thread, 2-thread decode of 110m spent 3 % less time in
 * its GEMVs (faster in 15 of 18 in-process A/B runs, docs/performance.md). */
static void gemv(cpu_ctx *c, ryz_rows_fn fn, float *y, const float *x, const void *w, int in,
                 int out) {
    int n = ryz_pool_threads(c->pool), per = n * GEMV_TAIL_CLAIMS;
    if (n == 1 || out < GEMV_MIN_ROWS_PER_THREAD * n) {
        fn(y, x, w, in, out, 0, out);
        return;
    }
    ryz_rows_run(c->rows, fn, y, x, w, in, out, ((out + per - 1) / per + 3) & ~3);
}

static ryz_rows_fn gemv_f32_kernel(int in) {
    return cpu_have_avx2() && in % 8 == 0 ? cpu_gemv_f32_avx2 : cpu_gemv_f32_scalar;
}

/* Runs a job whose parts call OpenBLAS on blas_threads threads: the pool,
 * where OpenBLAS is its pthreads build (whose single-threaded calls may
 * run at once: its buffer allocator locks), else this thread alone. */
static void blas_run(cpu_ctx *c, ryz_pool_fn fn, void *arg) {
    if (c->blas_threads > 1) ryz_pool_run(c->pool, fn, arg);
    else fn(arg, 0, 1);
}

/* y (n, out) = x (n, in) W^T for n > 1, shared out by rows of W: thread t
 * runs single-threaded sgemm on its band of W, fp32 or widened from bf16
 * block by block into its own share of `wide` (wide_rows rows), so every
 * core streams W once and no thread hands its core to another. */
typedef struct {
    float *y;
    const float *x;
    const void *w; /* fp32, or row-major bf16 when wide != NULL */
    float *wide;
    int n, in, out, wide_rows;
} sgemm_job;

/* Columns [o0, o0 + rows) of j's y from those rows of W, fp32 at w. */
static void sgemm_rows(const sgemm_job *j, const float *w, int o0, int rows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, rows, j->in, 1.0f, j->x, j->in, w,
                j->in, 0.0f, j->y + o0, j->out);
}

static void sgemm_part(void *arg, int t, int nt) {
    const sgemm_job *j = arg;
    int r0, r1;
    band_of(j->out, t, nt, &r0, &r1);
    if (!j->wide) {
        if (r0 < r1) sgemm_rows(j, (const float *)j->w + (size_t)r0 * j->in, r0, r1 - r0);
        return;
    }
    float *wide = j->wide + (size_t)t * j->wide_rows * j->in;
    for (int o0 = r0; o0 < r1; o0 += j->wide_rows) {
        int rb = r1 - o0 < j->wide_rows ? r1 - o0 : j->wide_rows;
        cpu_bf16_unpack_rows(wide, j->w, o0, rb, j->in);
        sgemm_rows(j, wide, o0, rb);
    }
}

static void cpu_matmul(void *ctx, float *y, const float *x, const float *w, int n, int in,
                       int out) {
    cpu_ctx *c = ctx;
    ryz_streamed_add((uint64_t)in * (uint64_t)out * sizeof *w);
    if (n == 1) {
        gemv(c, gemv_f32_kernel(in), y, x, w, in, out);
        return;
    }
    sgemm_job j = {.y = y, .x = x, .w = w, .n = n, .in = in, .out = out};
    blas_run(c, sgemm_part, &j);
}

/* Prefill with bf16 weights: each thread widens blocks of its rows to
 * fp32, then runs sgemm on each block, so the GEMM runs at the fp32 rate
 * and the widening (one pass over W) is small beside it. The threads'
 * blocks share at most 8 MiB: each thread's band of a 110m layer matrix
 * in one block, still inside the L3 the sgemm reads it from
 * (docs/performance.md). */
#define WIDE_FLOATS ((size_t)1 << 21)

static void cpu_matmul_bf16(void *ctx, float *y, const float *x, const uint16_t *w, int n, int in,
                            int out) {
    cpu_ctx *c = ctx;
    ryz_streamed_add((uint64_t)in * (uint64_t)out * sizeof *w);
    int nt = c->blas_threads, r0, r1;
    if (n == 1) {
        float *xp = in % 16 == 0 && cpu_have_avx2()
                        ? scratch_grow(c, &c->xperm, &c->xperm_floats, (size_t)in) : NULL;
        if (xp) cpu_bf16_permute_x(xp, x, in);
        gemv(c, xp ? cpu_gemv_bf16_avx2 : cpu_gemv_bf16_scalar, y, xp ? xp : x, w, in, out);
        return;
    }
    band_of(out, 0, nt, &r0, &r1); /* the largest band */
    size_t bands = (size_t)nt * (size_t)(r1 - r0) * (size_t)in;
    size_t want = bands < WIDE_FLOATS ? bands : WIDE_FLOATS;
    if (want < (size_t)nt * in) want = (size_t)nt * in; /* a row per thread at least */
    if (!scratch_grow(c, &c->wide, &c->wide_floats, want)) { /* out of memory: slow but right */
        for (int r = 0; r < n; r++)
            cpu_gemv_bf16_scalar(y + (size_t)r * out, x + (size_t)r * in, w, in, out, 0, out);
        return;
    }
    sgemm_job j = {.y = y, .x = x, .w = w, .wide = c->wide, .n = n, .in = in, .out = out,
                   .wide_rows = (int)(c->wide_floats / nt / (size_t)in)};
    blas_run(c, sgemm_part, &j);
}

/* y = rmsnorm(x) row by row; with r not NULL, x + r is stored to xr and
 * normalised instead. */
static void rmsnorm_rows(float *y, const float *x, const float *r, float *xr, const float *w,
                         int n, int dim, float eps) {
    int vec = dim % 8 == 0 && cpu_have_avx2();
    for (size_t t = 0, at = 0; t < (size_t)n; t++, at += (size_t)dim) {
        const float *rt = r ? r + at : NULL;
        float *xt = r ? xr + at : NULL;
        float ss = (vec ? cpu_sumsq_avx2 : cpu_sumsq_scalar)(x + at, rt, xt, dim);
        float scale = 1.0f / sqrtf(ss / (float)dim + eps);
        (vec ? cpu_norm_scale_avx2 : cpu_norm_scale_scalar)(y + at, r ? xt : x + at, w, scale, dim);
    }
}

static void cpu_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int dim,
                        float eps) {
    (void)ctx;
    rmsnorm_rows(y, x, NULL, NULL, w, n, dim, eps);
}

static float rope_freq(float base, int i, int head_dim) {
    return 1.0f / powf(base, (float)i / (float)head_dim);
}

/* Rotates pair i (elements i, i + 1) of each of the heads in row by the
 * angle whose cosine and sine are fcr and fci. */
static void rope_pair(float *row, int heads, int head_dim, int i, float fcr, float fci) {
    for (int h = 0; h < heads; h++) {
        float *v = row + (size_t)h * head_dim + i;
        float v0 = v[0], v1 = v[1];
        v[0] = v0 * fcr - v1 * fci;
        v[1] = v0 * fci + v1 * fcr;
    }
}

/* m holding the rotation of position pos (head_dim <= 2 ROPE_MEMO_PAIRS):
 * the same floats as rope_pair's callers computed pair by pair before. */
static const rope_memo *rope_memo_at(rope_memo *m, int head_dim, float base, int pos) {
    if (m->head_dim != head_dim || m->base != base) {
        for (int i = 0; i < head_dim; i += 2) m->freq[i / 2] = rope_freq(base, i, head_dim);
        m->head_dim = head_dim, m->base = base, m->pos = -1;
    }
    if (m->pos != pos) {
        for (int k = 0; k < head_dim / 2; k++) {
            float val = (float)pos * m->freq[k];
            m->cos[k] = cosf(val), m->sin[k] = sinf(val);
        }
        m->pos = pos;
    }
    return m;
}

static void cpu_rope(void *ctx, float *x, int n, int heads, int head_dim, const int *pos,
                     float base) {
    cpu_ctx *c = ctx;
    int pos0 = *pos;
    for (int t = 0; t < n; t++) {
        float *row = x + (size_t)t * heads * head_dim;
        if (head_dim <= 2 * ROPE_MEMO_PAIRS) {
            const rope_memo *m = rope_memo_at(&c->rope, head_dim, base, pos0 + t);
            for (int i = 0; i < head_dim; i += 2)
                rope_pair(row, heads, head_dim, i, m->cos[i / 2], m->sin[i / 2]);
            continue;
        }
        for (int i = 0; i < head_dim; i += 2) {
            float val = (float)(pos0 + t) * rope_freq(base, i, head_dim);
            rope_pair(row, heads, head_dim, i, cosf(val), sinf(val));
        }
    }
}

static void cpu_silu_mul(void *ctx, float *a, const float *b, size_t n) {
    (void)ctx;
    (cpu_have_avx2() ? cpu_silu_mul_avx2 : cpu_silu_mul_scalar)(a, b, n);
}

static void cpu_add(void *ctx, float *x, const float *y, size_t n) {
    (void)ctx;
    cpu_vec_add(x, y, n);
}

static void cpu_add_rmsnorm(void *ctx, float *y, float *x, const float *r, const float *w, int n,
                            int dim, float eps) {
    (void)ctx;
    rmsnorm_rows(y, x, r, x, w, n, dim, eps);
}

/* Head h of T rows at positions pos0.., scores (T, L) its scratch: S =
 * Q K^T / sqrt(hd), causal softmax per row, O (T, hd) = S V over the
 * strided caches. Prefill: two sgemm calls (the masked upper triangle
 * costs some flops but keeps the work in sgemm). One row: plain loops,
 * because two BLAS calls per head cost about 40 us per layer of 110m (12
 * heads, L <= 80), 2-4 % of a token, for a few thousand flops. */
static void attn_head(float *out, const float *q, const float *kc, const float *vc, int T,
                      int pos0, const ryz_attn_geom *g, int h, float *scores) {
    int hd = g->head_dim, qdim = g->heads * hd, kvdim = g->kv_heads * hd, L = pos0 + T;
    float scale = 1.0f / sqrtf((float)hd);
    int kvh = (g->head_start + h) / g->kv_mul - g->kv_start;
    const float *K = kc + (size_t)kvh * hd, *V = vc + (size_t)kvh * hd, *Q = q + (size_t)h * hd;
    float *O = out + (size_t)h * hd;
    if (T == 1) {
        cpu_attn_scores_scalar(scores, Q, K, L, hd, kvdim, scale);
        cpu_softmax_masked(scores, L, L);
        cpu_attn_mix_scalar(O, scores, V, L, hd, kvdim);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, hd, scale, Q, qdim, K, kvdim, 0.0f,
                scores, L);
    for (int t = 0; t < T; t++) cpu_softmax_masked(scores + (size_t)t * L, pos0 + t + 1, L);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, L, 1.0f, scores, L, V, kvdim,
                0.0f, O, qdim);
}

/* Prefill attention shared out by heads: thread t takes heads [heads t /
 * n, heads (t + 1) / n) with scores0 (thread 0, the op's scratch) or its
 * own (T, L) block of scores. */
typedef struct {
    float *out, *scores0, *scores;
    const float *q, *kc, *vc;
    const ryz_attn_geom *g;
    int T, pos0;
} attn_job;

static void attn_part(void *arg, int t, int n) {
    const attn_job *j = arg;
    size_t block = (size_t)j->T * (size_t)(j->pos0 + j->T);
    float *s = t == 0 ? j->scores0 : j->scores + (size_t)(t - 1) * block;
    for (int h = j->g->heads * t / n; h < j->g->heads * (t + 1) / n; h++)
        attn_head(j->out, j->q, j->kc, j->vc, j->T, j->pos0, j->g, h, s);
}

/* Decode: all heads at once, the rows in bands where vectorised (from
 * CPU_ATTN_SPLIT_L rows on in chunks on the pool's threads); prefill on the
 * pool's threads, one block of scores each (the calling thread's is the
 * op's scratch). */
static void cpu_attention(void *ctx, float *out, const float *q, const float *kc,
                          const float *vc, int T, const int *pos, const ryz_attn_geom *g,
                          float *scores) {
    cpu_ctx *c = ctx;
    int pos0 = *pos, L = pos0 + T, nt = c->blas_threads;
#if defined(__x86_64__)
    int hd = g->head_dim;
    if (T == 1 && hd % 8 == 0 && cpu_have_avx2()) {
        cpu_attn_decode_job dj = {.out = out, .s = scores, .q = q, .kc = kc, .vc = vc, .g = g,
                                  .L = L, .chunks = 1, .scale = 1.0f / sqrtf((float)hd)};
        size_t want = (size_t)(CPU_ATTN_CHUNKS - 1) * g->heads * hd;
        if (L >= CPU_ATTN_SPLIT_L && /* no memory: one chunk, on this thread */
            (dj.part = scratch_grow(c, &c->attn_part, &c->attn_part_floats, want)))
            dj.chunks = CPU_ATTN_CHUNKS;
        cpu_attn_decode_avx2(c->pool, &dj);
        return;
    }
#endif
    attn_job j = {.out = out, .scores0 = scores, .q = q, .kc = kc, .vc = vc, .g = g, .T = T,
                  .pos0 = pos0};
    size_t want = (size_t)(nt - 1) * T * L;
    if (want > c->scores_floats && want < 2 * c->scores_floats) /* L grows chunk by chunk */
        want = 2 * c->scores_floats;
    if (T > 1 && nt > 1 && (j.scores = scratch_grow(c, &c->scores, &c->scores_floats, want)))
        blas_run(c, attn_part, &j);
    else /* one row, one thread, or no memory for more scores: on this thread */
        attn_part(&j, 0, 1);
}

/* rope of q and k, then k and v into the caches: the ops one by one. */
static void cpu_rope_cache(void *ctx, float *q, float *k, const float *v, float *kc, float *vc,
                           int T, int heads, int kv_heads, int head_dim, const int *pos,
                           float base) {
    size_t kvd = (size_t)kv_heads * head_dim, row0 = (size_t)*pos * kvd;
    cpu_rope(ctx, q, T, heads, head_dim, pos, base);
    cpu_rope(ctx, k, T, kv_heads, head_dim, pos, base);
    memcpy(kc + row0, k, (size_t)T * kvd * sizeof(float));
    memcpy(vc + row0, v, (size_t)T * kvd * sizeof(float));
}

/* A read probe's rows [o0, o1) of `in` floats each, read as one stretch
 * by ryz_mem_read_sum: y[o0] receives its low 24 bits (exact in a float),
 * the other rows 0. */
static void probe_rows(float *y, const float *x, const void *w, int in, int out, int o0, int o1) {
    (void)x, (void)out;
    size_t row = (size_t)in * sizeof(float);
    uint64_t s = ryz_mem_read_sum((const char *)w + (size_t)o0 * row, (size_t)(o1 - o0) * row);
    y[o0] = (float)(s & 0xffffff);
    for (int o = o0 + 1; o < o1; o++) y[o] = 0;
}

/* The probe runs through gemv, so its threads claim rows as a decode
 * GEMV's do: one stretch at 1 thread, shrinking claims and a caller that
 * takes over a late worker's claim at more. */
static ryz_status cpu_read_probe(void *ctx, const void *p, size_t bytes, uint64_t *sum) {
    cpu_ctx *c = ctx;
    int rows = (int)(bytes / RYZ_PROBE_ROW_BYTES);
    float *y = scratch_grow(c, &c->probe_y, &c->probe_y_floats, (size_t)rows);
    if (!y) return ryz_error_wrap(RYZ_ENOMEM, "read probe: no scratch for %d rows", rows);
    gemv(c, probe_rows, y, NULL, p, RYZ_PROBE_ROW_BYTES / (int)sizeof(float), rows);
    *sum = 0;
    for (int r = 0; r < rows; r++) *sum += (uint64_t)y[r];
    *sum &= 0xffffff; /* what the claims' sums, each modulo 2^24, keep of the whole */
    return RYZ_OK;
}

/* ---- data movement: host memory, so plain copies ---- */

static ryz_status cpu_upload(void *ctx, void *dst, const void *host_src, size_t bytes) {
    (void)ctx;
    if (bytes) memcpy(dst, host_src, bytes);
    return RYZ_OK;
}

static ryz_status cpu_download(void *ctx, void *host_dst, const void *src, size_t bytes) {
    return cpu_upload(ctx, host_dst, src, bytes);
}

static void cpu_copy_rows(void *ctx, void *dst, size_t dst_pitch, const void *src,
                          size_t src_pitch, size_t width, size_t rows) {
    (void)ctx;
    for (size_t r = 0; r < rows; r++)
        memcpy((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch, width);
}

static void cpu_embedding(void *ctx, float *x, const int *tokens, int n, const float *emb,
                          int vocab_start, int vocab_local, int dim) {
    (void)ctx;
    for (int r = 0; r < n; r++) {
        float *xr = x + (size_t)r * dim;
        int local = tokens[r] - vocab_start;
        if (local >= 0 && local < vocab_local)
            memcpy(xr, emb + (size_t)local * dim, (size_t)dim * sizeof(float));
        else
            memset(xr, 0, (size_t)dim * sizeof(float));
    }
}

static void cpu_argmax(void *ctx, int *idx, const float *x, int rows, int n, int ld) {
    (void)ctx;
    for (int r = 0; r < rows; r++) idx[r] = ryz_argmax(x + (size_t)r * ld, n);
}

static void cpu_mask_cols(void *ctx, float *x, int rows, int col0, int ld) {
    (void)ctx;
    for (int r = 0; r < rows; r++)
        for (int v = col0; v < ld; v++) x[(size_t)r * ld + v] = -INFINITY;
}

/* Every op has finished when it returns, and none can fail. (A late GEMV
 * worker may still read a matmul's inputs: free and destroy wait for it,
 * not the step's sync, which would wait for it once a token.) */
static ryz_status cpu_sync(void *ctx) {
    (void)ctx;
    return RYZ_OK;
}

static void cpu_mem_usage(void *ctx, ryz_mem_kind kind, size_t *live, size_t *peak) {
    (void)ctx;
    *live = ryz_mem_bytes(kind);
    *peak = ryz_mem_peak(kind);
}

static void cpu_destroy(void *ctx) {
    cpu_ctx *c = ctx;
    ryz_pool_free(c->pool);
    ryz_rows_free(c->rows);
    ryz_mem_free(c->wide);
    ryz_mem_free(c->scores);
    ryz_mem_free(c->xperm);
    ryz_mem_free(c->attn_part);
    ryz_mem_free(c->probe_y);
    free(c);
}

static const ryz_backend_iface cpu_iface = {
    .name = "cpu",
    .host_visible = 1,
    .bf16_layout = RYZ_BF16_ROWS,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .matmul = cpu_matmul,
    .matmul_bf16 = cpu_matmul_bf16,
    .rmsnorm = cpu_rmsnorm,
    .add_rmsnorm = cpu_add_rmsnorm,
    .rope = cpu_rope,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .attention = cpu_attention,
    .rope_cache = cpu_rope_cache,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy_rows = cpu_copy_rows,
    .embedding = cpu_embedding,
    .argmax = cpu_argmax,
    .mask_cols = cpu_mask_cols,
    .sync = cpu_sync,
    .read_probe = cpu_read_probe,
    .mem_usage = cpu_mem_usage,
    .destroy = cpu_destroy,
};

ryz_status ryz_backend_init_cpu(int threads, ryz_backend *out) {
    *out = (ryz_backend){0};
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) return ryz_error(RYZ_ENOMEM, "out of memory for the cpu backend");
    ryz_status st = ryz_pool_create(threads, &c->pool);
    if (st == RYZ_OK && (st = ryz_rows_create(c->pool, &c->rows)) != RYZ_OK)
        ryz_pool_free(c->pool);
    if (st != RYZ_OK) {
        free(c);
        return st;
    }
    /* OpenBLAS only ever runs inside one of the pool's threads, so the
     * process has `threads` busy threads whatever the op: at 2 threads a
     * 256-token prefill ran 0.88-0.97x the time of OpenBLAS's own
     * threading (docs/performance.md). Its serial and OpenMP builds are
     * not safe to call from several threads at once: one thread then. */
    openblas_set_num_threads(1);
    c->blas_threads = openblas_get_parallel() == 1 ? threads : 1;
    *out = (ryz_backend){.iface = &cpu_iface, .ctx = c};
    return RYZ_OK;
}
