/* The collective benchmark harness, in nccl-tests' shape: the harness owns
 * the sweep, rank agreement, data fill and check, timing and cross-rank
 * statistics; each collective is one entry of `colls` that says how its
 * size splits into buffers, how to run it and what each output must be. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* ---- the collectives ---------------------------------------------------- */

/* Element i of rank r's input: a small integer (-8..8), so any sum over up
 * to 2^20 ranks is exact in float32 whatever the reduction order. */
static float input_value(int r, size_t i) {
    return (float)((int)((i * 7 + (size_t)r * 3) % 17) - 8);
}

/* Sum over ranks 0..k-1 of element i. */
static float input_sum(int k, size_t i) {
    float s = 0;
    for (int r = 0; r < k; r++)
        s += input_value(r, i);
    return s;
}

typedef struct {
    ryz_comm_op op;
    const char *flag;  /* --op value */
    const char *redop; /* "sum" or "none" */
    int root;          /* -1, or the root rank */
    int split;         /* 1: a buffer is the size divided by k (multiple of 4k) */
    int in_place;      /* 1: ryz_comm can express the in-place form */
    /* Floats in the send and recv buffers and the count argument, for a
     * size of n floats on k ranks. */
    void (*counts)(size_t n, int k, size_t *send, size_t *recv, size_t *param);
    ryz_status (*run)(ryz_comm *c, float *send, float *recv, size_t param, int root);
    /* What output element i must be on `rank` of k. */
    float (*expect)(int rank, int k, size_t i, size_t param, int root);
} coll;

static void counts_whole(size_t n, int k, size_t *send, size_t *recv, size_t *param) {
    (void)k;
    *send = *recv = *param = n;
}

static void counts_gather(size_t n, int k, size_t *send, size_t *recv, size_t *param) {
    *send = *param = n / (size_t)k;
    *recv = n;
}

static void counts_scatter(size_t n, int k, size_t *send, size_t *recv, size_t *param) {
    *send = n;
    *recv = *param = n / (size_t)k;
}

static ryz_status run_all_reduce(ryz_comm *c, float *send, float *recv, size_t n, int root) {
    (void)root;
    return ryz_comm_all_reduce_sum(c, send, recv, n);
}

static ryz_status run_all_gather(ryz_comm *c, float *send, float *recv, size_t n, int root) {
    (void)root;
    return ryz_comm_all_gather(c, send, recv, n);
}

static ryz_status run_reduce_scatter(ryz_comm *c, float *send, float *recv, size_t n, int root) {
    (void)root;
    return ryz_comm_reduce_scatter(c, send, recv, n);
}

/* Out of place the root sends from its input buffer and the others receive
 * into their output buffer; in place (send == recv) both are one buffer. */
static ryz_status run_broadcast(ryz_comm *c, float *send, float *recv, size_t n, int root) {
    float *buf = ryz_comm_rank(c) == root ? send : recv;
    return ryz_comm_broadcast(c, buf, n * sizeof(float), root);
}

static float expect_all_reduce(int rank, int k, size_t i, size_t n, int root) {
    (void)rank, (void)n, (void)root;
    return input_sum(k, i);
}

static float expect_all_gather(int rank, int k, size_t i, size_t n, int root) {
    (void)rank, (void)k, (void)root;
    return input_value((int)(i / n), i % n);
}

static float expect_reduce_scatter(int rank, int k, size_t i, size_t n, int root) {
    (void)root;
    return input_sum(k, (size_t)rank * n + i);
}

static float expect_broadcast(int rank, int k, size_t i, size_t n, int root) {
    (void)rank, (void)k, (void)n;
    return input_value(root, i);
}

/* all_gather and reduce_scatter in place would alias the input with this
 * rank's slot of the output, which the ryz_comm API cannot say (only
 * all_reduce maps send == recv to MPI_IN_PLACE): their in-place column is
 * n/a. */
