/* comm: collectives behind a vtable (self, mpi), every call profiled.
 * Nothing above comm/ includes mpi.h. */
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
} ryz_comm_iface;

/* One profiled call. */
typedef struct {
    ryz_comm_op op;
    size_t bytes;   /* message size as nccl-tests counts it: all_reduce and broadcast
                       the buffer, all_gather the output, reduce_scatter the input */
    double seconds; /* wall time of the call on this rank */
} ryz_comm_record;

/* Builds a comm from a backend table (used by backends). Takes ownership of
 * ctx (freed through iface->free). */
ryz_status ryz_comm_create(const ryz_comm_iface *iface, void *ctx, int rank, int size,
                           ryz_comm **out);
/* The one-rank backend: every collective is a copy. */
ryz_status ryz_comm_init_self(ryz_comm **out);
/* MPI_COMM_WORLD, after ryz_mpi_init. EINVAL when built without MPI. */
ryz_status ryz_comm_init_mpi_world(ryz_comm **out);
/* Initialises MPI once (thread level funneled); safe to call twice. */
ryz_status ryz_mpi_init(int *argc, char ***argv);
void ryz_mpi_finalize(void);
/* True when this process was started by mpirun (OMPI/PMI env present). */
int ryz_mpi_launched(void);

void ryz_comm_free(ryz_comm *c);
int ryz_comm_rank(const ryz_comm *c);
int ryz_comm_size(const ryz_comm *c);
const char *ryz_comm_name(const ryz_comm *c);

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
ryz_status ryz_comm_split_first(ryz_comm *c, int n, ryz_comm **out);

/* nccl-tests bus bandwidth factor of op on k ranks: all-reduce 2(k-1)/k,
 * all-gather and reduce-scatter (k-1)/k, broadcast 1. */
double ryz_comm_busbw_factor(ryz_comm_op op, int k);

/* TEST ONLY. While on, every all_reduce result on this process has element
 * count/2 incremented by 1 after the call, so a data check must fail. Starts
 * as RYZ_TEST_CORRUPT=1 in the environment says (read at the first
 * all_reduce). */
void ryz_comm_test_corrupt(int on);

/* Profiling: records are kept in a fixed ring allocated at creation (no
 * allocation per call); the oldest are overwritten past capacity. */
const char *ryz_comm_op_name(ryz_comm_op op);
size_t ryz_comm_record_count(const ryz_comm *c);
const ryz_comm_record *ryz_comm_record_at(const ryz_comm *c, size_t i);
void ryz_comm_records_clear(ryz_comm *c);
/* Sum of seconds and number of calls of one op since the last clear. */
double ryz_comm_op_seconds(const ryz_comm *c, ryz_comm_op op, size_t *calls);

#endif
