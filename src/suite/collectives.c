/* The collectives of one TP group, three ways (docs/performance.md,
 * "Collectives: in situ against ryz comm"): this rank's per-call times as
 * the model saw them; per call across the ranks, the fastest rank's time
 * (the last to arrive, so the collective itself) and the spread (how long
 * the first rank waited for the last); and the same (op, bytes) run alone
 * with the `ryz comm` harness, the reference the in-situ figure is held
 * to. All of it after the timed runs, never inside them, but for the
 * samples of the reference after reads taken between them
 * (reference.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "measure.h"
#include "ryz/bench.h"
#include "ryz/suite.h"

/* The isolated reference: ISOLATED_WARMUP calls, then up to ISOLATED_ITERS
 * timed ones, fewer (not below ISOLATED_MIN_ITERS) where the in-situ
 * last-arriver p50 says they would take more than ISOLATED_BUDGET_S. */
enum { ISOLATED_ITERS = 200, ISOLATED_MIN_ITERS = 20, ISOLATED_WARMUP = 20 };
/* Timed iterations of the reference after streaming (`ryz comm --evict`):
 * fixed, since the bytes each rank streamed are its own and the ranks must
 * agree on the count; each costs an eviction, milliseconds for a big one. */
enum { EVICT_ITERS = 100 };
#define ISOLATED_BUDGET_S 0.05

enum { KEY_FLOATS = sizeof(ryz_calls_key) / sizeof(float) };

typedef struct {
    ryz_comm *c;
    int k, rank;
    const char *case_name;
    size_t n;                 /* records of this rank */
    double *secs;             /* (n) this rank's durations, in call order */
    double *streamed;         /* (n) bytes this rank read before each call (since its
                                 previous one) */
    double *gap;              /* (n) seconds idle before each call (since its previous
                                 one ended) */
    ryz_call_ref *calls;      /* (n) sorted by (op, bytes, i) */
    double *all;              /* (k, n) every rank's durations */
    double *last, *wait;      /* (n) per call; valid when `agreed` */
    double *scratch;          /* (n) statistics buffer */
    ryz_calls_key *keys;      /* (k) */
    int agreed;               /* k > 1 and every rank recorded the same calls */
    ryz_row_collective *rows; /* (n) one per (op, bytes) */
    size_t *row_at;           /* (n) each row's first call in `calls` */
    uint64_t *seq;            /* (n) a row's streamed bytes in call order */
    double *gaps;             /* (n) and its gaps */
    size_t n_rows;
} group_ctx;

static void ctx_free(group_ctx *x) {
    free(x->secs), free(x->streamed), free(x->calls), free(x->all), free(x->last), free(x->wait);
    free(x->scratch), free(x->keys), free(x->rows), free(x->row_at), free(x->seq), free(x->gap);
    free(x->gaps);
}

/* Copies this rank's records (before any collective of ours adds one) and
 * allocates every buffer; 0 when out of memory (the ranks then learn it
 * through the agreement, so none is left waiting). */
static int snapshot(group_ctx *x, double *comm_s) {
    size_t n = ryz_comm_record_count(x->c), m = n ? n : 1, km;
    *comm_s = 0;
    if (ryz_measure_starved("RYZ_TEST_RECORDS_NOMEM", x->rank)) return 0;
    x->secs = malloc(m * sizeof *x->secs);
    x->streamed = malloc(m * sizeof *x->streamed);
    x->calls = malloc(m * sizeof *x->calls);
    x->all = ryz_mul_ok((size_t)x->k, m, &km) ? malloc(km * sizeof *x->all) : NULL;
    x->last = calloc(m, sizeof *x->last);
    x->wait = calloc(m, sizeof *x->wait);
    x->scratch = malloc(m * sizeof *x->scratch);
    x->rows = calloc(m, sizeof *x->rows);
    x->row_at = calloc(m, sizeof *x->row_at);
    x->seq = calloc(m, sizeof *x->seq);
    x->gap = malloc(m * sizeof *x->gap);
    x->gaps = calloc(m, sizeof *x->gaps);
    if (!x->secs || !x->streamed || !x->calls || !x->all || !x->last || !x->wait)
        return 0;
    if (!x->scratch || !x->rows || !x->row_at || !x->seq || !x->gap || !x->gaps)
        return 0;
    x->n = n;
    for (size_t i = 0; i < n; i++) {
        const ryz_comm_record *r = ryz_comm_record_at(x->c, i);
        x->secs[i] = r->seconds;
        x->streamed[i] = (double)r->streamed;
        x->gap[i] = r->gap;
        x->calls[i] = (ryz_call_ref){.op = r->op, .bytes = r->bytes, .i = i};
        *comm_s += r->seconds;
    }
    return 1;
}

