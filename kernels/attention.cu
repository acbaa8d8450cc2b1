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

// Block (t, h): query row t (position *pos + t), local head h. Shared
// memory: q_s (head_dim) the query, acc (head_dim) the running output,
// both sized by the launch; p_s the current tile's probabilities.
// Thread j scores key j0 + j of a tile (its own dot product over head_dim);
// for the V product, thread d owns output elements d, d + ATT_THREADS, ...
static __global__ void __launch_bounds__(ATT_THREADS)
    attention_kernel(float *out, const float *q, const float *kc, const float *vc, const int *pos,
                     ryz_attn_geom g, float scale) {
    extern __shared__ float4 dyn4[]; // 2 * head_dim floats, 16-byte aligned for dot_vec4
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
    for (int d = tid; d < hd; d += ATT_THREADS) {
        q_s[d] = qr[d];
        acc[d] = 0.0f;
    }
    __syncthreads();
    const int len = *pos + t + 1; // keys 0..*pos+t: causal
    // K rows as float4 where every row and q_s are 16-byte aligned
    const bool vec4 = hd % 4 == 0 && kvdim % 4 == 0 && (uintptr_t)K % 16 == 0;
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
        for (int d = tid; d < hd; d += ATT_THREADS) {
            float a = acc[d] * corr;
#pragma unroll 8
            for (int jj = 0; jj < nj; jj++)
                a += p_s[jj] * V[(size_t)(j0 + jj) * kvdim + d];
            acc[d] = a;
        }
        m = m_new;
        __syncthreads(); // p_s is rewritten by the next tile
    }
    float *o = out + (size_t)t * qdim + (size_t)h * hd;
    for (int d = tid; d < hd; d += ATT_THREADS)
        o[d] = acc[d] / l;
}

extern "C" cudaError_t ryz_k_attention(float *out, const float *q, const float *kc, const float *vc,
                                       int T, const int *pos, ryz_attn_geom g, cudaStream_t s) {
    dim3 grid((unsigned)T, (unsigned)g.heads);
    size_t shared = 2 * (size_t)g.head_dim * sizeof(float);
    float scale = 1.0f / sqrtf((float)g.head_dim);
    return ryz_k_launch(attention_kernel, grid, ATT_THREADS, shared, s, out, q, kc, vc, pos, g,
                        scale);
}
