/* The cuda backend: the compute vtable on one GPU. Host-side glue in C:
 * argument checks, cuBLAS for the matmuls, launches of the kernels/ .cu
 * files, device memory accounting by kind, copies and CUDA-event timers.
 *
 * Everything runs on the legacy default (NULL) stream. One stream keeps
 * the ops ordered without events, cuBLAS uses it unless told otherwise,
 * and the nccl communicator's blocking stream is ordered against it both
 * ways by CUDA's rules, so a collective reads what the last kernel wrote.
 * The one exception is recording: the legacy stream cannot be captured,
 * so between record_begin and record_end the ops go to a stream of the
 * backend's own, captured into a CUDA graph, and the graph is launched on
 * the legacy stream again, in order with everything else.
 *
 * The compute and enqueued data ops return void, so an op that fails keeps
 * its error in the context (first one wins) and later ops return at once;
 * the sync op (and upload/download) reports it. Faults inside a kernel
 * surface at that synchronisation. The backend's memory is not visible to
 * the host (host_visible 0): the model moves data only through the
 * vtable's upload, download and copy_rows.
 *
 * Without RYZ_WITH_CUDA only stubs are built (the end of the file). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/cuda.h"

int ryz_cuda_local_rank(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                       "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        char *end = NULL;
        long r = v && *v ? strtol(v, &end, 10) : -1;
        if (end && *end == '\0' && r >= 0 && r < (1L << 20))
            return (int)r;
    }
    return 0;
}

ryz_cuda_opts ryz_cuda_opts_default(void) {
    return (ryz_cuda_opts){.device = -1, .tf32 = 0};
}

#ifdef RYZ_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "../../kernels/kernels.h"

/* cuBLAS's recommended workspace on Hopper (4 MiB suffices before it).
 * Given up front, so no GEMM allocates device memory on the hot path. */
#define BLAS_WORKSPACE_BYTES ((size_t)32 << 20)

/* The bf16 prefill's fp32 copy of W is made this many floats (64 MiB) at
 * a time at most, a block of rows per cuBLAS call: big enough that each
 * GEMM runs at full rate, small beside the weights of a model whose
 * matrices exceed it (a 7B LM head widened whole would be 512 MiB). */
#define WIDE_MAX_FLOATS ((size_t)16 << 20)

/* The bandwidth probe's smallest copy: below it launch overhead and
 * caches, not memory, set the time. */
#define COPY_MIN_BYTES ((size_t)1 << 20)

/* One live cudaMalloc block. */
typedef struct {
    void *p;
    size_t bytes;
    ryz_mem_kind kind;
} dev_block;

typedef struct {
    int device;
    cublasHandle_t blas;
    void *workspace;   /* (BLAS_WORKSPACE_BYTES) cuBLAS's, counted as scratch */
    float *wide;       /* (wide_floats) bf16 prefill's widened rows of W, counted
                          as scratch; allocated at the first bf16 prefill,
                          grown when a larger matrix comes, freed by destroy */
    size_t wide_floats;
    dev_block *blocks; /* (cap) live blocks, n_blocks of them, unordered */
    size_t n_blocks, cap;
    size_t bytes[RYZ_MEM_NKINDS], peak[RYZ_MEM_NKINDS];
    int f32_gemv;        /* 1: decode matmuls by ryz_k_f32_gemv, 0: cuBLAS's gemv */
    int pair;            /* 1: matmul_pair and _multi in one launch where they fit */
    cudaStream_t stream; /* where ops enqueue: NULL (legacy), or rec while recording */
    cudaStream_t rec;    /* the recording stream, made at the first record_begin */
    ryz_status err;     /* first error of an op, RYZ_OK while none */
    char err_msg[1024]; /* its message */
} cuda_ctx;

struct ryz_cuda_timer {
    cudaEvent_t start, stop;
};

int ryz_cuda_built(void) {
    return 1;
}

/* The status for a failed CUDA runtime call `what` (printf-style). */
__attribute__((format(printf, 2, 3))) static ryz_status cu_fail(cudaError_t e, const char *what,
                                                                ...) {
    char buf[512];
    va_list ap;
    va_start(ap, what);
    vsnprintf(buf, sizeof buf, what, ap);
    va_end(ap);
    ryz_status s = e == cudaErrorMemoryAllocation ? RYZ_ENOMEM : RYZ_EIO;
    return ryz_error(s, "%s failed: %s (%s)", buf, cudaGetErrorString(e), cudaGetErrorName(e));
}

static ryz_status cu_check(cudaError_t e, const char *call) {
    return e == cudaSuccess ? RYZ_OK : cu_fail(e, "%s", call);
}

static ryz_status blas_check(cublasStatus_t s, const char *call) {
    if (s == CUBLAS_STATUS_SUCCESS)
        return RYZ_OK;
    return ryz_error(s == CUBLAS_STATUS_ALLOC_FAILED ? RYZ_ENOMEM : RYZ_EIO, "%s failed: %s", call,
                     cublasGetStatusString(s));
}

/* Keeps status s (message in ryz_last_error) as the context's error
 * unless an earlier one is kept already. */
static void keep(cuda_ctx *c, ryz_status s) {
    if (s == RYZ_OK || c->err != RYZ_OK)
        return;
    c->err = s;
    snprintf(c->err_msg, sizeof c->err_msg, "cuda backend: %s", ryz_last_error());
}

/* The status of launching `kernel` (OK or EIO naming it). */
static ryz_status launch_status(cudaError_t e, const char *kernel) {
    return e == cudaSuccess ? RYZ_OK : cu_fail(e, "launch of the %s kernel", kernel);
}

/* Keeps a failed launch of `kernel`. */
static void launched(cuda_ctx *c, cudaError_t e, const char *kernel) {
    if (e != cudaSuccess)
        keep(c, cu_fail(e, "launch of the %s kernel on device %d", kernel, c->device));
}

ryz_status ryz_cuda_device_count(int *n) {
    *n = 0;
    cudaError_t e = cudaGetDeviceCount(n);
    if (e != cudaSuccess) {
        *n = 0;
        return cu_fail(e, "cudaGetDeviceCount");
    }
    if (*n < 1)
        return ryz_error(RYZ_EIO, "cudaGetDeviceCount: no CUDA device visible");
    return RYZ_OK;
}

/* ---- memory -------------------------------------------------------------- */

