/* The per-rank Llama forward pass (llama2.c's, sharded Megatron-style).
 * Communication happens in exactly four places: the embedding and the LM
 * head, and the two row-parallel layers of each block (after wo, after w2).
 *
 * Everything the forward pass touches lives in the backend's memory and is
 * reached only through its vtable (device memory on cuda): the host hands
 * in token ids (upload) and takes out logits or greedy ids (download), and
 * waits for the backend once per forward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ryz/model.h"

typedef struct {
    /* Matrices are stored as opts.dtype (float or bf16); norms as float. */
    float *att_norm; /* (dim) */
    void *wq;        /* (heads * head_dim, dim)     column-parallel */
    void *wk;        /* (kv_heads * head_dim, dim)  column-parallel */
    void *wv;        /* (kv_heads * head_dim, dim)  column-parallel */
    void *wo;        /* (dim, heads * head_dim)     row-parallel */
    float *ffn_norm; /* (dim) */
    void *w1;        /* (hidden_local, dim)         column-parallel */
    void *w3;        /* (hidden_local, dim)         column-parallel */
    void *w2;        /* (dim, hidden_local)         row-parallel */
} layer_weights;

/* A decode step recorded by the backend, the shape it was recorded for
 * (key: batch size, whether it has a head, whether it ends in argmax) and
 * when it was last used (step_uses then). */
typedef struct {
    void *graph;
    int key;
    unsigned used;
} recorded_step;

/* Shapes of decode steps kept recorded at once: greedy and logits steps
 * alternate in the suite's runs, and each batch size is its own. */
#define RECORDED_STEPS 4

struct ryz_model {
    ryz_model_config cfg;
    ryz_shard sh;
    ryz_model_opts opts;
    int last_only_prefill; /* see ryz_model_set_last_only_prefill */
    ryz_step_hook hook;    /* see ryz_model_set_step_hook */
    void *hook_ctx;
    ryz_comm *comm;
    ryz_backend *be;
    float *emb;        /* (vocab_local, dim) vocab-parallel */
    void *cls;         /* (vocab_local, dim) vocab-parallel, opts.dtype */
    float *final_norm; /* (dim) */
    layer_weights *layers;
    /* KV cache, this rank's heads only. */
    float *kc; /* (max_batch, layers, seq_len, kv_heads * head_dim) */
    float *vc; /* (max_batch, layers, seq_len, kv_heads * head_dim) */
    /* Scratch, R = max_batch * max_chunk rows. */
    float *x;      /* (R, dim) residual stream */
    float *xb;     /* (R, dim) */
    float *q;      /* (R, heads * head_dim) */
    float *k;      /* (R, kv_heads * head_dim) */
    float *v;      /* (R, kv_heads * head_dim) */
    float *att;    /* (R, heads * head_dim) attention output */
    float *y;      /* (R, dim) row-parallel output */
    float *h1;     /* (R, hidden_local) */
    float *h3;     /* (R, hidden_local) */
    float *scores; /* (ryz_attention_scratch_rows(max_chunk, heads), seq_len) */
    float *part;   /* (R, vocab_local) */
    float *greedy; /* (B, RYZ_GREEDY_FLOATS * (tp + 1)): ryz_tp_greedy_ids, host-visible */
    float *gather; /* (R, vocab_padded) */
    float *logits; /* (R, vocab_padded) */
    int *tok;      /* (R + 1) this forward's token ids, then its first position */
    int *pos;      /* tok + R: rope, attention and the cache writes read it */
    int *next;     /* (max_batch) greedy ids of each sequence's last row */
    int rows;      /* logits rows the last forward left (0 after a failure) */
    /* Recorded decode steps (see replay_step), when the backend records. */
    int record;                   /* 1 while recording is on for this model */
    recorded_step steps[RECORDED_STEPS]; /* graph NULL where unused */
    unsigned step_uses;           /* a clock for replacing the least recently used */
    /* Host memory, only where the backend's is not host-visible (cuda). */
    float *host_logits; /* (R, vocab_padded) downloaded logits */
    int pinned[2];      /* host_logits, stage page-locked by the backend */
    float *stage;       /* (R, max(dim, vocab_local + vocab_padded)) staged
                           collectives, only when ryz_tp_staged */
    float *widen; /* (FILL_ROWS, widest matrix row): loading only, when bf16
                     is packed or weights are uploaded */
    uint16_t *pack; /* (FILL_ROWS, widest matrix row) bf16: loading only, when
                       bf16 is packed on the host for upload */
};

/* Rows of a matrix read from the source at a time when it goes through
 * widen (packed to bf16, or uploaded to the device). A multiple of 4, so
 * in the tiled bf16 layout a chunk is whole row groups (see
 * upload_bf16_rows). */
#define FILL_ROWS 64
_Static_assert(FILL_ROWS % 4 == 0, "FILL_ROWS must keep bf16 row groups whole");

static int shard_skew;

void ryz_test_set_shard_skew(int on) {
    shard_skew = on;
}

/* a x b elements of `size` bytes from the backend; NULL on overflow. */
static void *alloc_n(ryz_model *m, ryz_mem_kind kind, size_t a, size_t b, size_t size) {
    size_t n;
    if (!ryz_mul_ok(a, b, &n) || !ryz_mul_ok(n, size, &n)) return NULL;
    return m->be->iface->alloc(m->be->ctx, kind, n);
}