static const coll colls[] = {
    {.op = RYZ_OP_ALL_REDUCE,
     .flag = "allreduce",
     .redop = "sum",
     .root = -1,
     .split = 0,
     .in_place = 1,
     .counts = counts_whole,
     .run = run_all_reduce,
     .expect = expect_all_reduce},
    {.op = RYZ_OP_ALL_GATHER,
     .flag = "allgather",
     .redop = "none",
     .root = -1,
     .split = 1,
     .in_place = 0,
     .counts = counts_gather,
     .run = run_all_gather,
     .expect = expect_all_gather},
    {.op = RYZ_OP_REDUCE_SCATTER,
     .flag = "reducescatter",
     .redop = "sum",
     .root = -1,
     .split = 1,
     .in_place = 0,
     .counts = counts_scatter,
     .run = run_reduce_scatter,
     .expect = expect_reduce_scatter},
    {.op = RYZ_OP_BROADCAST,
     .flag = "broadcast",
     .redop = "none",
     .root = 0,
     .split = 0,
     .in_place = 1,
     .counts = counts_whole,
     .run = run_broadcast,
     .expect = expect_broadcast},
};
enum { N_COLLS = sizeof colls / sizeof colls[0] };

/* The entry of op (which must be one of the four). */
static const coll *coll_of(ryz_comm_op op) {
    for (int i = 0; i < N_COLLS; i++)
        if (colls[i].op == op)
            return &colls[i];
    RYZ_ASSERT(!"not a benchmarked collective");
    return NULL;
}

const char *bench_redop(ryz_comm_op op) {
    return coll_of(op)->redop;
}

/* ---- sizes and bandwidth ------------------------------------------------ */

ryz_status ryz_bench_parse_size(const char *opt, const char *text, uint64_t *out) {
    if (!text || !*text)
        return ryz_error(RYZ_EINVAL, "%s needs a size (e.g. 8, 64K, 4M, 1G)", opt);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    const char *digits_end = end;
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (errno || digits_end == text || *end || text[0] < '0' || text[0] > '9')
        return ryz_error(RYZ_EINVAL, "%s '%s' is not a size (N, NK, NM or NG; K = 1024)", opt,
                         text);
    if (v > (RYZ_BENCH_MAX_BYTES >> shift))
        return ryz_error(RYZ_EINVAL, "%s '%s' is above the largest size, 4G", opt, text);
    *out = (uint64_t)v << shift;
    return RYZ_OK;
}

ryz_status ryz_bench_parse_ops(const char *text, unsigned *mask) {
    *mask = 0;
    if (text && !strcmp(text, "all")) {
        for (int i = 0; i < N_COLLS; i++)
            *mask |= 1u << colls[i].op;
        return RYZ_OK;
    }
    for (int i = 0; text && i < N_COLLS; i++)
        if (!strcmp(text, colls[i].flag))
            *mask = 1u << colls[i].op;
    if (*mask)
        return RYZ_OK;
    return ryz_error(RYZ_EINVAL,
                     "--op '%s': expected allreduce, allgather, reducescatter, broadcast or all",
                     text ? text : "");
}

double ryz_bench_algbw_gbs(uint64_t bytes, double seconds) {
    return seconds > 0 ? (double)bytes / seconds / 1e9 : 0;
}

uint64_t ryz_bench_round_bytes(ryz_comm_op op, uint64_t bytes, int k) {
    uint64_t unit = sizeof(float) * (coll_of(op)->split ? (uint64_t)k : 1);
    return bytes / unit * unit;
}

size_t ryz_bench_sizes(ryz_comm_op op, uint64_t min, uint64_t max, int factor, int k, uint64_t *out,
                       size_t cap) {
    size_t n = 0;
    uint64_t last = 0;
    for (uint64_t s = min ? min : 1; s <= max; s *= (uint64_t)factor) {
        uint64_t b = ryz_bench_round_bytes(op, s, k);
        if (b && b != last) {
            if (n < cap)
                out[n] = b;
            n++;
            last = b;
        }
        if (s > max / (uint64_t)factor)
            break;
    }
    return n;
}