/* Allocates `bytes` zeroed device bytes of `kind` and records them. */
static ryz_status dev_alloc(cuda_ctx *c, ryz_mem_kind kind, size_t bytes, void **out) {
    *out = NULL;
    if (c->stream) /* cudaMalloc is not allowed in a capture, and would not be replayed */
        return ryz_error(RYZ_EINVAL,
                         "cuda alloc of %zu bytes (%s) while recording a step: allocate "
                         "before recording",
                         bytes, ryz_mem_kind_name(kind));
    if ((unsigned)kind >= RYZ_MEM_NKINDS)
        return ryz_error(RYZ_EINVAL, "cuda alloc: memory kind %d is not one of ryz_mem_kind",
                         (int)kind);
    if (c->n_blocks == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        dev_block *nb = realloc(c->blocks, cap * sizeof *nb);
        if (!nb)
            return ryz_error(RYZ_ENOMEM, "out of host memory for the cuda backend's block table");
        c->blocks = nb, c->cap = cap;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e == cudaSuccess)
        e = cudaMemset(p, 0, bytes);
    if (e != cudaSuccess) {
        if (p)
            cudaFree(p);
        cudaGetLastError(); /* not sticky: the next launch check must not see it */
        return cu_fail(e, "cudaMalloc of %zu bytes (%s) on device %d", bytes,
                       ryz_mem_kind_name(kind), c->device);
    }
    c->blocks[c->n_blocks++] = (dev_block){p, bytes, kind};
    c->bytes[kind] += bytes;
    if (c->bytes[kind] > c->peak[kind])
        c->peak[kind] = c->bytes[kind];
    *out = p;
    return RYZ_OK;
}

/* The vtable's alloc: NULL with the message set on failure, as cpu's. */
static void *cuda_alloc(void *ctx, ryz_mem_kind kind, size_t bytes) {
    void *p;
    return dev_alloc(ctx, kind, bytes, &p) == RYZ_OK ? p : NULL;
}

static void cuda_free(void *ctx, void *p) {
    cuda_ctx *c = ctx;
    if (!p)
        return;
    size_t i = 0;
    while (i < c->n_blocks && c->blocks[i].p != p)
        i++;
    if (i == c->n_blocks) {
        keep(c, ryz_error(RYZ_EINVAL, "free of %p: not a live block of this cuda backend", p));
        return;
    }
    c->bytes[c->blocks[i].kind] -= c->blocks[i].bytes;
    c->blocks[i] = c->blocks[--c->n_blocks];
    keep(c, cu_check(cudaFree(p), "cudaFree"));
}

/* ---- the compute ops ------------------------------------------------------ */

/* Whether a matmul op `op` of (n, in) by (out, in)^T has work to do: 0
 * when n or out is 0, after a kept error, or (error kept) for a bad shape. */
static int matmul_runs(cuda_ctx *c, const char *op, int n, int in, int out) {
    if (c->err != RYZ_OK || n == 0 || out == 0)
        return 0;
    if (n >= 0 && in >= 1 && out >= 0)
        return 1;
    keep(c, ryz_error(RYZ_EINVAL, "%s of (%d, %d) by (%d, %d)^T: need n >= 0, in >= 1, out >= 0",
                      op, n, in, out, in));
    return 0;
}

/* y (n, rows) with rows ldy floats apart = x (n, in) . W^T, W row-major
 * fp32 (rows, in). cuBLAS is column-major: the row-major y is the
 * column-major (rows, n) W x^T with leading dimension ldy, W row-major
 * (rows, in) being a column-major (in, rows) matrix used transposed. */
static ryz_status sgemm_rows(cuda_ctx *c, float *y, int ldy, const float *x, const float *w, int n,
                             int in, int rows) {
    const float one = 1.0f, zero = 0.0f;
    return blas_check(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, in, &one, w, in, x,
                                  in, &zero, y, ldy),
                      "cublasSgemm");
}

static int aligned16(const void *p) {
    return (uintptr_t)p % 16 == 0;
}

/* y (n, out) = x (n, in) . W^T: the GEMV kernel for decode-sized n (when
 * in % 4 == 0 and x, W are 16-byte aligned, as allocations and the
 * model's row offsets are), else cublasSgemv for n = 1, sgemm_rows above. */
static void cuda_matmul(void *ctx, float *y, const float *x, const float *w, int n, int in,
                        int out) {
    cuda_ctx *c = ctx;
    if (!matmul_runs(c, "matmul", n, in, out))
        return;
    const float one = 1.0f, zero = 0.0f;
    if (c->f32_gemv && n <= RYZ_K_GEMV_MAX_N && in % 4 == 0 && aligned16(x) && aligned16(w))
        launched(c, ryz_k_f32_gemv(y, x, w, n, in, out, c->stream), "f32 gemv");
    else if (n == 1)
        keep(c,
             blas_check(cublasSgemv(c->blas, CUBLAS_OP_T, in, out, &one, w, in, x, 1, &zero, y, 1),
                        "cublasSgemv"));
    else
        keep(c, sgemm_rows(c, y, out, x, w, n, in, out));
}

/* Rows of W (out, in) a widening block of c->wide holds, after growing it
 * (when it is smaller) to min(out, max(4, WIDE_MAX_FLOATS / in)) rows:
 * whole row groups, or all of W. It only grows, so a model's prefill
 * allocates at most once per larger matrix, and decode never. */
static ryz_status wide_rows(cuda_ctx *c, int in, int out, int *rows) {
    size_t cap = WIDE_MAX_FLOATS / (size_t)in < 4 ? 4 * (size_t)in : WIDE_MAX_FLOATS;
    size_t want = (size_t)out * (size_t)in < cap ? (size_t)out * (size_t)in : cap;
    if (c->wide_floats < want) {
        cuda_free(c, c->wide);
        c->wide = NULL, c->wide_floats = 0;
        ryz_status st = dev_alloc(c, RYZ_MEM_SCRATCH, want * sizeof(float), (void **)&c->wide);
        if (st != RYZ_OK)
            return ryz_error_wrap(st, "bf16 prefill: the fp32 copy of %d rows of W (%d, %d)",
                                  (int)(want / (size_t)in), out, in);
        c->wide_floats = want;
    }
    size_t fit = c->wide_floats / (size_t)in;
    *rows = fit >= (size_t)out ? out : (int)(fit & ~(size_t)3);
    return RYZ_OK;
}

/* Prefill with bf16 W: a block of rows at a time widened to fp32 in
 * c->wide, then multiplied by cuBLAS into the block's columns of y, so the
 * GEMM runs at the fp32 rate and the widening is one pass over W. */
static ryz_status bf16_prefill(cuda_ctx *c, float *y, const float *x, const uint16_t *w, int n,
                               int in, int out) {
    int rows = 0;
    ryz_status st = wide_rows(c, in, out, &rows);
    for (int o0 = 0; st == RYZ_OK && o0 < out; o0 += rows) {
        int rb = out - o0 < rows ? out - o0 : rows;
        st = launch_status(ryz_k_bf16_widen(c->wide, w, o0, rb, in, out, c->stream),
                           "bf16 widen");
        if (st == RYZ_OK)
            st = sgemm_rows(c, y + o0, out, x, c->wide, n, in, rb);
    }
    return st;
}