static float *alloc_f(ryz_model *m, ryz_mem_kind kind, size_t a, size_t b) {
    return alloc_n(m, kind, a, b, sizeof(float));
}

/* A weight matrix (rows, cols) in the model's dtype. */
static void *alloc_matrix(ryz_model *m, size_t rows, size_t cols) {
    return alloc_n(m, RYZ_MEM_WEIGHTS, rows, cols, ryz_dtype_size(m->opts.dtype));
}

static void free_f(ryz_model *m, void *pp) {
    void **p = pp;
    if (*p) m->be->iface->free(m->be->ctx, *p);
    *p = NULL;
}

static ryz_matrix matrix_of(const ryz_model *m, const void *w) {
    return (ryz_matrix){w, m->opts.dtype};
}

/* Whether the weights are read through widen rather than straight into
 * the backend's memory. */
static int fills_through_widen(const ryz_model *m) {
    return !m->be->iface->host_visible || m->opts.dtype != RYZ_DTYPE_F32;
}

/* Whether bf16 weights are packed on the host and uploaded (through
 * pack) rather than packed straight into the backend's memory. */
static int packs_for_upload(const ryz_model *m) {
    return !m->be->iface->host_visible && m->opts.dtype == RYZ_DTYPE_BF16;
}

/* Rows [r, r + rows) of a bf16 matrix (nrows, ncols), as floats in widen,
 * packed in m->pack and uploaded into the matrix's storage out. r is a
 * multiple of 4 and r + rows one too or nrows, so in either layout these
 * rows (whole row groups, and the row-major tail, when tiled) are the
 * contiguous elements from r * ncols, laid out exactly as a matrix of just
 * these rows would be. */
static ryz_status upload_bf16_rows(ryz_model *m, void *out, int r, int rows, int ncols,
                                   int nrows) {
    ryz_bf16_layout l = m->be->iface->bf16_layout;
    RYZ_ASSERT(r % 4 == 0 && (rows % 4 == 0 || r + rows == nrows));
    ryz_bf16_pack_rows(l, m->pack, m->widen, 0, rows, ncols, rows);
    uint16_t *dst = (uint16_t *)out + ryz_bf16_index(l, r, 0, ncols, nrows);
    return m->be->iface->upload(m->be->ctx, dst, m->pack, (size_t)rows * ncols * sizeof *dst);
}

/* Rows [r, r + rows) of a matrix (nrows, ncols), as floats in widen, into
 * its storage out (backend memory) as dtype: uploaded (f32), packed in
 * place (bf16, host-visible) or packed and uploaded. */
static ryz_status store_rows(ryz_model *m, void *out, int r, int rows, int ncols, int nrows,
                             ryz_dtype dtype) {
    if (dtype == RYZ_DTYPE_F32)
        return m->be->iface->upload(m->be->ctx, (float *)out + (size_t)r * ncols, m->widen,
                                    (size_t)rows * ncols * sizeof(float));
    if (!m->be->iface->host_visible) return upload_bf16_rows(m, out, r, rows, ncols, nrows);
    ryz_bf16_pack_rows(m->be->iface->bf16_layout, out, m->widen, r, rows, ncols, nrows);
    return RYZ_OK;
}

/* Fills block (nrows, ncols) of tensor t into out (backend memory) stored
 * as dtype. Float32 on a host-visible backend is read in place; otherwise
 * FILL_ROWS rows at a time go through the host buffer widen, then are
 * packed (bf16) and/or uploaded, so loading never holds a host copy of a
 * whole matrix. */
static ryz_status fill_block(ryz_model *m, ryz_weights *src, uint32_t t, int64_t row0, int nrows,
                             int64_t col0, int ncols, ryz_dtype dtype, void *out) {
    if (m->be->iface->host_visible && dtype == RYZ_DTYPE_F32)
        return ryz_weights_fill(src, t, row0, nrows, col0, ncols, ncols, out);
    for (int r = 0; r < nrows; r += FILL_ROWS) {
        int rows = nrows - r < FILL_ROWS ? nrows - r : FILL_ROWS;
        ryz_status st = ryz_weights_fill(src, t, row0 + r, rows, col0, ncols, ncols, m->widen);
        if (st == RYZ_OK) st = store_rows(m, out, r, rows, ncols, nrows, dtype);
        if (st != RYZ_OK) return st;
    }
    return RYZ_OK;
}

