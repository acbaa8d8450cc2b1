/* The wrapper every collective passes through, and the comm handle shared
 * by all backends. Per call: the interruption rule, the sequence number,
 * fault injection (fault.c), the optional agreement check, publication for
 * the watchdog, the backend call, then its profiling record. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define RECORD_CAPACITY 65536

/* A collective's fingerprint: 4 fields (op, #, count, root), each sent as
 * 4 floats of 16 bits so that every value is exact in float32. */
enum { FP_FIELDS = 4, FP_CHUNKS = 4, FP_FLOATS = FP_FIELDS * FP_CHUNKS };

struct ryz_comm {
    const ryz_comm_iface *iface;
    void *ctx;
    int rank, size;
    int64_t id;               /* equal on all members: 0, or derived from the parent */
    uint64_t seq;             /* collectives issued so far */
    float *fp;                /* (size, FP_FLOATS) fingerprints of the last check */
    ryz_comm_record *records; /* ring of RECORD_CAPACITY */
    size_t n_records;         /* total recorded since clear (may exceed capacity) */
    uint64_t streamed_mark;   /* ryz_streamed_total at the last record or clear */
    double last_end;          /* when its last call ended; 0 before the first */
    double gap;               /* of the call in flight: from last_end to its start,
                                 before the agreement check */
};

/* ---- settings ------------------------------------------------------- */

static struct {
    int loaded;
    ryz_status status;
    char message[512];
    _Atomic double timeout_s;
    atomic_int check;
} settings;

ryz_status ryz_comm_setup(void) {
    if (settings.loaded) {
        if (settings.status != RYZ_OK)
            ryz_error(settings.status, "%s", settings.message);
        return settings.status;
    }
    settings.loaded = 1;
    long timeout = 0, check = 0;
    ryz_status st = ryz_env_int("RYZ_TIMEOUT", 300, 0, 7 * 86400, &timeout);
    if (st == RYZ_OK)
        st = ryz_env_int("RYZ_CHECK_COLLECTIVES", 0, 0, 1, &check);
    if (st == RYZ_OK && (st = ryz_comm_fault_set(getenv("RYZ_FAULT"))) != RYZ_OK)
        ryz_error_wrap(st, "RYZ_FAULT");
    settings.status = st;
    snprintf(settings.message, sizeof settings.message, "%s", ryz_last_error());
    atomic_store(&settings.timeout_s, (double)timeout);
    atomic_store(&settings.check, (int)check);
    return st;
}

double ryz_comm_timeout(void) {
    ryz_comm_setup();
    return atomic_load(&settings.timeout_s);
}

void ryz_comm_set_timeout(double seconds) {
    ryz_comm_setup();
    atomic_store(&settings.timeout_s, seconds > 0 ? seconds : 0);
}

int ryz_comm_check_enabled(void) {
    ryz_comm_setup();
    return atomic_load(&settings.check);
}

void ryz_comm_set_check(int on) {
    ryz_comm_setup();
    atomic_store(&settings.check, on != 0);
}

static int process_rank;

void comm_sleep(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        continue;
}

int comm_process_rank(void) {
    return process_rank;
}

void comm_set_process_rank(int rank) {
    process_rank = rank;
}

/* ---- the handle ------------------------------------------------------ */

ryz_status ryz_comm_create(const ryz_comm_iface *iface, void *ctx, int rank, int size,
                           ryz_comm **out) {
    ryz_status st = ryz_comm_setup();
    if (st != RYZ_OK) {
        iface->free(ctx);
        return st;
    }
    ryz_comm *c = calloc(1, sizeof *c);
    ryz_comm_record *rec = calloc(RECORD_CAPACITY, sizeof *rec);
    float *fp = calloc((size_t)size * FP_FLOATS, sizeof *fp);
    if (!c || !rec || !fp) {
        free(c);
        free(rec);
        free(fp);
        iface->free(ctx);
        return ryz_error(RYZ_ENOMEM, "out of memory creating %s communicator", iface->name);
    }
    *c = (ryz_comm){
        .iface = iface, .ctx = ctx, .rank = rank, .size = size, .fp = fp, .records = rec};
    c->streamed_mark = ryz_streamed_total();
    *out = c;
    return RYZ_OK;
}

