/* The nccl backend: the collectives of ryz_comm_iface on NCCL, one GPU per
 * MPI rank (docs/gpu.md).
 *
 * Bootstrap: every communicator keeps a private MPI communicator over the
 * same ranks; rank 0 creates the ncclUniqueId and MPI_Bcast hands it out,
 * for the world and for every split_first alike.
 *
 * Hangs: the communicator is non-blocking (config.blocking = 0), so no NCCL
 * call blocks the host. Each collective is enqueued on this communicator's
 * stream, then the host polls ncclCommGetAsyncError (NCCL's own progress
 * and errors, a remote failure included) and cudaStreamQuery (the kernel),
 * up to ryz_comm_timeout() seconds. An error or the timeout aborts the
 * communicator (ncclCommAbort ends kernels that wait for a dead peer) and
 * returns ECOMM or ETIMEOUT naming the call, which the CLI turns into exit
 * code 3. When this process also runs the mpi backend's watchdog, it
 * watches the same published call with the same timeout, and whichever
 * fires first ends the job with exit code 3.
 *
 * Ordering: the stream is a blocking one, so it waits for work enqueued
 * earlier on the legacy default stream (where the cuda backend computes)
 * and later default-stream work waits for it; a collective reads what the
 * last kernel wrote without an event.
 *
 * Without RYZ_WITH_CUDA only a stub is built. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ryz/cuda.h"

#ifdef RYZ_WITH_CUDA
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#define STAGE_MIN_BYTES ((size_t)64 << 10) /* the agreement check's all_gather fits */
#define STAGE_ALIGN ((size_t)256)          /* cudaMalloc's alignment, for the recv part */
#define SPIN_S 2e-3                        /* poll without sleeping this long: latency */
#define POLL_SLEEP_S 20e-6                 /* then sleep this long between polls */

typedef struct {
    ncclComm_t comm;     /* NULL once aborted */
    MPI_Comm boot;       /* the same ranks, for ids and splits (owned) */
    cudaStream_t stream; /* blocking stream of this communicator's collectives */
    int device, rank, size;
    void *stage; /* (stage_bytes) device copy of host buffers */
    size_t stage_bytes;
    char failed[200]; /* the call whose failure aborted comm, "" while alive */
} nccl_ctx;

/* Device buffers of one collective, and where a staged result goes. */
typedef struct {
    const void *send;
    void *recv;
    void *host_recv; /* non-NULL: copy recv (recv_bytes) here afterwards */
    size_t recv_bytes;
} dev_bufs;

/* How messages name the call: the wrapper's description of the collective
 * in flight ("all_reduce #12 of 1152 floats"), else `op`. */
static void describe(const char *op, char *buf, size_t cap) {
    comm_call k;
    if (comm_inflight_get(&k))
        comm_describe(&k, buf, cap);
    else
        snprintf(buf, cap, "%s", op);
}

/* Aborts n's communicator (when alive) because `op` failed, and returns s
 * with a message naming the call, the rank and why (printf-style). */
__attribute__((format(printf, 4, 5))) static ryz_status
abort_comm(nccl_ctx *n, ryz_status s, const char *op, const char *why, ...) {
    char call[160], reason[512];
    describe(op, call, sizeof call);
    va_list ap;
    va_start(ap, why);
    vsnprintf(reason, sizeof reason, why, ap);
    va_end(ap);
    if (n->comm) {
        ncclCommAbort(n->comm);
        n->comm = NULL;
        snprintf(n->failed, sizeof n->failed, "%s", call);
    }
    return ryz_error(s, "nccl %s on rank %d of %d: %s; communicator aborted", call, n->rank,
                     n->size, reason);
}

/* Aborts after NCCL call `call` (part of `op`) returned r. */
static ryz_status nccl_failed(nccl_ctx *n, const char *op, const char *call, ncclResult_t r) {
    const char *detail = n->comm ? ncclGetLastError(n->comm) : "";
    return abort_comm(n, RYZ_ECOMM, op, "%s: %s%s%s", call, ncclGetErrorString(r),
                      detail && *detail ? ": " : "", detail ? detail : "");
}

