/* The alpha-beta cost model: a least squares fit of latency against bytes,
 * the ring-collective link behind a fit, and the projection of a TP decode
 * step (compute / k + the step's collectives). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/bench.h"

ryz_status ryz_fit_line(const double *x, const double *y, const double *w, size_t n, ryz_fit *out) {
    *out = (ryz_fit){.n = n};
    double s = 0, sx = 0, sy = 0;
    for (size_t i = 0; i < n; i++) {
        double wi = w ? w[i] : 1;
        if (!(wi > 0))
            return ryz_error(RYZ_EINVAL, "fit: weight %zu is %g, not positive", i, wi);
        s += wi, sx += wi * x[i], sy += wi * y[i];
    }
    if (n < 2)
        return ryz_error(RYZ_EINVAL, "fit: %zu point(s), need at least 2", n);
    double mx = sx / s, my = sy / s, sxx = 0, sxy = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double wi = w ? w[i] : 1, dx = x[i] - mx, dy = y[i] - my;
        sxx += wi * dx * dx, sxy += wi * dx * dy, syy += wi * dy * dy;
    }
    if (!(sxx > 0))
        return ryz_error(RYZ_EINVAL, "fit: all %zu points have the same size", n);
    out->beta_us_per_byte = sxy / sxx;
    out->alpha_us = my - out->beta_us_per_byte * mx;
    double res = 0;
    for (size_t i = 0; i < n; i++) {
        double wi = w ? w[i] : 1, e = y[i] - out->alpha_us - out->beta_us_per_byte * x[i];
        res += wi * e * e;
    }
    out->r2 = syy > 0 ? 1 - res / syy : 1;
    out->bw_gbs = out->beta_us_per_byte > 0 ? 1e-3 / out->beta_us_per_byte : 0;
    return RYZ_OK;
}

double ryz_ring_steps(ryz_comm_op op, int k) {
    return (op == RYZ_OP_ALL_REDUCE ? 2.0 : 1.0) * (k - 1);
}

double ryz_ring_time_us(ryz_comm_op op, const ryz_link *l, int k, double bytes) {
    if (k <= 1)
        return 0;
    /* bw GB/s = 1e3 bytes/us */
    return ryz_ring_steps(op, k) * l->alpha_us +
           ryz_comm_busbw_factor(op, k) * bytes / (1e3 * l->bw_gbs);
}

ryz_status ryz_link_from_fit(ryz_comm_op op, const ryz_fit *f, int k, ryz_link *out) {
    if (k < 2)
        return ryz_error(RYZ_EINVAL,
                         "%s was measured on %d rank: a one-rank fit says nothing "
                         "about links (measure with ryz comm --np 2 or more)",
                         ryz_comm_op_name(op), k);
    if (!(f->beta_us_per_byte > 0))
        return ryz_error(RYZ_EINVAL, "%s fit has slope %g us/byte: no bandwidth to project with",
                         ryz_comm_op_name(op), f->beta_us_per_byte);
    /* A negative fitted intercept (noise) is taken as 0. */
    out->alpha_us = fmax(0, f->alpha_us) / ryz_ring_steps(op, k);
    out->bw_gbs = ryz_comm_busbw_factor(op, k) / f->beta_us_per_byte / 1e3;
    return RYZ_OK;
}

void ryz_project_decode(const ryz_decode_model *m, int k, ryz_projection *out) {
    int inter = m->per_node > 0 && k > m->per_node;
    const ryz_link *ar = inter ? &m->ar_inter : &m->ar_intra;
    const ryz_link *ag = inter ? &m->ag_inter : &m->ag_intra;
    double n_ar = 2.0 * m->layers + (m->embed_allreduce ? 1 : 0);
    double vocab_padded = m->vocab ? ceil((double)m->vocab / k) * k : 0;
    *out = (ryz_projection){.tp = k, .compute_us = m->compute_us / k};
    out->comm_us = n_ar * ryz_ring_time_us(RYZ_OP_ALL_REDUCE, ar, k, m->allreduce_bytes);
    if (m->vocab)
        out->comm_us += ryz_ring_time_us(RYZ_OP_ALL_GATHER, ag, k, 4 * vocab_padded);
    out->total_us = out->compute_us + out->comm_us;
    out->speedup = out->total_us > 0 ? m->compute_us / out->total_us : 0;
    out->efficiency = out->speedup / k;
}

ryz_status ryz_fit_collectives(const ryz_results *res, ryz_comm_op op, ryz_fit *out, int *tp) {
    const char *name = ryz_comm_op_name(op);
    size_t n = 0, cap = res->n_collectives ? res->n_collectives : 1;
    *tp = 0;
    for (size_t i = 0; i < res->n_collectives; i++) {
        const ryz_row_collective *c = &res->collectives[i];
        if (!strcmp(c->case_name, "comm") && !strcmp(c->op, name) && c->tp > *tp)
            *tp = c->tp;
    }
    double *x = malloc(cap * sizeof *x), *y = malloc(cap * sizeof *y), *w = malloc(cap * sizeof *w);
    ryz_status st = x && y && w ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory fitting");
    for (size_t i = 0; st == RYZ_OK && i < res->n_collectives; i++) {
        const ryz_row_collective *c = &res->collectives[i];
        if (strcmp(c->case_name, "comm") || strcmp(c->op, name) || c->tp != *tp || !(c->p50_us > 0))
            continue;
        x[n] = (double)c->bytes, y[n] = c->p50_us, w[n] = 1 / (c->p50_us * c->p50_us);
        n++;
    }
    if (st == RYZ_OK && n < 2)
        st = ryz_error(RYZ_EINVAL, "no %s sweep to fit: the results hold %zu `ryz comm` %s size(s)",
                       name, n, name);
    if (st == RYZ_OK)
        st = ryz_fit_line(x, y, w, n, out);
    free(x), free(y), free(w);
    return st;
}

const ryz_row_timing *ryz_find_decode(const ryz_results *res, const char *case_name, int tp) {
    for (size_t i = 0; i < res->n_timing; i++) {
        const ryz_row_timing *t = &res->timing[i];
        if (t->tp == tp && !strcmp(t->phase, "decode") &&
            (!case_name || !strcmp(t->case_name, case_name)))
            return t;
    }
    return NULL;
}