/* y (n, out) = x (n, in) . W^T, W bf16 in ryz_bf16_offset's layout: the
 * GEMV kernel for decode-sized n (its tiled loads need x and W 16-byte
 * aligned, which allocations and the model's row offsets are), else
 * bf16_prefill. */
static void cuda_matmul_bf16(void *ctx, float *y, const float *x, const uint16_t *w, int n, int in,
                             int out) {
    cuda_ctx *c = ctx;
    if (!matmul_runs(c, "matmul_bf16", n, in, out))
        return;
    if (n <= RYZ_K_BF16_GEMV_MAX_N && (in % 16 != 0 || (aligned16(x) && aligned16(w))))
        launched(c, ryz_k_bf16_gemv(y, x, w, n, in, out, c->stream), "bf16 gemv");
    else
        keep(c, bf16_prefill(c, y, x, w, n, in, out));
}

/* Whether a norm op `op` of n rows of dim has work: 0 when n is 0, after
 * a kept error, or (error kept) for a bad shape. */
static int norm_runs(cuda_ctx *c, const char *op, int n, int dim) {
    if (c->err != RYZ_OK || n == 0)
        return 0;
    if (n > 0 && dim >= 1)
        return 1;
    keep(c, ryz_error(RYZ_EINVAL, "%s of %d rows of %d: need n >= 0 and dim >= 1", op, n, dim));
    return 0;
}

static void cuda_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int dim,
                         float eps) {
    cuda_ctx *c = ctx;
    if (norm_runs(c, "rmsnorm", n, dim))
        launched(c, ryz_k_rmsnorm(y, x, w, n, dim, eps, c->stream), "rmsnorm");
}

static void cuda_add_rmsnorm(void *ctx, float *y, float *x, const float *r, const float *w, int n,
                             int dim, float eps) {
    cuda_ctx *c = ctx;
    if (norm_runs(c, "add_rmsnorm", n, dim))
        launched(c, ryz_k_add_rmsnorm(y, x, r, w, n, dim, eps, c->stream), "add_rmsnorm");
}

/* Whether rope op `op` of n rows of `heads` heads of head_dim has work
 * (as norm_runs). */
static int rope_runs(cuda_ctx *c, const char *op, int n, int heads, int head_dim) {
    if (c->err != RYZ_OK || n == 0)
        return 0;
    if (n > 0 && heads >= 1 && head_dim >= 2 && head_dim % 2 == 0)
        return 1;
    keep(c, ryz_error(RYZ_EINVAL,
                      "%s of %d rows, %d heads of %d: need n >= 0, heads >= 1, head_dim even", op,
                      n, heads, head_dim));
    return 0;
}

static void cuda_rope(void *ctx, float *x, int n, int heads, int head_dim, const int *pos,
                      float base) {
    cuda_ctx *c = ctx;
    if (rope_runs(c, "rope", n, heads, head_dim))
        launched(c, ryz_k_rope(x, n, heads, head_dim, pos, base, c->stream), "rope");
}

static void cuda_rope_cache(void *ctx, float *q, float *k, const float *v, float *kc, float *vc,
                            int T, int heads, int kv_heads, int head_dim, const int *pos,
                            float base) {
    cuda_ctx *c = ctx;
    if (rope_runs(c, "rope_cache", T, heads, head_dim) &&
        rope_runs(c, "rope_cache (k)", T, kv_heads, head_dim))
        launched(c,
                 ryz_k_rope_cache(q, k, v, kc, vc, T, heads, kv_heads, head_dim, pos, base,
                                  c->stream),
                 "rope_cache");
}

static void cuda_silu_mul(void *ctx, float *a, const float *b, size_t n) {
    cuda_ctx *c = ctx;
    if (c->err == RYZ_OK && n > 0)
        launched(c, ryz_k_silu_mul(a, b, n, c->stream), "silu_mul");
}

static void cuda_add(void *ctx, float *x, const float *y, size_t n) {
    cuda_ctx *c = ctx;
    if (c->err == RYZ_OK && n > 0)
        launched(c, ryz_k_add(x, y, n, c->stream), "add");
}

/* Whether the one-launch GEMVs take these count matrices W[i] (out[i],
 * in) of one x (decode-sized n, the alignment and, for bf16, the whole row
 * groups their kernels need; fp32 also not switched to cuBLAS by
 * RYZ_CUDA_GEMV), and are not switched off by RYZ_CUDA_PAIR=0 (for
 * comparison). */
static int gemv_one_launch_fits(const cuda_ctx *c, ryz_dtype dtype, const float *x, int count,
                                const void *const *w, const int *out, int n, int in) {
    int ok = c->pair && aligned16(x) && count >= 1 && count <= RYZ_K_MULTI_MAX;
    for (int i = 0; ok && i < count; i++)
        ok = aligned16(w[i]) && out[i] >= 1 && (dtype != RYZ_DTYPE_BF16 || out[i] % 4 == 0);
    if (dtype == RYZ_DTYPE_BF16)
        return ok && n <= RYZ_K_BF16_GEMV_MAX_N && in % 16 == 0;
    return ok && c->f32_gemv && n <= RYZ_K_GEMV_MAX_N && in % 4 == 0;
}

static const ryz_backend_iface cuda_iface;

/* SwiGLU's two products of x (matmul_pair): one launch reading both
 * matrices where gemv_one_launch_fits (y2 untouched), else the two
 * matmuls and silu_mul one after the other. */
static void cuda_matmul_pair(void *ctx, float *y1, float *y2, const float *x, const void *w1,
                             const void *w2, ryz_dtype dtype, int n, int in, int out) {
    cuda_ctx *c = ctx;
    const void *w[2] = {w1, w2};
    const int outs[2] = {out, out};
    if (!matmul_runs(c, "matmul_pair", n, in, out))
        return;
    if (gemv_one_launch_fits(c, dtype, x, 2, w, outs, n, in)) {
        cudaError_t e = dtype == RYZ_DTYPE_BF16
                            ? ryz_k_bf16_gemv_pair(y1, x, w1, w2, n, in, out, c->stream)
                            : ryz_k_f32_gemv_pair(y1, x, w1, w2, n, in, out, c->stream);
        launched(c, e, "gemv pair");
        return;
    }
    ryz_backend self = {.iface = &cuda_iface, .ctx = c};
    ryz_backend_matmul_pair_separate(&self, y1, y2, x, (ryz_matrix){w1, dtype},
                                     (ryz_matrix){w2, dtype}, n, in, out);
}

/* Several products of x (matmul_multi): one launch, each warp or block on
 * a row of one W, where gemv_one_launch_fits, else one matmul each. */
