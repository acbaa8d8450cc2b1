/* info: what this build and machine provide, for `ryz info`. Each module
 * reports its own library (comm: MPI, backend: BLAS and CUDA, results:
 * HDF5), so no module includes another's library headers. */
#ifndef RYZ_INFO_H
#define RYZ_INFO_H

#include <stddef.h>

/* The MPI library's version string (first line). */
void ryz_info_mpi(char *buf, size_t cap);
/* The BLAS library's build configuration. */
void ryz_info_blas(char *buf, size_t cap);
/* The core type OpenBLAS runs its kernels for ("Haswell", "SkylakeX",
 * ...), chosen when it loaded. */
const char *ryz_blas_core(void);
/* The OpenBLAS core type to ask for (OPENBLAS_CORETYPE) on this CPU, or
 * NULL where OpenBLAS's own choice stands. An OpenBLAS older than the CPU
 * takes it for a generic one: 0.3.21 runs Intel's family 6 model 207
 * (Emerald Rapids) on Prescott's SSE3 kernels, whose sgemm read 26-32
 * GFLOP/s a core against SkylakeX's 145 (docs/performance.md, session 25).
 * Then "SkylakeX" where the CPU has AVX-512 F, CD, BW, DQ and VL,
 * "Haswell" where it has AVX2 and FMA. NULL where OPENBLAS_CORETYPE is
 * set and not empty, OpenBLAS was built for one core only, or its core is
 * not one of its generic fallbacks. */
const char *ryz_blas_core_advice(void);
/* ryz_blas_core_advice's rule: chosen, OpenBLAS's core; env,
 * OPENBLAS_CORETYPE (NULL: unset); whether the CPU has AVX2 and FMA, and
 * AVX-512 (F, CD, BW, DQ, VL). */
const char *ryz_blas_core_for(const char *chosen, const char *env, int avx2_fma, int avx512);
/* The HDF5 library version. */
void ryz_info_hdf5(char *buf, size_t cap);
/* Compute backends in this build ("cpu"; a CUDA=1 build says what it links). */
const char *ryz_info_backends(void);
/* CUDA runtime, driver and NCCL versions and visible devices, one per line
 * ("not built" without CUDA=1; "no device: REASON" without a GPU). */
void ryz_info_cuda(char *buf, size_t cap);
/* The same on one line, "; " between its lines: a results file's device
 * attribute, printed in a table row. */
void ryz_info_cuda_line(char *buf, size_t cap);

#endif