/* ---- the harness -------------------------------------------------------- */

enum { MAX_SIZES = 64, KEY_FLOATS = 8 };

typedef struct {
    ryz_comm *c;
    const ryz_bench_opts *o;
    int rank, k;
    float *send, *recv; /* sized for the largest size of the run */
    float *mine, *all;  /* 2 + iters floats, and k times that, for statistics */
    float *keys;        /* k * KEY_FLOATS for the agreement */
    bench_rank_info *ranks; /* k, for the header */
    float *next_samples;    /* where the next placement's samples go in the report's block */
    double *scratch;    /* iters doubles for percentiles */
    int evicting;       /* evict_bytes, evict_each or gap_s given: latency is the
                           fastest rank's */
    float *pool;        /* what the evictions read (NULL when none reads anything) */
    size_t pool_floats; /* its size */
    size_t pool_at;     /* where the next eviction starts reading */
} harness;

/* What every rank must agree on before a size; 32 bytes, sent as floats.
 * The bytes each rank evicts are its own; whether they evict is not, nor
 * is --gap (gap_us; 0 with per-call gaps, which are each rank's own). */
typedef struct {
    uint32_t op, iters, warmup, check, evicting, gap_us;
    uint64_t bytes;
} agree_key;
_Static_assert(sizeof(agree_key) == KEY_FLOATS * sizeof(float), "agree_key is 8 floats");

/* Formats a key as "all_reduce of 8 bytes (-n 20 -w 5 -c 1)", or "the end
 * of the sweep (-n 20 -w 5 -c 1 --evict/--gap)". */
static void key_text(const agree_key *k, char *buf, size_t cap) {
    char what[64] = "the end of the sweep";
    if (k->op != RYZ_OP_COUNT)
        snprintf(what, sizeof what, "%s of %llu bytes", ryz_comm_op_name((ryz_comm_op)k->op),
                 (unsigned long long)k->bytes);
    char gap[32] = "";
    if (k->gap_us)
        snprintf(gap, sizeof gap, " --gap %u", k->gap_us);
    snprintf(buf, cap, "%s (-n %u -w %u -c %u%s%s)", what, k->iters, k->warmup, k->check,
             k->evicting ? " --evict/--gap" : "", gap);
}

/* All ranks exchange their next (op, bytes, iters, warmup, check,
 * evicting) in one all_gather of equal size on every rank, so a rank that
 * differs cannot leave the others waiting; any difference is EINVAL on
 * every rank, naming rank 0's value and the first differing rank's. op
 * RYZ_OP_COUNT marks the end of the sweep (a rank with more sizes than the
 * others is caught too). */
static ryz_status agree(harness *h, uint32_t op, uint64_t bytes) {
    agree_key first, other;
    agree_key mine = {.op = op,
                      .iters = (uint32_t)h->o->iters,
                      .warmup = (uint32_t)h->o->warmup,
                      .check = (uint32_t)h->o->check,
                      .evicting = (uint32_t)h->evicting,
                      .gap_us = h->o->gap_each ? 0 : (uint32_t)(1e6 * h->o->gap_s + 0.5),
                      .bytes = bytes};
    float buf[KEY_FLOATS];
    memcpy(buf, &mine, sizeof mine);
    ryz_status st = ryz_comm_all_gather(h->c, buf, h->keys, KEY_FLOATS);
    if (st != RYZ_OK)
        return st;
    memcpy(&first, h->keys, sizeof first);
    for (int r = 1; r < h->k; r++) {
        memcpy(&other, h->keys + (size_t)r * KEY_FLOATS, sizeof other);
        if (!memcmp(&first, &other, sizeof first))
            continue;
        char a[128], b[128];
        key_text(&first, a, sizeof a);
        key_text(&other, b, sizeof b);
        return ryz_error(RYZ_EINVAL,
                         "ranks disagree on the next collective: rank 0 has %s, rank %d has %s "
                         "(every rank must be given the same options)",
                         a, r, b);
    }
    return RYZ_OK;
}

