// The device copy of the bandwidth probe (ryz_cuda_copy_bandwidth): the
// simplest kernel that moves memory at the device's rate, so its time says
// what the memory system gives, not what a clever kernel achieves.
#include "common.cuh"
#include "kernels.h"

// 16-byte loads each thread issues before its stores: enough bytes in
// flight per SM to cover the memory latency at full occupancy.
#define COPY_UNROLL 4

// Grid-stride over n float4; streaming (evict-first) loads and stores, as
// each byte is touched once. The `tail` bytes after the last float4 go
// one per thread of block 0.
static __global__ void __launch_bounds__(RYZ_K_THREADS)
    copy_kernel(float4 *dst, const float4 *src, size_t n, int tail) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    for (; i + (COPY_UNROLL - 1) * stride < n; i += COPY_UNROLL * stride) {
        float4 v[COPY_UNROLL];
#pragma unroll
        for (int u = 0; u < COPY_UNROLL; u++)
            v[u] = __ldcs(src + i + u * stride);
#pragma unroll
        for (int u = 0; u < COPY_UNROLL; u++)
            __stcs(dst + i + u * stride, v[u]);
    }
    for (; i < n; i += stride)
        __stcs(dst + i, __ldcs(src + i));
    if (blockIdx.x == 0 && (int)threadIdx.x < tail)
        ((char *)(dst + n))[threadIdx.x] = ((const char *)(src + n))[threadIdx.x];
}

extern "C" cudaError_t ryz_k_copy(void *dst, const void *src, size_t bytes, cudaStream_t s) {
    size_t n = bytes / 16;
    copy_kernel<<<ryz_k_blocks((n + COPY_UNROLL - 1) / COPY_UNROLL), RYZ_K_THREADS, 0, s>>>(
        (float4 *)dst, (const float4 *)src, n, (int)(bytes % 16));
    return cudaGetLastError();
}
