// Causal attention over the per-rank KV cache, prefill (T > 1) and decode
// (T = 1) alike: one block per (row, query head) with an online softmax
// over key tiles, so no scores are stored and any context length fits in a
// fixed amount of shared memory. Same contract as cpu_attention; it
// differs from it only by rounding (the host normalises the scores before
// multiplying by V, this kernel divides the accumulated sum at the end).
#include <stdint.h>

#include "common.cuh"
#include "kernels.h"

// Threads per block; also the number of keys scored per tile.
#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)

// q . k over hd floats, in order (q in shared memory).
__device__ __forceinline__ float dot_scalar(const float *q, const float *k, int hd) {
    float dot = 0.0f;
    for (int d = 0; d < hd; d++)
        dot += q[d] * k[d];
    return dot;
}

// The same sum, in the same order, with k read 16 bytes at a time, so a
// thread's loads of its key row are independent and in flight together.
__device__ __forceinline__ float dot_vec4(const float *q, const float *k, int hd) {
    const float4 *k4 = (const float4 *)k, *q4 = (const float4 *)q;
    float dot = 0.0f;
#pragma unroll 4
    for (int d = 0; d < hd / 4; d++) {
        float4 kv = k4[d], qv = q4[d];
        dot += qv.x * kv.x;
        dot += qv.y * kv.y;
        dot += qv.z * kv.z;
        dot += qv.w * kv.w;
    }
    return dot;
}

// accw (head_dim), warp w's share of the running output, scaled by corr
// plus p_s[jj] times V row j0 + jj for the warp's keys of the tile, jj =
// w, w + ATT_WARPS, ... < nj. Lane l owns elements 2l, 2l + 1, 2l + 64, ...
// (VEC2: head_dim even and V 8-byte aligned, so are V's rows and accw) or l,
// l + 32, ...: a warp reads a row of V in one coalesced pass, and each
// lane's loads of its keys are independent, so they are in flight
// together.
template <bool VEC2>
__device__ __forceinline__ void att_pv(float *accw, const float *p_s, const float *V,
                                       size_t kvdim, int hd, int j0, int nj, int w, float corr) {
    const int lane = threadIdx.x & 31;
    if (VEC2) {
        for (int d = 2 * lane; d < hd; d += 64) {
            float2 a = *(float2 *)(accw + d);
            a.x *= corr, a.y *= corr;
#pragma unroll 8
            for (int jj = w; jj < nj; jj += ATT_WARPS) {
                float2 v = *(const float2 *)(V + (size_t)(j0 + jj) * kvdim + d);
                a.x += p_s[jj] * v.x;
                a.y += p_s[jj] * v.y;
            }
            *(float2 *)(accw + d) = a;
        }
    } else {
        for (int d = lane; d < hd; d += 32) {
            float a = accw[d] * corr;
#pragma unroll 8
            for (int jj = w; jj < nj; jj += ATT_WARPS)
                a += p_s[jj] * V[(size_t)(j0 + jj) * kvdim + d];
            accw[d] = a;
        }
    }
}

// Block (t, h): query row t (position *pos + t), local head h. Shared
// memory: q_s (head_dim) the query and acc (ATT_WARPS rows of head_dim)
// the warps' running outputs, sized by the launch; p_s the current tile's
// probabilities. Thread j scores key j0 + j of a tile (its own dot
// product over head_dim); for the V product, warp w takes every
// ATT_WARPS-th key of the tile (att_pv), and the warps' rows of acc are
// summed at the end. At decode's short contexts the kernel is latency:
// each thread's V loads should be few batches, not one key after another.
static __global__ void __launch_bounds__(ATT_THREADS)
    attention_kernel(float *out, const float *q, const float *kc, const float *vc, const int *pos,
                     ryz_attn_geom g, float scale) {
    // (1 + ATT_WARPS) * head_dim floats, 16-byte aligned for dot_vec4
    extern __shared__ float4 dyn4[];
    float *dyn = (float *)dyn4;
    __shared__ float p_s[ATT_THREADS];
    __shared__ float red[32];
    ryz_k_pdl_begin();
    const int t = blockIdx.x, h = blockIdx.y, hd = g.head_dim, tid = threadIdx.x;
    const size_t qdim = (size_t)g.heads * hd, kvdim = (size_t)g.kv_heads * hd;
    const int kvh = (g.head_start + h) / g.kv_mul - g.kv_start;
    const float *K = kc + (size_t)kvh * hd, *V = vc + (size_t)kvh * hd;
    float *q_s = dyn, *acc = dyn + hd;
    const float *qr = q + (size_t)t * qdim + (size_t)h * hd;
    for (int d = tid; d < hd; d += ATT_THREADS)
        q_s[d] = qr[d];
    for (int d = tid; d < ATT_WARPS * hd; d += ATT_THREADS)
        acc[d] = 0.0f;
    __syncthreads();
    const int len = *pos + t + 1; // keys 0..*pos+t: causal
    // K rows as float4 where every row and q_s are 16-byte aligned
    const bool vec4 = hd % 4 == 0 && kvdim % 4 == 0 && (uintptr_t)K % 16 == 0;
    const bool vec2 = hd % 2 == 0 && (uintptr_t)V % 8 == 0; // rows and acc 8-byte aligned too
    float m = -INFINITY, l = 0.0f;
    for (int j0 = 0; j0 < len; j0 += ATT_THREADS) {
        const int j = j0 + tid, nj = min(ATT_THREADS, len - j0);
        float s = -INFINITY;
        if (j < len) {
            const float *kr = K + (size_t)j * kvdim;
            s = (vec4 ? dot_vec4(q_s, kr, hd) : dot_scalar(q_s, kr, hd)) * scale;
        }
        // The tile holds at least one key, so m_new is finite for finite
        // inputs and corr is exp(-inf) = 0 on the first tile.
        const float m_new = fmaxf(m, ryz_block_max(s, red));
        const float p = j < len ? expf(s - m_new) : 0.0f;
        const float corr = expf(m - m_new);
        p_s[tid] = p;
        l = l * corr + ryz_block_sum(p, red); // its barrier publishes p_s
        const int w = tid >> 5;
        if (vec2)
            att_pv<true>(acc + (size_t)w * hd, p_s, V, kvdim, hd, j0, nj, w, corr);
        else
            att_pv<false>(acc + (size_t)w * hd, p_s, V, kvdim, hd, j0, nj, w, corr);
        m = m_new;
        __syncthreads(); // p_s is rewritten by the next tile; acc is complete after the last
    }
    float *o = out + (size_t)t * qdim + (size_t)h * hd;
    for (int d = tid; d < hd; d += ATT_THREADS) {
        float a = 0.0f;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; w++)
            a += acc[(size_t)w * hd + d];
        o[d] = a / l;
    }
}

extern "C" cudaError_t ryz_k_attention(float *out, const float *q, const float *kc, const float *vc,
                                       int T, const int *pos, ryz_attn_geom g, cudaStream_t s) {
    dim3 grid((unsigned)T, (unsigned)g.heads);
    size_t shared = (1 + ATT_WARPS) * (size_t)g.head_dim * sizeof(float);
    float scale = 1.0f / sqrtf((float)g.head_dim);
    return ryz_k_launch(attention_kernel, grid, ATT_THREADS, shared, s, out, q, kc, vc, pos, g,
                        scale);
}
