// RMSNorm, RoPE, SwiGLU's silu-mul and the residual add: the same math as
// src/backend/cpu.c, operation for operation, so the two backends differ
// only by summation order and libm rounding.
#include "common.cuh"
#include "kernels.h"

// Most threads a row's block gets: a decode row is one block, so its time
// is a chain of dependent loads per thread, which threads shorten.
#define RMS_MAX_THREADS 1024

// One block per row: the sum of squares is a block reduction, then every
// thread scales the elements it read. y may equal x: each element is read
// and written by one thread, and the reduction's barriers separate the
// reads of the whole row from the writes.
static __global__ void __launch_bounds__(RMS_MAX_THREADS)
    rmsnorm_kernel(float *y, const float *x, const float *w, int dim, float eps) {
    __shared__ float red[32];
    ryz_k_pdl_begin();
    const float *xr = x + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        ss += xr[i] * xr[i];
    ss = ryz_block_sum(ss, red);
    float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        yr[i] = w[i] * (scale * xr[i]);
}

// x += r, then y = rmsnorm(x) * w, one block per row: each thread adds
// the elements it then normalises, so x is written before the reduction's
// barriers and y after them, with the add's and rmsnorm's rounding.
static __global__ void __launch_bounds__(RMS_MAX_THREADS)
    add_rmsnorm_kernel(float *y, float *x, const float *r, const float *w, int dim, float eps) {
    __shared__ float red[32];
    ryz_k_pdl_begin();
    float *xr = x + (size_t)blockIdx.x * dim;
    const float *rr = r + (size_t)blockIdx.x * dim;
    float *yr = y + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float v = xr[i] + rr[i];
        xr[i] = v;
        ss += v * v;
    }
    ss = ryz_block_sum(ss, red);
    float scale = 1.0f / sqrtf(ss / (float)dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        yr[i] = w[i] * (scale * xr[i]);
}

// Threads of a norm's block: about two elements a thread, in whole warps.
static unsigned rms_threads(int dim) {
    unsigned threads = ((unsigned)dim / 2 + 31) / 32 * 32;
    return threads < 32 ? 32 : threads > RMS_MAX_THREADS ? RMS_MAX_THREADS : threads;
}

extern "C" cudaError_t ryz_k_rmsnorm(float *y, const float *x, const float *w, int n, int dim,
                                     float eps, cudaStream_t s) {
    return ryz_k_launch(rmsnorm_kernel, (unsigned)n, rms_threads(dim), 0, s, y, x, w, dim, eps);
}

extern "C" cudaError_t ryz_k_add_rmsnorm(float *y, float *x, const float *r, const float *w, int n,
                                         int dim, float eps, cudaStream_t s) {
    return ryz_k_launch(add_rmsnorm_kernel, (unsigned)n, rms_threads(dim), 0, s, y, x, r, w, dim,
                        eps);
}

// Rotates pair e of x (rows of heads * head_dim, row t at position pos0 +
// t) in place and returns its address. The angle and its sine and cosine
// are computed in double and rounded once: the host's libm returns the
// correctly rounded float in practice, CUDA's single-precision powf and
// cosf may be 2 ulp off, and at position 4096 two ulps of the frequency
// already turn the pair by 1e-3 rad. The frequency is rounded where the
// host rounds it (powf, then the reciprocal) so both see the same angle.
__device__ __forceinline__ float *rope_pair(float *x, size_t e, int heads, int head_dim,
                                            int pos0, float base) {
    int half = head_dim / 2, i = 2 * (int)(e % (size_t)half);
    size_t th = e / (size_t)half; // t * heads + h
    int t = (int)(th / (size_t)heads);
    float p = (float)pow((double)base, (double)((float)i / (float)head_dim));
    float freq = 1.0f / p;
    double val = (double)((float)(pos0 + t) * freq), sv, cv;
    sincos(val, &sv, &cv);
    float fcr = (float)cv, fci = (float)sv;
    float *v = x + th * (size_t)head_dim + i;
    float v0 = v[0], v1 = v[1];
    v[0] = v0 * fcr - v1 * fci;
    v[1] = v0 * fci + v1 * fcr;
    return v;
}

