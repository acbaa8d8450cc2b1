// Block reductions and launch geometry shared by the kernels. Every block
// size used here is a multiple of 32 and at most 1024, so a block has at
// most 32 warps and the partials fit one warp.
#ifndef RYZ_KERNELS_COMMON_CUH
#define RYZ_KERNELS_COMMON_CUH

#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>

#include "kernels.h"
#include "ryz/backend.h"

#define RYZ_FULL_MASK 0xffffffffu

// Threads per block of the one-dimensional kernels.
#define RYZ_K_THREADS 256
// Grid cap of the grid-stride kernels: enough blocks to fill any current
// GPU; larger arrays are covered by the stride loop.
#define RYZ_K_MAX_BLOCKS 65535

// Programmatic dependent launch (compute capability 9.0 and later): a
// kernel launched by ryz_k_launch may start while the kernel before it on
// the stream is still running, so its blocks are resident, and a GEMV's
// first loads of W (which no kernel writes) in flight, when that kernel
// ends. The contract of every kernel launched by ryz_k_launch:
// - ryz_k_pdl_wait() before it reads or writes any buffer another kernel
//   touches: it returns once the previous kernel has finished and its
//   writes are visible (and, because that kernel waited in turn, every
//   kernel before it). Every thread calls it, before any early return.
//   Inputs another kernel wrote are read with plain (coherent) loads, not
//   __ldg: under PDL that kernel may still be writing them while this one
//   is already running, and the read-only path needs data that is constant
//   for the kernel's lifetime. The one exception is the fp32 GEMV's x
//   (matmul_f32.cu), read only after the wait, from when on nothing writes
//   it until this kernel ends (the kernel before has finished and made its
//   writes visible to this grid; the one after writes nothing before its
//   own wait, which waits for this one; and y never aliases x). NVIDIA
//   documents the read-only path for data constant over the kernel's whole
//   life, so this rests on the wait's visibility covering that path too;
//   it did in every session-27 run (H100, H200). The compiler may move a
//   read-only load across the wait (the asm's "memory" clobber does not
//   hold loads of memory taken as constant), so `make sass-check`
//   (scripts/sass-check.sh) checks the order in the sm_90 SASS: every
//   LDG...CONSTANT after ACQBULK, and x still read through that path.
// - ryz_k_pdl_trigger() early: the next kernel is launched once every
//   block of this one has called it (or ended). Its blocks then wait, so
//   calling it at once costs nothing in correctness.
// On older devices and without the launch attribute both are no-ops.
__device__ __forceinline__ void ryz_k_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void ryz_k_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The start of a kernel with nothing to do before its inputs are ready:
// wait for them, then let the next kernel launch.
__device__ __forceinline__ void ryz_k_pdl_begin() {
    ryz_k_pdl_wait();
    ryz_k_pdl_trigger();
}

// Whether ryz_k_launch asks for programmatic dependent launch (set by
// ryz_k_set_pdl, kernels/launch.cu).
extern int ryz_k_pdl_enabled;

// kernel<<<grid, block, shared, s>>>(args...), and with programmatic
// dependent launch when it is enabled and s is not the legacy stream
// (the cuda backend's recording stream is not; what runs on the legacy
// stream stays fully ordered). Returns the launch's status.
template <typename... P, typename... A>
static cudaError_t ryz_k_launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared,
                                cudaStream_t s, A &&...args) {
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = shared;
    cfg.stream = s;
    cfg.attrs = &attr;
    cfg.numAttrs = ryz_k_pdl_enabled && s != 0 ? 1 : 0;
    cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, static_cast<A &&>(args)...);
    if (e != cudaSuccess) // returned here; <<<>>> launchers check cudaGetLastError after
        (void)cudaGetLastError();
    return e;
}

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

// silu(a) * b with the silu_mul op's rounding (kernels/elementwise.cu).
__device__ __forceinline__ float ryz_silu_mul(float a, float b) {
    return a / (1.0f + expf(-a)) * b;
}

