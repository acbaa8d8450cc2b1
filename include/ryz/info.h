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
