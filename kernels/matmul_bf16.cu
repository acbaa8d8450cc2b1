// bf16 weights with fp32 accumulation: y (n, out) = x (n, in) . W^T, W in
// the layout of ryz_bf16_offset (include/ryz/backend.h). Two pieces:
//
// - a GEMV for decode (n <= RYZ_K_BF16_GEMV_MAX_N) that streams W once,
//   16 bytes per load, and does the multiply-adds on the fly. Decode is
//   bound by the bytes of W read, so the loads are what matters: each
//   row group (four rows, 8 * in bytes, one sequential stream when
//   in % 16 == 0) is read by a block of 128 to 512 threads, each with
//   GEMV_UNROLL loads in flight before it does any arithmetic;
// - a widening kernel for prefill: rows of W to row-major fp32, which
//   cuBLAS then multiplies at the fp32 rate (src/backend/cuda.c).
//
// bf16 is the high half of a float, so widening is a shift (or a mask for
// the upper element of a 32-bit word): exact, no rounding.
#include <stdint.h>

#include "common.cuh"
#include "kernels.h"

// Threads per row group of the tiled GEMV: four to sixteen warps split the
// group's stream, more where W has few groups, as long as the grid stays
// within GEMV_WARPS_WANTED warps (132 SMs of 64 resident warps, about: one
// wave, see matmul_f32.cu), so that even a matrix of few groups keeps
// every SM loading.
#define GEMV_MIN_THREADS 128
#define GEMV_MAX_THREADS 512
#define GEMV_WARPS_WANTED 8192
// 16-byte loads each thread issues before it uses any of them.
#define GEMV_UNROLL 4
// Rows (one warp each) per block of the row-major GEMV.
#define ROWS_WARPS 8

// The two bf16 of a 32-bit word as floats: element 2k is the low half.
__device__ __forceinline__ float bf16_lo(unsigned u) {
    return __uint_as_float(u << 16);
}
__device__ __forceinline__ float bf16_hi(unsigned u) {
    return __uint_as_float(u & 0xffff0000u);
}

// acc + the dot product of 8 bf16 weights (one 16-byte load) with the 8
// floats a, b.
__device__ __forceinline__ float dot8(uint4 w, float4 a, float4 b, float acc) {
    acc = fmaf(bf16_lo(w.x), a.x, acc);
    acc = fmaf(bf16_hi(w.x), a.y, acc);
    acc = fmaf(bf16_lo(w.y), a.z, acc);
    acc = fmaf(bf16_hi(w.y), a.w, acc);
    acc = fmaf(bf16_lo(w.z), b.x, acc);
    acc = fmaf(bf16_hi(w.z), b.y, acc);
    acc = fmaf(bf16_lo(w.w), b.z, acc);
    return fmaf(bf16_hi(w.w), b.w, acc);
}

// The GEMV_UNROLL vectors of the row group gw from j0 on, stride nt (zero
// past nvec).
__device__ __forceinline__ void tiled_load(uint4 *v, const uint4 *gw, int j0, int nt, int nvec) {
#pragma unroll
    for (int u = 0; u < GEMV_UNROLL; u++) {
        int j = j0 + u * nt;
        v[u] = j < nvec ? __ldcs(gw + j) : make_uint4(0, 0, 0, 0);
    }
}

