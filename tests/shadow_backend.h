/* A test backend that behaves like a device whose memory the host cannot
 * touch, built on the cpu backend, so the model's cuda code paths run (and
 * are checked) on a machine without a GPU.
 *
 * Its "device" pointers are host pointers with bit 62 flipped: not
 * canonical on x86-64, so any direct host read or write of backend memory
 * (a memcpy the model forgot to route through the vtable) crashes, while
 * pointer arithmetic on them stays linear. Every op untags its pointers
 * and runs the cpu backend's op (at once, or when replayed if it was
 * recorded: between record_begin and record_end each op is kept with a
 * copy of its arguments), so results must equal the cpu backend's bit for
 * bit. host_visible is 0 and it has a matmul_bf16, as cuda; the
 * shadow counts syncs, uploads, downloads and host pins so tests can check
 * the forward pass's traffic. Header-only (static): include it in one test. */
#ifndef RYZ_TEST_SHADOW_BACKEND_H
#define RYZ_TEST_SHADOW_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/backend.h"

#define SHADOW_TAG ((uintptr_t)1 << 62)

typedef struct {
    ryz_backend cpu; /* the backend doing the work (owned) */
    long syncs, uploads, downloads;
    struct shadow_graph *recording; /* the recording under way, NULL when none */
    long records, replays;          /* record_begin and replay calls */
    long bad_calls;                 /* upload, download or sync while recording */
    long pins, unpins;              /* pin_host / unpin_host calls */
    size_t upload_bytes, download_bytes;
} shadow_ctx;

/* Host <-> "device" address. */
static inline void *shadow_host(const void *p) {
    return p ? (void *)((uintptr_t)p ^ SHADOW_TAG) : NULL;
}
#define SH(p) shadow_host(p)

static void *shadow_alloc(void *ctx, ryz_mem_kind kind, size_t bytes) {
    shadow_ctx *s = ctx;
    return SH(s->cpu.iface->alloc(s->cpu.ctx, kind, bytes));
}

static void shadow_free(void *ctx, void *p) {
    shadow_ctx *s = ctx;
    s->cpu.iface->free(s->cpu.ctx, SH(p));
}

/* ---- recording: ops are run, or kept with their arguments and replayed ---- */

/* A kept op: its runner and a copy of its arguments (the op's args struct). */
typedef struct {
    void (*run)(shadow_ctx *s, const void *args);
    _Alignas(max_align_t) unsigned char args[96];
} shadow_op;

/* A recording: the ops between record_begin and record_end, in order. */
typedef struct shadow_graph {
    shadow_op *ops;
    size_t n, cap;
} shadow_graph;

/* Runs the op now, or appends it to the recording under way. */
static void shadow_do(shadow_ctx *s, void (*run)(shadow_ctx *, const void *), const void *args,
                      size_t size) {
    ck_assert_uint_le(size, sizeof(((shadow_op *)0)->args));
    shadow_graph *g = s->recording;
    if (!g) {
        run(s, args);
        return;
    }
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->ops = realloc(g->ops, g->cap * sizeof *g->ops);
        ck_assert_ptr_nonnull(g->ops);
    }
    g->ops[g->n].run = run;
    memcpy(g->ops[g->n++].args, args, size);
}

/* Each op below: its arguments, its runner (the cpu op on untagged
 * pointers), and the vtable entry, which runs or records it. */

typedef struct {
    float *y;
    const float *x, *w;
    int n, in, out;
} shadow_matmul_args;

static void shadow_matmul_run(shadow_ctx *s, const void *p) {
    const shadow_matmul_args *a = p;
    s->cpu.iface->matmul(s->cpu.ctx, SH(a->y), SH(a->x), SH(a->w), a->n, a->in, a->out);
}

static void shadow_matmul(void *ctx, float *y, const float *x, const float *w, int n, int in,
                          int out) {
    shadow_matmul_args a = {y, x, w, n, in, out};
    shadow_do(ctx, shadow_matmul_run, &a, sizeof a);
}

typedef struct {
    float *y;
    const float *x;
    const uint16_t *w;
    int n, in, out;
} shadow_matmul_bf16_args;

static void shadow_matmul_bf16_run(shadow_ctx *s, const void *p) {
    const shadow_matmul_bf16_args *a = p;
    s->cpu.iface->matmul_bf16(s->cpu.ctx, SH(a->y), SH(a->x), SH(a->w), a->n, a->in, a->out);
}

static void shadow_matmul_bf16(void *ctx, float *y, const float *x, const uint16_t *w, int n,
                               int in, int out) {
    shadow_matmul_bf16_args a = {y, x, w, n, in, out};
    shadow_do(ctx, shadow_matmul_bf16_run, &a, sizeof a);
}

