/* comm: collectives behind a vtable (self, mpi, shm, nccl), every call profiled,
 * numbered per communicator, optionally checked for agreement across ranks,
 * and watched for hangs (docs/reliability.md). Nothing above comm/ includes
 * mpi.h. */
#ifndef RYZ_COMM_H
#define RYZ_COMM_H

#include "ryz/core.h"

typedef enum {
    RYZ_OP_ALL_REDUCE = 0,
    RYZ_OP_ALL_GATHER,
    RYZ_OP_REDUCE_SCATTER,
    RYZ_OP_BROADCAST,
    RYZ_OP_BARRIER,
    RYZ_OP_COUNT
} ryz_comm_op;

typedef struct ryz_comm ryz_comm;

/* A backend fills this table; `ctx` is its private state. Buffers are float32
 * unless the name says bytes. Counts are per call, not per rank, except
 * where named `count_per_rank`. */
typedef struct ryz_comm_iface {
    const char *name;
    ryz_status (*all_reduce_sum)(void *ctx, const float *send, float *recv, size_t count);
    ryz_status (*all_gather)(void *ctx, const float *send, float *recv, size_t count_per_rank);
    ryz_status (*reduce_scatter)(void *ctx, const float *send, float *recv, size_t count_per_rank);
    ryz_status (*broadcast)(void *ctx, void *buf, size_t bytes, int root);
    ryz_status (*barrier)(void *ctx);
    void (*abort)(void *ctx, int code);
    /* Sub-communicator of the ranks with rank < n (in order); NULL for the
     * others. Collective over the parent. */
    ryz_status (*split_first)(void *ctx, int n, ryz_comm **out);
    void (*free)(void *ctx);
    /* Whether every other rank still answers within grace_s seconds (OK)
     * or which do not (ECOMM). NULL: one process, nothing to ask. */
    ryz_status (*check_peers)(void *ctx, int size, double grace_s);
    /* 1 when the collectives take device memory of the cuda backend in
     * place (nccl); 0 (self, mpi, shm): host memory only, so a caller holding
     * device buffers stages them through the host. */
    int device_memory;
} ryz_comm_iface;

/* One profiled call. */
typedef struct {
    ryz_comm_op op;
    size_t bytes;   /* message size as nccl-tests counts it: all_reduce and broadcast
                       the buffer, all_gather the output, reduce_scatter the input */
    double seconds; /* wall time of the call on this rank */
    uint64_t streamed; /* bytes ryz_streamed_total grew by since this comm's previous
                          record (or creation, or clear): weights read before the call */
    double gap;        /* seconds from the end of this comm's previous call to the start
                          of this one (0 for its first): how long it sat idle, which
                          Open MPI's latency depends on (docs/comm.md) */
} ryz_comm_record;

/* Builds a comm from a backend table (used by backends). Takes ownership of
 * ctx (freed through iface->free). */
ryz_status ryz_comm_create(const ryz_comm_iface *iface, void *ctx, int rank, int size,
                           ryz_comm **out);
/* The one-rank backend: every collective is a copy. */
ryz_status ryz_comm_init_self(ryz_comm **out);
/* MPI_COMM_WORLD, after ryz_mpi_init; on more than one rank with the
 * watchdog on, also starts this process's watchdog thread (stopped by
 * ryz_mpi_finalize). EINVAL when built without MPI. */
ryz_status ryz_comm_init_mpi_world(ryz_comm **out);
/* The shared-memory communicator over MPI_COMM_WORLD, after ryz_mpi_init
 * (src/comm/shm.c): the same ranks, collectives through a segment in
 * /dev/shm that every rank maps, host memory only. Collective over the
 * world. Its calls are watched by the watchdog that ryz_comm_init_mpi_world
 * starts, so create that world first (as ryz_cli_world does). EINVAL when
 * the ranks are not all on one node; EIO when the segment cannot be mapped
 * (/dev/shm full or missing); ECOMM when MPI fails. */
ryz_status ryz_comm_init_shm_world(ryz_comm **out);
/* Initialises MPI once; safe to call twice. Runs ryz_comm_setup first
 * (its error is returned). Asks for MPI_THREAD_MULTIPLE while the watchdog
 * is on (RYZ_TIMEOUT > 0), else funneled. */
ryz_status ryz_mpi_init(int *argc, char ***argv);
void ryz_mpi_finalize(void);
/* True when this process was started by mpirun (OMPI/PMI env present). */
int ryz_mpi_launched(void);

void ryz_comm_free(ryz_comm *c);
int ryz_comm_rank(const ryz_comm *c);
int ryz_comm_size(const ryz_comm *c);
const char *ryz_comm_name(const ryz_comm *c);
/* Whether c's collectives take cuda device memory in place (iface's
 * device_memory); else they need host buffers. */
int ryz_comm_device_memory(const ryz_comm *c);