/* Fills this rank's input, poisons the output with NaN (so an output the
 * collective did not write counts as wrong) and, in place, copies the
 * input into the output buffer. */
static void prepare(harness *h, size_t send, size_t recv, int in_place) {
    for (size_t i = 0; i < send; i++)
        h->send[i] = input_value(h->rank, i);
    for (size_t i = 0; i < recv; i++)
        h->recv[i] = NAN;
    if (in_place)
        memcpy(h->recv, h->send, send * sizeof(float));
}

/* Output elements of this rank that differ from what e must produce. The
 * root of a rooted op out of place keeps its result in its input buffer. */
static int64_t count_wrong(const harness *h, const coll *e, size_t recv, size_t param,
                           int in_place) {
    const float *out = e->root == h->rank && !in_place ? h->send : h->recv;
    int64_t wrong = 0;
    for (size_t i = 0; i < recv; i++)
        if (out[i] != e->expect(h->rank, h->k, i, param, e->root))
            wrong++;
    return wrong;
}

/* -c: one untimed call on freshly prepared data; *wrong counts this rank's
 * wrong elements (-1 without -c). */
static ryz_status check_once(harness *h, const coll *e, size_t s, size_t r, size_t p, int ip,
                             int64_t *wrong) {
    *wrong = -1;
    prepare(h, s, r, ip);
    if (!h->o->check)
        return RYZ_OK;
    float *send = ip ? h->recv : h->send;
    ryz_status st = e->run(h->c, send, h->recv, p, e->root);
    if (st == RYZ_OK)
        *wrong = count_wrong(h, e, r, p, ip);
    return st;
}

/* ---- --evict ---------------------------------------------------------- */

#define EVICT_LLC_GUESS ((uint64_t)32 << 20) /* when sysfs does not say */

/* The last-level cache's size in bytes, from sysfs (cpuid's figure in a VM
 * can be the host's), or EVICT_LLC_GUESS. */
static uint64_t llc_bytes(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
    unsigned long long n = 0;
    char unit = 0;
    int got = f ? fscanf(f, "%llu%c", &n, &unit) : 0;
    if (f)
        fclose(f);
    if (got < 1 || n == 0)
        return EVICT_LLC_GUESS;
    return n << (unit == 'K' ? 10 : unit == 'M' ? 20 : 0);
}

/* Bytes timed call i of a batch reads first. */
static uint64_t evict_of(const ryz_bench_opts *o, int i) {
    if (o->n_evict_each == 0)
        return o->evict_bytes;
    return o->evict_each[(size_t)i * o->n_evict_each / (size_t)o->iters];
}

/* The most any call reads first (0: no eviction). */
static uint64_t evict_most(const ryz_bench_opts *o) {
    uint64_t most = o->evict_bytes;
    for (size_t i = 0; i < o->n_evict_each; i++)
        most = o->evict_each[i] > most ? o->evict_each[i] : most;
    return most;
}

uint64_t ryz_bench_evict_enough(void) {
    return 2 * llc_bytes();
}

/* The eviction pool: twice the most bytes a call reads or twice the
 * last-level cache, whichever is more, read in turn, so each eviction
 * reads memory that has left every cache since its last read, as a decode
 * step reads weights it last read a token ago. Touched here, not while
 * timed. */
static ryz_status evict_alloc(harness *h) {
    uint64_t per = evict_most(h->o), llc = llc_bytes();
    if (per > RYZ_BENCH_MAX_BYTES) /* evict_each: this rank's own figures */
        return ryz_error(RYZ_EINVAL, "comm: an eviction of %llu bytes (at most 4G)",
                         (unsigned long long)per);
    size_t bytes = (size_t)(2 * (per > llc ? per : llc));
    h->pool = ryz_alloc_stream(bytes);
    if (!h->pool)
        return ryz_error(RYZ_ENOMEM, "out of memory for --evict's %zu MiB pool", bytes >> 20);
    memset(h->pool, 0, bytes);
    h->pool_floats = bytes / sizeof(float);
    return RYZ_OK;
}

