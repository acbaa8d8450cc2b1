/* Sharded checkpoints, one file per rank (written by `ryz shard`):
 * DIR/config.json {"format": "ryz-shard", "format_version": 1, "tp": K,
 * "model": {...}, "files": [{"file": "rank0.safetensors", "sha256": HEX}...]}
 * and DIR/rank{N}.safetensors holding exactly rank N's blocks (float32),
 * each tensor's global origin in the metadata ("origin.NAME": "row,col").
 * A rank reads config.json and its own file only, after checking the
 * file's SHA-256. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define SHARD_FORMAT "ryz-shard"
#define SHARD_VERSION 1

static const char *const model_keys[7] = {"dim",        "hidden", "n_layers", "n_heads",
                                          "n_kv_heads", "vocab",  "seq_len"};

/* The config field named model_keys[i]. */
static int *model_field(ryz_model_config *c, int i) {
    int *f[7] = {&c->dim,        &c->hidden, &c->n_layers, &c->n_heads,
                 &c->n_kv_heads, &c->vocab,  &c->seq_len};
    return f[i];
}

/* The "model" object into sc->cfg. */
static ryz_status parse_model(const char *path, const json_doc *d, shard_config *sc) {
    int m = json_get(d, 0, "model");
    double eps, base;
    if (m < 0 || d->nodes[m].type != JSON_OBJ)
        return ryz_error(RYZ_EINVAL, "%s: model missing or not an object", path);
    for (int i = 0; i < 7; i++) {
        int64_t v;
        ryz_status st = json_get_int(d, m, model_keys[i], path, 1, CKPT_MAX_DIM, NULL, &v);
        if (st != RYZ_OK)
            return st;
        *model_field(&sc->cfg, i) = (int)v;
    }
    ryz_status st = json_get_num(d, m, "norm_eps", path, NULL, &eps);
    if (st == RYZ_OK)
        st = json_get_num(d, m, "rope_base", path, NULL, &base);
    if (st != RYZ_OK)
        return st;
    if (!(eps > 0 && eps < 1) || !(base > 1 && base < 1e12))
        return ryz_error(RYZ_EINVAL, "%s: norm_eps %g or rope_base %g out of range", path, eps,
                         base);
    sc->cfg.norm_eps = (float)eps;
    sc->cfg.rope_base = (float)base;
    return ckpt_check_config(path, &sc->cfg);
}

/* One "files" entry: rank r's file name and checksum. */
static ryz_status parse_file_entry(const char *path, const json_doc *d, int k, int r,
                                   shard_config *sc) {
    char want[32];
    snprintf(want, sizeof want, "rank%d.safetensors", r);
    int f = json_get(d, k, "file"), h = json_get(d, k, "sha256");
    if (f < 0 || d->nodes[f].type != JSON_STR || strcmp(d->nodes[f].str, want) != 0)
        return ryz_error(RYZ_EINVAL, "%s: files[%d].file must be \"%s\"", path, r, want);
    const char *hex = h >= 0 && d->nodes[h].type == JSON_STR ? d->nodes[h].str : "";
    int ok = strlen(hex) == 64;
    for (int i = 0; ok && i < 64; i++)
        ok = strchr("0123456789abcdef", hex[i]) != NULL;
    if (!ok)
        return ryz_error(RYZ_EINVAL, "%s: files[%d].sha256 is not 64 lower-case hex digits", path,
                         r);
    memcpy(sc->sha[r], hex, 65);
    return RYZ_OK;
}

