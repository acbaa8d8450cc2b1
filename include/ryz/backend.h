/* backend: the compute vtable the model runs on, in the spirit of ggml's
 * backend interface: cpu (OpenBLAS) and, in a CUDA build, cuda (kernels/ +
 * cuBLAS, include/ryz/cuda.h) fill the same table. All matrices are
 * row-major float32; W is (out, in) as in llama2.c.
 *
 * Every pointer an op takes lives in the backend's memory (from its alloc)
 * unless its name says host_. On cpu that is host memory; on cuda it is
 * device memory, which the host reaches only through upload and download.
 * The model uses nothing else for backend memory, so it runs unchanged on
 * either. Ops may be asynchronous (cuda): they run in order, an op that
 * fails keeps its error and later ops do nothing, and sync returns it. */
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

/* How a backend stores a bf16 matrix (out, in): the layout its decode
 * GEMV reads fastest. */
typedef enum {
    /* plain row-major (the default): the cpu's GEMV reads four single-row
     * bands, 1.02-1.06x faster than three bands of tiled groups
     * (docs/performance.md) */
    RYZ_BF16_ROWS = 0,
    /* rows in groups of four, 16-column tiles of the four in turn
     * (ryz_bf16_offset): cuda's GEMV reads a group with 16-byte loads */
    RYZ_BF16_TILED = 1,
} ryz_bf16_layout;

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

/* Most products of one x matmul_multi takes (q, k and v). */
#define RYZ_MULTI_MAX 3