static void cuda_matmul_multi(void *ctx, int count, float *const *y, const void *const *w,
                              const int *out, ryz_dtype dtype, const float *x, int n, int in) {
    cuda_ctx *c = ctx;
    ryz_matrix m[RYZ_MULTI_MAX];
    if (count < 1 || count > RYZ_MULTI_MAX) {
        keep(c, ryz_error(RYZ_EINVAL, "matmul_multi of %d products: need 1 to %d", count,
                          RYZ_MULTI_MAX));
        return;
    }
    for (int i = 0; i < count; i++) /* a bad shape keeps its error; an empty product is skipped */
        if (!matmul_runs(c, "matmul_multi", n, in, out[i]) && c->err != RYZ_OK)
            return;
    if (n > 0 && gemv_one_launch_fits(c, dtype, x, count, w, out, n, in)) {
        cudaError_t e = dtype == RYZ_DTYPE_BF16
                            ? ryz_k_bf16_gemv_multi(count, y, (const uint16_t *const *)w, out, x,
                                                    n, in, c->stream)
                            : ryz_k_f32_gemv_multi(count, y, (const float *const *)w, out, x, n,
                                                   in, c->stream);
        launched(c, e, "gemv multi");
        return;
    }
    for (int i = 0; i < count; i++)
        m[i] = (ryz_matrix){w[i], dtype};
    ryz_backend self = {.iface = &cuda_iface, .ctx = c};
    ryz_backend_matmul_multi_separate(&self, count, y, x, m, out, n, in);
}

/* EINVAL unless geometry g and T fit the attention kernel. */
static ryz_status attn_check(const ryz_attn_geom *g, int T) {
    if (T < 1 || g->heads < 1 || g->heads > 65535 || g->head_dim < 1 ||
        g->head_dim > RYZ_K_MAX_HEAD_DIM || g->kv_heads < 1 || g->kv_mul < 1)
        return ryz_error(RYZ_EINVAL,
                         "attention of %d rows, %d heads of %d, %d KV heads, kv_mul %d: need "
                         "T >= 1, 1..65535 heads, head_dim 1..%d, kv_heads >= 1, kv_mul >= 1",
                         T, g->heads, g->head_dim, g->kv_heads, g->kv_mul,
                         RYZ_K_MAX_HEAD_DIM);
    int first = g->head_start / g->kv_mul - g->kv_start;
    int last = (g->head_start + g->heads - 1) / g->kv_mul - g->kv_start;
    if (first < 0 || last >= g->kv_heads)
        return ryz_error(RYZ_EINVAL,
                         "attention: query heads %d..%d read local KV heads %d..%d, outside the "
                         "%d this rank holds (kv_start %d, kv_mul %d)",
                         g->head_start, g->head_start + g->heads - 1, first, last, g->kv_heads,
                         g->kv_start, g->kv_mul);
    return RYZ_OK;
}

static void cuda_attention(void *ctx, float *out, const float *q, const float *kc, const float *vc,
                           int T, const int *pos, const ryz_attn_geom *g, float *scratch) {
    cuda_ctx *c = ctx;
    (void)scratch; /* scores live in shared memory, a tile at a time */
    if (c->err != RYZ_OK)
        return;
    ryz_status st = attn_check(g, T);
    if (st != RYZ_OK) {
        keep(c, st);
        return;
    }
    launched(c, ryz_k_attention(out, q, kc, vc, T, pos, *g, c->stream), "attention");
}

/* ---- data movement (the vtable's ops; the helpers below share them) ---- */

/* OK, or the error c kept (with its message). */
static ryz_status kept(const cuda_ctx *c) {
    return c->err == RYZ_OK ? RYZ_OK : ryz_error(c->err, "%s", c->err_msg);
}

/* A synchronous host<->device copy: `what` names it in an error. Host
 * memory may be pageable; cudaMemcpy orders it after earlier NULL-stream
 * work, and a download returns once the data is on the host. */
static ryz_status xfer(cuda_ctx *c, const char *what, void *dst, const void *src, size_t bytes,
                       enum cudaMemcpyKind kind) {
    if (bytes == 0)
        return RYZ_OK;
    cudaError_t e = cudaMemcpy(dst, src, bytes, kind);
    if (e == cudaSuccess)
        return RYZ_OK;
    cudaGetLastError(); /* not sticky: the next launch check must not see it */
    return cu_fail(e, "%s of %zu bytes on device %d", what, bytes, c->device);
}

/* xfer as the vtable's upload and download do it: the kept error first,
 * and a failed copy is kept too (a fault of an earlier kernel surfaces
 * here). */
static ryz_status kept_xfer(cuda_ctx *c, const char *what, void *dst, const void *src,
                            size_t bytes, enum cudaMemcpyKind kind) {
    ryz_status st = kept(c);
    if (st == RYZ_OK)
        keep(c, st = xfer(c, what, dst, src, bytes, kind));
    return st;
}

static ryz_status cuda_pin_host(void *ctx, void *p, size_t bytes) {
    cuda_ctx *c = ctx;
    cudaError_t e = cudaHostRegister(p, bytes, cudaHostRegisterDefault);
    if (e == cudaSuccess) return RYZ_OK;
    cudaGetLastError(); /* not sticky: later launches must not report it */
    return cu_fail(e, "cudaHostRegister of %zu host bytes for device %d", bytes, c->device);
}

static void cuda_unpin_host(void *ctx, void *p) {
    (void)ctx;
    if (cudaHostUnregister(p) != cudaSuccess) cudaGetLastError();
}

static ryz_status cuda_upload(void *ctx, void *dst, const void *host_src, size_t bytes) {
    return kept_xfer(ctx, "upload (host to device)", dst, host_src, bytes, cudaMemcpyHostToDevice);
}

static ryz_status cuda_download(void *ctx, void *host_dst, const void *src, size_t bytes) {
    return kept_xfer(ctx, "download (device to host)", host_dst, src, bytes,
                     cudaMemcpyDeviceToHost);
}

/* Enqueues rows x width bytes device to device: one cudaMemcpyAsync for a
 * single row (no pitch limits), cudaMemcpy2DAsync for several. */
static ryz_status copy_rows_run(cuda_ctx *c, void *dst, size_t dst_pitch, const void *src,
                                size_t src_pitch, size_t width, size_t rows) {
    if (width == 0 || rows == 0)
        return RYZ_OK;
    if (rows > 1 && (dst_pitch < width || src_pitch < width))
        return ryz_error(RYZ_EINVAL,
                         "copy of %zu rows of %zu bytes with pitches %zu (to) and %zu (from): "
                         "pitches must be >= the row width",
                         rows, width, dst_pitch, src_pitch);
    cudaError_t e =
        rows == 1 ? cudaMemcpyAsync(dst, src, width, cudaMemcpyDeviceToDevice, c->stream)
                  : cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, rows,
                                      cudaMemcpyDeviceToDevice, c->stream);
    return e == cudaSuccess ? RYZ_OK
                            : cu_fail(e, "device copy of %zu rows of %zu bytes on device %d", rows,
                                      width, c->device);
}