/* Allocates and fills one block's shard from the weight source. */
static ryz_status build_layer(ryz_model *m, ryz_weights *src, int l, layer_weights *w) {
    const ryz_model_config *c = &m->cfg;
    const ryz_shard *s = &m->sh;
    int dim = c->dim, hd = s->head_dim, qd = s->heads * hd, kvd = s->kv_heads * hd;
    w->att_norm = alloc_f(m, RYZ_MEM_WEIGHTS, dim, 1);
    w->ffn_norm = alloc_f(m, RYZ_MEM_WEIGHTS, dim, 1);
    w->wq = alloc_matrix(m, qd, dim);
    w->wk = alloc_matrix(m, kvd, dim);
    w->wv = alloc_matrix(m, kvd, dim);
    w->wo = alloc_matrix(m, dim, qd);
    w->w1 = alloc_matrix(m, s->hidden, dim);
    w->w3 = alloc_matrix(m, s->hidden, dim);
    w->w2 = alloc_matrix(m, dim, s->hidden);
    if (!w->att_norm || !w->ffn_norm || !w->wq || !w->wk || !w->wv || !w->wo || !w->w1 ||
        !w->w3 || !w->w2)
        return ryz_error(RYZ_ENOMEM, "out of memory for layer %d weights on rank %d", l,
                         s->rank);
    int64_t q0 = (int64_t)s->head_start * hd, kv0 = (int64_t)s->kv_start * hd;
    int64_t wo_col = q0 + (shard_skew && s->rank > 0 ? 1 : 0);
    struct {
        int t;
        int64_t row0;
        int nrows;
        int64_t col0;
        int ncols;
        void *out;
    } blocks[] = {
        {RYZ_T_ATT_NORM, 0, 1, 0, dim, w->att_norm},
        {RYZ_T_FFN_NORM, 0, 1, 0, dim, w->ffn_norm},
        {RYZ_T_WQ, q0, qd, 0, dim, w->wq},               /* column-parallel: rows */
        {RYZ_T_WK, kv0, kvd, 0, dim, w->wk},
        {RYZ_T_WV, kv0, kvd, 0, dim, w->wv},
        {RYZ_T_WO, 0, dim, wo_col, qd, w->wo},           /* row-parallel: columns */
        {RYZ_T_W1, s->hidden_start, s->hidden, 0, dim, w->w1},
        {RYZ_T_W3, s->hidden_start, s->hidden, 0, dim, w->w3},
        {RYZ_T_W2, 0, dim, s->hidden_start, s->hidden, w->w2},
    };
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        ryz_dtype dt = i < 2 ? RYZ_DTYPE_F32 : m->opts.dtype; /* norms stay float */
        ryz_status st = fill_block(m, src, RYZ_T_LAYER(l, blocks[i].t), blocks[i].row0,
                                   blocks[i].nrows, blocks[i].col0, blocks[i].ncols, dt,
                                   blocks[i].out);
        if (st != RYZ_OK) return st;
    }
    return RYZ_OK;
}

static void free_layer(ryz_model *m, layer_weights *w) {
    void *p[] = {&w->att_norm, &w->ffn_norm, &w->wq, &w->wk, &w->wv,
                 &w->wo,       &w->w1,       &w->w3, &w->w2};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free_f(m, p[i]);
}

/* The host buffers that live only while the weights load. */
static void free_loading_buffers(ryz_model *m) {
    free(m->widen);
    free(m->pack);
    m->widen = NULL;
    m->pack = NULL;
}

static ryz_status build_weights(ryz_model *m, ryz_weights *src) {
    const ryz_model_config *c = &m->cfg;
    const ryz_shard *s = &m->sh;
    m->emb = alloc_f(m, RYZ_MEM_WEIGHTS, s->vocab_local, c->dim);
    m->cls = alloc_matrix(m, s->vocab_local, c->dim);
    m->final_norm = alloc_f(m, RYZ_MEM_WEIGHTS, c->dim, 1);
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    int widest = c->dim > s->hidden ? c->dim : s->hidden;
    if (s->heads * s->head_dim > widest) widest = s->heads * s->head_dim;
    if (fills_through_widen(m))
        m->widen = malloc((size_t)FILL_ROWS * (size_t)widest * sizeof *m->widen);
    if (packs_for_upload(m))
        m->pack = malloc((size_t)FILL_ROWS * (size_t)widest * sizeof *m->pack);
    if (!m->emb || !m->cls || !m->final_norm || !m->layers)
        return ryz_error(RYZ_ENOMEM, "out of memory for embedding and LM head on rank %d",
                         s->rank);
    if ((fills_through_widen(m) && !m->widen) || (packs_for_upload(m) && !m->pack))
        return ryz_error(RYZ_ENOMEM, "out of host memory for the loading buffers (2 x %zu "
                         "bytes: %d rows of %d) on rank %d", (size_t)FILL_ROWS * widest * 4,
                         FILL_ROWS, widest, s->rank);
    ryz_status st = fill_block(m, src, RYZ_T_EMBED, s->vocab_start, s->vocab_local, 0, c->dim,
                               RYZ_DTYPE_F32, m->emb);
    if (st == RYZ_OK)
        st = fill_block(m, src, RYZ_T_CLS, s->vocab_start, s->vocab_local, 0, c->dim,
                        m->opts.dtype, m->cls);
    if (st == RYZ_OK)
        st = fill_block(m, src, RYZ_T_FINAL_NORM, 0, 1, 0, c->dim, RYZ_DTYPE_F32, m->final_norm);
    for (int l = 0; st == RYZ_OK && l < c->n_layers; l++)
        st = build_layer(m, src, l, &m->layers[l]);
    free_loading_buffers(m);
    return st;
}

/* Page-locks host buffer p for the backend when it offers that (cuda:
 * copies at DMA speed); 1 when pinned. A failure is a warning: pageable
 * memory works, only slower. */
static int pin_host(ryz_model *m, void *p, size_t bytes) {
    const ryz_backend_iface *f = m->be->iface;
    if (!p || !f->pin_host) return 0;
    if (f->pin_host(m->be->ctx, p, bytes) == RYZ_OK) return 1;
    ryz_log(RYZ_LOG_WARN, "%s; copies through it stay pageable", ryz_last_error());
    return 0;
}

