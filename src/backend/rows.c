/* Row jobs a late worker cannot stall (rows.h). The protocol:
 * - The job (fn, y, x, W, shape) sits behind a sequence lock in the
 *   shared state, not on the caller's stack: a worker may read it after
 *   the call returned. Its generation is the job's id.
 * - Rows are claimed from `next`, which carries the id, so a worker still
 *   holding an old job's view claims nothing from a newer job.
 * - A worker publishes each claim in its slot (id, first row, RUNNING;
 *   the end beside it), computes into its own buffer, then moves the slot
 *   RUNNING -> COMMIT with a compare-and-swap, copies its rows into y and
 *   adds them to `done`. The caller computes into y directly.
 * - The caller, once no row is left to claim, waits for `done` to reach
 *   out; a claim still RUNNING once the caller has waited as long as it
 *   would take the caller to compute it (at its own claims' rate, at most
 *   twice its fastest claim's time per row; at least ROWS_STEAL_S) moves to
 *   STOLEN, and the caller computes those rows itself. A worker whose
 *   swap then fails drops its rows. So when `done` reaches out no claim
 *   of the job is still RUNNING, and nothing of it can be written to y
 *   later. */
#define _POSIX_C_SOURCE 200809L
#include "rows.h"

#include "ryz/backend.h"

#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The least the caller waits for a worker's claim before computing it
 * itself: a claim normally ends within a few microseconds of the caller's
 * last (docs/performance.md, session 21); a worker that lost its core is
 * gone for 50 us to milliseconds. Longer claims get as long as the caller
 * would take to compute them (the LM head's last claims at 2 threads,
 * 2000 rows of 110m's, stream for 80-300 us). */
#define ROWS_STEAL_S 20e-6
/* After this long the waiting caller yields its core, in case the worker
 * it waits for is queued behind it (more threads than cores). */
#define ROWS_YIELD_S 100e-6

enum { IDLE = 0, RUNNING = 1, COMMIT = 2, STOLEN = 3 };

/* A slot's state word: job id, first row of the claim, phase. */
static uint64_t slot_word(unsigned id, int o0, int phase) {
    return (uint64_t)id << 32 | (uint64_t)o0 << 2 | (uint64_t)phase;
}

/* A worker's claim, a cache line of its own (the caller reads it while
 * another worker writes its own). */
typedef struct {
    _Alignas(64) _Atomic uint64_t state;
    atomic_int end; /* the claim's end row, written before its RUNNING word */
    float *ys;      /* the worker's rows, committed to y by copy */
    size_t ys_floats;
} rows_slot;

/* `next` (every claim) and `done` (the caller spins on it) each on a
 * line of their own. */
struct ryz_rows {
    ryz_pool *pool;
    int threads;
    atomic_uint seq; /* sequence lock over the job below; even: stable */
    _Atomic(ryz_rows_fn) fn;
    _Atomic(float *) y;
    _Atomic(const float *) x;
    _Atomic(const void *) w;
    atomic_int in, out, least;
    rows_slot *slot;                   /* [t] for workers t >= 1 */
    _Alignas(64) _Atomic uint64_t next; /* id << 32 | first unclaimed row */
    _Alignas(64) atomic_int done;       /* rows of the current job in y */
};

/* A worker's consistent view of one job. */
typedef struct {
    ryz_rows_fn fn;
    float *y;
    const float *x;
    const void *w;
    int in, out, least;
    unsigned id;
} rows_view;

static atomic_int rows_stall_us, rows_caller_stall_us;

int ryz_test_set_rows_stall(int us) {
    return atomic_exchange(&rows_stall_us, us);
}

int ryz_test_set_rows_caller_stall(int us) {
    return atomic_exchange(&rows_caller_stall_us, us);
}

/* Rows of the next claim when `left` rows are unclaimed and n threads
 * share the job (ryz_rows_run): an n-th of them, as OpenMP's guided
 * schedule takes. A 2n-th makes twice the claims, for no gain where
 * memory is slow, and cost bf16 decode 2-4 % where it reads fast (a
 * model in and near the L3; docs/performance.md, session 24). */
static int rows_claim(int left, int n, int least) {
    int rows = ((left + n - 1) / n + 3) & ~3;
    return rows > least ? rows : least;
}

ryz_status ryz_rows_create(ryz_pool *pool, ryz_rows **out) {
    int n = ryz_pool_threads(pool);
    ryz_rows *r = aligned_alloc(64, sizeof *r); /* sizes are multiples of 64 */
    rows_slot *slot = aligned_alloc(64, (size_t)n * sizeof *slot);
    if (!r || !slot) {
        free(r), free(slot);
        *out = NULL;
        return ryz_error(RYZ_ENOMEM, "out of memory for the row jobs of %d threads", n);
    }
    memset(r, 0, sizeof *r);
    memset(slot, 0, (size_t)n * sizeof *slot);
    r->pool = pool, r->threads = n, r->slot = slot;
    *out = r;
    return RYZ_OK;
}

void ryz_rows_free(ryz_rows *r) {
    if (!r) return;
    for (int t = 0; t < r->threads; t++) ryz_mem_free(r->slot[t].ys);
    free(r->slot);
    free(r);
}

/* The job now published, or 0 while one is being written. */
static int rows_read(ryz_rows *r, rows_view *v) {
    unsigned s = atomic_load_explicit(&r->seq, memory_order_acquire);
    if (s & 1) return 0;
    v->fn = atomic_load_explicit(&r->fn, memory_order_relaxed);
    v->y = atomic_load_explicit(&r->y, memory_order_relaxed);
    v->x = atomic_load_explicit(&r->x, memory_order_relaxed);
    v->w = atomic_load_explicit(&r->w, memory_order_relaxed);
    v->in = atomic_load_explicit(&r->in, memory_order_relaxed);
    v->out = atomic_load_explicit(&r->out, memory_order_relaxed);
    v->least = atomic_load_explicit(&r->least, memory_order_relaxed);
    v->id = s / 2;
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&r->seq, memory_order_relaxed) == s;
}