uint64_t ryz_calls_hash(const ryz_call_ref *calls, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint64_t)calls[i].op) * 1099511628211ULL;
        h = (h ^ calls[i].bytes) * 1099511628211ULL;
    }
    return h;
}

/* First the ranks agree that every one allocated its buffers (one float
 * summed: a rank short of memory, even for x->keys, still takes part), so
 * ENOMEM comes out on every rank and none is left waiting. Then every rank
 * learns every rank's key (one all_gather of KEY_FLOATS): x->agreed says
 * whether all recorded the same calls, and rank 0 warns when they did not. */
static ryz_status agree(group_ctx *x, int ok) {
    float mine_ok = ok && x->keys, all_ok = 0;
    ryz_status st = ryz_comm_all_reduce_sum(x->c, &mine_ok, &all_ok, 1);
    if (st != RYZ_OK)
        return st;
    if (all_ok < (float)x->k)
        return ryz_error(RYZ_ENOMEM, "out of memory on %d rank(s) for the %s collective records",
                         x->k - (int)all_ok, x->case_name);
    ryz_calls_key mine = {.n = x->n, .hash = ryz_calls_hash(x->calls, x->n)};
    st = ryz_comm_all_gather(x->c, (const float *)(const void *)&mine, (float *)(void *)x->keys,
                             KEY_FLOATS);
    if (st != RYZ_OK)
        return st;
    x->agreed = 1;
    for (int r = 0; r < x->k; r++) {
        const ryz_calls_key *o = &x->keys[r];
        if (x->agreed && (o->n != x->keys[0].n || o->hash != x->keys[0].hash)) {
            x->agreed = 0;
            if (x->rank == 0)
                RYZ_WARN("case %s tp=%d: rank 0 recorded %llu collectives, rank %d %llu%s; "
                         "last-arriver, wait and isolated columns not measured",
                         x->case_name, x->k, (unsigned long long)x->keys[0].n, r,
                         (unsigned long long)o->n,
                         o->n == x->keys[0].n ? " (of other ops or sizes)" : "");
        }
    }
    return RYZ_OK;
}

