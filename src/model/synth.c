/* Synthetic weights: each element a pure function of (seed, tensor, row,
 * col), so any rank can generate exactly its shard. */
#include <math.h>
#include <stdlib.h>

#include "ryz/model.h"

/* SplitMix64 finalizer: a cheap, well-mixed 64-bit hash. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static inline float unit(uint64_t row_key, int64_t col) {
    uint64_t h = mix64(row_key + (uint64_t)col * 0x9e3779b97f4a7c15ULL);
    return (float)(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

static inline uint64_t row_key(uint64_t seed, uint32_t t, int64_t row) {
    return mix64(mix64(seed * 0xd1b54a32d192ed03ULL + t) + (uint64_t)row);
}

float ryz_synth_value(uint64_t seed, uint32_t t, int64_t row, int64_t col) {
    return unit(row_key(seed, t, row), col);
}

void ryz_synth_fill(uint64_t seed, uint32_t t, float scale, int64_t row0, int nrows,
                    int64_t row_limit, int64_t col0, int ncols, int ld, float *out) {
    for (int r = 0; r < nrows; r++) {
        float *o = out + (size_t)r * ld;
        int64_t row = row0 + r;
        if (row >= row_limit) {
            for (int c = 0; c < ncols; c++) o[c] = 0.0f;
            continue;
        }
        uint64_t key = row_key(seed, t, row);
        for (int c = 0; c < ncols; c++) o[c] = scale * unit(key, col0 + c);
    }
}

/* The synthetic source: scales keep activations O(1) (uniform, 1/sqrt(fan
 * in)); norms are 1 + 0.1 * uniform; embedding rows uniform in [-1, 1). */
static ryz_status synth_source_fill(void *ctx, uint32_t t, int64_t row0, int nrows,
                                    int64_t col0, int ncols, int ld, float *out) {
    const ryz_model_config *c = ctx;
    uint32_t kind = t < RYZ_T_EMBED ? t % RYZ_T_PER_LAYER : t;
    float scale = 1.0f / sqrtf((float)c->dim);
    int64_t limit = INT64_MAX;
    int norm = kind == RYZ_T_ATT_NORM || kind == RYZ_T_FFN_NORM || kind == RYZ_T_FINAL_NORM;
    if (kind == RYZ_T_W2) scale = 1.0f / sqrtf((float)c->hidden);
    if (kind == RYZ_T_EMBED) scale = 1.0f;
    if (kind == RYZ_T_EMBED || kind == RYZ_T_CLS) limit = c->vocab;
    if (norm) scale = 0.1f;
    ryz_synth_fill(c->seed, t, scale, row0, nrows, limit, col0, ncols, ld, out);
    for (int r = 0; norm && r < nrows; r++)
        for (int i = 0; i < ncols; i++) out[(size_t)r * ld + i] += 1.0f;
    return RYZ_OK;
}

static void synth_source_close(void *ctx) {
    free(ctx);
}

static const ryz_weights_iface synth_iface = {
    .name = "synthetic", .fill = synth_source_fill, .close = synth_source_close};

ryz_status ryz_weights_synthetic(const ryz_model_config *cfg, ryz_weights **out) {
    ryz_model_config *c = malloc(sizeof *c);
    if (!c) return ryz_error(RYZ_ENOMEM, "out of memory for the synthetic source");
    *c = *cfg;
    return ryz_weights_create(&synth_iface, c, out);
}
