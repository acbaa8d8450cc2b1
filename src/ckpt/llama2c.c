/* llama2.c checkpoints (karpathy/llama2.c run.c and export.py).
 * Version 0 (legacy): 7 int32 (dim, hidden, layers, heads, kv_heads, vocab
 * (negative: separate classifier), seq_len), then float32 tensors:
 * embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
 * freq_cis real and imag (seq_len * head_dim / 2 each), classifier.
 * Version 1: magic "ak42" (0x616b3432), int32 version, the 7 ints,
 * uint8 shared classifier, zero-padded to 256 bytes; then rms_att, rms_ffn,
 * rms_final, embedding, wq, wk, wv, wo, w1, w2, w3, classifier.
 * Version 2 (int8 Q8_0) is refused. Per-layer tensors are stacked (L, ...). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define L2C_MAGIC 0x616b3432u
#define L2C_FREQ 0x7fff00f0u /* pseudo tensor: freq_cis real and imag */

typedef struct {
    uint32_t kind;
    int per_layer;
} l2c_seg;

static const l2c_seg v0_order[] = {
    {RYZ_T_EMBED, 0},      {RYZ_T_ATT_NORM, 1}, {RYZ_T_WQ, 1}, {RYZ_T_WK, 1}, {RYZ_T_WV, 1},
    {RYZ_T_WO, 1},         {RYZ_T_FFN_NORM, 1}, {RYZ_T_W1, 1}, {RYZ_T_W2, 1}, {RYZ_T_W3, 1},
    {RYZ_T_FINAL_NORM, 0}, {L2C_FREQ, 0},       {RYZ_T_CLS, 0}};
static const l2c_seg v1_order[] = {{RYZ_T_ATT_NORM, 1}, {RYZ_T_FFN_NORM, 1}, {RYZ_T_FINAL_NORM, 0},
                                   {RYZ_T_EMBED, 0},    {RYZ_T_WQ, 1},       {RYZ_T_WK, 1},
                                   {RYZ_T_WV, 1},       {RYZ_T_WO, 1},       {RYZ_T_W1, 1},
                                   {RYZ_T_W2, 1},       {RYZ_T_W3, 1},       {RYZ_T_CLS, 0}};

/* Called for each tensor in file order with its byte offset. */
typedef ryz_status (*l2c_visit)(void *arg, uint32_t t, uint64_t off, uint64_t floats);

/* Walks the tensors of a file of `version` from byte `off`, calling visit
 * (when non-NULL) for each; *end receives the byte after the last. Sizes
 * are computed per segment (no loop over layers without a visitor).
 * EINVAL when a size overflows. */
static ryz_status l2c_walk(const char *path, const ryz_model_config *c, int version, int shared,
                           uint64_t off, l2c_visit visit, void *arg, uint64_t *end) {
    const l2c_seg *order = version == 0 ? v0_order : v1_order;
    size_t n = version == 0 ? sizeof v0_order / sizeof *order : sizeof v1_order / sizeof *order;
    for (size_t s = 0; s < n; s++) {
        if (order[s].kind == RYZ_T_CLS && shared)
            continue;
        int layers = order[s].per_layer ? c->n_layers : 1;
        int64_t rows = c->seq_len, cols = c->dim / c->n_heads;
        if (order[s].kind != L2C_FREQ)
            ckpt_tensor_shape(c, order[s].kind, &rows, &cols);
        uint64_t bytes, seg;
        if (!ckpt_mul3((uint64_t)rows, (uint64_t)cols, 4, &bytes) ||
            !ckpt_mul3(bytes, (uint64_t)layers, 1, &seg) || off + seg < off)
            return ryz_error(RYZ_EINVAL, "%s: header: tensor sizes overflow", path);
        for (int l = 0; visit && l < layers; l++) {
            uint32_t t = order[s].per_layer ? RYZ_T_LAYER(l, order[s].kind) : order[s].kind;
            ryz_status st = visit(arg, t, off + (uint64_t)l * bytes, bytes / 4);
            if (st != RYZ_OK)
                return st;
        }
        off += seg;
    }
    *end = off;
    return RYZ_OK;
}