/* The tiled variant's: W in cuda's tiled layout, laid out row-major again
 * for the cpu kernel, so the products are the cpu backend's bit for bit. */
static void shadow_matmul_bf16_tiled_run(shadow_ctx *s, const void *p) {
    const shadow_matmul_bf16_args *a = p;
    const uint16_t *w = SH(a->w);
    uint16_t *rows = malloc((size_t)a->in * (size_t)a->out * sizeof *rows);
    ck_assert_ptr_nonnull(rows);
    for (int o = 0; o < a->out; o++)
        for (int i = 0; i < a->in; i++)
            rows[(size_t)o * a->in + i] = w[ryz_bf16_index(RYZ_BF16_TILED, o, i, a->in, a->out)];
    s->cpu.iface->matmul_bf16(s->cpu.ctx, SH(a->y), SH(a->x), rows, a->n, a->in, a->out);
    free(rows);
}

static void shadow_matmul_bf16_tiled(void *ctx, float *y, const float *x, const uint16_t *w,
                                     int n, int in, int out) {
    shadow_matmul_bf16_args a = {y, x, w, n, in, out};
    shadow_do(ctx, shadow_matmul_bf16_tiled_run, &a, sizeof a);
}

typedef struct {
    float *y;
    const float *x, *w;
    int n, dim;
    float eps;
} shadow_rmsnorm_args;

static void shadow_rmsnorm_run(shadow_ctx *s, const void *p) {
    const shadow_rmsnorm_args *a = p;
    s->cpu.iface->rmsnorm(s->cpu.ctx, SH(a->y), SH(a->x), SH(a->w), a->n, a->dim, a->eps);
}

static void shadow_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int dim,
                           float eps) {
    shadow_rmsnorm_args a = {y, x, w, n, dim, eps};
    shadow_do(ctx, shadow_rmsnorm_run, &a, sizeof a);
}

typedef struct {
    float *x;
    int n, heads, head_dim;
    const int *pos;
    float base;
} shadow_rope_args;

static void shadow_rope_run(shadow_ctx *s, const void *p) {
    const shadow_rope_args *a = p;
    s->cpu.iface->rope(s->cpu.ctx, SH(a->x), a->n, a->heads, a->head_dim, SH(a->pos), a->base);
}

static void shadow_rope(void *ctx, float *x, int n, int heads, int head_dim, const int *pos,
                        float base) {
    shadow_rope_args a = {x, n, heads, head_dim, pos, base};
    shadow_do(ctx, shadow_rope_run, &a, sizeof a);
}

typedef struct {
    float *x;
    const float *y;
    size_t n;
} shadow_silu_mul_args;

static void shadow_silu_mul_run(shadow_ctx *s, const void *p) {
    const shadow_silu_mul_args *a = p;
    s->cpu.iface->silu_mul(s->cpu.ctx, SH(a->x), SH(a->y), a->n);
}

static void shadow_silu_mul(void *ctx, float *x, const float *y, size_t n) {
    shadow_silu_mul_args a = {x, y, n};
    shadow_do(ctx, shadow_silu_mul_run, &a, sizeof a);
}

typedef struct {
    float *x;
    const float *y;
    size_t n;
} shadow_add_args;

static void shadow_add_run(shadow_ctx *s, const void *p) {
    const shadow_add_args *a = p;
    s->cpu.iface->add(s->cpu.ctx, SH(a->x), SH(a->y), a->n);
}

static void shadow_add(void *ctx, float *x, const float *y, size_t n) {
    shadow_add_args a = {x, y, n};
    shadow_do(ctx, shadow_add_run, &a, sizeof a);
}

typedef struct {
    float *out;
    const float *q, *kc, *vc;
    int T;
    const int *pos;
    ryz_attn_geom g;
    float *scratch;
} shadow_attention_args;

static void shadow_attention_run(shadow_ctx *s, const void *p) {
    const shadow_attention_args *a = p;
    s->cpu.iface->attention(s->cpu.ctx, SH(a->out), SH(a->q), SH(a->kc), SH(a->vc), a->T,
                            SH(a->pos), &a->g, SH(a->scratch));
}

static void shadow_attention(void *ctx, float *out, const float *q, const float *kc,
                             const float *vc, int T, const int *pos, const ryz_attn_geom *g,
                             float *scratch) {
    shadow_attention_args a = {out, q, kc, vc, T, pos, *g, scratch};
    shadow_do(ctx, shadow_attention_run, &a, sizeof a);
}

typedef struct {
    float *q, *k;
    const float *v;
    float *kc, *vc;
    int T, heads, kv_heads, head_dim;
    const int *pos;
    float base;
} shadow_rope_cache_args;