ryz_status shard_parse_config(const char *path, const json_doc *d, shard_config *sc) {
    int64_t version, tp;
    memset(sc, 0, sizeof *sc);
    int fmt = json_get(d, 0, "format");
    if (fmt < 0 || d->nodes[fmt].type != JSON_STR || strcmp(d->nodes[fmt].str, SHARD_FORMAT))
        return ryz_error(RYZ_EINVAL, "%s: format is not \"%s\"", path, SHARD_FORMAT);
    ryz_status st = json_get_int(d, 0, "format_version", path, 0, INT32_MAX, NULL, &version);
    if (st == RYZ_OK && version != SHARD_VERSION)
        st = ryz_error(RYZ_EINVAL, "%s: format_version %lld not supported (%d)", path,
                       (long long)version, SHARD_VERSION);
    if (st == RYZ_OK)
        st = json_get_int(d, 0, "tp", path, 1, CKPT_MAX_FILES, NULL, &tp);
    if (st == RYZ_OK)
        st = parse_model(path, d, sc);
    if (st != RYZ_OK)
        return st;
    sc->tp = (int)tp;
    int files = json_get(d, 0, "files");
    if (files < 0 || d->nodes[files].type != JSON_ARR)
        return ryz_error(RYZ_EINVAL, "%s: files missing or not a list", path);
    if (d->nodes[files].count != sc->tp)
        return ryz_error(RYZ_EINVAL, "%s: files lists %d rank files, tp is %d", path,
                         d->nodes[files].count, sc->tp);
    int r = 0;
    for (int k = d->nodes[files].child; st == RYZ_OK && k >= 0; k = d->nodes[k].next)
        st = parse_file_entry(path, d, k, r++, sc);
    return st;
}

/* ================================================================ open */

/* Parses "row,col" (non-negative integers). */
static int parse_origin(const char *s, int64_t *row, int64_t *col) {
    long long r, c;
    int end = -1;
    if (!s || sscanf(s, "%lld,%lld%n", &r, &c, &end) != 2 || end < 0 || s[end] || r < 0 || c < 0)
        return 0;
    *row = r, *col = c;
    return 1;
}

/* Places one tensor of the rank file: known name, F32, 2-D, inside the
 * (padded) global shape. */
static ryz_status place_block(ckpt_table *tab, const st_header *h, const st_tensor *s,
                              const char *path) {
    uint32_t t;
    char key[96];
    int64_t rows, cols, r0, c0;
    if (!ckpt_tensor_parse_name(&tab->cfg, s->name, &t))
        return ryz_error(RYZ_EINVAL, "%s: tensor %s is not a tensor of this model", path, s->name);
    snprintf(key, sizeof key, "origin.%s", s->name);
    if (!parse_origin(st_meta(h, key), &r0, &c0))
        return ryz_error(RYZ_EINVAL, "%s: metadata %s missing or not \"row,col\"", path, key);
    if (strcmp(s->dtype, "F32") != 0 || s->ndim != 2)
        return ryz_error(RYZ_EINVAL, "%s: tensor %s: expected a 2-D F32 block, got %d-D %s", path,
                         s->name, s->ndim, s->dtype);
    ckpt_tensor_shape(&tab->cfg, t, &rows, &cols);
    if (t == RYZ_T_EMBED || t == RYZ_T_CLS)
        rows += CKPT_MAX_FILES; /* vocab padding */
    if (r0 > rows || s->shape[0] > rows - r0 || c0 > cols || s->shape[1] > cols - c0)
        return ryz_error(RYZ_EINVAL,
                         "%s: tensor %s: block [%lld, %lld] at (%lld, %lld) lies "
                         "outside the model's [%lld, %lld]",
                         path, s->name, (long long)s->shape[0], (long long)s->shape[1],
                         (long long)r0, (long long)c0, (long long)rows, (long long)cols);
    ckpt_tensor *e = ckpt_table_slot(tab, t);
    ryz_status st = st_to_slot(e, s, 0, path, s->shape[0], s->shape[1]);
    e->row_origin = r0, e->col_origin = c0;
    return st;
}

/* Checks the rank file's metadata names this format, tp and rank. */
static ryz_status check_meta(const st_header *h, const char *path, int tp, int rank) {
    char want[3][32];
    const char *keys[3] = {"format", "tp", "rank"};
    snprintf(want[0], sizeof want[0], "%s", SHARD_FORMAT);
    snprintf(want[1], sizeof want[1], "%d", tp);
    snprintf(want[2], sizeof want[2], "%d", rank);
    for (int i = 0; i < 3; i++) {
        const char *v = st_meta(h, keys[i]);
        if (!v || strcmp(v, want[i]) != 0)
            return ryz_error(RYZ_EINVAL, "%s: metadata %s is %s%s%s, expected %s", path, keys[i],
                             v ? "'" : "", v ? v : "missing", v ? "'" : "", want[i]);
    }
    return RYZ_OK;
}