typedef struct ryz_backend_iface {
    const char *name;
    /* 1 when the host may read and write the backend's memory directly
     * (cpu): its buffers then go to any comm as they are, and the model
     * reads logits in place. 0 (cuda): only upload and download reach it. */
    int host_visible;
    /* How its bf16 matrices are laid out (ryz_bf16_index). */
    ryz_bf16_layout bf16_layout;
    /* `bytes` zeroed bytes counted as `kind`; NULL (message set) on failure. */
    void *(*alloc)(void *ctx, ryz_mem_kind kind, size_t bytes);
    void (*free)(void *ctx, void *p);
    /* y (n, out) = x (n, in) . W^T, W (out, in). It may still read x and
     * W after it returns (cpu: a thread that lost its core in a decode
     * GEMV whose rows were computed without it; it writes nothing): they
     * stay allocated until this backend's free op (which waits for such
     * reads) or ryz_backend_free. y is complete on return. */
    void (*matmul)(void *ctx, float *y, const float *x, const float *w, int n, int in, int out);
    /* As matmul, with W stored as bfloat16 in the backend's bf16_layout
     * (as ryz_bf16_pack_rows packs it), every product accumulated in fp32.
     * NULL when the backend has no bf16. */
    void (*matmul_bf16)(void *ctx, float *y, const float *x, const uint16_t *w, int n, int in,
                        int out);
    /* SwiGLU's two products of one x (n, in) with W1 and W2 (out, in),
     * w1 and w3, both stored as dtype (matmul's or matmul_bf16's
     * storage): y1 (n, out) = silu(x . W1^T) * (x . W2^T); y2 (n, out) is
     * scratch, its contents after the op unspecified. Results as matmul,
     * matmul and silu_mul give, which is what ryz_backend_matmul_pair runs
     * when this is NULL; a device runs the pair as one launch, reading
     * both matrices in one pass. */
    void (*matmul_pair)(void *ctx, float *y1, float *y2, const float *x, const void *w1,
                        const void *w2, ryz_dtype dtype, int n, int in, int out);
    /* y[i] (n, out[i]) = x (n, in) . W[i]^T for i < count (1 to
     * RYZ_MULTI_MAX), every W[i] (out[i], in) stored as dtype: several
     * products of one x (q, k and v) with matmul's (or matmul_bf16's)
     * results up to the order of each sum's terms; NULL: what
     * ryz_backend_matmul_multi runs then is one matmul each. A device
     * runs them as one launch. */
    void (*matmul_multi)(void *ctx, int count, float *const *y, const void *const *w,
                         const int *out, ryz_dtype dtype, const float *x, int n, int in);
    /* y (n, dim) = x / sqrt(mean(x^2) + eps) * w, per row. y may equal x. */
    void (*rmsnorm)(void *ctx, float *y, const float *x, const float *w, int n, int dim,
                    float eps);
    /* x (n, dim) += r, then y = rmsnorm(x) as above (y != x): the residual
     * add and the next norm in one op, with add's and rmsnorm's results. */
    void (*add_rmsnorm)(void *ctx, float *y, float *x, const float *r, const float *w, int n,
                        int dim, float eps);
    /* Rotates interleaved pairs of x (n, heads*head_dim) in place; row t is
     * at position *pos + t. Positions live in backend memory (one int,
     * read when the op runs, >= 0), so a recorded step replays anywhere. */
    void (*rope)(void *ctx, float *x, int n, int heads, int head_dim, const int *pos,
                 float base);
    /* a (n) = silu(a) * b. */
    void (*silu_mul)(void *ctx, float *a, const float *b, size_t n);
    /* x (n) += y. */
    void (*add)(void *ctx, float *x, const float *y, size_t n);
    /* Causal attention for T new rows at positions p..p+T-1 (p = *pos, as
     * rope's) of one sequence: q (T, heads*head_dim), caches (seq_len,
     * kv_heads*head_dim) already holding positions 0..p+T-1, out (T,
     * heads*head_dim), scratch (ryz_attention_scratch_rows(T, heads), p+T)
     * floats. */
    void (*attention)(void *ctx, float *out, const float *q, const float *kc, const float *vc,
                      int T, const int *pos, const ryz_attn_geom *g, float *scratch);
    /* What attention needs before it, in one op: q (T, heads*head_dim)
     * and k (T, kv_heads*head_dim) rotated in place as rope does, then k
     * and v (T, kv_heads*head_dim) stored at rows *pos.. of the caches kc
     * and vc (rows of kv_heads*head_dim floats). */
    void (*rope_cache)(void *ctx, float *q, float *k, const float *v, float *kc, float *vc, int T,
                       int heads, int kv_heads, int head_dim, const int *pos, float base);

    /* ---- data movement (sizes in bytes) ---- */
    /* Host to backend memory and back. Synchronous: upload has read
     * host_src when it returns; download waits for every earlier op, so
     * host_dst holds the result. The status of the copy, or the error an
     * earlier op kept. */
    ryz_status (*upload)(void *ctx, void *dst, const void *host_src, size_t bytes);
    ryz_status (*download)(void *ctx, void *host_dst, const void *src, size_t bytes);
    /* rows rows of `width` bytes from src (rows src_pitch bytes apart) to
     * dst (dst_pitch apart), within backend memory; the regions must not
     * overlap. Pitches >= width (any value when rows == 1). */
    void (*copy_rows)(void *ctx, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                      size_t width, size_t rows);
    /* x (n, dim) = rows tokens[r] - vocab_start of emb (vocab_local, dim)
     * where that is in [0, vocab_local), zero elsewhere; tokens (n). */
    void (*embedding)(void *ctx, float *x, const int *tokens, int n, const float *emb,
                      int vocab_start, int vocab_local, int dim);
    /* idx (rows) = index of the largest of x[r*ld .. r*ld+n) per row, the
     * first on ties as ryz_argmax; n >= 1, ld >= n. */
    void (*argmax)(void *ctx, int *idx, const float *x, int rows, int n, int ld);
    /* x (rows, ld): columns col0..ld-1 of every row set to -inf. */
    void (*mask_cols)(void *ctx, float *x, int rows, int col0, int ld);
    /* Waits for every enqueued op; the first error an op kept (with its
     * message), else OK. The error stays: a failed backend is not reused. */
    ryz_status (*sync)(void *ctx);
    /* Reads [p, p + bytes) of its memory once, as ryz_mem_read_sum reads,
     * with the threads and the scheduling of its decode GEMV (cpu: claims
     * of rows that a thread losing its core does not hold up); *sum
     * receives the sum of its 8-byte words modulo 2^24, whatever the
     * claims were. bytes a multiple of RYZ_PROBE_ROW_BYTES.
     * The decode's roofline is read with it, so that the limit meets what
     * the decode meets. NULL when the backend has none (cuda, whose limit
     * is a copy kernel's: ryz_cuda_copy_bandwidth). */
    ryz_status (*read_probe)(void *ctx, const void *p, size_t bytes, uint64_t *sum);
    /* Live and peak bytes of `kind` in the backend's memory. */
    void (*mem_usage)(void *ctx, ryz_mem_kind kind, size_t *live, size_t *peak);
    /* Bytes of its own memory free for new allocations now, and its total
     * (cuda: cudaMemGetInfo of its device), so that a model that cannot
     * fit is refused before its weights load; on failure both 0 and the
     * status with its message. NULL when its memory is the host's (cpu),
     * which the commands check against MemAvailable. */
    ryz_status (*mem_info)(void *ctx, size_t *free_bytes, size_t *total_bytes);
    /* Page-locks host memory [p, p + bytes) so that upload and download
     * with it run at full DMA speed (cuda: cudaHostRegister), until
     * unpin_host(p). A failure leaves p pageable and usable. NULL (both)
     * when the backend gains nothing from it (cpu). */
    ryz_status (*pin_host)(void *ctx, void *p, size_t bytes);
    void (*unpin_host)(void *ctx, void *p);
    /* Recording (CUDA graphs). Between record_begin and record_end the
     * compute and enqueued data ops are recorded into a graph instead of
     * run; no upload, download or sync may come between. replay runs the
     * recorded ops again with the same pointers and sizes, reading backend
     * memory (tokens, positions) as it is then; a failure is kept, as an
     * op's. record_end returns the graph (free with graph_free) or the
     * error of the recording: then nothing was recorded or run, an op's
     * error while recording included, and the backend takes ops directly
     * again. No allocation may come while recording either. NULL (all
     * four) when the backend does not record (cpu): the caller enqueues
     * the ops each time. */
    ryz_status (*record_begin)(void *ctx);
    ryz_status (*record_end)(void *ctx, void **graph);
    void (*replay)(void *ctx, void *graph);
    void (*graph_free)(void *ctx, void *graph);
    /* Releases ctx and everything it holds (ryz_backend_free calls it). */
    void (*destroy)(void *ctx);
} ryz_backend_iface;

