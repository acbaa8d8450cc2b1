/* The backend thread pool (pool.h). A job is published by bumping a
 * generation counter; workers spin on it for a short while (decode issues
 * ~100 GEMVs per token, a few hundred microseconds apart) and then sleep on
 * a condition variable, so idle ranks do not steal cores for long. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool.h"

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

/* The chunked job (ryz_pool_run_chunks). `next` holds the job's id, its
 * chunk count and its next chunk, so a claim (a compare-and-swap on it)
 * succeeds only while the job it was read from has chunks left, and so
 * while its caller waits: fn and arg, read between the load and the claim,
 * are then that job's (a newer job's are written only after every chunk
 * of this one has finished). They are atomics because a late worker may
 * still read them while the caller writes the next job's; what it read is
 * used only when its claim succeeds. */
typedef struct {
    _Atomic uint64_t next; /* id << 32 | n << 16 | next chunk */
    atomic_int done;       /* chunks finished */
    _Atomic(ryz_chunk_fn) fn;
    _Atomic(void *) arg;
    unsigned id; /* the caller's alone */
} chunk_job;

struct ryz_pool {
    int threads;
    chunk_job chunks;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* The job, published under a sequence lock: odd while fn and arg are
     * being written, so a worker that comes late to a detached job (its
     * caller gone on) never runs one job's fn with another's arg. */
    atomic_uint gen;
    _Atomic(ryz_pool_fn) fn;
    _Atomic(void *) arg;
    atomic_uint *done_gen; /* [t]: the last job worker t finished */
    atomic_int *busy;      /* [t]: worker t is inside a job's fn */
    atomic_int stop;
};

typedef struct {
    ryz_pool *p;
    int t;
} worker_arg;

/* Waits until the generation differs from seen and is even (a job fully
 * published); returns it. */
static unsigned wait_job(ryz_pool *p, unsigned seen) {
    double t0 = 0;
    for (int i = 0; !spin_over(i, &t0); i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen && !(g & 1)) return g;
        ryz_pool_relax();
    }
    pthread_mutex_lock(&p->mu);
    unsigned g;
    while ((g = atomic_load(&p->gen)) == seen || (g & 1)) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return g;
}

/* The job of generation g into *fn, *arg; 0 when a newer one is being
 * published (the caller then waits for it). */
static int read_job(ryz_pool *p, unsigned g, ryz_pool_fn *fn, void **arg) {
    *fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
    *arg = atomic_load_explicit(&p->arg, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&p->gen, memory_order_relaxed) == g;
}

static void *worker(void *v) {
    worker_arg a = *(worker_arg *)v;
    free(v);
    ryz_pool *p = a.p;
    unsigned seen = 0;
    for (;;) {
        unsigned g = wait_job(p, seen);
        if (atomic_load(&p->stop)) return NULL;
        atomic_store(&p->busy[a.t], 1); /* before reading the job: see ryz_pool_quiesce */
        ryz_pool_fn fn;
        void *arg;
        if (read_job(p, g, &fn, &arg)) {
            fn(arg, a.t, p->threads);
            atomic_store_explicit(&p->done_gen[a.t], g, memory_order_release);
            seen = g;
        } /* else a newer job is on its way: wait for it */
        atomic_store_explicit(&p->busy[a.t], 0, memory_order_release);
    }
}

/* Publishes a job (fn NULL: the stop flag) to the workers; returns its
 * generation. */
