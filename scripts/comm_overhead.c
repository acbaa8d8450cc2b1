/* The wrapper-overhead benchmark behind scripts/bench-comm.sh: in one MPI
 * job, alternating repetitions of
 *   bare: MPI_Allreduce in a loop, timed as `ryz comm` times its calls
 *         (warm-up, barrier, two CLOCK_MONOTONIC reads per call, a call's
 *         latency the slowest rank's, mean = batch wall / calls);
 *   ryz:  the `ryz comm` harness itself (ryz_bench_run, all_reduce, -c 0)
 *         on the MPI world, through the vtable and profiling wrapper;
 * then per size the medians over repetitions and the ratios ryz / bare.
 * The verdict uses the p50 ratio: per-call medians are what the wrapper
 * changes; batch means also carry every preemption of a busy machine.
 * Same process, same buffers' sizes, same MPI thread level: what differs
 * is ryz's code. A benchmark, not a test (it lives in scripts/, and is the
 * one place besides src/comm that includes mpi.h, to have a baseline).
 * usage: comm_overhead ITERS WARMUP REPS BYTES... (rank 0 prints) */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "ryz/bench.h"

enum { MAX_REPS = 64 };

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts x). */
static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* One bare batch: p50 (slowest rank per call) and mean per call, in us. */
static void bare(int bytes, int iters, int warmup, double *p50, double *mean) {
    int n = bytes / 4, k;
    MPI_Comm_size(MPI_COMM_WORLD, &k);
    float *send = calloc((size_t)n + 1, 4), *recv = calloc((size_t)n + 1, 4);
    double *t = malloc((size_t)iters * sizeof *t), *all = malloc((size_t)iters * k * sizeof *all);
    for (int i = 0; i < warmup; i++)
        MPI_Allreduce(send, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = ryz_time_now();
    for (int i = 0; i < iters; i++) {
        double c0 = ryz_time_now();
        MPI_Allreduce(send, recv, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[i] = ryz_time_now() - c0;
    }
    double m = (ryz_time_now() - t0) / iters, msum;
    MPI_Allgather(t, iters, MPI_DOUBLE, all, iters, MPI_DOUBLE, MPI_COMM_WORLD);
    MPI_Allreduce(&m, &msum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (int i = 0; i < iters; i++)
        for (int r = 1; r < k; r++)
            if (all[(size_t)r * iters + i] > all[i])
                all[i] = all[(size_t)r * iters + i];
    *p50 = 1e6 * median(all, iters);
    *mean = 1e6 * msum / k;
    free(send), free(recv), free(t), free(all);
}

/* One `ryz comm` run at one size: out-of-place p50 and mean time, in us. */
static int ryz(ryz_comm *c, int bytes, int iters, int warmup, double *p50, double *mean) {
    ryz_bench_opts o = {.ops = 1u << RYZ_OP_ALL_REDUCE,
                        .min_bytes = (uint64_t)bytes,
                        .max_bytes = (uint64_t)bytes,
                        .factor = 2,
                        .iters = iters,
                        .warmup = warmup};
    ryz_bench_report rep;
    ryz_status st = ryz_bench_run(c, &o, &rep);
    if (st == RYZ_OK && rep.n_rows == 1)
        *p50 = rep.rows[0].place[0].p50_us, *mean = rep.rows[0].place[0].time_us;
    ryz_bench_report_free(&rep);
    return st == RYZ_OK ? 0 : -1;
}

int main(int argc, char **argv) {
    ryz_comm *c = NULL;
    if (argc < 5 || ryz_mpi_init(&argc, &argv) != RYZ_OK || ryz_comm_init_mpi_world(&c) != RYZ_OK) {
        fprintf(stderr, "usage: comm_overhead ITERS WARMUP REPS BYTES... (under mpirun)\n");
        return 2;
    }
    int iters = atoi(argv[1]), warmup = atoi(argv[2]), reps = atoi(argv[3]);
    int rank = ryz_comm_rank(c), bad = reps < 1 || reps > MAX_REPS;
    for (int s = 4; !bad && s < argc; s++) {
        int bytes = atoi(argv[s]);
        double bp[MAX_REPS], bm[MAX_REPS], rp[MAX_REPS], rm[MAX_REPS];
        for (int r = 0; !bad && r < reps; r++) { /* interleaved: the order flips each rep */
            if (r % 2)
                bad |= ryz(c, bytes, iters, warmup, &rp[r], &rm[r]);
            bare(bytes, iters, warmup, &bp[r], &bm[r]);
            if (!(r % 2))
                bad |= ryz(c, bytes, iters, warmup, &rp[r], &rm[r]);
        }
        if (bad || rank)
            continue;
        double b50 = median(bp, reps), r50 = median(rp, reps), bmean = median(bm, reps),
               rmean = median(rm, reps);
        printf("%10d  %12.3f %12.3f  %12.3f %12.3f  %9.3f %10.3f  %s\n", bytes, b50, r50, bmean,
               rmean, r50 / b50, rmean / bmean, r50 / b50 <= 1.10 ? "OK" : "OVER");
        fflush(stdout);
    }
    if (bad && rank == 0)
        fprintf(stderr, "comm_overhead: failed: %s\n", ryz_last_error());
    ryz_comm_free(c);
    ryz_mpi_finalize();
    return bad ? 1 : 0;
}
