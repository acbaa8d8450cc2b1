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

static void cpu_matmul(void *ctx, float *y, const float *x, const float *w, int n, int in,
                       int out) {
    (void)ctx;
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

static void softmax(float *x, int n) {
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

static void cpu_attention(void *ctx, float *out, const float *q, const float *kc,
                          const float *vc, int T, int pos0, const ryz_attn_geom *g,
                          float *att) {
    (void)ctx;
    int hd = g->head_dim, qdim = g->heads * hd, kvdim = g->kv_heads * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int t = 0; t < T; t++) {
        int pos = pos0 + t;
        for (int h = 0; h < g->heads; h++) {
            int kvh = (g->head_start + h) / g->kv_mul - g->kv_start;
            const float *qh = q + (size_t)t * qdim + (size_t)h * hd;
            for (int p = 0; p <= pos; p++) {
                const float *k = kc + (size_t)p * kvdim + (size_t)kvh * hd;
                float s = 0.0f;
                for (int i = 0; i < hd; i++) s += qh[i] * k[i];
                att[p] = s * scale;
            }
            softmax(att, pos + 1);
            float *o = out + (size_t)t * qdim + (size_t)h * hd;
            memset(o, 0, (size_t)hd * sizeof(float));
            for (int p = 0; p <= pos; p++) {
                const float *v = vc + (size_t)p * kvdim + (size_t)kvh * hd;
                for (int i = 0; i < hd; i++) o[i] += att[p] * v[i];
            }
        }
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
