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

// The two reductions the kernels need, as functors for the templates below.
struct RyzAdd {
    __device__ float operator()(float a, float b) const { return a + b; }
};
struct RyzMax {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// op over the 32 lanes of a warp (butterfly), returned to every lane.
template <class Op>
__device__ __forceinline__ float ryz_warp_reduce(float v, Op op) {
    for (int o = 16; o > 0; o >>= 1)
        v = op(v, __shfl_xor_sync(RYZ_FULL_MASK, v, o));
    return v;
}

// op over the block, returned to every thread; identity fills the lanes
// past the last warp. red: 32 floats of shared memory. Starts with a
// barrier, so shared writes made before the call are visible to the whole
// block after it, and red may be reused by consecutive calls. Every thread
// of the block must call it.
template <class Op>
__device__ __forceinline__ float ryz_block_reduce(float v, float *red, Op op, float identity) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = ryz_warp_reduce(v, op);
    __syncthreads();
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    return ryz_warp_reduce(lane < warps ? red[lane] : identity, op);
}

__device__ __forceinline__ float ryz_warp_sum(float v) {
    return ryz_warp_reduce(v, RyzAdd());
}

__device__ __forceinline__ float ryz_warp_max(float v) {
    return ryz_warp_reduce(v, RyzMax());
}

// Sum of v over the block (ryz_block_reduce).
__device__ __forceinline__ float ryz_block_sum(float v, float *red) {
    return ryz_block_reduce(v, red, RyzAdd(), 0.0f);
}

// Maximum of v over the block (ryz_block_reduce).
__device__ __forceinline__ float ryz_block_max(float v, float *red) {
    return ryz_block_reduce(v, red, RyzMax(), -INFINITY);
}

#endif