/* Opens a rank file, verifies its checksum and reads its header; the file
 * must hold exactly the model's tensor count (checked before any table is
 * sized from the config). */
static ryz_status read_rank_file(const char *path, const shard_config *sc, int rank, ckpt_file *f,
                                 st_header *h) {
    char hex[65];
    ryz_status st = ckpt_file_open(path, f);
    if (st == RYZ_OK)
        st = ckpt_sha256_file(f, hex);
    if (st == RYZ_OK && strcmp(hex, sc->sha[rank]) != 0)
        st = ryz_error(RYZ_EINVAL, "%s: sha256 %.12s... does not match config.json's %.12s...",
                       path, hex, sc->sha[rank]);
    if (st == RYZ_OK)
        st = st_read(h, f);
    if (st == RYZ_OK)
        st = check_meta(h, path, sc->tp, rank);
    if (st == RYZ_OK && h->n != ckpt_tensor_count(&sc->cfg))
        st = ryz_error(RYZ_EINVAL, "%s: holds %d tensors, the model has %d", path, h->n,
                       ckpt_tensor_count(&sc->cfg));
    return st;
}

/* Opens rank `rank`'s file into tab (one file). */
static ryz_status open_rank_file(ckpt_table *tab, const char *path, const shard_config *sc,
                                 int rank) {
    ckpt_file f = {.fd = -1};
    st_header h = {.meta = -1};
    ryz_status st = read_rank_file(path, sc, rank, &f, &h);
    if (st == RYZ_OK)
        st = ckpt_table_init(tab, &sc->cfg, 1);
    if (st == RYZ_OK)
        tab->files[0] = f, f = (ckpt_file){.fd = -1};
    for (int i = 0; st == RYZ_OK && i < h.n; i++)
        st = place_block(tab, &h, &h.t[i], path);
    if (st == RYZ_OK)
        st = ckpt_table_complete(tab, path);
    ckpt_file_close(&f);
    st_free(&h);
    return st;
}

ryz_status shard_open(const char *dir, const json_doc *config, int tp, int rank,
                      ryz_model_config *cfg, ryz_weights **out) {
    shard_config *sc = calloc(1, sizeof *sc);
    char *cfg_path = ckpt_path_join(dir, "config.json"), name[32], *path = NULL;
    ckpt_table tab = {0};
    ryz_status st = sc && cfg_path ? shard_parse_config(cfg_path, config, sc)
                                   : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK && sc->tp != tp)
        st = ryz_error(RYZ_EINVAL, "%s: sharded for tp %d, asked for tp %d", dir, sc->tp, tp);
    if (st == RYZ_OK && (rank < 0 || rank >= tp))
        st = ryz_error(RYZ_EINVAL, "%s: rank %d outside tp %d", dir, rank, tp);
    snprintf(name, sizeof name, "rank%d.safetensors", rank);
    if (st == RYZ_OK && !(path = ckpt_path_join(dir, name)))
        st = ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK)
        st = open_rank_file(&tab, path, sc, rank);
    if (st == RYZ_OK)
        *cfg = sc->cfg;
    if (st == RYZ_OK)
        st = ckpt_table_source(&tab, "shard", out);
    ckpt_table_free(&tab);
    free(path);
    free(cfg_path);
    free(sc);
    return st;
}

/* =============================================================== writers */

/* The metadata pairs of a rank file: format, version, tp, rank, origins.
 * text holds the strings (nblocks * 2 + 4 of 112 bytes). */
static void rank_meta(const ryz_block *b, int n, int tp, int rank, char (*text)[112],
                      const char **meta) {
    snprintf(text[0], 112, "%s", SHARD_FORMAT);
    snprintf(text[1], 112, "%d", SHARD_VERSION);
    snprintf(text[2], 112, "%d", tp);
    snprintf(text[3], 112, "%d", rank);
    const char *keys[4] = {"format", "format_version", "tp", "rank"};
    for (int i = 0; i < 4; i++)
        meta[2 * i] = keys[i], meta[2 * i + 1] = text[i];
    for (int i = 0; i < n; i++) {
        char name[64];
        ckpt_tensor_name(b[i].t, name, sizeof name);
        snprintf(text[4 + 2 * i], 112, "origin.%s", name);
        snprintf(text[5 + 2 * i], 112, "%lld,%lld", (long long)b[i].row0, (long long)b[i].col0);
        meta[8 + 2 * i] = text[4 + 2 * i];
        meta[9 + 2 * i] = text[5 + 2 * i];
    }
}

