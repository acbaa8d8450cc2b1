/* The CPU backend: single-threaded OpenBLAS sgemm on each of the
 * backend's own threads for prefill, an AVX2 GEMV on the same threads for
 * decode (fp32 or bf16 weights), the rest in llama2.c's math (8 lanes
 * at a time where a loop showed in a decode step's profile). Its memory
 * is the host's, so the data-movement ops are plain copies. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* x reordered for gemv_bf16_avx2: in each block of 16, elements 4..7 and
 * 8..11 trade places (the lane order of unpacklo/unpackhi). */
static void bf16_permute_x(float *xp, const float *x, int in) {
    for (int b = 0; b < in; b += 16) {
        memcpy(xp + b, x + b, 4 * sizeof *x);
        memcpy(xp + b + 4, x + b + 8, 4 * sizeof *x);
        memcpy(xp + b + 8, x + b + 4, 4 * sizeof *x);
        memcpy(xp + b + 12, x + b + 12, 4 * sizeof *x);
    }
}

/* One GEMV over rows [o0, o1) of W (out, in): y[o] = W[o] . x. The
 * kernels split [o0, o1) into four bands and take any leftover rows one
 * by one after them; the threads' claims are multiples of 4 rows (o1 one
 * too, or out), so the bands take them all. */
typedef ryz_rows_fn gemv_rows_fn;

static void *cpu_alloc(void *ctx, ryz_mem_kind kind, size_t bytes) {
    (void)ctx;
    return ryz_mem_alloc(kind, bytes, 1);
}

static void cpu_free(void *ctx, void *p) {
    cpu_ctx *c = ctx;
    ryz_pool_quiesce(c->pool); /* a late GEMV worker may still read p (matmul) */
    ryz_mem_free(p);
}

static void gemv_f32_scalar(float *y, const float *x, const void *wv, int in, int out, int o0,
                            int o1) {
    const float *w = wv;
    (void)out;
    for (int o = o0; o < o1; o++) {
        float a = 0.0f;
        for (int i = 0; i < in; i++) a += w[(size_t)o * in + i] * x[i];
        y[o] = a;
    }
}

/* bf16 weights here are row-major (cpu_iface.bf16_layout). */
static void gemv_bf16_scalar(float *y, const float *x, const void *wv, int in, int out, int o0,
                             int o1) {
    const uint16_t *w = wv;
    (void)out;
    for (int o = o0; o < o1; o++) {
        float a = 0.0f;
        for (int i = 0; i < in; i++) a += ryz_f32_from_bf16(w[(size_t)o * in + i]) * x[i];
        y[o] = a;
    }
}

/* Decode attention of one head over L cached positions (rows kvdim
 * apart): scores[l] = scale * q . K[l]. */
static void attn_scores_scalar(float *scores, const float *q, const float *K, int L, int hd,
                               int kvdim, float scale) {
    for (int l = 0; l < L; l++) {
        float a = 0.0f;
        for (int i = 0; i < hd; i++) a += q[i] * K[(size_t)l * kvdim + i];
        scores[l] = scale * a;
    }
}

/* o = sum over l of p[l] * V[l] (hd floats). */
static void attn_mix_scalar(float *o, const float *p, const float *V, int L, int hd, int kvdim) {
    for (int i = 0; i < hd; i++) o[i] = 0.0f;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < hd; i++) o[i] += p[l] * V[(size_t)l * kvdim + i];
}

void ryz_bf16_pack_rows(ryz_bf16_layout l, uint16_t *dst, const float *src, int row0, int nrows,
                        int in, int out) {
    for (int r = 0; r < nrows; r++)
        for (int i = 0; i < in; i++)
            dst[ryz_bf16_index(l, row0 + r, i, in, out)] =
                ryz_bf16_from_f32(src[(size_t)r * in + i]);
}

/* Rows [o0, o0 + rows) of a row-major bf16 matrix (in columns) widened to
 * fp32. */
static void bf16_unpack_rows(float *dst, const uint16_t *w, int o0, int rows, int in) {
    const uint16_t *s = w + (size_t)o0 * in;
    for (size_t e = 0; e < (size_t)rows * in; e++) dst[e] = ryz_f32_from_bf16(s[e]);
}

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Decode GEMV rows [o0, o1), in % 8 == 0. The rows split into four
 * bands read side by side, one row of each per pass, so W is four long
 * sequential streams while x stays in L1: on the development VM four
 * streams read 1.3x faster than one, and four interleaved rows of one
 * band (streams 3 KiB long, restarting at every row group) only reached
 * 68-87 % of that (docs/performance.md). Each row is summed in the same
 * order whatever its band. */