static volatile uint64_t evict_sink;

/* Reads the pool's next `bytes` (ryz_mem_read_lines), wrapping at its
 * end. */
static void evict_caches(harness *h, uint64_t bytes) {
    size_t left = (size_t)bytes, pool = h->pool_floats * sizeof(float);
    while (left > 0) {
        size_t at = h->pool_at * sizeof(float), n = pool - at < left ? pool - at : left;
        evict_sink += ryz_mem_read_lines(h->pool + h->pool_at, n);
        left -= n;
        h->pool_at = (at + n) % pool / sizeof(float);
    }
}

/* The idle time before timed call i: gap_each's entry, or gap_s. */
static double gap_of(const ryz_bench_opts *o, int i) {
    if (o->gap_each && o->n_evict_each > 0)
        return o->gap_each[(size_t)i * o->n_evict_each / (size_t)o->iters];
    return o->gap_s;
}

/* Warm-up, then one timed batch after a barrier, each timed call after an
 * eviction with --evict and no sooner than its gap after the previous
 * call's end with --gap. h->mine gets the batch wall time per iteration
 * (us) in [0] and each call's time (us, from the profiler's records) in
 * [2..]. */
static ryz_status time_batch(harness *h, const coll *e, size_t s, size_t p, int ip) {
    float *send = ip ? h->recv : h->send;
    ryz_status st = RYZ_OK;
    for (int i = 0; st == RYZ_OK && i < h->o->warmup; i++)
        st = e->run(h->c, send, h->recv, p, e->root);
    if (st == RYZ_OK)
        st = ryz_comm_barrier(h->c);
    if (st != RYZ_OK)
        return st;
    ryz_comm_records_clear(h->c);
    double t0 = ryz_time_now(), prev_end = t0;
    for (int i = 0; st == RYZ_OK && i < h->o->iters; i++) {
        if (h->pool) {
            evict_caches(h, evict_of(h->o, i));
            memset(send, 0, s * sizeof *send); /* just written, as a model's output is */
        }
        for (double until = prev_end + gap_of(h->o, i); ryz_time_now() < until;)
            ; /* busy, as a model computing is: no core given up */
        st = e->run(h->c, send, h->recv, p, e->root);
        prev_end = ryz_time_now();
    }
    double wall = ryz_time_now() - t0;
    if (st != RYZ_OK)
        return st;
    RYZ_ASSERT(ryz_comm_record_count(h->c) == (size_t)h->o->iters);
    h->mine[0] = (float)(1e6 * wall / h->o->iters);
    for (int i = 0; i < h->o->iters; i++)
        h->mine[2 + i] = (float)(1e6 * ryz_comm_record_at(h->c, (size_t)i)->seconds);
    return RYZ_OK;
}

/* Gathers every rank's h->mine and fills res: time averaged over ranks,
 * wrong summed, each iteration's latency the slowest rank's. With --evict
 * a latency is the fastest rank's (the last to arrive: the ranks finish
 * their evictions at different times, and the others' wait is not the
 * collective's) and time their mean (the wall time holds the evictions). */
static ryz_status combine(harness *h, ryz_comm_op op, uint64_t bytes, ryz_bench_result *res) {
    int n = h->o->iters, stride = 2 + n;
    ryz_status st = ryz_comm_all_gather(h->c, h->mine, h->all, (size_t)stride);
    if (st != RYZ_OK)
        return st;
    res->samples_us = h->next_samples;
    h->next_samples += n;
    double t = 0, wrong = 0, sum = 0;
    for (int r = 0; r < h->k; r++)
        t += h->all[r * stride], wrong += h->all[r * stride + 1];
    for (int i = 0; i < n; i++) {
        float v = h->all[2 + i];
        for (int r = 1; r < h->k; r++) {
            float u = h->all[r * stride + 2 + i];
            v = h->evicting ? fminf(v, u) : fmaxf(v, u);
        }
        res->samples_us[i] = v;
        h->scratch[i] = v;
        sum += v;
    }
    ryz_stats s;
    ryz_stats_compute(h->scratch, (size_t)n, &s);
    res->ran = 1;
    res->n_samples = (size_t)n;
    res->time_us = h->evicting ? sum / n : t / h->k;
    res->wrong = h->o->check ? (int64_t)wrong : -1;
    res->p50_us = s.median, res->p99_us = s.p99;
    res->algbw_gbs = ryz_bench_algbw_gbs(bytes, 1e-6 * res->time_us);
    res->busbw_gbs = res->algbw_gbs * ryz_comm_busbw_factor(op, h->k);
    return RYZ_OK;
}

