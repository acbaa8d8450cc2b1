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

/* Integer sums: associative, so the loop is bound by loads, not adds.
 * Each thread reads its part as STREAMS bands side by side: on the
 * development VM (Zen, 1 thread) four concurrent sequential streams read
 * 1.31x faster than one and 1.12x faster than eight, and the decode GEMV
 * reads its weights the same way, so a one-stream probe would under-state
 * the machine and the roofline would flatter us (docs/performance.md). The
 * AVX2 variant issues 32-byte loads like a tuned GEMV does, for the same
 * reason. The streams start SKEW bytes short of an even split: streams a
 * power of two apart (64 MiB in a 256 MiB probe) read 10-15 % slower there,
 * while the GEMV's bands are never that aligned. */
#define STREAMS 4
#define SKEW (64 * 1024 + 4096 + 64)
_Static_assert(SKEW % 64 == 0, "the AVX2 loop steps 8 elements: the skew must keep bands whole");

/* Elements per stream of a part of n: an even split less SKEW when the
 * part is large enough; what is left after STREAMS of them is read after. */
static size_t band_of(size_t n, size_t multiple) {
    size_t band = n / STREAMS / multiple * multiple, skew = SKEW / sizeof(uint64_t);
    return band > 4 * skew ? band - skew : band;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define ADD4(acc, p) acc = _mm256_add_epi64(acc, _mm256_loadu_si256((const __m256i *)(p)))

__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
    size_t band = band_of(n, 8), i = 0;
    const uint64_t *q0 = p, *q1 = q0 + band, *q2 = q1 + band, *q3 = q2 + band;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0,
            b3 = a0;
    for (; i < band; i += 8) {
        ADD4(a0, q0 + i), ADD4(a1, q1 + i), ADD4(a2, q2 + i), ADD4(a3, q3 + i);
        ADD4(b0, q0 + i + 4), ADD4(b1, q1 + i + 4), ADD4(b2, q2 + i + 4), ADD4(b3, q3 + i + 4);
    }
    /* What the bands leave (4 SKEWs, 272 KiB: 13 % of a 2 MiB claim of
     * the backend's read probe) in 32-byte loads too, not word by word. */
    for (i = STREAMS * band; i + 8 <= n; i += 8) ADD4(a0, p + i), ADD4(b0, p + i + 4);
    __m256i ta = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    __m256i tb = _mm256_add_epi64(_mm256_add_epi64(b0, b1), _mm256_add_epi64(b2, b3));
    __m256i t = _mm256_add_epi64(ta, tb);
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, t);
    uint64_t s = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++) s += p[i];
    return s;
}
#endif

static uint64_t sum_plain(const uint64_t *p, size_t n) {
    size_t band = band_of(n, 1), i = 0;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; i < band; i++)
        s0 += p[i], s1 += p[band + i], s2 += p[2 * band + i], s3 += p[3 * band + i];
    for (i = STREAMS * band; i < n; i++) s0 += p[i];
    return s0 + s1 + s2 + s3;
}

uint64_t ryz_mem_read_sum(const void *p, size_t bytes) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) return sum_avx2(p, bytes / sizeof(uint64_t));
#endif
    return sum_plain(p, bytes / sizeof(uint64_t));
}

static void *stream_read(void *arg) {
    stream_job *j = arg;
    j->sum = ryz_mem_read_sum(j->p, j->n * sizeof *j->p);
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

ryz_status ryz_mem_read_slices(size_t bytes, size_t slice, int threads, int reps,
                               ryz_status (*before)(void *ctx, int rep), void *ctx,
                               double *seconds) {
    if (threads < 1 || threads > 64 || reps < 1 || bytes < 4096 || slice < 4096 || slice > bytes)
        return ryz_error(RYZ_EINVAL,
                         "bandwidth probe: threads %d in [1, 64], reps %d >= 1, bytes %zu >= 4096, "
                         "slice %zu in [4096, bytes]", threads, reps, bytes, slice);
    size_t n = bytes / sizeof(uint64_t), per = slice / sizeof(uint64_t), at = 0;
    uint64_t *buf = ryz_alloc_stream(n * sizeof *buf); /* as the weights are allocated */
    if (!buf) return ryz_error(RYZ_ENOMEM, "bandwidth probe: out of memory for %zu bytes", bytes);
    for (size_t i = 0; i < n; i++) buf[i] = i; /* touch every page */
    uint64_t sink = 0;
    ryz_status st = RYZ_OK;
    for (int r = 0; st == RYZ_OK && r < reps; r++, at += per) {
        if (before) st = before(ctx, r);
        if (at + per > n) at = 0; /* wrap: every slice is whole */
        if (st == RYZ_OK) seconds[r] = one_pass(buf + at, per, threads, &sink);
    }
    free(buf);
    bandwidth_sink = sink;
    return st;
}

ryz_status ryz_mem_read_passes(size_t bytes, int threads, int reps,
                               ryz_status (*before)(void *ctx, int rep), void *ctx,
                               double *seconds) {
    return ryz_mem_read_slices(bytes, bytes, threads, reps, before, ctx, seconds);
}

double ryz_mem_read_bandwidth(size_t bytes, int threads, int reps) {
    double sec[64], best = 0;
    if (reps > 64) reps = 64;
    if (ryz_mem_read_passes(bytes, threads, reps, NULL, NULL, sec) != RYZ_OK) return 0;
    for (int r = 0; r < reps; r++)
        if (sec[r] > 0 && (double)(bytes / 8 * 8) / sec[r] > best) best = (double)(bytes / 8 * 8) / sec[r];
    return best;
}

uint64_t ryz_mem_read_lines(const void *p, size_t bytes) {
    const uint32_t *w = p;
    uint64_t s = 0;
    for (size_t i = 0; i < bytes / sizeof *w; i += 64 / sizeof *w)
        s += w[i];
    return s;
}