AVX2 static void gemv_f32_avx2(float *y, const float *x, const void *wv, int in, int out, int o0,
                               int o1) {
    const float *w = wv;
    int band = (o1 - o0) / 4, o = o0;
    size_t step = (size_t)band * in;
    (void)out;
    for (; o < o0 + band; o++) {
        const float *w0 = w + (size_t)o * in, *w1 = w0 + step, *w2 = w1 + step, *w3 = w2 + step;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < in; i += 8) {
            __m256 xv = _mm256_loadu_ps(x + i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
        }
        y[o] = hsum256(a0), y[o + band] = hsum256(a1);
        y[o + 2 * band] = hsum256(a2), y[o + 3 * band] = hsum256(a3);
    }
    for (o = o0 + 4 * band; o < o1; o++) {
        __m256 a = _mm256_setzero_ps();
        for (int i = 0; i < in; i += 8)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(w + (size_t)o * in + i), _mm256_loadu_ps(x + i), a);
        y[o] = hsum256(a);
    }
}

/* 16 bf16 weights at p times x, into one row's accumulator a: unpacking
 * against zero puts each weight in the high half of a float (the widening
 * costs no extra op), in the order of 128-bit lanes, which xl/xh
 * (bf16_permute_x) already follow. */
#define BF16_FMA16(p, xl, xh, a)                                                          \
    do {                                                                                  \
        __m256i v_ = _mm256_loadu_si256((const __m256i *)(const void *)(p));              \
        a = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v_)), xl, a); \
        a = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v_)), xh, a); \
    } while (0)

/* Decode GEMV with row-major bf16 weights (in % 16 == 0), x permuted by
 * bf16_permute_x: the fp32 kernel's shape, rows [o0, o1) in four bands
 * read side by side, one row of each per pass, so W is four long
 * sequential streams while x stays in L1. In the model, timed call by
 * call against three bands of tiled row groups (the layout cuda keeps),
 * it read 1.02-1.06x faster at 1 and 2 threads, and eight bands or two
 * accumulators per row no faster (docs/performance.md). */
AVX2 static void gemv_bf16_avx2(float *y, const float *xp, const void *wv, int in, int out,
                                int o0, int o1) {
    const uint16_t *w = wv;
    const __m256i zero = _mm256_setzero_si256();
    int band = (o1 - o0) / 4, o = o0;
    size_t step = (size_t)band * in;
    (void)out;
    for (; o < o0 + band; o++) {
        const uint16_t *w0 = w + (size_t)o * in, *w1 = w0 + step, *w2 = w1 + step, *w3 = w2 + step;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < in; i += 16) {
            __m256 xl = _mm256_loadu_ps(xp + i), xh = _mm256_loadu_ps(xp + i + 8);
            BF16_FMA16(w0 + i, xl, xh, a0);
            BF16_FMA16(w1 + i, xl, xh, a1);
            BF16_FMA16(w2 + i, xl, xh, a2);
            BF16_FMA16(w3 + i, xl, xh, a3);
        }
        y[o] = hsum256(a0), y[o + band] = hsum256(a1);
        y[o + 2 * band] = hsum256(a2), y[o + 3 * band] = hsum256(a3);
    }
    for (o = o0 + 4 * band; o < o1; o++) {
        __m256 a = _mm256_setzero_ps();
        for (int i = 0; i < in; i += 16)
            BF16_FMA16(w + (size_t)o * in + i, _mm256_loadu_ps(xp + i), _mm256_loadu_ps(xp + i + 8),
                       a);
        y[o] = hsum256(a);
    }
}

static void softmax_masked(float *x, int n, int len);
static void cpu_add(void *ctx, float *x, const float *y, size_t n);

/* Decode attention reads the cache as ATTN_BANDS row streams side by
 * side, the way the GEMV reads W: rows [0, 4 band) in four bands of band
 * rows (row j of each band in turn), then the rows left one by one. ls[0..
 * nr) are the rows of one turn; nr is 4 or 1, a constant where these are
 * inlined, and EACH_ROW(nr) unrolls the loops over them so that the rows'
 * accumulators and pointers stay in registers (GCC at -O2 kept them in
 * arrays on the stack, and the four-row kernel ran 1.35x slower than one
 * row at a time). */