struct ryz_backend {
    const ryz_backend_iface *iface;
    void *ctx;
};

/* The CPU backend with `threads` threads (>= 1) for its own work (decode
 * GEMV, prefill sgemm and attention: each thread calls OpenBLAS
 * single-threaded, so no other thread of OpenBLAS's ever runs; init sets
 * OpenBLAS to one thread for the whole process, and free leaves it so);
 * free with ryz_backend_free. */
ryz_status ryz_backend_init_cpu(int threads, ryz_backend *out);
/* Releases what init allocated, whatever the backend (its destroy op), and
 * zeroes *b; safe on a zeroed or freed backend. */
void ryz_backend_free(ryz_backend *b);
/* Live and peak bytes of `kind` in b's memory (device memory on cuda; the
 * process's ryz_mem_alloc counters on cpu). */
size_t ryz_backend_mem_bytes(const ryz_backend *b, ryz_mem_kind kind);
size_t ryz_backend_mem_peak(const ryz_backend *b, ryz_mem_kind kind);

/* The backends a command can ask for by name. */
typedef enum { RYZ_BACKEND_CPU = 0, RYZ_BACKEND_CUDA = 1 } ryz_backend_kind;
/* "cpu" or "cuda" into *out; EINVAL naming the known ones otherwise. */
ryz_status ryz_backend_kind_parse(const char *name, ryz_backend_kind *out);
const char *ryz_backend_kind_name(ryz_backend_kind k);
/* Whether `kind` can run in this process: OK for cpu; for cuda, EINVAL
 * "no CUDA device: REASON" in a build without CUDA or when the driver
 * offers no device. Cheap: for refusing early, before ranks start. */