/* The host side of a backend the host cannot see: logits to download
 * into and, when collectives are staged, their buffer, both page-locked
 * when the backend can. Counted as scratch in the process's (host) memory
 * figures; the backend's are device bytes. */
static ryz_status build_host_buffers(ryz_model *m, size_t R) {
    const ryz_shard *s = &m->sh;
    if (m->be->iface->host_visible) return RYZ_OK;
    size_t gather = (size_t)s->vocab_local + (size_t)s->vocab_padded;
    size_t stage = (size_t)m->cfg.dim > gather ? (size_t)m->cfg.dim : gather;
    size_t n;
    if (!ryz_mul_ok(R, (size_t)s->vocab_padded, &n) || !ryz_mul_ok(R, stage, &stage))
        return ryz_error(RYZ_ENOMEM, "host buffers of %zu rows overflow on rank %d", R, s->rank);
    m->host_logits = ryz_mem_alloc(RYZ_MEM_SCRATCH, n, sizeof(float));
    if (ryz_tp_staged(m->be, m->comm))
        m->stage = ryz_mem_alloc(RYZ_MEM_SCRATCH, stage, sizeof(float));
    if (!m->host_logits || (ryz_tp_staged(m->be, m->comm) && !m->stage))
        return ryz_error(RYZ_ENOMEM,
                         "out of host memory for the logits (%zu floats) and staging buffer "
                         "(%zu floats) of the %s backend on rank %d",
                         n, stage, m->be->iface->name, s->rank);
    m->pinned[0] = pin_host(m, m->host_logits, n * sizeof(float));
    m->pinned[1] = pin_host(m, m->stage, stage * sizeof(float));
    return RYZ_OK;
}

static ryz_status build_state(ryz_model *m) {
    const ryz_model_config *c = &m->cfg;
    const ryz_shard *s = &m->sh;
    size_t B = (size_t)m->opts.max_batch, R = B * (size_t)m->opts.max_chunk;
    size_t qd = (size_t)s->heads * s->head_dim, kvd = (size_t)s->kv_heads * s->head_dim;
    size_t cache = B * (size_t)c->n_layers * (size_t)c->seq_len;
    m->kc = alloc_f(m, RYZ_MEM_KV, cache, kvd);
    m->vc = alloc_f(m, RYZ_MEM_KV, cache, kvd);
    m->x = alloc_f(m, RYZ_MEM_SCRATCH, R, c->dim);
    m->xb = alloc_f(m, RYZ_MEM_SCRATCH, R, c->dim);
    m->y = alloc_f(m, RYZ_MEM_SCRATCH, R, c->dim);
    m->q = alloc_f(m, RYZ_MEM_SCRATCH, R, qd);
    m->att = alloc_f(m, RYZ_MEM_SCRATCH, R, qd);
    m->k = alloc_f(m, RYZ_MEM_SCRATCH, R, kvd);
    m->v = alloc_f(m, RYZ_MEM_SCRATCH, R, kvd);
    m->h1 = alloc_f(m, RYZ_MEM_SCRATCH, R, s->hidden);
    m->h3 = alloc_f(m, RYZ_MEM_SCRATCH, R, s->hidden);
    m->scores = alloc_f(m, RYZ_MEM_SCRATCH, ryz_attention_scratch_rows(m->opts.max_chunk, s->heads),
                        c->seq_len);
    m->part = alloc_f(m, RYZ_MEM_SCRATCH, R, s->vocab_local);
    m->gather = alloc_f(m, RYZ_MEM_SCRATCH, R, s->vocab_padded);
    m->logits = alloc_f(m, RYZ_MEM_SCRATCH, R, s->vocab_padded);
    m->tok = alloc_n(m, RYZ_MEM_SCRATCH, R + 1, 1, sizeof(int));
    m->pos = m->tok ? m->tok + R : NULL;
    m->next = alloc_n(m, RYZ_MEM_SCRATCH, B, 1, sizeof(int));
    if (m->be->iface->host_visible)
        m->greedy = alloc_f(m, RYZ_MEM_SCRATCH, B, (size_t)RYZ_GREEDY_FLOATS * (s->tp + 1));
    if (!m->kc || !m->vc || !m->x || !m->xb || !m->y || !m->q || !m->att || !m->k || !m->v ||
        !m->h1 || !m->h3 || !m->scores || !m->part || !m->gather || !m->logits || !m->tok ||
        !m->next || (m->be->iface->host_visible && !m->greedy))
        return ryz_error(RYZ_ENOMEM, "out of memory for KV cache and scratch on rank %d",
                         s->rank);
    return build_host_buffers(m, R);
}

ryz_status ryz_model_build(const ryz_model_config *cfg, ryz_comm *comm, ryz_backend *backend,
                           const ryz_model_opts *opts, ryz_model **out) {
    ryz_weights *w = NULL;
    *out = NULL;
    ryz_status st = ryz_config_validate(cfg, ryz_comm_size(comm));
    if (st == RYZ_OK) st = ryz_weights_synthetic(cfg, &w);
    if (st == RYZ_OK) st = ryz_model_build_from(cfg, w, comm, backend, opts, out);
    ryz_weights_close(w);
    return st;
}