#define ATTN_BANDS 4
#define EACH_ROW(nr) _Pragma("GCC unroll 4") for (int b = 0; b < (nr); b++)

/* p[b]: cache row ls[b] at the first KV head g's heads read. */
AVX2 static inline __attribute__((always_inline)) void
attn_kv_rows(const float **p, const float *cache, const int *ls, int nr, const ryz_attn_geom *g) {
    size_t kvdim = (size_t)g->kv_heads * g->head_dim;
    size_t kv0 = (size_t)(g->head_start / g->kv_mul - g->kv_start) * g->head_dim;
    EACH_ROW(nr) p[b] = cache + (size_t)ls[b] * kvdim + kv0;
}

/* Whether the head after this one reads the next KV head; *r counts the
 * heads of the group so far (from head_start % kv_mul). */
static inline int attn_next_kv(int *r, const ryz_attn_geom *g) {
    if (++*r < g->kv_mul) return 0;
    *r = 0;
    return 1;
}

/* Scores of rows ls[0..nr) for every head: s[h L + l] = scale (q_h . K_l),
 * each in 8-lane partial sums over the head, then the lanes. */
AVX2 static inline __attribute__((always_inline)) void
attn_scores_rows(float *s, const float *q, const float *kc, const int *ls, int nr, int L,
                 const ryz_attn_geom *g, float scale) {
    int hd = g->head_dim;
    const float *K[ATTN_BANDS];
    attn_kv_rows(K, kc, ls, nr, g);
    for (int h = 0, r = g->head_start % g->kv_mul; h < g->heads; h++) {
        __m256 a[ATTN_BANDS];
        EACH_ROW(nr) a[b] = _mm256_setzero_ps();
        for (int i = 0; i < hd; i += 8) {
            __m256 qv = _mm256_loadu_ps(q + h * hd + i);
            EACH_ROW(nr) a[b] = _mm256_fmadd_ps(_mm256_loadu_ps(K[b] + i), qv, a[b]);
        }
        EACH_ROW(nr) s[(size_t)h * L + ls[b]] = scale * hsum256(a[b]);
        if (attn_next_kv(&r, g)) EACH_ROW(nr) K[b] += hd;
    }
}

/* out += p V over rows ls[0..nr), p the rows' softmaxed scores in s. */
AVX2 static inline __attribute__((always_inline)) void
attn_mix_rows(float *out, const float *s, const float *vc, const int *ls, int nr, int L,
              const ryz_attn_geom *g) {
    int hd = g->head_dim;
    const float *V[ATTN_BANDS];
    attn_kv_rows(V, vc, ls, nr, g);
    for (int h = 0, r = g->head_start % g->kv_mul; h < g->heads; h++) {
        float *o = out + h * hd;
        __m256 p[ATTN_BANDS];
        EACH_ROW(nr) p[b] = _mm256_set1_ps(s[(size_t)h * L + ls[b]]);
        for (int i = 0; i < hd; i += 8) {
            __m256 acc = _mm256_loadu_ps(o + i);
            EACH_ROW(nr) acc = _mm256_fmadd_ps(p[b], _mm256_loadu_ps(V[b] + i), acc);
            _mm256_storeu_ps(o + i, acc);
        }
        if (attn_next_kv(&r, g)) EACH_ROW(nr) V[b] += hd;
    }
}

/* One decode attention: phase 0 computes the scores, phase 1 the products
 * with V. Its rows split into `chunks` chunks (1, or from ATTN_SPLIT_L
 * cached rows on ATTN_CHUNKS) that the pool's threads claim: scores, then
 * each chunk's products into its own partial output (chunk 0's is out,
 * chunk c's part + (c - 1) heads hd), summed in chunk order, so the result
 * is the same bits at any thread count. Timed alone at 2 threads over 24
 * layers' caches, 4 chunks read 1.3-1.6x faster than one thread from L =
 * 128 on, as fast at L = 48 and 1.7x slower at L = 16; split by heads
 * instead (each thread half of every row), 1.3-1.7x slower
 * (docs/performance.md). */
#define ATTN_CHUNKS 4
#define ATTN_SPLIT_L 128
typedef struct {
    float *out, *part, *s;
    const float *q, *kc, *vc;
    const ryz_attn_geom *g;
    int L, chunks, phase;
    float scale;
} attn_decode_job;

