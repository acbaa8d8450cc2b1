/* Launchers of the kernels in the kernels/ .cu files, called from
 * src/backend/cuda.c (C on one side, CUDA C++ on the other, hence C
 * linkage). Every pointer is device memory; every launcher enqueues on
 * stream s (the cuda backend's: the legacy default stream, or its
 * recording stream while it records, see src/backend/cuda.c) and returns
 * the launch status, so a bad
 * configuration is caught at the call and a fault in the kernel at the
 * next synchronisation. Arguments are validated by the caller: launchers
 * only compute grid sizes. */
#ifndef RYZ_KERNELS_H
#define RYZ_KERNELS_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "ryz/backend.h"

/* Largest head_dim the attention kernel takes: it keeps q and the output
 * row of one head in shared memory (2 * head_dim floats, 8 KiB here). */
#define RYZ_K_MAX_HEAD_DIM 1024
/* Largest n (rows of x) the GEMV kernels take (fp32 and bf16); a larger n
 * is a prefill, which goes to cuBLAS (bf16: W widened to fp32 first).
 * Decode batches are this small. */
#define RYZ_K_GEMV_MAX_N 8
#define RYZ_K_BF16_GEMV_MAX_N RYZ_K_GEMV_MAX_N
/* Most products of one x a _multi GEMV launch computes (q, k and v). */
#define RYZ_K_MULTI_MAX RYZ_MULTI_MAX

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the launchers below let a kernel on a stream other than the
 * legacy one start before the previous kernel ends (programmatic
 * dependent launch, common.cuh); call with on = 1 only for a device of
 * compute capability 9.0 or later. It stays off when the kernels running
 * on the current device were not compiled for 9.0 (JIT from older PTX).
 * Process-wide, as the last call set it; off until called. Returns whether
 * it is on. */
int ryz_k_set_pdl(int on);

/* y (n, dim) = x / sqrt(mean(x^2) + eps) * w per row; y may equal x. */
cudaError_t ryz_k_rmsnorm(float *y, const float *x, const float *w, int n, int dim, float eps,
                          cudaStream_t s);
/* x (n, dim) += r, then y = rmsnorm(x) * w as ryz_k_rmsnorm; y != x. */
cudaError_t ryz_k_add_rmsnorm(float *y, float *x, const float *r, const float *w, int n, int dim,
                              float eps, cudaStream_t s);
/* Rotates interleaved pairs of x (n, heads*head_dim) in place, row t at
 * position *pos + t (pos on the device, read by the kernel); head_dim
 * even. */
cudaError_t ryz_k_rope(float *x, int n, int heads, int head_dim, const int *pos, float base,
                       cudaStream_t s);
/* a (n) = silu(a) * b. */
cudaError_t ryz_k_silu_mul(float *a, const float *b, size_t n, cudaStream_t s);
/* x (n) += y. */
cudaError_t ryz_k_add(float *x, const float *y, size_t n, cudaStream_t s);
/* q (T, heads*head_dim) and k (T, kv_heads*head_dim) rotated in place as
 * ryz_k_rope does, then k and v stored at rows *pos.. of kc and vc. */
cudaError_t ryz_k_rope_cache(float *q, float *k, const float *v, float *kc, float *vc, int T,
                             int heads, int kv_heads, int head_dim, const int *pos, float base,
                             cudaStream_t s);
/* Causal attention of T rows at positions *pos.. (the cuda backend's
 * attention op, same layouts as cpu_attention); needs no scratch.
 * 1 <= head_dim <= RYZ_K_MAX_HEAD_DIM, T >= 1. */
cudaError_t ryz_k_attention(float *out, const float *q, const float *kc, const float *vc, int T,
                            const int *pos, ryz_attn_geom g, cudaStream_t s);
/* x (n, dim): row r is emb (vocab_local, dim) row tokens[r] - vocab_start
 * when that is in [0, vocab_local), else zero. tokens (n) on the device. */
cudaError_t ryz_k_embedding(float *x, const int *tokens, int n, const float *emb, int vocab_start,
                            int vocab_local, int dim, cudaStream_t s);