ryz_status ryz_model_open(const char *src, ryz_comm *comm, ryz_backend *backend,
                          const ryz_model_opts *opts, ryz_model **out) {
    ryz_model_config cfg;
    ryz_weights *w = NULL;
    *out = NULL;
    ryz_status st = ryz_model_source_open(src, ryz_comm_size(comm), ryz_comm_rank(comm), &cfg, &w);
    if (st == RYZ_OK) st = ryz_model_build_from(&cfg, w, comm, backend, opts, out);
    ryz_weights_close(w);
    /* A rank whose shard failed to load must not leave the others waiting in
     * the first all-reduce: the group agrees on success before any forward. */
    float failed = st != RYZ_OK, any = 0;
    if (failed && ryz_comm_size(comm) > 1) RYZ_ERROR("%s", ryz_last_error()); /* say why here */
    ryz_status cs = ryz_comm_size(comm) > 1 ? ryz_comm_all_reduce_sum(comm, &failed, &any, 1)
                                            : (any = failed, RYZ_OK);
    if (cs != RYZ_OK || (any > 0 && st == RYZ_OK)) {
        ryz_model_free(*out);
        *out = NULL;
        if (cs != RYZ_OK) return cs;
        return ryz_error(RYZ_EINVAL, "%d rank(s) of the TP group failed to load %s", (int)any, src);
    }
    return st;
}

/* EINVAL unless the backend can hold and multiply weights of dtype: bf16
 * needs a bf16 matmul (its storage is packed on the host, in place or for
 * upload: fill_block). */
static ryz_status check_dtype(ryz_dtype dtype, const ryz_backend *b) {
    int has_bf16 = b->iface->matmul_bf16 != NULL;
    if (dtype == RYZ_DTYPE_F32 || (dtype == RYZ_DTYPE_BF16 && has_bf16)) return RYZ_OK;
    char name[16];
    snprintf(name, sizeof name, dtype == RYZ_DTYPE_BF16 ? "bf16" : "%d", (int)dtype);
    return ryz_error(RYZ_EINVAL, "dtype %s not supported by the %s backend (f32%s)", name,
                     b->iface->name, has_bf16 ? " or bf16" : " only");
}

/* The shard's weights in opts' dtype and its KV cache, a lower bound of
 * what the build allocates, against the memory backend b has free when it
 * is not the host's (cuda): a model that cannot fit is refused with its
 * sizes before anything loads, not by a cudaMalloc halfway through. */
static ryz_status check_backend_memory(const ryz_model_config *c, const ryz_shard *s,
                                       const ryz_model_opts *o, ryz_backend *b) {
    size_t free_bytes = 0, total = 0, weights, kv;
    if (!b->iface->mem_info) return RYZ_OK;
    ryz_status st = b->iface->mem_info(b->ctx, &free_bytes, &total);
    if (st != RYZ_OK)
        return ryz_error_wrap(st, "rank %d: the free memory of its %s device", s->rank,
                              b->iface->name);
    ryz_model_shard_bytes(c, s, o->dtype, o->max_batch, &weights, &kv);
    char what[192], where[96], fix[112];
    snprintf(what, sizeof what, "rank %d: its shard's %s weights (%.2f GB) and KV cache (%.2f GB: "
             "%d sequence(s) of %d positions)", s->rank, ryz_dtype_name(o->dtype),
             (double)weights / 1e9, (double)kv / 1e9, o->max_batch, c->seq_len);
    snprintf(where, sizeof where, "free on its %s device (of %.1f GB)", b->iface->name,
             (double)total / 1e9);
    snprintf(fix, sizeof fix, "use more ranks (one GPU each), %sfewer sequences or positions, "
             "or a smaller model", o->dtype == RYZ_DTYPE_F32 ? "bf16 weights, " : "");
    /* A full device's 0 is a figure, not the "unknown" of MemAvailable's. */
    return ryz_mem_check_fits(weights > SIZE_MAX - kv ? SIZE_MAX : weights + kv,
                              free_bytes ? free_bytes : 1, what, where, fix);
}

ryz_status ryz_model_build_from(const ryz_model_config *cfg, ryz_weights *src, ryz_comm *comm,
                                ryz_backend *backend, const ryz_model_opts *opts,
                                ryz_model **out) {
    *out = NULL;
    int tp = ryz_comm_size(comm);
    ryz_status st = ryz_config_validate(cfg, tp);
    if (st != RYZ_OK) return st;
    if (opts->max_batch < 1 || opts->max_chunk < 1 || opts->max_chunk > cfg->seq_len)
        return ryz_error(RYZ_EINVAL, "batch %d and chunk %d must be >= 1, chunk <= seq_len %d",
                         opts->max_batch, opts->max_chunk, cfg->seq_len);
    ryz_shard sh;
    ryz_shard_plan(cfg, tp, ryz_comm_rank(comm), &sh);
    st = check_dtype(opts->dtype, backend);
    if (st == RYZ_OK) st = check_backend_memory(cfg, &sh, opts, backend);
    if (st != RYZ_OK) return st;
    ryz_model *m = calloc(1, sizeof *m);
    if (!m) return ryz_error(RYZ_ENOMEM, "out of memory for the model");
    m->cfg = *cfg;
    m->opts = *opts;
    m->comm = comm;
    m->be = backend;
    m->sh = sh;
    const char *skew = getenv("RYZ_TEST_SHARD_SKEW");
    if (skew && strcmp(skew, "1") == 0) shard_skew = 1;
    const char *graphs = getenv("RYZ_CUDA_GRAPHS");
    m->record = backend->iface->record_begin && tp == 1 && !(graphs && strcmp(graphs, "0") == 0);
    st = build_weights(m, src);
    if (st == RYZ_OK) st = build_state(m);
    if (st != RYZ_OK) {
        ryz_model_free(m);
        return st;
    }
    *out = m;
    return RYZ_OK;
}