void ryz_collectives_cross_rank(const double *seconds, int k, size_t n, double *last,
                                double *wait) {
    for (size_t i = 0; i < n; i++) {
        double lo = seconds[i], hi = seconds[i];
        for (int r = 1; r < k; r++) {
            double v = seconds[(size_t)r * n + i];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        last[i] = lo;
        wait[i] = hi - lo;
    }
}

/* Every rank's durations to every rank (doubles travel as pairs of floats,
 * an exact copy), reduced per call. Only after agreement: the size is the
 * agreed count, the same on every rank. */
static ryz_status cross_rank(group_ctx *x) {
    if (!x->agreed || x->n == 0)
        return RYZ_OK;
    size_t per = x->n * (sizeof(double) / sizeof(float));
    ryz_status st = ryz_comm_all_gather(x->c, (const float *)(const void *)x->secs,
                                        (float *)(void *)x->all, per);
    if (st == RYZ_OK)
        ryz_collectives_cross_rank(x->all, x->k, x->n, x->last, x->wait);
    return st;
}

size_t ryz_call_group_end(const ryz_call_ref *calls, size_t n, size_t i) {
    size_t j = i;
    while (j < n && calls[j].op == calls[i].op && calls[j].bytes == calls[i].bytes)
        j++;
    return j;
}

int ryz_call_cmp(const void *a, const void *b) {
    const ryz_call_ref *x = a, *y = b;
    if (x->op != y->op)
        return (x->op > y->op) - (x->op < y->op);
    if (x->bytes != y->bytes)
        return (x->bytes > y->bytes) - (x->bytes < y->bytes);
    return (x->i > y->i) - (x->i < y->i);
}

/* Statistics of `src` at the calls of one group (x->scratch is reordered). */
static void group_stats(group_ctx *x, const ryz_call_ref *g, size_t n, const double *src,
                        ryz_stats *out) {
    for (size_t j = 0; j < n; j++)
        x->scratch[j] = src[g[j].i];
    ryz_stats_compute(x->scratch, n, out);
}

/* The row of the n calls g[0..n) of one (op, bytes). */
static void group_row(group_ctx *x, const ryz_call_ref *g, size_t n) {
    x->row_at[x->n_rows] = (size_t)(g - x->calls);
    ryz_row_collective *row = &x->rows[x->n_rows++];
    ryz_stats own, last, wait, streamed;
    group_stats(x, g, n, x->secs, &own);
    group_stats(x, g, n, x->streamed, &streamed);
    *row = (ryz_row_collective){.tp = x->k,
                                .bytes = g->bytes,
                                .count = n,
                                .p50_us = 1e6 * own.median,
                                .p99_us = 1e6 * own.p99,
                                .mean_us = 1e6 * own.mean,
                                .streamed_bytes = (uint64_t)streamed.median};
    snprintf(row->case_name, sizeof row->case_name, "%s", x->case_name);
    snprintf(row->op, sizeof row->op, "%s", ryz_comm_op_name(g->op));
    row->algbw_gbs = ryz_bench_algbw_gbs(row->bytes, own.median);
    row->busbw_gbs = row->algbw_gbs * ryz_comm_busbw_factor(g->op, x->k);
    if (!x->agreed)
        return;
    group_stats(x, g, n, x->last, &last);
    group_stats(x, g, n, x->wait, &wait);
    row->p50_last_us = 1e6 * last.median;
    row->wait_p50_us = 1e6 * wait.median;
}

/* One row per (op, bytes) of the records, barriers left out. */
static void group_rows(group_ctx *x) {
    qsort(x->calls, x->n, sizeof *x->calls, ryz_call_cmp);
    for (size_t i = 0, j; i < x->n; i = j) {
        j = ryz_call_group_end(x->calls, x->n, i);
        if (x->calls[i].op != RYZ_OP_BARRIER)
            group_row(x, x->calls + i, j - i);
    }
}

/* The op of a row by name (rows hold it as text). */
static ryz_comm_op row_op(const ryz_row_collective *row) {
    for (int op = 0; op < RYZ_OP_COUNT; op++)
        if (!strcmp(row->op, ryz_comm_op_name((ryz_comm_op)op)))
            return (ryz_comm_op)op;
    return RYZ_OP_COUNT;
}

/* Timed iterations of the isolated run of a row: the budget at its
 * last-arriver p50 (the same on every rank: computed from the gathered
 * durations), for both placements the harness runs. */
static int isolated_iters(const ryz_row_collective *row) {
    double per = 2e-6 * row->p50_last_us;
    if (per <= 0 || ISOLATED_BUDGET_S / per >= ISOLATED_ITERS)
        return ISOLATED_ITERS;
    int n = (int)(ISOLATED_BUDGET_S / per);
    return n < ISOLATED_MIN_ITERS ? ISOLATED_MIN_ITERS : n;
}

ryz_status ryz_replay_run(ryz_comm *c, ryz_comm_op op, uint64_t bytes, int iters, int warmup,
                          const uint64_t *seq, const double *gaps, size_t n, double *p50,
                          float *samples) {
    ryz_bench_opts o = {.ops = 1u << op,
                        .min_bytes = bytes,
                        .max_bytes = bytes,
                        .factor = 2,
                        .iters = iters,
                        .warmup = warmup,
                        .evict_each = seq,
                        .gap_each = gaps,
                        .n_evict_each = n};
    ryz_bench_report rep;
    ryz_status st = ryz_bench_run(c, &o, &rep);
    *p50 = 0;
    if (st == RYZ_OK && rep.n_rows == 1) {
        const ryz_bench_result *p = &rep.rows[0].place[rep.rows[0].place[1].ran ? 1 : 0];
        *p50 = p->p50_us;
        if (samples)
            memcpy(samples, p->samples_us, (size_t)iters * sizeof *samples);
    }
    ryz_bench_report_free(&rep);
    return st;
}

int ryz_replayable(ryz_comm_op op, uint64_t bytes, int k) {
    return op < RYZ_OP_COUNT && op != RYZ_OP_BARRIER && bytes > 0 &&
           ryz_bench_round_bytes(op, bytes, k) == bytes;
}

size_t ryz_replay_reads(const ryz_call_ref *g, size_t n, const double *streamed,
                        const double *gap, uint64_t *seq, double *gaps) {
    uint64_t enough = ryz_bench_evict_enough();
    size_t nonzero = 0;
    for (size_t j = 0; j < n; j++) {
        uint64_t read = (uint64_t)streamed[g[j].i];
        double idle = gap[g[j].i];
        seq[j] = read < enough ? read : enough; /* more would evict nothing more */
        gaps[j] = idle < RYZ_REPLAY_MAX_GAP_S ? idle : RYZ_REPLAY_MAX_GAP_S;
        nonzero += read > 0;
    }
    return nonzero;
}

/* The p50 (us) of ref's samples of (op, bytes); 0 when it has none that
 * stand on this rank. */
static double sampled_p50(const ryz_collective_ref *ref, ryz_comm_op op, uint64_t bytes) {
    for (size_t i = 0; ref && ref->ok && !ref->sick && i < ref->n_rows; i++) {
        const struct ryz_ref_row *r = &ref->rows[i];
        if (r->op != op || r->bytes != bytes || r->n == 0)
            continue;
        ryz_stats s;
        double *tmp = malloc(r->n * sizeof *tmp);
        if (!tmp)
            return 0; /* then the pass below runs on every rank: see isolate_row */
        memcpy(tmp, r->us, r->n * sizeof *tmp);
        ryz_stats_compute(tmp, r->n, &s);
        free(tmp);
        return s.median;
    }
    return 0;
}

/* Runs row i's (op, bytes) alone on x->c and fills its isolated columns:
 * back to back, and the reference after reads, chosen alike on every rank
 * (one all-reduce of {ranks that read anything, ranks without samples}):
 * the back-to-back figure where no rank read anything (whatever the calls'
 * idle gaps: such a call followed only bookkeeping, and ref's samples of
 * it are not used either); else the p50 of ref's samples where every rank
 * has them; else a pass now, each call after the reads and the idle gap
 * its in-situ calls followed, in call order. A size the
 * harness cannot express (not a whole number of floats per rank) stays 0,
 * decided alike on every rank. */
static ryz_status isolate_row(group_ctx *x, size_t i, const ryz_collective_ref *ref) {
    ryz_row_collective *row = &x->rows[i];
    ryz_comm_op op = row_op(row);
    if (!ryz_replayable(op, row->bytes, x->k))
        return RYZ_OK;
    ryz_status st = ryz_replay_run(x->c, op, row->bytes, isolated_iters(row), ISOLATED_WARMUP,
                                   NULL, NULL, 0, &row->isolated_p50_us, NULL);
    double sampled = sampled_p50(ref, op, row->bytes);
    size_t reads = ryz_replay_reads(x->calls + x->row_at[i], row->count, x->streamed, x->gap,
                                    x->seq, x->gaps);
    float mine[2] = {reads > 0, sampled == 0}, sum[2] = {0, 0};
    if (st == RYZ_OK)
        st = ryz_comm_all_reduce_sum(x->c, mine, sum, 2);
    row->isolated_evict_p50_us = row->isolated_p50_us;
    if (st == RYZ_OK && sum[0] > 0 && sum[1] == 0)
        row->isolated_evict_p50_us = sampled;
    else if (st == RYZ_OK && sum[0] > 0)
        st = ryz_replay_run(x->c, op, row->bytes, EVICT_ITERS, ISOLATED_WARMUP, x->seq,
                            x->gaps, row->count, &row->isolated_evict_p50_us, NULL);
    if (row->isolated_p50_us > 0)
        row->last_over_isolated = row->p50_last_us / row->isolated_p50_us;
    if (row->isolated_evict_p50_us > 0)
        row->last_over_evict = row->p50_last_us / row->isolated_evict_p50_us;
    return st;
}

ryz_status ryz_suite_collectives(ryz_comm *c, const char *case_name, int isolate,
                                 const ryz_collective_ref *ref, ryz_results *res, double *comm_s) {
    group_ctx x = {.c = c, .k = ryz_comm_size(c), .rank = ryz_comm_rank(c), .case_name = case_name};
    int ok = snapshot(&x, comm_s);
    ryz_status st = RYZ_OK;
    if (x.k > 1) {
        x.keys = malloc((size_t)x.k * sizeof *x.keys); /* NULL: agree() says so to all */
        st = agree(&x, ok);
        if (st == RYZ_OK)
            st = cross_rank(&x);
    } else if (!ok) {
        st = ryz_error(RYZ_ENOMEM, "out of memory for the %s collective records", case_name);
    }
    if (st != RYZ_OK)
        goto cleanup;
    group_rows(&x);
    /* The harness's buffers are host memory: on a comm that takes device
     * memory in place (nccl) it would time nccl's host staging, not the
     * model's calls, and the ratio would mean nothing. */
    isolate = isolate && !ryz_comm_device_memory(c);
    for (size_t i = 0; st == RYZ_OK && isolate && x.agreed && i < x.n_rows; i++)
        st = isolate_row(&x, i, ref);
    for (size_t i = 0; st == RYZ_OK && res && i < x.n_rows; i++)
        st = ryz_results_add_collective(res, &x.rows[i]);
cleanup:
    ctx_free(&x);
    return st;
}