/* One placement (0 out of place, 1 in place) of one size. */
static ryz_status bench_place(harness *h, const coll *e, uint64_t bytes, int ip,
                              ryz_bench_result *res) {
    size_t s, r, p;
    e->counts(bytes / sizeof(float), h->k, &s, &r, &p);
    int64_t wrong;
    ryz_status st = check_once(h, e, s, r, p, ip, &wrong);
    if (st == RYZ_OK)
        st = time_batch(h, e, s, p, ip);
    if (st != RYZ_OK)
        return st;
    h->mine[1] = (float)(wrong > 0 ? wrong : 0);
    return combine(h, e->op, bytes, res);
}

/* The sizes of op on this rank, the test-only skew added. */
static size_t op_sizes(const harness *h, ryz_comm_op op, uint64_t *sizes) {
    const ryz_bench_opts *o = h->o;
    size_t n = ryz_bench_sizes(op, o->min_bytes, o->max_bytes, o->factor, h->k, sizes, MAX_SIZES);
    if (n > MAX_SIZES)
        n = MAX_SIZES;
    for (size_t i = 0; i < n; i++)
        sizes[i] += o->size_skew;
    return n;
}

/* The sweep of one op: agree, measure both placements, print. */
static ryz_status bench_op(harness *h, const coll *e, ryz_bench_report *out) {
    uint64_t sizes[MAX_SIZES];
    size_t n = op_sizes(h, e->op, sizes);
    FILE *f = h->rank == 0 ? h->o->out : NULL;
    if (n == 0) { /* every rank computes the same sizes: all skip, or all stop */
        char why[160];
        snprintf(why, sizeof why, "no size from -b %llu to -e %llu holds a whole %s buffer (%d "
                 "bytes on %d ranks)", (unsigned long long)h->o->min_bytes,
                 (unsigned long long)h->o->max_bytes, ryz_comm_op_name(e->op),
                 (int)sizeof(float) * (e->split ? h->k : 1), h->k);
        if (h->o->ops == 1u << e->op) /* the only op asked for: nothing would be measured */
            return ryz_error(RYZ_EINVAL, "comm: %s; raise -e", why);
        if (f)
            fprintf(f, "# %s: skipped\n", why);
        return RYZ_OK;
    }
    if (f)
        bench_print_table_head(f, e->op);
    ryz_status st = RYZ_OK;
    for (size_t i = 0; st == RYZ_OK && i < n; i++) {
        st = agree(h, e->op, sizes[i]);
        if (st != RYZ_OK)
            break;
        RYZ_ASSERT(out->n_rows < out->cap_rows); /* sized by sweep_extent */
        ryz_bench_row *row = &out->rows[out->n_rows++];
        size_t s, r, p;
        e->counts(sizes[i] / sizeof(float), h->k, &s, &r, &p);
        *row = (ryz_bench_row){.op = e->op, .bytes = sizes[i], .count = p, .root = e->root};
        for (int ip = 0; st == RYZ_OK && ip < 2; ip++)
            if (ip == 0 || e->in_place)
                st = bench_place(h, e, sizes[i], ip, &row->place[ip]);
        if (st == RYZ_OK && f)
            bench_print_row(f, row);
    }
    return st;
}

/* Floats the largest buffer of the run needs; *rows: the rows of its
 * sweep on this rank. */
