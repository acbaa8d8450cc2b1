/* Tensor-parallel layers: the only places the model communicates. Every
 * buffer is backend memory; a collective takes it in place, or, when
 * ryz_tp_staged says so, goes through a host buffer (download, collective,
 * upload). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ryz/model.h"

int ryz_tp_staged(const ryz_backend *b, const ryz_comm *c) {
    return ryz_comm_size(c) > 1 && !b->iface->host_visible && !ryz_comm_device_memory(c);
}

/* In-place all-reduce (sum) of buf (count floats), staged when stage is
 * non-NULL (stage: count floats). */
static ryz_status tp_all_reduce(ryz_backend *b, ryz_comm *c, float *buf, size_t count,
                                float *stage) {
    if (!stage) return ryz_comm_all_reduce_sum(c, buf, buf, count);
    size_t bytes = count * sizeof(float);
    ryz_status st = b->iface->download(b->ctx, stage, buf, bytes);
    if (st == RYZ_OK) st = ryz_comm_all_reduce_sum(c, stage, stage, count);
    if (st == RYZ_OK) st = b->iface->upload(b->ctx, buf, stage, bytes);
    return st;
}

/* All-gather of send (count floats per rank) into recv (size * count),
 * staged when stage is non-NULL (stage: (1 + size) * count floats). */
static ryz_status tp_all_gather(ryz_backend *b, ryz_comm *c, const float *send, float *recv,
                                size_t count, float *stage) {
    if (!stage) return ryz_comm_all_gather(c, send, recv, count);
    float *host_recv = stage + count;
    size_t bytes = count * sizeof(float);
    ryz_status st = b->iface->download(b->ctx, stage, send, bytes);
    if (st == RYZ_OK) st = ryz_comm_all_gather(c, stage, host_recv, count);
    if (st == RYZ_OK)
        st = b->iface->upload(b->ctx, recv, host_recv, bytes * (size_t)ryz_comm_size(c));
    return st;
}

ryz_status ryz_tp_embedding(ryz_backend *b, ryz_comm *c, float *x, const int *tokens, int n,
                            const float *emb_local, int vocab_start, int vocab_local, int dim,
                            float *stage) {
    b->iface->embedding(b->ctx, x, tokens, n, emb_local, vocab_start, vocab_local, dim);
    if (ryz_comm_size(c) == 1) return RYZ_OK;
    return tp_all_reduce(b, c, x, (size_t)n * dim, stage);
}

void ryz_tp_column(ryz_backend *b, float *y, const float *x, ryz_matrix w_local, int n, int in,
                   int out_local) {
    ryz_backend_matmul(b, y, x, w_local, n, in, out_local);
}

void ryz_tp_column_multi(ryz_backend *b, int count, float *const *y, const float *x,
                         const ryz_matrix *w_local, const int *out_local, int n, int in) {
    ryz_backend_matmul_multi(b, count, y, x, w_local, out_local, n, in);
}

void ryz_tp_column_pair(ryz_backend *b, float *y1, float *y2, const float *x, ryz_matrix w1_local,
                        ryz_matrix w2_local, int n, int in, int out_local) {
    ryz_backend_matmul_pair(b, y1, y2, x, w1_local, w2_local, n, in, out_local);
}

ryz_status ryz_tp_row(ryz_backend *b, ryz_comm *c, float *y, const float *x_local,
                      ryz_matrix w_local, int n, int in_local, int out, float *stage) {
    ryz_backend_matmul(b, y, x_local, w_local, n, in_local, out);
    if (ryz_comm_size(c) == 1) return RYZ_OK;
    return tp_all_reduce(b, c, y, (size_t)n * out, stage);
}

/* Row (n valid logits of a shard starting at global index start) into what
 * ryz_tp_greedy_ids gathers: first logit, first maximum with NaNs skipped
 * (NaN when there is none), its global index as int32 bits. */
static void shard_best(const float *row, int n, int start, float out[RYZ_GREEDY_FLOATS]) {
    int first = 0; /* ryz_argmax from the first number on: after it, NaN never wins */
    while (first < n && isnan(row[first])) first++;
    int best = first < n ? first + ryz_argmax(row + first, n - first) : -1;
    int32_t g = best < 0 ? INT32_MAX : start + best;
    out[0] = n > 0 ? row[0] : NAN;
    out[1] = best < 0 ? NAN : row[best];
    memcpy(&out[2], &g, sizeof g);
}

ryz_status ryz_tp_greedy_ids(ryz_comm *c, const float *part, int n, int vocab,
                             const ryz_shard *s, float *pairs, int *ids) {
    int vl = s->vocab_local, valid = vocab - s->vocab_start;
    valid = valid < 0 ? 0 : valid > vl ? vl : valid;
    float *mine = pairs, *all = pairs + (size_t)n * RYZ_GREEDY_FLOATS;
    for (int r = 0; r < n; r++)
        shard_best(part + (size_t)r * vl, valid, s->vocab_start,
                   mine + (size_t)r * RYZ_GREEDY_FLOATS);
    ryz_status st = ryz_comm_all_gather(c, mine, all, (size_t)n * RYZ_GREEDY_FLOATS);
    for (int r = 0; st == RYZ_OK && r < n; r++) {
        float best = all[(size_t)r * RYZ_GREEDY_FLOATS]; /* rank 0's first: where the scan starts */
        int32_t id = 0;
        for (int k = 0; k < s->tp; k++) {
            const float *q = all + ((size_t)k * n + r) * RYZ_GREEDY_FLOATS;
            if (q[1] > best) best = q[1], memcpy(&id, &q[2], sizeof id);
        }
        ids[r] = id;
    }
    return st;
}

ryz_status ryz_tp_lm_head(ryz_backend *b, ryz_comm *c, float *logits, const float *x,
                          ryz_matrix cls_local, int n, int dim, int vocab, const ryz_shard *s,
                          float *part, float *gather, float *stage) {
    const ryz_backend_iface *f = b->iface;
    int vl = s->vocab_local, vp = s->vocab_padded;
    if (s->tp == 1) { /* the whole (padded) vocab is local: nothing to gather */
        ryz_backend_matmul(b, logits, x, cls_local, n, dim, vl);
    } else {
        ryz_backend_matmul(b, part, x, cls_local, n, dim, vl);
        ryz_status st = tp_all_gather(b, c, part, gather, (size_t)n * vl, stage);
        if (st != RYZ_OK) return st;
        /* gather is (tp, n, vl) rank-major; logits want (n, tp * vl). */
        size_t row = (size_t)vl * sizeof(float);
        for (int r = 0; r < s->tp; r++)
            f->copy_rows(b->ctx, logits + (size_t)r * vl, (size_t)vp * sizeof(float),
                         gather + (size_t)r * n * vl, row, row, (size_t)n);
    }
    if (vocab < vp) f->mask_cols(b->ctx, logits, n, vocab, vp);
    return RYZ_OK;
}
