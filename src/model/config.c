/* Model config: presets, "synthetic:" source parsing, validation of the TP
 * rules (DESIGN section 1) and the per-rank shard plan. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/model.h"

typedef struct {
    const char *name;
    ryz_model_config cfg;
} preset;

/* Shapes of llama2.c's stories models (tiny, 15m, 110m), TinyLlama 1.1B (1b,
 * grouped KV) and Llama 2 7B. */
static const preset presets[] = {
    {"tiny", {64, 176, 2, 4, 4, 512, 128, 0, 1e-5f, 10000.0f}},
    {"15m", {288, 768, 6, 6, 6, 32000, 256, 0, 1e-5f, 10000.0f}},
    {"110m", {768, 2048, 12, 12, 12, 32000, 1024, 0, 1e-5f, 10000.0f}},
    {"1b", {2048, 5632, 22, 32, 4, 32000, 2048, 0, 1e-5f, 10000.0f}},
    {"7b", {4096, 11008, 32, 32, 32, 32000, 4096, 0, 1e-5f, 10000.0f}},
};

static ryz_status parse_long(const char *key, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end)
        return ryz_error(RYZ_EINVAL, "model key %s='%s' is not an integer", key, v);
    if (x < lo || x > hi)
        return ryz_error(RYZ_EINVAL, "model key %s=%ld out of range [%ld, %ld]", key, x, lo,
                         hi);
    *out = x;
    return RYZ_OK;
}

/* Applies one "key=value" override; *seen has a bit per key already
 * given, since a second one would silently win. */
static ryz_status apply_override(ryz_model_config *c, char *kv, unsigned *seen) {
    static const char *keys[] = {"dim",   "hidden", "layers",  "heads",
                                 "kv_heads", "vocab", "seq_len", "seed"};
    int *fields[] = {&c->dim,   &c->hidden, &c->n_layers, &c->n_heads,
                     &c->n_kv_heads, &c->vocab, &c->seq_len, NULL};
    char *eq = strchr(kv, '=');
    if (!eq) return ryz_error(RYZ_EINVAL, "model override '%s' is not key=value", kv);
    *eq = '\0';
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(kv, keys[i]) != 0) continue;
        if (*seen & (1u << i))
            return ryz_error(RYZ_EINVAL, "model key '%s' given twice (give each key once)", kv);
        *seen |= 1u << i;
        long v = 0;
        long hi = fields[i] ? (1L << 24) : 0x7fffffffL;
        ryz_status s = parse_long(kv, eq + 1, fields[i] ? 1 : 0, hi, &v);
        if (s != RYZ_OK) return s;
        if (fields[i]) *fields[i] = (int)v;
        else c->seed = (uint64_t)v;
        return RYZ_OK;
    }
    return ryz_error(RYZ_EINVAL,
                     "unknown model key '%s' (known: dim, hidden, layers, heads, kv_heads, "
                     "vocab, seq_len, seed)",
                     kv);
}

ryz_status ryz_model_source_open(const char *src, int tp, int rank, ryz_model_config *cfg,
                                 ryz_weights **w) {
    *w = NULL;
    if (strncmp(src, "synthetic:", 10) != 0) return ryz_ckpt_open(src, tp, rank, cfg, w);
    ryz_status st = ryz_model_source_parse(src, cfg);
    return st == RYZ_OK ? ryz_weights_synthetic(cfg, w) : st;
}

ryz_status ryz_model_source_parse(const char *src, ryz_model_config *cfg) {
    const char *prefix = "synthetic:";
    if (strncmp(src, prefix, strlen(prefix)) != 0)
        return ryz_error(RYZ_EINVAL,
                         "model '%s' not supported: expected synthetic:PRESET[,key=value...]",
                         src);
    char buf[512];
    if (strlen(src) >= sizeof buf) return ryz_error(RYZ_EINVAL, "model source too long");
    strcpy(buf, src + strlen(prefix));
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    const preset *p = NULL;
    for (size_t i = 0; tok && i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(tok, presets[i].name) == 0) p = &presets[i];
    if (!p)
        return ryz_error(RYZ_EINVAL,
                         "unknown synthetic preset '%s' (known: tiny, 15m, 110m, 1b, 7b)",
                         tok ? tok : "");
    *cfg = p->cfg;
    int kv_set = 0, heads_set = 0;
    unsigned seen = 0;
    while ((tok = strtok_r(NULL, ",", &save))) {
        kv_set |= strncmp(tok, "kv_heads=", 9) == 0;
        heads_set |= strncmp(tok, "heads=", 6) == 0;
        ryz_status s = apply_override(cfg, tok, &seen);
        if (s != RYZ_OK) return s;
    }
    /* Overriding heads alone keeps multi-head attention, not the preset's
     * grouping, unless kv_heads is given too. */
    if (heads_set && !kv_set && p->cfg.n_kv_heads == p->cfg.n_heads)
        cfg->n_kv_heads = cfg->n_heads;
    return RYZ_OK;
}

/* Appends one violation line to the message buffer. */
static void violation(char *msg, size_t cap, int *n, const char *fmt, ...) {
    size_t len = strlen(msg);
    if (len + 2 >= cap) return;
    if (*n > 0) msg[len++] = '\n', msg[len] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + len, cap - len, fmt, ap);
    va_end(ap);
    (*n)++;
}

