/* The MPI library version, for `ryz info`. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "ryz/info.h"

void ryz_info_mpi(char *buf, size_t cap) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    v[strcspn(v, ",\n")] = '\0';
    snprintf(buf, cap, "%s (MPI %d.%d)", v, MPI_VERSION, MPI_SUBVERSION);
}
