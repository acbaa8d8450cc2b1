/* The CPU backend's numeric kernels (cpu_kernels.h): the decode GEMV rows,
 * decode attention, softmax, silu_mul and rmsnorm's two passes, each
 * scalar and, where a decode step's profile showed the loop, AVX2; and
 * bf16 packing and widening. cpu.c picks among them and owns the threads,
 * the scratch memory and BLAS. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "cpu_kernels.h"

void cpu_gemv_f32_scalar(float *y, const float *x, const void *wv, int in, int out, int o0,
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
void cpu_gemv_bf16_scalar(float *y, const float *x, const void *wv, int in, int out, int o0,
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
void cpu_attn_scores_scalar(float *scores, const float *q, const float *K, int L, int hd,
                            int kvdim, float scale) {
    for (int l = 0; l < L; l++) {
        float a = 0.0f;
        for (int i = 0; i < hd; i++) a += q[i] * K[(size_t)l * kvdim + i];
        scores[l] = scale * a;
    }
}

/* o = sum over l of p[l] * V[l] (hd floats). */
void cpu_attn_mix_scalar(float *o, const float *p, const float *V, int L, int hd, int kvdim) {
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

#if defined(__x86_64__)
/* Widens n bf16 to fp32, n % 16 == 0, 16 at a time: AVX2 only, the
 * caller checks cpu_have_avx2(). */
static void bf16_widen_avx2(float *dst, const uint16_t *s, size_t n);
#endif

/* Rows [o0, o0 + rows) of a row-major bf16 matrix (in columns) widened to
 * fp32. With AVX2 16 at a time, 1.2-1.4x the rate of one at a time: once
 * sgemm ran on OpenBLAS's SkylakeX kernels, bf16 prefill, which widens
 * where f32 prefill does not, ran 13 % slower than f32's (docs/
 * performance.md, session 25). */
void cpu_bf16_unpack_rows(float *dst, const uint16_t *w, int o0, int rows, int in) {
    const uint16_t *s = w + (size_t)o0 * in;
    size_t n = (size_t)rows * in, e = 0;
#if defined(__x86_64__)
    if (cpu_have_avx2()) {
        e = n & ~(size_t)15;
        bf16_widen_avx2(dst, s, e);
    }
#endif
    for (; e < n; e++) dst[e] = ryz_f32_from_bf16(s[e]);
}

/* x reordered for cpu_gemv_bf16_avx2: in each block of 16, elements 4..7 and
 * 8..11 trade places (the lane order of unpacklo/unpackhi). */
void cpu_bf16_permute_x(float *xp, const float *x, int in) {
    for (int b = 0; b < in; b += 16) {
        memcpy(xp + b, x + b, 4 * sizeof *x);
        memcpy(xp + b + 4, x + b + 8, 4 * sizeof *x);
        memcpy(xp + b + 8, x + b + 4, 4 * sizeof *x);
        memcpy(xp + b + 12, x + b + 12, 4 * sizeof *x);
    }
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

void cpu_silu_mul_scalar(float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = a[i];
        a[i] = v / (1.0f + expf(-v)) * b[i];
    }
}

/* Sum of squares of x[0..n); with r not NULL, of x + r, which it stores
 * to xr (x itself in add_rmsnorm): the residual add fused into the norm's
 * read. */
float cpu_sumsq_scalar(const float *x, const float *r, float *xr, int n) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) {
        float v = r ? (xr[i] = x[i] + r[i]) : x[i];
        ss += v * v;
    }
    return ss;
}

/* y = w * (scale * x), element by element (y may be x). */
void cpu_norm_scale_scalar(float *y, const float *x, const float *w, float scale, int n) {
    for (int i = 0; i < n; i++) y[i] = w[i] * (scale * x[i]);
}

void cpu_vec_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Bytes ahead of each of the bf16 GEMV's four streams that it prefetches
 * (prefetcht0), or 0 for none; -1 until the first GEMV asks
 * (bf16_prefetch_bytes). */
static atomic_int bf16_prefetch = -1;

int ryz_test_set_bf16_prefetch(int bytes) {
    return atomic_exchange(&bf16_prefetch, bytes);
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
AVX2 void cpu_gemv_f32_avx2(float *y, const float *x, const void *wv, int in, int out, int o0,
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

/* 16 bf16 weights at p times x, into one row's accumulators: a takes
 * weights 0-3 and 8-11 (the low half of each 128-bit lane), b 4-7 and
 * 12-15. Unpacking against zero puts each weight in the high half of a
 * float (the widening costs no extra op), in the order of 128-bit lanes,
 * which xl/xh (cpu_bf16_permute_x) already follow. Two accumulators halve
 * the chain of dependent FMAs a 16-column step waits on. */
#define BF16_FMA16(p, xl, xh, a, b)                                                       \
    do {                                                                                  \
        __m256i v_ = _mm256_loadu_si256((const __m256i *)(const void *)(p));              \
        a = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v_)), xl, a); \
        b = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v_)), xh, b); \
    } while (0)