static ryz_status embedding_run(const cuda_ctx *c, float *x, const int *tokens, int n,
                                const float *emb, int vocab_start, int vocab_local, int dim) {
    if (n == 0)
        return RYZ_OK;
    if (n < 0 || dim < 1 || vocab_local < 0 || vocab_start < 0)
        return ryz_error(RYZ_EINVAL,
                         "embedding: %d tokens of dim %d from vocab rows %d..+%d: need n >= 0, "
                         "dim >= 1, rows >= 0",
                         n, dim, vocab_start, vocab_local);
    return launch_status(
        ryz_k_embedding(x, tokens, n, emb, vocab_start, vocab_local, dim, c->stream), "embedding");
}

/* Columns col0..ld-1 of x (rows, ld) to -inf. */
static ryz_status mask_run(const cuda_ctx *c, float *x, int rows, int col0, int ld) {
    if (rows == 0 || col0 == ld)
        return RYZ_OK;
    if (rows < 0 || col0 < 0 || ld < col0)
        return ryz_error(RYZ_EINVAL,
                         "mask of columns %d..%d of %d rows: need rows >= 0 and "
                         "0 <= first column <= row length",
                         col0, ld - 1, rows);
    return launch_status(ryz_k_mask_vocab(x, rows, col0, ld, c->stream), "mask_vocab");
}

static ryz_status argmax_run(const cuda_ctx *c, int *idx, const float *x, int rows, int n,
                             int ld) {
    if (rows == 0)
        return RYZ_OK;
    if (rows < 0 || n < 1 || ld < n)
        return ryz_error(RYZ_EINVAL,
                         "argmax of %d rows of %d (stride %d): need rows >= 0, n >= 1, ld >= n",
                         rows, n, ld);
    return launch_status(ryz_k_argmax(idx, x, rows, n, ld, c->stream), "argmax");
}

/* The enqueued ops as the vtable has them: nothing after a kept error,
 * their own error kept. */
static void cuda_copy_rows(void *ctx, void *dst, size_t dst_pitch, const void *src,
                           size_t src_pitch, size_t width, size_t rows) {
    cuda_ctx *c = ctx;
    if (c->err == RYZ_OK)
        keep(c, copy_rows_run(c, dst, dst_pitch, src, src_pitch, width, rows));
}

static void cuda_embedding(void *ctx, float *x, const int *tokens, int n, const float *emb,
                           int vocab_start, int vocab_local, int dim) {
    cuda_ctx *c = ctx;
    if (c->err == RYZ_OK)
        keep(c, embedding_run(c, x, tokens, n, emb, vocab_start, vocab_local, dim));
}

static void cuda_argmax(void *ctx, int *idx, const float *x, int rows, int n, int ld) {
    cuda_ctx *c = ctx;
    if (c->err == RYZ_OK)
        keep(c, argmax_run(c, idx, x, rows, n, ld));
}

static void cuda_mask_cols(void *ctx, float *x, int rows, int col0, int ld) {
    cuda_ctx *c = ctx;
    if (c->err == RYZ_OK)
        keep(c, mask_run(c, x, rows, col0, ld));
}

/* Waits for the device; a failure there (a kernel's fault, usually) is
 * kept with the device named. */
static ryz_status cuda_sync(void *ctx) {
    cuda_ctx *c = ctx;
    ryz_status st = kept(c);
    if (st != RYZ_OK)
        return st;
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess)
        return RYZ_OK;
    keep(c, cu_fail(e, "work on device %d (reported by cudaDeviceSynchronize)", c->device));
    return kept(c);
}

/* ---- recording: stream capture into CUDA graphs ------------------------ */

/* Points cuBLAS and the ops at stream s (the recording stream or NULL).
 * cublasSetStream resets cuBLAS to its own workspace pool, so the
 * backend's (counted, allocated once) is given back to it each time. */
static ryz_status use_stream(cuda_ctx *c, cudaStream_t s) {
    c->stream = s;
    ryz_status st = blas_check(cublasSetStream(c->blas, s), "cublasSetStream");
    if (st == RYZ_OK)
        st = blas_check(cublasSetWorkspace(c->blas, c->workspace, BLAS_WORKSPACE_BYTES),
                        "cublasSetWorkspace");
    return st;
}

/* st (not OK) with CUDA's last error cleared: a failed capture call must
 * not be reported again by the next launch's check. */
static ryz_status capture_failed(ryz_status st) {
    cudaGetLastError();
    return st;
}

static ryz_status cuda_record_begin(void *ctx) {
    cuda_ctx *c = ctx;
    ryz_status st = kept(c);
    if (st == RYZ_OK && c->stream)
        return ryz_error(RYZ_EINVAL, "cuda record_begin: already recording");
    if (st == RYZ_OK && !c->rec)
        st = cu_check(cudaStreamCreateWithFlags(&c->rec, cudaStreamNonBlocking),
                      "cudaStreamCreateWithFlags (the recording stream)");
    if (st == RYZ_OK)
        st = cu_check(cudaStreamBeginCapture(c->rec, cudaStreamCaptureModeThreadLocal),
                      "cudaStreamBeginCapture");
    if (st != RYZ_OK)
        return capture_failed(st);
    st = use_stream(c, c->rec);
    if (st != RYZ_OK) { /* end the capture: the stream must not stay in it */
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(c->rec, &g) == cudaSuccess && g)
            cudaGraphDestroy(g);
        use_stream(c, NULL);
        capture_failed(st);
    }
    return st;
}

/* The graph captured on c->rec, instantiated into *exec. */
static ryz_status end_capture(cuda_ctx *c, cudaGraphExec_t *exec) {
    cudaGraph_t g = NULL;
    ryz_status st = cu_check(cudaStreamEndCapture(c->rec, &g), "cudaStreamEndCapture");
    if (st == RYZ_OK)
        st = cu_check(cudaGraphInstantiate(exec, g, 0), "cudaGraphInstantiate");
    if (g)
        cudaGraphDestroy(g);
    return st == RYZ_OK ? st : capture_failed(st);
}

static ryz_status cuda_record_end(void *ctx, void **graph) {
    cuda_ctx *c = ctx;
    *graph = NULL;
    if (!c->rec || c->stream != c->rec)
        return ryz_error(RYZ_EINVAL, "cuda record_end: not recording (no record_begin)");
    cudaGraphExec_t exec = NULL;
    ryz_status st = end_capture(c, &exec);
    ryz_status back = use_stream(c, NULL);
    if (st == RYZ_OK)
        st = back;
    if (st == RYZ_OK)
        st = kept(c); /* an op failed while recording */
    if (st != RYZ_OK) {
        if (exec)
            cudaGraphExecDestroy(exec);
        /* Nothing ran while recording, so an op's error kept then is not
         * the device's state: cleared, the ops can run directly after. */
        c->err = RYZ_OK, c->err_msg[0] = '\0';
        return ryz_error_wrap(st, "recording a step on device %d", c->device);
    }
    *graph = exec;
    return RYZ_OK;
}