ryz_status ryz_backend_available(ryz_backend_kind kind);
/* What a command may choose of a backend by kind. */
typedef struct {
    int threads; /* cpu: threads of its own work, OpenBLAS's included (>= 1) */
    int tf32;    /* cuda: 1 lets cuBLAS use TF32 tensor cores for fp32 GEMMs
                    (10 mantissa bits; held to RYZ_TF32_TOL); cpu: must be 0 */
} ryz_backend_opts;
/* The cpu backend with o->threads threads, or the cuda backend on this
 * rank's local device with o->tf32 (ryz_cuda_opts_default otherwise); free
 * with ryz_backend_free. EINVAL for tf32 on cpu (its sgemm is IEEE fp32
 * only); errors as ryz_backend_available, then as the init. */
ryz_status ryz_backend_init_opts(ryz_backend_kind kind, const ryz_backend_opts *o,
                                 ryz_backend *out);
/* ryz_backend_init_opts with `threads` and tf32 off. */
ryz_status ryz_backend_init(ryz_backend_kind kind, int threads, ryz_backend *out);
/* `bytes` contiguous bytes from src to dst within b's memory (copy_rows
 * with one row). */
static inline void ryz_backend_copy(ryz_backend *b, void *dst, const void *src, size_t bytes) {
    b->iface->copy_rows(b->ctx, dst, bytes, src, bytes, bytes, 1);
}

/* y (n, out) = x (n, in) . W^T through the backend's matmul for W's dtype. */
void ryz_backend_matmul(ryz_backend *b, float *y, const float *x, ryz_matrix w, int n, int in,
                        int out);
/* The products matmul_multi describes, y[i] = x . W[i]^T for i < count:
 * the backend's matmul_multi when every W has one dtype, else
 * ryz_backend_matmul_multi_separate. */
void ryz_backend_matmul_multi(ryz_backend *b, int count, float *const *y, const float *x,
                              const ryz_matrix *w, const int *out, int n, int in);
/* The same products as one matmul each, whatever the backend has: what a
 * backend's own matmul_multi runs for shapes it does not fuse. */
void ryz_backend_matmul_multi_separate(ryz_backend *b, int count, float *const *y,
                                       const float *x, const ryz_matrix *w, const int *out,
                                       int n, int in);
/* The pair of products matmul_pair describes, y1 = silu(x . W1^T) *
 * (x . W2^T) with y2 scratch, W1 and W2 of one dtype: the backend's
 * matmul_pair, else matmul twice and silu_mul. */
void ryz_backend_matmul_pair(ryz_backend *b, float *y1, float *y2, const float *x, ryz_matrix w1,
                             ryz_matrix w2, int n, int in, int out);
/* The same pair as separate ops, matmul twice and silu_mul (y2 then
 * holds x . W2^T), whatever the backend has: what a backend's own
 * matmul_pair runs for shapes it does not fuse. */
void ryz_backend_matmul_pair_separate(ryz_backend *b, float *y1, float *y2, const float *x,
                                      ryz_matrix w1, ryz_matrix w2, int n, int in, int out);
/* The row a read probe's claims are made of (4 KiB, the GEMV's rows of
 * a 1024-wide fp32 matrix). */
#define RYZ_PROBE_ROW_BYTES 4096
/* The backend's read_probe over [p, p + bytes), timed: *seconds from the
 * call until every row has been read once (a worker whose claim the
 * caller took over may still be reading after that), *sum as
 * read_probe's. EINVAL when the backend has
 * no read probe or bytes is not a positive multiple of RYZ_PROBE_ROW_BYTES;
 * read_probe's error otherwise. */
