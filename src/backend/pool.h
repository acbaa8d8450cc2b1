/* A fixed team of threads for the CPU backend's decode GEMV and
 * attention and its prefill sgemm and attention: workers are created once
 * and spin briefly between jobs, then sleep, so a job costs about a
 * microsecond to start instead of a thread creation. */
#ifndef RYZ_BACKEND_POOL_H
#define RYZ_BACKEND_POOL_H

#include "ryz/core.h"

#if defined(__x86_64__)
#include <immintrin.h>
/* One step of a spin-wait: the pause instruction, which frees the core's
 * resources for its sibling and the memory bus for others. */
#define ryz_pool_relax() _mm_pause()
#else
#define ryz_pool_relax() ((void)0)
#endif

typedef struct ryz_pool ryz_pool;

/* A job's part for thread t of n (the caller is t = 0). */
typedef void (*ryz_pool_fn)(void *arg, int t, int n);

/* A pool of `threads` threads in all (threads - 1 workers). */
ryz_status ryz_pool_create(int threads, ryz_pool **out);
void ryz_pool_free(ryz_pool *p);
int ryz_pool_threads(const ryz_pool *p);
/* Runs fn(arg, t, n) for t in [0, n) on n threads and returns when all
 * have finished. Not reentrant: one job at a time, from the thread that
 * created the pool. */
void ryz_pool_run(ryz_pool *p, ryz_pool_fn fn, void *arg);
/* Runs fn(arg, 0, n) on the calling thread and returns when it does,
 * whatever the workers: each runs fn(arg, t, n) when it sees the job, if
 * it is still the newest, perhaps after this returns and after later jobs
 * have run. So arg must outlive the pool, and fn's own protocol decides when
 * the work is complete and what a late worker may still touch. */
void ryz_pool_run_detached(ryz_pool *p, ryz_pool_fn fn, void *arg);
/* A chunked job's part: chunk c of it. */
typedef void (*ryz_chunk_fn)(void *arg, int c);
/* Runs fn(arg, c) for every c in [0, n) (n < 65536), each chunk on
 * whichever thread claims it first, the caller included, and returns when
 * every chunk has finished: a worker still busy with an earlier job (off
 * its core, say) holds up only a chunk it had claimed, not the call. A
 * worker that comes late finds no chunk left. One chunked job at a time,
 * from the thread that created the pool; arg need only live through the
 * call. */
void ryz_pool_run_chunks(ryz_pool *p, ryz_chunk_fn fn, void *arg, int n);
/* Returns once no worker is inside a job's fn: after it, a worker late to
 * a detached job starts that job's fn afresh (its protocol must find
 * nothing left to do). Call before freeing memory a late worker could
 * still read. */
void ryz_pool_quiesce(ryz_pool *p);

#endif