static void cuda_replay(void *ctx, void *graph) {
    cuda_ctx *c = ctx;
    if (c->err == RYZ_OK)
        keep(c, cu_check(cudaGraphLaunch((cudaGraphExec_t)graph, c->stream),
                         "cudaGraphLaunch (a recorded step)"));
}

static void cuda_graph_free(void *ctx, void *graph) {
    (void)ctx;
    if (graph)
        cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

static void cuda_mem_usage(void *ctx, ryz_mem_kind kind, size_t *live, size_t *peak) {
    const cuda_ctx *c = ctx;
    *live = c->bytes[kind];
    *peak = c->peak[kind];
}

/* The vtable's mem_info: the device's, as cudaMemGetInfo gives them. */
static ryz_status cuda_mem_info(void *ctx, size_t *free_bytes, size_t *total_bytes) {
    const cuda_ctx *c = ctx;
    *free_bytes = *total_bytes = 0;
    cudaError_t e = cudaMemGetInfo(free_bytes, total_bytes);
    return e == cudaSuccess ? RYZ_OK : cu_fail(e, "cudaMemGetInfo on device %d", c->device);
}

/* Frees everything c holds (on a partly built c too). */
static void ctx_destroy(cuda_ctx *c) {
    size_t leaked = c->n_blocks - (c->workspace ? 1 : 0) - (c->wide ? 1 : 0);
    if (leaked)
        RYZ_WARN("cuda backend freed with %zu device block(s) still allocated; freeing them",
                 leaked);
    if (c->blas)
        cublasDestroy(c->blas); /* before its workspace goes */
    if (c->rec)
        cudaStreamDestroy(c->rec);
    for (size_t i = 0; i < c->n_blocks; i++)
        cudaFree(c->blocks[i].p);
    free(c->blocks);
    free(c);
}

static void cuda_destroy(void *ctx) {
    ctx_destroy(ctx);
}

static const ryz_backend_iface cuda_iface = {
    .name = "cuda",
    .host_visible = 0,
    .bf16_layout = RYZ_BF16_TILED, /* kernels/matmul_bf16.cu reads row groups */
    .alloc = cuda_alloc,
    .free = cuda_free,
    .matmul = cuda_matmul,
    .matmul_bf16 = cuda_matmul_bf16,
    .matmul_pair = cuda_matmul_pair,
    .matmul_multi = cuda_matmul_multi,
    .rmsnorm = cuda_rmsnorm,
    .add_rmsnorm = cuda_add_rmsnorm,
    .rope = cuda_rope,
    .silu_mul = cuda_silu_mul,
    .add = cuda_add,
    .attention = cuda_attention,
    .rope_cache = cuda_rope_cache,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy_rows = cuda_copy_rows,
    .embedding = cuda_embedding,
    .argmax = cuda_argmax,
    .mask_cols = cuda_mask_cols,
    .sync = cuda_sync,
    .mem_usage = cuda_mem_usage,
    .mem_info = cuda_mem_info,
    .pin_host = cuda_pin_host,
    .unpin_host = cuda_unpin_host,
    .record_begin = cuda_record_begin,
    .record_end = cuda_record_end,
    .replay = cuda_replay,
    .graph_free = cuda_graph_free,
    .destroy = cuda_destroy,
};

/* ---- life cycle ------------------------------------------------------------ */

/* Device ordinal for opts on a node with `count` devices. */
static ryz_status pick_device(const ryz_cuda_opts *o, int count, int *dev) {
    *dev = o->device >= 0 ? o->device : ryz_cuda_local_rank() % count;
    if (*dev >= count)
        return ryz_error(RYZ_EINVAL, "CUDA device %d requested, but %d visible (0..%d)", *dev,
                         count, count - 1);
    return RYZ_OK;
}

/* Whether environment variable name is set to value: the switches that
 * turn one of the backend's choices off, for comparison. */
static int env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

/* Recorded steps let each kernel start before the previous one ends
 * (programmatic dependent launch, kernels/common.cuh) on devices of
 * compute capability 9.0 and later, unless RYZ_CUDA_PDL=0 (for
 * comparison). Where the device could but the build's kernels cannot
 * (no sm_90 PTX), a warning says so: decode is 7-10 % slower without. */
static ryz_status pdl_setup(int dev) {
    int major = 0;
    ryz_status st = cu_check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev),
                             "cudaDeviceGetAttribute (compute capability)");
    int want = major >= 9 && !env_is("RYZ_CUDA_PDL", "0");
    if (st == RYZ_OK && ryz_k_set_pdl(want) != want)
        RYZ_WARN("cuda: programmatic dependent launch is off: the kernels' PTX is not for "
                 "compute capability 9.0 (CUDA_ARCH needs compute_90), or it could not be read");
    return st;
}

/* Handle, math mode and workspace of c's cuBLAS. */
static ryz_status blas_setup(cuda_ctx *c, int tf32) {
    ryz_status st = blas_check(cublasCreate(&c->blas), "cublasCreate");
    if (st != RYZ_OK)
        return st;
    cublasMath_t mode = tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    st = blas_check(cublasSetMathMode(c->blas, mode), "cublasSetMathMode");
    if (st == RYZ_OK)
        st = dev_alloc(c, RYZ_MEM_SCRATCH, BLAS_WORKSPACE_BYTES, &c->workspace);
    if (st == RYZ_OK)
        st = blas_check(cublasSetWorkspace(c->blas, c->workspace, BLAS_WORKSPACE_BYTES),
                        "cublasSetWorkspace");
    return st;
}

ryz_status ryz_backend_init_cuda(const ryz_cuda_opts *opts, ryz_backend *out) {
    *out = (ryz_backend){0};
    ryz_cuda_opts o = opts ? *opts : ryz_cuda_opts_default();
    int count = 0, dev = 0;
    ryz_status st = ryz_cuda_device_count(&count);
    if (st == RYZ_OK)
        st = pick_device(&o, count, &dev);
    if (st != RYZ_OK)
        return st;
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return ryz_error(RYZ_ENOMEM, "out of memory for the cuda backend");
    c->device = dev;
    c->f32_gemv = !env_is("RYZ_CUDA_GEMV", "cublas"); /* cuBLAS's gemv */
    c->pair = !env_is("RYZ_CUDA_PAIR", "0");          /* pairs, multis as matmuls */
    st = cu_check(cudaSetDevice(dev), "cudaSetDevice");
    if (st == RYZ_OK)
        st = pdl_setup(dev);
    if (st == RYZ_OK)
        st = blas_setup(c, o.tf32);
    if (st != RYZ_OK) {
        ctx_destroy(c);
        return ryz_error_wrap(st, "cuda backend on device %d", dev);
    }
    *out = (ryz_backend){.iface = &cuda_iface, .ctx = c};
    return RYZ_OK;
}

