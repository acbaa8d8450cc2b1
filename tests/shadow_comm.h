/* A test communicator that takes the shadow backend's "device" memory in
 * place, as nccl takes cuda memory (device_memory = 1), so the runner's
 * nccl code paths run without a GPU. It wraps another communicator (mpi
 * or self): a buffer tagged as shadow device memory (bit 62, see
 * tests/shadow_backend.h) is untagged and counted, any other buffer is
 * host memory and passes as it is (nccl takes both). split_first wraps the
 * inner communicator's split. Header-only (static): include it after
 * shadow_backend.h in one test. */
#ifndef RYZ_TEST_SHADOW_COMM_H
#define RYZ_TEST_SHADOW_COMM_H

#include <stdint.h>
#include <stdlib.h>

#include "ryz/comm.h"
#include "shadow_backend.h"

/* Collectives on this process that got at least one device buffer, over
 * every shadow comm (the runner makes its own from the one a test gives). */
static long shadow_comm_device_calls;

/* The host address of p when p is shadow device memory (counted in *dev). */
static inline void *shadow_comm_buf(const void *p, int *dev) {
    if (!((uintptr_t)p & SHADOW_TAG)) return (void *)p;
    *dev = 1;
    return shadow_host(p);
}

/* The call's status, counting it when it took device memory. */
static inline ryz_status shadow_comm_count(int dev, ryz_status st) {
    shadow_comm_device_calls += dev;
    return st;
}

static ryz_status shadow_comm_all_reduce(void *ctx, const float *send, float *recv, size_t n) {
    int dev = 0;
    const float *s = shadow_comm_buf(send, &dev);
    return shadow_comm_count(dev, ryz_comm_all_reduce_sum(ctx, s, shadow_comm_buf(recv, &dev), n));
}

static ryz_status shadow_comm_all_gather(void *ctx, const float *send, float *recv, size_t n) {
    int dev = 0;
    const float *s = shadow_comm_buf(send, &dev);
    return shadow_comm_count(dev, ryz_comm_all_gather(ctx, s, shadow_comm_buf(recv, &dev), n));
}

static ryz_status shadow_comm_reduce_scatter(void *ctx, const float *send, float *recv,
                                             size_t n) {
    int dev = 0;
    const float *s = shadow_comm_buf(send, &dev);
    return shadow_comm_count(dev, ryz_comm_reduce_scatter(ctx, s, shadow_comm_buf(recv, &dev), n));
}

static ryz_status shadow_comm_broadcast(void *ctx, void *buf, size_t bytes, int root) {
    int dev = 0;
    void *b = shadow_comm_buf(buf, &dev);
    return shadow_comm_count(dev, ryz_comm_broadcast(ctx, b, bytes, root));
}

static ryz_status shadow_comm_barrier(void *ctx) {
    return ryz_comm_barrier(ctx);
}

static void shadow_comm_abort(void *ctx, int code) {
    ryz_comm_abort(ctx, code);
}

static ryz_status shadow_comm_check_peers(void *ctx, int size, double grace_s) {
    (void)size;
    return ryz_comm_check_peers(ctx, grace_s);
}

static void shadow_comm_free(void *ctx) {
    ryz_comm_free(ctx);
}

static ryz_status shadow_comm_split(void *ctx, int n, ryz_comm **out);

static const ryz_comm_iface shadow_comm_iface = {
    .name = "shadow-nccl",
    .all_reduce_sum = shadow_comm_all_reduce,
    .all_gather = shadow_comm_all_gather,
    .reduce_scatter = shadow_comm_reduce_scatter,
    .broadcast = shadow_comm_broadcast,
    .barrier = shadow_comm_barrier,
    .abort = shadow_comm_abort,
    .split_first = shadow_comm_split,
    .free = shadow_comm_free,
    .check_peers = shadow_comm_check_peers,
    .device_memory = 1,
};

/* A shadow comm over `inner` (owned: freed with it; also on failure). */
static inline ryz_status shadow_comm_wrap(ryz_comm *inner, ryz_comm **out) {
    return ryz_comm_create(&shadow_comm_iface, inner, ryz_comm_rank(inner),
                           ryz_comm_size(inner), out);
}

static ryz_status shadow_comm_split(void *ctx, int n, ryz_comm **out) {
    ryz_comm *sub = NULL;
    *out = NULL;
    ryz_status st = ryz_comm_split_first(ctx, n, &sub);
    return st == RYZ_OK && sub ? shadow_comm_wrap(sub, out) : st;
}

#endif