ryz_status ryz_backend_read_probe(ryz_backend *b, const void *p, size_t bytes, double *seconds,
                                  uint64_t *sum);
/* A buffer of backend memory that the read probe reads a slice at a time,
 * each slice after the one before it and back to the start where the next
 * would not fit whole: a probe to read between decode steps, so that a
 * roofline is measured at the moments the decode ran, on its threads. */
typedef struct {
    ryz_backend *be;
    char *buf;
    size_t bytes, slice, at; /* buffer, slice, next slice's offset */
    uint64_t sink;           /* the slices' sums, kept observable */
} ryz_probe_slices;
/* `bytes` of b's memory, every word written (a page never written would
 * be read as the shared zero page, from the caches), to be read `slice`
 * bytes at a time (at most bytes, a positive multiple of
 * RYZ_PROBE_ROW_BYTES); its first slice is read once here, so that no
 * later read allocates. EINVAL when b has no read probe or the sizes do
 * not fit, ENOMEM; free with ryz_probe_slices_free. */
ryz_status ryz_probe_slices_open(ryz_backend *b, size_t bytes, size_t slice,
                                 ryz_probe_slices *p);
/* Reads the next slice (ryz_backend_read_probe); *seconds its time. */
ryz_status ryz_probe_slices_read(ryz_probe_slices *p, double *seconds);
/* Frees the buffer; safe on a zeroed or freed one. */
void ryz_probe_slices_free(ryz_probe_slices *p);
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
 * four rows in turn (r0 i..i+15, r1 i..i+15, ...), so cuda's decode GEMV
 * reads each group as one sequential stream; rows after the last full
 * group, and every row when in % 16 != 0, are plain row-major. */
static inline size_t ryz_bf16_offset(int o, int i, int in, int out) {
    if (in % 16 != 0 || o >= out - out % 4) return (size_t)o * in + (size_t)i;
    return (size_t)(o & ~3) * in + (size_t)(i >> 4) * 64 + (size_t)(o & 3) * 16 + (size_t)(i & 15);
}

/* Where element (o, i) of a bf16 matrix (out, in) lives in layout l. Row
 * r's first element is at r * in in both layouts when r % 4 == 0. */
static inline size_t ryz_bf16_index(ryz_bf16_layout l, int o, int i, int in, int out) {
    return l == RYZ_BF16_ROWS ? (size_t)o * in + (size_t)i : ryz_bf16_offset(o, i, in, out);
}

/* Rounds rows [row0, row0 + nrows) of a matrix (out, in), given row-major
 * in src (nrows, in), into their places in dst (the whole matrix's bf16
 * storage, layout l). Chunks may be packed in any order. */
void ryz_bf16_pack_rows(ryz_bf16_layout l, uint16_t *dst, const float *src, int row0, int nrows,
                        int in, int out);
/* Rows of the attention op's scratch for T new rows over `heads` local
 * query heads: (this many, *pos + T) floats. */
static inline int ryz_attention_scratch_rows(int T, int heads) {
    return T > heads ? T : heads;
}
/* Index of the largest of x[0..n) (first one on ties). */
int ryz_argmax(const float *x, int n);
/* TEST ONLY: the next claim of a decode GEMV that a cpu backend worker
 * (not the calling thread) takes sleeps `us` microseconds before it is
 * computed, as if the worker had lost its core. Returns what was armed
 * before: 0 once a worker has taken the stall. */
int ryz_test_set_rows_stall(int us);
/* TEST ONLY: the same for the calling thread's next claim. */
int ryz_test_set_rows_caller_stall(int us);
/* TEST ONLY: how many bytes ahead the cpu backend's bf16 decode GEMV
 * prefetches its streams (0: none; -1: the CPU's default, 1536 on Intel,
 * 0 elsewhere). Returns the setting before. */
int ryz_test_set_bf16_prefetch(int bytes);

#endif
