/* The CPU backend: OpenBLAS sgemm for prefill, sgemv for decode, plain C
 * loops for the rest (llama2.c math). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/backend.h"

void openblas_set_num_threads(int);

static void *cpu_alloc(void *ctx, ryz_mem_kind kind, size_t bytes) {
    (void)ctx;
    return ryz_mem_alloc(kind, bytes, 1);
}

static void cpu_free(void *ctx, void *p) {
    (void)ctx;
    ryz_mem_free(p);
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Decode GEMV y (out) = W (out, in) . x (in), in % 8 == 0: four rows per
 * pass so four independent streams of W are in flight while x stays in L1.
 * Decode is bound by reading W once; this keeps the loads back to back. */
__attribute__((target("avx2,fma"))) static void gemv_avx2(float *y, const float *x,
                                                          const float *w, int in, int out) {
    int o = 0;
    for (; o + 4 <= out; o += 4) {
        const float *w0 = w + (size_t)o * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < in; i += 8) {
            __m256 xv = _mm256_loadu_ps(x + i);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + i), xv, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + i), xv, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + i), xv, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + i), xv, a3);
        }
        y[o] = hsum256(a0), y[o + 1] = hsum256(a1), y[o + 2] = hsum256(a2), y[o + 3] = hsum256(a3);
    }
    for (; o < out; o++) {
        __m256 a = _mm256_setzero_ps();
        for (int i = 0; i < in; i += 8)
            a = _mm256_fmadd_ps(_mm256_loadu_ps(w + (size_t)o * in + i), _mm256_loadu_ps(x + i), a);
        y[o] = hsum256(a);
    }
}
#endif

static void cpu_matmul(void *ctx, float *y, const float *x, const float *w, int n, int in,
                       int out) {
    (void)ctx;
#if defined(__x86_64__)
    if (n == 1 && in % 8 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        gemv_avx2(y, x, w, in, out);
        return;
    }
#endif
    if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 0.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in,
                    0.0f, y, out);
}

static void cpu_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int dim,
                        float eps) {
    (void)ctx;
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        float ss = 0.0f;
        for (int i = 0; i < dim; i++) ss += xr[i] * xr[i];
        float scale = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int i = 0; i < dim; i++) yr[i] = w[i] * (scale * xr[i]);
    }
}

static void cpu_rope(void *ctx, float *x, int n, int heads, int head_dim, int pos0,
                     float base) {
    (void)ctx;
    for (int t = 0; t < n; t++) {
        float *row = x + (size_t)t * heads * head_dim;
        for (int i = 0; i < head_dim; i += 2) {
            float freq = 1.0f / powf(base, (float)i / (float)head_dim);
            float val = (float)(pos0 + t) * freq;
            float fcr = cosf(val), fci = sinf(val);
            for (int h = 0; h < heads; h++) {
                float *v = row + (size_t)h * head_dim + i;
                float v0 = v[0], v1 = v[1];
                v[0] = v0 * fcr - v1 * fci;
                v[1] = v0 * fci + v1 * fcr;
            }
        }
    }
}

static void cpu_silu_mul(void *ctx, float *a, const float *b, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        float v = a[i];
        a[i] = v / (1.0f + expf(-v)) * b[i];
    }
}

static void cpu_add(void *ctx, float *x, const float *y, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Softmax of x[0..n) in place; x[n..len) set to zero (causal mask). */
static void softmax_masked(float *x, int n, int len) {
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
    for (int i = n; i < len; i++) x[i] = 0.0f;
}

/* Per head, two BLAS calls over the strided caches: S (T, L) = Q K^T / sqrt(hd),
 * causal softmax per row, O (T, hd) = S V. The masked upper triangle of a
 * prefill costs some flops but keeps the work in sgemm. */
static void cpu_attention(void *ctx, float *out, const float *q, const float *kc,
                          const float *vc, int T, int pos0, const ryz_attn_geom *g,
                          float *scores) {
    (void)ctx;
    int hd = g->head_dim, qdim = g->heads * hd, kvdim = g->kv_heads * hd, L = pos0 + T;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < g->heads; h++) {
        int kvh = (g->head_start + h) / g->kv_mul - g->kv_start;
        const float *K = kc + (size_t)kvh * hd, *V = vc + (size_t)kvh * hd;
        const float *Q = q + (size_t)h * hd;
        float *O = out + (size_t)h * hd;
        if (T == 1) { /* decode: GEMV avoids sgemm's packing of a 1-row operand */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, L, hd, scale, K, kvdim, Q, 1, 0.0f, scores, 1);
            softmax_masked(scores, L, L);
            cblas_sgemv(CblasRowMajor, CblasTrans, L, hd, 1.0f, V, kvdim, scores, 1, 0.0f, O, 1);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, L, hd, scale, Q, qdim, K, kvdim,
                    0.0f, scores, L);
        for (int t = 0; t < T; t++) softmax_masked(scores + (size_t)t * L, pos0 + t + 1, L);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, L, 1.0f, scores, L, V, kvdim,
                    0.0f, O, qdim);
    }
}

static const ryz_backend_iface cpu_iface = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .attention = cpu_attention,
};

ryz_status ryz_backend_init_cpu(int threads, ryz_backend *out) {
    if (threads < 1 || threads > 1024)
        return ryz_error(RYZ_EINVAL, "threads %d out of range [1, 1024]", threads);
    openblas_set_num_threads(threads);
    *out = (ryz_backend){.iface = &cpu_iface, .ctx = NULL};
    return RYZ_OK;
}

void ryz_backend_free(ryz_backend *b) {
    if (b) *b = (ryz_backend){0};
}

int ryz_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}