/* Header and data of one rank file. */
static ryz_status write_rank_body(ckpt_out *o, int tp, int rank, ryz_weights *w, const ryz_block *b,
                                  int n) {
    st_entry *e = calloc((size_t)n + 1, sizeof *e);
    char(*text)[112] = calloc((size_t)n * 2 + 4, sizeof *text);
    const char **meta = calloc((size_t)n * 2 + 4, 2 * sizeof *meta);
    ryz_status st = e && text && meta ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    for (int i = 0; st == RYZ_OK && i < n; i++) {
        ckpt_tensor_name(b[i].t, e[i].name, sizeof e[i].name);
        e[i].ndim = 2;
        e[i].shape[0] = b[i].nrows;
        e[i].shape[1] = b[i].ncols;
    }
    if (st == RYZ_OK) {
        rank_meta(b, n, tp, rank, text, meta);
        st = st_write_header(o, e, n, meta, n + 4);
    }
    for (int i = 0; st == RYZ_OK && i < n; i++)
        st = ckpt_out_block(o, w, b[i].t, b[i].row0, b[i].nrows, b[i].col0, b[i].ncols, 0);
    free(e);
    free(text);
    free(meta);
    return st;
}

ryz_status ryz_ckpt_write_rank(const char *dir, int tp, int rank, const ryz_model_config *cfg,
                               ryz_weights *w, const ryz_block *blocks, int nblocks, char hex[65]) {
    char name[32];
    ckpt_out o = {0};
    (void)cfg;
    snprintf(name, sizeof name, "rank%d.safetensors", rank);
    char *path = ckpt_path_join(dir, name);
    ryz_status st = path ? ckpt_mkdir(dir) : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK)
        st = ckpt_out_open(&o, path, 1);
    if (st == RYZ_OK)
        st = write_rank_body(&o, tp, rank, w, blocks, nblocks);
    if (st == RYZ_OK)
        st = ckpt_out_commit(&o, hex);
    ckpt_out_abort(&o);
    free(path);
    return st;
}

ryz_status ryz_ckpt_write_shard_config(const char *dir, const char *source, int tp,
                                       const ryz_model_config *cfg, char (*hex)[65]) {
    char eps[32], base[32], *text = NULL, *path = ckpt_path_join(dir, "config.json");
    size_t len = 0;
    FILE *f = path ? open_memstream(&text, &len) : NULL;
    if (!f)
        return free(path), ryz_error(RYZ_ENOMEM, "out of memory");
    ckpt_format_float(cfg->norm_eps, eps, sizeof eps);
    ckpt_format_float(cfg->rope_base, base, sizeof base);
    fprintf(f, "{\n  \"format\": \"%s\",\n  \"format_version\": %d,\n  \"source\": ", SHARD_FORMAT,
            SHARD_VERSION);
    json_write_string(f, source ? source : "");
    fprintf(f, ",\n  \"tp\": %d,\n  \"model\": {", tp);
    ryz_model_config c = *cfg;
    for (int i = 0; i < 7; i++)
        fprintf(f, "\"%s\": %d, ", model_keys[i], *model_field(&c, i));
    fprintf(f, "\"norm_eps\": %s, \"rope_base\": %s},\n  \"files\": [\n", eps, base);
    for (int r = 0; r < tp; r++)
        fprintf(f, "    {\"file\": \"rank%d.safetensors\", \"sha256\": \"%s\"}%s\n", r, hex[r],
                r + 1 < tp ? "," : "");
    fprintf(f, "  ]\n}\n");
    fclose(f);
    ryz_status st = ckpt_write_file(path, text, len);
    free(text);
    free(path);
    return st;
}
