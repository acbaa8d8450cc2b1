/* cuda: the CUDA compute backend (the .cu files in kernels/, and cuBLAS),
 * the nccl communicator, and the device helpers the model needs around
 * them (copies, embedding, vocab mask, argmax, memory accounting, timers).
 * docs/gpu.md says what exists and what has been run on a GPU.
 *
 * This header needs no CUDA headers and every function exists in every
 * build: without CUDA (make CUDA=1) the entry points return EINVAL "built
 * without CUDA", so callers and tests compile the same way everywhere.
 *
 * Pointers named _dev are device memory from the backend's alloc (or any
 * cudaMalloc'd memory of the backend's device). Everything the backend
 * does is enqueued in order on the device's legacy default stream (the
 * NULL stream), so operations are asynchronous to the host but ordered
 * among themselves, with cuBLAS and with the nccl communicator (whose own
 * stream is a blocking one: it waits for earlier NULL-stream work, and
 * later NULL-stream work waits for it). The exception is recording (the
 * vtable's record_begin .. record_end): those ops are captured on a stream
 * of the backend's own, and the graph is replayed on the NULL stream. */
#ifndef RYZ_CUDA_H
#define RYZ_CUDA_H

#include "ryz/backend.h"
#include "ryz/comm.h"
#include "ryz/core.h"

/* 1 when this build contains the cuda backend and the nccl communicator
 * (make CUDA=1), else 0. */
int ryz_cuda_built(void);

/* The number of visible CUDA devices. EINVAL "built without CUDA" in a
 * build without it; EIO naming cudaGetDeviceCount and its error when the
 * driver has no device to offer (that message says why, e.g. "no CUDA-
 * capable device is detected"). OK implies *n >= 1. */
ryz_status ryz_cuda_device_count(int *n);

/* This process's rank among the ranks on its node: OMPI_COMM_WORLD_LOCAL_RANK,
 * else MPI_LOCALRANKID, else SLURM_LOCALID, else 0. The default device of a
 * rank is its local rank (modulo the device count for the backend). */
int ryz_cuda_local_rank(void);

/* ---- the backend --------------------------------------------------- */

typedef struct {
    int device; /* CUDA device ordinal; -1: local rank modulo the device count */
    int tf32;   /* 0: IEEE fp32 GEMMs (default); 1: cuBLAS may use TF32 tensor
                   cores (about 10 mantissa bits: relative errors near 1e-3,
                   outside the suite's default fp32 tolerance) */
} ryz_cuda_opts;

/* The defaults: device -1, tf32 0. */
ryz_cuda_opts ryz_cuda_opts_default(void);

/* Makes opts->device current on the calling thread and fills *out with the
 * cuda vtable: alloc/free through cudaMalloc (zeroed, counted by kind),
 * matmul through cuBLAS (GEMM, GEMV for n = 1), matmul_bf16 through a
 * GEMV kernel for n <= 8 (decode) and for larger n by widening W to fp32
 * a block of rows at a time into a scratch buffer (at most 64 MiB,
 * allocated at the first bf16 prefill and grown for larger matrices, freed
 * by destroy) for cuBLAS, the rest in kernels/.
 * Every vtable op takes device pointers, runs on the calling thread's
 * current device (this one) and is asynchronous. The ops cannot return a
 * status: the first error (bad argument, launch or cuBLAS failure) is
 * kept, later ops do nothing, and the sync op (ryz_cuda_sync) returns it.
 * The data ops of the vtable (upload, download, copy_rows, embedding,
 * argmax, mask_cols) are the helpers below; host_visible is 0.
 * attention's scratch argument is not used (scores stay in shared memory).
 * EINVAL for a bad device or without CUDA, EIO/ENOMEM naming the CUDA or
 * cuBLAS call that failed. Free with ryz_backend_free: it destroys the
 * cuBLAS handle and frees every block still allocated through the backend
 * (a warning names how many). */
ryz_status ryz_backend_init_cuda(const ryz_cuda_opts *opts, ryz_backend *out);
/* ryz_backend_free for a cuda backend; a non-cuda backend is left alone. */
void ryz_backend_free_cuda(ryz_backend *b);
/* Whether b is a cuda backend. */
int ryz_backend_is_cuda(const ryz_backend *b);

/* Waits for the device to finish all enqueued work, then returns the
 * first error any vtable op or kernel met (with its message) or OK. The
 * error stays: a backend that failed is not used again. */
ryz_status ryz_cuda_sync(ryz_backend *b);

/* Live and peak device bytes allocated through b's alloc, by kind (the
 * cuBLAS workspace counts as scratch). 0 for a non-cuda backend. */
size_t ryz_cuda_mem_bytes(const ryz_backend *b, ryz_mem_kind kind);
size_t ryz_cuda_mem_peak(const ryz_backend *b, ryz_mem_kind kind);
/* cudaMemGetInfo of b's device: free and total bytes (other processes and
 * the CUDA context included, which the per-kind counts are not). */