/* Little-endian int32 at p (any alignment). */
static int32_t le32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Version, header size and shared flag from the first bytes. */
static ryz_status l2c_version(const char *path, const uint8_t *buf, size_t n, l2c_layout *lay,
                              int64_t *vocab) {
    if (n < 28)
        return ryz_error(RYZ_EINVAL, "%s: header: truncated (%zu bytes)", path, n);
    if (memcmp(buf, "GGUF", 4) == 0)
        return ryz_error(RYZ_EINVAL, "%s: magic: GGUF files are not supported", path);
    if ((uint32_t)le32(buf) != L2C_MAGIC) { /* version 0: no magic */
        *lay = (l2c_layout){.version = 0, .header = 28};
        *vocab = le32(buf + 20);
        lay->shared = *vocab > 0;
        if (*vocab < 0)
            *vocab = -*vocab;
        return RYZ_OK;
    }
    int32_t version = le32(buf + 4);
    if (version == 2)
        return ryz_error(RYZ_EINVAL,
                         "%s: version 2 (int8 Q8_0) is not supported: export version 0 or 1", path);
    if (version != 1)
        return ryz_error(RYZ_EINVAL, "%s: version %d not supported (0, 1)", path, version);
    if (n < 256)
        return ryz_error(RYZ_EINVAL, "%s: header: truncated (%zu bytes)", path, n);
    if (buf[36] > 1)
        return ryz_error(RYZ_EINVAL, "%s: shared_classifier %d is not 0 or 1", path, buf[36]);
    *lay = (l2c_layout){.version = 1, .header = 256, .shared = buf[36]};
    *vocab = le32(buf + 28);
    return RYZ_OK;
}

ryz_status l2c_parse_header(const char *path, const uint8_t *buf, size_t n, uint64_t file_size,
                            ryz_model_config *cfg, l2c_layout *lay) {
    int64_t vocab = 0;
    ryz_status st = l2c_version(path, buf, n, lay, &vocab);
    if (st != RYZ_OK)
        return st;
    const uint8_t *p = buf + (lay->version ? 8 : 0);
    *cfg = (ryz_model_config){.dim = le32(p),
                              .hidden = le32(p + 4),
                              .n_layers = le32(p + 8),
                              .n_heads = le32(p + 12),
                              .n_kv_heads = le32(p + 16),
                              .vocab = vocab > INT32_MAX ? INT32_MAX : (int)vocab,
                              .seq_len = le32(p + 24),
                              .norm_eps = 1e-5f,
                              .rope_base = 10000.0f};
    if ((st = ckpt_check_config(path, cfg)) != RYZ_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ryz_last_error());
        return ryz_error(st, "%s (not a llama2.c checkpoint? docs/checkpoints.md lists the "
                             "sources)", why);
    }
    if ((st = l2c_walk(path, cfg, lay->version, lay->shared, lay->header, NULL, NULL,
                       &lay->total)) != RYZ_OK)
        return st;
    if (lay->total != file_size)
        return ryz_error(RYZ_EINVAL,
                         "%s: file size %llu does not match the %llu bytes its header implies "
                         "(dim %d, hidden %d, layers %d, vocab %d, seq_len %d)",
                         path, (unsigned long long)file_size, (unsigned long long)lay->total,
                         cfg->dim, cfg->hidden, cfg->n_layers, cfg->vocab, cfg->seq_len);
    return RYZ_OK;
}

/* Visitor: records a tensor's place in the table. */
static ryz_status place_tensor(void *arg, uint32_t t, uint64_t off, uint64_t floats) {
    ckpt_table *tab = arg;
    ckpt_tensor *e = ckpt_table_slot(tab, t);
    (void)floats;
    if (!e)
        return RYZ_OK; /* freq_cis: unused */
    e->file = 0;
    e->offset = off;
    e->dtype = CKPT_F32;
    ckpt_tensor_shape(&tab->cfg, t, &e->rows, &e->cols);
    return RYZ_OK;
}

