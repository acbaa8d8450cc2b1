// Device kernels around the vocabulary: the embedding lookup of a vocab
// shard, the -inf mask of padded logits, and the greedy argmax, so a
// decode step needs to copy only the chosen token ids back to the host.
#include <limits.h>

#include "common.cuh"
#include "kernels.h"

static __global__ void __launch_bounds__(RYZ_K_THREADS)
    embedding_kernel(float *x, const int *tokens, size_t total, const float *emb, int vocab_start,
                     int vocab_local, int dim) {
    ryz_k_pdl_begin();
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        size_t r = e / (size_t)dim, c = e % (size_t)dim;
        int local = tokens[r] - vocab_start;
        x[e] = local >= 0 && local < vocab_local ? emb[(size_t)local * dim + c] : 0.0f;
    }
}

extern "C" cudaError_t ryz_k_embedding(float *x, const int *tokens, int n, const float *emb,
                                       int vocab_start, int vocab_local, int dim,
                                       cudaStream_t s) {
    size_t total = (size_t)n * (size_t)dim;
    return ryz_k_launch(embedding_kernel, ryz_k_blocks(total), RYZ_K_THREADS, 0, s, x, tokens,
                        total, emb, vocab_start, vocab_local, dim);
}

static __global__ void __launch_bounds__(RYZ_K_THREADS)
    mask_vocab_kernel(float *logits, size_t total, int vocab, int pad, int vocab_padded) {
    ryz_k_pdl_begin();
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        size_t r = e / (size_t)pad, c = e % (size_t)pad;
        logits[r * (size_t)vocab_padded + (size_t)vocab + c] = -INFINITY;
    }
}

extern "C" cudaError_t ryz_k_mask_vocab(float *logits, int n, int vocab, int vocab_padded,
                                        cudaStream_t s) {
    int pad = vocab_padded - vocab;
    size_t total = (size_t)n * (size_t)pad;
    return ryz_k_launch(mask_vocab_kernel, ryz_k_blocks(total), RYZ_K_THREADS, 0, s, logits, total,
                        vocab, pad, vocab_padded);
}

// (value, index) a beats (value, index) b: larger, or equal and earlier,
// which makes the result the first maximum whatever the reduction order.
__device__ __forceinline__ bool beats(float av, int ai, float bv, int bi) {
    return av > bv || (av == bv && ai < bi);
}

// Threads of an argmax block, and the loads each thread issues before it
// compares any: a decode step's argmax is one block over the vocabulary
// (128 KB for 32000 logits), so its time is the number of dependent load
// round trips; 256 threads loading one float at a time took 49 us on an
// H200 (docs/gpu-results.md).
#define ARGMAX_THREADS 1024
#define ARGMAX_UNROLL 8

// (bv, bi) becomes (v, i) when that beats it.
__device__ __forceinline__ void take(float v, int i, float *bv, int *bi) {
    if (beats(v, i, *bv, *bi))
        *bv = v, *bi = i;
}

// The first maximum of row[0..n) this thread sees: elements i = tid,
// tid + nt, ... in batches of ARGMAX_UNROLL loads issued before any
// comparison. beats() makes the result independent of the visiting order.
__device__ __forceinline__ void argmax_scan(const float *row, int n, float *bv, int *bi) {
    const int tid = threadIdx.x, nt = blockDim.x;
    for (int i0 = tid; i0 < n; i0 += nt * ARGMAX_UNROLL) {
        float v[ARGMAX_UNROLL];
#pragma unroll
        for (int u = 0; u < ARGMAX_UNROLL; u++) {
            int i = i0 + u * nt;
            v[u] = i < n ? row[i] : -INFINITY;
        }
#pragma unroll
        for (int u = 0; u < ARGMAX_UNROLL; u++)
            if (i0 + u * nt < n)
                take(v[u], i0 + u * nt, bv, bi);
    }
}

// (bv, bi) of the whole warp, in every lane.
__device__ __forceinline__ void argmax_warp(float *bv, int *bi) {
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(RYZ_FULL_MASK, *bv, o);
        int oi = __shfl_xor_sync(RYZ_FULL_MASK, *bi, o);
        take(ov, oi, bv, bi);
    }
}

// One block per row: each thread scans its strided slice (argmax_scan),
// then the block reduces (value, index) pairs with beats().
static __global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_kernel(int *idx, const float *x, int n, int ld) {
    __shared__ float red_v[32];
    __shared__ int red_i[32];
    ryz_k_pdl_begin();
    float bv = -INFINITY;
    int bi = INT_MAX;
    argmax_scan(x + (size_t)blockIdx.x * ld, n, &bv, &bi);
    argmax_warp(&bv, &bi);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    if (lane == 0)
        red_v[warp] = bv, red_i[warp] = bi;
    __syncthreads();
    if (warp != 0)
        return;
    bv = lane < warps ? red_v[lane] : -INFINITY;
    bi = lane < warps ? red_i[lane] : INT_MAX;
    argmax_warp(&bv, &bi);
    // No element beat the start only when the row is empty or all NaN
    // (NaNs never win here); answer 0 like the host's ryz_argmax. (The
    // host's keeps a NaN in column 0 as its answer; here the row's largest
    // number wins.)
    if (lane == 0)
        idx[blockIdx.x] = bi == INT_MAX ? 0 : bi;
}

extern "C" cudaError_t ryz_k_argmax(int *idx, const float *x, int rows, int n, int ld,
                                    cudaStream_t s) {
    // Whole warps, no more than about one element a thread (one warp at
    // least, so an empty row answers 0 too).
    unsigned threads = n < 32 ? 32 : ((unsigned)n + 31) / 32 * 32;
    threads = threads > ARGMAX_THREADS ? ARGMAX_THREADS : threads;
    return ryz_k_launch(argmax_kernel, (unsigned)rows, threads, 0, s, idx, x, n, ld);
}
