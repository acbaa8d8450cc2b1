/* The Open MPI backend. Communicators use MPI_ERRORS_RETURN so a failed
 * collective becomes a ryz_status with MPI's message, not an abort. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/comm.h"

typedef struct {
    MPI_Comm comm;
    int owned; /* 1 when we created it and must free it */
} mpi_ctx;

static ryz_status mpi_check(int rc, const char *op) {
    if (rc == MPI_SUCCESS) return RYZ_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ryz_error(RYZ_ECOMM, "MPI %s failed: %s", op, msg);
}

static ryz_status mpi_all_reduce_sum(void *ctx, const float *send, float *recv, size_t count) {
    mpi_ctx *m = ctx;
    const void *s = send == recv ? MPI_IN_PLACE : send;
    return mpi_check(MPI_Allreduce(s, recv, (int)count, MPI_FLOAT, MPI_SUM, m->comm),
                     "all_reduce");
}

static ryz_status mpi_all_gather(void *ctx, const float *send, float *recv, size_t n) {
    mpi_ctx *m = ctx;
    return mpi_check(
        MPI_Allgather(send, (int)n, MPI_FLOAT, recv, (int)n, MPI_FLOAT, m->comm), "all_gather");
}

static ryz_status mpi_reduce_scatter(void *ctx, const float *send, float *recv, size_t n) {
    mpi_ctx *m = ctx;
    return mpi_check(MPI_Reduce_scatter_block(send, recv, (int)n, MPI_FLOAT, MPI_SUM, m->comm),
                     "reduce_scatter");
}

static ryz_status mpi_broadcast(void *ctx, void *buf, size_t bytes, int root) {
    mpi_ctx *m = ctx;
    return mpi_check(MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, m->comm), "broadcast");
}

static ryz_status mpi_barrier(void *ctx) {
    mpi_ctx *m = ctx;
    return mpi_check(MPI_Barrier(m->comm), "barrier");
}

static void mpi_abort(void *ctx, int code) {
    mpi_ctx *m = ctx;
    MPI_Abort(m->comm, code);
}

static void mpi_free(void *ctx) {
    mpi_ctx *m = ctx;
    if (m && m->owned && m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
    free(m);
}

static ryz_status mpi_wrap(MPI_Comm comm, int owned, ryz_comm **out);

static ryz_status mpi_split_first(void *ctx, int n, ryz_comm **out) {
    mpi_ctx *m = ctx;
    int rank;
    MPI_Comm_rank(m->comm, &rank);
    MPI_Comm sub;
    ryz_status s = mpi_check(
        MPI_Comm_split(m->comm, rank < n ? 0 : MPI_UNDEFINED, rank, &sub), "comm_split");
    if (s != RYZ_OK || sub == MPI_COMM_NULL) return s;
    return mpi_wrap(sub, 1, out);
}

static const ryz_comm_iface mpi_iface = {
    .name = "mpi",
    .all_reduce_sum = mpi_all_reduce_sum,
    .all_gather = mpi_all_gather,
    .reduce_scatter = mpi_reduce_scatter,
    .broadcast = mpi_broadcast,
    .barrier = mpi_barrier,
    .abort = mpi_abort,
    .split_first = mpi_split_first,
    .free = mpi_free,
};

static ryz_status mpi_wrap(MPI_Comm comm, int owned, ryz_comm **out) {
    mpi_ctx *m = calloc(1, sizeof *m);
    if (!m) return ryz_error(RYZ_ENOMEM, "out of memory creating mpi communicator");
    m->comm = comm;
    m->owned = owned;
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    return ryz_comm_create(&mpi_iface, m, rank, size, out);
}

ryz_status ryz_mpi_init(int *argc, char ***argv) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) return RYZ_OK;
    int provided;
    return mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "init");
}

void ryz_mpi_finalize(void) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Finalize();
}

int ryz_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

ryz_status ryz_comm_init_mpi_world(ryz_comm **out) {
    return mpi_wrap(MPI_COMM_WORLD, 0, out);
}