static size_t sweep_extent(const harness *h, size_t *rows) {
    size_t most = 1;
    *rows = 0;
    for (int i = 0; i < N_COLLS; i++) {
        if (!(h->o->ops & (1u << colls[i].op)))
            continue;
        uint64_t sizes[MAX_SIZES];
        size_t n = op_sizes(h, colls[i].op, sizes);
        *rows += n;
        for (size_t j = 0; j < n; j++) {
            size_t s, r, p;
            colls[i].counts(sizes[j] / sizeof(float), h->k, &s, &r, &p);
            most = s > most ? s : most;
            most = r > most ? r : most;
        }
    }
    return most;
}

/* Gathers every rank's pid and hostname: rank 0 prints the header, every
 * rank keeps the distinct hostnames in out->hosts (allocated, empty, by
 * harness_alloc). */
static ryz_status gather_ranks(harness *h, ryz_bench_report *out) {
    bench_rank_info mine = {.pid = (int32_t)getpid()}, *all = h->ranks;
    gethostname(mine.host, sizeof mine.host - 1);
    ryz_status st = ryz_comm_all_gather(h->c, (const float *)(const void *)&mine, (float *)all,
                                        sizeof mine / sizeof(float));
    for (int r = 0; st == RYZ_OK && r < h->k; r++) {
        all[r].host[sizeof all[r].host - 1] = '\0';
        if (strstr(out->hosts, all[r].host))
            continue;
        if (*out->hosts)
            strcat(out->hosts, ",");
        strcat(out->hosts, all[r].host);
    }
    if (st == RYZ_OK && h->rank == 0 && h->o->out)
        bench_print_header(h->o->out, h->o, out->backend, all, h->k);
    return st;
}

/* Allocates every buffer of the run, the report's rows and samples among
 * them, so that nothing after the setup's agreement can fail on one rank
 * alone (ENOMEM naming the sizes). */
static ryz_status harness_alloc(harness *h, ryz_bench_report *out) {
    size_t rows, n = sweep_extent(h, &rows), stride = 2 + (size_t)h->o->iters;
    size_t k = (size_t)h->k;
    h->keys = malloc(k * KEY_FLOATS * sizeof(float));
    h->send = malloc(n * sizeof(float));
    h->recv = malloc(n * sizeof(float));
    h->mine = malloc(stride * sizeof(float));
    h->all = malloc(k * stride * sizeof(float));
    h->scratch = malloc(stride * sizeof(double));
    h->ranks = calloc(k, sizeof *h->ranks);
    out->hosts = calloc(k, sizeof h->ranks->host + 1);
    out->rows = calloc(rows + 1, sizeof *out->rows);
    out->cap_rows = rows;
    out->samples = malloc((2 * rows * (size_t)h->o->iters + 1) * sizeof(float));
    h->next_samples = out->samples;
    if (h->o->starve || !h->keys || !h->send || !h->recv || !h->mine || !h->all ||
        !h->scratch || !h->ranks || !out->hosts || !out->rows || !out->samples)
        return ryz_error(RYZ_ENOMEM,
                         "out of memory for two buffers of %zu bytes and %zu rows of %d samples",
                         n * sizeof(float), rows, h->o->iters);
    return evict_most(h->o) ? evict_alloc(h) : RYZ_OK;
}

static void harness_free(harness *h) {
    free(h->send), free(h->recv), free(h->mine), free(h->all), free(h->keys), free(h->scratch);
    free(h->ranks), free(h->pool);
}

/* Average busbw over every placement run, and the total of wrong elements. */
static void summarize(ryz_bench_report *r, int check) {
    double sum = 0;
    int n = 0;
    r->wrong = check ? 0 : -1;
    for (size_t i = 0; i < r->n_rows; i++)
        for (int ip = 0; ip < 2; ip++) {
            const ryz_bench_result *p = &r->rows[i].place[ip];
            if (!p->ran)
                continue;
            sum += p->busbw_gbs, n++;
            if (check)
                r->wrong += p->wrong;
        }
    r->avg_busbw_gbs = n ? sum / n : 0;
}

