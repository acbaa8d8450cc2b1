/* Tensor-parallel layers: the only places the model communicates. */
#include <math.h>
#include <string.h>

#include "ryz/model.h"

ryz_status ryz_tp_embedding(ryz_comm *c, float *x, const int *tokens, int n,
                            const float *emb_local, int vocab_start, int vocab_local, int dim) {
    for (int r = 0; r < n; r++) {
        float *xr = x + (size_t)r * dim;
        int local = tokens[r] - vocab_start;
        if (local >= 0 && local < vocab_local)
            memcpy(xr, emb_local + (size_t)local * dim, (size_t)dim * sizeof(float));
        else
            memset(xr, 0, (size_t)dim * sizeof(float));
    }
    if (ryz_comm_size(c) == 1) return RYZ_OK;
    return ryz_comm_all_reduce_sum(c, x, x, (size_t)n * dim);
}

void ryz_tp_column(ryz_backend *b, float *y, const float *x, ryz_matrix w_local, int n, int in,
                   int out_local) {
    ryz_backend_matmul(b, y, x, w_local, n, in, out_local);
}

ryz_status ryz_tp_row(ryz_backend *b, ryz_comm *c, float *y, const float *x_local,
                      ryz_matrix w_local, int n, int in_local, int out) {
    ryz_backend_matmul(b, y, x_local, w_local, n, in_local, out);
    if (ryz_comm_size(c) == 1) return RYZ_OK;
    return ryz_comm_all_reduce_sum(c, y, y, (size_t)n * out);
}

ryz_status ryz_tp_lm_head(ryz_backend *b, ryz_comm *c, float *logits, const float *x,
                          ryz_matrix cls_local, int n, int dim, int vocab,
                          const ryz_shard *s, float *part, float *gather) {
    int vl = s->vocab_local;
    ryz_backend_matmul(b, part, x, cls_local, n, dim, vl);
    ryz_status st = ryz_comm_all_gather(c, part, gather, (size_t)n * vl);
    if (st != RYZ_OK) return st;
    /* gather is (tp, n, vl) rank-major; logits want (n, tp * vl). */
    for (int r = 0; r < s->tp; r++)
        for (int i = 0; i < n; i++)
            memcpy(logits + (size_t)i * s->vocab_padded + (size_t)r * vl,
                   gather + ((size_t)r * n + i) * vl, (size_t)vl * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int v = vocab; v < s->vocab_padded; v++)
            logits[(size_t)i * s->vocab_padded + v] = -INFINITY;
    return RYZ_OK;
}