static void shadow_rope_cache_run(shadow_ctx *s, const void *p) {
    const shadow_rope_cache_args *a = p;
    s->cpu.iface->rope_cache(s->cpu.ctx, SH(a->q), SH(a->k), SH(a->v), SH(a->kc), SH(a->vc), a->T,
                             a->heads, a->kv_heads, a->head_dim, SH(a->pos), a->base);
}

static void shadow_rope_cache(void *ctx, float *q, float *k, const float *v, float *kc, float *vc,
                              int T, int heads, int kv_heads, int head_dim, const int *pos,
                              float base) {
    shadow_rope_cache_args a = {q, k, v, kc, vc, T, heads, kv_heads, head_dim, pos, base};
    shadow_do(ctx, shadow_rope_cache_run, &a, sizeof a);
}

typedef struct {
    float *y, *x;
    const float *r, *w;
    int n, dim;
    float eps;
} shadow_add_rmsnorm_args;

static void shadow_add_rmsnorm_run(shadow_ctx *s, const void *p) {
    const shadow_add_rmsnorm_args *a = p;
    s->cpu.iface->add_rmsnorm(s->cpu.ctx, SH(a->y), SH(a->x), SH(a->r), SH(a->w), a->n, a->dim,
                              a->eps);
}

static void shadow_add_rmsnorm(void *ctx, float *y, float *x, const float *r, const float *w,
                               int n, int dim, float eps) {
    shadow_add_rmsnorm_args a = {y, x, r, w, n, dim, eps};
    shadow_do(ctx, shadow_add_rmsnorm_run, &a, sizeof a);
}

typedef struct {
    void *dst;
    size_t dst_pitch;
    const void *src;
    size_t src_pitch, width, rows;
} shadow_copy_rows_args;

static void shadow_copy_rows_run(shadow_ctx *s, const void *p) {
    const shadow_copy_rows_args *a = p;
    s->cpu.iface->copy_rows(s->cpu.ctx, SH(a->dst), a->dst_pitch, SH(a->src), a->src_pitch,
                            a->width, a->rows);
}

static void shadow_copy_rows(void *ctx, void *dst, size_t dst_pitch, const void *src,
                             size_t src_pitch, size_t width, size_t rows) {
    shadow_copy_rows_args a = {dst, dst_pitch, src, src_pitch, width, rows};
    shadow_do(ctx, shadow_copy_rows_run, &a, sizeof a);
}

typedef struct {
    float *x;
    const int *tokens;
    int n;
    const float *emb;
    int vocab_start, vocab_local, dim;
} shadow_embedding_args;

static void shadow_embedding_run(shadow_ctx *s, const void *p) {
    const shadow_embedding_args *a = p;
    s->cpu.iface->embedding(s->cpu.ctx, SH(a->x), SH(a->tokens), a->n, SH(a->emb), a->vocab_start,
                            a->vocab_local, a->dim);
}

static void shadow_embedding(void *ctx, float *x, const int *tokens, int n, const float *emb,
                             int vocab_start, int vocab_local, int dim) {
    shadow_embedding_args a = {x, tokens, n, emb, vocab_start, vocab_local, dim};
    shadow_do(ctx, shadow_embedding_run, &a, sizeof a);
}

typedef struct {
    int *idx;
    const float *x;
    int rows, n, ld;
} shadow_argmax_args;

static void shadow_argmax_run(shadow_ctx *s, const void *p) {
    const shadow_argmax_args *a = p;
    s->cpu.iface->argmax(s->cpu.ctx, SH(a->idx), SH(a->x), a->rows, a->n, a->ld);
}

static void shadow_argmax(void *ctx, int *idx, const float *x, int rows, int n, int ld) {
    shadow_argmax_args a = {idx, x, rows, n, ld};
    shadow_do(ctx, shadow_argmax_run, &a, sizeof a);
}

typedef struct {
    float *x;
    int rows, col0, ld;
} shadow_mask_cols_args;

static void shadow_mask_cols_run(shadow_ctx *s, const void *p) {
    const shadow_mask_cols_args *a = p;
    s->cpu.iface->mask_cols(s->cpu.ctx, SH(a->x), a->rows, a->col0, a->ld);
}

static void shadow_mask_cols(void *ctx, float *x, int rows, int col0, int ld) {
    shadow_mask_cols_args a = {x, rows, col0, ld};
    shadow_do(ctx, shadow_mask_cols_run, &a, sizeof a);
}

/* Host traffic while recording is a bug of the caller (a CUDA capture
 * would fail): counted, so tests can insist there is none. */
static void shadow_outside_recording(shadow_ctx *s) {
    if (s->recording)
        s->bad_calls++;
}

static ryz_status shadow_record_begin(void *ctx) {
    shadow_ctx *s = ctx;
    if (s->recording)
        return ryz_error(RYZ_EINVAL, "shadow record_begin: already recording");
    s->recording = calloc(1, sizeof *s->recording);
    ck_assert_ptr_nonnull(s->recording);
    s->records++;
    return RYZ_OK;
}