// Block g: launch rows 4g..4g+3, rows 4g - start[s].. of product s (sg;
// every start a multiple of 4, so a group lies in one product), in % 16 ==
// 0, x and W 16-byte aligned.
// The group is in / 2 16-byte vectors; vector j holds row (j & 7) >> 1,
// columns 16 (j >> 3) + 8 (j & 1) .. +7 (16-column tiles of the four rows
// in turn). The stride between a thread's vectors is a multiple of 8, so
// each thread always works on the same row: N accumulators (one per row
// of x) per matrix suffice. Lanes holding the same row differ in bits 0, 3
// and 4, so three shuffles sum a warp's share; shared memory adds the
// block's warps', stored as MODE says (ryz_gemv_store; w2 is read only by
// a pair, one product, whose block reads group g of both matrices). The
// first batch of W is loaded before ryz_k_pdl_wait (see gemv_f32_kernel).
template <int N, int MODE>
static __global__ void __launch_bounds__(GEMV_MAX_THREADS)
    gemv_tiled_kernel(ryz_gemv_segs sg, const float *x, const uint4 *w2, int in) {
    constexpr int M = ryz_gemv_mats<MODE>();
    __shared__ float part[GEMV_MAX_THREADS / 32][M][4][N];
    ryz_k_pdl_trigger();
    const int tid = threadIdx.x, nt = blockDim.x, nvec = in / 2;
    const ryz_gemv_row at = ryz_gemv_locate<MODE>(sg, 4 * (int)blockIdx.x);
    const uint4 *gw[M];
#pragma unroll
    for (int m = 0; m < M; m++)
        gw[m] = (m == 0 ? (const uint4 *)at.w : w2) + (size_t)((unsigned)at.row / 4) * nvec;
    float acc[M][N];
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < N; r++)
            acc[m][r] = 0.0f;
    uint4 v[M][GEMV_UNROLL];
#pragma unroll
    for (int m = 0; m < M; m++)
        tiled_load(v[m], gw[m], tid, nt, nvec);
    ryz_k_pdl_wait();
    for (int j0 = tid; j0 < nvec; j0 += nt * GEMV_UNROLL) {
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            int j = j0 + u * nt;
            if (j >= nvec)
                break;
            int col = (j >> 3) * 16 + (j & 1) * 8;
#pragma unroll
            for (int r = 0; r < N; r++) {
                const float4 *xr = (const float4 *)(x + (size_t)r * in + col);
                float4 xa = xr[0], xb = xr[1];
#pragma unroll
                for (int m = 0; m < M; m++)
                    acc[m][r] = dot8(v[m][u], xa, xb, acc[m][r]);
            }
        }
        if (j0 + nt * GEMV_UNROLL < nvec)
#pragma unroll
            for (int m = 0; m < M; m++)
                tiled_load(v[m], gw[m], j0 + nt * GEMV_UNROLL, nt, nvec);
    }
    const int lane = tid & 31, warp = tid >> 5, row = (tid >> 1) & 3;
#pragma unroll
    for (int m = 0; m < M; m++)
#pragma unroll
        for (int r = 0; r < N; r++) {
            float a = acc[m][r];
            a += __shfl_xor_sync(RYZ_FULL_MASK, a, 1);
            a += __shfl_xor_sync(RYZ_FULL_MASK, a, 8);
            a += __shfl_xor_sync(RYZ_FULL_MASK, a, 16);
            if (lane < 8 && !(lane & 1)) // lanes 0, 2, 4, 6: rows 0..3
                part[warp][m][row][r] = a;
        }
    __syncthreads();
    if (tid < 4 * N) {
        int r = tid >> 2, wr = tid & 3;
        float sum[M];
#pragma unroll
        for (int m = 0; m < M; m++) {
            sum[m] = 0.0f;
            for (int k = 0; k < nt / 32; k++)
                sum[m] += part[k][m][wr][r];
        }
        ryz_gemv_store<MODE>(at.y, (size_t)r * at.out + (size_t)(at.row + wr), sum);
    }
}

// Rows row0.. of W stored row-major (the rows after the last full group,
// or all of them when in % 16 != 0), one warp per row, one bf16 per lane
// per step: rows here are short or few, so simple loads do.
template <int N>
static __global__ void __launch_bounds__(ROWS_WARPS * 32)
    gemv_rows_kernel(float *y, const float *x, const uint16_t *w, int in, int out, int row0) {
    ryz_k_pdl_begin();
    const int lane = threadIdx.x & 31;
    const int o = row0 + (int)blockIdx.x * ROWS_WARPS + (int)(threadIdx.x >> 5);
    if (o >= out) // the whole warp: its shuffles stay full
        return;
    const uint16_t *wr = w + (size_t)o * in;
    float acc[N];
#pragma unroll
    for (int r = 0; r < N; r++)
        acc[r] = 0.0f;
    for (int i = lane; i < in; i += 32) {
        float wv = bf16_lo(wr[i]);
#pragma unroll
        for (int r = 0; r < N; r++)
            acc[r] = fmaf(wv, x[(size_t)r * in + i], acc[r]);
    }
#pragma unroll
    for (int r = 0; r < N; r++) {
        acc[r] = ryz_warp_sum(acc[r]);
        if (lane == 0)
            y[(size_t)r * out + o] = acc[r];
    }
}