void ryz_comm_free(ryz_comm *c) {
    if (!c)
        return;
    c->iface->free(c->ctx);
    free(c->fp);
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

int ryz_comm_device_memory(const ryz_comm *c) {
    return c->iface->device_memory;
}

uint64_t ryz_comm_seq(const ryz_comm *c) {
    return c->seq;
}

const char *ryz_comm_op_name(ryz_comm_op op) {
    static const char *names[] = {"all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                  "barrier"};
    return (unsigned)op < RYZ_OP_COUNT ? names[op] : "unknown";
}

/* ---- publication for the watchdog (a sequence lock) ------------------ */

static struct {
    atomic_uint lock; /* odd while being written */
    atomic_int busy, size, op, root;
    _Atomic int64_t comm_id;
    _Atomic uint64_t seq, count;
    _Atomic double t0;
} inflight;

/* Writes one call (or, busy = 0, its end) for comm_inflight_get. */
static void inflight_publish(const comm_call *k) {
    unsigned l = atomic_load_explicit(&inflight.lock, memory_order_relaxed);
    atomic_store_explicit(&inflight.lock, l + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&inflight.busy, k->busy, memory_order_relaxed);
    atomic_store_explicit(&inflight.size, k->size, memory_order_relaxed);
    atomic_store_explicit(&inflight.op, k->op, memory_order_relaxed);
    atomic_store_explicit(&inflight.root, k->root, memory_order_relaxed);
    atomic_store_explicit(&inflight.comm_id, k->comm_id, memory_order_relaxed);
    atomic_store_explicit(&inflight.seq, k->seq, memory_order_relaxed);
    atomic_store_explicit(&inflight.count, k->count, memory_order_relaxed);
    atomic_store_explicit(&inflight.t0, k->t0, memory_order_relaxed);
    atomic_store_explicit(&inflight.lock, l + 2, memory_order_release);
}

/* Marks the published call finished (the other fields stay: "the last"). */
static void inflight_end(void) {
    unsigned l = atomic_load_explicit(&inflight.lock, memory_order_relaxed);
    atomic_store_explicit(&inflight.lock, l + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&inflight.busy, 0, memory_order_relaxed);
    atomic_store_explicit(&inflight.lock, l + 2, memory_order_release);
}

int comm_inflight_get(comm_call *out) {
    for (;;) {
        unsigned l1 = atomic_load_explicit(&inflight.lock, memory_order_acquire);
        if (l1 & 1)
            continue;
        out->busy = atomic_load_explicit(&inflight.busy, memory_order_relaxed);
        out->size = atomic_load_explicit(&inflight.size, memory_order_relaxed);
        out->op = atomic_load_explicit(&inflight.op, memory_order_relaxed);
        out->root = atomic_load_explicit(&inflight.root, memory_order_relaxed);
        out->comm_id = atomic_load_explicit(&inflight.comm_id, memory_order_relaxed);
        out->seq = atomic_load_explicit(&inflight.seq, memory_order_relaxed);
        out->count = atomic_load_explicit(&inflight.count, memory_order_relaxed);
        out->t0 = atomic_load_explicit(&inflight.t0, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&inflight.lock, memory_order_relaxed) == l1)
            return out->busy;
    }
}

void comm_describe(const comm_call *k, char *buf, size_t cap) {
    unsigned long long seq = (unsigned long long)k->seq, n = (unsigned long long)k->count;
    switch (k->op) {
    case RYZ_OP_BROADCAST:
        snprintf(buf, cap, "broadcast #%llu of %llu bytes from rank %d", seq, n, k->root);
        break;
    case RYZ_OP_BARRIER:
        snprintf(buf, cap, "barrier #%llu", seq);
        break;
    case COMM_OP_SPLIT:
        snprintf(buf, cap, "comm_split #%llu (first %llu ranks)", seq, n);
        break;
    default:
        snprintf(buf, cap, "%s #%llu of %llu floats", ryz_comm_op_name((ryz_comm_op)k->op), seq, n);
    }
}

/* ---- the agreement check --------------------------------------------- */

/* k's fingerprint as FP_FLOATS exact floats. */
static void fp_encode(const comm_call *k, float *out) {
    const uint64_t f[FP_FIELDS] = {(uint64_t)k->op, k->seq, k->count, (uint64_t)k->root};
    for (int i = 0; i < FP_FIELDS; i++)
        for (int j = 0; j < FP_CHUNKS; j++)
            out[i * FP_CHUNKS + j] = (float)((f[i] >> (16 * j)) & 0xffff);
}

/* The call (op, #, count, root) a fingerprint from fp_encode describes. */
static comm_call fp_decode(const float *in) {
    uint64_t f[FP_FIELDS] = {0};
    for (int i = 0; i < FP_FIELDS; i++)
        for (int j = 0; j < FP_CHUNKS; j++)
            f[i] |= (uint64_t)in[i * FP_CHUNKS + j] << (16 * j);
    return (comm_call){.op = (int)f[0], .seq = f[1], .count = f[2], .root = (int)f[3]};
}

/* All-gathers the call's fingerprint through the raw backend and compares
 * every rank's with rank 0's. ECOMM naming the first disagreement. */
static ryz_status check_agreement(ryz_comm *c, const comm_call *k) {
    float mine[FP_FLOATS];
    fp_encode(k, mine);
    ryz_status st = c->iface->all_gather(c->ctx, mine, c->fp, FP_FLOATS);
    if (st != RYZ_OK)
        return st;
    comm_call first = fp_decode(c->fp);
    for (int r = 1; r < c->size; r++) {
        comm_call other = fp_decode(c->fp + (size_t)r * FP_FLOATS);
        if (other.op == first.op && other.seq == first.seq && other.count == first.count &&
            other.root == first.root)
            continue;
        char a[128], b[128];
        comm_describe(&first, a, sizeof a);
        comm_describe(&other, b, sizeof b);
        return ryz_error(RYZ_ECOMM, "collectives out of step on %d ranks: rank 0: %s; rank %d: %s",
                         c->size, a, r, b);
    }
    return RYZ_OK;
}

/* ---- one call ---------------------------------------------------------- */

/* Everything before the backend call: the interruption rule, numbering,
 * faults (which may shrink *count), publication and the agreement check.
 * *t0 is when the backend call starts (the check is not timed). On error
 * nothing stays published. */
static ryz_status call_begin(ryz_comm *c, int op, uint64_t *count, int root, double *t0) {
    ryz_status st = process_rank == 0 ? ryz_interrupt_check() : RYZ_OK;
    if (st != RYZ_OK)
        return st;
    comm_call k = {.busy = 1,
                   .comm_id = c->id,
                   .size = c->size,
                   .op = op,
                   .seq = ++c->seq,
                   .count = *count,
                   .root = root};
    comm_fault_before(&k, count);
    k.count = *count;
    k.t0 = *t0 = ryz_time_now();
    c->gap = c->last_end > 0 ? k.t0 - c->last_end : 0;
    inflight_publish(&k);
    if (c->size < 2 || !atomic_load_explicit(&settings.check, memory_order_relaxed) ||
        !c->iface->all_gather)
        return RYZ_OK;
    st = check_agreement(c, &k);
    if (st != RYZ_OK)
        inflight_end();
    *t0 = ryz_time_now();
    return st;
}

/* After the backend call: unpublishes, records its time since t0 and, when
 * it succeeded, lets a corrupt fault touch the result. */
static ryz_status call_end(ryz_comm *c, int op, ryz_status st, size_t bytes, double t0,
                           void *result, size_t result_bytes) {
    inflight_end();
    double now = ryz_time_now();
    if (op != COMM_OP_SPLIT) {
        ryz_comm_record *r = &c->records[c->n_records % RECORD_CAPACITY];
        uint64_t streamed = ryz_streamed_total();
        *r = (ryz_comm_record){.op = (ryz_comm_op)op,
                               .bytes = bytes,
                               .seconds = now - t0,
                               .streamed = streamed - c->streamed_mark,
                               .gap = c->gap};
        c->streamed_mark = streamed;
        c->n_records++;
    }
    c->last_end = now;
    if (st == RYZ_OK && result)
        comm_fault_after(op, result, result_bytes);
    return st;
}

ryz_status ryz_comm_all_reduce_sum(ryz_comm *c, const float *send, float *recv, size_t count) {
    uint64_t n = count;
    double t0;
    ryz_status st = call_begin(c, RYZ_OP_ALL_REDUCE, &n, 0, &t0);
    if (st != RYZ_OK)
        return st;
    st = c->iface->all_reduce_sum(c->ctx, send, recv, (size_t)n);
    size_t bytes = (size_t)n * sizeof(float);
    return call_end(c, RYZ_OP_ALL_REDUCE, st, bytes, t0, recv, bytes);
}

ryz_status ryz_comm_all_gather(ryz_comm *c, const float *send, float *recv, size_t count_per_rank) {
    uint64_t n = count_per_rank;
    double t0;
    ryz_status st = call_begin(c, RYZ_OP_ALL_GATHER, &n, 0, &t0);
    if (st != RYZ_OK)
        return st;
    st = c->iface->all_gather(c->ctx, send, recv, (size_t)n);
    size_t bytes = (size_t)n * (size_t)c->size * sizeof(float);
    return call_end(c, RYZ_OP_ALL_GATHER, st, bytes, t0, recv, bytes);
}

ryz_status ryz_comm_reduce_scatter(ryz_comm *c, const float *send, float *recv,
                                   size_t count_per_rank) {
    uint64_t n = count_per_rank;
    double t0;
    ryz_status st = call_begin(c, RYZ_OP_REDUCE_SCATTER, &n, 0, &t0);
    if (st != RYZ_OK)
        return st;
    st = c->iface->reduce_scatter(c->ctx, send, recv, (size_t)n);
    return call_end(c, RYZ_OP_REDUCE_SCATTER, st, (size_t)n * (size_t)c->size * sizeof(float), t0,
                    recv, (size_t)n * sizeof(float));
}

ryz_status ryz_comm_broadcast(ryz_comm *c, void *buf, size_t bytes, int root) {
    if (root < 0 || root >= c->size)
        return ryz_error(RYZ_EINVAL, "broadcast root %d outside communicator of %d ranks", root,
                         c->size);
    uint64_t n = bytes;
    double t0;
    ryz_status st = call_begin(c, RYZ_OP_BROADCAST, &n, root, &t0);
    if (st != RYZ_OK)
        return st;
    st = c->iface->broadcast(c->ctx, buf, (size_t)n, root);
    return call_end(c, RYZ_OP_BROADCAST, st, (size_t)n, t0, buf, (size_t)n);
}

ryz_status ryz_comm_barrier(ryz_comm *c) {
    uint64_t n = 0;
    double t0;
    ryz_status st = call_begin(c, RYZ_OP_BARRIER, &n, 0, &t0);
    if (st != RYZ_OK)
        return st;
    st = c->iface->barrier(c->ctx);
    return call_end(c, RYZ_OP_BARRIER, st, 0, t0, NULL, 0);
}

void ryz_comm_abort(ryz_comm *c, int code) {
    c->iface->abort(c->ctx, code);
}

/* Children are numbered from the parent's id and the split's number, so
 * every member computes the same id without communicating. */
ryz_status ryz_comm_split_first(ryz_comm *c, int n, ryz_comm **out) {
    *out = NULL;
    if (n < 1 || n > c->size)
        return ryz_error(RYZ_EINVAL, "need %d ranks but the communicator has %d", n, c->size);
    uint64_t kept = (uint64_t)n;
    double t0;
    ryz_status st = call_begin(c, COMM_OP_SPLIT, &kept, 0, &t0);
    if (st != RYZ_OK)
        return st;
    st = c->iface->split_first(c->ctx, n, out); /* a desync fault only shows in the check */
    call_end(c, COMM_OP_SPLIT, st, 0, t0, NULL, 0);
    if (st == RYZ_OK && *out)
        (*out)->id = c->id * 1000003 + (int64_t)c->seq;
    return st;
}

ryz_status ryz_comm_check_peers(ryz_comm *c, double grace_s) {
    if (c->size < 2 || !c->iface->check_peers)
        return RYZ_OK;
    return c->iface->check_peers(c->ctx, c->size, grace_s);
}

/* ---- profiling records ------------------------------------------------ */

size_t ryz_comm_record_count(const ryz_comm *c) {
    return c->n_records < RECORD_CAPACITY ? c->n_records : RECORD_CAPACITY;
}

size_t ryz_comm_record_total(const ryz_comm *c) {
    return c->n_records;
}

const ryz_comm_record *ryz_comm_record_at(const ryz_comm *c, size_t i) {
    size_t n = ryz_comm_record_count(c);
    RYZ_ASSERT(i < n);
    size_t first = c->n_records - n;
    return &c->records[(first + i) % RECORD_CAPACITY];
}

void ryz_comm_records_clear(ryz_comm *c) {
    c->n_records = 0;
    c->streamed_mark = ryz_streamed_total();
}

double ryz_comm_op_seconds(const ryz_comm *c, ryz_comm_op op, size_t *calls) {
    double t = 0;
    size_t k = 0, n = ryz_comm_record_count(c);
    for (size_t i = 0; i < n; i++) {
        const ryz_comm_record *r = ryz_comm_record_at(c, i);
        if (r->op != op)
            continue;
        t += r->seconds;
        k++;
    }
    if (calls)
        *calls = k;
    return t;
}

double ryz_comm_busbw_factor(ryz_comm_op op, int k) {
    switch (op) {
    case RYZ_OP_ALL_REDUCE:
        return 2.0 * (k - 1) / k;
    case RYZ_OP_ALL_GATHER:
    case RYZ_OP_REDUCE_SCATTER:
        return (double)(k - 1) / k;
    default:
        return 1.0;
    }
}