ryz_status l2c_open(const char *path, ryz_model_config *cfg, ryz_weights **out) {
    ckpt_table tab = {0};
    ckpt_file f;
    l2c_layout lay;
    uint8_t head[256];
    uint64_t end;
    ryz_status st = ckpt_file_open(path, &f);
    if (st != RYZ_OK)
        return st;
    size_t n = f.size < sizeof head ? (size_t)f.size : sizeof head;
    st = ckpt_pread(&f, head, n, 0, "header");
    if (st == RYZ_OK)
        st = l2c_parse_header(path, head, n, f.size, cfg, &lay);
    if (st == RYZ_OK)
        st = ckpt_table_init(&tab, cfg, 1);
    if (st != RYZ_OK)
        goto cleanup;
    tab.files[0] = f;
    f = (ckpt_file){.fd = -1};
    st = l2c_walk(path, cfg, lay.version, lay.shared, lay.header, place_tensor, &tab, &end);
    if (st == RYZ_OK && lay.shared) {
        *ckpt_table_slot(&tab, RYZ_T_CLS) = *ckpt_table_slot(&tab, RYZ_T_EMBED);
        snprintf(ckpt_table_slot(&tab, RYZ_T_CLS)->name, 64, "cls (shared embedding)");
    }
    if (st == RYZ_OK)
        st = ckpt_table_complete(&tab, path);
    if (st == RYZ_OK)
        return ckpt_table_source(&tab, "llama2c", out);
cleanup:
    ckpt_table_free(&tab);
    ckpt_file_close(&f);
    return st;
}

/* =============================================================== export */

typedef struct {
    ckpt_out *o;
    ryz_weights *w;
    const ryz_model_config *cfg;
} export_ctx;

/* freq_cis as llama2.c's model.py computes it: cos and sin of pos * base^(-2i/hd). */
static ryz_status write_freqs(export_ctx *x) {
    int hd = x->cfg->dim / x->cfg->n_heads;
    float *row = malloc((size_t)hd / 2 * sizeof(float));
    if (!row)
        return ryz_error(RYZ_ENOMEM, "out of memory writing %s", x->o->path);
    ryz_status st = RYZ_OK;
    for (int part = 0; part < 2; part++)
        for (int pos = 0; st == RYZ_OK && pos < x->cfg->seq_len; pos++) {
            for (int i = 0; i < hd / 2; i++) {
                float f = 1.0f / powf(x->cfg->rope_base, (float)(2 * i) / (float)hd);
                float a = (float)pos * f;
                row[i] = part == 0 ? cosf(a) : sinf(a);
            }
            st = ckpt_out_write(x->o, row, (size_t)hd / 2 * sizeof(float));
        }
    free(row);
    return st;
}

/* Visitor: streams one tensor at its offset. */
static ryz_status export_tensor(void *arg, uint32_t t, uint64_t off, uint64_t floats) {
    export_ctx *x = arg;
    int64_t rows, cols;
    RYZ_ASSERT(off == x->o->written);
    (void)floats;
    if (t == L2C_FREQ)
        return write_freqs(x);
    ckpt_tensor_shape(x->cfg, t, &rows, &cols);
    return ckpt_out_block(x->o, x->w, t, 0, rows, 0, (int)cols, 0);
}

ryz_status ryz_ckpt_export_llama2c(const char *path, const ryz_model_config *cfg, ryz_weights *w) {
    ckpt_out o;
    uint64_t end;
    ryz_status st = ckpt_check_config(path, cfg);
    if (st == RYZ_OK)
        st = ckpt_out_open(&o, path, 0);
    if (st != RYZ_OK)
        return st;
    int32_t head[7] = {cfg->dim,        cfg->hidden, cfg->n_layers, cfg->n_heads,
                       cfg->n_kv_heads, -cfg->vocab, cfg->seq_len};
    export_ctx x = {&o, w, cfg};
    st = ckpt_out_write(&o, head, sizeof head);
    if (st == RYZ_OK)
        st = l2c_walk(path, cfg, 0, 0, sizeof head, export_tensor, &x, &end);
    if (st == RYZ_OK)
        return ckpt_out_commit(&o, NULL);
    ckpt_out_abort(&o);
    return st;
}