void ryz_model_free(ryz_model *m) {
    if (!m) return;
    for (int i = 0; i < RECORDED_STEPS; i++)
        if (m->steps[i].graph) m->be->iface->graph_free(m->be->ctx, m->steps[i].graph);
    for (int l = 0; m->layers && l < m->cfg.n_layers; l++) free_layer(m, &m->layers[l]);
    free(m->layers);
    free_loading_buffers(m);
    void *p[] = {&m->emb, &m->cls, &m->final_norm, &m->kc,     &m->vc,     &m->x,
                 &m->xb,  &m->y,   &m->q,          &m->att,    &m->k,      &m->v,
                 &m->h1,  &m->h3,  &m->scores,     &m->part,   &m->gather, &m->logits,
                 &m->tok, &m->next, &m->greedy};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free_f(m, p[i]);
    float *host[2] = {m->host_logits, m->stage};
    for (int i = 0; i < 2; i++) {
        if (m->pinned[i]) m->be->iface->unpin_host(m->be->ctx, host[i]);
        ryz_mem_free(host[i]);
    }
    free(m);
}

const ryz_model_config *ryz_model_config_of(const ryz_model *m) {
    return &m->cfg;
}

const ryz_shard *ryz_model_shard(const ryz_model *m) {
    return &m->sh;
}

void ryz_model_set_last_only_prefill(ryz_model *m, int on) {
    m->last_only_prefill = on;
}

int ryz_model_last_only_prefill(const ryz_model *m) {
    return m->last_only_prefill;
}

void ryz_model_set_step_hook(ryz_model *m, ryz_step_hook fn, void *ctx) {
    m->hook = fn, m->hook_ctx = ctx;
}

ryz_step_hook ryz_model_step_hook(const ryz_model *m, void **ctx) {
    *ctx = m->hook_ctx;
    return m->hook;
}

int ryz_model_recording(const ryz_model *m) {
    return m->record;
}

const ryz_model_opts *ryz_model_opts_of(const ryz_model *m) {
    return &m->opts;
}

/* xb = rmsnorm(x) * w for n rows, after x += y when the previous block
 * left its output in y (pending): a block's residual add is done by the
 * next norm, one op instead of two. */
static void block_norm(ryz_model *m, const float *w, int n, int pending) {
    const ryz_backend_iface *f = m->be->iface;
    if (pending)
        f->add_rmsnorm(m->be->ctx, m->xb, m->x, m->y, w, n, m->cfg.dim, m->cfg.norm_eps);
    else
        f->rmsnorm(m->be->ctx, m->xb, m->x, w, n, m->cfg.dim, m->cfg.norm_eps);
}

/* Attention sub-block of layer l for B sequences of T rows: QKV, RoPE, KV
 * cache write, causal attention, then row-parallel wo (all-reduce) into y,
 * which the next norm adds to x (pending: y holds the last block's). */
static ryz_status attention_block(ryz_model *m, int l, int B, int T, int pending) {
    const ryz_model_config *c = &m->cfg;
    const ryz_shard *s = &m->sh;
    const layer_weights *w = &m->layers[l];
    const ryz_backend_iface *f = m->be->iface;
    int n = B * T, dim = c->dim, hd = s->head_dim;
    int qd = s->heads * hd, kvd = s->kv_heads * hd;
    ryz_attn_geom g = {s->heads, hd, s->kv_heads, s->head_start, s->kv_start, s->kv_mul};
    float *qkv[3] = {m->q, m->k, m->v};
    ryz_matrix wqkv[3] = {matrix_of(m, w->wq), matrix_of(m, w->wk), matrix_of(m, w->wv)};
    int outs[3] = {qd, kvd, kvd};
    block_norm(m, w->att_norm, n, pending);
    ryz_tp_column_multi(m->be, 3, qkv, m->xb, wqkv, outs, n, dim);
    for (int b = 0; b < B; b++) {
        size_t row = (size_t)b * T;
        size_t layer_off = ((size_t)b * c->n_layers + l) * c->seq_len * kvd;
        float *kc = m->kc + layer_off, *vc = m->vc + layer_off;
        f->rope_cache(m->be->ctx, m->q + row * qd, m->k + row * kvd, m->v + row * kvd, kc, vc, T,
                      s->heads, s->kv_heads, hd, m->pos, c->rope_base);
        f->attention(m->be->ctx, m->att + row * qd, m->q + row * qd, kc, vc, T, m->pos, &g,
                     m->scores);
    }
    return ryz_tp_row(m->be, m->comm, m->y, m->att, matrix_of(m, w->wo), n, qd, dim, m->stage);
}

/* SwiGLU sub-block: w2(silu(w1 x) * w3 x), w2 row-parallel (all-reduce)
 * into y; the attention block's y is added to x first. */
