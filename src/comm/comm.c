/* The profiling wrapper every collective passes through, and the comm
 * handle shared by all backends. */
#include <stdlib.h>
#include <string.h>

#include "ryz/comm.h"

#define RECORD_CAPACITY 65536

struct ryz_comm {
    const ryz_comm_iface *iface;
    void *ctx;
    int rank, size;
    ryz_comm_record *records; /* ring of RECORD_CAPACITY */
    size_t n_records;         /* total recorded since clear (may exceed capacity) */
};

ryz_status ryz_comm_create(const ryz_comm_iface *iface, void *ctx, int rank, int size,
                           ryz_comm **out) {
    ryz_comm *c = calloc(1, sizeof *c);
    ryz_comm_record *rec = calloc(RECORD_CAPACITY, sizeof *rec);
    if (!c || !rec) {
        free(c);
        free(rec);
        iface->free(ctx);
        return ryz_error(RYZ_ENOMEM, "out of memory creating %s communicator", iface->name);
    }
    *c = (ryz_comm){.iface = iface, .ctx = ctx, .rank = rank, .size = size, .records = rec};
    *out = c;
    return RYZ_OK;
}

void ryz_comm_free(ryz_comm *c) {
    if (!c) return;
    c->iface->free(c->ctx);
    free(c->records);
    free(c);
}

int ryz_comm_rank(const ryz_comm *c) {
    return c->rank;
}

int ryz_comm_size(const ryz_comm *c) {
    return c->size;
}

const char *ryz_comm_name(const ryz_comm *c) {
    return c->iface->name;
}

const char *ryz_comm_op_name(ryz_comm_op op) {
    static const char *names[] = {"all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                  "barrier"};
    return (unsigned)op < RYZ_OP_COUNT ? names[op] : "unknown";
}

static void record(ryz_comm *c, ryz_comm_op op, size_t bytes, double t0) {
    ryz_comm_record *r = &c->records[c->n_records % RECORD_CAPACITY];
    *r = (ryz_comm_record){.op = op, .bytes = bytes, .seconds = ryz_time_now() - t0};
    c->n_records++;
}

/* TEST ONLY (declared in ryz/bench.h): the fault hook that makes -c fail.
 * -1 until RYZ_TEST_CORRUPT has been read at the first all_reduce. */
static int test_corrupt = -1;

void ryz_comm_test_corrupt(int on) {
    test_corrupt = on;
}

/* TEST ONLY: while the hook is on, recv[count/2] += 1. */
static void test_corrupt_apply(float *recv, size_t count) {
    if (test_corrupt < 0) {
        const char *e = getenv("RYZ_TEST_CORRUPT");
        test_corrupt = e && !strcmp(e, "1");
    }
    if (test_corrupt && count) recv[count / 2] += 1.0f;
}

ryz_status ryz_comm_all_reduce_sum(ryz_comm *c, const float *send, float *recv, size_t count) {
    double t0 = ryz_time_now();
    ryz_status s = c->iface->all_reduce_sum(c->ctx, send, recv, count);
    record(c, RYZ_OP_ALL_REDUCE, count * sizeof(float), t0);
    test_corrupt_apply(recv, count);
    return s;
}

ryz_status ryz_comm_all_gather(ryz_comm *c, const float *send, float *recv,
                               size_t count_per_rank) {
    double t0 = ryz_time_now();
    ryz_status s = c->iface->all_gather(c->ctx, send, recv, count_per_rank);
    record(c, RYZ_OP_ALL_GATHER, count_per_rank * (size_t)c->size * sizeof(float), t0);
    return s;
}

ryz_status ryz_comm_reduce_scatter(ryz_comm *c, const float *send, float *recv,
                                   size_t count_per_rank) {
    double t0 = ryz_time_now();
    ryz_status s = c->iface->reduce_scatter(c->ctx, send, recv, count_per_rank);
    record(c, RYZ_OP_REDUCE_SCATTER, count_per_rank * (size_t)c->size * sizeof(float), t0);
    return s;
}

ryz_status ryz_comm_broadcast(ryz_comm *c, void *buf, size_t bytes, int root) {
    if (root < 0 || root >= c->size)
        return ryz_error(RYZ_EINVAL, "broadcast root %d outside communicator of %d ranks", root,
                         c->size);
    double t0 = ryz_time_now();
    ryz_status s = c->iface->broadcast(c->ctx, buf, bytes, root);
    record(c, RYZ_OP_BROADCAST, bytes, t0);
    return s;
}

ryz_status ryz_comm_barrier(ryz_comm *c) {
    double t0 = ryz_time_now();
    ryz_status s = c->iface->barrier(c->ctx);
    record(c, RYZ_OP_BARRIER, 0, t0);
    return s;
}

void ryz_comm_abort(ryz_comm *c, int code) {
    c->iface->abort(c->ctx, code);
}

ryz_status ryz_comm_split_first(ryz_comm *c, int n, ryz_comm **out) {
    *out = NULL;
    if (n < 1 || n > c->size)
        return ryz_error(RYZ_EINVAL, "need %d ranks but the communicator has %d", n, c->size);
    return c->iface->split_first(c->ctx, n, out);
}

size_t ryz_comm_record_count(const ryz_comm *c) {
    return c->n_records < RECORD_CAPACITY ? c->n_records : RECORD_CAPACITY;
}

const ryz_comm_record *ryz_comm_record_at(const ryz_comm *c, size_t i) {
    size_t n = ryz_comm_record_count(c);
    RYZ_ASSERT(i < n);
    size_t first = c->n_records - n;
    return &c->records[(first + i) % RECORD_CAPACITY];
}

void ryz_comm_records_clear(ryz_comm *c) {
    c->n_records = 0;
}

double ryz_comm_op_seconds(const ryz_comm *c, ryz_comm_op op, size_t *calls) {
    double t = 0;
    size_t k = 0, n = ryz_comm_record_count(c);
    for (size_t i = 0; i < n; i++) {
        const ryz_comm_record *r = ryz_comm_record_at(c, i);
        if (r->op != op) continue;
        t += r->seconds;
        k++;
    }
    if (calls) *calls = k;
    return t;
}

double ryz_comm_busbw_factor(ryz_comm_op op, int k) {
    switch (op) {
    case RYZ_OP_ALL_REDUCE: return 2.0 * (k - 1) / k;
    case RYZ_OP_ALL_GATHER:
    case RYZ_OP_REDUCE_SCATTER: return (double)(k - 1) / k;
    default: return 1.0;
    }
}
