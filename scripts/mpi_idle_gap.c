/* The experiment behind docs/comm.md, "Idle gaps": Open MPI alone (no ryz
 * code), 2 ranks exchanging 48 KiB with MPI_Sendrecv and reducing it with
 * an in-place MPI_Allreduce, each call after the calling ranks spun idle
 * (on MPI_Wtime, touching nothing) for a gap since their previous call.
 * Per gap: both ranks idle, then only rank 0 (rank 1 enters at once and
 * polls inside the call). Prints the last arriver's p50 per call (the
 * fastest rank's time), and with one idler the idler's own p50.
 * A benchmark, not a test: it reports.
 * usage: mpi_idle_gap [ITERS] (default 300; needs exactly 2 ranks) */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

enum { FLOATS = 12288, MAX_ITERS = 10000 };

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* p50 of v[0..n) in us (sorts v). */
static double p50_us(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp);
    return 1e6 * v[n / 2];
}

/* iters calls of op (0 sendrecv, 1 allreduce), each after idling `gap` s
 * when this rank idles; t gets this rank's call times. */
static void run(int op, double gap, int idles, int iters, float *buf, float *tmp, double *t) {
    int r, peer;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    peer = 1 - r;
    for (int i = 0; i < iters; i++) {
        double t0 = MPI_Wtime();
        while (idles && MPI_Wtime() - t0 < gap)
            ;
        double c0 = MPI_Wtime();
        if (op == 0)
            MPI_Sendrecv(buf, FLOATS, MPI_FLOAT, peer, 0, tmp, FLOATS, MPI_FLOAT, peer, 0,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        else
            MPI_Allreduce(MPI_IN_PLACE, buf, FLOATS, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t[i] = MPI_Wtime() - c0;
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int r, k, iters = argc > 1 ? atoi(argv[1]) : 300;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &k);
    if (k != 2 || iters < 1 || iters > MAX_ITERS) {
        if (r == 0)
            fprintf(stderr, "mpi_idle_gap: needs 2 ranks and ITERS in [1, %d]\n", MAX_ITERS);
        MPI_Finalize();
        return 2;
    }
    static const double gaps_us[] = {0, 300, 1000, 3000, 10000};
    static double t[MAX_ITERS], o[MAX_ITERS], last[MAX_ITERS];
    float *buf = calloc(FLOATS, sizeof *buf), *tmp = calloc(FLOATS, sizeof *tmp);
    if (r == 0) printf("%8s  %-9s  %-12s  %16s  %14s\n", "gap us", "op", "who idles",
                       "last-arriver p50", "idler's p50");
    for (int g = 0; g < 5; g++)
        for (int op = 0; op < 2; op++)
            for (int both = 1; both >= 0; both--) {
                run(op, 1e-6 * gaps_us[g], both || r == 0, iters, buf, tmp, t);
                MPI_Sendrecv(t, iters, MPI_DOUBLE, 1 - r, 1, o, iters, MPI_DOUBLE, 1 - r, 1,
                             MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                if (r != 0) continue;
                for (int i = 0; i < iters; i++) last[i] = t[i] < o[i] ? t[i] : o[i];
                double lp = p50_us(last, iters), own = p50_us(t, iters);
                printf("%8.0f  %-9s  %-12s  %13.1f us  %11.1f us\n", gaps_us[g],
                       op ? "allreduce" : "sendrecv", both ? "both" : "rank 0", lp, own);
            }
    free(buf), free(tmp);
    MPI_Finalize();
    return 0;
}