int ryz_backend_is_cuda(const ryz_backend *b) {
    return b && b->iface == &cuda_iface && b->ctx;
}

void ryz_backend_free_cuda(ryz_backend *b) {
    if (ryz_backend_is_cuda(b))
        ryz_backend_free(b);
}

/* c of backend b for the helper `fn`: EINVAL when b is not cuda, the kept
 * error when an op failed. */
static ryz_status enter(const ryz_backend *b, const char *fn, cuda_ctx **c) {
    if (!ryz_backend_is_cuda(b))
        return ryz_error(RYZ_EINVAL, "%s: backend '%s' is not the cuda backend", fn,
                         b && b->iface ? b->iface->name : "(none)");
    *c = b->ctx;
    return kept(*c);
}

ryz_status ryz_cuda_sync(ryz_backend *b) {
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_sync", &c);
    return st == RYZ_OK ? cuda_sync(c) : st;
}

size_t ryz_cuda_mem_bytes(const ryz_backend *b, ryz_mem_kind kind) {
    return ryz_backend_is_cuda(b) ? ryz_backend_mem_bytes(b, kind) : 0;
}

size_t ryz_cuda_mem_peak(const ryz_backend *b, ryz_mem_kind kind) {
    return ryz_backend_is_cuda(b) ? ryz_backend_mem_peak(b, kind) : 0;
}

ryz_status ryz_cuda_mem_info(const ryz_backend *b, size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_mem_info", &c);
    return st == RYZ_OK ? cuda_mem_info(c, free_bytes, total_bytes) : st;
}

int ryz_cuda_host_pinned(const void *p) {
    struct cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError(); /* not a kept error: a plain answer */
        return 0;
    }
    return a.type == cudaMemoryTypeHost;
}

/* ---- bandwidth probe -------------------------------------------------------- */

/* Two scratch blocks of `bytes` for the probe; ENOMEM says how much was
 * asked for and how much the device has free. The caller frees both
 * (NULL when not allocated). */
static ryz_status probe_alloc(cuda_ctx *c, size_t bytes, void **src, void **dst) {
    *dst = NULL;
    ryz_status st = dev_alloc(c, RYZ_MEM_SCRATCH, bytes, src);
    if (st == RYZ_OK)
        st = dev_alloc(c, RYZ_MEM_SCRATCH, bytes, dst);
    if (st != RYZ_ENOMEM)
        return st;
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    return ryz_error(RYZ_ENOMEM,
                     "copy bandwidth probe: cannot allocate two buffers of %zu bytes on device "
                     "%d (%zu of %zu bytes free%s); ask for fewer bytes",
                     bytes, c->device, free_bytes, total, *src ? " with the first allocated" : "");
}

/* Seconds of one copy kernel of `bytes` between two CUDA events on t. */
static ryz_status time_copy(ryz_cuda_timer *t, void *dst, const void *src, size_t bytes,
                            double *seconds) {
    ryz_status st = ryz_cuda_timer_start(t);
    if (st == RYZ_OK)
        st = launch_status(ryz_k_copy(dst, src, bytes, NULL), "copy");
    if (st == RYZ_OK)
        st = ryz_cuda_timer_stop(t);
    return st == RYZ_OK ? ryz_cuda_timer_seconds(t, seconds) : st;
}

/* The best of `reps` timed copies after one untimed warm-up, as the rate
 * 2 * bytes / seconds. */
static ryz_status best_copy_rate(void *dst, const void *src, size_t bytes, int reps,
                                 double *bytes_per_s) {
    ryz_cuda_timer *t = NULL;
    double best = 0, s = 0;
    ryz_status st = ryz_cuda_timer_create(&t);
    if (st == RYZ_OK)
        st = time_copy(t, dst, src, bytes, &s);
    for (int i = 0; st == RYZ_OK && i < reps; i++) {
        st = time_copy(t, dst, src, bytes, &s);
        if (st == RYZ_OK && s > 0 && (best == 0 || s < best))
            best = s;
    }
    ryz_cuda_timer_free(t);
    if (st == RYZ_OK && best <= 0)
        return ryz_error(RYZ_EIO, "copy bandwidth probe: %d copies of %zu bytes timed at 0 s by "
                                  "cudaEventElapsedTime", reps, bytes);
    if (st == RYZ_OK)
        *bytes_per_s = 2.0 * (double)bytes / best;
    return st;
}

ryz_status ryz_cuda_copy_bandwidth(ryz_backend *b, size_t bytes, int reps, double *bytes_per_s) {
    *bytes_per_s = 0;
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_copy_bandwidth", &c);
    if (st != RYZ_OK)
        return st;
    if (bytes < COPY_MIN_BYTES || reps < 1)
        return ryz_error(RYZ_EINVAL,
                         "ryz_cuda_copy_bandwidth of %zu bytes, %d repetitions: need at least "
                         "%zu bytes (1 MiB) and 1 repetition",
                         bytes, reps, COPY_MIN_BYTES);
    void *src = NULL, *dst = NULL;
    st = probe_alloc(c, bytes, &src, &dst);
    if (st == RYZ_OK)
        st = best_copy_rate(dst, src, bytes, reps, bytes_per_s);
    cuda_free(c, src);
    cuda_free(c, dst);
    return st;
}

/* ---- device helpers: the vtable's data ops, for a backend handle ---------- */

ryz_status ryz_cuda_upload(ryz_backend *b, void *dst_dev, const void *src, size_t bytes) {
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_upload", &c);
    return st == RYZ_OK ? xfer(c, "ryz_cuda_upload", dst_dev, src, bytes, cudaMemcpyHostToDevice)
                        : st;
}

ryz_status ryz_cuda_download(ryz_backend *b, void *dst, const void *src_dev, size_t bytes) {
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_download", &c);
    return st == RYZ_OK ? xfer(c, "ryz_cuda_download", dst, src_dev, bytes, cudaMemcpyDeviceToHost)
                        : st;
}

ryz_status ryz_cuda_copy(ryz_backend *b, void *dst_dev, const void *src_dev, size_t bytes) {
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_copy", &c);
    return st == RYZ_OK ? copy_rows_run(c, dst_dev, bytes, src_dev, bytes, bytes, 1) : st;
}

ryz_status ryz_cuda_embedding(ryz_backend *b, float *x_dev, const int *tokens_dev, int n,
                              const float *emb_dev, int vocab_start, int vocab_local, int dim) {
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_embedding", &c);
    return st == RYZ_OK
               ? embedding_run(c, x_dev, tokens_dev, n, emb_dev, vocab_start, vocab_local, dim)
               : st;
}