// Threads per row group of the tiled GEMV of `groups` groups of in columns
// (see GEMV_MIN_THREADS).
static int tiled_threads(int groups, int in) {
    int threads = GEMV_MIN_THREADS; // a multiple of 8: see gemv_tiled_kernel
    while (threads < GEMV_MAX_THREADS && (long)groups * threads * 2 / 32 <= GEMV_WARPS_WANTED &&
           in / 2 >= 2 * threads)
        threads *= 2;
    return threads;
}

// The GEMV kernels for n = N: the tiled kernel over sg's sg.rows / 4 row
// groups, then for one product whose out % 4 != 0 or in % 16 != 0 (ONE,
// count 1) the row-major rest, rows sg.rows .. out - 1 of W; a pair or
// several products come in whole groups only (the caller checked).
template <int N, int MODE>
static cudaError_t gemv_launch(const ryz_gemv_segs &sg, const float *x, const uint16_t *w2, int in,
                               int out, cudaStream_t s) {
    int groups = sg.rows / 4, row0 = sg.rows;
    cudaError_t e = cudaSuccess;
    if (groups > 0)
        e = ryz_k_launch(gemv_tiled_kernel<N, MODE>, (unsigned)groups,
                         (unsigned)tiled_threads(groups, in), 0, s, sg, x, (const uint4 *)w2, in);
    if (MODE == RYZ_GEMV_ONE && e == cudaSuccess && row0 < out)
        e = ryz_k_launch(gemv_rows_kernel<N>,
                         (unsigned)((out - row0 + ROWS_WARPS - 1) / ROWS_WARPS), ROWS_WARPS * 32,
                         0, s, sg.y[0], x, (const uint16_t *)sg.w[0], in, out, row0);
    return e;
}

typedef cudaError_t (*bf16_launch_fn)(const ryz_gemv_segs &, const float *, const uint16_t *, int,
                                      int, cudaStream_t);
static const bf16_launch_fn bf16_launch[RYZ_GEMV_MODES][RYZ_K_BF16_GEMV_MAX_N] = {
    RYZ_K_GEMV_BY_N(gemv_launch, RYZ_GEMV_ONE), RYZ_K_GEMV_BY_N(gemv_launch, RYZ_GEMV_SWIGLU),
    RYZ_K_GEMV_BY_N(gemv_launch, RYZ_GEMV_MULTI)};

extern "C" cudaError_t ryz_k_bf16_gemv(float *y, const float *x, const uint16_t *w, int n, int in,
                                       int out, cudaStream_t s) {
    // The full row groups when in % 16 == 0 (none otherwise), then the
    // rest; y's rows are out apart either way.
    ryz_gemv_segs sg = {};
    sg.count = 1, sg.w[0] = w, sg.y[0] = y, sg.start[1] = out;
    sg.rows = in % 16 == 0 ? out - out % 4 : 0;
    if (n < 1 || n > RYZ_K_BF16_GEMV_MAX_N)
        return cudaErrorInvalidValue;
    return bf16_launch[RYZ_GEMV_ONE][n - 1](sg, x, NULL, in, out, s);
}

// Whether n, in and x suit the whole-group launches (_multi and _pair),
// whose W the caller checks.
static bool bf16_groups_fit(const float *x, int n, int in) {
    return n >= 1 && n <= RYZ_K_BF16_GEMV_MAX_N && in % 16 == 0 && (uintptr_t)x % 16 == 0;
}

