/* The CPU backend's numeric kernels (cpu.c picks among them): functions of
 * their arguments alone, except decode attention, which shares its chunks
 * out on a pool. Each *_avx2 kernel needs cpu_have_avx2(); off x86-64 it
 * is the scalar one, and there is no decode attention kernel. */
#ifndef RYZ_BACKEND_CPU_KERNELS_H
#define RYZ_BACKEND_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "ryz/backend.h"

/* Whether this CPU runs the AVX2 kernels (AVX2 and FMA); 0 off x86-64. */
int cpu_have_avx2(void);

/* One GEMV over rows [o0, o1) of W (out, in): y[o] = W[o] . x (each
 * GEMV kernel is a ryz_rows_fn). The kernels split [o0, o1) into four
 * bands and take any leftover rows one by one after them; the threads'
 * claims are multiples of 4 rows (o1 one too, or out), so the bands take
 * them all. */
/* fp32 W. */
void cpu_gemv_f32_scalar(float *y, const float *x, const void *wv, int in, int out, int o0,
                         int o1);
/* Row-major bf16 W. */
void cpu_gemv_bf16_scalar(float *y, const float *x, const void *wv, int in, int out, int o0,
                          int o1);
/* xp (in floats, in % 16 == 0) = x in cpu_gemv_bf16_avx2's lane order. */
void cpu_bf16_permute_x(float *xp, const float *x, int in);
/* dst (rows, in) = rows [o0, o0 + rows) of row-major bf16 w, as fp32. */
void cpu_bf16_unpack_rows(float *dst, const uint16_t *w, int o0, int rows, int in);

/* One head's decode scores over L cached rows kvdim apart:
 * scores[l] = scale * q . K[l]. */
void cpu_attn_scores_scalar(float *scores, const float *q, const float *K, int L, int hd,
                            int kvdim, float scale);
/* o (hd) = sum over l of p[l] * V[l], V's L rows kvdim apart. */
void cpu_attn_mix_scalar(float *o, const float *p, const float *V, int L, int hd, int kvdim);

/* Softmax of x[0..n) in place (n >= 1); x[n..len) set to zero. */
void cpu_softmax_masked(float *x, int n, int len);
/* a[i] = silu(a[i]) * b[i] for i < n. */
void cpu_silu_mul_scalar(float *a, const float *b, size_t n);
/* Sum of squares of x[0..n), or of x + r (stored to xr) when r != NULL. */
float cpu_sumsq_scalar(const float *x, const float *r, float *xr, int n);
/* y = w * (scale * x), element by element (y may be x). */
void cpu_norm_scale_scalar(float *y, const float *x, const float *w, float scale, int n);
/* x[i] += y[i] for i < n. */
void cpu_vec_add(float *x, const float *y, size_t n);

#if defined(__x86_64__)
/* cpu_gemv_f32_scalar's rows, in % 8 == 0. */
void cpu_gemv_f32_avx2(float *y, const float *x, const void *wv, int in, int out, int o0,
                       int o1);
/* cpu_gemv_bf16_scalar's rows, in % 16 == 0, xp from cpu_bf16_permute_x. */
void cpu_gemv_bf16_avx2(float *y, const float *xp, const void *wv, int in, int out, int o0,
                        int o1);
/* The scalar kernels' results, 8 lanes at a time (n % 8 == 0 for sumsq
 * and norm_scale). */
void cpu_silu_mul_avx2(float *a, const float *b, size_t n);
float cpu_sumsq_avx2(const float *x, const float *r, float *xr, int n);
void cpu_norm_scale_avx2(float *y, const float *x, const float *w, float scale, int n);

/* One decode attention: phase 0 computes the scores, phase 1 the products
 * with V. Its rows split into `chunks` chunks (1, or from CPU_ATTN_SPLIT_L
 * cached rows on CPU_ATTN_CHUNKS) that the pool's threads claim: scores,
 * then each chunk's products into its own partial output (chunk 0's is
 * out, chunk c's part + (c - 1) heads hd), summed in chunk order, so the
 * result is the same bits at any thread count. Timed alone at 2 threads
 * over 24 layers' caches, 4 chunks read 1.3-1.6x faster than one thread
 * from L = 128 on, as fast at L = 48 and 1.7x slower at L = 16; split by
 * heads instead (each thread half of every row), 1.3-1.7x slower
 * (docs/performance.md). */
#define CPU_ATTN_CHUNKS 4
#define CPU_ATTN_SPLIT_L 128
typedef struct {
    float *out, *part, *s;
    const float *q, *kc, *vc;
    const ryz_attn_geom *g;
    int L, chunks, phase;
    float scale;
} cpu_attn_decode_job;

/* out (heads hd) = attention of j's one new row (position L - 1) over
 * every head, hd % 8 == 0, its chunks on pool's threads; phase is set. */
void cpu_attn_decode_avx2(ryz_pool *pool, cpu_attn_decode_job *j);
#else
#define cpu_gemv_f32_avx2 cpu_gemv_f32_scalar
#define cpu_gemv_bf16_avx2 cpu_gemv_bf16_scalar
#define cpu_silu_mul_avx2 cpu_silu_mul_scalar
#define cpu_sumsq_avx2 cpu_sumsq_scalar
#define cpu_norm_scale_avx2 cpu_norm_scale_scalar
#endif

#endif
