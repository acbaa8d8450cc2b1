/* BLAS and CUDA versions and devices, for `ryz info`. */
#include <stdio.h>

#include "ryz/info.h"

char *openblas_get_config(void);

#ifdef RYZ_WITH_CUDA
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

void ryz_info_blas(char *buf, size_t cap) {
    snprintf(buf, cap, "%s", openblas_get_config());
}

const char *ryz_info_backends(void) {
#ifdef RYZ_WITH_CUDA
    return "cpu cuda";
#else
    return "cpu";
#endif
}

void ryz_info_cuda(char *buf, size_t cap) {
#ifdef RYZ_WITH_CUDA
    int rt = 0, drv = 0, nccl = 0, n = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    ncclGetVersion(&nccl);
    size_t len = (size_t)snprintf(buf, cap, "runtime %d.%d, driver %d.%d, NCCL %d.%d.%d",
                                  rt / 1000, rt % 1000 / 10, drv / 1000, drv % 1000 / 10,
                                  nccl / 10000, nccl / 100 % 100, nccl % 100);
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        snprintf(buf + len, cap > len ? cap - len : 0, "\nno device: %s", cudaGetErrorString(e));
        return;
    }
    for (int d = 0; d < n && len < cap; d++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
        len += (size_t)snprintf(buf + len, cap - len, "\ndevice %d: %s, %.1f GiB, sm_%d%d", d,
                                p.name, (double)p.totalGlobalMem / (1 << 30), p.major, p.minor);
    }
#else
    snprintf(buf, cap, "not built (make CUDA=1)");
#endif
}

void ryz_info_cuda_line(char *buf, size_t cap) {
    char info[1024];
    size_t n = 0;
    ryz_info_cuda(info, sizeof info);
    for (const char *p = info; *p && n + 3 < cap; p++) {
        if (*p == '\n') buf[n++] = ';';
        buf[n++] = *p == '\n' ? ' ' : *p;
    }
    if (cap) buf[n < cap ? n : cap - 1] = '\0';
}