/* Ranks a rank without h->keys can still agree with, from the stack. */
enum { SETUP_STACK_RANKS = 256 };

/* Every rank learns whether all set up (options, buffers) before the
 * first exchange, since a rank's evict pool is sized by its own reads and
 * a rank that failed alone would leave the others waiting there: one
 * float each, all-gathered into h->keys, or the stack where even that
 * allocation failed (up to SETUP_STACK_RANKS ranks; an all-gather, as
 * agree()'s, so the all-reduce fault hook cannot touch it). Returns st,
 * or on a rank that set up, EINVAL when another did not. */
static ryz_status agree_setup(harness *h, ryz_status st) {
    float bad = st != RYZ_OK, stack[SETUP_STACK_RANKS];
    float *all = h->keys ? h->keys : h->k <= SETUP_STACK_RANKS ? stack : NULL;
    if (!all)
        return st != RYZ_OK ? st : ryz_error(RYZ_ENOMEM, "out of memory for the agreement");
    ryz_status cs = ryz_comm_all_gather(h->c, &bad, all, 1);
    if (st != RYZ_OK || cs != RYZ_OK)
        return st != RYZ_OK ? st : cs;
    int others = 0;
    for (int r = 0; r < h->k; r++)
        others += all[r] != 0;
    if (others > 0)
        return ryz_error(RYZ_EINVAL, "comm: %d other rank(s) could not set up the benchmark",
                         others);
    return RYZ_OK;
}

/* Options the harness cannot run with (the CLI checks them first too). */
static ryz_status check_opts(const ryz_bench_opts *o) {
    if (!o->ops || o->factor < 2 || o->iters < 1 || o->iters > RYZ_BENCH_MAX_ITERS ||
        o->warmup < 0 || o->min_bytes > o->max_bytes || o->max_bytes > RYZ_BENCH_MAX_BYTES ||
        o->evict_bytes > RYZ_BENCH_MAX_BYTES ||
        !(o->gap_s >= 0 && o->gap_s <= RYZ_BENCH_MAX_GAP_S))
        return ryz_error(RYZ_EINVAL,
                         "comm: bad benchmark options (ops, -f >= 2, -n in [1, %d], "
                         "-w >= 0, -b <= -e <= 4G, --evict <= 4G, --gap in [0, 1 s])",
                         RYZ_BENCH_MAX_ITERS);
    return RYZ_OK;
}

ryz_status ryz_bench_run(ryz_comm *c, const ryz_bench_opts *o, ryz_bench_report *out) {
    memset(out, 0, sizeof *out);
    out->world = ryz_comm_size(c);
    snprintf(out->backend, sizeof out->backend, "%s", ryz_comm_name(c));
    harness h = {.c = c,
                 .o = o,
                 .rank = ryz_comm_rank(c),
                 .k = ryz_comm_size(c),
                 .evicting = o->evict_bytes > 0 || o->n_evict_each > 0 || o->gap_s > 0};
    ryz_status st = check_opts(o);
    if (st != RYZ_OK) /* the options every rank is given alike */
        return st;
    st = agree_setup(&h, harness_alloc(&h, out));
    if (st == RYZ_OK)
        st = gather_ranks(&h, out);
    for (int i = 0; st == RYZ_OK && i < N_COLLS; i++)
        if (o->ops & (1u << colls[i].op))
            st = bench_op(&h, &colls[i], out);
    if (st == RYZ_OK)
        st = agree(&h, RYZ_OP_COUNT, 0);
    if (st == RYZ_OK)
        summarize(out, o->check);
    if (st == RYZ_OK && h.rank == 0 && o->out)
        bench_print_footer(o->out, out);
    harness_free(&h);
    return st;
}

void ryz_bench_report_free(ryz_bench_report *r) {
    if (!r)
        return;
    free(r->samples);
    free(r->rows);
    free(r->hosts);
    memset(r, 0, sizeof *r);
}
