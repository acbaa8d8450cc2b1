/* The shared-memory backend: collectives between the ranks of one node
 * through a segment that every rank maps, with MPI only to set it up and
 * for abort, split and the watchdog (which watches these calls like any).
 *
 * Why not Open MPI's own shared memory (vader): its collectives are
 * two-sided message exchanges whose cost depends on the state of the
 * caches. In the model every all-reduce follows 0.3-0.8 ms of GEMV that
 * streamed megabytes through them, and there the last rank to arrive took
 * 2-5x what the same call takes in `ryz comm`'s hot loop
 * (docs/performance.md). Here a collective is a sequence of rounds: in a
 * round every rank copies its part into its own slot, publishes the round's
 * number, waits until every rank has published it, and then reads what it
 * needs from the others' slots. The last rank to arrive finds all it reads
 * already written: one copy in and one pass over k slots, hot or cold.
 *
 * Each rank has two slots and alternates them by round. A rank writes slot
 * r % 2 in round r only after every rank has published round r - 1, so
 * every rank has finished reading round r - 2 from it. Sums run in rank
 * order on every rank, so every rank gets the same bits.
 *
 * The segment is POSIX shared memory (/dev/shm), created by rank 0, opened
 * by the others and unlinked as soon as all have mapped it (or one could
 * not): after that no crash leaves it behind, and unmapping it is local.
 *
 * Hangs and dead ranks are the watchdog's (src/comm/mpi.c), which
 * ryz_comm_init_mpi_world starts: it watches every call the wrapper
 * publishes, whatever the backend. Ranks that disagree on a call's size
 * are caught only with RYZ_CHECK_COLLECTIVES=1; without it they read each
 * other's slots out of step (docs/reliability.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mpi.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define SLOT_BYTES ((size_t)256 << 10) /* one round's data from one rank */
#define SLOT_FLOATS (SLOT_BYTES / sizeof(float))
#define HEAD_BYTES ((size_t)4096)                  /* the round counter, on its own page */
#define REGION_BYTES (HEAD_BYTES + 2 * SLOT_BYTES) /* one rank's part of the segment */
#define SPINS 4096                                 /* busy polls before yielding the core */
#define YIELDS 1000                                /* yields before sleeping between polls */

typedef struct {
    MPI_Comm comm; /* owned: set-up, split, abort */
    int rank, size;
    unsigned char *base; /* the mapped segment: size regions of REGION_BYTES */
    uint64_t round;      /* rounds this rank has completed */
    int spins;           /* SPINS, or 0 when ranks outnumber cores */
} shm_ctx;

static _Atomic uint64_t *round_of(const shm_ctx *s, int p) {
    return (_Atomic uint64_t *)(s->base + (size_t)p * REGION_BYTES);
}

/* Rank p's slot for round r. */
static void *slot_of(const shm_ctx *s, int p, uint64_t r) {
    return s->base + (size_t)p * REGION_BYTES + HEAD_BYTES + (size_t)(r & 1) * SLOT_BYTES;
}