/* Claims the next rows of job v into [*o0, *o1); 0 when none are left
 * or the job is no longer the current one. */
static int rows_take(ryz_rows *r, const rows_view *v, int *o0, int *o1) {
    uint64_t cur = atomic_load_explicit(&r->next, memory_order_relaxed);
    for (;;) {
        int at = (int)(cur & 0xffffffffu);
        if ((unsigned)(cur >> 32) != v->id || at >= v->out) return 0;
        int end = at + rows_claim(v->out - at, r->threads, v->least);
        if (end > v->out) end = v->out;
        uint64_t want = (uint64_t)v->id << 32 | (unsigned)end;
        if (atomic_compare_exchange_weak_explicit(&r->next, &cur, want, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *o0 = at, *o1 = end;
            return 1;
        }
    }
}

/* Sleeps as long as the test hook `armed` says, once. */
static void rows_stall(atomic_int *armed) {
    if (!atomic_load_explicit(armed, memory_order_relaxed)) return;
    int us = atomic_exchange(armed, 0);
    if (us > 0) nanosleep(&(struct timespec){us / 1000000, (long)(us % 1000000) * 1000}, NULL);
}

/* Worker t: claims into its slot and commits what no one stole. */
static void rows_worker(ryz_rows *r, const rows_view *v, int t) {
    rows_slot *sl = &r->slot[t];
    int o0, o1;
    while (rows_take(r, v, &o0, &o1)) {
        uint64_t run = slot_word(v->id, o0, RUNNING);
        atomic_store_explicit(&sl->end, o1, memory_order_relaxed);
        atomic_store_explicit(&sl->state, run, memory_order_release);
        rows_stall(&rows_stall_us);
        v->fn(sl->ys, v->x, v->w, v->in, v->out, o0, o1);
        if (!atomic_compare_exchange_strong_explicit(&sl->state, &run,
                                                     slot_word(v->id, o0, COMMIT),
                                                     memory_order_acq_rel, memory_order_acquire))
            continue; /* the caller computed these rows: drop ours */
        memcpy(v->y + o0, sl->ys + o0, (size_t)(o1 - o0) * sizeof(float));
        atomic_fetch_add_explicit(&r->done, o1 - o0, memory_order_release);
        atomic_store_explicit(&sl->state, slot_word(v->id, o0, IDLE), memory_order_relaxed);
    }
}

/* The caller takes worker t's running claim of job v, once it has waited
 * `waited` seconds and at least as long as computing the claim takes it
 * (row_s a row), if the claim is still running; and computes it into y. */
static void rows_steal(ryz_rows *r, const rows_view *v, int t, double waited, double row_s) {
    rows_slot *sl = &r->slot[t];
    uint64_t st = atomic_load_explicit(&sl->state, memory_order_acquire);
    if ((unsigned)(st >> 32) != v->id || (st & 3) != RUNNING) return;
    int o0 = (int)((st >> 2) & 0x3fffffff);
    int o1 = atomic_load_explicit(&sl->end, memory_order_relaxed);
    if (waited < ROWS_STEAL_S || waited < (o1 - o0) * row_s) return;
    if (!atomic_compare_exchange_strong_explicit(&sl->state, &st, slot_word(v->id, o0, STOLEN),
                                                 memory_order_acq_rel, memory_order_relaxed))
        return;
    v->fn(v->y, v->x, v->w, v->in, v->out, o0, o1);
    atomic_fetch_add_explicit(&r->done, o1 - o0, memory_order_relaxed);
}

/* The caller: its claims straight into y, timed, then every row
 * accounted for. Its time per row, which sets how long it waits before
 * taking a worker's claim, is at most twice its fastest claim's: a caller
 * that lost its core during one of its own claims would otherwise wait
 * for a stalled worker a share of the time it was away (a third, in
 * test_backend_matmul_caller_away). One claim alone is its own fastest,
 * so that case is as before. In normal runs the cap changes nothing that
 * shows: 48-69 steals in 32000 bf16 GEMVs at 2 threads, 61-64 without it
 * (docs/performance.md, session 25). */
static void rows_caller(ryz_rows *r, const rows_view *v) {
    int o0, o1, mine = 0;
    double t0 = ryz_time_now(), t = t0, fastest = HUGE_VAL;
    while (rows_take(r, v, &o0, &o1)) {
        rows_stall(&rows_caller_stall_us);
        v->fn(v->y, v->x, v->w, v->in, v->out, o0, o1);
        atomic_fetch_add_explicit(&r->done, o1 - o0, memory_order_relaxed);
        mine += o1 - o0;
        double now = ryz_time_now(), s = (now - t) / (o1 - o0);
        if (s < fastest) fastest = s;
        t = now;
    }
    double wait0 = t, row_s = mine ? (wait0 - t0) / mine : 0;
    if (row_s > 2 * fastest) row_s = 2 * fastest;
    for (int i = 0; atomic_load_explicit(&r->done, memory_order_acquire) < v->out; i++) {
        if ((i & 15) != 15) {
            ryz_pool_relax();
            continue;
        }
        double waited = ryz_time_now() - wait0;
        for (int t = 1; t < r->threads; t++) rows_steal(r, v, t, waited, row_s);
        if (waited > ROWS_YIELD_S) sched_yield();
    }
}

static void rows_part(void *arg, int t, int n) {
    ryz_rows *r = arg;
    rows_view v;
    (void)n;
    if (!rows_read(r, &v)) return; /* a newer job is on its way; the caller does this one */
    if (t == 0) rows_caller(r, &v);
    else rows_worker(r, &v, t);
}

/* Every worker's buffer with room for out rows; 0 when out of memory.
 * Growing frees the old buffers, so the workers are quiesced first. */
static int rows_room(ryz_rows *r, int out) {
    for (int t = 1; t < r->threads; t++) {
        rows_slot *sl = &r->slot[t];
        if (sl->ys_floats >= (size_t)out) continue;
        ryz_pool_quiesce(r->pool);
        float *p = ryz_mem_alloc(RYZ_MEM_SCRATCH, (size_t)out, sizeof *p);
        if (!p) return 0;
        ryz_mem_free(sl->ys);
        sl->ys = p, sl->ys_floats = (size_t)out;
    }
    return 1;
}

/* Writes the job under the sequence lock (the writer's side of
 * rows_read), its claims starting at row 0 with the new id. */
static void rows_publish(ryz_rows *r, ryz_rows_fn fn, float *y, const float *x, const void *w,
                         int in, int out, int least) {
    unsigned s = atomic_load_explicit(&r->seq, memory_order_relaxed);
    atomic_store_explicit(&r->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&r->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&r->y, y, memory_order_relaxed);
    atomic_store_explicit(&r->x, x, memory_order_relaxed);
    atomic_store_explicit(&r->w, w, memory_order_relaxed);
    atomic_store_explicit(&r->in, in, memory_order_relaxed);
    atomic_store_explicit(&r->out, out, memory_order_relaxed);
    atomic_store_explicit(&r->least, least, memory_order_relaxed);
    atomic_store_explicit(&r->done, 0, memory_order_relaxed);
    atomic_store_explicit(&r->next, (uint64_t)((s + 2) / 2) << 32, memory_order_relaxed);
    atomic_store_explicit(&r->seq, s + 2, memory_order_release);
}

void ryz_rows_run(ryz_rows *r, ryz_rows_fn fn, float *y, const float *x, const void *w, int in,
                  int out, int least) {
    if (r->threads == 1 || !rows_room(r, out)) {
        fn(y, x, w, in, out, 0, out);
        return;
    }
    rows_publish(r, fn, y, x, w, in, out, least);
    ryz_pool_run_detached(r->pool, rows_part, r);
}