/* Waits for n's pending work: the progress of a non-blocking NCCL call
 * and, with `stream`, what it enqueued on n->stream. Polls for at most
 * ryz_comm_timeout() seconds (0: no limit); an error or the timeout
 * aborts the communicator. */
static ryz_status nccl_wait(nccl_ctx *n, const char *op, int stream) {
    double timeout = ryz_comm_timeout(), t0 = ryz_time_now();
    for (;;) {
        ncclResult_t state = ncclSuccess, r = ncclCommGetAsyncError(n->comm, &state);
        if (r != ncclSuccess)
            return nccl_failed(n, op, "ncclCommGetAsyncError", r);
        if (state != ncclSuccess && state != ncclInProgress)
            return nccl_failed(n, op, "NCCL (asynchronous error)", state);
        if (state == ncclSuccess) {
            if (!stream)
                return RYZ_OK;
            cudaError_t e = cudaStreamQuery(n->stream);
            if (e == cudaSuccess)
                return RYZ_OK;
            if (e != cudaErrorNotReady)
                return abort_comm(n, RYZ_ECOMM, op, "cudaStreamQuery: %s (%s)",
                                  cudaGetErrorString(e), cudaGetErrorName(e));
        }
        double waited = ryz_time_now() - t0;
        if (timeout > 0 && waited > timeout)
            return abort_comm(n, RYZ_ETIMEOUT, op,
                              "did not complete within %g s (RYZ_TIMEOUT); a rank is missing, "
                              "dead or stuck",
                              timeout);
        if (waited > SPIN_S)
            comm_sleep(POLL_SLEEP_S);
    }
}

/* ---- buffers --------------------------------------------------------- */