ryz_status ryz_cuda_mem_info(const ryz_backend *b, size_t *free_bytes, size_t *total_bytes);
/* 1 when host address p lies in memory page-locked for CUDA (the backend's
 * pin_host, cudaHostRegister, cudaMallocHost), else 0; 0 without CUDA. */
int ryz_cuda_host_pinned(const void *p);

/* The device's memory bandwidth as a copy kernel sees it (grid-stride,
 * 16-byte loads and stores): two scratch buffers of `bytes` each are
 * allocated through b (counted as scratch, freed before returning), one
 * copy warms up, then `reps` copies are timed with CUDA events and the
 * best is returned as *bytes_per_s = 2 * bytes / seconds: bytes read PLUS
 * bytes written. Decode only reads its weights, but a read+write copy is
 * the HBM limit issue 7 names, and what vendors' bandwidth figures mean.
 * Waits for the device. EINVAL for a non-cuda backend (or without CUDA),
 * bytes < 1 MiB or reps < 1; ENOMEM naming the bytes asked for and the
 * device's free memory when the buffers do not fit; EIO naming the CUDA
 * call that failed; a kept error of b. *bytes_per_s is 0 on failure. */
ryz_status ryz_cuda_copy_bandwidth(ryz_backend *b, size_t bytes, int reps, double *bytes_per_s);

/* Synchronous copies (they wait for earlier work on the device, then for
 * the copy). Host memory may be pageable. */
ryz_status ryz_cuda_upload(ryz_backend *b, void *dst_dev, const void *src, size_t bytes);
ryz_status ryz_cuda_download(ryz_backend *b, void *dst, const void *src_dev, size_t bytes);
/* Device to device, enqueued (asynchronous): e.g. new K/V rows into the
 * cache. */
ryz_status ryz_cuda_copy(ryz_backend *b, void *dst_dev, const void *src_dev, size_t bytes);

/* Vocab-parallel embedding on the device (ryz_tp_embedding's lookup, no
 * all-reduce): x_dev (n, dim) = rows tokens_dev[r] - vocab_start of
 * emb_dev (vocab_local, dim) when in range, zero elsewhere. Enqueued. */
ryz_status ryz_cuda_embedding(ryz_backend *b, float *x_dev, const int *tokens_dev, int n,
                              const float *emb_dev, int vocab_start, int vocab_local, int dim);
/* logits_dev (n, vocab_padded): columns >= vocab set to -inf. Enqueued. */
ryz_status ryz_cuda_mask_vocab(ryz_backend *b, float *logits_dev, int n, int vocab,
                               int vocab_padded);
/* idx_dev (rows): per row r the index of the largest of
 * x_dev[r*ld .. r*ld+n) (the first on ties, as ryz_argmax; NaNs are
 * skipped). Enqueued. */
ryz_status ryz_cuda_argmax(ryz_backend *b, int *idx_dev, const float *x_dev, int rows, int n,
                           int ld);

/* ---- timing ---------------------------------------------------------- */

/* A pair of CUDA events on the NULL stream: the device time between start
 * and stop, without synchronising in between. */
typedef struct ryz_cuda_timer ryz_cuda_timer;
/* On the current device. EINVAL without CUDA. */
ryz_status ryz_cuda_timer_create(ryz_cuda_timer **out);
void ryz_cuda_timer_free(ryz_cuda_timer *t);
ryz_status ryz_cuda_timer_start(ryz_cuda_timer *t);
ryz_status ryz_cuda_timer_stop(ryz_cuda_timer *t);
/* Waits for the stop event; *seconds between the two events. */
ryz_status ryz_cuda_timer_seconds(ryz_cuda_timer *t, double *seconds);

/* ---- the nccl communicator --------------------------------------------- */

/* NCCL over MPI_COMM_WORLD (after ryz_mpi_init), one GPU per rank: each
 * rank makes its local rank's device current (EINVAL when the node has
 * fewer devices than ranks: ranks sharing a GPU use the mpi comm), rank 0
 * creates the ncclUniqueId and MPI_Bcast sends it, and the communicator is
 * non-blocking (config.blocking = 0). Collective over the world.
 *
 * Every collective waits on its own stream, polling ncclCommGetAsyncError
 * and cudaStreamQuery, for at most ryz_comm_timeout() seconds; an NCCL or
 * CUDA error, or the timeout, aborts the communicator (ncclCommAbort) and
 * returns ECOMM / ETIMEOUT naming the call ("all_reduce #12 of 1152
 * floats"); later calls return ECOMM. Buffers may be device memory (used
 * in place) or host memory (staged through a device buffer that grows to
 * the largest host call: correct, for the agreement check and host
 * callers, but not the fast path). split_first builds a new NCCL
 * communicator for the first n ranks. check_peers cannot tell (ECOMM):
 * ask the mpi world communicator. EINVAL without CUDA. */
ryz_status ryz_comm_init_nccl_world(ryz_comm **out);

#endif
