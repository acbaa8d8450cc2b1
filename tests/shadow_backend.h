/* A test backend that behaves like a device whose memory the host cannot
 * touch, built on the cpu backend, so the model's cuda code paths run (and
 * are checked) on a machine without a GPU.
 *
 * Its "device" pointers are host pointers with bit 62 flipped: not
 * canonical on x86-64, so any direct host read or write of backend memory
 * (a memcpy the model forgot to route through the vtable) crashes, while
 * pointer arithmetic on them stays linear. Every op untags its pointers
 * and runs the cpu backend's op, so results must equal the cpu backend's
 * bit for bit. host_visible is 0 and it has a matmul_bf16, as cuda; the
 * shadow counts syncs, uploads, downloads and host pins so tests can check
 * the forward pass's traffic. Header-only (static): include it in one test. */
#ifndef RYZ_TEST_SHADOW_BACKEND_H
#define RYZ_TEST_SHADOW_BACKEND_H

#include <stdint.h>

#include "ryz/backend.h"

#define SHADOW_TAG ((uintptr_t)1 << 62)

typedef struct {
    ryz_backend cpu; /* the backend doing the work (owned) */
    long syncs, uploads, downloads;
    long pins, unpins; /* pin_host / unpin_host calls */
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

static void shadow_matmul(void *ctx, float *y, const float *x, const float *w, int n, int in,
                          int out) {
    shadow_ctx *s = ctx;
    s->cpu.iface->matmul(s->cpu.ctx, SH(y), SH(x), SH(w), n, in, out);
}

static void shadow_matmul_bf16(void *ctx, float *y, const float *x, const uint16_t *w, int n,
                               int in, int out) {
    shadow_ctx *s = ctx;
    s->cpu.iface->matmul_bf16(s->cpu.ctx, SH(y), SH(x), SH(w), n, in, out);
}

static void shadow_rmsnorm(void *ctx, float *y, const float *x, const float *w, int n, int dim,
                           float eps) {
    shadow_ctx *s = ctx;
    s->cpu.iface->rmsnorm(s->cpu.ctx, SH(y), SH(x), SH(w), n, dim, eps);
}

static void shadow_rope(void *ctx, float *x, int n, int heads, int head_dim, int pos0,
                        float base) {
    shadow_ctx *s = ctx;
    s->cpu.iface->rope(s->cpu.ctx, SH(x), n, heads, head_dim, pos0, base);
}

static void shadow_silu_mul(void *ctx, float *a, const float *b, size_t n) {
    shadow_ctx *s = ctx;
    s->cpu.iface->silu_mul(s->cpu.ctx, SH(a), SH(b), n);
}

static void shadow_add(void *ctx, float *x, const float *y, size_t n) {
    shadow_ctx *s = ctx;
    s->cpu.iface->add(s->cpu.ctx, SH(x), SH(y), n);
}

static void shadow_attention(void *ctx, float *out, const float *q, const float *kc,
                             const float *vc, int T, int pos0, const ryz_attn_geom *g,
                             float *scratch) {
    shadow_ctx *s = ctx;
    s->cpu.iface->attention(s->cpu.ctx, SH(out), SH(q), SH(kc), SH(vc), T, pos0, g, SH(scratch));
}

static ryz_status shadow_upload(void *ctx, void *dst, const void *host_src, size_t bytes) {
    shadow_ctx *s = ctx;
    s->uploads++, s->upload_bytes += bytes;
    return s->cpu.iface->upload(s->cpu.ctx, SH(dst), host_src, bytes);
}

static ryz_status shadow_download(void *ctx, void *host_dst, const void *src, size_t bytes) {
    shadow_ctx *s = ctx;
    s->downloads++, s->download_bytes += bytes;
    return s->cpu.iface->download(s->cpu.ctx, host_dst, SH(src), bytes);
}

static void shadow_copy_rows(void *ctx, void *dst, size_t dst_pitch, const void *src,
                             size_t src_pitch, size_t width, size_t rows) {
    shadow_ctx *s = ctx;
    s->cpu.iface->copy_rows(s->cpu.ctx, SH(dst), dst_pitch, SH(src), src_pitch, width, rows);
}

static void shadow_embedding(void *ctx, float *x, const int *tokens, int n, const float *emb,
                             int vocab_start, int vocab_local, int dim) {
    shadow_ctx *s = ctx;
    s->cpu.iface->embedding(s->cpu.ctx, SH(x), SH(tokens), n, SH(emb), vocab_start, vocab_local,
                            dim);
}

static void shadow_argmax(void *ctx, int *idx, const float *x, int rows, int n, int ld) {
    shadow_ctx *s = ctx;
    s->cpu.iface->argmax(s->cpu.ctx, SH(idx), SH(x), rows, n, ld);
}

static void shadow_mask_cols(void *ctx, float *x, int rows, int col0, int ld) {
    shadow_ctx *s = ctx;
    s->cpu.iface->mask_cols(s->cpu.ctx, SH(x), rows, col0, ld);
}

static ryz_status shadow_sync(void *ctx) {
    shadow_ctx *s = ctx;
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
    ryz_backend_free(&s->cpu);
    free(s);
}

static const ryz_backend_iface shadow_iface = {
    .name = "shadow",
    .host_visible = 0,
    .alloc = shadow_alloc,
    .free = shadow_free,
    .matmul = shadow_matmul,
    .matmul_bf16 = shadow_matmul_bf16,
    .rmsnorm = shadow_rmsnorm,
    .rope = shadow_rope,
    .silu_mul = shadow_silu_mul,
    .add = shadow_add,
    .attention = shadow_attention,
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

static inline shadow_ctx *shadow_of(const ryz_backend *b) {
    return b->ctx;
}

#undef SH
#endif