static ryz_status ffn_block(ryz_model *m, int l, int n) {
    const ryz_model_config *c = &m->cfg;
    const layer_weights *w = &m->layers[l];
    int dim = c->dim, hl = m->sh.hidden;
    block_norm(m, w->ffn_norm, n, 1);
    ryz_tp_column_pair(m->be, m->h1, m->h3, m->xb, matrix_of(m, w->w1), matrix_of(m, w->w3), n, dim,
                       hl);
    return ryz_tp_row(m->be, m->comm, m->y, m->h1, matrix_of(m, w->w2), n, hl, dim, m->stage);
}

/* Final RMSNorm (after the last block's y is added to x) and LM head into
 * m->logits. With last_only, each sequence's last row of x is then copied
 * to xb, so the norm and the head see B rows. With ids (B, host;
 * one row per sequence, see greedy_in_place), only this rank's part of
 * the logits is computed and ids receives the greedy ids. */
static ryz_status head(ryz_model *m, int B, int T, int last_only, int *ids) {
    const ryz_model_config *c = &m->cfg;
    const ryz_backend_iface *f = m->be->iface;
    int n = B * T; /* y holds the last block's output, not yet in x (layers >= 1) */
    if (last_only && T > 1) { /* rows b*T + T-1 of x to rows b of xb */
        size_t row = (size_t)c->dim * sizeof(float);
        f->add(m->be->ctx, m->x, m->y, (size_t)n * c->dim);
        f->copy_rows(m->be->ctx, m->xb, row, m->x + (size_t)(T - 1) * c->dim, row * (size_t)T,
                     row, (size_t)B);
        n = B;
        f->rmsnorm(m->be->ctx, m->xb, m->xb, m->final_norm, n, c->dim, c->norm_eps);
    } else {
        block_norm(m, m->final_norm, n, 1);
    }
    if (ids) {
        ryz_backend_matmul(m->be, m->part, m->xb, matrix_of(m, m->cls), n, c->dim,
                           m->sh.vocab_local);
        return ryz_tp_greedy_ids(m->comm, m->part, n, c->vocab, &m->sh, m->greedy, ids);
    }
    return ryz_tp_lm_head(m->be, m->comm, m->logits, m->xb, matrix_of(m, m->cls), n, c->dim,
                          c->vocab, &m->sh, m->part, m->gather, m->stage);
}

/* Whether a step's greedy ids come from each rank's part of the logits
 * (ryz_tp_greedy_ids: a few floats per sequence instead of an all-gather
 * of the vocab): at TP > 1 on host-visible memory, with last-only prefill
 * set (a choice every rank of the group makes alike, unlike whether it
 * keeps logits), when the head has one row per sequence and the caller
 * wants no logits. */
static int greedy_in_place(const ryz_model *m, int T, int last_only, int want_logits) {
    return !want_logits && m->last_only_prefill && (T == 1 || last_only) && m->sh.tp > 1 &&
           m->be->iface->host_visible;
}

/* EINVAL unless B sequences of T tokens at pos0 fit the model and every
 * token is in the vocab. */