ryz_status ryz_config_validate(const ryz_model_config *c, int tp) {
    char msg[1024] = "";
    int n = 0;
    const long limit = 1L << 24;
    long dims[] = {c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab,
                   c->seq_len};
    const char *names[] = {"dim", "hidden", "layers", "n_heads", "n_kv_heads", "vocab",
                           "seq_len"};
    for (int i = 0; i < 7; i++)
        if (dims[i] < 1 || dims[i] > limit)
            violation(msg, sizeof msg, &n, "%s %ld out of range [1, %ld]", names[i], dims[i],
                      limit);
    if (tp < 1) violation(msg, sizeof msg, &n, "tp %d must be >= 1", tp);
    if (n == 0) {
        if (c->n_heads % tp)
            violation(msg, sizeof msg, &n, "n_heads %d not divisible by tp %d", c->n_heads, tp);
        if (c->dim % c->n_heads)
            violation(msg, sizeof msg, &n, "dim %d not divisible by n_heads %d", c->dim,
                      c->n_heads);
        else if ((c->dim / c->n_heads) % 2)
            violation(msg, sizeof msg, &n, "head_dim %d (dim / n_heads) must be even",
                      c->dim / c->n_heads);
        if (c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads)
            violation(msg, sizeof msg, &n,
                      "n_heads %d not a multiple of n_kv_heads %d (grouped KV heads)",
                      c->n_heads, c->n_kv_heads);
        if (c->hidden < tp)
            violation(msg, sizeof msg, &n, "hidden %d smaller than tp %d", c->hidden, tp);
    }
    if (n) return ryz_error(RYZ_EINVAL, "%s", msg);
    return RYZ_OK;
}

void ryz_shard_plan(const ryz_model_config *c, int tp, int rank, ryz_shard *s) {
    memset(s, 0, sizeof *s);
    s->tp = tp;
    s->rank = rank;
    s->head_dim = c->dim / c->n_heads;
    s->heads = c->n_heads / tp;
    s->head_start = rank * s->heads;
    s->kv_mul = c->n_heads / c->n_kv_heads;
    s->kv_start = s->head_start / s->kv_mul;
    s->kv_heads = (s->head_start + s->heads - 1) / s->kv_mul - s->kv_start + 1;
    s->kv_replicated = s->kv_heads * tp > c->n_kv_heads;
    /* Uneven FFN split instead of padding: the first hidden % tp ranks take
     * one row more. Row-parallel w2 needs no equal split. */
    int base = c->hidden / tp, extra = c->hidden % tp;
    s->hidden = base + (rank < extra);
    s->hidden_start = rank * base + (rank < extra ? rank : extra);
    s->vocab_padded = (c->vocab + tp - 1) / tp * tp;
    s->vocab_local = s->vocab_padded / tp;
    s->vocab_start = rank * s->vocab_local;
}

size_t ryz_model_weight_bytes(const ryz_model_config *c) {
    size_t hd = (size_t)c->dim / c->n_heads, kvd = hd * c->n_kv_heads;
    size_t per_layer = 2 * (size_t)c->dim * c->dim + 2 * kvd * c->dim +
                       3 * (size_t)c->dim * c->hidden + 2 * (size_t)c->dim;
    size_t total = per_layer * c->n_layers + 2 * (size_t)c->vocab * c->dim + c->dim;
    return total * sizeof(float);
}

size_t ryz_model_kv_bytes(const ryz_model_config *c, int batch) {
    size_t kvd = (size_t)c->dim / c->n_heads * c->n_kv_heads;
    return 2 * (size_t)batch * c->n_layers * (size_t)c->seq_len * kvd * sizeof(float);
}

static size_t bytes_held(double bytes) {
    return bytes < (double)SIZE_MAX ? (size_t)bytes : SIZE_MAX;
}

void ryz_model_shard_bytes(const ryz_model_config *c, const ryz_shard *s, ryz_dtype dtype,
                           int batch, size_t *weights, size_t *kv) {
    double hd = s->head_dim, dim = c->dim, layers = c->n_layers;
    double per_layer = 2.0 * s->heads * hd * dim + 2.0 * s->kv_heads * hd * dim +
                       3.0 * s->hidden * dim;
    double matrices = per_layer * layers + (double)s->vocab_local * dim;
    double f32 = 2.0 * dim * layers + dim + (double)s->vocab_local * dim;
    *weights = bytes_held(matrices * (double)ryz_dtype_size(dtype) + f32 * sizeof(float));
    *kv = bytes_held(2.0 * batch * layers * c->seq_len * s->kv_heads * hd * sizeof(float));
}

size_t ryz_model_bytes_per_token_as(const ryz_model_config *c, const ryz_shard *s,
                                    ryz_dtype dtype) {
    size_t hd = (size_t)s->head_dim, dim = (size_t)c->dim;
    size_t matrices = (size_t)s->heads * hd * dim * 2 + (size_t)s->kv_heads * hd * dim * 2 +
                      (size_t)s->hidden * dim * 3;
    size_t f32 = 2 * dim * c->n_layers + 2 * dim; /* norms, final norm, embedding row */
    matrices = matrices * c->n_layers + (size_t)s->vocab_local * dim;
    return matrices * ryz_dtype_size(dtype) + f32 * sizeof(float);
}

size_t ryz_model_bytes_per_token(const ryz_model_config *c, const ryz_shard *s) {
    return ryz_model_bytes_per_token_as(c, s, RYZ_DTYPE_F32);
}