static ryz_status shadow_record_end(void *ctx, void **graph) {
    shadow_ctx *s = ctx;
    *graph = s->recording;
    s->recording = NULL;
    return *graph ? RYZ_OK : ryz_error(RYZ_EINVAL, "shadow record_end: not recording");
}

static void shadow_replay(void *ctx, void *graph) {
    shadow_ctx *s = ctx;
    const shadow_graph *g = graph;
    s->replays++;
    for (size_t i = 0; i < g->n; i++)
        g->ops[i].run(s, g->ops[i].args);
}

static void shadow_graph_free(void *ctx, void *graph) {
    shadow_graph *g = graph;
    (void)ctx;
    if (g)
        free(g->ops);
    free(g);
}

static ryz_status shadow_upload(void *ctx, void *dst, const void *host_src, size_t bytes) {
    shadow_ctx *s = ctx;
    shadow_outside_recording(s);
    s->uploads++, s->upload_bytes += bytes;
    return s->cpu.iface->upload(s->cpu.ctx, SH(dst), host_src, bytes);
}

static ryz_status shadow_download(void *ctx, void *host_dst, const void *src, size_t bytes) {
    shadow_ctx *s = ctx;
    shadow_outside_recording(s);
    s->downloads++, s->download_bytes += bytes;
    return s->cpu.iface->download(s->cpu.ctx, host_dst, SH(src), bytes);
}

static ryz_status shadow_sync(void *ctx) {
    shadow_ctx *s = ctx;
    shadow_outside_recording(s);
    s->syncs++;
    return s->cpu.iface->sync(s->cpu.ctx);
}

static ryz_status shadow_pin_host(void *ctx, void *p, size_t bytes) {
    shadow_ctx *s = ctx;
    (void)p, (void)bytes;
    s->pins++;
    return RYZ_OK;
}

static void shadow_unpin_host(void *ctx, void *p) {
    shadow_ctx *s = ctx;
    (void)p;
    s->unpins++;
}

static void shadow_mem_usage(void *ctx, ryz_mem_kind kind, size_t *live, size_t *peak) {
    shadow_ctx *s = ctx;
    s->cpu.iface->mem_usage(s->cpu.ctx, kind, live, peak);
}

static void shadow_destroy(void *ctx) {
    shadow_ctx *s = ctx;
    shadow_graph_free(s, s->recording);
    ryz_backend_free(&s->cpu);
    free(s);
}

static const ryz_backend_iface shadow_iface = {
    .name = "shadow",
    .host_visible = 0,
    .bf16_layout = RYZ_BF16_ROWS, /* the cpu backend's kernels read its bf16 */
    .alloc = shadow_alloc,
    .free = shadow_free,
    .matmul = shadow_matmul,
    .matmul_bf16 = shadow_matmul_bf16,
    .rmsnorm = shadow_rmsnorm,
    .add_rmsnorm = shadow_add_rmsnorm,
    .rope = shadow_rope,
    .silu_mul = shadow_silu_mul,
    .add = shadow_add,
    .attention = shadow_attention,
    .rope_cache = shadow_rope_cache,
    .upload = shadow_upload,
    .download = shadow_download,
    .copy_rows = shadow_copy_rows,
    .embedding = shadow_embedding,
    .argmax = shadow_argmax,
    .mask_cols = shadow_mask_cols,
    .sync = shadow_sync,
    .mem_usage = shadow_mem_usage,
    .pin_host = shadow_pin_host,
    .unpin_host = shadow_unpin_host,
    .record_begin = shadow_record_begin,
    .record_end = shadow_record_end,
    .replay = shadow_replay,
    .graph_free = shadow_graph_free,
    .destroy = shadow_destroy,
};

/* A shadow backend over a one-thread cpu backend; free with
 * ryz_backend_free. */
static inline void shadow_init(ryz_backend *out) {
    shadow_ctx *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(ryz_backend_init_cpu(1, &s->cpu), RYZ_OK);
    *out = (ryz_backend){.iface = &shadow_iface, .ctx = s};
}

/* The same with bf16 stored in cuda's tiled layout (RYZ_BF16_TILED): the
 * model's packing and chunked uploads for cuda then run without a GPU. */
static inline void shadow_init_tiled(ryz_backend *out) {
    static ryz_backend_iface tiled;
    tiled = shadow_iface;
    tiled.bf16_layout = RYZ_BF16_TILED;
    tiled.matmul_bf16 = shadow_matmul_bf16_tiled;
    shadow_init(out);
    out->iface = &tiled;
}

static inline shadow_ctx *shadow_of(const ryz_backend *b) {
    return b->ctx;
}

#undef SH
#endif