/* One turn of rows ls[0..nr) of job j: their scores (phase 0), or o +=
 * p V over them (phase 1). */
AVX2 static inline __attribute__((always_inline)) void
attn_turn(const attn_decode_job *j, float *o, const int *ls, int nr) {
    if (j->phase == 0) attn_scores_rows(j->s, j->q, j->kc, ls, nr, j->L, j->g, j->scale);
    else attn_mix_rows(o, j->s, j->vc, ls, nr, j->L, j->g);
}

/* Chunk c of job j (a ryz_chunk_fn): its rows in ATTN_BANDS bands, then
 * the rows left one by one; in phase 1 into its partial output, zeroed
 * first. */
AVX2 static void attn_chunk(void *arg, int c) {
    const attn_decode_job *j = arg;
    int l0 = j->L * c / j->chunks, l1 = j->L * (c + 1) / j->chunks, band = (l1 - l0) / ATTN_BANDS;
    size_t qdim = (size_t)j->g->heads * j->g->head_dim;
    float *o = c == 0 ? j->out : j->part + (size_t)(c - 1) * qdim;
    if (j->phase == 1) memset(o, 0, qdim * sizeof *o);
    for (int k = 0; k < band; k++) {
        const int ls[ATTN_BANDS] = {l0 + k, l0 + band + k, l0 + 2 * band + k, l0 + 3 * band + k};
        attn_turn(j, o, ls, ATTN_BANDS);
    }
    for (int l = l0 + ATTN_BANDS * band; l < l1; l++) attn_turn(j, o, &l, 1);
}

/* Decode attention (one new row at position L - 1) over every head at
 * once, hd % 8 == 0: the cached K rows, then the V rows, are read whole
 * (a row holds every head's slice; a pass per head read pieces of hd
 * floats kvdim apart) in ATTN_BANDS streams, chunk by chunk. s (heads, L)
 * holds each head's scores (q . k times scale, the same bits as one row
 * at a time), then their softmax. Each output element sums its rows in the
 * bands' turn order, not 0..L-1. Against one row at a time, timed over 24
 * layers' caches on one thread: 1.5x (L = 48, in L3) to 1.9x (4 KV heads)
 * faster (docs/performance.md). */
AVX2 static void attn_decode_avx2(ryz_pool *pool, attn_decode_job *j) {
    j->phase = 0;
    ryz_pool_run_chunks(pool, attn_chunk, j, j->chunks);
    for (int h = 0; h < j->g->heads; h++) softmax_masked(j->s + (size_t)h * j->L, j->L, j->L);
    j->phase = 1;
    ryz_pool_run_chunks(pool, attn_chunk, j, j->chunks);
    size_t qdim = (size_t)j->g->heads * j->g->head_dim;
    for (int c = 1; c < j->chunks; c++) cpu_add(NULL, j->out, j->part + (c - 1) * qdim, qdim);
}

/* e^x for 8 floats x <= 0: Cephes' expf (2^n times a degree-5 polynomial
 * of the remainder, as in avx_mathfun), within a few ulp of expf down to
 * about -87.3, then denormal, and 0 below -87.68 (expf's denormals there
 * are under 2e-38). A NaN stays NaN (max returns its second operand on
 * NaN). */
AVX2 static __m256 exp256_neg(__m256 x) {
    x = _mm256_max_ps(_mm256_set1_ps(-88.3762626647949f), x);
    __m256 n = _mm256_floor_ps(
        _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x); /* ln 2, split in two */
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(x, x), x), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

static void silu_mul_scalar(float *a, const float *b, size_t n);

/* silu_mul_scalar 8 at a time: a decode step of 110m runs 24576 of them,
 * and expf one by one was about 2 % of a bf16 token. silu(v) = v / (1 +
 * e) for v >= 0 and v e / (1 + e) below, with e = e^-|v| <= 1, so nothing
 * overflows: where e underflows silu is v, or -0 (|silu| < 1e-36 there);
 * NaN and -inf give NaN, +inf gives +inf, as the scalar loop does. */
AVX2 static void silu_mul_avx2(float *a, const float *b, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(a + i);
        __m256 e = exp256_neg(_mm256_or_ps(v, sign)); /* e^-|v| */
        __m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
        __m256 f = _mm256_div_ps(_mm256_blendv_ps(e, one, pos), _mm256_add_ps(one, e));
        _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_mul_ps(v, f), _mm256_loadu_ps(b + i)));
    }
    silu_mul_scalar(a + i, b + i, n - i);
}

