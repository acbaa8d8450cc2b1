/* Row-parallel decode GEMV on the backend's pool that a worker losing its
 * core does not hold up: a worker computes each claim of rows into its
 * own buffer and commits it with a compare-and-swap, and the calling
 * thread, once every row is claimed, computes any claim that has run
 * longer than it should itself. On a shared host a worker can lose its
 * core for milliseconds in the middle of a claim (docs/performance.md,
 * session 21); the call no longer waits for it, except in the two short
 * windows where a claim is not yet or no longer stealable. */
#ifndef RYZ_BACKEND_ROWS_H
#define RYZ_BACKEND_ROWS_H

#include "pool.h"

/* y[o] = W[o] . x for rows [o0, o1) of W (out rows of in). */
typedef void (*ryz_rows_fn)(float *y, const float *x, const void *w, int in, int out, int o0,
                            int o1);

typedef struct ryz_rows ryz_rows;

/* The shared state of a pool's row jobs; it lives as long as the pool. */
ryz_status ryz_rows_create(ryz_pool *pool, ryz_rows **out);
/* Call after ryz_pool_free (no worker may still hold it). */
void ryz_rows_free(ryz_rows *r);

/* y (out) = W x by fn on every thread of the pool, in claims of an n-th
 * of the rows left (n threads; guided self-scheduling), rounded up to a
 * multiple of 4 and at least `least` (a multiple of 4). Returns when
 * every row of y is written. A worker late to a claim may go on reading
 * x and W after that, never writing anything the caller sees: they must
 * stay allocated until ryz_pool_quiesce, and if the caller rewrites x
 * meanwhile, that is a deliberate race (the late worker's rows from it
 * are dropped; ThreadSanitizer reports it). */
void ryz_rows_run(ryz_rows *r, ryz_rows_fn fn, float *y, const float *x, const void *w, int in,
                  int out, int least);

#endif