/* Whether NCCL can use p directly (device or managed memory). */
static int on_device(const void *p) {
    struct cudaPointerAttributes a;
    if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError(); /* older runtimes flag plain host memory as an error */
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* Grows the staging buffer to at least `bytes` (rarely: it keeps its size). */
static ryz_status stage_reserve(nccl_ctx *n, size_t bytes) {
    if (bytes <= n->stage_bytes)
        return RYZ_OK;
    size_t want = bytes > 2 * n->stage_bytes ? bytes : 2 * n->stage_bytes;
    if (n->stage)
        cudaFree(n->stage);
    n->stage = NULL, n->stage_bytes = 0;
    cudaError_t e = cudaMalloc(&n->stage, want);
    if (e != cudaSuccess)
        return ryz_error(e == cudaErrorMemoryAllocation ? RYZ_ENOMEM : RYZ_EIO,
                         "nccl: cudaMalloc of a %zu-byte staging buffer for host buffers on "
                         "device %d failed: %s",
                         want, n->device, cudaGetErrorString(e));
    n->stage_bytes = want;
    return RYZ_OK;
}

/* The device buffers for a collective from send (sb bytes) to recv (rb
 * bytes; recv == send: in place, rb >= sb): device memory as it is, host
 * memory through the staging buffer, send copied in now. ECOMM when the
 * communicator was aborted earlier. */
static ryz_status stage_in(nccl_ctx *n, const char *op, const void *send, size_t sb, void *recv,
                           size_t rb, dev_bufs *b) {
    if (!n->comm)
        return ryz_error(RYZ_ECOMM, "nccl %s: the communicator was aborted after %s failed", op,
                         n->failed);
    int in_place = send == recv, send_host = !on_device(send);
    int recv_host = in_place ? send_host : !on_device(recv);
    size_t send_part =
        send_host && !in_place ? (sb + STAGE_ALIGN - 1) / STAGE_ALIGN * STAGE_ALIGN : 0;
    ryz_status st = stage_reserve(n, send_part + (recv_host ? rb : 0));
    if (st != RYZ_OK)
        return st;
    char *stage = n->stage;
    *b = (dev_bufs){.send = send, .recv = recv, .recv_bytes = rb};
    if (recv_host)
        b->recv = stage + send_part, b->host_recv = recv;
    if (send_host)
        b->send = in_place ? b->recv : stage;
    if (!send_host || sb == 0)
        return RYZ_OK;
    cudaError_t e = cudaMemcpyAsync((void *)b->send, send, sb, cudaMemcpyHostToDevice, n->stream);
    return e == cudaSuccess ? RYZ_OK
                            : ryz_error(RYZ_EIO, "nccl %s: copying %zu host bytes to device %d: %s",
                                        op, sb, n->device, cudaGetErrorString(e));
}

/* After the NCCL call `call` returned r: waits for the collective, then
 * copies a staged result to the host. */
static ryz_status finish(nccl_ctx *n, const char *op, const char *call, ncclResult_t r,
                         const dev_bufs *b) {
    if (r != ncclSuccess && r != ncclInProgress)
        return nccl_failed(n, op, call, r);
    ryz_status st = nccl_wait(n, op, 1);
    if (st != RYZ_OK || !b->host_recv || b->recv_bytes == 0)
        return st;
    cudaError_t e =
        cudaMemcpyAsync(b->host_recv, b->recv, b->recv_bytes, cudaMemcpyDeviceToHost, n->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(n->stream); /* only the copy is left: cannot hang */
    return e == cudaSuccess ? RYZ_OK
                            : ryz_error(RYZ_EIO, "nccl %s: copying %zu bytes to the host: %s", op,
                                        b->recv_bytes, cudaGetErrorString(e));
}

/* ---- the collectives ----------------------------------------------------- */

static ryz_status nccl_all_reduce_sum(void *ctx, const float *send, float *recv, size_t count) {
    nccl_ctx *n = ctx;
    dev_bufs b;
    size_t bytes = count * sizeof(float);
    ryz_status st = stage_in(n, "all_reduce", send, bytes, recv, bytes, &b);
    if (st != RYZ_OK)
        return st;
    ncclResult_t r = ncclAllReduce(b.send, b.recv, count, ncclFloat, ncclSum, n->comm, n->stream);
    return finish(n, "all_reduce", "ncclAllReduce", r, &b);
}

static ryz_status nccl_all_gather(void *ctx, const float *send, float *recv, size_t count) {
    nccl_ctx *n = ctx;
    dev_bufs b;
    size_t sb = count * sizeof(float);
    ryz_status st = stage_in(n, "all_gather", send, sb, recv, sb * (size_t)n->size, &b);
    if (st != RYZ_OK)
        return st;
    ncclResult_t r = ncclAllGather(b.send, b.recv, count, ncclFloat, n->comm, n->stream);
    return finish(n, "all_gather", "ncclAllGather", r, &b);
}

static ryz_status nccl_reduce_scatter(void *ctx, const float *send, float *recv, size_t count) {
    nccl_ctx *n = ctx;
    dev_bufs b;
    size_t rb = count * sizeof(float);
    ryz_status st = stage_in(n, "reduce_scatter", send, rb * (size_t)n->size, recv, rb, &b);
    if (st != RYZ_OK)
        return st;
    ncclResult_t r =
        ncclReduceScatter(b.send, b.recv, count, ncclFloat, ncclSum, n->comm, n->stream);
    return finish(n, "reduce_scatter", "ncclReduceScatter", r, &b);
}

static ryz_status nccl_broadcast(void *ctx, void *buf, size_t bytes, int root) {
    nccl_ctx *n = ctx;
    dev_bufs b;
    ryz_status st = stage_in(n, "broadcast", buf, bytes, buf, bytes, &b);
    if (st != RYZ_OK)
        return st;
    ncclResult_t r = ncclBroadcast(b.send, b.recv, bytes, ncclInt8, root, n->comm, n->stream);
    return finish(n, "broadcast", "ncclBroadcast", r, &b);
}

/* NCCL has no barrier: a one-float all-reduce in the staging buffer,
 * which every rank leaves only after all have entered. */
static ryz_status nccl_barrier(void *ctx) {
    nccl_ctx *n = ctx;
    if (!n->comm)
        return ryz_error(RYZ_ECOMM, "nccl barrier: the communicator was aborted after %s failed",
                         n->failed);
    dev_bufs b = {.send = n->stage, .recv = n->stage};
    ncclResult_t r = ncclAllReduce(n->stage, n->stage, 1, ncclFloat, ncclSum, n->comm, n->stream);
    return finish(n, "barrier", "ncclAllReduce", r, &b);
}

static void nccl_abort(void *ctx, int code) {
    nccl_ctx *n = ctx;
    if (n->comm)
        ncclCommAbort(n->comm);
    n->comm = NULL;
    MPI_Abort(n->boot, code);
}

static ryz_status nccl_check_peers(void *ctx, int size, double grace_s) {
    (void)ctx, (void)size, (void)grace_s;
    return ryz_error(RYZ_ECOMM, "an nccl communicator cannot tell whether the other ranks are "
                                "alive: ask the mpi world communicator");
}

/* ---- life cycle ------------------------------------------------------------ */

/* Finalizes (bounded by the timeout) and destroys the NCCL communicator,
 * then frees the rest; on a partly built n too. */
static void nccl_free(void *ctx) {
    nccl_ctx *n = ctx;
    if (!n)
        return;
    if (n->comm) {
        ncclResult_t r = ncclCommFinalize(n->comm);
        ryz_status st = r == ncclSuccess || r == ncclInProgress
                            ? nccl_wait(n, "ncclCommFinalize", 0)
                            : nccl_failed(n, "ncclCommFinalize", "ncclCommFinalize", r);
        if (st != RYZ_OK)
            RYZ_WARN("%s", ryz_last_error());
        if (n->comm)
            ncclCommDestroy(n->comm);
    }
    if (n->stage)
        cudaFree(n->stage);
    if (n->stream)
        cudaStreamDestroy(n->stream);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && n->boot != MPI_COMM_NULL)
        MPI_Comm_free(&n->boot);
    free(n);
}

static ryz_status mpi_status(int rc, const char *what) {
    if (rc == MPI_SUCCESS)
        return RYZ_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return ryz_error(RYZ_ECOMM, "nccl set-up: MPI %s failed: %s", what, msg);
}

/* This rank's GPU (its local rank), stream and staging buffer. */
static ryz_status device_setup(nccl_ctx *n) {
    int count = 0;
    ryz_status st = ryz_cuda_device_count(&count);
    if (st != RYZ_OK)
        return ryz_error_wrap(st, "nccl on rank %d", n->rank);
    n->device = ryz_cuda_local_rank();
    if (n->device >= count)
        return ryz_error(RYZ_EINVAL,
                         "nccl: rank %d is local rank %d on its node, but only %d CUDA device(s) "
                         "are visible; NCCL needs one GPU per rank (ranks sharing a GPU use comm "
                         "= mpi)",
                         n->rank, n->device, count);
    cudaError_t e = cudaSetDevice(n->device);
    if (e == cudaSuccess)
        e = cudaStreamCreate(&n->stream);
    if (e != cudaSuccess)
        return ryz_error(RYZ_EIO, "nccl on rank %d: setting up device %d: %s", n->rank, n->device,
                         cudaGetErrorString(e));
    return stage_reserve(n, STAGE_MIN_BYTES);
}

/* Whether every rank's set-up succeeded (mine: st), so none goes on to
 * wait in NCCL for a rank that gave up. */
static ryz_status agree(nccl_ctx *n, ryz_status st) {
    int ok = st == RYZ_OK, all = 0;
    ryz_status ms = mpi_status(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, n->boot),
                               "allreduce (set-up agreement)");
    if (st != RYZ_OK || ms != RYZ_OK)
        return st != RYZ_OK ? st : ms;
    if (!all)
        return ryz_error(RYZ_ECOMM,
                         "nccl: another rank could not set up its GPU (its own message "
                         "says why); rank %d stops too",
                         n->rank);
    return RYZ_OK;
}