static ryz_status check_input(const ryz_model *m, const int *tokens, int B, int T, int pos0) {
    const ryz_model_config *c = &m->cfg;
    if (B < 1 || B > m->opts.max_batch || T < 1 || T > m->opts.max_chunk || pos0 < 0 ||
        pos0 + T > c->seq_len)
        return ryz_error(RYZ_EINVAL,
                         "forward of batch %d x %d tokens at position %d exceeds the model's "
                         "batch %d, chunk %d or seq_len %d",
                         B, T, pos0, m->opts.max_batch, m->opts.max_chunk, c->seq_len);
    for (int i = 0; i < B * T; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return ryz_error(RYZ_EINVAL, "token id %d outside vocab [0, %d)", tokens[i],
                             c->vocab);
    return RYZ_OK;
}

/* Enqueues the embedding of m->tok (B x T tokens at position *m->pos),
 * every block and (unless no_head) the head; ids as head's; with argmax,
 * then each sequence's greedy id into m->next. */
static ryz_status enqueue_forward(ryz_model *m, int B, int T, int last_only, int no_head,
                                  int *ids, int argmax) {
    const ryz_model_config *c = &m->cfg;
    const ryz_shard *s = &m->sh;
    int n = B * T, rows = last_only ? 1 : T; /* logits rows per sequence */
    ryz_status st = ryz_tp_embedding(m->be, m->comm, m->x, m->tok, n, m->emb, s->vocab_start,
                                     s->vocab_local, c->dim, m->stage);
    for (int l = 0; st == RYZ_OK && l < c->n_layers; l++) {
        st = attention_block(m, l, B, T, l > 0);
        if (st == RYZ_OK) st = ffn_block(m, l, n);
    }
    if (st == RYZ_OK && !no_head) st = head(m, B, T, last_only, ids);
    if (st == RYZ_OK && argmax)
        m->be->iface->argmax(m->be->ctx, m->next, m->logits + (size_t)(rows - 1) * s->vocab_padded,
                             B, c->vocab, rows * s->vocab_padded);
    return st;
}

/* The recorded step for key, recording it first (enqueue_forward of a
 * decode step) when it is not kept, in place of the least recently used;
 * NULL with the recording's error. */
static void *recorded(ryz_model *m, int key, int B, int no_head, int argmax, ryz_status *st) {
    const ryz_backend_iface *f = m->be->iface;
    recorded_step *r = &m->steps[0];
    for (int i = 0; i < RECORDED_STEPS; i++) {
        if (m->steps[i].graph && m->steps[i].key == key) {
            r = &m->steps[i];
            break;
        }
        if (!m->steps[i].graph || m->steps[i].used < r->used) r = &m->steps[i];
    }
    r->used = ++m->step_uses;
    if (r->graph && r->key == key) return r->graph;
    if (r->graph) f->graph_free(m->be->ctx, r->graph);
    r->graph = NULL;
    *st = f->record_begin(m->be->ctx);
    if (*st != RYZ_OK) return NULL;
    ryz_status enq = enqueue_forward(m, B, 1, 0, no_head, NULL, argmax);
    *st = f->record_end(m->be->ctx, &r->graph);
    if (*st == RYZ_OK && enq != RYZ_OK) { /* cannot happen at TP=1: no collectives */
        f->graph_free(m->be->ctx, r->graph);
        r->graph = NULL, *st = enq;
    }
    r->key = key;
    return r->graph;
}

/* A decode step (T = 1) on a backend that records, at TP=1: the step's
 * few hundred ops are recorded once per shape and replayed as one launch
 * (on cuda, the launches had cost more than the GPU's work on 1b). A
 * failed recording turns recording off for this model with a warning,
 * and the step runs op by op. */
static ryz_status replay_step(ryz_model *m, int B, int no_head, int argmax) {
    ryz_status st = RYZ_OK;
    void *g = recorded(m, (B << 2) | (no_head << 1) | argmax, B, no_head, argmax, &st);
    if (g) {
        m->be->iface->replay(m->be->ctx, g);
        return RYZ_OK;
    }
    RYZ_WARN("recording a decode step failed (%s); running its ops one by one from now on",
             ryz_last_error());
    m->record = 0;
    return enqueue_forward(m, B, 1, 0, no_head, NULL, argmax);
}

/* Tokens (B x T, host) and the position pos0 into m->tok and m->pos. */
static ryz_status upload_input(ryz_model *m, const int *tokens, int n, int pos0) {
    const ryz_backend_iface *f = m->be->iface;
    ryz_status st = f->upload(m->be->ctx, m->tok, tokens, (size_t)n * sizeof(int));
    return st == RYZ_OK ? f->upload(m->be->ctx, m->pos, &pos0, sizeof pos0) : st;
}

ryz_status ryz_model_step(ryz_model *m, const int *tokens, int B, int T, int pos0, int last_only,
                          int *next, int want_logits) {
    const ryz_backend_iface *f = m->be->iface;
    m->rows = 0;
    ryz_status st = check_input(m, tokens, B, T, pos0);
    if (st != RYZ_OK) return st;
    int rows = last_only ? 1 : T; /* logits rows per sequence */
    int in_place = next && greedy_in_place(m, T, last_only, want_logits);
    /* a prefill chunk before the last one, when no one keeps logits: its
     * head would make logits nobody reads (decided alike on every rank) */
    int no_head = !next && !want_logits && m->last_only_prefill;
    int argmax = next && !in_place; /* greedy ids on the backend: B ints come back */
    st = upload_input(m, tokens, B * T, pos0);
    if (st == RYZ_OK && T == 1 && m->record)
        st = replay_step(m, B, no_head, argmax);
    else if (st == RYZ_OK)
        st = enqueue_forward(m, B, T, last_only, no_head, in_place ? next : NULL, argmax);
    ryz_status done = f->sync(m->be->ctx); /* the forward's one wait; an op's kept error */
    if (st == RYZ_OK) st = done;
    if (st == RYZ_OK && next && !in_place)
        st = f->download(m->be->ctx, next, m->next, (size_t)B * sizeof(int));
    if (st == RYZ_OK && !in_place && !no_head) m->rows = B * rows; /* else no logits made */
    return st;
}

ryz_status ryz_model_step_logits(ryz_model *m, const float **logits) {
    const ryz_backend_iface *f = m->be->iface;
    *logits = f->host_visible ? m->logits : m->host_logits;
    if (f->host_visible) return RYZ_OK;
    size_t floats = (size_t)m->rows * (size_t)m->sh.vocab_padded;
    return f->download(m->be->ctx, m->host_logits, m->logits, floats * sizeof(float));
}

/* A forward pass with its logits in host memory. */
static ryz_status forward(ryz_model *m, const int *tokens, int B, int T, int pos0, int last_only,
                          const float **logits) {
    ryz_status st = ryz_model_step(m, tokens, B, T, pos0, last_only, NULL, 1);
    ryz_status got = ryz_model_step_logits(m, logits); /* on failure: no rows, a valid pointer */
    return st != RYZ_OK ? st : got;
}

ryz_status ryz_model_forward(ryz_model *m, const int *tokens, int B, int T, int pos0,
                             const float **logits) {
    return forward(m, tokens, B, T, pos0, 0, logits);
}

ryz_status ryz_model_forward_last(ryz_model *m, const int *tokens, int B, int T, int pos0,
                                  const float **logits) {
    return forward(m, tokens, B, T, pos0, 1, logits);
}
