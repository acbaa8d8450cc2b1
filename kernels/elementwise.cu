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

extern "C" cudaError_t ryz_k_rmsnorm(float *y, const float *x, const float *w, int n, int dim,
                                     float eps, cudaStream_t s) {
    // about two elements a thread, in whole warps
    unsigned threads = ((unsigned)dim / 2 + 31) / 32 * 32;
    threads = threads < 32 ? 32 : threads > RMS_MAX_THREADS ? RMS_MAX_THREADS : threads;
    rmsnorm_kernel<<<(unsigned)n, threads, 0, s>>>(y, x, w, dim, eps);
    return cudaGetLastError();
}

// One thread per rotated pair. The angle and its sine and cosine are
// computed in double and rounded once: the host's libm returns the
// correctly rounded float in practice, CUDA's single-precision powf and
// cosf may be 2 ulp off, and at position 4096 two ulps of the frequency
// already turn the pair by 1e-3 rad. The frequency is rounded where the
// host rounds it (powf, then the reciprocal) so both see the same angle.
static __global__ void __launch_bounds__(RYZ_K_THREADS)
    rope_kernel(float *x, size_t pairs, int heads, int head_dim, const int *pos, float base) {
    const int half = head_dim / 2, pos0 = *pos;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < pairs;
         e += (size_t)gridDim.x * blockDim.x) {
        int i = 2 * (int)(e % (size_t)half);
        size_t th = e / (size_t)half; // t * heads + h
        int t = (int)(th / (size_t)heads);
        float p = (float)pow((double)base, (double)((float)i / (float)head_dim));
        float freq = 1.0f / p;
        double val = (double)((float)(pos0 + t) * freq);
        float fcr = (float)cos(val), fci = (float)sin(val);
        float *v = x + th * (size_t)head_dim + i;
        float v0 = v[0], v1 = v[1];
        v[0] = v0 * fcr - v1 * fci;
        v[1] = v0 * fci + v1 * fcr;
    }
}

extern "C" cudaError_t ryz_k_rope(float *x, int n, int heads, int head_dim, const int *pos,
                                  float base, cudaStream_t s) {
    size_t pairs = (size_t)n * (size_t)heads * (size_t)(head_dim / 2);
    rope_kernel<<<ryz_k_blocks(pairs), RYZ_K_THREADS, 0, s>>>(x, pairs, heads, head_dim, pos,
                                                              base);
    return cudaGetLastError();
}

static __global__ void __launch_bounds__(RYZ_K_THREADS)
    silu_mul_kernel(float *a, const float *b, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = a[i];
        a[i] = v / (1.0f + expf(-v)) * b[i];
    }
}

extern "C" cudaError_t ryz_k_silu_mul(float *a, const float *b, size_t n, cudaStream_t s) {
    silu_mul_kernel<<<ryz_k_blocks(n), RYZ_K_THREADS, 0, s>>>(a, b, n);
    return cudaGetLastError();
}

static __global__ void __launch_bounds__(RYZ_K_THREADS)
    add_kernel(float *x, const float *y, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] += y[i];
}

extern "C" cudaError_t ryz_k_add(float *x, const float *y, size_t n, cudaStream_t s) {
    add_kernel<<<ryz_k_blocks(n), RYZ_K_THREADS, 0, s>>>(x, y, n);
    return cudaGetLastError();
}

// cache rows *pos.. = src, count floats: the position is read on the
// device, so a recorded decode step writes where the step is.
static __global__ void __launch_bounds__(RYZ_K_THREADS)
    store_rows_kernel(float *cache, const float *src, size_t count, int width, const int *pos) {
    float *dst = cache + (size_t)*pos * (size_t)width;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = src[i];
}

extern "C" cudaError_t ryz_k_store_rows(float *cache, const float *src, int T, int width,
                                        const int *pos, cudaStream_t s) {
    size_t count = (size_t)T * (size_t)width;
    store_rows_kernel<<<ryz_k_blocks(count), RYZ_K_THREADS, 0, s>>>(cache, src, count, width, pos);
    return cudaGetLastError();
}
