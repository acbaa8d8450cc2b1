/* The experiment behind docs/performance.md, "Why the last arriver is
 * slower than ryz comm": the 110m decode's collectives (an in-place
 * all-reduce of 768 floats, every tenth call an all-gather of 32000 floats
 * in all) issued ITERS times with something between the calls, then
 * ryz_suite_collectives as the suite runs it (last arriver per call across
 * the ranks, and the same op and size alone with `ryz comm`'s harness, back
 * to back and after the same reads).
 * Between the calls, in turn: nothing; a barrier; 300 us of arithmetic
 * (no memory traffic); streaming 2 MiB (about L2); streaming 11 MiB (a
 * little more than the 4.5 or 9 MiB of weights a rank of the 110m model
 * reads between two all-reduces at TP 2).
 * A benchmark, not a test: it reports (rank 0 prints one line per mode and
 * collective).
 * usage: collective_gap [ITERS] (default 300) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "ryz/suite.h"

enum { AR_FLOATS = 768, AG_FLOATS = 32000, AG_EVERY = 10, SPIN_US = 300 };
#define STREAM_SMALL ((size_t)2 << 20)  /* bytes */
#define STREAM_LARGE ((size_t)11 << 20) /* bytes */
#define STREAM_POOL ((size_t)256 << 20) /* bytes cycled through, larger than L3 */

typedef enum { GAP_NONE, GAP_BARRIER, GAP_SPIN, GAP_STREAM_SMALL, GAP_STREAM_LARGE, GAP_COUNT } gap;
static const char *const GAP_NAMES[GAP_COUNT] = {"back-to-back", "barrier", "arithmetic-300us",
                                                 "stream-2MiB", "stream-11MiB"};

static volatile double sink;

/* n steps of register-only arithmetic. */
static void arith(long n) {
    double x = 1;
    for (long i = 0; i < n; i++)
        x = x * 1.0000001 + 1e-9;
    sink = x;
}

/* About `us` microseconds of arith (calibrated at the first call). */
static void spin(double us) {
    static double per_us = 0;
    if (per_us == 0) {
        double t0 = ryz_time_now();
        arith(10000000);
        per_us = 1e7 / (1e6 * (ryz_time_now() - t0));
    }
    arith((long)(us * per_us));
}

/* Reads `bytes` of pool starting at iteration it's slice (one word per
 * 64-byte line), so successive iterations stream different memory; counted
 * as a model's weights are, so the suite's reference replays the reads. */
static void stream(const float *pool, size_t bytes, int it) {
    ryz_streamed_add(bytes);
    size_t slices = STREAM_POOL / bytes;
    sink = (double)ryz_mem_read_lines(pool + (size_t)it % slices * (bytes / sizeof *pool), bytes);
}

static ryz_status between(ryz_comm *c, gap g, const float *pool, int it) {
    switch (g) {
    case GAP_BARRIER:
        return ryz_comm_barrier(c);
    case GAP_SPIN:
        spin(SPIN_US);
        break;
    case GAP_STREAM_SMALL:
        stream(pool, STREAM_SMALL, it);
        break;
    case GAP_STREAM_LARGE:
        stream(pool, STREAM_LARGE, it);
        break;
    default:
        break;
    }
    return RYZ_OK;
}

/* One mode: the calls, then the suite's statistics, printed by rank 0. */
static ryz_status run_mode(ryz_comm *c, gap g, int iters, const float *pool, float *x) {
    int k = ryz_comm_size(c), rank = ryz_comm_rank(c);
    ryz_status st = ryz_comm_barrier(c);
    ryz_comm_records_clear(c);
    for (int it = 0; st == RYZ_OK && it < iters; it++) {
        st = between(c, g, pool, it);
        if (st == RYZ_OK)
            st = ryz_comm_all_reduce_sum(c, x, x, AR_FLOATS);
        if (st == RYZ_OK && it % AG_EVERY == 0)
            st = ryz_comm_all_gather(c, x, x + AG_FLOATS, AG_FLOATS / (size_t)k);
    }
    ryz_results res;
    double comm_s;
    ryz_results_init(&res);
    if (st == RYZ_OK)
        st = ryz_suite_collectives(c, GAP_NAMES[g], 1, NULL, rank ? NULL : &res, &comm_s);
    for (size_t i = 0; st == RYZ_OK && i < res.n_collectives; i++) {
        const ryz_row_collective *r = &res.collectives[i];
        printf("%-17s %-10s %7llu B  p50 %7.1f  last %7.1f  wait %7.1f  isolated %6.1f us  "
               "last/isolated %5.2f  after %4.1f MiB read %6.1f us  last/that %5.2f\n",
               GAP_NAMES[g], r->op, (unsigned long long)r->bytes, r->p50_us, r->p50_last_us,
               r->wait_p50_us, r->isolated_p50_us, r->last_over_isolated,
               r->streamed_bytes / 1048576.0, r->isolated_evict_p50_us, r->last_over_evict);
    }
    ryz_results_free(&res);
    return st;
}

int main(int argc, char **argv) {
    ryz_comm *c = NULL;
    int iters = argc > 1 ? atoi(argv[1]) : 300;
    float *pool = ryz_alloc_stream(STREAM_POOL), *x = NULL;
    ryz_status st = pool && iters > 0 ? ryz_mpi_init(&argc, &argv) : RYZ_EINVAL;
    if (st == RYZ_OK)
        st = ryz_comm_init_mpi_world(&c);
    if (st == RYZ_OK && !(x = calloc(2 * AG_FLOATS, sizeof *x)))
        st = RYZ_ENOMEM;
    for (size_t i = 0; st == RYZ_OK && i < STREAM_POOL / sizeof *pool; i++)
        pool[i] = (float)i;
    for (int g = 0; st == RYZ_OK && g < GAP_COUNT; g++)
        st = run_mode(c, (gap)g, iters, pool, x);
    if (st != RYZ_OK)
        fprintf(stderr, "collective_gap: %s\n", ryz_last_error());
    free(x);
    free(pool);
    ryz_comm_free(c);
    ryz_mpi_finalize();
    return st == RYZ_OK ? 0 : 1;
}