extern "C" cudaError_t ryz_k_bf16_gemv_multi(int count, float *const *y, const uint16_t *const *w,
                                             const int *out, const float *x, int n, int in,
                                             cudaStream_t s) {
    ryz_gemv_segs sg = {};
    if (!bf16_groups_fit(x, n, in) ||
        !ryz_gemv_segs_fill(&sg, count, y, (const void *const *)w, out, 4))
        return cudaErrorInvalidValue;
    for (int i = 0; i < count; i++)
        if (!w[i] || !y[i] || (uintptr_t)w[i] % 16 != 0)
            return cudaErrorInvalidValue;
    return bf16_launch[RYZ_GEMV_MULTI][n - 1](sg, x, NULL, in, sg.rows, s);
}

extern "C" cudaError_t ryz_k_bf16_gemv_pair(float *y, const float *x, const uint16_t *w1,
                                            const uint16_t *w2, int n, int in, int out,
                                            cudaStream_t s) {
    ryz_gemv_segs sg = {};
    if (!bf16_groups_fit(x, n, in) || !y || !w1 || !w2 || (uintptr_t)w1 % 16 != 0 ||
        (uintptr_t)w2 % 16 != 0 ||
        !ryz_gemv_segs_fill(&sg, 1, &y, (const void *const *)&w1, &out, 4))
        return cudaErrorInvalidValue;
    return bf16_launch[RYZ_GEMV_SWIGLU][n - 1](sg, x, w2, in, out, s);
}

// Row and column of storage element p of a bf16 matrix (out, in): the
// inverse of ryz_bf16_offset.
__device__ __forceinline__ void bf16_place(size_t p, int in, int out, int *row, int *col) {
    size_t tiled = in % 16 == 0 ? (size_t)(out - out % 4) * (size_t)in : 0;
    if (p >= tiled) {
        *row = (int)(p / (size_t)in), *col = (int)(p % (size_t)in);
        return;
    }
    size_t g = p / (4 * (size_t)in), q = p % (4 * (size_t)in);
    *row = (int)(4 * g + (q % 64) / 16);
    *col = (int)(q / 64 * 16 + q % 16);
}

// dst (rows, in) fp32 = rows o0.. of W, which are the storage elements
// [o0 * in, o0 * in + count) (whole row groups). Each thread widens V
// elements at a time: 8 (one 16-byte load, two 16-byte stores; needs
// in % 8 == 0, so the 8 lie in one row, and W 16-byte aligned) or 1.
template <int V>
static __global__ void __launch_bounds__(RYZ_K_THREADS)
    widen_kernel(float *dst, const uint16_t *w, int o0, size_t count, int in, int out) {
    const size_t p0 = (size_t)o0 * (size_t)in;
    for (size_t e = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) * V; e < count;
         e += (size_t)gridDim.x * blockDim.x * V) {
        int row, col;
        bf16_place(p0 + e, in, out, &row, &col);
        float *d = dst + (size_t)(row - o0) * (size_t)in + (size_t)col;
        if (V == 8) {
            uint4 v = __ldcs((const uint4 *)(w + p0 + e));
            ((float4 *)d)[0] = make_float4(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
            ((float4 *)d)[1] = make_float4(bf16_lo(v.z), bf16_hi(v.z), bf16_lo(v.w), bf16_hi(v.w));
        } else {
            d[0] = bf16_lo(w[p0 + e]);
        }
    }
}

extern "C" cudaError_t ryz_k_bf16_widen(float *dst, const uint16_t *w, int o0, int rows, int in,
                                        int out, cudaStream_t s) {
    size_t count = (size_t)rows * (size_t)in;
    if (in % 8 == 0 && (uintptr_t)w % 16 == 0 && (uintptr_t)dst % 16 == 0)
        widen_kernel<8><<<ryz_k_blocks(count / 8), RYZ_K_THREADS, 0, s>>>(dst, w, o0, count, in,
                                                                          out);
    else
        widen_kernel<1><<<ryz_k_blocks(count), RYZ_K_THREADS, 0, s>>>(dst, w, o0, count, in, out);
    return cudaGetLastError();
}