/* This rank's slot for the round about to start. */
static void *slot_next(const shm_ctx *s) {
    return slot_of(s, s->rank, s->round + 1);
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Waits until *x >= r: spins first (the usual wait is tens of
 * microseconds), then yields the core, then sleeps 20 us per look so that
 * oversubscribed ranks (tests on 2 cores) let the others run. A rank that
 * never arrives is the watchdog's to report. */
static void wait_at_least(_Atomic uint64_t *x, uint64_t r, int spins) {
    for (long n = 0; atomic_load_explicit(x, memory_order_acquire) < r; n++) {
        if (n < spins) {
            cpu_relax();
        } else if (n < spins + YIELDS) {
            sched_yield();
        } else {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Ends a round: publishes it and waits for every rank to publish it too.
 * Afterwards every slot of this round may be read. */
static void round_sync(shm_ctx *s) {
    uint64_t r = ++s->round;
    atomic_store_explicit(round_of(s, s->rank), r, memory_order_release);
    for (int p = 0; p < s->size; p++)
        wait_at_least(round_of(s, p), r, s->spins);
}

/* out[i] = sum over ranks p in order of slot p's block at `at` (n floats):
 * the same additions in the same order on every rank. */
static void sum_slots(const shm_ctx *s, size_t at, float *out, size_t n) {
    const float *first = (const float *)slot_of(s, 0, s->round) + at;
    memcpy(out, first, n * sizeof(float));
    for (int p = 1; p < s->size; p++) {
        const float *x = (const float *)slot_of(s, p, s->round) + at;
        for (size_t i = 0; i < n; i++)
            out[i] += x[i];
    }
}

static size_t min_size(size_t a, size_t b) {
    return a < b ? a : b;
}

/* ---- the collectives ----------------------------------------------------- */

/* One round carrying src's floats from off on, as many as a slot holds
 * (count in all); afterwards every rank's part of it is readable. Returns
 * how many it carried. */
static size_t round_put(shm_ctx *s, const float *src, size_t off, size_t count) {
    size_t n = min_size(count - off, SLOT_FLOATS);
    memcpy(slot_next(s), src + off, n * sizeof(float));
    round_sync(s);
    return n;
}

static ryz_status shm_all_reduce_sum(void *ctx, const float *send, float *recv, size_t count) {
    shm_ctx *s = ctx;
    for (size_t off = 0; off < count; off += SLOT_FLOATS) {
        size_t n = round_put(s, send, off, count);
        sum_slots(s, 0, recv + off, n);
    }
    return RYZ_OK;
}

static ryz_status shm_all_gather(void *ctx, const float *send, float *recv, size_t count) {
    shm_ctx *s = ctx;
    for (size_t off = 0; off < count; off += SLOT_FLOATS) {
        size_t n = round_put(s, send, off, count);
        for (int p = 0; p < s->size; p++)
            memcpy(recv + (size_t)p * count + off, slot_of(s, p, s->round), n * sizeof(float));
    }
    return RYZ_OK;
}

/* Each round carries a column of every destination's block: block q's
 * floats off..off+n go to slot position q*n. */
static ryz_status shm_reduce_scatter(void *ctx, const float *send, float *recv, size_t count) {
    shm_ctx *s = ctx;
    size_t step = SLOT_FLOATS / (size_t)s->size;
    for (size_t off = 0; off < count; off += step) {
        size_t n = min_size(count - off, step);
        float *mine = slot_next(s);
        for (int q = 0; q < s->size; q++)
            memcpy(mine + (size_t)q * n, send + (size_t)q * count + off, n * sizeof(float));
        round_sync(s);
        sum_slots(s, (size_t)s->rank * n, recv + off, n);
    }
    return RYZ_OK;
}

static ryz_status shm_broadcast(void *ctx, void *buf, size_t bytes, int root) {
    shm_ctx *s = ctx;
    unsigned char *b = buf;
    for (size_t off = 0; off < bytes; off += SLOT_BYTES) {
        size_t n = min_size(bytes - off, SLOT_BYTES);
        if (s->rank == root)
            memcpy(slot_next(s), b + off, n);
        round_sync(s);
        if (s->rank != root)
            memcpy(b + off, slot_of(s, root, s->round), n);
    }
    return RYZ_OK;
}

static ryz_status shm_barrier(void *ctx) {
    round_sync(ctx);
    return RYZ_OK;
}

static void shm_abort(void *ctx, int code) {
    shm_ctx *s = ctx;
    MPI_Abort(s->comm, code);
}

static void shm_free(void *ctx) {
    shm_ctx *s = ctx;
    if (!s)
        return;
    if (s->base)
        munmap(s->base, (size_t)s->size * REGION_BYTES);
    if (s->comm != MPI_COMM_NULL)
        MPI_Comm_free(&s->comm);
    free(s);
}

/* ---- set-up ------------------------------------------------------------- */

/* EINVAL unless every rank of comm runs on this node (the same answer on
 * every rank: each compares its node's share with the whole). */
static ryz_status check_one_node(MPI_Comm comm, int size) {
    MPI_Comm node;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS)
        return ryz_error(RYZ_ECOMM, "comm shm: MPI cannot tell which ranks share a node");
    int here = 0;
    MPI_Comm_size(node, &here);
    MPI_Comm_free(&node);
    if (here != size)
        return ryz_error(RYZ_EINVAL,
                         "comm shm needs all %d ranks on one node, but %d share this one "
                         "(use comm mpi across nodes)",
                         size, here);
    return RYZ_OK;
}

/* Whether this node runs more of the world's ranks than it has cores:
 * then a waiting rank yields at once, since spinning would hold a core
 * that a rank it waits for needs. Asked once, over the world (collective
 * the first time). */
static int node_oversubscribed(void) {
    static int known, over;
    if (!known) {
        MPI_Comm node;
        int here = 1;
        if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
            MPI_SUCCESS) {
            MPI_Comm_size(node, &here);
            MPI_Comm_free(&node);
        }
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        known = 1, over = cores > 0 && here > cores;
    }
    return over;
}

/* Maps the segment named `name`. Rank 0 creates it and reserves its pages
 * (on tmpfs ftruncate reserves nothing, and a full /dev/shm would be a
 * SIGBUS at the first copy instead of ENOSPC here); a creator that fails
 * after creating unlinks it. Returns the mapping or NULL with errno set. */
static unsigned char *segment_map(const char *name, size_t bytes, int create) {
    int fd = create ? shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600) : shm_open(name, O_RDWR, 0);
    if (fd < 0)
        return NULL;
    void *p = MAP_FAILED;
    int err = create ? posix_fallocate(fd, 0, (off_t)bytes) : 0;
    if (err == 0) {
        p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        err = p == MAP_FAILED ? errno : 0;
    }
    close(fd);
    if (err && create)
        shm_unlink(name);
    errno = err;
    return p == MAP_FAILED ? NULL : p;
}

/* Rank 0 creates the segment, then tells the others its name (empty when
 * it failed, so they do not look for it); once every rank has mapped it,
 * or any failed and all return that rank's error, rank 0 unlinks it.
 * Collective over s->comm. */
static ryz_status segment_open(shm_ctx *s) {
    static unsigned serial;
    char name[64] = {0};
    size_t bytes = (size_t)s->size * REGION_BYTES;
    int err = 0;
    if (s->rank == 0) {
        snprintf(name, sizeof name, "/ryz-shm-%ld-%u", (long)getpid(), serial++);
        s->base = segment_map(name, bytes, 1);
        err = s->base ? 0 : errno;
    }
    char sent[64] = {0};
    if (s->base)
        memcpy(sent, name, sizeof sent);
    int rc = MPI_Bcast(sent, sizeof sent, MPI_CHAR, 0, s->comm);
    if (s->rank != 0 && rc == MPI_SUCCESS && sent[0]) {
        memcpy(name, sent, sizeof name);
        s->base = segment_map(name, bytes, 0);
        err = s->base ? 0 : errno;
    }
    struct {
        int err, rank;
    } mine = {err, s->rank}, worst = {0, 0};
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(&mine, &worst, 1, MPI_2INT, MPI_MAXLOC, s->comm);
    if (s->rank == 0 && s->base)
        shm_unlink(name);
    if (rc == MPI_SUCCESS && worst.err == 0)
        return RYZ_OK;
    if (s->base)
        munmap(s->base, bytes);
    s->base = NULL;
    if (rc != MPI_SUCCESS)
        return ryz_error(RYZ_ECOMM, "comm shm: the ranks could not agree on shared memory %s",
                         name);
    return ryz_error(RYZ_EIO,
                     "comm shm: rank %d cannot map %zu bytes of shared memory %s: %s "
                     "(is /dev/shm mounted and writable, with room?)",
                     worst.rank, bytes, name, strerror(worst.err));
}

static const ryz_comm_iface shm_iface;

/* The shm comm over `comm` (taken over: freed with the comm or on error).
 * Collective over comm. */
static ryz_status shm_wrap(MPI_Comm comm, ryz_comm **out) {
    shm_ctx *s = calloc(1, sizeof *s);
    if (!s) {
        MPI_Comm_free(&comm);
        return ryz_error(RYZ_ENOMEM, "out of memory creating the shm communicator");
    }
    s->comm = comm;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &s->rank);
    MPI_Comm_size(comm, &s->size);
    s->spins = node_oversubscribed() ? 0 : SPINS;
    ryz_status st = check_one_node(comm, s->size);
    if (st == RYZ_OK)
        st = segment_open(s);
    if (st == RYZ_OK)
        return ryz_comm_create(&shm_iface, s, s->rank, s->size, out);
    shm_free(s);
    return st;
}

