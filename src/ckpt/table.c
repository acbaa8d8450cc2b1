/* The tensor table: where each tensor of the model lives in which file, and
 * the weight source that serves blocks from it with exact preads. Shared by
 * the llama2.c, Hugging Face and sharded readers. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const kind_names[RYZ_T_PER_LAYER] = {"wq", "wk", "wv",       "wo",      "w1",
                                                        "w2", "w3", "att_norm", "ffn_norm"};
static const uint32_t global_ids[3] = {RYZ_T_EMBED, RYZ_T_CLS, RYZ_T_FINAL_NORM};
static const char *const global_names[3] = {"embed", "cls", "final_norm"};

int ckpt_tensor_count(const ryz_model_config *c) {
    return RYZ_T_PER_LAYER * c->n_layers + 3;
}

uint32_t ckpt_tensor_id(const ryz_model_config *c, int i) {
    int per = RYZ_T_PER_LAYER * c->n_layers;
    return i < per ? (uint32_t)i : global_ids[i - per];
}

/* Index of id t in the table of cfg, or -1. */
static int tensor_index(const ryz_model_config *c, uint32_t t) {
    uint32_t per = (uint32_t)(RYZ_T_PER_LAYER * c->n_layers);
    if (t < per)
        return (int)t;
    for (int g = 0; g < 3; g++)
        if (t == global_ids[g])
            return (int)per + g;
    return -1;
}

uint32_t ckpt_tensor_kind(uint32_t t) {
    return t < RYZ_T_EMBED ? t % RYZ_T_PER_LAYER : t;
}

void ckpt_tensor_shape(const ryz_model_config *c, uint32_t t, int64_t *rows, int64_t *cols) {
    int64_t dim = c->dim, kvd = (int64_t)c->dim / c->n_heads * c->n_kv_heads;
    *rows = 1, *cols = dim;
    switch (ckpt_tensor_kind(t)) {
    case RYZ_T_WQ:
        *rows = dim;
        break;
    case RYZ_T_WK:
    case RYZ_T_WV:
        *rows = kvd;
        break;
    case RYZ_T_WO:
        *rows = dim;
        break;
    case RYZ_T_W1:
    case RYZ_T_W3:
        *rows = c->hidden;
        break;
    case RYZ_T_W2:
        *rows = dim, *cols = c->hidden;
        break;
    case RYZ_T_EMBED:
    case RYZ_T_CLS:
        *rows = c->vocab;
        break;
    default:
        break; /* norms: one row of dim */
    }
}

void ckpt_tensor_name(uint32_t t, char *buf, size_t n) {
    for (int g = 0; g < 3; g++)
        if (t == global_ids[g]) {
            snprintf(buf, n, "%s", global_names[g]);
            return;
        }
    snprintf(buf, n, "layers.%u.%s", t / RYZ_T_PER_LAYER, kind_names[t % RYZ_T_PER_LAYER]);
}

int ckpt_tensor_parse_name(const ryz_model_config *c, const char *name, uint32_t *t) {
    for (int g = 0; g < 3; g++)
        if (strcmp(name, global_names[g]) == 0)
            return *t = global_ids[g], 1;
    if (strncmp(name, "layers.", 7) != 0 || name[7] < '0' || name[7] > '9')
        return 0;
    char *end;
    unsigned long l = strtoul(name + 7, &end, 10);
    if (*end != '.' || l >= (unsigned long)c->n_layers || (name[7] == '0' && end != name + 8))
        return 0;
    for (int k = 0; k < RYZ_T_PER_LAYER; k++)
        if (strcmp(end + 1, kind_names[k]) == 0)
            return *t = RYZ_T_LAYER(l, k), 1;
    return 0;
}

int ckpt_mul3(uint64_t a, uint64_t b, uint64_t c, uint64_t *out) {
    size_t x;
    if (!ryz_mul_ok(a, b, &x) || !ryz_mul_ok(x, c, &x))
        return 0;
    *out = x;
    return 1;
}