/* logits (n, vocab_padded): columns vocab..vocab_padded-1 set to -inf. */
cudaError_t ryz_k_mask_vocab(float *logits, int n, int vocab, int vocab_padded, cudaStream_t s);
/* idx (rows) = index of the largest of x[r*ld .. r*ld+n) (first on ties). */
cudaError_t ryz_k_argmax(int *idx, const float *x, int rows, int n, int ld, cudaStream_t s);

/* y (n, out) = x (n, in) . W^T with W (out, in) row-major fp32: the
 * decode GEMV (one to eight warps per row, 16-byte loads). 1 <= n <= RYZ_K_GEMV_MAX_N,
 * out >= 1, in % 4 == 0, y and w not NULL, x and w 16-byte aligned (else
 * cudaErrorInvalidValue). */
cudaError_t ryz_k_f32_gemv(float *y, const float *x, const float *w, int n, int in, int out,
                           cudaStream_t s);
/* y (n, out) = x (n, in) . W^T with W (out, in) bfloat16 in the layout of
 * ryz_bf16_offset, fp32 accumulation: the decode GEMV, which reads W once
 * in 16-byte loads. 1 <= n <= RYZ_K_BF16_GEMV_MAX_N (else
 * cudaErrorInvalidValue); when in % 16 == 0, x and w 16-byte aligned. */
cudaError_t ryz_k_bf16_gemv(float *y, const float *x, const uint16_t *w, int n, int in, int out,
                            cudaStream_t s);
/* y[i] (n, out[i]) = x (n, in) . W[i]^T for i < count, 1 <= count <=
 * RYZ_K_MULTI_MAX, every W[i] (out[i], in) as ryz_k_f32_gemv takes it
 * (same limits, each 16-byte aligned; the rows together at most INT_MAX):
 * several products of one x (q, k and v) in one launch, each warp on a
 * row of one of them. The warps a row gets follow the launch's rows in
 * all, so each product's sums may round differently from its own
 * ryz_k_f32_gemv's. */
cudaError_t ryz_k_f32_gemv_multi(int count, float *const *y, const float *const *w,
                                 const int *out, const float *x, int n, int in, cudaStream_t s);
/* The same with every W[i] bf16 as ryz_k_bf16_gemv takes it; in % 16 == 0,
 * each out[i] % 4 == 0, x and every W[i] 16-byte aligned (whole row groups
 * only), else cudaErrorInvalidValue. */
cudaError_t ryz_k_bf16_gemv_multi(int count, float *const *y, const uint16_t *const *w,
                                  const int *out, const float *x, int n, int in, cudaStream_t s);
/* The pair of products matmul_pair describes (include/ryz/backend.h) in
 * one launch: y (n, out) = silu(x . W1^T) * (x . W2^T), x (n, in), W1 and
 * W2 (out, in) fp32 as ryz_k_f32_gemv takes them (same limits). The
 * second product never leaves the kernel, so it needs no scratch. */
cudaError_t ryz_k_f32_gemv_pair(float *y, const float *x, const float *w1, const float *w2, int n,
                                int in, int out, cudaStream_t s);
/* The same with W1 and W2 bf16 as ryz_k_bf16_gemv takes them; in % 16 == 0,
 * out % 4 == 0, x, W1 and W2 16-byte aligned (whole row groups only). */
cudaError_t ryz_k_bf16_gemv_pair(float *y, const float *x, const uint16_t *w1, const uint16_t *w2,
                                 int n, int in, int out, cudaStream_t s);
/* dst (rows, in) row-major fp32 = rows o0..o0+rows-1 of W (out, in) as
 * above. o0 a multiple of 4 and o0 + rows a multiple of 4 or out: whole
 * row groups, which occupy W's elements [o0 * in, (o0 + rows) * in). */
cudaError_t ryz_k_bf16_widen(float *dst, const uint16_t *w, int o0, int rows, int in, int out,
                             cudaStream_t s);
/* bytes bytes from src to dst (16-byte aligned, not overlapping): a
 * grid-stride float4 copy, the bandwidth probe's kernel. */
cudaError_t ryz_k_copy(void *dst, const void *src, size_t bytes, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