static ryz_status shm_split_first(void *ctx, int n, ryz_comm **out) {
    shm_ctx *s = ctx;
    MPI_Comm sub;
    if (MPI_Comm_split(s->comm, s->rank < n ? 0 : MPI_UNDEFINED, s->rank, &sub) != MPI_SUCCESS)
        return ryz_error(RYZ_ECOMM, "comm shm: MPI comm_split failed");
    return sub == MPI_COMM_NULL ? RYZ_OK : shm_wrap(sub, out);
}

static const ryz_comm_iface shm_iface = {
    .name = "shm",
    .all_reduce_sum = shm_all_reduce_sum,
    .all_gather = shm_all_gather,
    .reduce_scatter = shm_reduce_scatter,
    .broadcast = shm_broadcast,
    .barrier = shm_barrier,
    .abort = shm_abort,
    .split_first = shm_split_first,
    .free = shm_free,
    .check_peers = comm_mpi_check_peers,
};

ryz_status ryz_comm_init_shm_world(ryz_comm **out) {
    *out = NULL;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited)
        return ryz_error(RYZ_EINVAL, "the shm communicator needs MPI for its set-up: call "
                                     "ryz_mpi_init first");
    MPI_Comm dup;
    if (MPI_Comm_dup(MPI_COMM_WORLD, &dup) != MPI_SUCCESS)
        return ryz_error(RYZ_ECOMM, "comm shm: MPI comm_dup failed");
    ryz_status st = shm_wrap(dup, out);
    if (st == RYZ_OK)
        comm_set_process_rank(ryz_comm_rank(*out));
    return st;
}
