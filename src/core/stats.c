/* Order statistics for timing samples, and how well ranks kept in step. */
#include <math.h>
#include <stdlib.h>

#include "ryz/core.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted x. */
static double pct(const double *x, size_t n, double p) {
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return x[i < n ? i : n - 1];
}

void ryz_stats_compute(double *x, size_t n, ryz_stats *out) {
    *out = (ryz_stats){0};
    if (n == 0) return;
    qsort(x, n, sizeof *x, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    out->median = n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
    out->p10 = pct(x, n, 0.10);
    out->p90 = pct(x, n, 0.90);
    out->p99 = pct(x, n, 0.99);
    out->mean = sum / (double)n;
    out->min = x[0];
    out->max = x[n - 1];
}

double ryz_stats_known_median(const double *x, size_t n) {
    double *v = malloc((n ? n : 1) * sizeof *v);
    size_t m = 0;
    for (size_t i = 0; v && i < n; i++)
        if (!isnan(x[i])) v[m++] = x[i];
    ryz_stats q;
    ryz_stats_compute(v, m, &q);
    free(v);
    return m ? q.median : NAN;
}

double ryz_lockstep_efficiency(const float *sec, int k, int steps) {
    double busy = 0, span = 0;
    for (int s = 0; s < steps; s++) {
        double sum = 0, slowest = 0;
        for (int i = 0; i < k; i++) {
            double t = sec[(size_t)i * (size_t)steps + (size_t)s];
            sum += t, slowest = fmax(slowest, t);
        }
        busy += sum / k, span += slowest;
    }
    return span > 0 ? busy / span : 0;
}