ryz_status ryz_cuda_mask_vocab(ryz_backend *b, float *logits_dev, int n, int vocab,
                               int vocab_padded) {
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_mask_vocab", &c);
    return st == RYZ_OK ? mask_run(c, logits_dev, n, vocab, vocab_padded) : st;
}

ryz_status ryz_cuda_argmax(ryz_backend *b, int *idx_dev, const float *x_dev, int rows, int n,
                           int ld) {
    cuda_ctx *c = NULL;
    ryz_status st = enter(b, "ryz_cuda_argmax", &c);
    return st == RYZ_OK ? argmax_run(c, idx_dev, x_dev, rows, n, ld) : st;
}

/* ---- timers ---------------------------------------------------------------- */

ryz_status ryz_cuda_timer_create(ryz_cuda_timer **out) {
    *out = calloc(1, sizeof **out);
    if (!*out)
        return ryz_error(RYZ_ENOMEM, "out of memory for a CUDA timer");
    ryz_status st = cu_check(cudaEventCreate(&(*out)->start), "cudaEventCreate");
    if (st == RYZ_OK)
        st = cu_check(cudaEventCreate(&(*out)->stop), "cudaEventCreate");
    if (st != RYZ_OK) {
        ryz_cuda_timer_free(*out);
        *out = NULL;
    }
    return st;
}

void ryz_cuda_timer_free(ryz_cuda_timer *t) {
    if (!t)
        return;
    if (t->start)
        cudaEventDestroy(t->start);
    if (t->stop)
        cudaEventDestroy(t->stop);
    free(t);
}

ryz_status ryz_cuda_timer_start(ryz_cuda_timer *t) {
    return cu_check(cudaEventRecord(t->start, NULL), "cudaEventRecord (timer start)");
}

ryz_status ryz_cuda_timer_stop(ryz_cuda_timer *t) {
    return cu_check(cudaEventRecord(t->stop, NULL), "cudaEventRecord (timer stop)");
}

ryz_status ryz_cuda_timer_seconds(ryz_cuda_timer *t, double *seconds) {
    *seconds = 0;
    float ms = 0;
    ryz_status st = cu_check(cudaEventSynchronize(t->stop), "cudaEventSynchronize (timer stop)");
    if (st == RYZ_OK)
        st = cu_check(cudaEventElapsedTime(&ms, t->start, t->stop), "cudaEventElapsedTime");
    *seconds = (double)ms / 1e3;
    return st;
}

#else /* !RYZ_WITH_CUDA: every entry point says so */

#define NO_CUDA(fn) ryz_error(RYZ_EINVAL, "%s: built without CUDA (rebuild with make CUDA=1)", fn)

int ryz_cuda_built(void) {
    return 0;
}

ryz_status ryz_cuda_device_count(int *n) {
    *n = 0;
    return NO_CUDA("ryz_cuda_device_count");
}

ryz_status ryz_backend_init_cuda(const ryz_cuda_opts *opts, ryz_backend *out) {
    (void)opts;
    *out = (ryz_backend){0};
    return NO_CUDA("the cuda backend");
}

void ryz_backend_free_cuda(ryz_backend *b) {
    (void)b;
}

int ryz_backend_is_cuda(const ryz_backend *b) {
    (void)b;
    return 0;
}

ryz_status ryz_cuda_sync(ryz_backend *b) {
    (void)b;
    return NO_CUDA("ryz_cuda_sync");
}

size_t ryz_cuda_mem_bytes(const ryz_backend *b, ryz_mem_kind kind) {
    (void)b, (void)kind;
    return 0;
}

size_t ryz_cuda_mem_peak(const ryz_backend *b, ryz_mem_kind kind) {
    (void)b, (void)kind;
    return 0;
}

ryz_status ryz_cuda_mem_info(const ryz_backend *b, size_t *free_bytes, size_t *total_bytes) {
    (void)b;
    *free_bytes = *total_bytes = 0;
    return NO_CUDA("ryz_cuda_mem_info");
}

int ryz_cuda_host_pinned(const void *p) {
    (void)p;
    return 0;
}

ryz_status ryz_cuda_copy_bandwidth(ryz_backend *b, size_t bytes, int reps, double *bytes_per_s) {
    (void)b, (void)bytes, (void)reps;
    *bytes_per_s = 0;
    return NO_CUDA("ryz_cuda_copy_bandwidth");
}

ryz_status ryz_cuda_upload(ryz_backend *b, void *dst_dev, const void *src, size_t bytes) {
    (void)b, (void)dst_dev, (void)src, (void)bytes;
    return NO_CUDA("ryz_cuda_upload");
}

ryz_status ryz_cuda_download(ryz_backend *b, void *dst, const void *src_dev, size_t bytes) {
    (void)b, (void)dst, (void)src_dev, (void)bytes;
    return NO_CUDA("ryz_cuda_download");
}

ryz_status ryz_cuda_copy(ryz_backend *b, void *dst_dev, const void *src_dev, size_t bytes) {
    (void)b, (void)dst_dev, (void)src_dev, (void)bytes;
    return NO_CUDA("ryz_cuda_copy");
}

ryz_status ryz_cuda_embedding(ryz_backend *b, float *x_dev, const int *tokens_dev, int n,
                              const float *emb_dev, int vocab_start, int vocab_local, int dim) {
    (void)b, (void)x_dev, (void)tokens_dev, (void)n, (void)emb_dev, (void)vocab_start;
    (void)vocab_local, (void)dim;
    return NO_CUDA("ryz_cuda_embedding");
}

ryz_status ryz_cuda_mask_vocab(ryz_backend *b, float *logits_dev, int n, int vocab,
                               int vocab_padded) {
    (void)b, (void)logits_dev, (void)n, (void)vocab, (void)vocab_padded;
    return NO_CUDA("ryz_cuda_mask_vocab");
}

ryz_status ryz_cuda_argmax(ryz_backend *b, int *idx_dev, const float *x_dev, int rows, int n,
                           int ld) {
    (void)b, (void)idx_dev, (void)x_dev, (void)rows, (void)n, (void)ld;
    return NO_CUDA("ryz_cuda_argmax");
}

ryz_status ryz_cuda_timer_create(ryz_cuda_timer **out) {
    *out = NULL;
    return NO_CUDA("ryz_cuda_timer_create");
}

void ryz_cuda_timer_free(ryz_cuda_timer *t) {
    (void)t;
}

ryz_status ryz_cuda_timer_start(ryz_cuda_timer *t) {
    (void)t;
    return NO_CUDA("ryz_cuda_timer_start");
}

ryz_status ryz_cuda_timer_stop(ryz_cuda_timer *t) {
    (void)t;
    return NO_CUDA("ryz_cuda_timer_stop");
}

ryz_status ryz_cuda_timer_seconds(ryz_cuda_timer *t, double *seconds) {
    (void)t;
    *seconds = 0;
    return NO_CUDA("ryz_cuda_timer_seconds");
}

#endif