/* 1536 on Intel CPUs, 0 elsewhere. On the Intel Xeon of session 25
 * (family 6 model 207), without it the 110m bf16 GEMV chain read 0.875 (1
 * thread) and 0.94 (2) of the f32 chain's bytes per second; 1-2 KiB ahead
 * read it 8-18 % faster (one line ahead, no gain: the prefetch, not the
 * unrolling, does it). On the AMD EPYC of session 24, 2 KiB ahead cost
 * 9 % at 1 thread, so it stays off there (docs/performance.md). */
static int bf16_prefetch_bytes(void) {
    int b = atomic_load_explicit(&bf16_prefetch, memory_order_relaxed);
    if (b >= 0) return b;
    __builtin_cpu_init();
    int unset = -1;
    b = __builtin_cpu_is("intel") ? 1536 : 0;
    if (!atomic_compare_exchange_strong(&bf16_prefetch, &unset, b)) b = unset; /* set meanwhile */
    return b;
}

/* Columns [i, i + 16) of the four rows w0..w3 into their accumulators. */
#define BF16_ROWS4(i)                                                                   \
    do {                                                                                \
        __m256 xl = _mm256_loadu_ps(xp + (i)), xh = _mm256_loadu_ps(xp + (i) + 8);      \
        BF16_FMA16(w0 + (i), xl, xh, a0, b0);                                           \
        BF16_FMA16(w1 + (i), xl, xh, a1, b1);                                           \
        BF16_FMA16(w2 + (i), xl, xh, a2, b2);                                           \
        BF16_FMA16(w3 + (i), xl, xh, a3, b3);                                           \
    } while (0)

/* Rows [o0, o0 + band) of each of the four bands, band rows apart; with
 * pf > 0 (in % 32 == 0) each stream's line pf bytes ahead is prefetched
 * every 32 columns. The same FMAs in the same order either way, so the
 * same bits. */
AVX2 static inline __attribute__((always_inline)) void
gemv_bf16_bands(float *y, const float *xp, const uint16_t *w, int in, int o0, int band, int pf) {
    const __m256i zero = _mm256_setzero_si256();
    size_t step = (size_t)band * in;
    for (int o = o0; o < o0 + band; o++) {
        const uint16_t *w0 = w + (size_t)o * in, *w1 = w0 + step, *w2 = w1 + step, *w3 = w2 + step;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        if (pf > 0) {
            for (int i = 0; i < in; i += 32) {
                _mm_prefetch((const char *)(w0 + i) + pf, _MM_HINT_T0);
                _mm_prefetch((const char *)(w1 + i) + pf, _MM_HINT_T0);
                _mm_prefetch((const char *)(w2 + i) + pf, _MM_HINT_T0);
                _mm_prefetch((const char *)(w3 + i) + pf, _MM_HINT_T0);
                BF16_ROWS4(i);
                BF16_ROWS4(i + 16);
            }
        } else {
            for (int i = 0; i < in; i += 16) BF16_ROWS4(i);
        }
        y[o] = hsum256(_mm256_add_ps(a0, b0)), y[o + band] = hsum256(_mm256_add_ps(a1, b1));
        y[o + 2 * band] = hsum256(_mm256_add_ps(a2, b2));
        y[o + 3 * band] = hsum256(_mm256_add_ps(a3, b3));
    }
}

/* Decode GEMV with row-major bf16 weights (in % 16 == 0), x permuted by
 * cpu_bf16_permute_x: the fp32 kernel's shape, rows [o0, o1) in four bands
 * read side by side, one row of each per pass, so W is four long
 * sequential streams while x stays in L1, prefetched ahead on Intel
 * (bf16_prefetch_bytes). In the model, timed call by
 * call against three bands of tiled row groups (the layout cuda keeps),
 * it read 1.02-1.06x faster at 1 and 2 threads, and eight bands no faster
 * (docs/performance.md, session 19). With one accumulator per row, the
 * kernel reads at most 49 GB/s per core from L2 (60 with two); at
 * DRAM's rates here the two read the same, and on a model that reads
 * faster (in and near the L3) two read 1-3 % faster (session 24). */
AVX2 void cpu_gemv_bf16_avx2(float *y, const float *xp, const void *wv, int in, int out,
                             int o0, int o1) {
    const uint16_t *w = wv;
    const __m256i zero = _mm256_setzero_si256();
    int band = (o1 - o0) / 4, pf = in % 32 == 0 ? bf16_prefetch_bytes() : 0;
    (void)out;
    if (pf > 0) gemv_bf16_bands(y, xp, w, in, o0, band, pf);
    else gemv_bf16_bands(y, xp, w, in, o0, band, 0); /* inlined with pf 0: no branch per row */
    for (int o = o0 + 4 * band; o < o1; o++) { /* summed as a band's row is */
        __m256 a = _mm256_setzero_ps(), b = a;
        for (int i = 0; i < in; i += 16)
            BF16_FMA16(w + (size_t)o * in + i, _mm256_loadu_ps(xp + i), _mm256_loadu_ps(xp + i + 8),
                       a, b);
        y[o] = hsum256(_mm256_add_ps(a, b));
    }
}

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

