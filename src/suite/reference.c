/* The reference after reads, sampled between a TP group's timed runs
 * (suite.h, ryz_collective_ref): the machine drifts by tens of percent
 * within one suite run on a shared VM (docs/performance.md, "session
 * 17"), so a reference taken once at the end compares the in-situ calls
 * with a moment they did not live through. After each timed run, each
 * (op, bytes) of that run's records runs alone SAMPLE_ITERS times on a
 * duplicate of the group's comm, replaying the reads its calls followed. */
#include <stdlib.h>
#include <string.h>

#include "measure.h"
#include "ryz/bench.h"
#include "ryz/suite.h"

enum { SAMPLE_ITERS = RYZ_REF_SAMPLES, SAMPLE_WARMUP = 5 };

ryz_status ryz_collective_ref_open(ryz_comm *c, ryz_collective_ref *r) {
    int k = ryz_comm_size(c);
    *r = (ryz_collective_ref){.keys = malloc((size_t)k * sizeof(ryz_calls_key))};
    ryz_status st = ryz_comm_split_first(c, k, &r->dup);
    if (st == RYZ_ECOMM || st == RYZ_ETIMEOUT) /* c itself failed */
        return st;
    /* Whether every rank set up: one float each into the keys buffer (an
     * all-gather, which the all-reduce fault hook leaves alone). A rank
     * that cannot allocate 16 bytes per rank cannot take part. */
    float mine = st == RYZ_OK && r->dup && r->keys;
    float *all = r->keys;
    if (!all)
        return ryz_error(RYZ_ENOMEM, "out of memory for the collective reference");
    st = ryz_comm_all_gather(c, &mine, all, 1);
    r->ok = st == RYZ_OK;
    for (int i = 0; r->ok && i < k; i++)
        r->ok = all[i] == 1;
    return st;
}

void ryz_collective_ref_close(ryz_collective_ref *r) {
    for (size_t i = 0; i < r->n_rows; i++)
        free(r->rows[i].us);
    free(r->rows);
    free(r->keys);
    ryz_comm_free(r->dup);
    *r = (ryz_collective_ref){0};
}

/* Appends n latencies to r's row of (op, bytes), adding the row when new;
 * 0 when out of memory. */
static int ref_append(ryz_collective_ref *r, ryz_comm_op op, uint64_t bytes, const float *us,
                      size_t n) {
    struct ryz_ref_row *row = NULL;
    for (size_t i = 0; !row && i < r->n_rows; i++)
        if (r->rows[i].op == op && r->rows[i].bytes == bytes)
            row = &r->rows[i];
    if (!row) {
        struct ryz_ref_row *rows = realloc(r->rows, (r->n_rows + 1) * sizeof *rows);
        if (!rows)
            return 0;
        r->rows = rows;
        row = &rows[r->n_rows++];
        *row = (struct ryz_ref_row){.op = op, .bytes = bytes};
    }
    if (row->n + n > row->cap) {
        size_t cap = 2 * (row->n + n);
        double *p = realloc(row->us, cap * sizeof *p);
        if (!p)
            return 0;
        row->us = p, row->cap = cap;
    }
    for (size_t i = 0; i < n; i++)
        row->us[row->n++] = us[i];
    return 1;
}

/* This rank's calls since r->seen: calls (sorted by (op, bytes), then
 * call order, i relative to seen) and the bytes read before each. */
typedef struct {
    size_t n;
    ryz_call_ref *calls;
    double *streamed, *gap;
    uint64_t *seq;
    double *gaps;
} window;

static int window_fill(const ryz_collective_ref *r, ryz_comm *c, window *w) {
    size_t kept = ryz_comm_record_count(c);
    if (kept < r->seen || ryz_comm_record_total(c) > kept)
        return 0; /* cleared since, or wrapped: the calls would not line up */
    w->n = kept - r->seen;
    size_t m = w->n ? w->n : 1;
    w->calls = malloc(m * sizeof *w->calls);
    w->streamed = malloc(m * sizeof *w->streamed);
    w->seq = malloc(m * sizeof *w->seq);
    w->gap = malloc(m * sizeof *w->gap);
    w->gaps = malloc(m * sizeof *w->gaps);
    if (!w->calls || !w->streamed || !w->seq || !w->gap || !w->gaps)
        return 0;
    for (size_t i = 0; i < w->n; i++) {
        const ryz_comm_record *rec = ryz_comm_record_at(c, r->seen + i);
        w->calls[i] = (ryz_call_ref){.op = rec->op, .bytes = rec->bytes, .i = i};
        w->streamed[i] = (double)rec->streamed;
        w->gap[i] = rec->gap;
    }
    qsort(w->calls, w->n, sizeof *w->calls, ryz_call_cmp);
    return 1;
}

/* Whether every rank's window holds the same calls: one all-gather on
 * r->dup of each rank's key (count and hash; a count no window has for a
 * rank that could not build its window). */
static ryz_status window_agree(ryz_collective_ref *r, const window *w, int ok, int *agreed) {
    int k = ryz_comm_size(r->dup);
    ryz_calls_key mine = {.n = UINT64_MAX}, *all = r->keys;
    if (ok)
        mine = (ryz_calls_key){.n = w->n, .hash = ryz_calls_hash(w->calls, w->n)};
    ryz_status st = ryz_comm_all_gather(r->dup, (const float *)(const void *)&mine,
                                        (float *)(void *)all, sizeof mine / sizeof(float));
    *agreed = st == RYZ_OK;
    for (int i = 0; *agreed && i < k; i++)
        *agreed = all[i].n != UINT64_MAX && all[i].n == all[0].n && all[i].hash == all[0].hash;
    return st;
}

/* Runs each (op, bytes) of the window alone, appending its latencies; a
 * rank short of memory still runs every one (the others expect it) and
 * marks itself *sick: its rows then do not stand (ryz_suite_collectives
 * agrees on that before using any). */
static ryz_status window_replay(ryz_collective_ref *r, window *w, int *sick) {
    int k = ryz_comm_size(r->dup);
    float us[SAMPLE_ITERS];
    ryz_status st = RYZ_OK;
    for (size_t i = 0, j; st == RYZ_OK && i < w->n; i = j) {
        const ryz_call_ref *g = &w->calls[i];
        j = ryz_call_group_end(w->calls, w->n, i);
        if (!ryz_replayable(g->op, g->bytes, k))
            continue;
        ryz_replay_reads(g, j - i, w->streamed, w->gap, w->seq, w->gaps);
        double p50;
        st = ryz_replay_run(r->dup, g->op, g->bytes, SAMPLE_ITERS, SAMPLE_WARMUP, w->seq, w->gaps,
                            j - i, &p50, us);
        if (st == RYZ_OK && p50 > 0 && !ref_append(r, g->op, g->bytes, us, SAMPLE_ITERS))
            *sick = 1;
    }
    return st;
}

ryz_status ryz_collective_ref_sample(ryz_collective_ref *r, ryz_comm *c) {
    if (!r->ok) /* decided alike on every rank at an agreement */
        return RYZ_OK;
    window w = {0};
    int ok = window_fill(r, c, &w), agreed = 0;
    ryz_status st = window_agree(r, &w, ok, &agreed);
    if (st == RYZ_OK && agreed) {
        r->seen += w.n;
        st = window_replay(r, &w, &r->sick);
    } else {
        r->ok = 0;
    }
    free(w.calls), free(w.streamed), free(w.seq), free(w.gap), free(w.gaps);
    return st;
}