/* The profiled collectives. recv may equal send for all_reduce (in place). */
ryz_status ryz_comm_all_reduce_sum(ryz_comm *c, const float *send, float *recv, size_t count);
/* recv holds size*count_per_rank floats, rank-major. */
ryz_status ryz_comm_all_gather(ryz_comm *c, const float *send, float *recv, size_t count_per_rank);
/* send holds size*count_per_rank floats; recv gets this rank's summed block. */
ryz_status ryz_comm_reduce_scatter(ryz_comm *c, const float *send, float *recv,
                                   size_t count_per_rank);
ryz_status ryz_comm_broadcast(ryz_comm *c, void *buf, size_t bytes, int root);
ryz_status ryz_comm_barrier(ryz_comm *c);
void ryz_comm_abort(ryz_comm *c, int code);
/* Collective over c (counted and watched like one): the first n ranks. */
ryz_status ryz_comm_split_first(ryz_comm *c, int n, ryz_comm **out);

/* Reliability (docs/reliability.md). Every collective of a communicator
 * gets the next sequence number (#1, #2, ...). Before it is issued:
 *  - on world rank 0, a pending SIGINT/SIGTERM (ryz_interrupted) makes it
 *    return ECOMM "interrupted by signal N" without communicating;
 *  - with checking on, the ranks all-gather (op, #, count, root) and any
 *    disagreement is ECOMM naming both sides ("rank 0: all_reduce #12 of
 *    1152 floats; rank 1: all_gather #12 of 8000 floats"), the collective
 *    itself not issued, so the communicator stays usable.
 * While it runs, the mpi backend's watchdog thread stops the whole job with
 * exit code 3 (MPI_Abort) once it has taken longer than the timeout,
 * after printing the op, its number and which ranks did not arrive. */

/* Reads the settings once from the environment (later calls return the
 * first result): RYZ_TIMEOUT (seconds, default 300, 0 = no watchdog),
 * RYZ_CHECK_COLLECTIVES (0 or 1, default 0) and RYZ_FAULT (see
 * ryz_comm_fault_set). EINVAL naming the variable when malformed. Called by
 * ryz_cli_world before any rank starts, by ryz_mpi_init and by
 * ryz_comm_create. */
ryz_status ryz_comm_setup(void);
/* The watchdog timeout in seconds (0: off). Setting it applies to the next
 * collective; a process that started MPI with 0 has no watchdog thread. */
double ryz_comm_timeout(void);
void ryz_comm_set_timeout(double seconds);
/* Whether collectives are checked for agreement across ranks. */
int ryz_comm_check_enabled(void);
void ryz_comm_set_check(int on);
/* Collectives issued on c so far (the next one is number seq + 1). */
uint64_t ryz_comm_seq(const ryz_comm *c);
/* Whether every other rank of c is alive: asks them through the watchdog's
 * side channel (so it works while they are blocked in a collective) and
 * waits up to grace_s. OK, or ECOMM naming the ranks that did not answer,
 * or ECOMM when the side channel is off (no watchdog) and it cannot tell.
 * OK on one rank. */
ryz_status ryz_comm_check_peers(ryz_comm *c, double grace_s);

/* TEST ONLY: fault injection, "KIND:rank=R:step=S[:op=NAME]" as in
 * RYZ_FAULT. On world rank R, the S-th collective from now (counting only
 * op NAME when given; ops as ryz_comm_op_name names them, or comm_split):
 * kill raises SIGKILL before it, hang sleeps forever before it, slow
 * sleeps 1 s before it, desync issues it with one element (byte) less,
 * corrupt adds 1 to the middle element of its result. NULL or "" clears.
 * EINVAL naming the bad part; the previous fault stays then. */
ryz_status ryz_comm_fault_set(const char *spec);

/* nccl-tests bus bandwidth factor of op on k ranks: all-reduce 2(k-1)/k,
 * all-gather and reduce-scatter (k-1)/k, broadcast 1. */
double ryz_comm_busbw_factor(ryz_comm_op op, int k);

/* TEST ONLY (src/comm/fault.c). While on, every all_reduce result on this
 * process has element count/2 incremented by 1 after the call, so a data
 * check must fail. Starts as RYZ_TEST_CORRUPT=1 in the environment says
 * (read at the first all_reduce). */
void ryz_comm_test_corrupt(int on);

/* Profiling: records are kept in a fixed ring allocated at creation (no
 * allocation per call); the oldest are overwritten past capacity. */
const char *ryz_comm_op_name(ryz_comm_op op);
size_t ryz_comm_record_count(const ryz_comm *c);
/* Calls recorded since the last clear, kept or not (more than
 * ryz_comm_record_count once the ring has wrapped). */
size_t ryz_comm_record_total(const ryz_comm *c);
const ryz_comm_record *ryz_comm_record_at(const ryz_comm *c, size_t i);
void ryz_comm_records_clear(ryz_comm *c);
/* Sum of seconds and number of calls of one op since the last clear. */
double ryz_comm_op_seconds(const ryz_comm *c, ryz_comm_op op, size_t *calls);

#endif