/* The largest of v's lanes (a NaN lane may or may not win). */
AVX2 static float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

/* sumsq_scalar 8 lanes at a time (n % 8 == 0): one chain of dependent
 * adds was most of an rmsnorm, 0.8 % of a bf16 token of 110m (perf). */
AVX2 static float sumsq_avx2(const float *x, const float *r, float *xr, int n) {
    __m256 a = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        if (r) _mm256_storeu_ps(xr + i, v = _mm256_add_ps(v, _mm256_loadu_ps(r + i)));
        a = _mm256_fmadd_ps(v, v, a);
    }
    return hsum256(a);
}

AVX2 static void norm_scale_avx2(float *y, const float *x, const float *w, float scale, int n) {
    __m256 s = _mm256_set1_ps(scale);
    for (int i = 0; i < n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(w + i),
                                              _mm256_mul_ps(s, _mm256_loadu_ps(x + i))));
}

/* softmax_scalar 8 at a time: x - max <= 0 suits exp256_neg, and expf one
 * by one was a third of decode attention's time past the cache reads. */
AVX2 static void softmax_avx2(float *x, int n) {
    int v = n & ~7, i;
    __m256 m = _mm256_set1_ps(x[0]), sum = _mm256_setzero_ps();
    for (i = 0; i < v; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float max = hmax256(m), tail = 0.0f;
    for (i = v; i < n; i++) max = x[i] > max ? x[i] : max;
    for (i = 0; i < v; i += 8) {
        __m256 e = exp256_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(max)));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    for (i = v; i < n; i++) tail += x[i] = expf(x[i] - max);
    float total = hsum256(sum) + tail;
    __m256 d = _mm256_set1_ps(total);
    for (i = 0; i < v; i += 8) _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), d));
    for (i = v; i < n; i++) x[i] /= total;
}

static int have_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static int have_avx2(void) {
    return 0;
}
#define gemv_f32_avx2 gemv_f32_scalar
#define gemv_bf16_avx2 gemv_bf16_scalar
#define silu_mul_avx2 silu_mul_scalar
#define sumsq_avx2 sumsq_scalar
#define norm_scale_avx2 norm_scale_scalar
#define softmax_avx2 softmax_scalar
#endif

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
 * at 2 threads: 24 rows, 72 KiB of fp32). */
#define GEMV_TAIL_CLAIMS 16

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
static void gemv(cpu_ctx *c, gemv_rows_fn fn, float *y, const float *x, const void *w, int in,
                 int out) {
    int n = ryz_pool_threads(c->pool), per = n * GEMV_TAIL_CLAIMS;
    if (n == 1 || out < GEMV_MIN_ROWS_PER_THREAD * n) {
        fn(y, x, w, in, out, 0, out);
        return;
    }
    ryz_rows_run(c->rows, fn, y, x, w, in, out, ((out + per - 1) / per + 3) & ~3);
}

static gemv_rows_fn gemv_f32_kernel(int in) {
    return have_avx2() && in % 8 == 0 ? gemv_f32_avx2 : gemv_f32_scalar;
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
        bf16_unpack_rows(wide, j->w, o0, rb, j->in);
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
        float *xp = in % 16 == 0 && have_avx2()
                        ? scratch_grow(c, &c->xperm, &c->xperm_floats, (size_t)in) : NULL;
        if (xp) bf16_permute_x(xp, x, in);
        gemv(c, xp ? gemv_bf16_avx2 : gemv_bf16_scalar, y, xp ? xp : x, w, in, out);
        return;
    }
    band_of(out, 0, nt, &r0, &r1); /* the largest band */
    size_t bands = (size_t)nt * (size_t)(r1 - r0) * (size_t)in;
    size_t want = bands < WIDE_FLOATS ? bands : WIDE_FLOATS;
    if (want < (size_t)nt * in) want = (size_t)nt * in; /* a row per thread at least */
    if (!scratch_grow(c, &c->wide, &c->wide_floats, want)) { /* out of memory: slow but right */
        for (int r = 0; r < n; r++)
            gemv_bf16_scalar(y + (size_t)r * out, x + (size_t)r * in, w, in, out, 0, out);
        return;
    }
    sgemm_job j = {.y = y, .x = x, .w = w, .wide = c->wide, .n = n, .in = in, .out = out,
                   .wide_rows = (int)(c->wide_floats / nt / (size_t)in)};
    blas_run(c, sgemm_part, &j);
}

