// The fp32 decode GEMV: y (n, out) = x (n, in) . W^T for n <= 8 rows of x,
// W row-major fp32 (out, in); up to three such products of one x in one
// launch (q, k and v), each warp on a row of one; or SwiGLU's pair of
// products of one shape (w1 and w3, silu-mul applied), each warp reading
// its row of both matrices. Decode reads every weight once per token, so
// this kernel is about keeping loads in flight: one to eight warps per row
// of W (enough warps in all to fill the GPU), 16-byte loads, F32_UNROLL of
// them per lane issued before any arithmetic.
// cuBLAS's gemv reached 1.8 TB/s on a 2048 x 2048 matrix and 0.45 TB/s on
// 256 x 2048 of an H200's 4.1 (docs/gpu-results.md); this kernel made 1b
// decode 7 % faster. Larger n stays with cuBLAS.
#include <stdint.h>

#include "common.cuh"
#include "kernels.h"

// Warps per block.
#define F32_WARPS 8
// 16-byte loads of W a lane issues before it uses any of them.
#define F32_UNROLL 4
// Most warps a grid should have: about what the GPU holds at once (132
// SMs of 64 resident warps, H100 and H200), so that a GEMV runs in one
// wave. A grid of 1.3 waves (5632 rows at two warps each) ends with a
// third of the GPU loading while the rest waits.
#define F32_WARPS_WANTED 8192

// acc + w . x over four floats, in order.
__device__ __forceinline__ float dot4(float4 w, float4 x, float acc) {
    acc = fmaf(w.x, x.x, acc);
    acc = fmaf(w.y, x.y, acc);
    acc = fmaf(w.z, x.z, acc);
    return fmaf(w.w, x.w, acc);
}

// The F32_UNROLL vectors of W from j0 on, stride step (zero past nvec).
__device__ __forceinline__ void f32_load(float4 *v, const float4 *wr, int j0, int step,
                                         int nvec) {
#pragma unroll
    for (int u = 0; u < F32_UNROLL; u++) {
        int j = j0 + step * u;
        v[u] = j < nvec ? __ldcs(wr + j) : make_float4(0, 0, 0, 0);
    }
}

// Each launch row is read by wpr warps of one block (wpr in 1, 2, 4, 8, so
// a block holds F32_WARPS / wpr rows): warp k of a row takes its 16-byte
// vectors lane + 32 (k + wpr m), m = 0, 1, ..., so a row's warps stream it
// together. Launch row o is row o - start[s] of product s (sg); a row's
// warps are in one block, so a block may span products. N accumulators
// (one per row of x) per lane and matrix, a warp sum, then the row's first
// warp adds its warps' sums from shared memory and stores them as MODE
// says (ryz_gemv_store); w2 is read only by a pair (one product).
// The first batch of W is loaded before ryz_k_pdl_wait: W is no kernel's
// output, so its stream can start while the kernel that writes x is still
// running. x is read through the read-only path, and only after the wait
// (common.cuh): with plain loads 1b's fp32 decode was 5 % slower on an
// H200 (637 against 669-670 tok/s, docs/gpu-results.md, session 27).
template <int N, int MODE>
static __global__ void __launch_bounds__(F32_WARPS * 32)
    gemv_f32_kernel(ryz_gemv_segs sg, const float *x, const float4 *w2, int in, int wpr) {
    constexpr int M = ryz_gemv_mats<MODE>();
    __shared__ float part[F32_WARPS][M][N];
    ryz_k_pdl_trigger();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, k = warp % wpr;
    const int o = (int)blockIdx.x * (F32_WARPS / wpr) + warp / wpr;
    const ryz_gemv_row at = ryz_gemv_locate<MODE>(sg, o);
    const bool live = o < sg.rows;
    const int nvec = in / 4, step = 32 * wpr;
    const float4 *wr[M];
#pragma unroll
    for (int m = 0; m < M; m++)
        wr[m] = (m == 0 ? (const float4 *)at.w : w2) + (size_t)at.row * (size_t)nvec;
    const float4 *x4 = (const float4 *)x;
    float acc[M][N];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < N; r++)
            acc[m][r] = 0.0f;
    float4 v[M][F32_UNROLL];
    int j0 = lane + 32 * k;
    if (live)