/* One turn of rows ls[0..nr) of job j: their scores (phase 0), or o +=
 * p V over them (phase 1). */
AVX2 static inline __attribute__((always_inline)) void
attn_turn(const cpu_attn_decode_job *j, float *o, const int *ls, int nr) {
    if (j->phase == 0) attn_scores_rows(j->s, j->q, j->kc, ls, nr, j->L, j->g, j->scale);
    else attn_mix_rows(o, j->s, j->vc, ls, nr, j->L, j->g);
}

/* Chunk c of job j (a ryz_chunk_fn): its rows in ATTN_BANDS bands, then
 * the rows left one by one; in phase 1 into its partial output, zeroed
 * first. */
AVX2 static void attn_chunk(void *arg, int c) {
    const cpu_attn_decode_job *j = arg;
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
AVX2 void cpu_attn_decode_avx2(ryz_pool *pool, cpu_attn_decode_job *j) {
    j->phase = 0;
    ryz_pool_run_chunks(pool, attn_chunk, j, j->chunks);
    for (int h = 0; h < j->g->heads; h++) cpu_softmax_masked(j->s + (size_t)h * j->L, j->L, j->L);
    j->phase = 1;
    ryz_pool_run_chunks(pool, attn_chunk, j, j->chunks);
    size_t qdim = (size_t)j->g->heads * j->g->head_dim;
    for (int c = 1; c < j->chunks; c++) cpu_vec_add(j->out, j->part + (c - 1) * qdim, qdim);
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

/* cpu_silu_mul_scalar 8 at a time: a decode step of 110m runs 24576 of them,
 * and expf one by one was about 2 % of a bf16 token. silu(v) = v / (1 +
 * e) for v >= 0 and v e / (1 + e) below, with e = e^-|v| <= 1, so nothing
 * overflows: where e underflows silu is v, or -0 (|silu| < 1e-36 there);
 * NaN and -inf give NaN, +inf gives +inf, as the scalar loop does. */
AVX2 void cpu_silu_mul_avx2(float *a, const float *b, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(a + i);
        __m256 e = exp256_neg(_mm256_or_ps(v, sign)); /* e^-|v| */
        __m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
        __m256 f = _mm256_div_ps(_mm256_blendv_ps(e, one, pos), _mm256_add_ps(one, e));
        _mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_mul_ps(v, f), _mm256_loadu_ps(b + i)));
    }
    cpu_silu_mul_scalar(a + i, b + i, n - i);
}

/* The largest of v's lanes (a NaN lane may or may not win). */
AVX2 static float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

/* cpu_sumsq_scalar 8 lanes at a time (n % 8 == 0): one chain of dependent
 * adds was most of an rmsnorm, 0.8 % of a bf16 token of 110m (perf). */
AVX2 float cpu_sumsq_avx2(const float *x, const float *r, float *xr, int n) {
    __m256 a = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        if (r) _mm256_storeu_ps(xr + i, v = _mm256_add_ps(v, _mm256_loadu_ps(r + i)));
        a = _mm256_fmadd_ps(v, v, a);
    }
    return hsum256(a);
}

AVX2 void cpu_norm_scale_avx2(float *y, const float *x, const float *w, float scale, int n) {
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

/* Each bf16 goes to the high half of its float: unpacking against zero
 * interleaves within 128-bit lanes, so the two 8-float halves are put
 * back in order by a permute of lanes. */
AVX2 static void bf16_widen_avx2(float *dst, const uint16_t *s, size_t n) {
    const __m256i zero = _mm256_setzero_si256();
    for (size_t e = 0; e < n; e += 16) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(s + e));
        __m256i lo = _mm256_unpacklo_epi16(zero, v), hi = _mm256_unpackhi_epi16(zero, v);
        _mm256_storeu_si256((__m256i *)(void *)(dst + e), _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256((__m256i *)(void *)(dst + e + 8),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
    }
}

int cpu_have_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
int cpu_have_avx2(void) {
    return 0;
}
#define softmax_avx2 softmax_scalar
#endif

/* Softmax of x[0..n) in place; x[n..len) set to zero (causal mask). */
void cpu_softmax_masked(float *x, int n, int len) {
    (cpu_have_avx2() ? softmax_avx2 : softmax_scalar)(x, n);
    for (int i = n; i < len; i++) x[i] = 0.0f;
}