/* Sum of squares of x[0..n); with r not NULL, of x + r, which it stores
 * to xr (x itself in add_rmsnorm): the residual add fused into the norm's
 * read. */
static float sumsq_scalar(const float *x, const float *r, float *xr, int n) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) {
        float v = r ? (xr[i] = x[i] + r[i]) : x[i];
        ss += v * v;
    }
    return ss;
}

/* y = w * (scale * x), element by element (y may be x). */
static void norm_scale_scalar(float *y, const float *x, const float *w, float scale, int n) {
    for (int i = 0; i < n; i++) y[i] = w[i] * (scale * x[i]);
}

/* y = rmsnorm(x) row by row; with r not NULL, x + r is stored to xr and
 * normalised instead. */
static void rmsnorm_rows(float *y, const float *x, const float *r, float *xr, const float *w,
                         int n, int dim, float eps) {
    int vec = dim % 8 == 0 && have_avx2();
    for (size_t t = 0, at = 0; t < (size_t)n; t++, at += (size_t)dim) {
        const float *rt = r ? r + at : NULL;
        float *xt = r ? xr + at : NULL;
        float ss = (vec ? sumsq_avx2 : sumsq_scalar)(x + at, rt, xt, dim);
        float scale = 1.0f / sqrtf(ss / (float)dim + eps);
        (vec ? norm_scale_avx2 : norm_scale_scalar)(y + at, r ? xt : x + at, w, scale, dim);
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

static void silu_mul_scalar(float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = a[i];
        a[i] = v / (1.0f + expf(-v)) * b[i];
    }
}

static void cpu_silu_mul(void *ctx, float *a, const float *b, size_t n) {
    (void)ctx;
    (have_avx2() ? silu_mul_avx2 : silu_mul_scalar)(a, b, n);
}

static void cpu_add(void *ctx, float *x, const float *y, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

static void cpu_add_rmsnorm(void *ctx, float *y, float *x, const float *r, const float *w, int n,
                            int dim, float eps) {
    (void)ctx;
    rmsnorm_rows(y, x, r, x, w, n, dim, eps);
}

/* Softmax of x[0..n) in place, n >= 1. */
static void softmax_scalar(float *x, int n) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

/* Softmax of x[0..n) in place; x[n..len) set to zero (causal mask). */
static void softmax_masked(float *x, int n, int len) {
    (have_avx2() ? softmax_avx2 : softmax_scalar)(x, n);
    for (int i = n; i < len; i++) x[i] = 0.0f;
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
        attn_scores_scalar(scores, Q, K, L, hd, kvdim, scale);
        softmax_masked(scores, L, L);
        attn_mix_scalar(O, scores, V, L, hd, kvdim);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, hd, scale, Q, qdim, K, kvdim, 0.0f,
                scores, L);
    for (int t = 0; t < T; t++) softmax_masked(scores + (size_t)t * L, pos0 + t + 1, L);
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
 * ATTN_SPLIT_L rows on in chunks on the pool's threads); prefill on the
 * pool's threads, one block of scores each (the calling thread's is the
 * op's scratch). */
static void cpu_attention(void *ctx, float *out, const float *q, const float *kc,
                          const float *vc, int T, const int *pos, const ryz_attn_geom *g,
                          float *scores) {
    cpu_ctx *c = ctx;
    int pos0 = *pos, L = pos0 + T, nt = c->blas_threads;
#if defined(__x86_64__)
    int hd = g->head_dim;
    if (T == 1 && hd % 8 == 0 && have_avx2()) {
        attn_decode_job dj = {.out = out, .s = scores, .q = q, .kc = kc, .vc = vc, .g = g, .L = L,
                              .chunks = 1, .scale = 1.0f / sqrtf((float)hd)};
        size_t want = (size_t)(ATTN_CHUNKS - 1) * g->heads * hd;
        if (L >= ATTN_SPLIT_L && /* no memory: one chunk, on this thread */
            (dj.part = scratch_grow(c, &c->attn_part, &c->attn_part_floats, want)))
            dj.chunks = ATTN_CHUNKS;
        attn_decode_avx2(c->pool, &dj);
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