#pragma unroll
        for (int m = 0; m < M; m++)
            f32_load(v[m], wr[m], j0, step, nvec);
    ryz_k_pdl_wait();
    for (; live && j0 < nvec; j0 += step * F32_UNROLL) {
#pragma unroll
        for (int u = 0; u < F32_UNROLL; u++) {
            int j = j0 + step * u;
            if (j >= nvec)
                break;
#pragma unroll
            for (int r = 0; r < N; r++) {
                float4 xv = __ldg(x4 + (size_t)r * nvec + j); // after the wait: common.cuh
#pragma unroll
                for (int m = 0; m < M; m++)
                    acc[m][r] = dot4(v[m][u], xv, acc[m][r]);
            }
        }
        if (j0 + step * F32_UNROLL < nvec)
#pragma unroll
            for (int m = 0; m < M; m++)
                f32_load(v[m], wr[m], j0 + step * F32_UNROLL, step, nvec);
    }
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < N; r++) {
            acc[m][r] = ryz_warp_sum(acc[m][r]);
            if (lane == 0)
                part[warp][m][r] = acc[m][r];
        }
    __syncthreads();
    if (k != 0 || lane >= N || !live)
        return;
    float sum[M];
#pragma unroll
    for (int m = 0; m < M; m++) {
        sum[m] = 0.0f;
        for (int i = 0; i < wpr; i++) // warps warp .. warp + wpr - 1, in order
            sum[m] += part[warp + i][m][lane];
    }
    ryz_gemv_store<MODE>(at.y, (size_t)lane * at.out + at.row, sum);
}

template <int N, int MODE>
static cudaError_t gemv_f32_launch(const ryz_gemv_segs &sg, const float *x, const float *w2, int in,
                                   cudaStream_t s) {
    // Warps per row: more where the launch has few rows, as long as the
    // grid stays within F32_WARPS_WANTED warps and each warp still gets a
    // full stride of 32 vectors of every row.
    int out = sg.rows, wpr = 1;
    while (wpr < F32_WARPS && (long)out * wpr * 2 <= F32_WARPS_WANTED && in / 4 >= 64 * wpr)
        wpr *= 2;
    int rows = F32_WARPS / wpr;
    unsigned blocks = (unsigned)((out + rows - 1) / rows);
    return ryz_k_launch(gemv_f32_kernel<N, MODE>, blocks, F32_WARPS * 32, 0, s, sg, x,
                        (const float4 *)w2, in, wpr);
}

typedef cudaError_t (*f32_launch_fn)(const ryz_gemv_segs &, const float *, const float *, int,
                                     cudaStream_t);

// The launch of mode `mode` for n rows of x, after the checks every entry
// point shares: n in 1..RYZ_K_GEMV_MAX_N, in % 4 == 0, 16-byte alignment
// of x, w2 and each product's W.
static cudaError_t f32_gemv_any(int mode, const ryz_gemv_segs &sg, const float *x, const float *w2,
                                int n, int in, cudaStream_t s) {
    static const f32_launch_fn launch[RYZ_GEMV_MODES][RYZ_K_GEMV_MAX_N] = {
        RYZ_K_GEMV_BY_N(gemv_f32_launch, RYZ_GEMV_ONE),
        RYZ_K_GEMV_BY_N(gemv_f32_launch, RYZ_GEMV_SWIGLU),
        RYZ_K_GEMV_BY_N(gemv_f32_launch, RYZ_GEMV_MULTI)};
    int bad = n < 1 || n > RYZ_K_GEMV_MAX_N || in % 4 != 0 || (uintptr_t)x % 16 != 0 ||
              (uintptr_t)w2 % 16 != 0;
    for (int i = 0; i < sg.count; i++)
        bad |= !sg.w[i] || !sg.y[i] || (uintptr_t)sg.w[i] % 16 != 0;
    if (bad)
        return cudaErrorInvalidValue;
    return launch[mode][n - 1](sg, x, w2, in, s);
}

extern "C" cudaError_t ryz_k_f32_gemv(float *y, const float *x, const float *w, int n, int in,
                                      int out, cudaStream_t s) {
    return ryz_k_f32_gemv_multi(1, &y, &w, &out, x, n, in, s);
}

extern "C" cudaError_t ryz_k_f32_gemv_multi(int count, float *const *y, const float *const *w,
                                            const int *out, const float *x, int n, int in,
                                            cudaStream_t s) {
    ryz_gemv_segs sg = {};
    if (!ryz_gemv_segs_fill(&sg, count, y, (const void *const *)w, out, 1))
        return cudaErrorInvalidValue;
    return f32_gemv_any(count == 1 ? RYZ_GEMV_ONE : RYZ_GEMV_MULTI, sg, x, NULL, n, in, s);
}

extern "C" cudaError_t ryz_k_f32_gemv_pair(float *y, const float *x, const float *w1,
                                           const float *w2, int n, int in, int out,
                                           cudaStream_t s) {
    ryz_gemv_segs sg = {};
    if (!w2 || !ryz_gemv_segs_fill(&sg, 1, &y, (const void *const *)&w1, &out, 1))
        return cudaErrorInvalidValue;
    return f32_gemv_any(RYZ_GEMV_SWIGLU, sg, x, w2, n, in, s);
}