// What a decode GEMV launch computes (the GEMV kernels' MODE): one
// product, SwiGLU's pair of one x and shape (matmul_pair), or up to
// RYZ_K_MULTI_MAX products of one x (ryz_gemv_segs). RYZ_GEMV_MODES: how
// many, the rows of a launcher table.
enum { RYZ_GEMV_ONE = 0, RYZ_GEMV_SWIGLU = 1, RYZ_GEMV_MULTI = 2, RYZ_GEMV_MODES = 3 };

// The launchers f<N, MODE> for N = 1..8 (RYZ_K_GEMV_MAX_N), indexed by
// N - 1: a GEMV's table of instantiations for one mode.
#define RYZ_K_GEMV_BY_N(f, MODE)                                                               \
    {f<1, MODE>, f<2, MODE>, f<3, MODE>, f<4, MODE>, f<5, MODE>, f<6, MODE>, f<7, MODE>,     \
     f<8, MODE>}

// Matrices a GEMV of mode MODE reads.
template <int MODE>
__host__ __device__ constexpr int ryz_gemv_mats() {
    return MODE == RYZ_GEMV_ONE || MODE == RYZ_GEMV_MULTI ? 1 : 2;
}

// The products a decode GEMV launch computes from one x (ryz_k_*_gemv and
// their _multi forms): product s owns the launch's rows [start[s],
// start[s + 1]) of W w[s] (out_s = start[s + 1] - start[s] rows) and writes
// y[s] (n, out_s). rows, the rows the launch computes, is start[count],
// except for one bf16 product whose last out % 4 rows (or all, when
// in % 16 != 0) the row-major kernel computes. A pair is one product whose
// second matrix and output the kernel takes apart.
struct ryz_gemv_segs {
    const void *w[RYZ_K_MULTI_MAX];
    float *y[RYZ_K_MULTI_MAX];
    int start[RYZ_K_MULTI_MAX + 1];
    int count, rows;
};

// Launch row o's place: its product's W and y, its row of W and W's rows.
struct ryz_gemv_row {
    const void *w;
    float *y;
    int row, out;
};

// Where launch row o lies (in the last product for rows past the end);
// only a MULTI launch has more than one product, so the others skip the
// search (four registers fewer). The selects are unrolled: indexing sg by
// a computed product would copy the kernel parameter to local memory.
template <int MODE>
__device__ __forceinline__ ryz_gemv_row ryz_gemv_locate(const ryz_gemv_segs &sg, int o) {
    ryz_gemv_row r = {sg.w[0], sg.y[0], o, sg.start[1]};
#pragma unroll
    for (int i = 1; i < RYZ_K_MULTI_MAX; i++)
        if (MODE == RYZ_GEMV_MULTI && i < sg.count && o >= sg.start[i]) {
            r.w = sg.w[i], r.y = sg.y[i];
            r.row = o - sg.start[i], r.out = sg.start[i + 1] - sg.start[i];
        }
    return r;
}

// sg for the products y[i] = x . w[i]^T, i < count, of out[i] rows each
// (unit: their starts must be multiples of it, a bf16 row group): 0 when
// count is out of 1..RYZ_K_MULTI_MAX, an out[i] is under 1 or not a
// multiple of unit, or the rows together pass INT_MAX.
static inline int ryz_gemv_segs_fill(ryz_gemv_segs *sg, int count, float *const *y,
                                     const void *const *w, const int *out, int unit) {
    if (count < 1 || count > RYZ_K_MULTI_MAX)
        return 0;
    sg->count = count, sg->start[0] = 0;
    for (int i = 0; i < count; i++) {
        if (out[i] < 1 || out[i] % unit != 0 || out[i] > INT_MAX - sg->start[i])
            return 0;
        sg->w[i] = w[i], sg->y[i] = y[i];
        sg->start[i + 1] = sg->start[i] + out[i];
    }
    sg->rows = sg->start[count];
    return 1;
}

// Stores element i of a GEMV's result y from s, the sums of its
// matrices: s[0] (ONE, MULTI), silu(s[0]) * s[1] (SWIGLU).
template <int MODE>
__device__ __forceinline__ void ryz_gemv_store(float *y, size_t i, const float *s) {
    y[i] = MODE == RYZ_GEMV_SWIGLU ? ryz_silu_mul(s[0], s[1]) : s[0];
}

#endif
