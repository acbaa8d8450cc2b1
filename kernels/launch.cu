// The launch setting every kernel shares (ryz_k_launch, common.cuh).
#include "common.cuh"
#include "kernels.h"

int ryz_k_pdl_enabled = 0;

extern "C" void ryz_k_set_pdl(int on) {
    ryz_k_pdl_enabled = on != 0;
}
