/* The backend thread pool (pool.h). A job is published by bumping a
 * generation counter; workers spin on it for a short while (decode issues
 * ~100 GEMVs per token, a few hundred microseconds apart) and then sleep on
 * a condition variable, so idle ranks do not steal cores for long. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a thread spins before it sleeps (a worker) or yields its core
 * (the caller waiting for the workers): a time, since a pause instruction
 * costs 10 to 140 cycles depending on the CPU. */
#define POOL_SPIN_S 100e-6

/* Whether a spin that started at *t0 (0: not yet timed) has run out; the
 * clock is read every 256 spins only. */
static int spin_over(int i, double *t0) {
    if ((i & 255) != 255) return 0;
    double now = ryz_time_now();
    if (*t0 == 0) *t0 = now;
    return now - *t0 > POOL_SPIN_S;
}

struct ryz_pool {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;  /* bumped once per job */
    atomic_int done;  /* workers finished with the current job */
    atomic_int stop;
    ryz_pool_fn fn;
    void *arg;
};

typedef struct {
    ryz_pool *p;
    int t;
} worker_arg;

/* Waits until the generation differs from seen; returns the new one. */
static unsigned wait_job(ryz_pool *p, unsigned seen) {
    double t0 = 0;
    for (int i = 0; !spin_over(i, &t0); i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&p->mu);
    unsigned g;
    while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker(void *v) {
    worker_arg a = *(worker_arg *)v;
    free(v);
    unsigned seen = 0;
    for (;;) {
        seen = wait_job(a.p, seen);
        if (atomic_load(&a.p->stop)) return NULL;
        a.p->fn(a.p->arg, a.t, a.p->threads);
        atomic_fetch_add_explicit(&a.p->done, 1, memory_order_release);
    }
}

/* Publishes a job (or the stop flag) to the workers. */
static void publish(ryz_pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

ryz_status ryz_pool_create(int threads, ryz_pool **out) {
    *out = NULL;
    if (threads < 1 || threads > 1024)
        return ryz_error(RYZ_EINVAL, "threads %d out of range [1, 1024]", threads);
    ryz_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->tid = calloc((size_t)threads, sizeof *p->tid))) {
        free(p);
        return ryz_error(RYZ_ENOMEM, "out of memory for a pool of %d threads", threads);
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    *out = p;
    for (int t = 1; t < threads; t++) {
        worker_arg *a = malloc(sizeof *a);
        if (a) *a = (worker_arg){p, t};
        if (!a || pthread_create(&p->tid[t], NULL, worker, a) != 0) {
            free(a);
            ryz_pool_free(p);
            *out = NULL;
            return ryz_error(RYZ_ENOMEM, "cannot start backend thread %d of %d", t, threads);
        }
        p->threads = t + 1;
    }
    p->threads = threads;
    return RYZ_OK;
}

void ryz_pool_free(ryz_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, 1);
    publish(p);
    for (int t = 1; t < p->threads; t++) pthread_join(p->tid[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->tid);
    free(p);
}

int ryz_pool_threads(const ryz_pool *p) {
    return p->threads;
}

void ryz_pool_run(ryz_pool *p, ryz_pool_fn fn, void *arg) {
    if (p->threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn, p->arg = arg;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    publish(p);
    fn(arg, 0, p->threads);
    /* A worker that lost its core (more threads than cores) gets it back
     * sooner if this thread yields after spinning a while. */
    double t0 = 0;
    int yielding = 0;
    for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < p->threads - 1; i++) {
        if (!yielding) yielding = spin_over(i, &t0);
        if (yielding) sched_yield();
        else cpu_relax();
    }
}
