// Device kernels around the vocabulary: the embedding lookup of a vocab
// shard, the -inf mask of padded logits, and the greedy argmax, so a
// decode step needs to copy only the chosen token ids back to the host.
#include <limits.h>

#include "common.cuh"
#include "kernels.h"

static __global__ void __launch_bounds__(RYZ_K_THREADS)
    embedding_kernel(float *x, const int *tokens, size_t total, const float *emb, int vocab_start,
                     int vocab_local, int dim) {
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
    embedding_kernel<<<ryz_k_blocks(total), RYZ_K_THREADS, 0, s>>>(x, tokens, total, emb,
                                                                   vocab_start, vocab_local, dim);
    return cudaGetLastError();
}

static __global__ void __launch_bounds__(RYZ_K_THREADS)
    mask_vocab_kernel(float *logits, size_t total, int vocab, int pad, int vocab_padded) {
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
    mask_vocab_kernel<<<ryz_k_blocks(total), RYZ_K_THREADS, 0, s>>>(logits, total, vocab, pad,
                                                                    vocab_padded);
    return cudaGetLastError();
}

// (value, index) a beats (value, index) b: larger, or equal and earlier,
// which makes the result the first maximum whatever the reduction order.
__device__ __forceinline__ bool beats(float av, int ai, float bv, int bi) {
    return av > bv || (av == bv && ai < bi);
}

// One block per row. Each thread scans a strided slice keeping its first
// maximum, then the block reduces (value, index) pairs with beats().
static __global__ void __launch_bounds__(RYZ_K_THREADS)
    argmax_kernel(int *idx, const float *x, int n, int ld) {
    __shared__ float red_v[32];
    __shared__ int red_i[32];
    const float *row = x + (size_t)blockIdx.x * ld;
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (beats(row[i], i, bv, bi))
            bv = row[i], bi = i;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(RYZ_FULL_MASK, bv, o);
        int oi = __shfl_xor_sync(RYZ_FULL_MASK, bi, o);
        if (beats(ov, oi, bv, bi))
            bv = ov, bi = oi;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    if (lane == 0)
        red_v[warp] = bv, red_i[warp] = bi;
    __syncthreads();
    if (warp != 0)
        return;
    bv = lane < warps ? red_v[lane] : -INFINITY;
    bi = lane < warps ? red_i[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(RYZ_FULL_MASK, bv, o);
        int oi = __shfl_xor_sync(RYZ_FULL_MASK, bi, o);
        if (beats(ov, oi, bv, bi))
            bv = ov, bi = oi;
    }
    // No element beat the start only when the row is empty or all NaN
    // (NaNs never win here); answer 0 like the host's ryz_argmax.
    if (lane == 0)
        idx[blockIdx.x] = bi == INT_MAX ? 0 : bi;
}

extern "C" cudaError_t ryz_k_argmax(int *idx, const float *x, int rows, int n, int ld,
                                    cudaStream_t s) {
    argmax_kernel<<<(unsigned)rows, RYZ_K_THREADS, 0, s>>>(idx, x, n, ld);
    return cudaGetLastError();
}
