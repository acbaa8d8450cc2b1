/* Synthetic weights: each element a pure function of (seed, tensor, row,
 * col), so any rank can generate exactly its shard. */
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
