// The fp32 decode GEMV: y (n, out) = x (n, in) . W^T for n <= 8 rows of x,
// W row-major fp32 (out, in). Decode reads every weight once per token, so
// this kernel is about keeping loads in flight: one warp per row of W,
// 16-byte loads, F32_UNROLL of them per lane issued before any arithmetic.
// cuBLAS's gemv reached 1.8 TB/s on a 2048 x 2048 matrix and 0.45 TB/s on
// 256 x 2048 of an H200's 4.1 (docs/gpu-results.md), a launch of a few
// microseconds for each; larger n stays with cuBLAS.
#include <stdint.h>

#include "common.cuh"
#include "kernels.h"

// Warps (rows of W) per block.
#define F32_WARPS 8
// 16-byte loads of W a lane issues before it uses any of them.
#define F32_UNROLL 4

// acc + w . x over four floats, in order.
__device__ __forceinline__ float dot4(float4 w, float4 x, float acc) {
    acc = fmaf(w.x, x.x, acc);
    acc = fmaf(w.y, x.y, acc);
    acc = fmaf(w.z, x.z, acc);
    return fmaf(w.w, x.w, acc);
}

// Warp o of the grid: row o of W (in / 4 vectors, lane l taking vectors
// l, l + 32, ...), N accumulators (one per row of x), then a warp sum.
template <int N>
static __global__ void __launch_bounds__(F32_WARPS * 32)
    gemv_f32_kernel(float *y, const float *x, const float4 *w, int in, int out) {
    const int lane = threadIdx.x & 31;
    const int o = (int)blockIdx.x * F32_WARPS + (int)(threadIdx.x >> 5);
    if (o >= out) // the whole warp: its shuffles stay full
        return;
    const int nvec = in / 4;
    const float4 *wr = w + (size_t)o * (size_t)nvec;
    const float4 *x4 = (const float4 *)x;
    float acc[N];
#pragma unroll
    for (int r = 0; r < N; r++)
        acc[r] = 0.0f;
    for (int j0 = lane; j0 < nvec; j0 += 32 * F32_UNROLL) {
        float4 v[F32_UNROLL];
#pragma unroll
        for (int u = 0; u < F32_UNROLL; u++) {
            int j = j0 + 32 * u;
            v[u] = j < nvec ? __ldcs(wr + j) : make_float4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < F32_UNROLL; u++) {
            int j = j0 + 32 * u;
            if (j >= nvec)
                break;
#pragma unroll
            for (int r = 0; r < N; r++)
                acc[r] = dot4(v[u], __ldg(x4 + (size_t)r * nvec + j), acc[r]);
        }
    }
#pragma unroll
    for (int r = 0; r < N; r++) {
        acc[r] = ryz_warp_sum(acc[r]);
        if (lane == 0)
            y[(size_t)r * out + o] = acc[r];
    }
}

template <int N>
static cudaError_t gemv_f32_launch(float *y, const float *x, const float *w, int in, int out,
                                   cudaStream_t s) {
    unsigned blocks = (unsigned)((out + F32_WARPS - 1) / F32_WARPS);
    gemv_f32_kernel<N><<<blocks, F32_WARPS * 32, 0, s>>>(y, x, (const float4 *)w, in, out);
    return cudaGetLastError();
}

extern "C" cudaError_t ryz_k_f32_gemv(float *y, const float *x, const float *w, int n, int in,
                                      int out, cudaStream_t s) {
    typedef cudaError_t (*launch_fn)(float *, const float *, const float *, int, int,
                                     cudaStream_t);
    static const launch_fn launch[RYZ_K_GEMV_MAX_N] = {
        gemv_f32_launch<1>, gemv_f32_launch<2>, gemv_f32_launch<3>, gemv_f32_launch<4>,
        gemv_f32_launch<5>, gemv_f32_launch<6>, gemv_f32_launch<7>, gemv_f32_launch<8>};
    if (n < 1 || n > RYZ_K_GEMV_MAX_N || in % 4 != 0 || (uintptr_t)x % 16 != 0 ||
        (uintptr_t)w % 16 != 0)
        return cudaErrorInvalidValue;
    return launch[n - 1](y, x, w, in, out, s);
}