ryz_status ckpt_check_config(const char *path, const ryz_model_config *c) {
    const int v[] = {c->dim,        c->hidden, c->n_layers, c->n_heads,
                     c->n_kv_heads, c->vocab,  c->seq_len};
    const char *names[] = {"dim", "hidden", "layers", "n_heads", "n_kv_heads", "vocab", "seq_len"};
    for (int i = 0; i < 7; i++)
        if (v[i] < 1 || v[i] > CKPT_MAX_DIM)
            return ryz_error(RYZ_EINVAL, "%s: %s %d out of range [1, %lld]", path, names[i], v[i],
                             (long long)CKPT_MAX_DIM);
    if (c->dim % c->n_heads)
        return ryz_error(RYZ_EINVAL, "%s: n_heads %d does not divide dim %d", path, c->n_heads,
                         c->dim);
    if ((c->dim / c->n_heads) % 2)
        return ryz_error(RYZ_EINVAL, "%s: n_heads %d gives an odd head_dim %d", path, c->n_heads,
                         c->dim / c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return ryz_error(RYZ_EINVAL, "%s: n_kv_heads %d does not divide n_heads %d", path,
                         c->n_kv_heads, c->n_heads);
    return RYZ_OK;
}

/* ========================================================= the table */

ryz_status ckpt_table_init(ckpt_table *tab, const ryz_model_config *cfg, int nfiles) {
    memset(tab, 0, sizeof *tab);
    tab->cfg = *cfg;
    tab->ntensors = ckpt_tensor_count(cfg);
    tab->files = calloc((size_t)nfiles + 1, sizeof *tab->files);
    tab->tensors = calloc((size_t)tab->ntensors, sizeof *tab->tensors);
    if (!tab->files || !tab->tensors) {
        ckpt_table_free(tab);
        return ryz_error(RYZ_ENOMEM, "out of memory for the tensor table");
    }
    tab->nfiles = nfiles;
    for (int i = 0; i < nfiles; i++)
        tab->files[i].fd = -1;
    for (int i = 0; i < tab->ntensors; i++) {
        tab->tensors[i].file = -1;
        ckpt_tensor_name(ckpt_tensor_id(cfg, i), tab->tensors[i].name, sizeof tab->tensors[i].name);
    }
    return RYZ_OK;
}

void ckpt_table_free(ckpt_table *tab) {
    for (int i = 0; tab->files && i < tab->nfiles; i++)
        ckpt_file_close(&tab->files[i]);
    free(tab->files);
    free(tab->tensors);
    memset(tab, 0, sizeof *tab);
}

ckpt_tensor *ckpt_table_slot(ckpt_table *tab, uint32_t t) {
    int i = tensor_index(&tab->cfg, t);
    return i < 0 ? NULL : &tab->tensors[i];
}

ryz_status ckpt_table_complete(const ckpt_table *tab, const char *where) {
    for (int i = 0; i < tab->ntensors; i++)
        if (tab->tensors[i].file < 0)
            return ryz_error(RYZ_EINVAL, "%s: tensor %s missing", where, tab->tensors[i].name);
    return RYZ_OK;
}

/* Reads n elements of dtype dt at byte off of f into out as float32. */
static ryz_status read_elems(const ckpt_file *f, uint64_t off, ckpt_dtype dt, size_t n, float *out,
                             const char *what) {
    if (dt == CKPT_F32)
        return ckpt_pread(f, out, n * sizeof(float), off, what);
    uint16_t buf[4096];
    for (size_t i = 0; i < n;) {
        size_t m = n - i < 4096 ? n - i : 4096;
        ryz_status st = ckpt_pread(f, buf, m * 2, off + 2 * i, what);
        if (st != RYZ_OK)
            return st;
        for (size_t k = 0; k < m; k++)
            out[i + k] = dt == CKPT_F16 ? ckpt_f16_to_f32(buf[k]) : ckpt_bf16_to_f32(buf[k]);
        i += m;
    }
    return RYZ_OK;
}

/* Stored row of global row g (HF rotary order within heads when permuted). */
static int64_t stored_row(const ckpt_tensor *e, int64_t g) {
    int64_t r = g - e->row_origin;
    if (e->perm_hd <= 0)
        return r;
    int64_t w = r % e->perm_hd, half = e->perm_hd / 2;
    return r - w + (w % 2) * half + w / 2;
}

/* Rows [row0, row0 + n) of e, columns [col0, col0 + ncols), into out. */
static ryz_status read_rows(const ckpt_table *tab, const ckpt_tensor *e, int64_t row0, int64_t n,
                            int64_t col0, int ncols, int ld, float *out) {
    const ckpt_file *f = &tab->files[e->file];
    size_t es = ckpt_dtype_size(e->dtype);
    int64_t c = col0 - e->col_origin;
    if (e->perm_hd <= 0 && ncols == e->cols && ld == ncols)
        return read_elems(f, e->offset + (uint64_t)stored_row(e, row0) * e->cols * es, e->dtype,
                          (size_t)n * ncols, out, e->name);
    for (int64_t r = 0; r < n; r++) {
        uint64_t at = e->offset + ((uint64_t)stored_row(e, row0 + r) * e->cols + c) * es;
        ryz_status st = read_elems(f, at, e->dtype, (size_t)ncols, out + r * ld, e->name);
        if (st != RYZ_OK)
            return st;
    }
    return RYZ_OK;
}

/* The weight-source fill: rows past the vocab of the embedding and LM head
 * are zero; the rest must lie inside the stored block. */
static ryz_status table_fill(void *ctx, uint32_t t, int64_t row0, int nrows, int64_t col0,
                             int ncols, int ld, float *out) {
    ckpt_table *tab = ctx;
    const ckpt_tensor *e = ckpt_table_slot(tab, t);
    if (!e || e->file < 0)
        return ryz_error(RYZ_EINVAL, "tensor id 0x%x is not in this checkpoint", t);
    if (row0 < 0 || nrows < 0 || col0 < 0 || ncols < 0 || ld < ncols)
        return ryz_error(RYZ_EINVAL, "%s: bad block request for %s", tab->files[e->file].path,
                         e->name);
    int64_t real = nrows;
    if ((t == RYZ_T_EMBED || t == RYZ_T_CLS) && row0 + nrows > tab->cfg.vocab)
        real = row0 >= tab->cfg.vocab ? 0 : tab->cfg.vocab - row0;
    for (int64_t r = real; r < nrows; r++)
        memset(out + r * ld, 0, (size_t)ncols * sizeof(float));
    if (real == 0 || ncols == 0)
        return RYZ_OK;
    if (row0 < e->row_origin || row0 + real > e->row_origin + e->rows || col0 < e->col_origin ||
        col0 + ncols > e->col_origin + e->cols)
        return ryz_error(RYZ_EINVAL,
                         "%s: rows [%lld, %lld) and columns [%lld, %lld) of %s are not in the "
                         "stored block (rows [%lld, %lld), columns [%lld, %lld))",
                         tab->files[e->file].path, (long long)row0, (long long)(row0 + real),
                         (long long)col0, (long long)(col0 + ncols), e->name,
                         (long long)e->row_origin, (long long)(e->row_origin + e->rows),
                         (long long)e->col_origin, (long long)(e->col_origin + e->cols));
    return read_rows(tab, e, row0, real, col0, ncols, ld, out);
}

/* The weight-source close: frees the table and closes its files. */
static void table_close(void *ctx) {
    ckpt_table_free(ctx);
    free(ctx);
}

static const ryz_weights_iface ifaces[] = {
    {.name = "llama2c", .fill = table_fill, .close = table_close},
    {.name = "hf", .fill = table_fill, .close = table_close},
    {.name = "shard", .fill = table_fill, .close = table_close},
};

ryz_status ckpt_table_source(ckpt_table *tab, const char *kind, ryz_weights **out) {
    const ryz_weights_iface *iface = NULL;
    *out = NULL;
    for (size_t i = 0; i < sizeof ifaces / sizeof ifaces[0]; i++)
        if (strcmp(ifaces[i].name, kind) == 0)
            iface = &ifaces[i];
    RYZ_ASSERT(iface != NULL);
    ckpt_table *own = malloc(sizeof *own);
    if (!own) {
        ckpt_table_free(tab);
        return ryz_error(RYZ_ENOMEM, "out of memory for the %s source", kind);
    }
    *own = *tab;
    memset(tab, 0, sizeof *tab);
    return ryz_weights_create(iface, own, out);
}
