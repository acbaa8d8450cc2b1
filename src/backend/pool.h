/* A fixed team of threads for the CPU backend's decode GEMV and its
 * prefill sgemm and attention: workers are created once and spin briefly
 * between jobs, then sleep, so a job costs about a microsecond to start
 * instead of a thread creation. */
#ifndef RYZ_BACKEND_POOL_H
#define RYZ_BACKEND_POOL_H

#include "ryz/core.h"

typedef struct ryz_pool ryz_pool;

/* Runs fn(arg, t, n) for t in [0, n) on n threads (the caller is t = 0)
 * and returns when all have finished. */
typedef void (*ryz_pool_fn)(void *arg, int t, int n);

/* A pool of `threads` threads in all (threads - 1 workers). */
ryz_status ryz_pool_create(int threads, ryz_pool **out);
void ryz_pool_free(ryz_pool *p);
int ryz_pool_threads(const ryz_pool *p);
/* Not reentrant: one job at a time, from the thread that created the pool. */
void ryz_pool_run(ryz_pool *p, ryz_pool_fn fn, void *arg);

#endif
