// The launch setting every kernel shares (ryz_k_launch, common.cuh).
#include "common.cuh"
#include "kernels.h"

int ryz_k_pdl_enabled = 0;

// Nothing: its compiled PTX version is every kernel's (one build, one set
// of -gencode flags).
static __global__ void pdl_probe_kernel() {}

extern "C" int ryz_k_set_pdl(int on) {
    // griddepcontrol exists from PTX for compute capability 9.0 on: code
    // JIT-compiled from older PTX has its waits compiled out, and launching
    // it with the attribute would let kernels overlap their inputs.
    cudaFuncAttributes a;
    if (cudaFuncGetAttributes(&a, pdl_probe_kernel) != cudaSuccess) {
        (void)cudaGetLastError();
        a.ptxVersion = 0;
    }
    ryz_k_pdl_enabled = on && a.ptxVersion >= 90;
    return ryz_k_pdl_enabled;
}