static unsigned publish(ryz_pool *p, ryz_pool_fn fn, void *arg) {
    pthread_mutex_lock(&p->mu);
    unsigned g = atomic_load_explicit(&p->gen, memory_order_relaxed);
    atomic_store_explicit(&p->gen, g + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&p->gen, g + 2, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return g + 2;
}

ryz_status ryz_pool_create(int threads, ryz_pool **out) {
    *out = NULL;
    if (threads < 1 || threads > 1024)
        return ryz_error(RYZ_EINVAL, "threads %d out of range [1, 1024]", threads);
    ryz_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->tid = calloc((size_t)threads, sizeof *p->tid)) ||
        !(p->done_gen = calloc((size_t)threads, sizeof *p->done_gen)) ||
        !(p->busy = calloc((size_t)threads, sizeof *p->busy))) {
        if (p) free(p->tid), free(p->done_gen);
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
    publish(p, NULL, NULL);
    for (int t = 1; t < p->threads; t++) pthread_join(p->tid[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->tid);
    free(p->done_gen);
    free(p->busy);
    free(p);
}

int ryz_pool_threads(const ryz_pool *p) {
    return p->threads;
}

/* Step i of a caller's wait: a pause, or once it has spun POOL_SPIN_S
 * (*t0, *yielding: the wait's own, zeroed at its start) a yield, so that a
 * worker that lost its core (more threads than cores) gets it back
 * sooner. */
static void wait_step(int i, double *t0, int *yielding) {
    if (!*yielding) *yielding = spin_over(i, t0);
    if (*yielding) sched_yield();
    else ryz_pool_relax();
}

/* Waits until ready(p, t, g) holds for every worker t. */
static void wait_workers(ryz_pool *p, int (*ready)(ryz_pool *, int, unsigned), unsigned g) {
    double t0 = 0;
    int yielding = 0;
    for (int t = 1; t < p->threads; t++)
        for (int i = 0; !ready(p, t, g); i++) wait_step(i, &t0, &yielding);
}

static int finished(ryz_pool *p, int t, unsigned g) {
    return atomic_load_explicit(&p->done_gen[t], memory_order_acquire) == g;
}

static int idle(ryz_pool *p, int t, unsigned g) {
    (void)g;
    return !atomic_load(&p->busy[t]);
}

void ryz_pool_run(ryz_pool *p, ryz_pool_fn fn, void *arg) {
    if (p->threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    unsigned g = publish(p, fn, arg);
    fn(arg, 0, p->threads);
    wait_workers(p, finished, g);
}

void ryz_pool_run_detached(ryz_pool *p, ryz_pool_fn fn, void *arg) {
    if (p->threads > 1) publish(p, fn, arg);
    fn(arg, 0, p->threads);
}

void ryz_pool_quiesce(ryz_pool *p) {
    wait_workers(p, idle, 0);
}

/* Claims and runs chunks of the pool's chunked job until none is left. */
static void chunks_part(void *arg, int t, int n) {
    chunk_job *j = &((ryz_pool *)arg)->chunks;
    (void)t, (void)n;
    uint64_t w = atomic_load_explicit(&j->next, memory_order_acquire);
    while ((w & 0xffff) < (w >> 16 & 0xffff)) {
        ryz_chunk_fn fn = atomic_load_explicit(&j->fn, memory_order_relaxed);
        void *a = atomic_load_explicit(&j->arg, memory_order_relaxed);
        if (!atomic_compare_exchange_weak_explicit(&j->next, &w, w + 1, memory_order_acquire,
                                                   memory_order_acquire))
            continue; /* w is the word now: another chunk, or a newer job */
        fn(a, (int)(w & 0xffff));
        atomic_fetch_add_explicit(&j->done, 1, memory_order_release);
        w = atomic_load_explicit(&j->next, memory_order_acquire);
    }
}

void ryz_pool_run_chunks(ryz_pool *p, ryz_chunk_fn fn, void *arg, int n) {
    RYZ_ASSERT(n >= 0 && n < 65536); /* the chunk fields of `next` */
    if (p->threads == 1 || n <= 1) {
        for (int c = 0; c < n; c++) fn(arg, c);
        return;
    }
    chunk_job *j = &p->chunks;
    atomic_store_explicit(&j->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&j->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&j->done, 0, memory_order_relaxed);
    j->id++;
    atomic_store_explicit(&j->next, (uint64_t)j->id << 32 | (uint64_t)n << 16,
                          memory_order_release);
    ryz_pool_run_detached(p, chunks_part, p);
    double t0 = 0;
    int yielding = 0;
    for (int i = 0; atomic_load_explicit(&j->done, memory_order_acquire) < n; i++)
        wait_step(i, &t0, &yielding);
}
