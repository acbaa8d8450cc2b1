/* Memory read bandwidth: the denominator of the decode roofline. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/core.h"

volatile uint64_t bandwidth_sink; /* keeps the reads observable */

typedef struct {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} stream_job;

/* Integer sums: associative, so the loop is bound by loads, not adds. The
 * AVX2 variant issues 32-byte loads like a tuned GEMV does; without it the
 * probe would under-state the bandwidth and the roofline would flatter us. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes,
                        _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
    uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++) s += p[i];
    return s;
}
#endif

static uint64_t sum_plain(const uint64_t *p, size_t n) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
    for (; i < n; i++) s0 += p[i];
    return s0 + s1 + s2 + s3;
}

static void *stream_read(void *arg) {
    stream_job *j = arg;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) {
        j->sum = sum_avx2(j->p, j->n);
        return NULL;
    }
#endif
    j->sum = sum_plain(j->p, j->n);
    return NULL;
}

/* One timed pass of all threads over the buffer; seconds. */
static double one_pass(const uint64_t *buf, size_t n, int threads, uint64_t *sink) {
    pthread_t tid[64];
    stream_job jobs[64];
    size_t per = n / (size_t)threads;
    double t0 = ryz_time_now();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (stream_job){buf + per * (size_t)t, t == threads - 1 ? n - per * (size_t)t : per, 0};
        if (t > 0) pthread_create(&tid[t], NULL, stream_read, &jobs[t]);
    }
    stream_read(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = ryz_time_now() - t0;
    for (int t = 0; t < threads; t++) *sink += jobs[t].sum;
    return dt;
}

ryz_status ryz_mem_read_passes(size_t bytes, int threads, int reps,
                               ryz_status (*before)(void *ctx, int rep), void *ctx,
                               double *seconds) {
    if (threads < 1 || threads > 64 || reps < 1 || bytes < 4096)
        return ryz_error(RYZ_EINVAL,
                         "bandwidth probe: threads %d in [1, 64], reps %d >= 1, bytes %zu >= 4096",
                         threads, reps, bytes);
    size_t n = bytes / sizeof(uint64_t);
    uint64_t *buf = ryz_alloc_stream(n * sizeof *buf); /* as the weights are allocated */
    if (!buf) return ryz_error(RYZ_ENOMEM, "bandwidth probe: out of memory for %zu bytes", bytes);
    for (size_t i = 0; i < n; i++) buf[i] = i; /* touch every page */
    uint64_t sink = 0;
    ryz_status st = RYZ_OK;
    for (int r = 0; st == RYZ_OK && r < reps; r++) {
        if (before) st = before(ctx, r);
        if (st == RYZ_OK) seconds[r] = one_pass(buf, n, threads, &sink);
    }
    free(buf);
    bandwidth_sink = sink;
    return st;
}

double ryz_mem_read_bandwidth(size_t bytes, int threads, int reps) {
    double sec[64], best = 0;
    if (reps > 64) reps = 64;
    if (ryz_mem_read_passes(bytes, threads, reps, NULL, NULL, sec) != RYZ_OK) return 0;
    for (int r = 0; r < reps; r++)
        if (sec[r] > 0 && (double)(bytes / 8 * 8) / sec[r] > best) best = (double)(bytes / 8 * 8) / sec[r];
    return best;
}
