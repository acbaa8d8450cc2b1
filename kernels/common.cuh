// Block reductions and launch geometry shared by the kernels. Every block
// size used here is a multiple of 32 and at most 1024, so a block has at
// most 32 warps and the partials fit one warp.
#ifndef RYZ_KERNELS_COMMON_CUH
#define RYZ_KERNELS_COMMON_CUH

#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>

#define RYZ_FULL_MASK 0xffffffffu

// Threads per block of the one-dimensional kernels.
#define RYZ_K_THREADS 256
// Grid cap of the grid-stride kernels: enough blocks to fill any current
// GPU; larger arrays are covered by the stride loop.
#define RYZ_K_MAX_BLOCKS 65535

// Blocks for n elements, one per thread, capped for a grid-stride loop.
static inline unsigned ryz_k_blocks(size_t n) {
    size_t b = (n + RYZ_K_THREADS - 1) / RYZ_K_THREADS;
    return (unsigned)(b < 1 ? 1 : b > RYZ_K_MAX_BLOCKS ? RYZ_K_MAX_BLOCKS : b);
}

__device__ __forceinline__ float ryz_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(RYZ_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float ryz_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(RYZ_FULL_MASK, v, o));
    return v;
}

// Sum of v over the block, returned to every thread. red: 32 floats of
// shared memory. Starts with a barrier, so shared writes made before the
// call are visible to the whole block after it, and red may be reused by
// consecutive calls. Every thread of the block must call it.
__device__ __forceinline__ float ryz_block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = ryz_warp_sum(v);
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    return ryz_warp_sum(lane < warps ? red[lane] : 0.0f);
}

// Maximum of v over the block, as ryz_block_sum.
__device__ __forceinline__ float ryz_block_max(float v, float *red) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = ryz_warp_max(v);
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    return ryz_warp_max(lane < warps ? red[lane] : -INFINITY);
}

#endif
