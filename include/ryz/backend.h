/* backend: the compute vtable the model runs on. cpu (OpenBLAS) now; cuda
 * (kernels/ + cuBLAS) fills the same table in a CUDA build. All matrices are
 * row-major float32; W is (out, in) as in llama2.c. */
#ifndef RYZ_BACKEND_H
#define RYZ_BACKEND_H

#include <stdint.h>

#include "ryz/core.h"

typedef struct ryz_backend ryz_backend;

/* How weight matrices are stored. Activations, norms and the KV cache are
 * always float32, and every product accumulates in float32. */
typedef enum { RYZ_DTYPE_F32 = 0, RYZ_DTYPE_BF16 = 1 } ryz_dtype;

/* A weight matrix as the backend reads it: row-major (out, in) in dtype. */
typedef struct {
    const void *data;
    ryz_dtype dtype;
} ryz_matrix;

/* Attention geometry for one sequence on one rank. Query head h (local)
 * reads KV head (head_start + h) / kv_mul - kv_start (local). */
typedef struct {
    int heads;      /* local query heads */
    int head_dim;
    int kv_heads;   /* local KV heads (replicated ones included) */
    int head_start; /* first global query head of this rank */
    int kv_start;   /* first global KV head of this rank */
    int kv_mul;     /* n_heads / n_kv_heads */
} ryz_attn_geom;

typedef struct ryz_backend_iface {
    const char *name;
    void *(*alloc)(void *ctx, ryz_mem_kind kind, size_t bytes);
    void (*free)(void *ctx, void *p);
    /* y (n, out) = x (n, in) . W^T, W (out, in). */
    void (*matmul)(void *ctx, float *y, const float *x, const float *w, int n, int in, int out);
    /* As matmul, with W stored as bfloat16 in the tiled layout of
     * ryz_bf16_pack_rows, every product accumulated in fp32. NULL when the
     * backend has no bf16. */
    void (*matmul_bf16)(void *ctx, float *y, const float *x, const uint16_t *w, int n, int in,
                        int out);
    /* y (n, dim) = x / sqrt(mean(x^2) + eps) * w, per row. y may equal x. */
    void (*rmsnorm)(void *ctx, float *y, const float *x, const float *w, int n, int dim,
                    float eps);
    /* Rotates interleaved pairs of x (n, heads*head_dim) in place; row t is
     * at position pos0 + t. */
    void (*rope)(void *ctx, float *x, int n, int heads, int head_dim, int pos0, float base);
    /* a (n) = silu(a) * b. */
    void (*silu_mul)(void *ctx, float *a, const float *b, size_t n);
    /* x (n) += y. */
    void (*add)(void *ctx, float *x, const float *y, size_t n);
    /* Causal attention for T new rows at positions pos0..pos0+T-1 of one
     * sequence: q (T, heads*head_dim), caches (seq_len, kv_heads*head_dim)
     * already holding positions 0..pos0+T-1, out (T, heads*head_dim),
     * scratch (T, pos0+T) floats. */
    void (*attention)(void *ctx, float *out, const float *q, const float *kc, const float *vc,
                      int T, int pos0, const ryz_attn_geom *g, float *scratch);
} ryz_backend_iface;

struct ryz_backend {
    const ryz_backend_iface *iface;
    void *ctx;
};

/* The CPU backend with `threads` threads (>= 1) for its own decode GEMV and
 * for OpenBLAS; free with ryz_backend_free. */
ryz_status ryz_backend_init_cpu(int threads, ryz_backend *out);
/* Releases what init allocated; safe on a zeroed or freed backend. */
void ryz_backend_free(ryz_backend *b);

/* y (n, out) = x (n, in) . W^T through the backend's matmul for W's dtype. */
void ryz_backend_matmul(ryz_backend *b, float *y, const float *x, ryz_matrix w, int n, int in,
                        int out);
/* A float32 matrix. */
static inline ryz_matrix ryz_matrix_f32(const float *w) {
    return (ryz_matrix){w, RYZ_DTYPE_F32};
}
/* "f32" or "bf16"; bytes per element. */
const char *ryz_dtype_name(ryz_dtype d);
size_t ryz_dtype_size(ryz_dtype d);
/* Parses "f32" / "fp32" / "float32" or "bf16" / "bfloat16"; EINVAL naming
 * what is accepted otherwise. */
ryz_status ryz_dtype_parse(const char *text, ryz_dtype *out);

/* bfloat16 is the high half of a float32. Rounds to nearest even; NaN stays
 * NaN (quiet). */
static inline uint16_t ryz_bf16_from_f32(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}
static inline float ryz_f32_from_bf16(uint16_t h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}

/* Where element (o, i) of a bf16 matrix (out, in) lives. When in % 16 == 0,
 * rows go in groups of four, each group stored as 16-column tiles of its
 * four rows in turn (r0 i..i+15, r1 i..i+15, ...), so a decode GEMV reads
 * one sequential stream; rows after the last full group, and every row when
 * in % 16 != 0, are plain row-major. */
static inline size_t ryz_bf16_offset(int o, int i, int in, int out) {
    if (in % 16 != 0 || o >= out - out % 4) return (size_t)o * in + (size_t)i;
    return (size_t)(o & ~3) * in + (size_t)(i >> 4) * 64 + (size_t)(o & 3) * 16 + (size_t)(i & 15);
}

/* Rounds rows [row0, row0 + nrows) of a matrix (out, in), given row-major
 * in src (nrows, in), into their places in dst (the whole matrix's bf16
 * storage). Chunks may be packed in any order. */
void ryz_bf16_pack_rows(uint16_t *dst, const float *src, int row0, int nrows, int in, int out);
/* Index of the largest of x[0..n) (first one on ties). */
int ryz_argmax(const float *x, int n);

#endif