// One thread per rotated pair.
static __global__ void __launch_bounds__(RYZ_K_THREADS)
    rope_kernel(float *x, size_t pairs, int heads, int head_dim, const int *pos, float base) {
    ryz_k_pdl_begin();
    const int pos0 = *pos;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < pairs;
         e += (size_t)gridDim.x * blockDim.x)
        rope_pair(x, e, heads, head_dim, pos0, base);
}

// The attention's prelude in one launch, one thread per item: q's pairs
// (rotated), then k's (rotated, and the pair stored at its row of kc),
// then v's elements (stored in vc). kvd = kv_heads * head_dim; the caches'
// rows start at *pos.
static __global__ void __launch_bounds__(RYZ_K_THREADS)
    rope_cache_kernel(float *q, float *k, const float *v, float *kc, float *vc, size_t qpairs,
                      size_t kpairs, size_t vn, int heads, int kv_heads, int head_dim,
                      const int *pos, float base) {
    ryz_k_pdl_begin();
    const int pos0 = *pos;
    const size_t kvd = (size_t)kv_heads * head_dim, row0 = (size_t)pos0 * kvd;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < qpairs + kpairs + vn;
         e += (size_t)gridDim.x * blockDim.x) {
        if (e < qpairs) {
            rope_pair(q, e, heads, head_dim, pos0, base);
        } else if (e < qpairs + kpairs) {
            const float *p = rope_pair(k, e - qpairs, kv_heads, head_dim, pos0, base);
            float *c = kc + row0 + (size_t)(p - k);
            c[0] = p[0], c[1] = p[1];
        } else {
            size_t i = e - qpairs - kpairs;
            vc[row0 + i] = v[i];
        }
    }
}

extern "C" cudaError_t ryz_k_rope(float *x, int n, int heads, int head_dim, const int *pos,
                                  float base, cudaStream_t s) {
    size_t pairs = (size_t)n * (size_t)heads * (size_t)(head_dim / 2);
    return ryz_k_launch(rope_kernel, ryz_k_blocks(pairs), RYZ_K_THREADS, 0, s, x, pairs, heads,
                        head_dim, pos, base);
}

static __global__ void __launch_bounds__(RYZ_K_THREADS)
    silu_mul_kernel(float *a, const float *b, size_t n) {
    ryz_k_pdl_begin();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        a[i] = ryz_silu_mul(a[i], b[i]);
    }
}

extern "C" cudaError_t ryz_k_silu_mul(float *a, const float *b, size_t n, cudaStream_t s) {
    return ryz_k_launch(silu_mul_kernel, ryz_k_blocks(n), RYZ_K_THREADS, 0, s, a, b, n);
}

static __global__ void __launch_bounds__(RYZ_K_THREADS)
    add_kernel(float *x, const float *y, size_t n) {
    ryz_k_pdl_begin();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] += y[i];
}

extern "C" cudaError_t ryz_k_add(float *x, const float *y, size_t n, cudaStream_t s) {
    return ryz_k_launch(add_kernel, ryz_k_blocks(n), RYZ_K_THREADS, 0, s, x, y, n);
}

extern "C" cudaError_t ryz_k_rope_cache(float *q, float *k, const float *v, float *kc, float *vc,
                                        int T, int heads, int kv_heads, int head_dim,
                                        const int *pos, float base, cudaStream_t s) {
    size_t half = (size_t)(head_dim / 2), qpairs = (size_t)T * heads * half;
    size_t kpairs = (size_t)T * kv_heads * half, vn = 2 * kpairs;
    return ryz_k_launch(rope_cache_kernel, ryz_k_blocks(qpairs + kpairs + vn), RYZ_K_THREADS, 0,
                        s, q, k, v, kc, vc, qpairs, kpairs, vn, heads, kv_heads, head_dim, pos,
                        base);
}