/* Rank 0's ncclUniqueId, sent to all over MPI with whether it exists. */
static ryz_status share_id(nccl_ctx *n, ncclUniqueId *id) {
    struct {
        int ok;
        ncclUniqueId id;
    } msg;
    memset(&msg, 0, sizeof msg);
    ryz_status st = RYZ_OK;
    if (n->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&msg.id);
        msg.ok = r == ncclSuccess;
        if (!msg.ok)
            st = ryz_error(RYZ_ECOMM, "nccl: ncclGetUniqueId on rank 0 failed: %s",
                           ncclGetErrorString(r));
    }
    ryz_status ms =
        mpi_status(MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, 0, n->boot), "bcast (ncclUniqueId)");
    if (st != RYZ_OK || ms != RYZ_OK)
        return st != RYZ_OK ? st : ms;
    if (!msg.ok)
        return ryz_error(RYZ_ECOMM, "nccl: rank 0 could not create the NCCL unique id (its "
                                    "message says why)");
    *id = msg.id;
    return RYZ_OK;
}

/* The non-blocking communicator, waited for like a collective. */
static ryz_status comm_init(nccl_ctx *n, ncclUniqueId id) {
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&n->comm, n->size, id, n->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress)
        return nccl_failed(n, "ncclCommInitRankConfig", "ncclCommInitRankConfig", r);
    return nccl_wait(n, "ncclCommInitRankConfig", 0);
}

static ryz_status nccl_create(MPI_Comm boot, ryz_comm **out);

static ryz_status nccl_split_first(void *ctx, int k, ryz_comm **out) {
    nccl_ctx *n = ctx;
    *out = NULL;
    if (!n->comm)
        return ryz_error(RYZ_ECOMM,
                         "nccl comm_split: the communicator was aborted after %s "
                         "failed",
                         n->failed);
    MPI_Comm sub = MPI_COMM_NULL;
    ryz_status st = mpi_status(
        MPI_Comm_split(n->boot, n->rank < k ? 0 : MPI_UNDEFINED, n->rank, &sub), "comm_split");
    if (st != RYZ_OK || sub == MPI_COMM_NULL)
        return st;
    return nccl_create(sub, out);
}

static const ryz_comm_iface nccl_iface = {
    .name = "nccl",
    .all_reduce_sum = nccl_all_reduce_sum,
    .all_gather = nccl_all_gather,
    .reduce_scatter = nccl_reduce_scatter,
    .broadcast = nccl_broadcast,
    .barrier = nccl_barrier,
    .abort = nccl_abort,
    .split_first = nccl_split_first,
    .free = nccl_free,
    .check_peers = nccl_check_peers,
    .device_memory = 1,
};

/* An nccl comm over the ranks of boot, which it takes over (freed on
 * failure too). Collective over boot. */
static ryz_status nccl_create(MPI_Comm boot, ryz_comm **out) {
    *out = NULL;
    nccl_ctx *n = calloc(1, sizeof *n);
    if (!n) {
        MPI_Comm_free(&boot);
        return ryz_error(RYZ_ENOMEM, "out of memory creating an nccl communicator");
    }
    n->boot = boot;
    MPI_Comm_set_errhandler(boot, MPI_ERRORS_RETURN);
    MPI_Comm_rank(boot, &n->rank);
    MPI_Comm_size(boot, &n->size);
    ncclUniqueId id;
    ryz_status st = agree(n, device_setup(n));
    if (st == RYZ_OK)
        st = share_id(n, &id);
    if (st == RYZ_OK)
        st = comm_init(n, id);
    if (st != RYZ_OK) {
        nccl_free(n);
        return st;
    }
    return ryz_comm_create(&nccl_iface, n, n->rank, n->size, out);
}

ryz_status ryz_comm_init_nccl_world(ryz_comm **out) {
    *out = NULL;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited)
        return ryz_error(RYZ_EINVAL, "the nccl communicator needs MPI for its set-up: call "
                                     "ryz_mpi_init first");
    MPI_Comm boot;
    ryz_status st = mpi_status(MPI_Comm_dup(MPI_COMM_WORLD, &boot), "comm_dup");
    if (st != RYZ_OK)
        return st;
    st = nccl_create(boot, out);
    if (st == RYZ_OK)
        comm_set_process_rank(ryz_comm_rank(*out));
    return st;
}

#else /* !RYZ_WITH_CUDA */

ryz_status ryz_comm_init_nccl_world(ryz_comm **out) {
    *out = NULL;
    return ryz_error(RYZ_EINVAL, "the nccl communicator: built without CUDA (rebuild with make "
                                 "CUDA=1)");
}

#endif
